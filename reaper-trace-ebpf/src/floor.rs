//! The floor the bench compares against: programs that do nothing, on the same hooks. Loaded
//! only by `reaper-trace floor` (never by the tracer); their run time is what the hook and the
//! BPF dispatch cost alone.

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};

#[btf_tracepoint(function = "sched_process_fork")]
pub fn floor_fork(_ctx: BtfTracePointContext) -> u32 {
    0
}

#[btf_tracepoint(function = "sched_process_exec")]
pub fn floor_exec(_ctx: BtfTracePointContext) -> u32 {
    0
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn floor_exit(_ctx: BtfTracePointContext) -> u32 {
    0
}

#[btf_tracepoint(function = "sched_switch")]
pub fn floor_switch(_ctx: BtfTracePointContext) -> u32 {
    0
}

#[btf_tracepoint(function = "sched_process_free")]
pub fn floor_free(_ctx: BtfTracePointContext) -> u32 {
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_wait4")]
pub fn floor_exit_wait4(_ctx: TracePointContext) -> u32 {
    0
}
