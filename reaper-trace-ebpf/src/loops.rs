//! How programs repeat a step: with `bpf_loop` where the kernel has it, else a bounded loop.

use core::ffi::c_void;

use aya_ebpf::helpers::generated;
use reaper_trace_common::{
    MAX_ANCESTOR_THREADS, MAX_ANCESTORS, MAX_CHILDREN, MAX_CHILDREN_COUNTED,
    MAX_CHILDREN_COUNTED_BOUNDED, MAX_OVERFLOW_CHUNKS, MAX_THREADS,
};

use crate::reparent::{Adoptions, ReportAdoption, report_chunks};

/// One step of a loop: gets the index and the loop's state; non-zero stops the loop. `run` is
/// inlined into a bounded loop; `callback` is the same step as a function of its own, for
/// `bpf_loop`. The bounded loop inlines the step: older verifiers (5.10's among them) cannot
/// track precision through a call to another function, so they treat every number as exact,
/// prune no state, and a bounded loop that calls a function exceeds their instruction limit.
pub(crate) trait Step {
    fn run(index: u64, state: *mut c_void) -> i64;

    #[inline(never)]
    extern "C" fn callback(index: u64, state: *mut c_void) -> i64 {
        Self::run(index, state)
    }
}

/// How a program repeats a step. [`HelperLoop`] (`bpf_loop`, Linux 5.17+) has the verifier
/// check the step once, whatever the count; [`BoundedLoop`] is for older kernels, where the
/// verifier checks every iteration, so its bounds are lower. Userspace loads the programs
/// built on the one the kernel has.
pub(crate) trait Repeat {
    /// Children of an exiting task followed (at most `MAX_CHILDREN`).
    const CHILDREN: u32;
    /// Overflow chunks (children past the first `CHILDREN`, `MAX_CHILDREN` a chunk) one exit
    /// may save; zero where the loops are bounded, whose programs then have no overflow code.
    const OVERFLOW_CHUNKS: u32;
    /// How many children past the followed ones an exit counts (for the `lost` figures).
    const COUNTED: u32;
    /// Ancestors walked looking for subreapers (at most `MAX_ANCESTORS`).
    const ANCESTORS: u32;
    /// Threads scanned for a live one: of the exiting task, and of each subreaper ancestor.
    const THREADS: u32;
    const ANCESTOR_THREADS: u32;

    /// Runs step `S` for the indices `0..n` until it returns non-zero. `n` is bounded (a
    /// constant, or at most one of the constants above).
    fn repeat<S: Step>(n: u32, state: *mut c_void);

    /// Reports the adoptions of the first `count` (at most `CHILDREN`) children saved.
    fn report(adoptions: &mut Adoptions, count: u32);
}

pub(crate) struct HelperLoop;
pub(crate) struct BoundedLoop;

impl Repeat for HelperLoop {
    const CHILDREN: u32 = MAX_CHILDREN as u32;
    const OVERFLOW_CHUNKS: u32 = MAX_OVERFLOW_CHUNKS;
    const COUNTED: u32 = MAX_CHILDREN_COUNTED;
    const ANCESTORS: u32 = MAX_ANCESTORS as u32;
    const THREADS: u32 = MAX_THREADS as u32;
    const ANCESTOR_THREADS: u32 = MAX_ANCESTOR_THREADS as u32;

    #[inline(always)]
    fn repeat<S: Step>(n: u32, state: *mut c_void) {
        // SAFETY: the callback has the signature bpf_loop expects and `state` outlives the
        // call.
        unsafe { generated::bpf_loop(n, S::callback as *mut c_void, state, 0) };
    }

    /// One `REPARENT` record per child: the verifier checks `ReportAdoption` once.
    #[inline(always)]
    fn report(adoptions: &mut Adoptions, count: u32) {
        Self::repeat::<ReportAdoption>(count, (adoptions as *mut Adoptions).cast());
    }
}

impl Repeat for BoundedLoop {
    const CHILDREN: u32 = BOUNDED_CHILDREN;
    const OVERFLOW_CHUNKS: u32 = 0;
    const COUNTED: u32 = MAX_CHILDREN_COUNTED_BOUNDED;
    const ANCESTORS: u32 = BOUNDED_ANCESTORS;
    const THREADS: u32 = BOUNDED_THREADS;
    const ANCESTOR_THREADS: u32 = BOUNDED_ANCESTOR_THREADS;

    #[inline(always)]
    fn repeat<S: Step>(n: u32, state: *mut c_void) {
        let mut i = 0;
        while i < n {
            if S::run(i as u64, state) != 0 {
                break;
            }
            i += 1;
        }
    }

    /// `ADOPTION_CHUNK` records: each chunk is one straight path (no branch per child), so
    /// the verifier walks each once instead of every path of every child.
    #[inline(always)]
    fn report(adoptions: &mut Adoptions, count: u32) {
        report_chunks(adoptions, count);
    }
}

/// The bounds of the programs for kernels without `bpf_loop` (before 5.17): the verifier
/// walks every iteration of their loops, so they are lower. Past them the records say so
/// (children counted as lost, a snapshot marked incomplete, hence an `unknown` verdict).
/// They keep the exit and switch programs near 120,000 verified instructions, a tenth of the
/// verifier's limit (`REAPER_TRACE_NO_BPF_LOOP=1 reaper-trace check` shows the counts).
const BOUNDED_CHILDREN: u32 = 64;
const BOUNDED_ANCESTORS: u32 = 16;
const BOUNDED_THREADS: u32 = 8;
const BOUNDED_ANCESTOR_THREADS: u32 = 4;
