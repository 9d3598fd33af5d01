//! Writing records into the ring buffer, and counting those that did not fit.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::helpers::generated::bpf_ktime_get_boot_ns;
use reaper_trace_common::EventHeader;

use crate::maps::{EVENTS, LOST};

#[inline(always)]
pub(crate) fn header(kind: u32) -> EventHeader {
    EventHeader {
        kind,
        _pad: 0,
        // SAFETY: a helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
    }
}

/// Adds `n` to a per-CPU counter. Atomically: where tracepoints are preemptible another
/// program on this CPU can add to the same slot between a read and a write.
#[inline(always)]
pub(crate) fn add(counter: Option<*mut u64>, n: u64) {
    if let Some(slot) = counter {
        // SAFETY: a valid, aligned map value that lives as long as the map. (The BPF target
        // has no `AtomicU64::fetch_add`; the intrinsic is BPF's atomic add, unused result.)
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(slot, n) };
    }
}

/// Counts `n` losses in lost-counter `slot`: a record [`kind`](reaper_trace_common::kind), or
/// a [`lost_slot`](reaper_trace_common::lost_slot).
#[inline(always)]
pub(crate) fn count_lost_n(slot: u32, n: u64) {
    add(LOST.get_ptr_mut(slot), n);
}

#[inline(always)]
pub(crate) fn count_lost(slot: u32) {
    count_lost_n(slot, 1);
}

/// The one way every record is written: reserve, stamp the header, let `fill` write every
/// other field in place (no copy of the record through the stack), submit. A full ring buffer
/// is counted per kind, never silent. Returns whether the record was sent.
///
/// # Safety
/// `T` must be a record type whose first field is an `EventHeader`, and `fill` must write
/// every field after it.
#[inline(always)]
pub(crate) unsafe fn emit<T: 'static>(kind: u32, fill: impl FnOnce(&mut T)) -> bool {
    let Some(mut entry) = EVENTS.reserve::<T>(0) else {
        count_lost(kind);
        return false;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` is a reserved ring buffer slot of `size_of::<T>()` bytes that starts
    // with the header; the caller writes the rest before submit.
    unsafe {
        record.cast::<EventHeader>().write(header(kind));
        fill(&mut *record);
    }
    entry.submit(0);
    true
}
