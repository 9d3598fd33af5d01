//! How a zombie ends in a wait: reaped by its parent's wait, not by a tracer's (ptrace), and
//! by waits racing the child's last switch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::judge::{brief, describe_reap, describe_zombie};
use crate::event::{Event, ReapHow};

use super::Def;
use super::judge::{index, kernel_said};
use super::sys::{
    FORK_RETRY_FOR, Stat, Waited, close, errno, fork_then, global_pid, pipe, read_u32,
    read_until_eof, sleep_ms, stat_of, wait_for, wait4, write_u32,
};

// ---------------------------------------------------------------------------------------------
// zombie

/// `zombie`: a child that exits while its parent sleeps.
#[derive(Debug, Serialize, Deserialize)]
pub struct ZombiePids {
    pub parent: u32,
    pub zombie: u32,
    /// How long the parent slept before it waited.
    pub seconds: f64,
    /// What the parent's wait returned.
    pub waited: Waited,
}

pub(super) static ZOMBIE: Def<ZombiePids> = Def::new(
    "zombie",
    "a child exits while its parent sleeps without waiting, then is reaped",
    |ctx| {
        let parent = global_pid();
        let zombie = fork_then(|| 7)?;
        std::thread::sleep(Duration::from_secs_f64(ctx.seconds));
        let waited = wait4(zombie, 0);
        Ok(ZombiePids {
            parent,
            zombie: zombie as u32,
            seconds: ctx.seconds,
            waited,
        })
    },
    |p, j| {
        let (z, parent, secs) = (p.zombie, p.parent, p.seconds);
        j.expected(format!("zombie of {parent} for {secs} s, then wait"));
        kernel_said(j, p.waited.exited(z, 7), || {
            format!(
                "the parent's wait returned {:?}, not {z} exiting 7",
                p.waited
            )
        });
        let (zombie, reap) = j.zombie_then_reap(z, parent, &[ReapHow::Wait4]);
        if let Some(e) = zombie {
            j.predicted(describe_zombie(e));
        }
        match reap {
            Some(Event::Reap {
                reaper: Some(by),
                how,
                zombie_ns: Some(ns),
                ..
            }) => {
                let lived = *ns as f64 / 1e9;
                j.observed(format!(
                    "reaped by {} {} after {lived:.2} s ({})",
                    by.pid,
                    by.comm,
                    how.as_str()
                ));
                if j.check(lived >= secs * 0.9, || {
                    format!("a zombie for only {lived:.2} s, expected {secs} s")
                }) {
                    j.note(format!(
                        "a zombie for {lived:.2} s until its parent called {}",
                        how.as_str()
                    ));
                }
            }
            Some(e) => {
                j.observed(describe_reap(e));
                j.fail(format!("{} has no zombie time", brief(e)));
            }
            None => j.observed("never reaped"),
        }
        j.never_reparented(z, "its parent never exited");
    },
)
.args(&["--seconds", "1"]);

// ---------------------------------------------------------------------------------------------
// ptrace-wait

/// `ptrace-wait`: parent P > tracee C; tracer T (P's other child) seized C.
#[derive(Debug, Serialize, Deserialize)]
pub struct PtraceWait {
    pub parent: u32,
    pub tracee: u32,
    pub tracer: u32,
    /// What the tracer's wait for C returned (C's exit: 7).
    pub tracer_wait: Waited,
    /// C in `/proc` after the tracer's wait: still a zombie of P.
    pub tracee_after_tracer_wait: Stat,
    /// What P's wait for C returned: the reap.
    pub parent_wait: Waited,
}

pub(super) static PTRACE_WAIT: Def<PtraceWait> = Def::new(
    "ptrace-wait",
    "a tracer that is not the parent waits for its tracee's exit, which only detaches it; the parent's wait is the reap, and no reap names the tracer",
    |ctx| {
        let notes = &ctx.notes;
        let parent = global_pid();
        let (go_read, go_write) = pipe()?;
        let (seized_read, seized_write) = pipe()?;
        let (done_read, done_write) = pipe()?;
        let tracee = fork_then(|| {
            close(go_write);
            read_until_eof(go_read);
            7
        })?;
        let tracer = fork_then(|| {
            close(go_write);
            // SAFETY: PTRACE_SEIZE of a process we may trace (root).
            let rc = unsafe {
                libc::ptrace(
                    libc::PTRACE_SEIZE,
                    tracee,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                )
            };
            if rc != 0 {
                eprintln!("PTRACE_SEIZE: {}", std::io::Error::last_os_error());
                return 1;
            }
            write_u32(seized_write, 1);
            // The tracee's exit is reported to its tracer first: the wait returns it, and as
            // the tracer is not its parent, the kernel hands it back to the parent, a zombie.
            notes.note("tracer_wait", wait4(tracee, libc::__WALL));
            notes.note("tracee_after_tracer_wait", stat_of(tracee as u32));
            write_u32(done_write, 1);
            0
        })?;
        close(seized_write);
        close(done_write);
        if read_u32(seized_read).is_none() {
            bail!("the tracer did not seize the tracee");
        }
        close(go_write); // the tracee exits
        if read_u32(done_read).is_none() {
            bail!("the tracer did not report");
        }
        let parent_wait = wait4(tracee, 0);
        wait_for(tracer);
        let n = notes.collect()?;
        Ok(PtraceWait {
            parent,
            tracee: tracee as u32,
            tracer: tracer as u32,
            tracer_wait: n.get("tracer_wait")?,
            tracee_after_tracer_wait: n.get("tracee_after_tracer_wait")?,
            parent_wait,
        })
    },
    |p, j| {
        let (pa, c, t) = (p.parent, p.tracee, p.tracer);
        j.expected(format!(
            "reaped by {pa} (wait4); tracer {t}'s wait only detaches"
        ));
        kernel_said(j, p.tracer_wait.exited(c, 7), || {
            format!(
                "the tracer's wait returned {:?}, not {c} exiting 7",
                p.tracer_wait
            )
        });
        let after = p.tracee_after_tracer_wait;
        kernel_said(j, after.state == 'Z' && after.ppid == pa, || {
            format!("after the tracer's wait /proc showed {c} as {after:?}, not a zombie of {pa}")
        });
        kernel_said(j, p.parent_wait.exited(c, 7), || {
            format!("the parent's wait returned {:?}, not {c}", p.parent_wait)
        });
        let by_tracer: Vec<&Event> = j
            .reaps(c)
            .into_iter()
            .filter(|e| matches!(e, Event::Reap { reaper: Some(r), .. } if r.pid == t))
            .collect();
        if let Some(e) = by_tracer.first() {
            j.fail(format!(
                "the tracer {t}, whose wait only detached {c}, is recorded as its reaper: {}",
                brief(e)
            ));
        }
        let (zombie, reap) = j.zombie_then_reap(c, pa, &[ReapHow::Wait4]);
        j.never_reparented(c, "its parent never exited");
        j.observed(reap.map_or_else(|| "no single reap".into(), describe_reap));
        j.predicted(zombie.map_or_else(|| "no single zombie".into(), describe_zombie));
        if j.result().status == super::result::Status::Pass {
            j.note(format!(
                "the tracer's wait returned {c} (status {:#x}) and left it a zombie of {pa}; {pa}'s wait reaped it",
                p.tracer_wait.status
            ));
        }
    },
);

// ---------------------------------------------------------------------------------------------
// wait-race

/// Children `wait-race` forks.
const RACE_CHILDREN: usize = 1000;

/// `wait-race`: what each wait returned, in order.
#[derive(Debug, Serialize, Deserialize)]
pub struct WaitRace {
    pub parent: u32,
    /// (pid returned, wait status) per child.
    pub waits: Vec<(i32, i32)>,
}

pub(super) static WAIT_RACE: Def<WaitRace> = Def::new(
    "wait-race",
    "1000 children, each waited for by a parent already blocked in wait4 (two busy threads load the CPUs), so the wait often returns before the child's last context switch: every pid a wait returned is one wait4 reap, never auto",
    |_| {
        let parent = global_pid();
        static STOP: AtomicBool = AtomicBool::new(false);
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(|| {
                    // Nice 19: they fill idle CPU time without starving the forks and waits.
                    // SAFETY: setting this thread's own priority.
                    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as u32, 19) };
                    let mut x: u64 = 0;
                    while !STOP.load(Ordering::Relaxed) {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        std::hint::black_box(x);
                    }
                })
            })
            .collect();
        let mut waits = Vec::with_capacity(RACE_CHILDREN);
        for i in 0..RACE_CHILDREN {
            // SAFETY: the child only reads the clock and calls _exit (this process is
            // multi-threaded).
            let mut pid = unsafe { libc::fork() };
            let deadline = Instant::now() + FORK_RETRY_FOR;
            while pid < 0 && errno() == libc::EAGAIN && Instant::now() < deadline {
                sleep_ms(1);
                // SAFETY: as above.
                pid = unsafe { libc::fork() };
            }
            if pid < 0 {
                STOP.store(true, Ordering::Relaxed);
                bail!("fork: {}", std::io::Error::last_os_error());
            }
            if pid == 0 {
                // Let the parent block in wait4 first (every other child).
                if i % 2 == 1 {
                    let mut t0 = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    };
                    let mut t = t0;
                    // SAFETY: reading the clock into our struct.
                    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t0) };
                    loop {
                        // SAFETY: as above.
                        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
                        let ns = (t.tv_sec - t0.tv_sec) * 1_000_000_000 + (t.tv_nsec - t0.tv_nsec);
                        if ns > 200_000 {
                            break;
                        }
                    }
                }
                // SAFETY: leaving the child.
                unsafe { libc::_exit((i % 100) as i32) };
            }
            let w = wait4(pid, 0);
            waits.push((w.ret, w.status));
        }
        STOP.store(true, Ordering::Relaxed);
        for s in spinners {
            let _ = s.join();
        }
        Ok(WaitRace { parent, waits })
    },
    |p, j| {
        let r = p.parent;
        let n = p.waits.len();
        j.expected(format!("{n} children, each reaped by {r}'s wait4"));
        kernel_said(
            j,
            n == RACE_CHILDREN && p.waits.iter().all(|(ret, _)| *ret > 0),
            || format!("{n} waits, not all returning a child"),
        );
        let mut waited: BTreeMap<u32, usize> = BTreeMap::new();
        for (ret, _) in &p.waits {
            *waited.entry(*ret as u32).or_default() += 1;
        }
        let (mut by_wait, mut auto, mut missing, mut zombies, mut autoreaped) = (0, 0, 0, 0, 0);
        let mut wrong = Vec::new();
        let reaps = index(j.events(), |e| match e {
            Event::Reap { task, .. } => Some(task.pid),
            _ => None,
        });
        let zombie_events = index(j.events(), |e| match e {
            Event::Zombie { task, .. } => Some(task.pid),
            _ => None,
        });
        for (&pid, &count) in &waited {
            let rs = reaps.get(&pid).map(Vec::as_slice).unwrap_or_default();
            let zs = zombie_events
                .get(&pid)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let good = rs
                .iter()
                .filter(|e| {
                    matches!(e, Event::Reap { reaper: Some(x), how: ReapHow::Wait4, zombie_ns: Some(_), .. } if x.pid == r)
                })
                .count();
            let za = zs
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        Event::Zombie {
                            autoreaped: true,
                            ..
                        }
                    )
                })
                .count();
            by_wait += good;
            auto += rs
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        Event::Reap {
                            how: ReapHow::Auto,
                            ..
                        }
                    )
                })
                .count();
            missing += count.saturating_sub(rs.len());
            zombies += zs.len();
            autoreaped += za;
            if rs.len() != count || good != count || zs.len() != count || za > 0 {
                wrong.push(format!(
                    "{pid}: {count} wait(s) returned it; {}; {} zombie event(s), {za} autoreaped",
                    if rs.is_empty() {
                        "no reap".to_string()
                    } else {
                        rs.iter()
                            .map(|e| describe_reap(e))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    zs.len()
                ));
            }
        }
        j.check_lost(wrong.is_empty());
        j.check(wrong.is_empty(), || {
            format!(
                "{} of {} waited pids misrecorded, e.g. {}",
                wrong.len(),
                waited.len(),
                wrong.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            )
        });
        j.observed(format!(
            "{by_wait} reaped by {r} (wait4), {auto} auto, {missing} missing"
        ));
        j.predicted(format!("{zombies} zombies of {r}, {autoreaped} autoreaped"));
    },
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ReaperKind;
    use crate::scenario::test_util::*;

    #[test]
    fn zombie_lifetime_and_reaper() {
        let pids = ZombiePids {
            parent: 5,
            zombie: 6,
            seconds: 1.0,
            waited: exited(6, 7),
        };
        let long = |how, by| Event::Reap {
            ts: 2,
            task: p(6),
            reaper: Some(p(by)),
            how,
            zombie_ns: Some(1_000_000_000),
        };
        let good = vec![zombie(6, 5, false), long(ReapHow::Wait4, 5)];
        let r = judge(&ZOMBIE, &pids, &good);
        passes(&r);
        assert_eq!(r.observed_text, "reaped by 5 x after 1.00 s (wait4)");
        assert_eq!(r.predicted_text, "zombie of 5 x");
        fails(
            &judge(
                &ZOMBIE,
                &pids,
                &replaced(&good, 1, reap(6, 5, ReapHow::Wait4)),
            ),
            "a zombie for only",
        );
        fails(
            &judge(&ZOMBIE, &pids, &replaced(&good, 1, long(ReapHow::Free, 5))),
            "(free)",
        );
        fails(&judge(&ZOMBIE, &pids, &without(&good, 1)), "no reap events");
        let moved = with(good.clone(), reparent(3, 6, 5, 1, ReaperKind::Init, 1));
        fails(&judge(&ZOMBIE, &pids, &moved), "recorded as adopted");
    }

    // --- ptrace-wait ------------------------------------------------------------------------

    fn ptrace() -> PtraceWait {
        PtraceWait {
            parent: 10,
            tracee: 11,
            tracer: 12,
            tracer_wait: exited(11, 7),
            tracee_after_tracer_wait: Stat {
                state: 'Z',
                ppid: 10,
                flags: 0,
                start: 1,
            },
            parent_wait: exited(11, 7),
        }
    }

    #[test]
    fn a_tracers_wait_is_no_reap() {
        let good = vec![zombie(11, 10, false), reap(11, 10, ReapHow::Wait4)];
        let r = judge(&PTRACE_WAIT, &ptrace(), &good);
        passes(&r);
        assert_eq!(r.observed_text, "reaped by 10 x (wait4)");
        assert_eq!(r.predicted_text, "zombie of 10 x");
        // The reap recorded as the tracer's.
        let by_tracer = replaced(&good, 1, reap(11, 12, ReapHow::Wait4));
        fails(&judge(&PTRACE_WAIT, &ptrace(), &by_tracer), "the tracer 12");
        // The tracer's reap as well as the parent's.
        let both = with(good.clone(), reap(11, 12, ReapHow::Wait4));
        fails(&judge(&PTRACE_WAIT, &ptrace(), &both), "the tracer 12");
        // A second zombie (handed back to the parent, as if it died twice).
        let z2 = with(good.clone(), zombie(11, 12, false));
        fails(
            &judge(&PTRACE_WAIT, &ptrace(), &z2),
            "2 zombie events of 11",
        );
        // A phantom adoption by the parent.
        let moved = with(good.clone(), reparent(5, 11, 12, 10, ReaperKind::Init, 10));
        fails(
            &judge(&PTRACE_WAIT, &ptrace(), &moved),
            "recorded as adopted",
        );
        // An auto-reap.
        let auto = replaced(&good, 1, reap(11, 10, ReapHow::Auto));
        fails(&judge(&PTRACE_WAIT, &ptrace(), &auto), "(auto)");
        // The kernel's facts do not say what the scenario needs.
        let reaped_by_tracer = PtraceWait {
            tracee_after_tracer_wait: Stat::GONE,
            ..ptrace()
        };
        fails(
            &judge(&PTRACE_WAIT, &reaped_by_tracer, &good),
            "did not behave",
        );
    }

    // --- wait-race --------------------------------------------------------------------------

    #[test]
    fn raced_waits_are_reaps_by_wait() {
        let pids = WaitRace {
            parent: 10,
            waits: (100..100 + RACE_CHILDREN as i32).map(|p| (p, 0)).collect(),
        };
        let mut good = Vec::new();
        for pid in 100..100 + RACE_CHILDREN as u32 {
            good.push(zombie(pid, 10, false));
            good.push(reap(pid, 10, ReapHow::Wait4));
        }
        let r = judge(&WAIT_RACE, &pids, &good);
        passes(&r);
        assert_eq!(
            r.observed_text,
            "1000 reaped by 10 (wait4), 0 auto, 0 missing"
        );
        let auto = replaced(&good, 1, reap(100, 10, ReapHow::Auto));
        fails(
            &judge(&WAIT_RACE, &pids, &auto),
            "1 of 1000 waited pids misrecorded",
        );
        let autoreaped = replaced(&good, 0, zombie(100, 10, true));
        fails(&judge(&WAIT_RACE, &pids, &autoreaped), "1 autoreaped");
        let extra = with(good.clone(), reap(100, 10, ReapHow::Wait4));
        fails(&judge(&WAIT_RACE, &pids, &extra), "misrecorded");
        let missing = without(&good, 1);
        fails(&judge(&WAIT_RACE, &pids, &missing), "no reap");
        let lost = |events: &[Event]| {
            with(
                events.to_vec(),
                Event::Lost {
                    ts: 1,
                    what: "reap".into(),
                    count: 3,
                },
            )
        };
        // Records reported lost (an upper bound, machine-wide), with every reap the waits
        // returned recorded: noted, not failed.
        let r = judge(&WAIT_RACE, &pids, &lost(&good));
        passes(&r);
        assert!(
            r.notes.iter().any(|n| n.starts_with(
                "3 kernel records reported lost (at most, machine-wide), none of them"
            )),
            "{r:?}"
        );
        // With one of them missing: the recording cannot be checked.
        fails(
            &judge(&WAIT_RACE, &pids, &lost(&missing)),
            "3 kernel records lost: the recording cannot be checked",
        );
    }
}
