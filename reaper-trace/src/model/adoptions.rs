//! Adoptions: the `reparent` records and snapshots, the hand-offs each orphan went through, and
//! the hand-offs no record read (out of a father whose exit was recorded late), named from the
//! orphan's next record.

use super::*;

/// What an adoption record said, kept until its hop goes out (see [`crate::hand_offs`]).
#[derive(Debug)]
pub(super) struct HopRecord {
    pub(super) orphan: Proc,
    pub(super) father: Proc,
    /// The parent the record read, and what the event says when it is the one that received
    /// the orphan.
    pub(super) reaper: Proc,
    pub(super) observed: Observed,
    pub(super) kind: crate::event::ReaperKind,
    pub(super) verdict: Verdict,
    pub(super) reason: Option<String>,
    pub(super) predicted: Option<Predicted>,
    pub(super) after: Option<Predicted>,
    pub(super) inputs: Option<Box<ReaperInputs>>,
    pub(super) final_inputs: Option<Box<ReaperInputs>>,
    pub(super) zombie: bool,
    /// Inferred from a later record: the father's exit was recorded late (see `UnreadHop`).
    pub(super) late: bool,
}

/// An orphan's own record named `to` as its parent at `at`, where the model had `from`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Moved {
    pub(super) orphan: TaskId,
    pub(super) from: TaskId,
    pub(super) to: TaskId,
    pub(super) at: u64,
}

/// A hand-off no record read: `orphan` was a child of `father` when its exit was recorded late
/// (`EXIT_FLAG_LATE`, its children gone to their reaper unread). The next record that names the
/// orphan's parent tells who received it.
#[derive(Debug, Clone, Copy)]
pub(super) struct UnreadHop {
    pub(super) orphan: TaskId,
    pub(super) father: TaskId,
    pub(super) father_exit: u64,
}

/// Whether processes `a` and `b` (tgids) are one, or one descends from the other as far as the
/// model knows their parents.
pub(super) fn related(tasks: &HashMap<u32, Task>, a: u32, b: u32) -> bool {
    /// Deeper trees are not followed: a hop then waits only on its own process's threads.
    const DEPTH: usize = 64;
    let descends = |from: u32, to: u32| {
        let mut tgid = from;
        for _ in 0..DEPTH {
            if tgid == to {
                return true;
            }
            match tasks.get(&tgid).and_then(|t| t.parent) {
                Some(p) if p.tgid != tgid => tgid = p.tgid,
                _ => return false,
            }
        }
        false
    };
    descends(a, b) || descends(b, a)
}

pub(super) fn judge(
    predicted: Option<Predicted>,
    after: Option<Predicted>,
    observed: &Observed,
    final_inputs: Option<&ReaperInputs>,
) -> (Verdict, Option<String>) {
    let Some(p) = predicted else {
        return (Verdict::Unknown, None);
    };
    if p.task.tid == observed.reaper.tid {
        return (Verdict::Match, None);
    }
    let Some(after) = after.filter(|a| a.task != p.task) else {
        return (Verdict::Mismatch, None);
    };
    let what = match final_inputs {
        Some(f) if p.kind == crate::event::ReaperKind::Thread && f.alive_thread != Some(p.task) => {
            format!(
                "thread {} began exiting before the kernel chose",
                p.task.tid
            )
        }
        Some(f)
            if p.kind == crate::event::ReaperKind::Subreaper
                && !f.subreapers.iter().any(|s| s.alive_thread == Some(p.task)) =>
        {
            format!(
                "subreaper {} began exiting (or stopped being one) before the kernel chose",
                p.task.tid
            )
        }
        _ => "the state find_new_reaper reads changed before the kernel chose".to_string(),
    };
    (
        Verdict::Changed,
        Some(format!(
            "{what}; from the state after it, find_new_reaper gives {} ({})",
            after.task.tid,
            after.kind.as_str()
        )),
    )
}

impl Model {
    /// `find_new_reaper`'s inputs for a father: at its exit, or (`after`) at its final switch.
    pub(super) fn snapshot(&mut self, e: &SnapshotEvent, after: bool) {
        if let Some(t) = self.tasks.get_mut(&e.father.tid)
            && t.is(e.father.start_ns)
        {
            let inputs = Some(Box::new(ReaperInputs::from_snapshot(e.father, &e.snapshot)));
            if after {
                t.final_inputs = inputs;
            } else {
                t.reaper_inputs = inputs;
            }
        }
    }

    pub(super) fn reparent(&mut self, e: &ReparentEvent, out: &mut Vec<Event>) {
        self.hand_offs.reported(&e.father);
        self.adoption(e, out);
        self.release_hops(out);
    }

    /// One adoption record: the model's state follows what it read at once; its event waits
    /// with the orphan's other hand-offs (see [`crate::hand_offs`]).
    pub(super) fn adoption(&mut self, e: &ReparentEvent, out: &mut Vec<Event>) {
        let ts = e.hdr.ts_ns;
        let father = self.proc_by_id(&e.father);
        let (inputs, final_inputs) = match self.known(&e.father) {
            Some(t) => (t.reaper_inputs.clone(), t.final_inputs.clone()),
            None => (None, None),
        };
        let predicted = inputs.as_deref().and_then(reaper::find_new_reaper);
        let prediction = predicted.map(|p| Prediction {
            tid: p.task.tid,
            pid: p.task.tgid,
            kind: p.kind,
        });
        let orphan_tid = e.orphan.tid;
        // Reaped and freed already (by a wait that came before this record; see
        // `EarlyWait`): the adoption is still reported, the task is not brought back.
        let gone = self.known(&e.orphan).is_none()
            && self
                .departed
                .get(&orphan_tid)
                .is_some_and(|p| same_start(p.start, e.orphan.start_ns));
        if !gone && self.known(&e.orphan).is_none() {
            // Its fork came before tracing and /proc did not have it: what the record says.
            let mut info = TaskInfo {
                id: e.orphan,
                ..Default::default()
            };
            info.comm = e.orphan_comm;
            let task = Task::new(&info);
            if let Some(old) = self.insert(task) {
                self.reused(old, ts, out);
            }
        } else if !gone && e.orphan_comm[0] != 0 {
            let t = self.tasks.get_mut(&orphan_tid).expect("known");
            let len = e
                .orphan_comm
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(TASK_COMM_LEN);
            if t.comm.as_bytes() != &e.orphan_comm[..len] {
                t.comm = c_string(&e.orphan_comm);
            }
        }

        // No task has tid 0 as a parent: a new parent read as 0 was read from a child released
        // in between (its memory reused while its ids still read the same), so it counts as
        // released.
        let released = e.flags & REPARENT_RELEASED != 0
            || (e.flags & REPARENT_REAPER_ID_ONLY != 0 && e.reaper.id.tid == 0);
        if released {
            if predicted.is_some_and(|p| p.task.tid == e.father.tid) {
                // A namespace init with no thread left: the kernel killed and reaped its
                // children itself (zap_pid_ns_processes); none was adopted.
                return;
            }
            // Released while being reparented (a zombie its new parent let go at once): who
            // adopted it could not be read. Its reap comes from the free record.
            if !gone && let TaskState::Zombie { .. } = self.tasks[&orphan_tid].state {
                self.set_state(
                    orphan_tid,
                    TaskState::Released {
                        at: ts,
                        exit_code: 0,
                    },
                );
            }
            out.push(Event::Reparent {
                ts,
                orphan: self.proc_by_id(&e.orphan),
                father,
                reaper: None,
                kind: None,
                predicted: prediction,
                verdict: Verdict::Unobserved,
                reason: None,
                zombie: true,
                late: false,
            });
            return;
        }
        if e.reaper.id == e.father {
            // Not adopted: its parent is still the task that exited (a namespace init
            // killing its namespace releases its children instead).
            return;
        }
        let reaper = if e.flags & REPARENT_REAPER_ID_ONLY != 0 {
            self.proc_by_id(&e.reaper.id)
        } else {
            let tid = self.learn(&e.reaper, out);
            self.proc_of(tid)
        };
        let father_exit = self.known(&e.father).and_then(|t| t.exit_ts);
        let mut current = !gone;
        if !gone {
            let t = self.tasks.get_mut(&orphan_tid).expect("known");
            current = t
                .parent_since
                .zip(father_exit)
                .is_none_or(|(since, f)| f >= since);
            if current {
                t.parent = Some(e.reaper.id);
                t.parent_since = father_exit;
            }
        }
        let observed = Observed {
            reaper: e.reaper.id,
            reaper_is_subreaper: e.reaper_is_subreaper != 0,
            reaper_ns_pid: reaper.ns_pid,
        };
        let after = final_inputs.as_deref().and_then(reaper::find_new_reaper);
        let (verdict, reason) = judge(predicted, after, &observed, final_inputs.as_deref());
        // Adopted as a zombie: a zombie when read, or already released then (its new parent
        // reaped it before the father's final switch) having exited before its father did.
        let orphan_exit = self.tasks.get(&orphan_tid).and_then(|t| t.exit_ts);
        let zombie = e.orphan_exit_state == exit_state::EXIT_ZOMBIE
            || (e.orphan_exit_state != 0
                && (gone || orphan_exit.zip(father_exit).is_some_and(|(o, f)| o <= f)));
        let kind = match predicted {
            Some(p) if p.task.tid == e.reaper.id.tid => p.kind,
            _ => reaper::classify(e.father, &observed, inputs.as_deref()),
        };
        // The father had the orphan at its exit: if the hop into it was not read, it was this.
        self.read_hop(&e.orphan, e.father, father_exit.unwrap_or(ts));
        self.moved.remove(&orphan_tid);
        self.hand_offs.add(Hop {
            orphan: e.orphan,
            father: e.father,
            father_exit,
            read_ts: ts,
            data: HopRecord {
                orphan: self.proc_by_id(&e.orphan),
                father,
                reaper,
                observed,
                kind,
                verdict,
                reason,
                predicted,
                after,
                inputs,
                final_inputs,
                zombie,
                late: false,
            },
        });
        if current {
            self.apply_early_wait(orphan_tid, Some(e.reaper.id), out);
        }
    }

    /// Writes the `reparent` events of the hand-offs that no longer wait.
    pub(super) fn release_hops(&mut self, out: &mut Vec<Event>) {
        let ready = self.hand_offs.release(|a, b| related(&self.tasks, a, b));
        self.write_hops(ready, out);
    }

    pub(super) fn write_hops(
        &mut self,
        hops: Vec<(Hop<HopRecord>, Option<Receiver>)>,
        out: &mut Vec<Event>,
    ) {
        for (hop, receiver) in hops {
            let mut r = hop.data;
            let mut ts = hop.read_ts;
            if let Some(receiver) = receiver.filter(|rc| rc.id.tid != r.observed.reaper.tid) {
                // Handed on again before it was read: the thread that received it is the next
                // father, and the hand-off came before that one's exit.
                let proc = self.proc_by_id(&receiver.id);
                let observed = Observed {
                    reaper: receiver.id,
                    reaper_is_subreaper: self.known(&receiver.id).is_some_and(|t| t.subreaper),
                    reaper_ns_pid: proc.ns_pid,
                };
                let (verdict, reason) =
                    judge(r.predicted, r.after, &observed, r.final_inputs.as_deref());
                r.kind = match r.predicted {
                    Some(p) if p.task.tid == receiver.id.tid => p.kind,
                    _ => reaper::classify(hop.father, &observed, r.inputs.as_deref()),
                };
                (r.reaper, r.observed, r.verdict, r.reason) = (proc, observed, verdict, reason);
                ts = ts.min(receiver.exit_ts);
            }
            out.push(Event::Reparent {
                ts,
                orphan: r.orphan,
                father: r.father,
                reaper: Some(r.reaper),
                kind: Some(r.kind),
                predicted: r.predicted.map(|p| Prediction {
                    tid: p.task.tid,
                    pid: p.task.tgid,
                    kind: p.kind,
                }),
                verdict: r.verdict,
                reason: r.reason,
                zombie: r.zombie,
                late: r.late,
            });
        }
    }

    /// A record says `parent` had `orphan` at `at`. If the orphan's hand-off out of a father
    /// whose exit was recorded late is unread, it went to `parent`: the hop is added, judged
    /// `unknown` (nothing was captured to predict from). It came before `at`, and so did the
    /// father's exit, whatever the late record's time says.
    pub(super) fn read_hop(&mut self, orphan: &TaskId, parent: TaskId, at: u64) {
        let Some(u) = self
            .unread_hops
            .get(&orphan.tid)
            .filter(|u| same_start(u.orphan.start_ns, orphan.start_ns) && u.father != parent)
            .copied()
        else {
            return;
        };
        self.unread_hops.remove(&orphan.tid);
        self.add_read_hop(u, parent, at);
    }

    /// Adds hop `u`, to `parent`, which a record named at `at` (see [`Model::read_hop`]).
    pub(super) fn add_read_hop(&mut self, u: UnreadHop, parent: TaskId, at: u64) {
        let reaper = self.proc_by_id(&parent);
        let observed = Observed {
            reaper: parent,
            reaper_is_subreaper: self.known(&parent).is_some_and(|t| t.subreaper),
            reaper_ns_pid: reaper.ns_pid,
        };
        let kind = reaper::classify(u.father, &observed, None);
        let father_exit = u.father_exit.min(at.saturating_sub(1));
        self.hand_offs.add(Hop {
            orphan: u.orphan,
            father: u.father,
            father_exit: Some(father_exit),
            // Its receiver is known: none other is looked for.
            read_ts: father_exit,
            data: HopRecord {
                orphan: self.proc_by_id(&u.orphan),
                father: self.proc_by_id(&u.father),
                reaper,
                observed,
                kind,
                verdict: Verdict::Unknown,
                reason: None,
                predicted: None,
                after: None,
                inputs: None,
                final_inputs: None,
                zombie: false,
                late: true,
            },
        });
    }

    /// The hand-offs still unread at the end of a session: counted as lost.
    pub fn give_up_unread_hops(&mut self) {
        self.unread_adoptions += self.unread_hops.len() as u64;
        self.unread_hops.clear();
    }

    /// Task `tid`'s exit was recorded late (at `ts`), its children handed on unread. Those
    /// whose own record already named their new parent have their hop now; for the others,
    /// the next record naming their parent tells (see [`UnreadHop`]).
    pub(super) fn late_exit_children(&mut self, tid: u32, ts: u64, out: &mut Vec<Event>) {
        let father = self.tasks[&tid].id;
        let moved: Vec<Moved> = self
            .moved
            .values()
            .filter(|m| m.from == father)
            .copied()
            .collect();
        for m in &moved {
            self.moved.remove(&m.orphan.tid);
            let hop = UnreadHop {
                orphan: m.orphan,
                father,
                father_exit: ts,
            };
            self.add_read_hop(hop, m.to, m.at);
        }
        let orphans: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| t.parent == Some(father) && t.is_process() && t.state != TaskState::Reaped)
            .map(|t| t.id)
            .collect();
        for orphan in orphans {
            let hop = UnreadHop {
                orphan,
                father,
                father_exit: ts,
            };
            self.unread_hops.insert(orphan.tid, hop);
        }
        if !moved.is_empty() {
            self.release_hops(out);
        }
    }

    /// Task `tid`'s own record names `parent` at `at`: where the model had another parent and
    /// no adoption record said so yet, that is noted (see [`Moved`]).
    pub(super) fn note_parent(&mut self, tid: u32, parent: TaskId, at: u64) {
        let t = &self.tasks[&tid];
        if let Some(from) = t.parent.filter(|p| *p != parent)
            && t.is_process()
        {
            let m = Moved {
                orphan: t.id,
                from,
                to: parent,
                at,
            };
            self.moved.insert(tid, m);
        }
    }
}
