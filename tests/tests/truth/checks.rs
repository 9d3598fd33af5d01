//! Checks shared by the cases.

use super::*;

/// Every proc object in the recording that names a task of the facts (same tid and start
/// tick) carries the ids `/proc` showed for it: `pid` (Tgid), `ns_pid` and `ns_tid` (the last
/// NStgid and NSpid entries), `pidns` (`/proc/TID/ns/pid`), all non-zero. A proc object with a
/// known tid but another start time is reported too (no tid is reused in these cases).
pub(crate) fn assert_ids_match_proc(c: &mut Checks, trace: &Trace, facts: &Facts) {
    let tasks = facts.tasks();
    let mut bad: BTreeMap<String, usize> = BTreeMap::new();
    for e in &trace.events {
        for (field, p) in procs(e) {
            let Some(tid) = p["tid"].as_u64() else {
                continue;
            };
            let Some(t) = tasks.get(&tid) else { continue };
            let last = |k: &str| t[k].as_array().and_then(|a| a.last()).map(u);
            let want = [
                ("pid", Some(u(&t["pid"]))),
                ("ns_pid", last("nstgid")),
                ("ns_tid", last("nspid")),
                ("pidns", Some(u(&t["pidns"]))),
            ];
            let mut wrong = Vec::new();
            if ticks(&p["start"]) != Some(u(&t["start"])) {
                wrong.push(format!(
                    "start {} (tick {:?}) but /proc said tick {}",
                    p["start"],
                    ticks(&p["start"]),
                    t["start"]
                ));
            }
            for (k, w) in want {
                let got = p[k].as_u64();
                if got == Some(0) || (w.is_some() && got != w) {
                    wrong.push(format!("{k} {} but /proc said {}", p[k], json!(w)));
                }
            }
            if !wrong.is_empty() {
                let key = format!(
                    "{} event's `{field}` (tid {tid}, /proc label {:?}): {}",
                    e["type"],
                    t["label"],
                    wrong.join(", ")
                );
                *bad.entry(key).or_default() += 1;
            }
        }
    }
    for (msg, n) in bad {
        c.failures.push(format!("{msg} [{n} event(s)]"));
    }
}

/// Events that cannot have happened given the facts, for every pid the facts know:
/// - a task (pid, start) with two zombie events or two reaps;
/// - more reaps by wait than waits that released the pid, or a wait-reap naming a reaper
///   whose wait did not release it (a ptracer's wait, a sibling, ...);
/// - a (non-autoreaped) zombie event for a pid that no releasing wait returned and that
///   `/proc` never showed as a zombie, or more of them than the waits that released it;
/// - a task reaped more often than it was released (any `how`);
/// - an `auto` reap of a pid a wait released, or one naming a reaper other than the parent
///   `/proc` showed for it.
pub(crate) fn assert_possible(c: &mut Checks, trace: &Trace, facts: &Facts) {
    let pids = facts.pids();
    let seen_zombie: BTreeSet<u64> = facts
        .lines
        .iter()
        .filter(|l| l["kind"] == "obs" && l["state"] == "Z")
        .map(|l| u(&l["tid"]))
        .collect();
    let mut last_ppid: HashMap<u64, u64> = HashMap::new();
    for l in &facts.lines {
        if l["kind"] == "obs" && l["gone"] != true {
            last_ppid.insert(u(&l["tid"]), u(&l["ppid"]));
        }
    }
    let mut releasers: HashMap<u64, Vec<u64>> = HashMap::new();
    for (pid, waiter) in facts.reaping_waits() {
        releasers.entry(pid).or_default().push(waiter);
    }
    // Impossibilities by kind, reported once per kind with a few examples.
    let mut found: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut zombies: HashMap<(u64, u64), usize> = HashMap::new();
    let mut reaps: HashMap<(u64, u64), usize> = HashMap::new();
    let mut real_zombies: HashMap<u64, usize> = HashMap::new();
    let mut wait_reaps: HashMap<u64, usize> = HashMap::new();
    let mut all_reaps: HashMap<u64, usize> = HashMap::new();
    for e in &trace.events {
        let task = &e["task"];
        let Some(pid) = task["pid"].as_u64() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let id = (pid, task["start"].as_u64().unwrap_or(0));
        match e["type"].as_str() {
            Some("zombie") => {
                *zombies.entry(id).or_default() += 1;
                if e["autoreaped"] != true && e["before_trace"] != true {
                    *real_zombies.entry(pid).or_default() += 1;
                }
            }
            Some("reap") => {
                *reaps.entry(id).or_default() += 1;
                *all_reaps.entry(pid).or_default() += 1;
                let waiters = releasers.get(&pid).cloned().unwrap_or_default();
                let how = e["how"].as_str().unwrap_or("");
                if how == "wait4" || how == "waitid" || how == "io_uring" {
                    *wait_reaps.entry(pid).or_default() += 1;
                    let by = e["reaper"]["pid"].as_u64();
                    if !by.is_some_and(|b| waiters.contains(&b)) {
                        found
                            .entry("reaped by a wait of a process whose wait did not release it")
                            .or_default()
                            .push(format!("{pid} by {by:?} (released by {waiters:?}): {e}"));
                    }
                }
                if how == "auto" {
                    if !waiters.is_empty() {
                        found
                            .entry("recorded as auto-reaped, but a wait released it")
                            .or_default()
                            .push(format!("{pid} (released by {waiters:?}): {e}"));
                    }
                    if let (Some(by), Some(&ppid)) =
                        (e["reaper"]["pid"].as_u64(), last_ppid.get(&pid))
                        && by != ppid
                    {
                        found
                            .entry("auto-reaped by a process other than its parent in /proc")
                            .or_default()
                            .push(format!("{pid} by {by}, parent {ppid}: {e}"));
                    }
                }
            }
            _ => {}
        }
    }
    for (id, n) in zombies {
        if n > 1 {
            found
                .entry("a task with several zombie events")
                .or_default()
                .push(format!("{id:?}: {n}"));
        }
    }
    for (id, n) in reaps {
        if n > 1 {
            found
                .entry("a task reaped several times")
                .or_default()
                .push(format!("{id:?}: {n}"));
        }
    }
    for pid in &pids {
        let released = releasers.get(pid).map_or(0, Vec::len);
        let z = real_zombies.get(pid).copied().unwrap_or(0);
        let seen = seen_zombie.contains(pid);
        if z > released.max(usize::from(seen)) {
            found
                .entry("more zombie events than the kernel shows zombies (releasing waits, or Z in /proc)")
                .or_default()
                .push(format!(
                    "pid {pid}: {z} zombie event(s), {released} releasing wait(s), {} Z in /proc",
                    if seen { "some" } else { "no" }
                ));
        }
        let w = wait_reaps.get(pid).copied().unwrap_or(0);
        if w > released {
            found
                .entry("more reaps by wait than waits that released the pid")
                .or_default()
                .push(format!(
                    "pid {pid}: {w} reap(s) by wait, {released} releasing wait(s)"
                ));
        }
        let all = all_reaps.get(pid).copied().unwrap_or(0);
        if all > released.max(1) {
            found
                .entry("more reaps than releases")
                .or_default()
                .push(format!(
                    "pid {pid}: {all} reaps, {released} releasing wait(s)"
                ));
        }
    }
    for (what, cases) in found {
        let n = cases.len();
        let shown: Vec<&String> = cases.iter().take(3).collect();
        c.failures.push(if n == 1 {
            format!("impossible: {what}: {}", shown[0])
        } else {
            format!(
                "impossible: {what}: {n} cases, e.g.\n      {}",
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n      ")
            )
        });
    }
}

/// The consistency of `assert_consistent`, as failures rather than a panic: every reap
/// follows a zombie of the same (pid, start) unless `vanished`, nothing is a zombie or reaped
/// twice, every zombie is reaped by the end.
pub(crate) fn consistency(c: &mut Checks, trace: &Trace) {
    let mut zombies: HashMap<(u64, u64), bool> = HashMap::new();
    let mut problems = Vec::new();
    for (i, e) in trace.events.iter().enumerate() {
        let t = &e["task"];
        let id = (
            t["pid"].as_u64().unwrap_or(0),
            t["start"].as_u64().unwrap_or(0),
        );
        match e["type"].as_str() {
            Some("zombie") => {
                let twice = zombies.insert(id, false).is_some();
                if twice {
                    problems.push(format!("event {i}: {id:?} became a zombie twice"));
                }
            }
            Some("reap") => match zombies.get_mut(&id) {
                Some(true) => problems.push(format!("event {i}: {id:?} reaped twice")),
                Some(r) => *r = true,
                None if e["how"] == "vanished" => {}
                None => problems.push(format!("event {i}: reap of {id:?} without a zombie")),
            },
            _ => {}
        }
    }
    let mut unreaped: Vec<_> = zombies
        .iter()
        .filter(|(_, r)| !**r)
        .map(|(id, _)| *id)
        .collect();
    unreaped.sort();
    if !unreaped.is_empty() {
        problems.push(format!("zombies never reaped: {unreaped:?}"));
    }
    const MAX: usize = 20;
    let n = problems.len();
    for p in problems.into_iter().take(MAX) {
        c.failures.push(format!("consistency: {p}"));
    }
    if n > MAX {
        c.failures
            .push(format!("consistency: ... {} more problems", n - MAX));
    }
}

/// Total `lost` records of every kind but `children`.
pub(crate) fn lost_records(trace: &Trace) -> u64 {
    trace
        .of_type("lost")
        .filter(|e| e["what"] != "children")
        .map(|e| u(&e["count"]))
        .sum()
}
