//! `io_uring_complete`: a reap by io_uring's `IORING_OP_WAITID` (Linux 6.7+).
//!
//! The request reaps inside `io_waitid` (issued inline by `io_uring_enter`) or `io_waitid_cb`
//! (task work, run by the task that submitted it): both release the zombie, copy what they
//! found to the request, and post its completion in the same call, so the completion is the
//! reap's moment and `current` the reaper. No syscall returns a pid here, and the task is
//! only seen again when it is freed, an RCU grace period later.
//!
//! Every io_uring completion runs this program: it reads the request's opcode and returns
//! unless it is a waitid.

use aya_ebpf::programs::BtfTracePointContext;
use reaper_trace_common::{cld, standby, wait_syscall};

use crate::copies::copies;
use crate::globals::off;
use crate::mem::rd;
use crate::syscall::TypedCurrent;
use crate::wait::{WNOWAIT, emit_wait};

/// The tracepoint's arguments: `(ctx, req, cqe)`. `req` is a `void *` (a plain address: it is
/// read through the probe helper).
const ARG_REQ: usize = 1;

copies!(
    "io_uring_complete",
    standby::URING,
    |ctx, COPY| (request_token(ctx), on_complete(ctx)),
    io_uring_complete,
    io_uring_complete_standby,
    io_uring_complete_standby2
);

/// The token of one completion (see `copies`): the request's address and its `user_data`.
/// A request is recycled only after its completion is posted.
#[inline(always)]
fn request_token(ctx: &BtfTracePointContext) -> [u64; 2] {
    let req: u64 = ctx.arg(ARG_REQ);
    [req, rd::<u64>(req as *const u8, off!(uring_req_user_data))]
}

fn on_complete(ctx: &BtfTracePointContext) {
    let req: *const u8 = ctx.arg::<u64>(ARG_REQ) as *const u8;
    if rd::<u8>(req, off!(uring_req_opcode)) as usize != off!(uring_op_waitid) {
        return;
    }
    // A failed or cancelled wait reaped nothing; WNOWAIT only looked.
    if rd::<i32>(req, off!(uring_req_res)) != 0
        || rd::<i32>(req, off!(uring_waitid_options)) as u64 & WNOWAIT != 0
    {
        return;
    }
    let pid = rd::<i32>(req, off!(uring_waitid_pid));
    let code = rd::<i32>(req, off!(uring_waitid_cause));
    // WSTOPPED and WCONTINUED waits report a live child: no reap.
    if pid > 0 && (cld::EXITED..=cld::DUMPED).contains(&code) {
        let status = rd::<i32>(req, off!(uring_waitid_status));
        emit_wait::<TypedCurrent>(wait_syscall::IO_URING, pid as u32, status, code);
    }
}
