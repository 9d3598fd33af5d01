//! Turns ring buffer records into typed kernel records, checking kind and length first.

use std::mem::size_of;

use reaper_trace_common::{
    AdoptionChunkEvent, DeadEvent, EventHeader, ExecEvent, ExitEvent, ForkEvent, FreeEvent,
    ReparentEvent, SnapshotEvent, SubreaperEvent, WaitEvent, kind, lost_slot,
};
use thiserror::Error;

/// One record as the kernel wrote it, decoded.
#[allow(
    clippy::large_enum_variant,
    reason = "the chunk of adoptions (a kilobyte) makes it large; records are decoded one at a \
              time and applied at once, never stored, so that costs nothing"
)]
#[derive(Debug, Clone, Copy)]
pub enum RawEvent {
    Fork(ForkEvent),
    Exec(ExecEvent),
    Exit(ExitEvent),
    Dead(DeadEvent),
    /// The reaper snapshot taken when a task with children exits.
    ExitSnapshot(SnapshotEvent),
    /// The same, taken again at its final switch.
    SwitchSnapshot(SnapshotEvent),
    Reparent(ReparentEvent),
    /// Adoptions of one exit, 16 children a record (from the programs for kernels without
    /// `bpf_loop`, and from the others for children past the first 256): applied as the
    /// `Reparent` records they stand for (`AdoptionChunkEvent::reparents`).
    AdoptionChunk(AdoptionChunkEvent),
    Wait(WaitEvent),
    Free(FreeEvent),
    Subreaper(SubreaperEvent),
}

impl RawEvent {
    /// The header every record starts with.
    pub fn header(&self) -> &EventHeader {
        match self {
            RawEvent::Fork(e) => &e.hdr,
            RawEvent::Exec(e) => &e.hdr,
            RawEvent::Exit(e) => &e.hdr,
            RawEvent::Dead(e) => &e.hdr,
            RawEvent::ExitSnapshot(e) | RawEvent::SwitchSnapshot(e) => &e.hdr,
            RawEvent::Reparent(e) => &e.hdr,
            RawEvent::AdoptionChunk(e) => &e.hdr,
            RawEvent::Wait(e) => &e.hdr,
            RawEvent::Free(e) => &e.hdr,
            RawEvent::Subreaper(e) => &e.hdr,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than a header")]
    TooShort(usize),
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("record kind {kind} has {got} bytes, expected {want}")]
    BadLength { kind: u32, got: usize, want: usize },
}

fn read<T: Copy>(kind: u32, bytes: &[u8]) -> Result<T, DecodeError> {
    let want = size_of::<T>();
    if bytes.len() < want {
        return Err(DecodeError::BadLength {
            kind,
            got: bytes.len(),
            want,
        });
    }
    // SAFETY: the length was checked; every record type is #[repr(C)] plain data for which
    // any bit pattern is valid; read_unaligned copes with the ring buffer's 8-byte alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A record's header alone (kind and time), without the rest.
pub fn header(bytes: &[u8]) -> Result<EventHeader, DecodeError> {
    if bytes.len() < size_of::<EventHeader>() {
        return Err(DecodeError::TooShort(bytes.len()));
    }
    // SAFETY: the length was checked; the header is plain data, read unaligned.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<EventHeader>()) })
}

pub fn decode(bytes: &[u8]) -> Result<RawEvent, DecodeError> {
    let k = header(bytes)?.kind;
    Ok(match k {
        kind::FORK => RawEvent::Fork(read(k, bytes)?),
        kind::EXEC => RawEvent::Exec(read(k, bytes)?),
        kind::EXIT => RawEvent::Exit(read(k, bytes)?),
        kind::DEAD => RawEvent::Dead(read(k, bytes)?),
        kind::SWITCH_SNAPSHOT => RawEvent::SwitchSnapshot(read(k, bytes)?),
        kind::EXIT_SNAPSHOT => RawEvent::ExitSnapshot(read(k, bytes)?),
        kind::REPARENT => RawEvent::Reparent(read(k, bytes)?),
        kind::ADOPTION_CHUNK => RawEvent::AdoptionChunk(read(k, bytes)?),
        kind::WAIT => RawEvent::Wait(read(k, bytes)?),
        kind::FREE => RawEvent::Free(read(k, bytes)?),
        kind::SUBREAPER => RawEvent::Subreaper(read(k, bytes)?),
        other => return Err(DecodeError::UnknownKind(other)),
    })
}

/// The name a lost-counter slot (a record kind, or a `lost_slot`) has in `lost` events.
pub fn kind_name(k: u32) -> &'static str {
    match k {
        kind::FORK => "fork",
        kind::EXEC => "exec",
        kind::EXIT => "exit",
        kind::DEAD => "zombie",
        // Its name in recordings since before it was called a snapshot.
        kind::SWITCH_SNAPSHOT => "adoptions",
        kind::EXIT_SNAPSHOT => "exit_snapshot",
        kind::REPARENT => "reparent",
        kind::ADOPTION_CHUNK => "adoption_chunk",
        kind::WAIT => "reap",
        kind::FREE => "free",
        kind::SUBREAPER => "subreaper",
        lost_slot::CHILDREN_OVERFLOW => "children",
        lost_slot::CALLS_FULL => "pending_calls",
        lost_slot::SCOPE_FULL => "scope",
        _ => "unknown",
    }
}

/// A NUL-terminated kernel string (comm, filename) as text; invalid UTF-8 is replaced.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The NUL-separated argv captured at exec.
pub fn split_args(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

#[cfg(test)]
pub(crate) fn as_bytes<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: viewing a plain-data value as bytes.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reaper_trace_common::{TaskId, TaskInfo};

    #[test]
    fn decodes_each_kind_by_header() {
        let ev = FreeEvent {
            hdr: EventHeader {
                kind: kind::FREE,
                _pad: 0,
                ts_ns: 42,
            },
            task: TaskId {
                tid: 7,
                tgid: 7,
                start_ns: 9,
            },
            exec_id: 2,
            flags: 0,
        };
        match decode(&as_bytes(&ev)).unwrap() {
            RawEvent::Free(f) => {
                assert_eq!(
                    (f.hdr.ts_ns, f.task.tid, f.task.start_ns, f.exec_id),
                    (42, 7, 9, 2)
                )
            }
            other => panic!("decoded as {other:?}"),
        }
        let sub = SubreaperEvent {
            hdr: EventHeader {
                kind: kind::SUBREAPER,
                _pad: 0,
                ts_ns: 1,
            },
            task: TaskInfo::default(),
            enabled: 1,
            _pad: 0,
        };
        assert!(matches!(decode(&as_bytes(&sub)), Ok(RawEvent::Subreaper(s)) if s.enabled == 1));
    }

    #[test]
    fn rejects_short_unknown_and_truncated_records() {
        assert_eq!(decode(&[1, 0, 0]).unwrap_err(), DecodeError::TooShort(3));
        let mut bytes = vec![0u8; 16];
        bytes[0] = 99;
        assert_eq!(decode(&bytes).unwrap_err(), DecodeError::UnknownKind(99));
        let ev = ExitEvent {
            hdr: EventHeader {
                kind: kind::EXIT,
                _pad: 0,
                ts_ns: 0,
            },
            ..Default::default()
        };
        let bytes = as_bytes(&ev);
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::BadLength {
                kind: kind::EXIT,
                ..
            })
        ));
    }

    #[test]
    fn strings_and_args() {
        assert_eq!(c_string(b"bash\0\0\0"), "bash");
        assert_eq!(c_string(b"no-nul"), "no-nul");
        assert_eq!(split_args(b"sleep\x003\x00"), vec!["sleep", "3"]);
        assert_eq!(split_args(b"cut-sho"), vec!["cut-sho"]);
        assert!(split_args(b"").is_empty());
    }
}
