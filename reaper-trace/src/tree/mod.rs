//! `reaper-trace tree`: the process tree as the kernel's reaper logic sees it.
//!
//! One pass of a BPF task iterator (`iter/task`, the `tree_task` program) writes one
//! [`TreeTask`] per thread: `real_parent`, thread group, the subreaper flags, `exit_state`,
//! pid numbers at every namespace level, the namespace's `child_reaper`, and the first two
//! live threads of the group in the kernel's thread-list order. This module assembles those
//! records into processes and, for each, asks the validator's own [`find_new_reaper`] where
//! its children would go if it died now (and, per thread, if that thread exited).
//!
//! Consistency: the iterator reads each task under RCU while it holds it, so each record is
//! one task at one moment; the pass as a whole is not atomic (it takes about a millisecond
//! per few hundred tasks, during which processes may fork, exit or be reparented). What a
//! prediction rests on is checked across records: a parent that is not in the snapshot, or
//! whose start time differs (the pid was reused), or a thread scan that hit its bound, makes
//! the prediction `undecided` with the reason, never a guess.

pub(crate) mod render;

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Result, bail};
use reaper_trace_common::{TREE_MAX_THREADS, TaskId, TreeTask, exit_state, tree_flag};
use serde::Serialize;

use crate::container::{ContainerInfo, Resolver};
use crate::decode::c_string;
use crate::event::ReaperKind;
use crate::exit::Exit;
use crate::identity::same_start;
use crate::reaper::{ReaperInputs, SubreaperCandidate, find_new_reaper};

/// Version of the `tree --json` document.
pub const TREE_SCHEMA: u32 = 1;

const PF_EXITING: u32 = 0x0000_0004;
const PF_KTHREAD: u32 = 0x0020_0000;

/// Turns the iterator's output into records, checking their size first.
pub fn decode(bytes: &[u8]) -> Result<Vec<TreeTask>> {
    let size = std::mem::size_of::<TreeTask>();
    if !bytes.len().is_multiple_of(size) {
        bail!(
            "the task iterator wrote {} bytes, not a whole number of {size}-byte records: the kernel programs and reaper-trace do not match, rebuild both",
            bytes.len()
        );
    }
    let records: Vec<TreeTask> = bytes
        .chunks_exact(size)
        // SAFETY: a chunk of exactly `size_of::<TreeTask>()` bytes; TreeTask is plain
        // #[repr(C)] integers and byte arrays (any bit pattern is valid).
        .map(|c| unsafe { std::ptr::read_unaligned(c.as_ptr() as *const TreeTask) })
        .collect();
    if let Some(r) = records.iter().find(|r| r.size as usize != size) {
        bail!(
            "a task iterator record says it has {} bytes, not {size}: the kernel programs and reaper-trace do not match, rebuild both",
            r.size
        );
    }
    Ok(records)
}

/// A task in the JSON document and the text: global pid and tid, namespace pid, comm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskRef {
    pub pid: u32,
    pub tid: u32,
    /// Its pid in its own pid namespace.
    pub ns_pid: u32,
    pub comm: String,
}

/// Where orphans would go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanKind {
    /// Another live thread of the same process.
    Thread,
    /// The nearest subreaper ancestor with a live thread, in the same pid namespace.
    Subreaper,
    /// The pid namespace's init.
    Init,
    /// The process is its namespace's init: the namespace is torn down (every process in it is
    /// killed), its children stay with it. For the initial namespace's init, the kernel panics.
    Teardown,
    /// The snapshot cannot decide (see `reason`).
    Undecided,
}

/// "If it died now, its children would go to": the prediction and its reaper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    pub kind: OrphanKind,
    /// The reaper (the thread `find_new_reaper` returns); absent when undecided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reaper: Option<TaskRef>,
    /// Why the snapshot cannot decide; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Destination {
    fn undecided(reason: impl Into<String>) -> Self {
        Self {
            kind: OrphanKind::Undecided,
            reaper: None,
            reason: Some(reason.into()),
        }
    }
}

/// Where a task stands in its exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Live,
    /// `PF_EXITING`: inside `do_exit` (every thread, for a process).
    Exiting,
    /// Exited, waiting for its parent to reap it.
    Zombie,
    /// `EXIT_DEAD`: being released.
    Dead,
}

fn task_state(r: &TreeTask) -> State {
    match r.exit_state {
        exit_state::EXIT_ZOMBIE => State::Zombie,
        s if s & exit_state::EXIT_DEAD != 0 => State::Dead,
        0 if r.task_flags & PF_EXITING != 0 => State::Exiting,
        0 => State::Live,
        _ => State::Dead,
    }
}

/// One namespace level's pid number of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LevelPid {
    pub nr: u32,
    pub pidns: u32,
}

/// A thread, listed with `--threads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadNode {
    pub tid: u32,
    pub ns_tid: u32,
    pub comm: String,
    pub state: State,
    /// Processes whose `real_parent` is this thread (it forked them).
    pub children: Vec<u32>,
    /// Where this thread's children would go if this thread alone exited.
    pub orphans_to: Destination,
}

/// One process of the tree.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessNode {
    pub pid: u32,
    pub ns_pid: u32,
    /// Inode of its pid namespace, and the namespace's depth (0: the initial one).
    pub pidns: u32,
    pub level: u32,
    /// `CLOCK_BOOTTIME` ns of its leader's start: with `pid`, names it across pid reuse.
    pub start: u64,
    pub comm: String,
    /// Depth in the tree as printed (0 for a root).
    pub depth: u32,
    /// Its parent (`real_parent`: the thread that forked it, or its reaper); absent for roots
    /// whose parent is the kernel's idle task or outside the snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<TaskRef>,
    /// Its pid at every namespace level, the initial namespace first (up to 4 levels).
    pub pids: Vec<LevelPid>,
    pub state: State,
    /// `is_child_subreaper`: it called `PR_SET_CHILD_SUBREAPER`.
    pub subreaper: bool,
    /// `has_child_subreaper`: an ancestor is or was a subreaper, so orphans look for one.
    pub has_child_subreaper: bool,
    /// It is its pid namespace's init (`child_reaper`).
    pub ns_init: bool,
    /// The container a namespace init runs (resolved from its cgroup); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    /// A kernel thread.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub kernel_thread: bool,
    /// Its leader (main thread) exited while other threads live on.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub leader_exited: bool,
    /// A zombie: the process that has to reap it (its parent); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reaped_by: Option<TaskRef>,
    /// Its threads in the snapshot.
    pub nr_threads: u32,
    /// With `--threads`: each of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<Vec<ThreadNode>>,
    /// Its children's pids.
    pub children: Vec<u32>,
    /// If it died now (every thread), where its children would go.
    pub orphans_to: Destination,
}

/// The `tree --json` document.
#[derive(Debug, Clone, Serialize)]
pub struct TreeDoc {
    pub schema: u32,
    pub kernel: String,
    /// `CLOCK_BOOTTIME` ns when the pass started.
    pub taken_ts: u64,
    /// How long the iterator's pass took.
    pub read_ns: u64,
    /// Task records (threads) read.
    pub tasks: usize,
    /// The processes, in tree order (each after its parent, children by pid).
    pub processes: Vec<ProcessNode>,
}

/// The records, indexed.
pub struct Snapshot {
    /// Names a task that is not in the snapshot (`/proc`, for a task the iterator does not
    /// show, e.g. one that exited since); none in the tests.
    pub comm_fallback: Option<fn(u32, u32) -> Option<String>>,
    records: Vec<TreeTask>,
    by_tid: HashMap<u32, usize>,
    /// tgid -> its threads' records, in tid order.
    groups: BTreeMap<u32, Vec<usize>>,
}

impl Snapshot {
    pub fn new(records: Vec<TreeTask>) -> Self {
        let mut by_tid = HashMap::with_capacity(records.len());
        let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            // A task visited twice (the iterator re-runs a task whose record did not fit)
            // keeps its first record.
            if by_tid.contains_key(&r.task.id.tid) {
                continue;
            }
            by_tid.insert(r.task.id.tid, i);
            groups.entry(r.task.id.tgid).or_default().push(i);
        }
        for g in groups.values_mut() {
            g.sort_by_key(|&i| records[i].task.id.tid);
        }
        Self {
            comm_fallback: None,
            records,
            by_tid,
            groups,
        }
    }

    pub fn len(&self) -> usize {
        self.by_tid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_tid.is_empty()
    }

    /// The record of exactly this task (same tid, start time and process).
    fn task(&self, id: &TaskId) -> Option<&TreeTask> {
        let r = &self.records[*self.by_tid.get(&id.tid)?];
        (same_start(r.task.id.start_ns, id.start_ns) && r.task.id.tgid == id.tgid).then_some(r)
    }

    fn by_tid(&self, tid: u32) -> Option<&TreeTask> {
        self.by_tid.get(&tid).map(|&i| &self.records[i])
    }

    /// The record that stands for process `tgid`: its leader's, else (the leader was not in
    /// the pass) its first thread's.
    fn main_record(&self, tgid: u32) -> Option<(&TreeTask, bool)> {
        if let Some(r) = self.by_tid(tgid).filter(|r| r.task.id.tgid == tgid) {
            return Some((r, true));
        }
        let first = *self.groups.get(&tgid)?.first()?;
        Some((&self.records[first], false))
    }

    fn threads(&self, tgid: u32) -> impl Iterator<Item = &TreeTask> {
        self.groups
            .get(&tgid)
            .into_iter()
            .flatten()
            .map(|&i| &self.records[i])
    }

    fn task_ref(&self, id: &TaskId) -> TaskRef {
        let r = self.by_tid(id.tid).filter(|r| r.task.id.tgid == id.tgid);
        TaskRef {
            pid: id.tgid,
            tid: id.tid,
            ns_pid: r.map_or(0, |r| r.task.ns_tgid),
            comm: match r {
                Some(r) => c_string(&r.task.comm),
                None => self
                    .comm_fallback
                    .and_then(|f| f(id.tgid, id.tid))
                    .unwrap_or_else(|| "?".into()),
            },
        }
    }

    /// The subreaper ancestors of `father` (nearest first), as `find_new_reaper` walks them:
    /// up `real_parent` while the pid namespace level stays `father`'s. The second value is
    /// why the walk could not finish, if it could not.
    fn subreapers(&self, father: &TreeTask) -> (Vec<SubreaperCandidate>, Option<String>) {
        let level = father.task.level;
        let mut out = Vec::new();
        let mut cur = father.parent;
        let mut seen = HashSet::new();
        loop {
            // The idle task (init_task): the walk's end in the initial namespace.
            if cur.tid == 0 {
                return (out, None);
            }
            if !seen.insert(cur.tid) {
                return (
                    out,
                    Some(format!(
                        "the parents read form a loop at {} (they changed while the snapshot was taken)",
                        cur.tid
                    )),
                );
            }
            let is_init = cur.tgid == father.child_reaper.tgid;
            let Some(a) = self.task(&cur) else {
                if is_init {
                    // The namespace's init ends the walk (above it is another level, or the
                    // idle task); hidden from the iterator or not, it adopts either way.
                    return (out, None);
                }
                return (
                    out,
                    Some(format!(
                        "ancestor {} is not in the snapshot (it exited, or its pid was reused, while the snapshot was taken)",
                        cur.tid
                    )),
                );
            };
            if a.task.level != level {
                return (out, None);
            }
            if a.flags & tree_flag::IS_CHILD_SUBREAPER != 0 {
                let alive = a.alive[0];
                out.push(SubreaperCandidate {
                    task: a.task.id,
                    alive_thread: (alive.tid != 0).then_some(alive),
                    incomplete: alive.tid == 0 && a.flags & tree_flag::ALIVE_INCOMPLETE != 0,
                });
            }
            if is_init {
                return (out, None);
            }
            cur = a.parent;
        }
    }

    /// `find_new_reaper` for `father`'s children, `alive_thread` being the live thread of its
    /// group that would take them (None: the whole group is gone).
    fn destination(
        &self,
        father: &TreeTask,
        alive_thread: Option<TaskId>,
        alive_incomplete: bool,
    ) -> Destination {
        let has_child_subreaper = father.flags & tree_flag::HAS_CHILD_SUBREAPER != 0;
        let (subreapers, walk_cut) = if has_child_subreaper {
            self.subreapers(father)
        } else {
            (Vec::new(), None)
        };
        let inputs = ReaperInputs {
            father: father.task.id,
            alive_thread,
            alive_incomplete,
            child_reaper: father.child_reaper,
            has_child_subreaper,
            subreapers,
            subreapers_incomplete: walk_cut.is_some(),
        };
        match find_new_reaper(&inputs) {
            Some(p) => {
                let kind = match p.kind {
                    ReaperKind::Init if p.task.tid == father.task.id.tid => OrphanKind::Teardown,
                    ReaperKind::Thread => OrphanKind::Thread,
                    ReaperKind::Subreaper => OrphanKind::Subreaper,
                    ReaperKind::Init | ReaperKind::Unexpected => OrphanKind::Init,
                };
                Destination {
                    kind,
                    reaper: Some(self.task_ref(&p.task)),
                    reason: None,
                }
            }
            None if alive_incomplete => Destination::undecided(format!(
                "its thread list was scanned only as far as {TREE_MAX_THREADS} threads, all exiting"
            )),
            None => Destination::undecided(walk_cut.unwrap_or_else(|| {
                format!(
                    "a subreaper's thread list was scanned only as far as {TREE_MAX_THREADS} threads, all exiting"
                )
            })),
        }
    }
}

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only the subtrees of these processes (global pids); all when empty.
    pub pids: Vec<u32>,
    /// List each process's threads.
    pub threads: bool,
}

/// Names namespace inits' containers. A trait so the tests need no `/proc`.
pub trait Containers {
    fn container(&mut self, pidns: u32, init_pid: u32) -> Option<ContainerInfo>;
}

impl Containers for Resolver {
    fn container(&mut self, pidns: u32, init_pid: u32) -> Option<ContainerInfo> {
        self.is_new(pidns).then(|| self.resolve(pidns, init_pid, 1))
    }
}

/// No container attribution (tests, or namespaces outside any runtime).
pub struct NoContainers;

impl Containers for NoContainers {
    fn container(&mut self, _: u32, _: u32) -> Option<ContainerInfo> {
        None
    }
}

/// Each process's parent process (when it is in the snapshot), and each process's children
/// by pid.
fn family(snap: &Snapshot) -> (HashMap<u32, u32>, BTreeMap<u32, Vec<u32>>) {
    let mut parent_of: HashMap<u32, u32> = HashMap::new();
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &tgid in snap.groups.keys() {
        let (main, _) = snap.main_record(tgid).expect("a group has a record");
        let ppid = main.parent.tgid;
        if main.parent.tid != 0 && ppid != tgid && snap.groups.contains_key(&ppid) {
            parent_of.insert(tgid, ppid);
            children.entry(ppid).or_default().push(tgid);
        }
    }
    (parent_of, children)
}

/// Appends the subtrees of `roots` (each with its depth), depth first, children by pid.
fn subtrees(
    snap: &Snapshot,
    roots: &[(u32, u32)],
    children: &BTreeMap<u32, Vec<u32>>,
    opts: &Options,
    containers: &mut dyn Containers,
    out: &mut Vec<ProcessNode>,
) {
    let mut stack: Vec<(u32, u32)> = roots.iter().rev().copied().collect();
    let mut done = HashSet::new();
    while let Some((tgid, depth)) = stack.pop() {
        if !done.insert(tgid) {
            continue;
        }
        let kids = children.get(&tgid).cloned().unwrap_or_default();
        out.push(process(snap, tgid, depth, kids.clone(), opts, containers));
        for &k in kids.iter().rev() {
            stack.push((k, depth + 1));
        }
    }
}

/// The processes of `snap`, in tree order, with their predictions.
pub fn assemble(
    snap: &Snapshot,
    opts: &Options,
    containers: &mut dyn Containers,
) -> Result<Vec<ProcessNode>> {
    let (parent_of, children) = family(snap);
    let roots: Vec<u32> = if opts.pids.is_empty() {
        snap.groups
            .keys()
            .copied()
            .filter(|p| !parent_of.contains_key(p))
            .collect()
    } else {
        for &pid in &opts.pids {
            if !snap.groups.contains_key(&pid) {
                return Err(Exit {
                    code: 1,
                    message: format!(
                        "no process {pid} in the snapshot: check the pid (`reaper-trace tree` with no pid lists every process)"
                    ),
                }
                .into());
            }
        }
        // A pid inside another one's subtree is shown there, once.
        let asked: HashSet<u32> = opts.pids.iter().copied().collect();
        let mut roots: Vec<u32> = asked
            .iter()
            .copied()
            .filter(|&p| {
                let mut cur = p;
                let mut steps = 0;
                while let Some(&up) = parent_of.get(&cur) {
                    if asked.contains(&up) || steps > snap.groups.len() {
                        return false;
                    }
                    cur = up;
                    steps += 1;
                }
                true
            })
            .collect();
        roots.sort_unstable();
        roots
    };
    let roots: Vec<(u32, u32)> = roots.into_iter().map(|r| (r, 0)).collect();
    let mut out = Vec::new();
    subtrees(snap, &roots, &children, opts, containers, &mut out);
    Ok(out)
}

/// One process in its family: what the dashboard's tree panel shows.
#[derive(Debug, Clone)]
pub struct Lineage {
    /// Its ancestors, from its pid namespace's init (or the first one in the snapshot) down,
    /// then it, then its subtree in tree order; depths count from the first one.
    pub processes: Vec<ProcessNode>,
    /// Its index in `processes`.
    pub selected: usize,
}

/// Process `pid` with its ancestors up to its pid namespace's init (who would adopt its
/// orphans is among them: a subreaper, or that init) and its subtree. None when `pid` is not
/// in the snapshot.
pub fn lineage(
    snap: &Snapshot,
    pid: u32,
    opts: &Options,
    containers: &mut dyn Containers,
) -> Option<Lineage> {
    let (main, _) = snap.main_record(pid)?;
    let init = main.child_reaper.tgid;
    let (parent_of, children) = family(snap);
    let mut chain = Vec::new();
    let mut cur = pid;
    while cur != init
        && let Some(&up) = parent_of.get(&cur)
        && chain.len() <= snap.groups.len()
    {
        chain.push(up);
        cur = up;
    }
    chain.reverse();
    let mut out = Vec::new();
    for (depth, &a) in chain.iter().enumerate() {
        let kids = children.get(&a).cloned().unwrap_or_default();
        out.push(process(snap, a, depth as u32, kids, opts, containers));
    }
    let selected = out.len();
    subtrees(
        snap,
        &[(pid, selected as u32)],
        &children,
        opts,
        containers,
        &mut out,
    );
    Some(Lineage {
        processes: out,
        selected,
    })
}

fn process(
    snap: &Snapshot,
    tgid: u32,
    depth: u32,
    children: Vec<u32>,
    opts: &Options,
    containers: &mut dyn Containers,
) -> ProcessNode {
    let (main, is_leader) = snap.main_record(tgid).expect("a group has a record");
    let threads: Vec<&TreeTask> = snap.threads(tgid).collect();
    let live = |r: &&TreeTask| r.exit_state == 0;
    let leader_state = task_state(main);
    let all_exiting = threads
        .iter()
        .all(|r| r.exit_state != 0 || r.task_flags & PF_EXITING != 0);
    let any_live = threads.iter().any(live);
    let state = match leader_state {
        State::Zombie | State::Dead if any_live && is_leader => {
            if all_exiting {
                State::Exiting
            } else {
                State::Live
            }
        }
        State::Live if all_exiting => State::Exiting,
        s => s,
    };
    let leader_exited = is_leader && main.exit_state != 0 && any_live;
    let ns_init = main.child_reaper.tgid == tgid && main.child_reaper.tid != 0;
    let level = main.task.level;
    let pids = main
        .pids
        .iter()
        .take(level as usize + 1)
        .map(|u| LevelPid {
            nr: u.nr,
            pidns: u.pidns,
        })
        .collect();
    let parent = (main.parent.tid != 0).then(|| snap.task_ref(&main.parent));
    let reaped_by = (state == State::Zombie).then(|| snap.task_ref(&main.parent));
    // The whole process dies: the last of its threads hands its children on, with no live
    // thread left. For a namespace's init, that thread is the namespace's child_reaper.
    let orphans_to = if !is_leader {
        Destination::undecided(
            "its main thread was not in the snapshot (it changed while the snapshot was taken)",
        )
    } else {
        let father = if ns_init {
            snap.task(&main.child_reaper).unwrap_or(main)
        } else {
            main
        };
        snap.destination(father, None, false)
    };
    let thread_nodes = opts.threads.then(|| {
        threads
            .iter()
            .map(|t| {
                let kids: Vec<u32> = children
                    .iter()
                    .copied()
                    .filter(|c| {
                        snap.main_record(*c)
                            .is_some_and(|(r, _)| r.parent.tid == t.task.id.tid)
                    })
                    .collect();
                ThreadNode {
                    tid: t.task.id.tid,
                    ns_tid: t.task.ns_tid,
                    comm: c_string(&t.task.comm),
                    state: task_state(t),
                    children: kids,
                    orphans_to: thread_destination(snap, t),
                }
            })
            .collect()
    });
    let container = if ns_init {
        containers.container(main.task.pidns, tgid)
    } else {
        None
    };
    ProcessNode {
        pid: tgid,
        ns_pid: main.task.ns_tgid,
        pidns: main.task.pidns,
        level,
        start: main.leader_start_ns,
        comm: c_string(&main.task.comm),
        depth,
        parent,
        pids,
        state,
        subreaper: main.flags & tree_flag::IS_CHILD_SUBREAPER != 0,
        has_child_subreaper: main.flags & tree_flag::HAS_CHILD_SUBREAPER != 0,
        ns_init,
        container,
        kernel_thread: main.task_flags & PF_KTHREAD != 0,
        leader_exited,
        reaped_by,
        nr_threads: threads.len() as u32,
        threads: thread_nodes,
        children,
        orphans_to,
    }
}

/// Where thread `t`'s own children would go if it alone exited: `find_alive_thread` returns
/// the first thread of the group, in list order, without `PF_EXITING`, `t` itself excluded
/// (it is exiting then).
fn thread_destination(snap: &Snapshot, t: &TreeTask) -> Destination {
    let other = t
        .alive
        .iter()
        .copied()
        .find(|a| a.tid != 0 && a.tid != t.task.id.tid);
    // Two live threads were looked for; fewer were found only if the scan ended, unless it
    // was cut short.
    let incomplete = other.is_none() && t.flags & tree_flag::ALIVE_INCOMPLETE != 0;
    snap.destination(t, other, incomplete)
}

/// A task's comm from `/proc` (for a reaper the snapshot does not hold).
fn proc_comm(pid: u32, tid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
}

/// One pass of the iterator, indexed (a name the pass missed is read from `/proc`), and how
/// long the pass took.
pub fn take(iter: &mut crate::tracer::TaskIterator) -> Result<(Snapshot, std::time::Duration)> {
    let (bytes, took) = iter.read()?;
    let mut snap = Snapshot::new(decode(&bytes)?);
    snap.comm_fallback = Some(proc_comm);
    if snap.is_empty() {
        bail!("the task iterator returned no task: the kernel's BPF iterators do not work here");
    }
    Ok((snap, took))
}

/// Takes the snapshot and prints it (`reaper-trace tree`).
pub fn run(opts: &Options, json: bool) -> Result<i32> {
    crate::preflight::check_privileges()?;
    let kernel = crate::btf_offsets::resolve()?;
    let mut iter = crate::tracer::TaskIterator::load(&kernel)?;
    let taken_ts = crate::clock::boottime_ns();
    let (snap, took) = take(&mut iter)?;
    let mut resolver = Resolver::new("/");
    let processes = assemble(&snap, opts, &mut resolver)?;
    let doc = TreeDoc {
        schema: TREE_SCHEMA,
        kernel: crate::tracer::kernel_release(),
        taken_ts,
        read_ns: took.as_nanos() as u64,
        tasks: snap.len(),
        processes,
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        out.write_all(render::text(&doc, opts.threads).as_bytes())?;
    }
    out.flush()?;
    Ok(0)
}

#[cfg(test)]
pub(crate) mod tests;
