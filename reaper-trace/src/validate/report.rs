//! What `validate` reports: one result per scenario, as a table or as one JSON document.

use std::fmt::Write as _;

use serde::Serialize;

use crate::escape::escape_control;
use crate::scenario::result::{ScenarioResult, Status};

/// Bumped when a field of the JSON report changes meaning or is removed.
pub const REPORT_SCHEMA: u32 = 1;

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
    use crate::event::ReaperKind;
    use crate::scenario::result::{Failure, SkipReason, describe};
    use crate::scenario::test_util::result_reaper as reaper;

    #[test]
    fn table_rows_are_aligned_and_escaped() {
        let mut a = ScenarioResult::new("orphan-init", "d");
        a.status = Status::Pass;
        a.expected_text = "100 init".into();
        a.observed_text = describe(&reaper(100, Some("bad\u{1b}]0;x\u{7}"), ReaperKind::Init));
        a.predicted_text = "100 init".into();
        let mut b = ScenarioResult::new("pid1-tini", "d");
        b.fail(Failure::Timeout, "timed out after 15 s");
        b.notes.push("killed 3 processes".into());
        let c = ScenarioResult::skipped(
            "pid1-catatonit",
            "d",
            SkipReason::MissingProgram {
                program: "catatonit".into(),
            },
        );
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
            vec![ScenarioResult::skipped("x", "d", SkipReason::NoFuse)],
        );
        assert_eq!(skipped.exit_code(), 0);
    }
}
