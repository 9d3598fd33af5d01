//! Quick pid reuse.

use super::*;

/// Forks and reaps until a pid repeats: per pid, the recording has as many reaps as waits
/// returned it, each of a different task (start time), and nothing else. Lost records may
/// excuse `vanished`/`free` reaps and missing ones, never more than were lost.
#[test]
fn reused_pids_keep_every_reap() {
    let run = run_case("pid-reuse");
    let (trace, facts) = (&run.trace, &run.facts);
    let note = facts.note("pid_reuse");
    if note["reused"] == 0 {
        eprintln!(
            "SKIPPED: no pid was reused in {} forks ({} ms): {note}",
            note["forks"], note["ms"]
        );
        return;
    }
    eprintln!("pid-reuse: {note}");
    let mut waits: HashMap<u64, usize> = HashMap::new();
    for w in facts.waits_labelled("reuse wait") {
        *waits.entry(u(&w["ret_global"])).or_default() += 1;
    }
    let reaps = by_pid(trace, "reap", "task");
    let forked: BTreeSet<(u64, u64)> = trace
        .of_type("fork")
        .map(|e| (u(&e["child"]["pid"]), u(&e["child"]["start"])))
        .collect();
    let lost = lost_records(trace);

    let mut c = Checks::new("pid-reuse", trace);
    c.focus([u(&note["reused"])]);
    let (mut missing, mut extra, mut not_wait, mut dup_start, mut unforked) = (0, 0, 0, 0, 0);
    let mut examples = Vec::new();
    for (&pid, &n) in &waits {
        let rs = reaps.get(&pid).map(Vec::as_slice).unwrap_or(&[]);
        if rs.len() < n {
            missing += n - rs.len();
        }
        if rs.len() > n {
            extra += rs.len() - n;
        }
        let nw = rs.iter().filter(|r| r["how"] != "wait4").count();
        not_wait += nw;
        let starts: BTreeSet<u64> = rs.iter().map(|r| u(&r["task"]["start"])).collect();
        dup_start += rs.len() - starts.len();
        if lost == 0 {
            unforked += starts
                .iter()
                .filter(|s| !forked.contains(&(pid, **s)))
                .count();
        }
        if (rs.len() != n || nw > 0 || starts.len() != rs.len()) && examples.len() < 10 {
            examples.push(format!(
                "pid {pid}: {n} wait(s), reaps {:?}",
                rs.iter()
                    .map(|r| format!("{}@{}", r["how"], r["task"]["start"]))
                    .collect::<Vec<_>>()
            ));
        }
    }
    eprintln!(
        "pid-reuse: {} waits over {} pids; lost {lost}; missing {missing}, extra {extra}, not wait4 {not_wait}",
        waits.values().sum::<usize>(),
        waits.len()
    );
    c.check(extra == 0, || {
        format!("{extra} reap(s) beyond the waits that returned their pid; e.g. {examples:?}")
    });
    c.check(dup_start == 0, || {
        format!(
            "{dup_start} reap(s) of a task already reaped (same pid and start); e.g. {examples:?}"
        )
    });
    c.check(unforked == 0, || {
        format!("{unforked} reap(s) of a (pid, start) no fork event created")
    });
    if lost == 0 {
        c.check(missing == 0 && not_wait == 0, || {
            format!("no record lost, yet {missing} wait(s) without a reap and {not_wait} reap(s) not by wait4; e.g. {examples:?}")
        });
    } else {
        c.check(missing + not_wait <= lost as usize, || {
            format!("{lost} records lost cannot excuse {missing} missing and {not_wait} non-wait4 reaps; e.g. {examples:?}")
        });
    }
    if lost == 0 {
        // (A lost wait record turns a reap into `auto` or `vanished`: excused above.)
        assert_possible(&mut c, trace, facts);
    }
    consistency(&mut c, trace);
    c.finish();
    assert_consistent(trace);
}
