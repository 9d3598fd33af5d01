//! Fathers with many children.

use super::*;

/// A father with 300 children (the old bound was 256) exits: every one is adopted by the
/// subreaper above, and the recording says so for each.
#[test]
fn every_child_of_a_father_with_300_children_is_adopted() {
    check_many_children(280, 20);
}

/// A father with 10,000 children, some of them zombies, exits: the recording names the
/// subreaper as the new parent of every one, `/proc` agrees, and nothing is lost.
#[test]
fn every_child_of_a_father_with_10000_children_is_adopted() {
    check_many_children(9900, 100);
}

/// `many-children LIVING ZOMBIES` under a subreaper: one `reparent` per child (and per zombie,
/// marked as one) naming the subreaper; `/proc/PID/stat` shows the subreaper as the parent of
/// every child after the hand-off; the exit says how many children follow, none truncated;
/// no record of any kind lost; the subreaper reaps each child once with wait4.
fn check_many_children(living: usize, zombies: usize) {
    let run = run_case_with(
        "many-children",
        &[&living.to_string(), &zombies.to_string()],
    );
    let (trace, facts) = (&run.trace, &run.facts);
    let list = |v: &Value| -> Vec<u64> { v.as_array().expect("a list").iter().map(u).collect() };
    let mut father = None;
    let (mut kids, mut dead) = (Vec::new(), Vec::new());
    for note in facts.notes("many_children") {
        father = Some(u(&note["father"]));
        kids.extend(list(&note["children"]));
        dead.extend(list(&note["zombies"]));
    }
    let f = father.expect("broken case: no many_children note");
    assert_eq!((kids.len(), dead.len()), (living, zombies), "broken case");
    let w = u(&facts.one("subreaper")["pid"]);
    let all: BTreeSet<u64> = kids.iter().chain(&dead).copied().collect();
    let waited: BTreeSet<u64> = facts
        .waits_labelled("subreaper wait")
        .filter(|x| x["reaped"] == true)
        .map(|x| u(&x["ret_global"]))
        .collect();
    assert_eq!(waited, all, "broken case: the subreaper reaped every child");

    let mut c = Checks::new("many-children", trace);
    c.focus([f, w]);
    // What /proc showed after the hand-off: the subreaper is every child's parent.
    let mut ppid_of = HashMap::new();
    for note in facts.notes("many_children_ppids") {
        let states = note["states"].as_str().expect("states").as_bytes();
        for (i, (pid, ppid)) in list(&note["pids"])
            .into_iter()
            .zip(list(&note["ppids"]))
            .enumerate()
        {
            ppid_of.insert(pid, (ppid, states[i]));
        }
    }
    let not_adopted: Vec<_> = all
        .iter()
        .filter(|k| ppid_of.get(k).is_none_or(|&(ppid, _)| ppid != w))
        .map(|k| (k, ppid_of.get(k)))
        .collect();
    assert!(
        not_adopted.is_empty(),
        "broken case: /proc does not show the subreaper {w} as the parent of {} children: {:?}",
        not_adopted.len(),
        not_adopted.iter().take(10).collect::<Vec<_>>()
    );
    let total = (living + zombies) as u64;
    if let Some(exit) = c.exactly_one(events(trace, "exit", "task", f), &format!("exit of {f}")) {
        c.check(
            exit["children"] == total && exit.get("children_truncated").is_none_or(|t| t == false),
            || format!("{total} children followed, none truncated: {exit}"),
        );
    }
    let lost: Vec<String> = trace
        .of_type("lost")
        .filter(|e| u(&e["count"]) > 0)
        .map(|e| e.to_string())
        .collect();
    c.check(lost.is_empty(), || format!("records lost: {lost:?}"));
    let adoptions = by_pid(trace, "reparent", "orphan");
    let mut bad = Vec::new();
    for &k in &all {
        let found: Vec<&&Value> = adoptions
            .get(&k)
            .map(|v| v.iter().filter(|r| r["father"]["pid"] == f).collect())
            .unwrap_or_default();
        let zombie = dead.contains(&k);
        let proc_ppid = ppid_of.get(&k).map(|&(ppid, _)| ppid);
        let right = found.len() == 1
            && found[0]["reaper"]["pid"] == w
            && found[0]["reaper"]["pid"].as_u64() == proc_ppid
            && found[0]["kind"] == "subreaper"
            && found[0]["verdict"] == "match"
            // Omitted when false.
            && (found[0]["zombie"] == true) == zombie;
        if !right {
            bad.push(format!(
                "{k} (zombie: {zombie}, /proc ppid {proc_ppid:?}): [{}]",
                found
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    c.check(bad.is_empty(), || {
        format!(
            "{} of {total} children without exactly one reparent naming the subreaper {w}, the parent /proc shows (kind subreaper, verdict match, zombie as it was); e.g.\n      {}",
            bad.len(),
            bad.iter().take(5).cloned().collect::<Vec<_>>().join("\n      ")
        )
    });
    let extra = events(trace, "reparent", "father", f).len() as u64;
    c.check(extra == total, || {
        format!("{extra} reparent events for the father, {total} expected")
    });
    let mut bad = Vec::new();
    let all_reaps = by_pid(trace, "reap", "task");
    for &k in &all {
        let reaps = all_reaps.get(&k).cloned().unwrap_or_default();
        if reaps.len() != 1 || reaps[0]["reaper"]["pid"] != w || reaps[0]["how"] != "wait4" {
            bad.push(format!(
                "{k}: {:?}",
                reaps
                    .iter()
                    .map(|r| format!("{} by {}", r["how"], r["reaper"]["pid"]))
                    .collect::<Vec<_>>()
            ));
        }
    }
    c.check(bad.is_empty(), || {
        format!(
            "{} children not reaped exactly once by the subreaper {w} with wait4: {:?}",
            bad.len(),
            bad.iter().take(10).collect::<Vec<_>>()
        )
    });
    assert_possible(&mut c, trace, facts);
    consistency(&mut c, trace);
    c.finish();
    assert_consistent(trace);
}
