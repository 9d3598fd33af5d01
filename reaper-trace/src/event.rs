//! The events users see: what `record` writes as JSON Lines, what `--replay` reads back, what
//! the dashboard and the validator consume. This is the recording's schema
//! (docs/recording-format.md).

use serde::{Deserialize, Serialize};

/// Bumped when a field changes meaning or is removed; adding fields keeps the version.
pub const SCHEMA_VERSION: u32 = 1;

/// First line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always `"header"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub schema: u32,
    pub tool: String,
    pub kernel: String,
    pub host: String,
    /// Wall-clock time of boot, Unix nanoseconds: `boot_time_ns + ts` is an event's wall time.
    pub boot_time_ns: u64,
    /// When recording started, `CLOCK_BOOTTIME` nanoseconds (same clock as `ts`).
    pub started_ts: u64,
    /// The traced command, when `record -- CMD` was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

/// A task as events name it. `pid` is the process (thread group) id, `tid` the thread id, both
/// global; `ns_pid`/`ns_tid` are the same ids as the task's own pid namespace numbers them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Proc {
    pub pid: u32,
    pub tid: u32,
    pub ns_pid: u32,
    pub ns_tid: u32,
    /// Inode number of the pid namespace (`/proc/PID/ns/pid`).
    pub pidns: u32,
    /// `CLOCK_BOOTTIME` nanoseconds at which the task started; with `tid` it identifies the
    /// task across pid reuse (the rule is in [`crate::identity`]).
    pub start: u64,
    pub comm: String,
}

impl Proc {
    /// A process whose ids are all `pid`, in namespace 1, started at `pid`: for tests.
    #[cfg(test)]
    pub(crate) fn fake(pid: u32, comm: &str) -> Self {
        Self {
            pid,
            tid: pid,
            ns_pid: pid,
            ns_tid: pid,
            pidns: 1,
            start: pid as u64,
            comm: comm.into(),
        }
    }
}

/// The parts of a wait status (`task_struct::exit_code`, what `wait4` returns), as glibc's
/// `<bits/waitstatus.h>` takes it apart.
pub(crate) mod wait_status {
    /// The low 7 bits: the signal that killed the task, 0 when it exited.
    pub const SIGNAL: u32 = 0x7f;
    /// Set beside the signal when it dumped core.
    pub const CORE_DUMPED: u32 = 0x80;
    /// The exit code is the second byte.
    pub const CODE_SHIFT: u32 = 8;
    pub const BYTE: u32 = 0xff;
    /// A stopped child's low byte (`WIFSTOPPED`).
    pub const STOPPED: u32 = 0x7f;
    /// A continued child's whole status (`WIFCONTINUED`).
    pub const CONTINUED: u32 = 0xffff;
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code when it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Signal number when a signal killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub core_dumped: bool,
}

impl ExitStatus {
    /// Neither code nor signal: how it ended is not known (a zombie from before tracing).
    pub const UNKNOWN: Self = Self {
        code: None,
        signal: None,
        core_dumped: false,
    };

    /// Decodes a kernel wait status (`task_struct::exit_code`).
    pub fn from_wait_status(status: u32) -> Self {
        let sig = (status & wait_status::SIGNAL) as i32;
        if sig == 0 {
            Self {
                code: Some(((status >> wait_status::CODE_SHIFT) & wait_status::BYTE) as i32),
                signal: None,
                core_dumped: false,
            }
        } else {
            Self {
                code: None,
                signal: Some(sig),
                core_dumped: status & wait_status::CORE_DUMPED != 0,
            }
        }
    }
}

/// Who adopted an orphan, in `find_new_reaper`'s terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ReaperKind {
    /// Another live thread of the dead parent's thread group.
    Thread,
    /// An ancestor that set `PR_SET_CHILD_SUBREAPER`, in the same pid namespace.
    Subreaper,
    /// The pid namespace's init (`child_reaper`).
    Init,
    /// Anything the algorithm does not explain: a finding.
    Unexpected,
}

impl ReaperKind {
    pub const ALL: [ReaperKind; 4] = [Self::Thread, Self::Subreaper, Self::Init, Self::Unexpected];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thread => "thread",
            Self::Subreaper => "subreaper",
            Self::Init => "init",
            Self::Unexpected => "unexpected",
        }
    }
}

/// Whether the kernel's choice matches what `find_new_reaper` predicts from the captured state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Match,
    /// The kernel's choice differs from find_new_reaper's, and nothing it reads changed
    /// between the snapshot and the kernel's choice: a finding.
    Mismatch,
    /// The choice differs from the prediction, but the state find_new_reaper reads changed
    /// between the snapshot at exit and the kernel's choice (threads of one process exiting
    /// together, a subreaper exiting): the prediction was made from a state the kernel never
    /// saw. `reason` says what changed.
    Changed,
    /// No prediction: the parent's exit record was lost or came before tracing started.
    Unknown,
    /// The orphan was released while it was being reparented (a zombie auto-reaped by its new
    /// parent), so its new parent could not be read.
    Unobserved,
}

/// The reaper `find_new_reaper` gives for the captured state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prediction {
    /// Thread id of the predicted reaper.
    pub tid: u32,
    /// Its process id.
    pub pid: u32,
    pub kind: ReaperKind,
}

/// How a zombie was reaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReapHow {
    /// Its parent called `wait4` (or `waitpid`, `wait`).
    Wait4,
    Waitid,
    /// io_uring's `IORING_OP_WAITID` request (Linux 6.7+), at its completion; the reaper is
    /// the task that ran it (the one that submitted it, or an io_uring thread of its process).
    IoUring,
    /// Released by the kernel without a wait: the parent ignores `SIGCHLD` (or uses
    /// `SA_NOCLDWAIT`), or the task was a detached thread group leader.
    Auto,
    /// Reaped inside the kernel as its pid namespace was torn down: the namespace's init died,
    /// and `zap_pid_ns_processes` killed the namespace's other tasks and reaped those left to
    /// the init with no wait the programs see. `ts` is the init's final switch, when the
    /// teardown was complete: the reap came at most that late.
    Namespace,
    /// Seen only when the kernel freed it, an RCU grace period (milliseconds) after the reap:
    /// released on a path with no earlier sign (a ptracer detaching, a usermode helper's
    /// kernel wait, a 32-bit wait syscall, an io_uring wait that posts no completion), or its
    /// wait record was lost.
    Free,
    /// Gone from `/proc` with no record of how: its records were lost.
    Vanished,
}

impl ReapHow {
    pub const ALL: [ReapHow; 7] = [
        Self::Wait4,
        Self::Waitid,
        Self::IoUring,
        Self::Auto,
        Self::Namespace,
        Self::Free,
        Self::Vanished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wait4 => "wait4",
            Self::Waitid => "waitid",
            Self::IoUring => "io_uring",
            Self::Auto => "auto",
            Self::Namespace => "namespace",
            Self::Free => "free",
            Self::Vanished => "vanished",
        }
    }
}

/// One line of a recording after the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A task was created.
    Fork {
        ts: u64,
        /// The child's real parent, who will have to reap it (for a thread: the thread that
        /// created it).
        parent: Proc,
        child: Proc,
        /// The task that called clone, when it is not `parent` (`CLONE_PARENT`: the child's
        /// parent is the caller's parent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller: Option<Proc>,
        /// The child is a thread of `parent`'s process.
        thread: bool,
        /// Recorded late, at the child's first run: the kernel skipped every copy of the fork
        /// program (Linux 7.x). `ts` is still the child's start; `parent` is the child's parent
        /// then, and for a thread its process's main thread (the creating thread is unknown).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        late: bool,
    },
    /// A process replaced its program.
    Exec {
        ts: u64,
        task: Proc,
        filename: String,
        args: Vec<String>,
        /// The command line was longer than what was captured.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        args_truncated: bool,
    },
    /// A task (thread or process) began its exit.
    Exit {
        ts: u64,
        task: Proc,
        /// The task is a thread other than its process's main thread.
        thread: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<Proc>,
        status: ExitStatus,
        /// The last thread of the process exited with this one.
        group_dead: bool,
        /// Nanoseconds since the task started.
        age_ns: u64,
        /// Children that will be adopted (each gets a `reparent` event).
        children: u32,
        /// It had more children than reaper-trace follows.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        children_truncated: bool,
        /// Recorded late, at the task's final switch: the kernel skipped every copy of the exit
        /// program (Linux 7.x). `ts` is that switch; its children had gone to their reaper and
        /// were not read (`children` is 0: their adoptions are counted as lost).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        late: bool,
    },
    /// An orphan was adopted by a new parent.
    Reparent {
        ts: u64,
        orphan: Proc,
        /// The parent that died.
        father: Proc,
        /// The new parent the kernel chose (`null` when it could not be read: see verdict).
        reaper: Option<Proc>,
        /// `null` only when `reaper` is.
        kind: Option<ReaperKind>,
        predicted: Option<Prediction>,
        verdict: Verdict,
        /// With `verdict: changed`: what changed between the snapshot and the kernel's choice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The orphan was already a zombie when it was adopted.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        zombie: bool,
        /// The father's exit was recorded late (its `exit` says `late`), so this hand-off was not
        /// read: `reaper` is the parent the orphan's next record named (the father of its next
        /// adoption, or its parent at its own exit), `ts` the father's late exit record or, if
        /// that came later, just before the record that named the parent, and
        /// `verdict` is `unknown` (nothing was captured to predict from).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        late: bool,
    },
    /// A process finished exiting: it now waits for its parent to reap it.
    Zombie {
        ts: u64,
        task: Proc,
        /// Who has to reap it.
        parent: Proc,
        status: ExitStatus,
        /// It was released at once, without waiting (a `reap` with `how: auto` follows).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        autoreaped: bool,
        /// It was already a zombie when tracing began: `ts` is when tracing began, not when it
        /// became one, and its status is unknown (`{}`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        before_trace: bool,
    },
    /// A zombie was reaped.
    Reap {
        ts: u64,
        task: Proc,
        /// The process that reaped it (for `namespace`, `free` and `vanished`: its last known
        /// parent).
        reaper: Option<Proc>,
        how: ReapHow,
        /// Nanoseconds it spent as a zombie (`null` if it became one before tracing began).
        zombie_ns: Option<u64>,
    },
    /// A process set or cleared `PR_SET_CHILD_SUBREAPER`.
    Subreaper { ts: u64, task: Proc, enabled: bool },
    /// Kernel records that did not fit in the ring buffer, or children not followed.
    Lost {
        ts: u64,
        /// Which record kind was lost (`fork`, `exit`, ...), `children` for adoptions not
        /// followed, or `pending_calls` for wait/prctl calls whose result went unseen.
        what: String,
        count: u64,
    },
    /// The container a pid namespace belongs to, resolved once from its init's cgroup:
    /// written before the first event that names a task of that namespace (the host's
    /// namespace has none).
    Container {
        ts: u64,
        pidns: u32,
        #[serde(flatten)]
        info: crate::container::ContainerInfo,
    },
}

impl Event {
    pub fn ts(&self) -> u64 {
        match self {
            Event::Fork { ts, .. }
            | Event::Exec { ts, .. }
            | Event::Exit { ts, .. }
            | Event::Reparent { ts, .. }
            | Event::Zombie { ts, .. }
            | Event::Reap { ts, .. }
            | Event::Subreaper { ts, .. }
            | Event::Lost { ts, .. }
            | Event::Container { ts, .. } => *ts,
        }
    }

    /// The tasks an event names.
    pub fn procs(&self) -> impl Iterator<Item = &Proc> {
        let (a, b, c): (Option<&Proc>, Option<&Proc>, Option<&Proc>) = match self {
            Event::Fork {
                parent,
                child,
                caller,
                ..
            } => (Some(parent), Some(child), caller.as_ref()),
            Event::Exec { task, .. } | Event::Subreaper { task, .. } => (Some(task), None, None),
            Event::Exit { task, parent, .. } => (Some(task), parent.as_ref(), None),
            Event::Reparent {
                orphan,
                father,
                reaper,
                ..
            } => (Some(orphan), Some(father), reaper.as_ref()),
            Event::Zombie { task, parent, .. } => (Some(task), Some(parent), None),
            Event::Reap { task, reaper, .. } => (Some(task), reaper.as_ref(), None),
            Event::Lost { .. } | Event::Container { .. } => (None, None, None),
        };
        [a, b, c].into_iter().flatten()
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Fork { .. } => "fork",
            Event::Exec { .. } => "exec",
            Event::Exit { .. } => "exit",
            Event::Reparent { .. } => "reparent",
            Event::Zombie { .. } => "zombie",
            Event::Reap { .. } => "reap",
            Event::Subreaper { .. } => "subreaper",
            Event::Lost { .. } => "lost",
            Event::Container { .. } => "container",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decoding() {
        assert_eq!(
            ExitStatus::from_wait_status(3 << 8),
            ExitStatus {
                code: Some(3),
                signal: None,
                core_dumped: false
            }
        );
        assert_eq!(
            ExitStatus::from_wait_status(9),
            ExitStatus {
                code: None,
                signal: Some(9),
                core_dumped: false
            }
        );
        assert_eq!(
            ExitStatus::from_wait_status(11 | 0x80),
            ExitStatus {
                code: None,
                signal: Some(11),
                core_dumped: true
            }
        );
    }

    #[test]
    fn events_round_trip_through_json() {
        let p = Proc {
            pid: 10,
            tid: 11,
            ns_pid: 1,
            ns_tid: 2,
            pidns: 4026531836,
            start: 5,
            comm: "a\u{1b}[2Jb".into(),
        };
        let ev = Event::Reparent {
            ts: 1,
            orphan: p.clone(),
            father: p.clone(),
            reaper: Some(p),
            kind: Some(ReaperKind::Subreaper),
            predicted: Some(Prediction {
                tid: 11,
                pid: 10,
                kind: ReaperKind::Subreaper,
            }),
            verdict: Verdict::Match,
            reason: None,
            zombie: false,
            late: false,
        };
        let line = serde_json::to_string(&ev).unwrap();
        assert!(line.starts_with(r#"{"type":"reparent""#), "{line}");
        // Control characters never reach the file raw.
        assert!(line.contains(r"\u001b[2J"), "{line}");
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back, ev);
    }
}
