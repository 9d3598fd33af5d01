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
const EXECS: usize = 1_000;
const PINGS: usize = 200_000;
/// Throughput rounds, untraced and traced alternated.
const ROUNDS: usize = 9;
/// Program-cost rounds, reaper-trace and bpftrace alternated.
const COST_ROUNDS: usize = 3;

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

/// Run statistics: (program name, runs, nanoseconds).
type Stats = Vec<(String, u64, u64)>;

/// The hooks compared: the tracer's program on each, the floor program (`reaper-trace floor`:
/// an empty program on the same hook), bpftrace's tracepoint, and the target ratio to
/// bpftrace's `count()` (issue 20: the cheapest program that does anything useful there).
struct HookCost {
    program: &'static str,
    floor: &'static str,
    bpftrace: &'static str,
    target: f64,
}

const HOOKS: &[HookCost] = &[
    HookCost {
        program: "sched_process_fork",
        floor: "floor_fork",
        bpftrace: "tracepoint:sched:sched_process_fork",
        target: 2.0,
    },
    HookCost {
        program: "sched_process_exec",
        floor: "floor_exec",
        bpftrace: "tracepoint:sched:sched_process_exec",
        target: 2.0,
    },
    HookCost {
        program: "sched_process_exit",
        floor: "floor_exit",
        bpftrace: "tracepoint:sched:sched_process_exit",
        target: 3.0,
    },
    HookCost {
        program: "sched_process_free",
        floor: "floor_free",
        bpftrace: "tracepoint:sched:sched_process_free",
        target: 2.0,
    },
    HookCost {
        program: "sched_switch",
        floor: "floor_switch",
        bpftrace: "tracepoint:sched:sched_switch",
        target: 1.15,
    },
    HookCost {
        program: "sys_exit_wait4",
        floor: "floor_exit_wait4",
        bpftrace: "tracepoint:syscalls:sys_exit_wait4",
        target: f64::NAN,
    },
    // The syscalls' standbys, where attached (7.x): every system call runs them.
    HookCost {
        program: "sys_exit_standby",
        floor: "",
        bpftrace: "tracepoint:raw_syscalls:sys_exit",
        target: f64::NAN,
    },
];

/// ns per call of a hook: its program's run time plus its standby copies' (which run on every
/// call where attached), over the program's calls.
fn per_call(stats: &Stats, program: &str) -> Option<f64> {
    let (_, calls, _) = stats.iter().find(|(n, _, _)| n == program)?;
    // `sched_process_fork_standby`, `sched_process_fork_standby2`; `sys_exit_standby2`, ...
    let copy = |n: &str| {
        n.strip_prefix(program)
            .is_some_and(|rest| rest.starts_with("_standby") || program.ends_with("_standby"))
    };
    let ns: u64 = stats
        .iter()
        .filter(|(n, _, _)| n == program || copy(n))
        .map(|(_, _, ns)| ns)
        .sum();
    Some(ns as f64 / (*calls).max(1) as f64)
}

/// Execs `n` short programs (`true`): the exec hook's load.
fn exec_storm(n: usize) {
    for _ in 0..n {
        let _ = Command::new("true").status();
    }
}

/// The load each hook is measured under: a fork storm, an exec storm, and pinned ping-pong
/// (context switches of live tasks).
fn hook_load() {
    fork_storm(FORKS);
    exec_storm(EXECS);
    ping_pong(PINGS);
}

/// bpftrace with one `count()` on `probe`, attached; stopped (and its programs detached)
/// when dropped.
struct Bpftrace(Child);

impl Bpftrace {
    fn attach(probe: &str) -> Self {
        let mut child = Command::new("bpftrace")
            .arg("-e")
            .arg(format!("{probe} {{ @ = count(); }}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bpftrace starts (`cargo xtask bench` installs it)");
        // "Attaching 1 probe..." once its program is attached.
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("piped")),
            &mut line,
        );
        assert!(line.starts_with("Attaching"), "bpftrace said {line:?}");
        Bpftrace(child)
    }

    /// Its program's runs and run time so far.
    fn stats(&self) -> (u64, u64) {
        program_stats(self.0.id())
            .iter()
            .fold((0, 0), |(r, t), (_, runs, ns)| (r + runs, t + ns))
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        // Killed, not interrupted: its counts were read already, and bpftrace 0.17 missed a
        // SIGINT now and then (and ran on). Its programs detach as its descriptors close.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ns per run of each hook's bpftrace `count()` under [`hook_load`], in the bench's order.
fn bpftrace_round() -> Vec<f64> {
    let attached: Vec<Bpftrace> = HOOKS.iter().map(|h| Bpftrace::attach(h.bpftrace)).collect();
    let before: Vec<(u64, u64)> = attached.iter().map(Bpftrace::stats).collect();
    hook_load();
    attached
        .iter()
        .zip(before)
        .map(|(b, (r0, t0))| {
            let (r1, t1) = b.stats();
            (t1 - t0) as f64 / (r1 - r0).max(1) as f64
        })
        .collect()
}

/// The tracer's ns per call of each hook under [`hook_load`], recording to a file.
fn reaper_trace_round(bin: &std::path::Path) -> Vec<Option<f64>> {
    let out = TempPath::new("bench-cost.jsonl");
    let rec = start_recorder(bin, &out);
    let before = program_stats(rec.id());
    hook_load();
    let after = program_stats(rec.id());
    stop(rec);
    let delta: Stats = after
        .iter()
        .map(|(n, r, t)| {
            let (r0, t0) = before
                .iter()
                .find(|(b, _, _)| b == n)
                .map(|(_, r, t)| (*r, *t))
                .unwrap_or((0, 0));
            (n.clone(), r - r0, t - t0)
        })
        .collect();
    HOOKS.iter().map(|h| per_call(&delta, h.program)).collect()
}

/// The floor programs' ns per run under [`hook_load`].
fn floor_round() -> Vec<Option<f64>> {
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
    let before = program_stats(floor.id());
    hook_load();
    let after = program_stats(floor.id());
    stop(floor);
    HOOKS
        .iter()
        .map(|h| {
            let find = |s: &Stats| {
                s.iter()
                    .find(|(n, _, _)| n == h.floor)
                    .map(|(_, r, t)| (*r, *t))
            };
            let ((r0, t0), (r1, t1)) = (find(&before)?, find(&after)?);
            Some((t1 - t0) as f64 / (r1 - r0).max(1) as f64)
        })
        .collect()
}

/// The other build's figure for hook `i` and its ratio to `count()`, round by round.
fn compare(others: &[Vec<Option<f64>>], counts: &[Vec<f64>], i: usize) -> String {
    let mine: Vec<f64> = others.iter().filter_map(|r| r[i]).collect();
    if mine.is_empty() {
        return String::new();
    }
    let ratios: Vec<f64> = others
        .iter()
        .zip(counts)
        .filter_map(|(o, c)| Some(o[i]? / c[i]))
        .collect();
    format!(
        "   {:.0} ({:.0}-{:.0}), {:.2}",
        median(mine.clone()),
        min_max(&mine).0,
        min_max(&mine).1,
        median(ratios)
    )
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

/// Arguments after `--` on the bench's command line, given to `record` (e.g. `--ring-mib 1`).
fn record_args() -> Vec<String> {
    std::env::args().skip_while(|a| a != "--").skip(1).collect()
}

fn start_recorder(bin: &std::path::Path, out: &TempPath) -> Child {
    let child = Command::new(bin)
        .args(["record", "-q", "-o"])
        .arg(&out.0)
        .args(record_args())
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
        "reaper-trace bench ({} CPUs, Linux {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    let stats_before = std::fs::read_to_string(BPF_STATS).unwrap_or_default();
    // Warm up.
    fork_storm(2_000);
    // `--costs`: only the programs' costs (for comparing builds of the programs quickly).
    if !std::env::args().any(|a| a == "--costs") {
        // Without the kernel's statistics, as users run it: they cost every program run two
        // clock reads.
        let _ = std::fs::write(BPF_STATS, "0");
        throughput();
    }
    let _ = std::fs::write(BPF_STATS, "1");
    program_costs();
    if !stats_before.trim().is_empty() {
        let _ = std::fs::write(BPF_STATS, stats_before.trim());
    }
}

/// Untraced and traced rounds alternated, so drift hits both; the ratio of each pair, and
/// the recorder's own CPU during the traced fork storms.
fn throughput() {
    let (mut fork_ratios, mut ping_ratios) = (Vec::new(), Vec::new());
    let (mut base_fork, mut traced_fork) = (Vec::new(), Vec::new());
    let (mut storm_cpu, mut storm_secs, mut ping_cpu, mut rss) = (0.0, 0.0, 0.0, 0);
    let (mut events, mut lost) = (0usize, 0u64);
    for round in 0..ROUNDS {
        // Untraced first in even rounds, last in odd ones: a machine drifting faster or
        // slower over the run favours neither side.
        let untraced = || (fork_storm(FORKS), ping_pong(PINGS));
        let before = (round % 2 == 0).then(untraced);

        let out = TempPath::new("bench.jsonl");
        let rec = start_recorder(&reaper_trace(), &out);
        let pid = rec.id();
        // Past its start-up (the first look at /proc's tasks), before the storm.
        std::thread::sleep(Duration::from_millis(300));
        let cpu0 = cpu_seconds(pid);
        let t0 = Instant::now();
        let fork = fork_storm(FORKS);
        let storm = t0.elapsed().as_secs_f64();
        // Let the recorder drain what the storm produced before reading its CPU time: the
        // CPU it spent on the storm's records, over the storm's own duration.
        std::thread::sleep(Duration::from_millis(700));
        let cpu1 = cpu_seconds(pid);
        let ping = ping_pong(PINGS);
        let cpu2 = cpu_seconds(pid);
        storm_secs += storm;
        storm_cpu += cpu1 - cpu0;
        ping_cpu += cpu2 - cpu1;
        rss = rss.max(peak_rss_kib(pid));
        stop(rec);
        let (untraced_fork, untraced_ping) = before.unwrap_or_else(untraced);

        fork_ratios.push(fork / untraced_fork);
        ping_ratios.push(ping / untraced_ping);
        base_fork.push(untraced_fork);
        traced_fork.push(fork);
        let text = std::fs::read_to_string(&out.0).unwrap_or_default();
        events += text.lines().count().saturating_sub(1);
        lost += text
            .lines()
            .filter(|l| l.contains("\"type\":\"lost\""))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["count"].as_u64())
            .sum::<u64>();
    }
    println!("throughput, traced over untraced, {ROUNDS} alternated rounds: median (min-max)");
    let show = |what: &str, ratios: &[f64], target: &str| {
        let (lo, hi) = min_max(ratios);
        println!(
            "  {what:44} {:.3} ({lo:.3}-{hi:.3}){target}",
            median(ratios.to_vec())
        );
    };
    show(
        &format!(
            "fork+exit+wait storm ({:.0}/s untraced)",
            median(base_fork.clone())
        ),
        &fork_ratios,
        "   target >= 0.97",
    );
    show("pipe ping-pong pinned to one CPU", &ping_ratios, "");
    println!(
        "recorder CPU during the fork storms (recording to a file): {:.1}% of one CPU ({storm_cpu:.2} s over {storm_secs:.2} s of storm, {:.0} events/s)   target <= 3%",
        100.0 * storm_cpu / storm_secs,
        events as f64 / storm_secs
    );
    println!("recorder CPU during ping-pong (context switches only): {ping_cpu:.2} s");
    println!("recorder peak RSS: {rss} KiB; events written: {events}; lost: {lost}");
}

/// Each hook's program beside bpftrace's `count()` on the same tracepoint and the empty
/// floor program, under the same load, in alternated rounds.
fn program_costs() {
    // For work on the programs: `REAPER_TRACE_COMPARE=BIN[:BIN...]` measures other builds'
    // programs in the same rounds (one run on this machine compares; two runs do not).
    let other: Vec<std::path::PathBuf> = std::env::var_os("REAPER_TRACE_COMPARE")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let (mut ours, mut counts) = (Vec::new(), Vec::new());
    let mut others: Vec<Vec<Vec<Option<f64>>>> = vec![Vec::new(); other.len()];
    for _ in 0..COST_ROUNDS {
        ours.push(reaper_trace_round(&reaper_trace()));
        counts.push(bpftrace_round());
        for (bin, rounds) in other.iter().zip(&mut others) {
            rounds.push(reaper_trace_round(bin));
        }
    }
    let floor = floor_round();
    println!(
        "kernel programs, ns per call (kernel.bpf_stats_enabled; standby copies included where attached), {COST_ROUNDS} alternated rounds: median (min-max)"
    );
    for (i, bin) in other.iter().enumerate() {
        println!("  (other build {}: {})", i + 1, bin.display());
    }
    println!(
        "  {:20} {:>20} {:>20} {:>6} {:>18} {:>7}{}",
        "hook",
        "reaper-trace",
        "bpftrace count()",
        "floor",
        "ratio to count()",
        "target",
        if other.is_empty() {
            String::new()
        } else {
            (1..=other.len())
                .map(|i| format!("   other build {i}, ratio"))
                .collect()
        }
    );
    for (i, hook) in HOOKS.iter().enumerate() {
        let mine: Vec<f64> = ours.iter().filter_map(|r| r[i]).collect();
        if mine.is_empty() {
            continue;
        }
        let theirs: Vec<f64> = counts.iter().map(|r| r[i]).collect();
        let ratios: Vec<f64> = ours
            .iter()
            .zip(&counts)
            .filter_map(|(o, c)| Some(o[i]? / c[i]))
            .collect();
        let range = |v: &[f64]| {
            let (lo, hi) = min_max(v);
            format!("{:.0} ({lo:.0}-{hi:.0})", median(v.to_vec()))
        };
        let (lo, hi) = min_max(&ratios);
        println!(
            "  {:20} {:>20} {:>20} {:>6} {:>18} {:>7}{}",
            hook.program,
            range(&mine),
            range(&theirs),
            floor[i].map_or("-".into(), |f| format!("{f:.0}")),
            format!("{:.2} ({lo:.2}-{hi:.2})", median(ratios.clone())),
            if hook.target.is_nan() {
                "-".to_string()
            } else {
                format!("<= {}", hook.target)
            },
            others
                .iter()
                .map(|o| compare(o, &counts, i))
                .collect::<String>()
        );
    }
}
