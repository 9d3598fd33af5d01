//! JSON Lines recordings: writing them (buffered, flushed on a timer and at the end) and
//! reading them back, with errors that name the line.

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bytes::{BufMut, BytesMut};

use crate::event::{Event, Header, SCHEMA_VERSION};

/// Writes once this many bytes are buffered (plus on every `flush`).
const FLUSH_BYTES: usize = 64 * 1024;

pub enum Output {
    Stdout(io::Stdout),
    File(File, PathBuf),
}

impl Output {
    /// Opens (creates or truncates) the destination now. `None` or `-` is standard output.
    pub fn open(path: Option<&Path>) -> Result<Self> {
        Destination::check(path)?.open()
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Stdout(_) => "standard output".into(),
            Self::File(_, p) => p.display().to_string(),
        }
    }
}

/// Where a recording will go: checked up front, so a path that can't be written fails before
/// anything is attached, but left as it is until [`Destination::open`], after the programs
/// are attached: a run that fails to start (no memory for the ring buffer, a kernel that
/// refuses the programs) leaves an existing recording whole and creates no file.
pub enum Destination {
    Stdout,
    File {
        path: PathBuf,
        /// An existing file, opened for writing but not truncated yet.
        existing: Option<File>,
    },
    /// A FIFO: opening it for writing blocks until a reader opens it, so it is opened by
    /// [`Destination::wait_for_reader`], which can be given up on.
    Fifo {
        path: PathBuf,
        file: Option<File>,
    },
}

/// How often a FIFO is tried again while nobody reads it.
const FIFO_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

fn cannot_write(path: &Path) -> String {
    format!(
        "cannot write {}: choose a writable path with -o",
        path.display()
    )
}

impl Destination {
    /// `None` or `-` is standard output. An existing file is opened for writing (not
    /// truncated); for a new one, its directory must exist and be writable.
    pub fn check(path: Option<&Path>) -> Result<Self> {
        let path = match path {
            None => return Ok(Self::Stdout),
            Some(p) if p.as_os_str() == "-" => return Ok(Self::Stdout),
            Some(p) => p,
        };
        if std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
            access_write(path).with_context(|| cannot_write(path))?;
            return Ok(Self::Fifo {
                path: path.to_path_buf(),
                file: None,
            });
        }
        let existing = match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                writable_dir(dir).with_context(|| cannot_write(path))?;
                None
            }
            Err(e) => return Err(anyhow::Error::new(e).context(cannot_write(path))),
        };
        Ok(Self::File {
            path: path.to_path_buf(),
            existing,
        })
    }

    /// For a FIFO: opens it once a reader has, trying again every [`FIFO_RETRY`] until
    /// `deadline`; `waiting` is called once if nobody reads it yet. Anything else is ready.
    pub async fn wait_for_reader(
        &mut self,
        deadline: Option<tokio::time::Instant>,
        waiting: impl FnOnce(),
    ) -> Result<()> {
        let Self::Fifo { path, file } = self else {
            return Ok(());
        };
        let mut waiting = Some(waiting);
        while file.is_none() {
            match open_fifo_now(path) {
                Ok(f) => *file = Some(f),
                // ENXIO: no reader yet.
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    if let Some(w) = waiting.take() {
                        w();
                    }
                    if deadline.is_some_and(|d| tokio::time::Instant::now() + FIFO_RETRY > d) {
                        bail!(
                            "nobody opened the FIFO {} for reading within the duration: start its reader first",
                            path.display()
                        );
                    }
                    tokio::time::sleep(FIFO_RETRY).await;
                }
                Err(e) => return Err(anyhow::Error::new(e).context(cannot_write(path))),
            }
        }
        Ok(())
    }

    /// Creates the file, or empties the existing one: from now on it is the recording.
    pub fn open(self) -> Result<Output> {
        match self {
            Self::Fifo {
                path,
                file: Some(f),
            } => Ok(Output::File(f, path)),
            // Not waited for: blocks until a reader comes, as a shell's redirection does.
            Self::Fifo { path, file: None } => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .with_context(|| cannot_write(&path))?;
                Ok(Output::File(f, path))
            }
            Self::Stdout => Ok(Output::Stdout(io::stdout())),
            Self::File {
                path,
                existing: Some(f),
            } => {
                // A regular file is emptied; a device or a pipe (`-o /dev/null`) is used as is.
                if f.metadata().is_ok_and(|m| m.is_file()) {
                    f.set_len(0).with_context(|| cannot_write(&path))?;
                }
                Ok(Output::File(f, path))
            }
            Self::File {
                path,
                existing: None,
            } => {
                let f = File::create(&path).with_context(|| cannot_write(&path))?;
                Ok(Output::File(f, path))
            }
        }
    }
}

/// Opens a FIFO for writing without waiting for a reader (ENXIO when there is none), then
/// makes its writes blocking again: a slow reader slows the recorder, it does not lose lines.
fn open_fifo_now(path: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(f)
}

/// Whether `path` may be written (as the effective user), without opening it.
fn access_write(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a NUL-terminated path and flag constants.
    if unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether files can be created in `dir` (as the effective user), without creating one.
fn writable_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a NUL-terminated path and flag constants.
    let r = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if !std::fs::metadata(dir)?.is_dir() {
        return Err(io::Error::from(io::ErrorKind::NotADirectory));
    }
    Ok(())
}

pub struct JsonlWriter {
    out: Output,
    buf: BytesMut,
    pub events: u64,
    /// The reader of the pipe went away (`record | head`): nothing more is written.
    closed: bool,
}

impl JsonlWriter {
    pub fn new(out: Output) -> Self {
        Self {
            out,
            buf: BytesMut::with_capacity(2 * FLUSH_BYTES),
            events: 0,
            closed: false,
        }
    }

    pub fn header(&mut self, header: &Header) -> Result<()> {
        self.line(header)
    }

    pub fn event(&mut self, event: &Event) -> Result<()> {
        self.events += 1;
        self.line(event)
    }

    fn line<T: serde::Serialize>(&mut self, value: &T) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let mut w = (&mut self.buf).writer();
        serde_json::to_writer(&mut w, value)?;
        self.buf.put_u8(b'\n');
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes out whole lines only: the file is valid JSON Lines after every flush.
    pub fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let res = match &mut self.out {
            Output::Stdout(s) => s.write_all(&self.buf).and_then(|_| s.flush()),
            Output::File(f, _) => f.write_all(&self.buf),
        };
        self.buf.clear();
        match res {
            // Not an error: the reader has what it wanted. The caller stops (see `closed`).
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            res => res.context("writing the recording"),
        }
    }

    /// Whether the output's reader has gone (a closed pipe): what follows is discarded.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Flushes and syncs; call before exit.
    pub fn finish(&mut self) -> Result<()> {
        self.flush()?;
        // Only a regular file can be synced (`-o /dev/null` is a character device).
        if let Output::File(f, _) = &self.out
            && f.metadata().is_ok_and(|m| m.is_file())
        {
            f.sync_all().context("syncing the recording")?;
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        self.out.describe()
    }
}

pub fn header(command: Option<Vec<String>>, started_ts: u64) -> Header {
    let uts = rustix_uname();
    Header {
        kind: "header".into(),
        schema: SCHEMA_VERSION,
        tool: format!("reaper-trace {}", env!("CARGO_PKG_VERSION")),
        kernel: uts.1,
        host: uts.0,
        boot_time_ns: crate::clock::boot_time_unix_ns(),
        started_ts,
        command,
    }
}

/// (hostname, kernel release)
fn rustix_uname() -> (String, String) {
    // SAFETY: uname fills the struct we own; fields are NUL-terminated.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return (String::new(), String::new());
        }
        let s = |f: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(f.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        (s(&u.nodename), s(&u.release))
    }
}

/// The longest line a recording may hold: a longer one is refused, so a file that is not a
/// recording (`/dev/zero`, a binary) is never read into memory whole. Events are at most a few
/// KiB (names, file names and arguments are bounded by the kernel programs); the longest
/// legitimate line is the header of `record -- CMD`, which holds the command's arguments (the
/// kernel takes at most 6 MiB of them, JSON-escaped they stay well within this).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// A serde error message is cut to this many characters in an error line (it may quote the
/// input: an unknown `type` a megabyte long is not repeated whole).
const MAX_DETAIL_CHARS: usize = 160;

/// A recording read back.
#[derive(Debug)]
pub struct Recording {
    pub header: Header,
    pub events: Vec<Event>,
    /// The number of the last line when it was cut (it does not end with a newline and is
    /// not a whole event: the disk filled up, or the recorder was killed mid-write). The
    /// events before it are all there.
    pub cut_line: Option<usize>,
}

/// Reads a whole recording. A malformed line is an error naming the file and line; a last
/// line cut short (no newline, not a whole event) is left out and reported in
/// [`Recording::cut_line`].
pub fn read_recording(path: &Path) -> Result<Recording> {
    let f = File::open(path).with_context(|| {
        format!(
            "cannot open recording {}: check the path (a file written by `reaper-trace record`)",
            path.display()
        )
    })?;
    parse_recording(io::BufReader::new(f), &path.display().to_string())
}

/// serde_json's message without its position (a recording line is one JSON line: the
/// column is given apart), cut to [`MAX_DETAIL_CHARS`].
fn json_error_detail(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    let mut out: String = msg.chars().take(MAX_DETAIL_CHARS).collect();
    if out.len() < msg.len() {
        out.push('…');
    }
    if e.column() > 0 {
        out.push_str(&format!(" (column {})", e.column()));
    }
    out
}

/// The first line: a header of a schema this build understands.
fn parse_header(line: &[u8], whole: bool, name: &str) -> Result<Header> {
    match serde_json::from_slice::<Header>(line) {
        Ok(h) if h.kind == "header" => {
            if h.schema > SCHEMA_VERSION {
                bail!(
                    "{name}: schema version {} is newer than this reaper-trace understands ({SCHEMA_VERSION}): upgrade reaper-trace",
                    h.schema
                );
            }
            Ok(h)
        }
        _ if !whole => bail!(
            "{name}:1: the header line is cut: the recording ended before its first event, nothing to replay"
        ),
        _ => bail!(
            "{name}:1: not a reaper-trace recording header: replay a file written by `reaper-trace record`"
        ),
    }
}

pub fn parse_recording(mut reader: impl BufRead, name: &str) -> Result<Recording> {
    let mut buf = Vec::new();
    let mut n = 0usize;
    let mut header: Option<Header> = None;
    let mut events = Vec::new();
    let mut cut_line = None;
    loop {
        buf.clear();
        let read = Read::take(&mut reader, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("{name}:{}: cannot read the recording", n + 1))?;
        if read == 0 {
            break;
        }
        n += 1;
        // Without a newline the line is the file's last (or longer than the cap).
        let whole = buf.last() == Some(&b'\n');
        if !whole && buf.len() > MAX_LINE_BYTES {
            bail!(
                "{name}:{n}: line longer than {} MiB: not a reaper-trace recording (its lines are JSON objects of at most a few KiB)",
                MAX_LINE_BYTES >> 20
            );
        }
        let line = buf.trim_ascii();
        if header.is_none() {
            header = Some(parse_header(line, whole, name)?);
            continue;
        }
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Event>(line) {
            Ok(ev) => events.push(ev),
            // The last line, cut short: what came before is whole.
            Err(_) if !whole => {
                cut_line = Some(n);
                break;
            }
            Err(e) => bail!(
                "{name}:{n}: malformed event: {}: repair or delete that line to replay the rest",
                json_error_detail(&e)
            ),
        }
    }
    let Some(header) = header else {
        bail!(
            "{name}: empty file, not a reaper-trace recording: replay a file written by `reaper-trace record`"
        );
    };
    Ok(Recording {
        header,
        events,
        cut_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Proc, ReapHow};

    fn proc_(pid: u32) -> Proc {
        Proc::fake(pid, "x")
    }

    #[test]
    fn write_then_read_back() {
        let path = std::env::temp_dir().join(format!("rt-jsonl-{}.jsonl", std::process::id()));
        let mut w = JsonlWriter::new(Output::open(Some(&path)).unwrap());
        w.header(&header(Some(vec!["true".into()]), 5)).unwrap();
        let ev = Event::Reap {
            ts: 9,
            task: proc_(3),
            reaper: Some(proc_(1)),
            how: ReapHow::Wait4,
            zombie_ns: Some(100),
        };
        w.event(&ev).unwrap();
        w.finish().unwrap();
        let rec = read_recording(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(rec.header.schema, SCHEMA_VERSION);
        assert_eq!(
            rec.header.command.as_deref(),
            Some(&["true".to_string()][..])
        );
        assert_eq!(rec.events, vec![ev]);
    }

    fn header_line() -> String {
        serde_json::to_string(&header(None, 0)).unwrap()
    }

    const LOST: &str = r#"{"type":"lost","ts":1,"what":"fork","count":2}"#;

    fn parse_err(text: &[u8]) -> String {
        format!("{:#}", parse_recording(text, "t.jsonl").unwrap_err())
    }

    #[test]
    fn malformed_lines_are_named() {
        let good = header_line();
        // A malformed line in the middle is an error naming it, with the column.
        let msg =
            parse_err(format!("{good}\n{LOST}\n{{\"type\":\"reap\",\"ts\":\n{LOST}\n").as_bytes());
        assert!(msg.starts_with("t.jsonl:3: malformed event: "), "{msg}");
        assert!(
            msg.contains("(column ") && msg.contains("delete that line"),
            "{msg}"
        );
        assert!(!msg.contains("at line 1"), "{msg}");
        let msg = parse_err(b"not json\n");
        assert!(
            msg.starts_with("t.jsonl:1: not a reaper-trace recording header"),
            "{msg}"
        );
        assert!(parse_err(b"").contains("empty file"));
        // A whole last line without its newline is a whole event.
        let rec = parse_recording(format!("{good}\n{LOST}").as_bytes(), "t.jsonl").unwrap();
        assert_eq!((rec.events.len(), rec.cut_line), (1, None));
    }

    #[test]
    fn a_cut_last_line_leaves_the_rest_whole() {
        let good = header_line();
        // Cut anywhere in the last line (as a full disk or SIGKILL leaves it).
        let last = r#"{"type":"reap","ts":9,"task":{"pid":3}}"#;
        for cut in 1..last.len() {
            let text = format!("{good}\n{LOST}\n{LOST}\n{}", &last[..cut]);
            let rec = parse_recording(text.as_bytes(), "t.jsonl").unwrap();
            assert_eq!(rec.events.len(), 2);
            assert_eq!(rec.cut_line, Some(4));
        }
        // A cut header: nothing to replay, said so.
        let msg = parse_err(&good.as_bytes()[..20]);
        assert!(
            msg.starts_with("t.jsonl:1: the header line is cut"),
            "{msg}"
        );
    }

    #[test]
    fn a_line_longer_than_the_cap_is_refused_without_reading_on() {
        // An endless file without a newline (`/dev/zero`): refused after the cap, by line.
        let zeros = std::io::BufReader::new(std::io::repeat(0));
        let msg = format!("{:#}", parse_recording(zeros, "/dev/zero").unwrap_err());
        assert!(
            msg.starts_with("/dev/zero:1: line longer than 16 MiB"),
            "{msg}"
        );
        let endless_event = Read::chain(
            std::io::Cursor::new(format!("{}\n{LOST}\n", header_line())),
            std::io::repeat(b'x'),
        );
        let msg = format!(
            "{:#}",
            parse_recording(std::io::BufReader::new(endless_event), "t").unwrap_err()
        );
        assert!(msg.starts_with("t:3: line longer than 16 MiB"), "{msg}");
    }

    #[test]
    fn an_unknown_type_is_quoted_short() {
        let long = "y".repeat(100_000);
        let text = format!(
            "{}\n{{\"type\":\"{long}\",\"ts\":5}}\n{LOST}\n",
            header_line()
        );
        let msg = parse_err(text.as_bytes());
        assert!(
            msg.starts_with("t.jsonl:2: malformed event: unknown variant"),
            "{msg}"
        );
        assert!(msg.len() < 400, "{} bytes", msg.len());
    }

    #[test]
    fn a_destination_is_left_alone_until_opened() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("rt-dest-{}.jsonl", std::process::id()));
        std::fs::write(&path, "old recording\n").unwrap();
        let dest = Destination::check(Some(&path)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old recording\n");
        // Dropped (the start failed): untouched.
        drop(dest);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old recording\n");
        let mut w = JsonlWriter::new(Destination::check(Some(&path)).unwrap().open().unwrap());
        w.header(&header(None, 1)).unwrap();
        w.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("{\"type\":\"header\"") && text.lines().count() == 1,
            "{text}"
        );
        std::fs::remove_file(&path).unwrap();
        // A new file is not created before `open`.
        let dest = Destination::check(Some(&path)).unwrap();
        assert!(!path.exists());
        dest.open().unwrap();
        assert!(path.exists());
        std::fs::remove_file(&path).unwrap();
        // Devices are written as they are.
        Destination::check(Some(Path::new("/dev/null")))
            .unwrap()
            .open()
            .unwrap();
    }

    #[test]
    fn unwritable_output_fails_up_front() {
        let err = Output::open(Some(Path::new("/nonexistent-dir/x.jsonl")))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("cannot write /nonexistent-dir/x.jsonl"));
        for bad in ["/nonexistent-dir/x.jsonl", "/proc/version/x.jsonl", "/"] {
            let err = Destination::check(Some(Path::new(bad))).err().expect(bad);
            assert!(
                format!("{err:#}").contains(&format!("cannot write {bad}")),
                "{err:#}"
            );
        }
    }
}
