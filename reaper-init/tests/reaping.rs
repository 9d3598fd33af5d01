//! Zombie reaping: as a child subreaper, as PID 1 of a pid namespace, and the
//! warning when reaper-init is neither.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::{
    COUNT_ZOMBIES_SH, Running, TempDir, is_root, isolated, proc_stat, read, reaper, run,
    wait_for_file,
};

/// Pids listed one per line in `path` (written by the child scripts).
fn pid_list(path: &Path) -> BTreeSet<i32> {
    read(path)
        .lines()
        .map(|l| l.trim().parse().expect("pid"))
        .collect()
}

#[test]
fn zombie_counter_detects_zombies() {
    // Control for the shell-side zombie check used below, so that those tests
    // cannot pass merely because the check never finds anything: a process
    // that execs into `sleep` never reaps its two background children. It lives until it is
    // killed (60 s is only a bound): on a loaded machine the check may take seconds.
    let script = format!(
        "{COUNT_ZOMBIES_SH}
        sh -c 'sleep 0.05 & sleep 0.05 & exec sleep 60' &
        p=$!
        i=0
        while [ \"$(count_zombies $p)\" != 2 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
        count_zombies $p
        kill $p"
    );
    let out = run(isolated("sh", &["-c", &script]));
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, "2\n", "{out:?}");
}

/// Main child: makes 100 orphans (double fork: the subshell exits at once, so
/// each `sleep` is re-parented to reaper-init), waits until they have all
/// exited, then succeeds only if none of them is left as a zombie of its parent.
const ORPHANS_SCRIPT: &str = r#"
out=$1
i=0
while [ $i -lt 100 ]; do
    ( sleep 0.3 & echo $! >> "$out.orphans" )
    i=$((i + 1))
done
sleep 1
count_zombies $PPID > "$out.zombies"
[ "$(cat "$out.zombies")" = 0 ]
"#;

#[test]
fn hundred_orphans_leave_no_zombie() {
    let dir = TempDir::new("orphans");
    let script = dir.script("orphans.sh", &format!("{COUNT_ZOMBIES_SH}{ORPHANS_SCRIPT}"));
    let out_file = dir.join("out");

    let out = run(reaper(&[
        "--subreaper",
        "--verbose",
        "sh",
        &script,
        out_file.to_str().unwrap(),
    ]));

    assert_eq!(
        read(&dir.join("out.zombies")),
        "0\n",
        "zombies left: {out:?}"
    );
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(!out.stderr.contains("warning"), "{out:?}");
    // Every orphan was reaped by reaper-init itself (proof that they really
    // were re-parented to it and that the check above was not vacuous).
    let orphans = pid_list(&dir.join("out.orphans"));
    assert_eq!(orphans.len(), 100, "{orphans:?}");
    let reaped = out.reaped_pids();
    let missing: Vec<_> = orphans.difference(&reaped).collect();
    assert!(
        missing.is_empty(),
        "orphans not reaped by reaper-init: {missing:?}\n{out:?}"
    );
    assert!(out.stderr.contains("(exit 0)"), "{out:?}");
}

/// Runs inside a new pid namespace under reaper-init. Exit codes tell which
/// check failed; 42 (not 0) proves the status really passes through unshare.
const PID1_SCRIPT: &str = r#"
out=$1
[ "$(cat /proc/1/comm)" = reaper-init ] || exit 3
[ "$PPID" = 1 ] || exit 4
# A PID 1 without handlers would silently drop this; reaper-init forwards it.
got_term=0
trap 'got_term=1' TERM
kill -TERM 1
n=0
while [ $got_term = 0 ] && [ $n -lt 250 ]; do sleep 0.02; n=$((n + 1)); done
[ $got_term = 1 ] || exit 5
i=0
while [ $i -lt 50 ]; do
    ( sleep 0.2 & echo $! >> "$out.orphans" )
    i=$((i + 1))
done
# Wait on the kernel, not the clock: until no orphan is running any more (each is gone or a
# zombie: `sleep 0.2` may start late on a loaded machine), then until PID 1 has no zombie left
# (it reaps as SIGCHLD arrives). 10 s bounds each wait; a PID 1 that does not reap fails.
running() {
    for p in $(cat "$out.orphans"); do
        read -r line 2>/dev/null < /proc/"$p"/stat || continue
        rest=${line##*) }
        case $rest in Z*) ;; *) return 0 ;; esac
    done
    return 1
}
n=0
while running && [ $n -lt 500 ]; do sleep 0.02; n=$((n + 1)); done
running && exit 7
n=0
while [ "$(count_zombies 1)" != 0 ] && [ $n -lt 500 ]; do sleep 0.02; n=$((n + 1)); done
[ "$(count_zombies 1)" = 0 ] || exit 6
exit 42
"#;

#[test]
fn works_as_pid1_of_a_pid_namespace() {
    if !is_root() {
        eprintln!("skipping works_as_pid1_of_a_pid_namespace: needs root for unshare --pid");
        return;
    }
    let dir = TempDir::new("pidns");
    let script = dir.script("pid1.sh", &format!("{COUNT_ZOMBIES_SH}{PID1_SCRIPT}"));
    let out_file = dir.join("out");

    let out = run(isolated(
        "unshare",
        &[
            "--fork",
            "--pid",
            "--mount-proc",
            common::BIN,
            "-v",
            "--",
            "sh",
            &script,
            out_file.to_str().unwrap(),
        ],
    ));

    assert_eq!(out.code(), 42, "{out:?}");
    assert!(
        !out.stderr.contains("warning"),
        "PID 1 must not warn: {out:?}"
    );
    assert!(
        out.stderr.contains("forwarding SIGTERM to pid 2"),
        "{out:?}"
    );
    // Pids in the file and in the log are both namespace pids.
    let orphans = pid_list(&dir.join("out.orphans"));
    assert_eq!(orphans.len(), 50, "{orphans:?}");
    let reaped = out.reaped_pids();
    let missing: Vec<_> = orphans.difference(&reaped).collect();
    assert!(
        missing.is_empty(),
        "orphans not reaped by PID 1: {missing:?}\n{out:?}"
    );
}

/// Makes one long-lived orphan, publishes its pid once the intermediate
/// subshell is gone (so it has been re-parented), then waits for "go" and
/// kills it.
const ONE_ORPHAN_SCRIPT: &str = r#"
out=$1
( sleep 5 & echo $! > "$out.orphan" )
echo ready > "$out.ready"
n=0
while [ ! -e "$out.go" ] && [ $n -lt 250 ]; do sleep 0.02; n=$((n + 1)); done
kill "$(cat "$out.orphan")"
exit 0
"#;

/// Runs ONE_ORPHAN_SCRIPT under reaper-init and returns (parent pid of the
/// orphan, reaper-init's pid, stderr).
fn orphan_parent(extra_args: &[&str], env: Option<&str>) -> (i32, i32, String) {
    let dir = TempDir::new("subreaper");
    let script = dir.script("orphan.sh", ONE_ORPHAN_SCRIPT);
    let out_file = dir.join("out");

    let mut args = extra_args.to_vec();
    args.extend(["sh", &script, out_file.to_str().unwrap()]);
    let mut cmd = reaper(&args);
    if let Some(value) = env {
        cmd.env("REAPER_INIT_SUBREAPER", value);
    }
    let running = Running::spawn(cmd);
    let reaper_pid = running.pid();

    wait_for_file(&dir.join("out.ready"));
    let orphan: i32 = read(&dir.join("out.orphan"))
        .trim()
        .parse()
        .expect("orphan pid");
    let stat = proc_stat(orphan).expect("orphan is alive");
    assert_ne!(stat.state, 'Z');

    std::fs::write(dir.join("out.go"), "").unwrap();
    let out = running.wait(Duration::from_secs(5));
    assert_eq!(out.code(), 0, "{out:?}");
    (stat.ppid, reaper_pid, out.stderr)
}

#[test]
fn subreaper_flag_adopts_orphans() {
    for flag in ["-s", "--subreaper"] {
        let (parent, reaper_pid, stderr) = orphan_parent(&[flag], None);
        assert_eq!(
            parent, reaper_pid,
            "{flag}: orphan not adopted by reaper-init"
        );
        assert!(!stderr.contains("warning"), "{stderr}");
    }
}

#[test]
fn subreaper_env_var_adopts_orphans() {
    let (parent, reaper_pid, stderr) = orphan_parent(&[], Some("1"));
    assert_eq!(parent, reaper_pid, "orphan not adopted by reaper-init");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn without_subreaper_it_warns_and_orphans_go_elsewhere() {
    for env in [None, Some("0")] {
        let (parent, reaper_pid, stderr) = orphan_parent(&[], env);
        assert_ne!(
            parent, reaper_pid,
            "env {env:?}: adopted without --subreaper"
        );
        let warnings: Vec<_> = stderr
            .lines()
            .filter(|l| l.starts_with("reaper-init: warning:"))
            .collect();
        assert_eq!(warnings.len(), 1, "env {env:?}: {stderr}");
        assert!(warnings[0].contains("--subreaper"), "{stderr}");
    }
}
