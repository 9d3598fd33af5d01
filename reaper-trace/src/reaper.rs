//! `find_new_reaper` (kernel/exit.c) as a plain function over the state captured at exit,
//! and the classification of the reaper the kernel actually chose.
//!
//! The kernel's algorithm, for a task `father` that exits with children:
//! 1. `find_child_reaper`: if `father` is its pid namespace's `child_reaper`, a live thread of
//!    its group takes over that role; with none, the namespace is torn down (every task in it
//!    is killed) and the children stay with `father`.
//! 2. `find_alive_thread(father)`: another live thread of its group adopts them.
//! 3. If `father->signal->has_child_subreaper`: walk `real_parent` up while the pid namespace
//!    level stays the same; the first ancestor with `is_child_subreaper` that has a live thread
//!    adopts them (through that thread).
//! 4. Else the namespace's `child_reaper`.

use reaper_trace_common::{MAX_SUBREAPERS, ReaperSnapshot, TaskId};

use crate::event::ReaperKind;

/// A subreaper ancestor, nearest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubreaperCandidate {
    pub task: TaskId,
    /// Its first live thread, if it has one.
    pub alive_thread: Option<TaskId>,
    /// None was found among the threads scanned, but it has more.
    pub incomplete: bool,
}

/// What `find_new_reaper` reads, as captured at `sched_process_exit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaperInputs {
    pub father: TaskId,
    /// First live thread of father's group.
    pub alive_thread: Option<TaskId>,
    /// None was found among the threads scanned, but there are more.
    pub alive_incomplete: bool,
    pub child_reaper: TaskId,
    pub has_child_subreaper: bool,
    pub subreapers: Vec<SubreaperCandidate>,
    /// The subreaper walk may have missed ancestors (too deep, or too many subreapers).
    pub subreapers_incomplete: bool,
}

fn some_task(t: TaskId) -> Option<TaskId> {
    (t.tid != 0).then_some(t)
}

impl ReaperInputs {
    pub fn from_snapshot(father: TaskId, snap: &ReaperSnapshot) -> Self {
        let n = (snap.nr_subreapers as usize).min(snap.subreapers.len());
        Self {
            father,
            alive_thread: some_task(snap.alive_thread),
            alive_incomplete: snap.alive_scan_incomplete != 0,
            child_reaper: snap.child_reaper.id,
            has_child_subreaper: snap.has_child_subreaper != 0,
            subreapers: snap.subreapers[..n]
                .iter()
                .map(|s| SubreaperCandidate {
                    task: s.task,
                    alive_thread: some_task(s.alive_thread),
                    incomplete: s.scan_incomplete != 0,
                })
                .collect(),
            subreapers_incomplete: snap.ancestors_truncated != 0 || n == MAX_SUBREAPERS,
        }
    }
}

/// The predicted new parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Predicted {
    pub task: TaskId,
    pub kind: ReaperKind,
}

/// `find_child_reaper` + `find_new_reaper`. `None` when the captured state cannot decide
/// (a bounded scan in the kernel program stopped before it found the answer).
pub fn find_new_reaper(inputs: &ReaperInputs) -> Option<Predicted> {
    let father = inputs.father;
    let thread = |task| Predicted {
        task,
        kind: ReaperKind::Thread,
    };
    if inputs.child_reaper.tid == father.tid {
        // The namespace's init is exiting: a live thread takes over; with none, the namespace
        // is torn down and the children stay with the dying init.
        return match inputs.alive_thread {
            Some(t) => Some(thread(t)),
            None if inputs.alive_incomplete => None,
            None => Some(Predicted {
                task: father,
                kind: ReaperKind::Init,
            }),
        };
    }
    if let Some(t) = inputs.alive_thread {
        return Some(thread(t));
    }
    if inputs.alive_incomplete {
        return None;
    }
    if inputs.has_child_subreaper {
        for s in &inputs.subreapers {
            match s.alive_thread {
                Some(t) => {
                    return Some(Predicted {
                        task: t,
                        kind: ReaperKind::Subreaper,
                    });
                }
                None if s.incomplete => return None,
                None => {}
            }
        }
        if inputs.subreapers_incomplete {
            return None;
        }
    }
    Some(Predicted {
        task: inputs.child_reaper,
        kind: ReaperKind::Init,
    })
}

/// What is known about the reaper the kernel chose.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    pub reaper: TaskId,
    /// The reaper's own `is_child_subreaper` flag.
    pub reaper_is_subreaper: bool,
    /// The reaper's pid in its own namespace.
    pub reaper_ns_pid: u32,
}

/// Names the kind of the kernel's choice. With the captured inputs, the roles are exact; without
/// them (the exit record was lost) the reaper's own flags are used.
pub fn classify(father: TaskId, observed: &Observed, inputs: Option<&ReaperInputs>) -> ReaperKind {
    let reaper = observed.reaper;
    if reaper.tgid == father.tgid {
        return ReaperKind::Thread;
    }
    match inputs {
        Some(inputs) => {
            if inputs.has_child_subreaper
                && inputs.subreapers.iter().any(|s| s.task.tgid == reaper.tgid)
            {
                ReaperKind::Subreaper
            } else if inputs.child_reaper.tgid == reaper.tgid {
                ReaperKind::Init
            } else {
                ReaperKind::Unexpected
            }
        }
        None if observed.reaper_ns_pid == 1 => ReaperKind::Init,
        None if observed.reaper_is_subreaper => ReaperKind::Subreaper,
        None => ReaperKind::Unexpected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tid: u32, tgid: u32) -> TaskId {
        TaskId {
            tid,
            tgid,
            start_ns: tid as u64 * 1000,
        }
    }

    fn inputs() -> ReaperInputs {
        ReaperInputs {
            father: t(100, 100),
            alive_thread: None,
            alive_incomplete: false,
            child_reaper: t(1, 1),
            has_child_subreaper: false,
            subreapers: vec![],
            subreapers_incomplete: false,
        }
    }

    #[test]
    fn namespace_init_when_nothing_else() {
        let p = find_new_reaper(&inputs()).unwrap();
        assert_eq!(
            p,
            Predicted {
                task: t(1, 1),
                kind: ReaperKind::Init
            }
        );
    }

    #[test]
    fn live_thread_wins_over_everything() {
        let mut i = inputs();
        i.alive_thread = Some(t(101, 100));
        i.has_child_subreaper = true;
        i.subreapers = vec![SubreaperCandidate {
            task: t(50, 50),
            alive_thread: Some(t(50, 50)),
            incomplete: false,
        }];
        assert_eq!(
            find_new_reaper(&i).unwrap(),
            Predicted {
                task: t(101, 100),
                kind: ReaperKind::Thread
            }
        );
    }

    #[test]
    fn nearest_subreaper_with_a_live_thread() {
        let mut i = inputs();
        i.has_child_subreaper = true;
        i.subreapers = vec![
            // The nearest one is exiting (no live thread): skipped.
            SubreaperCandidate {
                task: t(60, 60),
                alive_thread: None,
                incomplete: false,
            },
            // Its main thread is gone, another thread adopts.
            SubreaperCandidate {
                task: t(50, 50),
                alive_thread: Some(t(52, 50)),
                incomplete: false,
            },
            SubreaperCandidate {
                task: t(40, 40),
                alive_thread: Some(t(40, 40)),
                incomplete: false,
            },
        ];
        assert_eq!(
            find_new_reaper(&i).unwrap(),
            Predicted {
                task: t(52, 50),
                kind: ReaperKind::Subreaper
            }
        );
    }

    #[test]
    fn subreapers_ignored_without_has_child_subreaper() {
        let mut i = inputs();
        i.subreapers = vec![SubreaperCandidate {
            task: t(50, 50),
            alive_thread: Some(t(50, 50)),
            incomplete: false,
        }];
        assert_eq!(find_new_reaper(&i).unwrap().kind, ReaperKind::Init);
    }

    #[test]
    fn exiting_namespace_init() {
        let mut i = inputs();
        i.child_reaper = i.father;
        assert_eq!(
            find_new_reaper(&i).unwrap(),
            Predicted {
                task: t(100, 100),
                kind: ReaperKind::Init
            }
        );
        i.alive_thread = Some(t(102, 100));
        assert_eq!(
            find_new_reaper(&i).unwrap(),
            Predicted {
                task: t(102, 100),
                kind: ReaperKind::Thread
            }
        );
    }

    #[test]
    fn incomplete_scans_give_no_prediction() {
        let mut i = inputs();
        i.alive_incomplete = true;
        assert_eq!(find_new_reaper(&i), None);
        let mut i = inputs();
        i.has_child_subreaper = true;
        i.subreapers = vec![SubreaperCandidate {
            task: t(60, 60),
            alive_thread: None,
            incomplete: true,
        }];
        assert_eq!(find_new_reaper(&i), None);
        let mut i = inputs();
        i.has_child_subreaper = true;
        i.subreapers_incomplete = true;
        assert_eq!(find_new_reaper(&i), None);
        // A complete answer before the truncation point is still an answer.
        i.subreapers = vec![SubreaperCandidate {
            task: t(60, 60),
            alive_thread: Some(t(60, 60)),
            incomplete: false,
        }];
        assert_eq!(
            find_new_reaper(&i).map(|p| p.kind),
            Some(ReaperKind::Subreaper)
        );
    }

    #[test]
    fn classification() {
        let mut i = inputs();
        i.has_child_subreaper = true;
        i.subreapers = vec![SubreaperCandidate {
            task: t(50, 50),
            alive_thread: Some(t(51, 50)),
            incomplete: false,
        }];
        let obs = |r: TaskId| Observed {
            reaper: r,
            reaper_is_subreaper: false,
            reaper_ns_pid: r.tgid,
        };
        let f = i.father;
        assert_eq!(classify(f, &obs(t(103, 100)), Some(&i)), ReaperKind::Thread);
        assert_eq!(
            classify(f, &obs(t(51, 50)), Some(&i)),
            ReaperKind::Subreaper
        );
        assert_eq!(classify(f, &obs(t(1, 1)), Some(&i)), ReaperKind::Init);
        assert_eq!(
            classify(f, &obs(t(77, 77)), Some(&i)),
            ReaperKind::Unexpected
        );
        // Without captured inputs: the reaper's own flags.
        let sub = Observed {
            reaper: t(77, 77),
            reaper_is_subreaper: true,
            reaper_ns_pid: 77,
        };
        assert_eq!(classify(f, &sub, None), ReaperKind::Subreaper);
        let init = Observed {
            reaper: t(900, 900),
            reaper_is_subreaper: false,
            reaper_ns_pid: 1,
        };
        assert_eq!(classify(f, &init, None), ReaperKind::Init);
        assert_eq!(classify(f, &obs(t(77, 77)), None), ReaperKind::Unexpected);
    }
}
