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

/// A parent reaps two children with io_uring's `IORING_OP_WAITID` in each of io_uring's
/// ways of running a request (inline, `IOSQE_ASYNC` on an io-wq worker, on the
/// `IORING_SETUP_SQPOLL` thread): one already a zombie for 20 ms when the request is
/// submitted (reaped where the request is issued), one that exits while the request waits
/// (reaped in task work run by the request's task). For each, the recording must show one
/// zombie and one reap by the parent's process with `how: io_uring`, by the thread that ran
/// it, at the time the kernel reaped it, and its lifetime as a zombie within 1 ms of the truth.
///
/// Who ran the reap, by the tids and names `/proc` listed for the parent's io_uring threads:
/// the parent itself inline; an `iou-wrk-*` worker for the early child on io-wq (the late one's
/// task work may run in the parent, or in the worker if the child exited before the worker
/// issued the request); the `iou-sqp-*` thread for both under SQPOLL.
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
    let waiter = facts.one("waiter");
    let (w, w_tid) = (u(&waiter["pid"]), u(&waiter["tid"]));
    let mut c = Checks::new("io-uring-waitid", trace);
    c.focus(facts.pids());
    for mode in ["inline", "io-wq", "sqpoll"] {
        let threads: Vec<(u64, String)> = facts
            .lines
            .iter()
            .find(|l| l["what"] == "io_threads" && l["mode"] == mode)
            .unwrap_or_else(|| panic!("broken case: no io_threads note for {mode}"))["threads"]
            .as_array()
            .expect("threads")
            .iter()
            .map(|t| {
                let tid = t[0].as_str().and_then(|s| s.parse().ok()).or(t[0].as_u64());
                (tid.expect("tid"), t[1].as_str().expect("name").to_string())
            })
            .collect();
        let named = |prefix: &str| -> Vec<u64> {
            threads
                .iter()
                .filter(|(_, n)| n.starts_with(prefix))
                .map(|(t, _)| *t)
                .collect()
        };
        for which in ["early", "late"] {
            let note = facts
                .lines
                .iter()
                .find(|l| l["what"] == "uring" && l["which"] == which && l["mode"] == mode)
                .unwrap_or_else(|| panic!("broken case: no uring note for the {which} child"));
            let exit = facts
                .lines
                .iter()
                .find(|l| l["what"] == "exit_time" && l["which"] == which && l["mode"] == mode)
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
            let child = format!("the {which} child {pid} ({mode})");
            c.exactly_one(
                events(trace, "zombie", "task", pid),
                &format!("zombie of {child}"),
            );
            let Some(r) = c.exactly_one(
                events(trace, "reap", "task", pid),
                &format!("reap of {child}"),
            ) else {
                continue;
            };
            c.check(r["how"] == "io_uring", || {
                format!(
                    "{child} was reaped by an io_uring waitid request: how must be io_uring: {r}"
                )
            });
            c.check(r["reaper"]["pid"] == w, || {
                format!("{child} was reaped in {w}, which submitted the request: {r}")
            });
            let ran_it: Vec<u64> = match (mode, which) {
                ("inline", _) => vec![w_tid],
                ("io-wq", "early") => named("iou-wrk"),
                ("io-wq", _) => [vec![w_tid], named("iou-wrk")].concat(),
                _ => named("iou-sqp"),
            };
            let by = r["reaper"]["tid"].as_u64().unwrap_or(0);
            eprintln!("{child}: reaped by tid {by}, /proc's io_uring threads {threads:?}");
            c.check(ran_it.contains(&by), || {
                format!(
                    "{child} was reaped by one of the tids {ran_it:?} (/proc: W {w_tid}, io_uring threads {threads:?}); the record names {by}: {r}"
                )
            });
            let ts = u(&r["ts"]);
            c.check((reap_from..=t_done).contains(&ts), || {
                format!(
                    "{child} was reaped in [{reap_from}, {t_done}]; the record says {ts} ({:+.3} ms after): {r}",
                    (ts as f64 - t_done as f64) / 1e6
                )
            });
            let lifetime = r["zombie_ns"].as_u64();
            eprintln!(
                "{child}: zombie_ns {lifetime:?}, truth in [{lifetime_min}, {lifetime_max}] ns"
            );
            c.check(
                lifetime.is_some_and(|l| (lifetime_min..=lifetime_max).contains(&l)),
                || {
                    format!(
                        "{child} was a zombie for {lifetime_min}..={lifetime_max} ns; the record says {lifetime:?}: {r}"
                    )
                },
            );
        }
    }
    assert_ids_match_proc(&mut c, trace, facts);
    assert_possible(&mut c, trace, facts);
    consistency(&mut c, trace);
    c.finish();
    assert_consistent(trace);
}
