//! End-to-end tests that trace one command's process tree (`record -- COMMAND`) on the real
//! kernel: the built-in scenarios, whose report names the pids involved, and plain commands.
//!
//! Each test traces only its own tree, so they run in parallel. Every recording is also
//! checked with `assert_consistent` (every reap follows its zombie, no zombie left behind).

use reaper_trace_tests::{
    TempPath, Trace, assert_consistent, own_pidns, report_pid, require_root, trace_command,
    trace_scenario, trace_scenario_with_env,
};
use serde_json::{Value, json};

const MS: u64 = 1_000_000;

/// The reparent event of `orphan`, which must be the only one, checked against the
/// scenario's father and reaper.
fn adoption<'a>(trace: &'a Trace, report: &Value, kind: &str) -> &'a Value {
    let orphan = report_pid(report, "orphan");
    let ev = trace.one("reparent", "orphan", "pid", orphan);
    assert_eq!(ev["father"]["pid"], report_pid(report, "father"), "{ev}");
    assert_eq!(ev["reaper"]["pid"], report_pid(report, "reaper"), "{ev}");
    assert_eq!(ev["kind"], kind, "{ev}");
    assert_eq!(ev["verdict"], "match", "{ev}");
    assert_eq!(
        ev["predicted"]["tid"], ev["reaper"]["tid"],
        "prediction differs: {ev}"
    );
    assert_eq!(ev["predicted"]["kind"], kind, "{ev}");
    ev
}

#[test]
fn orphan_is_adopted_by_the_subreaper() {
    require_root();
    let (report, trace, _) = trace_scenario("orphan-subreaper", &[]);
    let reaper = report_pid(&report, "reaper");
    let orphan = report_pid(&report, "orphan");

    let ev = adoption(&trace, &report, "subreaper");
    assert_eq!(ev["predicted"]["tid"], reaper, "{ev}");
    assert_eq!(ev["predicted"]["pid"], reaper, "{ev}");
    assert_ne!(
        ev["zombie"], true,
        "the orphan was alive when adopted: {ev}"
    );

    // The subreaper announced itself.
    let sub = trace.one("subreaper", "task", "pid", reaper);
    assert_eq!(sub["enabled"], true, "{sub}");

    // The orphan dies later; its new parent, the subreaper, reaps it with wait4.
    let zombie = trace.one("zombie", "task", "pid", orphan);
    assert_eq!(zombie["parent"]["pid"], reaper, "{zombie}");
    let reap = trace.one("reap", "task", "pid", orphan);
    assert_eq!(reap["reaper"]["pid"], reaper, "{reap}");
    assert_eq!(reap["how"], "wait4", "{reap}");
    assert_eq!(reap["task"]["start"], zombie["task"]["start"], "{reap}");
    assert_consistent(&trace);
}

#[test]
fn orphan_in_a_pid_namespace_is_adopted_by_its_init() {
    require_root();
    let (report, trace, _) = trace_scenario("orphan-init", &[]);
    let orphan = report_pid(&report, "orphan");

    let ev = adoption(&trace, &report, "init");
    assert_eq!(
        ev["reaper"]["ns_pid"], 1,
        "the reaper is the namespace's PID 1: {ev}"
    );
    let host_ns = own_pidns();
    let orphan_ns = ev["orphan"]["pidns"].as_u64().expect("orphan.pidns");
    assert_ne!(
        orphan_ns, host_ns,
        "the orphan lives in its own pid namespace: {ev}"
    );
    assert_eq!(ev["reaper"]["pidns"], orphan_ns, "{ev}");
    let ns_pid = ev["orphan"]["ns_pid"].as_u64().expect("orphan.ns_pid");
    assert!(
        (2..10).contains(&ns_pid) && ns_pid != u64::from(orphan),
        "the orphan's ns_pid is its namespace's number: {ev}"
    );

    let reap = trace.one("reap", "task", "pid", orphan);
    assert_eq!(
        reap["reaper"]["pid"],
        report_pid(&report, "reaper"),
        "{reap}"
    );
    assert_eq!(reap["how"], "wait4", "{reap}");
    assert_consistent(&trace);
}

#[test]
fn zombie_lives_until_its_parent_waits() {
    require_root();
    let (report, trace, _) = trace_scenario("zombie", &[]);
    let parent = report_pid(&report, "parent");
    let child = report_pid(&report, "zombie");

    let exit = trace.one("exit", "task", "pid", child);
    assert_eq!(exit["status"], json!({"code": 7}), "{exit}");
    assert!(exit["age_ns"].as_u64().expect("age_ns") > 0, "{exit}");
    assert_eq!(exit["thread"], false, "{exit}");

    let zombie = trace.one("zombie", "task", "pid", child);
    assert_eq!(zombie["parent"]["pid"], parent, "{zombie}");
    assert_eq!(zombie["status"], json!({"code": 7}), "{zombie}");

    let reap = trace.one("reap", "task", "pid", child);
    assert_eq!(reap["reaper"]["pid"], parent, "{reap}");
    assert_eq!(reap["how"], "wait4", "{reap}");
    // How long it was a zombie, from the kernel's clock rather than a fixed window (a loaded
    // machine runs the child late, or wakes the parent late): the parent's wait came no
    // earlier than its sleep after the fork, the child exited after the fork, and the zombie
    // time is the span from its exit to that wait.
    let ns = reap["zombie_ns"].as_u64().expect("zombie_ns is known");
    let ts = |e: &Value| e["ts"].as_u64().expect("ts");
    let fork = trace.one("fork", "child", "pid", child);
    let slept = (report["pids"]["seconds"].as_f64().expect("seconds") * 1e9) as u64;
    let exited_after_fork = ts(exit) - ts(fork);
    let waited_after_fork = ts(reap) - ts(fork);
    assert!(
        waited_after_fork >= slept,
        "the parent waited {waited_after_fork} ns after the fork, before its {slept} ns sleep was over: {reap}"
    );
    assert!(
        ts(zombie) >= ts(exit) && ts(reap) - ts(zombie) == ns,
        "zombie_ns {ns} is not the span from the zombie event to the reap: {zombie} {reap}"
    );
    assert!(
        ns + exited_after_fork >= slept && ns <= waited_after_fork,
        "the child (exited {exited_after_fork} ns after the fork) was a zombie for {ns} ns, \
         not until the wait {waited_after_fork} ns after the fork: {reap}"
    );
    // A zombie for about the sleep, unless the child or the parent ran very late.
    assert!(
        ns <= slept + 10_000 * MS,
        "a zombie for {ns} ns, more than 10 s past the parent's {slept} ns sleep: {reap}"
    );
    assert_consistent(&trace);
}

#[test]
fn zombie_of_a_sleep_init_is_freed_only_with_its_namespace() {
    require_root();
    let (report, trace, _) = trace_scenario("sleep-init", &["--seconds", "2"]);
    let init = report_pid(&report, "reaper");
    let orphan = report_pid(&report, "orphan");

    let ev = adoption(&trace, &report, "init");
    // (It may adopt the orphan before or after it execs `sleep`.)
    assert_eq!(ev["reaper"]["ns_pid"], 1, "{ev}");

    // `sleep` never waits: the orphan stays its zombie ...
    let zombie = trace.one("zombie", "task", "pid", orphan);
    assert_eq!(zombie["parent"]["pid"], init, "{zombie}");
    assert_eq!(zombie["parent"]["ns_pid"], 1, "{zombie}");
    assert_eq!(zombie["parent"]["comm"], "sleep", "{zombie}");
    // ... nobody reaps it with a wait ...
    let reaps = trace.all("reap", "task", "pid", orphan);
    assert!(
        reaps
            .iter()
            .all(|r| r["how"] != "wait4" && r["how"] != "waitid"),
        "a sleep init reaped nothing: {reaps:?}"
    );
    // ... until the namespace dies with its init and the kernel reaps it in the teardown.
    let reap = trace.one("reap", "task", "pid", orphan);
    assert_eq!(reap["how"], "namespace", "{reap}");
    assert_eq!(reap["reaper"]["pid"], init, "{reap}");
    let ns = reap["zombie_ns"].as_u64().expect("zombie_ns is known");
    assert!(
        ns >= 1_500 * MS,
        "the orphan stayed a zombie until sleep exited, not {ns} ns: {reap}"
    );
    let init_exit = trace.one("exit", "task", "pid", init);
    assert!(
        reap["ts"].as_u64() >= init_exit["ts"].as_u64(),
        "freed before its namespace died: {reap} {init_exit}"
    );
    assert_consistent(&trace);
}

#[test]
fn subreaper_reaps_a_burst_of_orphans_at_once() {
    require_root();
    let (report, trace, _) = trace_scenario("subreaper-reaps", &[]);
    let reaper = report_pid(&report, "reaper");
    let father = report_pid(&report, "father");
    assert_eq!(
        report_pid(&report, "reaped"),
        20,
        "the subreaper reaped the 20 orphans"
    );

    let orphans: Vec<u64> = trace
        .all("fork", "parent", "pid", father)
        .iter()
        .map(|e| e["child"]["pid"].as_u64().expect("child.pid"))
        .collect();
    assert_eq!(
        orphans.len(),
        20,
        "the father forks 20 children:\n{}",
        trace.dump()
    );

    for &orphan in &orphans {
        let orphan = orphan as u32;
        let ev = trace.one("reparent", "orphan", "pid", orphan);
        assert_eq!(ev["father"]["pid"], father, "{ev}");
        assert_eq!(ev["reaper"]["pid"], reaper, "{ev}");
        assert_eq!(ev["kind"], "subreaper", "{ev}");
        assert_eq!(ev["verdict"], "match", "{ev}");

        let reap = trace.one("reap", "task", "pid", orphan);
        assert_eq!(reap["reaper"]["pid"], reaper, "{reap}");
        assert_eq!(reap["how"], "wait4", "{reap}");
        let ns = reap["zombie_ns"].as_u64().expect("zombie_ns is known");
        assert!(
            ns < 200 * MS,
            "a reaping subreaper reaps at once, not after {ns} ns: {reap}"
        );
    }
    assert_eq!(
        trace
            .of_type("reparent")
            .filter(|e| e["kind"] == "subreaper" && e["reaper"]["pid"] == reaper)
            .count(),
        20
    );
    assert_consistent(&trace);
}

#[test]
fn sibling_thread_adopts_the_child_of_an_exiting_thread() {
    require_root();
    check_thread_reaper(&[]);
}

/// The exit program's path for kernels whose `sched_process_exit` passes no `group_dead`
/// (it reads `signal->live`), forced on this kernel: a thread's exit is not the group's, the
/// process's last one is.
#[test]
fn group_dead_from_signal_live_where_the_tracepoint_lacks_it() {
    require_root();
    check_thread_reaper(&[("REAPER_TRACE_NO_EXIT_GROUP_DEAD", "1")]);
}

fn check_thread_reaper(env: &[(&str, &str)]) {
    let (report, trace, _) = trace_scenario_with_env("thread-reaper", &[], env);
    let father = report_pid(&report, "father");
    let reaper = report_pid(&report, "reaper");
    let orphan = report_pid(&report, "orphan");
    assert_ne!(father, reaper);

    let ev = trace.one("reparent", "orphan", "pid", orphan);
    assert_eq!(ev["father"]["tid"], father, "{ev}");
    assert_eq!(
        ev["father"]["pid"], reaper,
        "the father is a thread of the reaper's process: {ev}"
    );
    assert_eq!(ev["reaper"]["tid"], reaper, "{ev}");
    assert_eq!(ev["kind"], "thread", "{ev}");
    assert_eq!(ev["verdict"], "match", "{ev}");
    assert_eq!(ev["predicted"]["tid"], reaper, "{ev}");

    let exit = trace.one("exit", "task", "tid", father);
    assert_eq!(exit["thread"], true, "{exit}");
    assert_eq!(exit["group_dead"], false, "{exit}");
    assert_eq!(exit["children"], 1, "{exit}");

    let reap = trace.one("reap", "task", "pid", orphan);
    assert_eq!(reap["reaper"]["pid"], reaper, "{reap}");
    let orphan_exit = trace.one("exit", "task", "pid", orphan);
    assert_eq!(orphan_exit["group_dead"], true, "{orphan_exit}");
    let last = trace
        .of_type("exit")
        .find(|e| e["task"]["tid"] == reaper)
        .expect("the process's main thread exits");
    assert_eq!(last["group_dead"], true, "{last}");
    assert_consistent(&trace);
}

/// The pid of the command `record` started: the child of its one fork event whose parent is
/// the `record` process.
fn command_pid(trace: &Trace, record_pid: u32) -> u32 {
    let fork = trace.one("fork", "parent", "pid", record_pid);
    assert_eq!(fork["thread"], false, "{fork}");
    fork["child"]["pid"].as_u64().expect("child.pid") as u32
}

#[test]
fn fork_exec_and_exit_of_a_shell_are_recorded() {
    require_root();
    let (trace, output, record_pid) = trace_command(&["sh", "-c", "sleep 0.1; exit 3"]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "record exits with the command's code: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sh = command_pid(&trace, record_pid);
    let exec = trace.one("exec", "task", "pid", sh);
    assert!(
        exec["filename"].as_str().expect("filename").ends_with("sh"),
        "{exec}"
    );
    assert_eq!(
        exec["args"],
        json!(["sh", "-c", "sleep 0.1; exit 3"]),
        "{exec}"
    );

    // sh forks a child for `sleep`, which execs it.
    let fork = trace.one("fork", "parent", "pid", sh);
    assert_eq!(fork["thread"], false, "{fork}");
    let child = fork["child"]["pid"].as_u64().expect("child.pid") as u32;
    let exec = trace.one("exec", "task", "pid", child);
    assert!(
        exec["filename"]
            .as_str()
            .expect("filename")
            .ends_with("sleep"),
        "{exec}"
    );
    assert_eq!(exec["args"], json!(["sleep", "0.1"]), "{exec}");
    assert_eq!(exec["task"]["comm"], "sleep", "{exec}");
    let exit = trace.one("exit", "task", "pid", child);
    assert_eq!(exit["status"], json!({"code": 0}), "{exit}");
    assert!(
        exit["age_ns"].as_u64().expect("age_ns") >= 100 * MS,
        "{exit}"
    );

    let exit = trace.one("exit", "task", "pid", sh);
    assert_eq!(exit["status"], json!({"code": 3}), "{exit}");
    assert_eq!(exit["group_dead"], true, "{exit}");
    assert_consistent(&trace);

    // Killed by a signal: the status says which, and record exits 128 + 9.
    let (trace, output, record_pid) = trace_command(&["sh", "-c", "kill -9 $$"]);
    assert_eq!(output.status.code(), Some(137));
    let sh = command_pid(&trace, record_pid);
    let exit = trace.one("exit", "task", "pid", sh);
    assert_eq!(exit["status"], json!({"signal": 9}), "{exit}");
    let zombie = trace.one("zombie", "task", "pid", sh);
    assert_eq!(zombie["status"], json!({"signal": 9}), "{zombie}");
    assert_eq!(zombie["parent"]["pid"], record_pid, "{zombie}");
    assert_consistent(&trace);
}

#[test]
fn header_describes_the_recording() {
    require_root();
    let command = ["sh", "-c", "exit 0", "an argument with spaces"];
    let before = std::time::SystemTime::now();
    let (trace, output, _) = trace_command(&command);
    let after = std::time::SystemTime::now();
    assert!(output.status.success());
    let h = &trace.header;
    assert_eq!(h["schema"], 1, "{h}");
    assert!(
        h["tool"]
            .as_str()
            .expect("tool")
            .starts_with("reaper-trace "),
        "{h}"
    );

    let uname = std::process::Command::new("uname")
        .arg("-r")
        .output()
        .expect("uname");
    let release = String::from_utf8(uname.stdout).expect("utf-8");
    assert_eq!(h["kernel"], release.trim(), "{h}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(h["host"], host.trim(), "{h}");
    assert_eq!(h["command"], json!(command), "{h}");

    // boot_time_ns + started_ts is the wall-clock time recording started.
    let boot = h["boot_time_ns"].as_u64().expect("boot_time_ns");
    let started = h["started_ts"].as_u64().expect("started_ts");
    assert!(boot > 0 && started > 0, "{h}");
    let unix_ns = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    };
    let wall = boot + started;
    assert!(
        wall + 1_000 * MS >= unix_ns(before) && wall <= unix_ns(after) + 1_000 * MS,
        "boot_time_ns + started_ts is not when the recording started: {h}"
    );
    let first = trace.events.first().expect("events after the header");
    assert!(first["ts"].as_u64().expect("ts") >= started, "{first}");
    assert_consistent(&trace);
}

/// A parent with more children than the kernel side follows: the programs for kernels without
/// `bpf_loop` (forced here) follow 64. Those adoptions are reported, the rest are counted as
/// lost `children`, the exit says it was truncated, and the kernel program's warning (aya-log)
/// reaches standard error. (With `bpf_loop` every child of an exit is followed: see the truth
/// tests with 300 and 10,000 children.)
#[test]
fn more_children_than_followed_are_counted_not_hidden() {
    require_root();
    let out = TempPath::new("many-children.jsonl");
    // reaper-init -s reaps the orphans, so none is left a zombie under the machine's init.
    let output = std::process::Command::new(reaper_trace_tests::reaper_trace())
        .env("REAPER_TRACE_NO_BPF_LOOP", "1")
        .args(["record", "-o"])
        .arg(&out.0)
        .arg("--")
        .arg(reaper_trace_tests::reaper_init())
        .args([
            "-s",
            "--",
            "sh",
            "-c",
            "(for i in $(seq 300); do sleep 0.3 & done); sleep 1",
        ])
        .output()
        .expect("reaper-trace runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let trace = Trace::read(&out.0);
    let father = trace
        .of_type("exit")
        .find(|e| e["children_truncated"] == true)
        .unwrap_or_else(|| panic!("no truncated exit:\n{}", trace.dump()));
    assert_eq!(father["children"], 64, "{father}");
    let father_pid = father["task"]["pid"].as_u64().unwrap() as u32;
    let adopted = trace.all("reparent", "father", "pid", father_pid);
    assert_eq!(adopted.len(), 64, "one reparent per followed child");
    assert!(
        adopted
            .iter()
            .all(|e| e["kind"] == "subreaper" && e["verdict"] == "match"),
        "adopted by reaper-init as a subreaper"
    );
    assert!(trace.lost("children") >= 1, "{}", trace.dump());
    assert!(
        stderr.contains(&format!(
            "reaper-trace: kernel: task {father_pid} exits with more children than are followed: 64 followed"
        )),
        "{stderr}"
    );
    assert_consistent(&trace);
}
