//! Helpers for reaper-trace's end-to-end tests: find the binaries, trace a scenario with the
//! real `reaper-trace record`, and read the recording back.
//!
//! The tests need root (they load eBPF programs and create pid namespaces). `cargo xtask test`
//! runs them as root and sets `REAPER_TRACE_BIN`; run directly, they look in `target/debug`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod daemon;
pub mod docker;
pub mod measure;
pub mod prometheus;
pub mod tls;
pub mod tmux;

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

    /// Reads only the lines `keep` accepts (the others are skipped unparsed, but must still
    /// be whole event lines): for the large recordings of system-wide load tests.
    pub fn read_lines_where(path: &std::path::Path, keep: impl Fn(&str) -> bool) -> Trace {
        let text = std::fs::read_to_string(path).expect("recording readable");
        Trace::parse_lines_where(&text, keep)
    }

    /// [`Trace::read_lines_where`] on a recording already read.
    pub fn parse_lines_where(text: &str, keep: impl Fn(&str) -> bool) -> Trace {
        let mut lines = text.lines();
        let header: Value =
            serde_json::from_str(lines.next().expect("a header line")).expect("a JSON header");
        assert_eq!(header["type"], "header");
        let events = lines
            .filter(|l| {
                assert!(
                    l.starts_with("{\"type\":\"") && l.ends_with('}'),
                    "not an event line: {l:?}"
                );
                keep(l)
            })
            .map(|l| {
                serde_json::from_str::<Value>(l)
                    .unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}"))
            })
            .collect();
        Trace { header, events }
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

    /// Every event of type `ty` whose `field.key` is `id`.
    pub fn all(&self, ty: &str, field: &str, key: &str, id: u32) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["type"] == ty && e[field][key] == id)
            .collect()
    }

    /// The event of type `ty` whose `field.key` is `id`, which must be the only one.
    pub fn one(&self, ty: &str, field: &str, key: &str, id: u32) -> &Value {
        let found = self.all(ty, field, key, id);
        assert_eq!(
            found.len(),
            1,
            "expected exactly one {ty} event with {field}.{key} == {id}, found {}:\n{}",
            found.len(),
            self.dump()
        );
        found[0]
    }

    /// Sum of the `count` of the `lost` events about records of kind `what`.
    pub fn lost(&self, what: &str) -> u64 {
        self.of_type("lost")
            .filter(|e| e["what"] == what)
            .map(|e| e["count"].as_u64().expect("lost.count is a number"))
            .sum()
    }

    /// The events, one per line, for assertion messages.
    pub fn dump(&self) -> String {
        const MAX: usize = 200;
        let mut text: String = self
            .events
            .iter()
            .take(MAX)
            .map(|e| format!("  {e}\n"))
            .collect();
        if self.events.len() > MAX {
            text += &format!("  ... {} more\n", self.events.len() - MAX);
        }
        text
    }
}

/// A task's identity in a recording, `(pid, start)`: what [`descendants`] returns.
pub fn task_identity(task: &Value) -> (u64, u64) {
    identity(task)
}

/// The identity (`pid`, `start`) of the `proc` object `"FIELD":{...}` in a recording's line,
/// read without parsing the line: `record` writes a proc's fields in a fixed order, `pid`
/// first and `start` before the only text field, `comm`.
pub fn proc_in_line(line: &str, field: &str) -> Option<(u64, u64)> {
    let number = |s: &str| -> Option<u64> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    let at = line.find(&format!("\"{field}\":{{\"pid\":"))? + field.len() + 10;
    let pid = number(&line[at..])?;
    let start_at = at + line[at..].find("\"start\":")? + 8;
    Some((pid, number(&line[start_at..])?))
}

/// The process `root_pid` (the last task the recording names with that pid, so one that
/// lived to its end) and the processes it forked, and theirs, as identities (pid, start):
/// from `fork` lines, and from the `parent` that `exit` and `zombie` lines name (so a lost
/// record does not hide a child). Reads the lines as text (see [`proc_in_line`]), which is
/// many times faster than parsing them: for the large recordings of the load tests.
pub fn descendants<'a>(
    lines: impl Iterator<Item = &'a str> + Clone,
    root_pid: u32,
) -> HashSet<(u64, u64)> {
    let root_pid = u64::from(root_pid);
    let links = lines.filter_map(|l| {
        let rest = l.strip_prefix("{\"type\":\"")?;
        if rest.starts_with("fork\"") {
            if l.contains("\"thread\":true") {
                return None;
            }
            Some((proc_in_line(l, "parent")?, proc_in_line(l, "child")?))
        } else if rest.starts_with("exit\"") || rest.starts_with("zombie\"") {
            Some((proc_in_line(l, "parent")?, proc_in_line(l, "task")?))
        } else {
            None
        }
    });
    let root = links
        .clone()
        .flat_map(|(p, c)| [p, c])
        .filter(|&(pid, _)| pid == root_pid)
        .max_by_key(|&(_, start)| start);
    let mut set: HashSet<(u64, u64)> = root.into_iter().collect();
    for (parent, child) in links {
        if set.contains(&parent) {
            set.insert(child);
        }
    }
    set
}

/// A `/proc/PID/status` field counted in KiB (`VmHWM`, `VmRSS`); `None` once the process is
/// gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A numbered pid of a scenario report (`report.pids.NAME`).
pub fn report_pid(report: &Value, name: &str) -> u32 {
    report["pids"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("the scenario report names no {name}: {report}"))
        .try_into()
        .expect("pids fit in u32")
}

/// A task's identity in a recording: its pid and start time (pids are reused, the pair is not).
fn identity(task: &Value) -> (u64, u64) {
    (
        task["pid"].as_u64().expect("task.pid"),
        task["start"].as_u64().expect("task.start"),
    )
}

/// The consistency every recording of a command's tree must have: every `reap` refers to a
/// task that had a `zombie` event before it (same pid and same start time), except reaps with
/// `how: vanished`; no zombie is reaped twice; and every zombie has been reaped by the end
/// (the model never keeps a zombie the kernel reaped).
pub fn assert_consistent(trace: &Trace) {
    let zombies = assert_consistent_for(trace, |_| true);
    // The command itself becomes a zombie of `record`: a tree recording always has one.
    assert!(zombies > 0, "no zombie in the recording:\n{}", trace.dump());
}

/// [`assert_consistent`] for the tasks `keep` selects (by their `task` object): for
/// system-wide recordings, where tasks outside the experiment may have become zombies
/// before the recording began or still be zombies when it ends. Returns how many zombies
/// were checked.
pub fn assert_consistent_for(trace: &Trace, keep: impl Fn(&Value) -> bool) -> usize {
    // identity -> (index of the zombie event, index of its reap)
    let mut zombies: HashMap<(u64, u64), (usize, Option<usize>)> = HashMap::new();
    for (i, e) in trace.events.iter().enumerate() {
        let task = &e["task"];
        match e["type"].as_str() {
            Some("zombie") if keep(task) => {
                let id = identity(task);
                if let Some((z, _)) = zombies.get(&id) {
                    panic!(
                        "task {id:?} became a zombie twice (events {z} and {i}):\n{}",
                        trace.dump()
                    );
                }
                zombies.insert(id, (i, None));
            }
            Some("reap") if keep(task) => {
                let id = identity(task);
                match zombies.get_mut(&id) {
                    Some((_, Some(r))) => {
                        panic!(
                            "task {id:?} reaped twice (events {r} and {i}):\n{}",
                            trace.dump()
                        )
                    }
                    Some((_, reap)) => *reap = Some(i),
                    None if e["how"] == "vanished" => {}
                    None => panic!(
                        "reap (event {i}) of task {id:?} that had no zombie event before it: {e}\n{}",
                        trace.dump()
                    ),
                }
            }
            _ => {}
        }
    }
    let unreaped: BTreeMap<_, _> = zombies
        .iter()
        .filter(|(_, (_, reap))| reap.is_none())
        .map(|(id, (z, _))| (*z, *id))
        .collect();
    assert!(
        unreaped.is_empty(),
        "zombies never reaped in the recording (event index -> (pid, start)): {unreaped:?}\n{}",
        trace.dump()
    );
    zombies.len()
}

/// The inode of this process's pid namespace (`/proc/self/ns/pid` -> `pid:[INODE]`).
pub fn own_pidns() -> u64 {
    let link = std::fs::read_link("/proc/self/ns/pid").expect("/proc/self/ns/pid");
    let link = link.to_string_lossy();
    link.strip_prefix("pid:[")
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected /proc/self/ns/pid: {link}"))
}

/// `reaper-trace record -q -o FILE -- COMMAND...`: the recording, the output, and the pid of
/// the `record` process (the parent of the command's first process).
pub fn trace_command(command: &[&str]) -> (Trace, Output, u32) {
    let out = TempPath::new("command.jsonl");
    let child = Command::new(reaper_trace())
        .args(["record", "-q", "-o"])
        .arg(&out.0)
        .arg("--")
        .args(command)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("reaper-trace runs");
    let pid = child.id();
    let output = child.wait_with_output().expect("reaper-trace finishes");
    (Trace::read(&out.0), output, pid)
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing behind.
pub struct ChildGuard {
    pub child: Child,
    exited: bool,
}

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        Self {
            child,
            exited: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        assert!(!self.exited, "signalling a child that was reaped");
        // SAFETY: signalling our own child, not reaped yet (so its pid is still its own).
        let rc = unsafe { libc::kill(self.pid() as i32, sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Its status if it has exited (reaping it), without waiting.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.try_wait().expect("try_wait")?;
        self.exited = true;
        Some(status)
    }

    /// Waits up to `timeout` for the child to exit; its status, or `None` on timeout.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What it wrote to its standard error, when that was piped (read once it has exited).
    pub fn stderr(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until the recording at `path` has its header line (written once the programs are
/// attached); panics after `timeout`, or if `child` exits first.
pub fn wait_for_header(path: &Path, child: &mut ChildGuard, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some((line, _)) = text.split_once('\n')
        {
            let header: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("invalid header line {line:?}: {e}"));
            assert_eq!(header["type"], "header");
            return header;
        }
        if let Some(status) = child.try_wait() {
            panic!(
                "reaper-trace record exited ({status}) before writing its header: {}",
                child.stderr()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no header in {} after {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Names of reaper-trace's programs. The kernel keeps only the first 15 characters of a
/// program's name (`BPF_OBJ_NAME_LEN`), so names are compared on that prefix.
pub const PROGRAM_NAMES: [&str; 11] = [
    "sched_process_fork",
    "sched_process_exec",
    "sched_process_exit",
    "sched_switch",
    "sched_process_free",
    "sys_exit_wait4",
    "sys_exit_waitid",
    "sys_exit_prctl",
    "sys_enter_wait4",
    "sys_enter_waitid",
    "sys_enter_prctl",
];

/// `BPF_OBJ_NAME_LEN` (16) less its terminating NUL.
const KERNEL_NAME_CHARS: usize = 15;

fn kernel_name(name: &str) -> &str {
    &name[..name.len().min(KERNEL_NAME_CHARS)]
}

/// The loaded eBPF programs named like reaper-trace's, by id (from `bpftool -j prog show`).
pub fn our_programs() -> BTreeMap<u64, String> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .expect("bpftool runs (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "bpftool prog show failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let progs: Value = serde_json::from_slice(&out.stdout).expect("bpftool -j prints JSON");
    let ours: BTreeSet<&str> = PROGRAM_NAMES.iter().map(|n| kernel_name(n)).collect();
    progs
        .as_array()
        .expect("a JSON array of programs")
        .iter()
        .filter_map(|p| {
            let name = p["name"].as_str()?;
            ours.contains(kernel_name(name))
                .then(|| (p["id"].as_u64().expect("program id"), name.to_string()))
        })
        .collect()
}

/// Ids of the eBPF programs some live process holds a descriptor of (a program or a link
/// fd: `prog_id:` in `/proc/PID/fdinfo/FD`), with the holders' pids.
pub fn held_programs() -> HashMap<u64, Vec<u32>> {
    let mut held: HashMap<u64, Vec<u32>> = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return held;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(info) = std::fs::read_to_string(fd.path()) else {
                continue;
            };
            for line in info.lines() {
                if let Some(id) = line
                    .strip_prefix("prog_id:")
                    .and_then(|v| v.trim().parse().ok())
                {
                    held.entry(id).or_default().push(pid);
                }
            }
        }
    }
    held
}

/// Asserts that every reaper-trace program loaded since `before` was taken is gone again
/// (waiting up to 3 s: programs are freed asynchronously after their last holder exits).
///
/// The count of programs named like reaper-trace's has to return to what it was before;
/// when other reaper-trace instances run at the same time (other users of the machine),
/// programs that a live process still holds are theirs and are not counted.
pub fn assert_programs_released(before: &BTreeMap<u64, String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = our_programs();
        let new: Vec<(u64, String)> = now
            .into_iter()
            .filter(|(id, _)| !before.contains_key(id))
            .collect();
        if new.is_empty() {
            return;
        }
        let held = held_programs();
        let leaked: Vec<&(u64, String)> = new
            .iter()
            .filter(|(id, _)| !held.contains_key(id))
            .collect();
        if leaked.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {what}: reaper-trace programs still loaded and held by no process: {leaked:?} (before: {before:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `reaper-trace record -o FILE -- reaper-trace scenario NAME ARGS`: the scenario's report
/// (its last stdout line) and the recording.
pub fn trace_scenario(name: &str, args: &[&str]) -> (Value, Trace, Output) {
    trace_scenario_with_env(name, args, &[])
}

/// [`trace_scenario`] with extra environment variables for `reaper-trace record`.
pub fn trace_scenario_with_env(
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Value, Trace, Output) {
    let out = TempPath::new(&format!("{name}.jsonl"));
    let bin = reaper_trace();
    let output = Command::new(&bin)
        .envs(env.iter().copied())
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
/// Checks a user error: non-zero exit and exactly one line on standard error, starting
/// `reaper-trace: error:` (bad flags included). Returns the error line.
pub fn assert_user_error(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "a user error must fail: {stderr}");
    assert_ne!(output.status.code(), None, "killed by a signal: {stderr}");
    let first = stderr.lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("reaper-trace: error: "),
        "not an error message: {stderr:?}"
    );
    assert_eq!(
        stderr,
        format!("{first}\n"),
        "the error message is exactly one line"
    );
    assert!(
        first.len() > 30,
        "a message that says what to do: {first:?}"
    );
    first
}

pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root: run `cargo xtask test` as root"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc_json(pid: u32, start: u64, comm: &str) -> String {
        format!(
            r#"{{"pid":{pid},"tid":{pid},"ns_pid":{pid},"ns_tid":{pid},"pidns":4026531836,"start":{start},"comm":"{comm}"}}"#
        )
    }

    #[test]
    fn descendants_follow_forks_and_parents_by_identity() {
        let p = proc_json;
        let lines = [
            // An earlier holder of the root's pid, and its child: not the root.
            format!(
                r#"{{"type":"fork","ts":1,"parent":{},"child":{},"thread":false}}"#,
                p(7, 5, "x"),
                p(50, 6, "x")
            ),
            // The root (forked by the test), a worker, a thread of the worker, a child.
            format!(
                r#"{{"type":"fork","ts":2,"parent":{},"child":{},"thread":false}}"#,
                p(1, 1, "t"),
                p(7, 10, "t")
            ),
            format!(
                r#"{{"type":"fork","ts":3,"parent":{},"child":{},"thread":false}}"#,
                p(7, 10, "s"),
                p(8, 11, "s")
            ),
            format!(
                r#"{{"type":"fork","ts":4,"parent":{},"child":{},"thread":true}}"#,
                p(8, 11, "s"),
                p(8, 12, "s")
            ),
            format!(
                r#"{{"type":"fork","ts":5,"parent":{},"child":{},"thread":false}}"#,
                p(8, 11, "s"),
                p(9, 13, "s\"start\":1")
            ),
            // A child whose fork record was lost, known from its zombie's parent.
            format!(
                r#"{{"type":"zombie","ts":6,"task":{},"parent":{},"status":{{}}}}"#,
                p(20, 14, "s"),
                p(8, 11, "s")
            ),
            // Pid 9 reused by someone else.
            format!(
                r#"{{"type":"fork","ts":7,"parent":{},"child":{},"thread":false}}"#,
                p(2, 2, "o"),
                p(9, 30, "o")
            ),
        ];
        assert_eq!(proc_in_line(&lines[4], "child"), Some((9, 13)));
        let set = descendants(lines.iter().map(String::as_str), 7);
        let want: HashSet<(u64, u64)> = [(7, 10), (8, 11), (9, 13), (20, 14)].into();
        assert_eq!(set, want);
    }
}
