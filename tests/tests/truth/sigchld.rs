//! A parent ignoring SIGCHLD.

use super::*;

/// Children of a parent that ignores SIGCHLD are released at their exit: the parent's wait
/// never returns them (it fails with ECHILD) and they are gone from `/proc`. Each has one
/// `zombie` (autoreaped) naming that parent and one `reap` with `how: auto`, and every proc
/// object about any task of the case carries the ids `/proc` showed.
#[test]
fn children_of_a_parent_ignoring_sigchld_are_autoreaped() {
    check_autoreaped("sigchld-ignored", false);
}

/// The same inside a new pid namespace (the parent is PID 2 under the namespace's init), so
/// that `ns_pid` differs from `pid` and `pidns` from the initial namespace's.
#[test]
fn children_of_a_parent_ignoring_sigchld_in_a_pid_namespace_are_autoreaped() {
    check_autoreaped("sigchld-ignored-ns", true);
}

fn check_autoreaped(case: &'static str, ns: bool) {
    let run = run_case(case);
    let (trace, facts) = (&run.trace, &run.facts);
    let parent = facts.one("ignoring parent");
    let p = u(&parent["pid"]);
    let kids = facts.obs("autoreaped child");
    assert_eq!(kids.len(), 5, "broken case: {:?}", facts.lines);
    let w: Vec<&Value> = facts.waits_labelled("ignoring parent wait").collect();
    assert!(
        w.len() == 1 && w[0]["ret"] == -1 && w[0]["errno"] == libc::ECHILD,
        "broken case: the SIGCHLD-ignoring parent's wait must fail with ECHILD: {w:?}"
    );
    assert_eq!(
        facts
            .obs("autoreaped child after wait")
            .iter()
            .filter(|o| o["gone"] == true)
            .count(),
        5,
        "broken case: the children are gone from /proc after the wait"
    );
    if ns {
        assert!(
            kids.iter().all(|k| {
                let nspid = k["nspid"].as_array().expect("nspid");
                nspid.len() == 2 && nspid[1] != k["tid"]
            }),
            "broken case: the children live in a nested pid namespace: {kids:?}"
        );
    }

    let mut c = Checks::new(case, trace);
    c.focus(facts.pids());
    for k in &kids {
        let pid = u(&k["pid"]);
        assert_eq!(k["ppid"], p, "broken case: {k}");
        if let Some(z) = c.exactly_one(
            events(trace, "zombie", "task", pid),
            &format!("zombie of the autoreaped child {pid}"),
        ) {
            c.check(z["autoreaped"] == true, || {
                format!("the kernel released {pid} at once (its parent ignores SIGCHLD): autoreaped must be true: {z}")
            });
            c.check(z["parent"]["pid"] == p, || {
                format!("the zombie's parent is {p}: {z}")
            });
        }
        if let Some(r) = c.exactly_one(
            events(trace, "reap", "task", pid),
            &format!("reap of the autoreaped child {pid}"),
        ) {
            c.check(r["how"] == "auto", || {
                format!("no wait returned {pid} (ECHILD): how must be auto: {r}")
            });
        }
    }
    assert_ids_match_proc(&mut c, trace, facts);
    assert_possible(&mut c, trace, facts);
    consistency(&mut c, trace);
    c.finish();
    assert_consistent(trace);
}
