//! Load: system-wide `reaper-trace record` and `reaper-trace top` while stress-ng storms the
//! machine (`--zombie 2`: thousands of zombies held and reaped; `--fork 2`: fork, exit, wait
//! as fast as two workers can), about 20 s each.
//!
//! Under load the recorder must still: write whole lines at least once a second, stay under
//! 64 MiB of resident memory, stop within a second of Ctrl-C (sent while the storm's zombies
//! are outstanding: 16,384 in the zombie storm), report every zombie of the storm with
//! exactly one reap, and lose nothing at the default ring size during the fork storm. `top`
//! must quit within a second of `q` in the middle of both storms at once. The figures
//! (events/s, bytes/s, peak RSS, stop latency, lost counts) are printed:
//! `cargo test -p reaper-trace-tests --test load -- --nocapture` (as root; `REAPER_TRACE_BIN`
//! picks the binary, `target/debug/reaper-trace` by default). About 75 s.
//!
//! Other programs may be running (other tests, other tracers, builds): nothing here depends
//! on the machine being otherwise idle. The storm's tasks are told apart from everyone
//! else's by descent from the stress-ng process this test starts, so consistency is checked
//! only for them; lost counts are the machine's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reaper_trace::identity::start_tick;
use reaper_trace::procfs::stat_field;
use reaper_trace_tests::tmux::Tmux;
use reaper_trace_tests::{
    ChildGuard, TempPath, Trace, assert_consistent_for, descendants, reaper_trace, require_root,
    status_kib, task_identity, wait_for_header,
};

/// The tests of this file load the machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long each storm runs.
const STORM_SECONDS: u64 = 20;
/// How long `record` or `top` may take to load and attach (the verifier is slow on a loaded
/// machine).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
/// The recorder's resident memory must stay under this.
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// Ctrl-C (record) or `q` (top) must end the program within this.
const STOP_LIMIT: Duration = Duration::from_secs(1);
/// The file's size is polled this often.
const POLL: Duration = Duration::from_millis(250);

fn stress_ng_available() -> bool {
    Command::new("stress-ng")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts `stress-ng ARGS --timeout SECONDS`; its messages go to a pipe read at the end.
fn start_storm(args: &[&str], seconds: u64) -> ChildGuard {
    assert!(
        stress_ng_available(),
        "stress-ng is needed for the load tests: `cargo xtask setup` installs it"
    );
    let child = Command::new("stress-ng")
        .args(args)
        .args(["--timeout", &format!("{seconds}s"), "--metrics-brief"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stress-ng runs");
    ChildGuard::new(child)
}

/// stress-ng's `bogo ops/s (real time)` for its stressor, from `--metrics-brief`.
fn bogo_rate(stderr: &str, stressor: &str) -> Option<f64> {
    stderr.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let at = f.iter().position(|w| *w == stressor)?;
        // stressor, bogo ops, real, usr, sys, bogo ops/s (real), bogo ops/s (cpu)
        f.get(at + 5)?.parse().ok()
    })
}

/// The file's size over time, polled every [`POLL`].
struct Growth {
    /// (time since the storm began, size in bytes)
    samples: Vec<(Duration, u64)>,
}

impl Growth {
    /// Spans longer than a second (one poll of slack) in which the size did not change.
    fn stalls(&self) -> Vec<(Duration, Duration)> {
        let mut stalls = Vec::new();
        let mut last_growth = self.samples.first().map_or(Duration::ZERO, |s| s.0);
        let mut last_size = self.samples.first().map_or(0, |s| s.1);
        for &(t, size) in &self.samples {
            if size != last_size {
                if t - last_growth > Duration::from_secs(1) + POLL {
                    stalls.push((last_growth, t - last_growth));
                }
                last_growth = t;
                last_size = size;
            }
        }
        if let Some(&(t, _)) = self.samples.last()
            && t - last_growth > Duration::from_secs(1) + POLL
        {
            stalls.push((last_growth, t - last_growth));
        }
        stalls
    }

    fn bytes_per_second(&self) -> f64 {
        match (self.samples.first(), self.samples.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / (b.0 - a.0).as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// What one recording under a storm measured.
struct Measured {
    trace: Trace,
    growth: Growth,
    storm_time: Duration,
    peak_rss_kib: u64,
    stop_latency: Duration,
    file_bytes: u64,
    /// Events in the recording, all of them.
    file_events: u64,
    storm_stderr: String,
    /// The storm's processes (pid, start).
    storm_tasks: HashSet<(u64, u64)>,
    /// Zombies still there when the recording stopped, by (pid, start tick): no reap of
    /// theirs can be in it.
    unreaped: HashSet<(u64, u64)>,
    /// The recording, kept for a failure's diagnosis.
    out: TempPath,
}

/// `reaper-trace record` system-wide while `stress-ng ARGS` runs; after [`STORM_SECONDS`],
/// with the storm still on and its zombies outstanding, stops it with SIGINT. The storm is
/// frozen (SIGSTOP) for the stop, so that the zombies the recording cannot show a reap for
/// are exactly those still there after the recorder has exited. Checks what is checked
/// during the run (growth, the recorder alive) and returns the rest.
fn record_under_storm(name: &str, storm_args: &[&str]) -> Measured {
    let out = TempPath::new(&format!("load-{name}.jsonl"));
    let rec = Command::new(reaper_trace())
        .args(["record", "-q", "-o"])
        .arg(&out.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("reaper-trace runs");
    let mut rec = ChildGuard::new(rec);
    let attach = Instant::now();
    wait_for_header(&out.0, &mut rec, ATTACH_TIMEOUT);
    let attach = attach.elapsed();

    // Its own timeout is a backstop: the test stops it.
    let mut storm = start_storm(storm_args, STORM_SECONDS + 30);
    let storm_pid = storm.pid();
    let began = Instant::now();
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut growth = Growth {
        samples: vec![(Duration::ZERO, size(&out.0))],
    };
    let end = began + Duration::from_secs(STORM_SECONDS);
    let mut next = began + POLL;
    while next <= end {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        next += POLL;
        growth.samples.push((began.elapsed(), size(&out.0)));
        if let Some(status) = rec.try_wait() {
            panic!(
                "{name}: record exited during the storm ({status}): {}",
                rec.stderr()
            );
        }
        if let Some(status) = storm.try_wait() {
            panic!(
                "{name}: stress-ng exited during the storm ({status}): {}",
                storm.stderr()
            );
        }
    }
    let storm_time = began.elapsed();

    let peak_rss_kib = status_kib(rec.pid(), "VmHWM").expect("record is running");
    let frozen = Frozen::new(storm_pid);
    rec.signal(libc::SIGINT);
    let sent = Instant::now();
    let status = rec
        .wait_timeout(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{name}: record still running 30 s after SIGINT"));
    let stop_latency = sent.elapsed();
    // Still zombies now, with nothing of the storm running: the recorder saw them as zombies
    // when it stopped, and no reap of theirs can be in the recording.
    let unreaped = storm_zombies();
    drop(frozen);
    // SIGINT: stress-ng stops its workers, which reap their zombies.
    storm.signal(libc::SIGINT);
    let storm_status = storm
        .wait_timeout(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{name}: stress-ng still running 30 s after SIGINT"));
    let storm_stderr = storm.stderr();
    assert!(
        status.success(),
        "{name}: record after SIGINT: {status}: {}",
        rec.stderr()
    );
    assert!(
        storm_status.success(),
        "{name}: stress-ng failed ({storm_status}): {storm_stderr}"
    );
    let parsing = Instant::now();
    let text = std::fs::read_to_string(&out.0).expect("recording readable");
    assert!(text.ends_with('\n'), "{name}: the recording ends mid-line");
    let file_bytes = text.len() as u64;
    // Every line but the header is an event.
    let file_events = text.lines().count() as u64 - 1;
    // Only what the checks need is parsed. The storm's tasks are found from the lines as
    // text; then the zombies and reaps of the storm (all named `stress-ng*`) and the lost
    // counts are parsed.
    let storm_tasks = descendants(text.lines(), storm_pid);
    let trace = Trace::parse_lines_where(&text, |l| {
        let ty = |t: &str| l[9..].starts_with(t);
        ty("lost\"") || ((ty("zombie\"") || ty("reap\"")) && l.contains("\"comm\":\"stress-ng"))
    });
    drop(text);
    let parsing = parsing.elapsed();
    eprintln!(
        "{name}: attached in {attach:?}; storm {storm_time:.1?}; {} zombies outstanding when record was stopped; {} events of the storm read in {parsing:.1?}",
        unreaped.len(),
        trace.events.len()
    );
    Measured {
        trace,
        growth,
        storm_time,
        peak_rss_kib,
        stop_latency,
        file_bytes,
        file_events,
        storm_stderr,
        storm_tasks,
        unreaped,
        out,
    }
}

/// A process tree stopped with SIGSTOP, continued when dropped.
struct Frozen(Vec<u32>);

impl Frozen {
    /// Stops `root` and then its descendants (top down, so that a stopped parent forks no
    /// new child; a child forked meanwhile is short-lived: it exits into a zombie).
    fn new(root: u32) -> Frozen {
        let mut stopped = Vec::new();
        let mut todo = vec![root];
        while let Some(pid) = todo.pop() {
            // SAFETY: signalling a process of the storm this test started (stress-ng reaps
            // its workers only once continued, so their pids stay theirs).
            unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
            // A signal is delivered, not obeyed, when kill returns: until it has stopped, the
            // process may still fork, and reap (after the recorder was told to stop, so
            // unrecorded, and then no longer a zombie either).
            wait_stopped(pid);
            stopped.push(pid);
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten();
            for task in tasks {
                let children =
                    std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                todo.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
        Frozen(stopped)
    }
}

/// Waits until `pid` is stopped (or gone), 5 s at most.
fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return;
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if matches!(state, Some("T" | "t" | "Z" | "X")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGCONT) };
        }
    }
}

/// Zombies named `stress-ng*` in `/proc`, as (pid, start time in clock ticks).
fn storm_zombies() -> HashSet<(u64, u64)> {
    let mut found = HashSet::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if comm.starts_with("stress-ng")
            && fields.get(stat_field::STATE) == Some(&"Z")
            && let Some(start) = fields
                .get(stat_field::STARTTIME)
                .and_then(|v| v.parse().ok())
        {
            found.insert((pid, start));
        }
    }
    found
}

/// Before `assert_consistent_for` fails with the first 200 events of a large recording: the
/// storm's zombies that have no reap, each with every line of the recording that names its
/// pid, and a copy of the recording kept in /tmp.
fn explain_unreaped(name: &str, m: &Measured, storm: &HashSet<(u64, u64)>) {
    let mut open = HashMap::new();
    for e in m.trace.of_type("zombie").chain(m.trace.of_type("reap")) {
        let id = task_identity(&e["task"]);
        if !storm.contains(&id) {
            continue;
        }
        if e["type"] == "zombie" {
            open.entry(id).or_insert(e["ts"].as_u64().unwrap_or(0));
        }
    }
    for e in m.trace.of_type("reap") {
        open.remove(&task_identity(&e["task"]));
    }
    if open.is_empty() {
        return;
    }
    let kept = std::env::temp_dir().join(format!("reaper-trace-load-{name}-failed.jsonl"));
    let _ = std::fs::copy(&m.out.0, &kept);
    let text = std::fs::read_to_string(&m.out.0).unwrap_or_default();
    let mut report = format!(
        "{name}: {} zombies of the storm never reaped in the recording (kept as {}):\n",
        open.len(),
        kept.display()
    );
    let mut ids: Vec<_> = open.into_iter().collect();
    ids.sort_by_key(|&(_, ts)| ts);
    for ((pid, start), ts) in ids.iter().take(5) {
        report += &format!("- pid {pid} start {start}, zombie at {ts}:\n");
        let needle = format!("\"pid\":{pid},");
        for line in text.lines().filter(|l| l.contains(&needle)).take(40) {
            report += &format!("    {line}\n");
        }
    }
    panic!("{report}");
}

/// The assertions every storm's recording must pass; prints the figures. Returns the lost
/// counts by kind.
fn check_recording(name: &str, m: &Measured) -> Vec<(String, u64)> {
    let trace = &m.trace;
    let mut storm = m.storm_tasks.clone();
    // Still zombies when the recording stopped: no reap to expect.
    storm.retain(|&(pid, start)| !m.unreaped.contains(&(pid, start_tick(start))));
    let of_storm = |e: &serde_json::Value, field: &str| storm.contains(&task_identity(&e[field]));
    // Its processes, the stress-ng process itself aside.
    let forks = m.storm_tasks.len().saturating_sub(1);
    let zombies = trace
        .of_type("zombie")
        .filter(|e| of_storm(e, "task"))
        .count();
    let mut how = BTreeMap::<String, usize>::new();
    for e in trace.of_type("reap").filter(|e| of_storm(e, "task")) {
        *how.entry(e["how"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let lost: Vec<(String, u64)> = {
        let mut by = BTreeMap::<String, u64>::new();
        for e in trace.of_type("lost") {
            *by.entry(e["what"].as_str().unwrap_or("?").to_string())
                .or_default() += e["count"].as_u64().unwrap_or(0);
        }
        by.into_iter().collect()
    };
    let secs = m.storm_time.as_secs_f64();
    eprintln!(
        "{name}: {forks} processes of the storm recorded ({:.0}/s; stress-ng says {:?} bogo ops/s), {} zombies checked, reaps by how {:?}",
        forks as f64 / secs,
        bogo_rate(&m.storm_stderr, name),
        zombies,
        how,
    );
    eprintln!(
        "{name}: {} events recorded ({:.0}/s), file grew {:.2} MB/s ({} bytes), \
         peak RSS {} KiB, stopped {:?} after SIGINT, lost {:?}, stalls {:?}",
        m.file_events,
        m.file_events as f64 / secs,
        m.growth.bytes_per_second() / 1e6,
        m.file_bytes,
        m.peak_rss_kib,
        m.stop_latency,
        lost,
        m.growth.stalls(),
    );

    assert!(
        forks > 100,
        "{name}: the storm's forks were not recorded ({forks})"
    );
    // Whole lines at least once a second: one missed second is allowed at the start (stress-ng
    // starting its workers, the recorder's first flush timer).
    let stalls = m.growth.stalls();
    let late: Vec<_> = stalls
        .iter()
        .filter(|(at, _)| *at > Duration::from_secs(1))
        .collect();
    assert!(
        stalls.len() <= 1 && late.is_empty(),
        "{name}: the recording did not grow for more than a second: {stalls:?} (at, for)"
    );
    assert!(
        m.peak_rss_kib < RSS_LIMIT_KIB,
        "{name}: record's peak RSS {} KiB is over {RSS_LIMIT_KIB} KiB",
        m.peak_rss_kib
    );
    assert!(
        m.stop_latency < STOP_LIMIT,
        "{name}: record took {:?} to stop after SIGINT",
        m.stop_latency
    );
    // Every zombie of the storm has exactly one reap (or vanished), none reaped twice.
    explain_unreaped(name, m, &storm);
    let checked = assert_consistent_for(trace, |task| storm.contains(&task_identity(task)));
    assert!(checked > 0, "{name}: no zombie of the storm was recorded");
    lost
}

/// Two workers forking children that exit at once, each holding up to 2,000 zombies and then
/// reaping its oldest before each fork. The bound makes the reaps begin after 4,000 forks
/// whatever the machine's speed: with stress-ng's own (8,192 each), a machine slower than 820
/// forks a second reaps nothing within the storm's 20 s, and there is no reap to check.
const ZOMBIE_STORM: &[&str] = &["--zombie", "2", "--zombie-max", "2000"];

#[test]
fn record_keeps_up_with_a_zombie_storm() {
    require_root();
    let _g = serial();
    let m = record_under_storm("zombie", ZOMBIE_STORM);
    check_recording("zombie", &m);
}

#[test]
fn record_keeps_up_with_a_fork_storm_and_loses_nothing() {
    require_root();
    let _g = serial();
    let m = record_under_storm("fork", &["--fork", "2"]);
    assert_none_lost_in_the_ring("fork storm", &check_recording("fork", &m));
}

/// No record failed to fit in the ring buffer. (`children`, adoptions past those followed
/// (more than 32,768 children in flight), is not about the ring: other programs on the
/// machine may cause it.)
fn assert_none_lost_in_the_ring(name: &str, lost: &[(String, u64)]) {
    let ring: Vec<_> = lost.iter().filter(|(what, _)| what != "children").collect();
    assert!(
        ring.is_empty(),
        "{name}: records lost at the default ring size: {ring:?}"
    );
}

/// The recorder competes for the CPUs with six busy loops (three per CPU here) while the
/// zombie storm runs: it reads the ring less often, and the default ring must still hold what
/// the storm writes meanwhile.
#[test]
fn record_keeps_up_with_a_zombie_storm_beside_six_cpu_hogs_and_loses_nothing() {
    require_root();
    let _g = serial();
    let storm: Vec<&str> = ZOMBIE_STORM.iter().copied().chain(["--cpu", "6"]).collect();
    let m = record_under_storm("zombie", &storm);
    assert_none_lost_in_the_ring(
        "zombie storm beside six CPU hogs",
        &check_recording("zombie", &m),
    );
}

/// `N ev/s` and `lost N` from the dashboard's header line.
fn header_figures(screen: &str) -> (Option<String>, Option<String>) {
    let words: Vec<&str> = screen
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let after = |w: &str| {
        let i = words.iter().position(|x| *x == w)?;
        words.get(i + 1).map(|s| s.to_string())
    };
    let before = |w: &str| {
        let i = words.iter().position(|x| *x == w)?;
        i.checked_sub(1).map(|j| words[j].to_string())
    };
    (before("ev/s"), after("lost"))
}

/// The process is gone, or a zombie (it has exited; its reaper is tmux).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[test]
fn top_quits_at_once_under_a_storm() {
    require_root();
    let _g = serial();
    let bin = reaper_trace();
    // `exec`: the pane's process is the dashboard itself.
    let tmux = Tmux::start(100, 30, &format!("exec '{}' top", bin.display()));
    tmux.wait_for(ATTACH_TIMEOUT, |s| s.contains("LIVE"))
        .unwrap_or_else(|s| panic!("the dashboard did not start:\n{s}"));
    let top: u32 = tmux.display("#{pane_pid}").parse().expect("pane pid");

    // Both storms at once, for less time: the dashboard redraws while it drains.
    let mut storm = start_storm(
        &["--fork", "2", "--zombie", "2", "--zombie-max", "4000"],
        STORM_SECONDS,
    );
    std::thread::sleep(Duration::from_secs(10));
    let screen = tmux.capture();
    let (rate, lost) = header_figures(&screen);
    let peak_rss_kib = status_kib(top, "VmHWM").expect("top is running");
    assert!(
        screen.contains("LIVE"),
        "the dashboard is not live under the storm:\n{screen}"
    );

    tmux.send_keys(&["q"]);
    let sent = Instant::now();
    // The terminal is given back (main screen) first; then the programs are detached and
    // the process exits.
    let mut restored = None;
    while !exited(top) && sent.elapsed() < Duration::from_secs(10) {
        if restored.is_none() && tmux.display("#{alternate_on}") != "1" {
            restored = Some(sent.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let quit_latency = sent.elapsed();
    // The storm is not needed any more: SIGINT makes stress-ng stop and reap its workers.
    storm.signal(libc::SIGINT);
    let _ = storm.wait_timeout(Duration::from_secs(30));
    eprintln!(
        "top: under the storm it showed {} ev/s, lost {}; peak RSS {peak_rss_kib} KiB; after q: terminal back in {:?}, exited in {quit_latency:?}",
        rate.as_deref().unwrap_or("?"),
        lost.as_deref().unwrap_or("?"),
        restored.unwrap_or(quit_latency),
    );
    assert!(
        quit_latency < STOP_LIMIT,
        "top took {quit_latency:?} to quit after q (under a storm):\n{}",
        tmux.capture()
    );
    assert!(
        peak_rss_kib < RSS_LIMIT_KIB,
        "top's peak RSS {peak_rss_kib} KiB is over {RSS_LIMIT_KIB} KiB"
    );
}
