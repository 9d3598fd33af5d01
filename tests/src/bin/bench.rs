//! `cargo xtask bench`: what tracing costs, measured in one run so the ratios compare like with
//! like on a noisy machine. Prints figures; asserts nothing about speed.
//!
//! - fork/exit/wait throughput with and without `reaper-trace record` running system-wide;
//! - context-switch rate (pipe ping-pong between two processes), the `sched_switch` hot path;
//! - the recorder's own CPU time, peak memory and events per second during the fork storm.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reaper_trace_tests::measure::{cpu_seconds, fork_and_reap};
use reaper_trace_tests::{TempPath, reaper_trace};

const FORKS: usize = 10_000;
const PINGS: usize = 200_000;
const ROUNDS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Forks and reaps `n` children that exit at once; returns processes per second.
fn fork_storm(n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        fork_and_reap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Pins the calling process to CPU 0 (inherited by children); returns the previous mask.
fn pin_to_cpu0() -> libc::cpu_set_t {
    // SAFETY: plain sched_{get,set}affinity on this process with sets we own.
    unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old);
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut one);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one);
        old
    }
}

fn restore_affinity(old: &libc::cpu_set_t) {
    // SAFETY: as above.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), old) };
}

/// Two processes on one CPU bounce a byte over pipes; returns round trips per second. Each
/// round trip is two context switches, so this measures the `sched_switch` hot path (on two
/// CPUs the figure would mostly measure wake-up latency and idle states).
fn ping_pong(n: usize) -> f64 {
    let old = pin_to_cpu0();
    let (mut a_r, mut a_w) = pipe();
    let (mut b_r, mut b_w) = pipe();
    // SAFETY: the child only uses the pipes and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut buf = [0u8; 1];
        for _ in 0..n {
            if a_r.read_exact(&mut buf).is_err() || b_w.write_all(&buf).is_err() {
                break;
            }
        }
        unsafe { libc::_exit(0) };
    }
    let start = Instant::now();
    let mut buf = [7u8; 1];
    for _ in 0..n {
        a_w.write_all(&buf).unwrap();
        b_r.read_exact(&mut buf).unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let mut status = 0;
    // SAFETY: waiting for our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    restore_affinity(&old);
    rate
}

fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe fills the array with two fresh descriptors we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Run counts and total run time of the programs a process holds, from the kernel's BPF
/// statistics (`kernel.bpf_stats_enabled`): (name, runs, nanoseconds).
fn program_stats(pid: u32) -> Vec<(String, u64, u64)> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    let progs: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap_or_default();
    // The process's programs: the `prog_id` of its descriptors (links hold the programs).
    let ids: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .flat_map(|info| {
                    info.lines()
                        .filter_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok())
                        .collect::<Vec<u64>>()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut stats: Vec<(String, u64, u64)> = progs
        .iter()
        .filter(|p| p["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("?").to_string(),
                p["run_cnt"].as_u64().unwrap_or(0),
                p["run_time_ns"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    stats.sort();
    stats
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Each tracer program and the floor program on its hook (`reaper-trace floor`).
const FLOORS: &[(&str, &str)] = &[
    ("sched_process_fork", "floor_fork"),
    ("sched_process_exec", "floor_exec"),
    ("sched_process_exit", "floor_exit"),
    ("sched_switch", "floor_switch"),
    ("sched_process_free", "floor_free"),
    ("sys_exit_wait4", "floor_exit_wait4"),
];

/// ns per run of `sched_switch` (or the floor's) between two readings.
fn switch_delta(before: &[(String, u64, u64)], after: &[(String, u64, u64)]) -> f64 {
    let find = |v: &[(String, u64, u64)]| {
        v.iter()
            .find(|(n, _, _)| n == "sched_switch" || n == "floor_switch")
            .map(|(_, r, t)| (*r, *t))
            .unwrap_or((0, 0))
    };
    let ((r0, t0), (r1, t1)) = (find(before), find(after));
    (t1 - t0) as f64 / (r1 - r0).max(1) as f64
}

/// Run statistics of the floor programs over one fork storm and one ping-pong, and the
/// floor's switch cost over the ping-pong alone.
fn floor_stats() -> (Vec<(String, u64, u64)>, f64) {
    let mut floor = Command::new(reaper_trace())
        .arg("floor")
        .stdout(Stdio::piped())
        .spawn()
        .expect("reaper-trace floor starts");
    // It prints a line once attached.
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(
        &mut std::io::BufReader::new(floor.stdout.take().expect("piped")),
        &mut line,
    );
    fork_storm(FORKS);
    let before_ping = program_stats(floor.id());
    ping_pong(PINGS);
    let stats = program_stats(floor.id());
    stop(floor);
    let live = switch_delta(&before_ping, &stats);
    (stats, live)
}

fn start_recorder(out: &TempPath) -> Child {
    let child = Command::new(reaper_trace())
        .args(["record", "-q", "-o"])
        .arg(&out.0)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("reaper-trace starts");
    // Wait for the header: programs are attached by then.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&out.0).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "recorder did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn stop(mut child: Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

fn main() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the bench attaches eBPF programs: run `cargo xtask bench` as root"
    );
    println!(
        "reaper-trace bench ({} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Warm up, then alternate untraced and traced rounds so drift hits both; report medians.
    fork_storm(2_000);
    let mut base_fork = Vec::new();
    let mut base_ping = Vec::new();
    let mut traced_fork = Vec::new();
    let mut traced_ping = Vec::new();
    let (mut storm_cpu, mut storm_secs, mut ping_cpu, mut rss) = (0.0, 0.0, 0.0, 0);
    let (mut events, mut lost) = (0usize, 0u64);
    let mut stats = Vec::new();
    let mut live_switch = 0.0;
    let stats_before = std::fs::read_to_string(BPF_STATS).unwrap_or_default();
    let _ = std::fs::write(BPF_STATS, "1");
    for _ in 0..ROUNDS {
        base_fork.push(fork_storm(FORKS));
        base_ping.push(ping_pong(PINGS));

        let out = TempPath::new("bench.jsonl");
        let rec = start_recorder(&out);
        let pid = rec.id();
        let cpu0 = cpu_seconds(pid);
        let t0 = Instant::now();
        traced_fork.push(fork_storm(FORKS));
        // Let the recorder drain what the storm produced before reading its CPU time.
        std::thread::sleep(Duration::from_millis(700));
        storm_secs += t0.elapsed().as_secs_f64();
        let cpu1 = cpu_seconds(pid);
        let before_ping = program_stats(pid);
        traced_ping.push(ping_pong(PINGS));
        let cpu2 = cpu_seconds(pid);
        stats = program_stats(pid);
        live_switch = switch_delta(&before_ping, &stats);
        storm_cpu += cpu1 - cpu0;
        ping_cpu += cpu2 - cpu1;
        rss = rss.max(peak_rss_kib(pid));
        stop(rec);

        let text = std::fs::read_to_string(&out.0).unwrap_or_default();
        events += text.lines().count().saturating_sub(1);
        lost += text
            .lines()
            .filter(|l| l.contains("\"type\":\"lost\""))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["count"].as_u64())
            .sum::<u64>();
    }
    // The floor: empty programs on the same hooks, under the same load.
    let (floor, floor_live_switch) = floor_stats();
    if !stats_before.trim().is_empty() {
        let _ = std::fs::write(BPF_STATS, stats_before.trim());
    }
    let (base_fork, base_ping) = (median(base_fork), median(base_ping));
    let (traced_fork, traced_ping) = (median(traced_fork), median(traced_ping));
    println!(
        "fork+exit+wait   untraced {base_fork:>9.0}/s   traced {traced_fork:>9.0}/s   ratio {:.3}",
        traced_fork / base_fork
    );
    println!(
        "pipe ping-pong   untraced {base_ping:>9.0}/s   traced {traced_ping:>9.0}/s   ratio {:.3}",
        traced_ping / base_ping
    );
    println!(
        "recorder CPU during the fork storms: {storm_cpu:.2} s over {storm_secs:.2} s ({:.0}% of one CPU) at {:.0} events/s",
        100.0 * storm_cpu / storm_secs,
        events as f64 / storm_secs
    );
    println!("recorder CPU during ping-pong (context switches only): {ping_cpu:.2} s");
    println!("recorder peak RSS: {rss} KiB; events written: {events}; lost: {lost}");
    println!(
        "kernel programs, last round (kernel.bpf_stats_enabled), beside the floor (an empty program on the same hook, same load):"
    );
    println!(
        "  {:28} {:>10} {:>10} {:>12} {:>10}",
        "program", "runs", "ns/run", "floor ns/run", "above floor"
    );
    let per_run = |runs: u64, ns: u64| ns as f64 / runs.max(1) as f64;
    for (name, runs, ns) in &stats {
        let ours = per_run(*runs, *ns);
        let floor = FLOORS
            .iter()
            .find(|(prog, _)| prog == name)
            .and_then(|(_, f)| floor.iter().find(|(n, _, _)| n == f))
            .map(|(_, r, n)| per_run(*r, *n));
        match floor {
            Some(f) => println!(
                "  {name:28} {runs:>10} {ours:>10.0} {f:>12.0} {:>10.0}",
                ours - f
            ),
            None => println!(
                "  {name:28} {runs:>10} {ours:>10.0} {:>12} {:>10}",
                "-", "-"
            ),
        }
    }
    // A hook with standby copies runs all of them on every call: what the hook costs is
    // their sum over the primary's calls.
    for hook in [
        "sched_process_fork",
        "sched_process_exec",
        "sched_process_exit",
        "sched_process_free",
    ] {
        let copies: Vec<&(String, u64, u64)> = stats
            .iter()
            .filter(|(n, _, _)| n == hook || n.starts_with(&format!("{hook}_standby")))
            .collect();
        let Some((_, calls, _)) = stats.iter().find(|(n, _, _)| n == hook) else {
            continue;
        };
        if copies.len() > 1 {
            let total: u64 = copies.iter().map(|(_, _, ns)| ns).sum();
            println!(
                "  {hook} with its {} standby copies: {:.0} ns per call",
                copies.len() - 1,
                per_run(*calls, total)
            );
        }
    }
    println!(
        "  sched_switch of live tasks only (ping-pong, no exits): {live_switch:.0} ns/run, floor {floor_live_switch:.0}, above floor {:.0}",
        live_switch - floor_live_switch
    );
    println!(
        "(medians of {ROUNDS} alternating rounds; a ratio near 1.0 means tracing costs little)"
    );
}
