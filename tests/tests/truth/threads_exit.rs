//! A multi-threaded father whose threads all exit at once.

use super::*;

/// A process of 8 threads, one of which (not the leader) forked a child, dies with
/// exit_group: the child is handed from thread to thread while they all exit, and finally to
/// the subreaper above. No adoption may be judged a `mismatch` (the kernel is right by
/// definition; a prediction made from a snapshot the threads' exits overtook must say so with
/// another verdict), and the last one names the parent `/proc` shows once the process is gone.
/// Forty such processes die at the same time (the race is the point), three times over.
#[test]
fn orphans_of_processes_whose_threads_exit_at_once() {
    let run = run_case("threads-exit");
    let (trace, facts) = (&run.trace, &run.facts);
    let subreaper = u(&facts.one("subreaper")["pid"]);
    let notes: Vec<&Value> = facts
        .lines
        .iter()
        .filter(|l| l["kind"] == "note" && l["what"] == "threads_exit")
        .collect();
    assert_eq!(notes.len(), 120, "broken case: 3 x 40 fathers");

    // Each father process's forking thread, by the process's pid.
    let forkers: HashMap<u64, u64> = facts
        .obs("forking thread")
        .into_iter()
        .map(|o| (u(&o["pid"]), u(&o["tid"])))
        .collect();

    let mut c = Checks::new("threads-exit", trace);
    c.focus([subreaper]);
    for note in notes {
        let (f, k) = (u(&note["father"]), u(&note["orphan"]));
        let after = facts
            .obs("orphan after")
            .into_iter()
            .find(|o| o["tid"] == k)
            .unwrap_or_else(|| panic!("broken case: no observation of orphan {k}"));
        let ppid = u(&after["ppid"]);
        assert!(
            ppid != f,
            "broken case: the orphan's parent did not change: {after}"
        );
        assert_eq!(
            ppid, subreaper,
            "broken case: the subreaper adopts the orphan"
        );
        c.focus([f, k]);
        let mut reparents = events(trace, "reparent", "orphan", k);
        reparents.sort_by_key(|e| u(&e["ts"]));
        let verdicts: Vec<String> = reparents
            .iter()
            .map(|r| {
                format!(
                    "{} -> {} ({}, {})",
                    r["father"]["tid"], r["reaper"]["tid"], r["kind"], r["verdict"]
                )
            })
            .collect();
        eprintln!("threads-exit: adoptions of {k} (father {f}): {verdicts:?}");
        c.check(!reparents.is_empty(), || {
            format!("the orphan {k} was adopted, but no reparent event")
        });
        for r in &reparents {
            c.check(r["verdict"] != "mismatch", || {
                format!("an adoption judged a mismatch (the kernel chose, the prediction disagrees): {r}")
            });
        }
        if let Some(last) = reparents.last() {
            c.check(last["reaper"]["pid"] == ppid, || {
                format!("the last adoption of {k} must name {ppid} (/proc PPid once the process is gone): {last}")
            });
        }
        // The chain, in the recording's order (what a reader of the file follows): the first
        // hop leaves the thread that forked the orphan, each hop's reaper is the thread the
        // next hop leaves, and no thread hands the orphan on twice.
        let chain = events(trace, "reparent", "orphan", k);
        if let Some(first) = chain.first() {
            let forker = forkers.get(&f).copied();
            c.check(Some(u(&first["father"]["tid"])) == forker, || {
                format!(
                    "the first hop of {k} leaves the thread that forked it ({forker:?}): {first}"
                )
            });
        }
        for pair in chain.windows(2) {
            c.check(pair[0]["reaper"]["tid"] == pair[1]["father"]["tid"], || {
                format!(
                    "a hop of {k} must name the thread the next hop leaves: {} then {}",
                    pair[0], pair[1]
                )
            });
        }
        let fathers: BTreeSet<u64> = chain.iter().map(|r| u(&r["father"]["tid"])).collect();
        c.check(fathers.len() == chain.len(), || {
            format!("a thread handed {k} on twice: {verdicts:?}")
        });
        // Both processes whole: each forked, exited, a zombie and reaped once (the father's
        // eight threads each exited once: the leader's is the process's exit).
        for (who, pid) in [("father", f), ("orphan", k)] {
            let forks: Vec<&Value> = trace
                .of_type("fork")
                .filter(|e| e["child"]["pid"] == pid && e["thread"] != true)
                .collect();
            c.exactly_one(forks, &format!("fork of the {who} {pid}"));
            let exits = events(trace, "exit", "task", pid);
            let threads = if pid == f { 8 } else { 1 };
            let tids: BTreeSet<u64> = exits.iter().map(|e| u(&e["task"]["tid"])).collect();
            c.check(exits.len() == threads && tids.len() == threads, || {
                format!(
                    "the {who} {pid} has {threads} threads, each exits once: {} exits of {} threads",
                    exits.len(),
                    tids.len()
                )
            });
        }
        if let Some(z) = c.exactly_one(
            events(trace, "zombie", "task", f),
            &format!("zombie of the father {f}"),
        ) {
            c.check(z["parent"]["pid"] == subreaper, || {
                format!("the father's zombie waits for the subreaper {subreaper}: {z}")
            });
        }
        if let Some(r) = c.exactly_one(
            events(trace, "reap", "task", f),
            &format!("reap of the father {f}"),
        ) {
            c.check(
                r["reaper"]["pid"] == subreaper && r["how"] == "wait4",
                || format!("the subreaper {subreaper} reaped the father with wait4: {r}"),
            );
        }
        if let Some(z) = c.exactly_one(
            events(trace, "zombie", "task", k),
            &format!("zombie of the orphan {k}"),
        ) {
            c.check(z["parent"]["pid"] == ppid, || {
                format!("the orphan's zombie waits for {ppid}: {z}")
            });
        }
        if let Some(r) = c.exactly_one(
            events(trace, "reap", "task", k),
            &format!("reap of the orphan {k}"),
        ) {
            c.check(r["reaper"]["pid"] == ppid && r["how"] == "wait4", || {
                format!("{ppid} reaped the orphan with wait4: {r}")
            });
        }
    }
    assert_possible(&mut c, trace, facts);
    consistency(&mut c, trace);
    c.finish();
    assert_consistent(trace);
}
