//! Assembly, predictions and rendering on synthetic iterator records.

use reaper_trace_common::{
    MAX_PID_LEVELS, TASK_COMM_LEN, TaskId, TaskInfo, TreeTask, UPid, exit_state, tree_flag,
};

use super::*;

const HOST: u32 = 4026531836;
const NS: u32 = 4026532200;

fn id(tid: u32, tgid: u32) -> TaskId {
    TaskId {
        tid,
        tgid,
        start_ns: tid as u64 * 1000,
    }
}

fn comm(s: &str) -> [u8; TASK_COMM_LEN] {
    let mut c = [0u8; TASK_COMM_LEN];
    c[..s.len()].copy_from_slice(s.as_bytes());
    c
}

/// A live single-threaded process `pid` at level 0, child of `parent`, in the host namespace
/// whose init is pid 1.
pub(crate) fn rec(pid: u32, parent: u32, name: &str) -> TreeTask {
    let mut pids = [UPid::default(); MAX_PID_LEVELS];
    pids[0] = UPid {
        nr: pid,
        pidns: HOST,
    };
    TreeTask {
        size: std::mem::size_of::<TreeTask>() as u32,
        flags: 0,
        task: TaskInfo {
            id: id(pid, pid),
            ns_tid: pid,
            ns_tgid: pid,
            pidns: HOST,
            level: 0,
            comm: comm(name),
        },
        leader_start_ns: pid as u64 * 1000,
        parent: if parent == 0 {
            TaskId::default()
        } else {
            id(parent, parent)
        },
        child_reaper: id(1, 1),
        alive: [id(pid, pid), TaskId::default()],
        task_flags: 0,
        exit_state: 0,
        nr_threads: 1,
        _pad: 0,
        pids,
    }
}

/// Puts `r` into a pid namespace one level down (`ns_pid` there), whose init is `init`.
pub(crate) fn in_ns(mut r: TreeTask, ns_pid: u32, init: u32) -> TreeTask {
    r.task.level = 1;
    r.task.pidns = NS;
    r.task.ns_tid = ns_pid;
    r.task.ns_tgid = ns_pid;
    r.pids[1] = UPid {
        nr: ns_pid,
        pidns: NS,
    };
    r.child_reaper = id(init, init);
    r
}

pub(crate) fn subreaper(mut r: TreeTask) -> TreeTask {
    r.flags |= tree_flag::IS_CHILD_SUBREAPER | tree_flag::HAS_CHILD_SUBREAPER;
    r
}

pub(crate) fn below_subreaper(mut r: TreeTask) -> TreeTask {
    r.flags |= tree_flag::HAS_CHILD_SUBREAPER;
    r
}

fn assembled(records: Vec<TreeTask>, opts: &Options) -> Vec<ProcessNode> {
    assemble(&Snapshot::new(records), opts, &mut NoContainers).unwrap()
}

fn find(nodes: &[ProcessNode], pid: u32) -> &ProcessNode {
    nodes.iter().find(|p| p.pid == pid).expect("in the tree")
}

fn dest(kind: OrphanKind, pid: u32) -> (OrphanKind, Option<u32>) {
    (kind, Some(pid))
}

fn got(p: &ProcessNode) -> (OrphanKind, Option<u32>) {
    (
        p.orphans_to.kind,
        p.orphans_to.reaper.as_ref().map(|r| r.tid),
    )
}

/// 1 init, 10 subreaper, 11 below it, 12 cleared subreaper (has_child_subreaper only), 13
/// below that; 20 a plain process under init.
pub(crate) fn host() -> Vec<TreeTask> {
    let mut init = rec(1, 0, "init");
    init.flags = 0;
    vec![
        init,
        subreaper(rec(10, 1, "shim")),
        below_subreaper(rec(11, 10, "sh")),
        below_subreaper(rec(12, 11, "cleared")),
        below_subreaper(rec(13, 12, "leaf")),
        rec(20, 1, "plain"),
        rec(21, 20, "child"),
    ]
}

#[test]
fn tree_order_depths_and_children() {
    let nodes = assembled(host(), &Options::default());
    let order: Vec<(u32, u32)> = nodes.iter().map(|p| (p.pid, p.depth)).collect();
    assert_eq!(
        order,
        [(1, 0), (10, 1), (11, 2), (12, 3), (13, 4), (20, 1), (21, 2)]
    );
    assert_eq!(find(&nodes, 1).children, [10, 20]);
    assert_eq!(find(&nodes, 11).parent.as_ref().unwrap().comm, "shim");
    assert!(find(&nodes, 1).parent.is_none());
    assert!(find(&nodes, 1).ns_init && !find(&nodes, 10).ns_init);
}

#[test]
fn subtrees_of_the_pids_asked_for_once_each() {
    let opts = Options {
        pids: vec![13, 11, 20],
        threads: false,
    };
    let nodes = assembled(host(), &opts);
    let order: Vec<(u32, u32)> = nodes.iter().map(|p| (p.pid, p.depth)).collect();
    assert_eq!(order, [(11, 0), (12, 1), (13, 2), (20, 0), (21, 1)]);
    let opts = Options {
        pids: vec![999],
        threads: false,
    };
    let err = assemble(&Snapshot::new(host()), &opts, &mut NoContainers).unwrap_err();
    assert!(err.to_string().contains("no process 999"), "{err}");
    assert_eq!(Exit::code_of(&err), 1);
}

#[test]
fn nearest_subreaper_then_init() {
    let nodes = assembled(host(), &Options::default());
    // 11's children: the subreaper above it.
    assert_eq!(got(find(&nodes, 11)), dest(OrphanKind::Subreaper, 10));
    // 12 cleared its flag: 13's children pass over it, to 10.
    assert_eq!(got(find(&nodes, 13)), dest(OrphanKind::Subreaper, 10));
    // No subreaper above (has_child_subreaper clear): init.
    assert_eq!(got(find(&nodes, 21)), dest(OrphanKind::Init, 1));
    // The subreaper's own children: nothing above it is one.
    assert_eq!(got(find(&nodes, 10)), dest(OrphanKind::Init, 1));
    // The host's init: the kernel panics (said as a teardown).
    assert_eq!(find(&nodes, 1).orphans_to.kind, OrphanKind::Teardown);
}

#[test]
fn a_subreaper_without_a_live_thread_is_skipped() {
    let mut records = host();
    // 10 is exiting: no live thread in its group.
    records[1].alive = [TaskId::default(); 2];
    records[1].task_flags = PF_EXITING;
    let nodes = assembled(records.clone(), &Options::default());
    assert_eq!(got(find(&nodes, 11)), dest(OrphanKind::Init, 1));
    assert_eq!(find(&nodes, 10).state, State::Exiting);
    // ...unless its thread scan was cut short: then nobody can say.
    records[1].flags |= tree_flag::ALIVE_INCOMPLETE;
    let nodes = assembled(records, &Options::default());
    let d = &find(&nodes, 11).orphans_to;
    assert_eq!(d.kind, OrphanKind::Undecided);
    assert!(d.reason.as_ref().unwrap().contains("32 threads"), "{d:?}");
}

#[test]
fn a_missing_ancestor_is_undecided_but_a_hidden_init_is_not() {
    let mut records = host();
    records.remove(2); // 11 vanished mid-pass: 12 and 13 point at it.
    let nodes = assembled(records, &Options::default());
    let d = &find(&nodes, 13).orphans_to;
    assert_eq!(d.kind, OrphanKind::Undecided, "{d:?}");
    assert!(d.reason.as_ref().unwrap().contains("ancestor 11"), "{d:?}");
    // 12 is a root now (its parent is not in the snapshot).
    assert_eq!(find(&nodes, 12).depth, 0);
    // The init itself not in the snapshot (some hosts hide it): the walk ends there.
    let mut records = host();
    records.remove(0);
    let nodes = assembled(records, &Options::default());
    assert_eq!(got(find(&nodes, 10)), dest(OrphanKind::Init, 1));
    assert_eq!(
        find(&nodes, 10).orphans_to.reaper.as_ref().unwrap().comm,
        "?"
    );
}

#[test]
fn a_pid_namespace_level_bounds_the_walk() {
    // Host subreaper 10 -> 30 (init of NS, ns pid 1) -> 31 -> 32.
    let mut records = host();
    records.push(below_subreaper(in_ns(rec(30, 10, "tini"), 1, 30)));
    records.push(below_subreaper(in_ns(rec(31, 30, "app"), 2, 30)));
    records.push(below_subreaper(in_ns(rec(32, 31, "worker"), 3, 30)));
    let nodes = assembled(records, &Options::default());
    let init = find(&nodes, 30);
    assert!(init.ns_init);
    assert_eq!(init.ns_pid, 1);
    assert_eq!(init.pids.len(), 2);
    assert_eq!(init.orphans_to.kind, OrphanKind::Teardown);
    // 31's children: not the host's subreaper 10, but the namespace's init.
    let d = &find(&nodes, 31).orphans_to;
    assert_eq!(
        (d.kind, d.reaper.as_ref().unwrap().tid),
        (OrphanKind::Init, 30)
    );
    assert_eq!(d.reaper.as_ref().unwrap().ns_pid, 1);
}

#[test]
fn threads_zombies_and_an_exited_leader() {
    // 40: leader + threads 41, 42; 41 forked child 50; 60 is a zombie child of 40.
    let mut records = host();
    let mut leader = rec(40, 1, "app");
    leader.alive = [id(40, 40), id(41, 40)];
    leader.nr_threads = 3;
    let mut t41 = leader;
    t41.task.id = id(41, 40);
    t41.task.ns_tid = 41;
    let mut t42 = t41;
    t42.task.id = id(42, 40);
    t42.task.ns_tid = 42;
    let mut child = rec(50, 0, "child");
    child.parent = id(41, 40);
    let mut zombie = rec(60, 40, "gone");
    zombie.exit_state = exit_state::EXIT_ZOMBIE;
    zombie.alive = [TaskId::default(); 2];
    records.extend([leader, t41, t42, child, zombie]);
    let opts = Options {
        pids: vec![],
        threads: true,
    };
    let nodes = assembled(records.clone(), &opts);
    let app = find(&nodes, 40);
    assert_eq!(app.nr_threads, 3);
    assert_eq!(app.children, [50, 60]);
    // The whole process dying: threads don't count.
    assert_eq!(got(app), dest(OrphanKind::Init, 1));
    let threads = app.threads.as_ref().unwrap();
    let t = |tid| threads.iter().find(|t| t.tid == tid).unwrap();
    assert_eq!(t(41).children, [50]);
    // 41 exiting alone: the first live thread that is not 41.
    assert_eq!(t(41).orphans_to.kind, OrphanKind::Thread);
    assert_eq!(t(41).orphans_to.reaper.as_ref().unwrap().tid, 40);
    assert_eq!(t(40).orphans_to.reaper.as_ref().unwrap().tid, 41);
    // 42 exiting: the list's first live thread, the leader.
    assert_eq!(t(42).orphans_to.reaper.as_ref().unwrap().tid, 40);
    let z = find(&nodes, 60);
    assert_eq!(z.state, State::Zombie);
    assert_eq!(z.reaped_by.as_ref().unwrap().pid, 40);

    // The leader exits alone: a zombie leader, the process lives on.
    records[7].exit_state = exit_state::EXIT_ZOMBIE;
    records[7].alive = [id(41, 40), id(42, 40)];
    let nodes = assembled(records, &opts);
    let app = find(&nodes, 40);
    assert_eq!((app.state, app.leader_exited), (State::Live, true));
    assert!(app.reaped_by.is_none());
}

#[test]
fn a_cut_thread_scan_leaves_a_thread_undecided() {
    let mut records = host();
    let mut r = rec(40, 1, "many");
    // Only this thread found alive, and the scan stopped at its bound.
    r.alive = [id(40, 40), TaskId::default()];
    r.flags |= tree_flag::ALIVE_INCOMPLETE;
    records.push(r);
    let opts = Options {
        pids: vec![40],
        threads: true,
    };
    let nodes = assembled(records, &opts);
    let t = &nodes[0].threads.as_ref().unwrap()[0];
    assert_eq!(t.orphans_to.kind, OrphanKind::Undecided);
    // The whole process: no thread counts, so it is decided.
    assert_eq!(nodes[0].orphans_to.kind, OrphanKind::Init);
}

#[test]
fn records_of_the_wrong_size_are_refused() {
    let r = rec(1, 0, "init");
    // SAFETY: reading a plain repr(C) value as bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&r as *const TreeTask).cast::<u8>(),
            std::mem::size_of::<TreeTask>(),
        )
    }
    .to_vec();
    assert_eq!(decode(&bytes).unwrap().len(), 1);
    let err = decode(&bytes[1..]).unwrap_err().to_string();
    assert!(err.contains("rebuild both"), "{err}");
    let mut bad = r;
    bad.size = 12;
    // SAFETY: as above.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&bad as *const TreeTask).cast::<u8>(),
            std::mem::size_of::<TreeTask>(),
        )
    };
    assert!(decode(bytes).is_err());
}

/// The text as users see it, stored in `snapshots/` (`UPDATE_SNAPSHOTS=1` stores it anew).
#[test]
fn render_snapshot() {
    let mut records = host();
    records[5].task.comm = comm("evil\x1b[2J");
    let mut z = rec(22, 21, "z");
    z.exit_state = exit_state::EXIT_ZOMBIE;
    records.push(z);
    records.push(below_subreaper(in_ns(rec(30, 10, "tini"), 1, 30)));
    records.push(below_subreaper(in_ns(rec(31, 30, "app"), 2, 30)));
    let mut k = rec(2, 0, "kthreadd");
    k.task_flags = PF_KTHREAD;
    records.push(k);
    let mut nodes = assembled(records, &Options::default());
    // A container on the namespace's init, as the resolver would name it.
    find_mut(&mut nodes, 30).container = Some(ContainerInfo {
        runtime: Some(crate::container::Runtime::Docker),
        id: Some("3f2a1b2c4d5e".repeat(5) + "abcd"),
        name: Some("web".into()),
        ..Default::default()
    });
    let doc = TreeDoc {
        schema: TREE_SCHEMA,
        kernel: "6.18.0-test".into(),
        taken_ts: 1,
        read_ns: 420_000,
        tasks: nodes.len(),
        processes: nodes,
    };
    let text = render::text(&doc, false);
    assert!(!text.contains('\x1b'), "{text}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tree/snapshots/tree.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 creates it)", path.display()));
    assert!(
        expected == text,
        "the text differs from {} (UPDATE_SNAPSHOTS=1 updates it):\n{text}",
        path.display()
    );
}

fn find_mut(nodes: &mut [ProcessNode], pid: u32) -> &mut ProcessNode {
    nodes
        .iter_mut()
        .find(|p| p.pid == pid)
        .expect("in the tree")
}

#[test]
fn a_lineage_goes_up_to_its_namespace_init_and_down_its_subtree() {
    // Host 1 -> subreaper 10 -> 30 (init of NS) -> 31 -> 32 -> 33; 34 a sibling of 32.
    let mut records = host();
    records.push(below_subreaper(in_ns(rec(30, 10, "tini"), 1, 30)));
    records.push(below_subreaper(in_ns(rec(31, 30, "app"), 2, 30)));
    records.push(below_subreaper(in_ns(rec(32, 31, "worker"), 3, 30)));
    records.push(below_subreaper(in_ns(rec(33, 32, "job"), 4, 30)));
    records.push(below_subreaper(in_ns(rec(34, 31, "other"), 5, 30)));
    let snap = Snapshot::new(records);
    let shown = |pid| {
        let l = lineage(&snap, pid, &Options::default(), &mut NoContainers).expect("there");
        let order: Vec<(u32, u32)> = l.processes.iter().map(|p| (p.pid, p.depth)).collect();
        (order, l.selected)
    };
    // Not above the namespace's init (whose `=>` says who adopts), not the sibling 34.
    assert_eq!(shown(32), (vec![(30, 0), (31, 1), (32, 2), (33, 3)], 2));
    // The init itself: no ancestor; on the host: up to pid 1.
    assert_eq!(shown(30).0[0], (30, 0));
    assert_eq!(
        shown(11),
        (vec![(1, 0), (10, 1), (11, 2), (12, 3), (13, 4)], 2)
    );
    // An ancestor's line says where its children would go.
    let l = lineage(&snap, 32, &Options::default(), &mut NoContainers).unwrap();
    let line = render::process_line(&l.processes[1]);
    assert!(
        line.contains("\\_ app") && line.contains("=> 30 (ns 1) tini (init)"),
        "{line}"
    );
    assert!(lineage(&snap, 999, &Options::default(), &mut NoContainers).is_none());
}
