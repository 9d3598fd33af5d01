//! `sched_process_exec`: a task runs a new program.

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel_str_bytes, generated},
    programs::BtfTracePointContext,
};
use reaper_trace_common::{ARGS_LEN, ExecEvent, kind, standby};

use crate::copies::{copies, task_token};
use crate::emit::emit;
use crate::globals::off;
use crate::mem::{Direct, rd, rd_ptr};
use crate::scope::in_scope;
use crate::task::{exec_id, task_info};

fn on_exec(ctx: &BtfTracePointContext) {
    let task: *const u8 = ctx.arg(0);
    let old_tid: u32 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);
    if !in_scope::<Direct>(task) {
        return;
    }
    // SAFETY: ExecEvent starts with the header; every other field is written.
    unsafe {
        emit::<ExecEvent>(kind::EXEC, |ev| {
            ev.task = task_info::<Direct>(task);
            ev.old_tid = old_tid;
            ev.exec_id = exec_id(task);
            let filename = rd_ptr(bprm, off!(binprm_filename));
            let _ = bpf_probe_read_kernel_str_bytes(filename, &mut ev.filename);
            // `args` past `args_len` are left as the ring had them (userspace reads only
            // `args_len` bytes): clearing them would cost a helper call per exec.
            let mm = rd_ptr(task, off!(task_mm));
            let start = rd::<u64>(mm, off!(mm_arg_start));
            let end = rd::<u64>(mm, off!(mm_arg_end));
            let total = end.saturating_sub(start);
            let mut len = total;
            if len > ARGS_LEN as u64 {
                len = ARGS_LEN as u64;
            }
            let ok = generated::bpf_probe_read_user(
                ev.args.as_mut_ptr() as *mut _,
                len as u32,
                start as *const _,
            ) == 0;
            ev.args_total = total as u32;
            ev.args_len = if ok { len as u32 } else { 0 };
        })
    };
}

copies!(
    "sched_process_exec",
    standby::EXEC,
    |ctx, COPY| (task_token(ctx, 0), on_exec(ctx)),
    sched_process_exec,
    sched_process_exec_standby,
    sched_process_exec_standby2
);
