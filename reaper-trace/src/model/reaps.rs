//! Reaps: waits (and the waits that came before a late exit), releases, and a dying pid
//! namespace's teardown.

use super::*;

/// The wait status a wait record reports, as `task_struct::exit_code` would hold it.
pub(super) fn wait_status(e: &WaitEvent) -> u32 {
    // io_uring's waitid fills the record as waitid does.
    match (e.syscall, e.code) {
        (wait_syscall::WAITID | wait_syscall::IO_URING, cld::EXITED) => {
            ((e.status as u32) & wait_status::BYTE) << wait_status::CODE_SHIFT
        }
        (wait_syscall::WAITID | wait_syscall::IO_URING, c) => {
            let core = if c == cld::DUMPED {
                wait_status::CORE_DUMPED
            } else {
                0
            };
            (e.status as u32 & wait_status::SIGNAL) | core
        }
        _ => e.status as u32,
    }
}

/// The verdict on the kernel's choice: `predicted` from the snapshot at exit, `after` from the
/// one taken at the final switch, once the kernel had chosen.
/// How a wait record reaped.
pub(super) fn reap_how(e: &WaitEvent) -> ReapHow {
    match e.syscall {
        wait_syscall::WAITID => ReapHow::Waitid,
        wait_syscall::IO_URING => ReapHow::IoUring,
        _ => ReapHow::Wait4,
    }
}

impl Model {
    /// A pid namespace's init finished exiting if `tid` is one: `zap_pid_ns_processes` has
    /// killed every other task of the namespace and waited until all were released, with no
    /// wait syscall the programs could see. Settles what the model still holds pending there,
    /// at `ts`, the first record after the teardown: the init's final switch, or its reap
    /// or release when those came first (its parent can reap it on another CPU between its
    /// exit and that switch).
    pub(super) fn teardown_if_init(&mut self, init: u32, ts: u64, out: &mut Vec<Event>) {
        let task = &self.tasks[&init];
        if task.level == 0 || task.ns_tgid != 1 {
            return;
        }
        let ns = self.tasks[&init].pidns;
        let Some(members) = self.members.get(&ns) else {
            return;
        };
        let mut pending: Vec<u32> = members
            .iter()
            .copied()
            .filter(|&t| t != init && self.tasks.get(&t).is_some_and(|t| t.is_process()))
            .collect();
        pending.sort_unstable();
        for tid in pending {
            let task = self.tasks[&tid].clone();
            match task.state {
                TaskState::Released { at, exit_code } => {
                    self.report_reap(&task, at, None, ReapHow::Auto, Some(exit_code), out);
                }
                TaskState::Zombie { .. } | TaskState::Exiting => {
                    self.report_reap(&task, ts, None, ReapHow::Namespace, None, out);
                }
                _ => continue,
            }
            self.set_state(tid, TaskState::Reaped);
        }
    }

    /// Writes a task's reap (and its zombie first, if none was written), however it ended.
    /// `reaper: None` means its parent as last known.
    pub(super) fn report_reap(
        &self,
        task: &Task,
        ts: u64,
        reaper: Option<Proc>,
        how: ReapHow,
        exit_code: Option<u32>,
        out: &mut Vec<Event>,
    ) {
        let since = match task.state {
            TaskState::Zombie { since } => since,
            TaskState::Released { at, .. } => task.zombie_since.or(Some(at)),
            _ => task.exit_ts,
        };
        if !task.zombie_reported {
            out.push(Event::Zombie {
                ts: since.unwrap_or(ts).min(ts),
                task: task.proc(),
                parent: self.parent_proc(task),
                status: exit_code
                    .map(ExitStatus::from_wait_status)
                    .unwrap_or(ExitStatus::UNKNOWN),
                autoreaped: how == ReapHow::Auto,
                before_trace: false,
            });
        }
        let zombie_ns = match (how, task.state) {
            (ReapHow::Auto, _) => Some(task.zombie_since.map_or(0, |s| ts.saturating_sub(s))),
            (_, TaskState::Zombie { since: None }) => None,
            _ => Some(ts.saturating_sub(since.unwrap_or(ts))),
        };
        out.push(Event::Reap {
            ts,
            task: task.proc(),
            reaper: reaper.or_else(|| task.parent.map(|p| self.proc_by_id(&p))),
            how,
            zombie_ns,
        });
    }

    pub(super) fn wait(&mut self, e: &WaitEvent, out: &mut Vec<Event>) {
        // wait4 also returns stopped and continued children.
        if e.syscall == wait_syscall::WAIT4 && e.status != WAIT_STATUS_UNKNOWN {
            let s = e.status as u32;
            if s & wait_status::BYTE == wait_status::STOPPED || s == wait_status::CONTINUED {
                return;
            }
        }
        let waiter = self.learn(&e.waiter, out);
        let key = (
            if e.waiter.level == 0 {
                0
            } else {
                e.waiter.pidns
            },
            e.pid,
        );
        let Some(&tid) = self
            .waitable
            .get(&key)
            .filter(|tid| self.tasks.get(tid).is_some_and(Task::is_pending))
        else {
            // Not exiting as far as the model knows: a child whose exit will be recorded late
            // (at its final switch, which the wait did not wait for), kept for then. Else a
            // child unknown to the model (its records were lost, or it was reaped before
            // tracing began) or not waitable any more.
            if let Some(child) = self.running_child(&e.waiter, e.pid) {
                let w = EarlyWait {
                    waiter: self.tasks[&waiter].id,
                    ts: e.hdr.ts_ns,
                    how: reap_how(e),
                    status: wait_status(e),
                };
                self.tasks.get_mut(&child).expect("known").wait_before_exit = Some(w);
            }
            return;
        };
        let how = reap_how(e);
        let waiter_id = self.tasks[&waiter].id;
        let parent = self.tasks[&tid].parent;
        if parent.is_some_and(|p| p.tgid != waiter_id.tgid) {
            // Not its real parent as last recorded. If that parent has exited, the waiter may
            // be the new parent whose adoption is not recorded yet: kept for then. Otherwise a
            // ptracer, whose wait only detaches the task (it stays its real parent's zombie).
            let parent_exited = parent
                .and_then(|p| self.known(&p))
                .is_none_or(|p| !matches!(p.state, TaskState::Running));
            if parent_exited {
                self.tasks.get_mut(&tid).expect("known").early_wait = Some(EarlyWait {
                    waiter: waiter_id,
                    ts: e.hdr.ts_ns,
                    how,
                    status: wait_status(e),
                });
            }
            return;
        }
        self.reap_by_wait(tid, waiter, e.hdr.ts_ns, how, wait_status(e), out);
    }

    /// The running process `waiter`'s wait returned as `pid` (in the waiter's namespace), if
    /// the model has it as a child of the waiter's process.
    pub(super) fn running_child(&self, waiter: &TaskInfo, pid: u32) -> Option<u32> {
        let is_child = |t: &&Task| {
            t.is_process()
                && t.state == TaskState::Running
                && t.parent.is_none_or(|p| p.tgid == waiter.id.tgid)
        };
        if waiter.level == 0 {
            return self.tasks.get(&pid).filter(is_child).map(|t| t.id.tid);
        }
        self.members
            .get(&waiter.pidns)?
            .iter()
            .filter_map(|tid| self.tasks.get(tid))
            .find(|t| t.ns_tid == pid && is_child(t))
            .map(|t| t.id.tid)
    }

    /// Task `tid` reaped by `waiter`'s wait at `ts`.
    pub(super) fn reap_by_wait(
        &mut self,
        tid: u32,
        waiter: u32,
        ts: u64,
        how: ReapHow,
        status: u32,
        out: &mut Vec<Event>,
    ) {
        let task = self.tasks[&tid].clone();
        // wait4's record has no status: the exit record's is the one it returned.
        let status = match status {
            u32::MAX => task.exit_code.unwrap_or(u32::MAX),
            s => s,
        };
        if task.state == TaskState::Exiting {
            self.teardown_if_init(tid, ts, out);
        }
        let mut reaped = task.clone();
        if let TaskState::Released { .. } = reaped.state {
            // Reaped on another CPU before its final switch was recorded: a zombie, however
            // briefly, between its exit and this wait.
            reaped.state = TaskState::Exiting;
        }
        self.report_reap(
            &reaped,
            ts,
            Some(self.proc_of(waiter)),
            how,
            (status != u32::MAX).then_some(status),
            out,
        );
        let t = self.tasks.get_mut(&tid).expect("known");
        t.zombie_reported = true;
        t.early_wait = None;
        self.set_state(tid, TaskState::Reaped);
    }

    /// Applies `tid`'s early wait if `reaper` (its new parent, just recorded, or `None` when
    /// the kernel freed it without another reap) is the one who waited.
    pub(super) fn apply_early_wait(
        &mut self,
        tid: u32,
        reaper: Option<TaskId>,
        out: &mut Vec<Event>,
    ) {
        let Some(task) = self.tasks.get(&tid) else {
            return;
        };
        let Some(w) = task.early_wait else { return };
        if !task.is_pending() || reaper.is_some_and(|r| r.tgid != w.waiter.tgid) {
            return;
        }
        let Some(waiter) = self.known(&w.waiter).map(|t| t.id.tid) else {
            return;
        };
        self.reap_by_wait(tid, waiter, w.ts, w.how, w.status, out);
    }

    pub(super) fn free(&mut self, e: &FreeEvent, out: &mut Vec<Event>) {
        if e.flags & FREE_REPLACED_LEADER != 0 {
            // The old leader of a process whose other thread exec'd: that thread holds the
            // process's tid and start time now, and the process lives on (see `exec`).
            return;
        }
        let Some(tid) = self.known(&e.task).map(|t| t.id.tid) else {
            return;
        };
        // Released after a wait whose adoption record never came: that wait reaped it.
        self.apply_early_wait(tid, None, out);
        let task = self.tasks[&tid].clone();
        match task.state {
            TaskState::Released { at, exit_code } => {
                self.report_reap(&task, at, None, ReapHow::Auto, Some(exit_code), out);
            }
            TaskState::Zombie { .. } => {
                self.report_reap(&task, e.hdr.ts_ns, None, ReapHow::Free, None, out);
            }
            TaskState::Exiting if task.is_process() && task.group_dead => {
                // Its process's final record was lost: it was reaped, how is not known.
                self.teardown_if_init(tid, e.hdr.ts_ns, out);
                self.report_reap(&task, e.hdr.ts_ns, None, ReapHow::Free, None, out);
            }
            _ => {}
        }
        self.remove(task.id.tid);
    }
}
