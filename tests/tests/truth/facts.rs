//! The workload binary and the facts it writes.

use super::*;

/// The workload binary: `TRUTH_WORKLOAD_BIN`, else the one cargo built for this package.
pub(crate) fn workload() -> PathBuf {
    std::env::var_os("TRUTH_WORKLOAD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_truth_workload")))
}

pub(crate) fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

pub(crate) fn ticks(start_ns: &Value) -> Option<u64> {
    start_ns.as_u64().map(start_tick)
}

// ---------------------------------------------------------------------------------------------
// Facts

/// What the kernel said, as the workload wrote it (see the workload's module doc).
pub(crate) struct Facts {
    pub(crate) lines: Vec<Value>,
}

impl Facts {
    pub(crate) fn read(path: &std::path::Path) -> Facts {
        let text = std::fs::read_to_string(path).expect("facts file readable");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid fact line {l:?}: {e}"))
            })
            .collect();
        let mut facts = Facts { lines };
        facts.resolve_waits();
        facts
    }

    /// Observations of live (or zombie) tasks labelled `label`.
    pub(crate) fn obs(&self, label: &str) -> Vec<&Value> {
        self.lines
            .iter()
            .filter(|l| l["kind"] == "obs" && l["label"] == label)
            .collect()
    }

    /// The one observation labelled `label`.
    pub(crate) fn one(&self, label: &str) -> &Value {
        let found = self.obs(label);
        assert_eq!(
            found.len(),
            1,
            "broken case: expected one fact labelled {label:?}, found {}: {:?}",
            found.len(),
            self.lines
        );
        found[0]
    }

    pub(crate) fn note(&self, what: &str) -> &Value {
        self.lines
            .iter()
            .find(|l| l["kind"] == "note" && l["what"] == what)
            .unwrap_or_else(|| panic!("broken case: no {what:?} note in the facts"))
    }

    /// Every note `what` (a case that notes more than fits a line writes several).
    pub(crate) fn notes<'a>(&'a self, what: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines
            .iter()
            .filter(move |l| l["kind"] == "note" && l["what"] == what)
    }

    pub(crate) fn waits(&self) -> impl Iterator<Item = &Value> {
        self.lines.iter().filter(|l| l["kind"] == "wait")
    }

    pub(crate) fn waits_labelled<'a>(
        &'a self,
        label: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.waits().filter(move |w| w["label"] == label)
    }

    /// Waits that released a child: (child's global pid, waiter's global pid).
    pub(crate) fn reaping_waits(&self) -> Vec<(u64, u64)> {
        self.waits()
            .filter(|w| w["reaped"] == true)
            .map(|w| (u(&w["ret_global"]), u(&w["waiter"])))
            .collect()
    }

    /// Every task observed alive or as a zombie, by tid: its first observation.
    pub(crate) fn tasks(&self) -> BTreeMap<u64, &Value> {
        let mut tasks = BTreeMap::new();
        for l in &self.lines {
            if l["kind"] == "obs" && l["gone"] != true {
                tasks.entry(u(&l["tid"])).or_insert(l);
            }
        }
        tasks
    }

    /// Every pid the facts know of: observed tasks' pids and tids, and what waits returned.
    pub(crate) fn pids(&self) -> BTreeSet<u64> {
        let mut pids = BTreeSet::new();
        for l in &self.lines {
            if l["kind"] == "obs" && l["gone"] != true {
                pids.insert(u(&l["pid"]));
                pids.insert(u(&l["tid"]));
            }
        }
        pids.extend(self.reaping_waits().into_iter().map(|(p, _)| p));
        pids
    }

    /// A wait returns the child's pid as the waiter's pid namespace numbers it: adds
    /// `ret_global`, found from the observations (NStgid at the waiter's level).
    pub(crate) fn resolve_waits(&mut self) {
        let observed: Vec<(Vec<u64>, u64, u64)> = self
            .lines
            .iter()
            .filter(|l| l["kind"] == "obs" && l["gone"] != true)
            .map(|l| {
                let nstgid = l["nstgid"]
                    .as_array()
                    .map(|a| a.iter().map(u).collect())
                    .unwrap_or_default();
                (nstgid, u(&l["pid"]), u(&l["pidns"]))
            })
            .collect();
        for l in &mut self.lines {
            if l["kind"] != "wait" {
                continue;
            }
            let ret = l["ret"].as_i64().expect("wait.ret");
            if ret <= 0 {
                l["ret_global"] = json!(null);
                continue;
            }
            let level = u(&l["waiter_level"]) as usize;
            if level == 0 {
                l["ret_global"] = json!(ret);
                continue;
            }
            let waiter_ns = u(&l["waiter_pidns"]);
            let found: BTreeSet<u64> = observed
                .iter()
                .filter(|(nstgid, _, ns)| {
                    nstgid.get(level) == Some(&(ret as u64))
                        && (nstgid.len() > level + 1 || *ns == waiter_ns)
                })
                .map(|(_, pid, _)| *pid)
                .collect();
            assert_eq!(
                found.len(),
                1,
                "broken case: cannot tell which task the wait {l} returned (candidates {found:?})"
            );
            l["ret_global"] = json!(found.first());
        }
    }

    /// `record` reaps the command it started: the facts do not see that wait, so it is added
    /// (the command is the task that observed itself with `record` as its parent).
    pub(crate) fn add_record_wait(&mut self, record_pid: u32) {
        let commands: Vec<u64> = self
            .lines
            .iter()
            .filter(|l| l["kind"] == "obs" && l["ppid"] == record_pid && l["by"] == l["tid"])
            .map(|l| u(&l["pid"]))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for pid in commands {
            self.lines.push(json!({
                "kind": "wait", "label": "record waits the command", "call": "wait4",
                "waiter": record_pid, "ret": pid, "ret_global": pid, "reaped": true,
            }));
        }
    }
}
