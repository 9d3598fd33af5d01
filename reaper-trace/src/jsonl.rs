//! JSON Lines recordings: writing them (buffered, flushed on a timer and at the end) and
//! reading them back, with errors that name the line.

use std::fs::File;
use std::io::{self, BufRead, Write};
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
    /// Opens the destination up front, so a path that can't be written fails before anything
    /// is attached. `None` or `-` is standard output.
    pub fn open(path: Option<&Path>) -> Result<Self> {
        match path {
            None => Ok(Self::Stdout(io::stdout())),
            Some(p) if p.as_os_str() == "-" => Ok(Self::Stdout(io::stdout())),
            Some(p) => {
                let f = File::create(p).with_context(|| {
                    format!(
                        "cannot write {}: choose a writable path with -o",
                        p.display()
                    )
                })?;
                Ok(Self::File(f, p.to_path_buf()))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Stdout(_) => "standard output".into(),
            Self::File(_, p) => p.display().to_string(),
        }
    }
}

pub struct JsonlWriter {
    out: Output,
    buf: BytesMut,
    pub events: u64,
}

impl JsonlWriter {
    pub fn new(out: Output) -> Self {
        Self {
            out,
            buf: BytesMut::with_capacity(2 * FLUSH_BYTES),
            events: 0,
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
        res.context("writing the recording")
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

/// A recording read back.
#[derive(Debug)]
pub struct Recording {
    pub header: Header,
    pub events: Vec<Event>,
}

/// Reads a whole recording; a malformed or truncated line is an error naming the line.
pub fn read_recording(path: &Path) -> Result<Recording> {
    let f =
        File::open(path).with_context(|| format!("cannot open recording {}", path.display()))?;
    parse_recording(io::BufReader::new(f), &path.display().to_string())
}

pub fn parse_recording(reader: impl BufRead, name: &str) -> Result<Recording> {
    let mut lines = reader.lines().enumerate();
    let header: Header = match lines.next() {
        Some((_, line)) => {
            let line = line.with_context(|| format!("{name}:1: cannot read"))?;
            serde_json::from_str(&line)
                .with_context(|| format!("{name}:1: not a reaper-trace recording header"))?
        }
        None => bail!("{name}: empty file, not a reaper-trace recording"),
    };
    if header.kind != "header" {
        bail!("{name}:1: not a reaper-trace recording header");
    }
    if header.schema > SCHEMA_VERSION {
        bail!(
            "{name}: schema version {} is newer than this reaper-trace understands ({SCHEMA_VERSION}): upgrade reaper-trace",
            header.schema
        );
    }
    let mut events = Vec::new();
    for (i, line) in lines {
        let n = i + 1;
        let line = line.with_context(|| format!("{name}:{n}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        let ev: Event =
            serde_json::from_str(&line).with_context(|| format!("{name}:{n}: malformed event"))?;
        events.push(ev);
    }
    Ok(Recording { header, events })
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

    #[test]
    fn malformed_lines_are_named() {
        let good = serde_json::to_string(&header(None, 0)).unwrap();
        let text = format!(
            "{good}\n{{\"type\":\"lost\",\"ts\":1,\"what\":\"fork\",\"count\":2}}\n{{\"type\":\"reap\",\"ts\":"
        );
        let err = parse_recording(text.as_bytes(), "t.jsonl").unwrap_err();
        assert!(
            format!("{err:#}").starts_with("t.jsonl:3: malformed event"),
            "{err:#}"
        );
        let err = parse_recording("not json\n".as_bytes(), "t.jsonl").unwrap_err();
        assert!(format!("{err:#}").starts_with("t.jsonl:1: not a reaper-trace recording header"));
        let err = parse_recording("".as_bytes(), "t.jsonl").unwrap_err();
        assert!(err.to_string().contains("empty file"));
    }

    #[test]
    fn unwritable_output_fails_up_front() {
        let err = Output::open(Some(Path::new("/nonexistent-dir/x.jsonl")))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("cannot write /nonexistent-dir/x.jsonl"));
    }
}
