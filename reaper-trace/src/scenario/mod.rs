//! Process-tree experiments with a known right answer, run as real processes, and how each
//! one's recording is judged.
//!
//! A scenario is one entry of [`REGISTRY`], a [`Def`]: its name and description, what it
//! needs, its workload (`run`) and its check side by side. `run` performs real process
//! operations and returns the scenario's own typed pids: the processes involved (global pids,
//! by role) and what the KERNEL said while it ran (what each wait returned, what `/proc`
//! showed). `reaper-trace scenario NAME` prints them as its last line of standard output;
//! `validate` traces the scenario, reads them back into the same type and hands them to the
//! scenario's `check`, with the events recorded about the scenario's processes. A check
//! judges the recording against those kernel facts, never against what the tracer's model
//! believes, and fails on events that should not be there as well as on missing ones.
//!
//! The scenarios live in one file per family: `orphans` (adopted once, subreapers), `pid1`
//! (namespace inits), `threads`, `waits` (zombie, ptrace-wait, wait-race), `autoreap`
//! (sigchld-ignored), `identity` (clone-parent, pid-reuse) and `hang`. What their workloads
//! share is in `ctx` (the context and the notes between processes), [`sys`] (libc and
//! `/proc`) and `fuse` (holding a process inside its exit); what their checks share is in
//! [`judge`] (the [`Judge`] and its composite checks), which fills in a [`result`]. The
//! validator (the `validate` module) runs and traces them: it depends on this module,
//! never the other way.
//!
//! Adding a scenario: write its pids type, its `run` and its `check` next to each other in
//! its family's file, and add its `Def` to [`REGISTRY`]. `scenario --list`, `validate` (and
//! its `--only`) find it there.

mod autoreap;
mod ctx;
mod fuse;
mod hang;
mod identity;
pub(crate) mod judge;
mod orphans;
mod pid1;
pub mod result;
pub mod sys;
#[cfg(test)]
pub(crate) mod test_util;
mod threads;
mod waits;

use std::collections::BTreeMap;
use std::os::fd::RawFd;

use anyhow::{Result, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use autoreap::SIGCHLD_IGNORED;
pub use ctx::{Ctx, Notes};
use ctx::{NOTES_FD_ENV, STAGE_ENV};
use hang::HANG;
use identity::{CLONE_PARENT, PID_REUSE};
use judge::Judge;
use orphans::{
    EXITING_SUBREAPER, NESTED_SUBREAPERS, ORPHAN_INIT, ORPHAN_SUBREAPER, SETNS_INJECTED,
    SLEEP_INIT, SUBREAPER_REAPS,
};
use pid1::{
    INIT_EXITS_WITH_CHILDREN, PID1_CATATONIT, PID1_DUMB_INIT, PID1_REAPER_INIT, PID1_SLEEP,
    PID1_TINI,
};
use result::SkipReason;
use sys::init_binary;
use threads::{EXEC_THREAD, THREAD_REAPER, THREADS_EXIT};
use waits::{PTRACE_WAIT, WAIT_RACE, ZOMBIE};

// ---------------------------------------------------------------------------------------------
// The registry

/// The outcome a scenario prints: its typed pids, as JSON, and the identity of every process
/// (or thread) of the scenario that reported something.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioReport {
    pub scenario: String,
    pub pids: serde_json::Value,
    /// Start time (`/proc` clock ticks) by global thread id, of each task that wrote a note:
    /// it tells the task apart from another of the scenario's tasks that later got the same
    /// pid, which on a busy machine happens within a scenario's second.
    #[serde(default)]
    pub starts: BTreeMap<u32, u64>,
}

/// What a scenario needs besides root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// A program it runs as PID 1 (see [`init_binary`]).
    Program(&'static str),
    /// FUSE: a file whose flush the scenario answers holds a process inside its exit.
    Fuse,
}

impl Needs {
    /// Why the scenario cannot run on this machine, if it cannot.
    pub fn missing(self) -> Option<SkipReason> {
        match self {
            Needs::Nothing => None,
            Needs::Program(p) => init_binary(p)
                .is_none()
                .then(|| SkipReason::MissingProgram {
                    program: p.to_string(),
                }),
            Needs::Fuse => (!fuse::available()).then_some(SkipReason::NoFuse),
        }
    }
}

/// One scenario: everything about it in one place.
pub struct Def<P> {
    pub name: &'static str,
    /// One line: what it does and what must happen.
    pub about: &'static str,
    pub needs: Needs,
    /// Extra arguments of `reaper-trace scenario NAME` when `validate` runs it.
    pub args: &'static [&'static str],
    /// Only run when asked for by name (`validate --only`).
    pub hidden: bool,
    /// The workload; returns the scenario's pids and the kernel's facts.
    pub run: fn(&Ctx) -> Result<P>,
    /// The part of the workload that runs after a process of the scenario exec'd
    /// `reaper-trace scenario NAME` again (see [`exec_stage`]); returns the exit code.
    pub after_exec: Option<fn(&Ctx) -> Result<i32>>,
    /// Judges the recording against the pids and facts `run` returned.
    pub check: fn(&P, &mut Judge),
}

impl<P> Def<P> {
    pub const fn new(
        name: &'static str,
        about: &'static str,
        run: fn(&Ctx) -> Result<P>,
        check: fn(&P, &mut Judge),
    ) -> Self {
        Self {
            name,
            about,
            needs: Needs::Nothing,
            args: &[],
            hidden: false,
            run,
            after_exec: None,
            check,
        }
    }

    pub const fn needs(mut self, needs: Needs) -> Self {
        self.needs = needs;
        self
    }

    pub const fn args(mut self, args: &'static [&'static str]) -> Self {
        self.args = args;
        self
    }

    pub const fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    pub const fn after_exec(mut self, f: fn(&Ctx) -> Result<i32>) -> Self {
        self.after_exec = Some(f);
        self
    }
}

/// A registry entry whatever its pids type.
pub trait Scenario: Sync {
    fn name(&self) -> &'static str;
    fn about(&self) -> &'static str;
    fn needs(&self) -> Needs;
    fn args(&self) -> &'static [&'static str];
    fn hidden(&self) -> bool;
    /// Runs the workload; its pids as JSON.
    fn run(&self, ctx: &Ctx) -> Result<serde_json::Value>;
    fn after_exec(&self, ctx: &Ctx) -> Result<i32>;
    /// Reads `pids` back into the scenario's type and runs its check; `Err` if they do not
    /// parse.
    fn judge(&self, pids: &serde_json::Value, j: &mut Judge) -> Result<(), String>;
}

impl<P: Serialize + DeserializeOwned> Scenario for Def<P> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn about(&self) -> &'static str {
        self.about
    }

    fn needs(&self) -> Needs {
        self.needs
    }

    fn args(&self) -> &'static [&'static str] {
        self.args
    }

    fn hidden(&self) -> bool {
        self.hidden
    }

    fn run(&self, ctx: &Ctx) -> Result<serde_json::Value> {
        Ok(serde_json::to_value((self.run)(ctx)?)?)
    }

    fn after_exec(&self, ctx: &Ctx) -> Result<i32> {
        match self.after_exec {
            Some(f) => f(ctx),
            None => bail!("scenario {} has no part that runs after an exec", self.name),
        }
    }

    fn judge(&self, pids: &serde_json::Value, j: &mut Judge) -> Result<(), String> {
        let p: P = serde_json::from_value(pids.clone()).map_err(|e| e.to_string())?;
        (self.check)(&p, j);
        Ok(())
    }
}

/// Every scenario, in the order `validate` runs them.
pub static REGISTRY: &[&dyn Scenario] = &[
    &ORPHAN_INIT,
    &ORPHAN_SUBREAPER,
    &ZOMBIE,
    &THREAD_REAPER,
    &SUBREAPER_REAPS,
    &NESTED_SUBREAPERS,
    &EXITING_SUBREAPER,
    &SETNS_INJECTED,
    &INIT_EXITS_WITH_CHILDREN,
    &SLEEP_INIT,
    &PID1_SLEEP,
    &PID1_REAPER_INIT,
    &PID1_TINI,
    &PID1_DUMB_INIT,
    &PID1_CATATONIT,
    &PTRACE_WAIT,
    &EXEC_THREAD,
    &SIGCHLD_IGNORED,
    &CLONE_PARENT,
    &WAIT_RACE,
    &THREADS_EXIT,
    &PID_REUSE,
    &HANG,
];

pub fn find(name: &str) -> Option<&'static dyn Scenario> {
    REGISTRY.iter().copied().find(|s| s.name() == name)
}

/// `reaper-trace scenario NAME`: runs it and returns its report and exit code (no report for
/// the part of a scenario that runs after an exec).
pub fn run(
    name: &str,
    seconds: f64,
    budget: std::time::Duration,
) -> Result<(Option<ScenarioReport>, i32)> {
    let Some(s) = find(name) else {
        bail!("unknown scenario {name}: see `reaper-trace scenario --list`");
    };
    if let Some(stage) = std::env::var_os(STAGE_ENV) {
        let fd: RawFd = std::env::var(NOTES_FD_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1);
        let ctx = Ctx {
            notes: Notes::inherited(fd),
            seconds,
            budget,
            stage: stage
                .to_string_lossy()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        };
        return Ok((None, s.after_exec(&ctx)?));
    }
    let ctx = Ctx {
        notes: Notes::new()?,
        seconds,
        budget,
        stage: Vec::new(),
    };
    let pids = s.run(&ctx)?;
    Ok((
        Some(ScenarioReport {
            scenario: name.to_string(),
            pids,
            starts: ctx.notes.writers(),
        }),
        0,
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::event::ReaperKind;
    use crate::scenario::result::Status;
    use orphans::Orphan;
    use test_util::reparent;

    #[test]
    fn every_scenario_is_registered_once_and_described() {
        let mut names = BTreeSet::new();
        for s in REGISTRY {
            assert!(names.insert(s.name()), "{} registered twice", s.name());
            assert!(!s.about().is_empty(), "{} has no description", s.name());
        }
        assert!(find("hang").unwrap().hidden());
        assert!(REGISTRY.iter().filter(|s| !s.hidden()).count() >= 22);
        for name in [
            "ptrace-wait",
            "exec-thread",
            "sigchld-ignored",
            "clone-parent",
            "wait-race",
            "threads-exit",
            "pid-reuse",
        ] {
            assert!(find(name).is_some_and(|s| !s.hidden()), "{name}");
        }
        assert_eq!(find("exiting-subreaper").unwrap().needs(), Needs::Fuse);
        assert_eq!(find("pid1-tini").unwrap().needs(), Needs::Program("tini"));
    }

    #[test]
    fn pids_round_trip_through_the_report() {
        let pids = Orphan {
            reaper: 1,
            father: 2,
            orphan: 3,
            adopted_by: 1,
        };
        let v = serde_json::to_value(&pids).unwrap();
        // The report names pids by role, as the tests and users read them.
        assert_eq!(v["reaper"], 1);
        assert_eq!(v["orphan"], 3);
        let events = [reparent(1, 3, 2, 1, ReaperKind::Init, 1)];
        let mut j = Judge::new("orphan-init", "", &events);
        ORPHAN_INIT.judge(&v, &mut j).unwrap();
        assert_eq!(j.result().status, Status::Fail); // no zombie or reap: see below
        let mut j = Judge::new("orphan-init", "", &events);
        let e = ORPHAN_INIT
            .judge(&serde_json::json!({"reaper": 1}), &mut j)
            .unwrap_err();
        assert!(e.contains("missing field"), "{e}");
    }
}
