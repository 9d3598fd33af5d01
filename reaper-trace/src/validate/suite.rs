//! The scenarios `validate` runs and how each one's outcome is judged: pure functions from a
//! scenario's report and the events traced while it ran to a result.

use std::collections::BTreeMap;

use crate::event::{Event, ReapHow, ReaperKind, Verdict};
use crate::scenario::{BURST_ORPHANS, ScenarioReport};

use super::report::{Adoption, Reaper, ScenarioResult, Status, Zombies, describe};

/// How a scenario's outcome is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// Every orphan (`orphan`, `orphanN`) is adopted by `reaper` with the expected kind, as
    /// predicted.
    Adoption,
    /// The orphans are the children of `father` (none is named).
    ChildrenOfFather,
    /// `zombie` stays a zombie of `parent` for `secs`, then `parent` waits for it.
    Zombie { secs: f64 },
    /// An orphan adopted by a PID 1 that never waits: it stays a zombie until the namespace
    /// dies.
    KeptZombie,
    /// `BURST_ORPHANS` orphans adopted by PID 1; `reaps`: each reaped within
    /// `REAP_WITHIN_MS`, else all left as zombies.
    Pid1 { reaps: bool },
    /// Adoption, plus the evidence that the nearest subreaper was exiting when it was skipped.
    ExitingSubreaper,
    /// Adoption by the dying init, plus the evidence that the namespace was torn down.
    InitExits,
}

/// One scenario of the suite.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    /// Extra arguments of `reaper-trace scenario NAME`.
    pub args: &'static [&'static str],
    pub check: Check,
    /// A program it runs (as PID 1): skipped when it is not installed.
    pub needs: Option<&'static str>,
    /// Only run when asked for by name (`--only`).
    pub hidden: bool,
}

/// A reaping init must have reaped each orphan this soon after it became a zombie.
pub const REAP_WITHIN_MS: f64 = 100.0;
/// The zombie scenario's parent sleeps this long before it waits.
const ZOMBIE_SECS: f64 = 1.0;

const fn spec(name: &'static str, check: Check) -> Spec {
    Spec {
        name,
        args: &[],
        check,
        needs: None,
        hidden: false,
    }
}

const fn pid1_spec(name: &'static str, program: &'static str) -> Spec {
    Spec {
        needs: Some(program),
        ..spec(name, Check::Pid1 { reaps: true })
    }
}

pub const SUITE: &[Spec] = &[
    spec("orphan-init", Check::Adoption),
    spec("orphan-subreaper", Check::Adoption),
    Spec {
        args: &["--seconds", "1"],
        ..spec("zombie", Check::Zombie { secs: ZOMBIE_SECS })
    },
    spec("thread-reaper", Check::Adoption),
    spec("subreaper-reaps", Check::ChildrenOfFather),
    spec("nested-subreapers", Check::Adoption),
    spec("exiting-subreaper", Check::ExitingSubreaper),
    spec("setns-injected", Check::Adoption),
    spec("init-exits-with-children", Check::InitExits),
    Spec {
        args: &["--seconds", "1"],
        ..spec("sleep-init", Check::KeptZombie)
    },
    spec("pid1-sleep", Check::Pid1 { reaps: false }),
    pid1_spec("pid1-reaper-init", "reaper-init"),
    pid1_spec("pid1-tini", "tini"),
    pid1_spec("pid1-dumb-init", "dumb-init"),
    pid1_spec("pid1-catatonit", "catatonit"),
    Spec {
        hidden: true,
        ..spec("hang", Check::Adoption)
    },
];

pub fn find(name: &str) -> Option<&'static Spec> {
    SUITE.iter().find(|s| s.name == name)
}

/// The scenario's one-line description.
pub fn description(name: &str) -> &'static str {
    crate::scenario::SCENARIOS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, d)| d)
}

/// The orphans a scenario names: `orphan`, `orphan0`, `orphan1`, ...
fn named_orphans(pids: &BTreeMap<String, u32>) -> Vec<u32> {
    pids.iter()
        .filter(|(k, _)| {
            k.strip_prefix("orphan")
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|(_, v)| *v)
        .collect()
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The first `reparent` event of `orphan`.
fn reparent_of(events: &[Event], orphan: u32) -> Option<&Event> {
    events
        .iter()
        .find(|e| matches!(e, Event::Reparent { orphan: o, .. } if o.pid == orphan))
}

fn exit_of(events: &[Event], pid: u32) -> Option<&Event> {
    events
        .iter()
        .find(|e| matches!(e, Event::Exit { task, .. } if task.pid == pid && task.tid == pid))
}

fn adoption(events: &[Event], orphan: u32, expected: &Reaper) -> Adoption {
    let Some(Event::Reparent {
        father,
        reaper,
        kind,
        predicted,
        verdict,
        ..
    }) = reparent_of(events, orphan)
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
    let observed = reaper.as_ref().map(|r| Reaper {
        pid: r.pid,
        tid: r.tid,
        comm: Some(r.comm.clone()),
        kind: *kind,
    });
    let predicted = predicted.as_ref().map(|p| Reaper {
        pid: p.pid,
        tid: p.tid,
        comm: None,
        kind: Some(p.kind),
    });
    let same = |r: &Option<Reaper>| {
        r.as_ref()
            .is_some_and(|r| r.tid == expected.tid && r.kind == expected.kind)
    };
    let ok = *verdict == Verdict::Match && same(&observed) && same(&predicted);
    let verdict = serde_json::to_value(verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Adoption {
        orphan,
        father: father.pid,
        observed,
        predicted,
        verdict,
        ok,
    }
}

/// Checks that every orphan was adopted by the expected reaper, as predicted; fills the
/// expected/observed/predicted cells.
fn check_adoptions(r: &mut ScenarioResult, events: &[Event], orphans: &[u32], kind: ReaperKind) {
    let Some(&reaper) = r.pids.get("reaper") else {
        r.fail("the scenario did not report its reaper");
        return;
    };
    let expected = Reaper {
        pid: reaper,
        tid: reaper,
        comm: None,
        kind: Some(kind),
    };
    r.expected_text = describe(&expected);
    if orphans.len() > 1 {
        r.expected_text += &format!(" (x{})", orphans.len());
    }
    r.expected = Some(expected.clone());
    if orphans.is_empty() {
        r.fail("no orphan to check");
        return;
    }
    r.adoptions = orphans
        .iter()
        .map(|&o| adoption(events, o, &expected))
        .collect();
    let good = r.adoptions.iter().filter(|a| a.ok).count();
    // Show the first adoption that went wrong, else the first one.
    let shown = r
        .adoptions
        .iter()
        .find(|a| !a.ok)
        .unwrap_or(&r.adoptions[0])
        .clone();
    r.observed = shown.observed.clone();
    r.predicted = shown.predicted.clone();
    r.observed_text = match &shown.observed {
        Some(o) => describe(o),
        None if shown.verdict == "missing" => "no reparent event".into(),
        None => "released before it could be read".into(),
    };
    if orphans.len() > 1 {
        r.observed_text += &format!(" ({good}/{} ok)", orphans.len());
    }
    r.predicted_text = shown
        .predicted
        .as_ref()
        .map_or_else(|| "none".into(), describe);
    if let Some(a) = r.adoptions.iter().find(|a| !a.ok).cloned() {
        let what = match (&a.observed, a.verdict.as_str()) {
            (_, "missing") => format!("no reparent event for orphan {}", a.orphan),
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
        r.fail(what);
    }
}

/// Zombie statistics of the orphans: who reaped them, how and how fast.
fn zombie_stats(events: &[Event], orphans: &[u32], reaper: u32) -> Zombies {
    let mut z = Zombies {
        orphans: orphans.len() as u32,
        ..Zombies::default()
    };
    for &o in orphans {
        let reap = events.iter().find_map(|e| match e {
            Event::Reap {
                task,
                reaper: by,
                how,
                zombie_ns,
                ..
            } if task.pid == o => Some((by.as_ref().map(|p| p.pid), *how, *zombie_ns)),
            _ => None,
        });
        let Some((by, how, zombie_ns)) = reap else {
            z.not_reaped += 1;
            continue;
        };
        match how {
            ReapHow::Free | ReapHow::Vanished => {
                z.not_reaped += 1;
                continue;
            }
            _ if by != Some(reaper) => z.reaped_by_other += 1,
            ReapHow::Wait4 | ReapHow::Waitid => z.reaped_by_wait += 1,
            ReapHow::Auto => z.reaped_auto += 1,
        }
        if let Some(ns) = zombie_ns {
            z.max_zombie_ms = Some(z.max_zombie_ms.unwrap_or(0.0).max(ms(ns)));
        }
    }
    z
}

/// Reaped by the reaper itself (a wait, or auto-reaped because it ignores SIGCHLD), none by
/// another process.
fn all_reaped_by_reaper(z: &Zombies) -> bool {
    z.reaped_by_wait + z.reaped_auto == z.orphans && z.reaped_by_other == 0
}

/// Says how many reaps were recorded as `auto`, if any.
fn auto_note(z: &Zombies) -> String {
    if z.reaped_auto > 0 {
        format!(
            " ({} auto-reaped: the reaper ignores SIGCHLD)",
            z.reaped_auto
        )
    } else {
        String::new()
    }
}

fn comm_of(events: &[Event], pid: u32) -> String {
    events
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

/// Judges a scenario that ran to its end.
pub fn evaluate(spec: &Spec, report: &ScenarioReport, events: &[Event]) -> ScenarioResult {
    let mut r = ScenarioResult::new(spec.name, description(spec.name));
    r.pids = report.pids.clone();
    r.status = Status::Pass;
    let lost: u64 = events
        .iter()
        .map(|e| match e {
            Event::Lost { count, .. } => *count,
            _ => 0,
        })
        .sum();
    let kind = report.expected_kind;
    let pid = |name: &str| report.pids.get(name).copied();
    match spec.check {
        Check::Adoption | Check::ExitingSubreaper | Check::InitExits | Check::KeptZombie => {
            let kind = kind.unwrap_or(ReaperKind::Unexpected);
            check_adoptions(&mut r, events, &named_orphans(&report.pids), kind);
        }
        Check::ChildrenOfFather => {
            let kind = kind.unwrap_or(ReaperKind::Unexpected);
            let father = pid("father").unwrap_or(0);
            let orphans: Vec<u32> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Reparent {
                        orphan, father: f, ..
                    } if f.pid == father => Some(orphan.pid),
                    _ => None,
                })
                .collect();
            check_adoptions(&mut r, events, &orphans, kind);
            if let Some(reaper) = pid("reaper") {
                let z = zombie_stats(events, &orphans, reaper);
                if !all_reaped_by_reaper(&z) {
                    r.fail(format!(
                        "{} of {} orphans reaped by the subreaper",
                        z.reaped_by_wait + z.reaped_auto,
                        orphans.len()
                    ));
                } else if let Some(max) = z.max_zombie_ms {
                    r.notes.push(format!(
                        "{} orphans adopted and reaped by the subreaper, each a zombie for <= {max:.2} ms{}",
                        orphans.len(),
                        auto_note(&z)
                    ));
                }
                r.zombies = Some(z);
            }
        }
        Check::Zombie { secs } => zombie(&mut r, events, secs),
        Check::Pid1 { reaps } => pid1(&mut r, events, report, reaps),
    }
    match spec.check {
        Check::KeptZombie => kept_zombie(&mut r, events),
        Check::ExitingSubreaper => exiting_subreaper(&mut r, events),
        Check::InitExits => init_exits(&mut r, events),
        _ => {}
    }
    match spec.name {
        "setns-injected" => {
            if let (Some(s), Some(j)) = (pid("subreaper"), pid("injector")) {
                r.notes.push(format!(
                    "subreaper {s} not chosen: the father's parent {j} (the injector) is outside the namespace"
                ));
            }
        }
        "nested-subreapers" => {
            if let Some(f) = pid("father") {
                r.notes.push(format!(
                    "inner subreaper {f} exited first; the outer one adopts"
                ));
            }
        }
        "thread-reaper" => {
            if let Some(f) = pid("father") {
                r.notes.push(format!("the forking thread {f} exited"));
            }
        }
        _ => {}
    }
    if lost > 0 {
        r.notes.push(format!("{lost} kernel records lost"));
    }
    r
}

fn zombie(r: &mut ScenarioResult, events: &[Event], secs: f64) {
    let (Some(&z), Some(&parent)) = (r.pids.get("zombie"), r.pids.get("parent")) else {
        r.fail("the scenario did not report its zombie and parent");
        return;
    };
    r.expected_text = format!("zombie of {parent} for {secs} s, then wait");
    let became = events.iter().any(
        |e| matches!(e, Event::Zombie { task, parent: p, .. } if task.pid == z && p.pid == parent),
    );
    let reap = events.iter().find_map(|e| match e {
        Event::Reap {
            task,
            reaper,
            how,
            zombie_ns,
            ..
        } if task.pid == z => Some((reaper.clone(), *how, *zombie_ns)),
        _ => None,
    });
    if !became {
        r.fail(format!("no zombie event for {z} with parent {parent}"));
    }
    match reap {
        Some((Some(by), how @ (ReapHow::Wait4 | ReapHow::Waitid), Some(ns))) => {
            let lived = ns as f64 / 1e9;
            r.observed_text = format!(
                "reaped by {} {} after {lived:.2} s ({})",
                by.pid,
                by.comm,
                how.as_str()
            );
            if by.pid != parent {
                r.fail(format!("reaped by {}, not by its parent {parent}", by.pid));
            } else if lived < secs * 0.9 {
                r.fail(format!("a zombie for only {lived:.2} s, expected {secs} s"));
            } else {
                r.notes.push(format!(
                    "a zombie for {lived:.2} s until its parent called {}",
                    how.as_str()
                ));
            }
        }
        Some((by, how, _)) => {
            r.observed_text = format!("reaped ({})", how.as_str());
            r.fail(format!(
                "reaped by {} with {}, not by its parent's wait",
                by.map_or_else(|| "?".into(), |p| p.pid.to_string()),
                how.as_str()
            ));
        }
        None => {
            r.observed_text = "never reaped".into();
            r.fail(format!("no reap event for zombie {z}"));
        }
    }
    if reparent_of(events, z).is_some() {
        r.fail(format!(
            "zombie {z} was reparented: its parent never exited"
        ));
    }
}

fn kept_zombie(r: &mut ScenarioResult, events: &[Event]) {
    let (Some(&o), Some(&init)) = (r.pids.get("orphan"), r.pids.get("reaper")) else {
        return;
    };
    let zombie_of_init = events.iter().any(
        |e| matches!(e, Event::Zombie { task, parent, .. } if task.pid == o && parent.pid == init),
    );
    let z = zombie_stats(events, &[o], init);
    if !zombie_of_init {
        r.fail(format!(
            "orphan {o} never became a zombie of PID 1 ({init})"
        ));
    } else if z.not_reaped == 0 {
        r.fail(format!(
            "orphan {o} was reaped before the namespace died: sleep never waits"
        ));
    } else {
        let lived = events.iter().find_map(|e| match e {
            Event::Reap {
                task, zombie_ns, ..
            } if task.pid == o => *zombie_ns,
            _ => None,
        });
        r.notes.push(match lived {
            Some(ns) => format!(
                "a zombie of `sleep` for {:.2} s, released only when the namespace died",
                ns as f64 / 1e9
            ),
            None => "a zombie of `sleep` until the namespace died".into(),
        });
    }
    r.zombies = Some(z);
}

fn pid1(r: &mut ScenarioResult, events: &[Event], report: &ScenarioReport, reaps: bool) {
    let orphans = named_orphans(&report.pids);
    check_adoptions(r, events, &orphans, ReaperKind::Init);
    let Some(&init) = report.pids.get("reaper") else {
        return;
    };
    let name = comm_of(events, init);
    if orphans.len() as u32 != BURST_ORPHANS {
        r.fail(format!(
            "{} orphans reported, expected {BURST_ORPHANS}",
            orphans.len()
        ));
    }
    let mut z = zombie_stats(events, &orphans, init);
    z.left_in_proc = report.pids.get("zombies_left").copied();
    let n = orphans.len() as u32;
    match (reaps, z.left_in_proc) {
        (_, None) => r.fail("the workload did not report how many zombies were left"),
        (false, Some(left)) => {
            r.expected_text += &format!(", {n} zombies kept");
            if left != n {
                r.fail(format!("{left} zombies left under PID 1, expected {n}"));
            } else if z.not_reaped != n {
                r.fail(format!(
                    "{} orphans were reaped before the namespace died",
                    n - z.not_reaped
                ));
            } else {
                r.notes.push(format!(
                    "{left} zombies left under {name} (never waits), released only when the namespace was torn down"
                ));
            }
        }
        (true, Some(left)) => {
            r.expected_text += &format!(", each reaped <= {REAP_WITHIN_MS} ms");
            let max = z.max_zombie_ms.unwrap_or(f64::INFINITY);
            if left != 0 {
                r.fail(format!("{left} zombies left under {name}"));
            } else if !all_reaped_by_reaper(&z) {
                r.fail(format!(
                    "{} of {n} orphans reaped by {name}",
                    z.reaped_by_wait + z.reaped_auto
                ));
            } else if max > REAP_WITHIN_MS {
                r.fail(format!(
                    "an orphan stayed a zombie for {max:.1} ms (limit {REAP_WITHIN_MS} ms)"
                ));
            } else {
                r.notes.push(format!(
                    "{n} orphans reaped by {name} in <= {max:.2} ms; 0 zombies left{}",
                    auto_note(&z)
                ));
            }
        }
    }
    r.zombies = Some(z);
}

fn exiting_subreaper(r: &mut ScenarioResult, events: &[Event]) {
    let (Some(&s), Some(&p)) = (r.pids.get("exiting_subreaper"), r.pids.get("father")) else {
        r.fail("the scenario did not report its subreapers");
        return;
    };
    let t_s = exit_of(events, s).map(Event::ts);
    let (t_p, p_parent) = match exit_of(events, p) {
        Some(Event::Exit { ts, parent, .. }) => (Some(*ts), parent.as_ref().map(|x| x.pid)),
        _ => (None, None),
    };
    // When S handed its children (P among them) on: after its exit_mm.
    let t_handed = events.iter().find_map(|e| match e {
        Event::Reparent {
            orphan, father, ts, ..
        } if orphan.pid == p && father.pid == s => Some(*ts),
        _ => None,
    });
    match (t_s, t_p, t_handed) {
        (Some(ts), Some(tp), Some(th)) if ts < tp && tp < th && p_parent == Some(s) => {
            r.notes.push(format!(
                "subreaper {s} began exiting first; father {p} exited {:.1} ms later while still its child; {s} handed its children on {:.1} ms after that: {s} was skipped",
                ms(tp - ts),
                ms(th - tp)
            ));
        }
        (Some(_), Some(_), Some(_)) => r.fail(format!(
            "the skip was not exercised: subreaper {s} had finished exiting before father {p} did"
        )),
        _ => r.fail(format!(
            "missing the exit of subreaper {s}, the exit of father {p} or {s}'s hand-over of {p}"
        )),
    }
}

fn init_exits(r: &mut ScenarioResult, events: &[Event]) {
    let Some(&init) = r.pids.get("reaper") else {
        return;
    };
    let Some(t_init) = exit_of(events, init).map(Event::ts) else {
        r.fail(format!("no exit event for the init {init}"));
        return;
    };
    let mut killed = Vec::new();
    for name in ["killed", "father", "orphan"] {
        let Some(&p) = r.pids.get(name) else {
            r.fail(format!("the scenario did not report its {name}"));
            return;
        };
        match exit_of(events, p) {
            Some(Event::Exit { ts, status, .. }) if *ts >= t_init && status.signal == Some(9) => {
                killed.push(p)
            }
            Some(Event::Exit { status, .. }) => {
                r.fail(format!(
                    "{name} {p} ended with {status:?}, not SIGKILL after the init's exit"
                ));
                return;
            }
            _ => {
                r.fail(format!("no exit event for {name} {p}"));
                return;
            }
        }
    }
    // The init's own children are not reparented: zap_pid_ns_processes reaps them first.
    let own: Vec<u32> = ["killed", "father"]
        .iter()
        .filter_map(|n| r.pids.get(*n).copied())
        .filter(|p| reparent_of(events, *p).is_some())
        .collect();
    if !own.is_empty() {
        r.notes
            .push(format!("the init's children {own:?} were reparented"));
    }
    r.notes.push(format!(
        "namespace torn down: {} processes SIGKILLed; the init's own children reaped inside the kernel, never reparented",
        killed.len()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ExitStatus, Prediction, Proc};

    fn proc(pid: u32, comm: &str) -> Proc {
        Proc::fake(pid, comm)
    }

    fn reparent(
        ts: u64,
        orphan: u32,
        father: u32,
        reaper: u32,
        kind: ReaperKind,
        pred: Option<u32>,
    ) -> Event {
        let verdict = match pred {
            Some(p) if p == reaper => Verdict::Match,
            Some(_) => Verdict::Mismatch,
            None => Verdict::Unknown,
        };
        Event::Reparent {
            ts,
            orphan: proc(orphan, "o"),
            father: proc(father, "f"),
            reaper: Some(proc(reaper, "r\u{1b}")),
            kind: Some(kind),
            predicted: pred.map(|p| Prediction {
                tid: p,
                pid: p,
                kind,
            }),
            verdict,
            reason: None,
            zombie: false,
        }
    }

    fn exit(ts: u64, pid: u32, parent: u32, signal: Option<i32>) -> Event {
        Event::Exit {
            ts,
            task: proc(pid, "x"),
            thread: false,
            parent: Some(proc(parent, "p")),
            status: ExitStatus {
                code: if signal.is_some() { None } else { Some(0) },
                signal,
                core_dumped: false,
            },
            group_dead: true,
            age_ns: 0,
            children: 0,
            children_truncated: false,
        }
    }

    fn zombie_ev(ts: u64, pid: u32, parent: u32) -> Event {
        Event::Zombie {
            ts,
            task: proc(pid, "z"),
            parent: proc(parent, "p"),
            status: ExitStatus {
                code: Some(0),
                signal: None,
                core_dumped: false,
            },
            autoreaped: false,
            before_trace: false,
        }
    }

    fn reap(ts: u64, pid: u32, by: u32, how: ReapHow, zombie_ns: u64) -> Event {
        Event::Reap {
            ts,
            task: proc(pid, "z"),
            reaper: Some(proc(by, "tini")),
            how,
            zombie_ns: Some(zombie_ns),
        }
    }

    fn report(name: &str, kind: Option<ReaperKind>, pids: &[(&str, u32)]) -> ScenarioReport {
        ScenarioReport {
            scenario: name.into(),
            pids: pids.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            expected_kind: kind,
        }
    }

    #[test]
    fn adoption_passes_only_when_observed_expected_and_predicted_agree() {
        let spec = find("orphan-init").unwrap();
        let rep = report(
            "orphan-init",
            Some(ReaperKind::Init),
            &[("reaper", 10), ("father", 11), ("orphan", 12)],
        );
        let ok = [reparent(1, 12, 11, 10, ReaperKind::Init, Some(10))];
        let r = evaluate(spec, &rep, &ok);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.expected_text, "10 init");
        assert_eq!(r.observed_text, "10 r\u{1b} init");
        assert_eq!(r.predicted_text, "10 init");

        // The kernel chose another reaper than predicted.
        let wrong = [reparent(1, 12, 11, 20, ReaperKind::Subreaper, Some(10))];
        let r = evaluate(spec, &rep, &wrong);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.reason.as_ref().unwrap().contains("adopted by 20"),
            "{r:?}"
        );

        // Observed and predicted agree with each other, not with the expectation.
        let both_wrong = [reparent(1, 12, 11, 20, ReaperKind::Subreaper, Some(20))];
        assert_eq!(evaluate(spec, &rep, &both_wrong).status, Status::Fail);

        // No prediction: not a pass.
        let unknown = [reparent(1, 12, 11, 10, ReaperKind::Init, None)];
        assert_eq!(evaluate(spec, &rep, &unknown).status, Status::Fail);

        // Right reaper, wrong kind.
        let kind = [reparent(1, 12, 11, 10, ReaperKind::Subreaper, Some(10))];
        assert_eq!(evaluate(spec, &rep, &kind).status, Status::Fail);

        // No event at all.
        let r = evaluate(spec, &rep, &[]);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.observed_text, "no reparent event");
    }

    #[test]
    fn released_orphan_is_not_a_pass() {
        let spec = find("orphan-subreaper").unwrap();
        let rep = report(
            "orphan-subreaper",
            Some(ReaperKind::Subreaper),
            &[("reaper", 10), ("orphan", 12)],
        );
        let ev = [Event::Reparent {
            ts: 1,
            orphan: proc(12, "o"),
            father: proc(11, "f"),
            reaper: None,
            kind: None,
            predicted: Some(Prediction {
                tid: 10,
                pid: 10,
                kind: ReaperKind::Subreaper,
            }),
            verdict: Verdict::Unobserved,
            reason: None,
            zombie: true,
        }];
        let r = evaluate(spec, &rep, &ev);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.observed_text, "released before it could be read");
    }

    #[test]
    fn zombie_lifetime_and_reaper() {
        let spec = find("zombie").unwrap();
        let rep = report("zombie", None, &[("parent", 5), ("zombie", 6)]);
        let good = [
            zombie_ev(0, 6, 5),
            reap(1_000_000_000, 6, 5, ReapHow::Wait4, 1_000_000_000),
        ];
        let r = evaluate(spec, &rep, &good);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.observed_text, "reaped by 5 tini after 1.00 s (wait4)");
        let short = [zombie_ev(0, 6, 5), reap(1, 6, 5, ReapHow::Wait4, 1_000_000)];
        assert_eq!(evaluate(spec, &rep, &short).status, Status::Fail);
        let freed = [
            zombie_ev(0, 6, 5),
            reap(1, 6, 5, ReapHow::Free, 1_000_000_000),
        ];
        assert_eq!(evaluate(spec, &rep, &freed).status, Status::Fail);
        assert_eq!(
            evaluate(spec, &rep, &[zombie_ev(0, 6, 5)]).status,
            Status::Fail
        );
    }

    fn burst(init: u32, zombies_left: u32) -> (ScenarioReport, Vec<u32>) {
        let mut pids = vec![
            ("reaper", init),
            ("zombies_left", zombies_left),
            ("orphans", 10),
        ];
        let names: Vec<String> = (0..BURST_ORPHANS).map(|i| format!("orphan{i}")).collect();
        let orphans: Vec<u32> = (0..BURST_ORPHANS).map(|i| 100 + i).collect();
        for (n, o) in names.iter().zip(&orphans) {
            pids.push((n.as_str(), *o));
        }
        (report("pid1-tini", Some(ReaperKind::Init), &pids), orphans)
    }

    #[test]
    fn reaping_init_reaps_every_orphan_quickly() {
        let spec = find("pid1-tini").unwrap();
        let (rep, orphans) = burst(50, 0);
        let mut ev = vec![Event::Exec {
            ts: 0,
            task: proc(50, "tini"),
            filename: "/usr/bin/tini".into(),
            args: vec![],
            args_truncated: false,
        }];
        for &o in &orphans {
            ev.push(reparent(1, o, o + 100, 50, ReaperKind::Init, Some(50)));
            ev.push(zombie_ev(2, o, 50));
            ev.push(reap(3, o, 50, ReapHow::Wait4, 2_000_000));
        }
        let r = evaluate(spec, &rep, &ev);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.observed_text, "50 r\u{1b} init (10/10 ok)");
        assert_eq!(
            r.notes,
            // The reaper's name as the adoptions saw it (raw; the table escapes it).
            vec!["10 orphans reaped by r\u{1b} in <= 2.00 ms; 0 zombies left"]
        );
        let z = r.zombies.unwrap();
        assert_eq!((z.reaped_by_wait, z.left_in_proc), (10, Some(0)));

        // Too slow.
        let mut slow = ev.clone();
        slow.push(reap(3, 999, 50, ReapHow::Wait4, 1));
        if let Some(Event::Reap { zombie_ns, .. }) =
            slow.iter_mut().find(|e| matches!(e, Event::Reap { .. }))
        {
            *zombie_ns = Some(250_000_000);
        }
        let r = evaluate(spec, &rep, &slow);
        assert_eq!(r.status, Status::Fail);
        assert!(r.reason.unwrap().contains("250.0 ms"));

        // An init that ignores SIGCHLD auto-reaps: still reaped by the init, and said so.
        let mut raced = ev.clone();
        let first_reap = raced
            .iter_mut()
            .find(|e| matches!(e, Event::Reap { .. }))
            .unwrap();
        *first_reap = reap(3, orphans[0], 50, ReapHow::Auto, 0);
        let r = evaluate(spec, &rep, &raced);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert!(r.notes[0].contains("(1 auto-reaped"), "{r:?}");
        // Reaped by someone else than PID 1: not what the scenario is about.
        let mut other = ev.clone();
        let first_reap = other
            .iter_mut()
            .find(|e| matches!(e, Event::Reap { .. }))
            .unwrap();
        *first_reap = reap(3, orphans[0], 77, ReapHow::Wait4, 1);
        let r = evaluate(spec, &rep, &other);
        assert_eq!(r.status, Status::Fail);
        assert!(r.reason.unwrap().contains("9 of 10 orphans reaped by"));

        // Zombies left in /proc.
        let (rep3, _) = burst(50, 3);
        let r = evaluate(spec, &rep3, &ev);
        assert_eq!(r.status, Status::Fail);
        assert!(r.reason.unwrap().contains("3 zombies left"));
    }

    #[test]
    fn sleep_as_pid1_keeps_every_zombie() {
        let spec = find("pid1-sleep").unwrap();
        let (rep, orphans) = burst(50, 10);
        let mut ev = Vec::new();
        for &o in &orphans {
            ev.push(reparent(1, o, o + 100, 50, ReaperKind::Init, Some(50)));
            ev.push(zombie_ev(2, o, 50));
            ev.push(reap(3, o, 50, ReapHow::Free, 1_400_000_000));
        }
        let r = evaluate(spec, &rep, &ev);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert!(r.notes[0].starts_with("10 zombies left under"), "{r:?}");
        assert_eq!(r.zombies.as_ref().unwrap().not_reaped, 10);
        // If they had been reaped, sleep would not be the PID 1 of the article.
        let (rep0, _) = burst(50, 0);
        assert_eq!(evaluate(spec, &rep0, &ev).status, Status::Fail);
    }

    #[test]
    fn exiting_subreaper_needs_the_ordering_evidence() {
        let spec = find("exiting-subreaper").unwrap();
        let rep = report(
            "exiting-subreaper",
            Some(ReaperKind::Subreaper),
            &[
                ("reaper", 10),
                ("exiting_subreaper", 11),
                ("father", 12),
                ("orphan", 13),
            ],
        );
        let ms = 1_000_000;
        let good = vec![
            exit(100 * ms, 11, 10, None),
            exit(103 * ms, 12, 11, None),
            reparent(104 * ms, 13, 12, 10, ReaperKind::Subreaper, Some(10)),
            reparent(160 * ms, 12, 11, 10, ReaperKind::Subreaper, Some(10)),
        ];
        let r = evaluate(spec, &rep, &good);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert!(r.notes[0].contains("exited 3.0 ms later"), "{r:?}");
        // S had finished before P exited: P's parent was already the outer subreaper.
        let late = vec![
            exit(100 * ms, 11, 10, None),
            reparent(160 * ms, 12, 11, 10, ReaperKind::Subreaper, Some(10)),
            exit(170 * ms, 12, 10, None),
            reparent(171 * ms, 13, 12, 10, ReaperKind::Subreaper, Some(10)),
        ];
        let r = evaluate(spec, &rep, &late);
        assert_eq!(r.status, Status::Fail);
        assert!(r.reason.unwrap().contains("not exercised"));
    }

    #[test]
    fn dying_init_adopts_and_kills() {
        let spec = find("init-exits-with-children").unwrap();
        let rep = report(
            "init-exits-with-children",
            Some(ReaperKind::Init),
            &[
                ("reaper", 10),
                ("killed", 11),
                ("father", 12),
                ("orphan", 13),
            ],
        );
        let good = vec![
            exit(1, 10, 9, None),
            exit(2, 11, 10, Some(9)),
            exit(2, 12, 10, Some(9)),
            exit(2, 13, 12, Some(9)),
            reparent(3, 13, 12, 10, ReaperKind::Init, Some(10)),
        ];
        let r = evaluate(spec, &rep, &good);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        let mut exited = good.clone();
        exited[1] = exit(2, 11, 10, None);
        assert_eq!(evaluate(spec, &rep, &exited).status, Status::Fail);
    }

    #[test]
    fn suite_names_are_scenarios() {
        for s in SUITE {
            assert!(
                !description(s.name).is_empty(),
                "{} has no description",
                s.name
            );
        }
        assert!(find("hang").unwrap().hidden);
        assert!(SUITE.iter().filter(|s| !s.hidden).count() >= 15);
    }
}
