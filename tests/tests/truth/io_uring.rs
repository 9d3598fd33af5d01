//! Reaps by io_uring.

use super::*;

/// A millisecond in nanoseconds.
const MS: u64 = 1_000_000;

/// Linux 6.7 added io_uring's `IORING_OP_WAITID`.
fn kernel_has_uring_waitid() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut v = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 7)
}

/// A parent reaps two children with io_uring's `IORING_OP_WAITID`: one already a zombie for
/// 20 ms when the request is submitted (reaped inline by `io_uring_enter`), one that exits
/// while the request waits (reaped in task work the parent runs). For each, the recording
/// must show one zombie and one reap by the parent with `how: io_uring`, at the time the
/// kernel reaped it, and its lifetime as a zombie within 1 ms of the truth.
///
/// The truth is in `CLOCK_BOOTTIME`, the clock of the records' `ts`: the reap happened
/// between the submission (`t_submit`) and the moment the parent had taken the completion
/// (`t_done`), and it became a zombie between its last moment before `_exit` (`t_exit`) and
/// the moment the parent first saw State Z in `/proc` (`t_zombie`, early child). So the reap's
/// `ts` lies in [t_submit, t_done] (in [t_exit, t_done] for the late child, whose exit may
/// come before the submission's end), and `zombie_ns` in [t_submit - t_zombie - 1 ms,
/// t_done - t_exit] (the zombie record is taken at the child's final switch, just after
/// `/proc` shows Z, hence the 1 ms allowance at the low end only). Before this was
/// recorded, these reaps were seen only at the release (`how: free`, an RCU grace period
/// late).
#[test]
fn reaps_by_io_uring_waitid_are_the_submitters_at_their_time() {
    require_root();
    if !kernel_has_uring_waitid() {
        eprintln!("skipped: io_uring has no waitid request before Linux 6.7");
        return;
    }
    let run = run_case("io-uring-waitid");
    let (trace, facts) = (&run.trace, &run.facts);
    let w = u(&facts.one("waiter")["pid"]);
    let mut c = Checks::new("io-uring-waitid", trace);
    c.focus(facts.pids());
    for which in ["early", "late"] {
        let note = facts
            .lines
            .iter()
            .find(|l| l["what"] == "uring" && l["which"] == which)
            .unwrap_or_else(|| panic!("broken case: no uring note for the {which} child"));
        let exit = facts
            .lines
            .iter()
            .find(|l| l["what"] == "exit_time" && l["which"] == which)
            .unwrap_or_else(|| panic!("broken case: no exit time of the {which} child"));
        let pid = u(&note["pid"]);
        let (t_exit, t_submit, t_done) =
            (u(&exit["t_exit"]), u(&note["t_submit"]), u(&note["t_done"]));
        let reap_from = if which == "early" { t_submit } else { t_exit };
        let lifetime_min = match u(&note["t_zombie"]) {
            0 => 0,
            t_zombie => t_submit.saturating_sub(t_zombie).saturating_sub(MS),
        };
        let lifetime_max = t_done - t_exit;
        c.exactly_one(
            events(trace, "zombie", "task", pid),
            &format!("zombie of the {which} child {pid}"),
        );
        let Some(r) = c.exactly_one(
            events(trace, "reap", "task", pid),
            &format!("reap of the {which} child {pid}"),
        ) else {
            continue;
        };
        c.check(r["how"] == "io_uring", || {
            format!("{pid} was reaped by an io_uring waitid request: how must be io_uring: {r}")
        });
        c.check(r["reaper"]["pid"] == w, || {
            format!("{pid} was reaped by {w}, which submitted the request: {r}")
        });
        let ts = u(&r["ts"]);
        c.check((reap_from..=t_done).contains(&ts), || {
            format!(
                "{pid} was reaped in [{reap_from}, {t_done}]; the record says {ts} ({:+.3} ms after): {r}",
                (ts as f64 - t_done as f64) / 1e6
            )
        });
        let lifetime = r["zombie_ns"].as_u64();
        eprintln!(
            "{which} child {pid}: zombie_ns {lifetime:?}, truth in [{lifetime_min}, {lifetime_max}] ns"
        );
        c.check(
            lifetime.is_some_and(|l| (lifetime_min..=lifetime_max).contains(&l)),
            || {
                format!(
                    "{pid} was a zombie for {lifetime_min}..={lifetime_max} ns; the record says {lifetime:?}: {r}"
                )
            },
        );
    }
    assert_ids_match_proc(&mut c, trace, facts);
    assert_possible(&mut c, trace, facts);
    consistency(&mut c, trace);
    c.finish();
    assert_consistent(trace);
}
