//! A ptracer that is not the parent.

use super::*;

/// A ptracer that is not the parent: its wait returns the tracee (status 7) but only detaches
/// it; `/proc` then still shows the tracee as a zombie of its parent, which reaps it. The
/// recording must show one zombie of the parent and one reap, by the parent.
#[test]
fn a_ptracer_that_is_not_the_parent_does_not_reap() {
    let run = run_case("ptrace");
    let (trace, facts) = (&run.trace, &run.facts);
    let note = facts.note("ptrace");
    let (p, ch, t) = (u(&note["parent"]), u(&note["tracee"]), u(&note["tracer"]));

    // The kernel's side of the story.
    let tw: Vec<&Value> = facts.waits_labelled("tracer wait").collect();
    assert!(
        tw.len() == 1 && tw[0]["ret"] == ch && tw[0]["status"] == 7 << 8,
        "broken case: the tracer's wait did not return the tracee: {tw:?}"
    );
    let after = facts.one("tracee after tracer wait");
    assert!(
        after["state"] == "Z" && after["ppid"] == p,
        "broken case: after the tracer's wait /proc shows {after}"
    );
    let pw: Vec<&Value> = facts.waits_labelled("parent wait").collect();
    assert!(
        pw.len() == 1 && pw[0]["ret"] == ch,
        "broken case: the parent did not reap the tracee: {pw:?}"
    );

    let mut c = Checks::new("ptrace", trace);
    c.focus([p, ch, t]);
    let reaps = events(trace, "reap", "task", ch);
    c.check(!reaps.iter().any(|r| r["reaper"]["pid"] == t), || {
        format!("the tracer {t} (whose wait only detached the tracee) is recorded as its reaper")
    });
    if let Some(r) = c.exactly_one(reaps, &format!("reap of the tracee {ch}")) {
        c.check(r["reaper"]["pid"] == p && r["how"] == "wait4", || {
            format!("the tracee's reap must name the parent {p} with wait4 (the parent's wait released it): {r}")
        });
    }
    if let Some(z) = c.exactly_one(
        events(trace, "zombie", "task", ch),
        &format!("zombie of the tracee {ch}"),
    ) {
        c.check(z["parent"]["pid"] == p, || {
            format!("the tracee's zombie must name its parent {p} (/proc PPid while a zombie): {z}")
        });
    }
    assert_possible(&mut c, trace, facts);
    consistency(&mut c, trace);
    c.finish();
    assert_consistent(trace);
}
