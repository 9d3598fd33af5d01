//! Threads as fathers and reapers: a thread adopts for its process, a non-leader thread
//! execs, and multi-threaded fathers exit all at once, handing their orphans on.

use std::collections::BTreeSet;
use std::os::fd::RawFd;
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::judge::{self, brief, describe_reap, describe_zombie, kernel_said, reaper};
use crate::event::{Event, ReapHow, ReaperKind, Verdict};

use super::Def;
use super::ctx::{Notes, exec_stage};
use super::sys::{
    Stat, Waited, close, fork_then, global_pid, global_ppid, global_tid, pipe, poll_until,
    read_u32, read_until_eof, reap_all, set_subreaper, sleep_ms, stat_of, stat_self, wait4,
    write_u32,
};

// ---------------------------------------------------------------------------------------------
// thread-reaper

/// `thread-reaper`: ids are thread ids.
#[derive(Debug, Serialize, Deserialize)]
pub struct ThreadReaper {
    /// The main thread.
    pub reaper: u32,
    /// The thread that forked the orphan and exited.
    pub father: u32,
    pub orphan: u32,
    /// What the main thread's wait returned.
    pub waited: Waited,
}

pub(super) static THREAD_REAPER: Def<ThreadReaper> = Def::new(
    "thread-reaper",
    "the thread that forked a child exits; a sibling thread adopts the child",
    |ctx| {
        let notes = &ctx.notes;
        let reaper = global_tid();
        let forked = std::thread::scope(|s| {
            s.spawn(move || {
                notes.note("father", global_tid());
                fork_then(|| {
                    sleep_ms(300);
                    0
                })
            })
            .join()
        });
        let orphan = match forked {
            Ok(Ok(pid)) => pid,
            _ => bail!("the forking thread failed"),
        };
        let waited = wait4(orphan, 0);
        Ok(ThreadReaper {
            reaper,
            father: notes.collect()?.get("father")?,
            orphan: orphan as u32,
            waited,
        })
    },
    |p, j| {
        j.adoptions(&[p.orphan], reaper(p.reaper, p.reaper, ReaperKind::Thread));
        kernel_said(j, p.waited.exited(p.orphan, 0), || {
            format!("the main thread's wait returned {:?}", p.waited)
        });
        j.zombie_then_reap(p.orphan, p.reaper, &[ReapHow::Wait4]);
        j.note(format!("the forking thread {} exited", p.father));
    },
);

// ---------------------------------------------------------------------------------------------
// exec-thread

/// `exec-thread`: W > X; X's main thread forked K, then X's second thread Y exec'd.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecThread {
    /// W, which reaps X.
    pub parent: u32,
    /// X.
    pub process: u32,
    /// Y's thread id before the exec.
    pub exec_thread: u32,
    /// K, forked by X's main thread before the exec.
    pub child: u32,
    /// X's start time (`/proc` ticks) before the exec.
    pub leader_start: u64,
    /// The exec'd program: its (global) pid and thread id and `/proc` start time.
    pub after_pid: u32,
    pub after_tid: u32,
    pub after_start: u64,
    /// K in `/proc` after the exec.
    pub child_after: Stat,
    /// The exec'd program's wait for K.
    pub child_wait: Waited,
    /// W's wait for X (the new program exits 42).
    pub parent_wait: Waited,
}

pub(super) static EXEC_THREAD: Def<ExecThread> = Def::new(
    "exec-thread",
    "a process's second thread execs while its main thread has a child: one process, one zombie and one reap; the child stays with the process, adopted by no one else",
    |ctx| {
        let notes = &ctx.notes;
        let parent = global_pid();
        let x = fork_then(|| {
            notes.note("process", global_pid());
            notes.note("leader_start", stat_self().start);
            let mut fds = [0; 2];
            // SAFETY: a pipe without O_CLOEXEC: its write end survives the exec.
            if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                return 1;
            }
            let (k_read, k_write) = (fds[0], fds[1]);
            let Ok(k) = fork_then(|| {
                close(k_write);
                read_until_eof(k_read);
                0
            }) else {
                return 1;
            };
            close(k_read);
            notes.note("child", k);
            let stage = [k_write.to_string(), k.to_string()];
            let mut cmd = match exec_stage("exec-thread", notes, &stage) {
                Ok(c) => c,
                Err(_) => return 1,
            };
            // The main thread waits at the end of the scope until the exec ends it.
            std::thread::scope(|s| {
                s.spawn(move || {
                    notes.note("exec_thread", global_tid());
                    let err = std::os::unix::process::CommandExt::exec(&mut cmd);
                    eprintln!("exec from a thread: {err}");
                    // SAFETY: leaving the whole process.
                    unsafe { libc::_exit(1) }
                });
            });
            1
        })?;
        let parent_wait = wait4(x, 0);
        let n = notes.collect()?;
        Ok(ExecThread {
            parent,
            process: n.get("process")?,
            exec_thread: n.get("exec_thread")?,
            child: n.get("child")?,
            leader_start: n.get("leader_start")?,
            after_pid: n.get("after_pid")?,
            after_tid: n.get("after_tid")?,
            after_start: n.get("after_start")?,
            child_after: n.get("child_after")?,
            child_wait: n.get("child_wait")?,
            parent_wait,
        })
    },
    |p, j| {
        let (w, x, k) = (p.parent, p.process, p.child);
        j.expected(format!(
            "{x}: one zombie, reaped by {w} (exit 42); child {k} stays with {x}"
        ));
        kernel_said(
            j,
            p.after_pid == x && p.after_tid == x && p.after_start == p.leader_start,
            || {
                format!(
                    "after the exec /proc showed {}/{} started at {}, before {x} started at {}",
                    p.after_pid, p.after_tid, p.after_start, p.leader_start
                )
            },
        );
        kernel_said(j, p.child_after.ppid == x, || {
            format!("after the exec /proc showed {k}'s parent as {}, not {x}", p.child_after.ppid)
        });
        kernel_said(j, p.parent_wait.exited(x, 42), || {
            format!("{w}'s wait returned {:?}, not {x} exiting 42", p.parent_wait)
        });
        kernel_said(j, p.child_wait.exited(k, 0), || {
            format!("the exec'd program's wait returned {:?}, not {k}", p.child_wait)
        });
        // The process: one zombie (the leader's identity, status 42), one reap by W.
        let (zombie, reap) = j.zombie_then_reap(x, w, &[ReapHow::Wait4]);
        if let Some(Event::Zombie { task, status, .. }) = zombie {
            j.check(
                task.tid == x && crate::identity::start_in_tick(task.start, p.leader_start),
                || format!("the zombie of {x} must be thread {x} with the process's start (tick {}): {task:?}", p.leader_start),
            );
            j.check(status.code == Some(42), || {
                format!("the zombie of {x} must carry the new program's exit code 42: {status:?}")
            });
        }
        let execs = j.select(|e| matches!(e, Event::Exec { task, .. } if task.pid == x));
        if let Some(Event::Exec { task, .. }) = j.one(execs, format_args!("exec events of {x}")) {
            j.check(task.tid == x, || format!("after the exec the thread is {x}: {task:?}"));
        }
        // Thread x exits twice, as two tasks: the old leader inside the exec, then the new
        // program, with the status W's wait returned.
        let exits = j.select(|e| matches!(e, Event::Exit { task, .. } if task.tid == x));
        j.check(exits.len() == 2, || {
            format!("two exits of thread {x} (the old leader's in the exec, the new program's), found {}", exits.len())
        });
        if let [Event::Exit { group_dead: old, .. }, Event::Exit { group_dead: new, status, .. }] =
            exits[..]
        {
            j.check(!old && *new && status.code == Some(42), || {
                format!("the old leader's exit leaves the process alive, the new program's ends it with 42: group_dead {old} then {new}, {status:?}")
            });
        }
        j.never_reparented(x, "its parent W never exited");
        // The leader's child K: handed at most once, to the exec'ing thread of the same
        // process; a zombie of X, reaped by X.
        let reparents = j.reparents(k);
        j.check(reparents.len() <= 1, || {
            format!("{k} handed on {} times: {}", reparents.len(), reparents.iter().map(|e| brief(e)).collect::<Vec<_>>().join("; "))
        });
        for e in &reparents {
            if let Event::Reparent { reaper, .. } = e {
                j.check(reaper.as_ref().is_some_and(|r| r.pid == x), || {
                    format!("{k} stays with process {x} (/proc), but is recorded as adopted by another: {}", brief(e))
                });
            }
        }
        let (_, k_reap) = j.zombie_then_reap(k, x, &[ReapHow::Wait4]);
        j.observed(format!(
            "{}; {k} {}",
            reap.map_or_else(|| "no single reap".into(), describe_reap),
            k_reap.map_or_else(|| "not reaped once".into(), describe_reap)
        ));
        j.predicted(match reparents.first().and_then(|e| judge::predicted_reaper(e)) {
            Some(r) => format!("{} (for {k})", super::result::describe(&r)),
            None => zombie.map_or_else(|| "no single zombie".into(), describe_zombie),
        });
        j.note(format!(
            "thread {} exec'd: the process kept pid {x} and its start; {k} went from the old leader to it, {} reparent event(s)",
            p.exec_thread,
            reparents.len()
        ));
    },
)
.after_exec(|ctx| {
    // The program the second thread exec'd: it is process X, with the leader's pid.
    let k_write: RawFd = ctx.stage_arg(0)?;
    let k: u32 = ctx.stage_arg(1)?;
    let notes = &ctx.notes;
    notes.note("after_pid", global_pid());
    notes.note("after_tid", global_tid());
    notes.note("after_start", stat_self().start);
    notes.note("child_after", stat_of(k));
    close(k_write); // K exits
    notes.note("child_wait", wait4(k as i32, 0));
    Ok(42)
});

// ---------------------------------------------------------------------------------------------
// threads-exit

/// Rounds of `threads-exit`, and fathers per round.
const THREAD_BATCHES: usize = 2;
const THREAD_FATHERS: usize = 20;
/// Threads of each father, the main one included.
const FATHER_THREADS: usize = 8;

/// One orphan of `threads-exit`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ThreadsOrphan {
    pub father: u32,
    pub orphan: u32,
    /// Its parent in `/proc` once its father's process was gone.
    pub ppid: u32,
}

/// `threads-exit`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ThreadsExit {
    /// The subreaper (the scenario's main process).
    pub reaper: u32,
    pub orphans: Vec<ThreadsOrphan>,
}

/// A process of `FATHER_THREADS` threads; a non-leader thread forks a child; then the whole
/// group exits at once (exit_group). Returns only on failure.
fn doomed_father(notes: &Notes) -> i32 {
    let f = global_pid();
    let (Ok((r, w)), Ok((k_r, k_w)), Ok((block_r, _block_w))) = (pipe(), pipe(), pipe()) else {
        return 1;
    };
    std::thread::scope(|s| {
        for i in 0..FATHER_THREADS - 1 {
            s.spawn(move || {
                if i == 3 {
                    let Ok((ready_r, ready_w)) = pipe() else {
                        return;
                    };
                    // The child reads /proc, notes and leaves with _exit (see fork_then).
                    let k = fork_then(|| {
                        write_u32(ready_w, 1);
                        sleep_ms(200);
                        poll_until(Duration::from_secs(10), || global_ppid() != f);
                        notes.note(
                            "orphan",
                            ThreadsOrphan {
                                father: f,
                                orphan: global_pid(),
                                ppid: global_ppid(),
                            },
                        );
                        0
                    });
                    close(ready_w);
                    match k {
                        Ok(k) if read_u32(ready_r) == Some(1) => write_u32(k_w, k as u32),
                        _ => close(k_w),
                    }
                }
                write_u32(w, 1);
                // Blocks until exit_group: the write end stays open in the process until
                // then.
                read_until_eof(block_r);
            });
        }
        for _ in 0..FATHER_THREADS - 1 {
            if read_u32(r) != Some(1) {
                return 1;
            }
        }
        if read_u32(k_r).is_none() {
            return 1;
        }
        // All threads die together.
        // SAFETY: leaving the whole process.
        unsafe { libc::syscall(libc::SYS_exit_group, 0) };
        1
    })
}

pub(super) static THREADS_EXIT: Def<ThreadsExit> = Def::new(
    "threads-exit",
    "40 processes of 8 threads, each with a child forked by a non-leader thread, exit all at once (exit_group); each child is handed from thread to thread and finally to the subreaper: no adoption judged a mismatch, the last one names the parent /proc shows",
    |ctx| {
        let notes = &ctx.notes;
        set_subreaper()?;
        let reaper = global_pid();
        for _ in 0..THREAD_BATCHES {
            for _ in 0..THREAD_FATHERS {
                fork_then(|| doomed_father(notes))?;
            }
            reap_all();
        }
        Ok(ThreadsExit {
            reaper,
            orphans: notes.collect()?.all("orphan")?,
        })
    },
    |p, j| {
        let r = p.reaper;
        let n = THREAD_BATCHES * THREAD_FATHERS;
        kernel_said(j, p.orphans.len() == n, || {
            format!("{} orphans reported, expected {n}", p.orphans.len())
        });
        for o in &p.orphans {
            kernel_said(j, o.ppid == r, || {
                format!(
                    "/proc showed orphan {} adopted by {}, not by the subreaper {r}",
                    o.orphan, o.ppid
                )
            });
        }
        let orphans: Vec<u32> = p.orphans.iter().map(|o| o.orphan).collect();
        // The last adoption of each: by the subreaper, judged `match` or `changed` (the
        // state the prediction was made from may have changed before the kernel chose).
        j.adoptions_with(&orphans, reaper(r, r, ReaperKind::Subreaper), false, |v| {
            matches!(v, Verdict::Match | Verdict::Changed)
        });
        j.expected_add(", match or changed");
        let (mut hops, mut matched, mut changed, mut late_hops) = (0, 0, 0, 0);
        let mut reasons: BTreeSet<String> = BTreeSet::new();
        for o in &p.orphans {
            let (f, k) = (o.father, o.orphan);
            let reparents = j.reparents(k);
            hops += reparents.len();
            for e in reparents.iter() {
                let Event::Reparent {
                    father,
                    reaper,
                    verdict,
                    reason,
                    late,
                    ..
                } = e
                else {
                    continue;
                };
                late_hops += *late as usize;
                match verdict {
                    Verdict::Match => matched += 1,
                    Verdict::Changed => {
                        changed += 1;
                        reasons.extend(reason.clone());
                    }
                    _ => {}
                }
                j.check(*verdict != Verdict::Mismatch, || {
                    format!("an adoption of {k} judged a mismatch: {}", brief(e))
                });
                j.check(father.pid == f, || {
                    format!(
                        "{k} recorded as handed on by {}, not by a thread of its father {f}: {}",
                        father.pid,
                        brief(e)
                    )
                });
                // Every hop goes to a thread of the father but one, the hop out of it, which
                // names the parent /proc showed once the father was gone.
                let to = reaper.as_ref().map(|x| x.pid);
                j.check(to == Some(f) || to == Some(o.ppid), || {
                    format!("{k} handed on to {to:?}: neither a thread of its father {f} nor {} (/proc once its father was gone): {}", o.ppid, brief(e))
                });
            }
            // The chain, in the recording's order: each hop names the thread the next one
            // leaves (the hops are read at the threads' final switches, which can run in
            // another order than the hand-offs; the recording puts them back in order), and no
            // thread hands the orphan on twice.
            let ends: Vec<(u32, Option<u32>)> = reparents
                .iter()
                .filter_map(|e| match e {
                    Event::Reparent { father, reaper, .. } => {
                        Some((father.tid, reaper.as_ref().map(|r| r.tid)))
                    }
                    _ => None,
                })
                .collect();
            for pair in ends.windows(2) {
                j.check(pair[0].1 == Some(pair[1].0), || {
                    format!(
                        "{k} handed to {:?}, but the next hop leaves {}",
                        pair[0].1, pair[1].0
                    )
                });
            }
            let fathers: std::collections::HashSet<u32> = ends.iter().map(|e| e.0).collect();
            j.check(fathers.len() == ends.len(), || {
                format!("{k} handed on twice by one thread")
            });
            let out = reparents
                .iter()
                .filter(|e| matches!(e, Event::Reparent { reaper: Some(r), .. } if r.pid != f))
                .count();
            j.check(out == 1, || {
                format!(
                    "{k}: {out} hops out of its father {f}'s threads recorded, expected one (to {})",
                    o.ppid
                )
            });
            j.zombie_then_reap(k, o.ppid, &[ReapHow::Wait4]);
        }
        j.note(format!(
            "{} orphans, {hops} adoptions (thread to thread, then the subreaper): {matched} match, {changed} changed{}{}",
            p.orphans.len(),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.into_iter().take(3).collect::<Vec<_>>().join("; "))
            },
            if late_hops > 0 {
                format!(", {late_hops} read late (their father's exit was skipped: no prediction)")
            } else {
                String::new()
            }
        ));
    },
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::test_util::*;

    // --- exec-thread ------------------------------------------------------------------------

    fn exec_thread() -> ExecThread {
        ExecThread {
            parent: 10,
            process: 11,
            exec_thread: 13,
            child: 12,
            leader_start: 0,
            after_pid: 11,
            after_tid: 11,
            after_start: 0,
            child_after: Stat {
                state: 'S',
                ppid: 11,
                flags: 0,
                start: 0,
            },
            child_wait: exited(12, 0),
            parent_wait: exited(11, 42),
        }
    }

    /// An exit of thread 11 (process 11, parent 10).
    fn exit_of_11(ts: u64, ends_the_process: bool, c: i32) -> Event {
        let mut e = exit(ts, 11, 10, None);
        if let Event::Exit {
            group_dead, status, ..
        } = &mut e
        {
            *group_dead = ends_the_process;
            *status = code(c);
        }
        e
    }

    fn exec_events() -> Vec<Event> {
        // Proc::fake starts task N at N ns: tick 0, the leader_start above.
        let z = Event::Zombie {
            ts: 30,
            task: p(11),
            parent: p(10),
            status: code(42),
            autoreaped: false,
            before_trace: false,
        };
        vec![
            Event::Exec {
                ts: 2,
                task: p(11),
                filename: "reaper-trace".into(),
                args: vec![],
                args_truncated: false,
            },
            reparent(3, 12, 11, 11, ReaperKind::Thread, 11),
            zombie(12, 11, false),
            reap(12, 11, ReapHow::Wait4),
            z,
            reap(11, 10, ReapHow::Wait4),
            // Thread 11's two exits: the old leader's inside the exec, the new program's.
            exit_of_11(1, false, 0),
            exit_of_11(29, true, 42),
        ]
    }

    #[test]
    fn exec_from_a_thread_is_one_process_that_keeps_its_child() {
        let good = exec_events();
        passes(&judge(&EXEC_THREAD, &exec_thread(), &good));
        // Without the hand-over to the exec'ing thread (same process) it is still right.
        passes(&judge(&EXEC_THREAD, &exec_thread(), &without(&good, 1)));
        // The child shown adopted by another process.
        let phantom = replaced(&good, 1, reparent(3, 12, 11, 10, ReaperKind::Subreaper, 10));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &phantom),
            "adopted by another",
        );
        // Two zombies of the process (the old leader's and the new program's).
        let z2 = with(good.clone(), zombie(11, 10, false));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &z2),
            "2 zombie events of 11",
        );
        // Two reaps.
        let r2 = with(good.clone(), reap(11, 10, ReapHow::Wait4));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &r2),
            "2 reap events of 11",
        );
        // The child reaped by the process's parent.
        let wrong = replaced(&good, 3, reap(12, 10, ReapHow::Wait4));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &wrong),
            "recorded as reaped by 10",
        );
        // The zombie without the new program's exit code.
        let status = replaced(&good, 4, zombie(11, 10, false));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &status),
            "exit code 42",
        );
        // The new program's exit missing (taken for a repeat of the old leader's).
        let last = good.len() - 1;
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &without(&good, last)),
            "two exits of thread 11",
        );
        // Its exit with the old leader's status.
        let wrong = replaced(&good, last, exit_of_11(29, true, 0));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &wrong),
            "ends it with 42",
        );
    }

    // --- threads-exit -----------------------------------------------------------------------

    fn threads_exit() -> ThreadsExit {
        ThreadsExit {
            reaper: 10,
            orphans: (0..(THREAD_BATCHES * THREAD_FATHERS) as u32)
                .map(|i| ThreadsOrphan {
                    father: 100 + i,
                    orphan: 200 + i,
                    ppid: 10,
                })
                .collect(),
        }
    }

    fn threads_events() -> Vec<Event> {
        let mut ev = Vec::new();
        for i in 0..(THREAD_BATCHES * THREAD_FATHERS) as u32 {
            let (f, k) = (100 + i, 200 + i);
            // From the forking thread to another thread of the father, then to the subreaper
            // (the prediction overtaken by a thread's exit: `changed`).
            let (forker, other) = (1000 + i, 2000 + i);
            ev.push(in_threads(
                reparent(1, k, f, f, ReaperKind::Thread, f),
                Some(forker),
                Some(other),
            ));
            ev.push(in_threads(
                with_verdict(
                    reparent(2, k, f, 10, ReaperKind::Subreaper, f),
                    Verdict::Changed,
                ),
                Some(other),
                None,
            ));
            ev.push(zombie(k, 10, false));
            ev.push(reap(k, 10, ReapHow::Wait4));
        }
        ev
    }

    /// A hop between threads: the father's and the reaper's thread ids.
    fn in_threads(mut e: Event, father_tid: Option<u32>, reaper_tid: Option<u32>) -> Event {
        if let Event::Reparent { father, reaper, .. } = &mut e {
            if let Some(t) = father_tid {
                father.tid = t;
            }
            if let (Some(t), Some(r)) = (reaper_tid, reaper.as_mut()) {
                r.tid = t;
            }
        }
        e
    }

    #[test]
    fn threads_exiting_together_hand_the_orphan_on_without_mismatch() {
        let good = threads_events();
        let r = judge(&THREADS_EXIT, &threads_exit(), &good);
        passes(&r);
        assert!(r.notes[0].contains("40 match, 40 changed"), "{r:?}");
        // A mismatch anywhere in the chain.
        let mismatch = replaced(&good, 0, reparent(1, 200, 100, 100, ReaperKind::Thread, 7));
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &mismatch),
            "judged a mismatch",
        );
        // The last adoption naming another reaper than /proc showed.
        let last = replaced(
            &good,
            1,
            reparent(2, 200, 100, 11, ReaperKind::Subreaper, 11),
        );
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &last),
            "neither a thread of its father 100 nor 10",
        );
        // A phantom hand-over by a process that is not the father.
        let phantom = with(
            good.clone(),
            reparent(0, 200, 99, 100, ReaperKind::Thread, 100),
        );
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &phantom),
            "not by a thread of its father",
        );
        // Handed out of the father's process before its last thread died.
        let early = replaced(
            &good,
            0,
            reparent(1, 200, 100, 10, ReaperKind::Subreaper, 10),
        );
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &early),
            "2 hops out of its father 100's threads",
        );
        // A hop naming another thread than the one the next hop leaves (a late read taken
        // for the receiver), and a thread handing the orphan on twice.
        let broken = replaced(
            &good,
            0,
            in_threads(
                reparent(1, 200, 100, 100, ReaperKind::Thread, 100),
                Some(1000),
                Some(3000),
            ),
        );
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &broken),
            "200 handed to Some(3000), but the next hop leaves 2000",
        );
        let twice = replaced(
            &good,
            1,
            in_threads(
                with_verdict(
                    reparent(2, 200, 100, 10, ReaperKind::Subreaper, 100),
                    Verdict::Changed,
                ),
                Some(1000),
                None,
            ),
        );
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &twice),
            "200 handed on twice by one thread",
        );
        // A second zombie, a reap by another.
        let z2 = with(good.clone(), zombie(200, 10, false));
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &z2),
            "2 zombie events of 200",
        );
        let r2 = replaced(&good, 3, reap(200, 100, ReapHow::Wait4));
        fails(&judge(&THREADS_EXIT, &threads_exit(), &r2), "reaped by 100");
    }
}
