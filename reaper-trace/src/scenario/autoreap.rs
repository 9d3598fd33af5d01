//! `sigchld-ignored`: children of a parent that ignores SIGCHLD are released at once, with no
//! wait (autoreaped), in the parent's pid namespace and in a child namespace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::judge::{self, kernel_said};
use crate::event::{Event, ReapHow};

use super::Def;
use super::sys::{
    Stat, Waited, close, fork_then, global_pid, new_pid_namespace, own_pidns, pipe, read_u32,
    stat_of, wait_for, wait4, write_u32,
};

// ---------------------------------------------------------------------------------------------
// sigchld-ignored

/// Children of the parent that ignores SIGCHLD.
const IGNORED_CHILDREN: usize = 5;

/// A child of `sigchld-ignored`, as it saw itself.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct NsChild {
    /// Global pid.
    pub pid: u32,
    /// Its pid in its own namespace.
    pub ns_pid: u32,
    /// Its pid namespace's inode.
    pub pidns: u32,
}

/// `sigchld-ignored`, inside a new pid namespace: init I > parent P > children.
#[derive(Debug, Serialize, Deserialize)]
pub struct SigchldIgnored {
    pub init: u32,
    pub parent: u32,
    pub children: Vec<NsChild>,
    /// P's `wait4(-1)` once they had exited: -1, ECHILD.
    pub parent_wait: Waited,
    /// How many of the children `/proc` no longer showed after that.
    pub gone: u32,
}

pub(super) static SIGCHLD_IGNORED: Def<SigchldIgnored> = Def::new(
    "sigchld-ignored",
    "in a pid namespace, a parent that ignores SIGCHLD: its children are released at exit (auto-reaped), and every task is named with its namespace ids",
    |ctx| {
        let notes = &ctx.notes;
        new_pid_namespace()?;
        let init = fork_then(|| {
            notes.note("init", global_pid());
            let parent = fork_then(|| {
                notes.note("parent", global_pid());
                // SAFETY: setting a disposition.
                unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
                let Ok((r, w)) = pipe() else { return 1 };
                for _ in 0..IGNORED_CHILDREN {
                    if fork_then(|| {
                        close(r);
                        let me = NsChild {
                            pid: global_pid(),
                            // SAFETY: getpid has no preconditions.
                            ns_pid: unsafe { libc::getpid() } as u32,
                            pidns: own_pidns(),
                        };
                        notes.note("child", me);
                        write_u32(w, me.pid);
                        3
                    })
                    .is_err()
                    {
                        return 1;
                    }
                }
                close(w);
                let mut started = Vec::new();
                while let Some(pid) = read_u32(r) {
                    started.push(pid);
                }
                // Blocks until every child has exited, then fails: none is left to wait for.
                notes.note("parent_wait", wait4(-1, 0));
                notes.note(
                    "gone",
                    started
                        .iter()
                        .filter(|&&p| stat_of(p) == Stat::GONE)
                        .count(),
                );
                0
            });
            match parent {
                Ok(p) => {
                    wait_for(p);
                    0
                }
                Err(_) => 1,
            }
        })?;
        wait_for(init);
        let n = notes.collect()?;
        Ok(SigchldIgnored {
            init: n.get("init")?,
            parent: n.get("parent")?,
            children: n.all("child")?,
            parent_wait: n.get("parent_wait")?,
            gone: n.get("gone")?,
        })
    },
    |p, j| {
        let pa = p.parent;
        let n = p.children.len();
        j.expected(format!(
            "{n} children of {pa} released at exit (its wait: ECHILD)"
        ));
        kernel_said(j, n == IGNORED_CHILDREN, || {
            format!("{n} children reported, expected {IGNORED_CHILDREN}")
        });
        kernel_said(
            j,
            p.parent_wait.ret == -1 && p.parent_wait.errno == libc::ECHILD,
            || format!("the parent's wait returned {:?}, not ECHILD", p.parent_wait),
        );
        kernel_said(j, p.gone as usize == n, || {
            format!(
                "{} of {n} children were gone from /proc after the wait",
                p.gone
            )
        });
        kernel_said(
            j,
            p.children.iter().all(|c| c.ns_pid != c.pid && c.pidns != 0),
            || {
                format!(
                    "the children are not in a nested pid namespace: {:?}",
                    p.children
                )
            },
        );
        let (mut auto, mut autoreaped) = (0, 0);
        for c in &p.children {
            let (zombie, reap) = j.zombie_then_reap(c.pid, pa, &[ReapHow::Auto]);
            if let Some(Event::Zombie { autoreaped: a, .. }) = zombie
                && j.check(*a, || {
                    format!(
                        "the kernel released {} at once (its parent ignores SIGCHLD): its zombie event must say autoreaped",
                        c.pid
                    )
                })
            {
                autoreaped += 1;
            }
            if reap.is_some_and(|e| {
                matches!(
                    e,
                    Event::Reap {
                        how: ReapHow::Auto,
                        ..
                    }
                )
            }) {
                auto += 1;
            }
        }
        // Every task named in the scenario's events carries its namespace ids; the children's
        // are the ones they saw themselves.
        let mut bad: BTreeMap<String, usize> = BTreeMap::new();
        for e in j.events() {
            for (field, proc) in judge::procs(e) {
                let mut wrong = Vec::new();
                if proc.ns_pid == 0 || proc.ns_tid == 0 || proc.pidns == 0 {
                    wrong.push(format!(
                        "ns_pid {} ns_tid {} pidns {}",
                        proc.ns_pid, proc.ns_tid, proc.pidns
                    ));
                }
                if let Some(c) = p.children.iter().find(|c| c.pid == proc.tid)
                    && (proc.ns_pid != c.ns_pid || proc.ns_tid != c.ns_pid || proc.pidns != c.pidns)
                {
                    wrong.push(format!(
                        "ns_pid {} ns_tid {} pidns {}, /proc said {} in {}",
                        proc.ns_pid, proc.ns_tid, proc.pidns, c.ns_pid, c.pidns
                    ));
                }
                if !wrong.is_empty() {
                    *bad.entry(format!(
                        "{} event's {field} {}: {}",
                        e.type_name(),
                        proc.tid,
                        wrong.join(", ")
                    ))
                    .or_default() += 1;
                }
            }
        }
        for (what, count) in bad {
            j.fail(format!("{what} [{count} event(s)]"));
        }
        j.observed(format!("{auto}/{n} reaped auto by {pa}"));
        j.predicted(format!("{autoreaped}/{n} zombies of {pa}, autoreaped"));
        j.note(format!(
            "every task named with its namespace ids (the children: pids {} in namespace {})",
            p.children
                .iter()
                .map(|c| c.ns_pid.to_string())
                .collect::<Vec<_>>()
                .join(","),
            p.children.first().map_or(0, |c| c.pidns)
        ));
    },
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Proc;
    use crate::scenario::test_util::*;

    // --- sigchld-ignored --------------------------------------------------------------------

    fn ns_proc(pid: u32, ns_pid: u32) -> Proc {
        Proc {
            ns_pid,
            ns_tid: ns_pid,
            pidns: 77,
            ..p(pid)
        }
    }

    fn ignored() -> SigchldIgnored {
        SigchldIgnored {
            init: 9,
            parent: 10,
            children: (0..IGNORED_CHILDREN as u32)
                .map(|i| NsChild {
                    pid: 20 + i,
                    ns_pid: 3 + i,
                    pidns: 77,
                })
                .collect(),
            parent_wait: Waited {
                ret: -1,
                status: 0,
                errno: libc::ECHILD,
            },
            gone: IGNORED_CHILDREN as u32,
        }
    }

    fn autoreaped_events() -> Vec<Event> {
        let mut ev = Vec::new();
        for i in 0..IGNORED_CHILDREN as u32 {
            ev.push(Event::Zombie {
                ts: 1,
                task: ns_proc(20 + i, 3 + i),
                parent: ns_proc(10, 2),
                status: code(3),
                autoreaped: true,
                before_trace: false,
            });
            ev.push(Event::Reap {
                ts: 2,
                task: ns_proc(20 + i, 3 + i),
                reaper: Some(ns_proc(10, 2)),
                how: ReapHow::Auto,
                zombie_ns: Some(0),
            });
        }
        ev
    }

    #[test]
    fn children_of_a_parent_ignoring_sigchld_are_autoreaped_with_their_ids() {
        let good = autoreaped_events();
        let r = judge(&SIGCHLD_IGNORED, &ignored(), &good);
        passes(&r);
        assert_eq!(r.observed_text, "5/5 reaped auto by 10");
        // Reaped by a wait that never returned it.
        let waited = replaced(
            &good,
            1,
            Event::Reap {
                ts: 2,
                task: ns_proc(20, 3),
                reaper: Some(ns_proc(10, 2)),
                how: ReapHow::Wait4,
                zombie_ns: Some(0),
            },
        );
        fails(&judge(&SIGCHLD_IGNORED, &ignored(), &waited), "(wait4)");
        // A zombie that waits to be reaped.
        let kept = replaced(
            &good,
            0,
            Event::Zombie {
                ts: 1,
                task: ns_proc(20, 3),
                parent: ns_proc(10, 2),
                status: code(3),
                autoreaped: false,
                before_trace: false,
            },
        );
        fails(
            &judge(&SIGCHLD_IGNORED, &ignored(), &kept),
            "must say autoreaped",
        );
        // A second zombie.
        let z2 = with(good.clone(), good[0].clone());
        fails(
            &judge(&SIGCHLD_IGNORED, &ignored(), &z2),
            "2 zombie events of 20",
        );
        // Namespace ids missing, or not the ones /proc showed.
        let zero = with(
            good.clone(),
            Event::Subreaper {
                ts: 3,
                task: Proc { pidns: 0, ..p(10) },
                enabled: false,
            },
        );
        fails(&judge(&SIGCHLD_IGNORED, &ignored(), &zero), "pidns 0");
        let global = replaced(&good, 1, {
            let mut e = good[1].clone();
            if let Event::Reap { task, .. } = &mut e {
                task.ns_pid = 20;
            }
            e
        });
        fails(
            &judge(&SIGCHLD_IGNORED, &ignored(), &global),
            "/proc said 3 in 77",
        );
    }
}
