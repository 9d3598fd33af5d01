//! Helpers for reaper-trace's end-to-end tests: find the binaries, trace a scenario with the
//! real `reaper-trace record`, and read the recording back.
//!
//! The tests need root (they load eBPF programs and create pid namespaces). `cargo xtask test`
//! runs them as root and sets `REAPER_TRACE_BIN`; run directly, they look in `target/debug`.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

fn binary(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let p = workspace_root().join("target/debug").join(name);
    assert!(
        p.exists(),
        "{} not found: run the tests with `cargo xtask test` (or build first and set {var})",
        p.display()
    );
    p
}

pub fn reaper_trace() -> PathBuf {
    binary("REAPER_TRACE_BIN", "reaper-trace")
}

pub fn reaper_init() -> PathBuf {
    binary("REAPER_INIT_BIN", "reaper-init")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A unique temporary path, removed when dropped.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(name: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Self(std::env::temp_dir().join(format!(
            "reaper-trace-test-{}-{n}-{name}",
            std::process::id()
        )))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A recording read back: the header and the events.
#[derive(Debug)]
pub struct Trace {
    pub header: Value,
    pub events: Vec<Value>,
}

impl Trace {
    pub fn read(path: &std::path::Path) -> Trace {
        let text = std::fs::read_to_string(path).expect("recording readable");
        let mut lines = text.lines().map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}"))
        });
        let header = lines.next().expect("a header line");
        assert_eq!(header["type"], "header");
        Trace {
            header,
            events: lines.collect(),
        }
    }

    pub fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["type"] == ty)
    }

    /// The one event of type `ty` whose `field.pid` (or `.tid`) is `pid`.
    pub fn find(&self, ty: &str, field: &str, key: &str, pid: u32) -> Option<&Value> {
        self.events
            .iter()
            .find(|e| e["type"] == ty && e[field][key] == pid)
    }
}

/// `reaper-trace record -o FILE -- reaper-trace scenario NAME ARGS`: the scenario's report
/// (its last stdout line) and the recording.
pub fn trace_scenario(name: &str, args: &[&str]) -> (Value, Trace, Output) {
    let out = TempPath::new(&format!("{name}.jsonl"));
    let bin = reaper_trace();
    let output = Command::new(&bin)
        .args(["record", "-q", "-o"])
        .arg(&out.0)
        .arg("--")
        .arg(&bin)
        .args(["scenario", name])
        .args(args)
        .output()
        .expect("reaper-trace runs");
    assert!(
        output.status.success(),
        "record of scenario {name} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().expect("scenario report"))
        .expect("scenario report is JSON");
    (report, Trace::read(&out.0), output)
}

/// The end-to-end tests load eBPF programs and create pid namespaces: without root they
/// fail with this message rather than pass without testing anything.
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root: run `cargo xtask test` as root"
    );
}
