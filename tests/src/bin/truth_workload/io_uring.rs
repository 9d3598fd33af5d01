//! Case 10: reaps by io_uring's IORING_OP_WAITID.

use super::*;
use reaper_trace::clock::boottime_ns;

/// The smallest io_uring that runs one request at a time, on raw system calls: one submission
/// slot and the completion queue. Its waitid requests are the only thing it is used for.
pub(crate) struct Uring {
    pub(crate) fd: i32,
    pub(crate) mode: UringMode,
    pub(crate) sq_tail: *mut u32,
    pub(crate) sq_array: *mut u32,
    pub(crate) sqe: *mut u8,
    pub(crate) cq_head: *mut u32,
    pub(crate) cq_tail: *const u32,
    pub(crate) cq_mask: u32,
    pub(crate) cqes: *const u8,
}

/// `struct io_uring_params` (include/uapi/linux/io_uring.h).
#[repr(C)]
#[derive(Default)]
pub(crate) struct UringParams {
    pub(crate) sq_entries: u32,
    pub(crate) cq_entries: u32,
    pub(crate) flags: u32,
    pub(crate) sq_thread_cpu: u32,
    pub(crate) sq_thread_idle: u32,
    pub(crate) features: u32,
    pub(crate) wq_fd: u32,
    pub(crate) resv: [u32; 3],
    /// head, tail, ring_mask, ring_entries, flags, dropped, array, resv1, user_addr (2).
    pub(crate) sq_off: [u32; 10],
    /// head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1, user_addr (2).
    pub(crate) cq_off: [u32; 10],
}

pub(crate) const IORING_OFF_SQ_RING: i64 = 0;
pub(crate) const IORING_OFF_CQ_RING: i64 = 0x800_0000;
pub(crate) const IORING_OFF_SQES: i64 = 0x1000_0000;
pub(crate) const IORING_OP_WAITID: u8 = 50;
pub(crate) const IORING_ENTER_GETEVENTS: u32 = 1;
pub(crate) const IORING_ENTER_SQ_WAKEUP: u32 = 2;
pub(crate) const IORING_SETUP_SQPOLL: u32 = 1 << 1;
pub(crate) const IOSQE_ASYNC: u8 = 1 << 4;
pub(crate) const SQE_BYTES: usize = 64;
pub(crate) const CQE_BYTES: usize = 16;

/// Which of io_uring's paths runs a waitid request, and so which task reaps.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum UringMode {
    /// Issued inline by the submitter's `io_uring_enter`.
    Inline,
    /// `IOSQE_ASYNC`: issued by an io-wq worker thread (`iou-wrk-*`) of the submitter's process.
    Worker,
    /// `IORING_SETUP_SQPOLL`: submitted, issued and completed by the ring's kernel thread
    /// (`iou-sqp-*`) of the submitter's process.
    SqPoll,
}

impl UringMode {
    pub(crate) const ALL: [UringMode; 3] = [Self::Inline, Self::Worker, Self::SqPoll];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Inline => "inline",
            Self::Worker => "io-wq",
            Self::SqPoll => "sqpoll",
        }
    }
}

impl Uring {
    pub(crate) fn new(mode: UringMode) -> Uring {
        let mut p = UringParams::default();
        if mode == UringMode::SqPoll {
            p.flags = IORING_SETUP_SQPOLL;
            p.sq_thread_idle = 1000;
        }
        // SAFETY: the kernel fills in our params.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, &mut p) } as i32;
        if fd < 0 {
            die("io_uring_setup");
        }
        let map = |len: usize, off: i64| -> *mut u8 {
            // SAFETY: mapping the ring's own areas, at the offsets the kernel defines.
            let a = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    fd,
                    off,
                )
            };
            if a == libc::MAP_FAILED {
                die("mmap of the io_uring");
            }
            a.cast()
        };
        let sq = map(
            (p.sq_off[6] + p.sq_entries * 4) as usize,
            IORING_OFF_SQ_RING,
        );
        let cq = map(
            p.cq_off[5] as usize + p.cq_entries as usize * CQE_BYTES,
            IORING_OFF_CQ_RING,
        );
        let sqe = map(p.sq_entries as usize * SQE_BYTES, IORING_OFF_SQES);
        // SAFETY: offsets inside the mappings, as the kernel gave them.
        unsafe {
            Uring {
                fd,
                mode,
                sq_tail: sq.add(p.sq_off[1] as usize).cast(),
                sq_array: sq.add(p.sq_off[6] as usize).cast(),
                sqe,
                cq_head: cq.add(p.cq_off[0] as usize).cast(),
                cq_tail: cq.add(p.cq_off[1] as usize).cast(),
                cq_mask: *cq.add(p.cq_off[2] as usize).cast::<u32>(),
                cqes: cq.add(p.cq_off[5] as usize),
            }
        }
    }

    /// Queues `waitid(P_PID, pid, infop, WEXITED)` as a request, and submits it.
    pub(crate) fn submit_waitid(&self, pid: i32, info: &mut libc::siginfo_t) {
        // SAFETY: the one submission slot (the ring has one entry, and one request at a time).
        unsafe {
            std::ptr::write_bytes(self.sqe, 0, SQE_BYTES);
            *self.sqe = IORING_OP_WAITID;
            if self.mode == UringMode::Worker {
                *self.sqe.add(1) = IOSQE_ASYNC; // flags
            }
            *self.sqe.add(4).cast::<i32>() = pid; // fd: the pid
            *self.sqe.add(8).cast::<u64>() = info as *mut libc::siginfo_t as u64; // addr2: infop
            *self.sqe.add(24).cast::<u32>() = libc::P_PID; // len: which
            *self.sqe.add(44).cast::<u32>() = libc::WEXITED as u32; // file_index: options
            *self.sq_array = 0;
            let tail = std::ptr::read_volatile(self.sq_tail);
            std::sync::atomic::fence(Ordering::Release);
            std::ptr::write_volatile(self.sq_tail, tail.wrapping_add(1));
        }
        self.enter(1, 0);
    }

    /// `io_uring_enter`: submits `to_submit` requests (with SQPOLL: wakes the ring's thread,
    /// which submits them) and waits for `min_complete` completions.
    pub(crate) fn enter(&self, to_submit: u32, min_complete: u32) {
        let mut flags = if min_complete > 0 {
            IORING_ENTER_GETEVENTS
        } else {
            0
        };
        if self.mode == UringMode::SqPoll {
            flags |= IORING_ENTER_SQ_WAKEUP;
        }
        loop {
            // SAFETY: no argument points to memory of ours.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_io_uring_enter,
                    self.fd,
                    to_submit,
                    min_complete,
                    flags,
                    std::ptr::null::<u8>(),
                    0usize,
                )
            };
            if r >= 0 {
                return;
            }
            if errno() != libc::EINTR {
                die("io_uring_enter");
            }
        }
    }

    /// Waits for the one completion and takes it: its result.
    pub(crate) fn complete(&self) -> i32 {
        // SAFETY: the completion queue's head, tail and entries, as mapped.
        unsafe {
            let head = std::ptr::read_volatile(self.cq_head);
            if std::ptr::read_volatile(self.cq_tail) == head {
                self.enter(0, 1);
            }
            std::sync::atomic::fence(Ordering::Acquire);
            if std::ptr::read_volatile(self.cq_tail) == head {
                die("io_uring_enter returned without a completion");
            }
            let cqe = self.cqes.add((head & self.cq_mask) as usize * CQE_BYTES);
            let res = *cqe.add(8).cast::<i32>();
            std::ptr::write_volatile(self.cq_head, head.wrapping_add(1));
            res
        }
    }
}

/// What a waitid request returned, as a wait status (the facts' `status`).
pub(crate) fn uring_wait_status(res: i32, info: &libc::siginfo_t) -> (i32, i32, i32) {
    if res < 0 {
        return (-1, 0, -res);
    }
    // SAFETY: a SIGCHLD siginfo the kernel filled in.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    let ws = match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        _ => status & 0x7f,
    };
    (pid, ws, 0)
}

/// Case 10: reaps by io_uring's `IORING_OP_WAITID` (Linux 6.7+), on both of its paths, in
/// each of io_uring's ways of running a request ([`UringMode`]: inline, on an io-wq worker,
/// on the SQPOLL thread), each with a ring of its own.
///
/// - "early": W forks E, which writes `t_exit` (`CLOCK_BOOTTIME` just before `_exit(7)`) in an
///   `exit_time` note; W polls `/proc` until E shows State Z (`t_zombie`, when it first did),
///   lets it stay a zombie for `ZOMBIE_MS`, then submits a waitid request for it and takes the
///   completion: the request finds the zombie at once and reaps it where it is issued (W's
///   `io_uring_enter`, the io-wq worker, the SQPOLL thread).
/// - "late": W forks L (blocked on a pipe), submits a waitid request for it first (it finds
///   nothing and waits), then releases L, which notes `t_exit` and exits 9: its exit wakes the
///   request, which reaps in task work run by the request's task (W, or the SQPOLL thread).
///
/// For each, a `wait` fact (`call` "io_uring", W the waiter) and a `uring` note with its
/// `mode`, `t_exit`, `t_zombie` (early only), `t_submit` (before submitting) and `t_done`
/// (after the completion was taken). The reap happened between `t_submit` and `t_done`, the
/// zombie began between `t_exit` and `t_zombie`. After each mode, an `io_threads` note lists
/// W's io_uring threads (`iou-*`) by tid and name, so the test can tell who ran the reap.
pub(crate) fn uring_waitid() -> i32 {
    const ZOMBIE_MS: u64 = 20;
    let w = record_me("waiter");
    let exit_note = |which: &str, mode: UringMode| {
        let now = boottime_ns();
        fact!(
            "{{\"kind\":\"note\",\"what\":\"exit_time\",\"which\":\"{which}\",\"mode\":\"{}\",\"pid\":{},\"t_exit\":{now}}}",
            mode.name(),
            gettid()
        );
    };
    let done = |which: &str,
                mode: UringMode,
                pid: i32,
                res: i32,
                info: &libc::siginfo_t,
                times: (u64, u64, u64)| {
        let r = uring_wait_status(res, info);
        emit_wait_by(
            "io_uring",
            &format!("io_uring waits {which} ({})", mode.name()),
            &w,
            pid,
            r,
            true,
        );
        if r.0 != pid || r.1 != if which == "early" { 7 << 8 } else { 9 << 8 } {
            die("the waitid request did not return the child's exit");
        }
        let (t_zombie, t_submit, t_done) = times;
        fact!(
            "{{\"kind\":\"note\",\"what\":\"uring\",\"which\":\"{which}\",\"mode\":\"{}\",\"pid\":{pid},\"t_zombie\":{t_zombie},\"t_submit\":{t_submit},\"t_done\":{t_done}}}",
            mode.name()
        );
    };

    for mode in UringMode::ALL {
        let ring = Uring::new(mode);
        // The early child: a zombie before the request.
        let e = fork_child(|| {
            record_me(&format!("early child ({})", mode.name()));
            exit_note("early", mode);
            7
        });
        let mut t_zombie = 0;
        while t_zombie == 0 {
            match observe(e) {
                Some(o) if o.state == b'Z' => {
                    t_zombie = boottime_ns();
                    emit_obs(&format!("early child ({})", mode.name()), &o);
                }
                Some(_) => sleep_us(50),
                None => die("the early child went away unreaped"),
            }
        }
        sleep_ms(ZOMBIE_MS);
        // SAFETY: zeroed siginfo is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let t_submit = boottime_ns();
        ring.submit_waitid(e, &mut info);
        let res = ring.complete();
        let t_done = boottime_ns();
        done("early", mode, e, res, &info, (t_zombie, t_submit, t_done));

        // The late child: exits while the request waits.
        let (go_r, go_w) = pipe_cloexec();
        let l = fork_child(|| {
            close(go_w);
            record_me(&format!("late child ({})", mode.name()));
            read_until_eof(go_r);
            exit_note("late", mode);
            9
        });
        close(go_r);
        // SAFETY: as above.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let t_submit = boottime_ns();
        ring.submit_waitid(l, &mut info);
        close(go_w);
        let res = ring.complete();
        let t_done = boottime_ns();
        done("late", mode, l, res, &info, (0, t_submit, t_done));
        note_io_threads(mode);
        close(ring.fd);
    }
    0
}

/// Notes this process's io_uring threads (`iou-sqp-*`, `iou-wrk-*`) as `[[tid, "name"], ..]`.
fn note_io_threads(mode: UringMode) {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if comm.starts_with("iou-") {
            threads.push(format!(
                "[{},\"{comm}\"]",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    fact!(
        "{{\"kind\":\"note\",\"what\":\"io_threads\",\"mode\":\"{}\",\"threads\":[{}]}}",
        mode.name(),
        threads.join(",")
    );
}

pub(crate) fn sleep_us(us: u64) {
    std::thread::sleep(Duration::from_micros(us));
}
