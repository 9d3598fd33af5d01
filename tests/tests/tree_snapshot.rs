//! `reaper-trace tree` against the kernel's own later behaviour: each test builds a real
//! process tree (`tree_builder`), takes `tree --json`, kills a process (or ends one thread),
//! then checks that the kernel sent its children where `tree` said: their `PPid` in `/proc`,
//! and, for the exact thread, their `real_parent` in a second snapshot. Every prediction
//! must be decided and must hold. Waits are on conditions, never fixed sleeps.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reaper_trace_tests::{reaper_trace, require_root};
use serde_json::{Value, json};

/// How long a condition may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    while !done() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting until {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn status_field(pid: u32, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

fn ppid(pid: u32) -> u32 {
    status_field(pid, "PPid")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no PPid for {pid}"))
}

/// `R`, `S`, `Z`, ... or None once gone.
fn state(pid: u32) -> Option<char> {
    status_field(pid, "State").and_then(|s| s.chars().next())
}

fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// A tree built by `tree_builder`, killed (every process of it) when dropped.
struct Tree {
    builder: Child,
    /// name -> [pid, main tid, thread tids...]
    ids: HashMap<String, Vec<u32>>,
}

fn names(node: &Value, out: &mut Vec<String>) {
    out.push(node["name"].as_str().unwrap().to_string());
    for z in node["zombies"].as_array().into_iter().flatten() {
        out.push(z.as_str().unwrap().to_string());
    }
    for c in node["children"].as_array().into_iter().flatten() {
        names(c, out);
    }
}

impl Tree {
    fn build(spec: Value) -> Tree {
        let mut want = Vec::new();
        names(&spec, &mut want);
        let mut builder = Command::new(env!("CARGO_BIN_EXE_tree_builder"))
            .arg(spec.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("tree_builder starts");
        let mut lines = BufReader::new(builder.stdout.take().unwrap()).lines();
        let mut ids = HashMap::new();
        while ids.len() < want.len() {
            let line = lines
                .next()
                .expect("tree_builder reports every process")
                .unwrap();
            let mut f = line.split_whitespace();
            let name = f.next().unwrap().to_string();
            ids.insert(name, f.map(|n| n.parse().unwrap()).collect::<Vec<u32>>());
        }
        let tree = Tree { builder, ids };
        // The zombies are zombies, every thread is in place.
        for (name, ids) in &tree.ids {
            if name.starts_with('z') {
                wait_until(&format!("{name} is a zombie"), || {
                    state(ids[0]) == Some('Z')
                });
            }
        }
        tree
    }

    fn pid(&self, name: &str) -> u32 {
        self.ids[name][0]
    }

    /// Thread `k` of process `name` (0: its main thread).
    fn tid(&self, name: &str, k: usize) -> u32 {
        self.ids[name][1 + k]
    }

    /// `tree --json --threads` of the builder's subtree.
    fn snapshot(&self) -> Value {
        let out = Command::new(reaper_trace())
            .args([
                "tree",
                "--json",
                "--threads",
                &self.builder.id().to_string(),
            ])
            .output()
            .expect("reaper-trace runs");
        assert!(
            out.status.success(),
            "tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        for ids in self.ids.values() {
            // SAFETY: plain kill of a process this test started.
            unsafe { libc::kill(ids[0] as i32, libc::SIGKILL) };
        }
        let _ = self.builder.kill();
        let _ = self.builder.wait();
    }
}

fn process(doc: &Value, pid: u32) -> &Value {
    doc["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("process {pid} is not in the snapshot: {doc}"))
}

/// The decided prediction for `pid`'s children, checked to be of `kind`.
fn predicted<'a>(p: &'a Value, kind: &str) -> &'a Value {
    let d = &p["orphans_to"];
    assert_ne!(d["kind"], "undecided", "the snapshot must decide: {p}");
    assert_eq!(d["kind"], kind, "{p}");
    &d["reaper"]
}

/// Kills `name`, waits until it is dead (a zombie or gone, every thread), then checks that
/// each of its children was given to the predicted reaper (pid in /proc, thread in a second
/// snapshot). Returns the prediction.
fn kill_and_check(tree: &Tree, name: &str, kind: &str) -> Value {
    let doc = tree.snapshot();
    let victim = tree.pid(name);
    let p = process(&doc, victim);
    let reaper = predicted(p, kind).clone();
    let children: Vec<u32> = p["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as u32)
        .collect();
    assert!(!children.is_empty(), "{name} has children: {p}");
    // SAFETY: a process of this test's tree.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    wait_until(&format!("{name} ({victim}) is dead"), || {
        matches!(state(victim), None | Some('Z') | Some('X')) && threads_of(victim) <= 1
    });
    for &c in &children {
        assert_eq!(
            ppid(c),
            reaper["pid"].as_u64().unwrap() as u32,
            "the kernel gave {c} (child of {name}) to another parent than `tree` said ({reaper})"
        );
    }
    let after = tree.snapshot();
    for &c in &children {
        let cp = process(&after, c);
        assert_eq!(cp["parent"]["tid"], reaper["tid"], "{cp}");
    }
    reaper
}

fn node(name: &str, extra: Value, children: Vec<Value>) -> Value {
    let mut n = json!({"name": name, "children": children});
    for (k, v) in extra.as_object().unwrap() {
        n[k] = v.clone();
    }
    n
}

fn leaf(name: &str) -> Value {
    node(name, json!({}), vec![])
}

#[test]
fn subreaper_chain() {
    require_root();
    let sub = json!({"subreaper": true});
    let tree = Tree::build(node(
        "s1",
        sub.clone(),
        vec![node(
            "a",
            json!({}),
            vec![node(
                "s2",
                sub.clone(),
                vec![node(
                    "b",
                    json!({}),
                    vec![node("c", json!({}), vec![leaf("d")])],
                )],
            )],
        )],
    ));
    let doc = tree.snapshot();
    assert_eq!(process(&doc, tree.pid("s2"))["subreaper"], true);
    assert_eq!(process(&doc, tree.pid("c"))["has_child_subreaper"], true);
    let r = kill_and_check(&tree, "c", "subreaper");
    assert_eq!(r["pid"], tree.pid("s2"));
    let r = kill_and_check(&tree, "b", "subreaper");
    assert_eq!(r["pid"], tree.pid("s2"));
    let r = kill_and_check(&tree, "a", "subreaper");
    assert_eq!(r["pid"], tree.pid("s1"));
}

#[test]
fn a_cleared_subreaper_is_passed_over() {
    require_root();
    let tree = Tree::build(node(
        "s1",
        json!({"subreaper": true}),
        vec![node(
            "x",
            json!({"clear_subreaper": true}),
            vec![node("a", json!({}), vec![leaf("b")])],
        )],
    ));
    let doc = tree.snapshot();
    let x = process(&doc, tree.pid("x"));
    assert_eq!(x["subreaper"], false, "{x}");
    assert_eq!(x["has_child_subreaper"], true, "{x}");
    let r = kill_and_check(&tree, "a", "subreaper");
    assert_eq!(r["pid"], tree.pid("s1"), "not the cleared x");
}

#[test]
fn nested_pid_namespaces() {
    require_root();
    let tree = Tree::build(node(
        "i1",
        json!({"newns": true}),
        vec![
            node(
                "s",
                json!({"subreaper": true}),
                vec![node(
                    "x",
                    json!({}),
                    vec![node(
                        "i2",
                        json!({"newns": true}),
                        vec![node("c", json!({}), vec![leaf("d")])],
                    )],
                )],
            ),
            node("a", json!({}), vec![leaf("b")]),
        ],
    ));
    let doc = tree.snapshot();
    let i1 = process(&doc, tree.pid("i1"));
    let i2 = process(&doc, tree.pid("i2"));
    assert_eq!(
        (i1["ns_init"].clone(), i1["ns_pid"].clone()),
        (json!(true), json!(1))
    );
    assert_eq!(
        (i2["ns_init"].clone(), i2["ns_pid"].clone()),
        (json!(true), json!(1))
    );
    assert_eq!(i2["level"], i1["level"].as_u64().unwrap() + 1);
    // An init's own death tears its namespace down.
    assert_eq!(i2["orphans_to"]["kind"], "teardown", "{i2}");
    let d = process(&doc, tree.pid("d"));
    assert_eq!(
        d["pids"].as_array().unwrap().len() as u64,
        d["level"].as_u64().unwrap() + 1
    );
    // In the inner namespace, the subreaper outside it does not count.
    let r = kill_and_check(&tree, "c", "init");
    assert_eq!(r["pid"], tree.pid("i2"));
    assert_eq!(r["ns_pid"], 1);
    // The inner init's parent dies: the subreaper of its own level takes it.
    let r = kill_and_check(&tree, "x", "subreaper");
    assert_eq!(r["pid"], tree.pid("s"));
    let r = kill_and_check(&tree, "a", "init");
    assert_eq!(r["pid"], tree.pid("i1"));
}

#[test]
fn multi_threaded_parent() {
    require_root();
    // m: main thread + 2 threads; c1 forked by thread 1, c2 by the main thread.
    let tree = Tree::build(node(
        "i",
        json!({"newns": true}),
        vec![node(
            "m",
            json!({"threads": 2}),
            vec![
                node("c1", json!({"forked_by": 1}), vec![]),
                node("c2", json!({}), vec![]),
            ],
        )],
    ));
    let (m, c1, c2) = (tree.pid("m"), tree.pid("c1"), tree.pid("c2"));
    let (t0, t1, t2) = (tree.tid("m", 0), tree.tid("m", 1), tree.tid("m", 2));
    let doc = tree.snapshot();
    let pm = process(&doc, m);
    assert_eq!(pm["nr_threads"], 3, "{pm}");
    assert_eq!(process(&doc, c1)["parent"]["tid"], t1);
    let thread = |doc: &Value, tid: u32| -> Value {
        process(doc, m)["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tid"] == tid)
            .cloned()
            .unwrap_or_else(|| panic!("thread {tid} of {m}: {doc}"))
    };
    // Thread 1 exits alone: its child goes to the first live thread, the main one.
    let th1 = thread(&doc, t1);
    assert_eq!(th1["children"], json!([c1]), "{th1}");
    assert_eq!(th1["orphans_to"]["kind"], "thread", "{th1}");
    assert_eq!(th1["orphans_to"]["reaper"]["tid"], t0, "{th1}");
    tgkill(m, t1);
    wait_until("thread 1 is gone", || {
        !std::path::Path::new(&format!("/proc/{m}/task/{t1}")).exists()
    });
    assert_eq!(ppid(c1), m);
    assert_eq!(process(&tree.snapshot(), c1)["parent"]["tid"], t0);
    // The main thread exits alone: both children go to the last thread.
    let doc = tree.snapshot();
    let th0 = thread(&doc, t0);
    assert_eq!(th0["orphans_to"]["kind"], "thread", "{th0}");
    assert_eq!(th0["orphans_to"]["reaper"]["tid"], t2, "{th0}");
    tgkill(m, t0);
    wait_until("the main thread has exited", || {
        status_field(m, "State").is_some_and(|s| s.starts_with('Z'))
            || std::fs::read_to_string(format!("/proc/{m}/task/{t0}/stat"))
                .is_ok_and(|s| s.contains(") Z"))
    });
    let doc = tree.snapshot();
    assert_eq!(process(&doc, m)["leader_exited"], true, "{doc}");
    for c in [c1, c2] {
        assert_eq!(ppid(c), m);
        assert_eq!(process(&doc, c)["parent"]["tid"], t2);
    }
    // The whole process dies: its threads do not count, the namespace's init adopts.
    let r = kill_and_check(&tree, "m", "init");
    assert_eq!(r["pid"], tree.pid("i"));
}

fn tgkill(pid: u32, tid: u32) {
    // SAFETY: a signal to a thread of this test's tree.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
    assert_eq!(r, 0, "tgkill");
}

#[test]
fn zombie_held_by_a_pid_1_that_never_waits() {
    require_root();
    let tree = Tree::build(node(
        "i",
        json!({"newns": true}),
        vec![node("a", json!({"zombies": ["z"]}), vec![])],
    ));
    let (i, a, z) = (tree.pid("i"), tree.pid("a"), tree.pid("z"));
    let doc = tree.snapshot();
    let pz = process(&doc, z);
    assert_eq!(pz["state"], "zombie", "{pz}");
    assert_eq!(pz["reaped_by"]["pid"], a, "{pz}");
    let r = kill_and_check(&tree, "a", "init");
    assert_eq!(r["pid"], i);
    // The zombie now waits for the init, which never waits: still a zombie, its reaper named.
    assert_eq!(state(z), Some('Z'));
    let doc = tree.snapshot();
    for pid in [z, a] {
        let p = process(&doc, pid);
        assert_eq!(p["state"], "zombie", "{p}");
        assert_eq!(p["reaped_by"]["pid"], i, "{p}");
        assert_eq!(p["reaped_by"]["ns_pid"], 1, "{p}");
    }
    let pi = process(&doc, i);
    assert_eq!(pi["ns_init"], true);
    assert!(
        pi["children"].as_array().unwrap().contains(&json!(z)),
        "{pi}"
    );
}

#[test]
fn text_output_marks_roles_and_escapes_names() {
    require_root();
    let tree = Tree::build(node(
        "s",
        json!({"subreaper": true}),
        vec![node("a", json!({"zombies": ["z"]}), vec![])],
    ));
    let out = Command::new(reaper_trace())
        .args(["tree", &tree.pid("s").to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |pid: u32| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(&pid.to_string()))
            .unwrap_or_else(|| panic!("no line for {pid}:\n{text}"))
            .to_string()
    };
    assert!(line(tree.pid("s")).contains("[subreaper]"), "{text}");
    assert!(
        line(tree.pid("z")).contains(&format!("zombie, to be reaped by {}", tree.pid("a"))),
        "{text}"
    );
    assert!(
        line(tree.pid("a")).contains(&format!("=> {} ", tree.pid("s")))
            && line(tree.pid("a")).contains("(subreaper)"),
        "{text}"
    );
    // A pid that is not there: one line that says what to do, exit 1.
    let out = Command::new(reaper_trace())
        .args(["tree", "4194303"])
        .output()
        .unwrap();
    let err = reaper_trace_tests::assert_user_error(&out);
    assert!(err.contains("no process 4194303"), "{err}");
}
