//! The reference's tables of the recording's, `validate --json`'s and `tree --json`'s fields
//! (docs/recording-format.md, docs/validate.md, docs/tree.md), checked against the types: each
//! type is serialized with every optional field set and with none, and each key that comes out
//! must be in its table row, marked "(omitted ..." exactly when it can be left out. A field
//! added, removed or made optional without the docs fails here.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::event::{
    Event, ExitStatus, Header, Prediction, Proc, ReapHow, ReaperKind, SCHEMA_VERSION, Verdict,
};
use crate::scenario::result::{
    Adoption, Failure, Reaper, ScenarioResult, SkipReason, Status, Zombies,
};
use crate::validate::report::Report;

const RECORDING_FORMAT: &str = include_str!("../../docs/recording-format.md");
const VALIDATE: &str = include_str!("../../docs/validate.md");
const TREE: &str = include_str!("../../docs/tree.md");

/// `doc` from the line `heading` to the next heading of the same level (or its end).
fn section(doc: &'static str, heading: &str) -> &'static str {
    let start = if doc.starts_with(&format!("{heading}\n")) {
        0
    } else {
        doc.find(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("no heading `{heading}`"))
            + 1
    };
    let level = heading.split(' ').next().unwrap();
    let rest = &doc[start + heading.len()..];
    let end = rest
        .find(&format!("\n{level} "))
        .map_or(doc.len(), |e| start + heading.len() + e);
    &doc[start..end]
}

/// The table row of `section` that starts with `| MARKER`.
fn row(section: &str, marker: &str) -> String {
    section
        .lines()
        .find(|l| l.starts_with(&format!("| {marker}")))
        .unwrap_or_else(|| panic!("no table row `| {marker}`"))
        .to_string()
}

fn object<T: Serialize>(v: &T) -> Map<String, Value> {
    match serde_json::to_value(v).unwrap() {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Checks one type's keys against its documentation.
fn check(what: &str, doc: &str, full: Map<String, Value>, bare: Map<String, Value>) {
    for key in full
        .keys()
        .filter(|k| !["type", "ts"].contains(&k.as_str()))
    {
        let named = format!("`{key}`");
        let marked = format!("`{key}` (omitted");
        assert!(
            doc.contains(&named),
            "{what}: `{key}` is not documented: {doc}"
        );
        if bare.contains_key(key) {
            assert!(
                !doc.contains(&marked),
                "{what}: `{key}` is always written, the docs say it may be omitted"
            );
        } else {
            assert!(
                doc.contains(&marked),
                "{what}: `{key}` is left out when false or absent: the docs must say \
                 `{key}` (omitted ...): {doc}"
            );
        }
    }
}

fn p() -> Proc {
    Proc::fake(7, "x")
}

fn status() -> ExitStatus {
    ExitStatus {
        code: Some(1),
        signal: Some(9),
        core_dumped: true,
    }
}

fn prediction() -> Prediction {
    Prediction {
        tid: 1,
        pid: 1,
        kind: ReaperKind::Init,
    }
}

/// Every event type, with all its optional fields set (`full`) and with none (`bare`).
fn events(full: bool) -> Vec<Event> {
    vec![
        Event::Fork {
            ts: 1,
            parent: p(),
            child: p(),
            caller: full.then(p),
            thread: false,
            late: full,
        },
        Event::Exec {
            ts: 1,
            task: p(),
            filename: "f".into(),
            args: vec![],
            args_truncated: full,
        },
        Event::Exit {
            ts: 1,
            task: p(),
            thread: false,
            parent: full.then(p),
            status: status(),
            group_dead: true,
            age_ns: 1,
            children: 0,
            children_truncated: full,
            late: full,
        },
        Event::Reparent {
            ts: 1,
            orphan: p(),
            father: p(),
            reaper: Some(p()),
            kind: Some(ReaperKind::Init),
            predicted: Some(prediction()),
            verdict: Verdict::Changed,
            reason: full.then(|| "why".into()),
            zombie: full,
            late: full,
        },
        Event::Zombie {
            ts: 1,
            task: p(),
            parent: p(),
            status: status(),
            autoreaped: full,
            before_trace: full,
        },
        Event::Reap {
            ts: 1,
            task: p(),
            reaper: Some(p()),
            how: ReapHow::Wait4,
            zombie_ns: Some(1),
        },
        Event::Subreaper {
            ts: 1,
            task: p(),
            enabled: true,
        },
        Event::Lost {
            ts: 1,
            what: "fork".into(),
            count: 1,
        },
        Event::Container {
            ts: 1,
            pidns: 1,
            info: crate::container::ContainerInfo {
                runtime: Some(crate::container::Runtime::Docker),
                id: full.then(|| "i".into()),
                name: full.then(|| "n".into()),
                pod: full.then(|| "p".into()),
                pod_namespace: full.then(|| "ns".into()),
                pod_uid: full.then(|| "u".into()),
                init_pid: full.then_some(1),
                cgroup: full.then(|| "/c".into()),
            },
        },
    ]
}

/// Which event type this is, by position in [`events`]: a new variant does not compile here
/// until it is added there.
fn index(e: &Event) -> usize {
    match e {
        Event::Fork { .. } => 0,
        Event::Exec { .. } => 1,
        Event::Exit { .. } => 2,
        Event::Reparent { .. } => 3,
        Event::Zombie { .. } => 4,
        Event::Reap { .. } => 5,
        Event::Subreaper { .. } => 6,
        Event::Lost { .. } => 7,
        Event::Container { .. } => 8,
    }
}

#[test]
fn the_recording_format_table_matches_the_types() {
    let doc = section(
        RECORDING_FORMAT,
        "# Recording format (JSON Lines, schema 1)",
    );
    for (i, e) in events(true).iter().enumerate() {
        assert_eq!(index(e), i, "every event type, once");
    }
    for (full, bare) in events(true).iter().zip(events(false)) {
        let name = full.type_name();
        check(
            name,
            &row(doc, &format!("`{name}` |")),
            object(full),
            object(&bare),
        );
    }
    let header = |command: Option<Vec<String>>| Header {
        kind: "header".into(),
        schema: SCHEMA_VERSION,
        tool: "t".into(),
        kernel: "k".into(),
        host: "h".into(),
        boot_time_ns: 1,
        started_ts: 1,
        command,
    };
    check(
        "header",
        &row(doc, "`header` |"),
        object(&header(Some(vec!["true".into()]))),
        object(&header(None)),
    );
    check(
        "proc",
        &row(doc, "`proc` (object) |"),
        object(&p()),
        object(&p()),
    );
    check(
        "status",
        &row(doc, "`status` (object) |"),
        object(&status()),
        object(&ExitStatus::UNKNOWN),
    );
    check(
        "predicted",
        &row(doc, "`predicted` (object) |"),
        object(&prediction()),
        object(&prediction()),
    );
}

#[test]
fn the_validate_json_table_matches_the_types() {
    let doc = section(VALIDATE, "## JSON");
    let table = &doc[doc.find("| field | meaning |").expect("the fields table")..];
    let reaper = |full: bool| Reaper {
        pid: 1,
        tid: 1,
        comm: full.then(|| "c".into()),
        kind: full.then_some(ReaperKind::Init),
    };
    check(
        "validate reaper",
        &row(table, "`expected`, `observed`, `predicted` |"),
        object(&reaper(true)),
        object(&reaper(false)),
    );
    let adoption = Adoption {
        orphan: 1,
        father: 1,
        observed: None,
        predicted: None,
        verdict: "match".into(),
        ok: true,
    };
    check(
        "validate adoption",
        &row(table, "`adoptions` |"),
        object(&adoption),
        object(&adoption),
    );
    let zombies = |full: bool| Zombies {
        orphans: 1,
        left_in_proc: full.then_some(0),
        max_zombie_ms: full.then_some(1.0),
        ..Default::default()
    };
    check(
        "validate zombies",
        &row(table, "`zombies` (omitted"),
        object(&zombies(true)),
        object(&zombies(false)),
    );
    let full = ScenarioResult {
        status: Status::Fail,
        reason: Some("why".into()),
        skip: Some(SkipReason::NoFuse),
        failures: vec![Failure::Timeout],
        zombies: Some(zombies(true)),
        ..ScenarioResult::new("s", "d")
    };
    check(
        "validate result",
        table,
        object(&full),
        object(&ScenarioResult::new("s", "d")),
    );
    let report = Report::new("k".into(), vec![]);
    check(
        "validate report",
        &row(table, "`schema`, `kernel`"),
        object(&report),
        object(&report),
    );
}

#[test]
fn the_tree_json_tables_match_the_types() {
    use crate::tree::{
        Destination, LevelPid, OrphanKind, ProcessNode, State, TREE_SCHEMA, TaskRef, ThreadNode,
        TreeDoc,
    };
    let doc = section(TREE, "## `tree --json`");
    let task = TaskRef {
        pid: 1,
        tid: 1,
        ns_pid: 1,
        comm: "c".into(),
    };
    let decided = Destination {
        kind: OrphanKind::Init,
        reaper: Some(task.clone()),
        reason: None,
    };
    let undecided = Destination {
        kind: OrphanKind::Undecided,
        reaper: None,
        reason: Some("why".into()),
    };
    for (name, d) in [("reaper", &decided), ("reason", &undecided)] {
        assert!(object(d).contains_key(name));
    }
    let thread = ThreadNode {
        tid: 1,
        ns_tid: 1,
        comm: "c".into(),
        state: State::Live,
        children: vec![],
        orphans_to: decided.clone(),
    };
    let node = |full: bool| ProcessNode {
        pid: 1,
        ns_pid: 1,
        pidns: 1,
        level: 0,
        start: 1,
        comm: "c".into(),
        depth: 0,
        parent: full.then(|| task.clone()),
        pids: vec![LevelPid { nr: 1, pidns: 1 }],
        state: State::Zombie,
        subreaper: false,
        has_child_subreaper: false,
        ns_init: true,
        container: full.then(Default::default),
        kernel_thread: full,
        leader_exited: full,
        reaped_by: full.then(|| task.clone()),
        nr_threads: 1,
        threads: full.then(|| vec![thread.clone()]),
        children: vec![],
        orphans_to: decided.clone(),
    };
    let table = &doc[doc.find("A process:").expect("the process table")..];
    check(
        "tree process",
        table,
        object(&node(true)),
        object(&node(false)),
    );
    for key in object(&thread).keys() {
        assert!(
            table.contains(key.as_str()),
            "thread `{key}` is not documented"
        );
    }
    for key in ["kind", "reaper", "reason"] {
        assert!(table.contains(key), "orphans_to `{key}` is not documented");
    }
    let top = TreeDoc {
        schema: TREE_SCHEMA,
        kernel: "k".into(),
        taken_ts: 1,
        read_ns: 1,
        tasks: 1,
        processes: vec![],
    };
    check(
        "tree document",
        &doc[..doc.find("A process:").unwrap()],
        object(&top),
        object(&top),
    );
}
