//! What `reaper-trace top` costs while thousands of events per second arrive: its own CPU
//! time (utime + stime from /proc) while this program forks and reaps children at a steady
//! rate, next to `record`'s under the same load. Prints figures; asserts nothing about speed.
//!
//! Needs root and tmux: `cargo run -p reaper-trace-tests --bin bench_dashboard -- [--rate N]
//! [--seconds S] [--jobs N]` (set REAPER_TRACE_BIN to measure a release build).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reaper_trace_tests::measure::{cpu_seconds, fork_and_reap};
use reaper_trace_tests::tmux::Tmux;
use reaper_trace_tests::{reaper_trace, require_root};

/// fork, exit, zombie, reap.
const EVENTS_PER_FORK: f64 = 4.0;

/// Forks children that exit at once and reaps them, `rate` a second for `seconds`; returns
/// the rate achieved.
fn fork_load(rate: u32, seconds: f64) -> f64 {
    let start = Instant::now();
    let total = (rate as f64 * seconds) as u64;
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        fork_and_reap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// `N events` and `R ev/s` as the dashboard's header shows them.
fn header_figures(screen: &str) -> (Option<f64>, Option<f64>) {
    let number_before = |suffix: &str| -> Option<f64> {
        let at = screen.find(suffix)?;
        let word = screen[..at].split_whitespace().last()?;
        let (num, mult) = match word.chars().last()? {
            'k' => (&word[..word.len() - 1], 1e3),
            'M' => (&word[..word.len() - 1], 1e6),
            _ => (word, 1.0),
        };
        num.parse::<f64>().ok().map(|n| n * mult)
    };
    (number_before(" events"), number_before(" ev/s"))
}

struct Measure {
    forks_per_sec: f64,
    cpu_percent: f64,
}

/// Runs the fork load (`jobs` threads sharing `rate`) while `pid` runs; its CPU use over
/// the load.
fn measure(pid: u32, rate: u32, jobs: u32, seconds: f64) -> Measure {
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let threads: Vec<_> = (0..jobs)
        .map(|_| std::thread::spawn(move || fork_load(rate / jobs, seconds)))
        .collect();
    let forks_per_sec: f64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    Measure {
        forks_per_sec,
        cpu_percent: 100.0 * cpu / wall,
    }
}

fn arg(args: &[String], name: &str) -> Option<f64> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    require_root();
    let args: Vec<String> = std::env::args().collect();
    let rate = arg(&args, "--rate").unwrap_or(2500.0) as u32;
    let seconds = arg(&args, "--seconds").unwrap_or(10.0);
    let jobs = (arg(&args, "--jobs").unwrap_or(2.0) as u32).max(1);
    let bin = reaper_trace();
    println!("reaper-trace: {}", bin.display());
    println!(
        "load: {rate} forks/s asked, by {jobs} threads, for {seconds} s (each: fork, exit, zombie, reap)"
    );

    // The dashboard, live and system-wide, on a 100x30 terminal. `exec`: the pane's process
    // is the dashboard itself.
    let tmux = Tmux::start(100, 30, &format!("exec '{}' top", bin.display()));
    tmux.wait_for(Duration::from_secs(30), |s| s.contains("LIVE"))
        .unwrap_or_else(|s| panic!("the dashboard did not start:\n{s}"));
    let top: u32 = tmux.display("#{pane_pid}").parse().expect("pane pid");
    std::thread::sleep(Duration::from_secs(2));

    // At rest: redraws once a second (ages count up), events from the rest of the machine.
    let cpu0 = cpu_seconds(top);
    std::thread::sleep(Duration::from_secs(5));
    let idle = 100.0 * (cpu_seconds(top) - cpu0) / 5.0;

    let (events0, _) = header_figures(&tmux.capture());
    let t0 = Instant::now();
    let handle = std::thread::spawn(move || measure(top, rate, jobs, seconds));
    // Read the rate shown mid-load.
    std::thread::sleep(Duration::from_secs_f64(seconds * 0.7));
    let (_, shown_rate) = header_figures(&tmux.capture());
    let m = handle.join().unwrap();
    let wall = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let screen = tmux.capture();
    let (events1, _) = header_figures(&screen);
    let events_per_sec = match (events0, events1) {
        (Some(a), Some(b)) => (b - a) / wall,
        _ => f64::NAN,
    };
    drop(tmux);

    // The same load under `record` to a file nobody reads, for comparison: what tracing
    // itself costs, without the screen.
    let mut rec: Child = Command::new(&bin)
        .args(["record", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("record runs");
    std::thread::sleep(Duration::from_secs(3));
    let r = measure(rec.id(), rate, jobs, seconds);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(rec.id() as i32, libc::SIGTERM) };
    let _ = rec.wait();

    println!();
    println!("top, idle (machine's own events):   {idle:5.1}% CPU");
    println!(
        "top, under load:                     {:5.1}% CPU  at {:.0} forks/s, {:.0} events/s (counted by top; it showed {} ev/s)",
        m.cpu_percent,
        m.forks_per_sec,
        events_per_sec,
        shown_rate.map_or("?".into(), |r| format!("{r:.0}"))
    );
    println!(
        "record > /dev/null, same load:       {:5.1}% CPU  at {:.0} forks/s",
        r.cpu_percent, r.forks_per_sec
    );
    // Per thousand events a second, the two compare even if the load they got differed.
    let per_k = |cpu: f64, forks: f64| cpu / (forks * EVENTS_PER_FORK / 1000.0);
    println!(
        "CPU % per 1000 events/s (from the forks alone): top {:.2}, record {:.2}",
        per_k(m.cpu_percent, m.forks_per_sec),
        per_k(r.cpu_percent, r.forks_per_sec)
    );
    println!("\nlast screen under load:\n{screen}");
}
