//! The process model, fed hand-made kernel records: lifecycles, pid reuse, records out of
//! order or lost, scopes, and the reaper prediction carried by reparent events.

use reaper_trace::decode::RawEvent;
use reaper_trace::event::{Event, ReapHow, ReaperKind, Verdict};
use reaper_trace::model::{Model, Scope, VANISH_GRACE_NS};
use reaper_trace_common::*;

const ROOT_NS: u32 = 4026531836;

fn hdr(kind: u32, ts: u64) -> EventHeader {
    EventHeader {
        kind,
        _pad: 0,
        ts_ns: ts,
    }
}

fn info(tid: u32, tgid: u32, start: u64, comm: &str) -> TaskInfo {
    let mut c = [0u8; TASK_COMM_LEN];
    c[..comm.len()].copy_from_slice(comm.as_bytes());
    TaskInfo {
        id: TaskId {
            tid,
            tgid,
            start_ns: start,
        },
        ns_tid: tid,
        ns_tgid: tgid,
        pidns: ROOT_NS,
        level: 0,
        comm: c,
    }
}

fn fork(ts: u64, parent: TaskInfo, child: TaskInfo) -> RawEvent {
    RawEvent::Fork(ForkEvent {
        hdr: hdr(kind::FORK, ts),
        parent,
        child,
        real_parent: parent.id,
        flags: 0,
        _pad: 0,
    })
}

fn exit(ts: u64, task: TaskInfo, parent: TaskInfo, code: u32) -> RawEvent {
    let mut pids = [UPid::default(); MAX_PID_LEVELS];
    pids[0] = UPid {
        nr: task.id.tid,
        pidns: ROOT_NS,
    };
    RawEvent::Exit(ExitEvent {
        hdr: hdr(kind::EXIT, ts),
        task,
        parent: parent.id,
        exit_code: code << 8,
        group_dead: 1,
        pids,
        ..Default::default()
    })
}

fn dead(ts: u64, task: TaskInfo, parent: TaskInfo, state: u32) -> RawEvent {
    let mut pids = [UPid::default(); MAX_PID_LEVELS];
    pids[0] = UPid {
        nr: task.id.tid,
        pidns: ROOT_NS,
    };
    RawEvent::Dead(DeadEvent {
        hdr: hdr(kind::DEAD, ts),
        task,
        last: task.id,
        parent,
        exit_state: state,
        exit_code: 0,
        flags: 0,
        _pad: 0,
        pids,
    })
}

fn wait4(ts: u64, waiter: TaskInfo, pid: u32, status: i32) -> RawEvent {
    RawEvent::Wait(WaitEvent {
        hdr: hdr(kind::WAIT, ts),
        waiter,
        syscall: wait_syscall::WAIT4,
        pid,
        status,
        code: 0,
    })
}

fn free(ts: u64, task: TaskInfo) -> RawEvent {
    RawEvent::Free(FreeEvent {
        hdr: hdr(kind::FREE, ts),
        task: task.id,
        ..Default::default()
    })
}

fn apply(model: &mut Model, records: &[RawEvent]) -> Vec<Event> {
    let mut out = Vec::new();
    for r in records {
        model.apply(r, &mut out);
    }
    out
}

fn reaps(events: &[Event]) -> Vec<(u32, u64, ReapHow, Option<u64>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reap {
                task,
                how,
                zombie_ns,
                ..
            } => Some((task.pid, task.start, *how, *zombie_ns)),
            _ => None,
        })
        .collect()
}

#[test]
fn lifecycle_fork_exit_zombie_reap_free() {
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let child = info(11, 11, 50, "child");
    let out = apply(
        &mut m,
        &[
            fork(100, parent, child),
            exit(200, child, parent, 7),
            dead(210, child, parent, exit_state::EXIT_ZOMBIE),
        ],
    );
    let types: Vec<_> = out.iter().map(Event::type_name).collect();
    assert_eq!(types, ["fork", "exit", "zombie"]);
    match &out[1] {
        Event::Exit { status, age_ns, .. } => {
            assert_eq!(status.code, Some(7));
            assert_eq!(*age_ns, 150);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(m.zombie_count(), 1);
    let out = apply(
        &mut m,
        &[
            wait4(3_000_000_210, parent, 11, 7 << 8),
            free(3_010_000_000, child),
        ],
    );
    assert_eq!(reaps(&out), [(11, 50, ReapHow::Wait4, Some(3_000_000_000))]);
    match &out[0] {
        Event::Reap {
            reaper: Some(r), ..
        } => assert_eq!(r.pid, 10),
        e => panic!("{e:?}"),
    }
    assert_eq!(m.zombie_count(), 0);
    assert!(m.task(11).is_none(), "freed task is forgotten");
}

#[test]
fn pid_reuse_never_mixes_two_processes() {
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let old = info(11, 11, 50, "old");
    let new = info(11, 11, 9_000, "new");
    // The old task is reaped, but its free record is lost; pid 11 is reused.
    let mut out = apply(
        &mut m,
        &[
            fork(100, parent, old),
            dead(200, old, parent, exit_state::EXIT_ZOMBIE),
            wait4(300, parent, 11, 0),
            fork(9_000, parent, new),
            // A late free of the old task must not remove the new one.
            free(9_100, old),
        ],
    );
    assert!(m.task(11).is_some_and(|t| t.id.start_ns == 9_000));
    out.extend(apply(
        &mut m,
        &[
            dead(10_000, new, parent, exit_state::EXIT_ZOMBIE),
            wait4(12_000, parent, 11, 0),
        ],
    ));
    assert_eq!(
        reaps(&out),
        [
            (11, 50, ReapHow::Wait4, Some(100)),
            (11, 9_000, ReapHow::Wait4, Some(2_000))
        ]
    );
    let comms: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Event::Reap { task, .. } => Some(task.comm.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(comms, ["old", "new"]);
}

#[test]
fn wait_recorded_before_the_final_switch() {
    // The parent returned from wait4 on another CPU before the child's final switch record.
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let child = info(11, 11, 50, "child");
    let out = apply(
        &mut m,
        &[
            fork(100, parent, child),
            exit(200, child, parent, 0),
            wait4(260, parent, 11, 0),
            dead(270, child, parent, exit_state::EXIT_ZOMBIE),
            free(300, child),
        ],
    );
    let types: Vec<_> = out.iter().map(Event::type_name).collect();
    assert_eq!(types, ["fork", "exit", "zombie", "reap"], "{out:?}");
    assert_eq!(reaps(&out), [(11, 50, ReapHow::Wait4, Some(60))]);
    assert_eq!(m.zombie_count(), 0);
}

#[test]
fn released_at_the_final_switch_by_a_waiter_on_another_cpu() {
    // The parent's wait4 reaped the child between its exit_notify and its final switch: the
    // switch sees EXIT_DEAD, and the wait record (before or after it) says who reaped it.
    for wait_first in [false, true] {
        let mut m = Model::new(Scope::All);
        let parent = info(10, 10, 1, "parent");
        let child = info(11, 11, 50, "child");
        let mut records = vec![fork(100, parent, child), exit(200, child, parent, 0)];
        let (w, d) = (
            wait4(260, parent, 11, 0),
            dead(270, child, parent, exit_state::EXIT_DEAD),
        );
        if wait_first {
            records.extend([w, d]);
        } else {
            records.extend([d, w]);
        }
        records.push(free(300, child));
        let out = apply(&mut m, &records);
        let r = reaps(&out);
        assert_eq!(r.len(), 1, "{out:?}");
        assert_eq!(
            (r[0].0, r[0].2),
            (11, ReapHow::Wait4),
            "wait_first={wait_first}"
        );
        assert!(!out.iter().any(|e| matches!(
            e,
            Event::Zombie {
                autoreaped: true,
                ..
            }
        )));
        assert_eq!(m.zombie_count(), 0);
    }
}

#[test]
fn stopped_children_are_not_reaps() {
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let child = info(11, 11, 50, "child");
    let out = apply(
        &mut m,
        &[
            fork(100, parent, child),
            dead(150, child, parent, exit_state::EXIT_ZOMBIE),
            // WIFSTOPPED status (SIGSTOP << 8 | 0x7f) from a WUNTRACED wait.
            wait4(200, parent, 11, (19 << 8) | 0x7f),
        ],
    );
    assert!(reaps(&out).is_empty());
    assert_eq!(m.zombie_count(), 1);
}

#[test]
fn autoreaped_and_freed_zombies() {
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let a = info(11, 11, 50, "a");
    let b = info(12, 12, 60, "b");
    let out = apply(
        &mut m,
        &[
            fork(100, parent, a),
            fork(110, parent, b),
            dead(200, a, parent, exit_state::EXIT_DEAD),
            dead(210, b, parent, exit_state::EXIT_ZOMBIE),
            // No wait claims a: auto-reaped, as its free record shows.
            free(400, a),
            // b is reaped inside the kernel (no wait syscall): seen at free.
            free(500, b),
        ],
    );
    assert_eq!(
        reaps(&out),
        [
            (11, 50, ReapHow::Auto, Some(0)),
            (12, 60, ReapHow::Free, Some(290))
        ]
    );
    assert!(
        out.iter()
            .any(|e| matches!(e, Event::Zombie { autoreaped: true, task, .. } if task.pid == 11))
    );
    assert_eq!(m.zombie_count(), 0);
}

/// A father's exit record and the snapshot record that follows it.
fn exit_with_snapshot(
    ts: u64,
    father: TaskInfo,
    parent: TaskInfo,
    snapshot: ReaperSnapshot,
) -> [RawEvent; 2] {
    [
        RawEvent::Exit(ExitEvent {
            hdr: hdr(kind::EXIT, ts),
            task: father,
            parent: parent.id,
            children_followed: 1,
            ..Default::default()
        }),
        RawEvent::ExitSnapshot(SnapshotEvent {
            hdr: hdr(kind::EXIT_SNAPSHOT, ts),
            father: father.id,
            snapshot,
            ..Default::default()
        }),
    ]
}

fn reparent(ts: u64, orphan: TaskInfo, father: TaskInfo, reaper: TaskInfo, flags: u32) -> RawEvent {
    RawEvent::Reparent(ReparentEvent {
        hdr: hdr(kind::REPARENT, ts),
        orphan: orphan.id,
        orphan_comm: orphan.comm,
        father: father.id,
        reaper,
        reaper_is_subreaper: 0,
        orphan_exit_state: 0,
        flags,
        _pad: 0,
    })
}

#[test]
fn reparent_carries_prediction_and_verdict() {
    let mut m = Model::new(Scope::All);
    let init = info(1, 1, 0, "init");
    let sub = info(5, 5, 2, "shim");
    let father = info(10, 10, 3, "father");
    let orphan = info(11, 11, 4, "orphan");
    let mut snap = ReaperSnapshot {
        child_reaper: init,
        has_child_subreaper: 1,
        nr_subreapers: 1,
        ..Default::default()
    };
    snap.subreapers[0] = SubreaperAncestor {
        task: sub.id,
        alive_thread: sub.id,
        scan_incomplete: 0,
        _pad: 0,
    };
    let records = [
        vec![fork(10, sub, father), fork(20, father, orphan)],
        exit_with_snapshot(30, father, sub, snap).to_vec(),
        vec![reparent(40, orphan, father, sub, 0)],
    ]
    .concat();
    let out = apply(&mut m, &records);
    let Some(Event::Reparent {
        reaper,
        kind,
        predicted,
        verdict,
        father: f,
        ..
    }) = out.last()
    else {
        panic!("{out:?}")
    };
    assert_eq!(reaper.as_ref().map(|r| r.pid), Some(5));
    assert_eq!(f.pid, 10);
    assert_eq!(*kind, Some(ReaperKind::Subreaper));
    assert_eq!(
        predicted.as_ref().map(|p| (p.tid, p.kind)),
        Some((5, ReaperKind::Subreaper))
    );
    assert_eq!(*verdict, Verdict::Match);

    // The kernel picking init instead is a mismatch, classified from the captured roles.
    let orphan2 = info(12, 12, 5, "orphan2");
    let out = apply(
        &mut m,
        &[
            fork(21, father, orphan2),
            reparent(41, orphan2, father, init, 0),
        ],
    );
    let Some(Event::Reparent { kind, verdict, .. }) = out.last() else {
        panic!()
    };
    assert_eq!(
        (*kind, *verdict),
        (Some(ReaperKind::Init), Verdict::Mismatch)
    );
}

#[test]
fn reparent_without_exit_record_is_unknown() {
    let mut m = Model::new(Scope::All);
    let father = info(10, 10, 3, "father");
    let orphan = info(11, 11, 4, "orphan");
    let mut nsinit = info(900, 900, 1, "tini");
    nsinit.ns_tgid = 1;
    let out = apply(&mut m, &[reparent(40, orphan, father, nsinit, 0)]);
    let Some(Event::Reparent {
        kind,
        verdict,
        predicted,
        ..
    }) = out.last()
    else {
        panic!()
    };
    assert_eq!(
        (*kind, *verdict, predicted.is_none()),
        (Some(ReaperKind::Init), Verdict::Unknown, true)
    );
}

#[test]
fn orphan_released_while_reparented() {
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let child = info(11, 11, 50, "child");
    let out = apply(
        &mut m,
        &[
            fork(100, parent, child),
            dead(150, child, parent, exit_state::EXIT_ZOMBIE),
            reparent(200, child, parent, TaskInfo::default(), REPARENT_RELEASED),
        ],
    );
    assert!(out.iter().any(|e| matches!(
        e,
        Event::Reparent {
            reaper: None,
            verdict: Verdict::Unobserved,
            ..
        }
    )));
    // Who released it is not known yet (a fast wait by its new parent, or an auto-reap):
    // the free record settles it, keeping how long it was a zombie.
    assert!(reaps(&out).is_empty(), "{out:?}");
    let out = apply(&mut m, &[free(400, child)]);
    assert_eq!(reaps(&out), [(11, 50, ReapHow::Auto, Some(50))]);
    assert_eq!(m.zombie_count(), 0);
}

#[test]
fn tree_scope_says_what_the_command_left_behind() {
    // The kernel sends only the tree's records: the model reports them all, and knows when
    // nothing of the tree is left.
    let mut m = Model::new(Scope::Tree);
    let tracer = info(5, 5, 0, "reaper-trace");
    let cmd = info(6, 6, 1, "sh");
    let orphan = info(7, 7, 2, "sleep");
    let init = info(1, 1, 0, "init");
    let out = apply(
        &mut m,
        &[
            fork(10, tracer, cmd),
            fork(20, cmd, orphan),
            exit(40, cmd, tracer, 0),
            reparent(50, orphan, cmd, init, 0),
            dead(60, cmd, tracer, exit_state::EXIT_ZOMBIE),
            wait4(70, tracer, 6, 0),
        ],
    );
    let seen: Vec<_> = out.iter().map(|e| e.type_name()).collect();
    assert_eq!(seen, ["fork", "fork", "exit", "reparent", "zombie", "reap"]);
    assert!(m.zombies_before_trace(0).is_empty(), "not system-wide");
    assert!(!m.tree_settled(), "the orphan still runs");
    let (running, zombies) = m.tree_left();
    assert_eq!(
        (running.iter().map(|p| p.pid).collect::<Vec<_>>(), zombies),
        (vec![7], vec![])
    );
    let out = apply(
        &mut m,
        &[
            exit(80, orphan, init, 0),
            dead(90, orphan, init, exit_state::EXIT_ZOMBIE),
        ],
    );
    assert_eq!(out.len(), 2);
    let (running, zombies) = m.tree_left();
    assert!(running.is_empty());
    assert_eq!(zombies.iter().map(|p| p.pid).collect::<Vec<_>>(), [7]);
    assert!(!m.tree_settled(), "a zombie is still to be reaped");
    apply(&mut m, &[wait4(100, init, 7, 0)]);
    assert!(m.tree_settled());
}

#[test]
fn zombies_from_before_tracing_are_announced_and_reaped() {
    use reaper_trace::procfs::ProcTask;
    let mut m = Model::new(Scope::All);
    let zombie = ProcTask {
        tid: 70,
        tgid: 70,
        ppid: 69,
        comm: "old".into(),
        state: 'Z',
        start_ticks: 12,
        nspid: vec![70],
        nstgid: vec![70],
        pidns: ROOT_NS,
    };
    let lazy = ProcTask {
        tid: 69,
        ppid: 1,
        tgid: 69,
        comm: "lazy".into(),
        state: 'S',
        start_ticks: 5,
        nspid: vec![69],
        nstgid: vec![69],
        pidns: ROOT_NS,
    };
    m.seed(&[zombie, lazy]);
    let before = m.zombies_before_trace(1_000);
    match before.as_slice() {
        [
            Event::Zombie {
                task,
                parent,
                before_trace: true,
                status,
                ..
            },
        ] => {
            assert_eq!(
                (task.pid, parent.pid, parent.comm.as_str()),
                (70, 69, "lazy")
            );
            assert_eq!((status.code, status.signal), (None, None));
        }
        other => panic!("{other:?}"),
    }
    // Its parent finally waits: reaped, with no known zombie lifetime.
    let out = apply(
        &mut m,
        &[wait4(2_000, info(69, 69, 50_000_000, "lazy"), 70, 0)],
    );
    assert_eq!(reaps(&out), [(70, 120_000_000, ReapHow::Wait4, None)]);
    assert!(m.zombies_before_trace(3_000).is_empty());
}

#[test]
fn finishing_a_session_leaves_no_zombie_behind() {
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let released = info(4_000_001, 4_000_001, 50, "released");
    let lost = info(4_000_002, 4_000_002, 60, "lost-reap");
    let mut out = apply(
        &mut m,
        &[
            fork(100, parent, released),
            fork(110, parent, lost),
            exit(190, released, parent, 0),
            dead(200, released, parent, exit_state::EXIT_DEAD),
            exit(205, lost, parent, 0),
            dead(210, lost, parent, exit_state::EXIT_ZOMBIE),
        ],
    );
    out.clear();
    // /proc no longer shows the zombie: it vanished, but only once every record written
    // before that check has been applied (its reap record may be in flight).
    let zombies = m.zombies();
    assert_eq!(zombies.len(), 1);
    m.gone_from_proc(zombies[0], 1_000);
    m.settle(1_000 + VANISH_GRACE_NS - 1, &mut out);
    assert!(out.is_empty(), "too early: {out:?}");
    m.settle(1_000 + VANISH_GRACE_NS, &mut out);
    assert_eq!(reaps(&out), [(4_000_002, 60, ReapHow::Vanished, Some(790))]);
    out.clear();
    m.finish(&mut out);
    assert_eq!(reaps(&out), [(4_000_001, 50, ReapHow::Auto, Some(0))]);
    assert_eq!(m.zombie_count(), 0);
}

#[test]
fn a_vanishing_zombie_reaped_by_a_late_record_is_not_vanished() {
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let child = info(11, 11, 50, "child");
    let mut out = apply(
        &mut m,
        &[
            fork(100, parent, child),
            exit(190, child, parent, 0),
            dead(200, child, parent, exit_state::EXIT_ZOMBIE),
        ],
    );
    let z = m.zombies()[0];
    // Checked at 1000: gone from /proc. The wait record was written before, applied after.
    m.gone_from_proc(z, 1_000);
    out.extend(apply(&mut m, &[wait4(990, parent, 11, 0)]));
    m.settle(1_000 + VANISH_GRACE_NS, &mut out);
    assert_eq!(reaps(&out), [(11, 50, ReapHow::Wait4, Some(790))]);
}

/// The end of a session on a machine with 100,000 zombies: only those whose reap may be among
/// lost records are looked up in /proc (none when nothing was lost), and settling the rest
/// takes one pass. Prints the figures.
#[test]
fn the_end_of_a_session_with_100k_zombies_looks_up_only_those_at_risk() {
    use std::time::{Duration, Instant};
    const N: u64 = 100_000;
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let mut out = Vec::new();
    for i in 0..N {
        let tid = 1_000 + i as u32;
        let z = info(tid, tid, 2 + i, "z");
        let ts = 1_000 + 10 * i;
        m.apply(&fork(ts, parent, z), &mut out);
        m.apply(&exit(ts + 1, z, parent, 0), &mut out);
        m.apply(&dead(ts + 2, z, parent, exit_state::EXIT_ZOMBIE), &mut out);
    }
    assert_eq!(m.zombie_count(), N as usize);
    out.clear();

    // Nothing lost: no zombie to look up.
    let t = Instant::now();
    assert!(m.zombies_at_risk(0).is_empty());
    let none_lost = t.elapsed();
    // Records lost by the time the second half became zombies: the first half is at risk.
    let lost_by = 1_000 + 10 * (N / 2);
    let t = Instant::now();
    let at_risk = m.zombies_at_risk(lost_by);
    let listing = t.elapsed();
    assert_eq!(at_risk.len(), (N / 2) as usize);
    assert!(at_risk.iter().all(|z| z.tid < 1_000 + (N / 2) as u32));
    // /proc, read after the loss, shows half of those still zombies; the rest it was not
    // asked about (out of time): they stay at risk, and zombies in the recording.
    for z in &at_risk[..(N / 4) as usize] {
        m.still_zombie(*z, lost_by + 1);
    }
    assert_eq!(m.zombies_at_risk(lost_by).len(), (N / 4) as usize);

    let t = Instant::now();
    m.settle(u64::MAX / 2, &mut out);
    m.finish(&mut out);
    let finish = t.elapsed();
    // Outstanding zombies are left as the records showed them: no event each.
    assert!(out.is_empty(), "{} events", out.len());
    assert_eq!(m.zombie_count(), N as usize);
    eprintln!(
        "{N} zombies: none at risk found in {none_lost:?}, {} at risk in {listing:?}; settle + finish {finish:?}",
        N / 2
    );
    // One pass each (a few milliseconds optimized); generous for an unoptimized build.
    let limit = Duration::from_millis(500);
    assert!(none_lost < limit && listing < limit && finish < limit);
}

// ----- one test per class of wrong event that issue "truth" found -----

fn ns_info(tid: u32, start: u64, comm: &str, pidns: u32, ns_tid: u32) -> TaskInfo {
    let mut t = info(tid, tid, start, comm);
    t.pidns = pidns;
    t.level = 1;
    t.ns_tid = ns_tid;
    t.ns_tgid = ns_tid;
    t
}

fn zero_ids(mut t: TaskInfo) -> TaskInfo {
    t.ns_tid = 0;
    t.ns_tgid = 0;
    t.pidns = 0;
    t.level = 0;
    t
}

fn procs(events: &[Event]) -> Vec<&reaper_trace::event::Proc> {
    let mut out = Vec::new();
    for e in events {
        match e {
            Event::Fork {
                parent,
                child,
                caller,
                ..
            } => out.extend(
                [Some(parent), Some(child), caller.as_ref()]
                    .into_iter()
                    .flatten(),
            ),
            Event::Exec { task, .. } | Event::Subreaper { task, .. } => out.push(task),
            Event::Exit { task, parent, .. } => {
                out.extend([Some(task), parent.as_ref()].into_iter().flatten())
            }
            Event::Zombie { task, parent, .. } => out.extend([task, parent]),
            Event::Reap { task, reaper, .. } => {
                out.extend([Some(task), reaper.as_ref()].into_iter().flatten())
            }
            Event::Reparent {
                orphan,
                father,
                reaper,
                ..
            } => out.extend(
                [Some(orphan), Some(father), reaper.as_ref()]
                    .into_iter()
                    .flatten(),
            ),
            Event::Lost { .. } | Event::Container { .. } => {}
        }
    }
    out
}

#[test]
fn a_ptracers_wait_only_detaches() {
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let tracer = info(20, 20, 2, "strace");
    let child = info(11, 11, 50, "child");
    let out = apply(
        &mut m,
        &[
            fork(100, parent, child),
            exit(200, child, parent, 0),
            dead(210, child, parent, exit_state::EXIT_ZOMBIE),
            // The tracer's wait returns the pid: the child stays its parent's zombie.
            wait4(220, tracer, 11, 0),
        ],
    );
    assert!(reaps(&out).is_empty(), "{out:?}");
    assert_eq!(m.zombie_count(), 1);
    let out = apply(&mut m, &[wait4(300, parent, 11, 0)]);
    assert_eq!(reaps(&out), [(11, 50, ReapHow::Wait4, Some(90))]);
    match &out[0] {
        Event::Reap {
            reaper: Some(r), ..
        } => assert_eq!(r.pid, 10),
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_released_task_keeps_the_ids_captured_at_exit() {
    // Released at exit (its parent ignores SIGCHLD): its final record reads zeros for the
    // namespace ids, and its parent's may be gone too. Every event keeps the real ones.
    let mut m = Model::new(Scope::All);
    let parent = ns_info(30, 1, "parent", 4026532000, 2);
    let child = ns_info(31, 50, "child", 4026532000, 3);
    let mut out = apply(
        &mut m,
        &[
            fork(100, parent, child),
            exit(200, child, parent, 0),
            dead(
                210,
                zero_ids(child),
                zero_ids(parent),
                exit_state::EXIT_DEAD,
            ),
            exit(250, parent, info(1, 1, 0, "init"), 0),
            dead(260, parent, info(1, 1, 0, "init"), exit_state::EXIT_ZOMBIE),
            wait4(270, info(1, 1, 0, "init"), 30, 0),
            free(280, parent),
            free(290, child),
        ],
    );
    m.finish(&mut out);
    assert_eq!(
        reaps(&out).iter().filter(|r| r.2 == ReapHow::Auto).count(),
        1
    );
    for p in procs(&out)
        .into_iter()
        .filter(|p| p.pid == 30 || p.pid == 31)
    {
        assert_eq!(p.pidns, 4026532000, "{p:?} in {out:?}");
        assert!(p.ns_pid == 2 || p.ns_pid == 3, "{p:?}");
    }
}

/// Leader 40 and thread 41 of a child of 10; 41 execs: the leader exits (its group lives
/// on), 41 takes pid 40 and the leader's start time. The records up to the exec, the parent,
/// the old leader, and the exec'd program (`after`), which exits later.
fn exec_from_a_thread() -> (Vec<RawEvent>, TaskInfo, TaskInfo, TaskInfo) {
    let parent = info(10, 10, 1, "parent");
    let leader = info(40, 40, 500, "old");
    let thread = info(41, 40, 600, "old");
    let mut leader_exit = exit(300, leader, parent, 0);
    if let RawEvent::Exit(e) = &mut leader_exit {
        e.group_dead = 0;
    }
    let mut after = leader;
    after.comm[..3].copy_from_slice(b"new");
    let exec = RawEvent::Exec(ExecEvent {
        hdr: hdr(kind::EXEC, 320),
        task: after,
        old_tid: 41,
        args_len: 0,
        args_total: 0,
        exec_id: 1,
        filename: [0; FILENAME_LEN],
        args: [0; ARGS_LEN],
    });
    let records = vec![
        fork(100, parent, leader),
        fork(110, leader, thread),
        leader_exit,
        exec,
    ];
    (records, parent, leader, after)
}

#[test]
fn exec_from_a_thread_is_one_process_with_one_zombie() {
    let (mut records, parent, _, after) = exec_from_a_thread();
    records.extend([
        exit(400, after, parent, 42),
        dead(410, after, parent, exit_state::EXIT_ZOMBIE),
        wait4(420, parent, 40, 42 << 8),
    ]);
    let mut m = Model::new(Scope::All);
    let out = apply(&mut m, &records);
    let zombies: Vec<_> = out.iter().filter(|e| e.type_name() == "zombie").collect();
    assert_eq!(zombies.len(), 1, "{out:?}");
    assert_eq!(reaps(&out), [(40, 500, ReapHow::Wait4, Some(10))]);
    assert!(
        m.task(41).is_none(),
        "the exec'ing thread's old identity is gone"
    );
}

#[test]
fn the_old_leaders_release_after_an_exec_from_a_thread_leaves_the_process() {
    // The old leader's release comes in after the exec (an RCU grace period after it).
    let (mut records, parent, leader, after) = exec_from_a_thread();
    records.push(RawEvent::Free(FreeEvent {
        hdr: hdr(kind::FREE, 330),
        task: leader.id,
        exec_id: 0,
        flags: FREE_REPLACED_LEADER,
    }));
    let mut process_exit = exit(400, after, parent, 42);
    if let RawEvent::Exit(e) = &mut process_exit {
        e.exec_id = 1;
    }
    // The parent's wait4 (its record has no status) is recorded before the final switch.
    records.extend([
        process_exit,
        wait4(405, parent, 40, -1),
        dead(410, after, parent, exit_state::EXIT_ZOMBIE),
    ]);
    let mut m = Model::new(Scope::All);
    let mut out = apply(&mut m, &records[..5]);
    assert!(
        m.task(40).is_some(),
        "the old leader's release is not the process's: {out:?}"
    );
    out.extend(apply(&mut m, &records[5..]));
    let zombies: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Event::Zombie { task, status, .. } => Some((task.tid, task.start, *status)),
            _ => None,
        })
        .collect();
    assert_eq!(zombies.len(), 1, "{out:?}");
    assert_eq!(zombies[0].0, 40);
    assert_eq!(
        zombies[0].2.code,
        Some(42),
        "the new program's status: {out:?}"
    );
    // A zombie from its exit (400) to the wait (405).
    assert_eq!(reaps(&out), [(40, 500, ReapHow::Wait4, Some(5))]);
}

#[test]
fn a_reused_pid_settles_the_task_that_held_it() {
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let released = info(11, 11, 50, "released");
    let zombie = info(12, 12, 60, "zombie");
    let out = apply(
        &mut m,
        &[
            fork(100, parent, released),
            fork(110, parent, zombie),
            exit(200, released, parent, 0),
            dead(210, released, parent, exit_state::EXIT_DEAD),
            exit(220, zombie, parent, 0),
            dead(230, zombie, parent, exit_state::EXIT_ZOMBIE),
            // Their free and reap records were lost; new processes get their pids (the old
            // ones were released before the new ones started).
            fork(5_000, parent, info(11, 11, 4_900, "new")),
            fork(5_100, parent, info(12, 12, 5_050, "new")),
        ],
    );
    assert_eq!(
        reaps(&out),
        [
            (11, 50, ReapHow::Auto, Some(0)),
            (12, 60, ReapHow::Vanished, Some(4_820))
        ]
    );
    assert_eq!(m.zombie_count(), 0);
}

#[test]
fn a_state_that_changed_before_the_kernel_chose_is_not_a_mismatch() {
    // Threads 51 and 52 of process 50 exit together: at 51's exit, 52 was alive (predicted);
    // by the time the kernel chose, it was exiting too, and the subreaper got the child.
    let init = info(1, 1, 0, "init");
    let sub = info(5, 5, 2, "shim");
    let t51 = info(51, 50, 3, "go");
    let t52 = info(52, 50, 4, "go");
    let orphan = info(60, 60, 9, "child");
    let sub_entry = SubreaperAncestor {
        task: sub.id,
        alive_thread: sub.id,
        scan_incomplete: 0,
        _pad: 0,
    };
    let mut before = ReaperSnapshot {
        child_reaper: init,
        has_child_subreaper: 1,
        nr_subreapers: 1,
        alive_thread: t52.id,
        ..Default::default()
    };
    before.subreapers[0] = sub_entry;
    let mut after = before;
    after.alive_thread = TaskId::default();
    let adoptions = |snapshot| {
        RawEvent::SwitchSnapshot(SnapshotEvent {
            hdr: hdr(kind::SWITCH_SNAPSHOT, 290),
            father: t51.id,
            snapshot,
            ..Default::default()
        })
    };
    let judged = |final_snapshot: Option<ReaperSnapshot>| {
        let mut m = Model::new(Scope::All);
        let mut records = vec![fork(100, sub, t51)];
        records.extend(exit_with_snapshot(200, t51, sub, before));
        records.extend(final_snapshot.map(adoptions));
        records.push(reparent(300, orphan, t51, sub, 0));
        let out = apply(&mut m, &records);
        match out.last() {
            Some(Event::Reparent {
                verdict, reason, ..
            }) => (*verdict, reason.clone()),
            other => panic!("{other:?}"),
        }
    };
    let (verdict, reason) = judged(Some(after));
    assert_eq!(verdict, Verdict::Changed);
    assert!(
        reason
            .as_deref()
            .unwrap()
            .contains("thread 52 began exiting"),
        "{reason:?}"
    );
    // Nothing changed, and the kernel still disagrees: a real mismatch.
    assert_eq!(judged(Some(before)).0, Verdict::Mismatch);
    assert_eq!(judged(None).0, Verdict::Mismatch);
}

#[test]
fn a_dying_namespace_init_settles_its_namespace_before_its_own_reap() {
    namespace_teardown(false);
}

/// Its parent reaps the init on another CPU between the init's exit and its final switch:
/// the reap is then the first record after the teardown.
#[test]
fn a_namespace_init_reaped_before_its_final_switch_settles_its_namespace_first() {
    namespace_teardown(true);
}

fn namespace_teardown(reaped_before_final_switch: bool) {
    let ns = 4026532100;
    let mut m = Model::new(Scope::All);
    let host = info(10, 10, 1, "host");
    let init = ns_info(70, 100, "init", ns, 1);
    let zombie = ns_info(71, 110, "zombie", ns, 2);
    let child = ns_info(72, 120, "child", ns, 3);
    // The init's exit: no thread left, so it is its own predicted "reaper" (teardown).
    let snap = ReaperSnapshot {
        child_reaper: init,
        ..Default::default()
    };
    let records = [
        vec![
            fork(100, host, init),
            fork(110, init, zombie),
            fork(120, init, child),
            exit(200, zombie, init, 0),
            dead(210, zombie, init, exit_state::EXIT_ZOMBIE),
        ],
        exit_with_snapshot(300, init, host, snap).to_vec(),
        vec![
            // zap_pid_ns_processes killed and reaped both children with no wait syscall.
            exit(310, child, init, 0),
            reparent(400, child, init, TaskInfo::default(), REPARENT_RELEASED),
            // Its parent read as 0: released too (its memory reused as it was read).
            reparent(
                400,
                zombie,
                init,
                TaskInfo::default(),
                REPARENT_REAPER_ID_ONLY,
            ),
        ],
        if reaped_before_final_switch {
            vec![
                wait4(405, host, 70, 0),
                dead(410, init, host, exit_state::EXIT_ZOMBIE),
            ]
        } else {
            vec![
                dead(410, init, host, exit_state::EXIT_ZOMBIE),
                wait4(420, host, 70, 0),
            ]
        },
    ]
    .concat();
    let mut out = apply(&mut m, &records);
    // Late frees change nothing.
    out.extend(apply(&mut m, &[free(430, zombie), free(440, child)]));
    assert!(
        !out.iter().any(|e| e.type_name() == "reparent"),
        "nothing was adopted: {out:?}"
    );
    let r = reaps(&out);
    assert_eq!(
        r.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
        [
            (71, ReapHow::Namespace),
            (72, ReapHow::Namespace),
            (70, ReapHow::Wait4)
        ],
        "{out:?}"
    );
    let ts: Vec<u64> = out
        .iter()
        .filter(|e| e.type_name() == "reap")
        .map(Event::ts)
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "in order: {ts:?}");
}

#[test]
fn clone_parent_names_the_real_parent_and_the_caller() {
    let mut m = Model::new(Scope::All);
    let a = info(10, 10, 1, "a");
    let b = info(11, 11, 2, "b");
    let c = info(12, 12, 3, "c");
    apply(&mut m, &[fork(100, a, b)]);
    let out = apply(
        &mut m,
        &[RawEvent::Fork(ForkEvent {
            hdr: hdr(kind::FORK, 200),
            parent: b,
            child: c,
            real_parent: a.id,
            flags: 0,
            _pad: 0,
        })],
    );
    match &out[0] {
        Event::Fork {
            parent,
            caller: Some(caller),
            ..
        } => assert_eq!((parent.pid, caller.pid), (10, 11)),
        e => panic!("{e:?}"),
    }
}

/// A task that exits after the programs are attached but before /proc is read is both a
/// zombie from before tracing and a zombie of the records: one zombie event, not two (seen
/// under a zombie storm, where tasks exit all the time).
#[test]
fn a_zombie_found_in_proc_and_in_the_records_is_announced_once() {
    use reaper_trace::procfs::ProcTask;
    let mut m = Model::new(Scope::All);
    let parent = ProcTask {
        tid: 90,
        tgid: 90,
        ppid: 1,
        comm: "storm".into(),
        state: 'S',
        start_ticks: 5,
        nspid: vec![90],
        nstgid: vec![90],
        pidns: ROOT_NS,
    };
    let child = ProcTask {
        tid: 91,
        tgid: 91,
        ppid: 90,
        comm: "storm".into(),
        state: 'Z',
        start_ticks: 12,
        nspid: vec![91],
        nstgid: vec![91],
        pidns: ROOT_NS,
    };
    m.seed(&[parent, child]);
    let before = m.zombies_before_trace(1_000);
    assert_eq!(before.len(), 1, "{before:?}");
    let (p, c) = (
        info(90, 90, 50_000_000, "storm"),
        info(91, 91, 123_456_789, "storm"),
    );
    let out = apply(
        &mut m,
        &[
            exit(900, c, p, 0),
            dead(950, c, p, exit_state::EXIT_ZOMBIE),
            wait4(2_000, p, 91, 0),
        ],
    );
    let zombies: Vec<&Event> = out
        .iter()
        .filter(|e| matches!(e, Event::Zombie { .. }))
        .collect();
    assert!(zombies.is_empty(), "a second zombie event: {out:?}");
    // Reaped once, a zombie since its exit record.
    assert_eq!(
        reaps(&out),
        [(91, 120_000_000, ReapHow::Wait4, Some(1_050))]
    );
}

#[test]
fn a_task_from_before_tracing_keeps_one_start_time() {
    use reaper_trace::procfs::ProcTask;
    let mut m = Model::new(Scope::All);
    m.seed(&[ProcTask {
        tid: 80,
        tgid: 80,
        ppid: 1,
        comm: "old".into(),
        state: 'S',
        start_ticks: 12,
        nspid: vec![80],
        nstgid: vec![80],
        pidns: ROOT_NS,
    }]);
    // The kernel's records give its exact start time: the /proc one (same tick) stays.
    let exact = info(80, 80, 123_456_789, "old");
    let out = apply(
        &mut m,
        &[
            fork(100, exact, info(81, 81, 200, "child")),
            exit(300, info(81, 81, 200, "child"), exact, 0),
        ],
    );
    let starts: std::collections::BTreeSet<u64> = procs(&out)
        .into_iter()
        .filter(|p| p.pid == 80)
        .map(|p| p.start)
        .collect();
    assert_eq!(starts.into_iter().collect::<Vec<_>>(), [120_000_000]);
}

#[test]
fn a_wait4_result_naming_a_running_child_is_not_a_reap() {
    // wait4's record has no status (-1): a pid it returns for a child that is running (a
    // stop or continue report) is no reap; the same pid once the child exited is one, with
    // the exit record's status.
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let child = info(11, 11, 50, "child");
    let out = apply(
        &mut m,
        &[fork(100, parent, child), wait4(150, parent, 11, -1)],
    );
    assert!(reaps(&out).is_empty(), "{out:?}");
    let out = apply(
        &mut m,
        &[exit(200, child, parent, 7), wait4(260, parent, 11, -1)],
    );
    assert_eq!(reaps(&out), [(11, 50, ReapHow::Wait4, Some(60))]);
    match out.iter().find(|e| e.type_name() == "zombie") {
        Some(Event::Zombie { status, .. }) => assert_eq!(status.code, Some(7)),
        other => panic!("{other:?}"),
    }
}

/// The new parent reaps an adopted zombie on one CPU before the father's final switch, where
/// the adoption is recorded, runs on another: its wait comes before the reparent record.
fn adopted_zombie_reaped_before_the_adoption_record(free_first: bool) -> Vec<Event> {
    let mut m = Model::new(Scope::All);
    let sub = info(5, 5, 1, "reaper-init");
    let father = info(10, 10, 2, "sleep");
    let child = info(11, 11, 3, "sleep");
    let mut records = vec![
        fork(100, sub, father),
        fork(110, father, child),
        exit(200, child, father, 0),
        dead(210, child, father, exit_state::EXIT_ZOMBIE),
    ];
    records.extend(exit_with_snapshot(
        300,
        father,
        sub,
        ReaperSnapshot::default(),
    ));
    // The subreaper's wait returns the zombie before the adoption is recorded.
    records.push(wait4(310, sub, 11, -1));
    let mut adoption = reparent(330, child, father, sub, 0);
    if let RawEvent::Reparent(r) = &mut adoption {
        // Already released when read at the father's final switch.
        r.orphan_exit_state = exit_state::EXIT_DEAD;
        r.reaper_is_subreaper = 1;
    }
    if free_first {
        records.push(free(320, child));
        records.push(adoption);
    } else {
        records.push(adoption);
        records.push(free(340, child));
    }
    apply(&mut m, &records)
}

#[test]
fn a_wait_before_the_adoption_record_is_the_new_parents_reap() {
    for free_first in [false, true] {
        let out = adopted_zombie_reaped_before_the_adoption_record(free_first);
        // Reaped once, by the subreaper's wait, at the wait's time.
        assert_eq!(
            reaps(&out),
            [(11, 3, ReapHow::Wait4, Some(100))],
            "free first: {free_first}: {out:?}"
        );
        let reaper = out.iter().find_map(|e| match e {
            Event::Reap { reaper, .. } => reaper.clone(),
            _ => None,
        });
        assert_eq!(reaper.map(|r| r.pid), Some(5), "free first: {free_first}");
        // The adoption is still reported, as a zombie's, naming the subreaper.
        let adoption = out.iter().find_map(|e| match e {
            Event::Reparent { reaper, zombie, .. } => Some((reaper.clone(), *zombie)),
            _ => None,
        });
        match adoption {
            Some((Some(r), true)) => assert_eq!(r.pid, 5),
            other => panic!("free first: {free_first}: {other:?} in {out:?}"),
        }
    }
}

#[test]
fn a_ptracers_wait_while_the_parent_lives_is_never_a_reap() {
    // The parent is alive: a wait by another task is a ptracer's, not an early reap, even
    // when the task is freed later after its parent's own wait.
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let tracer = info(20, 20, 2, "strace");
    let child = info(11, 11, 50, "child");
    let out = apply(
        &mut m,
        &[
            fork(100, parent, child),
            exit(200, child, parent, 0),
            dead(210, child, parent, exit_state::EXIT_ZOMBIE),
            wait4(220, tracer, 11, -1),
            wait4(300, parent, 11, -1),
            free(310, child),
        ],
    );
    let reaper = out.iter().find_map(|e| match e {
        Event::Reap { reaper, .. } => reaper.clone(),
        _ => None,
    });
    assert_eq!(reaps(&out).len(), 1, "{out:?}");
    assert_eq!(reaper.map(|r| r.pid), Some(10));
}

#[test]
fn thread_hand_offs_recorded_out_of_order_leave_the_last_parent() {
    // Thread A of process 20 exits and hands child C to thread B; B exits and hands C to the
    // subreaper. B's final switch (its record) comes before A's.
    let mut m = Model::new(Scope::All);
    let sub = info(5, 5, 1, "reaper");
    let leader = info(20, 20, 2, "father");
    let a = info(21, 20, 3, "father");
    let b = info(22, 20, 4, "father");
    let c = info(30, 30, 5, "child");
    let mut records = vec![fork(10, sub, leader), fork(40, a, c)];
    records.extend(exit_with_snapshot(100, a, sub, ReaperSnapshot::default()));
    records.extend(exit_with_snapshot(110, b, sub, ReaperSnapshot::default()));
    records.push(reparent(120, c, b, sub, 0));
    records.push(reparent(130, c, a, b, 0));
    records.push(exit(200, c, sub, 0));
    records.push(dead(210, c, sub, exit_state::EXIT_ZOMBIE));
    records.push(wait4(220, sub, 30, -1));
    let out = apply(&mut m, &records);
    let zombie_parent = out.iter().find_map(|e| match e {
        Event::Zombie { task, parent, .. } if task.pid == 30 => Some(parent.pid),
        _ => None,
    });
    assert_eq!(zombie_parent, Some(5), "{out:?}");
    let reaper = out.iter().find_map(|e| match e {
        Event::Reap { task, reaper, .. } if task.pid == 30 => reaper.clone(),
        _ => None,
    });
    assert_eq!(reaper.map(|r| r.pid), Some(5), "{out:?}");
    assert_eq!(reaps(&out), [(30, 5, ReapHow::Wait4, Some(10))]);
}

fn late_exit(ts: u64, task: TaskInfo, parent: TaskInfo) -> RawEvent {
    let RawEvent::Exit(mut e) = exit(ts, task, parent, 0) else {
        unreachable!()
    };
    e.flags = EXIT_FLAG_LATE;
    e.group_dead = 0;
    RawEvent::Exit(e)
}

/// The hand-offs of an orphan, as (father, reaper, late).
fn hops(events: &[Event], orphan: u32) -> Vec<(u32, Option<u32>, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reparent {
                orphan: o,
                father,
                reaper,
                late,
                ..
            } if o.tid == orphan => Some((father.tid, reaper.as_ref().map(|r| r.tid), *late)),
            _ => None,
        })
        .collect()
}

/// A thread whose exit every copy of the exit program skipped (7.x) is recorded late, at its
/// final switch, without its children: the hop out of it is the next record naming the orphan's
/// parent, here the next thread's adoption record, which also comes before it in the chain.
#[test]
fn the_hop_out_of_a_late_exit_is_the_next_record_naming_the_orphans_parent() {
    let mut m = Model::new(Scope::All);
    let sub = info(10, 10, 1, "sub");
    let leader = info(100, 100, 2, "p");
    let t1 = info(101, 100, 3, "p");
    let t2 = info(102, 100, 4, "p");
    let orphan = info(200, 200, 5, "c");
    let ev = apply(
        &mut m,
        &[
            fork(10, sub, leader),
            fork(11, leader, t1),
            fork(12, leader, t2),
            fork(13, t1, orphan),
            // t1 exits, hands the orphan to t2 unseen; t2 exits and hands it to the leader.
            late_exit(30, t1, sub),
            exit(40, t2, sub, 0),
            reparent(41, orphan, t2, leader, 0),
        ],
    );
    assert_eq!(
        hops(&ev, 200),
        vec![(101, Some(102), true), (102, Some(100), false)],
        "{ev:#?}"
    );
    let late_hop = ev
        .iter()
        .find(|e| matches!(e, Event::Reparent { late: true, .. }))
        .unwrap();
    assert!(
        matches!(late_hop, Event::Reparent { verdict: Verdict::Unknown, kind: Some(ReaperKind::Thread), ts, .. } if *ts < 40),
        "{late_hop:#?}"
    );
    assert_eq!(m.take_unread_adoptions(), 0);

    // The orphan's own exit names its parent: a hop out of a late exit straight to it.
    let t3 = info(103, 100, 6, "p");
    let orphan2 = info(201, 201, 7, "c");
    let ev = apply(
        &mut m,
        &[
            fork(50, leader, t3),
            fork(51, t3, orphan2),
            late_exit(60, t3, sub),
            exit(70, orphan2, sub, 0),
        ],
    );
    assert_eq!(hops(&ev, 201), vec![(103, Some(10), true)], "{ev:#?}");

    // One no record names before the end is counted as lost, once.
    let t4 = info(104, 100, 8, "p");
    let orphan3 = info(202, 202, 9, "c");
    apply(
        &mut m,
        &[
            fork(80, leader, t4),
            fork(81, t4, orphan3),
            late_exit(90, t4, sub),
        ],
    );
    m.give_up_unread_hops();
    assert_eq!(m.take_unread_adoptions(), 1);
    assert_eq!(m.take_unread_adoptions(), 0);
}

/// A wait does not wait for the child's final switch: it can reap a child whose exit every
/// copy skipped before that exit is recorded, late, at the final switch. The reap is kept
/// until the exit comes, and the exit is then no later than the wait.
#[test]
fn a_wait_that_comes_before_a_late_exit_is_the_reap() {
    let mut m = Model::new(Scope::All);
    let parent = info(10, 10, 1, "parent");
    let child = info(11, 11, 50, "child");
    let out = apply(
        &mut m,
        &[
            fork(100, parent, child),
            wait4(300, parent, 11, 3 << 8),
            late_exit(400, child, parent),
            dead(400, child, parent, exit_state::EXIT_DEAD),
            free(500, child),
        ],
    );
    let exit_ts = out
        .iter()
        .find_map(|e| match e {
            Event::Exit { ts, late: true, .. } => Some(*ts),
            _ => None,
        })
        .expect("a late exit event");
    assert!(exit_ts <= 300, "{out:#?}");
    let r = reaps(&out);
    assert_eq!(r.len(), 1, "{out:#?}");
    assert_eq!((r[0].0, r[0].2), (11, ReapHow::Wait4), "{out:#?}");
}

/// The orphan's own exit can name its new parent before its father's late exit is recorded
/// (the father's final switch ran later): the hop out of the father is that parent.
#[test]
fn an_orphan_that_named_its_parent_before_its_fathers_late_exit_has_its_hop() {
    let mut m = Model::new(Scope::All);
    let sub = info(10, 10, 1, "sub");
    let father = info(100, 100, 2, "p");
    let orphan = info(200, 200, 5, "c");
    let ev = apply(
        &mut m,
        &[
            fork(10, sub, father),
            fork(11, father, orphan),
            exit(30, orphan, sub, 0),
            late_exit(40, father, sub),
        ],
    );
    assert_eq!(hops(&ev, 200), vec![(100, Some(10), true)], "{ev:#?}");
    m.give_up_unread_hops();
    assert_eq!(m.take_unread_adoptions(), 0);
}
