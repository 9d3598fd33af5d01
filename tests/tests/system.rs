//! End-to-end tests of system-wide recordings and of the machine-wide effects of `record`:
//! a fork burst (nothing silently dropped), stopping with SIGTERM or Ctrl-C, user errors,
//! programs detached on exit, and mounting tracefs.
//!
//! These look at the whole machine (system-wide recordings, loaded programs, the tracefs
//! mount), so they are kept apart from the tests that trace one tree (`tree.rs`, another test
//! binary: cargo runs test binaries one after the other). Among themselves they share
//! `GLOBAL`: the tracefs test, which unmounts tracefs under everyone's feet, takes it
//! exclusively; the others can overlap, since a concurrent recording disturbs neither their
//! assertions nor the program check (`assert_programs_released` ignores programs a live
//! process holds).

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use reaper_trace_tests::{
    ChildGuard, TempPath, Trace, assert_consistent, assert_consistent_for,
    assert_programs_released, assert_user_error, our_programs, reaper_trace, require_root,
    task_identity, wait_for_header,
};
use serde_json::Value;

static GLOBAL: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    GLOBAL.write().unwrap_or_else(|e| e.into_inner())
}

/// How long `record` may take to load and attach its programs (the verifier is slow on the
/// exit program, more so when several recordings start at once).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `reaper-trace record -q -o PATH ARGS` in the background.
fn start_record(path: &Path, args: &[&str]) -> ChildGuard {
    let child = Command::new(reaper_trace())
        .args(["record", "-q", "-o"])
        .arg(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("reaper-trace runs");
    ChildGuard::new(child)
}

/// Reads a recording, checking it is whole JSON Lines (every line, the last one included,
/// ends with a newline and parses).
fn read_whole(path: &Path) -> Trace {
    let text = std::fs::read_to_string(path).expect("recording readable");
    assert!(
        text.ends_with('\n'),
        "the recording ends in the middle of a line"
    );
    Trace::read(path)
}

/// Forks a process that forks `n` children which exit at once, then reaps them all and exits
/// (0 when every fork succeeded). Returns its pid; the caller waits for it.
fn fork_burst(n: usize) -> libc::pid_t {
    // SAFETY: the child only calls async-signal-safe functions (fork, waitpid, _exit) before
    // it exits, as required after fork in a multi-threaded process.
    unsafe {
        match libc::fork() {
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            0 => {
                let mut code = 0;
                for _ in 0..n {
                    match libc::fork() {
                        -1 => {
                            code = 1;
                            break;
                        }
                        0 => libc::_exit(0),
                        _ => {}
                    }
                }
                while libc::waitpid(-1, std::ptr::null_mut(), 0) > 0 {}
                libc::_exit(code)
            }
            pid => pid,
        }
    }
}

fn wait_pid(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
    status
}

/// `/proc/PID/stat`'s start time (clock ticks since boot), while `pid` is in `/proc`.
fn start_ticks(pid: libc::pid_t) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    reaper_trace::procfs::parse_stat(&stat).map(|(_, _, _, start)| start)
}

/// A recorded task's start time in clock ticks (the recording's are nanoseconds).
fn start_tick(task: &Value) -> Option<u64> {
    Some(reaper_trace::identity::start_tick(task["start"].as_u64()?))
}

/// Records the whole machine while `parents` processes at once each fork `BURST`
/// short-lived children, stopping (SIGINT) once they are done however long that took on a
/// loaded machine, and checks that what was not recorded was counted as lost.
fn burst_recording(ring_mib: Option<&str>, parents: usize) {
    const BURST: usize = 3000;
    let out = TempPath::new("burst.jsonl");
    let mut args = vec![];
    if let Some(mib) = ring_mib {
        args.extend(["--ring-mib", mib]);
    }
    let mut rec = start_record(&out.0, &args);
    wait_for_header(&out.0, &mut rec, ATTACH_TIMEOUT);

    let started = Instant::now();
    let pids: Vec<libc::pid_t> = (0..parents).map(|_| fork_burst(BURST)).collect();
    // Each burst's parent as the kernel knows it (pid, start tick), read while it is ours
    // and not reaped: pids are soon reused on a busy machine (pid_max is often 32768).
    let parents_start: Vec<u64> = pids
        .iter()
        .map(|&pid| start_ticks(pid).expect("a burst's parent is in /proc until reaped"))
        .collect();
    for &pid in &pids {
        let status = wait_pid(pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "a burst could not fork {BURST} children (status {status:#x})"
        );
    }
    let burst_time = started.elapsed();

    // Past the bursts' last free records (an RCU grace period after the reaps), then stop:
    // what the recorder could not read by then must be counted as lost, not dropped.
    std::thread::sleep(Duration::from_millis(500));
    rec.signal(libc::SIGINT);
    let status = rec
        .wait_timeout(Duration::from_secs(60))
        .expect("record stops after SIGINT");
    assert!(
        status.success(),
        "record failed: {status}: {}",
        rec.stderr()
    );
    let trace = read_whole(&out.0);

    // The bursts' tasks by identity (pid, start): their pids, reused by other processes
    // while the recording runs, name other tasks too.
    let mut all: HashSet<(u64, u64)> = HashSet::new();
    let mut missing = [0u64; 3];
    for (&pid, &ticks) in pids.iter().zip(&parents_start) {
        let is_parent = |p: &Value| p["pid"] == pid as u32 && start_tick(p) == Some(ticks);
        // The burst's children, however they show up (a fork record may be lost while the
        // child's exit is not).
        let children_in = |ty: &str, field: &str, link: &str| -> HashSet<(u64, u64)> {
            trace
                .of_type(ty)
                .filter(|e| is_parent(&e[link]) && !is_parent(&e[field]))
                .map(|e| task_identity(&e[field]))
                .collect()
        };
        let seen = [
            children_in("fork", "child", "parent"),
            children_in("exit", "task", "parent"),
            children_in("zombie", "task", "parent"),
        ];
        assert!(
            !seen[0].is_empty() && !seen[1].is_empty(),
            "nothing of burst {pid} was recorded"
        );
        for (m, s) in missing.iter_mut().zip(&seen) {
            assert!(
                s.len() <= BURST,
                "more children than the burst forked: {}",
                s.len()
            );
            *m += (BURST - s.len()) as u64;
        }
        all.extend(seen.into_iter().flatten());
        all.extend(
            trace
                .events
                .iter()
                .flat_map(|e| ["task", "parent", "child"].map(|f| &e[f]))
                .filter(|p| is_parent(p))
                .map(task_identity),
        );
    }
    let lost: Vec<(&str, u64)> = trace
        .of_type("lost")
        .map(|e| {
            (
                e["what"].as_str().unwrap_or("?"),
                e["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    eprintln!(
        "{parents} x {BURST} processes in {burst_time:?} (ring {} MiB): missing fork/exit/zombie {missing:?}, lost events {lost:?}",
        ring_mib.unwrap_or("default")
    );
    // Never silently dropped: every record missing is counted in a `lost` event.
    for (what, missing) in ["fork", "exit", "zombie"].into_iter().zip(missing) {
        let lost = trace.lost(what);
        assert!(
            missing <= lost,
            "{what}: {missing} records of the burst missing but only {lost} reported lost"
        );
    }
    // Every zombie of the burst was reaped in the recording, after it became one.
    let checked = assert_consistent_for(&trace, |task| all.contains(&task_identity(task)));
    assert!(checked > 0, "no zombie of the burst was recorded");
}

#[test]
fn burst_of_short_lived_processes_is_recorded_or_counted_lost() {
    require_root();
    let _g = shared();
    burst_recording(None, 1);
}

#[test]
fn burst_with_a_small_ring_buffer_counts_what_it_loses() {
    require_root();
    let _g = shared();
    burst_recording(Some("1"), 2);
}

/// Starts a system-wide recording, stops it with `sig` once it is attached, and checks it
/// stops cleanly and detaches.
fn stop_with_signal(sig: i32, name: &str) {
    let before = our_programs();
    let out = TempPath::new("signal.jsonl");
    let mut rec = start_record(&out.0, &[]);
    wait_for_header(&out.0, &mut rec, ATTACH_TIMEOUT);
    std::thread::sleep(Duration::from_millis(300));
    rec.signal(sig);
    let sent = Instant::now();
    let status = rec
        .wait_timeout(Duration::from_secs(3))
        .unwrap_or_else(|| panic!("record still running 3 s after {name}"));
    assert_eq!(
        status.code(),
        Some(0),
        "record after {name}: {status}: {}",
        rec.stderr()
    );
    eprintln!("record stopped {:?} after {name}", sent.elapsed());
    let trace = read_whole(&out.0);
    assert!(trace.header["command"].is_null(), "{}", trace.header);
    assert_programs_released(&before, name);
}

#[test]
fn sigterm_stops_a_recording_cleanly() {
    require_root();
    let _g = shared();
    stop_with_signal(libc::SIGTERM, "SIGTERM");
}

#[test]
fn ctrl_c_stops_a_recording_cleanly() {
    require_root();
    let _g = shared();
    stop_with_signal(libc::SIGINT, "SIGINT");
}

#[test]
fn sighup_stops_a_recording_cleanly() {
    require_root();
    let _g = shared();
    stop_with_signal(libc::SIGHUP, "SIGHUP");
}

/// A fork storm that is not the traced command's: `workers` processes forking and reaping
/// children until `stop` is set. Returns their pids.
fn foreign_storm(workers: usize) -> Vec<libc::pid_t> {
    (0..workers)
        .map(|_| {
            // SAFETY: the child only forks, waits and exits.
            unsafe {
                match libc::fork() {
                    -1 => panic!("fork: {}", std::io::Error::last_os_error()),
                    0 => loop {
                        match libc::fork() {
                            0 => libc::_exit(0),
                            -1 => {}
                            child => {
                                libc::waitpid(child, std::ptr::null_mut(), 0);
                            }
                        }
                    },
                    pid => pid,
                }
            }
        })
        .collect()
}

#[test]
fn a_tree_recording_holds_only_the_tree_and_ends_with_it() {
    // Beside a fork storm of other processes: the kernel programs write only the traced
    // tree's records, so none of the storm's tasks appears and none of the tree's is lost,
    // and the recording ends promptly once the command and its orphan are gone.
    require_root();
    let _g = shared();
    let storm = foreign_storm(2);
    let out = TempPath::new("tree-only.jsonl");
    let started = Instant::now();
    let mut rec = ChildGuard::new(
        Command::new(reaper_trace())
            .args(["record", "-q", "-o"])
            .arg(&out.0)
            .args([
                "--",
                "sh",
                "-c",
                "(sleep 0.3; exit 4) & for i in 1 2 3 4 5; do /bin/true; done; exit 3",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .expect("reaper-trace runs"),
    );
    let status = rec.wait_timeout(Duration::from_secs(30));
    let elapsed = started.elapsed();
    for pid in &storm {
        // SAFETY: killing and reaping our own children.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
        wait_pid(*pid);
    }
    let status = status.expect("record ends when the command and its orphans are gone");
    assert_eq!(status.code(), Some(3), "{}", rec.stderr());
    let trace = read_whole(&out.0);
    let storm_pids: Vec<u64> = storm.iter().map(|p| *p as u64).collect();
    // Every process in the recording descends from the command (the recorder forked it).
    let recorder = rec.pid() as u64;
    let mut tree = std::collections::BTreeSet::from([recorder]);
    for e in trace.of_type("fork") {
        let parent = e["parent"]["pid"].as_u64().unwrap();
        assert!(
            tree.contains(&parent),
            "a fork outside the traced tree: {e}\n{}",
            trace.dump()
        );
        tree.insert(e["child"]["pid"].as_u64().unwrap());
    }
    for e in &trace.events {
        for field in ["task", "child", "orphan", "father"] {
            if let Some(pid) = e[field]["pid"].as_u64() {
                assert!(
                    !storm_pids.contains(&pid) && (tree.contains(&pid) || pid == recorder),
                    "an event about a process outside the tree: {e}"
                );
            }
        }
    }
    assert_eq!(trace.lost("fork"), 0, "{}", trace.dump());
    // sh, the subshell (the orphan), sleep and five /bin/true.
    assert_eq!(trace.of_type("fork").count(), 8, "{}", trace.dump());
    // The orphan was followed after sh exited: its adoption and its exit are there.
    let orphan_exit = trace
        .of_type("exit")
        .find(|e| e["status"]["code"] == 4)
        .unwrap_or_else(|| panic!("the orphan's exit is missing:\n{}", trace.dump()));
    assert!(
        trace
            .of_type("reparent")
            .any(|r| r["orphan"]["pid"] == orphan_exit["task"]["pid"]),
        "{}",
        trace.dump()
    );
    // Program loading takes about a second; the command and its orphan about 0.3 s; the
    // rest is the recorder following the orphan (--linger stops as soon as nothing is left,
    // or after 2 s if the orphan stays a zombie of a PID 1 that never waits).
    eprintln!("tree recording beside a storm took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[test]
fn programs_are_detached_after_a_command_exits() {
    require_root();
    let _g = shared();
    let before = our_programs();
    let out = TempPath::new("true.jsonl");
    let status = Command::new(reaper_trace())
        .args(["record", "-q", "-o"])
        .arg(&out.0)
        .args(["--", "true"])
        .status()
        .expect("reaper-trace runs");
    assert!(status.success(), "{status}");
    let trace = read_whole(&out.0);
    assert!(
        trace.of_type("exec").any(|e| e["args"][0] == "true"),
        "the command was traced:\n{}",
        trace.dump()
    );
    assert_consistent(&trace);
    assert_programs_released(&before, "record -- true");
}

#[test]
fn user_errors_fail_with_one_line_before_attaching() {
    require_root();
    let _g = shared();
    let bin = reaper_trace();
    let before = our_programs();
    let out = TempPath::new("error.jsonl");
    let run = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("reaper-trace runs")
    };
    let path = out.0.to_str().expect("utf-8 temp path");
    let cases: [(&[&str], &str); 4] = [
        (
            &["record", "-o", "/nonexistent/x.jsonl", "--", "true"],
            "/nonexistent/x.jsonl",
        ),
        (&["record", "-o", path, "--bogus"], "--bogus"),
        (
            &["record", "-o", path, "--duration", "3x", "--", "true"],
            "3x",
        ),
        (
            &["record", "-o", path, "--", "/no/such/cmd"],
            "/no/such/cmd",
        ),
    ];
    for (args, names) in cases {
        let started = Instant::now();
        let output = run(args);
        let line = assert_user_error(&output);
        assert!(
            line.contains(names),
            "{args:?}: the message names {names}: {line}"
        );
        assert!(
            !out.0.exists() && !Path::new("/nonexistent").exists(),
            "{args:?}: a failed run created its output"
        );
        // Nothing was loaded: the verifier alone takes longer than this.
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{args:?} took {:?}: checked after loading the programs?",
            started.elapsed()
        );
    }
    assert_programs_released(&before, "user errors");
}

#[test]
fn without_privileges_record_says_to_run_as_root() {
    require_root();
    let _g = shared();
    let setpriv = Command::new("setpriv").arg("--version").output();
    assert!(
        setpriv.is_ok_and(|o| o.status.success()),
        "setpriv (util-linux) is needed to drop privileges"
    );
    let before = our_programs();
    // A directory nobody (uid 65534) may create files in... except for the sticky /tmp,
    // which is where TempPath lives: the output would be created if it were opened first.
    let out = TempPath::new("unprivileged.jsonl");
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(reaper_trace())
        .args(["record", "-o"])
        .arg(&out.0)
        .args(["--", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("setpriv runs");
    let line = assert_user_error(&output);
    assert!(
        line.contains("CAP_BPF") && line.contains("CAP_PERFMON"),
        "names the capabilities: {line}"
    );
    assert!(line.contains("as root"), "says to run as root: {line}");
    assert!(
        !out.0.exists(),
        "the output was created before the privilege check"
    );
    assert_programs_released(&before, "an unprivileged run");
}

const TRACEFS: &str = "/sys/kernel/tracing";

fn tracefs_mounted() -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    info.lines().any(|l| {
        let mut fields = l.split(' ');
        let mount_point = fields.nth(4);
        let fstype = l.split(" - ").nth(1).and_then(|r| r.split(' ').next());
        mount_point == Some(TRACEFS) && fstype == Some("tracefs")
    })
}

fn mount_tracefs() {
    let status = Command::new("mount")
        .args(["-t", "tracefs", "tracefs", TRACEFS])
        .status()
        .expect("mount runs");
    assert!(status.success(), "mount -t tracefs failed: {status}");
}

/// Leaves tracefs mounted, whatever happens to the test.
struct RemountTracefs;

impl Drop for RemountTracefs {
    fn drop(&mut self) {
        if !tracefs_mounted() {
            let _ = Command::new("mount")
                .args(["-t", "tracefs", "tracefs", TRACEFS])
                .status();
        }
    }
}

#[test]
fn record_mounts_tracefs_when_it_is_missing() {
    require_root();
    let _g = exclusive();
    assert!(
        !Path::new("/sys/kernel/debug/tracing/events").is_dir(),
        "tracefs is reachable through debugfs: it cannot be made missing"
    );
    if !tracefs_mounted() {
        mount_tracefs();
    }
    let _restore = RemountTracefs;
    let mut tries = 0;
    while tracefs_mounted() {
        let status = Command::new("umount")
            .arg(TRACEFS)
            .status()
            .expect("umount runs");
        if !status.success() {
            tries += 1;
            assert!(tries < 20, "cannot unmount {TRACEFS}: something uses it");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(!Path::new(TRACEFS).join("events").is_dir());

    let before = our_programs();
    let out = TempPath::new("tracefs.jsonl");
    let output = Command::new(reaper_trace())
        .args(["record", "-o"])
        .arg(&out.0)
        .args(["--", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("reaper-trace runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {stderr}", output.status);
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("mounted")).collect();
    assert_eq!(
        notes,
        [format!("reaper-trace: mounted tracefs at {TRACEFS}")],
        "one note about mounting tracefs: {stderr}"
    );
    assert!(tracefs_mounted(), "record left tracefs unmounted");
    let trace = read_whole(&out.0);
    let exec: Vec<&Value> = trace
        .of_type("exec")
        .filter(|e| e["args"][0] == "true")
        .collect();
    assert_eq!(exec.len(), 1, "the command was traced:\n{}", trace.dump());
    assert!(
        trace.of_type("reap").any(|e| e["how"] == "wait4"),
        "the wait4 tracepoint (which needs tracefs) worked:\n{}",
        trace.dump()
    );
    assert_consistent(&trace);
    assert_programs_released(&before, "record with tracefs mounted by it");
}

/// Runs `reaper-trace ARGS` as nobody (uid 65534) with CAP_BPF and CAP_PERFMON: enough to
/// load the programs, not to read a tracefs that is root's (mode 0700, its default).
fn run_as_capable_nobody(args: &[&str], out: &Path) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+bpf,+perfmon",
            "--ambient-caps=+bpf,+perfmon",
        ])
        .arg(reaper_trace())
        .args(args)
        .arg("-o")
        .arg(out)
        .args(["--", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("setpriv runs")
}

/// Puts tracefs's group and mode back, whatever happens to the test.
struct RestoreTracefsAccess {
    gid: u32,
    mode: u32,
}

impl Drop for RestoreTracefsAccess {
    fn drop(&mut self) {
        let _ = Command::new("mount")
            .args(["-o"])
            .arg(format!("remount,gid={},mode={:04o}", self.gid, self.mode))
            .arg(TRACEFS)
            .status();
    }
}

#[test]
fn tracefs_mounted_but_unreadable_is_told_from_missing_and_the_advice_works() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    require_root();
    let _g = exclusive();
    if !tracefs_mounted() {
        mount_tracefs();
    }
    let _remount = RemountTracefs;
    let meta = std::fs::metadata(TRACEFS).expect("tracefs");
    let _restore = RestoreTracefsAccess {
        gid: meta.gid(),
        mode: meta.permissions().mode() & 0o7777,
    };
    // Root's alone, as tracefs is by default.
    let status = Command::new("mount")
        .args(["-o", "remount,gid=0,mode=0700", TRACEFS])
        .status()
        .expect("mount runs");
    assert!(status.success(), "remount tracefs: {status}");
    let before = our_programs();
    let out = TempPath::new("capable-nobody.jsonl");
    let output = run_as_capable_nobody(&["record", "-q"], &out.0);
    let line = assert_user_error(&output);
    assert!(
        line.contains(&format!(
            "tracefs is mounted at {TRACEFS} but not readable by you (mode 0700)"
        )) && !line.contains("not mounted"),
        "{line}"
    );
    assert!(line.contains("as root"), "{line}");
    // What the message says to do, with nobody's group: then it records.
    let advice = line
        .split('`')
        .nth(1)
        .expect("a command to run, in backquotes")
        .replace("GROUP", "65534");
    let mut words = advice.split_whitespace();
    assert_eq!(words.next(), Some("sudo"), "{advice}");
    let status = Command::new(words.next().unwrap())
        .args(words)
        .status()
        .expect("the advice runs");
    assert!(status.success(), "{advice}: {status}");
    let _ = std::fs::remove_file(&out.0);
    let output = run_as_capable_nobody(&["record", "-q"], &out.0);
    assert!(
        output.status.success(),
        "after `{advice}`: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let trace = read_whole(&out.0);
    assert!(
        trace.of_type("exec").any(|e| e["args"][0] == "true"),
        "{}",
        trace.dump()
    );
    assert_programs_released(&before, "capable, unprivileged runs");
}

#[test]
fn a_command_that_cannot_run_exits_127_or_126_like_a_shell() {
    let dir = TempPath::new("cannot-run");
    std::fs::create_dir(&dir.0).unwrap();
    let not_executable = dir.0.join("script.sh");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let cases: [(&str, i32); 4] = [
        ("/nonexistent", 127),
        ("no-such-command-in-path", 127),
        (not_executable.to_str().unwrap(), 126),
        (dir.0.to_str().unwrap(), 126),
    ];
    for (command, code) in cases {
        let output = Command::new(reaper_trace())
            .args(["record", "-q", "-o", "/dev/null", "--", command])
            .stdin(Stdio::null())
            .output()
            .expect("reaper-trace runs");
        let line = assert_user_error(&output);
        assert_eq!(output.status.code(), Some(code), "{command}: {line}");
        assert!(line.contains(&format!("cannot run {command}")), "{line}");
    }
}

/// `record | head -1`: once the reader has gone, the recording stops at its next write,
/// detaches everything, and exits 141 (128 + SIGPIPE, what a shell shows for a tool that
/// SIGPIPE stopped) without a word; a traced command is stopped as after `--duration`.
#[test]
fn a_closed_pipe_stops_a_recording_quietly() {
    use std::io::BufRead;
    require_root();
    let _g = shared();
    let before = our_programs();
    for tree in [false, true] {
        let mut cmd = Command::new(reaper_trace());
        cmd.arg("record");
        if tree {
            cmd.args(["--", "sh", "-c", "while :; do /bin/true; sleep 0.1; done"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("reaper-trace runs");
        let mut child = ChildGuard::new(child);
        let mut header = String::new();
        {
            let stdout = child.child.stdout.take().unwrap();
            let mut lines = std::io::BufReader::new(stdout);
            lines.read_line(&mut header).unwrap();
            // Dropped here: the pipe's only reader is gone, as when `head -1` exits.
        }
        assert!(header.contains(r#""type":"header""#), "{header}");
        let started = Instant::now();
        // Something to write, system-wide too.
        for _ in 0..5 {
            let _ = Command::new("true").status();
        }
        let status = child
            .wait_timeout(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("tree {tree}: still recording into a closed pipe"));
        let stderr = child.stderr();
        // The next flush (at most a second away) finds the pipe closed; the command has two
        // seconds to go after SIGTERM (the shell goes at once).
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "tree {tree}: stopped {:?} after the pipe closed",
            started.elapsed()
        );
        assert_eq!(status.code(), Some(141), "tree {tree}: {status}: {stderr}");
        assert_eq!(stderr, "", "tree {tree}: stops quietly");
    }
    assert_programs_released(&before, "recordings into a closed pipe");
}

/// SIGHUP (a closed terminal) ends `doctor` as Ctrl-C does: it reports what it watched, at
/// once, instead of dying without a word.
#[test]
fn doctor_reports_on_sighup() {
    require_root();
    let _g = shared();
    let child = Command::new(reaper_trace())
        .args(["doctor", "-d", "60s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("reaper-trace runs");
    // Past start-up: the programs are attached and the loop is running.
    std::thread::sleep(Duration::from_secs(5));
    let asked = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let output = child.wait_with_output().expect("doctor exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "doctor took {:?} to end",
        asked.elapsed()
    );
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{}: {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("watched") || stdout.contains("zombie"),
        "a report: {stdout}"
    );
}
