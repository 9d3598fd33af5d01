//! What a scenario's workload works with: its [`Ctx`], and the notes its processes send
//! the main process (pids, and what the kernel said) through a pipe that survives forks and
//! the exec of a scenario's later part.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::sys::{global_tid, pipe, stat_self};

/// Set when `reaper-trace scenario NAME` runs the part of NAME that comes after an exec: the
/// words the exec'ing process passed on.
pub(super) const STAGE_ENV: &str = "REAPER_TRACE_STAGE";
/// Where a process exec'd as part of a scenario finds the notes pipe.
pub(super) const NOTES_FD_ENV: &str = "REAPER_TRACE_NOTES_FD";

/// What a scenario's workload is given.
pub struct Ctx {
    /// Where its processes report pids and facts.
    pub notes: Notes,
    /// `--seconds`, for the scenarios that wait.
    pub seconds: f64,
    /// `--budget`: how long a scenario that tries until something happens may try (an
    /// emulated guest needs much longer than hardware).
    pub budget: std::time::Duration,
    /// In the part that runs after an exec: what the exec'ing process passed on.
    pub stage: Vec<String>,
}

impl Ctx {
    /// The `i`th word the exec'ing process passed on, as a number.
    pub(super) fn stage_arg<T: std::str::FromStr>(&self, i: usize) -> Result<T> {
        self.stage
            .get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("missing stage argument {i} in {:?}", self.stage))
    }
}

/// A pipe that any process of a scenario writes `name=JSON` lines to, each followed by the
/// writer's identity (thread id and start time); the scenario's main process reads them all
/// at the end.
pub struct Notes {
    read: Option<OwnedFd>,
    write: AtomicI32,
    /// Filled by `collect`: the writers' start times by thread id.
    writers: std::sync::Mutex<BTreeMap<u32, u64>>,
}

impl Notes {
    pub(super) fn new() -> Result<Self> {
        let (read, write) = pipe()?;
        Ok(Self {
            // SAFETY: a fresh descriptor we own.
            read: Some(unsafe { OwnedFd::from_raw_fd(read) }),
            write: AtomicI32::new(write),
            writers: Default::default(),
        })
    }

    pub(super) fn inherited(fd: RawFd) -> Self {
        Self {
            read: None,
            write: AtomicI32::new(fd),
            writers: Default::default(),
        }
    }

    /// The start time of every task that wrote a note, by thread id (once collected).
    pub fn writers(&self) -> BTreeMap<u32, u64> {
        self.writers.lock().map(|w| w.clone()).unwrap_or_default()
    }

    pub(super) fn fd(&self) -> RawFd {
        self.write.load(Ordering::Relaxed)
    }

    /// Records a value. One short write is atomic on a pipe, whichever process makes it.
    pub fn note(&self, name: &str, value: impl Serialize) {
        let Ok(v) = serde_json::to_string(&value) else {
            return;
        };
        let line = format!("{name}={v}\t{} {}\n", global_tid(), stat_self().start);
        // SAFETY: writing our buffer to our pipe.
        unsafe { libc::write(self.fd(), line.as_ptr().cast(), line.len()) };
    }

    /// Closes this process's write end and reads every note once all writers are gone.
    pub fn collect(&self) -> Result<Noted> {
        let fd = self.write.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: closing our own descriptor.
            unsafe { libc::close(fd) };
        }
        let Some(read) = &self.read else {
            bail!("notes can only be collected by the scenario's main process");
        };
        let mut text = String::new();
        std::fs::File::from(read.try_clone()?).read_to_string(&mut text)?;
        let mut map: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        let mut writers = BTreeMap::new();
        for l in text.lines() {
            let (note, writer) = l.split_once('\t').unwrap_or((l, ""));
            if let Some((k, v)) = note.split_once('=')
                && let Ok(v) = serde_json::from_str(v)
            {
                map.entry(k.to_string()).or_default().push(v);
            }
            if let Some((tid, start)) = writer.split_once(' ')
                && let (Ok(tid), Ok(start)) = (tid.parse::<u32>(), start.parse::<u64>())
                && tid != 0
                && start != 0
            {
                writers.insert(tid, start);
            }
        }
        if let Ok(mut w) = self.writers.lock() {
            w.extend(writers);
        }
        Ok(Noted(map))
    }
}

/// The notes of a scenario's processes, by name.
pub struct Noted(BTreeMap<String, Vec<serde_json::Value>>);

impl Noted {
    /// The value noted as `name` (the last one, if several).
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        let v = self
            .0
            .get(name)
            .and_then(|v| v.last())
            .ok_or_else(|| anyhow!("no process of the scenario reported its {name}"))?;
        serde_json::from_value(v.clone()).with_context(|| format!("the note {name}"))
    }

    /// Every value noted as `name`, in the order they were written.
    pub fn all<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>> {
        self.0
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|v| serde_json::from_value(v.clone()).with_context(|| format!("a note {name}")))
            .collect()
    }
}

/// The command that runs scenario `name`'s part after an exec (its `after_exec`), with the
/// notes pipe kept open across the exec and `stage` passed on. Exec it from the process that
/// is to become that part.
pub fn exec_stage(name: &str, notes: &Notes, stage: &[String]) -> Result<std::process::Command> {
    let me = std::env::current_exe()?;
    // SAFETY: clearing FD_CLOEXEC on our own descriptor: the exec'd program writes notes.
    unsafe { libc::fcntl(notes.fd(), libc::F_SETFD, 0) };
    let mut cmd = std::process::Command::new(me);
    cmd.args(["scenario", name])
        .env(NOTES_FD_ENV, notes.fd().to_string())
        .env(STAGE_ENV, stage.join(" "));
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::scenario::sys::{Stat, global_tid, stat_self};

    #[test]
    fn notes_are_typed_on_collection() {
        let notes = Notes::new().unwrap();
        notes.note("orphan", 5u32);
        notes.note("orphan", 6u32);
        notes.note("stat", stat_self());
        let n = notes.collect().unwrap();
        // Each note says who wrote it: this thread, with its start time.
        assert_eq!(
            notes.writers(),
            BTreeMap::from([(global_tid(), stat_self().start)])
        );
        assert_eq!(n.all::<u32>("orphan").unwrap(), [5, 6]);
        assert_eq!(n.get::<u32>("orphan").unwrap(), 6);
        assert!(n.get::<Stat>("stat").unwrap().state != '-');
        assert!(
            n.get::<u32>("father")
                .unwrap_err()
                .to_string()
                .contains("reported its father")
        );
        assert!(n.all::<u32>("nothing").unwrap().is_empty());
    }
}
