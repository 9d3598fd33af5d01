//! Hand-made events and results for the tests of the scenarios' checks. Each check is run
//! on such events: it passes on what the kernel did, and fails on each kind of event that
//! should not be there (a wrong reaper, a second zombie, a phantom adoption, ...) as well as
//! on missing ones.

use crate::event::{Event, ExitStatus, Prediction, Proc, ReapHow, ReaperKind, Verdict};

use super::Def;
use super::judge::Judge;
use super::result::{Reaper, ScenarioResult, Status};
use super::sys::{Stat, Waited};

pub const MS: u64 = 1_000_000;

/// A reaper as a result names it: a process (its main thread), its name when known.
pub fn result_reaper(pid: u32, comm: Option<&str>, kind: ReaperKind) -> Reaper {
    Reaper {
        pid,
        tid: pid,
        comm: comm.map(str::to_string),
        kind: Some(kind),
    }
}

pub fn p(pid: u32) -> Proc {
    Proc::fake(pid, "x")
}

pub fn judge<P>(def: &Def<P>, pids: &P, events: &[Event]) -> ScenarioResult {
    let mut j = Judge::new(def.name, def.about, events);
    (def.check)(pids, &mut j);
    j.into_result()
}

#[track_caller]
pub fn passes(r: &ScenarioResult) {
    assert_eq!(r.status, Status::Pass, "{:?}\n{r:#?}", r.reason);
}

#[track_caller]
pub fn fails(r: &ScenarioResult, why: &str) {
    assert_eq!(r.status, Status::Fail, "{r:#?}");
    let reason = r.reason.as_deref().unwrap_or("");
    assert!(reason.contains(why), "{why:?} not in {reason:?}");
}

pub fn code(c: i32) -> ExitStatus {
    ExitStatus {
        code: Some(c),
        signal: None,
        core_dumped: false,
    }
}

pub fn zombie(pid: u32, parent: u32, autoreaped: bool) -> Event {
    Event::Zombie {
        ts: 10,
        task: p(pid),
        parent: p(parent),
        status: code(0),
        autoreaped,
        before_trace: false,
    }
}

pub fn reap(pid: u32, by: u32, how: ReapHow) -> Event {
    Event::Reap {
        ts: 20,
        task: p(pid),
        reaper: Some(p(by)),
        how,
        zombie_ns: Some(MS),
    }
}

pub fn reparent(ts: u64, orphan: u32, father: u32, to: u32, kind: ReaperKind, pred: u32) -> Event {
    Event::Reparent {
        ts,
        orphan: p(orphan),
        father: p(father),
        reaper: Some(p(to)),
        kind: Some(kind),
        predicted: Some(Prediction {
            tid: pred,
            pid: pred,
            kind,
        }),
        verdict: if pred == to {
            Verdict::Match
        } else {
            Verdict::Mismatch
        },
        reason: None,
        zombie: false,
        late: false,
    }
}

pub fn with_verdict(mut e: Event, v: Verdict) -> Event {
    if let Event::Reparent { verdict, .. } = &mut e {
        *verdict = v;
    }
    e
}

pub fn exit(ts: u64, pid: u32, parent: u32, signal: Option<i32>) -> Event {
    Event::Exit {
        ts,
        task: p(pid),
        thread: false,
        parent: Some(p(parent)),
        status: ExitStatus {
            code: if signal.is_some() { None } else { Some(0) },
            signal,
            core_dumped: false,
        },
        group_dead: true,
        age_ns: 0,
        children: 0,
        children_truncated: false,
        late: false,
    }
}

pub fn fork(parent: u32, child: u32, caller: Option<u32>) -> Event {
    Event::Fork {
        ts: 1,
        parent: p(parent),
        child: p(child),
        caller: caller.map(p),
        thread: false,
        late: false,
    }
}

pub fn exited(pid: u32, c: i32) -> Waited {
    Waited {
        ret: pid as i32,
        status: c << 8,
        errno: 0,
    }
}

pub fn with(mut events: Vec<Event>, extra: Event) -> Vec<Event> {
    events.push(extra);
    events
}

pub fn without(events: &[Event], i: usize) -> Vec<Event> {
    let mut e = events.to_vec();
    e.remove(i);
    e
}

pub fn replaced(events: &[Event], i: usize, by: Event) -> Vec<Event> {
    let mut e = events.to_vec();
    e[i] = by;
    e
}

pub fn held(exiting: bool, state: char, ppid: u32) -> Stat {
    Stat {
        state,
        ppid,
        flags: if exiting { 0x40004c } else { 0x400040 },
        start: 1,
    }
}
