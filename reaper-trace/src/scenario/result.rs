//! What judging one scenario came to: the result `validate` reports for it (its status and
//! reason, the table's cells, the adoptions and zombies checked), built by the [`Judge`] as the
//! scenario's check runs.
//!
//! [`Judge`]: super::judge::Judge

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::ReaperKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Fail,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skipped => "SKIPPED",
        }
    }
}

/// A reaper: expected, observed or predicted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reaper {
    /// Process id (global).
    pub pid: u32,
    /// Thread id (global): the thread that adopts, as `find_new_reaper` returns it.
    pub tid: u32,
    /// Its name, for an observed reaper (untrusted text, escaped in the table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ReaperKind>,
}

/// One orphan's adoption, as checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adoption {
    pub orphan: u32,
    pub father: u32,
    /// `None`: no `reparent` event was seen, or the kernel released the orphan before its
    /// new parent could be read.
    pub observed: Option<Reaper>,
    pub predicted: Option<Reaper>,
    /// The event's own verdict (`match`, `mismatch`, `unknown`, `unobserved`), or `missing`.
    pub verdict: String,
    pub ok: bool,
}

/// Zombies of one scenario: how many were left, who reaped them and how fast.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Zombies {
    /// Orphans the scenario made.
    pub orphans: u32,
    /// Zombies the scenario counted in `/proc` under PID 1 once the orphans had exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_in_proc: Option<u32>,
    /// Of the orphans, how many their reaper reaped with a `wait` call.
    pub reaped_by_wait: u32,
    /// Of the orphans, how many their reaper released without a wait (`auto`): it ignores
    /// SIGCHLD (or set SA_NOCLDWAIT), which reaps as surely as waiting.
    pub reaped_auto: u32,
    /// Of the orphans, how many another process reaped.
    pub reaped_by_other: u32,
    /// Of the orphans, how many were only released when their pid namespace was torn down
    /// (reap `namespace`; `free` or `vanished` when seen only later), or never seen reaped.
    pub not_reaped: u32,
    /// Longest time an orphan spent as a zombie, in milliseconds (of those with a known
    /// zombie time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_zombie_ms: Option<f64>,
}

/// The outcome of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub description: String,
    pub status: Status,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why it was skipped, for programs to match on (`reason` says it in words).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip: Option<SkipReason>,
    /// What kind each failure in `reason` is, in order, for programs to match on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// The table's cells.
    pub expected_text: String,
    pub observed_text: String,
    pub predicted_text: String,
    pub expected: Option<Reaper>,
    /// The first orphan's observed reaper (all of them are in `adoptions`).
    pub observed: Option<Reaper>,
    pub predicted: Option<Reaper>,
    pub adoptions: Vec<Adoption>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zombies: Option<Zombies>,
    pub notes: Vec<String>,
    /// What the scenario reported: its typed pids (global pids, by role) and what the
    /// kernel said while it ran (what waits returned, what `/proc` showed), as each scenario
    /// defines them.
    pub pids: serde_json::Value,
    /// Every process the scenario created, from the fork events.
    pub processes: Vec<u32>,
    /// Processes of the scenario still there after the clean-up (always empty unless the
    /// clean-up itself failed).
    pub leftover: Vec<u32>,
    /// Processes the validator had to kill (after a timeout, or left behind).
    pub killed: Vec<u32>,
    pub duration_ms: u64,
}

impl ScenarioResult {
    /// A result with nothing in it yet.
    pub fn new(scenario: &str, description: &str) -> Self {
        Self {
            scenario: scenario.to_string(),
            description: description.to_string(),
            status: Status::Fail,
            reason: None,
            skip: None,
            failures: Vec::new(),
            expected_text: "-".into(),
            observed_text: "-".into(),
            predicted_text: "-".into(),
            expected: None,
            observed: None,
            predicted: None,
            adoptions: Vec::new(),
            zombies: None,
            notes: Vec::new(),
            pids: serde_json::Value::Object(Default::default()),
            processes: Vec::new(),
            leftover: Vec::new(),
            killed: Vec::new(),
            duration_ms: 0,
        }
    }

    pub fn skipped(scenario: &str, description: &str, skip: SkipReason) -> Self {
        Self {
            status: Status::Skipped,
            reason: Some(skip.to_string()),
            skip: Some(skip),
            ..Self::new(scenario, description)
        }
    }

    /// Marks it failed, with a failure of kind `kind`; the first reason given is kept first.
    pub fn fail(&mut self, kind: Failure, reason: impl Into<String>) {
        let reason = reason.into();
        self.status = Status::Fail;
        self.failures.push(kind);
        self.reason = Some(match self.reason.take() {
            Some(r) => format!("{r}; {reason}"),
            None => reason,
        });
    }
}

/// Why a scenario was skipped: it could not exercise what it is about on this machine. Its
/// text (`Display`) is the result's `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkipReason {
    /// A program the scenario runs as PID 1 is not installed.
    MissingProgram { program: String },
    /// No FUSE (`/dev/fuse` and the fuse file system), which holds a process inside its exit.
    NoFuse,
    /// pid-reuse: no pid came back within its time.
    NoPidReused { ms: u64, forks: usize, threads: u32 },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::MissingProgram { program } => write!(f, "{program} is not installed"),
            SkipReason::NoFuse => f.write_str("needs FUSE (/dev/fuse and the fuse file system)"),
            SkipReason::NoPidReused { ms, forks, threads } => write!(
                f,
                "no pid was reused within {ms} ms ({forks} forks, {threads} threads)"
            ),
        }
    }
}

/// What kind of failure: one per failure in the result's `reason`, whose text says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// The scenario's check found the recording at odds with what the kernel did: a wrong,
    /// missing or extra event.
    Mismatch,
    /// The kernel did not do what the scenario needs (its waits, `/proc`): the scenario did
    /// not set up what it is about.
    Setup,
    /// Kernel records were lost while it ran: the recording cannot be checked.
    RecordsLost { count: u64 },
    /// The scenario's report does not parse into its pids type.
    BadReport,
    /// The scenario's process could not be started.
    NotStarted,
    /// The scenario's process failed, or ended without its report.
    Crashed,
    /// It ran past `--timeout` and was killed.
    Timeout,
    /// Ctrl-C or SIGTERM stopped the run.
    Interrupted,
    /// Some of its processes were still running after it ended (killed).
    LeftRunning,
    /// Some of its processes survived the clean-up.
    NotCleanedUp,
}

fn kind_str(kind: Option<ReaperKind>) -> &'static str {
    kind.map_or("?", ReaperKind::as_str)
}

/// `PID [COMM] KIND`, or `PID/TID ...` when the adopting thread is not the main one. The
/// text is raw: the table escapes it (`clean`), JSON escapes it by itself.
pub fn describe(r: &Reaper) -> String {
    let id = if crate::identity::is_leader_id(r.tid, r.pid) || r.tid == 0 {
        r.pid.to_string()
    } else {
        format!("{}/{}", r.pid, r.tid)
    };
    match &r.comm {
        Some(comm) => format!("{id} {comm} {}", kind_str(r.kind)),
        None => format!("{id} {}", kind_str(r.kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::test_util::result_reaper as reaper;

    #[test]
    fn describes_reapers() {
        assert_eq!(describe(&reaper(42, None, ReaperKind::Init)), "42 init");
        assert_eq!(
            describe(&reaper(42, Some("tini"), ReaperKind::Init)),
            "42 tini init"
        );
        let thread = Reaper {
            pid: 10,
            tid: 12,
            comm: Some("x".into()),
            kind: Some(ReaperKind::Thread),
        };
        assert_eq!(describe(&thread), "10/12 x thread");
    }

    #[test]
    fn reasons_are_typed_beside_their_text() {
        let skip = SkipReason::MissingProgram {
            program: "tini".into(),
        };
        let r = ScenarioResult::skipped("pid1-tini", "d", skip.clone());
        assert_eq!(r.reason.as_deref(), Some("tini is not installed"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["skip"],
            serde_json::json!({"kind": "missing_program", "program": "tini"})
        );
        assert!(v.get("failures").is_none());
        assert_eq!(
            serde_json::from_value::<SkipReason>(v["skip"].clone()).unwrap(),
            skip
        );
        assert_eq!(
            SkipReason::NoFuse.to_string(),
            "needs FUSE (/dev/fuse and the fuse file system)"
        );

        let mut r = ScenarioResult::new("wait-race", "d");
        r.fail(Failure::RecordsLost { count: 2 }, "2 kernel records lost");
        r.fail(Failure::Mismatch, "1 of 1000 waited pids misrecorded");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["failures"],
            serde_json::json!([{"kind": "records_lost", "count": 2}, {"kind": "mismatch"}])
        );
        assert!(v.get("skip").is_none());
        assert_eq!(
            r.reason.as_deref(),
            Some("2 kernel records lost; 1 of 1000 waited pids misrecorded")
        );
    }
}
