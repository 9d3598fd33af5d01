//! Reading kernel memory: the probe-read helpers, and the two ways a program reads a task
//! ([`Direct`] loads through typed pointers, [`Probe`] helper calls for plain addresses).

use core::ptr::read_volatile;

use aya_ebpf::helpers::generated;
use reaper_trace_common::TASK_COMM_LEN;

use crate::globals::off;

/// Reads a `T` at `base + off` in kernel memory; zero when the read fails (the helper zeroes
/// its destination then). No branch on the result: a branch per read doubles the states the
/// verifier explores at every read. `T` must be plain data (any bit pattern valid).
#[inline(always)]
pub(crate) fn rd<T: Copy>(base: *const u8, off: usize) -> T {
    // Not zeroed first: the helper writes every byte either way (and zeroing an array would
    // make LLVM call `memset`).
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: bpf_probe_read_kernel copes with any address (NULL included) and writes all
    // `size_of::<T>()` bytes of `value`: what it read, or zeros when the read failed.
    unsafe {
        generated::bpf_probe_read_kernel(
            value.as_mut_ptr().cast(),
            core::mem::size_of::<T>() as u32,
            base.wrapping_add(off).cast(),
        );
        value.assume_init()
    }
}

/// Zeroes `*dst` with one helper call: `bpf_probe_read_kernel` clears its destination when the
/// read fails, and a read from address 0 always fails. A plain assignment of zeros to a large
/// field makes LLVM call `memset`, a byte loop that the verifier walks byte by byte.
#[inline(always)]
pub(crate) fn zero<T>(dst: &mut T) {
    // SAFETY: writes at most `size_of::<T>()` bytes into `dst`.
    unsafe {
        generated::bpf_probe_read_kernel(
            (dst as *mut T).cast(),
            core::mem::size_of::<T>() as u32,
            core::ptr::null(),
        )
    };
}

#[inline(always)]
pub(crate) fn rd_ptr(base: *const u8, off: usize) -> *const u8 {
    rd::<u64>(base, off) as *const u8
}

/// How a program reads kernel memory. Typed pointers (tracepoint arguments, and pointers
/// loaded through them) are read [`Direct`]ly: the offsets are load-time constants (frozen
/// read-only data), so the verifier checks each access against the kernel's BTF and the JIT
/// turns it into one faulting load (zero at a bad address), many times cheaper than a helper
/// call. Plain addresses (saved in maps, walked through lists, variable offsets) go through
/// the [`Probe`] helper.
pub(crate) trait Mem {
    fn read<T: Copy>(base: *const u8, off: usize) -> T;

    #[inline(always)]
    fn ptr(base: *const u8, off: usize) -> *const u8 {
        Self::read::<u64>(base, off) as *const u8
    }

    #[inline(always)]
    fn comm(task: *const u8) -> [u8; TASK_COMM_LEN] {
        rd::<[u8; TASK_COMM_LEN]>(task, off!(task_comm))
    }
}

pub(crate) struct Direct;
pub(crate) struct Probe;

impl Mem for Direct {
    #[inline(always)]
    fn read<T: Copy>(base: *const u8, off: usize) -> T {
        // SAFETY: `base` is BTF-typed and `off` a constant: the verifier accepts the load
        // only if it is a field of the kernel type, and the JIT makes it fault-safe.
        unsafe { read_volatile(base.wrapping_add(off) as *const T) }
    }

    /// In two 8-byte loads: the verifier allows a load anywhere within the array
    /// `char comm[TASK_COMM_LEN]`, and two loads cost less than sixteen.
    #[inline(always)]
    fn comm(task: *const u8) -> [u8; TASK_COMM_LEN] {
        let lo = Self::read::<u64>(task, off!(task_comm));
        let hi = Self::read::<u64>(task, off!(task_comm) + 8);
        let mut comm = [0u8; TASK_COMM_LEN];
        comm[..8].copy_from_slice(&lo.to_ne_bytes());
        comm[8..].copy_from_slice(&hi.to_ne_bytes());
        comm
    }
}

impl Mem for Probe {
    #[inline(always)]
    fn read<T: Copy>(base: *const u8, off: usize) -> T {
        rd::<T>(base, off)
    }
}
