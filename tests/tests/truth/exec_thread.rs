//! exec from a non-leader thread.

use super::*;

/// A process whose second thread execs: the old leader dies inside the exec (`de_thread`) and
/// the exec'ing thread takes over its pid and start time. The process is one process: one
/// zombie and one reap for its pid, with the start time `/proc` showed before and after the
/// exec, reaped by its parent with the status of the new program (42).
#[test]
fn exec_from_a_non_leader_thread_is_one_process() {
    let run = run_case("exec-thread");
    let mut c = Checks::new("exec-thread", &run.trace);
    check_exec_thread(&mut c, &run);
    c.finish();
    assert_consistent(&run.trace);
}

/// The same, when the old leader had forked a child before the exec. The kernel hands the
/// child to the exec'ing thread, which is the same process: `/proc` shows the same parent pid
/// after the exec, and the new program reaps it. The recording must not show the child adopted
/// by any other process.
#[test]
fn exec_from_a_non_leader_thread_keeps_the_leaders_child() {
    let run = run_case("exec-thread-child");
    let (trace, facts) = (&run.trace, &run.facts);
    let mut c = Checks::new("exec-thread-child", trace);
    check_exec_thread(&mut c, &run);

    let x = u(&facts.one("leader before exec")["pid"]);
    let before = facts.one("child before exec");
    let after = facts.one("child after exec");
    let k = u(&before["pid"]);
    assert_eq!(before["ppid"], x, "broken case: {before}");
    let ppid = u(&after["ppid"]);
    c.focus([k]);
    let reparents = events(trace, "reparent", "orphan", k);
    c.check(reparents.len() <= 1, || {
        format!(
            "the child {k} is handed on once at most (the old leader to the exec'ing thread), found {} reparent events",
            reparents.len()
        )
    });
    for r in &reparents {
        c.check(r["reaper"]["pid"] == ppid, || {
            format!("the child {k} stays with process {ppid} (its /proc PPid after the exec), but the recording has it adopted by another: {r}")
        });
    }
    if let Some(z) = c.exactly_one(
        events(trace, "zombie", "task", k),
        &format!("zombie of the child {k}"),
    ) {
        c.check(z["parent"]["pid"] == ppid, || {
            format!("the child's zombie must name {ppid}: {z}")
        });
    }
    if let Some(r) = c.exactly_one(
        events(trace, "reap", "task", k),
        &format!("reap of the child {k}"),
    ) {
        c.check(r["reaper"]["pid"] == ppid && r["how"] == "wait4", || {
            format!("the exec'd program {ppid} reaped the child with wait4: {r}")
        });
    }
    c.finish();
    assert_consistent(trace);
}

fn check_exec_thread<'a>(c: &mut Checks<'a>, run: &'a Run) {
    let (trace, facts) = (&run.trace, &run.facts);
    let leader = facts.one("leader before exec");
    let after = facts.one("after exec");
    let thread = facts.one("exec thread");
    let waiter = u(&facts.one("waiter")["pid"]);
    let x = u(&leader["pid"]);
    let start = u(&leader["start"]);
    assert!(
        after["tid"] == x && after["pid"] == x && after["start"] == start,
        "broken case: after the exec /proc shows {after}, before {leader}"
    );
    assert!(
        thread["pid"] == x && thread["tid"] != x,
        "broken case: {thread}"
    );
    let w: Vec<&Value> = facts.waits_labelled("parent wait").collect();
    assert!(
        w.len() == 1 && w[0]["ret"] == x && w[0]["status"] == 42 << 8,
        "broken case: the parent's wait: {w:?}"
    );
    c.focus([x, waiter, u(&thread["tid"])]);

    if let Some(z) = c.exactly_one(
        events(trace, "zombie", "task", x),
        &format!("zombie of process {x} (one wait released it)"),
    ) {
        c.check(ticks(&z["task"]["start"]) == Some(start), || {
            format!("the zombie's start must be the process's (tick {start}, /proc before and after the exec): {z}")
        });
        c.check(z["task"]["tid"] == x, || {
            format!("the zombie is thread {x}: {z}")
        });
        c.check(z["status"] == json!({"code": 42}), || {
            format!("the process exited 42 (its parent's wait said so): {z}")
        });
        c.check(z["parent"]["pid"] == waiter, || {
            format!("the zombie's parent is {waiter}: {z}")
        });
    }
    if let Some(r) = c.exactly_one(
        events(trace, "reap", "task", x),
        &format!("reap of process {x}"),
    ) {
        c.check(ticks(&r["task"]["start"]) == Some(start), || {
            format!("the reap's start must be the process's (tick {start}): {r}")
        });
        c.check(r["reaper"]["pid"] == waiter && r["how"] == "wait4", || {
            format!("reaped by {waiter} with wait4: {r}")
        });
    }
    let execs: Vec<&Value> = trace
        .of_type("exec")
        .filter(|e| e["task"]["pid"] == x)
        .collect();
    if let Some(e) = c.exactly_one(execs, &format!("exec of process {x}")) {
        c.check(
            e["task"]["tid"] == x && ticks(&e["task"]["start"]) == Some(start),
            || {
                format!(
                    "after the exec the thread is {x} with the process's start (tick {start}): {e}"
                )
            },
        );
    }
    // Thread x exits twice, as two tasks: the old leader killed inside the exec (its group
    // lives on), then the new program, with the status its parent's wait returned.
    let exits: Vec<&Value> = events(trace, "exit", "task", x)
        .into_iter()
        .filter(|e| e["task"]["tid"] == x)
        .collect();
    c.check(exits.len() == 2, || {
        format!("two exits of thread {x} (the old leader's in the exec, the new program's), found {}: {exits:?}", exits.len())
    });
    if let [old, new] = exits[..] {
        c.check(old["group_dead"] == false, || {
            format!("the old leader's exit leaves its process alive: {old}")
        });
        c.check(new["group_dead"] == true && new["status"] == json!({"code": 42}), || {
            format!("the new program's exit ends the process with 42 (its parent's wait said so): {new}")
        });
    }
    assert_possible(c, trace, facts);
    consistency(c, trace);
}
