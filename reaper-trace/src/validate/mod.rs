//! `reaper-trace validate`: runs the built-in scenarios as real processes under one tracing
//! session and checks, for each, that the reaper the kernel chose is the one the scenario
//! expects and the one `find_new_reaper` predicts from the captured state, and that zombies
//! pile up (or not) as they should.
//!
//! The validator makes itself a child subreaper, so nothing a scenario starts can leave its
//! subtree: whatever a scenario leaves behind (after a timeout, a failure or a bug) is found
//! by walking `/proc` down from the validator, killed and reaped. Killing a namespace's init
//! from outside tears the whole namespace down.

pub(crate) mod report;
mod runner;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::event::{Event, Header, Proc};
use crate::identity::{same_start, same_start_or_unknown};
use crate::jsonl::{JsonlWriter, Output};
use crate::live::{self, StopSignals};
use crate::model::Scope;
use crate::scenario::judge::kernel_records_lost;
use crate::scenario::result::{ScenarioResult, Status};
use crate::scenario::{REGISTRY, Scenario};
use crate::session::{Session, SessionOptions};
use crate::{preflight, procfs};

use report::{Report, render_table};

/// Default time a scenario may run before it is killed and reported as failed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the validator wakes up to read records and check on the scenario.
const TICK: Duration = Duration::from_millis(10);
/// After a scenario ends: how long its processes may take to disappear, and how long to keep
/// reading records (the kernel frees tasks 5-20 ms after their reap).
const SETTLE: Duration = Duration::from_millis(300);
/// How long the clean-up keeps killing and reaping before it gives up.
const CLEANUP_FOR: Duration = Duration::from_secs(5);

pub struct ValidateOptions {
    /// Scenarios to run, in this order (empty: the whole suite).
    pub only: Vec<String>,
    /// Runs of each scenario, one after the other.
    pub runs: u32,
    pub timeout: Duration,
    /// How soon a reaping init must reap an orphan's zombie (pid1-* scenarios).
    pub reap_within: Duration,
    pub json: bool,
    pub ring_bytes: u32,
    /// Write each scenario's events to `DIR/NAME.jsonl`: the evidence behind its verdict.
    pub events_dir: Option<std::path::PathBuf>,
}

/// The scenarios to run: the registry without its hidden entries, or the ones named.
pub fn select(only: &[String]) -> Result<Vec<&'static dyn Scenario>> {
    if only.is_empty() {
        return Ok(REGISTRY.iter().copied().filter(|s| !s.hidden()).collect());
    }
    let mut out: Vec<&'static dyn Scenario> = Vec::new();
    for name in only {
        let Some(s) = crate::scenario::find(name) else {
            let names: Vec<&str> = REGISTRY
                .iter()
                .filter(|s| !s.hidden())
                .map(|s| s.name())
                .collect();
            bail!(
                "unknown scenario `{name}`: choose from {}",
                names.join(", ")
            );
        };
        if !out.iter().any(|o| o.name() == s.name()) {
            out.push(s);
        }
    }
    Ok(out)
}

const CAP_SYS_ADMIN: u32 = 21;

/// Creating pid namespaces (and joining one with setns) needs CAP_SYS_ADMIN.
fn check_namespace_privileges() -> Result<()> {
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    if caps & (1 << CAP_SYS_ADMIN) == 0 {
        bail!(
            "validate creates pid namespaces, which needs CAP_SYS_ADMIN: run it as root, e.g. with sudo"
        );
    }
    Ok(())
}

/// Whether a scenario's run says nothing of the kernel and is to be run once more: it failed
/// while kernel records were lost (what it is about may be in what was not seen). Returns the
/// note the second run carries.
fn run_again(result: &ScenarioResult, events: &[Event], stopped: bool) -> Option<String> {
    let lost = kernel_records_lost(events);
    (!stopped && result.status == Status::Fail && lost > 0).then(|| {
        // Which kinds, in the order first lost: where to look for the cause.
        let mut kinds: Vec<(&str, u64)> = Vec::new();
        for e in events {
            if let Event::Lost { what, count, .. } = e
                && what != "children"
            {
                match kinds.iter_mut().find(|(w, _)| *w == what.as_str()) {
                    Some((_, n)) => *n += count,
                    None => kinds.push((what, *count)),
                }
            }
        }
        let kinds: Vec<String> = kinds.iter().map(|(w, n)| format!("{w} {n}")).collect();
        format!(
            "run twice: {lost} kernel records were lost in the first run ({}), which failed ({})",
            kinds.join(", "),
            result.reason.as_deref().unwrap_or("no reason given")
        )
    })
}

/// Runs the scenarios; returns the exit code (0: nothing failed).
pub async fn run(opts: ValidateOptions) -> Result<i32> {
    let scenarios: Vec<&'static dyn Scenario> = select(&opts.only)?
        .into_iter()
        .flat_map(|s| std::iter::repeat_n(s, opts.runs as usize))
        .collect();
    if let Some(dir) = &opts.events_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    preflight::check_privileges()?;
    check_namespace_privileges()?;
    let exe = std::env::current_exe()?;
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        bail!(
            "prctl(PR_SET_CHILD_SUBREAPER): {}",
            std::io::Error::last_os_error()
        );
    }
    let mut signals = StopSignals::new()?;
    // Tree scope: the kernel programs send only the records of the scenarios' processes
    // (each one is spawned as a tracked root), so a busy machine neither crowds them out of
    // the ring buffer nor mixes its processes, reusing the scenarios' pids, into them.
    let mut session = Session::start(&SessionOptions {
        scope: Scope::Tree,
        ring_bytes: opts.ring_bytes,
        quiet: false,
    })?;
    let progress = !opts.json && is_terminal(libc::STDERR_FILENO);
    let mut validator = runner::Validator::new(exe, scenarios, &opts, progress);
    live::run(&mut session, &mut signals, &mut validator).await?;
    let (results, interrupted) = validator.results();
    let report = Report::new(crate::tracer::kernel_release(), results);
    // Written, not printed: a closed pipe (`validate | head`) is an error the caller ends on
    // quietly, where print! would panic.
    let text = if opts.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render_table(&report)
    };
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
    Ok(if interrupted { 130 } else { report.exit_code() })
}

/// A scenario's events as a recording (header first), which `top --replay` plays.
fn save_events(path: &Path, header: &Header, events: &[Event]) -> Result<()> {
    let mut w = JsonlWriter::new(Output::open(Some(path))?);
    w.header(header)?;
    for e in events {
        w.event(e)?;
    }
    w.finish()
}

fn is_terminal(fd: i32) -> bool {
    // SAFETY: isatty on a descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// Output of a scenario read so far, without blocking.
struct Pipe {
    file: std::fs::File,
    data: Vec<u8>,
}

impl Pipe {
    fn new(fd: impl Into<std::os::fd::OwnedFd>) -> Self {
        let file = std::fs::File::from(fd.into());
        // SAFETY: fcntl on our own descriptor.
        unsafe {
            let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Self {
            file,
            data: Vec::new(),
        }
    }

    fn read_available(&mut self) {
        let mut buf = [0u8; 8192];
        // A scenario that floods its output is cut off rather than filling our memory.
        while self.data.len() < 1 << 20 {
            match self.file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.data.extend_from_slice(&buf[..n]),
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// Reaps every child that has exited (the scenario and orphans adopted by the validator);
/// returns the scenario's wait status once it is among them.
fn reap_children(root: u32, status: &mut Option<i32>) {
    loop {
        let mut s = 0;
        // SAFETY: waitpid for any child, without blocking.
        let pid = unsafe { libc::waitpid(-1, &mut s, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if pid as u32 == root {
            *status = Some(s);
        }
    }
}

/// Every process below `ancestor` (by parent links in `/proc`), with its state.
pub fn descendants(ancestor: u32) -> Vec<(u32, char)> {
    let mut children: BTreeMap<u32, Vec<(u32, char)>> = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Some((_, state, ppid, _)) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| procfs::parse_stat(&s))
            else {
                continue;
            };
            children.entry(ppid).or_default().push((pid, state));
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![ancestor];
    while let Some(p) = todo.pop() {
        for &(c, state) in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            out.push((c, state));
            todo.push(c);
        }
    }
    out
}

/// Kills everything the validator has below it (the scenario's process group first, then
/// every descendant, repeatedly: a namespace init takes its namespace with it, orphans are
/// adopted by the validator and reaped). Returns the processes it signalled.
fn kill_tree(pgid: u32, root: u32, status: &mut Option<i32>) -> Vec<u32> {
    let me = std::process::id();
    let mut killed: BTreeSet<u32> = descendants(me)
        .into_iter()
        .filter(|(_, state)| *state != 'Z')
        .map(|(p, _)| p)
        .collect();
    // SAFETY: signalling the scenario's own process group.
    unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
    let deadline = Instant::now() + CLEANUP_FOR;
    loop {
        reap_children(root, status);
        let left = descendants(me);
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        for (pid, state) in left {
            if state != 'Z' {
                // SAFETY: signalling a process below us.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                killed.insert(pid);
            }
        }
        std::thread::sleep(TICK);
    }
    killed.into_iter().collect()
}

/// The tasks (threads included) a scenario created, by identity: thread id and start time,
/// so that a pid the scenario used and another process reuses never brings that process's
/// events in.
#[derive(Debug, Default)]
struct Tree {
    /// The scenario's main process, until its fork event is seen (then 0).
    root: u32,
    tasks: HashMap<u32, Vec<u64>>,
    /// The processes (not threads), by pid.
    processes: BTreeSet<u32>,
}

impl Tree {
    fn new(root: u32) -> Self {
        Self {
            root,
            processes: BTreeSet::from([root]),
            ..Default::default()
        }
    }

    fn contains(&self, p: &Proc) -> bool {
        self.tasks
            .get(&p.tid)
            .is_some_and(|starts| starts.iter().any(|&s| same_start_or_unknown(s, p.start)))
    }

    fn insert(&mut self, p: &Proc, thread: bool) {
        let starts = self.tasks.entry(p.tid).or_default();
        if !starts.iter().any(|&s| same_start(s, p.start)) {
            starts.push(p.start);
        }
        if !thread {
            self.processes.insert(p.pid);
        }
    }
}

/// Does the event concern the scenario's processes? Learns new ones from forks.
fn absorb(e: &Event, tree: &mut Tree) -> bool {
    match e {
        Event::Fork {
            parent,
            child,
            caller,
            thread,
            ..
        } => {
            let root = !*thread && tree.root != 0 && child.pid == tree.root;
            if root || tree.contains(parent) || caller.as_ref().is_some_and(|c| tree.contains(c)) {
                if root {
                    // Known from now on by its identity: a later process with its pid is not it.
                    tree.root = 0;
                }
                tree.insert(child, *thread);
                true
            } else {
                tree.contains(child)
            }
        }
        Event::Exec { task, .. }
        | Event::Exit { task, .. }
        | Event::Zombie { task, .. }
        | Event::Reap { task, .. }
        | Event::Subreaper { task, .. } => tree.contains(task),
        Event::Reparent { orphan, father, .. } => tree.contains(orphan) || tree.contains(father),
        Event::Lost { .. } | Event::Container { .. } => true,
    }
}

fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}

fn processes(n: usize) -> String {
    if n == 1 {
        "1 process".into()
    } else {
        format!("{n} processes")
    }
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonl;
    use crate::scenario::result::Failure;

    #[test]
    fn a_failure_with_records_lost_is_run_again_once() {
        let lost = |what: &str| Event::Lost {
            ts: 1,
            what: what.into(),
            count: 3,
        };
        let mut failed = ScenarioResult::new("x", "");
        failed.fail(Failure::Mismatch, "no reparent event for orphan 7");
        let note = run_again(&failed, &[lost("fork"), lost("exit"), lost("fork")], false)
            .expect("run again");
        assert!(
            note.contains("9 kernel records were lost in the first run (fork 6, exit 3)"),
            "{note}"
        );
        assert!(note.contains("no reparent event for orphan 7"), "{note}");
        // Nothing lost, or only children not followed (a scenario asks for those): the
        // failure stands.
        assert_eq!(run_again(&failed, &[], false), None);
        assert_eq!(run_again(&failed, &[lost("children")], false), None);
        // Interrupted by the user: no second run.
        assert_eq!(run_again(&failed, &[lost("fork")], true), None);
        // A pass is not run again.
        let mut passed = ScenarioResult::new("x", "");
        passed.status = Status::Pass;
        assert_eq!(run_again(&passed, &[lost("fork")], false), None);
    }

    #[test]
    fn saved_events_replay() {
        let path = std::env::temp_dir().join(format!("rt-validate-{}.jsonl", std::process::id()));
        let events = vec![Event::Lost {
            ts: 7,
            what: "fork".into(),
            count: 1,
        }];
        let command = vec!["reaper-trace".into(), "scenario".into(), "zombie".into()];
        save_events(&path, &jsonl::header(Some(command.clone()), 5), &events).unwrap();
        let rec = jsonl::read_recording(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(rec.events, events);
        assert_eq!(rec.header.started_ts, 5);
        assert_eq!(rec.header.command, Some(command));
    }

    #[test]
    fn selection() {
        let all = select(&[]).unwrap();
        assert!(all.iter().all(|s| !s.hidden()));
        assert!(all.iter().any(|s| s.name() == "pid1-sleep"));
        assert!(all.iter().any(|s| s.name() == "pid-reuse"));
        let some = select(&["hang".into(), "zombie".into(), "hang".into()]).unwrap();
        assert_eq!(
            some.iter().map(|s| s.name()).collect::<Vec<_>>(),
            ["hang", "zombie"]
        );
        let e = select(&["nope".into()]).err().expect("unknown").to_string();
        assert!(
            e.starts_with("unknown scenario `nope`: choose from orphan-init"),
            "{e}"
        );
        assert!(!e.contains("hang"));
    }

    #[test]
    fn events_are_attributed_by_process_tree() {
        // Process `pid`, started at `start`.
        let p = |pid, start| Proc {
            start,
            ..Proc::fake(pid, "")
        };
        let mut tree = Tree::new(10);
        let fork = |a: Proc, b: Proc| Event::Fork {
            ts: 0,
            parent: a,
            child: b,
            thread: false,
            late: false,
            caller: None,
        };
        // The root's own fork (by the validator) brings it in.
        assert!(absorb(&fork(p(1, 1), p(10, 100)), &mut tree));
        assert!(absorb(&fork(p(10, 100), p(11, 110)), &mut tree));
        assert!(absorb(&fork(p(11, 110), p(12, 120)), &mut tree));
        assert!(!absorb(&fork(p(99, 5), p(100, 6)), &mut tree));
        // Once the root is known, another process with its pid is not it.
        assert!(!absorb(&fork(p(1, 1), p(10, 999)), &mut tree));
        assert_eq!(tree.processes, BTreeSet::from([10, 11, 12]));
        // CLONE_PARENT: the parent is outside, the caller inside.
        let clone = Event::Fork {
            ts: 0,
            parent: p(1, 1),
            child: p(13, 130),
            thread: false,
            late: false,
            caller: Some(p(12, 120)),
        };
        assert!(absorb(&clone, &mut tree));
        let subreaper = |proc| Event::Subreaper {
            ts: 0,
            task: proc,
            enabled: true,
        };
        assert!(absorb(&subreaper(p(12, 120)), &mut tree));
        assert!(!absorb(&subreaper(p(100, 6)), &mut tree));
        // Pid 12 reused by a process the scenario did not fork: not the scenario's.
        assert!(!absorb(&subreaper(p(12, 999)), &mut tree));
        // A start time from /proc (whole ticks) names the same task.
        assert!(absorb(
            &subreaper(p(11, crate::identity::NS_PER_TICK * 5)),
            &mut Tree {
                tasks: HashMap::from([(11, vec![crate::identity::NS_PER_TICK * 5 + 7])]),
                ..Tree::new(10)
            }
        ));
    }

    #[test]
    fn descendants_of_this_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = descendants(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.iter().any(|(p, _)| *p == child.id()), "{found:?}");
    }
}
