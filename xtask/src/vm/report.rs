//! One kernel's result (programs, validate, checks) and the table and failures printed.

use super::*;

/// What one kernel gave.
#[derive(serde::Serialize)]
pub(super) struct KernelResult {
    pub(super) release: String,
    pub(super) seconds: f64,
    /// Program name (as the tracer loads it) -> verified instructions, or an error.
    pub(super) programs: Vec<(String, Result<Option<u64>, String>)>,
    pub(super) loaded: usize,
    pub(super) validate_passed: u64,
    pub(super) validate_total: u64,
    /// Scenarios skipped because the kernel has no FUSE (its modules are not in the archive).
    pub(super) validate_skipped_no_fuse: u64,
    pub(super) validate_failures: Vec<String>,
    /// Scenarios validate ran a second time because kernel records were lost in the first
    /// run, which failed (`scenario: validate's note`). Shown in the table and the details,
    /// so a pass on the second run never hides the loss.
    pub(super) validate_ran_twice: Vec<String>,
    pub(super) checks: Vec<Check>,
}

impl KernelResult {
    pub(super) fn ok(&self, check_only: bool) -> bool {
        !self.programs.is_empty()
            && self.loaded == self.programs.len()
            && (check_only
                || (self.validate_total > 0
                    && self.validate_passed + self.validate_skipped_no_fuse == self.validate_total))
            && self.checks.iter().all(|c| c.ok)
    }
}

pub(super) fn evaluate(
    release: &str,
    console: &Console,
    seconds: f64,
    check_only: bool,
    has_fuse: bool,
) -> KernelResult {
    let mut result = KernelResult {
        release: release.to_string(),
        seconds,
        programs: Vec::new(),
        loaded: 0,
        validate_passed: 0,
        validate_total: 0,
        validate_skipped_no_fuse: 0,
        validate_failures: Vec::new(),
        validate_ran_twice: Vec::new(),
        checks: Vec::new(),
    };
    if let Ok(check) = serde_json::from_str::<Value>(console.section("check").trim()) {
        for p in check
            .get("programs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = p.get("program").and_then(Value::as_str).unwrap_or("?");
            let entry = match p.get("error").and_then(Value::as_str) {
                Some(e) => Err(e.to_string()),
                None => Ok(p.get("verified_insns").and_then(Value::as_u64)),
            };
            result.loaded += entry.is_ok() as usize;
            result.programs.push((name.to_string(), entry));
        }
    } else {
        result.checks.push(check(
            "reaper-trace check",
            Err(format!(
                "no report: {}",
                console.section("check-stderr").trim()
            )),
        ));
    }
    if check_only {
        return result;
    }
    match serde_json::from_str::<Value>(console.section("validate").trim()) {
        Ok(v) => {
            result.validate_passed = v.get("passed").and_then(Value::as_u64).unwrap_or(0);
            let results = v.get("results").and_then(Value::as_array);
            result.validate_total = results.map_or(0, |r| r.len() as u64);
            for r in results.into_iter().flatten() {
                let ran_twice = r
                    .pointer("/notes/0")
                    .and_then(Value::as_str)
                    .filter(|n| n.starts_with("run twice"));
                if let Some(note) = ran_twice {
                    result.validate_ran_twice.push(format!(
                        "{}: {note}",
                        r.get("scenario").and_then(Value::as_str).unwrap_or("?")
                    ));
                }
                let status = r.get("status").and_then(Value::as_str);
                let skip = r.pointer("/skip/kind").and_then(Value::as_str);
                if !has_fuse && status == Some("SKIPPED") && skip == Some("no_fuse") {
                    result.validate_skipped_no_fuse += 1;
                    continue;
                }
                if status != Some("PASS") {
                    result.validate_failures.push(format!(
                        "{} {}: {}",
                        r.get("scenario").and_then(Value::as_str).unwrap_or("?"),
                        r.get("status").and_then(Value::as_str).unwrap_or("?"),
                        r.get("reason").and_then(Value::as_str).unwrap_or("")
                    ));
                }
            }
        }
        Err(_) => result.validate_failures.push(format!(
            "no report: {}",
            console
                .section("validate-stderr")
                .lines()
                .last()
                .unwrap_or("(the VM stopped before validate finished)")
        )),
    }
    result.checks.extend(experiment_checks(console));
    result.checks.extend(sigterm_checks(console));
    result
}

/// Short column names for the table, by hook ("-": the kernel has no such hook).
pub(super) const COLUMNS: [(&str, &str); 10] = [
    ("fork", "sched_process_fork"),
    ("exec", "sched_process_exec"),
    ("exit", "sched_process_exit"),
    ("switch", "sched_switch"),
    ("free", "sched_process_free"),
    ("wait4", "sys_exit_wait4"),
    ("waitid", "sys_exit_waitid"),
    ("prctl", "sys_exit_prctl"),
    ("sysexit", "sys_exit_standby"),
    ("uring", "io_uring_complete"),
];

pub(super) fn table(results: &[KernelResult]) -> String {
    let mut out = format!("{:<22} {:>6} ", "kernel", "loaded");
    for (col, _) in COLUMNS {
        out += &format!("{col:>7} ");
    }
    out += &format!("{:>9} {:>7} {:>5}\n", "validate", "checks", "secs");
    for r in results {
        out += &format!(
            "{:<22} {:>6} ",
            r.release,
            format!("{}/{}", r.loaded, r.programs.len())
        );
        for (_, prefix) in COLUMNS {
            let cell = r
                .programs
                .iter()
                .find(|(name, _)| name.starts_with(prefix))
                .map(|(_, v)| match v {
                    Ok(Some(n)) => n.to_string(),
                    Ok(None) => "ok".into(),
                    Err(_) => "REFUSED".into(),
                })
                .unwrap_or_else(|| "-".into());
            out += &format!("{cell:>7} ");
        }
        let ok = r.checks.iter().filter(|c| c.ok).count();
        let mut notes = Vec::new();
        if r.validate_skipped_no_fuse > 0 {
            notes.push(format!(
                "{} skipped: no FUSE module in the archive",
                r.validate_skipped_no_fuse
            ));
        }
        if !r.validate_ran_twice.is_empty() {
            notes.push(format!(
                "{} ran twice: records lost",
                r.validate_ran_twice.len()
            ));
        }
        out += &format!(
            "{:>9} {:>7} {:>5.0}{}\n",
            format!("{}/{}", r.validate_passed, r.validate_total),
            format!("{ok}/{}", r.checks.len()),
            r.seconds,
            if notes.is_empty() {
                String::new()
            } else {
                format!("  ({})", notes.join("; "))
            }
        );
    }
    out += "(verified instructions per program; \"ok\": loads, but the kernel (before 5.16) does not say how many)\n";
    out
}

pub(super) fn details(r: &KernelResult) -> String {
    let mut out = String::new();
    for (name, v) in &r.programs {
        if let Err(e) = v {
            out += &format!("  {}: program {name}: {e}\n", r.release);
        }
    }
    for f in &r.validate_failures {
        out += &format!("  {}: validate: {f}\n", r.release);
    }
    for c in r.checks.iter().filter(|c| !c.ok) {
        out += &format!("  {}: {}: {}\n", r.release, c.name, c.detail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_that_fails_on_any_kernel_fails_it() {
        let doc = serde_json::json!({
            "passed": 0,
            "results": [{
                "scenario": "wait-race",
                "status": "FAIL",
                "reason": "1 kernel records lost: the recording cannot be checked",
                "failures": [{"kind": "records_lost", "count": 1}],
            }],
        });
        let console = Console::parse(&format!("@@RT validate BEGIN\n{doc}\n@@RT validate END\n"));
        for release in ["7.3.4+deb13-amd64", "5.10.0-46-amd64"] {
            let r = evaluate(release, &console, 1.0, false, true);
            assert_eq!(r.validate_failures.len(), 1, "{release}");
            assert!(!r.ok(false), "{release}");
        }
    }

    #[test]
    fn a_scenario_run_twice_is_shown_though_it_passed() {
        let doc = serde_json::json!({
            "passed": 2,
            "results": [
                {"scenario": "threads-exit", "status": "PASS",
                 "notes": ["run twice: 7 kernel records were lost in the first run (exit 7), which failed (no reparent event for orphan 1698)", "40 orphans"]},
                {"scenario": "wait-race", "status": "PASS", "notes": ["1000 waits"]},
            ],
        });
        let console = Console::parse(&format!("@@RT validate BEGIN\n{doc}\n@@RT validate END\n"));
        let r = evaluate("7.1.13+deb13-amd64", &console, 1.0, false, true);
        assert_eq!(r.validate_ran_twice.len(), 1);
        assert!(
            r.validate_ran_twice[0].starts_with("threads-exit: run twice: 7 kernel records"),
            "{:?}",
            r.validate_ran_twice
        );
        let t = table(std::slice::from_ref(&r));
        assert!(
            t.contains("2/2") && t.contains("(1 ran twice: records lost)"),
            "{t}"
        );
    }

    #[test]
    fn only_a_fuse_skip_is_excused_on_a_kernel_without_fuse() {
        let console = |skip: Value| {
            let doc = serde_json::json!({
                "passed": 0,
                "results": [{
                    "scenario": "exiting-subreaper",
                    "status": "SKIPPED",
                    "reason": "needs FUSE (/dev/fuse and the fuse file system)",
                    "skip": skip,
                }],
            });
            Console::parse(&format!("@@RT validate BEGIN\n{doc}\n@@RT validate END\n"))
        };
        let no_fuse = console(serde_json::json!({"kind": "no_fuse"}));
        let r = evaluate("6.19.14+deb13-amd64", &no_fuse, 1.0, false, false);
        assert_eq!(
            (r.validate_skipped_no_fuse, r.validate_failures.len()),
            (1, 0)
        );
        // With FUSE in the kernel, or skipped for another reason, it is a failure.
        let r = evaluate("6.19.14+deb13-amd64", &no_fuse, 1.0, false, true);
        assert_eq!(
            (r.validate_skipped_no_fuse, r.validate_failures.len()),
            (0, 1)
        );
        let other = console(serde_json::json!({"kind": "missing_program", "program": "tini"}));
        let r = evaluate("6.19.14+deb13-amd64", &other, 1.0, false, false);
        assert_eq!(
            (r.validate_skipped_no_fuse, r.validate_failures.len()),
            (0, 1)
        );
    }
}
