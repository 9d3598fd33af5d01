//! `reaper-trace daemon`: metrics over HTTP, the event stream on a 0600 Unix socket with
//! `record --connect` as a client, a clean stop on SIGTERM with every program detached, one
//! daemon per socket, and flat RSS under a fork storm.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reaper_trace_tests::daemon::{Daemon, sample};
use reaper_trace_tests::{
    ChildGuard, TempPath, Trace, assert_programs_released, assert_user_error, our_programs,
    reaper_trace, require_root, status_kib, wait_for_header,
};

#[test]
fn daemon_serves_metrics_and_streams_events_and_stops_cleanly() {
    require_root();
    let before = our_programs();
    let socket = TempPath::new("daemon.sock");
    let mut daemon = Daemon::start(socket.0.clone(), &["--zombie-threshold", "1s"]);
    let mode = std::fs::metadata(&socket.0).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is for root only");

    // A second daemon on the same socket: one line saying what to do.
    let out = Command::new(reaper_trace())
        .args(["daemon", "--metrics", "127.0.0.1:0", "--socket"])
        .arg(&socket.0)
        .output()
        .unwrap();
    let line = assert_user_error(&out);
    assert!(line.contains("a daemon already listens on"), "{line}");

    // A client recording the stream.
    let path = TempPath::new("connected.jsonl");
    let mut record = ChildGuard::new(
        Command::new(reaper_trace())
            .args(["record", "-q", "--connect"])
            .arg(&socket.0)
            .arg("-o")
            .arg(&path.0)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for_header(&path.0, &mut record, Duration::from_secs(20));

    // A zombie held by a process named rt-holder (a copy of sleep): it shows in the gauge.
    let dir = TempPath::new("holder");
    std::fs::create_dir_all(&dir.0).unwrap();
    let comm = format!("rth{}", std::process::id());
    let holder = dir.0.join(&comm);
    std::fs::copy("/bin/sleep", &holder).unwrap();
    let script = format!("sleep 0.1 & exec {} 30", holder.display());
    let mut sh = ChildGuard::new(Command::new("sh").args(["-c", &script]).spawn().unwrap());
    let series = format!(r#"reaper_trace_zombies{{container="host",reaper="{comm}"}}"#);
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = daemon.scrape();
        if sample(&text, &series) == Some(1.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "no {series} 1 in:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    for name in [
        "reaper_trace_zombie_lifetime_seconds_bucket",
        // Zero is shown, not left out.
        r#"reaper_trace_adoptions_total{kind="subreaper",verdict="match"}"#,
        r#"reaper_trace_lost_records_total{what="fork"} 0"#,
        "reaper_trace_reaps_total",
        "reaper_trace_events_total",
        "reaper_trace_events_per_second",
        "reaper_trace_unreaping_reapers",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    assert_eq!(
        sample(&text, "reaper_trace_stream_clients"),
        Some(1.0),
        "{text}"
    );

    // Stop the client, then the daemon.
    record.signal(libc::SIGINT);
    assert!(
        record
            .wait_timeout(Duration::from_secs(10))
            .expect("record stops")
            .success()
    );
    let trace = Trace::read(&path.0);
    let z = trace
        .of_type("zombie")
        .find(|e| e["parent"]["pid"] == sh.pid() && e["parent"]["comm"] == comm.as_str())
        .unwrap_or_else(|| panic!("the zombie is in the stream:\n{}", trace.dump()));
    assert_eq!(z["task"]["comm"], "sleep");
    sh.signal(libc::SIGKILL);
    let _ = sh.wait_timeout(Duration::from_secs(5));

    daemon.child.signal(libc::SIGTERM);
    let status = daemon
        .child
        .wait_timeout(Duration::from_secs(10))
        .expect("the daemon stops on SIGTERM");
    let stderr = daemon.child.stderr();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("daemon stopped, programs detached"),
        "{stderr}"
    );
    assert!(!socket.0.exists(), "the socket is removed");
    assert_programs_released(&before, "the daemon stopped");

    // With no daemon, a client says what to do, on one line.
    let out = Command::new(reaper_trace())
        .args(["record", "--connect"])
        .arg(&socket.0)
        .output()
        .unwrap();
    let line = assert_user_error(&out);
    assert!(
        line.contains("start one with `reaper-trace daemon`"),
        "{line}"
    );
}

/// The daemon's RSS under `stress-ng --fork 1` stays flat: what it keeps is bounded by what
/// is live. (`cargo xtask bench --daemon-soak` runs this for 5 minutes and prints figures.)
#[test]
fn daemon_rss_is_flat_under_a_fork_storm() {
    require_root();
    let socket = TempPath::new("soak.sock");
    let daemon = Daemon::start(socket.0.clone(), &[]);
    let stress = ChildGuard::new(
        Command::new("stress-ng")
            .args(["--fork", "1", "--timeout", "40s", "--quiet"])
            .stdout(Stdio::null())
            .spawn()
            .expect("stress-ng runs (cargo xtask setup installs it)"),
    );
    // Warm up: the allocator's pools and the model reach their working size.
    std::thread::sleep(Duration::from_secs(8));
    let start = status_kib(daemon.pid(), "VmRSS").unwrap();
    let mut peak = start;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_secs(1));
        peak = peak.max(status_kib(daemon.pid(), "VmRSS").unwrap());
    }
    let text = daemon.scrape();
    let events = sample(&text, "reaper_trace_events_total").unwrap();
    stress.signal(libc::SIGTERM);
    eprintln!(
        "daemon RSS under stress-ng --fork 1: {start} KiB after 8 s, peak {peak} KiB over the next 20 s, {events} events"
    );
    assert!(events > 10_000.0, "the storm was seen: {events} events");
    assert!(
        peak <= start + 4096,
        "RSS grew from {start} KiB to {peak} KiB in 20 s"
    );
}

/// `top --connect`: the daemon's stream on the dashboard (a zombie and its reaper); when the
/// daemon stops, top gives the terminal back and says so on one line.
#[test]
fn top_shows_a_daemons_stream() {
    use reaper_trace_tests::tmux::Tmux;
    use std::io::{BufRead, BufReader};
    require_root();
    let socket = TempPath::new("top.sock");
    let daemon = Daemon::start(socket.0.clone(), &[]);
    let tmux = Tmux::start(
        100,
        30,
        &format!(
            "'{}' top --connect '{}' --zombie-threshold 1s; echo EXITED rc=$?; sleep 60",
            reaper_trace().display(),
            socket.0.display()
        ),
    );
    tmux.wait_for(Duration::from_secs(20), |s| {
        s.contains("LIVE") && s.contains("Zombies")
    })
    .unwrap_or_else(|s| panic!("the dashboard did not start:\n{s}"));
    let mut parent = ChildGuard::new(
        Command::new("sh")
            .args(["-c", "sleep 0.3 & echo $!; exec sleep 8"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(parent.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let zombie: u32 = line.trim().parse().unwrap();
    tmux.send_keys(&["/"]);
    tmux.type_text(&zombie.to_string());
    tmux.send_keys(&["Enter"]);
    let reaper = format!("{} sleep", parent.pid());
    tmux.wait_for(Duration::from_secs(10), |s| {
        s.lines()
            .any(|l| l.contains(&format!("{zombie} ")) && l.contains(&reaper) && l.contains('!'))
    })
    .unwrap_or_else(|s| panic!("zombie {zombie} of {reaper} never shown past 1s:\n{s}"));
    parent.signal(libc::SIGKILL);

    daemon.child.signal(libc::SIGTERM);
    let screen = tmux
        .wait_for(Duration::from_secs(10), |s| s.contains("EXITED rc="))
        .unwrap_or_else(|s| panic!("top did not end with the daemon:\n{s}"));
    assert!(screen.contains("EXITED rc=1"), "{screen}");
    assert!(
        screen.contains(&format!(
            "reaper-trace: error: {}: the daemon stopped",
            socket.0.display()
        )),
        "{screen}"
    );
}
