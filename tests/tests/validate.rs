//! End-to-end tests of `reaper-trace validate` on the real kernel: the whole suite passes
//! (scenarios whose init program is missing may only be skipped), zombies pile up under
//! `sleep` as PID 1 and not under the reaping inits, each scenario checked against the
//! kernel's own facts shows them (a ptracer's wait, an exec from a thread, SIGCHLD ignored,
//! CLONE_PARENT, waits racing the last context switch, threads exiting together, a reused
//! pid, a subreaper held inside its exit), a hanging scenario is failed and cleaned up, and
//! nothing a scenario started outlives the run.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::sync::Mutex;

use reaper_trace::scenario::result::{Failure, SkipReason};
use reaper_trace_tests::{TempPath, reaper_init, reaper_trace, require_root};
use serde_json::Value;

/// The runs are serialised: each one loads its own programs, the timing-sensitive scenarios
/// (a zombie reaped within 100 ms) are best not run on a CPU shared with another, and what a
/// run leaves behind is found among the test's children (see [`Subreaper`]).
static SERIAL: Mutex<()> = Mutex::new(());

/// Every scenario the issue asks for.
const REQUIRED: &[&str] = &[
    "orphan-init",
    "orphan-subreaper",
    "zombie",
    "thread-reaper",
    "nested-subreapers",
    "exiting-subreaper",
    "setns-injected",
    "init-exits-with-children",
    "pid1-sleep",
    "pid1-reaper-init",
    "pid1-tini",
    "pid1-dumb-init",
    "pid1-catatonit",
    "ptrace-wait",
    "exec-thread",
    "sigchld-ignored",
    "clone-parent",
    "wait-race",
    "threads-exit",
    "pid-reuse",
];

/// While alive, this process is a child subreaper (`PR_SET_CHILD_SUBREAPER`): whatever a run
/// of `validate` leaves behind is reparented to the test when `validate` exits, instead of
/// to the machine's init, where it could not be told from anyone else's processes.
struct Subreaper;

impl Subreaper {
    fn new() -> Subreaper {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(
            rc,
            0,
            "PR_SET_CHILD_SUBREAPER: {}",
            std::io::Error::last_os_error()
        );
        Subreaper
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
    }
}

/// This process's children (of any of its threads: an orphan is given to one of them), as
/// the kernel lists them, zombies included.
fn own_children() -> BTreeSet<u32> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .flat_map(|t| {
            std::fs::read_to_string(t.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The processes a run left behind: those reparented to the test (the subreaper) when
/// `validate` exited, with their `/proc/PID/stat` lines. They are killed and reaped, and so
/// are theirs, which come to the test in turn.
fn adopted_survivors() -> Vec<String> {
    let mut left = Vec::new();
    for _ in 0..100 {
        let children = own_children();
        if children.is_empty() {
            break;
        }
        for pid in children {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            left.push(format!("{pid}: {}", stat.trim()));
            // SAFETY: our own child (adopted), not reaped yet: the pid is still its.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
                libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
            }
        }
    }
    left
}

struct Run {
    output: Output,
    report: Value,
    /// Processes of the run still there after `validate` exited (see [`adopted_survivors`]).
    survivors: Vec<String>,
}

/// `reaper-trace validate --json ARGS`. The callers hold [`SERIAL`], so that the test's
/// other children are not mistaken for processes the run left behind.
fn validate(args: &[&str]) -> Run {
    validate_with(args, &[])
}

/// [`validate`] with more environment variables.
fn validate_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    let subreaper = Subreaper::new();
    let output = Command::new(reaper_trace())
        .arg("validate")
        .arg("--json")
        .args(args)
        .env("REAPER_INIT_BIN", reaper_init())
        .envs(env.iter().copied())
        .output()
        .expect("reaper-trace runs");
    let survivors = adopted_survivors();
    drop(subreaper);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "validate --json printed no JSON document ({e}): {}\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Run {
        output,
        report,
        survivors,
    }
}

fn results(report: &Value) -> &Vec<Value> {
    report["results"].as_array().expect("results array")
}

fn result<'a>(report: &'a Value, name: &str) -> &'a Value {
    results(report)
        .iter()
        .find(|r| r["scenario"] == name)
        .unwrap_or_else(|| panic!("no result for {name}: {report:#}"))
}

/// The kinds of a result's failures (`failures` in `validate --json`).
fn failures(r: &Value) -> Vec<Failure> {
    serde_json::from_value(r["failures"].clone()).unwrap_or_default()
}

fn assert_nothing_left(run: &Run) {
    for r in results(&run.report) {
        assert_eq!(r["leftover"], serde_json::json!([]), "{r:#}");
    }
    // Checked against the kernel's parentage rather than by pid: on a busy machine (pid_max
    // 32768, a fork storm beside) a scenario's pid is soon someone else's, even a thread's,
    // started within the run.
    assert!(
        run.survivors.is_empty(),
        "scenario processes survived the run (pid: /proc/PID/stat):\n{}",
        run.survivors.join("\n")
    );
}

/// Every scenario passed, or was skipped for a reason the machine gives (an init not
/// installed, no pid reused in time, no FUSE), and validate's exit status says so.
fn assert_suite_passed(run: &Run) {
    let report = &run.report;
    let table = serde_json::to_string_pretty(report).unwrap();

    for name in REQUIRED {
        let r = result(report, name);
        match r["status"].as_str() {
            Some("PASS") => {}
            Some("SKIPPED") => {
                // Only a comparison init that is not installed may be skipped, pid-reuse when
                // no pid came back in its time (it says so), and the scenarios that hold a
                // process inside its exit with a FUSE flush on a machine without FUSE.
                let skip = serde_json::from_value::<SkipReason>(r["skip"].clone()).ok();
                let allowed = match skip {
                    Some(SkipReason::MissingProgram { .. }) => {
                        name.starts_with("pid1-")
                            && *name != "pid1-sleep"
                            && *name != "pid1-reaper-init"
                    }
                    Some(SkipReason::NoPidReused { .. }) => *name == "pid-reuse",
                    Some(SkipReason::NoFuse) => !std::path::Path::new("/dev/fuse").exists(),
                    None => false,
                };
                assert!(allowed, "{name} skipped: {r:#}");
            }
            _ => panic!("{name} did not pass: {r:#}"),
        }
    }
    for r in results(report) {
        assert_ne!(r["status"], "FAIL", "{r:#}");
    }
    assert_eq!(report["failed"], 0, "{table}");
    assert!(
        run.output.status.success(),
        "exit status {} with no failure:\n{table}",
        run.output.status
    );
}

#[test]
fn the_suite_passes_and_shows_zombies_piling_up_only_under_sleep() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = validate(&[]);
    let report = &run.report;
    assert_suite_passed(&run);

    // Every adoption checked agrees three ways; in threads-exit the last of an orphan's
    // adoptions may be judged `changed` (the threads' exits overtook the prediction's
    // snapshot), never `mismatch`.
    for r in results(report) {
        for a in r["adoptions"].as_array().unwrap() {
            assert_eq!(a["ok"], true, "{a}");
            assert_eq!(a["observed"]["tid"], r["expected"]["tid"], "{a}");
            if r["scenario"] == "threads-exit" && a["verdict"] == "changed" {
                continue;
            }
            assert_eq!(a["verdict"], "match", "{a}");
            assert_eq!(a["predicted"]["tid"], r["expected"]["tid"], "{a}");
        }
    }
    // Every scenario fills its three columns.
    for r in results(report) {
        if r["status"] != "PASS" {
            continue;
        }
        for cell in ["expected_text", "observed_text", "predicted_text"] {
            assert_ne!(r[cell], "-", "{} has no {cell}: {r:#}", r["scenario"]);
        }
    }

    // `sleep` as PID 1: ten zombies left, none reaped by a wait.
    let sleep = result(report, "pid1-sleep");
    assert_eq!(sleep["zombies"]["orphans"], 10, "{sleep:#}");
    assert_eq!(sleep["zombies"]["left_in_proc"], 10, "{sleep:#}");
    assert_eq!(sleep["zombies"]["not_reaped"], 10, "{sleep:#}");
    assert!(
        sleep["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("10 zombies left under sleep"),
        "{sleep:#}"
    );
    // The reaping inits: none left, every orphan waited for within 100 ms.
    for name in [
        "pid1-reaper-init",
        "pid1-tini",
        "pid1-dumb-init",
        "pid1-catatonit",
    ] {
        let r = result(report, name);
        if r["status"] == "SKIPPED" {
            continue;
        }
        let z = &r["zombies"];
        assert_eq!(z["left_in_proc"], 0, "{r:#}");
        // A reap recorded as `auto` is the init's wait winning the race with the orphan's
        // last context switch (see the report's notes).
        let reaped = z["reaped_by_wait"].as_u64().unwrap() + z["reaped_auto"].as_u64().unwrap();
        assert_eq!(reaped, 10, "{r:#}");
        assert_eq!(z["reaped_by_other"], 0, "{r:#}");
        assert!(z["max_zombie_ms"].as_f64().unwrap() <= 100.0, "{r:#}");
    }
    check_exiting_subreaper(report);
    check_kernel_fact_scenarios(report);

    assert_nothing_left(&run);
}

/// The exiting subreaper was really exiting when it was skipped: held inside its exit,
/// PF_EXITING in /proc, from before the father's exit until after the orphan's adoption.
fn check_exiting_subreaper(report: &Value) {
    let ex = result(report, "exiting-subreaper");
    if ex["status"] == "SKIPPED" {
        return;
    }
    assert!(
        ex["notes"][0].as_str().unwrap().ends_with("was skipped"),
        "{ex:#}"
    );
    let pids = &ex["pids"];
    for when in ["subreaper_held", "subreaper_after"] {
        let flags = pids[when]["flags"].as_u64().unwrap();
        assert_ne!(flags & 0x4, 0, "PF_EXITING {when}: {ex:#}");
    }
    assert_eq!(pids["father_exited"]["state"], "Z", "{ex:#}");
    assert_eq!(
        pids["father_exited"]["ppid"], pids["exiting_subreaper"],
        "{ex:#}"
    );
    assert_eq!(pids["orphan_adopted"]["ppid"], pids["reaper"], "{ex:#}");
}

/// The scenarios checked against the kernel's facts: what they report, and that the table
/// shows it.
fn check_kernel_fact_scenarios(report: &Value) {
    let text = |r: &Value, cell: &str| r[cell].as_str().unwrap_or("").to_string();

    // The tracer's wait returned the tracee (exit 7) and left it a zombie of its parent.
    let r = result(report, "ptrace-wait");
    let p = &r["pids"];
    assert_eq!(p["tracer_wait"]["ret"], p["tracee"], "{r:#}");
    assert_eq!(p["tracer_wait"]["status"], 7 << 8, "{r:#}");
    assert_eq!(p["tracee_after_tracer_wait"]["state"], "Z", "{r:#}");
    assert!(
        text(r, "observed_text").starts_with(&format!("reaped by {} ", p["parent"])),
        "{r:#}"
    );

    // One process across the exec, its exit code the new program's.
    let r = result(report, "exec-thread");
    let p = &r["pids"];
    assert_eq!(p["after_pid"], p["process"], "{r:#}");
    assert_eq!(p["after_tid"], p["process"], "{r:#}");
    assert_eq!(p["after_start"], p["leader_start"], "{r:#}");
    assert_eq!(p["parent_wait"]["status"], 42 << 8, "{r:#}");
    assert_eq!(p["child_after"]["ppid"], p["process"], "{r:#}");

    // Released at exit: the wait saw none of them.
    let r = result(report, "sigchld-ignored");
    assert_eq!(r["pids"]["parent_wait"]["ret"], -1, "{r:#}");
    assert_eq!(r["pids"]["children"].as_array().unwrap().len(), 5, "{r:#}");
    assert!(
        text(r, "observed_text").starts_with("5/5 reaped auto"),
        "{r:#}"
    );
    assert!(
        text(r, "predicted_text").starts_with("5/5 zombies"),
        "{r:#}"
    );

    let r = result(report, "clone-parent");
    let p = &r["pids"];
    assert_eq!(p["c_ppid"], p["a"], "{r:#}");
    assert!(
        text(r, "observed_text").starts_with(&format!("parent {}, caller {}", p["a"], p["b"])),
        "{r:#}"
    );

    let r = result(report, "wait-race");
    assert_eq!(r["pids"]["waits"].as_array().unwrap().len(), 1000, "{r:#}");
    assert!(
        text(r, "observed_text").ends_with("(wait4), 0 auto, 0 missing"),
        "{r:#}"
    );

    // The orphans' last adoptions name the parent /proc showed.
    let r = result(report, "threads-exit");
    let reaper = &r["pids"]["reaper"];
    let orphans = r["pids"]["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 40, "{r:#}");
    assert!(orphans.iter().all(|o| o["ppid"] == *reaper), "{r:#}");
    assert_eq!(r["adoptions"].as_array().unwrap().len(), 40, "{r:#}");

    let r = result(report, "pid-reuse");
    if r["status"] == "PASS" {
        let reused = r["pids"]["reused"].as_u64().unwrap();
        let waits = r["pids"]["waits"].as_array().unwrap();
        assert!(
            waits.iter().filter(|w| w.as_u64() == Some(reused)).count() >= 2,
            "{r:#}"
        );
        assert!(text(r, "observed_text").contains(&format!("pid {reused}: reaps of starts")));
    }
}

/// The standby copies (attached on 7.x, where the kernel skips programs; forced here): the
/// whole suite passes with every hook's copies and the syscalls' `sys_exit` standbys (a record
/// sent by two copies would be a second reap or adoption, which the verdicts reject: wait-race
/// checks its 1,000 racing waits are one reap each), and leaves nothing behind.
#[test]
fn the_suite_passes_with_every_standby_copy_attached() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = validate_with(
        &[],
        &[
            ("REAPER_TRACE_STANDBY", "1"),
            ("REAPER_TRACE_SYSCALL_STANDBY", "1"),
        ],
    );
    assert_suite_passed(&run);
    assert_nothing_left(&run);
}

#[test]
fn a_hanging_scenario_is_failed_with_the_reason_and_cleaned_up() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // `hang` makes a pid namespace with children, a process that left the process group
    // with setsid and ignores SIGTERM, and an orphan adopted by the validator.
    let run = validate(&["--only", "hang", "--timeout", "2"]);
    assert_eq!(run.output.status.code(), Some(1), "{:#}", run.report);
    let r = result(&run.report, "hang");
    assert_eq!(r["status"], "FAIL", "{r:#}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 2 s; killed"),
        "{r:#}"
    );
    assert_eq!(failures(r).first(), Some(&Failure::Timeout), "{r:#}");
    assert!(
        r["processes"].as_array().unwrap().len() >= 5,
        "the hang scenario's processes were not all seen: {r:#}"
    );
    assert!(!r["killed"].as_array().unwrap().is_empty(), "{r:#}");
    assert_eq!(run.report["failed"], 1);
    assert_nothing_left(&run);

    // A timeout shorter than any scenario fails it too, rather than passing it.
    let run = validate(&["--only", "orphan-init", "--timeout", "0.001"]);
    assert_eq!(run.output.status.code(), Some(1), "{:#}", run.report);
    let r = result(&run.report, "orphan-init");
    assert_eq!(r["status"], "FAIL", "{r:#}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 0.001 s"),
        "{r:#}"
    );
    assert_eq!(failures(r), [Failure::Timeout], "{r:#}");
    assert_nothing_left(&run);
}

#[test]
fn without_privileges_it_fails_with_one_line() {
    require_root();
    // Its child would be taken for a process another test's run left behind.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A copy that an unprivileged user can execute wherever the build tree is.
    let copy = TempPath::new("reaper-trace");
    std::fs::copy(reaper_trace(), &copy.0).expect("copy the binary");
    let out = Command::new(&copy.0)
        .arg("validate")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("runs as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("reaper-trace: error: missing CAP_BPF"),
        "{stderr}"
    );
    assert!(stderr.contains("run reaper-trace as root"), "{stderr}");
}
