//! How a scenario's outcome is judged: the [`Judge`] a scenario's check works with (the
//! events traced while it ran, queries over them, and the composite checks several scenarios
//! share), and [`evaluate`], which runs a scenario's own check on its typed report.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::time::Duration;

use super::result::{
    Adoption, Failure, Reaper, ScenarioResult, SkipReason, Status, Zombies, describe,
};
use super::{Scenario, ScenarioReport};
use crate::event::{Event, Proc, ReapHow, ReaperKind, Verdict};
use crate::identity::{UNKNOWN_START, start_in_tick};

/// A reaping init must have reaped each orphan this soon after it became a zombie.
pub const REAP_WITHIN_MS: f64 = 100.0;

pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The result being built for one scenario and the events it is judged on. Every check adds
/// to the same result: the first failure's reason comes first, the others follow it.
pub struct Judge<'a> {
    events: &'a [Event],
    result: ScenarioResult,
    /// Start times (`/proc` ticks) of the scenario's tasks that reported them, by thread id.
    starts: BTreeMap<u32, u64>,
    /// How soon a reaping init must reap an orphan's zombie, in milliseconds.
    reap_within_ms: f64,
}

impl<'a> Judge<'a> {
    /// A judge that passes unless a check fails (or the scenario skips itself).
    pub fn new(scenario: &str, description: &str, events: &'a [Event]) -> Self {
        let mut result = ScenarioResult::new(scenario, description);
        result.status = Status::Pass;
        Self {
            events,
            result,
            starts: BTreeMap::new(),
            reap_within_ms: REAP_WITHIN_MS,
        }
    }

    /// Tells the scenario's tasks by identity: a query about a task whose start time is known
    /// leaves out another task of the scenario that had the same id before or after it.
    pub fn with_starts(mut self, starts: BTreeMap<u32, u64>) -> Self {
        self.starts = starts;
        self
    }

    pub fn with_reap_within(mut self, limit: Duration) -> Self {
        self.reap_within_ms = limit.as_secs_f64() * 1000.0;
        self
    }

    /// How soon a reaping init must reap an orphan's zombie, in milliseconds
    /// (`validate --reap-within`, [`REAP_WITHIN_MS`] by default).
    pub fn reap_within_ms(&self) -> f64 {
        self.reap_within_ms
    }

    /// Is `p` the task the scenario means by its thread id (same start, where known)?
    pub fn is(&self, p: &Proc) -> bool {
        self.starts
            .get(&p.tid)
            .is_none_or(|&t| p.start == UNKNOWN_START || start_in_tick(p.start, t))
    }

    pub fn events(&self) -> &'a [Event] {
        self.events
    }

    pub fn result(&self) -> &ScenarioResult {
        &self.result
    }

    pub fn into_result(self) -> ScenarioResult {
        self.result
    }

    /// Fails: the recording does not match what the kernel did ([`Failure::Mismatch`]).
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.fail_as(Failure::Mismatch, reason);
    }

    /// Fails with a failure of kind `kind`.
    pub fn fail_as(&mut self, kind: Failure, reason: impl Into<String>) {
        self.result.fail(kind, reason);
    }

    /// The scenario could not exercise what it is about here (and says why); a failure
    /// found before or after still fails it.
    pub fn skip(&mut self, skip: SkipReason) {
        if self.result.status == Status::Pass {
            self.result.status = Status::Skipped;
            self.result.reason = Some(skip.to_string());
            self.result.skip = Some(skip);
        }
    }

    /// Fails with `reason()` unless `ok` ([`Failure::Mismatch`]); returns `ok`.
    pub fn check(&mut self, ok: bool, reason: impl FnOnce() -> String) -> bool {
        self.check_as(Failure::Mismatch, ok, reason)
    }

    /// Fails with a failure of kind `kind` and `reason()` unless `ok`; returns `ok`.
    pub fn check_as(&mut self, kind: Failure, ok: bool, reason: impl FnOnce() -> String) -> bool {
        if !ok {
            self.fail_as(kind, reason());
        }
        ok
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.result.notes.push(note.into());
    }

    /// The table's EXPECTED cell: what the kernel said should happen (its waits, `/proc`).
    pub fn expected(&mut self, text: impl Into<String>) {
        self.result.expected_text = text.into();
    }

    /// The OBSERVED cell: what the recording shows.
    pub fn observed(&mut self, text: impl Into<String>) {
        self.result.observed_text = text.into();
    }

    /// The PREDICTED cell: what the recording expected before the fact (`find_new_reaper`'s
    /// prediction for an adoption; for a reap, the parent the zombie event named).
    pub fn predicted(&mut self, text: impl Into<String>) {
        self.result.predicted_text = text.into();
    }

    pub fn set_zombies(&mut self, z: Zombies) {
        self.result.zombies = Some(z);
    }

    /// Records the expected reaper (JSON `expected`) and shows it.
    pub fn expect_reaper(&mut self, r: Reaper) {
        self.result.expected_text = describe(&r);
        self.result.expected = Some(r);
    }

    /// Adds to the EXPECTED cell.
    pub fn expected_add(&mut self, text: &str) {
        self.result.expected_text += text;
    }

    // -----------------------------------------------------------------------------------------
    // Queries. The events are the scenario's own (the validator keeps the events about the
    // tasks its fork events created), so a pid names one of the scenario's processes.

    /// `reparent` events whose orphan is process `pid`, in recording order.
    pub fn reparents(&self, pid: u32) -> Vec<&'a Event> {
        self.select(
            |e| matches!(e, Event::Reparent { orphan, .. } if orphan.pid == pid && self.is(orphan)),
        )
    }

    /// `zombie` events of process `pid`.
    pub fn zombies(&self, pid: u32) -> Vec<&'a Event> {
        self.select(|e| matches!(e, Event::Zombie { task, .. } if task.pid == pid && self.is(task)))
    }

    /// `reap` events of process `pid`.
    pub fn reaps(&self, pid: u32) -> Vec<&'a Event> {
        self.select(|e| matches!(e, Event::Reap { task, .. } if task.pid == pid && self.is(task)))
    }

    /// `exit` events of process `pid`'s main thread.
    pub fn exits(&self, pid: u32) -> Vec<&'a Event> {
        self.select(|e| {
            matches!(e, Event::Exit { task, .. } if task.pid == pid && task.is_leader() && self.is(task))
        })
    }

    /// `fork` events that created process `pid` (not threads).
    pub fn forks(&self, pid: u32) -> Vec<&'a Event> {
        self.select(|e| {
            matches!(e, Event::Fork { child, thread: false, .. } if child.pid == pid && self.is(child))
        })
    }

    pub fn select(&self, f: impl Fn(&Event) -> bool) -> Vec<&'a Event> {
        self.events.iter().filter(|e| f(e)).collect()
    }

    /// Kernel records lost while the scenario ran (every kind but `children`).
    pub fn lost(&self) -> u64 {
        kernel_records_lost(self.events)
    }

    /// Judges the kernel records reported lost while the scenario ran, once it has checked
    /// every record it is about against the kernel (what its waits returned, what `/proc`
    /// showed): `whole` when all were there. The count covers every process on the machine
    /// and, where standby copies are attached (7.x), is an upper bound: with the scenario's
    /// own records whole, it is noted; else the failure says the recording cannot be checked.
    pub fn check_lost(&mut self, whole: bool) {
        let lost = self.lost();
        if lost == 0 {
            return;
        }
        if whole {
            self.note(format!(
                "{lost} kernel records reported lost (at most, machine-wide), none of them this \
                 scenario's: every record it checks is there"
            ));
        } else {
            self.check_as(Failure::RecordsLost { count: lost }, false, || {
                format!("{lost} kernel records lost: the recording cannot be checked")
            });
        }
    }

    /// The one event in `found`, else a failure that says how many there were of `what`.
    pub fn one(&mut self, found: Vec<&'a Event>, what: impl Display) -> Option<&'a Event> {
        match found.len() {
            1 => Some(found[0]),
            0 => {
                self.fail(format!("no {what} recorded"));
                None
            }
            n => {
                self.fail(format!(
                    "{n} {what} recorded, expected one: {}",
                    found
                        .iter()
                        .map(|e| brief(e))
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
                None
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Composite checks.

    /// Process `pid` became a zombie of `parent` once, and was reaped once, by `parent`, in
    /// one of the ways `how` allows. Returns the zombie and reap events when each is unique.
    pub fn zombie_then_reap(
        &mut self,
        pid: u32,
        parent: u32,
        how: &[ReapHow],
    ) -> (Option<&'a Event>, Option<&'a Event>) {
        let zombie = self.one(self.zombies(pid), format_args!("zombie events of {pid}"));
        if let Some(Event::Zombie { parent: p, .. }) = zombie {
            self.check(p.pid == parent, || {
                format!(
                    "the zombie event of {pid} names {} as its parent, the kernel's is {parent}",
                    p.pid
                )
            });
        }
        let reap = self.one(self.reaps(pid), format_args!("reap events of {pid}"));
        if let Some(Event::Reap { reaper, how: h, .. }) = reap {
            let by = reaper.as_ref().map(|r| r.pid);
            self.check(by == Some(parent) && how.contains(h), || {
                format!(
                    "{pid} recorded as reaped by {} ({}), but {parent} reaped it ({})",
                    by.map_or_else(|| "nobody".into(), |b| b.to_string()),
                    h.as_str(),
                    how.iter()
                        .map(|h| h.as_str())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            });
        }
        (zombie, reap)
    }

    /// No `reparent` event for `pid`: its parent never exited before it.
    pub fn never_reparented(&mut self, pid: u32, why: &str) {
        let found = self.reparents(pid);
        if let Some(e) = found.first() {
            self.fail(format!(
                "{pid} recorded as adopted ({}), but {why}",
                brief(e)
            ));
        }
    }

    /// Every orphan was adopted exactly once, by `expected` (by thread id, with its kind), as
    /// `find_new_reaper` predicted (verdict `match`). Fills the expected, observed and
    /// predicted cells and `adoptions`.
    pub fn adoptions(&mut self, orphans: &[u32], expected: Reaper) {
        self.adoptions_with(orphans, expected, true, |v| v == Verdict::Match);
    }

    /// [`Judge::adoptions`] with the verdicts that are acceptable; `once`: each orphan has
    /// exactly one reparent event, else the one judged is its last (an orphan may be handed
    /// on several times, e.g. from thread to thread of a dying process).
    pub fn adoptions_with(
        &mut self,
        orphans: &[u32],
        expected: Reaper,
        once: bool,
        verdict_ok: impl Fn(Verdict) -> bool,
    ) {
        self.expect_reaper(expected.clone());
        if orphans.len() > 1 {
            self.result.expected_text += &format!(" (x{})", orphans.len());
        }
        if orphans.is_empty() {
            self.fail("no orphan to check");
            return;
        }
        self.result.adoptions = orphans
            .iter()
            .map(|&o| adoption(self.reparents(o), o, &expected, once, &verdict_ok))
            .collect();
        let good = self.result.adoptions.iter().filter(|a| a.ok).count();
        // Show the first adoption that went wrong, else the first one.
        let shown = self
            .result
            .adoptions
            .iter()
            .find(|a| !a.ok)
            .unwrap_or(&self.result.adoptions[0])
            .clone();
        self.result.observed = shown.observed.clone();
        self.result.predicted = shown.predicted.clone();
        self.result.observed_text = match &shown.observed {
            Some(o) => describe(o),
            None if shown.verdict == "missing" => "no reparent event".into(),
            None => "released before it could be read".into(),
        };
        if orphans.len() > 1 {
            self.result.observed_text += &format!(" ({good}/{} ok)", orphans.len());
        }
        self.result.predicted_text = shown
            .predicted
            .as_ref()
            .map_or_else(|| "none".into(), describe);
        if let Some(a) = self.result.adoptions.iter().find(|a| !a.ok).cloned() {
            let what = match (&a.observed, a.verdict.as_str()) {
                (_, "missing") => format!("no reparent event for orphan {}", a.orphan),
                (_, "repeated") => format!(
                    "orphan {} recorded as adopted more than once (its father exited once)",
                    a.orphan
                ),
                (None, v) => format!(
                    "orphan {}: its new parent could not be read ({v})",
                    a.orphan
                ),
                (Some(o), v) => format!(
                    "orphan {} adopted by {}, expected {}, predicted {} ({v})",
                    a.orphan,
                    describe(o),
                    describe(&expected),
                    a.predicted.as_ref().map_or_else(|| "none".into(), describe)
                ),
            };
            self.fail(what);
        }
    }

    /// Who reaped the orphans, how and how fast.
    pub fn zombie_stats(&self, orphans: &[u32], reaper: u32) -> Zombies {
        let mut z = Zombies {
            orphans: orphans.len() as u32,
            ..Zombies::default()
        };
        for &o in orphans {
            let reap = self.events.iter().find_map(|e| match e {
                Event::Reap {
                    task,
                    reaper: by,
                    how,
                    zombie_ns,
                    ..
                } if task.pid == o && self.is(task) => {
                    Some((by.as_ref().map(|p| p.pid), *how, *zombie_ns))
                }
                _ => None,
            });
            let Some((by, how, zombie_ns)) = reap else {
                z.not_reaped += 1;
                continue;
            };
            match how {
                ReapHow::Namespace | ReapHow::Free | ReapHow::Vanished => {
                    z.not_reaped += 1;
                    continue;
                }
                _ if by != Some(reaper) => z.reaped_by_other += 1,
                ReapHow::Wait4 | ReapHow::Waitid | ReapHow::IoUring => z.reaped_by_wait += 1,
                ReapHow::Auto => z.reaped_auto += 1,
            }
            if let Some(ns) = zombie_ns {
                z.max_zombie_ms = Some(z.max_zombie_ms.unwrap_or(0.0).max(ms(ns)));
            }
        }
        z
    }

    /// The name of process `pid` as the events last gave it.
    pub fn comm_of(&self, pid: u32) -> String {
        self.events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Reparent {
                    reaper: Some(r), ..
                } if r.pid == pid => Some(r.comm.clone()),
                Event::Exec { task, .. } if task.pid == pid => Some(task.comm.clone()),
                _ => None,
            })
            .unwrap_or_else(|| format!("process {pid}"))
    }
}

/// Reaped by the reaper itself (a wait, or auto-reaped because it ignores SIGCHLD), none by
/// another process.
pub fn all_reaped_by_reaper(z: &Zombies) -> bool {
    z.reaped_by_wait + z.reaped_auto == z.orphans && z.reaped_by_other == 0
}

/// Says how many reaps were recorded as `auto`, if any.
pub fn auto_note(z: &Zombies) -> String {
    if z.reaped_auto > 0 {
        format!(
            " ({} auto-reaped: the reaper ignores SIGCHLD)",
            z.reaped_auto
        )
    } else {
        String::new()
    }
}

/// The proc objects of an event, with the field each is in.
pub fn procs(e: &Event) -> Vec<(&'static str, &Proc)> {
    let all: [(&'static str, Option<&Proc>); 3] = match e {
        Event::Fork {
            parent,
            child,
            caller,
            ..
        } => [
            ("parent", Some(parent)),
            ("child", Some(child)),
            ("caller", caller.as_ref()),
        ],
        Event::Exec { task, .. } | Event::Subreaper { task, .. } => {
            [("task", Some(task)), ("", None), ("", None)]
        }
        Event::Exit { task, parent, .. } => [
            ("task", Some(task)),
            ("parent", parent.as_ref()),
            ("", None),
        ],
        Event::Reparent {
            orphan,
            father,
            reaper,
            ..
        } => [
            ("orphan", Some(orphan)),
            ("father", Some(father)),
            ("reaper", reaper.as_ref()),
        ],
        Event::Zombie { task, parent, .. } => {
            [("task", Some(task)), ("parent", Some(parent)), ("", None)]
        }
        Event::Reap { task, reaper, .. } => [
            ("task", Some(task)),
            ("reaper", reaper.as_ref()),
            ("", None),
        ],
        Event::Lost { .. } | Event::Container { .. } => [("", None), ("", None), ("", None)],
    };
    all.into_iter()
        .filter_map(|(name, p)| Some((name, p?)))
        .collect()
}

/// One line about an event, for failure messages.
pub fn brief(e: &Event) -> String {
    let who = |p: &Proc| format!("{}/{}", p.pid, p.tid);
    match e {
        Event::Fork {
            parent,
            child,
            caller,
            ..
        } => format!(
            "fork of {} by parent {}{}",
            who(child),
            who(parent),
            caller
                .as_ref()
                .map_or_else(String::new, |c| format!(" (caller {})", who(c)))
        ),
        Event::Exec { task, .. } => format!("exec of {}", who(task)),
        Event::Exit {
            task, parent, ts, ..
        } => format!(
            "exit of {} (parent {}) at {ts}",
            who(task),
            parent.as_ref().map_or_else(|| "?".into(), who)
        ),
        Event::Reparent {
            orphan,
            father,
            reaper,
            verdict,
            ..
        } => format!(
            "reparent of {} from {} to {} ({verdict:?})",
            who(orphan),
            who(father),
            reaper.as_ref().map_or_else(|| "?".into(), who)
        ),
        Event::Zombie {
            task,
            parent,
            autoreaped,
            ..
        } => format!(
            "zombie {} of {}{}",
            who(task),
            who(parent),
            if *autoreaped { " (autoreaped)" } else { "" }
        ),
        Event::Reap {
            task, reaper, how, ..
        } => format!(
            "reap of {} by {} ({})",
            who(task),
            reaper.as_ref().map_or_else(|| "?".into(), who),
            how.as_str()
        ),
        Event::Subreaper { task, enabled, .. } => format!("subreaper {} {enabled}", who(task)),
        Event::Lost { what, count, .. } => format!("{count} {what} lost"),
        Event::Container { pidns, info, .. } => info.describe(*pidns),
    }
}

/// `reaped by PID COMM (how)` for a reap event.
pub fn describe_reap(e: &Event) -> String {
    match e {
        Event::Reap { reaper, how, .. } => match reaper {
            Some(r) => format!("reaped by {} {} ({})", r.pid, r.comm, how.as_str()),
            None => format!("reaped ({})", how.as_str()),
        },
        other => brief(other),
    }
}

/// `zombie of PID COMM` for a zombie event: who the recording says must reap it.
pub fn describe_zombie(e: &Event) -> String {
    match e {
        Event::Zombie {
            parent, autoreaped, ..
        } => format!(
            "zombie of {} {}{}",
            parent.pid,
            parent.comm,
            if *autoreaped { ", autoreaped" } else { "" }
        ),
        other => brief(other),
    }
}

/// The reaper a reparent event observed, as the report shows it.
pub fn observed_reaper(e: &Event) -> Option<Reaper> {
    match e {
        Event::Reparent { reaper, kind, .. } => reaper.as_ref().map(|r| Reaper {
            pid: r.pid,
            tid: r.tid,
            comm: Some(r.comm.clone()),
            kind: *kind,
        }),
        _ => None,
    }
}

/// The reaper a reparent event predicted.
pub fn predicted_reaper(e: &Event) -> Option<Reaper> {
    match e {
        Event::Reparent { predicted, .. } => predicted.as_ref().map(|p| Reaper {
            pid: p.pid,
            tid: p.tid,
            comm: None,
            kind: Some(p.kind),
        }),
        _ => None,
    }
}

pub fn verdict_str(v: Verdict) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The adoption of `orphan`: its last reparent event (of `all`, its reparent events), judged
/// against `expected`.
fn adoption(
    all: Vec<&Event>,
    orphan: u32,
    expected: &Reaper,
    once: bool,
    verdict_ok: &dyn Fn(Verdict) -> bool,
) -> Adoption {
    let Some(
        e @ Event::Reparent {
            father, verdict, ..
        },
    ) = all.last().copied()
    else {
        return Adoption {
            orphan,
            father: 0,
            observed: None,
            predicted: None,
            verdict: "missing".into(),
            ok: false,
        };
    };
    let observed = observed_reaper(e);
    let predicted = predicted_reaper(e);
    let same = |r: &Option<Reaper>| {
        r.as_ref()
            .is_some_and(|r| r.tid == expected.tid && r.kind == expected.kind)
    };
    // With a prediction judged `changed`, the prediction is allowed to differ.
    let predicted_ok = same(&predicted) || (*verdict == Verdict::Changed && verdict_ok(*verdict));
    let repeated = once && all.len() > 1;
    // A hand-off out of a father whose exit was recorded late (Linux 7.x) has no prediction:
    // only the kernel's choice is checked.
    let unpredicted =
        matches!(e, Event::Reparent { late: true, .. }) && *verdict == Verdict::Unknown;
    let ok =
        !repeated && same(&observed) && (unpredicted || (verdict_ok(*verdict) && predicted_ok));
    Adoption {
        orphan,
        father: father.pid,
        observed,
        predicted,
        verdict: if repeated {
            "repeated".into()
        } else {
            verdict_str(*verdict)
        },
        ok,
    }
}

/// Kernel records lost in `events` (every kind but `children`, which a scenario asks for).
pub fn kernel_records_lost(events: &[Event]) -> u64 {
    events
        .iter()
        .map(|e| match e {
            Event::Lost { what, count, .. } if what != "children" => *count,
            _ => 0,
        })
        .sum()
}

/// Judges a scenario that ran to its end: its own check, on its own typed report.
pub fn evaluate(
    scenario: &dyn Scenario,
    report: &ScenarioReport,
    events: &[Event],
    reap_within: Duration,
) -> ScenarioResult {
    let mut j = Judge::new(scenario.name(), scenario.about(), events)
        .with_starts(report.starts.clone())
        .with_reap_within(reap_within);
    j.result.pids = report.pids.clone();
    if let Err(e) = scenario.judge(&report.pids, &mut j) {
        j.fail_as(
            Failure::BadReport,
            format!("the scenario's report does not parse: {e}"),
        );
    }
    let lost = j.lost();
    if lost > 0 {
        j.note(format!("{lost} kernel records lost"));
    }
    j.into_result()
}

/// A reaper (thread `tid` of process `pid`, of kind `kind`), as expected.
pub fn reaper(pid: u32, tid: u32, kind: ReaperKind) -> Reaper {
    Reaper {
        pid,
        tid,
        comm: None,
        kind: Some(kind),
    }
}

/// Checks shared by the kernel-fact checks: fails with `what` (what the kernel did not do)
/// unless `ok`. Such a failure means the scenario did not set up what it is about.
pub fn kernel_said(j: &mut Judge, ok: bool, what: impl FnOnce() -> String) -> bool {
    j.check_as(Failure::Setup, ok, || {
        format!(
            "the kernel did not behave as the scenario needs: {}",
            what()
        )
    })
}

/// Events grouped by a pid `key` gives them.
pub fn index(events: &[Event], key: impl Fn(&Event) -> Option<u32>) -> HashMap<u32, Vec<&Event>> {
    let mut map: HashMap<u32, Vec<&Event>> = HashMap::new();
    for e in events {
        if let Some(k) = key(e) {
            map.entry(k).or_default().push(e);
        }
    }
    map
}
