//! Every map of the object: the ring buffer and its lost counters, the state kept between
//! programs, and per-CPU scratch space.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use reaper_trace_common::{
    LOST_SLOTS, MAX_OVERFLOW_CHUNKS, MAX_TRACKED, MAX_TRACKED_ZOMBIE_PIDS, OverflowKey,
    PendingCall, PendingChildren, TreeTask, backstop, standby,
};

/// Size of the one ring buffer, in bytes; userspace may override it at load time.
const RING_BYTES: u32 = 4 << 20;

#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

/// Losses, per CPU: records that could not be reserved in the ring buffer, by kind, and the
/// other losses by `lost_slot` (summed by userspace and reported as `lost` events).
#[map]
pub(crate) static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOST_SLOTS, 0);

/// Exiting tasks with children followed at once (between their exit and final switch).
const MAX_PENDING_EXITS: u32 = 256;

/// Children of exiting tasks, keyed by the exiting task's address, until its final switch.
#[map]
pub(crate) static PENDING: HashMap<u64, PendingChildren> =
    HashMap::with_max_entries(MAX_PENDING_EXITS, 0);

/// Children of exiting tasks past the first `MAX_CHILDREN` (kernels with `bpf_loop` only), in
/// chunks of that many, until the task's final switch. Shared by all exits in flight: only
/// exits with hundreds of children use it, and a chunk is freed as soon as it is reported.
#[map]
pub(crate) static OVERFLOW: HashMap<OverflowKey, PendingChildren> =
    HashMap::with_max_entries(MAX_OVERFLOW_CHUNKS, 0);

/// In tree scope (`record -- CMD`): the processes of the tree, by tgid, with their leader's
/// start time (0 until the first record of the root, whose start userspace does not know).
/// Filled at fork, emptied when the leader is freed; records of other tasks are never
/// reserved, so a tree recording does not compete with the whole machine for ring space.
#[map]
pub(crate) static TRACKED: HashMap<u32, u64> = HashMap::with_max_entries(MAX_TRACKED, 0);

/// In tree scope: the pid numbers of the tree's zombies at every namespace level (see
/// `ns_pid_key`), so a wait by a reaper outside the tree that returns one is still seen.
#[map]
pub(crate) static TRACKED_ZOMBIE_PIDS: LruHashMap<u64, u32> =
    LruHashMap::with_max_entries(MAX_TRACKED_ZOMBIE_PIDS, 0);

/// Scratch space to build a `PendingChildren` (too big for the 512-byte stack): one slot per
/// copy of the exit program (see [`standby`]), as a standby copy runs while the copies before
/// it are preempted on the same CPU, halfway through their use of their slot.
#[map]
pub(crate) static SCRATCH: PerCpuArray<PendingChildren> =
    PerCpuArray::with_max_entries(standby::COPIES, 0);

/// The calls the copies of a hook handled last on one CPU (see [`standby`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Handled {
    pub(crate) next: u64,
    pub(crate) tokens: [[u64; 2]; standby::RING as usize],
}

/// Per hook of [`standby`]: the tokens of the calls it handled last, on this CPU.
#[map]
pub(crate) static HANDLED: PerCpuArray<Handled> = PerCpuArray::with_max_entries(standby::HOOKS, 0);

/// One slot per possible tid at the default `pid_max`: full only on machines that raised it
/// and have that many threads inside these calls at once.
const MAX_PENDING_CALLS: u32 = 32768;

/// Arguments of in-flight wait4/waitid/prctl calls, keyed by tid.
#[map]
pub(crate) static CALLS: HashMap<u32, PendingCall> =
    HashMap::with_max_entries(MAX_PENDING_CALLS, 0);

/// Scratch space for one `tree` record (too big to build comfortably on the stack, and
/// `bpf_seq_write` wants memory the verifier knows the size of).
#[map]
pub(crate) static TREE_SCRATCH: PerCpuArray<TreeTask> = PerCpuArray::with_max_entries(1, 0);

/// Tasks whose fork a copy of the fork program recorded, by address, with their start time,
/// until their first switch in (see [`backstop`]). The start time tells a mark from one left by
/// an earlier task at the same address; least recently used marks make room for new ones.
/// Userspace sizes it to 1 where no hook has a backstop.
#[map]
pub(crate) static FORK_MARKS: LruHashMap<u64, u64> =
    LruHashMap::with_max_entries(backstop::MAX_FORK_MARKS, 0);

/// Tasks whose exit a copy of the exit program recorded, by address, with their start time,
/// until their final switch (see [`backstop`]). Userspace sizes it to 1 where no hook has a
/// backstop.
#[map]
pub(crate) static EXIT_MARKS: LruHashMap<u64, u64> =
    LruHashMap::with_max_entries(backstop::MAX_EXIT_MARKS, 0);
