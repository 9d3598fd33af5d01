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
    let kernel = escape(&report.kernel);
    let standby = |what: &str, s: btf_offsets::Standby| {
        format!(
            "{what}: {}: {}\n",
            if s.attached() { "attached" } else { "none" },
            s.reason(&kernel)
        )
    };
    let mut out = format!(
        "Linux {kernel}: bpf_loop {}, bpf_get_current_task_btf {}\n",
        yes_no(report.features.bpf_loop),
        yes_no(report.features.current_task_btf),
    );
    out += &standby(
        "standby copies of the fork, exec, exit, free and io_uring programs",
        report.features.hook_standbys,
    );
    out += &standby(
        "standby copies of the wait4, waitid and prctl programs (at sys_exit)",
        report.features.syscall_standby,
    );
    out += &format!(
        "forks and exits every copy skipped, recorded at sched_switch: {}\n",
        match (
            report.features.backstop,
            report.features.hook_standbys.attached()
        ) {
            (true, _) => "yes (at the child's first switch in and the task's final switch)",
            (false, true) => "no: turned off by REAPER_TRACE_NO_BACKSTOP=1 (a test)",
            (false, false) => "not needed: no program is skipped",
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf_offsets::Standby;

    fn report(hooks: Standby, syscalls: Standby) -> Report {
        Report {
            kernel: "7.3.1".into(),
            features: Features {
                bpf_loop: true,
                current_task_btf: true,
                hook_standbys: hooks,
                syscall_standby: syscalls,
                uring_waitid: true,
                backstop: hooks.attached(),
            },
            programs: Vec::new(),
            ok: true,
        }
    }

    #[test]
    fn says_which_hooks_have_standby_copies_and_why() {
        let text = render(&report(Standby::Preemptible, Standby::Forced));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].starts_with("standby copies of the fork, exec, exit, free and io_uring programs: attached: Linux 7.3.1 runs tracepoint programs preemptibly"),
            "{text}"
        );
        assert!(
            lines[2].ends_with("(at sys_exit): attached: forced by the environment (a test)"),
            "{text}"
        );
        assert!(
            lines[3].ends_with("recorded at sched_switch: yes (at the child's first switch in and the task's final switch)"),
            "{text}"
        );
        let text = render(&report(Standby::NotNeeded, Standby::NotNeeded));
        assert!(
            text.contains("io_uring programs: none: Linux 7.3.1 runs tracepoint programs with preemption disabled, so it never skips one\n"),
            "{text}"
        );
        assert!(
            text.contains("recorded at sched_switch: not needed"),
            "{text}"
        );
        // And as JSON, for scripts and the kernel matrix.
        let json = serde_json::to_value(report(Standby::Preemptible, Standby::NotNeeded).features)
            .unwrap();
        assert_eq!(json["hook_standbys"], "preemptible");
        assert_eq!(json["syscall_standby"], "not_needed");
        assert_eq!(json["backstop"], true);
    }
}
