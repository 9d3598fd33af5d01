//! `reaper-trace check`: can this kernel run reaper-trace? Every program the tracer would load
//! here is verified, one by one, and none is attached; the report names each program, what the
//! verifier processed, and the reason for any refusal.

use anyhow::Result;
use serde::Serialize;

use crate::btf_offsets::{self, Features};
use crate::escape::escape_control as escape;
use crate::preflight;
use crate::tracer::{self, Verified};

/// The verifier's limit on processed instructions per program (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const VERIFIER_LIMIT: u32 = 1_000_000;

#[derive(Serialize)]
struct Report {
    kernel: String,
    features: Features,
    programs: Vec<Verified>,
    /// Every program loads.
    ok: bool,
}

/// Runs the check; returns the exit code (0: every program loads).
pub fn run(json: bool) -> Result<i32> {
    preflight::check_privileges()?;
    let kernel = btf_offsets::resolve()?;
    let programs = tracer::verify_all(&kernel)?;
    let ok = programs.iter().all(|p| p.error.is_none());
    let report = Report {
        kernel: tracer::kernel_release(),
        features: kernel.features,
        programs,
        ok,
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if ok { 0 } else { 1 })
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn render(report: &Report) -> String {
    let mut out = format!(
        "Linux {}: bpf_loop {}, bpf_get_current_task_btf {}\n",
        escape(&report.kernel),
        yes_no(report.features.bpf_loop),
        yes_no(report.features.current_task_btf),
    );
    let width = report
        .programs
        .iter()
        .map(|p| p.program.len())
        .max()
        .unwrap_or(0);
    let hook_width = report
        .programs
        .iter()
        .map(|p| p.hook.len())
        .max()
        .unwrap_or(0);
    for p in &report.programs {
        let verdict = match (&p.error, p.verified_insns) {
            (Some(e), _) => format!("REFUSED: {}", escape(e)),
            (None, Some(n)) => format!(
                "{n} instructions verified ({:.1}% of the limit)",
                100.0 * n as f64 / VERIFIER_LIMIT as f64
            ),
            (None, None) => "loads (this kernel does not say how much it verified)".into(),
        };
        out += &format!(
            "  {:width$}  {:hook_width$}  {verdict}\n",
            p.program, p.hook
        );
    }
    let refused = report.programs.iter().filter(|p| p.error.is_some()).count();
    if refused == 0 {
        out += &format!(
            "all {} programs load: reaper-trace runs on this kernel\n",
            report.programs.len()
        );
    } else {
        out += &format!(
            "{refused} of {} programs refused: reaper-trace cannot run on this kernel\n",
            report.programs.len()
        );
    }
    out
}
