//! The process model: turns kernel records into the events users see, keeping what it must
//! know about every task between records (ids, parents, zombies, reaper snapshots).
//!
//! The model is pure: it reads no file and no clock. What it needs from the outside world
//! (is this task still a zombie in `/proc`?) is passed in, so its tests run on synthetic
//! records.
//!
//! Rules it keeps, whatever order records arrive in or however many are lost:
//! - **One identity per task.** A task is its tid plus its start time, compared with
//!   [`same_start`]; every `proc` object the model writes comes from the one entry it keeps for
//!   the task, so a task carries the same ids and start time in every event, and its namespace
//!   ids are the ones captured while it was alive (a released task reads back as zeros).
//! - **A reused pid proves a release.** When a record introduces a new task with the tid of one
//!   the model still holds unreaped, the old one was reaped unseen: it is resolved then.
//! - **A reap is the real parent's.** A wait that returns a pid reaps it only when the waiter is
//!   (a thread of) the task's real parent; a ptracer's wait only detaches it. A pid that a wait
//!   returned was never auto-reaped.
//! - **A process is a zombie once its group is dead**, not when its leader thread exits while
//!   other threads live (or while one of them execs and takes its place).
//! - **A dying namespace init takes its namespace with it.** When it reaches its final
//!   switch, every other task of the namespace has been released: what is still pending is
//!   resolved then, in order, before the init's own reap.
//!
//! Every operation is O(1) in the number of tasks and zombies (hash indexes), except
//! [`Model::due_for_check`] and [`Model::zombies_at_risk`], which take O(log n) per zombie
//! they return.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use reaper_trace_common::{
    DEAD_LEADER_GONE, DeadEvent, EXIT_FLAG_LATE, ExecEvent, ExitEvent, FORK_FLAG_LATE,
    FORK_FLAG_THREAD, FREE_REPLACED_LEADER, ForkEvent, FreeEvent, REPARENT_REAPER_ID_ONLY,
    REPARENT_RELEASED, ReparentEvent, SnapshotEvent, SubreaperEvent, TASK_COMM_LEN, TaskId,
    TaskInfo, UPid, WAIT_STATUS_UNKNOWN, WaitEvent, cld, exit_state, wait_syscall,
};

use crate::decode::{RawEvent, c_string, split_args};
use crate::event::{Event, ExitStatus, Prediction, Proc, ReapHow, Verdict, wait_status};
use crate::hand_offs::{HandOffs, Hop, Receiver};
use crate::identity::{is_leader_id, same_start};
use crate::procfs::ProcTask;
use crate::reaper::{self, Observed, Predicted, ReaperInputs};

mod adoptions;
mod reaps;

use adoptions::{HopRecord, Moved, UnreadHop, related};

/// How long a zombie that `/proc` no longer shows may still have its reap record in flight:
/// records written before the check are applied within this much of it.
pub const VANISH_GRACE_NS: u64 = 200_000_000;
/// A zombie is first checked against `/proc` this long after it became one, then every
/// `RECHECK_NS` (a few thousand zombies at most per check, see `due_for_check`).
pub const CHECK_AFTER_NS: u64 = 2_000_000_000;
const RECHECK_NS: u64 = 5_000_000_000;
/// Tasks the kernel freed stay describable for this many removals more: a record naming one
/// as a parent or reaper after its own free (they arrive in any order within one RCU grace
/// period) still gets its full ids.
const DEPARTED_KEPT: usize = 8192;

/// Which tasks' events are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every task on the machine: zombies found at start are reported (`before_trace`).
    All,
    /// The process tree of one command. The kernel programs send only its records (and the
    /// waits that reap its zombies), so every record is reported.
    Tree,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Running,
    /// Began exiting (`exit` seen), its process not yet finished.
    Exiting,
    /// Waits to be reaped; `since` is unknown for zombies found in `/proc` at start.
    Zombie {
        since: Option<u64>,
    },
    /// Found already released when its process finished: auto-reaped, or reaped on another
    /// CPU by a wait whose record comes later. The wait record, if any, tells which; the free
    /// record (or the next check) settles it as auto-reaped.
    Released {
        at: u64,
        exit_code: u32,
    },
    /// Reaped; the entry goes when the kernel frees the task or its pid is reused.
    Reaped,
}

/// `(pid namespace, pid number)`, the key wait results are resolved by. Level 0 uses
/// namespace 0, so tasks seeded from `/proc` and records agree on it.
type NsPid = (u32, u32);

#[derive(Debug, Clone)]
pub struct Task {
    pub id: TaskId,
    pub ns_tid: u32,
    pub ns_tgid: u32,
    pub pidns: u32,
    /// Depth of its pid namespace (0 = the initial one).
    pub level: u32,
    pub comm: String,
    /// When its `exit` record was seen.
    exit_ts: Option<u64>,
    /// Its exit record said the whole thread group died with it.
    group_dead: bool,
    /// The wait status its exit record gave (`task_struct::exit_code`).
    exit_code: Option<u32>,
    /// The real parent as last seen (the one who has to reap it).
    pub parent: Option<TaskId>,
    pub subreaper: bool,
    pub state: TaskState,
    /// A `zombie` event was written for it.
    zombie_reported: bool,
    /// While a zombie: when to check it against `/proc` next (its key in `Model::checks`).
    check_at: u64,
    /// While a zombie: the last time it was known to be one (it became one then, or `/proc`
    /// showed it still was). A record lost after that may have been its reap.
    verified_at: u64,
    /// When it became a zombie, if it was seen as one (kept when it is then released).
    zombie_since: Option<u64>,
    /// Its pid at each namespace level it is known at (for processes).
    pids: Vec<NsPid>,
    /// `find_new_reaper`'s inputs, captured when it exited with children.
    reaper_inputs: Option<Box<ReaperInputs>>,
    /// The same, taken again at its final switch (after the kernel chose).
    final_inputs: Option<Box<ReaperInputs>>,
    /// A wait that returned it before the records of its adoption came: see `Model::wait`.
    early_wait: Option<EarlyWait>,
    /// A wait that returned it before its exit was recorded: only a late exit (recorded at the
    /// final switch) comes after the wait that reaped it. Applied when that exit comes.
    wait_before_exit: Option<EarlyWait>,
    /// When the father whose hand-off named `parent` exited. Hand-offs between threads of one
    /// process are recorded at each thread's final switch, and those can run in another order
    /// than the exits (threads on other CPUs): a record whose father exited earlier than that
    /// is older news, and does not change the parent.
    parent_since: Option<u64>,
}

/// A wait by a task that is not (yet, for the model) the real parent, while the recorded
/// parent has exited: the kernel has already handed the task to its new parent, which reaped
/// it, but the old parent's final switch, where the adoption is recorded, comes later (the
/// parent runs on another CPU). Applied when that adoption names the waiter, or when the
/// kernel frees the task without another reap.
#[derive(Debug, Clone, Copy)]
struct EarlyWait {
    waiter: TaskId,
    ts: u64,
    how: ReapHow,
    /// `u32::MAX` when the record has none (wait4).
    status: u32,
}

impl Task {
    fn new(info: &TaskInfo) -> Self {
        Self {
            id: info.id,
            ns_tid: info.ns_tid,
            ns_tgid: info.ns_tgid,
            pidns: info.pidns,
            level: info.level,
            comm: c_string(&info.comm),
            exit_ts: None,
            group_dead: false,
            exit_code: None,
            parent: None,
            subreaper: false,
            state: TaskState::Running,
            zombie_reported: false,
            check_at: 0,
            verified_at: 0,
            zombie_since: None,
            pids: Vec::new(),
            reaper_inputs: None,
            final_inputs: None,
            early_wait: None,
            wait_before_exit: None,
            parent_since: None,
        }
    }

    /// Does this entry describe the task that started at `start_ns`?
    fn is(&self, start_ns: u64) -> bool {
        same_start(self.id.start_ns, start_ns)
    }

    fn is_process(&self) -> bool {
        is_leader_id(self.id.tid, self.id.tgid)
    }

    /// Takes what a record says of the task, keeping its identity (start time) and never
    /// replacing known namespace ids with the zeros a released task reads back as.
    fn refresh(&mut self, info: &TaskInfo) {
        self.id.tgid = info.id.tgid;
        if info.pidns != 0 {
            self.ns_tid = info.ns_tid;
            self.ns_tgid = info.ns_tgid;
            self.pidns = info.pidns;
            self.level = info.level;
        }
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

    /// Waiting to be reaped, or reaped but not yet known how.
    fn is_pending(&self) -> bool {
        matches!(
            self.state,
            TaskState::Exiting | TaskState::Zombie { .. } | TaskState::Released { .. }
        )
    }
}

fn ns_key(level: usize, upid: &UPid) -> NsPid {
    (if level == 0 { 0 } else { upid.pidns }, upid.nr)
}

/// A zombie to check against `/proc`: its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZombieCheck {
    pub tid: u32,
    pub start_ns: u64,
}

#[derive(Default)]
pub struct Model {
    tasks: HashMap<u32, Task>,
    /// Processes that may be reaped (exiting, zombie, released), by pid at every level known.
    waitable: HashMap<NsPid, u32>,
    /// Members of each pid namespace (by inode), for its teardown.
    members: HashMap<u32, HashSet<u32>>,
    /// Zombies by when to check them against `/proc` next.
    checks: BTreeSet<(u64, u32)>,
    /// Zombies by when they were last known to be zombies (`Task::verified_at`).
    verified: BTreeSet<(u64, u32)>,
    /// Zombies `/proc` no longer showed: (tid, start, when checked). They vanished unless a
    /// record written before the check reaps them.
    vanishing: Vec<(u32, u64, u64)>,
    /// Tree scope: the processes of the traced tree (its root and what it forked).
    tree: HashSet<u32>,
    /// Recently removed tasks, as they were last described (see `DEPARTED_KEPT`).
    departed: HashMap<u32, Proc>,
    departed_order: VecDeque<u32>,
    /// Adoptions waiting for the hand-offs of their orphan that came before or after them.
    hand_offs: HandOffs<HopRecord>,
    scope_all: bool,
    /// Hand-offs out of fathers whose exit was recorded late, by orphan tid, until a record
    /// names the orphan's parent.
    unread_hops: HashMap<u32, UnreadHop>,
    /// Orphans whose own exit or end named another parent than the model had, with no
    /// adoption record yet: by orphan tid, the hop (its `father` the parent the model had, its
    /// `father_exit` when the new one was named). The father's adoption record normally follows;
    /// if its exit is recorded late instead, this is the hop.
    moved: HashMap<u32, Moved>,
    /// Hand-offs no record told (an orphan of [`Model::unread_hops`] gone, or still unnamed at
    /// the end), not yet reported as lost (see [`Model::take_unread_adoptions`]).
    unread_adoptions: u64,
}

impl Model {
    pub fn new(scope: Scope) -> Self {
        Self {
            scope_all: scope == Scope::All,
            unread_hops: HashMap::new(),
            moved: HashMap::new(),
            unread_adoptions: 0,
            ..Default::default()
        }
    }

    /// Tree scope: nothing the traced command forked is left to follow (no process running,
    /// exiting or waiting to be reaped). The command itself is its caller's to watch.
    pub fn tree_settled(&self) -> bool {
        self.tree.iter().all(|tid| {
            self.tasks
                .get(tid)
                .is_none_or(|t| t.state == TaskState::Reaped)
        })
    }

    /// Tree scope: the tree's processes still running, and its zombies not yet reaped.
    pub fn tree_left(&self) -> (Vec<Proc>, Vec<Proc>) {
        let mut tids: Vec<u32> = self.tree.iter().copied().collect();
        tids.sort_unstable();
        let (mut running, mut zombies) = (Vec::new(), Vec::new());
        for t in tids.iter().filter_map(|tid| self.tasks.get(tid)) {
            match t.state {
                TaskState::Running | TaskState::Exiting => running.push(t.proc()),
                TaskState::Zombie { .. } => zombies.push(t.proc()),
                _ => {}
            }
        }
        (running, zombies)
    }

    pub fn task(&self, tid: u32) -> Option<&Task> {
        self.tasks.get(&tid)
    }

    /// How many tasks the model holds.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// How many processes are zombies now.
    pub fn zombie_count(&self) -> usize {
        self.checks.len()
    }

    /// Learns the tasks that exist before tracing starts.
    pub fn seed(&mut self, tasks: &[ProcTask]) {
        for p in tasks {
            let info = TaskInfo {
                id: TaskId {
                    tid: p.tid,
                    tgid: p.tgid,
                    start_ns: crate::identity::ticks_to_ns(p.start_ticks),
                },
                ns_tid: p.nspid.last().copied().unwrap_or(p.tid),
                ns_tgid: p.nstgid.last().copied().unwrap_or(p.tgid),
                pidns: p.pidns,
                level: p.nspid.len().saturating_sub(1) as u32,
                comm: [0; TASK_COMM_LEN],
            };
            let mut task = Task::new(&info);
            task.comm = p.comm.clone();
            // System-wide, a zombie found at start is one to follow. A traced tree starts
            // empty: what /proc has only names the tree's parents and reapers.
            if self.scope_all && p.state == 'Z' && p.tid == p.tgid {
                task.state = TaskState::Zombie { since: None };
            }
            // NSpid lists the pid from the root namespace down; only the own level's
            // namespace inode is known.
            let last = p.nspid.len().saturating_sub(1);
            task.pids = p
                .nspid
                .iter()
                .enumerate()
                .filter(|&(l, _)| l == 0 || l == last)
                .map(|(l, &nr)| (if l == 0 { 0 } else { p.pidns }, nr))
                .collect();
            self.insert(task);
        }
        // Parents from /proc carry no start time: resolve them now that all tasks are known.
        let parents: Vec<(u32, u32)> = tasks.iter().map(|p| (p.tid, p.ppid)).collect();
        for (tid, ppid) in parents {
            let parent = self.tasks.get(&ppid).map(|t| t.id);
            if let Some(t) = self.tasks.get_mut(&tid) {
                t.parent = parent;
            }
        }
    }

    /// `zombie` events for the zombies that existed before tracing began (found in `/proc` by
    /// `seed`): recordings and replays then know them too. `ts` is when tracing began.
    pub fn zombies_before_trace(&mut self, ts: u64) -> Vec<Event> {
        if !self.scope_all {
            return Vec::new();
        }
        let mut tids: Vec<u32> = self
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Zombie { since: None })
            .map(|t| t.id.tid)
            .collect();
        tids.sort_unstable();
        let mut out = Vec::new();
        for tid in tids {
            let task = &self.tasks[&tid];
            out.push(Event::Zombie {
                ts,
                task: task.proc(),
                parent: self.parent_proc(task),
                status: ExitStatus::UNKNOWN,
                autoreaped: false,
                before_trace: true,
            });
            self.tasks.get_mut(&tid).expect("listed").zombie_reported = true;
        }
        out
    }

    // ----- the task table and its indexes -----

    /// Adds a task, resolving the one that held its tid before (pid reuse proves it was
    /// released). Returns the events that resolution means.
    fn insert(&mut self, task: Task) -> Option<Task> {
        let tid = task.id.tid;
        let own_ns = (task.level > 0).then_some(task.pidns);
        let old = self.tasks.insert(tid, task);
        if let Some(old) = &old {
            // A new task with this tid: it belongs to the tree only if its fork says so.
            self.tree.remove(&tid);
            self.unindex(old);
            self.depart(old);
        }
        if let Some(ns) = own_ns {
            self.members.entry(ns).or_default().insert(tid);
        }
        if self.tasks[&tid].is_pending() {
            self.index_waitable(tid);
        }
        self.schedule_check(tid);
        old
    }

    /// A zombie is checked against `/proc` some time after it became one.
    fn schedule_check(&mut self, tid: u32) {
        let task = self.tasks.get_mut(&tid).expect("present");
        if let TaskState::Zombie { since } = task.state {
            task.check_at = since.unwrap_or(0).saturating_add(CHECK_AFTER_NS);
            task.verified_at = since.unwrap_or(0);
            self.checks.insert((task.check_at, tid));
            self.verified.insert((task.verified_at, tid));
        }
    }

    fn index_waitable(&mut self, tid: u32) {
        let task = &self.tasks[&tid];
        if !task.is_process() {
            return;
        }
        self.waitable.extend(task.keys().map(|key| (key, tid)));
    }

    fn unindex(&mut self, task: &Task) {
        let tid = task.id.tid;
        for key in task.keys() {
            if self.waitable.get(&key) == Some(&tid) {
                self.waitable.remove(&key);
            }
        }
        if let Some(m) = self.members.get_mut(&task.pidns) {
            m.remove(&tid);
            if m.is_empty() {
                self.members.remove(&task.pidns);
            }
        }
        self.uncheck(task);
    }

    fn uncheck(&mut self, task: &Task) {
        if task.is_zombie() {
            self.checks.remove(&(task.check_at, task.id.tid));
            self.verified.remove(&(task.verified_at, task.id.tid));
        }
    }

    fn remove(&mut self, tid: u32) -> Option<Task> {
        let task = self.tasks.remove(&tid)?;
        if self.unread_hops.remove(&tid).is_some() {
            self.unread_adoptions += 1;
        }
        self.moved.remove(&tid);
        self.tree.remove(&tid);
        self.unindex(&task);
        self.depart(&task);
        Some(task)
    }

    fn depart(&mut self, task: &Task) {
        if self.departed.insert(task.id.tid, task.proc()).is_none() {
            self.departed_order.push_back(task.id.tid);
        }
        if self.departed_order.len() > DEPARTED_KEPT
            && let Some(old) = self.departed_order.pop_front()
        {
            self.departed.remove(&old);
        }
    }

    /// Changes a task's state, keeping the indexes right.
    fn set_state(&mut self, tid: u32, state: TaskState) {
        let Some(task) = self.tasks.get(&tid) else {
            return;
        };
        let was_pending = task.is_pending();
        if task.is_zombie() {
            self.checks.remove(&(task.check_at, tid));
            self.verified.remove(&(task.verified_at, tid));
        }
        let task = self.tasks.get_mut(&tid).expect("present");
        task.state = state;
        if let TaskState::Zombie { since: Some(since) } = state {
            task.zombie_since = Some(since);
        }
        let pending = task.is_pending();
        self.schedule_check(tid);
        if pending && !was_pending {
            self.index_waitable(tid);
        } else if !pending && was_pending {
            let task = &self.tasks[&tid];
            for key in task.keys() {
                if self.waitable.get(&key) == Some(&tid) {
                    self.waitable.remove(&key);
                }
            }
        }
    }

    /// The entry for `info`, created (resolving a stale one of a reused pid) if needed.
    fn learn(&mut self, info: &TaskInfo, out: &mut Vec<Event>) -> u32 {
        let tid = info.id.tid;
        match self.tasks.get_mut(&tid) {
            Some(t) if t.is(info.id.start_ns) => t.refresh(info),
            _ => {
                if let Some(old) = self.insert(Task::new(info)) {
                    self.reused(old, info.id.start_ns, out);
                }
            }
        }
        tid
    }

    /// `old`'s tid now names another task: `old` was released. What it was still waiting for
    /// is settled now, with what the records showed of it.
    fn reused(&mut self, old: Task, ts_hint: u64, out: &mut Vec<Event>) {
        let ts = ts_hint.max(old.exit_ts.unwrap_or(0));
        match old.state {
            TaskState::Released { at, exit_code } => {
                self.report_reap(&old, at, None, ReapHow::Auto, Some(exit_code), out);
            }
            TaskState::Zombie { .. } => {
                self.report_reap(&old, ts, None, ReapHow::Vanished, None, out);
            }
            TaskState::Exiting if old.is_process() && old.group_dead => {
                self.report_reap(&old, ts, None, ReapHow::Vanished, None, out);
            }
            _ => {}
        }
    }

    /// The model's entry for an id, if it is that task.
    fn known(&self, id: &TaskId) -> Option<&Task> {
        self.tasks.get(&id.tid).filter(|t| t.is(id.start_ns))
    }

    /// The best description of a task only known by id.
    fn proc_by_id(&self, id: &TaskId) -> Proc {
        if let Some(t) = self.known(id) {
            return t.proc();
        }
        match self
            .departed
            .get(&id.tid)
            .filter(|p| same_start(p.start, id.start_ns))
        {
            Some(p) => p.clone(),
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

    fn proc_of(&self, tid: u32) -> Proc {
        self.tasks[&tid].proc()
    }

    fn parent_proc(&self, task: &Task) -> Proc {
        task.parent
            .map(|p| self.proc_by_id(&p))
            .unwrap_or_else(|| task.proc())
    }

    // ----- records -----

    /// Applies one kernel record; the events it means, if any, are appended to `out`.
    pub fn apply(&mut self, raw: &RawEvent, out: &mut Vec<Event>) {
        match raw {
            RawEvent::Fork(e) => self.fork(e, out),
            RawEvent::Exec(e) => self.exec(e, out),
            RawEvent::Exit(e) => self.exit(e, out),
            RawEvent::Dead(e) => self.dead(e, out),
            RawEvent::ExitSnapshot(e) => self.snapshot(e, false),
            RawEvent::SwitchSnapshot(e) => self.snapshot(e, true),
            RawEvent::Reparent(e) => self.reparent(e, out),
            RawEvent::AdoptionChunk(e) => {
                for r in e.reparents() {
                    self.reparent(&r, out);
                }
            }
            RawEvent::Wait(e) => self.wait(e, out),
            RawEvent::Free(e) => self.free(e, out),
            RawEvent::Subreaper(e) => self.subreaper(e, out),
        }
    }

    fn fork(&mut self, e: &ForkEvent, out: &mut Vec<Event>) {
        let caller = self.learn(&e.parent, out);
        let child = self.learn(&e.child, out);
        let thread = e.flags & FORK_FLAG_THREAD != 0;
        let late = e.flags & FORK_FLAG_LATE != 0;
        // A process's parent is its real parent: the caller's parent with CLONE_PARENT.
        let parent = if thread || e.real_parent.tid == 0 {
            self.tasks[&caller].id
        } else {
            e.real_parent
        };
        self.tasks.get_mut(&child).expect("learned").parent = Some(parent);
        if !self.scope_all && !thread {
            self.tree.insert(child);
        }
        let caller_proc = self.proc_of(caller);
        let parent_proc = if parent.tid == caller {
            None
        } else {
            Some(self.proc_by_id(&parent))
        };
        let (parent, caller) = match parent_proc {
            Some(p) => (p, Some(caller_proc)),
            None => (caller_proc, None),
        };
        out.push(Event::Fork {
            ts: e.hdr.ts_ns,
            parent,
            child: self.proc_of(child),
            caller,
            thread,
            late,
        });
    }

    fn exec(&mut self, e: &ExecEvent, out: &mut Vec<Event>) {
        if e.old_tid != e.task.id.tid {
            // A thread other than the leader exec'd (de_thread): it took over the leader's pid
            // and start time, and the old leader was released without becoming a zombie.
            if let Some(thread) = self.tasks.get(&e.old_tid)
                && thread.id.tgid == e.task.id.tgid
            {
                self.remove(e.old_tid);
            }
        }
        let tid = self.learn(&e.task, out);
        // The process lives on: whatever its old leader's exit said no longer applies.
        let task = self.tasks.get_mut(&tid).expect("learned");
        task.exit_ts = None;
        task.exit_code = None;
        task.group_dead = false;
        task.reaper_inputs = None;
        task.final_inputs = None;
        if task.state != TaskState::Running {
            self.set_state(tid, TaskState::Running);
        }
        let len = (e.args_len as usize).min(e.args.len());
        out.push(Event::Exec {
            ts: e.hdr.ts_ns,
            task: self.proc_of(tid),
            filename: c_string(&e.filename),
            args: split_args(&e.args[..len]),
            args_truncated: e.args_total > e.args_len,
        });
    }

    fn exit(&mut self, e: &ExitEvent, out: &mut Vec<Event>) {
        let tid = self.learn(&e.task, out);
        let late = e.flags & EXIT_FLAG_LATE != 0;
        let mut ts = e.hdr.ts_ns;
        let mut wait_first = None;
        if late {
            // A late exit comes after the final switch, and may come after the wait that
            // reaped the task: the exit came before that wait.
            wait_first = self
                .tasks
                .get_mut(&tid)
                .and_then(|t| t.wait_before_exit.take());
            if let Some(w) = wait_first {
                ts = ts.min(w.ts);
            }
            self.late_exit_children(tid, ts, out);
        } else if e.parent.tid != 0 {
            self.note_parent(tid, e.parent, ts);
            self.read_hop(&e.task.id, e.parent, ts);
            self.release_hops(out);
        }
        let level = (e.task.level as usize).min(e.pids.len() - 1);
        let task = self.tasks.get_mut(&tid).expect("learned");
        task.exit_ts = Some(ts);
        task.group_dead = e.group_dead != 0;
        task.exit_code = Some(e.exit_code);
        if e.parent.tid != 0 {
            task.parent = Some(e.parent);
        }
        // Its snapshot, if it has children, is the next record.
        task.reaper_inputs = None;
        task.final_inputs = None;
        if e.pids[0].nr != 0 {
            task.pids = e.pids[..=level]
                .iter()
                .enumerate()
                .map(|(l, u)| ns_key(l, u))
                .collect();
        }
        self.set_state(tid, TaskState::Exiting);
        self.hand_offs.exited(e.task.id, ts, e.children_followed);
        let task = &self.tasks[&tid];
        let parent = (e.parent.tid != 0).then(|| self.proc_by_id(&e.parent));
        out.push(Event::Exit {
            ts,
            task: task.proc(),
            thread: e.task.id.tid != e.task.id.tgid,
            parent,
            status: ExitStatus::from_wait_status(e.exit_code),
            group_dead: e.group_dead != 0,
            age_ns: ts.saturating_sub(e.task.id.start_ns),
            children: e.children_followed,
            children_truncated: e.children_truncated != 0,
            late,
        });
        if let Some(w) = wait_first
            && let Some(waiter) = self.known(&w.waiter).map(|t| t.id.tid)
        {
            self.reap_by_wait(tid, waiter, w.ts, w.how, w.status, out);
        }
    }

    /// A process finished exiting. Several threads exiting together may each send one: the
    /// first settles it.
    fn dead(&mut self, e: &DeadEvent, out: &mut Vec<Event>) {
        let ts = e.hdr.ts_ns;
        let tid = e.task.id.tid;
        let gone = e.flags & DEAD_LEADER_GONE != 0;
        let known = match self.tasks.get(&tid) {
            Some(t) if gone => t.is_process() && t.state == TaskState::Exiting,
            Some(t) => t.is(e.task.id.start_ns),
            None => false,
        };
        if !known {
            if gone || e.task.pidns == 0 {
                // Released, and nothing else known of it: its records were lost.
                return;
            }
            self.learn(&e.task, out);
        } else if !gone {
            self.tasks.get_mut(&tid).expect("known").refresh(&e.task);
        }
        if !matches!(
            self.tasks[&tid].state,
            TaskState::Running | TaskState::Exiting
        ) {
            return;
        }
        if !gone && e.parent.id.tid != 0 {
            if e.parent.pidns != 0 {
                self.learn(&e.parent, out);
            }
            self.note_parent(tid, e.parent.id, ts);
            self.tasks.get_mut(&tid).expect("known").parent = Some(e.parent.id);
            let id = self.tasks[&tid].id;
            self.read_hop(&id, e.parent.id, ts);
            self.release_hops(out);
        }
        let level = (e.task.level as usize).min(e.pids.len() - 1);
        if e.pids[0].nr != 0 {
            let pids = e.pids[..=level]
                .iter()
                .enumerate()
                .map(|(l, u)| ns_key(l, u))
                .collect();
            self.tasks.get_mut(&tid).expect("known").pids = pids;
            if self.tasks[&tid].is_pending() {
                // Levels its exit record did not give: a wait may name it by them.
                self.index_waitable(tid);
            }
        }
        if gone || e.exit_state != exit_state::EXIT_ZOMBIE {
            // Reported once a wait, the free record or the next check says how it went.
            self.set_state(
                tid,
                TaskState::Released {
                    at: ts,
                    exit_code: e.exit_code,
                },
            );
        } else {
            self.set_state(tid, TaskState::Zombie { since: Some(ts) });
            let task = &self.tasks[&tid];
            // A task that exited between attaching and reading /proc is already announced,
            // as a zombie from before tracing: one zombie event per task (its records still
            // give the time it became one).
            if !task.zombie_reported {
                out.push(Event::Zombie {
                    ts,
                    task: task.proc(),
                    parent: self.parent_proc(task),
                    status: ExitStatus::from_wait_status(e.exit_code),
                    autoreaped: false,
                    before_trace: false,
                });
                self.tasks.get_mut(&tid).expect("known").zombie_reported = true;
            }
        }
        self.teardown_if_init(tid, ts, out);
    }

    fn subreaper(&mut self, e: &SubreaperEvent, out: &mut Vec<Event>) {
        let tid = self.learn(&e.task, out);
        self.tasks.get_mut(&tid).expect("learned").subreaper = e.enabled != 0;
        out.push(Event::Subreaper {
            ts: e.hdr.ts_ns,
            task: self.proc_of(tid),
            enabled: e.enabled != 0,
        });
    }

    // ----- reconciliation with the kernel's own view -----

    /// Zombies due for a check against `/proc` at `now` (at most `budget`), longest due
    /// first. Each is due again `RECHECK_NS` later, until it is reaped.
    pub fn due_for_check(&mut self, now: u64, budget: usize) -> Vec<ZombieCheck> {
        let mut due = Vec::new();
        while due.len() < budget {
            let Some(&(at, tid)) = self.checks.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.checks.pop_first();
            let task = self.tasks.get_mut(&tid).expect("checks index live zombies");
            task.check_at = now + RECHECK_NS;
            self.checks.insert((task.check_at, tid));
            due.push(ZombieCheck {
                tid,
                start_ns: task.id.start_ns,
            });
        }
        due
    }

    /// `/proc`, checked at `checked_at`, no longer shows this zombie. It vanished (its reap
    /// record was lost) unless a record written before the check reaps it: that is decided by
    /// [`Model::settle`] once every such record has been applied.
    pub fn gone_from_proc(&mut self, zombie: ZombieCheck, checked_at: u64) {
        self.vanishing
            .push((zombie.tid, zombie.start_ns, checked_at));
    }

    /// Settles what may have been reaped unseen, now that every record written before
    /// `applied_until` has been applied: zombies `/proc` stopped showing at least
    /// `VANISH_GRACE_NS` before it are reported `vanished`; processes found released that no
    /// wait claimed within that time were auto-reaped.
    pub fn settle(&mut self, applied_until: u64, out: &mut Vec<Event>) {
        let ready = self
            .hand_offs
            .expire(applied_until, |a, b| related(&self.tasks, a, b));
        self.write_hops(ready, out);
        let mut keep = Vec::new();
        for (tid, start, checked) in std::mem::take(&mut self.vanishing) {
            if checked.saturating_add(VANISH_GRACE_NS) > applied_until {
                keep.push((tid, start, checked));
                continue;
            }
            let Some(task) = self.tasks.get(&tid).filter(|t| t.is(start)).cloned() else {
                continue;
            };
            if task.is_zombie() {
                self.report_reap(&task, checked, None, ReapHow::Vanished, None, out);
                self.remove(tid);
            }
        }
        self.vanishing = keep;
    }

    /// At the end of a session, once every record has been read: processes found released
    /// that no wait claimed were auto-reaped (their free may not have come yet).
    /// Adoptions no record will tell since the last call (see `Model::unread_adoptions`).
    pub fn take_unread_adoptions(&mut self) -> u64 {
        std::mem::take(&mut self.unread_adoptions)
    }

    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let held = self.hand_offs.drain();
        self.write_hops(held, out);
        let mut released: Vec<u32> = self
            .tasks
            .values()
            .filter(|t| matches!(t.state, TaskState::Released { .. }))
            .map(|t| t.id.tid)
            .collect();
        released.sort_unstable();
        for tid in released {
            let task = self.tasks[&tid].clone();
            if let TaskState::Released { at, exit_code } = task.state {
                self.report_reap(&task, at, None, ReapHow::Auto, Some(exit_code), out);
            }
            self.remove(tid);
        }
    }

    /// `/proc`, read at `checked_at` (or later), still shows this zombie: a record lost before
    /// then was not its reap.
    pub fn still_zombie(&mut self, zombie: ZombieCheck, checked_at: u64) {
        if let Some(t) = self
            .tasks
            .get_mut(&zombie.tid)
            .filter(|t| t.is(zombie.start_ns) && t.is_zombie())
            && t.verified_at < checked_at
        {
            self.verified.remove(&(t.verified_at, zombie.tid));
            t.verified_at = checked_at;
            self.verified.insert((checked_at, zombie.tid));
        }
    }

    /// Every zombie the model holds, longest unchecked first.
    pub fn zombies(&self) -> Vec<ZombieCheck> {
        self.zombies_at_risk(u64::MAX)
    }

    /// The zombies whose reap may be among records lost at `lost_by` or before: those not
    /// known to be zombies since (see [`Model::still_zombie`]), longest unknown first. The
    /// others are zombies as the records left them. Indexed: O(log n) per zombie returned,
    /// nothing when none is at risk.
    pub fn zombies_at_risk(&self, lost_by: u64) -> Vec<ZombieCheck> {
        self.verified
            .range(..(lost_by, 0))
            .filter_map(|&(_, tid)| {
                let t = self.tasks.get(&tid)?;
                Some(ZombieCheck {
                    tid,
                    start_ns: t.id.start_ns,
                })
            })
            .collect()
    }
}

impl Task {
    /// The keys a wait result may name this process by: its pid at every level an exit or
    /// final record gave (level 0 first), else its global pid; and its own level's.
    fn keys(&self) -> impl Iterator<Item = NsPid> + '_ {
        let global = self.pids.is_empty().then_some((0, self.id.tgid));
        let own = (self.level > 0 && self.pidns != 0).then_some((self.pidns, self.ns_tgid));
        self.pids.iter().copied().chain(global).chain(own)
    }
}
