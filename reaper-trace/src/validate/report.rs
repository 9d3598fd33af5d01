//! What `validate` reports: one result per scenario, as a table or as one JSON document.

use std::fmt::Write as _;

use serde::Serialize;

use crate::escape::escape_control;
use crate::event::ReaperKind;

/// Bumped when a field of the JSON report changes meaning or is removed.
pub const REPORT_SCHEMA: u32 = 1;

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
    /// (reap `free` or `vanished`), or never seen reaped.
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

    pub fn skipped(scenario: &str, description: &str, reason: String) -> Self {
        Self {
            status: Status::Skipped,
            reason: Some(reason),
            ..Self::new(scenario, description)
        }
    }

    /// Marks it failed; the first reason given is kept first.
    pub fn fail(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        self.status = Status::Fail;
        self.reason = Some(match self.reason.take() {
            Some(r) => format!("{r}; {reason}"),
            None => reason,
        });
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
    pub kernel: String,
    pub results: Vec<ScenarioResult>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Report {
    pub fn new(kernel: String, results: Vec<ScenarioResult>) -> Self {
        let count = |s| results.iter().filter(|r| r.status == s).count();
        Self {
            schema: REPORT_SCHEMA,
            kernel,
            passed: count(Status::Pass),
            failed: count(Status::Fail),
            skipped: count(Status::Skipped),
            results,
        }
    }

    /// 0 when nothing failed.
    pub fn exit_code(&self) -> i32 {
        if self.failed > 0 { 1 } else { 0 }
    }
}

fn kind_str(kind: Option<ReaperKind>) -> &'static str {
    kind.map_or("?", ReaperKind::as_str)
}

/// `PID [COMM] KIND`, or `PID/TID ...` when the adopting thread is not the main one. The
/// text is raw: the table escapes it (`clean`), JSON escapes it by itself.
pub fn describe(r: &Reaper) -> String {
    let id = if r.tid == r.pid || r.tid == 0 {
        r.pid.to_string()
    } else {
        format!("{}/{}", r.pid, r.tid)
    };
    match &r.comm {
        Some(comm) => format!("{id} {comm} {}", kind_str(r.kind)),
        None => format!("{id} {}", kind_str(r.kind)),
    }
}

const HEADERS: [&str; 6] = [
    "SCENARIO",
    "EXPECTED",
    "OBSERVED",
    "PREDICTED",
    "VERDICT",
    "NOTES",
];

fn row(r: &ScenarioResult) -> [String; 6] {
    let mut notes: Vec<String> = Vec::new();
    if let Some(reason) = &r.reason {
        notes.push(match r.status {
            Status::Fail => format!("FAILED: {reason}"),
            _ => reason.clone(),
        });
    }
    notes.extend(r.notes.iter().cloned());
    [
        r.scenario.clone(),
        r.expected_text.clone(),
        r.observed_text.clone(),
        r.predicted_text.clone(),
        r.status.as_str().to_string(),
        notes.join("; "),
    ]
    .map(|c| escape_control(&c).into_owned())
}

/// The table `validate` prints: one row per scenario, columns padded to the widest cell
/// (the last column is not padded), then a summary line.
pub fn render_table(report: &Report) -> String {
    let rows: Vec<[String; 6]> = report.results.iter().map(row).collect();
    let mut width = HEADERS.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let pad = width[i] - cell.chars().count();
                l.push_str(cell);
                l.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(HEADERS);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
    let n = report.results.len();
    let _ = writeln!(
        out,
        "\n{n} scenario{} on Linux {}: {} passed, {} failed, {} skipped",
        if n == 1 { "" } else { "s" },
        escape_control(&report.kernel),
        report.passed,
        report.failed,
        report.skipped
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaper(pid: u32, comm: Option<&str>, kind: ReaperKind) -> Reaper {
        Reaper {
            pid,
            tid: pid,
            comm: comm.map(str::to_string),
            kind: Some(kind),
        }
    }

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
    fn table_rows_are_aligned_and_escaped() {
        let mut a = ScenarioResult::new("orphan-init", "d");
        a.status = Status::Pass;
        a.expected_text = "100 init".into();
        a.observed_text = describe(&reaper(100, Some("bad\u{1b}]0;x\u{7}"), ReaperKind::Init));
        a.predicted_text = "100 init".into();
        let mut b = ScenarioResult::new("pid1-tini", "d");
        b.fail("timed out after 15 s");
        b.notes.push("killed 3 processes".into());
        let c = ScenarioResult::skipped("pid1-catatonit", "d", "catatonit is not installed".into());
        let report = Report::new("6.18.0".into(), vec![a, b, c]);
        let table = render_table(&report);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("SCENARIO        EXPECTED"), "{table}");
        // Columns line up: VERDICT starts at the same offset on every row.
        let col = lines[0].find("VERDICT").unwrap();
        assert_eq!(&lines[1][col..col + 4], "PASS", "{table}");
        assert_eq!(&lines[2][col..col + 4], "FAIL", "{table}");
        assert_eq!(&lines[3][col..col + 7], "SKIPPED", "{table}");
        assert!(lines[1].contains("bad\\x1b]0;x\\x07 init"), "{table}");
        assert!(
            lines[2].ends_with("FAILED: timed out after 15 s; killed 3 processes"),
            "{table}"
        );
        assert!(lines[3].ends_with("catatonit is not installed"), "{table}");
        assert!(!table.contains('\u{1b}'));
        assert!(table.ends_with("3 scenarios on Linux 6.18.0: 1 passed, 1 failed, 1 skipped\n"));
        assert_eq!(report.exit_code(), 1);
    }

    #[test]
    fn json_report_has_every_field() {
        let mut a = ScenarioResult::new("zombie", "d");
        a.status = Status::Pass;
        let report = Report::new("k".into(), vec![a]);
        let v: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(v["schema"], REPORT_SCHEMA);
        assert_eq!(v["passed"], 1);
        assert_eq!(v["results"][0]["status"], "PASS");
        assert_eq!(v["results"][0]["leftover"], serde_json::json!([]));
        assert_eq!(report.exit_code(), 0);
        let skipped = Report::new(
            "k".into(),
            vec![ScenarioResult::skipped("x", "d", "y".into())],
        );
        assert_eq!(skipped.exit_code(), 0);
    }
}
