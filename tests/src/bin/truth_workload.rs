//! `truth_workload CASE FACTS [ARGS...]`: the process operations behind `tests/truth/`, one
//! subcommand per case, run under `reaper-trace record`. Each performs real process operations
//! and appends what the KERNEL said to FACTS, one JSON object per line:
//!
//! - `{"kind":"obs","label":L,"by":TID,"tid":..,"pid":..,"ppid":..,"state":"Z","nspid":[..],
//!   "nstgid":[..],"pidns":INODE,"start":TICKS,"comm":".."}`: `/proc/TID/status`, `/proc/TID/stat`
//!   (start time, clock ticks since boot) and `/proc/TID/ns/pid` read at one moment while the
//!   task existed (alive or a zombie); `{"kind":"obs","label":L,"tid":..,"gone":true}` when it
//!   no longer existed;
//! - `{"kind":"wait","label":L,"call":"wait4","waiter":PID,"waiter_tid":..,"waiter_level":..,
//!   "waiter_pidns":..,"arg":..,"ret":..,"errno":..,"status":..,"reaped":bool}`: what a wait
//!   returned (`ret` as the waiter sees it, in its own pid namespace; `waiter` is global);
//!   `reaped` is false for a wait that only collects a status without releasing the child (a
//!   ptracer that is not the parent);
//! - `{"kind":"note",...}`: anything else a case needs (documented where it is written).
//!
//! Uses std, libc and the scenarios' system helpers (`reaper_trace::scenario::sys`: waits,
//! pipes, forks) only. Children forked from multi-threaded processes format their facts
//! on the stack (no allocation) and leave with `_exit`. Every process arms `alarm` so a broken
//! handshake ends the case instead of hanging the test.

use std::ffi::CString;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use reaper_trace::procfs::stat_field;
use reaper_trace::scenario::sys::{self, close, errno, read_u32, read_until_eof, sleep_ms, wait4};

/// Every process of a case dies of SIGALRM after this long (a broken handshake, not a hang).
const ALARM_S: u32 = 28;

static FACTS_FD: AtomicI32 = AtomicI32::new(-1);

// ---------------------------------------------------------------------------------------------
// Facts: JSON lines built on the stack, each written with one write(2) on an O_APPEND file.

struct Line {
    buf: [u8; 16384],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Self {
            buf: [0; 16384],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let b = s.as_bytes();
        if self.len + b.len() > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
        Ok(())
    }
}

/// A string as JSON string content (quotes, backslashes and control characters escaped).
struct Esc<'a>(&'a [u8]);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &c in self.0 {
            match c {
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => f.write_char(c as char)?,
                _ => write!(f, "\\u{:04x}", c)?,
            }
        }
        Ok(())
    }
}

/// A list of numbers as a JSON array.
struct List<'a, T>(&'a [T]);

impl<T: fmt::Display> fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('[')?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            write!(f, "{v}")?;
        }
        f.write_char(']')
    }
}

fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing our own buffer to a descriptor.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            die("write failed");
        }
        bytes = &bytes[n as usize..];
    }
}

/// Appends one line (one JSON object) to the facts file.
fn emit(args: fmt::Arguments<'_>) {
    let mut line = Line::new();
    if line.write_fmt(args).is_err() || line.write_char('\n').is_err() {
        die("fact line too long");
    }
    let fd = FACTS_FD.load(Ordering::Relaxed);
    // One write per line: O_APPEND keeps lines from different processes whole.
    // SAFETY: as in write_all.
    let n = unsafe { libc::write(fd, line.as_bytes().as_ptr().cast(), line.len) };
    if n != line.len as isize {
        die("short write to the facts file");
    }
}

macro_rules! fact {
    ($($arg:tt)*) => { emit(format_args!($($arg)*)) };
}

fn open_facts(path: &str) {
    let c = CString::new(path).expect("no NUL in the facts path");
    // SAFETY: opening a path we own.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        die("cannot open the facts file");
    }
    FACTS_FD.store(fd, Ordering::Relaxed);
}

/// Reports a broken case (not a tracer finding) and exits 101, without allocating.
fn die(msg: &str) -> ! {
    let mut line = Line::new();
    let _ = writeln!(
        line,
        "truth_workload[{}]: {msg} (errno {})",
        gettid(),
        errno()
    );
    write_all(2, line.as_bytes());
    // SAFETY: leaving the process.
    unsafe { libc::_exit(101) }
}

fn gettid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}

// ---------------------------------------------------------------------------------------------
// /proc observations, without allocation.

/// Reads a whole small file into `buf`; its length, or None if it cannot be opened.
fn read_file(path: &[u8], buf: &mut [u8]) -> Option<usize> {
    // SAFETY: `path` is NUL-terminated by the callers; reading into our buffer.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let mut len = 0;
        while len < buf.len() {
            let n = libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len);
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                break;
            }
            len += n as usize;
        }
        libc::close(fd);
        Some(len)
    }
}

/// `/proc/TID/NAME` as a NUL-terminated path in a stack buffer.
fn proc_path(tid: i32, name: &str) -> Line {
    let mut p = Line::new();
    let _ = write!(p, "/proc/{tid}/{name}\0");
    p
}

fn parse_num(s: &[u8]) -> Option<u64> {
    let s = trim(s);
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some(v)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[derive(Clone, Copy)]
struct Obs {
    tid: u32,
    tgid: u32,
    ppid: u32,
    state: u8,
    nspid: [u32; 8],
    n_nspid: usize,
    nstgid: [u32; 8],
    n_nstgid: usize,
    pidns: u64,
    start: u64,
    comm: [u8; 64],
    comm_len: usize,
}

fn parse_ids(v: &[u8], out: &mut [u32; 8]) -> usize {
    let mut n = 0;
    for tok in v.split(|c| c.is_ascii_whitespace()) {
        if let Some(x) = parse_num(tok)
            && n < out.len()
        {
            out[n] = x as u32;
            n += 1;
        }
    }
    n
}

/// What `/proc` shows about thread `tid` now; None if it does not exist (reaped).
fn observe(tid: i32) -> Option<Obs> {
    let mut buf = [0u8; 4096];
    let len = read_file(proc_path(tid, "status").as_bytes(), &mut buf)?;
    let mut o = Obs {
        tid: 0,
        tgid: 0,
        ppid: 0,
        state: b'?',
        nspid: [0; 8],
        n_nspid: 0,
        nstgid: [0; 8],
        n_nstgid: 0,
        pidns: 0,
        start: 0,
        comm: [0; 64],
        comm_len: 0,
    };
    for line in buf[..len].split(|&c| c == b'\n') {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        match key {
            b"Name" => {
                let v = trim(value);
                let n = v.len().min(o.comm.len());
                o.comm[..n].copy_from_slice(&v[..n]);
                o.comm_len = n;
            }
            b"State" => o.state = trim(value).first().copied().unwrap_or(b'?'),
            b"Tgid" => o.tgid = parse_num(value).unwrap_or(0) as u32,
            b"Pid" => o.tid = parse_num(value).unwrap_or(0) as u32,
            b"PPid" => o.ppid = parse_num(value).unwrap_or(0) as u32,
            b"NStgid" => o.n_nstgid = parse_ids(value, &mut o.nstgid),
            b"NSpid" => o.n_nspid = parse_ids(value, &mut o.nspid),
            _ => {}
        }
    }
    let mut stat = [0u8; 1024];
    if let Some(len) = read_file(proc_path(tid, "stat").as_bytes(), &mut stat) {
        // Fields after the last ')', which the comm may contain.
        if let Some(close) = stat[..len].iter().rposition(|&c| c == b')') {
            let rest = &stat[close + 1..len];
            if let Some(tok) = rest
                .split(|c| c.is_ascii_whitespace())
                .filter(|t| !t.is_empty())
                .nth(stat_field::STARTTIME)
            {
                o.start = parse_num(tok).unwrap_or(0);
            }
        }
    }
    let mut link = [0u8; 64];
    let path = proc_path(tid, "ns/pid");
    // SAFETY: NUL-terminated path, our buffer.
    let n = unsafe {
        libc::readlink(
            path.as_bytes().as_ptr().cast(),
            link.as_mut_ptr().cast(),
            link.len(),
        )
    };
    if n > 0 {
        let l = &link[..n as usize];
        if let (Some(a), Some(b)) = (
            l.iter().position(|&c| c == b'['),
            l.iter().position(|&c| c == b']'),
        ) && a < b
        {
            o.pidns = parse_num(&l[a + 1..b]).unwrap_or(0);
        }
    }
    (o.tid != 0).then_some(o)
}

fn emit_obs(label: &str, o: &Obs) {
    fact!(
        "{{\"kind\":\"obs\",\"label\":\"{label}\",\"by\":{},\"tid\":{},\"pid\":{},\"ppid\":{},\"state\":\"{}\",\"nspid\":{},\"nstgid\":{},\"pidns\":{},\"start\":{},\"comm\":\"{}\"}}",
        gettid_global(),
        o.tid,
        o.tgid,
        o.ppid,
        o.state as char,
        List(&o.nspid[..o.n_nspid]),
        List(&o.nstgid[..o.n_nstgid]),
        o.pidns,
        o.start,
        Esc(&o.comm[..o.comm_len]),
    );
}

/// Observes `tid` (a global id, or one of this namespace: /proc is the initial namespace's)
/// and records it under `label`; records `gone` if it no longer exists.
fn record_obs(label: &str, tid: i32) -> Option<Obs> {
    match observe(tid) {
        Some(o) => {
            emit_obs(label, &o);
            Some(o)
        }
        None => {
            fact!("{{\"kind\":\"obs\",\"label\":\"{label}\",\"tid\":{tid},\"gone\":true}}");
            None
        }
    }
}

/// This thread's global tid and its process's global pid, and its own namespace's view: from
/// `/proc/thread-self` (the procfs here belongs to the initial pid namespace).
fn me() -> Obs {
    let mut link = [0u8; 64];
    // SAFETY: constant NUL-terminated path, our buffer.
    let n = unsafe {
        libc::readlink(
            c"/proc/thread-self".as_ptr(),
            link.as_mut_ptr().cast(),
            link.len(),
        )
    };
    if n <= 0 {
        die("readlink /proc/thread-self");
    }
    // "PID/task/TID"
    let l = &link[..n as usize];
    let tid = l
        .rsplit(|&c| c == b'/')
        .next()
        .and_then(parse_num)
        .unwrap_or_else(|| die("unexpected /proc/thread-self"));
    observe(tid as i32).unwrap_or_else(|| die("cannot observe myself"))
}

fn gettid_global() -> u32 {
    let mut link = [0u8; 64];
    // SAFETY: as in me().
    let n = unsafe {
        libc::readlink(
            c"/proc/thread-self".as_ptr(),
            link.as_mut_ptr().cast(),
            link.len(),
        )
    };
    if n <= 0 {
        return 0;
    }
    link[..n as usize]
        .rsplit(|&c| c == b'/')
        .next()
        .and_then(parse_num)
        .unwrap_or(0) as u32
}

/// Records this thread under `label` (it is alive: it is reading).
fn record_me(label: &str) -> Obs {
    let o = me();
    emit_obs(label, &o);
    o
}

// ---------------------------------------------------------------------------------------------
// Process operations.

/// Forks; the child arms its alarm, runs `f` and leaves with `_exit(f())`. `f` uses
/// async-signal-safe operations, or allocation in single-threaded processes.
fn fork_child(f: impl FnOnce() -> i32) -> i32 {
    sys::fork_then(|| {
        // SAFETY: arming our own alarm.
        unsafe { libc::alarm(ALARM_S) };
        f()
    })
    .unwrap_or_else(|_| die("fork"))
}

/// `wait4(arg, &status, options)`, retried on EINTR; (ret, status, errno).
fn raw_wait4(arg: i32, options: i32) -> (i32, i32, i32) {
    let w = wait4(arg, options);
    (w.ret, w.status, w.errno)
}

fn emit_wait(label: &str, waiter: &Obs, arg: i32, r: (i32, i32, i32), reaped: bool) {
    emit_wait_by("wait4", label, waiter, arg, r, reaped);
}

/// A wait fact; `status` is a wait status (as wait4 fills it in) whatever `call` was.
fn emit_wait_by(
    call: &str,
    label: &str,
    waiter: &Obs,
    arg: i32,
    (ret, status, e): (i32, i32, i32),
    reaped: bool,
) {
    fact!(
        "{{\"kind\":\"wait\",\"label\":\"{label}\",\"call\":\"{call}\",\"waiter\":{},\"waiter_tid\":{},\"waiter_level\":{},\"waiter_pidns\":{},\"arg\":{arg},\"ret\":{ret},\"errno\":{e},\"status\":{status},\"reaped\":{}}}",
        waiter.tgid,
        waiter.tid,
        waiter.n_nspid.saturating_sub(1),
        waiter.pidns,
        reaped && ret > 0 && (libc::WIFEXITED(status) || libc::WIFSIGNALED(status)),
    );
}

/// Waits as `wait4(arg, .., options)` and records the result.
fn wait_fact(label: &str, arg: i32, options: i32, reaped: bool) -> (i32, i32, i32) {
    let waiter = me();
    let r = raw_wait4(arg, options);
    emit_wait(label, &waiter, arg, r, reaped);
    r
}

/// Waits for every child until ECHILD, recording each; returns the statuses by pid.
fn reap_all(label: &str) -> Vec<(i32, i32)> {
    let waiter = me();
    let mut got = Vec::new();
    loop {
        let r = raw_wait4(-1, libc::__WALL);
        emit_wait(label, &waiter, -1, r, true);
        if r.0 <= 0 {
            break;
        }
        got.push((r.0, r.1));
    }
    got
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: fds is ours.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        die("pipe");
    }
    (fds[0], fds[1])
}

fn pipe_cloexec() -> (i32, i32) {
    sys::pipe().unwrap_or_else(|_| die("pipe2"))
}

fn write_u32(fd: i32, v: u32) {
    write_all(fd, &v.to_ne_bytes());
}

fn set_subreaper() {
    sys::set_subreaper().unwrap_or_else(|_| die("PR_SET_CHILD_SUBREAPER"));
}

/// Polls `/proc/PID` until it is gone (reaped) or `timeout`; records the last sighting
/// (`label` + " seen", e.g. State Z) and then `label` + " gone". True if it went away.
fn wait_gone(label: &str, pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut last: Option<Obs> = None;
    loop {
        match observe(pid) {
            None => {
                if let Some(o) = last {
                    emit_obs(&format!("{label} seen"), &o);
                }
                fact!(
                    "{{\"kind\":\"obs\",\"label\":\"{label} gone\",\"tid\":{pid},\"gone\":true}}"
                );
                return true;
            }
            Some(o) => last = Some(o),
        }
        if Instant::now() >= deadline {
            if let Some(o) = last {
                emit_obs(&format!("{label} seen"), &o);
            }
            return false;
        }
        sleep_ms(2);
    }
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// Case 1: A ptracer that is not the parent collects the exit of a tracee; the parent reaps it.
///
/// W (the parent P) forks C (blocked on a pipe) and T. T seizes C and reports it; W lets C exit
/// with code 7. T's `waitpid(C)` returns C (status 7) without reaping it: T then records C in
/// `/proc` (still a zombie, PPid W) and tells W, which records C again and reaps it.
fn ptrace_case() -> i32 {
    let w = record_me("parent");
    let (go_r, go_w) = pipe_cloexec();
    let (seized_r, seized_w) = pipe_cloexec();
    let (done_r, done_w) = pipe_cloexec();
    let c = fork_child(|| {
        close(go_w);
        record_me("tracee");
        read_until_eof(go_r);
        7
    });
    let t = fork_child(|| {
        close(go_w);
        record_me("tracer");
        // SAFETY: PTRACE_SEIZE of a process we have the right to trace (root).
        let rc = unsafe {
            libc::ptrace(
                libc::PTRACE_SEIZE,
                c,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        if rc != 0 {
            die("PTRACE_SEIZE");
        }
        write_u32(seized_w, 1);
        // The tracee's exit is reported to its tracer first: wait returns it, and since the
        // tracer is not its parent, the kernel hands it back to the parent as a zombie.
        let r = wait_fact("tracer wait", c, libc::__WALL, false);
        if r.0 != c {
            die("the tracer's wait did not return the tracee");
        }
        record_obs("tracee after tracer wait", c);
        write_u32(done_w, 1);
        0
    });
    close(seized_w);
    close(done_w);
    if read_u32(seized_r) != Some(1) {
        die("the tracer did not seize the tracee");
    }
    close(go_w); // C exits.
    if read_u32(done_r) != Some(1) {
        die("the tracer did not report");
    }
    record_obs("tracee before parent wait", c);
    let r = wait_fact("parent wait", c, 0, true);
    if r.0 != c {
        die("the parent's wait did not return the tracee");
    }
    wait_fact("parent waits tracer", t, 0, true);
    fact!(
        "{{\"kind\":\"note\",\"what\":\"ptrace\",\"parent\":{},\"tracee\":{c},\"tracer\":{t}}}",
        w.tgid
    );
    0
}

/// Case 2: A second thread execs while the main thread is blocked; `with_child`: the main
/// thread first forks a child that lives until the new program (which inherits the pipe) lets
/// it go.
///
/// W forks X. X (optionally forks K) spawns thread Y, which execs
/// `truth_workload after-exec FACTS FD K`. The new program records itself and K, lets K exit,
/// reaps it, and exits 42. W reaps X.
fn exec_thread(with_child: bool) -> i32 {
    record_me("waiter");
    let exe = std::env::current_exe().unwrap_or_else(|_| die("current_exe"));
    let facts = std::env::args().nth(2).expect("facts path");
    let x = fork_child(move || {
        record_me("leader before exec");
        let (mut fd, mut k) = (-1, 0);
        if with_child {
            let (r, w) = pipe(); // no CLOEXEC: the write end survives the exec
            k = fork_child(|| {
                close(w);
                record_me("child before exec");
                read_until_eof(r);
                0
            });
            close(r);
            fd = w;
        }
        let exe = CString::new(exe.as_os_str().as_encoded_bytes()).expect("path");
        let args = [
            CString::new("truth_workload").unwrap(),
            CString::new("after-exec").unwrap(),
            CString::new(facts).unwrap(),
            CString::new(fd.to_string()).unwrap(),
            CString::new(k.to_string()).unwrap(),
        ];
        let thread = std::thread::spawn(move || {
            record_me("exec thread");
            let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
            argv.push(std::ptr::null());
            // SAFETY: valid NUL-terminated argv (execv passes the process's environment).
            unsafe { libc::execv(exe.as_ptr(), argv.as_ptr()) };
            die("execve");
        });
        // Blocked here until the exec kills this thread.
        let _ = thread.join();
        die("the exec thread returned")
    });
    wait_fact("parent wait", x, 0, true);
    0
}

/// The program a non-leader thread exec'd (see `exec_thread`): args FD K.
fn after_exec(args: &[String]) -> i32 {
    let fd: i32 = args[0].parse().expect("fd");
    let k: i32 = args[1].parse().expect("child pid");
    record_me("after exec");
    if k > 0 {
        record_obs("child after exec", k);
        close(fd);
        let r = wait_fact("wait child after exec", k, 0, true);
        if r.0 != k {
            die("the exec'd program did not get the child");
        }
    }
    // Live on past the old leader's release (an RCU grace period after the exec): that
    // release carries the process's tid and start time, and must not end the process.
    std::thread::sleep(std::time::Duration::from_millis(50));
    42
}

/// Case 3: A parent that ignores SIGCHLD: its children are released at once (autoreaped).
///
/// W forks P (in `ns` mode W unshares its pid namespace first and forks I, the new namespace's
/// PID 1, which forks P). P ignores SIGCHLD, forks 5 children that record themselves and exit
/// 3; P's `wait4(-1)` returns -1/ECHILD once all of them are gone (never their pids), and P
/// records that they are gone from `/proc`.
fn sigchld_ignored(ns: bool) -> i32 {
    record_me("top");
    let parent = || {
        record_me("ignoring parent");
        // SAFETY: setting a disposition.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        let (r, w) = pipe_cloexec();
        let mut kids = Vec::new();
        for _ in 0..5 {
            kids.push(fork_child(|| {
                close(r);
                let o = record_me("autoreaped child");
                write_u32(w, o.tid);
                3
            }));
        }
        close(w);
        let mut global = Vec::new();
        while let Some(g) = read_u32(r) {
            global.push(g);
        }
        let (ret, _, e) = wait_fact("ignoring parent wait", -1, 0, true);
        if ret != -1 || e != libc::ECHILD {
            die("wait4 did not fail with ECHILD under SIG_IGN");
        }
        for g in global {
            record_obs("autoreaped child after wait", g as i32);
        }
        0
    };
    if ns {
        // SAFETY: unshare for this process's future children.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            die("unshare(CLONE_NEWPID)");
        }
        let init = fork_child(move || {
            record_me("ns init");
            let p = fork_child(parent);
            wait_fact("ns init waits parent", p, 0, true);
            0
        });
        wait_fact("top waits ns init", init, 0, true);
    } else {
        let p = fork_child(parent);
        wait_fact("top waits parent", p, 0, true);
    }
    0
}

/// Case 4: CLONE_PARENT: A forks B; B clones C with CLONE_PARENT, so C's parent is A, which reaps
/// it. C records itself (PPid A); B writes a note naming the caller and the child.
fn clone_parent() -> i32 {
    record_me("top");
    let a = fork_child(|| {
        record_me("A");
        fork_child(|| {
            let b = record_me("B");
            // SAFETY: a raw clone without CLONE_VM behaves like fork (the child runs on a
            // copy of this stack); the child only records itself and leaves with _exit.
            let c = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            };
            if c < 0 {
                die("clone(CLONE_PARENT)");
            }
            if c == 0 {
                // SAFETY: arming our alarm; leaving the child.
                unsafe {
                    libc::alarm(ALARM_S);
                    record_me("C");
                    libc::_exit(9)
                }
            }
            fact!(
                "{{\"kind\":\"note\",\"what\":\"clone_parent\",\"caller\":{},\"child\":{c}}}",
                b.tgid
            );
            0
        });
        // B and C are both A's children.
        wait_fact("A waits", -1, 0, true);
        wait_fact("A waits", -1, 0, true);
        0
    });
    wait_fact("top waits A", a, 0, true);
    0
}

/// Case 5: Many children that exit at once, each waited for at once, with two CPU-bound threads
/// competing, so the wait often returns before the child's final context switch.
fn wait_race() -> i32 {
    let w = record_me("parent");
    const N: usize = 1000;
    static STOP: AtomicBool = AtomicBool::new(false);
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                // Nice 19: they fill idle CPU time without starving the forks and waits.
                // SAFETY: setting this thread's own priority.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as u32, 19) };
                let mut x: u64 = 0;
                while !STOP.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity(N);
    for i in 0..N {
        // SAFETY: the child only calls _exit (this process is multi-threaded).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            die("fork");
        }
        if pid == 0 {
            // SAFETY: leaving the child.
            unsafe { libc::_exit((i % 100) as i32) };
        }
        let r = raw_wait4(pid, 0);
        if r.0 != pid {
            die("wait4 did not return the child");
        }
        results.push((pid, r));
    }
    STOP.store(true, Ordering::Relaxed);
    for s in spinners {
        let _ = s.join();
    }
    for (pid, r) in results {
        emit_wait("race wait", &w, pid, r, true);
    }
    0
}

/// Case 6: A process of 8 threads; a non-leader thread forks a child; then the whole group exits
/// at once (exit_group). The child is handed from thread to thread and finally to W, the
/// subreaper. It records its parent once its parent process is gone. Forty such processes run
/// at the same time (the races are the point), three times over, each writing a `threads_exit`
/// note.
fn threads_exit() -> i32 {
    const BATCHES: usize = 3;
    const FATHERS: usize = 40;
    record_me("subreaper");
    set_subreaper();
    for _ in 0..BATCHES {
        for _ in 0..FATHERS {
            fork_child(doomed_father);
        }
        reap_all("subreaper wait");
    }
    0
}

fn doomed_father() -> i32 {
    let f = record_me("father");
    let (r, w) = pipe_cloexec();
    let (k_r, k_w) = pipe_cloexec();
    let (block_r, _block_w) = pipe_cloexec();
    for i in 0..7 {
        std::thread::spawn(move || {
            if i == 3 {
                record_me("forking thread");
                let father = f.tgid;
                let (ready_r, ready_w) = pipe_cloexec();
                // SAFETY: the child only reads /proc, formats on the stack and _exits.
                let k = unsafe { libc::fork() };
                if k < 0 {
                    die("fork");
                }
                if k == 0 {
                    // SAFETY: as above.
                    unsafe {
                        libc::alarm(ALARM_S);
                        record_me("orphan before");
                        write_u32(ready_w, 1);
                        sleep_ms(500);
                        let deadline = Instant::now() + Duration::from_secs(10);
                        while libc::getppid() as u32 == father && Instant::now() < deadline {
                            sleep_ms(5);
                        }
                        record_me("orphan after");
                        libc::_exit(0)
                    }
                }
                close(ready_w);
                if read_u32(ready_r) != Some(1) {
                    die("the child did not start");
                }
                write_u32(k_w, k as u32);
            }
            write_u32(w, 1);
            // Blocks until exit_group: the write end stays open in the process until then.
            read_until_eof(block_r);
        });
    }
    for _ in 0..7 {
        if read_u32(r) != Some(1) {
            die("a thread did not start");
        }
    }
    let k = read_u32(k_r).unwrap_or_else(|| die("no child forked"));
    fact!(
        "{{\"kind\":\"note\",\"what\":\"threads_exit\",\"father\":{},\"orphan\":{k}}}",
        f.tgid
    );
    // All 8 threads die together.
    // SAFETY: leaving the whole process.
    unsafe { libc::syscall(libc::SYS_exit_group, 0) };
    unreachable!()
}

/// Case 7: Forks and reaps children in a loop until a pid repeats (at most 40,000 forks or 20 s).
/// Writes every wait, then a note with the count and whether a pid was reused.
fn pid_reuse() -> i32 {
    let w = record_me("parent");
    let started = Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut results = Vec::new();
    let mut reused = 0;
    while results.len() < 40_000 && started.elapsed() < Duration::from_secs(20) {
        // SAFETY: single-threaded; the child only calls _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            die("fork");
        }
        if pid == 0 {
            // SAFETY: leaving the child.
            unsafe { libc::_exit(0) };
        }
        let r = raw_wait4(pid, 0);
        if r.0 != pid {
            die("wait4 did not return the child");
        }
        results.push((pid, r));
        if !seen.insert(pid) {
            reused = pid;
            break;
        }
    }
    for (pid, r) in &results {
        emit_wait("reuse wait", &w, *pid, *r, true);
    }
    fact!(
        "{{\"kind\":\"note\",\"what\":\"pid_reuse\",\"forks\":{},\"reused\":{reused},\"ms\":{}}}",
        results.len(),
        started.elapsed().as_millis()
    );
    0
}

/// Case 8 (inside `host`): W forks X, X forks O and exits: O is adopted by the subreaper `host`
/// above `record`, a process that existed before tracing began, and reaped by it. O records
/// its parent once adopted; W waits until O is gone from `/proc` before it exits.
fn identity() -> i32 {
    record_me("command");
    let (r, w) = pipe_cloexec();
    let x = fork_child(|| {
        close(r);
        let x = record_me("father");
        fork_child(|| {
            record_me("orphan before");
            write_u32(w, gettid_global());
            let deadline = Instant::now() + Duration::from_secs(10);
            // SAFETY: getppid has no preconditions.
            while unsafe { libc::getppid() } as u32 == x.tgid && Instant::now() < deadline {
                sleep_ms(2);
            }
            record_me("orphan adopted");
            0 // closes `w` on exit
        });
        close(w);
        0
    });
    close(w);
    wait_fact("command waits father", x, 0, true);
    let o = read_u32(r).unwrap_or_else(|| die("no orphan"));
    read_until_eof(r); // O has exited (it may not be reaped yet)
    if !wait_gone("orphan", o as i32, Duration::from_secs(10)) {
        die("the orphan was not reaped by the host");
    }
    0
}

/// `host FACTS -- COMMAND...`: a subreaper that records itself, runs COMMAND and reaps every
/// process it is handed until none is left; exits with COMMAND's status.
fn host(args: &[String]) -> i32 {
    let command = args
        .iter()
        .position(|a| a == "--")
        .map(|i| &args[i + 1..])
        .unwrap_or_else(|| die("usage: host FACTS -- COMMAND..."));
    set_subreaper();
    record_me("host");
    let argv: Vec<CString> = command
        .iter()
        .map(|a| CString::new(a.as_str()).expect("no NUL"))
        .collect();
    let cmd = fork_child(|| {
        let mut p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        p.push(std::ptr::null());
        // SAFETY: valid argv; the alarm set by fork_child is cleared for the command.
        unsafe {
            libc::alarm(0);
            libc::execvp(p[0], p.as_ptr());
        }
        die("execvp")
    });
    record_obs("recorder", cmd);
    // Polls (WNOHANG) rather than blocking in wait4: a wait entered before tracing began
    // would be seen returning without its arguments, which is another matter than this case's.
    let waiter = me();
    let mut code = 1;
    loop {
        let r = raw_wait4(-1, libc::__WALL | libc::WNOHANG);
        if r.0 == 0 {
            sleep_ms(2);
            continue;
        }
        emit_wait("host wait", &waiter, -1, r, true);
        if r.0 < 0 {
            break;
        }
        let (pid, status) = (r.0, r.1);
        if pid == cmd {
            code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
        }
    }
    code
}

/// Case 9: F has 300 children when it exits; they are adopted by W (the subreaper), which
/// then lets them exit and reaps them all. The children block on a pipe only W holds open.
/// State and parent of a task from `/proc/PID/stat` (one small read: the 10,000-children case
/// reads it for every child).
fn stat_state_ppid(pid: i32) -> Option<(u8, u32)> {
    let mut stat = [0u8; 1024];
    let len = read_file(proc_path(pid, "stat").as_bytes(), &mut stat)?;
    // Fields after the last ')', which the comm may contain.
    let close = stat[..len].iter().rposition(|&c| c == b')')?;
    let mut fields = stat[close + 1..len]
        .split(|c| c.is_ascii_whitespace())
        .filter(|t| !t.is_empty());
    let state = *fields.next()?.first()?;
    // Fields `stat_field::STATE` and `stat_field::PPID`: the first two.
    let ppid = parse_num(fields.next()?)? as u32;
    Some((state, ppid))
}

/// Numbers per fact line: a line is at most 16 KiB.
const PIDS_PER_LINE: usize = 1000;

/// `many-children LIVING ZOMBIES`: a subreaper's child (the father) forks LIVING children that
/// block on a pipe and ZOMBIES children that exit at once, waits until those are zombies, and
/// exits. The subreaper reaps the father, then reads `/proc/PID/stat` of every child (notes
/// `many_children_ppids`: pids, states and ppids as `/proc` shows them after the hand-off),
/// then kills and reaps them, `EXIT_BATCH` at a time.
/// Notes `many_children` (possibly several lines): `father`, `children` (the living ones),
/// `zombies`.
fn many_children(args: &[String]) -> i32 {
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| die("usage: many-children LIVING ZOMBIES"))
    };
    let (living, zombies) = (num(0), num(1));
    let total = living + zombies;
    record_me("subreaper");
    set_subreaper();
    let (r, w) = pipe_cloexec();
    let (pids_r, pids_w) = pipe_cloexec();
    let f = fork_child(|| {
        close(pids_r);
        let f = record_me("father");
        let mut kids = Vec::with_capacity(living);
        for _ in 0..living {
            kids.push(fork_child(|| {
                close(w);
                close(pids_w);
                read_until_eof(r);
                0
            }));
        }
        let mut dead = Vec::with_capacity(zombies);
        for _ in 0..zombies {
            dead.push(fork_child(|| 0));
        }
        // They are zombies when the father exits: adopted as zombies.
        for &z in &dead {
            while stat_state_ppid(z).is_none_or(|(state, _)| state != b'Z') {
                sleep_ms(1);
            }
        }
        for (i, part) in kids.chunks(PIDS_PER_LINE).enumerate() {
            fact!(
                "{{\"kind\":\"note\",\"what\":\"many_children\",\"father\":{},\"part\":{i},\"children\":{},\"zombies\":[]}}",
                f.tgid,
                List(part)
            );
        }
        for (i, part) in dead.chunks(PIDS_PER_LINE).enumerate() {
            fact!(
                "{{\"kind\":\"note\",\"what\":\"many_children\",\"father\":{},\"part\":{i},\"children\":[],\"zombies\":{}}}",
                f.tgid,
                List(part)
            );
        }
        for &k in kids.iter().chain(&dead) {
            write_u32(pids_w, k as u32);
        }
        0
    });
    close(pids_w);
    close(r);
    let mut all = Vec::with_capacity(total);
    for _ in 0..total {
        match read_u32(pids_r) {
            Some(pid) => all.push(pid as i32),
            None => die("the father did not fork its children"),
        }
    }
    wait_fact("subreaper waits father", f, 0, true);
    for part in all.chunks(PIDS_PER_LINE) {
        let mut states = Vec::with_capacity(part.len());
        let mut ppids = Vec::with_capacity(part.len());
        for &pid in part {
            let (state, ppid) = stat_state_ppid(pid).unwrap_or((b'?', 0));
            states.push(state as char);
            ppids.push(ppid);
        }
        let states: String = states.into_iter().collect();
        fact!(
            "{{\"kind\":\"note\",\"what\":\"many_children_ppids\",\"pids\":{},\"states\":\"{}\",\"ppids\":{}}}",
            List(part),
            Esc(states.as_bytes()),
            List(&ppids)
        );
    }
    // The orphans go in batches, each reaped before the next: all of them exiting at once
    // would be a storm of exit, zombie, reap and free records (four per child), which is not
    // what this case is about (the hand-off above is not paced).
    let waiter = me();
    for batch in all.chunks(EXIT_BATCH) {
        for &pid in batch {
            // SAFETY: signalling our own (adopted) child; a zombie ignores it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for &pid in batch {
            let r = raw_wait4(pid, libc::__WALL);
            emit_wait("subreaper wait", &waiter, pid, r, true);
            if r.0 != pid {
                die("the subreaper could not reap an orphan");
            }
        }
        sleep_ms(10);
    }
    close(w);
    if !reap_all("subreaper wait").is_empty() {
        die("the subreaper had children it did not know of");
    }
    0
}

/// Orphans let go at a time at the end of `many-children`.
const EXIT_BATCH: usize = 250;

/// `CLOCK_BOOTTIME` nanoseconds: the clock the kernel programs stamp records with.
fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The smallest io_uring that runs one request at a time, on raw system calls: one submission
/// slot and the completion queue. Its waitid requests are the only thing it is used for.
struct Uring {
    fd: i32,
    sq_tail: *mut u32,
    sq_array: *mut u32,
    sqe: *mut u8,
    cq_head: *mut u32,
    cq_tail: *const u32,
    cq_mask: u32,
    cqes: *const u8,
}

/// `struct io_uring_params` (include/uapi/linux/io_uring.h).
#[repr(C)]
#[derive(Default)]
struct UringParams {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    /// head, tail, ring_mask, ring_entries, flags, dropped, array, resv1, user_addr (2).
    sq_off: [u32; 10],
    /// head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1, user_addr (2).
    cq_off: [u32; 10],
}

const IORING_OFF_SQ_RING: i64 = 0;
const IORING_OFF_CQ_RING: i64 = 0x800_0000;
const IORING_OFF_SQES: i64 = 0x1000_0000;
const IORING_OP_WAITID: u8 = 50;
const IORING_ENTER_GETEVENTS: u32 = 1;
const SQE_BYTES: usize = 64;
const CQE_BYTES: usize = 16;

impl Uring {
    fn new() -> Uring {
        let mut p = UringParams::default();
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
    fn submit_waitid(&self, pid: i32, info: &mut libc::siginfo_t) {
        // SAFETY: the one submission slot (the ring has one entry, and one request at a time).
        unsafe {
            std::ptr::write_bytes(self.sqe, 0, SQE_BYTES);
            *self.sqe = IORING_OP_WAITID;
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

    fn enter(&self, to_submit: u32, min_complete: u32) {
        loop {
            // SAFETY: no argument points to memory of ours.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_io_uring_enter,
                    self.fd,
                    to_submit,
                    min_complete,
                    if min_complete > 0 {
                        IORING_ENTER_GETEVENTS
                    } else {
                        0
                    },
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
    fn complete(&self) -> i32 {
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
fn uring_wait_status(res: i32, info: &libc::siginfo_t) -> (i32, i32, i32) {
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

/// Case 10: reaps by io_uring's `IORING_OP_WAITID` (Linux 6.7+), on both of its paths.
///
/// - "early": W forks E, which writes `t_exit` (`CLOCK_BOOTTIME` just before `_exit(7)`) in an
///   `exit_time` note; W polls `/proc` until E shows State Z (`t_zombie`, when it first did),
///   lets it stay a zombie for `ZOMBIE_MS`, then submits a waitid request for it and takes the
///   completion: the request finds the zombie at once, and `io_uring_enter` reaps it inline.
/// - "late": W forks L (blocked on a pipe), submits a waitid request for it first (it finds
///   nothing and waits), then releases L, which notes `t_exit` and exits 9: its exit wakes the
///   request, which reaps in task work run by W.
///
/// For each, a `wait` fact (`call` "io_uring", W the waiter) and a `uring` note with `t_exit`,
/// `t_zombie` (early only), `t_submit` (before submitting) and `t_done` (after the completion
/// was taken). The reap happened between `t_submit` and `t_done`, the zombie began between
/// `t_exit` and `t_zombie`.
fn uring_waitid() -> i32 {
    const ZOMBIE_MS: u64 = 20;
    let w = record_me("waiter");
    let ring = Uring::new();
    let exit_note = |which: &str| {
        let now = boottime_ns();
        fact!(
            "{{\"kind\":\"note\",\"what\":\"exit_time\",\"which\":\"{which}\",\"pid\":{},\"t_exit\":{now}}}",
            gettid()
        );
    };
    let done = |which: &str, pid: i32, res: i32, info: &libc::siginfo_t, times: (u64, u64, u64)| {
        let r = uring_wait_status(res, info);
        emit_wait_by(
            "io_uring",
            &format!("io_uring waits {which}"),
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
            "{{\"kind\":\"note\",\"what\":\"uring\",\"which\":\"{which}\",\"pid\":{pid},\"t_zombie\":{t_zombie},\"t_submit\":{t_submit},\"t_done\":{t_done}}}"
        );
    };

    // The early child: a zombie before the request.
    let e = fork_child(|| {
        record_me("early child");
        exit_note("early");
        7
    });
    let mut t_zombie = 0;
    while t_zombie == 0 {
        match observe(e) {
            Some(o) if o.state == b'Z' => {
                t_zombie = boottime_ns();
                emit_obs("early child", &o);
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
    done("early", e, res, &info, (t_zombie, t_submit, t_done));

    // The late child: exits while the request waits.
    let (go_r, go_w) = pipe_cloexec();
    let l = fork_child(|| {
        close(go_w);
        record_me("late child");
        read_until_eof(go_r);
        exit_note("late");
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
    done("late", l, res, &info, (0, t_submit, t_done));
    0
}

fn sleep_us(us: u64) {
    std::thread::sleep(Duration::from_micros(us));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: truth_workload CASE FACTS [ARGS...]");
        std::process::exit(2);
    }
    open_facts(&args[2]);
    // SAFETY: arming our own alarm.
    unsafe { libc::alarm(ALARM_S) };
    let code = match args[1].as_str() {
        "ptrace" => ptrace_case(),
        "exec-thread" => exec_thread(false),
        "exec-thread-child" => exec_thread(true),
        "after-exec" => after_exec(&args[3..]),
        "sigchld-ignored" => sigchld_ignored(false),
        "sigchld-ignored-ns" => sigchld_ignored(true),
        "clone-parent" => clone_parent(),
        "wait-race" => wait_race(),
        "threads-exit" => threads_exit(),
        "pid-reuse" => pid_reuse(),
        "identity" => identity(),
        "host" => host(&args[3..]),
        "many-children" => many_children(&args[3..]),
        "io-uring-waitid" => uring_waitid(),
        other => {
            eprintln!("truth_workload: unknown case {other}");
            2
        }
    };
    std::process::exit(code)
}
