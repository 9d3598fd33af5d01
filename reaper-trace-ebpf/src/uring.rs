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

/// The tracepoint's arguments: `(ctx, req, cqe)`. `req` is a `void *`, and so is `ctx` on some
/// kernels (6.12's; 6.18's is typed): both are read through the probe helper, which takes
/// either.
const ARG_CTX: usize = 0;
const ARG_REQ: usize = 1;

copies!(
    "io_uring_complete",
    standby::URING,
    |ctx, COPY| (request_token(ctx), on_complete(ctx)),
    io_uring_complete,
    io_uring_complete_standby,
    io_uring_complete_standby2
);

/// The token of one completion (see `copies`): its request, and how many completions the
/// request's ring had posted with it (counted under the lock the completion is posted under,
/// so every copy reads the same number). The request alone would not do: io_uring reuses a
/// request for the next one as soon as it completes. (The ring's address is not used: where
/// it is a typed pointer, the verifier lets no program use it as a number.)
#[inline(always)]
fn request_token(ctx: &BtfTracePointContext) -> [u64; 2] {
    let ring: *const u8 = ctx.arg(ARG_CTX);
    [
        ctx.arg::<u64>(ARG_REQ),
        rd::<u32>(ring, off!(uring_ctx_cq_tail)) as u64,
    ]
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
