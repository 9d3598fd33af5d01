//! Hostile neighbours: what a local user (or a careless admin) can do to the daemon and the
//! recorder. Idle and half-open connections from an unprivileged user past the cap, a full
//! file table, `--socket` pointed at a file that is not a socket, a socket another daemon has
//! taken over, SIGHUP, a FIFO nobody reads, and a socket only root may use.

use reaper_trace::clock::boottime_ns;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reaper_trace_tests::daemon::{Daemon, http_get, sample};
use reaper_trace_tests::measure::cpu_seconds;
use reaper_trace_tests::{
    ChildGuard, TempPath, Trace, assert_programs_released, assert_user_error, our_programs,
    reaper_trace, require_root,
};

const NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];

/// `hold_connections ADDR N SECS MODE` as nobody; returns it once it holds its connections,
/// with how many it holds.
fn hold_as_nobody(addr: &str, n: usize, secs: u64, mode: &str) -> (ChildGuard, usize) {
    let mut child = ChildGuard::new(
        Command::new("setpriv")
            .args(NOBODY)
            .arg(env!("CARGO_BIN_EXE_hold_connections"))
            .args([addr, &n.to_string(), &secs.to_string(), mode])
            .stdout(Stdio::piped())
            .spawn()
            .expect("setpriv runs"),
    );
    let mut line = String::new();
    let mut out = BufReader::new(child.child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    let held = line
        .trim()
        .strip_prefix("held ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("hold_connections said {line:?}"));
    // Its last line (`closed C`) is read by `closed_by_then`.
    child.child.stdout = Some(out.into_inner());
    (child, held)
}

/// The `closed C` line `hold_connections` prints after its SECS.
fn closed_by_then(child: &mut ChildGuard) -> usize {
    let mut text = String::new();
    BufReader::new(child.child.stdout.take().unwrap())
        .read_line(&mut text)
        .unwrap();
    text.trim()
        .strip_prefix("closed ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("hold_connections said {text:?}"))
}

/// A scrape, timed; panics if it does not answer.
fn timed_scrape(daemon: &Daemon) -> (Duration, String) {
    let t = Instant::now();
    let text = http_get(&daemon.metrics, "/metrics").expect("the daemon answers a scrape");
    (t.elapsed(), text)
}

/// The soft and hard `Max open files` of a process.
fn file_limits(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[3].parse().unwrap(), f[4].parse().unwrap())
}

/// CPU the process used over `window`, as a fraction of one core.
fn cpu_share(pid: u32, window: Duration) -> f64 {
    let before = cpu_seconds(pid);
    std::thread::sleep(window);
    (cpu_seconds(pid) - before) / window.as_secs_f64()
}

/// 1,100 idle connections from nobody, more than the cap and more than systemd's default soft
/// limit on open files (the daemon runs under it here): a scrape still answers within 1 s,
/// the daemon does not spin, its soft limit is raised to the hard one, and what it closed to
/// make room is counted.
#[test]
fn idle_connections_past_the_cap_do_not_keep_a_scrape_out() {
    require_root();
    let socket = TempPath::new("hostile-idle.sock");
    let daemon = Daemon::start_under(
        &["prlimit", "--nofile=1024:20000", "--"],
        socket.0.clone(),
        &[],
    );
    let (soft, hard) = file_limits(daemon.pid());
    assert_eq!(
        soft, hard,
        "the daemon raises its soft limit on open files to the hard one"
    );
    // What the daemon spends anyway (tracing whatever else runs on this machine).
    let quiet = cpu_share(daemon.pid(), Duration::from_secs(3));
    let (holder, held) = hold_as_nobody(&daemon.metrics, 1100, 8, "idle");
    assert!(held >= 1100, "nobody holds {held} connections");
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let (took, _) = timed_scrape(&daemon);
        slowest = slowest.max(took);
        std::thread::sleep(Duration::from_millis(200));
    }
    let busy = cpu_share(daemon.pid(), Duration::from_secs(3));
    let (_, text) = timed_scrape(&daemon);
    eprintln!(
        "1,100 idle connections: slowest scrape {slowest:?}; daemon CPU {:.1} % of a core (without them {:.1} %)",
        busy * 100.0,
        quiet * 100.0
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a scrape took {slowest:?}"
    );
    assert!(
        busy < quiet + 0.05,
        "the daemon used {:.1} % of a core holding the connections, {:.1} % without",
        busy * 100.0,
        quiet * 100.0
    );
    let made_room = sample(
        &text,
        r#"reaper_trace_connections_closed_total{listener="metrics",reason="cap"}"#,
    )
    .unwrap();
    assert!(
        made_room >= 1000.0,
        "closed at the cap: {made_room}\n{text}"
    );
    let open = sample(&text, "reaper_trace_http_connections").unwrap();
    assert!(open <= 64.0, "{open} connections open: over the cap");
    assert!(
        sample(
            &text,
            r#"reaper_trace_accept_errors_total{listener="metrics"}"#
        ) == Some(0.0),
        "{text}"
    );
    drop(holder);
}

/// Half a request header, then nothing (slowloris): each such connection is closed after the
/// header timeout (10 s), and counted.
#[test]
fn half_open_requests_are_closed_after_the_header_timeout() {
    require_root();
    let socket = TempPath::new("hostile-slow.sock");
    let daemon = Daemon::start(socket.0.clone(), &[]);
    // Fewer than the cap: only the timeout can close them.
    let (mut holder, held) = hold_as_nobody(&daemon.metrics, 40, 12, "partial");
    assert_eq!(held, 40);
    let (took, _) = timed_scrape(&daemon);
    assert!(took < Duration::from_secs(1), "a scrape took {took:?}");
    let closed = closed_by_then(&mut holder);
    assert_eq!(closed, 40, "half-open connections still open after 12 s");
    let text = daemon.scrape();
    let timeouts = sample(
        &text,
        r#"reaper_trace_connections_closed_total{listener="metrics",reason="timeout"}"#,
    )
    .unwrap();
    assert!(timeouts >= 40.0, "{timeouts} closed at the timeout\n{text}");
}

/// With a hard limit on open files the daemon can reach, accepts fail (EMFILE) on both
/// listeners: the daemon pauses between tries instead of spinning, counts the failures, and
/// serves again once connections close.
#[test]
fn a_full_file_table_is_backed_off_and_counted() {
    require_root();
    let socket = TempPath::new("hostile-emfile.sock");
    // Enough to start (programs, maps, links), not for 200 more connections.
    // A cap above what the file table allows: the table fills before the cap is reached.
    let daemon = Daemon::start_under(
        &["prlimit", "--nofile=160:160", "--"],
        socket.0.clone(),
        &["--max-connections", "1000"],
    );
    let in_use = std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
        .unwrap()
        .count();
    assert!(in_use < 150, "the daemon already uses {in_use} files");
    let quiet = cpu_share(daemon.pid(), Duration::from_secs(2));
    let (holder, held) = hold_as_nobody(&daemon.metrics, 200, 14, "idle");
    assert!(held + in_use > 170, "only {held} connections held");
    // A stream client waiting too: its accept fails the same way.
    let mut client = ChildGuard::new(
        Command::new(reaper_trace())
            .args(["record", "-q", "-o", "/dev/null", "--connect"])
            .arg(&socket.0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let busy = cpu_share(daemon.pid(), Duration::from_secs(3));
    eprintln!(
        "accepts failing: daemon CPU {:.1} % of a core (before {:.1} %)",
        busy * 100.0,
        quiet * 100.0
    );
    assert!(
        busy < quiet + 0.05,
        "the daemon spins on failed accepts: {:.1} % of a core ({:.1} % before)",
        busy * 100.0,
        quiet * 100.0
    );
    // The idle ones time out after 10 s, freeing files: it serves again, and says what failed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        if let Some(text) = http_get(&daemon.metrics, "/metrics") {
            break text;
        }
        assert!(Instant::now() < deadline, "the daemon never served again");
        std::thread::sleep(Duration::from_millis(500));
    };
    for listener in ["metrics", "stream"] {
        let errors = sample(
            &text,
            &format!(r#"reaper_trace_accept_errors_total{{listener="{listener}"}}"#),
        )
        .unwrap();
        assert!(
            errors >= 1.0,
            "no accept error counted on {listener}:\n{text}"
        );
    }
    drop(holder);
    client.signal(libc::SIGINT);
    let _ = client.wait_timeout(Duration::from_secs(10));
}

/// `--socket` pointed at anything that is not a stale socket is refused and left as it was;
/// a daemon that stops leaves alone a socket another daemon has taken over since.
#[test]
fn the_socket_flag_removes_nothing_but_its_own_socket() {
    require_root();
    let before = our_programs();
    let dir = TempPath::new("hostile-socket");
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("passwd");
    std::fs::write(&file, "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let sub = dir.0.join("a-directory");
    std::fs::create_dir(&sub).unwrap();
    for path in [&file, &sub] {
        // Bounded: a daemon that took the path would run until stopped.
        let out = Command::new("timeout")
            .arg("20")
            .arg(reaper_trace())
            .args(["daemon", "--metrics", "127.0.0.1:0", "--socket"])
            .arg(path)
            .output()
            .unwrap();
        let line = assert_user_error(&out);
        assert!(
            line.contains("not a socket") && line.contains("--socket"),
            "{line}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\n"
    );
    assert!(sub.is_dir());

    // First daemon; its socket is removed by hand, and a second daemon takes the path.
    let path = dir.0.join("d.sock");
    let mut first = Daemon::start(path.clone(), &[]);
    std::fs::remove_file(&path).unwrap();
    let second = Daemon::start(path.clone(), &[]);
    first.child.signal(libc::SIGTERM);
    let status = first.child.wait_timeout(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{}", first.child.stderr());
    assert!(
        std::os::unix::net::UnixStream::connect(&path).is_ok(),
        "the first daemon removed the second one's socket"
    );
    let mut second = second;
    second.child.signal(libc::SIGTERM);
    assert!(
        second
            .child
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
            .success()
    );
    assert!(!path.exists(), "a daemon removes its own socket");
    assert_programs_released(&before, "the daemons stopped");
}

/// SIGHUP (a service manager's reload, a closed terminal) is logged and the daemon goes on
/// serving; SIGTERM still stops it cleanly.
#[test]
fn sighup_leaves_the_daemon_running() {
    require_root();
    let socket = TempPath::new("hostile-hup.sock");
    let mut daemon = Daemon::start(socket.0.clone(), &[]);
    daemon.child.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        daemon.child.try_wait().is_none(),
        "SIGHUP stopped the daemon"
    );
    timed_scrape(&daemon);
    assert!(std::os::unix::net::UnixStream::connect(&socket.0).is_ok());
    daemon.child.signal(libc::SIGTERM);
    let status = daemon.child.wait_timeout(Duration::from_secs(10)).unwrap();
    let stderr = daemon.child.stderr();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("SIGHUP ignored"), "{stderr}");
    assert!(!socket.0.exists());
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// `record -d 2s -o FIFO`: with nobody reading it gives up after 2 s with one line. With a
/// reader that comes 2 s late, `-d 3s` still ends the run 3 s after its start, not 3 s after
/// the reader came: the command it records is sent SIGTERM then, and its exit's kernel
/// timestamp (not the wall clock of a loaded machine) says when.
#[test]
fn the_duration_bounds_a_recording_into_a_fifo() {
    require_root();
    let before = our_programs();
    let fifo = TempPath::new("hostile.fifo");
    mkfifo(&fifo.0);
    let started = Instant::now();
    // Bounded: opening a FIFO nobody reads blocks for ever.
    let out = Command::new("timeout")
        .arg("20")
        .arg(reaper_trace())
        .args(["record", "-q", "-d", "2s", "-o"])
        .arg(&fifo.0)
        .output()
        .unwrap();
    let took = started.elapsed();
    let line = assert_user_error(&out);
    assert!(line.contains("nobody opened the FIFO"), "{line}");
    // Not for ever; the bound only has to tell 2 s from the 20 s of the timeout.
    assert!(took < Duration::from_secs(10), "gave up after {took:?}");
    assert_programs_released(&before, "a recording that never started");

    let copy = TempPath::new("hostile-fifo-copy.jsonl");
    let reader = {
        let fifo = fifo.0.clone();
        let copy = copy.0.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            std::io::copy(
                &mut std::fs::File::open(&fifo).unwrap(),
                &mut std::fs::File::create(&copy).unwrap(),
            )
            .unwrap();
        })
    };
    let t0 = boottime_ns();
    let out = Command::new("timeout")
        .arg("30")
        .arg(reaper_trace())
        .args(["record", "-d", "3s", "-o"])
        .arg(&fifo.0)
        .args(["--", "sleep", "20"])
        .output()
        .unwrap();
    // Should the recorder never have opened it, the reader's open is let go: a writer's open
    // (once the reader is in its open) ends the reader's wait.
    let give_up = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < give_up {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "reaper-trace: waiting for a reader on the FIFO {}\n",
            fifo.0.display()
        )),
        "{stderr}"
    );
    let trace = Trace::read(&copy.0);
    let exit = trace
        .of_type("exit")
        .find(|e| e["task"]["comm"] == "sleep" && e["status"]["signal"] == libc::SIGTERM)
        .unwrap_or_else(|| panic!("sleep's exit by SIGTERM:\n{}", trace.dump()));
    let at = exit["ts"].as_u64().unwrap().saturating_sub(t0) as f64 / 1e9;
    // 3 s after the start; counted from the reader's arrival it would be 5 s.
    assert!(
        (3.0..4.5).contains(&at),
        "the command was stopped {at:.2} s after the start"
    );
}

/// nobody connecting to a root daemon's socket is told a daemon is there and who may use it,
/// not that none answers.
#[test]
fn a_refused_socket_is_not_reported_as_absent() {
    require_root();
    let socket = TempPath::new("hostile-refused.sock");
    let _daemon = Daemon::start(socket.0.clone(), &[]);
    let out = Command::new("setpriv")
        .args(NOBODY)
        .arg(reaper_trace())
        .args(["record", "-o", "/dev/null", "--connect"])
        .arg(&socket.0)
        .output()
        .unwrap();
    let line = assert_user_error(&out);
    assert!(
        line.contains("daemon's socket is at") && line.contains("only its owner may connect"),
        "{line}"
    );
    assert!(!line.contains("no reaper-trace daemon answers"), "{line}");
    // top, in a terminal (script gives it one), says the same before touching it.
    let out = Command::new("setpriv")
        .args(NOBODY)
        .args(["script", "-qec"])
        .arg(format!(
            "'{}' top --connect '{}'",
            reaper_trace().display(),
            socket.0.display()
        ))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("only its owner may connect"),
        "top as nobody said: {text:?}"
    );
}
