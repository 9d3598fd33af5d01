//! /proc observations, without allocation.

use super::*;

/// Reads a whole small file into `buf`; its length, or None if it cannot be opened.
pub(crate) fn read_file(path: &[u8], buf: &mut [u8]) -> Option<usize> {
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
pub(crate) fn proc_path(tid: i32, name: &str) -> Line {
    let mut p = Line::new();
    let _ = write!(p, "/proc/{tid}/{name}\0");
    p
}

pub(crate) fn parse_num(s: &[u8]) -> Option<u64> {
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

pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
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
pub(crate) struct Obs {
    pub(crate) tid: u32,
    pub(crate) tgid: u32,
    pub(crate) ppid: u32,
    pub(crate) state: u8,
    pub(crate) nspid: [u32; 8],
    pub(crate) n_nspid: usize,
    pub(crate) nstgid: [u32; 8],
    pub(crate) n_nstgid: usize,
    pub(crate) pidns: u64,
    pub(crate) start: u64,
    pub(crate) comm: [u8; 64],
    pub(crate) comm_len: usize,
}

pub(crate) fn parse_ids(v: &[u8], out: &mut [u32; 8]) -> usize {
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
pub(crate) fn observe(tid: i32) -> Option<Obs> {
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

pub(crate) fn emit_obs(label: &str, o: &Obs) {
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
pub(crate) fn record_obs(label: &str, tid: i32) -> Option<Obs> {
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
pub(crate) fn me() -> Obs {
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

pub(crate) fn gettid_global() -> u32 {
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
pub(crate) fn record_me(label: &str) -> Obs {
    let o = me();
    emit_obs(label, &o);
    o
}
