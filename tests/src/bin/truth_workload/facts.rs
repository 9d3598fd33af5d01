//! Facts: JSON lines built on the stack, each written with one write(2) on an O_APPEND file.

use super::*;

pub(crate) struct Line {
    pub(crate) buf: [u8; 16384],
    pub(crate) len: usize,
}

impl Line {
    pub(crate) fn new() -> Self {
        Self {
            buf: [0; 16384],
            len: 0,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
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
pub(crate) struct Esc<'a>(pub(crate) &'a [u8]);

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
pub(crate) struct List<'a, T>(pub(crate) &'a [T]);

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

pub(crate) fn write_all(fd: i32, mut bytes: &[u8]) {
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
pub(crate) fn emit(args: fmt::Arguments<'_>) {
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

pub(crate) fn open_facts(path: &str) {
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
pub(crate) fn die(msg: &str) -> ! {
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

pub(crate) fn gettid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}
