//! JSON Lines recordings: writing them (buffered, flushed on a timer and at the end) and
//! reading them back, with errors that name the line.

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
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
    let (host, kernel) = hostname_and_release();
    Header {
        kind: "header".into(),
        schema: SCHEMA_VERSION,
        tool: format!("reaper-trace {}", env!("CARGO_PKG_VERSION")),
        kernel,
        host,
        boot_time_ns: crate::clock::boot_time_unix_ns(),
        started_ts,
        command,
    }
}

/// (hostname, kernel release), from uname(2).
fn hostname_and_release() -> (String, String) {
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

/// A recording read back whole: for small recordings only (a validation run's, tests'). A
/// replay streams it with a [`Reader`] instead, so its memory does not grow with the file.
#[derive(Debug)]
pub struct Recording {
    pub header: Header,
    pub events: Vec<Event>,
    /// The number of the last line when it was cut (it does not end with a newline and is
    /// not a whole event: the disk filled up, or the recorder was killed mid-write). The
    /// events before it are all there.
    pub cut_line: Option<usize>,
}

/// Opens a recording for reading and reads its header.
pub fn open(path: &Path) -> Result<Reader<io::BufReader<File>>> {
    let f = File::open(path).with_context(|| {
        format!(
            "cannot open recording {}: check the path (a file written by `reaper-trace record`)",
            path.display()
        )
    })?;
    Reader::new(io::BufReader::new(f), path.display().to_string())
}

/// Reads a whole recording into memory (see [`Recording`]). A malformed line is an error
/// naming the file and line; a last line cut short (no newline, not a whole event) is left
/// out and reported in [`Recording::cut_line`].
pub fn read_recording(path: &Path) -> Result<Recording> {
    collect(open(path)?)
}

/// [`read_recording`] from any reader; `name` names it in errors.
pub fn parse_recording(reader: impl BufRead, name: &str) -> Result<Recording> {
    collect(Reader::new(reader, name)?)
}

fn collect<R: BufRead>(mut reader: Reader<R>) -> Result<Recording> {
    let mut events = Vec::new();
    while let Some(ev) = reader.next_event()? {
        events.push(ev);
    }
    Ok(Recording {
        cut_line: reader.cut_line,
        header: reader.header,
        events,
    })
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

/// A recording read one line at a time, from a file or any other byte stream (a daemon's
/// socket sends the same lines): the header when created, then [`Reader::next_event`] until
/// `None`. The one parser of recordings; memory holds one line (at most [`MAX_LINE_BYTES`]).
///
/// Errors name the source and line. A last line without its newline that is not a whole
/// event was cut (disk full, recorder killed): it ends the recording, and
/// [`Reader::cut_line`] names it. After an error or the end, `next_event` returns `None`.
pub struct Reader<R> {
    lines: Lines<R>,
    header: Header,
    cut_line: Option<usize>,
    /// The end, a cut line or an error was met: nothing more is read.
    ended: bool,
}

/// Lines of at most [`MAX_LINE_BYTES`], counted.
struct Lines<R> {
    inner: R,
    name: String,
    buf: Vec<u8>,
    /// The number of the last line read.
    line: usize,
}

impl<R: BufRead> Lines<R> {
    /// Reads the next line into `buf`: `None` at the end, else whether it ends with a newline
    /// (without one, it is the last line). A line past the cap is an error, read no further.
    fn next(&mut self) -> Result<Option<bool>> {
        self.buf.clear();
        let read = Read::take(&mut self.inner, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut self.buf)
            .with_context(|| {
                format!("{}:{}: cannot read the recording", self.name, self.line + 1)
            })?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        let whole = self.buf.last() == Some(&b'\n');
        if !whole && self.buf.len() > MAX_LINE_BYTES {
            bail!(
                "{}:{}: line longer than {} MiB: not a reaper-trace recording (its lines are JSON objects of at most a few KiB)",
                self.name,
                self.line,
                MAX_LINE_BYTES >> 20
            );
        }
        // A long line's buffer is not kept past it.
        if self.buf.capacity() > KEPT_LINE_CAPACITY && self.buf.len() <= KEPT_LINE_CAPACITY {
            self.buf.shrink_to(KEPT_LINE_CAPACITY);
        }
        Ok(Some(whole))
    }

    /// The first line, a header.
    fn header(&mut self) -> Result<Header> {
        let Some(whole) = self.next()? else {
            bail!(
                "{}: empty file, not a reaper-trace recording: replay a file written by `reaper-trace record`",
                self.name
            );
        };
        parse_header(self.buf.trim_ascii(), whole, &self.name)
    }
}

impl<R: BufRead> Reader<R> {
    /// Reads the header line; `name` (a path) names the source in errors.
    pub fn new(inner: R, name: impl Into<String>) -> Result<Self> {
        let mut lines = Lines {
            inner,
            name: name.into(),
            buf: Vec::new(),
            line: 0,
        };
        let header = lines.header()?;
        Ok(Self {
            lines,
            header,
            cut_line: None,
            ended: false,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The source as errors name it.
    pub fn name(&self) -> &str {
        &self.lines.name
    }

    /// The number of the last line read (the header is line 1).
    pub fn line(&self) -> usize {
        self.lines.line
    }

    /// The last line's number, once it has been met cut short.
    pub fn cut_line(&self) -> Option<usize> {
        self.cut_line
    }

    /// The length of the last line read, in bytes.
    pub fn line_bytes(&self) -> usize {
        self.lines.buf.len()
    }

    /// The source, to look at its end ([`last_event_ts`]): read through it, lines are lost.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.lines.inner
    }

    /// The next event; `None` at the end (or after a cut last line, or an error).
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        while !self.ended {
            let whole = match self.lines.next() {
                Ok(Some(whole)) => whole,
                Ok(None) => break,
                Err(e) => {
                    self.ended = true;
                    return Err(e);
                }
            };
            let line = self.lines.buf.trim_ascii();
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Event>(line) {
                Ok(ev) => return Ok(Some(ev)),
                // The last line, cut short: what came before is whole.
                Err(_) if !whole => {
                    self.cut_line = Some(self.lines.line);
                    break;
                }
                Err(e) => {
                    self.ended = true;
                    bail!(
                        "{}:{}: malformed event: {}: repair or delete that line to replay the rest",
                        self.lines.name,
                        self.lines.line,
                        json_error_detail(&e)
                    );
                }
            }
        }
        self.ended = true;
        Ok(None)
    }
}

impl<R: BufRead + Seek> Reader<R> {
    /// Starts again from the first event. The header is read again (the file may have been
    /// replaced since), and must still be one.
    pub fn rewind(&mut self) -> Result<()> {
        self.ended = true;
        self.lines
            .inner
            .seek(SeekFrom::Start(0))
            .with_context(|| format!("{}: cannot read the recording again", self.lines.name))?;
        self.lines.line = 0;
        self.header = self.lines.header()?;
        self.cut_line = None;
        self.ended = false;
        Ok(())
    }
}

/// The line buffer is shrunk back to this after a longer line.
const KEPT_LINE_CAPACITY: usize = 64 << 10;

/// How far back from the end [`last_event_ts`] looks for a whole event line.
const TAIL_BYTES: u64 = 1 << 20;

/// The time of the recording's last whole event, read from its end (its last [`TAIL_BYTES`])
/// without reading the rest: a cut last line is passed over, as is a malformed one (it is
/// reported when reached). `None` when no event line is found there, or the source cannot
/// seek. The position is restored.
pub fn last_event_ts<R: Read + Seek>(r: &mut R) -> io::Result<Option<u64>> {
    let here = r.stream_position()?;
    let len = r.seek(SeekFrom::End(0))?;
    let from = len.saturating_sub(TAIL_BYTES);
    r.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::with_capacity((len - from) as usize);
    let read = Read::take(&mut *r, TAIL_BYTES).read_to_end(&mut tail);
    r.seek(SeekFrom::Start(here))?;
    read?;
    let mut lines: Vec<&[u8]> = tail.split(|&b| b == b'\n').collect();
    if from > 0 {
        // The first piece may be the end of a line that started before the tail.
        lines.remove(0);
    }
    Ok(lines
        .iter()
        .rev()
        .map(|l| l.trim_ascii())
        .filter(|l| !l.is_empty())
        .find_map(|l| serde_json::from_slice::<Event>(l).ok())
        .map(|ev| ev.ts()))
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
    fn the_reader_streams_and_rewinds() {
        let good = header_line();
        let reap = r#"{"type":"lost","ts":9,"what":"exit","count":1}"#;
        let text = format!("{good}\n{LOST}\n\n{reap}\n{}", &LOST[..10]);
        let mut r = Reader::new(std::io::Cursor::new(text.into_bytes()), "t.jsonl").unwrap();
        assert_eq!(r.header().schema, SCHEMA_VERSION);
        for round in 0..2 {
            assert_eq!(r.next_event().unwrap().map(|e| e.ts()), Some(1));
            assert_eq!(r.line(), 2);
            // An empty line is passed over.
            assert_eq!(r.next_event().unwrap().map(|e| e.ts()), Some(9));
            assert_eq!((r.line(), r.cut_line()), (4, None));
            assert!(r.next_event().unwrap().is_none());
            assert_eq!(r.cut_line(), Some(5));
            assert!(r.next_event().unwrap().is_none(), "round {round}");
            r.rewind().unwrap();
            assert_eq!((r.line(), r.cut_line()), (1, None));
        }
        // After an error, nothing more.
        let text = format!("{good}\n{{\"type\":\n{LOST}\n");
        let mut r = Reader::new(text.as_bytes(), "t.jsonl").unwrap();
        assert!(r.next_event().is_err());
        assert!(r.next_event().unwrap().is_none());
    }

    #[test]
    fn the_last_event_time_is_read_from_the_tail() {
        let good = header_line();
        let at = |ts: u64| format!(r#"{{"type":"lost","ts":{ts},"what":"fork","count":2}}"#);
        let ts_of = |text: String| {
            let mut c = std::io::Cursor::new(text.into_bytes());
            c.set_position(3);
            let ts = last_event_ts(&mut c).unwrap();
            assert_eq!(c.position(), 3, "the position is restored");
            ts
        };
        assert_eq!(ts_of(format!("{good}\n")), None);
        assert_eq!(ts_of(format!("{good}\n{}\n{}\n", at(5), at(7))), Some(7));
        // Without its newline, a whole last event counts; a cut or malformed one does not.
        assert_eq!(ts_of(format!("{good}\n{}\n{}", at(5), at(7))), Some(7));
        assert_eq!(
            ts_of(format!("{good}\n{}\n{}", at(5), &at(7)[..20])),
            Some(5)
        );
        assert_eq!(ts_of(format!("{good}\n{}\nnot json\n\n", at(5))), Some(5));
        // A file longer than the tail: the partial line the tail starts in is passed over.
        let mut big = format!("{good}\n");
        while big.len() < 2 * TAIL_BYTES as usize {
            big.push_str(&at(5));
            big.push('\n');
        }
        big.push_str(&at(8));
        assert_eq!(ts_of(big), Some(8));
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
