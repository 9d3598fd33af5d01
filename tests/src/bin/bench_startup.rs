//! `cargo xtask bench --startup` (and the first part of `cargo xtask bench`): docs/cost.md's
//! start-up and reaping-init figures, measured in one command so they can be refreshed.
//! Prints figures; asserts nothing about speed.
//!
//! - start-up: from spawning `record` to its first line (the kernel's BTF parsed, offsets
//!   resolved, every program loaded, verified and attached), and the stop after SIGINT;
//! - `record -q -- true` end to end (start-up, the command, the linger check, the stop);
//! - how long each reaping init (reaper-init, tini, dumb-init, catatonit) left its orphans
//!   zombies as PID 1: `validate`'s `pid1-*` scenarios, 10 orphans each, the worst one per run.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Instant;

use reaper_trace_tests::{reaper_init, reaper_trace};
use serde_json::Value;

const RUNS: usize = 5;
const VALIDATE_RUNS: usize = 3;
const INITS: &[&str] = &[
    "pid1-reaper-init",
    "pid1-tini",
    "pid1-dumb-init",
    "pid1-catatonit",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn range(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// Spawns `record -q` to standard output, times its first line, then stops it with SIGINT
/// and times the stop. Seconds: (first line, stop).
fn start_and_stop() -> (f64, f64) {
    let start = Instant::now();
    let mut child = Command::new(reaper_trace())
        .args(["record", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("reaper-trace runs");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut header = String::new();
    lines.read_line(&mut header).expect("the header line");
    let ready = start.elapsed().as_secs_f64();
    assert!(header.contains(r#""type":"header""#), "{header}");
    // Keep reading, so the recorder never blocks on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut sink = String::new();
        while lines.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    let stop = Instant::now();
    // SAFETY: signalling our own child, not reaped yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    let stopped = stop.elapsed().as_secs_f64();
    assert!(status.success(), "record after SIGINT: {status}");
    let _ = reader.join();
    (ready, stopped)
}

/// `record -q -o /dev/null -- true`, end to end, in seconds.
fn record_true() -> f64 {
    let start = Instant::now();
    let status = Command::new(reaper_trace())
        .args(["record", "-q", "-o", "/dev/null", "--", "true"])
        .stdin(Stdio::null())
        .status()
        .expect("reaper-trace runs");
    assert!(status.success(), "record -- true: {status}");
    start.elapsed().as_secs_f64()
}

/// One `validate --json` run of the reaping-init scenarios: each one's worst zombie time (ms),
/// or why it did not pass.
fn init_zombie_times() -> Vec<(String, Result<f64, String>)> {
    let mut cmd = Command::new(reaper_trace());
    cmd.args(["validate", "--json"]);
    for s in INITS {
        cmd.args(["--only", s]);
    }
    let out = cmd
        .env("REAPER_INIT_BIN", reaper_init())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("reaper-trace validate runs");
    let report: Value = serde_json::from_slice(&out.stdout).expect("validate --json");
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let name = r["scenario"].as_str().unwrap_or("?").to_string();
            let time = match (r["status"].as_str(), r["zombies"]["max_zombie_ms"].as_f64()) {
                (Some("PASS"), Some(ms)) => Ok(ms),
                (status, _) => Err(format!(
                    "{}: {}",
                    status.unwrap_or("?"),
                    r["reason"].as_str().unwrap_or("")
                )),
            };
            (name, time)
        })
        .collect()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    println!(
        "start-up figures ({}; load average before: {})",
        reaper_trace().display(),
        load_average()
    );
    // One run first, not counted: the page cache, the BTF file.
    let _ = start_and_stop();
    let (mut ready, mut stop, mut whole) = (vec![], vec![], vec![]);
    for _ in 0..RUNS {
        let (r, s) = start_and_stop();
        ready.push(r);
        stop.push(s);
        whole.push(record_true());
    }
    let show = |what: &str, v: &[f64]| {
        let (lo, hi) = range(v);
        println!(
            "  {what:58} median {:.2} s (range {lo:.2}-{hi:.2}, {} runs)",
            median(v.to_vec()),
            v.len()
        );
    };
    show(
        "start-up to the first line (BTF, load, verify, attach)",
        &ready,
    );
    show("stop after SIGINT (drain, /proc check, detach)", &stop);
    show("`record -q -o /dev/null -- true`, end to end", &whole);

    println!("longest time an orphan stayed a zombie under each init as PID 1 (10 orphans a run):");
    let mut times: Vec<(String, Vec<f64>, Vec<String>)> = INITS
        .iter()
        .map(|s| (s.to_string(), vec![], vec![]))
        .collect();
    for _ in 0..VALIDATE_RUNS {
        for (name, t) in init_zombie_times() {
            let entry = times
                .iter_mut()
                .find(|(n, ..)| *n == name)
                .expect("a scenario asked for");
            match t {
                Ok(ms) => entry.1.push(ms),
                Err(e) => entry.2.push(e),
            }
        }
    }
    for (name, ms, errors) in times {
        if ms.is_empty() {
            println!("  {name:20} no figure: {}", errors.join("; "));
            continue;
        }
        let (lo, hi) = range(&ms);
        println!(
            "  {name:20} worst orphan {lo:.2}-{hi:.2} ms over {} runs{}",
            ms.len(),
            if errors.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} runs without a figure: {})",
                    errors.len(),
                    errors.join("; ")
                )
            }
        );
    }
    println!("load average after: {}", load_average());
}
