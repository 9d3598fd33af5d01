//! Waits racing the final switch.

use super::*;

/// 1000 children exit at once, each waited for at once while two threads load both CPUs, so a
/// wait often returns before the child's final context switch. Every pid a wait returned has
/// as many zombies (none autoreaped) and reaps (all `wait4`, with a zombie time) as waits.
#[test]
fn waits_racing_the_final_switch_are_reaps_by_wait() {
    let run = run_case("wait-race");
    let (trace, facts) = (&run.trace, &run.facts);
    let mut waits: BTreeMap<u64, usize> = BTreeMap::new();
    for w in facts.waits_labelled("race wait") {
        *waits.entry(u(&w["ret_global"])).or_default() += 1;
    }
    assert_eq!(
        waits.values().sum::<usize>(),
        1000,
        "broken case: 1000 waits expected"
    );

    let mut c = Checks::new("wait-race", trace);
    let lost = lost_records(trace);
    c.check(lost == 0, || format!("{lost} records lost"));
    let mut wrong = Vec::new();
    let all_reaps = by_pid(trace, "reap", "task");
    let all_zombies = by_pid(trace, "zombie", "task");
    for (&pid, &n) in &waits {
        let reaps = all_reaps.get(&pid).cloned().unwrap_or_default();
        let zombies = all_zombies.get(&pid).cloned().unwrap_or_default();
        let bad_reaps: Vec<&&Value> = reaps
            .iter()
            .filter(|r| r["how"] != "wait4" || !r["zombie_ns"].is_u64())
            .collect();
        let auto_zombies = zombies.iter().filter(|z| z["autoreaped"] == true).count();
        if reaps.len() != n || zombies.len() != n || !bad_reaps.is_empty() || auto_zombies > 0 {
            c.focus([pid]);
            wrong.push(format!(
                "pid {pid}: {n} wait(s) returned it; recorded {} reap(s) ({} not wait4 or without zombie_ns: {}), {} zombie(s) ({auto_zombies} autoreaped)",
                reaps.len(),
                bad_reaps.len(),
                bad_reaps
                    .iter()
                    .map(|r| format!("how {} zombie_ns {}", r["how"], r["zombie_ns"]))
                    .collect::<Vec<_>>()
                    .join("; "),
                zombies.len()
            ));
        }
    }
    c.check(wrong.is_empty(), || {
        format!(
            "{} of {} waited pids are misrecorded, e.g.:\n      {}",
            wrong.len(),
            waits.len(),
            wrong[..wrong.len().min(10)].join("\n      ")
        )
    });
    assert_possible(&mut c, trace, facts);
    consistency(&mut c, trace);
    c.finish();
    assert_consistent(trace);
}
