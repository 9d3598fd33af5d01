//! CLONE_PARENT.

use super::*;

/// B clones C with CLONE_PARENT: C's parent is A, B's parent (`/proc` PPid of C), and A reaps
/// it. The fork event of C names A as the parent (and, if the recording has a `caller`, B as
/// the caller); C's zombie names A, and A reaps it.
#[test]
fn clone_parent_gives_the_child_to_the_callers_parent() {
    let run = run_case("clone-parent");
    let (trace, facts) = (&run.trace, &run.facts);
    let note = facts.note("clone_parent");
    let (b, ch) = (u(&note["caller"]), u(&note["child"]));
    let a = u(&facts.one("A")["pid"]);
    let c_obs = facts.one("C");
    assert!(
        c_obs["pid"] == ch && c_obs["ppid"] == a,
        "broken case: /proc shows C as {c_obs}, A is {a}"
    );
    assert!(
        facts
            .waits_labelled("A waits")
            .any(|w| w["ret"] == ch && w["status"] == 9 << 8),
        "broken case: A did not reap C"
    );

    let mut c = Checks::new("clone-parent", trace);
    c.focus([a, b, ch]);
    let forks: Vec<&Value> = trace
        .of_type("fork")
        .filter(|e| e["child"]["pid"] == ch)
        .collect();
    if let Some(f) = c.exactly_one(forks, &format!("fork of C {ch}")) {
        c.check(f["parent"]["pid"] == a, || {
            format!("C's parent is A {a} (/proc PPid; CLONE_PARENT), not the caller B {b}: {f}")
        });
        match f.get("caller") {
            Some(caller) => {
                c.check(caller["pid"] == b, || {
                    format!("the fork's caller is B {b}: {f}")
                });
            }
            None => eprintln!("clone-parent: the fork event has no `caller` field: {f}"),
        }
    }
    if let Some(z) = c.exactly_one(
        events(trace, "zombie", "task", ch),
        &format!("zombie of C {ch}"),
    ) {
        c.check(z["parent"]["pid"] == a, || {
            format!("C's zombie waits for A {a}: {z}")
        });
    }
    if let Some(r) = c.exactly_one(
        events(trace, "reap", "task", ch),
        &format!("reap of C {ch}"),
    ) {
        c.check(r["reaper"]["pid"] == a && r["how"] == "wait4", || {
            format!("A {a} reaped C with wait4: {r}")
        });
    }
    assert_possible(&mut c, trace, facts);
    consistency(&mut c, trace);
    c.finish();
    assert_consistent(trace);
}
