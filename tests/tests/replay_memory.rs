//! Replaying a large recording in bounded memory: `doctor --replay` and `top --replay` on a
//! synthetic recording of about 500 MB (fork, exec, exit, zombie, reparent and reap events,
//! pids reused, some zombies held 30 s) stay under 100 MB of resident memory, `top` shows
//! its first screen at once, seeks forward and back, and plays to the end.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reaper_trace_tests::tmux::Tmux;
use reaper_trace_tests::{TempPath, reaper_trace, status_kib};

/// The recording's size.
const TARGET_BYTES: u64 = 500 << 20;
/// The most resident memory a replay may take, whatever the file's size.
const MAX_RSS_KIB: u64 = 100 << 10;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
/// Recording time between two rounds of events.
const ROUND_NS: u64 = MS;
/// Every this many rounds, a worker of the long-lived daemon becomes a zombie it reaps
/// [`HELD_NS`] later.
const HELD_EVERY: u64 = 100;
const HELD_NS: u64 = 30 * S;
const ROOT_PIDNS: u64 = 4_026_531_836;
/// Where the recording starts (`CLOCK_BOOTTIME` ns).
const STARTED: u64 = 1_000 * S;

fn quoted(s: &Path) -> String {
    format!("'{}'", s.display().to_string().replace('\'', r"'\''"))
}

/// What the recording holds, for checking what `doctor` counts.
struct Written {
    adoptions: u64,
    reaps: u64,
    /// Zombies not reaped by the end.
    zombies: u64,
    /// Recording time from the start to the last event.
    length_ns: u64,
}

/// Writes lines with plain formatting: fast enough for half a gigabyte.
struct Gen<W: Write> {
    out: W,
    bytes: u64,
}

impl<W: Write> Gen<W> {
    fn line(&mut self, args: std::fmt::Arguments) {
        let mut s = String::with_capacity(512);
        std::fmt::write(&mut s, args).unwrap();
        s.push('\n');
        self.bytes += s.len() as u64;
        self.out.write_all(s.as_bytes()).unwrap();
    }
}

/// A task as events name it (host pid namespace).
fn task(pid: u64, start: u64, comm: &str) -> String {
    format!(
        r#"{{"pid":{pid},"tid":{pid},"ns_pid":{pid},"ns_tid":{pid},"pidns":{ROOT_PIDNS},"start":{start},"comm":"{comm}"}}"#
    )
}

/// A recording as `reaper-trace record` writes it: init (1) and a subreaper (2) for the whole
/// run, a daemon (3) that holds zombies; then rounds of a short-lived shell forking a job
/// (exec, exit, zombie): the shell reaps it and exits, or exits first and the subreaper
/// adopts and reaps its zombie job. Shell and job pids cycle through 40,000 pids.
fn write_recording(path: &Path) -> Written {
    let file = File::create(path).unwrap();
    let mut g = Gen {
        out: BufWriter::with_capacity(1 << 22, file),
        bytes: 0,
    };
    g.line(format_args!(
        r#"{{"type":"header","schema":1,"tool":"reaper-trace 0.1.0","kernel":"6.12.0","host":"ci","boot_time_ns":1700000000000000000,"started_ts":{STARTED}}}"#
    ));
    let init = task(1, 0, "systemd");
    let sub = task(2, 10 * MS, "containerd-shim");
    let daemon = task(3, 20 * MS, "supervisord");
    g.line(format_args!(
        r#"{{"type":"subreaper","ts":{STARTED},"task":{sub},"enabled":true}}"#
    ));
    let ok = r#"{"code":0}"#;
    let mut w = Written {
        adoptions: 0,
        reaps: 0,
        zombies: 0,
        length_ns: 0,
    };
    // Zombies of the daemon, reaped HELD_NS after they became zombies: (reap time, task).
    let mut held: std::collections::VecDeque<(u64, String)> = Default::default();
    let mut round = 0u64;
    let mut last = STARTED;
    while g.bytes < TARGET_BYTES {
        let ts = STARTED + round * ROUND_NS;
        while held.front().is_some_and(|(at, _)| *at <= ts) {
            let (at, worker) = held.pop_front().unwrap();
            g.line(format_args!(
                r#"{{"type":"reap","ts":{at},"task":{worker},"reaper":{daemon},"how":"wait4","zombie_ns":{HELD_NS}}}"#
            ));
            w.reaps += 1;
        }
        let pid = 1_000 + 2 * (round % 20_000);
        let shell = task(pid, ts, "sh");
        let comm = format!("job-{}", round % 997);
        let job = task(pid + 1, ts + 50_000, &comm);
        let t = |us: u64| ts + us * 1_000;
        g.line(format_args!(
            r#"{{"type":"fork","ts":{},"parent":{init},"child":{shell},"thread":false}}"#,
            t(0)
        ));
        g.line(format_args!(
            r#"{{"type":"fork","ts":{},"parent":{shell},"child":{job},"thread":false}}"#,
            t(50)
        ));
        g.line(format_args!(
            r#"{{"type":"exec","ts":{},"task":{job},"filename":"/usr/local/bin/{comm}","args":["{comm}","--round","{round}","--verbose"]}}"#,
            t(80)
        ));
        g.line(format_args!(
            r#"{{"type":"exit","ts":{},"task":{job},"thread":false,"parent":{shell},"status":{ok},"group_dead":true,"age_ns":250000,"children":0}}"#,
            t(300)
        ));
        g.line(format_args!(
            r#"{{"type":"zombie","ts":{},"task":{job},"parent":{shell},"status":{ok}}}"#,
            t(310)
        ));
        if round.is_multiple_of(3) {
            // The shell exits first: the subreaper adopts its zombie job and reaps it.
            g.line(format_args!(
                r#"{{"type":"exit","ts":{},"task":{shell},"thread":false,"parent":{init},"status":{ok},"group_dead":true,"age_ns":320000,"children":1}}"#,
                t(320)
            ));
            g.line(format_args!(
                r#"{{"type":"reparent","ts":{},"orphan":{job},"father":{shell},"reaper":{sub},"kind":"subreaper","predicted":{{"tid":2,"pid":2,"kind":"subreaper"}},"verdict":"match","zombie":true}}"#,
                t(325)
            ));
            g.line(format_args!(
                r#"{{"type":"zombie","ts":{},"task":{shell},"parent":{init},"status":{ok}}}"#,
                t(330)
            ));
            g.line(format_args!(
                r#"{{"type":"reap","ts":{},"task":{shell},"reaper":{init},"how":"wait4","zombie_ns":20000}}"#,
                t(350)
            ));
            g.line(format_args!(
                r#"{{"type":"reap","ts":{},"task":{job},"reaper":{sub},"how":"waitid","zombie_ns":90000}}"#,
                t(400)
            ));
            w.adoptions += 1;
            last = t(400);
        } else {
            g.line(format_args!(
                r#"{{"type":"reap","ts":{},"task":{job},"reaper":{shell},"how":"wait4","zombie_ns":40000}}"#,
                t(350)
            ));
            g.line(format_args!(
                r#"{{"type":"exit","ts":{},"task":{shell},"thread":false,"parent":{init},"status":{ok},"group_dead":true,"age_ns":380000,"children":0}}"#,
                t(380)
            ));
            g.line(format_args!(
                r#"{{"type":"zombie","ts":{},"task":{shell},"parent":{init},"status":{ok}}}"#,
                t(390)
            ));
            g.line(format_args!(
                r#"{{"type":"reap","ts":{},"task":{shell},"reaper":{init},"how":"wait4","zombie_ns":20000}}"#,
                t(420)
            ));
            last = t(420);
        }
        w.reaps += 2;
        if round.is_multiple_of(HELD_EVERY) {
            // Its own pids: not reused while it is a zombie (30 s is 300 held ones).
            let worker = task(100_000 + (round / HELD_EVERY) % 1_000, t(500), "worker");
            g.line(format_args!(
                r#"{{"type":"fork","ts":{},"parent":{daemon},"child":{worker},"thread":false}}"#,
                t(500)
            ));
            g.line(format_args!(
                r#"{{"type":"exit","ts":{},"task":{worker},"thread":false,"parent":{daemon},"status":{{"signal":9}},"group_dead":true,"age_ns":100000,"children":0}}"#,
                t(600)
            ));
            g.line(format_args!(
                r#"{{"type":"zombie","ts":{},"task":{worker},"parent":{daemon},"status":{{"signal":9}}}}"#,
                t(610)
            ));
            held.push_back((t(610) + HELD_NS, worker));
            last = t(610);
        }
        round += 1;
    }
    g.out.flush().unwrap();
    w.zombies = held.len() as u64;
    w.length_ns = last - STARTED;
    w
}

/// A duration as the dashboard shows it (`850ms`, `9.9s`, `42s`, `2m05s`), in seconds.
fn seconds(text: &str) -> Option<f64> {
    if let Some((m, s)) = text.split_once('m')
        && let Some(s) = s.strip_suffix('s')
        && !s.is_empty()
    {
        return Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?);
    }
    for (unit, scale) in [("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9), ("s", 1.0)] {
        if let Some(n) = text.strip_suffix(unit) {
            return Some(n.parse::<f64>().ok()? * scale);
        }
    }
    None
}

/// The replay position and length in the header (`×1 12s/2m50s`), in seconds.
fn position(screen: &str) -> Option<(f64, f64)> {
    // The first line has ` REPLAY ×1 ` too.
    screen.split("×1 ").skip(1).find_map(|rest| {
        let (pos, total) = rest.split_whitespace().next()?.split_once('/')?;
        Some((seconds(pos)?, seconds(total)?))
    })
}

/// The largest resident set `pid` had (`VmHWM`), checked against the bound.
fn assert_bounded(pid: u32, what: &str) -> u64 {
    let hwm = status_kib(pid, "VmHWM").unwrap_or_else(|| panic!("{what}: the process is gone"));
    assert!(
        hwm < MAX_RSS_KIB,
        "{what}: peak resident memory {} MiB, over {} MiB",
        hwm >> 10,
        MAX_RSS_KIB >> 10
    );
    hwm
}

/// `doctor --replay`: its counts, its peak resident memory (from `wait4`'s rusage), its time.
fn doctor(path: &Path, written: &Written) {
    let started = Instant::now();
    #[allow(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, which gives its rusage"
    )]
    let mut child = Command::new(reaper_trace())
        .args(["doctor", "--replay"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("reaper-trace runs");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: waits for the child spawned above, which nothing else waits for.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let elapsed = started.elapsed();
    // Its output is a few lines: it fits in the pipes while it runs, read once it is gone.
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let max_rss_kib = usage.ru_maxrss as u64;
    eprintln!(
        "doctor --replay: {elapsed:.1?}, peak RSS {} MiB",
        max_rss_kib >> 10
    );
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "doctor failed ({status:#x}): {stdout}{stderr}"
    );
    let counts = format!(
        ": {} adoptions, {} reaps, {} zombies now)",
        written.adoptions, written.reaps, written.zombies
    );
    assert!(
        stdout.starts_with("no namespace init or subreaper holds a zombie longer than 5.0 s")
            && stdout.contains(&counts),
        "expected {counts:?} in {stdout}"
    );
    assert!(
        max_rss_kib < MAX_RSS_KIB,
        "doctor --replay: peak resident memory {} MiB, over {} MiB",
        max_rss_kib >> 10,
        MAX_RSS_KIB >> 10
    );
}

/// Waits until the header's replay position passes `done`; returns it.
fn wait_position(
    tmux: &Tmux,
    pid: u32,
    timeout: Duration,
    what: &str,
    done: impl Fn(f64) -> bool,
) -> f64 {
    let mut seen = None;
    let screen = tmux
        .wait_for(timeout, |s| {
            seen = position(s).map(|p| p.0);
            seen.is_some_and(&done)
        })
        .unwrap_or_else(|s| panic!("{what}: position {seen:?}:\n{s}"));
    assert_bounded(pid, what);
    position(&screen).unwrap().0
}

/// `top --replay --speed 1`: the first screen at once, seeking forward and back, quitting.
fn top_seeking(path: &Path, written: &Written) {
    let tmux = Tmux::start(
        200,
        40,
        &format!(
            "{} top --replay {} --speed 1; echo EXITED rc=$?; sleep 60",
            quoted(&reaper_trace()),
            quoted(path)
        ),
    );
    let started = Instant::now();
    let screen = tmux
        .wait_for(Duration::from_secs(5), |s| position(s).is_some())
        .unwrap_or_else(|s| panic!("no first screen within 5 s:\n{s}"));
    eprintln!("top --replay: first screen after {:.1?}", started.elapsed());
    let pid = tmux.program_pid();
    // Its length, from the file's last line, before it was read.
    let (_, total) = position(&screen).unwrap();
    let length = written.length_ns as f64 / S as f64;
    assert!(
        (total - length).abs() <= 1.0,
        "length {total} s, not {length} s"
    );

    let p0 = position(&tmux.capture()).unwrap().0;
    tmux.send_keys(&["]"]);
    let p1 = wait_position(&tmux, pid, Duration::from_secs(5), "]", |p| p >= p0 + 10.0);
    tmux.send_keys(&["}"]);
    let tenth = total / 10.0;
    let p2 = wait_position(&tmux, pid, Duration::from_secs(10), "}", |p| {
        p >= p1 + tenth - 1.0
    });
    // Back: rebuilt from the start of the file (a fifth of it) up to 10 s before.
    let t = Instant::now();
    tmux.send_keys(&["["]);
    let p3 = wait_position(&tmux, pid, Duration::from_secs(10), "[", |p| p < p2 - 5.0);
    assert!(p3 >= p2 - 11.0, "back to {p3} s from {p2} s");
    eprintln!(
        "top --replay: at {p0:.1} s, ] {p1:.1} s, }} {p2:.1} s, [ {p3:.1} s (back in {:.1?})",
        t.elapsed()
    );
    // It plays on from there.
    wait_position(&tmux, pid, Duration::from_secs(5), "playing on", |p| {
        p > p3 + 1.0
    });
    let hwm = assert_bounded(pid, "top --replay --speed 1");
    eprintln!("top --replay --speed 1: peak RSS {} MiB", hwm >> 10);
    tmux.quit_with_q();
}

/// `top --replay --speed 0`: plays everything, in bounded memory.
fn top_to_the_end(path: &Path, written: &Written) {
    let tmux = Tmux::start(
        200,
        40,
        &format!(
            "{} top --replay {} --speed 0; echo EXITED rc=$?; sleep 60",
            quoted(&reaper_trace()),
            quoted(path)
        ),
    );
    let started = Instant::now();
    tmux.wait_for(Duration::from_secs(5), |s| s.contains("REPLAY"))
        .unwrap_or_else(|s| panic!("no first screen within 5 s:\n{s}"));
    let pid = tmux.program_pid();
    let mut peak_rss = 0;
    let screen = tmux
        .wait_for(Duration::from_secs(60), |s| {
            peak_rss = peak_rss.max(status_kib(pid, "VmRSS").unwrap_or(0));
            s.contains(" END ")
        })
        .unwrap_or_else(|s| panic!("not at the end after 60 s:\n{s}"));
    let hwm = assert_bounded(pid, "top --replay --speed 0");
    eprintln!(
        "top --replay --speed 0: END after {:.1?}, peak RSS {} MiB (sampled {} MiB)",
        started.elapsed(),
        hwm >> 10,
        peak_rss >> 10
    );
    assert!(
        screen.contains(&format!("zombies {}", written.zombies)),
        "{screen}"
    );
    tmux.quit_with_q();
}

#[test]
fn a_large_recording_replays_in_bounded_memory() {
    let rec = TempPath::new("replay-memory.jsonl");
    let started = Instant::now();
    let written = write_recording(&rec.0);
    let size = std::fs::metadata(&rec.0).unwrap().len();
    eprintln!(
        "wrote {} MiB ({} s of recording) in {:.1?}",
        size >> 20,
        written.length_ns / S,
        started.elapsed()
    );
    doctor(&rec.0, &written);
    top_seeking(&rec.0, &written);
    top_to_the_end(&rec.0, &written);
    eprintln!("in all {:.1?}", started.elapsed());
}

/// A malformed line too far into the file to be checked before the first screen: what came
/// before it is replayed, the status line says what is wrong and what to do, and top exits
/// with that error (status 1) after `q`.
#[test]
fn a_malformed_line_met_while_playing_ends_the_replay_and_says_so() {
    let rec = TempPath::new("late-malformed.jsonl");
    let mut text = String::from(
        r#"{"type":"header","schema":1,"tool":"t","kernel":"k","host":"h","boot_time_ns":0,"started_ts":0}"#,
    );
    text.push('\n');
    // Past what is read ahead before the first screen (1 MiB).
    let events = 60_000;
    for i in 0..events {
        text.push_str(&format!(
            "{{\"type\":\"lost\",\"ts\":{},\"what\":\"fork\",\"count\":1}}\n",
            1_000 + i
        ));
    }
    text.push_str("{\"type\":\"reap\",\"ts\":\n");
    text.push_str("{\"type\":\"lost\",\"ts\":99999999,\"what\":\"fork\",\"count\":1}\n");
    std::fs::write(&rec.0, &text).unwrap();
    // Wide enough for the whole message on one line.
    let tmux = Tmux::start(
        280,
        30,
        &format!(
            "{} top --replay {} --speed 0; echo EXITED rc=$?; sleep 60",
            quoted(&reaper_trace()),
            quoted(&rec.0)
        ),
    );
    let line = events + 2;
    let said = format!(":{line}: malformed event: ");
    let screen = tmux
        .wait_for(Duration::from_secs(20), |s| s.contains(&said))
        .unwrap_or_else(|s| panic!("no error on the status line:\n{s}"));
    assert!(screen.contains("(q quits)"), "{screen}");
    // Everything before it was played.
    assert!(screen.contains("lost 60.0k"), "{screen}");
    tmux.send_keys(&["q"]);
    let screen = tmux
        .wait_for(Duration::from_secs(5), |s| s.contains("EXITED"))
        .unwrap_or_else(|s| panic!("{s}"));
    assert!(screen.contains("EXITED rc=1"), "{screen}");
    assert!(
        screen.contains(&format!("reaper-trace: error: {}{said}", rec.0.display()))
            && screen.contains("repair or delete that line"),
        "{screen}"
    );
}
