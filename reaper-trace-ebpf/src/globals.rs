//! The object's global data: the offsets table userspace writes before load, and the license.

use reaper_trace_common::Offsets;

/// Filled in by userspace before load (see `Offsets`). `valid == 0` keeps every program idle.
#[unsafe(no_mangle)]
pub(crate) static OFFSETS: Offsets = Offsets {
    task_pid: 0,
    task_tgid: 0,
    task_flags: 0,
    task_real_parent: 0,
    task_group_leader: 0,
    task_children: 0,
    task_sibling: 0,
    task_thread_node: 0,
    task_comm: 0,
    task_exit_state: 0,
    task_exit_code: 0,
    task_state: 0,
    task_start_boottime: 0,
    task_signal: 0,
    task_thread_pid: 0,
    task_mm: 0,
    signal_thread_head: 0,
    signal_is_child_subreaper_byte: 0,
    signal_is_child_subreaper_bit: 0,
    signal_has_child_subreaper_byte: 0,
    signal_has_child_subreaper_bit: 0,
    pid_level: 0,
    pid_numbers: 0,
    upid_size: 0,
    upid_nr: 0,
    upid_ns: 0,
    pidns_child_reaper: 0,
    pidns_inum: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
    binprm_filename: 0,
    task_self_exec_id: 0,
    signal_live: 0,
    signal_nr_threads: 0,
    signal_flags: 0,
    signal_group_exit_code: 0,
    scope_tree: 0,
    exit_has_group_dead: 0,
    switch_has_prev_state: 0,
    uring_op_waitid: 0,
    uring_ctx_cq_tail: 0,
    uring_req_opcode: 0,
    uring_req_res: 0,
    uring_waitid_options: 0,
    uring_waitid_pid: 0,
    uring_waitid_status: 0,
    uring_waitid_cause: 0,
    standby_hooks: 0,
    backstop_hooks: 0,
    task_sum_exec_runtime: 0,
    test_skip_mask: 0,
    valid: 0,
};

/// A field of `OFFSETS` as userspace filled it in.
macro_rules! off {
    ($field:ident) => {{
        // SAFETY: reading a field of a static; volatile so the loader's value is used,
        // not the zero the compiler sees.
        #[allow(unused_unsafe)]
        let value = unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!($crate::globals::OFFSETS.$field))
        };
        value as usize
    }};
}
pub(crate) use off;

#[inline(always)]
pub(crate) fn enabled() -> bool {
    off!(valid) != 0
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
