//! Running a case, and collecting its checks.

use super::*;

pub(crate) struct Run {
    pub(crate) trace: Trace,
    pub(crate) facts: Facts,
    pub(crate) _serial: MutexGuard<'static, ()>,
}

/// The cases run one at a time even without `--test-threads=1`: they load the CPUs on purpose
/// (wait-race), cycle through every pid (pid-reuse) and count what happens in their trees.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `reaper-trace record -q -o F -- truth_workload CASE FACTS`, the recording and the facts.
pub(crate) fn run_case(case: &str) -> Run {
    run_case_with(case, &[])
}

/// The same, with the case's own arguments after FACTS.
pub(crate) fn run_case_with(case: &str, args: &[&str]) -> Run {
    require_root();
    let serial = serial();
    let facts_path = TempPath::new(&format!("{case}.facts.jsonl"));
    let wl = workload();
    let mut command = vec![
        wl.to_str().expect("utf-8 path"),
        case,
        facts_path.0.to_str().expect("utf-8 path"),
    ];
    command.extend_from_slice(args);
    let (trace, output, record_pid) = trace_command(&command);
    assert!(
        output.status.success(),
        "broken case {case}: the workload or record failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    keep(case, &facts_path.0, &trace);
    let mut facts = Facts::read(&facts_path.0);
    facts.add_record_wait(record_pid);
    Run {
        trace,
        facts,
        _serial: serial,
    }
}

/// With `TRUTH_KEEP=DIR`, copies a case's facts and recording to DIR/CASE.{facts,trace}.jsonl
/// for a closer look.
pub(crate) fn keep(case: &str, facts: &std::path::Path, trace: &Trace) {
    let Some(dir) = std::env::var_os("TRUTH_KEEP") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("TRUTH_KEEP directory");
    std::fs::copy(facts, dir.join(format!("{case}.facts.jsonl"))).expect("copy the facts");
    let mut text = format!("{}\n", trace.header);
    for e in &trace.events {
        text += &format!("{e}\n");
    }
    std::fs::write(dir.join(format!("{case}.trace.jsonl")), text).expect("write the recording");
}

/// The proc objects of an event (`task`, `parent`, `reaper`, `father`, `orphan`, `child`, ...):
/// (field, object).
pub(crate) fn procs(e: &Value) -> Vec<(&str, &Value)> {
    e.as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| v.get("tid").is_some() && v.get("start").is_some())
                .map(|(k, v)| (k.as_str(), v))
                .collect()
        })
        .unwrap_or_default()
}

/// Events of type `ty` whose `field.pid` is `pid`.
pub(crate) fn events<'a>(trace: &'a Trace, ty: &str, field: &str, pid: u64) -> Vec<&'a Value> {
    trace
        .events
        .iter()
        .filter(|e| e["type"] == ty && e[field]["pid"] == pid)
        .collect()
}

/// Events of type `ty` grouped by `field.pid` (one pass, for cases with many pids).
pub(crate) fn by_pid<'a>(
    trace: &'a Trace,
    ty: &'a str,
    field: &str,
) -> HashMap<u64, Vec<&'a Value>> {
    let mut map: HashMap<u64, Vec<&Value>> = HashMap::new();
    for e in trace.of_type(ty) {
        if let Some(pid) = e[field]["pid"].as_u64() {
            map.entry(pid).or_default().push(e);
        }
    }
    map
}

/// Collects every failed check of a test, and fails once with all of them and the events
/// about the pids of interest.
pub(crate) struct Checks<'a> {
    pub(crate) name: &'static str,
    pub(crate) trace: &'a Trace,
    pub(crate) focus: BTreeSet<u64>,
    pub(crate) failures: Vec<String>,
}

impl<'a> Checks<'a> {
    pub(crate) fn new(name: &'static str, trace: &'a Trace) -> Self {
        Self {
            name,
            trace,
            focus: BTreeSet::new(),
            failures: Vec::new(),
        }
    }

    pub(crate) fn focus(&mut self, pids: impl IntoIterator<Item = u64>) {
        self.focus.extend(pids);
    }

    pub(crate) fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) -> bool {
        if !ok {
            self.failures.push(msg());
        }
        ok
    }

    /// Exactly one event in `found`; returns it.
    pub(crate) fn exactly_one(&mut self, found: Vec<&'a Value>, what: &str) -> Option<&'a Value> {
        match found.len() {
            1 => Some(found[0]),
            n => {
                self.failures.push(format!(
                    "expected exactly one {what}, found {n}: {}",
                    found
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n      ")
                ));
                None
            }
        }
    }

    pub(crate) fn finish(self) {
        if self.failures.is_empty() {
            return;
        }
        const MAX: usize = 150;
        let relevant: Vec<&Value> = self
            .trace
            .events
            .iter()
            .filter(|e| {
                self.focus.is_empty()
                    || e["type"] == "lost"
                    || procs(e)
                        .iter()
                        .any(|(_, p)| p["pid"].as_u64().is_some_and(|x| self.focus.contains(&x)))
            })
            .collect();
        let mut dump: String = relevant
            .iter()
            .take(MAX)
            .map(|e| format!("  {e}\n"))
            .collect();
        if relevant.len() > MAX {
            dump += &format!("  ... {} more\n", relevant.len() - MAX);
        }
        const MAX_FAILURES: usize = 25;
        let mut failures: String = self
            .failures
            .iter()
            .take(MAX_FAILURES)
            .map(|f| format!("  - {f}\n"))
            .collect();
        if self.failures.len() > MAX_FAILURES {
            failures += &format!("  ... {} more\n", self.failures.len() - MAX_FAILURES);
        }
        let focus: Vec<&u64> = self.focus.iter().take(40).collect();
        panic!(
            "{}: {} check(s) against the kernel's facts failed:\n{failures}\nevents about pids {focus:?}{}:\n{dump}",
            self.name,
            self.failures.len(),
            if self.focus.len() > 40 { " ..." } else { "" },
        );
    }
}
