//! The article's experiment with real Docker: a container whose PID 1 is `sleep`, a process
//! entered with `docker exec` that leaves orphans: they are adopted by PID 1 (not by the shim)
//! and stay zombies, named by container; `doctor` names that PID 1; with `docker run --init`,
//! docker-init adopts and reaps them.
//!
//! Skipped, with the reason printed, where dockerd cannot run (`REAPER_TRACE_REQUIRE_DOCKER=1`
//! makes that a failure).

use std::process::{Command, Stdio};
use std::time::Duration;

use reaper_trace_tests::daemon::Daemon;
use reaper_trace_tests::docker::{self, Container, CtrContainer};
use reaper_trace_tests::prometheus::Prometheus;
use reaper_trace_tests::{
    ChildGuard, TempPath, Trace, reaper_trace, require_root, wait_for_header,
};
use serde_json::Value;

fn pid_of(p: &Value) -> u32 {
    p["pid"].as_u64().unwrap_or(0) as u32
}

/// The events about a namespace's tasks, one short line each (for failure messages).
fn summary(trace: &Trace, ns: u64) -> String {
    let p = |v: &Value| format!("{}/{} {}", v["pid"], v["ns_pid"], v["comm"]);
    trace
        .events
        .iter()
        .filter(|e| {
            ["task", "orphan", "child"]
                .iter()
                .any(|k| e[k]["pidns"] == ns)
        })
        .map(|e| match e["type"].as_str() {
            Some("reparent") => format!(
                "reparent {} to {} ({})",
                p(&e["orphan"]),
                p(&e["reaper"]),
                e["kind"]
            ),
            Some("zombie") => format!("zombie {} of {}", p(&e["task"]), p(&e["parent"])),
            Some("reap") => format!(
                "reap {} by {} ({})",
                p(&e["task"]),
                p(&e["reaper"]),
                e["how"]
            ),
            Some("fork") => format!("fork {} -> {}", p(&e["parent"]), p(&e["child"])),
            Some(t) => format!("{t} {}", p(&e["task"])),
            None => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The tests here watch the whole machine: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn docker_exec_orphans_are_held_by_pid_1_and_doctor_names_it() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(reason) = docker::ready() {
        docker::skip(
            "docker_exec_orphans_are_held_by_pid_1_and_doctor_names_it",
            &reason,
        );
        return;
    }
    let plain = Container::run("reaper-trace-test", false);
    let with_init = Container::run("reaper-trace-test-init", true);
    // The daemon, for Prometheus to scrape.
    let socket = TempPath::new("containers.sock");
    let daemon = Daemon::start(socket.0.clone(), &["--zombie-threshold", "2s"]);

    // doctor first (it watches 16 s), then a recording; both system-wide.
    let doctor = Command::new(reaper_trace())
        .args(["doctor", "-d", "16s", "--zombie-threshold", "2s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("doctor runs");
    let path = TempPath::new("containers.jsonl");
    let mut record = ChildGuard::new(
        Command::new(reaper_trace())
            .args(["record", "-q", "-o"])
            .arg(&path.0)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("record runs"),
    );
    wait_for_header(&path.0, &mut record, Duration::from_secs(60));

    for c in [&plain, &with_init] {
        c.exec_parent();
    }
    for c in [&plain, &with_init] {
        c.kill_parent();
    }
    for c in [&plain, &with_init] {
        c.release_job();
    }
    // Both of the plain container's orphans exited (a loaded machine runs their last
    // `sleep 0.1` late); docker-init reaps its two as they exit.
    docker::wait_for_zombies_of(plain.init_pid, 2);
    let unreaped = docker::wait_for_scripts_reaped(with_init.init_pid);

    // What the kernel holds now, from /proc: zombies whose parent is the plain PID 1.
    let held = docker::zombie_children(plain.init_pid);
    let held_by_docker_init = docker::zombie_children(with_init.init_pid);
    record.signal(libc::SIGINT);
    let status = record
        .wait_timeout(Duration::from_secs(20))
        .expect("record stops");
    assert!(status.success(), "record: {}", record.stderr());
    let trace = Trace::read(&path.0);

    assert_eq!(
        held.len(),
        2,
        "/proc: child.sh and its background job are zombies held by PID 1"
    );
    assert!(
        held_by_docker_init.is_empty(),
        "docker-init reaps: {held_by_docker_init:?}"
    );
    assert_eq!(
        unreaped, 0,
        "/proc: child.sh and its job exited and docker-init reaped them within 20 s"
    );

    // Each container named once, from its init's cgroup and Docker's config.
    for c in [&plain, &with_init] {
        let named: Vec<&Value> = trace
            .of_type("container")
            .filter(|e| e["id"] == c.id.as_str())
            .collect();
        assert_eq!(named.len(), 1, "{}: {}", c.name, trace.dump());
        let e = named[0];
        assert_eq!(e["runtime"], "docker");
        assert_eq!(e["name"], c.name.as_str());
        assert_eq!(e["init_pid"], c.init_pid);
        assert_eq!(
            e["cgroup"],
            format!("/docker/{}", c.id),
            "cgroupfs driver here"
        );
    }
    let pidns_of = |c: &Container| -> u64 {
        trace
            .of_type("container")
            .find(|e| e["id"] == c.id.as_str())
            .unwrap()["pidns"]
            .as_u64()
            .unwrap()
    };

    // Without an init: PID 1 `sleep` adopted child.sh and its background job (and parent.sh's
    // `sleep 1000`), not the shim; the two that exited are zombies it never reaps.
    let ns = pidns_of(&plain);
    let adopted: Vec<&Value> = trace
        .of_type("reparent")
        .filter(|e| e["reaper"]["pid"] == plain.init_pid)
        .collect();
    assert!(adopted.len() >= 2, "{}", trace.dump());
    for e in &adopted {
        assert_eq!(e["kind"], "init");
        assert_eq!(e["verdict"], "match");
        assert_eq!(e["reaper"]["ns_pid"], 1);
        assert_eq!(e["reaper"]["comm"], "sleep");
        assert_eq!(e["orphan"]["pidns"], ns);
    }
    for &pid in &held {
        let z = trace.one("zombie", "task", "pid", pid);
        assert_eq!(pid_of(&z["parent"]), plain.init_pid, "{z}");
        assert_eq!(z["task"]["pidns"], ns);
        assert!(
            trace.find("reap", "task", "pid", pid).is_none(),
            "nothing reaps it while the container runs"
        );
    }
    // The shim (a subreaper outside the namespace) adopted only what runc left behind
    // (parents outside the namespace): below a namespace's processes, the search for a
    // subreaper stops at its init.
    for e in trace
        .of_type("reparent")
        .filter(|e| e["orphan"]["pidns"] == ns)
    {
        if e["kind"] == "subreaper" {
            assert_ne!(e["father"]["pidns"], ns, "{e}");
        }
    }

    // With --init: docker-init adopted them and reaped each at once.
    let ns = pidns_of(&with_init);
    let adopted: Vec<&Value> = trace
        .of_type("reparent")
        .filter(|e| e["reaper"]["pid"] == with_init.init_pid)
        .collect();
    assert!(adopted.len() >= 2, "{}", trace.dump());
    let reaped: Vec<&Value> = trace
        .of_type("reap")
        .filter(|e| e["reaper"]["pid"] == with_init.init_pid && e["task"]["pidns"] == ns)
        .collect();
    assert!(
        reaped.len() >= 2,
        "docker-init reaped {reaped:?}; in its namespace: {}",
        summary(&trace, ns)
    );
    for r in &reaped {
        assert_eq!(r["reaper"]["comm"], "docker-init");
        assert_eq!(r["how"], "wait4");
        assert!(r["zombie_ns"].as_u64().unwrap() < 1_000_000_000, "{r}");
    }

    // doctor names the plain PID 1, not docker-init, and fails.
    let out = doctor.wait_with_output().expect("doctor ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let short = &plain.id[..12];
    let line = stdout
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "container {} (docker {short}): PID 1 `sleep`",
                plain.name
            ))
        })
        .unwrap_or_else(|| panic!("doctor did not name {}: {stdout}", plain.name));
    assert!(line.contains("2 zombies"), "{line}");
    assert!(
        line.ends_with("run it under an init (docker run --init, tini, reaper-init)"),
        "{line}"
    );
    assert!(!stdout.contains(&with_init.name), "{stdout}");

    // The same diagnosis from the recording.
    let out = Command::new(reaper_trace())
        .args(["doctor", "--zombie-threshold", "1s", "--replay"])
        .arg(&path.0)
        .output()
        .unwrap();
    let replayed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{replayed}");
    assert!(
        replayed.contains(&format!(
            "container {} (docker {short}): PID 1 `sleep`",
            plain.name
        )),
        "{replayed}"
    );

    // A real Prometheus scrapes the daemon and evaluates the packaged rules: the zombie gauge
    // for that container, through its HTTP API, and the alert for the process holding them.
    let prometheus = match Prometheus::start_with_rules(&daemon.metrics, true) {
        Ok(p) => p,
        Err(reason) => {
            docker::skip("the Prometheus part of the Docker test", &reason);
            return;
        }
    };
    let query = format!(r#"sum(reaper_trace_zombies{{container="{}"}})"#, plain.name);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let value = loop {
        let result = prometheus.query(&query);
        if let Some(v) = result.first().and_then(|r| r["value"][1].as_str()) {
            break v.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus has no {query}; the daemon serves:\n{}",
            daemon.scrape()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(value, "2", "{query}");
    let by_reaper = prometheus.query(&format!(
        r#"reaper_trace_zombies{{container="{}",reaper="sleep"}}"#,
        plain.name
    ));
    assert_eq!(by_reaper.len(), 1, "{by_reaper:?}");
    let none = prometheus.query(&format!(
        r#"reaper_trace_zombies{{container="{}"}}"#,
        with_init.name
    ));
    assert!(none.is_empty(), "docker-init holds no zombie: {none:?}");
    let unreaping = prometheus.query("reaper_trace_unreaping_reapers");
    assert!(
        unreaping
            .first()
            .and_then(|r| r["value"][1].as_str())
            .is_some_and(|v| v.parse::<f64>().unwrap_or(0.0) >= 1.0),
        "{unreaping:?}"
    );

    // The alert names the container and its PID 1, and only it; once the container is gone
    // (its zombies with it), it clears.
    let held = |p: &Prometheus| -> Vec<Value> {
        p.firing("ReaperTraceZombiesHeld")
            .into_iter()
            .filter(|a| {
                a["container"] == plain.name.as_str() || a["container"] == with_init.name.as_str()
            })
            .collect()
    };
    let firing = wait_for(&prometheus, "ReaperTraceZombiesHeld to fire", |p| {
        let a = held(p);
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0]["container"], plain.name.as_str(), "{firing:?}");
    assert_eq!(firing[0]["reaper"], "sleep", "{firing:?}");
    assert_eq!(firing[0]["severity"], "warning", "{firing:?}");
    docker::docker_ok(&["rm", "-f", &plain.name]);
    wait_for(&prometheus, "ReaperTraceZombiesHeld to clear", |p| {
        held(p).is_empty().then_some(())
    });
    let down = prometheus.firing("ReaperTraceDown");
    assert!(down.is_empty(), "the daemon is up: {down:?}");
}

/// Polls `check` on Prometheus for up to 60 s (the rules run every second, `for:` is 2 s
/// here, a scrape every second).
fn wait_for<T>(p: &Prometheus, what: &str, check: impl Fn(&Prometheus) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check(p) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} within 60 s; alerts: {:?}",
            p.query("ALERTS")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// containerd without Docker's names: a container `ctr run` named itself. Its cgroup path
/// (`/NAMESPACE/NAME` under cgroupfs) looks like any cgroup; containerd's task directory
/// says it is one. doctor names it and its PID 1. (Before that directory was read, the same
/// container was `pid namespace N (runtime none)`.)
#[test]
fn a_container_ctr_ran_is_named_by_doctor() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(reason) = CtrContainer::ready() {
        docker::skip("a_container_ctr_ran_is_named_by_doctor", &reason);
        return;
    }
    let c = CtrContainer::run("reaper-trace-test-ctr");
    let line = doctor_line_for(
        c.init_pid,
        &format!("container {} (containerd): PID 1 `sleep`", c.name),
        || c.make_orphans_exit(),
    );
    assert!(line.contains("2 zombies"), "{line}");
}

/// Runs `doctor` while `make_zombies` leaves two zombies under `init_pid` (checked in
/// `/proc`); doctor must fail and say a line starting with `prefix`, which is returned.
fn doctor_line_for(init_pid: u32, prefix: &str, make_zombies: impl FnOnce()) -> String {
    let doctor = Command::new(reaper_trace())
        .args(["doctor", "-d", "60s", "--zombie-threshold", "1s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("doctor runs");
    make_zombies();
    assert_eq!(
        docker::wait_for_zombies_of(init_pid, 2),
        2,
        "/proc: two zombies held by the container's PID 1"
    );
    // Past the zombie threshold, then Ctrl-C: doctor reports at once.
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(doctor.id() as i32, libc::SIGINT) };
    let out = doctor.wait_with_output().expect("doctor ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("doctor did not say {prefix}: {stdout}"))
        .to_string()
}

/// Podman (Debian's package, rootful, cgroupfs: `/libpod_parent/libpod-ID`): a container
/// whose PID 1 holds two zombies is named from Podman's own files, by doctor.
#[test]
fn a_podman_container_is_named_by_doctor() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(reason) = docker::podman_ready() {
        docker::skip("a_podman_container_is_named_by_doctor", &reason);
        return;
    }
    // Podman raises the container's open-file and process limits by default, which takes
    // CAP_SYS_RESOURCE; these VMs' bounding set lacks it, so ask for limits below our own.
    let c = Container::run_with(
        "podman",
        &[
            "--network=none",
            "--ulimit=nofile=4096:4096",
            "--ulimit=nproc=4096:4096",
        ],
        "reaper-trace-test-podman",
        false,
    );
    let prefix = format!(
        "container {} (podman {}): PID 1 `sleep`",
        c.name,
        &c.id[..12]
    );
    let line = doctor_line_for(c.init_pid, &prefix, || {
        c.exec_parent();
        c.kill_parent();
        c.release_job();
    });
    assert!(line.contains("2 zombies"), "{line}");
    assert!(
        line.ends_with("podman run --init, tini, reaper-init)"),
        "{line}"
    );
}
