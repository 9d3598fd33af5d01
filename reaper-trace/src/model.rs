//! The process model: turns kernel records into the events users see, keeping what it must
//! know about every task between records (names, parents, zombies, reaper snapshots).
//!
//! Tasks are keyed by thread id, but an entry only answers for the task that started at the
//! recorded time: a record for the same tid with another start time is a new task (pid reuse,
//! `pid_max` is 32768 here) and replaces the old entry. Records may arrive out of order across
//! CPUs or be lost, so every record can introduce a task the model has not seen yet.

use std::collections::HashMap;

use reaper_trace_common::{
    DeadEvent, ExecEvent, ExitEvent, ForkEvent, FreeEvent, REPARENT_REAPER_ID_ONLY,
    REPARENT_RELEASED, ReparentEvent, SubreaperEvent, TaskId, TaskInfo, WaitEvent, exit_state,
    wait_syscall,
};

use crate::decode::{RawEvent, c_string, split_args};
use crate::event::{Event, ExitStatus, Prediction, Proc, ReapHow, Verdict};
use crate::procfs::{self, ProcTask};
use crate::reaper::{self, Observed, ReaperInputs};

/// Which tasks' events are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every task on the machine.
    All,
    /// The process tree of one command: the root's tid once it is known, and everything it
    /// forks (orphans included, wherever they are adopted).
    Tree(Option<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Running,
    /// Began exiting (`exit` seen), not yet dead.
    Exiting,
    /// Waits to be reaped; `since` is unknown for zombies found in `/proc` at start.
    Zombie {
        since: Option<u64>,
    },
    /// Its final switch found it already released (`EXIT_DEAD`): either auto-reaped, or its
    /// parent's `wait4` on another CPU reaped it before that switch. The wait record, if any,
    /// tells which; without one by the time the task is freed, it was auto-reaped.
    Released {
        at: u64,
        exit_code: u32,
    },
    /// Reaped or auto-reaped; the entry goes away when the kernel frees the task.
    Reaped,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: TaskId,
    /// The start time came from `/proc` (10 ms ticks), not from the kernel records.
    approx_start: bool,
    pub ns_tid: u32,
    pub ns_tgid: u32,
    pub pidns: u32,
    /// Depth of its pid namespace (0 = the initial one).
    pub level: u32,
    pub comm: String,
    /// When its `exit` record was seen.
    exit_ts: Option<u64>,
    /// The real parent as last seen (the one who has to reap it).
    pub parent: Option<TaskId>,
    pub subreaper: bool,
    pub in_scope: bool,
    pub state: TaskState,
    /// (pid namespace inode, pid number) at each level, known once it is a zombie.
    pids: Vec<(u32, u32)>,
    /// `find_new_reaper`'s inputs, captured when it exited with children.
    reaper_inputs: Option<ReaperInputs>,
}

impl Task {
    fn new(info: &TaskInfo, in_scope: bool) -> Self {
        Self {
            id: info.id,
            approx_start: false,
            ns_tid: info.ns_tid,
            ns_tgid: info.ns_tgid,
            pidns: info.pidns,
            level: info.level,
            comm: c_string(&info.comm),
            exit_ts: None,
            parent: None,
            subreaper: false,
            in_scope,
            state: TaskState::Running,
            pids: Vec::new(),
            reaper_inputs: None,
        }
    }

    /// Does this entry describe the task that started at `start_ns`?
    fn is(&self, start_ns: u64) -> bool {
        if self.approx_start {
            self.id.start_ns / procfs::NS_PER_TICK == start_ns / procfs::NS_PER_TICK
        } else {
            self.id.start_ns == start_ns
        }
    }

    fn refresh(&mut self, info: &TaskInfo) {
        if self.approx_start {
            self.id.start_ns = info.id.start_ns;
            self.approx_start = false;
        }
        self.id.tgid = info.id.tgid;
        self.ns_tid = info.ns_tid;
        self.ns_tgid = info.ns_tgid;
        self.pidns = info.pidns;
        self.level = info.level;
        // Most records repeat the name the model has: only a new one is decoded (allocated).
        let comm = &info.comm;
        let len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
        if len > 0 && self.comm.as_bytes() != &comm[..len] {
            self.comm = c_string(comm);
        }
    }

    pub fn proc(&self) -> Proc {
        Proc {
            pid: self.id.tgid,
            tid: self.id.tid,
            ns_pid: self.ns_tgid,
            ns_tid: self.ns_tid,
            pidns: self.pidns,
            start: self.id.start_ns,
            comm: self.comm.clone(),
        }
    }

    pub fn is_zombie(&self) -> bool {
        matches!(self.state, TaskState::Zombie { .. })
    }
}

fn proc_of(info: &TaskInfo) -> Proc {
    Proc {
        pid: info.id.tgid,
        tid: info.id.tid,
        ns_pid: info.ns_tgid,
        ns_tid: info.ns_tid,
        pidns: info.pidns,
        start: info.id.start_ns,
        comm: c_string(&info.comm),
    }
}

pub struct Model {
    tasks: HashMap<u32, Task>,
    /// Zombies by (pid namespace, pid number) at every level, to resolve wait's result.
    zombie_pids: HashMap<(u32, u32), u32>,
    scope: Scope,
}

impl Model {
    pub fn new(scope: Scope) -> Self {
        Self {
            tasks: HashMap::new(),
            zombie_pids: HashMap::new(),
            scope,
        }
    }

    /// Sets the root of a `Scope::Tree` once the command has been started.
    pub fn set_root(&mut self, tid: u32) {
        self.scope = Scope::Tree(Some(tid));
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.in_scope = true;
        }
    }

    pub fn task(&self, tid: u32) -> Option<&Task> {
        self.tasks.get(&tid)
    }

    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values()
    }

    pub fn zombies(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values().filter(|t| t.is_zombie())
    }

    /// Learns the tasks that exist before tracing starts.
    pub fn seed(&mut self, tasks: &[ProcTask]) {
        for p in tasks {
            let mut task = Task {
                id: TaskId {
                    tid: p.tid,
                    tgid: p.tgid,
                    start_ns: procfs::ticks_to_ns(p.start_ticks),
                },
                approx_start: true,
                ns_tid: p.nspid.last().copied().unwrap_or(p.tid),
                ns_tgid: p.nstgid.last().copied().unwrap_or(p.tgid),
                pidns: p.pidns,
                level: p.nspid.len().saturating_sub(1) as u32,
                comm: p.comm.clone(),
                exit_ts: None,
                parent: None,
                subreaper: false,
                in_scope: self.scope == Scope::All,
                state: if p.state == 'Z' {
                    TaskState::Zombie { since: None }
                } else {
                    TaskState::Running
                },
                pids: Vec::new(),
                reaper_inputs: None,
            };
            if p.ppid != 0 {
                task.parent = Some(TaskId {
                    tid: p.ppid,
                    tgid: p.ppid,
                    start_ns: 0,
                });
            }
            if task.is_zombie() && p.tid == p.tgid {
                // Only the root level is known to match the namespace inode from /proc's view
                // for the global pid; the task's own level carries its own namespace.
                task.pids = vec![(0, p.tid)];
                if let Some(&own) = p.nspid.last() {
                    task.pids.push((p.pidns, own));
                }
                for key in &task.pids {
                    self.zombie_pids.insert(*key, p.tid);
                }
            }
            self.tasks.insert(p.tid, task);
        }
        // Parents from /proc carry no start time: resolve them now that all tasks are known.
        let starts: HashMap<u32, TaskId> = self.tasks.iter().map(|(k, t)| (*k, t.id)).collect();
        for t in self.tasks.values_mut() {
            if let Some(p) = t.parent {
                t.parent = starts.get(&p.tid).copied();
            }
        }
    }

    /// `zombie` events for the zombies that existed before tracing began (found in `/proc` by
    /// `seed`): recordings and replays then know them too. `ts` is when tracing began.
    pub fn zombies_before_trace(&self, ts: u64) -> Vec<Event> {
        let mut zombies: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| t.in_scope && t.state == TaskState::Zombie { since: None })
            .collect();
        zombies.sort_by_key(|t| t.id.tid);
        zombies
            .into_iter()
            .map(|t| Event::Zombie {
                ts,
                task: t.proc(),
                parent: t
                    .parent
                    .map(|p| self.proc_by_id(&p))
                    .unwrap_or_else(|| t.proc()),
                status: ExitStatus::UNKNOWN,
                autoreaped: false,
                before_trace: true,
            })
            .collect()
    }

    /// The entry for `info`, created (or replacing a stale one of a reused pid) if needed.
    fn learn(&mut self, info: &TaskInfo) -> &mut Task {
        let tid = info.id.tid;
        let fresh = match self.tasks.get(&tid) {
            Some(t) => !t.is(info.id.start_ns),
            None => true,
        };
        if fresh {
            let in_scope = match self.scope {
                Scope::All => true,
                Scope::Tree(root) => root == Some(tid),
            };
            if let Some(old) = self.tasks.insert(tid, Task::new(info, in_scope)) {
                self.forget_zombie_pids(&old);
            }
        }
        let task = self.tasks.get_mut(&tid).expect("just inserted");
        task.refresh(info);
        task
    }

    fn forget_zombie_pids(&mut self, task: &Task) {
        for key in &task.pids {
            if self.zombie_pids.get(key) == Some(&task.id.tid) {
                self.zombie_pids.remove(key);
            }
        }
    }

    /// The model's entry for an id, if it is that task.
    fn known(&self, id: &TaskId) -> Option<&Task> {
        self.tasks.get(&id.tid).filter(|t| t.is(id.start_ns))
    }

    /// The best description of a task only known by id.
    fn proc_by_id(&self, id: &TaskId) -> Proc {
        match self.known(id) {
            Some(t) => t.proc(),
            None => Proc {
                pid: id.tgid,
                tid: id.tid,
                ns_pid: 0,
                ns_tid: 0,
                pidns: 0,
                start: id.start_ns,
                comm: String::new(),
            },
        }
    }

    fn in_scope(&self, id: &TaskId) -> bool {
        self.scope == Scope::All || self.known(id).is_some_and(|t| t.in_scope)
    }

    /// Applies one kernel record; the events it means, if any, are appended to `out`.
    pub fn apply(&mut self, raw: &RawEvent, out: &mut Vec<Event>) {
        match raw {
            RawEvent::Fork(e) => self.fork(e, out),
            RawEvent::Exec(e) => self.exec(e, out),
            RawEvent::Exit(e) => self.exit(e, out),
            RawEvent::Dead(e) => self.dead(e, out),
            RawEvent::Reparent(e) => self.reparent(e, out),
            RawEvent::Wait(e) => self.wait(e, out),
            RawEvent::Free(e) => self.free(e, out),
            RawEvent::Subreaper(e) => self.subreaper(e, out),
        }
    }

    fn fork(&mut self, e: &ForkEvent, out: &mut Vec<Event>) {
        let parent_scope = self.learn(&e.parent).in_scope;
        let child = self.learn(&e.child);
        child.in_scope |= parent_scope;
        child.parent = Some(e.real_parent);
        if child.in_scope {
            out.push(Event::Fork {
                ts: e.hdr.ts_ns,
                parent: proc_of(&e.parent),
                child: proc_of(&e.child),
                thread: e.flags & reaper_trace_common::FORK_FLAG_THREAD != 0,
            });
        }
    }

    fn exec(&mut self, e: &ExecEvent, out: &mut Vec<Event>) {
        if e.old_tid != e.task.id.tid {
            // A non-leader thread exec'd and took over the group leader's pid.
            if let Some(old) = self.tasks.remove(&e.old_tid) {
                self.forget_zombie_pids(&old);
            }
        }
        let task = self.learn(&e.task);
        if !task.in_scope {
            return;
        }
        let len = (e.args_len as usize).min(e.args.len());
        out.push(Event::Exec {
            ts: e.hdr.ts_ns,
            task: proc_of(&e.task),
            filename: c_string(&e.filename),
            args: split_args(&e.args[..len]),
            args_truncated: e.args_total > e.args_len,
        });
    }

    fn exit(&mut self, e: &ExitEvent, out: &mut Vec<Event>) {
        let inputs =
            (e.children_followed > 0).then(|| ReaperInputs::from_snapshot(e.task.id, &e.snapshot));
        let task = self.learn(&e.task);
        task.state = TaskState::Exiting;
        task.exit_ts = Some(e.hdr.ts_ns);
        task.parent = Some(e.parent);
        task.reaper_inputs = inputs;
        if !task.in_scope {
            return;
        }
        let parent = (e.parent.tid != 0).then(|| self.proc_by_id(&e.parent));
        out.push(Event::Exit {
            ts: e.hdr.ts_ns,
            task: proc_of(&e.task),
            thread: e.task.id.tid != e.task.id.tgid,
            parent,
            status: ExitStatus::from_wait_status(e.exit_code),
            group_dead: e.group_dead != 0,
            age_ns: e.hdr.ts_ns.saturating_sub(e.task.id.start_ns),
            children: e.children_followed,
            children_truncated: e.children_truncated != 0,
        });
    }

    fn dead(&mut self, e: &DeadEvent, out: &mut Vec<Event>) {
        self.learn(&e.parent);
        let level = (e.task.level as usize).min(e.pids.len() - 1);
        let pids: Vec<(u32, u32)> = e.pids[..=level].iter().map(|u| (u.pidns, u.nr)).collect();
        let autoreaped = e.exit_state == exit_state::EXIT_DEAD;
        let task = self.learn(&e.task);
        if task.state == TaskState::Reaped {
            // Its parent's wait was recorded first (another CPU returned from wait4 before
            // this task's final switch): the zombie and its reap are already reported.
            return;
        }
        task.parent = Some(e.parent.id);
        task.pids = pids;
        let tid = e.task.id.tid;
        for key in task.pids.clone() {
            self.zombie_pids.insert(key, tid);
        }
        if autoreaped {
            // Reported once the wait or the free record says how it was released.
            if let Some(t) = self.tasks.get_mut(&tid) {
                t.state = TaskState::Released {
                    at: e.hdr.ts_ns,
                    exit_code: e.exit_code,
                };
            }
            return;
        }
        let Some(task) = self.tasks.get_mut(&tid) else {
            return;
        };
        task.state = TaskState::Zombie {
            since: Some(e.hdr.ts_ns),
        };
        if task.in_scope {
            out.push(Event::Zombie {
                ts: e.hdr.ts_ns,
                task: proc_of(&e.task),
                parent: proc_of(&e.parent),
                status: ExitStatus::from_wait_status(e.exit_code),
                autoreaped: false,
                before_trace: false,
            });
        }
    }

    /// The zombie and reap events of a task that was already released at its final switch.
    fn report_released(
        &self,
        task: &Task,
        at: u64,
        exit_code: u32,
        reap: Event,
        out: &mut Vec<Event>,
    ) {
        if !task.in_scope {
            return;
        }
        let parent = task
            .parent
            .map(|p| self.proc_by_id(&p))
            .unwrap_or_else(|| task.proc());
        out.push(Event::Zombie {
            ts: at,
            task: task.proc(),
            parent,
            status: ExitStatus::from_wait_status(exit_code),
            autoreaped: matches!(
                reap,
                Event::Reap {
                    how: ReapHow::Auto,
                    ..
                }
            ),
            before_trace: false,
        });
        out.push(reap);
    }

    fn reparent(&mut self, e: &ReparentEvent, out: &mut Vec<Event>) {
        let father = self.proc_by_id(&e.father);
        let inputs = self.known(&e.father).and_then(|t| t.reaper_inputs.clone());
        let predicted = inputs.as_ref().and_then(reaper::find_new_reaper);
        let prediction = predicted.map(|p| Prediction {
            tid: p.task.tid,
            pid: p.task.tgid,
            kind: p.kind,
        });
        let scope = self.in_scope(&e.father) || self.in_scope(&e.orphan);
        let ts = e.hdr.ts_ns;
        let mut orphan = self.proc_by_id(&e.orphan);
        if e.orphan_comm[0] != 0 {
            orphan.comm = c_string(&e.orphan_comm);
        }

        if e.flags & REPARENT_RELEASED != 0 {
            // Released while being reparented: its new parent let it go at once.
            let mut zombie_since = None;
            if let Some(t) = self.known(&e.orphan).cloned() {
                if let TaskState::Zombie { since } = t.state {
                    zombie_since = since;
                }
                self.forget_zombie_pids(&t);
                if let Some(t) = self.tasks.get_mut(&e.orphan.tid) {
                    t.state = TaskState::Reaped;
                }
            }
            if scope {
                out.push(Event::Reparent {
                    ts,
                    orphan: orphan.clone(),
                    father,
                    reaper: None,
                    kind: None,
                    predicted: prediction,
                    verdict: Verdict::Unobserved,
                    zombie: true,
                });
                out.push(Event::Reap {
                    ts,
                    task: orphan,
                    reaper: None,
                    how: ReapHow::Auto,
                    zombie_ns: zombie_since.map(|s| ts.saturating_sub(s)),
                });
            }
            return;
        }
        if e.reaper.id == e.father {
            // Not adopted: its parent is still the task that exited. A pid namespace's init
            // reaps every task of the namespace (zap_pid_ns_processes) before it would hand
            // its children on, so they are released, not reparented; their reap follows
            // (`free`).
            return;
        }

        let reaper = if e.flags & REPARENT_REAPER_ID_ONLY != 0 {
            self.proc_by_id(&e.reaper.id)
        } else {
            self.learn(&e.reaper);
            proc_of(&e.reaper)
        };
        if let Some(t) = self
            .tasks
            .get_mut(&e.orphan.tid)
            .filter(|t| t.is(e.orphan.start_ns))
        {
            t.parent = Some(e.reaper.id);
        }
        if !scope {
            return;
        }
        let observed = Observed {
            reaper: e.reaper.id,
            reaper_is_subreaper: e.reaper_is_subreaper != 0,
            reaper_ns_pid: reaper.ns_pid,
        };
        let kind = match predicted {
            Some(p) if p.task.tid == e.reaper.id.tid => p.kind,
            _ => reaper::classify(e.father, &observed, inputs.as_ref()),
        };
        let verdict = match predicted {
            Some(p) if p.task.tid == e.reaper.id.tid => Verdict::Match,
            Some(_) => Verdict::Mismatch,
            None => Verdict::Unknown,
        };
        out.push(Event::Reparent {
            ts,
            orphan,
            father,
            reaper: Some(reaper),
            kind: Some(kind),
            predicted: prediction,
            verdict,
            zombie: e.orphan_exit_state == exit_state::EXIT_ZOMBIE,
        });
    }

    fn wait(&mut self, e: &WaitEvent, out: &mut Vec<Event>) {
        // wait4 also returns stopped (0x7f in the low byte) and continued (0xffff) children.
        if e.syscall == wait_syscall::WAIT4 && e.status != -1 {
            let s = e.status;
            if s & 0xff == 0x7f || s == 0xffff {
                return;
            }
        }
        self.learn(&e.waiter);
        let key = (e.waiter.pidns, e.pid);
        let tid = self.zombie_pids.get(&key).copied().or_else(|| {
            // Zombies known from /proc at start: their root-level pid is the tid.
            (e.waiter.level == 0)
                .then(|| self.zombie_pids.get(&(0, e.pid)).copied())
                .flatten()
        });
        let Some(tid) = tid else {
            self.wait_before_dead(e, out);
            return;
        };
        let Some(task) = self.tasks.get(&tid).cloned() else {
            return;
        };
        self.forget_zombie_pids(&task);
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.state = TaskState::Reaped;
        }
        let how = if e.syscall == wait_syscall::WAITID {
            ReapHow::Waitid
        } else {
            ReapHow::Wait4
        };
        let reap = |zombie_ns| Event::Reap {
            ts: e.hdr.ts_ns,
            task: task.proc(),
            reaper: Some(proc_of(&e.waiter)),
            how,
            zombie_ns,
        };
        match task.state {
            TaskState::Released { at, exit_code } => {
                // Reaped on another CPU before its final switch was recorded.
                let reap = reap(Some(e.hdr.ts_ns.saturating_sub(at)));
                self.report_released(&task, at, exit_code, reap, out);
            }
            TaskState::Zombie { since } if task.in_scope || self.in_scope(&e.waiter.id) => {
                out.push(reap(since.map(|s| e.hdr.ts_ns.saturating_sub(s))));
            }
            _ => {}
        }
    }

    /// A wait that returned a pid no known zombie has: its parent reaped it on another CPU
    /// before the child's final switch was recorded. Find the exiting process by the pid the
    /// waiter saw (same namespace, or the waiter is in the initial namespace).
    fn wait_before_dead(&mut self, e: &WaitEvent, out: &mut Vec<Event>) {
        let waiter = &e.waiter;
        let found = self.tasks.values().find(|t| {
            t.state == TaskState::Exiting
                && t.id.tid == t.id.tgid
                && ((t.pidns == waiter.pidns && t.ns_tgid == e.pid)
                    || (waiter.level == 0 && t.id.tid == e.pid))
        });
        // None: a child unknown to the model (its records were lost, or it was reaped
        // before tracing began and is no zombie here).
        let Some(task) = found.cloned() else {
            return;
        };
        if let Some(t) = self.tasks.get_mut(&task.id.tid) {
            t.state = TaskState::Reaped;
        }
        if !(task.in_scope || self.in_scope(&waiter.id)) {
            return;
        }
        let ts = e.hdr.ts_ns;
        let status = match (e.syscall, e.code) {
            (wait_syscall::WAITID, 1) => ExitStatus {
                code: Some(e.status),
                signal: None,
                core_dumped: false,
            },
            (wait_syscall::WAITID, c) => ExitStatus {
                code: None,
                signal: Some(e.status),
                core_dumped: c == 3,
            },
            _ => ExitStatus::from_wait_status(e.status as u32),
        };
        let parent = task
            .parent
            .map(|p| self.proc_by_id(&p))
            .unwrap_or_else(|| proc_of(waiter));
        out.push(Event::Zombie {
            ts,
            task: task.proc(),
            parent,
            status,
            autoreaped: false,
            before_trace: false,
        });
        out.push(Event::Reap {
            ts,
            task: task.proc(),
            reaper: Some(proc_of(waiter)),
            how: if e.syscall == wait_syscall::WAITID {
                ReapHow::Waitid
            } else {
                ReapHow::Wait4
            },
            // At most this long: it became a zombie between its exit record and the wait.
            zombie_ns: task.exit_ts.map(|x| ts.saturating_sub(x)),
        });
    }

    fn free(&mut self, e: &FreeEvent, out: &mut Vec<Event>) {
        let Some(task) = self
            .tasks
            .get(&e.task.tid)
            .filter(|t| t.is(e.task.start_ns))
            .cloned()
        else {
            return;
        };
        if matches!(task.state, TaskState::Released { .. }) {
            self.auto_reaped(task, out);
            return;
        }
        self.tasks.remove(&e.task.tid);
        self.forget_zombie_pids(&task);
        if let TaskState::Zombie { since } = task.state
            && task.in_scope
        {
            out.push(Event::Reap {
                ts: e.hdr.ts_ns,
                task: task.proc(),
                reaper: task.parent.map(|p| self.proc_by_id(&p)),
                how: ReapHow::Free,
                zombie_ns: since.map(|s| e.hdr.ts_ns.saturating_sub(s)),
            });
        }
    }

    fn subreaper(&mut self, e: &SubreaperEvent, out: &mut Vec<Event>) {
        let task = self.learn(&e.task);
        task.subreaper = e.enabled != 0;
        if task.in_scope {
            out.push(Event::Subreaper {
                ts: e.hdr.ts_ns,
                task: proc_of(&e.task),
                enabled: e.enabled != 0,
            });
        }
    }

    /// At the end of a session, once every record has been read: tasks released at their
    /// final switch that no wait claimed were auto-reaped (their free may not have come yet),
    /// and zombies no longer in `/proc` lost their reap record, however young.
    pub fn finish(&mut self, now: u64, out: &mut Vec<Event>) {
        let mut released: Vec<Task> = self
            .tasks
            .values()
            .filter(|t| matches!(t.state, TaskState::Released { .. }))
            .cloned()
            .collect();
        released.sort_by_key(|t| t.id.tid);
        for task in released {
            self.auto_reaped(task, out);
        }
        self.reconcile(now, 0, out);
    }

    /// A task released at its final switch that no wait claimed: it was auto-reaped at its
    /// exit. Forgets it and reports its zombie and reap.
    fn auto_reaped(&mut self, task: Task, out: &mut Vec<Event>) {
        let TaskState::Released { at, exit_code } = task.state else {
            return;
        };
        self.tasks.remove(&task.id.tid);
        self.forget_zombie_pids(&task);
        let reap = Event::Reap {
            ts: at,
            task: task.proc(),
            reaper: task.parent.map(|p| self.proc_by_id(&p)),
            how: ReapHow::Auto,
            zombie_ns: Some(0),
        };
        self.report_released(&task, at, exit_code, reap, out);
    }

    /// Zombies the kernel no longer has but whose reap was never seen (its records were lost):
    /// reported as reaped with `how: vanished` and dropped, so the model never keeps a zombie
    /// the kernel has reaped. `older_than` spares zombies whose reap record may be in flight.
    pub fn reconcile(&mut self, now: u64, older_than: u64, out: &mut Vec<Event>) {
        let gone: Vec<Task> = self
            .tasks
            .values()
            .filter(|t| match t.state {
                TaskState::Zombie { since } => {
                    now.saturating_sub(since.unwrap_or(0)) >= older_than
                        && !procfs::still_zombie(t.id.tid, t.id.start_ns)
                }
                // Released tasks are freed within ~20 ms: this one's free record was lost.
                TaskState::Released { at, .. } => now.saturating_sub(at) >= older_than,
                _ => false,
            })
            .cloned()
            .collect();
        for task in gone {
            self.tasks.remove(&task.id.tid);
            self.forget_zombie_pids(&task);
            let reap = |zombie_ns| Event::Reap {
                ts: now,
                task: task.proc(),
                reaper: task.parent.map(|p| self.proc_by_id(&p)),
                how: ReapHow::Vanished,
                zombie_ns,
            };
            match task.state {
                TaskState::Released { at, exit_code } => {
                    let reap = reap(None);
                    self.report_released(&task, at, exit_code, reap, out);
                }
                TaskState::Zombie { since } if task.in_scope => {
                    out.push(reap(since.map(|s| now.saturating_sub(s))));
                }
                _ => {}
            }
        }
    }
}
