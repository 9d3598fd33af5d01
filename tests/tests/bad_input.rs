//! Bad input and faults, end to end with the real binary: crafted and damaged recordings,
//! hostile arguments, a start that fails for want of memory, and every kind of JSON Lines file
//! reaper-trace writes played back. Nothing untrusted reaches the terminal raw, nothing whole
//! is thrown away, nothing panics, and every error is one line that says what to do.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reaper_trace_tests::tmux::Tmux;
use reaper_trace_tests::{
    TempPath, assert_programs_released, assert_user_error, our_programs, reaper_trace, require_root,
};

const HEADER: &str = r#"{"type":"header","schema":1,"tool":"t","kernel":"k","host":"h","boot_time_ns":0,"started_ts":0}"#;
const LOST: &str = r#"{"type":"lost","ts":1,"what":"fork","count":2}"#;

fn run(args: &[&str]) -> Output {
    Command::new(reaper_trace())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("reaper-trace runs")
}

fn quoted(s: &Path) -> String {
    format!("'{}'", s.display().to_string().replace('\'', r"'\''"))
}

/// No byte a terminal acts on: C0 controls (but the final newline), DEL, C1 controls, and
/// no bidi or zero-width character.
fn assert_inert(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    let bad: Vec<char> = body
        .chars()
        .filter(|&c| {
            c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
        })
        .collect();
    assert!(bad.is_empty(), "raw {bad:?} in {text:?}");
}

#[test]
fn a_crafted_recording_cannot_take_over_the_terminal() {
    let bin = reaper_trace();
    let rec = TempPath::new("crafted.jsonl");
    // An unknown `type`, then an unknown `how`, each a terminal command (window title, clear).
    let cases = [
        (
            r#"{"type":"\u001b]0;PWNED\u0007\u001b[2J","ts":5}"#,
            r"\x1b]0;PWNED\x07\x1b[2J",
        ),
        (
            r#"{"type":"reap","ts":5,"task":{"pid":1,"tid":1,"ns_pid":1,"ns_tid":1,"pidns":1,"start":1,"comm":"a"},"reaper":null,"how":"\u009b2J\u001b]0;PWNED\u0007","zombie_ns":null}"#,
            r"\u{9b}2J\x1b]0;PWNED\x07",
        ),
    ];
    for (line, shown) in cases {
        std::fs::write(&rec.0, format!("{HEADER}\n{LOST}\n{line}\n{LOST}\n")).unwrap();
        let out = run(&["top", "--replay", rec.0.to_str().unwrap()]);
        let err = assert_user_error(&out);
        assert_inert(&out.stderr);
        assert!(out.stdout.is_empty());
        assert!(
            err.contains(":3: malformed event") && err.contains(shown),
            "{err}"
        );
    }

    // A path and an argument holding escapes are shown escaped too.
    let out = run(&["top", "--replay", "/nonexistent/\u{1b}]0;PWNED\u{7}.jsonl"]);
    let err = assert_user_error(&out);
    assert_inert(&out.stderr);
    assert!(
        err.contains(r"/nonexistent/\x1b]0;PWNED\x07.jsonl"),
        "{err}"
    );
    let out = run(&["record", "--bogus\u{1b}[2J"]);
    assert_user_error(&out);
    assert_inert(&out.stderr);

    // On a real terminal: the title stays, the message shows the escapes as text.
    std::fs::write(&rec.0, format!("{HEADER}\n{}\n{LOST}\n", cases[0].0)).unwrap();
    let tmux = Tmux::start(
        200,
        20,
        &format!(
            "{} top --replay {}; echo EXITED rc=$?; sleep 60",
            quoted(&bin),
            quoted(&rec.0)
        ),
    );
    let screen = tmux
        .wait_for(Duration::from_secs(10), |s| s.contains("EXITED"))
        .unwrap_or_else(|s| panic!("{s}"));
    assert!(screen.contains(r"\x1b]0;PWNED\x07"), "{screen}");
    assert!(screen.contains("EXITED rc=1"), "{screen}");
    assert_ne!(tmux.display("#{pane_title}"), "PWNED", "the title was set");
}

#[test]
fn a_cut_last_line_is_replayed_without_it_and_said() {
    let rec = TempPath::new("cut.jsonl");
    let worker = r#"{"pid":902,"tid":902,"ns_pid":3,"ns_tid":3,"pidns":4026532999,"start":902000,"comm":"worker"}"#;
    let app = r#"{"pid":901,"tid":901,"ns_pid":2,"ns_tid":2,"pidns":4026532999,"start":901000,"comm":"app"}"#;
    let zombie = format!(
        r#"{{"type":"zombie","ts":2,"task":{worker},"parent":{app},"status":{{"code":0}}}}"#
    );
    // A full disk stopped the write in the middle of line 4.
    std::fs::write(
        &rec.0,
        format!("{HEADER}\n{LOST}\n{zombie}\n{}", &zombie[..70]),
    )
    .unwrap();
    let tmux = Tmux::start(
        100,
        30,
        &format!(
            "{} top --replay {} --speed 0; echo EXITED rc=$?; sleep 60",
            quoted(&reaper_trace()),
            quoted(&rec.0)
        ),
    );
    let screen = tmux
        .wait_for(Duration::from_secs(10), |s| s.contains("902 worker"))
        .unwrap_or_else(|s| panic!("the events before the cut line were not replayed:\n{s}"));
    assert!(
        screen.contains("(last line 4 cut, not replayed)"),
        "{screen}"
    );
    assert!(screen.contains("lost 2"), "{screen}");
    tmux.quit_with_q();
}

#[test]
fn out_of_range_durations_are_one_line_errors() {
    let huge = "99999999999999999999h";
    for args in [
        &["record", "-d", huge][..],
        &["record", "--linger", huge, "--", "true"],
        &["top", "--zombie-threshold", huge],
        &["validate", "--timeout", huge],
    ] {
        let out = run(args);
        let err = assert_user_error(&out);
        assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
        assert!(err.contains(huge) && err.contains("too long"), "{err}");
    }
}

#[test]
fn an_endless_line_is_refused_by_line_in_bounded_memory() {
    // Under a 512 MiB address-space limit: reading /dev/zero whole aborted at 2 GiB.
    let started = Instant::now();
    let out = Command::new("prlimit")
        .arg(format!("--as={}", 512u64 << 20))
        .arg(reaper_trace())
        .args(["top", "--replay", "/dev/zero"])
        .stdin(Stdio::null())
        .output()
        .expect("prlimit (util-linux) runs");
    let err = assert_user_error(&out);
    assert!(
        err.contains("/dev/zero:1: line longer than 16 MiB"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn speed_without_replay_names_replay() {
    let out = run(&["top", "--speed", "2"]);
    let err = assert_user_error(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("--speed") && err.contains("--replay FILE"),
        "{err}"
    );
}

#[test]
fn a_start_without_memory_for_the_ring_leaves_the_recording_alone() {
    require_root();
    let before = our_programs();
    let old = TempPath::new("old.jsonl");
    std::fs::write(&old.0, format!("{HEADER}\n{LOST}\n")).unwrap();
    let new = TempPath::new("new.jsonl");
    for path in [&old.0, &new.0] {
        // A 512 MiB ring takes 1 GiB of address space: more than the limit.
        let out = Command::new("prlimit")
            .arg("--as=400000000")
            .arg(reaper_trace())
            .args(["record", "-q", "--ring-mib", "512", "-o"])
            .arg(path)
            .args(["--", "true"])
            .stdin(Stdio::null())
            .output()
            .expect("prlimit (util-linux) runs");
        let err = assert_user_error(&out);
        assert!(
            err.contains("512 MiB ring buffer") && err.contains("--ring-mib"),
            "names the ring, its size and what to do: {err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&old.0).unwrap(),
        format!("{HEADER}\n{LOST}\n"),
        "a failed start changed an existing recording"
    );
    assert!(!new.0.exists(), "a failed start created its output");
    assert_programs_released(&before, "a failed start");
}

/// `top --replay FILE --speed 0` in a terminal plays it to the end and quits on `q`.
fn assert_replays(path: &Path) {
    let tmux = Tmux::start(
        100,
        30,
        &format!(
            "{} top --replay {} --speed 0; echo EXITED rc=$?; sleep 60",
            quoted(&reaper_trace()),
            quoted(path)
        ),
    );
    let screen = tmux
        .wait_for(Duration::from_secs(10), |s| {
            s.contains("END") || s.contains("EXITED")
        })
        .unwrap_or_else(|s| panic!("{} did not replay:\n{s}", path.display()));
    assert!(
        screen.contains("REPLAY") && screen.contains("END"),
        "{} did not replay:\n{screen}",
        path.display()
    );
    tmux.quit_with_q();
}

#[test]
fn every_json_lines_file_reaper_trace_writes_replays() {
    require_root();
    let bin = reaper_trace();
    // `record -o FILE`.
    let file = TempPath::new("record-o.jsonl");
    let out = Command::new(&bin)
        .args(["record", "-q", "-o"])
        .arg(&file.0)
        .args(["--", "true"])
        .output()
        .expect("record runs");
    assert!(out.status.success(), "{out:?}");
    // `record > FILE`.
    let stdout = TempPath::new("record-stdout.jsonl");
    let out = Command::new(&bin)
        .args(["record", "-q", "--", "true"])
        .stdout(std::fs::File::create(&stdout.0).unwrap())
        .output()
        .expect("record runs");
    assert!(out.status.success(), "{out:?}");
    // `validate --events DIR`: DIR/NAME.jsonl per scenario.
    let dir = TempPath::new("events");
    let out = Command::new(&bin)
        .args(["validate", "--only", "orphan-init", "--events"])
        .arg(&dir.0)
        .output()
        .expect("validate runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let scenario = dir.0.join("orphan-init.jsonl");
    for path in [&file.0, &stdout.0, &scenario] {
        assert_replays(path);
    }
}

/// `VmRSS` of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib << 10
}

#[test]
fn the_ring_buffer_is_mapped_once() {
    require_root();
    // The kernel lays the ring's data out twice and inserts every page of a mapping at once:
    // mapping both copies (as aya's RingBuf does) made a 1 GiB ring cost 2.1 GB of RSS.
    let mib = 256u64;
    let out = TempPath::new("rss.jsonl");
    let child = Command::new(reaper_trace())
        .args([
            "record",
            "-q",
            "--ring-mib",
            &mib.to_string(),
            "-d",
            "30s",
            "-o",
        ])
        .arg(&out.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("reaper-trace runs");
    let mut child = reaper_trace_tests::ChildGuard::new(child);
    reaper_trace_tests::wait_for_header(&out.0, &mut child, Duration::from_secs(60));
    let rss = rss_bytes(child.child.id());
    assert!(
        rss >= mib << 20 && rss < (mib + 128) << 20,
        "RSS {} MiB with a {mib} MiB ring: the ring once, plus the program",
        rss >> 20
    );
    // The cost is said where the size is chosen.
    let help = run(&["record", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("costs that much kernel memory") && help.contains("RSS"),
        "{help}"
    );
}
