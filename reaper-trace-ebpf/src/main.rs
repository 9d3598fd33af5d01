//! reaper-trace's kernel side: small, bounded programs that copy what the kernel knows about
//! exits, adoptions and reaps into one ring buffer. Every decision is made in userspace.
//!
//! Field offsets are not compiled in: userspace resolves them from the running kernel's BTF
//! and writes them into `OFFSETS` before loading (the Rust eBPF toolchain has no CO-RE).
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

// What the programs share.
mod backstop;
mod copies;
mod emit;
mod globals;
mod loops;
mod maps;
mod mem;
mod names;
mod scope;
mod snapshot;
mod syscall;
mod task;

// The programs: one file per hook, the task iterator, the bench's floor (and the records
// the switch program sends, `dead` and `reparent`).
mod dead;
mod exec;
mod exit;
mod floor;
mod fork;
mod free;
mod prctl;
mod reparent;
mod switch;
mod sys_exit;
mod tree;
mod uring;
mod wait;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
