//! Records shared by the kernel programs and userspace.
//!
//! Every record is `#[repr(C)]`, made of fixed-size integers and byte arrays only, and starts
//! with an [`EventHeader`] so userspace can tell records apart and check their length before it
//! reads one. Times are `CLOCK_BOOTTIME` nanoseconds (`bpf_ktime_get_boot_ns`, the clock of
//! `task_struct::start_boottime`), so a task's age and a zombie's lifetime are differences of
//! values taken on one clock.
#![no_std]

/// The kernel's `TASK_COMM_LEN`: bytes of `task_struct::comm`, the NUL included.
pub const TASK_COMM_LEN: usize = 16;
/// Pid namespace levels whose pid numbers are recorded for a task (root level first).
/// `wait4` returns a pid as the waiter's namespace sees it; these let userspace find the
/// zombie that was reaped whatever namespace level the waiter lives at.
pub const MAX_PID_LEVELS: usize = 4;
/// Subreaper ancestors recorded in a reaper snapshot (the nearest ones first).
pub const MAX_SUBREAPERS: usize = 8;
/// How many ancestors the snapshot walks when it looks for subreapers.
pub const MAX_ANCESTORS: usize = 64;
/// Threads of the exiting task's group scanned for a live one (`find_alive_thread`).
pub const MAX_THREADS: usize = 32;
/// Threads of a subreaper ancestor scanned for a live one.
pub const MAX_ANCESTOR_THREADS: usize = 16;
/// Children of one exiting task saved with it (in its `PendingChildren`). Where the kernel has
/// `bpf_loop`, more are saved in chunks of this many (see [`MAX_OVERFLOW_CHUNKS`]).
pub const MAX_CHILDREN: usize = 256;
/// Chunks of [`MAX_CHILDREN`] children past the first ones, saved for all exits in flight
/// together (kernels with `bpf_loop` only): 32,768 children, the default `pid_max`, so one
/// exit on a machine with default limits is always followed in full, at about 800 KiB of map
/// memory. Past them, children are counted as lost `children`.
pub const MAX_OVERFLOW_CHUNKS: u32 = 128;
/// Children of one exit followed at most: the ones saved with it and every overflow chunk.
pub const MAX_CHILDREN_FOLLOWED: u32 = MAX_CHILDREN as u32 * (1 + MAX_OVERFLOW_CHUNKS);
/// Bytes of the command line kept at exec.
pub const ARGS_LEN: usize = 192;
/// Bytes of the executable's path kept at exec.
pub const FILENAME_LEN: usize = 128;

/// Record kinds, the first field of every record.
pub mod kind {
    pub const FORK: u32 = 1;
    pub const EXEC: u32 = 2;
    pub const EXIT: u32 = 3;
    pub const DEAD: u32 = 4;
    pub const REPARENT: u32 = 5;
    pub const WAIT: u32 = 6;
    pub const FREE: u32 = 7;
    pub const SUBREAPER: u32 = 8;
    /// The state `find_new_reaper` read, taken again at the father's final switch (after the
    /// kernel chose), sent before the father's `REPARENT` records.
    pub const SWITCH_SNAPSHOT: u32 = 9;
    /// The state `find_new_reaper` will read, taken when a task with children exits; sent
    /// right after its `EXIT` record (only then: most exits have no children).
    pub const EXIT_SNAPSHOT: u32 = 13;
    // 10 to 12 are lost-counter slots (`lost_slot`), not record kinds.
    /// Up to [`super::CHUNK_CHILDREN`] adoptions of one exit in one record: what the programs
    /// for kernels without `bpf_loop` send instead of one `REPARENT` record per child (the
    /// verifier then checks one straight path per chunk), and what the others send for the
    /// children past the first [`super::MAX_CHILDREN`] (a 64-byte child instead of a 136-byte
    /// record: 10,000 children take about 700 KB of the ring). Userspace turns each child of
    /// it into the `REPARENT` record the other programs would have sent (lost ones are
    /// counted as lost `REPARENT` records).
    pub const ADOPTION_CHUNK: u32 = 14;
    /// One more than the largest kind.
    pub const COUNT: u32 = 15;
}

/// Slots of the per-CPU lost counters (the `LOST` map) that count losses of something other
/// than a record. A record that could not be reserved is counted in the slot numbered by its
/// [`kind`]; these numbers are ones no kind has.
pub mod lost_slot {
    /// Children of an exiting task that could not be followed (more than
    /// `MAX_CHILDREN_FOLLOWED`, or than `MAX_CHILDREN` before Linux 5.17's `bpf_loop`, or the
    /// pending or overflow map was full).
    pub const CHILDREN_OVERFLOW: u32 = 10;
    /// wait4/waitid/prctl calls whose arguments could not be kept until the syscall returned
    /// (the map of pending calls was full); their results are not seen.
    pub const CALLS_FULL: u32 = 11;
    /// Processes of a traced tree that could not be added to the scope map (it was full);
    /// their records are not seen.
    pub const SCOPE_FULL: u32 = 12;
}

/// Processes of a traced tree followed at once (`record -- CMD`): the scope map's size.
pub const MAX_TRACKED: u32 = 65536;
/// Pid numbers (one per namespace level) of a traced tree's zombies, so that a wait by a
/// process outside the tree (the reaper that adopted an orphan) is still seen.
pub const MAX_TRACKED_ZOMBIE_PIDS: u32 = 65536;
/// Children counted (not followed) past those followed, so `lost` says how many adoptions
/// went unseen.
pub const MAX_CHILDREN_COUNTED: u32 = 1 << 16;
/// The same where the kernel has no `bpf_loop` (before 5.17): the verifier checks each
/// iteration of a bounded loop, so fewer are counted; the count is then a lower bound.
pub const MAX_CHILDREN_COUNTED_BOUNDED: u32 = 64;

/// Number of slots in the per-CPU lost-counter map: one per record [`kind`] and per
/// [`lost_slot`].
pub const LOST_SLOTS: u32 = kind::COUNT;

// Every lost slot has a counter and is no record kind.
const _: () = {
    let kinds = [
        kind::FORK,
        kind::EXEC,
        kind::EXIT,
        kind::DEAD,
        kind::REPARENT,
        kind::WAIT,
        kind::FREE,
        kind::SUBREAPER,
        kind::SWITCH_SNAPSHOT,
        kind::EXIT_SNAPSHOT,
        kind::ADOPTION_CHUNK,
    ];
    let slots = [
        lost_slot::CHILDREN_OVERFLOW,
        lost_slot::CALLS_FULL,
        lost_slot::SCOPE_FULL,
    ];
    let mut i = 0;
    while i < kinds.len() {
        assert!(kinds[i] < LOST_SLOTS);
        let mut j = 0;
        while j < slots.len() {
            assert!(slots[j] < LOST_SLOTS && slots[j] != kinds[i]);
            j += 1;
        }
        i += 1;
    }
};

/// The hooks whose program has standby copies. The kernel runs a program only once at a time
/// per CPU: a program that is already running on this CPU is skipped (and counted in its
/// `recursion_misses`). Where tracepoints run their programs preemptibly (Linux 7.x), a task
/// that forks or exits while another one on the same CPU is preempted inside the same program
/// would then not be seen at all. Each hook below has [`standby::COPIES`] programs, which the
/// kernel calls one after another: copy `k` does the work only when no copy before it did for
/// this call (the kernel skipped them all, each already running on this CPU).
///
/// A copy knows whether an earlier one handled this call by its token (the task the call is
/// about, and its start time or exec count), kept in a small per-CPU ring. The ring can only
/// miss a token (a copy then sends the record again, which userspace drops), never show one
/// that was not handled. Since it can miss one, a copy cannot count the calls it covered for
/// the skipped ones before it; userspace bounds the calls lost by the skips instead: a call is
/// lost only if every copy skipped it, so at most as many as the copy that skipped fewest.
/// Where the kernel skips programs (7.x, see [`standby`]), a fork or an exit that every copy
/// of its program skipped is recorded all the same, from `sched_switch`, which the kernel never
/// skips (it runs with interrupts off): a fork at the child's first switch in, an exit at the
/// task's final switch. Each copy that records a fork or an exit marks the task (by address)
/// in a map; the switch takes the mark off, and records the fork or the exit itself when
/// there is none. Such a record is flagged late ([`FORK_FLAG_LATE`], [`EXIT_FLAG_LATE`]).
pub mod backstop {
    /// Tasks forked and not yet run, whose fork is recorded: many only when a fork storm
    /// outruns the CPUs (a full map sends a fork twice, and userspace drops the second).
    pub const MAX_FORK_MARKS: u32 = 16384;
    /// Tasks exited and not yet switched out for the last time, whose exit is recorded.
    pub const MAX_EXIT_MARKS: u32 = 8192;
}

pub mod standby {
    pub const FORK: u32 = 0;
    pub const EXEC: u32 = 1;
    pub const EXIT: u32 = 2;
    pub const FREE: u32 = 3;
    /// The syscalls' classic programs (one slot per call, as each has its own program), whose
    /// one standby is a `sys_exit` BTF tracepoint program, attached where they get skipped.
    pub const WAIT4: u32 = 4;
    pub const WAITID: u32 = 5;
    pub const PRCTL: u32 = 6;
    /// io_uring completions (a reap by `IORING_OP_WAITID`).
    pub const URING: u32 = 7;
    pub const HOOKS: u32 = 8;
    /// Programs per hook: the primary one and its standby copies.
    pub const COPIES: u32 = 3;
    /// Tokens of the calls last handled, per hook and CPU (a power of two).
    pub const RING: u32 = 8;
}

/// The names of the kernel programs userspace loads: the names of their functions in
/// reaper-trace-ebpf. aya-ebpf's macros name a program after its function (and a map after
/// its static), not after a constant, so the kernel crate checks at compile time that each of
/// its items has the name given here, and reaper-trace's build script that the built object
/// has every name userspace uses ([`program::ALL`], [`map::ALL`], [`OFFSETS_GLOBAL`]).
pub mod program {
    use super::standby::COPIES;

    /// A hook's programs: the primary one, then its standby copies (see [`super::standby`]).
    pub type Copies = [&'static str; COPIES as usize];

    pub const FORK: Copies = [
        "sched_process_fork",
        "sched_process_fork_standby",
        "sched_process_fork_standby2",
    ];
    pub const EXEC: Copies = [
        "sched_process_exec",
        "sched_process_exec_standby",
        "sched_process_exec_standby2",
    ];
    pub const EXIT: Copies = [
        "sched_process_exit",
        "sched_process_exit_standby",
        "sched_process_exit_standby2",
    ];
    /// `sched_process_exit` for kernels without `bpf_loop` (no standby copies).
    pub const EXIT_BOUNDED: &str = "sched_process_exit_bounded";
    pub const SWITCH: &str = "sched_switch";
    /// `sched_switch` for kernels without `bpf_loop`.
    pub const SWITCH_BOUNDED: &str = "sched_switch_bounded";
    pub const FREE: Copies = [
        "sched_process_free",
        "sched_process_free_standby",
        "sched_process_free_standby2",
    ];
    /// `io_uring_complete`: reaps by io_uring's `IORING_OP_WAITID` (Linux 6.7+).
    pub const URING: Copies = [
        "io_uring_complete",
        "io_uring_complete_standby",
        "io_uring_complete_standby2",
    ];
    pub const EXIT_WAIT4: &str = "sys_exit_wait4";
    /// The `_PLAIN` programs are for kernels without `bpf_get_current_task_btf`.
    pub const EXIT_WAIT4_PLAIN: &str = "sys_exit_wait4_plain";
    pub const ENTER_WAITID: &str = "sys_enter_waitid";
    pub const EXIT_WAITID: &str = "sys_exit_waitid";
    pub const EXIT_WAITID_PLAIN: &str = "sys_exit_waitid_plain";
    pub const ENTER_PRCTL: &str = "sys_enter_prctl";
    pub const EXIT_PRCTL: &str = "sys_exit_prctl";
    pub const EXIT_PRCTL_PLAIN: &str = "sys_exit_prctl_plain";
    /// The standbys of the three syscall exit programs, on `tp_btf/sys_exit`, in the order
    /// they run.
    pub const SYSCALL_STANDBY: [&str; 3] =
        ["sys_exit_standby", "sys_exit_standby2", "sys_exit_standby3"];
    /// `reaper-trace tree`'s task iterator.
    pub const TREE_TASK: &str = "tree_task";
    /// The bench's floor: programs that do nothing, on the tracer's hooks.
    pub const FLOOR_FORK: &str = "floor_fork";
    pub const FLOOR_EXEC: &str = "floor_exec";
    pub const FLOOR_EXIT: &str = "floor_exit";
    pub const FLOOR_SWITCH: &str = "floor_switch";
    pub const FLOOR_FREE: &str = "floor_free";
    pub const FLOOR_EXIT_WAIT4: &str = "floor_exit_wait4";

    /// Every program above.
    pub const ALL: &[&str] = &[
        FORK[0],
        FORK[1],
        FORK[2],
        EXEC[0],
        EXEC[1],
        EXEC[2],
        EXIT[0],
        EXIT[1],
        EXIT[2],
        EXIT_BOUNDED,
        SWITCH,
        SWITCH_BOUNDED,
        FREE[0],
        FREE[1],
        FREE[2],
        URING[0],
        URING[1],
        URING[2],
        EXIT_WAIT4,
        EXIT_WAIT4_PLAIN,
        ENTER_WAITID,
        EXIT_WAITID,
        EXIT_WAITID_PLAIN,
        ENTER_PRCTL,
        EXIT_PRCTL,
        EXIT_PRCTL_PLAIN,
        SYSCALL_STANDBY[0],
        SYSCALL_STANDBY[1],
        SYSCALL_STANDBY[2],
        TREE_TASK,
        FLOOR_FORK,
        FLOOR_EXEC,
        FLOOR_EXIT,
        FLOOR_SWITCH,
        FLOOR_FREE,
        FLOOR_EXIT_WAIT4,
    ];
}

/// The names of the maps userspace opens (the statics' names in reaper-trace-ebpf; see
/// [`program`]).
pub mod map {
    /// The ring buffer of records.
    pub const EVENTS: &str = "EVENTS";
    /// Per-CPU lost-record counters ([`super::LOST_SLOTS`] slots).
    pub const LOST: &str = "LOST";
    /// Tree scope: the processes of the traced tree.
    pub const TRACKED: &str = "TRACKED";
    /// The marks of recorded forks and exits (see [`super::backstop`]).
    pub const FORK_MARKS: &str = "FORK_MARKS";
    pub const EXIT_MARKS: &str = "EXIT_MARKS";

    /// Every map above.
    pub const ALL: &[&str] = &[EVENTS, LOST, TRACKED, FORK_MARKS, EXIT_MARKS];
}

/// The name of the global holding [`Offsets`], which userspace writes before load.
pub const OFFSETS_GLOBAL: &str = "OFFSETS";

/// `a == b`, usable in constants (the kernel crate's compile-time name checks).
pub const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// [`WaitEvent::status`] of a `wait4` record.
pub const WAIT_STATUS_UNKNOWN: i32 = -1;

/// Which wait reaped a zombie.
pub mod wait_syscall {
    pub const WAIT4: u32 = 1;
    pub const WAITID: u32 = 2;
    /// io_uring's `IORING_OP_WAITID`: its record is written when the request completes, and
    /// fills `status` and `code` as `waitid` does.
    pub const IO_URING: u32 = 3;
}

/// `si_code` values of a SIGCHLD `siginfo_t`, as `waitid` fills it in (`CLD_*` in the kernel).
pub mod cld {
    /// The child exited: `si_status` is its exit code.
    pub const EXITED: i32 = 1;
    /// Killed by a signal: `si_status` is the signal.
    pub const KILLED: i32 = 2;
    /// Killed by a signal, and dumped core.
    pub const DUMPED: i32 = 3;
}

/// `task_struct::exit_state` values.
pub mod exit_state {
    pub const EXIT_DEAD: u32 = 0x10;
    pub const EXIT_ZOMBIE: u32 = 0x20;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u32,
    /// Zero: keeps the timestamp 8-byte aligned.
    pub _pad: u32,
    /// `CLOCK_BOOTTIME` nanoseconds.
    pub ts_ns: u64,
}

/// Identifies one task for its whole life: pids are reused, (tid, start time) is not.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TaskId {
    /// Global thread id (`task_struct::pid`).
    pub tid: u32,
    /// Global process id (`task_struct::tgid`).
    pub tgid: u32,
    /// `task_struct::start_boottime`, nanoseconds.
    pub start_ns: u64,
}

/// A task as a record shows it: identity, its pids in its own pid namespace, the namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: TaskId,
    /// Thread id in the task's own pid namespace.
    pub ns_tid: u32,
    /// Process id (the group leader's pid) in the task's own pid namespace.
    pub ns_tgid: u32,
    /// Inode number of the task's pid namespace (what `/proc/PID/ns/pid` links to).
    pub pidns: u32,
    /// Depth of that namespace (0 = the initial one).
    pub level: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

/// One pid number of a task at one namespace level.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UPid {
    pub nr: u32,
    pub pidns: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkEvent {
    pub hdr: EventHeader,
    /// The task that called fork/clone.
    pub parent: TaskInfo,
    pub child: TaskInfo,
    /// The child's `real_parent` (differs from `parent` for threads and `CLONE_PARENT`).
    pub real_parent: TaskId,
    /// Bit 0: the child is a thread (same thread group as its creator). Bit 1
    /// ([`FORK_FLAG_LATE`]): recorded late (see [`backstop`]).
    pub flags: u32,
    pub _pad: u32,
}

pub const FORK_FLAG_THREAD: u32 = 1;
/// Recorded at the child's first switch in, as every copy of the fork program skipped the fork
/// (see [`backstop`]): the time is the child's start time; the caller is the child's
/// `real_parent` for a process (which `CLONE_PARENT` or an exit since may have changed), and
/// its group leader for a thread (the thread that created it is not known).
pub const FORK_FLAG_LATE: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub hdr: EventHeader,
    /// After exec: the new comm. `task.id.tid` is the group leader's pid.
    pub task: TaskInfo,
    /// The thread id that called exec (differs from the tgid when a non-leader thread did).
    pub old_tid: u32,
    /// Bytes of `args` that are valid (NUL-separated argv, possibly cut short).
    pub args_len: u32,
    /// Length of the full command line, to tell when `args` was cut.
    pub args_total: u32,
    /// The low 32 bits of the task's `self_exec_id` after this exec: tells a second exec of
    /// the same program apart from this record sent twice (see [`standby`]).
    pub exec_id: u32,
    pub filename: [u8; FILENAME_LEN],
    pub args: [u8; ARGS_LEN],
}

/// A subreaper ancestor of an exiting task, as `find_new_reaper` would consider it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubreaperAncestor {
    /// The ancestor (the task on the `real_parent` chain).
    pub task: TaskId,
    /// Its first thread without `PF_EXITING` (`find_alive_thread`); tid 0 if none.
    pub alive_thread: TaskId,
    /// Non-zero when no live thread was found among the threads scanned but more exist.
    pub scan_incomplete: u32,
    pub _pad: u32,
}

/// The state `find_new_reaper` reads, captured when a task with children exits, before the
/// kernel reparents them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ReaperSnapshot {
    /// First live thread of the exiting task's group (tid 0 if none).
    pub alive_thread: TaskId,
    /// Non-zero when no live thread was found among the threads scanned but more exist.
    pub alive_scan_incomplete: u32,
    pub _pad0: u32,
    /// The pid namespace's `child_reaper`.
    pub child_reaper: TaskInfo,
    /// `signal->has_child_subreaper` of the exiting task.
    pub has_child_subreaper: u32,
    /// Subreaper ancestors found, nearest first (at most `MAX_SUBREAPERS`).
    pub nr_subreapers: u32,
    pub subreapers: [SubreaperAncestor; MAX_SUBREAPERS],
    /// The walk stopped at `MAX_ANCESTORS` before leaving the namespace level.
    pub ancestors_truncated: u32,
    pub _pad: u32,
}

/// Recorded at the task's final switch, as every copy of the exit program skipped the exit (see
/// [`backstop`]): the time is that of the final switch; the children the task had are gone
/// to their reaper by then and were not read (`children_followed` is 0); `group_dead` says
/// whether no thread of the group was left alive then.
pub const EXIT_FLAG_LATE: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitEvent {
    pub hdr: EventHeader,
    pub task: TaskInfo,
    /// The parent (`real_parent`) at exit.
    pub parent: TaskId,
    /// `task_struct::exit_code`: a wait status (exit code << 8, or signal | 0x80 for a core).
    pub exit_code: u32,
    /// The whole thread group has exited with this task.
    pub group_dead: u32,
    /// Children on the task's `children` list whose adoption will be reported (an
    /// `EXIT_SNAPSHOT` record follows when there are any).
    pub children_followed: u32,
    /// Non-zero when the task had more children than are followed (`MAX_CHILDREN_FOLLOWED`,
    /// 64 without `bpf_loop`), or the pending or overflow map was full: the rest are not
    /// followed, and they are counted in the lost counters.
    pub children_truncated: u32,
    /// The low 32 bits of the task's `self_exec_id`. A thread that execs takes its leader's
    /// tid and start time (`de_thread`): the old leader's exit and the new program's exit
    /// differ only by this.
    pub exec_id: u32,
    /// [`EXIT_FLAG_LATE`], or 0.
    pub flags: u32,
    /// Pid numbers at levels `0..=task.level` (capped at `MAX_PID_LEVELS`), read while the
    /// task is still hashed: a task released at exit reads back as zeros later.
    pub pids: [UPid; MAX_PID_LEVELS],
}

/// A process finished exiting: the final switch of a task whose thread group has no other
/// thread left (`signal->nr_threads <= 1`) and whose leader has exited. The leader's state is
/// then settled: a zombie waiting for `parent`, or already released (auto-reaped). Several
/// threads exiting together may each send one; userspace keeps the first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DeadEvent {
    pub hdr: EventHeader,
    /// The thread group leader (the process). Its namespace ids read as zero once it has been
    /// released: userspace keeps the ones the exit record captured.
    pub task: TaskInfo,
    /// The thread whose final switch this is (the leader itself, or the last thread).
    pub last: TaskId,
    /// The leader's real parent now: the task that has to reap it.
    pub parent: TaskInfo,
    /// [`exit_state`] of the leader: `EXIT_ZOMBIE` waits to be reaped, `EXIT_DEAD` was
    /// auto-reaped (or reaped on another CPU already).
    pub exit_state: u32,
    /// The wait status the parent will get (`signal->group_exit_code` after a group exit).
    pub exit_code: u32,
    /// `DEAD_*` bits.
    pub flags: u32,
    pub _pad: u32,
    /// Pid numbers at levels `0..=task.level` while the leader is still hashed (else zeros).
    pub pids: [UPid; MAX_PID_LEVELS],
}

/// The leader could not be read safely (it was released and its memory may be reused): only
/// `task.id` (from the last thread) is meaningful, and the process is taken as released.
pub const DEAD_LEADER_GONE: u32 = 1;

/// The state `find_new_reaper` reads for `father`'s children: at its exit (`EXIT_SNAPSHOT`,
/// the prediction's input), and again at its final switch, after the kernel decided
/// (`SWITCH_SNAPSHOT`, before its `ReparentEvent`s): when the kernel's choice differs from the
/// prediction, the second tells whether the state changed meanwhile.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SnapshotEvent {
    pub hdr: EventHeader,
    pub father: TaskId,
    /// The father's exec count (low 32 bits of `self_exec_id`), as in [`ExitEvent::exec_id`].
    pub exec_id: u32,
    pub _pad: u32,
    pub snapshot: ReaperSnapshot,
}

/// One orphan adopted by a new parent, read after the kernel reparented it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ReparentEvent {
    pub hdr: EventHeader,
    /// The orphan (its namespace pids are known to userspace from earlier records).
    pub orphan: TaskId,
    pub orphan_comm: [u8; TASK_COMM_LEN],
    /// The parent that died.
    pub father: TaskId,
    /// The orphan's `real_parent` after reparenting: the kernel's choice. The kernel picks one
    /// reaper for all children of a task, so it is read once per exit; see `REPARENT_*` flags.
    pub reaper: TaskInfo,
    /// `signal->is_child_subreaper` of the reaper.
    pub reaper_is_subreaper: u32,
    /// The orphan's `exit_state` when read (a zombie child is adopted as a zombie).
    pub orphan_exit_state: u32,
    /// `REPARENT_*` bits.
    pub flags: u32,
    pub _pad: u32,
}

/// Children per `ADOPTION_CHUNK` record.
pub const CHUNK_CHILDREN: usize = 16;

/// One child of an `ADOPTION_CHUNK` record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ChunkChild {
    pub orphan: TaskId,
    /// The orphan's `real_parent` after reparenting.
    pub parent: TaskId,
    pub orphan_comm: [u8; TASK_COMM_LEN],
    pub orphan_exit_state: u32,
    pub _pad: u32,
    /// Zero when the saved child was still that task when read (its id read before and after,
    /// xor-ed with the saved one); otherwise it was released, and the fields above but
    /// `orphan` mean nothing. A difference, not a flag: the program computes it without a
    /// branch.
    pub changed: u64,
}

/// Adoptions of one exit, `count` (at most `CHUNK_CHILDREN`) children at a time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AdoptionChunkEvent {
    pub hdr: EventHeader,
    pub father: TaskId,
    /// The new parent read for all the children (as `ReparentEvent::reaper`).
    pub reaper: TaskInfo,
    pub reaper_is_subreaper: u32,
    pub count: u32,
    pub children: [ChunkChild; CHUNK_CHILDREN],
}

impl AdoptionChunkEvent {
    /// The `REPARENT` records the `bpf_loop` programs would have sent for these children.
    pub fn reparents(&self) -> impl Iterator<Item = ReparentEvent> + '_ {
        let n = (self.count as usize).min(CHUNK_CHILDREN);
        self.children[..n].iter().map(move |c| {
            let mut ev = ReparentEvent {
                hdr: EventHeader {
                    kind: kind::REPARENT,
                    ..self.hdr
                },
                orphan: c.orphan,
                orphan_comm: c.orphan_comm,
                father: self.father,
                reaper: self.reaper,
                reaper_is_subreaper: self.reaper_is_subreaper,
                orphan_exit_state: c.orphan_exit_state,
                flags: 0,
                _pad: 0,
            };
            if c.changed != 0 {
                ev.orphan_comm = [0; TASK_COMM_LEN];
                ev.orphan_exit_state = 0;
                ev.reaper = TaskInfo::default();
                ev.reaper_is_subreaper = 0;
                ev.flags = REPARENT_RELEASED;
            } else if c.parent != self.reaper.id {
                ev.reaper = TaskInfo {
                    id: c.parent,
                    ..TaskInfo::default()
                };
                ev.reaper_is_subreaper = 0;
                ev.flags = REPARENT_REAPER_ID_ONLY;
            }
            ev
        })
    }
}

/// The orphan was released before its new parent could be read (`reaper` is empty).
pub const REPARENT_RELEASED: u32 = 1;
/// This orphan's parent is not the one read for its siblings: only `reaper.id` is filled.
pub const REPARENT_REAPER_ID_ONLY: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WaitEvent {
    pub hdr: EventHeader,
    pub waiter: TaskInfo,
    /// [`wait_syscall`].
    pub syscall: u32,
    /// The reaped pid as the waiter's namespace numbers it.
    pub pid: u32,
    /// `si_status` (`waitid`), or [`WAIT_STATUS_UNKNOWN`] (`wait4`: its record keeps only
    /// the pid; the exit record has the status).
    pub status: i32,
    /// `waitid` and io_uring only: `si_code` ([`cld`]).
    pub code: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FreeEvent {
    pub hdr: EventHeader,
    pub task: TaskId,
    /// The task's exec count (low 32 bits of `self_exec_id`), as in [`ExitEvent::exec_id`].
    pub exec_id: u32,
    /// `FREE_*` bits.
    pub flags: u32,
}

/// [`FreeEvent::flags`]: the task was its thread group's leader until another thread exec'd
/// and took its place (`de_thread`: the thread took its pid and start time, and became
/// `group_leader`). The process lives on under the same identity: this release is the old
/// leader's, not the process's.
pub const FREE_REPLACED_LEADER: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SubreaperEvent {
    pub hdr: EventHeader,
    pub task: TaskInfo,
    /// The new value of `PR_SET_CHILD_SUBREAPER`.
    pub enabled: u32,
    pub _pad: u32,
}

/// Threads of a group scanned, in the kernel's thread-list order, for the first two that are
/// not exiting (`tree`'s iterator): what `find_alive_thread` would return for any of them.
pub const TREE_MAX_THREADS: usize = 32;

/// `TreeTask::flags` bits.
pub mod tree_flag {
    /// `signal->is_child_subreaper`: the process called `PR_SET_CHILD_SUBREAPER`.
    pub const IS_CHILD_SUBREAPER: u32 = 1;
    /// `signal->has_child_subreaper`: some ancestor is (or was) a subreaper, so
    /// `find_new_reaper` walks the ancestors.
    pub const HAS_CHILD_SUBREAPER: u32 = 2;
    /// The thread scan stopped at `TREE_MAX_THREADS` before it found two live threads.
    pub const ALIVE_INCOMPLETE: u32 = 4;
    /// `SIGNAL_GROUP_EXIT`: the whole group is exiting.
    pub const GROUP_EXIT: u32 = 8;
}

/// One task (thread) as the `tree` iterator (`iter/task`) reads it: one fixed-size record
/// per task, written with `bpf_seq_write`, read under RCU at one moment for that task.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TreeTask {
    /// `size_of::<TreeTask>()`: userspace checks it before it trusts the layout.
    pub size: u32,
    /// [`tree_flag`] bits.
    pub flags: u32,
    /// Identity, namespace pids, namespace, comm.
    pub task: TaskInfo,
    /// The group leader's start time: what names the process.
    pub leader_start_ns: u64,
    /// `real_parent` (a thread: the one that forked this process, or its replacement).
    pub parent: TaskId,
    /// `child_reaper` of the task's pid namespace.
    pub child_reaper: TaskId,
    /// The first two threads of the group without `PF_EXITING`, in thread-list order (tid 0:
    /// none found).
    pub alive: [TaskId; 2],
    /// `task_struct::flags` (`PF_EXITING`, `PF_KTHREAD`, ...).
    pub task_flags: u32,
    /// `task_struct::exit_state` ([`exit_state`]).
    pub exit_state: u32,
    /// `signal->nr_threads`.
    pub nr_threads: u32,
    pub _pad: u32,
    /// Pid numbers at levels `0..=task.level` (capped at `MAX_PID_LEVELS`), zeros above.
    pub pids: [UPid; MAX_PID_LEVELS],
}

/// Kernel structure offsets, resolved by userspace from the running kernel's BTF
/// (`/sys/kernel/btf/vmlinux`) and written into the program's read-only data before load.
/// The eBPF side has no CO-RE, so this is how one build runs on many kernels.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_flags: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_children: u32,
    pub task_sibling: u32,
    pub task_thread_node: u32,
    pub task_comm: u32,
    pub task_exit_state: u32,
    pub task_exit_code: u32,
    /// `task_struct::__state` (`state` before Linux 5.14, a `long` there: its low 32 bits
    /// are read). `sched_switch` reads the previous task's state here, the same on every
    /// kernel (its `prev_state` argument only exists since 5.18).
    pub task_state: u32,
    pub task_start_boottime: u32,
    pub task_signal: u32,
    pub task_thread_pid: u32,
    pub task_mm: u32,
    pub signal_thread_head: u32,
    /// Byte holding `signal_struct::is_child_subreaper`, and the bit in it.
    pub signal_is_child_subreaper_byte: u32,
    pub signal_is_child_subreaper_bit: u32,
    pub signal_has_child_subreaper_byte: u32,
    pub signal_has_child_subreaper_bit: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_size: u32,
    pub upid_nr: u32,
    pub upid_ns: u32,
    pub pidns_child_reaper: u32,
    /// `pid_namespace::ns.inum`.
    pub pidns_inum: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub binprm_filename: u32,
    /// `task_struct::self_exec_id` (a `u64` since Linux 5.7): counts the task's execs.
    pub task_self_exec_id: u32,
    /// `signal_struct::live` (threads of the group not yet exiting).
    pub signal_live: u32,
    /// `signal_struct::nr_threads` (threads not yet released).
    pub signal_nr_threads: u32,
    /// `signal_struct::flags` (`SIGNAL_GROUP_EXIT`) and `group_exit_code`.
    pub signal_flags: u32,
    pub signal_group_exit_code: u32,
    /// Non-zero when only the tasks in the scope map are traced (`record -- CMD`); set by
    /// userspace, like the offsets.
    pub scope_tree: u32,
    /// The kernel's `sched_process_exit` tracepoint passes `group_dead` (newer kernels do;
    /// userspace counts the tracepoint's arguments in the BTF); when it does not, the program
    /// reads `signal->live` instead. A constant in read-only data, so
    /// the verifier drops the branch not taken (and never sees the missing argument).
    pub exit_has_group_dead: u32,
    /// The kernel's `sched_switch` tracepoint passes `prev_state` (5.18+): the program uses
    /// it, as the scheduler computed it; before, it reads the task's state field.
    pub switch_has_prev_state: u32,
    /// io_uring's waitid request (Linux 6.7+; all zero on kernels without it, whose io_uring
    /// program is then not loaded): the value of `IORING_OP_WAITID`, where a ring counts the
    /// completions it posted (`io_ring_ctx::cached_cq_tail`), where an `io_kiocb` keeps its
    /// opcode and result, and where its `io_waitid` command keeps the wait's options and what
    /// the wait found (`struct waitid_info`).
    pub uring_op_waitid: u32,
    pub uring_ctx_cq_tail: u32,
    pub uring_req_opcode: u32,
    pub uring_req_res: u32,
    pub uring_waitid_options: u32,
    pub uring_waitid_pid: u32,
    pub uring_waitid_status: u32,
    pub uring_waitid_cause: u32,
    /// The hooks whose standby programs are attached, one bit per [`standby`] slot: only
    /// their primary program notes the calls it handled (for the standbys to look up); set
    /// by userspace, like the offsets.
    pub standby_hooks: u32,
    /// The hooks ([`standby::FORK`], [`standby::EXIT`] bits) whose skipped calls
    /// `sched_switch` records (see [`backstop`]); set by userspace.
    pub backstop_hooks: u32,
    /// `task_struct::se.sum_exec_runtime`: 0 until the task first ran (the first switch in).
    pub task_sum_exec_runtime: u32,
    /// For tests (`REAPER_TRACE_TEST_SKIP=N`): the fork and exit programs act as if the kernel
    /// had skipped every copy for one task in N, by tid (N a power of two; this is N - 1, or 0
    /// for none), counting each in scope as lost, as the kernel's skips are. `backstop` must make
    /// up for it.
    pub test_skip_mask: u32,
    /// Non-zero once userspace filled the table; the programs do nothing before.
    pub valid: u32,
}

/// A pid number in one pid namespace, as a map key: `(namespace inode << 32) | nr`.
#[inline(always)]
pub fn ns_pid_key(pidns: u32, nr: u32) -> u64 {
    ((pidns as u64) << 32) | nr as u64
}

/// A child saved when its parent exits, to read its new parent once reparenting is done.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingChild {
    /// Kernel address of the child's `task_struct`.
    pub task: u64,
    pub id: TaskId,
}

/// The children of one exiting task, from `sched_process_exit` to its final `sched_switch`,
/// keyed by the exiting task's address (its tid can change before then: `de_thread`). The
/// same type holds each overflow chunk (children past the first `MAX_CHILDREN`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PendingChildren {
    pub father: TaskId,
    pub count: u32,
    /// In the exiting task's entry: how many overflow chunks follow (keys 1 to this). Zero
    /// in the chunks themselves.
    pub overflow_chunks: u32,
    pub children: [PendingChild; MAX_CHILDREN],
}

/// Key of an overflow chunk: the exiting task's address, and the chunk's number from 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverflowKey {
    pub task: u64,
    pub chunk: u64,
}

/// Arguments of a pending wait or prctl call, kept from syscall entry to exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingCall {
    pub arg0: u64,
    pub arg1: u64,
    pub arg2: u64,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain #[repr(C)] integers and byte arrays, explicitly padded; any bit pattern is valid.
    unsafe impl aya::Pod for Offsets {}
}
