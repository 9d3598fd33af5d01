//! The packaged Prometheus rules (`packaging/prometheus/`): valid for `promtool check rules`,
//! and their unit tests pass (`promtool test rules`). The rules against a real Prometheus and
//! the real daemon: `containers.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use reaper_trace_tests::daemon::Daemon;
use reaper_trace_tests::{TempPath, require_root, workspace_root};

fn promtool(args: &[&str]) -> String {
    let dir = workspace_root().join("packaging/prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("promtool runs (Debian's prometheus package: `cargo xtask setup` installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_rules_are_valid() {
    let out = promtool(&["check", "rules", "reaper-trace.rules.yml"]);
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
}

#[test]
fn the_rules_pass_their_unit_tests() {
    let out = promtool(&["test", "rules", "reaper-trace.rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Every metric the rules read is one a real daemon serves. The zombie gauge is served once
/// there is a zombie: this test holds one.
#[test]
fn the_rules_read_metrics_the_daemon_serves() {
    require_root();
    let rules = std::fs::read_to_string(
        workspace_root().join("packaging/prometheus/reaper-trace.rules.yml"),
    )
    .unwrap();
    let mut read = Vec::new();
    for line in rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
    {
        for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            if word.starts_with("reaper_trace_") {
                read.push(word.to_string());
            }
        }
    }
    assert!(read.len() >= 4, "{read:?}");
    let socket = TempPath::new("rules.sock");
    let daemon = Daemon::start(socket.0.clone(), &[]);
    let mut zombie = Command::new("true").spawn().expect("true runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    let served = loop {
        let served = daemon.scrape();
        if served.contains("reaper_trace_zombies{") || Instant::now() > deadline {
            break served;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = zombie.wait();
    for name in read {
        // A counter's `# TYPE` names it without the `_total` its samples have.
        let family = name.strip_suffix("_total").unwrap_or(&name);
        assert!(
            served.contains(&format!("# TYPE {family} ")),
            "the rules read {name}, which the daemon does not serve:\n{served}"
        );
    }
}
