//! The suite's preconditions as a fresh machine has them: tracefs not mounted (nothing
//! mounts it at boot), no daemon on the default socket, no kernel image cache. The first
//! command that attaches mounts tracefs and says so, which a second run never sees: each test
//! of the user-error suite runs here alone in a private mount namespace arranged so, and
//! must pass as it does on a machine that has run it before.

use std::path::PathBuf;
use std::process::Command;

use reaper_trace_tests::require_root;

/// The newest built test binary of `name` (`target/debug/deps/NAME-HASH`), beside this one.
fn test_binary(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe().unwrap();
    let dir = me.parent().unwrap();
    let prefix = format!("{name}-");
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.strip_prefix(&prefix)
                .is_some_and(|hash| hash.chars().all(|c| c.is_ascii_hexdigit()))
                && e.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .unwrap_or_else(|| panic!("no built test binary {name} in {}", dir.display()))
}

/// The tests a test binary holds (`--list`).
fn tests_of(binary: &PathBuf) -> Vec<String> {
    let out = Command::new(binary)
        .args(["--list", "--format", "terse"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(String::from)
        .collect()
}

/// Arranges a fresh machine's mounts in a new mount namespace, checks them, then runs the
/// command: tracefs (and debugfs, which shows it too) unmounted, an empty /run (no daemon's
/// socket) and an empty image cache. The host's mounts are untouched.
const FRESH: &str = r#"
umount -l /sys/kernel/tracing 2>/dev/null
umount -l /sys/kernel/debug 2>/dev/null
mount -t tmpfs fresh-run /run || exit 97
if [ -d /var/cache/reaper-trace ]; then mount -t tmpfs fresh-cache /var/cache/reaper-trace || exit 97; fi
if [ -d /sys/kernel/tracing/events ] || [ -d /sys/kernel/debug/tracing/events ]; then
    echo "tracefs is still mounted in the namespace" >&2
    exit 98
fi
exec "$@"
"#;

#[test]
fn every_user_error_test_passes_as_the_first_run_on_a_fresh_machine() {
    require_root();
    let binary = test_binary("bad_input");
    let tests = tests_of(&binary);
    assert!(tests.len() >= 5, "bad_input lists {tests:?}");
    let mut failed = Vec::new();
    for test in &tests {
        let out = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                FRESH,
                "fresh",
            ])
            .arg(&binary)
            .args(["--exact", test, "--test-threads", "1"])
            .output()
            .expect("unshare (util-linux) runs");
        if !out.status.success() {
            failed.push(format!(
                "{test} ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} failed on a fresh machine:\n{}",
        failed.len(),
        tests.len(),
        failed.join("\n")
    );
}
