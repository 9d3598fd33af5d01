//! Who a process is and whose child: CLONE_PARENT (the parent is the caller's parent), and
//! pids reused within a scenario, told apart by start time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::judge::{brief, describe_reap, describe_zombie};
use crate::event::{Event, ReapHow};

use super::Def;
use super::judge::{index, kernel_said};
use super::result::SkipReason;
use super::sys::{Waited, fork_then, global_pid, global_ppid, wait_for, wait4};

// ---------------------------------------------------------------------------------------------
// clone-parent

/// `clone-parent`: A > B; B clones C with CLONE_PARENT, so C is A's child.
#[derive(Debug, Serialize, Deserialize)]
pub struct CloneParent {
    pub a: u32,
    pub b: u32,
    pub c: u32,
    /// C's parent in `/proc`.
    pub c_ppid: u32,
    /// What A's two waits returned (B and C, in either order).
    pub a_waits: Vec<Waited>,
}

pub(super) static CLONE_PARENT: Def<CloneParent> = Def::new(
    "clone-parent",
    "B clones C with CLONE_PARENT: C is the child of B's parent A, which reaps it; the fork event names A as the parent and B as the caller",
    |ctx| {
        let notes = &ctx.notes;
        let a = fork_then(|| {
            notes.note("a", global_pid());
            let b = fork_then(|| {
                notes.note("b", global_pid());
                // SAFETY: a raw clone without CLONE_VM behaves like fork (the child runs on a
                // copy of this stack); the child only notes and leaves with _exit.
                let c = unsafe {
                    libc::syscall(
                        libc::SYS_clone,
                        (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
                        0usize,
                        0usize,
                        0usize,
                        0usize,
                    )
                };
                if c < 0 {
                    return 1;
                }
                if c == 0 {
                    notes.note("c", global_pid());
                    notes.note("c_ppid", global_ppid());
                    // SAFETY: leaving the clone.
                    unsafe { libc::_exit(9) }
                }
                0
            });
            if b.is_err() {
                return 1;
            }
            // B and C are both A's children.
            notes.note("a_wait", wait4(-1, 0));
            notes.note("a_wait", wait4(-1, 0));
            0
        })?;
        wait_for(a);
        let n = notes.collect()?;
        Ok(CloneParent {
            a: n.get("a")?,
            b: n.get("b")?,
            c: n.get("c")?,
            c_ppid: n.get("c_ppid")?,
            a_waits: n.all("a_wait")?,
        })
    },
    |p, j| {
        let (a, b, c) = (p.a, p.b, p.c);
        j.expected(format!("{c}: child of {a} (caller {b}), reaped by {a}"));
        kernel_said(j, p.c_ppid == a, || {
            format!("/proc showed {c}'s parent as {}, not {a}", p.c_ppid)
        });
        kernel_said(j, p.a_waits.iter().any(|w| w.exited(c, 9)), || {
            format!("{a}'s waits returned {:?}, not {c} exiting 9", p.a_waits)
        });
        let fork = j.one(j.forks(c), format_args!("fork events of {c}"));
        let mut fork_text = "no single fork".to_string();
        if let Some(e @ Event::Fork { parent, caller, .. }) = fork {
            fork_text = format!(
                "parent {}, caller {}",
                parent.pid,
                caller
                    .as_ref()
                    .map_or_else(|| "none".into(), |x| x.pid.to_string())
            );
            j.check(parent.pid == a, || {
                format!(
                    "{c}'s parent is {a} (CLONE_PARENT; /proc), not the caller {b}: {}",
                    brief(e)
                )
            });
            j.check(caller.as_ref().is_some_and(|x| x.pid == b), || {
                format!("the fork of {c} must name its caller {b}: {}", brief(e))
            });
        }
        let (zombie, reap) = j.zombie_then_reap(c, a, &[ReapHow::Wait4]);
        j.never_reparented(c, "its parent never exited");
        j.observed(format!(
            "{fork_text}; {}",
            reap.map_or_else(|| "no single reap".into(), describe_reap)
        ));
        j.predicted(zombie.map_or_else(|| "no single zombie".into(), describe_zombie));
    },
);

// ---------------------------------------------------------------------------------------------
// pid-reuse

/// Children forked and reaped in one go, whose pids the allocator comes back to.
const REUSE_BATCH: usize = 100;

/// `pid-reuse`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PidReuse {
    pub parent: u32,
    /// The pid each wait returned, in order (each the child just forked).
    pub waits: Vec<u32>,
    /// The first pid a wait returned twice.
    pub reused: Option<u32>,
    /// Threads created to move the pid allocator on.
    pub threads: u32,
    pub ms: u64,
}

pub(super) static PID_REUSE: Def<PidReuse> = Def::new(
    "pid-reuse",
    "forks and reaps children until a pid repeats (threads move the pid allocator round in between; skipped if no pid repeats within its budget: 10 s, or 80 % of validate's --timeout): every pid a wait returned has one reap per task (pid and start)",
    |ctx| {
        let parent = global_pid();
        let started = Instant::now();
        let reuse_for = ctx.budget;
        let mut waits = Vec::new();
        let mut seen = BTreeSet::new();
        let mut reused = None;
        let mut threads = 0u32;
        let mut fork_reap = |waits: &mut Vec<u32>| -> Result<Option<u32>> {
            let pid = fork_then(|| 0)?;
            let w = wait4(pid, 0);
            if w.ret != pid {
                bail!("wait4 returned {w:?}, not the child {pid}");
            }
            waits.push(pid as u32);
            Ok((!seen.insert(pid as u32)).then_some(pid as u32))
        };
        for _ in 0..REUSE_BATCH {
            fork_reap(&mut waits)?;
        }
        let lo = waits.iter().copied().min().unwrap_or(0);
        let hi = waits.iter().copied().max().unwrap_or(0);
        'outer: while started.elapsed() < reuse_for {
            // Take pids with threads until the allocator has come round to just below the
            // batch, then fork until a child gets a pid the batch had.
            let mut last = 0;
            let mut wrapped = false;
            while started.elapsed() < reuse_for {
                let tid = std::thread::spawn(|| {
                    // SAFETY: gettid has no preconditions.
                    (unsafe { libc::gettid() }) as u32
                })
                .join()
                .unwrap_or(0);
                threads += 1;
                if tid < last {
                    wrapped = true;
                }
                last = tid;
                if wrapped && tid + 20 >= lo {
                    if tid > hi {
                        // Went past the batch (its pids were taken): go round again.
                        wrapped = false;
                        continue;
                    }
                    break;
                }
            }
            while started.elapsed() < reuse_for {
                if let Some(pid) = fork_reap(&mut waits)? {
                    reused = Some(pid);
                    break 'outer;
                }
                if waits.last().is_some_and(|&p| p > hi || p + 40 < lo) {
                    continue 'outer;
                }
            }
        }
        Ok(PidReuse {
            parent,
            waits,
            reused,
            threads,
            ms: started.elapsed().as_millis() as u64,
        })
    },
    |p, j| {
        let r = p.parent;
        let Some(reused) = p.reused else {
            j.skip(SkipReason::NoPidReused {
                ms: p.ms,
                forks: p.waits.len(),
                threads: p.threads,
            });
            return;
        };
        let mut count: BTreeMap<u32, usize> = BTreeMap::new();
        for &w in &p.waits {
            *count.entry(w).or_default() += 1;
        }
        j.expected(format!(
            "{} waits by {r}, pid {reused} returned {} times: one wait4 reap per task",
            p.waits.len(),
            count[&reused]
        ));
        // The scenario's children, as the fork events name them: (pid, start).
        let forked: BTreeSet<(u32, u64)> = j
            .select(|e| matches!(e, Event::Fork { parent, thread: false, .. } if parent.pid == r))
            .iter()
            .filter_map(|e| match e {
                Event::Fork { child, .. } => Some((child.pid, child.start)),
                _ => None,
            })
            .collect();
        let reaps = index(j.events(), |e| match e {
            Event::Reap { task, .. } => Some(task.pid),
            _ => None,
        });
        let zombies = index(j.events(), |e| match e {
            Event::Zombie { task, .. } => Some(task.pid),
            _ => None,
        });
        let (mut good, mut zombie_count) = (0, 0);
        let mut wrong = Vec::new();
        for (&pid, &n) in &count {
            let rs = reaps.get(&pid).map(Vec::as_slice).unwrap_or_default();
            let zs = zombies.get(&pid).map(Vec::as_slice).unwrap_or_default();
            zombie_count += zs.len();
            let starts: BTreeSet<u64> = rs
                .iter()
                .filter_map(|e| match e {
                    Event::Reap { task, .. } => Some(task.start),
                    _ => None,
                })
                .collect();
            let zombie_starts: BTreeSet<u64> = zs
                .iter()
                .filter_map(|e| match e {
                    Event::Zombie { task, .. } => Some(task.start),
                    _ => None,
                })
                .collect();
            let by_wait = rs
                .iter()
                .filter(|e| matches!(e, Event::Reap { reaper: Some(x), how: ReapHow::Wait4, .. } if x.pid == r))
                .count();
            let unforked = starts
                .iter()
                .filter(|s| !forked.contains(&(pid, **s)))
                .count();
            let ok = rs.len() == n
                && by_wait == n
                && starts.len() == n
                && unforked == 0
                && zs.len() == n
                && zombie_starts.len() == n;
            if ok {
                good += 1;
            } else {
                wrong.push(format!(
                    "pid {pid}: {n} wait(s); reaps {:?}; {} zombie event(s) of {} start(s); {unforked} reap(s) of a task no fork created",
                    rs.iter()
                        .map(|e| match e {
                            Event::Reap { task, how, reaper, .. } => format!(
                                "{}@{} by {:?}",
                                how.as_str(),
                                task.start,
                                reaper.as_ref().map(|x| x.pid)
                            ),
                            _ => String::new(),
                        })
                        .collect::<Vec<_>>(),
                    zs.len(),
                    zombie_starts.len()
                ));
            }
        }
        j.check_lost(wrong.is_empty());
        j.check(wrong.is_empty(), || {
            format!(
                "{} of {} pids misrecorded, e.g. {}",
                wrong.len(),
                count.len(),
                wrong.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            )
        });
        let reused_starts: Vec<u64> = reaps
            .get(&reused)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| match e {
                Event::Reap { task, .. } => Some(task.start),
                _ => None,
            })
            .collect();
        j.observed(format!(
            "{good}/{} pids reaped once per task by wait4; pid {reused}: reaps of starts {reused_starts:?}",
            count.len()
        ));
        j.predicted(format!("{zombie_count} zombies of {r}"));
        j.note(format!(
            "pid {reused} came back after {} forks and {} threads ({} ms)",
            p.waits.len(),
            p.threads,
            p.ms
        ));
    },
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Proc;
    use crate::scenario::result::Status;
    use crate::scenario::test_util::*;

    // --- clone-parent -----------------------------------------------------------------------

    fn clone_parent() -> CloneParent {
        CloneParent {
            a: 10,
            b: 11,
            c: 12,
            c_ppid: 10,
            a_waits: vec![exited(11, 0), exited(12, 9)],
        }
    }

    #[test]
    fn clone_parent_names_the_real_parent_and_the_caller() {
        let good = vec![
            fork(10, 12, Some(11)),
            zombie(12, 10, false),
            reap(12, 10, ReapHow::Wait4),
        ];
        let r = judge(&CLONE_PARENT, &clone_parent(), &good);
        passes(&r);
        assert_eq!(
            r.observed_text,
            "parent 10, caller 11; reaped by 10 x (wait4)"
        );
        // The caller taken for the parent.
        let caller = replaced(&good, 0, fork(11, 12, None));
        fails(
            &judge(&CLONE_PARENT, &clone_parent(), &caller),
            "not the caller 11",
        );
        // No caller named.
        let anonymous = replaced(&good, 0, fork(10, 12, None));
        fails(
            &judge(&CLONE_PARENT, &clone_parent(), &anonymous),
            "must name its caller",
        );
        // The zombie waiting for the caller; the caller reaping it.
        let z = replaced(&good, 1, zombie(12, 11, false));
        fails(
            &judge(&CLONE_PARENT, &clone_parent(), &z),
            "names 11 as its parent",
        );
        let r2 = replaced(&good, 2, reap(12, 11, ReapHow::Wait4));
        fails(&judge(&CLONE_PARENT, &clone_parent(), &r2), "reaped by 11");
        // Two forks.
        let f2 = with(good.clone(), fork(11, 12, None));
        fails(
            &judge(&CLONE_PARENT, &clone_parent(), &f2),
            "2 fork events of 12",
        );
    }

    // --- pid-reuse --------------------------------------------------------------------------

    fn task(pid: u32, start: u64) -> Proc {
        Proc { start, ..p(pid) }
    }

    fn reuse_events() -> (PidReuse, Vec<Event>) {
        let pids = PidReuse {
            parent: 10,
            waits: vec![100, 101, 100],
            reused: Some(100),
            threads: 5,
            ms: 3,
        };
        let mut ev = Vec::new();
        for (pid, start) in [(100, 1000), (101, 1010), (100, 2000)] {
            ev.push(Event::Fork {
                ts: start,
                parent: p(10),
                child: task(pid, start),
                caller: None,
                thread: false,
                late: false,
            });
            ev.push(Event::Zombie {
                ts: start + 1,
                task: task(pid, start),
                parent: p(10),
                status: code(0),
                autoreaped: false,
                before_trace: false,
            });
            ev.push(Event::Reap {
                ts: start + 2,
                task: task(pid, start),
                reaper: Some(p(10)),
                how: ReapHow::Wait4,
                zombie_ns: Some(1),
            });
        }
        (pids, ev)
    }

    #[test]
    fn a_reused_pid_has_one_reap_per_task() {
        let (pids, good) = reuse_events();
        let r = judge(&PID_REUSE, &pids, &good);
        passes(&r);
        assert!(
            r.observed_text
                .contains("pid 100: reaps of starts [1000, 2000]"),
            "{r:?}"
        );
        // Both reaps given to the same task (the pid's first holder).
        let mut same = good.clone();
        if let Event::Reap { task: t, .. } = &mut same[8] {
            t.start = 1000;
        }
        fails(&judge(&PID_REUSE, &pids, &same), "1 of 2 pids misrecorded");
        // A reap of a task no fork created.
        let mut unforked = good.clone();
        if let Event::Reap { task: t, .. } = &mut unforked[8] {
            t.start = 5;
        }
        fails(&judge(&PID_REUSE, &pids, &unforked), "no fork created");
        // One reap missing, one not by wait.
        fails(&judge(&PID_REUSE, &pids, &without(&good, 8)), "misrecorded");
        let mut auto = good.clone();
        if let Event::Reap { how, .. } = &mut auto[2] {
            *how = ReapHow::Auto;
        }
        fails(&judge(&PID_REUSE, &pids, &auto), "misrecorded");
        // No pid came back in time: skipped, with the reason.
        let none = PidReuse {
            reused: None,
            ..reuse_events().0
        };
        let r = judge(&PID_REUSE, &none, &good);
        assert_eq!(r.status, Status::Skipped, "{r:?}");
        assert!(
            r.reason
                .unwrap()
                .starts_with("no pid was reused within 3 ms")
        );
    }
}
