//! The daemon under `stress-ng --fork 1` for minutes: its RSS sampled every 10 s, its CPU
//! time, the events it saw and the records it lost. Prints figures and the RSS slope; asserts
//! nothing (the test suite has a 20-second check, `daemon_rss_is_flat_under_a_fork_storm`).
//!
//! Needs root and stress-ng: `cargo xtask bench --daemon-soak [--minutes N]`, or
//! `cargo run -p reaper-trace-tests --bin daemon_soak -- [--minutes N]`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reaper_trace_tests::daemon::{Daemon, sample};
use reaper_trace_tests::measure::cpu_seconds;
use reaper_trace_tests::{ChildGuard, TempPath, require_root, status_kib};

fn main() {
    require_root();
    let args: Vec<String> = std::env::args().collect();
    let minutes: f64 = args
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(5.0);
    let socket = TempPath::new("soak.sock");
    let daemon = Daemon::start(socket.0.clone(), &[]);
    let seconds = (minutes * 60.0) as u64;
    let stress = ChildGuard::new(
        Command::new("stress-ng")
            .args(["--fork", "1", "--timeout"])
            .arg(format!("{}s", seconds + 15))
            .arg("--quiet")
            .stdout(Stdio::null())
            .spawn()
            .expect("stress-ng runs (cargo xtask setup installs it)"),
    );
    let start = Instant::now();
    let cpu0 = cpu_seconds(daemon.pid());
    println!("daemon under stress-ng --fork 1 for {minutes} min: RSS every 10 s");
    println!(
        "{:>6} {:>10} {:>12} {:>10}",
        "t (s)", "RSS (KiB)", "events", "ev/s"
    );
    let mut samples = Vec::new();
    let mut last_events = 0.0;
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(10));
        let rss = status_kib(daemon.pid(), "VmRSS").unwrap_or(0);
        let text = daemon.scrape();
        let events = sample(&text, "reaper_trace_events_total").unwrap_or(0.0);
        let t = start.elapsed().as_secs_f64();
        println!(
            "{t:>6.0} {rss:>10} {events:>12.0} {:>10.0}",
            (events - last_events) / 10.0
        );
        last_events = events;
        samples.push((t, rss as f64));
    }
    let cpu = cpu_seconds(daemon.pid()) - cpu0;
    let text = daemon.scrape();
    let lost: f64 = text
        .lines()
        .filter(|l| l.starts_with("reaper_trace_lost_records_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    stress.signal(libc::SIGTERM);
    // Least-squares slope of RSS over the run after the first minute (warm-up).
    let warm: Vec<(f64, f64)> = samples.iter().copied().filter(|s| s.0 >= 60.0).collect();
    let n = warm.len() as f64;
    let slope = if n >= 2.0 {
        let (mt, mr) = (
            warm.iter().map(|s| s.0).sum::<f64>() / n,
            warm.iter().map(|s| s.1).sum::<f64>() / n,
        );
        let cov: f64 = warm.iter().map(|s| (s.0 - mt) * (s.1 - mr)).sum();
        let var: f64 = warm.iter().map(|s| (s.0 - mt).powi(2)).sum();
        cov / var * 60.0
    } else {
        f64::NAN
    };
    let (min, max) = samples
        .iter()
        .fold((f64::MAX, 0f64), |(a, b), s| (a.min(s.1), b.max(s.1)));
    println!(
        "RSS {min:.0}..{max:.0} KiB; slope after the first minute {slope:+.1} KiB/min; daemon CPU {:.1}% of one core; {last_events:.0} events; {lost:.0} records lost",
        cpu / start.elapsed().as_secs_f64() * 100.0
    );
}
