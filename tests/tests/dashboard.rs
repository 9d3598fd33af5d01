//! `reaper-trace top` end to end: the real binary on a real terminal (tmux), tracing the real
//! kernel, and replaying recordings.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reaper_trace_tests::tmux::Tmux;
use reaper_trace_tests::{TempPath, reaper_trace, report_pid, require_root};

/// `CMD; echo EXITED rc=$?; stty -a; sleep 60`: after the dashboard exits, the pane shows its
/// exit code and the terminal's modes (and stays open to be read).
fn then_show_terminal_state(cmd: &str) -> String {
    format!("{cmd}; echo EXITED rc=$?; stty -a; sleep 60")
}

fn quoted(s: &std::path::Path) -> String {
    format!("'{}'", s.display().to_string().replace('\'', r"'\''"))
}

/// After `q`: the dashboard exited 0 and left the terminal as it found it (cooked mode with
/// echo, main screen, cursor shown).
fn assert_quits_cleanly(tmux: &Tmux) {
    tmux.send_keys(&["q"]);
    let screen = tmux
        .wait_for(Duration::from_secs(5), |s| s.contains("EXITED rc="))
        .unwrap_or_else(|s| panic!("the dashboard did not quit on q:\n{s}"));
    assert!(screen.contains("EXITED rc=0"), "{screen}");
    let screen = tmux
        .wait_for(Duration::from_secs(5), |s| s.contains("icanon"))
        .unwrap_or_else(|s| panic!("no stty output:\n{s}"));
    assert!(
        !screen.contains("-icanon") && !screen.contains("-echo ") && !screen.contains("-isig"),
        "the terminal was left in raw mode:\n{screen}"
    );
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "0",
        "left the alternate screen on"
    );
    assert_eq!(
        tmux.display("#{cursor_flag}"),
        "1",
        "left the cursor hidden"
    );
}

#[test]
fn live_dashboard_shows_a_zombie_with_its_reaper() {
    require_root();
    let bin = reaper_trace();
    let tmux = Tmux::start(
        100,
        30,
        &then_show_terminal_state(&format!("{} top --zombie-threshold 1s", quoted(&bin))),
    );
    tmux.wait_for(Duration::from_secs(20), |s| {
        s.contains("LIVE") && s.contains("Zombies")
    })
    .unwrap_or_else(|s| panic!("the dashboard did not start:\n{s}"));

    // A parent that never waits: `sleep 0.5` dies and stays a zombie of `sleep 6` (the shell,
    // exec'd), which has to reap it and never does.
    let mut parent = Command::new("sh")
        .args(["-c", "sleep 0.5 & echo $!; exec sleep 6"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let reaper_pid = parent.id();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let zombie_pid: u32 = line.trim().parse().expect("the zombie's pid");

    // Other zombies on the machine may fill the panel: filter on the zombie's pid.
    tmux.send_keys(&["/"]);
    tmux.type_text(&zombie_pid.to_string());
    tmux.send_keys(&["Enter"]);
    // Its parent's name when it died: `sleep`, unless a loaded machine delayed the exec.
    let reaper = format!("{reaper_pid} sleep");
    let reaper_sh = format!("{reaper_pid} sh");
    let is_row = |l: &str| {
        l.contains(&format!("{zombie_pid} ")) && (l.contains(&reaper) || l.contains(&reaper_sh))
    };
    let result = tmux.wait_for(Duration::from_secs(10), |s| s.lines().any(is_row));
    let screen = match result {
        Ok(s) => s,
        Err(s) => {
            let _ = parent.kill();
            let _ = parent.wait();
            panic!("zombie {zombie_pid} of {reaper} never shown:\n{s}");
        }
    };
    let row = screen.lines().find(|l| is_row(l)).unwrap();
    assert!(row.contains("sleep"), "{row}");
    // Past the 1 s threshold, its age is marked.
    let marked = tmux.wait_for(Duration::from_secs(4), |s| {
        s.lines().any(|l| is_row(l) && l.contains('!'))
    });
    let _ = parent.kill();
    let _ = parent.wait();
    let screen = marked.unwrap_or_else(|s| panic!("zombie never marked over 1s:\n{s}"));
    assert!(screen.contains("filter: name \""), "{screen}");

    assert_quits_cleanly(&tmux);
}

/// `t` on a selected process: the tree panel shows it with where its children would go.
#[test]
fn tree_key_shows_the_selected_process_in_the_process_tree() {
    require_root();
    let bin = reaper_trace();
    let tmux = Tmux::start(
        160,
        40,
        &then_show_terminal_state(&format!("{} top", quoted(&bin))),
    );
    tmux.wait_for(Duration::from_secs(20), |s| {
        s.contains("LIVE") && s.contains("Zombies")
    })
    .unwrap_or_else(|s| panic!("the dashboard did not start:\n{s}"));

    // A shell that reaps a child (`/bin/true`: it shows in the Reapers panel) and waits for
    // another (`sleep`: it has a child when the snapshot is taken). The last `/bin/true`
    // keeps the shell from exec'ing `sleep`.
    let mut sh = Command::new("sh")
        .args(["-c", "/bin/true; sleep 30; /bin/true"])
        .spawn()
        .expect("sh runs");
    let pid = sh.id();
    let finish = |sh: &mut std::process::Child| {
        let _ = sh.kill();
        let _ = sh.wait();
    };

    // Select it: filter on its pid, focus the Reapers panel (its only row is selected).
    tmux.send_keys(&["/"]);
    tmux.type_text(&pid.to_string());
    tmux.send_keys(&["Enter", "3"]);
    let is_row = |l: &str| l.contains(&format!("│{pid} ")) && l.contains(" sh ");
    if let Err(s) = tmux.wait_for(Duration::from_secs(10), |s| s.lines().any(is_row)) {
        finish(&mut sh);
        panic!("the shell {pid} never showed as a reaper:\n{s}");
    }

    tmux.send_keys(&["t"]);
    // Its line in the tree, with `=>`, and its child under it.
    let is_tree_line = |l: &str| {
        l.trim_start_matches('│')
            .trim_start()
            .starts_with(&format!("{pid} "))
            && l.contains("\\_ sh")
            && l.contains("=> ")
    };
    let result = tmux.wait_for(Duration::from_secs(15), |s| {
        s.contains(&format!("Process tree of {pid} sh")) && s.lines().any(is_tree_line)
    });
    let screen = match result {
        Ok(s) => s,
        Err(s) => {
            finish(&mut sh);
            panic!("no tree of {pid} sh with its `=>` line:\n{s}");
        }
    };
    assert!(
        screen.contains(&format!("{pid} sh, if it died now: its child would go to")),
        "{screen}"
    );
    let line = screen.lines().find(|l| is_tree_line(l)).unwrap();
    assert!(
        line.contains("(init)") || line.contains("(subreaper)"),
        "{line}"
    );
    assert!(screen.contains("\\_ sleep"), "{screen}");
    assert!(!screen.contains("Zombie lifetimes"), "{screen}");

    // `r` takes it again; Esc closes it.
    tmux.send_keys(&["r"]);
    tmux.send_keys(&["Escape"]);
    let closed = tmux.wait_for(Duration::from_secs(5), |s| {
        s.contains("Zombie lifetimes") && !s.contains("Process tree")
    });
    finish(&mut sh);
    closed.unwrap_or_else(|s| panic!("Esc did not close the tree:\n{s}"));
    assert_quits_cleanly(&tmux);
}

#[test]
fn replay_shows_the_adoption() {
    require_root();
    let bin = reaper_trace();
    let rec = TempPath::new("sleep-init.jsonl");
    let out = Command::new(&bin)
        .args(["record", "-q", "-o"])
        .arg(&rec.0)
        .arg("--")
        .arg(&bin)
        .args(["scenario", "sleep-init", "--seconds", "1"])
        .output()
        .expect("record runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a report")).expect("JSON report");
    let (orphan, father, reaper) = (
        report_pid(&report, "orphan"),
        report_pid(&report, "father"),
        report_pid(&report, "reaper"),
    );

    let tmux = Tmux::start(
        100,
        30,
        &then_show_terminal_state(&format!(
            "{} top --replay {} --speed 0",
            quoted(&bin),
            quoted(&rec.0)
        )),
    );
    let is_row = |l: &str| {
        l.contains(&format!("{orphan} "))
            && l.contains(&format!("{father} "))
            // Its name at adoption: `sleep` once the namespace init has exec'd, which may
            // come after the adoption.
            && l.contains(&format!("{reaper} "))
            && l.contains("init")
            && l.contains("= match")
    };
    let screen = tmux
        .wait_for(Duration::from_secs(10), |s| s.lines().any(is_row))
        .unwrap_or_else(|s| panic!("no adoption of {orphan} by {reaper} (init):\n{s}"));
    assert!(
        screen.contains("REPLAY") && screen.contains("END"),
        "{screen}"
    );
    assert!(screen.contains("(from events)"), "{screen}");
    assert!(screen.contains("init 1"), "{screen}");
    assert_quits_cleanly(&tmux);
}

#[test]
fn malformed_recording_is_an_error_naming_the_line() {
    let bin = reaper_trace();
    let rec = TempPath::new("bad.jsonl");
    let header = r#"{"type":"header","schema":1,"tool":"t","kernel":"k","host":"h","boot_time_ns":0,"started_ts":0}"#;
    let lost = r#"{"type":"lost","ts":1,"what":"fork","count":2}"#;
    std::fs::write(
        &rec.0,
        // Line 3 is malformed in the middle of the file (a cut last line is replayed).
        format!("{header}\n{lost}\n{{\"type\":\"reap\",\"ts\":\n{lost}\n"),
    )
    .unwrap();
    let out = Command::new(&bin)
        .args(["top", "--replay"])
        .arg(&rec.0)
        .output()
        .expect("reaper-trace runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:3: malformed event", rec.0.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    // Nothing reached the terminal: no escape sequence, no partial screen.
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );

    // In a terminal, too: the error is printed as is and the terminal is left alone.
    let tmux = Tmux::start(
        100,
        30,
        &then_show_terminal_state(&format!("{} top --replay {}", quoted(&bin), quoted(&rec.0))),
    );
    let screen = tmux
        .wait_for(Duration::from_secs(5), |s| s.contains("icanon"))
        .unwrap_or_else(|s| panic!("{s}"));
    assert!(screen.contains(":3: malformed event"), "{screen}");
    assert!(screen.contains("EXITED rc=1"), "{screen}");
    assert!(!screen.contains("-icanon"), "{screen}");
}

#[test]
fn bare_run_without_a_terminal_prints_help() {
    let out = Command::new(reaper_trace())
        .stdin(Stdio::null())
        .output()
        .expect("reaper-trace runs");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Usage") && stdout.contains("top"),
        "{stdout}"
    );
}

/// A small recording written by hand: a zombie that a container's init adopted.
fn synthetic_recording() -> TempPath {
    let rec = TempPath::new("synthetic.jsonl");
    let proc_ = |pid: u32, ns_pid: u32, pidns: u64, comm: &str| {
        serde_json::json!({"pid": pid, "tid": pid, "ns_pid": ns_pid, "ns_tid": ns_pid,
                           "pidns": pidns, "start": pid as u64 * 1000, "comm": comm})
    };
    let s = 1_000_000_000u64;
    let init = proc_(900, 1, 4026532999, "tini");
    let father = proc_(901, 2, 4026532999, "app");
    let orphan = proc_(902, 3, 4026532999, "worker");
    let lines = [
        serde_json::json!({"type":"header","schema":1,"tool":"t","kernel":"k","host":"h",
                           "boot_time_ns":0,"started_ts": 10 * s}),
        serde_json::json!({"type":"zombie","ts": 11 * s,"task": orphan,"parent": father,
                           "status":{"code":0}}),
        serde_json::json!({"type":"reparent","ts": 12 * s,"orphan": orphan,"father": father,
                           "reaper": init,"kind":"init",
                           "predicted":{"tid":900,"pid":900,"kind":"init"},
                           "verdict":"match","zombie":true}),
        serde_json::json!({"type":"lost","ts": 13 * s,"what":"fork","count":4}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&rec.0, text).unwrap();
    rec
}

fn start_replay(rec: &TempPath, env: &str) -> Tmux {
    let tmux = Tmux::start(
        100,
        30,
        &then_show_terminal_state(&format!(
            "{env} {} top --replay {} --speed 0",
            quoted(&reaper_trace()),
            quoted(&rec.0)
        )),
    );
    tmux.wait_for(Duration::from_secs(10), |s| s.contains("902 worker"))
        .unwrap_or_else(|s| panic!("the replay did not show up:\n{s}"));
    tmux
}

fn assert_terminal_sane(screen: &str, tmux: &Tmux) {
    assert!(
        !screen.contains("-icanon") && !screen.contains("-echo "),
        "{screen}"
    );
    assert_eq!(tmux.display("#{alternate_on}"), "0");
    assert_eq!(tmux.display("#{cursor_flag}"), "1");
}

#[test]
fn replay_of_a_synthetic_recording_follows_resizes() {
    let rec = synthetic_recording();
    let tmux = start_replay(&rec, "");
    let screen = tmux.capture();
    // The zombie adopted by the container's init: tini has to reap it now.
    let row = screen
        .lines()
        .find(|l| l.contains("902") && l.contains("worker") && l.contains("900 tini"))
        .unwrap_or_else(|| panic!("no zombie row:\n{screen}"));
    assert!(row.contains("4026532999"), "{row}");
    assert!(screen.contains("lost 4"), "{screen}");
    // Shrink to 80x24: the layout follows.
    let out = Command::new("tmux")
        .args(["-L"])
        .arg(tmux_socket(&tmux))
        .args(["resize-window", "-t", &tmux.session, "-x", "80", "-y", "24"])
        .status();
    assert!(out.is_ok_and(|s| s.success()));
    let screen = tmux
        .wait_for(Duration::from_secs(5), |s| {
            s.lines()
                .any(|l| l.chars().count() == 80 && l.starts_with("┌ Zombie lifetimes"))
        })
        .unwrap_or_else(|s| panic!("did not follow the resize:\n{s}"));
    assert!(screen.lines().count() <= 24, "{screen}");
    assert!(screen.contains("q quit"), "{screen}");
    assert_quits_cleanly(&tmux);
}

fn tmux_socket(tmux: &Tmux) -> String {
    tmux.socket().to_string()
}

#[test]
fn ctrl_c_quits_and_restores_the_terminal() {
    let rec = synthetic_recording();
    let tmux = start_replay(&rec, "");
    tmux.send_keys(&["C-c"]);
    let screen = tmux
        .wait_for(Duration::from_secs(5), |s| s.contains("icanon"))
        .unwrap_or_else(|s| panic!("Ctrl-C did not quit:\n{s}"));
    assert!(screen.contains("EXITED rc=0"), "{screen}");
    assert_terminal_sane(&screen, &tmux);
}

#[test]
fn sigterm_quits_and_restores_the_terminal() {
    let rec = synthetic_recording();
    let tmux = start_replay(&rec, "");
    // The pane runs `sh -c ...`: the dashboard is its child.
    let top = tmux.program_pid() as i32;
    // SAFETY: signalling a process this test started.
    assert_eq!(unsafe { libc::kill(top, libc::SIGTERM) }, 0);
    let screen = tmux
        .wait_for(Duration::from_secs(5), |s| s.contains("icanon"))
        .unwrap_or_else(|s| panic!("SIGTERM did not quit:\n{s}"));
    assert!(screen.contains("EXITED rc=0"), "{screen}");
    assert_terminal_sane(&screen, &tmux);
}

#[test]
fn a_panic_restores_the_terminal_before_its_message() {
    let rec = synthetic_recording();
    let tmux = Tmux::start(
        100,
        30,
        &then_show_terminal_state(&format!(
            "RUST_BACKTRACE=0 REAPER_TRACE_TOP_PANIC=1 {} top --replay {} --speed 0",
            quoted(&reaper_trace()),
            quoted(&rec.0)
        )),
    );
    let screen = tmux
        .wait_for(Duration::from_secs(10), |s| s.contains("icanon"))
        .unwrap_or_else(|s| panic!("{s}"));
    // The message is on the main screen, after the terminal was given back.
    assert!(
        screen.contains("panicked") && screen.contains("on purpose"),
        "{screen}"
    );
    assert!(screen.contains("EXITED rc=101"), "{screen}");
    assert_terminal_sane(&screen, &tmux);
}

#[test]
fn closing_the_terminal_ends_the_dashboard() {
    let rec = synthetic_recording();
    let tmux = start_replay(&rec, "");
    let top = tmux.program_pid();
    tmux.close();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    // Gone, or a zombie of an exited shell's parent: either way no longer running.
    let running = || {
        std::fs::read_to_string(format!("/proc/{top}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
        })
    };
    while running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if running() {
        // SAFETY: cleaning up the process this test started.
        unsafe { libc::kill(top as i32, libc::SIGKILL) };
        panic!("the dashboard kept running after its terminal closed");
    }
}
