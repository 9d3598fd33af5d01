//! Signal forwarding, to the child or (with --group) to its whole process group.

mod common;

use std::time::Duration;

use common::{Running, TempDir, proc_stat, read, reaper, wait_for_file, wait_until};

/// Child that records each trapped signal in the file given as $1 and exits 42
/// on SIGTERM. Traps run between two short sleeps, so the latency is small.
const TRAP_SCRIPT: &str = r#"
out=$1
trap 'echo USR1 >> "$out"' USR1
trap 'echo HUP >> "$out"' HUP
trap 'echo INT >> "$out"' INT
trap 'echo TERM >> "$out"; exit 42' TERM
echo ready > "$out.ready"
# Bounded (~10 s), so a failed test cannot leave it running forever.
n=0; while [ $n -lt 500 ]; do sleep 0.02; n=$((n + 1)); done; exit 99
"#;

#[test]
fn signals_sent_to_reaper_init_reach_the_child() {
    let dir = TempDir::new("forward");
    let script = dir.script("trap.sh", TRAP_SCRIPT);
    let out_file = dir.join("got");
    let out_path = out_file.to_str().unwrap();

    let running = Running::spawn(reaper(&["-s", "-v", "sh", &script, out_path]));
    // Signals sent before the traps exist would kill the child by default action.
    wait_for_file(&dir.join("got.ready"));

    let mut expected = String::new();
    for (sig, name) in [
        (libc::SIGUSR1, "USR1"),
        (libc::SIGHUP, "HUP"),
        (libc::SIGINT, "INT"),
        (libc::SIGUSR1, "USR1"),
    ] {
        // One at a time: identical pending signals would be merged.
        running.signal(sig);
        expected.push_str(name);
        expected.push('\n');
        assert!(
            wait_until(Duration::from_secs(5), || read(&out_file) == expected),
            "child did not record SIG{name}: file = {:?}",
            read(&out_file)
        );
    }
    running.signal(libc::SIGTERM);
    let out = running.wait(Duration::from_secs(5));

    assert_eq!(out.code(), 42, "{out:?}");
    assert_eq!(read(&out_file), "USR1\nHUP\nINT\nUSR1\nTERM\n");
    for name in ["SIGUSR1", "SIGHUP", "SIGINT", "SIGTERM"] {
        assert!(
            out.stderr
                .contains(&format!("reaper-init: forwarding {name} to pid ")),
            "{name} forwarding not logged: {out:?}"
        );
    }
}

#[test]
fn realtime_signal_is_forwarded_and_death_passes_through() {
    let dir = TempDir::new("rt");
    let ready = dir.join("ready");
    let script = format!("touch '{}'; exec sleep 10", ready.display());
    let running = Running::spawn(reaper(&["-s", "sh", "-c", &script]));
    wait_for_file(&ready);

    // sleep has the default disposition for it: it dies, and we see 128 + signo.
    let sig = libc::SIGRTMIN() + 1;
    running.signal(sig);
    let out = running.wait(Duration::from_secs(5));
    assert_eq!(out.code(), 128 + sig, "{out:?}");
}

/// Grandchild: records USR1 as "grandchild" and exits; publishes its pid first.
const GRANDCHILD_SCRIPT: &str = r#"
out=$1
trap 'echo grandchild >> "$out"; exit 0' USR1
echo $$ > "$out.gc.tmp" && mv "$out.gc.tmp" "$out.gc"
# Bounded (~10 s), so a failed test cannot leave it running forever.
n=0; while [ $n -lt 500 ]; do sleep 0.02; n=$((n + 1)); done; exit 99
"#;

/// Child: starts the grandchild in the background, records USR1 as "child",
/// and on SIGTERM kills the grandchild and exits 7.
const GROUP_CHILD_SCRIPT: &str = r#"
out=$1
sh "$2" "$out" &
gc=$!
trap 'echo child >> "$out"' USR1
trap 'kill $gc 2>/dev/null; exit 7' TERM
n=0; while [ ! -e "$out.gc" ] && [ $n -lt 250 ]; do sleep 0.02; n=$((n + 1)); done
echo $$ > "$out.ready.tmp" && mv "$out.ready.tmp" "$out.ready"
# Bounded (~10 s), so a failed test cannot leave it running forever.
n=0; while [ $n -lt 500 ]; do sleep 0.02; n=$((n + 1)); done; exit 99
"#;

struct GroupRun {
    running: Running,
    out_file: std::path::PathBuf,
    child_pid: i32,
    grandchild_pid: i32,
    _dir: TempDir,
}

fn start_group_scripts(extra_args: &[&str]) -> GroupRun {
    let dir = TempDir::new("group");
    let child = dir.script("child.sh", GROUP_CHILD_SCRIPT);
    let grandchild = dir.script("grandchild.sh", GRANDCHILD_SCRIPT);
    let out_file = dir.join("got");

    let mut args = vec!["-s", "-v"];
    args.extend(extra_args);
    args.extend(["sh", &child, out_file.to_str().unwrap(), &grandchild]);
    let mut running = Running::spawn(reaper(&args));

    let ready = dir.join("got.ready");
    wait_for_file(&ready);
    let child_pid: i32 = read(&ready).trim().parse().expect("child pid");
    let grandchild_pid: i32 = read(&dir.join("got.gc"))
        .trim()
        .parse()
        .expect("grandchild pid");
    // With --group the child leads its own group, which the cleanup kill of
    // reaper-init's process group would not reach.
    if extra_args.contains(&"--group") {
        running.also_kill_group(child_pid);
    }
    GroupRun {
        running,
        out_file,
        child_pid,
        grandchild_pid,
        _dir: dir,
    }
}

#[test]
fn group_mode_signals_the_whole_process_group() {
    let run = start_group_scripts(&["--group"]);
    let reaper_pid = run.running.pid();

    // The child leads a new group, which the grandchild shares; reaper-init stays outside.
    let child_stat = proc_stat(run.child_pid).expect("child is running");
    let grandchild_stat = proc_stat(run.grandchild_pid).expect("grandchild is running");
    assert_eq!(child_stat.ppid, reaper_pid);
    assert_eq!(
        child_stat.pgrp, run.child_pid,
        "child is not a group leader"
    );
    assert_eq!(
        grandchild_stat.pgrp, run.child_pid,
        "grandchild not in child's group"
    );
    assert_eq!(proc_stat(reaper_pid).expect("reaper-init").pgrp, reaper_pid);

    run.running.signal(libc::SIGUSR1);
    let both = |s: &str| s.lines().any(|l| l == "child") && s.lines().any(|l| l == "grandchild");
    assert!(
        wait_until(Duration::from_secs(5), || both(&read(&run.out_file))),
        "USR1 did not reach both child and grandchild: {:?}",
        read(&run.out_file)
    );

    run.running.signal(libc::SIGTERM);
    let out = run.running.wait(Duration::from_secs(5));
    assert_eq!(out.code(), 7, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "forwarding SIGUSR1 to process group {}",
            run.child_pid
        )),
        "{out:?}"
    );
}

#[test]
fn without_group_only_the_child_is_signalled() {
    // The counterpart of the test above: proves the grandchild only got the
    // signal there because of --group.
    let run = start_group_scripts(&[]);
    let reaper_pid = run.running.pid();
    assert_eq!(proc_stat(run.child_pid).expect("child").pgrp, reaper_pid);

    run.running.signal(libc::SIGUSR1);
    assert!(
        wait_until(Duration::from_secs(5), || read(&run.out_file) == "child\n"),
        "USR1 did not reach the child: {:?}",
        read(&run.out_file)
    );
    // Give a wrongly delivered signal ample time to show up.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(&run.out_file), "child\n");

    run.running.signal(libc::SIGTERM);
    let out = run.running.wait(Duration::from_secs(5));
    assert_eq!(out.code(), 7, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("forwarding SIGUSR1 to pid {}", run.child_pid)),
        "{out:?}"
    );
}
