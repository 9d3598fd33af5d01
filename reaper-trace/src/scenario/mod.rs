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
//! Adding a scenario: write its pids type, its `run` and its `check` next to each other in
//! this file, and add its `Def` to [`REGISTRY`]. `scenario --list`, `validate` (and its
//! `--only`) find it there.

mod ctx;
mod fuse;
pub mod sys;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::event::{Event, ReapHow, ReaperKind, Verdict};
use crate::validate::suite::{
    self, Judge, all_reaped_by_reaper, auto_note, brief, describe_reap, describe_zombie, ms, reaper,
};
pub use ctx::{Ctx, Noted, Notes};
use ctx::{NOTES_FD_ENV, STAGE_ENV, exec_stage};
pub use sys::init_binary;
use sys::{
    FORK_RETRY_FOR, Stat, Waited, close, errno, fork_then, global_pid, global_ppid, global_tid,
    join_pid_namespace, new_pid_namespace, own_pidns, pipe, poll_until, read_u32, read_until_eof,
    reap_all, set_subreaper, sleep_ms, stat_of, stat_self, wait_for, wait_until_adopted, wait4,
    write_u32, zombies_of,
};

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
    pub fn missing(self) -> Option<String> {
        match self {
            Needs::Nothing => None,
            Needs::Program(p) => init_binary(p)
                .is_none()
                .then(|| format!("{p} is not installed")),
            Needs::Fuse => (!fuse::available())
                .then(|| "needs FUSE (/dev/fuse and the fuse file system)".into()),
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
pub fn run(name: &str, seconds: f64) -> Result<(Option<ScenarioReport>, i32)> {
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

/// Checks shared by the kernel-fact checks: fails with `what` (what the kernel did not do)
/// unless `ok`. Such a failure means the scenario did not set up what it is about.
fn kernel_said(j: &mut Judge, ok: bool, what: impl FnOnce() -> String) -> bool {
    j.check(ok, || {
        format!(
            "the kernel did not behave as the scenario needs: {}",
            what()
        )
    })
}

// =============================================================================================
// The scenarios
// =============================================================================================

// ---------------------------------------------------------------------------------------------
// Orphans adopted once: orphan-init, orphan-subreaper, nested-subreapers, setns-injected,
// sleep-init

/// A reaper, a father that exits at once, and its orphan.
#[derive(Debug, Serialize, Deserialize)]
pub struct Orphan {
    pub reaper: u32,
    pub father: u32,
    pub orphan: u32,
    /// The orphan's parent in `/proc` once it was no longer the father: the kernel's choice.
    pub adopted_by: u32,
}

impl Orphan {
    fn from_notes(n: &Noted) -> Result<Self> {
        Ok(Self {
            reaper: n.get("reaper")?,
            father: n.get("father")?,
            orphan: n.get("orphan")?,
            adopted_by: n.get("adopted_by")?,
        })
    }

    /// Adopted once by the reaper, kind `kind`, as `/proc` showed and as predicted; its
    /// zombie waits for the reaper, which reaps it (with `how`, when given).
    fn check(&self, kind: ReaperKind, how: Option<&[ReapHow]>, j: &mut Judge) {
        j.adoptions(&[self.orphan], reaper(self.reaper, self.reaper, kind));
        kernel_said(j, self.adopted_by == self.reaper, || {
            format!(
                "/proc showed orphan {} adopted by {}, not {}",
                self.orphan, self.adopted_by, self.reaper
            )
        });
        if let Some(how) = how {
            j.zombie_then_reap(self.orphan, self.reaper, how);
        }
    }
}

/// A father that forks `orphan` (which lives `orphan_ms` at least, and notes the parent
/// `/proc` shows once it is adopted) and exits at once.
fn orphan_maker(notes: &Notes, orphan_ms: u64) -> i32 {
    let father = global_pid();
    notes.note("father", father);
    let child = fork_then(|| {
        let start = Instant::now();
        notes.note("orphan", global_pid());
        poll_until(Duration::from_secs(10), || global_ppid() != father);
        notes.note("adopted_by", global_ppid());
        if let Some(left) = Duration::from_millis(orphan_ms).checked_sub(start.elapsed()) {
            std::thread::sleep(left);
        }
        0
    });
    if child.is_err() { 1 } else { 0 }
}

static ORPHAN_INIT: Def<Orphan> = Def::new(
    "orphan-init",
    "a parent exits before its child inside a pid namespace; the namespace init adopts it",
    |ctx| {
        let notes = &ctx.notes;
        new_pid_namespace()?;
        let init = fork_then(|| {
            notes.note("reaper", global_pid());
            if fork_then(|| orphan_maker(notes, 300)).is_err() {
                return 1;
            }
            reap_all();
            0
        })?;
        wait_for(init);
        Orphan::from_notes(&notes.collect()?)
    },
    |p, j| p.check(ReaperKind::Init, Some(&[ReapHow::Wait4]), j),
);

static ORPHAN_SUBREAPER: Def<Orphan> = Def::new(
    "orphan-subreaper",
    "a parent exits before its child; the subreaper above adopts it",
    |ctx| {
        let notes = &ctx.notes;
        set_subreaper()?;
        notes.note("reaper", global_pid());
        let father = fork_then(|| orphan_maker(notes, 300))?;
        wait_for(father);
        reap_all();
        Orphan::from_notes(&notes.collect()?)
    },
    |p, j| p.check(ReaperKind::Subreaper, Some(&[ReapHow::Wait4]), j),
);

static NESTED_SUBREAPERS: Def<Orphan> = Def::new(
    "nested-subreapers",
    "an inner subreaper exits while its child lives; the outer subreaper adopts the child",
    |ctx| {
        // outer (this process) > inner subreaper > child; the inner one exits first.
        let notes = &ctx.notes;
        set_subreaper()?;
        notes.note("reaper", global_pid());
        let inner = fork_then(|| {
            if set_subreaper().is_err() {
                return 1;
            }
            orphan_maker(notes, 300)
        })?;
        wait_for(inner);
        reap_all();
        Orphan::from_notes(&notes.collect()?)
    },
    |p, j| {
        p.check(ReaperKind::Subreaper, Some(&[ReapHow::Wait4]), j);
        j.note(format!(
            "inner subreaper {} exited first; the outer one adopts",
            p.father
        ));
    },
);

/// `setns-injected`: an orphan of a process injected into a namespace.
#[derive(Debug, Serialize, Deserialize)]
pub struct Injected {
    /// The subreaper outside the namespace (the scenario's main process).
    pub subreaper: u32,
    /// Joined the namespace with setns and forked the father there.
    pub injector: u32,
    #[serde(flatten)]
    pub orphan: Orphan,
}

static SETNS_INJECTED: Def<Injected> = Def::new(
    "setns-injected",
    "like `docker exec`: a process outside a pid namespace (under a subreaper) joins it with setns and forks a parent; that parent's orphan goes to the namespace init, not the subreaper",
    |ctx| {
        // This process is a subreaper in the host namespace. The injector J (forked before
        // the namespace exists, so it stays outside) joins the namespace of init I with setns
        // and forks P inside; P forks C and exits. P's parent J is outside the namespace, so
        // the subreaper walk stops at once: C goes to I, not to us.
        let notes = &ctx.notes;
        set_subreaper()?;
        notes.note("subreaper", global_pid());
        let (go_read, go_write) = pipe()?;
        let injector = fork_then(|| {
            close(go_write);
            notes.note("injector", global_pid());
            let Some(init) = read_u32(go_read) else {
                return 2;
            };
            if let Err(e) = join_pid_namespace(init) {
                eprintln!("{e:#}");
                return 3;
            }
            match fork_then(|| orphan_maker(notes, 300)) {
                Ok(p) => {
                    wait_for(p);
                    0
                }
                Err(_) => 1,
            }
        })?;
        close(go_read);
        new_pid_namespace()?;
        let init = fork_then(|| {
            notes.note("reaper", global_pid());
            // Outlive the orphan (300 ms), then reap it.
            sleep_ms(700);
            reap_all();
            0
        })?;
        write_u32(go_write, init as u32);
        close(go_write);
        wait_for(injector);
        wait_for(init);
        let n = notes.collect()?;
        Ok(Injected {
            subreaper: n.get("subreaper")?,
            injector: n.get("injector")?,
            orphan: Orphan::from_notes(&n)?,
        })
    },
    |p, j| {
        p.orphan.check(ReaperKind::Init, Some(&[ReapHow::Wait4]), j);
        j.note(format!(
            "subreaper {} not chosen: the father's parent {} (the injector) is outside the namespace",
            p.subreaper, p.injector
        ));
    },
);

static SLEEP_INIT: Def<Orphan> = Def::new(
    "sleep-init",
    "a pid namespace whose PID 1 is `sleep`: an orphan is adopted by it and stays a zombie",
    |ctx| {
        let notes = &ctx.notes;
        new_pid_namespace()?;
        let secs = format!("{}", ctx.seconds);
        let init = fork_then(|| {
            notes.note("reaper", global_pid());
            if fork_then(|| orphan_maker(notes, 200)).is_err() {
                return 1;
            }
            let err = std::os::unix::process::CommandExt::exec(
                std::process::Command::new("sleep").arg(&secs),
            );
            eprintln!("exec sleep: {err}");
            127
        })?;
        wait_for(init);
        Orphan::from_notes(&notes.collect()?)
    },
    |p, j| {
        p.check(ReaperKind::Init, None, j);
        let (o, init) = (p.orphan, p.reaper);
        // Its zombie waits for `sleep`, which never waits: released only when the namespace
        // dies (reaped inside the kernel: `free`).
        let zombie = j.one(j.zombies(o), format_args!("zombie events of {o}"));
        if let Some(Event::Zombie { parent, .. }) = zombie {
            j.check(parent.pid == init, || {
                format!("orphan {o} recorded as a zombie of {}, not of PID 1 ({init})", parent.pid)
            });
        }
        let z = j.zombie_stats(&[o], init);
        let reap = j.one(j.reaps(o), format_args!("reap events of {o}"));
        if let Some(Event::Reap { how, zombie_ns, .. }) = reap
            && j.check(matches!(how, ReapHow::Free), || {
                format!(
                    "orphan {o} recorded as reaped ({}) before the namespace died: sleep never waits",
                    how.as_str()
                )
            }) {
                j.note(match zombie_ns {
                    Some(ns) => format!(
                        "a zombie of `sleep` for {:.2} s, released only when the namespace died",
                        *ns as f64 / 1e9
                    ),
                    None => "a zombie of `sleep` until the namespace died".into(),
                });
        }
        j.set_zombies(z);
    },
)
.args(&["--seconds", "1"]);

// ---------------------------------------------------------------------------------------------
// zombie

/// `zombie`: a child that exits while its parent sleeps.
#[derive(Debug, Serialize, Deserialize)]
pub struct ZombiePids {
    pub parent: u32,
    pub zombie: u32,
    /// How long the parent slept before it waited.
    pub seconds: f64,
    /// What the parent's wait returned.
    pub waited: Waited,
}

static ZOMBIE: Def<ZombiePids> = Def::new(
    "zombie",
    "a child exits while its parent sleeps without waiting, then is reaped",
    |ctx| {
        let parent = global_pid();
        let zombie = fork_then(|| 7)?;
        std::thread::sleep(Duration::from_secs_f64(ctx.seconds));
        let waited = wait4(zombie, 0);
        Ok(ZombiePids {
            parent,
            zombie: zombie as u32,
            seconds: ctx.seconds,
            waited,
        })
    },
    |p, j| {
        let (z, parent, secs) = (p.zombie, p.parent, p.seconds);
        j.expected(format!("zombie of {parent} for {secs} s, then wait"));
        kernel_said(j, p.waited.exited(z, 7), || {
            format!(
                "the parent's wait returned {:?}, not {z} exiting 7",
                p.waited
            )
        });
        let (zombie, reap) = j.zombie_then_reap(z, parent, &[ReapHow::Wait4]);
        if let Some(e) = zombie {
            j.predicted(describe_zombie(e));
        }
        match reap {
            Some(Event::Reap {
                reaper: Some(by),
                how,
                zombie_ns: Some(ns),
                ..
            }) => {
                let lived = *ns as f64 / 1e9;
                j.observed(format!(
                    "reaped by {} {} after {lived:.2} s ({})",
                    by.pid,
                    by.comm,
                    how.as_str()
                ));
                if j.check(lived >= secs * 0.9, || {
                    format!("a zombie for only {lived:.2} s, expected {secs} s")
                }) {
                    j.note(format!(
                        "a zombie for {lived:.2} s until its parent called {}",
                        how.as_str()
                    ));
                }
            }
            Some(e) => {
                j.observed(describe_reap(e));
                j.fail(format!("{} has no zombie time", brief(e)));
            }
            None => j.observed("never reaped"),
        }
        j.never_reparented(z, "its parent never exited");
    },
)
.args(&["--seconds", "1"]);

// ---------------------------------------------------------------------------------------------
// thread-reaper

/// `thread-reaper`: ids are thread ids.
#[derive(Debug, Serialize, Deserialize)]
pub struct ThreadReaper {
    /// The main thread.
    pub reaper: u32,
    /// The thread that forked the orphan and exited.
    pub father: u32,
    pub orphan: u32,
    /// What the main thread's wait returned.
    pub waited: Waited,
}

static THREAD_REAPER: Def<ThreadReaper> = Def::new(
    "thread-reaper",
    "the thread that forked a child exits; a sibling thread adopts the child",
    |ctx| {
        let notes = &ctx.notes;
        let reaper = global_tid();
        let forked = std::thread::scope(|s| {
            s.spawn(move || {
                notes.note("father", global_tid());
                fork_then(|| {
                    sleep_ms(300);
                    0
                })
            })
            .join()
        });
        let orphan = match forked {
            Ok(Ok(pid)) => pid,
            _ => bail!("the forking thread failed"),
        };
        let waited = wait4(orphan, 0);
        Ok(ThreadReaper {
            reaper,
            father: notes.collect()?.get("father")?,
            orphan: orphan as u32,
            waited,
        })
    },
    |p, j| {
        j.adoptions(&[p.orphan], reaper(p.reaper, p.reaper, ReaperKind::Thread));
        kernel_said(j, p.waited.exited(p.orphan, 0), || {
            format!("the main thread's wait returned {:?}", p.waited)
        });
        j.zombie_then_reap(p.orphan, p.reaper, &[ReapHow::Wait4]);
        j.note(format!("the forking thread {} exited", p.father));
    },
);

// ---------------------------------------------------------------------------------------------
// subreaper-reaps

/// Orphans a reaping subreaper adopts at once.
const SUBREAPER_ORPHANS: usize = 20;

/// `subreaper-reaps`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubreaperReaps {
    pub reaper: u32,
    pub father: u32,
    pub orphans: Vec<u32>,
    /// How many children the subreaper's waits returned after the father's.
    pub reaped: u32,
}

static SUBREAPER_REAPS: Def<SubreaperReaps> = Def::new(
    "subreaper-reaps",
    "a subreaper that reaps (like containerd-shim) adopts a burst of orphans and reaps them at once",
    |ctx| {
        let notes = &ctx.notes;
        set_subreaper()?;
        let reaper = global_pid();
        let father = fork_then(|| {
            for _ in 0..SUBREAPER_ORPHANS {
                // SAFETY: getpid has no preconditions.
                let father = unsafe { libc::getpid() };
                match fork_then(|| {
                    wait_until_adopted(father);
                    0
                }) {
                    Ok(pid) => notes.note("orphan", pid),
                    Err(_) => return 1,
                }
            }
            0
        })?;
        wait_for(father);
        let reaped = reap_all() as u32;
        Ok(SubreaperReaps {
            reaper,
            father: father as u32,
            orphans: notes.collect()?.all("orphan")?,
            reaped,
        })
    },
    |p, j| {
        kernel_said(
            j,
            p.orphans.len() == SUBREAPER_ORPHANS && p.reaped as usize == SUBREAPER_ORPHANS,
            || {
                format!(
                    "{} orphans forked, the subreaper's waits returned {}, expected {SUBREAPER_ORPHANS}",
                    p.orphans.len(),
                    p.reaped
                )
            },
        );
        j.adoptions(
            &p.orphans,
            reaper(p.reaper, p.reaper, ReaperKind::Subreaper),
        );
        for &o in &p.orphans {
            j.zombie_then_reap(o, p.reaper, &[ReapHow::Wait4]);
        }
        let z = j.zombie_stats(&p.orphans, p.reaper);
        if j.check(all_reaped_by_reaper(&z), || {
            format!(
                "{} of {} orphans reaped by the subreaper",
                z.reaped_by_wait + z.reaped_auto,
                p.orphans.len()
            )
        }) && let Some(max) = z.max_zombie_ms
        {
            j.note(format!(
                "{} orphans adopted and reaped by the subreaper, each a zombie for <= {max:.2} ms{}",
                p.orphans.len(),
                auto_note(&z)
            ));
        }
        j.set_zombies(z);
    },
);

// ---------------------------------------------------------------------------------------------
// exiting-subreaper

/// `exiting-subreaper`: outer subreaper R > inner subreaper S > father P > orphan C, and what
/// `/proc` showed while S was held inside its exit.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExitingSubreaper {
    /// The outer subreaper R (the scenario's main process).
    pub reaper: u32,
    pub exiting_subreaper: u32,
    pub father: u32,
    pub orphan: u32,
    /// S when its exit flushed the held file (inside `do_exit`).
    pub subreaper_held: Stat,
    /// P once it had exited (a zombie: S, its parent, was held).
    pub father_exited: Stat,
    /// C then: its parent is the kernel's choice of reaper.
    pub orphan_adopted: Stat,
    /// S after that, just before it was let go.
    pub subreaper_after: Stat,
}

static EXITING_SUBREAPER: Def<ExitingSubreaper> = Def::new(
    "exiting-subreaper",
    "a parent exits while the subreaper above it is itself exiting (held inside its exit with PF_EXITING set, by a FUSE flush it waits for); the subreaper is skipped and the next one adopts",
    |ctx| {
        // outer subreaper R (this process) > inner subreaper S > father P > orphan C.
        // S exits with a file of our FUSE server open: its exit (after PF_EXITING, before it
        // hands its children on) waits for the server's answer to the flush. The server lets
        // P exit meanwhile, sees in /proc that P is a zombie of S and that C was adopted by
        // R while S was still PF_EXITING, and only then answers.
        let notes = &ctx.notes;
        set_subreaper()?;
        let me = global_pid();
        let (go_read, go_write) = pipe()?;
        let (ids_read, ids_write) = pipe()?;
        let (ready_read, ready_write) = pipe()?;
        let hold = fuse::Hold::mount(|flusher| {
            let (Some(s), Some(p), Some(c)) =
                (read_u32(ids_read), read_u32(ids_read), read_u32(ids_read))
            else {
                return;
            };
            if flusher != s {
                return;
            }
            notes.note("subreaper_held", stat_of(s));
            write_u32(go_write, 1);
            poll_until(Duration::from_secs(10), || stat_of(p).state == 'Z');
            notes.note("father_exited", stat_of(p));
            poll_until(Duration::from_secs(10), || stat_of(c).ppid != p);
            notes.note("orphan_adopted", stat_of(c));
            notes.note("subreaper_after", stat_of(s));
        })?;
        // From here on, a dead server shows as end of file to P.
        close(go_write);
        close(ids_read);
        let file = hold.file();
        let inner = fork_then(|| {
            if set_subreaper().is_err() {
                return 1;
            }
            let s = global_pid();
            notes.note("exiting_subreaper", s);
            write_u32(ids_write, s);
            let father = fork_then(|| {
                let p = global_pid();
                notes.note("father", p);
                let Ok(c) = fork_then(|| {
                    notes.note("orphan", global_pid());
                    poll_until(Duration::from_secs(20), || global_ppid() != p);
                    0
                }) else {
                    return 1;
                };
                write_u32(ids_write, p);
                write_u32(ids_write, c as u32);
                write_u32(ready_write, 1);
                // Exit when the server says so (or if it is gone).
                let _ = read_u32(go_read);
                0
            });
            if father.is_err() || read_u32(ready_read).is_none() {
                return 1;
            }
            // Exit with the held file open: our exit waits for the server.
            match std::fs::File::open(&file) {
                Ok(f) => {
                    std::mem::forget(f);
                    0
                }
                Err(e) => {
                    eprintln!("open {}: {e}", file.display());
                    1
                }
            }
        })?;
        close(ids_write);
        close(ready_write);
        let status = wait_for(inner);
        hold.unmount();
        reap_all();
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            bail!("the inner subreaper failed (wait status {status:#x})");
        }
        let n = notes.collect()?;
        Ok(ExitingSubreaper {
            reaper: me,
            exiting_subreaper: n.get("exiting_subreaper")?,
            father: n.get("father")?,
            orphan: n.get("orphan")?,
            subreaper_held: n.get("subreaper_held")?,
            father_exited: n.get("father_exited")?,
            orphan_adopted: n.get("orphan_adopted")?,
            subreaper_after: n.get("subreaper_after")?,
        })
    },
    |p, j| {
        let (r, s, f, c) = (p.reaper, p.exiting_subreaper, p.father, p.orphan);
        // What the kernel showed: S inside its exit from before P's exit until after C's
        // adoption, C adopted by R.
        let held = p.subreaper_held.exiting()
            && p.father_exited.state == 'Z'
            && p.father_exited.ppid == s
            && p.subreaper_after.exiting()
            && p.subreaper_after.state != 'Z';
        if !kernel_said(j, held, || {
            format!(
                "the skip was not exercised: subreaper {s} {:?} when held, father {f} {:?} after its exit, {s} {:?} after the orphan's adoption",
                p.subreaper_held, p.father_exited, p.subreaper_after
            )
        }) {
            return;
        }
        kernel_said(j, p.orphan_adopted.ppid == r, || {
            format!(
                "/proc showed orphan {c} adopted by {}, not by the outer subreaper {r}",
                p.orphan_adopted.ppid
            )
        });
        j.adoptions(&[c], reaper(r, r, ReaperKind::Subreaper));
        // The recording's side of the same story: S's exit began before P's; P exited as S's
        // child; S handed P on (as a zombie) to R only after C's adoption.
        let t_s = j.exits(s).first().map(|e| e.ts());
        let (t_p, p_parent) = match j.exits(f).first() {
            Some(Event::Exit { ts, parent, .. }) => (Some(*ts), parent.as_ref().map(|x| x.pid)),
            _ => (None, None),
        };
        let t_c = j.reparents(c).first().map(|e| e.ts());
        let handed = j.one(j.reparents(f), format_args!("reparent events of father {f}"));
        if let Some(e @ Event::Reparent { father, reaper, .. }) = handed {
            j.check(
                father.pid == s && reaper.as_ref().is_some_and(|x| x.pid == r),
                || format!("father {f} must be handed from {s} to {r}: {}", brief(e)),
            );
        }
        let t_h = handed.map(Event::ts);
        match (t_s, t_p, t_c, t_h) {
            (Some(ts), Some(tp), Some(tc), Some(th))
                if ts < tp && tp <= tc && tc < th && p_parent == Some(s) =>
            {
                j.note(format!(
                    "subreaper {s} held inside its exit (PF_EXITING, /proc flags {:#x}) while father {f} exited {:.1} ms later as its child; /proc showed orphan {c} adopted by {r} while {s} was still exiting; {s} handed its children on {:.1} ms after that: {s} was skipped",
                    p.subreaper_held.flags,
                    ms(tp - ts),
                    ms(th - tc)
                ));
            }
            _ => j.fail(format!(
                "the recording does not show subreaper {s}'s exit, then father {f}'s exit as its child, then orphan {c}'s adoption, then {s} handing {f} on: exits at {t_s:?} and {t_p:?} (parent {p_parent:?}), adoption at {t_c:?}, hand-over at {t_h:?}"
            )),
        }
    },
)
.needs(Needs::Fuse);

// ---------------------------------------------------------------------------------------------
// init-exits-with-children

/// `init-exits-with-children`: init I > C1; I > father C2 > orphan G, and what `/proc`
/// showed while G was held inside its exit.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct InitExits {
    /// The namespace init I.
    pub reaper: u32,
    /// I's child C1.
    pub killed: u32,
    /// I's child C2, the orphan's father.
    pub father: u32,
    /// C2's child G.
    pub orphan: u32,
    /// C2 while G was held inside its exit: exited (a zombie, or already released).
    pub father_exited: Stat,
    /// G then: its parent is the kernel's choice.
    pub orphan_adopted: Stat,
    /// I then: exiting (tearing the namespace down).
    pub init_exiting: Stat,
}

/// The namespace init of `init-exits-with-children`; returns its exit code. `ids`: where G
/// tells the FUSE server who is who before it opens the held file `file`.
fn init_with_children(notes: &Notes, ids: RawFd, file: &std::path::Path) -> i32 {
    notes.note("reaper", global_pid());
    let Ok((ready_read, ready_write)) = pipe() else {
        return 1;
    };
    let killed = fork_then(|| {
        notes.note("killed", global_pid());
        write_u32(ready_write, 1);
        sleep_ms(30_000);
        0
    });
    if killed.is_err() {
        return 1;
    }
    let father = fork_then(|| {
        // Noted before the orphan exists, so before it says it is ready.
        notes.note("father", global_pid());
        let orphan = fork_then(|| {
            let (g, c2) = (global_pid(), global_ppid());
            notes.note("orphan", g);
            for id in [g, c2, stat_of(c2).ppid] {
                write_u32(ids, id);
            }
            // Killed with the held file open: the exit waits for the server.
            match std::fs::File::open(file) {
                Ok(f) => std::mem::forget(f),
                Err(e) => {
                    eprintln!("open {}: {e}", file.display());
                    return 1;
                }
            }
            write_u32(ready_write, 1);
            sleep_ms(30_000);
            0
        });
        if orphan.is_err() {
            return 1;
        }
        sleep_ms(30_000);
        0
    });
    if father.is_err() {
        return 1;
    }
    close(ready_write);
    // C1 and G have noted their pids (and G holds the file): everything is in place.
    if read_u32(ready_read).is_none() || read_u32(ready_read).is_none() {
        return 1;
    }
    // Exit with every child alive.
    0
}

static INIT_EXITS_WITH_CHILDREN: Def<InitExits> = Def::new(
    "init-exits-with-children",
    "a namespace init exits with children alive: the kernel kills the namespace, and an orphan made while it dies (its exit held by a FUSE flush until its father is gone) is adopted by the dying init",
    |ctx| {
        // init I > C1; I > father C2 > orphan G. I exits: the kernel kills everything in the
        // namespace (zap_pid_ns_processes). G dies with a file of our FUSE server open: its
        // exit waits for the server, which answers only once C2 has exited and /proc shows
        // G adopted, by the init that is dying.
        let notes = &ctx.notes;
        let (ids_read, ids_write) = pipe()?;
        // The server is forked before the namespace exists: the namespace's teardown does
        // not kill it.
        let hold = fuse::Hold::mount(|flusher| {
            let (Some(g), Some(c2), Some(i)) =
                (read_u32(ids_read), read_u32(ids_read), read_u32(ids_read))
            else {
                return;
            };
            if flusher != g {
                return;
            }
            poll_until(Duration::from_secs(10), || {
                matches!(stat_of(c2).state, 'Z' | '-' | 'X')
            });
            notes.note("father_exited", stat_of(c2));
            poll_until(Duration::from_secs(10), || stat_of(g).ppid != c2);
            notes.note("orphan_adopted", stat_of(g));
            notes.note("init_exiting", stat_of(i));
        })?;
        close(ids_read);
        let file = hold.file();
        new_pid_namespace()?;
        let init = fork_then(|| init_with_children(notes, ids_write, &file))?;
        close(ids_write);
        let status = wait_for(init);
        hold.unmount();
        reap_all();
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            bail!("the namespace init failed (wait status {status:#x})");
        }
        let n = notes.collect()?;
        Ok(InitExits {
            reaper: n.get("reaper")?,
            killed: n.get("killed")?,
            father: n.get("father")?,
            orphan: n.get("orphan")?,
            father_exited: n.get("father_exited")?,
            orphan_adopted: n.get("orphan_adopted")?,
            init_exiting: n.get("init_exiting")?,
        })
    },
    |p, j| {
        let init = p.reaper;
        kernel_said(j, matches!(p.father_exited.state, 'Z' | '-' | 'X'), || {
            format!(
                "the father {} had not exited while the orphan was held: {:?}",
                p.father, p.father_exited
            )
        });
        kernel_said(j, p.orphan_adopted.ppid == init, || {
            format!(
                "/proc showed the orphan {} adopted by {}, not the init {init}",
                p.orphan, p.orphan_adopted.ppid
            )
        });
        kernel_said(j, p.init_exiting.exiting(), || {
            format!("the init {init} was not exiting then: {:?}", p.init_exiting)
        });
        j.adoptions(&[p.orphan], reaper(init, init, ReaperKind::Init));
        let Some(t_init) = j.exits(init).first().map(|e| e.ts()) else {
            j.fail(format!("no exit event for the init {init}"));
            return;
        };
        let mut killed = 0;
        for (name, pid) in [
            ("killed", p.killed),
            ("father", p.father),
            ("orphan", p.orphan),
        ] {
            match j.one(j.exits(pid), format_args!("exit events of the {name} {pid}")) {
                Some(Event::Exit { ts, status, .. })
                    if *ts >= t_init && status.signal == Some(libc::SIGKILL) =>
                {
                    killed += 1
                }
                Some(Event::Exit { status, .. }) => j.fail(format!(
                    "{name} {pid} ended with {status:?}, not SIGKILL after the init's exit"
                )),
                _ => {}
            }
        }
        // The init's own children are not reparented: zap_pid_ns_processes reaps them first.
        for pid in [p.killed, p.father] {
            j.never_reparented(
                pid,
                "the dying init reaps its own children before it would hand them on",
            );
        }
        j.note(format!(
            "namespace torn down: {killed} processes SIGKILLed; orphan {} held inside its exit until its father {} was gone, adopted by the dying init; the init's own children reaped inside the kernel, never reparented",
            p.orphan, p.father
        ));
    },
)
.needs(Needs::Fuse);

// ---------------------------------------------------------------------------------------------
// pid1-*: orphans under a PID 1 that waits, or not

/// Orphans the workload under PID 1 makes.
pub const BURST_ORPHANS: u32 = 10;
/// How long each of those orphans lives.
const BURST_ORPHAN_MS: u64 = 100;
/// How long PID 1 has to reap the last orphan before the workload counts zombies.
const BURST_SETTLE_MS: u64 = 100;
/// When the workload exits at the earliest (from its start).
const BURST_EXIT_AT_MS: u64 = 1000;
/// `sleep` as PID 1 in `pid1-sleep`: it never exits by itself in the scenario's time; the
/// scenario kills it (the container is stopped) once the zombies are counted.
const PID1_SLEEP_SECS: &str = "60";

/// A burst of orphans under PID 1.
#[derive(Debug, Serialize, Deserialize)]
pub struct Burst {
    /// PID 1 of the namespace.
    pub reaper: u32,
    /// The command under it that made the orphans.
    pub workload: u32,
    pub orphans: Vec<u32>,
    /// Zombies of PID 1 the workload counted in `/proc` once its orphans had exited.
    pub zombies_left: u32,
}

impl Burst {
    fn from_notes(n: &Noted) -> Result<Self> {
        Ok(Self {
            reaper: n.get("reaper")?,
            workload: n.get("workload")?,
            orphans: n.all("orphan")?,
            zombies_left: n.get("zombies_left")?,
        })
    }

    /// Every orphan adopted by PID 1; `reaps`: each reaped by it within `REAP_WITHIN_MS` and
    /// none left, else all left as zombies until the namespace died.
    fn check(&self, reaps: bool, j: &mut Judge) {
        let orphans = &self.orphans;
        let init = self.reaper;
        j.adoptions(orphans, reaper(init, init, ReaperKind::Init));
        let name = j.comm_of(init);
        kernel_said(j, orphans.len() as u32 == BURST_ORPHANS, || {
            format!(
                "{} orphans reported, expected {BURST_ORPHANS}",
                orphans.len()
            )
        });
        let mut z = j.zombie_stats(orphans, init);
        z.left_in_proc = Some(self.zombies_left);
        let n = orphans.len() as u32;
        let left = self.zombies_left;
        for &o in orphans {
            let zombie = j.one(j.zombies(o), format_args!("zombie events of {o}"));
            if let Some(Event::Zombie { parent, .. }) = zombie {
                // An orphan can die while its father is still exiting (between its exit and
                // its reparenting, on another CPU): its zombie then waits for the father, and
                // the father hands it to PID 1 already dead.
                let handed_on_dead = j.reparents(o).iter().any(|e| {
                    matches!(e, Event::Reparent { reaper: Some(r), zombie: true, .. } if r.pid == init)
                });
                j.check(parent.pid == init || handed_on_dead, || {
                    format!(
                        "orphan {o}'s zombie recorded as waiting for {}, not PID 1 ({init}), and not handed to PID 1 as a zombie",
                        parent.pid
                    )
                });
            }
            j.one(j.reaps(o), format_args!("reap events of {o}"));
        }
        if !reaps {
            j.expected_add(&format!(", {n} zombies kept"));
            if left != n {
                j.fail(format!("{left} zombies left under PID 1, expected {n}"));
            } else if z.not_reaped != n {
                j.fail(format!(
                    "{} orphans were reaped before the namespace died",
                    n - z.not_reaped
                ));
            } else {
                j.note(format!(
                    "{left} zombies left under {name} (never waits), released only when the namespace was torn down"
                ));
            }
        } else {
            let limit = j.reap_within_ms();
            j.expected_add(&format!(", each reaped <= {limit} ms"));
            let max = z.max_zombie_ms.unwrap_or(f64::INFINITY);
            if left != 0 {
                j.fail(format!("{left} zombies left under {name}"));
            } else if !all_reaped_by_reaper(&z) {
                j.fail(format!(
                    "{} of {n} orphans reaped by {name}",
                    z.reaped_by_wait + z.reaped_auto
                ));
            } else if max > limit {
                j.fail(format!(
                    "an orphan stayed a zombie for {max:.1} ms (limit {limit} ms: `--reap-within` raises it on a slow machine)"
                ));
            } else {
                j.note(format!(
                    "{n} orphans reaped by {name} in <= {max:.2} ms; 0 zombies left{}",
                    auto_note(&z)
                ));
            }
        }
        j.set_zombies(z);
    }
}

/// The command under PID 1 in the `pid1-*` scenarios: `BURST_ORPHANS` orphans by double
/// fork, each exiting after `BURST_ORPHAN_MS`. Once the last of them has exited (and PID 1 had
/// `BURST_SETTLE_MS` to reap them), it counts PID 1's zombies, writes a byte to `done` if
/// given, and exits at `BURST_EXIT_AT_MS`.
fn orphan_burst(notes: &Notes, done: Option<RawFd>) {
    let start = Instant::now();
    let init = global_ppid();
    notes.note("workload", global_pid());
    // Every orphan holds the write end: end of file once they have all exited.
    let Ok((alive_read, alive_write)) = pipe() else {
        return;
    };
    for _ in 0..BURST_ORPHANS {
        let middle = fork_then(|| {
            let orphan = fork_then(|| {
                notes.note("orphan", global_pid());
                sleep_ms(BURST_ORPHAN_MS);
                0
            });
            if orphan.is_err() { 1 } else { 0 }
        });
        if let Ok(m) = middle {
            wait_for(m);
        }
    }
    close(alive_write);
    read_until_eof(alive_read);
    sleep_ms(BURST_SETTLE_MS);
    notes.note("zombies_left", zombies_of(init));
    if let Some(fd) = done {
        write_u32(fd, 1);
    }
    let at = Duration::from_millis(BURST_EXIT_AT_MS);
    if let Some(left) = at.checked_sub(start.elapsed()) {
        std::thread::sleep(left);
    }
}

/// A pid namespace whose PID 1 is `program` (with `init_args`), running this scenario's
/// `after_exec` part (the orphan burst) as its command.
fn burst_under(ctx: &Ctx, name: &str, program: &str, init_args: &[&str]) -> Result<Burst> {
    let notes = &ctx.notes;
    let Some(path) = init_binary(program) else {
        bail!("{program} is not installed");
    };
    new_pid_namespace()?;
    let init = fork_then(|| {
        notes.note("reaper", global_pid());
        let mut cmd = match exec_stage(name, notes, &[]) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e:#}");
                return 127;
            }
        };
        // The init runs `reaper-trace scenario NAME` (the stage) as its command.
        let stage = std::mem::replace(&mut cmd, std::process::Command::new(&path));
        cmd.args(init_args)
            .arg(stage.get_program())
            .args(stage.get_args())
            .envs(stage.get_envs().filter_map(|(k, v)| Some((k, v?))));
        let err = std::os::unix::process::CommandExt::exec(&mut cmd);
        eprintln!("exec {}: {err}", path.display());
        127
    })?;
    let status = wait_for(init);
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{program} as PID 1 ended with wait status {status:#x}");
    }
    Burst::from_notes(&notes.collect()?)
}

fn burst_stage(ctx: &Ctx) -> Result<i32> {
    orphan_burst(&ctx.notes, None);
    Ok(0)
}

static PID1_SLEEP: Def<Burst> = Def::new(
    "pid1-sleep",
    "PID 1 is `sleep` (never waits); its child makes 10 orphans that exit after 100 ms: they stay zombies",
    |ctx| {
        let notes = &ctx.notes;
        new_pid_namespace()?;
        let (done_read, done_write) = pipe()?;
        let init = fork_then(|| {
            notes.note("reaper", global_pid());
            if fork_then(|| {
                orphan_burst(notes, Some(done_write));
                0
            })
            .is_err()
            {
                return 1;
            }
            let err = std::os::unix::process::CommandExt::exec(
                std::process::Command::new("sleep").arg(PID1_SLEEP_SECS),
            );
            eprintln!("exec sleep: {err}");
            127
        })?;
        close(done_write);
        // Once the zombies are counted, stop the "container": SIGKILL to its init (from the
        // parent namespace) tears the namespace down, zombies included.
        let _ = read_u32(done_read);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(init, libc::SIGKILL) };
        wait_for(init);
        Burst::from_notes(&notes.collect()?)
    },
    |p, j| p.check(false, j),
);

static PID1_REAPER_INIT: Def<Burst> = Def::new(
    "pid1-reaper-init",
    "PID 1 is reaper-init running a command that makes 10 orphans: each is reaped at once",
    |ctx| burst_under(ctx, "pid1-reaper-init", "reaper-init", &[]),
    |p, j| p.check(true, j),
)
.needs(Needs::Program("reaper-init"))
.after_exec(burst_stage);

static PID1_TINI: Def<Burst> = Def::new(
    "pid1-tini",
    "PID 1 is tini running a command that makes 10 orphans: each is reaped at once",
    |ctx| burst_under(ctx, "pid1-tini", "tini", &["--"]),
    |p, j| p.check(true, j),
)
.needs(Needs::Program("tini"))
.after_exec(burst_stage);

static PID1_DUMB_INIT: Def<Burst> = Def::new(
    "pid1-dumb-init",
    "PID 1 is dumb-init running a command that makes 10 orphans: each is reaped at once",
    |ctx| burst_under(ctx, "pid1-dumb-init", "dumb-init", &[]),
    |p, j| p.check(true, j),
)
.needs(Needs::Program("dumb-init"))
.after_exec(burst_stage);

static PID1_CATATONIT: Def<Burst> = Def::new(
    "pid1-catatonit",
    "PID 1 is catatonit running a command that makes 10 orphans: each is reaped at once",
    |ctx| burst_under(ctx, "pid1-catatonit", "catatonit", &["--"]),
    |p, j| p.check(true, j),
)
.needs(Needs::Program("catatonit"))
.after_exec(burst_stage);

// ---------------------------------------------------------------------------------------------
// ptrace-wait

/// `ptrace-wait`: parent P > tracee C; tracer T (P's other child) seized C.
#[derive(Debug, Serialize, Deserialize)]
pub struct PtraceWait {
    pub parent: u32,
    pub tracee: u32,
    pub tracer: u32,
    /// What the tracer's wait for C returned (C's exit: 7).
    pub tracer_wait: Waited,
    /// C in `/proc` after the tracer's wait: still a zombie of P.
    pub tracee_after_tracer_wait: Stat,
    /// What P's wait for C returned: the reap.
    pub parent_wait: Waited,
}

static PTRACE_WAIT: Def<PtraceWait> = Def::new(
    "ptrace-wait",
    "a tracer that is not the parent waits for its tracee's exit, which only detaches it; the parent's wait is the reap, and no reap names the tracer",
    |ctx| {
        let notes = &ctx.notes;
        let parent = global_pid();
        let (go_read, go_write) = pipe()?;
        let (seized_read, seized_write) = pipe()?;
        let (done_read, done_write) = pipe()?;
        let tracee = fork_then(|| {
            close(go_write);
            read_until_eof(go_read);
            7
        })?;
        let tracer = fork_then(|| {
            close(go_write);
            // SAFETY: PTRACE_SEIZE of a process we may trace (root).
            let rc = unsafe {
                libc::ptrace(
                    libc::PTRACE_SEIZE,
                    tracee,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                )
            };
            if rc != 0 {
                eprintln!("PTRACE_SEIZE: {}", std::io::Error::last_os_error());
                return 1;
            }
            write_u32(seized_write, 1);
            // The tracee's exit is reported to its tracer first: the wait returns it, and as
            // the tracer is not its parent, the kernel hands it back to the parent, a zombie.
            notes.note("tracer_wait", wait4(tracee, libc::__WALL));
            notes.note("tracee_after_tracer_wait", stat_of(tracee as u32));
            write_u32(done_write, 1);
            0
        })?;
        close(seized_write);
        close(done_write);
        if read_u32(seized_read).is_none() {
            bail!("the tracer did not seize the tracee");
        }
        close(go_write); // the tracee exits
        if read_u32(done_read).is_none() {
            bail!("the tracer did not report");
        }
        let parent_wait = wait4(tracee, 0);
        wait_for(tracer);
        let n = notes.collect()?;
        Ok(PtraceWait {
            parent,
            tracee: tracee as u32,
            tracer: tracer as u32,
            tracer_wait: n.get("tracer_wait")?,
            tracee_after_tracer_wait: n.get("tracee_after_tracer_wait")?,
            parent_wait,
        })
    },
    |p, j| {
        let (pa, c, t) = (p.parent, p.tracee, p.tracer);
        j.expected(format!(
            "reaped by {pa} (wait4); tracer {t}'s wait only detaches"
        ));
        kernel_said(j, p.tracer_wait.exited(c, 7), || {
            format!(
                "the tracer's wait returned {:?}, not {c} exiting 7",
                p.tracer_wait
            )
        });
        let after = p.tracee_after_tracer_wait;
        kernel_said(j, after.state == 'Z' && after.ppid == pa, || {
            format!("after the tracer's wait /proc showed {c} as {after:?}, not a zombie of {pa}")
        });
        kernel_said(j, p.parent_wait.exited(c, 7), || {
            format!("the parent's wait returned {:?}, not {c}", p.parent_wait)
        });
        let by_tracer: Vec<&Event> = j
            .reaps(c)
            .into_iter()
            .filter(|e| matches!(e, Event::Reap { reaper: Some(r), .. } if r.pid == t))
            .collect();
        if let Some(e) = by_tracer.first() {
            j.fail(format!(
                "the tracer {t}, whose wait only detached {c}, is recorded as its reaper: {}",
                brief(e)
            ));
        }
        let (zombie, reap) = j.zombie_then_reap(c, pa, &[ReapHow::Wait4]);
        j.never_reparented(c, "its parent never exited");
        j.observed(reap.map_or_else(|| "no single reap".into(), describe_reap));
        j.predicted(zombie.map_or_else(|| "no single zombie".into(), describe_zombie));
        if j.result().status == crate::validate::report::Status::Pass {
            j.note(format!(
                "the tracer's wait returned {c} (status {:#x}) and left it a zombie of {pa}; {pa}'s wait reaped it",
                p.tracer_wait.status
            ));
        }
    },
);

// ---------------------------------------------------------------------------------------------
// exec-thread

/// `exec-thread`: W > X; X's main thread forked K, then X's second thread Y exec'd.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecThread {
    /// W, which reaps X.
    pub parent: u32,
    /// X.
    pub process: u32,
    /// Y's thread id before the exec.
    pub exec_thread: u32,
    /// K, forked by X's main thread before the exec.
    pub child: u32,
    /// X's start time (`/proc` ticks) before the exec.
    pub leader_start: u64,
    /// The exec'd program: its (global) pid and thread id and `/proc` start time.
    pub after_pid: u32,
    pub after_tid: u32,
    pub after_start: u64,
    /// K in `/proc` after the exec.
    pub child_after: Stat,
    /// The exec'd program's wait for K.
    pub child_wait: Waited,
    /// W's wait for X (the new program exits 42).
    pub parent_wait: Waited,
}

static EXEC_THREAD: Def<ExecThread> = Def::new(
    "exec-thread",
    "a process's second thread execs while its main thread has a child: one process, one zombie and one reap; the child stays with the process, adopted by no one else",
    |ctx| {
        let notes = &ctx.notes;
        let parent = global_pid();
        let x = fork_then(|| {
            notes.note("process", global_pid());
            notes.note("leader_start", stat_self().start);
            let mut fds = [0; 2];
            // SAFETY: a pipe without O_CLOEXEC: its write end survives the exec.
            if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                return 1;
            }
            let (k_read, k_write) = (fds[0], fds[1]);
            let Ok(k) = fork_then(|| {
                close(k_write);
                read_until_eof(k_read);
                0
            }) else {
                return 1;
            };
            close(k_read);
            notes.note("child", k);
            let stage = [k_write.to_string(), k.to_string()];
            let mut cmd = match exec_stage("exec-thread", notes, &stage) {
                Ok(c) => c,
                Err(_) => return 1,
            };
            // The main thread waits at the end of the scope until the exec ends it.
            std::thread::scope(|s| {
                s.spawn(move || {
                    notes.note("exec_thread", global_tid());
                    let err = std::os::unix::process::CommandExt::exec(&mut cmd);
                    eprintln!("exec from a thread: {err}");
                    // SAFETY: leaving the whole process.
                    unsafe { libc::_exit(1) }
                });
            });
            1
        })?;
        let parent_wait = wait4(x, 0);
        let n = notes.collect()?;
        Ok(ExecThread {
            parent,
            process: n.get("process")?,
            exec_thread: n.get("exec_thread")?,
            child: n.get("child")?,
            leader_start: n.get("leader_start")?,
            after_pid: n.get("after_pid")?,
            after_tid: n.get("after_tid")?,
            after_start: n.get("after_start")?,
            child_after: n.get("child_after")?,
            child_wait: n.get("child_wait")?,
            parent_wait,
        })
    },
    |p, j| {
        let (w, x, k) = (p.parent, p.process, p.child);
        j.expected(format!(
            "{x}: one zombie, reaped by {w} (exit 42); child {k} stays with {x}"
        ));
        kernel_said(
            j,
            p.after_pid == x && p.after_tid == x && p.after_start == p.leader_start,
            || {
                format!(
                    "after the exec /proc showed {}/{} started at {}, before {x} started at {}",
                    p.after_pid, p.after_tid, p.after_start, p.leader_start
                )
            },
        );
        kernel_said(j, p.child_after.ppid == x, || {
            format!("after the exec /proc showed {k}'s parent as {}, not {x}", p.child_after.ppid)
        });
        kernel_said(j, p.parent_wait.exited(x, 42), || {
            format!("{w}'s wait returned {:?}, not {x} exiting 42", p.parent_wait)
        });
        kernel_said(j, p.child_wait.exited(k, 0), || {
            format!("the exec'd program's wait returned {:?}, not {k}", p.child_wait)
        });
        // The process: one zombie (the leader's identity, status 42), one reap by W.
        let (zombie, reap) = j.zombie_then_reap(x, w, &[ReapHow::Wait4]);
        if let Some(Event::Zombie { task, status, .. }) = zombie {
            j.check(
                task.tid == x && task.start / crate::procfs::NS_PER_TICK == p.leader_start,
                || format!("the zombie of {x} must be thread {x} with the process's start (tick {}): {task:?}", p.leader_start),
            );
            j.check(status.code == Some(42), || {
                format!("the zombie of {x} must carry the new program's exit code 42: {status:?}")
            });
        }
        let execs = j.select(|e| matches!(e, Event::Exec { task, .. } if task.pid == x));
        if let Some(Event::Exec { task, .. }) = j.one(execs, format_args!("exec events of {x}")) {
            j.check(task.tid == x, || format!("after the exec the thread is {x}: {task:?}"));
        }
        // Thread x exits twice, as two tasks: the old leader inside the exec, then the new
        // program, with the status W's wait returned.
        let exits = j.select(|e| matches!(e, Event::Exit { task, .. } if task.tid == x));
        j.check(exits.len() == 2, || {
            format!("two exits of thread {x} (the old leader's in the exec, the new program's), found {}", exits.len())
        });
        if let [Event::Exit { group_dead: old, .. }, Event::Exit { group_dead: new, status, .. }] =
            exits[..]
        {
            j.check(!old && *new && status.code == Some(42), || {
                format!("the old leader's exit leaves the process alive, the new program's ends it with 42: group_dead {old} then {new}, {status:?}")
            });
        }
        j.never_reparented(x, "its parent W never exited");
        // The leader's child K: handed at most once, to the exec'ing thread of the same
        // process; a zombie of X, reaped by X.
        let reparents = j.reparents(k);
        j.check(reparents.len() <= 1, || {
            format!("{k} handed on {} times: {}", reparents.len(), reparents.iter().map(|e| brief(e)).collect::<Vec<_>>().join("; "))
        });
        for e in &reparents {
            if let Event::Reparent { reaper, .. } = e {
                j.check(reaper.as_ref().is_some_and(|r| r.pid == x), || {
                    format!("{k} stays with process {x} (/proc), but is recorded as adopted by another: {}", brief(e))
                });
            }
        }
        let (_, k_reap) = j.zombie_then_reap(k, x, &[ReapHow::Wait4]);
        j.observed(format!(
            "{}; {k} {}",
            reap.map_or_else(|| "no single reap".into(), describe_reap),
            k_reap.map_or_else(|| "not reaped once".into(), describe_reap)
        ));
        j.predicted(match reparents.first().and_then(|e| suite::predicted_reaper(e)) {
            Some(r) => format!("{} (for {k})", crate::validate::report::describe(&r)),
            None => zombie.map_or_else(|| "no single zombie".into(), describe_zombie),
        });
        j.note(format!(
            "thread {} exec'd: the process kept pid {x} and its start; {k} went from the old leader to it, {} reparent event(s)",
            p.exec_thread,
            reparents.len()
        ));
    },
)
.after_exec(|ctx| {
    // The program the second thread exec'd: it is process X, with the leader's pid.
    let k_write: RawFd = ctx.stage_arg(0)?;
    let k: u32 = ctx.stage_arg(1)?;
    let notes = &ctx.notes;
    notes.note("after_pid", global_pid());
    notes.note("after_tid", global_tid());
    notes.note("after_start", stat_self().start);
    notes.note("child_after", stat_of(k));
    close(k_write); // K exits
    notes.note("child_wait", wait4(k as i32, 0));
    Ok(42)
});

// ---------------------------------------------------------------------------------------------
// sigchld-ignored

/// Children of the parent that ignores SIGCHLD.
const IGNORED_CHILDREN: usize = 5;

/// A child of `sigchld-ignored`, as it saw itself.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct NsChild {
    /// Global pid.
    pub pid: u32,
    /// Its pid in its own namespace.
    pub ns_pid: u32,
    /// Its pid namespace's inode.
    pub pidns: u32,
}

/// `sigchld-ignored`, inside a new pid namespace: init I > parent P > children.
#[derive(Debug, Serialize, Deserialize)]
pub struct SigchldIgnored {
    pub init: u32,
    pub parent: u32,
    pub children: Vec<NsChild>,
    /// P's `wait4(-1)` once they had exited: -1, ECHILD.
    pub parent_wait: Waited,
    /// How many of the children `/proc` no longer showed after that.
    pub gone: u32,
}

static SIGCHLD_IGNORED: Def<SigchldIgnored> = Def::new(
    "sigchld-ignored",
    "in a pid namespace, a parent that ignores SIGCHLD: its children are released at exit (auto-reaped), and every task is named with its namespace ids",
    |ctx| {
        let notes = &ctx.notes;
        new_pid_namespace()?;
        let init = fork_then(|| {
            notes.note("init", global_pid());
            let parent = fork_then(|| {
                notes.note("parent", global_pid());
                // SAFETY: setting a disposition.
                unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
                let Ok((r, w)) = pipe() else { return 1 };
                for _ in 0..IGNORED_CHILDREN {
                    if fork_then(|| {
                        close(r);
                        let me = NsChild {
                            pid: global_pid(),
                            // SAFETY: getpid has no preconditions.
                            ns_pid: unsafe { libc::getpid() } as u32,
                            pidns: own_pidns(),
                        };
                        notes.note("child", me);
                        write_u32(w, me.pid);
                        3
                    })
                    .is_err()
                    {
                        return 1;
                    }
                }
                close(w);
                let mut started = Vec::new();
                while let Some(pid) = read_u32(r) {
                    started.push(pid);
                }
                // Blocks until every child has exited, then fails: none is left to wait for.
                notes.note("parent_wait", wait4(-1, 0));
                notes.note(
                    "gone",
                    started
                        .iter()
                        .filter(|&&p| stat_of(p) == Stat::GONE)
                        .count(),
                );
                0
            });
            match parent {
                Ok(p) => {
                    wait_for(p);
                    0
                }
                Err(_) => 1,
            }
        })?;
        wait_for(init);
        let n = notes.collect()?;
        Ok(SigchldIgnored {
            init: n.get("init")?,
            parent: n.get("parent")?,
            children: n.all("child")?,
            parent_wait: n.get("parent_wait")?,
            gone: n.get("gone")?,
        })
    },
    |p, j| {
        let pa = p.parent;
        let n = p.children.len();
        j.expected(format!(
            "{n} children of {pa} released at exit (its wait: ECHILD)"
        ));
        kernel_said(j, n == IGNORED_CHILDREN, || {
            format!("{n} children reported, expected {IGNORED_CHILDREN}")
        });
        kernel_said(
            j,
            p.parent_wait.ret == -1 && p.parent_wait.errno == libc::ECHILD,
            || format!("the parent's wait returned {:?}, not ECHILD", p.parent_wait),
        );
        kernel_said(j, p.gone as usize == n, || {
            format!(
                "{} of {n} children were gone from /proc after the wait",
                p.gone
            )
        });
        kernel_said(
            j,
            p.children.iter().all(|c| c.ns_pid != c.pid && c.pidns != 0),
            || {
                format!(
                    "the children are not in a nested pid namespace: {:?}",
                    p.children
                )
            },
        );
        let (mut auto, mut autoreaped) = (0, 0);
        for c in &p.children {
            let (zombie, reap) = j.zombie_then_reap(c.pid, pa, &[ReapHow::Auto]);
            if let Some(Event::Zombie { autoreaped: a, .. }) = zombie
                && j.check(*a, || {
                    format!(
                        "the kernel released {} at once (its parent ignores SIGCHLD): its zombie event must say autoreaped",
                        c.pid
                    )
                })
            {
                autoreaped += 1;
            }
            if reap.is_some_and(|e| {
                matches!(
                    e,
                    Event::Reap {
                        how: ReapHow::Auto,
                        ..
                    }
                )
            }) {
                auto += 1;
            }
        }
        // Every task named in the scenario's events carries its namespace ids; the children's
        // are the ones they saw themselves.
        let mut bad: BTreeMap<String, usize> = BTreeMap::new();
        for e in j.events() {
            for (field, proc) in suite::procs(e) {
                let mut wrong = Vec::new();
                if proc.ns_pid == 0 || proc.ns_tid == 0 || proc.pidns == 0 {
                    wrong.push(format!(
                        "ns_pid {} ns_tid {} pidns {}",
                        proc.ns_pid, proc.ns_tid, proc.pidns
                    ));
                }
                if let Some(c) = p.children.iter().find(|c| c.pid == proc.tid)
                    && (proc.ns_pid != c.ns_pid || proc.ns_tid != c.ns_pid || proc.pidns != c.pidns)
                {
                    wrong.push(format!(
                        "ns_pid {} ns_tid {} pidns {}, /proc said {} in {}",
                        proc.ns_pid, proc.ns_tid, proc.pidns, c.ns_pid, c.pidns
                    ));
                }
                if !wrong.is_empty() {
                    *bad.entry(format!(
                        "{} event's {field} {}: {}",
                        e.type_name(),
                        proc.tid,
                        wrong.join(", ")
                    ))
                    .or_default() += 1;
                }
            }
        }
        for (what, count) in bad {
            j.fail(format!("{what} [{count} event(s)]"));
        }
        j.observed(format!("{auto}/{n} reaped auto by {pa}"));
        j.predicted(format!("{autoreaped}/{n} zombies of {pa}, autoreaped"));
        j.note(format!(
            "every task named with its namespace ids (the children: pids {} in namespace {})",
            p.children
                .iter()
                .map(|c| c.ns_pid.to_string())
                .collect::<Vec<_>>()
                .join(","),
            p.children.first().map_or(0, |c| c.pidns)
        ));
    },
);

// ---------------------------------------------------------------------------------------------
// clone-parent

/// `clone-parent`: A > B; B clones C with CLONE_PARENT, so C is A's child.
#[derive(Debug, Serialize, Deserialize)]
pub struct CloneParent {
    pub a: u32,
    pub b: u32,
    pub c: u32,
    /// C's parent in `/proc`.
    pub c_ppid: u32,
    /// What A's two waits returned (B and C, in either order).
    pub a_waits: Vec<Waited>,
}

static CLONE_PARENT: Def<CloneParent> = Def::new(
    "clone-parent",
    "B clones C with CLONE_PARENT: C is the child of B's parent A, which reaps it; the fork event names A as the parent and B as the caller",
    |ctx| {
        let notes = &ctx.notes;
        let a = fork_then(|| {
            notes.note("a", global_pid());
            let b = fork_then(|| {
                notes.note("b", global_pid());
                // SAFETY: a raw clone without CLONE_VM behaves like fork (the child runs on a
                // copy of this stack); the child only notes and leaves with _exit.
                let c = unsafe {
                    libc::syscall(
                        libc::SYS_clone,
                        (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
                        0usize,
                        0usize,
                        0usize,
                        0usize,
                    )
                };
                if c < 0 {
                    return 1;
                }
                if c == 0 {
                    notes.note("c", global_pid());
                    notes.note("c_ppid", global_ppid());
                    // SAFETY: leaving the clone.
                    unsafe { libc::_exit(9) }
                }
                0
            });
            if b.is_err() {
                return 1;
            }
            // B and C are both A's children.
            notes.note("a_wait", wait4(-1, 0));
            notes.note("a_wait", wait4(-1, 0));
            0
        })?;
        wait_for(a);
        let n = notes.collect()?;
        Ok(CloneParent {
            a: n.get("a")?,
            b: n.get("b")?,
            c: n.get("c")?,
            c_ppid: n.get("c_ppid")?,
            a_waits: n.all("a_wait")?,
        })
    },
    |p, j| {
        let (a, b, c) = (p.a, p.b, p.c);
        j.expected(format!("{c}: child of {a} (caller {b}), reaped by {a}"));
        kernel_said(j, p.c_ppid == a, || {
            format!("/proc showed {c}'s parent as {}, not {a}", p.c_ppid)
        });
        kernel_said(j, p.a_waits.iter().any(|w| w.exited(c, 9)), || {
            format!("{a}'s waits returned {:?}, not {c} exiting 9", p.a_waits)
        });
        let fork = j.one(j.forks(c), format_args!("fork events of {c}"));
        let mut fork_text = "no single fork".to_string();
        if let Some(e @ Event::Fork { parent, caller, .. }) = fork {
            fork_text = format!(
                "parent {}, caller {}",
                parent.pid,
                caller
                    .as_ref()
                    .map_or_else(|| "none".into(), |x| x.pid.to_string())
            );
            j.check(parent.pid == a, || {
                format!(
                    "{c}'s parent is {a} (CLONE_PARENT; /proc), not the caller {b}: {}",
                    brief(e)
                )
            });
            j.check(caller.as_ref().is_some_and(|x| x.pid == b), || {
                format!("the fork of {c} must name its caller {b}: {}", brief(e))
            });
        }
        let (zombie, reap) = j.zombie_then_reap(c, a, &[ReapHow::Wait4]);
        j.never_reparented(c, "its parent never exited");
        j.observed(format!(
            "{fork_text}; {}",
            reap.map_or_else(|| "no single reap".into(), describe_reap)
        ));
        j.predicted(zombie.map_or_else(|| "no single zombie".into(), describe_zombie));
    },
);

// ---------------------------------------------------------------------------------------------
// wait-race

/// Children `wait-race` forks.
const RACE_CHILDREN: usize = 1000;

/// `wait-race`: what each wait returned, in order.
#[derive(Debug, Serialize, Deserialize)]
pub struct WaitRace {
    pub parent: u32,
    /// (pid returned, wait status) per child.
    pub waits: Vec<(i32, i32)>,
}

static WAIT_RACE: Def<WaitRace> = Def::new(
    "wait-race",
    "1000 children, each waited for by a parent already blocked in wait4 (two busy threads load the CPUs), so the wait often returns before the child's last context switch: every pid a wait returned is one wait4 reap, never auto",
    |_| {
        let parent = global_pid();
        static STOP: AtomicBool = AtomicBool::new(false);
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(|| {
                    // Nice 19: they fill idle CPU time without starving the forks and waits.
                    // SAFETY: setting this thread's own priority.
                    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as u32, 19) };
                    let mut x: u64 = 0;
                    while !STOP.load(Ordering::Relaxed) {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        std::hint::black_box(x);
                    }
                })
            })
            .collect();
        let mut waits = Vec::with_capacity(RACE_CHILDREN);
        for i in 0..RACE_CHILDREN {
            // SAFETY: the child only reads the clock and calls _exit (this process is
            // multi-threaded).
            let mut pid = unsafe { libc::fork() };
            let deadline = Instant::now() + FORK_RETRY_FOR;
            while pid < 0 && errno() == libc::EAGAIN && Instant::now() < deadline {
                sleep_ms(1);
                // SAFETY: as above.
                pid = unsafe { libc::fork() };
            }
            if pid < 0 {
                STOP.store(true, Ordering::Relaxed);
                bail!("fork: {}", std::io::Error::last_os_error());
            }
            if pid == 0 {
                // Let the parent block in wait4 first (every other child).
                if i % 2 == 1 {
                    let mut t0 = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    };
                    let mut t = t0;
                    // SAFETY: reading the clock into our struct.
                    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t0) };
                    loop {
                        // SAFETY: as above.
                        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
                        let ns = (t.tv_sec - t0.tv_sec) * 1_000_000_000 + (t.tv_nsec - t0.tv_nsec);
                        if ns > 200_000 {
                            break;
                        }
                    }
                }
                // SAFETY: leaving the child.
                unsafe { libc::_exit((i % 100) as i32) };
            }
            let w = wait4(pid, 0);
            waits.push((w.ret, w.status));
        }
        STOP.store(true, Ordering::Relaxed);
        for s in spinners {
            let _ = s.join();
        }
        Ok(WaitRace { parent, waits })
    },
    |p, j| {
        let r = p.parent;
        let n = p.waits.len();
        j.expected(format!("{n} children, each reaped by {r}'s wait4"));
        kernel_said(
            j,
            n == RACE_CHILDREN && p.waits.iter().all(|(ret, _)| *ret > 0),
            || format!("{n} waits, not all returning a child"),
        );
        let mut waited: BTreeMap<u32, usize> = BTreeMap::new();
        for (ret, _) in &p.waits {
            *waited.entry(*ret as u32).or_default() += 1;
        }
        let (mut by_wait, mut auto, mut missing, mut zombies, mut autoreaped) = (0, 0, 0, 0, 0);
        let mut wrong = Vec::new();
        let reaps = index(j.events(), |e| match e {
            Event::Reap { task, .. } => Some(task.pid),
            _ => None,
        });
        let zombie_events = index(j.events(), |e| match e {
            Event::Zombie { task, .. } => Some(task.pid),
            _ => None,
        });
        for (&pid, &count) in &waited {
            let rs = reaps.get(&pid).map(Vec::as_slice).unwrap_or_default();
            let zs = zombie_events
                .get(&pid)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let good = rs
                .iter()
                .filter(|e| {
                    matches!(e, Event::Reap { reaper: Some(x), how: ReapHow::Wait4, zombie_ns: Some(_), .. } if x.pid == r)
                })
                .count();
            let za = zs
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        Event::Zombie {
                            autoreaped: true,
                            ..
                        }
                    )
                })
                .count();
            by_wait += good;
            auto += rs
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        Event::Reap {
                            how: ReapHow::Auto,
                            ..
                        }
                    )
                })
                .count();
            missing += count.saturating_sub(rs.len());
            zombies += zs.len();
            autoreaped += za;
            if rs.len() != count || good != count || zs.len() != count || za > 0 {
                wrong.push(format!(
                    "{pid}: {count} wait(s) returned it; {}; {} zombie event(s), {za} autoreaped",
                    if rs.is_empty() {
                        "no reap".to_string()
                    } else {
                        rs.iter()
                            .map(|e| describe_reap(e))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    zs.len()
                ));
            }
        }
        let lost = j.lost();
        j.check(lost == 0, || {
            format!("{lost} kernel records lost: the recording cannot be checked")
        });
        j.check(wrong.is_empty(), || {
            format!(
                "{} of {} waited pids misrecorded, e.g. {}",
                wrong.len(),
                waited.len(),
                wrong.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            )
        });
        j.observed(format!(
            "{by_wait} reaped by {r} (wait4), {auto} auto, {missing} missing"
        ));
        j.predicted(format!("{zombies} zombies of {r}, {autoreaped} autoreaped"));
    },
);

/// Events grouped by a pid `key` gives them.
fn index(events: &[Event], key: impl Fn(&Event) -> Option<u32>) -> HashMap<u32, Vec<&Event>> {
    let mut map: HashMap<u32, Vec<&Event>> = HashMap::new();
    for e in events {
        if let Some(k) = key(e) {
            map.entry(k).or_default().push(e);
        }
    }
    map
}

// ---------------------------------------------------------------------------------------------
// threads-exit

/// Rounds of `threads-exit`, and fathers per round.
const THREAD_BATCHES: usize = 2;
const THREAD_FATHERS: usize = 20;
/// Threads of each father, the main one included.
const FATHER_THREADS: usize = 8;

/// One orphan of `threads-exit`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ThreadsOrphan {
    pub father: u32,
    pub orphan: u32,
    /// Its parent in `/proc` once its father's process was gone.
    pub ppid: u32,
}

/// `threads-exit`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ThreadsExit {
    /// The subreaper (the scenario's main process).
    pub reaper: u32,
    pub orphans: Vec<ThreadsOrphan>,
}

/// A process of `FATHER_THREADS` threads; a non-leader thread forks a child; then the whole
/// group exits at once (exit_group). Returns only on failure.
fn doomed_father(notes: &Notes) -> i32 {
    let f = global_pid();
    let (Ok((r, w)), Ok((k_r, k_w)), Ok((block_r, _block_w))) = (pipe(), pipe(), pipe()) else {
        return 1;
    };
    std::thread::scope(|s| {
        for i in 0..FATHER_THREADS - 1 {
            s.spawn(move || {
                if i == 3 {
                    let Ok((ready_r, ready_w)) = pipe() else {
                        return;
                    };
                    // The child reads /proc, notes and leaves with _exit (see fork_then).
                    let k = fork_then(|| {
                        write_u32(ready_w, 1);
                        sleep_ms(200);
                        poll_until(Duration::from_secs(10), || global_ppid() != f);
                        notes.note(
                            "orphan",
                            ThreadsOrphan {
                                father: f,
                                orphan: global_pid(),
                                ppid: global_ppid(),
                            },
                        );
                        0
                    });
                    close(ready_w);
                    match k {
                        Ok(k) if read_u32(ready_r) == Some(1) => write_u32(k_w, k as u32),
                        _ => close(k_w),
                    }
                }
                write_u32(w, 1);
                // Blocks until exit_group: the write end stays open in the process until
                // then.
                read_until_eof(block_r);
            });
        }
        for _ in 0..FATHER_THREADS - 1 {
            if read_u32(r) != Some(1) {
                return 1;
            }
        }
        if read_u32(k_r).is_none() {
            return 1;
        }
        // All threads die together.
        // SAFETY: leaving the whole process.
        unsafe { libc::syscall(libc::SYS_exit_group, 0) };
        1
    })
}

static THREADS_EXIT: Def<ThreadsExit> = Def::new(
    "threads-exit",
    "40 processes of 8 threads, each with a child forked by a non-leader thread, exit all at once (exit_group); each child is handed from thread to thread and finally to the subreaper: no adoption judged a mismatch, the last one names the parent /proc shows",
    |ctx| {
        let notes = &ctx.notes;
        set_subreaper()?;
        let reaper = global_pid();
        for _ in 0..THREAD_BATCHES {
            for _ in 0..THREAD_FATHERS {
                fork_then(|| doomed_father(notes))?;
            }
            reap_all();
        }
        Ok(ThreadsExit {
            reaper,
            orphans: notes.collect()?.all("orphan")?,
        })
    },
    |p, j| {
        let r = p.reaper;
        let n = THREAD_BATCHES * THREAD_FATHERS;
        kernel_said(j, p.orphans.len() == n, || {
            format!("{} orphans reported, expected {n}", p.orphans.len())
        });
        for o in &p.orphans {
            kernel_said(j, o.ppid == r, || {
                format!(
                    "/proc showed orphan {} adopted by {}, not by the subreaper {r}",
                    o.orphan, o.ppid
                )
            });
        }
        let orphans: Vec<u32> = p.orphans.iter().map(|o| o.orphan).collect();
        // The last adoption of each: by the subreaper, judged `match` or `changed` (the
        // state the prediction was made from may have changed before the kernel chose).
        j.adoptions_with(&orphans, reaper(r, r, ReaperKind::Subreaper), false, |v| {
            matches!(v, Verdict::Match | Verdict::Changed)
        });
        j.expected_add(", match or changed");
        let (mut hops, mut matched, mut changed) = (0, 0, 0);
        let mut reasons: BTreeSet<String> = BTreeSet::new();
        for o in &p.orphans {
            let (f, k) = (o.father, o.orphan);
            let reparents = j.reparents(k);
            hops += reparents.len();
            for e in reparents.iter() {
                let Event::Reparent {
                    father,
                    reaper,
                    verdict,
                    reason,
                    ..
                } = e
                else {
                    continue;
                };
                match verdict {
                    Verdict::Match => matched += 1,
                    Verdict::Changed => {
                        changed += 1;
                        reasons.extend(reason.clone());
                    }
                    _ => {}
                }
                j.check(*verdict != Verdict::Mismatch, || {
                    format!("an adoption of {k} judged a mismatch: {}", brief(e))
                });
                j.check(father.pid == f, || {
                    format!(
                        "{k} recorded as handed on by {}, not by a thread of its father {f}: {}",
                        father.pid,
                        brief(e)
                    )
                });
                // Each hop is recorded at the final switch of the thread that handed it on,
                // and those can run in another order than the hand-offs (threads on other
                // CPUs): the chain is checked without the records' order. Every hop goes to
                // a thread of the father but one, the hop out of it, which names the parent
                // /proc showed once the father was gone.
                let to = reaper.as_ref().map(|x| x.pid);
                j.check(to == Some(f) || to == Some(o.ppid), || {
                    format!("{k} handed on to {to:?}: neither a thread of its father {f} nor {} (/proc once its father was gone): {}", o.ppid, brief(e))
                });
            }
            let out = reparents
                .iter()
                .filter(|e| matches!(e, Event::Reparent { reaper: Some(r), .. } if r.pid != f))
                .count();
            j.check(out == 1, || {
                format!(
                    "{k}: {out} hops out of its father {f}'s threads recorded, expected one (to {})",
                    o.ppid
                )
            });
            j.zombie_then_reap(k, o.ppid, &[ReapHow::Wait4]);
        }
        j.note(format!(
            "{} orphans, {hops} adoptions (thread to thread, then the subreaper): {matched} match, {changed} changed{}",
            p.orphans.len(),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.into_iter().take(3).collect::<Vec<_>>().join("; "))
            }
        ));
    },
);

// ---------------------------------------------------------------------------------------------
// pid-reuse

/// How long `pid-reuse` tries before it gives up (and is skipped).
const REUSE_FOR: Duration = Duration::from_secs(10);
/// Children forked and reaped in one go, whose pids the allocator comes back to.
const REUSE_BATCH: usize = 100;

/// `pid-reuse`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PidReuse {
    pub parent: u32,
    /// The pid each wait returned, in order (each the child just forked).
    pub waits: Vec<u32>,
    /// The first pid a wait returned twice.
    pub reused: Option<u32>,
    /// Threads created to move the pid allocator on.
    pub threads: u32,
    pub ms: u64,
}

static PID_REUSE: Def<PidReuse> = Def::new(
    "pid-reuse",
    "forks and reaps children until a pid repeats (threads move the pid allocator round in between; skipped if no pid repeats within 10 s): every pid a wait returned has one reap per task (pid and start)",
    |_| {
        let parent = global_pid();
        let started = Instant::now();
        let mut waits = Vec::new();
        let mut seen = BTreeSet::new();
        let mut reused = None;
        let mut threads = 0u32;
        let mut fork_reap = |waits: &mut Vec<u32>| -> Result<Option<u32>> {
            let pid = fork_then(|| 0)?;
            let w = wait4(pid, 0);
            if w.ret != pid {
                bail!("wait4 returned {w:?}, not the child {pid}");
            }
            waits.push(pid as u32);
            Ok((!seen.insert(pid as u32)).then_some(pid as u32))
        };
        for _ in 0..REUSE_BATCH {
            fork_reap(&mut waits)?;
        }
        let lo = waits.iter().copied().min().unwrap_or(0);
        let hi = waits.iter().copied().max().unwrap_or(0);
        'outer: while started.elapsed() < REUSE_FOR {
            // Take pids with threads until the allocator has come round to just below the
            // batch, then fork until a child gets a pid the batch had.
            let mut last = 0;
            let mut wrapped = false;
            while started.elapsed() < REUSE_FOR {
                let tid = std::thread::spawn(|| {
                    // SAFETY: gettid has no preconditions.
                    (unsafe { libc::gettid() }) as u32
                })
                .join()
                .unwrap_or(0);
                threads += 1;
                if tid < last {
                    wrapped = true;
                }
                last = tid;
                if wrapped && tid + 20 >= lo {
                    if tid > hi {
                        // Went past the batch (its pids were taken): go round again.
                        wrapped = false;
                        continue;
                    }
                    break;
                }
            }
            while started.elapsed() < REUSE_FOR {
                if let Some(pid) = fork_reap(&mut waits)? {
                    reused = Some(pid);
                    break 'outer;
                }
                if waits.last().is_some_and(|&p| p > hi || p + 40 < lo) {
                    continue 'outer;
                }
            }
        }
        Ok(PidReuse {
            parent,
            waits,
            reused,
            threads,
            ms: started.elapsed().as_millis() as u64,
        })
    },
    |p, j| {
        let r = p.parent;
        let Some(reused) = p.reused else {
            j.skip(format!(
                "no pid was reused within {} ms ({} forks, {} threads)",
                p.ms,
                p.waits.len(),
                p.threads
            ));
            return;
        };
        let mut count: BTreeMap<u32, usize> = BTreeMap::new();
        for &w in &p.waits {
            *count.entry(w).or_default() += 1;
        }
        j.expected(format!(
            "{} waits by {r}, pid {reused} returned {} times: one wait4 reap per task",
            p.waits.len(),
            count[&reused]
        ));
        // The scenario's children, as the fork events name them: (pid, start).
        let forked: BTreeSet<(u32, u64)> = j
            .select(|e| matches!(e, Event::Fork { parent, thread: false, .. } if parent.pid == r))
            .iter()
            .filter_map(|e| match e {
                Event::Fork { child, .. } => Some((child.pid, child.start)),
                _ => None,
            })
            .collect();
        let reaps = index(j.events(), |e| match e {
            Event::Reap { task, .. } => Some(task.pid),
            _ => None,
        });
        let zombies = index(j.events(), |e| match e {
            Event::Zombie { task, .. } => Some(task.pid),
            _ => None,
        });
        let (mut good, mut zombie_count) = (0, 0);
        let mut wrong = Vec::new();
        for (&pid, &n) in &count {
            let rs = reaps.get(&pid).map(Vec::as_slice).unwrap_or_default();
            let zs = zombies.get(&pid).map(Vec::as_slice).unwrap_or_default();
            zombie_count += zs.len();
            let starts: BTreeSet<u64> = rs
                .iter()
                .filter_map(|e| match e {
                    Event::Reap { task, .. } => Some(task.start),
                    _ => None,
                })
                .collect();
            let zombie_starts: BTreeSet<u64> = zs
                .iter()
                .filter_map(|e| match e {
                    Event::Zombie { task, .. } => Some(task.start),
                    _ => None,
                })
                .collect();
            let by_wait = rs
                .iter()
                .filter(|e| matches!(e, Event::Reap { reaper: Some(x), how: ReapHow::Wait4, .. } if x.pid == r))
                .count();
            let unforked = starts
                .iter()
                .filter(|s| !forked.contains(&(pid, **s)))
                .count();
            let ok = rs.len() == n
                && by_wait == n
                && starts.len() == n
                && unforked == 0
                && zs.len() == n
                && zombie_starts.len() == n;
            if ok {
                good += 1;
            } else {
                wrong.push(format!(
                    "pid {pid}: {n} wait(s); reaps {:?}; {} zombie event(s) of {} start(s); {unforked} reap(s) of a task no fork created",
                    rs.iter()
                        .map(|e| match e {
                            Event::Reap { task, how, reaper, .. } => format!(
                                "{}@{} by {:?}",
                                how.as_str(),
                                task.start,
                                reaper.as_ref().map(|x| x.pid)
                            ),
                            _ => String::new(),
                        })
                        .collect::<Vec<_>>(),
                    zs.len(),
                    zombie_starts.len()
                ));
            }
        }
        let lost = j.lost();
        j.check(lost == 0, || {
            format!("{lost} kernel records lost: the recording cannot be checked")
        });
        j.check(wrong.is_empty(), || {
            format!(
                "{} of {} pids misrecorded, e.g. {}",
                wrong.len(),
                count.len(),
                wrong.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            )
        });
        let reused_starts: Vec<u64> = reaps
            .get(&reused)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| match e {
                Event::Reap { task, .. } => Some(task.start),
                _ => None,
            })
            .collect();
        j.observed(format!(
            "{good}/{} pids reaped once per task by wait4; pid {reused}: reaps of starts {reused_starts:?}",
            count.len()
        ));
        j.predicted(format!("{zombie_count} zombies of {r}"));
        j.note(format!(
            "pid {reused} came back after {} forks and {} threads ({} ms)",
            p.waits.len(),
            p.threads,
            p.ms
        ));
    },
);

// ---------------------------------------------------------------------------------------------
// hang

/// `hang` reports nothing: it never ends.
#[derive(Debug, Serialize, Deserialize)]
pub struct Nothing {}

/// `hang`: a tree that never ends and resists a polite cleanup: a pid namespace whose init
/// has children, a process that left the process group (setsid) and ignores SIGTERM, and an
/// orphan adopted outside the scenario's own process.
fn hang() -> ! {
    fn forever() -> ! {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let ignore_term = || {
        // SAFETY: setting a signal disposition.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
        }
    };
    let _ = fork_then(|| {
        // SAFETY: setsid has no preconditions.
        unsafe { libc::setsid() };
        ignore_term();
        let _ = fork_then(|| forever());
        // Exit: the child above becomes an orphan.
        0
    });
    if new_pid_namespace().is_ok() {
        let _ = fork_then(|| {
            let _ = fork_then(|| {
                ignore_term();
                let _ = fork_then(|| {
                    // SAFETY: as above.
                    unsafe { libc::setsid() };
                    forever()
                });
                forever()
            });
            forever()
        });
    }
    forever()
}

static HANG: Def<Nothing> = Def::new(
    "hang",
    "(for testing `validate --timeout`) never ends: a pid namespace, a process that left the process group, an orphan",
    |_| hang(),
    |_, j| j.fail("hang is expected to time out"),
)
.hidden();

#[cfg(test)]
mod tests {
    //! Each check on hand-made events: it passes on what the kernel did, and fails on each
    //! kind of event that should not be there (a wrong reaper, a second zombie, a phantom
    //! adoption, ...) as well as on missing ones.

    use super::*;
    use crate::event::{ExitStatus, Prediction, Proc};
    use crate::validate::report::{ScenarioResult, Status};

    const MS: u64 = 1_000_000;

    fn p(pid: u32) -> Proc {
        Proc::fake(pid, "x")
    }

    fn judge<P>(def: &Def<P>, pids: &P, events: &[Event]) -> ScenarioResult {
        let mut j = Judge::new(def.name, def.about, events);
        (def.check)(pids, &mut j);
        j.into_result()
    }

    #[track_caller]
    fn passes(r: &ScenarioResult) {
        assert_eq!(r.status, Status::Pass, "{:?}\n{r:#?}", r.reason);
    }

    #[track_caller]
    fn fails(r: &ScenarioResult, why: &str) {
        assert_eq!(r.status, Status::Fail, "{r:#?}");
        let reason = r.reason.as_deref().unwrap_or("");
        assert!(reason.contains(why), "{why:?} not in {reason:?}");
    }

    fn code(c: i32) -> ExitStatus {
        ExitStatus {
            code: Some(c),
            signal: None,
            core_dumped: false,
        }
    }

    fn zombie(pid: u32, parent: u32, autoreaped: bool) -> Event {
        Event::Zombie {
            ts: 10,
            task: p(pid),
            parent: p(parent),
            status: code(0),
            autoreaped,
            before_trace: false,
        }
    }

    fn reap(pid: u32, by: u32, how: ReapHow) -> Event {
        Event::Reap {
            ts: 20,
            task: p(pid),
            reaper: Some(p(by)),
            how,
            zombie_ns: Some(MS),
        }
    }

    fn reparent(ts: u64, orphan: u32, father: u32, to: u32, kind: ReaperKind, pred: u32) -> Event {
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
        }
    }

    fn with_verdict(mut e: Event, v: Verdict) -> Event {
        if let Event::Reparent { verdict, .. } = &mut e {
            *verdict = v;
        }
        e
    }

    fn exit(ts: u64, pid: u32, parent: u32, signal: Option<i32>) -> Event {
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
        }
    }

    fn fork(parent: u32, child: u32, caller: Option<u32>) -> Event {
        Event::Fork {
            ts: 1,
            parent: p(parent),
            child: p(child),
            caller: caller.map(p),
            thread: false,
        }
    }

    fn exited(pid: u32, c: i32) -> Waited {
        Waited {
            ret: pid as i32,
            status: c << 8,
            errno: 0,
        }
    }

    fn with(mut events: Vec<Event>, extra: Event) -> Vec<Event> {
        events.push(extra);
        events
    }

    fn without(events: &[Event], i: usize) -> Vec<Event> {
        let mut e = events.to_vec();
        e.remove(i);
        e
    }

    fn replaced(events: &[Event], i: usize, by: Event) -> Vec<Event> {
        let mut e = events.to_vec();
        e[i] = by;
        e
    }

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

    // --- adoptions ------------------------------------------------------------------------

    fn orphan() -> Orphan {
        Orphan {
            reaper: 10,
            father: 11,
            orphan: 12,
            adopted_by: 10,
        }
    }

    fn adopted(to: u32, kind: ReaperKind, pred: u32) -> Vec<Event> {
        vec![
            reparent(1, 12, 11, to, kind, pred),
            zombie(12, to, false),
            reap(12, to, ReapHow::Wait4),
        ]
    }

    #[test]
    fn adoption_passes_only_when_observed_expected_and_predicted_agree() {
        let ok = adopted(10, ReaperKind::Init, 10);
        let r = judge(&ORPHAN_INIT, &orphan(), &ok);
        passes(&r);
        assert_eq!(r.expected_text, "10 init");
        assert_eq!(r.observed_text, "10 x init");
        assert_eq!(r.predicted_text, "10 init");
        // The kernel chose another reaper than predicted.
        let r = judge(
            &ORPHAN_INIT,
            &orphan(),
            &adopted(20, ReaperKind::Subreaper, 10),
        );
        fails(&r, "adopted by 20");
        // Observed and predicted agree with each other, not with the expectation.
        let both = adopted(20, ReaperKind::Subreaper, 20);
        fails(&judge(&ORPHAN_INIT, &orphan(), &both), "adopted by 20");
        // Right reaper, wrong kind.
        let kind = adopted(10, ReaperKind::Subreaper, 10);
        fails(&judge(&ORPHAN_INIT, &orphan(), &kind), "expected 10 init");
        // No event at all.
        let r = judge(&ORPHAN_INIT, &orphan(), &without(&ok, 0));
        fails(&r, "no reparent event");
        assert_eq!(r.observed_text, "no reparent event");
        // A second, phantom adoption.
        let twice = with(ok.clone(), reparent(2, 12, 11, 10, ReaperKind::Init, 10));
        fails(&judge(&ORPHAN_INIT, &orphan(), &twice), "more than once");
        // A second zombie, a reap by another process, a reap without a wait.
        let z2 = with(ok.clone(), zombie(12, 10, false));
        fails(
            &judge(&ORPHAN_INIT, &orphan(), &z2),
            "2 zombie events of 12",
        );
        let other = replaced(&ok, 2, reap(12, 99, ReapHow::Wait4));
        fails(&judge(&ORPHAN_INIT, &orphan(), &other), "reaped by 99");
        let auto = replaced(&ok, 2, reap(12, 10, ReapHow::Auto));
        fails(&judge(&ORPHAN_INIT, &orphan(), &auto), "(auto)");
        // /proc showed another parent than the scenario expects.
        let elsewhere = Orphan {
            adopted_by: 1,
            ..orphan()
        };
        fails(
            &judge(&ORPHAN_INIT, &elsewhere, &ok),
            "/proc showed orphan 12 adopted by 1",
        );
    }

    #[test]
    fn tasks_are_told_apart_from_an_earlier_holder_of_their_pid() {
        // Another of the scenario's tasks had pid 12 before the orphan: its zombie and reap
        // are its own, not a second zombie and reap of the orphan.
        let earlier = |e: Event| match e {
            Event::Zombie {
                ts,
                task,
                parent,
                status,
                ..
            } => Event::Zombie {
                ts,
                task: Proc {
                    start: 5 * crate::procfs::NS_PER_TICK,
                    ..task
                },
                parent,
                status,
                autoreaped: false,
                before_trace: false,
            },
            Event::Reap {
                ts,
                task,
                reaper,
                how,
                zombie_ns,
            } => Event::Reap {
                ts,
                task: Proc {
                    start: 5 * crate::procfs::NS_PER_TICK,
                    ..task
                },
                reaper,
                how,
                zombie_ns,
            },
            e => e,
        };
        let mut ev = adopted(10, ReaperKind::Init, 10);
        ev.push(earlier(zombie(12, 99, false)));
        ev.push(earlier(reap(12, 99, ReapHow::Wait4)));
        // Without its start time, pid 12 is ambiguous: two zombies.
        fails(
            &judge(&ORPHAN_INIT, &orphan(), &ev),
            "2 zombie events of 12",
        );
        // The orphan reported itself: its start (tick 0 for Proc::fake) tells them apart.
        let mut j = Judge::new("orphan-init", "", &ev).with_starts(BTreeMap::from([(12, 0)]));
        (ORPHAN_INIT.check)(&orphan(), &mut j);
        passes(&j.into_result());
    }

    #[test]
    fn released_orphan_is_not_a_pass() {
        let ev = [Event::Reparent {
            ts: 1,
            orphan: p(12),
            father: p(11),
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
        let r = judge(&ORPHAN_SUBREAPER, &orphan(), &ev);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.observed_text, "released before it could be read");
    }

    #[test]
    fn zombie_lifetime_and_reaper() {
        let pids = ZombiePids {
            parent: 5,
            zombie: 6,
            seconds: 1.0,
            waited: exited(6, 7),
        };
        let long = |how, by| Event::Reap {
            ts: 2,
            task: p(6),
            reaper: Some(p(by)),
            how,
            zombie_ns: Some(1_000_000_000),
        };
        let good = vec![zombie(6, 5, false), long(ReapHow::Wait4, 5)];
        let r = judge(&ZOMBIE, &pids, &good);
        passes(&r);
        assert_eq!(r.observed_text, "reaped by 5 x after 1.00 s (wait4)");
        assert_eq!(r.predicted_text, "zombie of 5 x");
        fails(
            &judge(
                &ZOMBIE,
                &pids,
                &replaced(&good, 1, reap(6, 5, ReapHow::Wait4)),
            ),
            "a zombie for only",
        );
        fails(
            &judge(&ZOMBIE, &pids, &replaced(&good, 1, long(ReapHow::Free, 5))),
            "(free)",
        );
        fails(&judge(&ZOMBIE, &pids, &without(&good, 1)), "no reap events");
        let moved = with(good.clone(), reparent(3, 6, 5, 1, ReaperKind::Init, 1));
        fails(&judge(&ZOMBIE, &pids, &moved), "recorded as adopted");
    }

    fn burst(zombies_left: u32) -> Burst {
        Burst {
            reaper: 50,
            workload: 49,
            orphans: (100..100 + BURST_ORPHANS).collect(),
            zombies_left,
        }
    }

    #[test]
    fn reaping_init_reaps_every_orphan_quickly() {
        let b = burst(0);
        let mut ev = Vec::new();
        for &o in &b.orphans {
            ev.push(reparent(1, o, o + 100, 50, ReaperKind::Init, 50));
            ev.push(zombie(o, 50, false));
            ev.push(reap(o, 50, ReapHow::Wait4));
        }
        let r = judge(&PID1_TINI, &b, &ev);
        passes(&r);
        assert_eq!(r.observed_text, "50 x init (10/10 ok)");
        assert_eq!(
            r.notes,
            ["10 orphans reaped by x in <= 1.00 ms; 0 zombies left"]
        );
        // Too slow.
        let slow = replaced(
            &ev,
            2,
            Event::Reap {
                ts: 3,
                task: p(100),
                reaper: Some(p(50)),
                how: ReapHow::Wait4,
                zombie_ns: Some(250 * MS),
            },
        );
        fails(&judge(&PID1_TINI, &b, &slow), "250.0 ms");
        // An init that ignores SIGCHLD auto-reaps: still reaped by the init, and said so.
        let auto = replaced(&ev, 2, reap(100, 50, ReapHow::Auto));
        let r = judge(&PID1_TINI, &b, &auto);
        passes(&r);
        assert!(r.notes[0].contains("(1 auto-reaped"), "{r:?}");
        // Reaped by someone else than PID 1.
        let other = replaced(&ev, 2, reap(100, 77, ReapHow::Wait4));
        fails(&judge(&PID1_TINI, &b, &other), "9 of 10 orphans reaped by");
        // Zombies left in /proc.
        fails(&judge(&PID1_TINI, &burst(3), &ev), "3 zombies left");
        // Reaped twice.
        let twice = with(ev.clone(), reap(101, 50, ReapHow::Wait4));
        fails(&judge(&PID1_TINI, &b, &twice), "2 reap events of 101");
        // An orphan that died while its father was still exiting: a zombie of the father,
        // handed to PID 1 dead (seen on a 7.3 guest).
        let mut early = ev.clone();
        early[0] = reparent(1, 100, 200, 50, ReaperKind::Init, 50);
        if let Event::Reparent { zombie, .. } = &mut early[0] {
            *zombie = true;
        }
        early[1] = zombie(100, 200, false);
        passes(&judge(&PID1_TINI, &b, &early));
        // Its father's zombie, never handed on: wrong.
        let kept = replaced(&ev, 1, zombie(100, 200, false));
        fails(
            &judge(&PID1_TINI, &b, &kept),
            "not handed to PID 1 as a zombie",
        );
    }

    #[test]
    fn sleep_as_pid1_keeps_every_zombie() {
        let b = burst(10);
        let mut ev = Vec::new();
        for &o in &b.orphans {
            ev.push(reparent(1, o, o + 100, 50, ReaperKind::Init, 50));
            ev.push(zombie(o, 50, false));
            ev.push(reap(o, 50, ReapHow::Free));
        }
        let r = judge(&PID1_SLEEP, &b, &ev);
        passes(&r);
        assert!(r.notes[0].starts_with("10 zombies left under"), "{r:?}");
        assert_eq!(r.zombies.as_ref().unwrap().not_reaped, 10);
        // If they had been reaped, sleep would not be the PID 1 of the article.
        fails(
            &judge(&PID1_SLEEP, &burst(0), &ev),
            "0 zombies left under PID 1",
        );
    }

    // --- exiting-subreaper ------------------------------------------------------------------

    fn held(exiting: bool, state: char, ppid: u32) -> Stat {
        Stat {
            state,
            ppid,
            flags: if exiting { 0x40004c } else { 0x400040 },
            start: 1,
        }
    }

    fn exiting_subreaper() -> ExitingSubreaper {
        ExitingSubreaper {
            reaper: 10,
            exiting_subreaper: 11,
            father: 12,
            orphan: 13,
            subreaper_held: held(true, 'S', 10),
            father_exited: held(true, 'Z', 11),
            orphan_adopted: held(false, 'S', 10),
            subreaper_after: held(true, 'S', 10),
        }
    }

    #[test]
    fn exiting_subreaper_needs_the_kernels_word_and_the_order() {
        let pids = exiting_subreaper();
        let good = vec![
            exit(100 * MS, 11, 10, None),
            exit(103 * MS, 12, 11, None),
            reparent(104 * MS, 13, 12, 10, ReaperKind::Subreaper, 10),
            reparent(160 * MS, 12, 11, 10, ReaperKind::Subreaper, 10),
        ];
        let r = judge(&EXITING_SUBREAPER, &pids, &good);
        passes(&r);
        assert!(r.notes[0].contains("exited 3.0 ms later"), "{r:?}");
        assert!(r.notes[0].ends_with("11 was skipped"), "{r:?}");
        // /proc: the subreaper was no longer exiting (or gone) when the orphan was adopted.
        let gone = ExitingSubreaper {
            subreaper_after: Stat::GONE,
            ..exiting_subreaper()
        };
        fails(
            &judge(&EXITING_SUBREAPER, &gone, &good),
            "the skip was not exercised",
        );
        let not_held = ExitingSubreaper {
            subreaper_held: held(false, 'S', 10),
            ..exiting_subreaper()
        };
        fails(
            &judge(&EXITING_SUBREAPER, &not_held, &good),
            "not exercised",
        );
        // The father had already been handed on when it exited.
        let late = ExitingSubreaper {
            father_exited: held(true, 'Z', 10),
            ..exiting_subreaper()
        };
        fails(&judge(&EXITING_SUBREAPER, &late, &good), "not exercised");
        // The recording: the hand-over of the father before the orphan's adoption.
        let order = replaced(
            &good,
            3,
            reparent(101 * MS, 12, 11, 10, ReaperKind::Subreaper, 10),
        );
        fails(&judge(&EXITING_SUBREAPER, &pids, &order), "does not show");
        // The orphan recorded as adopted by the exiting subreaper.
        let wrong = replaced(
            &good,
            2,
            reparent(104 * MS, 13, 12, 11, ReaperKind::Subreaper, 10),
        );
        fails(&judge(&EXITING_SUBREAPER, &pids, &wrong), "adopted by 11");
    }

    // --- ptrace-wait ------------------------------------------------------------------------

    fn ptrace() -> PtraceWait {
        PtraceWait {
            parent: 10,
            tracee: 11,
            tracer: 12,
            tracer_wait: exited(11, 7),
            tracee_after_tracer_wait: Stat {
                state: 'Z',
                ppid: 10,
                flags: 0,
                start: 1,
            },
            parent_wait: exited(11, 7),
        }
    }

    #[test]
    fn a_tracers_wait_is_no_reap() {
        let good = vec![zombie(11, 10, false), reap(11, 10, ReapHow::Wait4)];
        let r = judge(&PTRACE_WAIT, &ptrace(), &good);
        passes(&r);
        assert_eq!(r.observed_text, "reaped by 10 x (wait4)");
        assert_eq!(r.predicted_text, "zombie of 10 x");
        // The reap recorded as the tracer's.
        let by_tracer = replaced(&good, 1, reap(11, 12, ReapHow::Wait4));
        fails(&judge(&PTRACE_WAIT, &ptrace(), &by_tracer), "the tracer 12");
        // The tracer's reap as well as the parent's.
        let both = with(good.clone(), reap(11, 12, ReapHow::Wait4));
        fails(&judge(&PTRACE_WAIT, &ptrace(), &both), "the tracer 12");
        // A second zombie (handed back to the parent, as if it died twice).
        let z2 = with(good.clone(), zombie(11, 12, false));
        fails(
            &judge(&PTRACE_WAIT, &ptrace(), &z2),
            "2 zombie events of 11",
        );
        // A phantom adoption by the parent.
        let moved = with(good.clone(), reparent(5, 11, 12, 10, ReaperKind::Init, 10));
        fails(
            &judge(&PTRACE_WAIT, &ptrace(), &moved),
            "recorded as adopted",
        );
        // An auto-reap.
        let auto = replaced(&good, 1, reap(11, 10, ReapHow::Auto));
        fails(&judge(&PTRACE_WAIT, &ptrace(), &auto), "(auto)");
        // The kernel's facts do not say what the scenario needs.
        let reaped_by_tracer = PtraceWait {
            tracee_after_tracer_wait: Stat::GONE,
            ..ptrace()
        };
        fails(
            &judge(&PTRACE_WAIT, &reaped_by_tracer, &good),
            "did not behave",
        );
    }

    // --- exec-thread ------------------------------------------------------------------------

    fn exec_thread() -> ExecThread {
        ExecThread {
            parent: 10,
            process: 11,
            exec_thread: 13,
            child: 12,
            leader_start: 0,
            after_pid: 11,
            after_tid: 11,
            after_start: 0,
            child_after: Stat {
                state: 'S',
                ppid: 11,
                flags: 0,
                start: 0,
            },
            child_wait: exited(12, 0),
            parent_wait: exited(11, 42),
        }
    }

    /// An exit of thread 11 (process 11, parent 10).
    fn exit_of_11(ts: u64, ends_the_process: bool, c: i32) -> Event {
        let mut e = exit(ts, 11, 10, None);
        if let Event::Exit {
            group_dead, status, ..
        } = &mut e
        {
            *group_dead = ends_the_process;
            *status = code(c);
        }
        e
    }

    fn exec_events() -> Vec<Event> {
        // Proc::fake starts task N at N ns: tick 0, the leader_start above.
        let z = Event::Zombie {
            ts: 30,
            task: p(11),
            parent: p(10),
            status: code(42),
            autoreaped: false,
            before_trace: false,
        };
        vec![
            Event::Exec {
                ts: 2,
                task: p(11),
                filename: "reaper-trace".into(),
                args: vec![],
                args_truncated: false,
            },
            reparent(3, 12, 11, 11, ReaperKind::Thread, 11),
            zombie(12, 11, false),
            reap(12, 11, ReapHow::Wait4),
            z,
            reap(11, 10, ReapHow::Wait4),
            // Thread 11's two exits: the old leader's inside the exec, the new program's.
            exit_of_11(1, false, 0),
            exit_of_11(29, true, 42),
        ]
    }

    #[test]
    fn exec_from_a_thread_is_one_process_that_keeps_its_child() {
        let good = exec_events();
        passes(&judge(&EXEC_THREAD, &exec_thread(), &good));
        // Without the hand-over to the exec'ing thread (same process) it is still right.
        passes(&judge(&EXEC_THREAD, &exec_thread(), &without(&good, 1)));
        // The child shown adopted by another process.
        let phantom = replaced(&good, 1, reparent(3, 12, 11, 10, ReaperKind::Subreaper, 10));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &phantom),
            "adopted by another",
        );
        // Two zombies of the process (the old leader's and the new program's).
        let z2 = with(good.clone(), zombie(11, 10, false));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &z2),
            "2 zombie events of 11",
        );
        // Two reaps.
        let r2 = with(good.clone(), reap(11, 10, ReapHow::Wait4));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &r2),
            "2 reap events of 11",
        );
        // The child reaped by the process's parent.
        let wrong = replaced(&good, 3, reap(12, 10, ReapHow::Wait4));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &wrong),
            "recorded as reaped by 10",
        );
        // The zombie without the new program's exit code.
        let status = replaced(&good, 4, zombie(11, 10, false));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &status),
            "exit code 42",
        );
        // The new program's exit missing (taken for a repeat of the old leader's).
        let last = good.len() - 1;
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &without(&good, last)),
            "two exits of thread 11",
        );
        // Its exit with the old leader's status.
        let wrong = replaced(&good, last, exit_of_11(29, true, 0));
        fails(
            &judge(&EXEC_THREAD, &exec_thread(), &wrong),
            "ends it with 42",
        );
    }

    // --- sigchld-ignored --------------------------------------------------------------------

    fn ns_proc(pid: u32, ns_pid: u32) -> Proc {
        Proc {
            ns_pid,
            ns_tid: ns_pid,
            pidns: 77,
            ..p(pid)
        }
    }

    fn ignored() -> SigchldIgnored {
        SigchldIgnored {
            init: 9,
            parent: 10,
            children: (0..IGNORED_CHILDREN as u32)
                .map(|i| NsChild {
                    pid: 20 + i,
                    ns_pid: 3 + i,
                    pidns: 77,
                })
                .collect(),
            parent_wait: Waited {
                ret: -1,
                status: 0,
                errno: libc::ECHILD,
            },
            gone: IGNORED_CHILDREN as u32,
        }
    }

    fn autoreaped_events() -> Vec<Event> {
        let mut ev = Vec::new();
        for i in 0..IGNORED_CHILDREN as u32 {
            ev.push(Event::Zombie {
                ts: 1,
                task: ns_proc(20 + i, 3 + i),
                parent: ns_proc(10, 2),
                status: code(3),
                autoreaped: true,
                before_trace: false,
            });
            ev.push(Event::Reap {
                ts: 2,
                task: ns_proc(20 + i, 3 + i),
                reaper: Some(ns_proc(10, 2)),
                how: ReapHow::Auto,
                zombie_ns: Some(0),
            });
        }
        ev
    }

    #[test]
    fn children_of_a_parent_ignoring_sigchld_are_autoreaped_with_their_ids() {
        let good = autoreaped_events();
        let r = judge(&SIGCHLD_IGNORED, &ignored(), &good);
        passes(&r);
        assert_eq!(r.observed_text, "5/5 reaped auto by 10");
        // Reaped by a wait that never returned it.
        let waited = replaced(
            &good,
            1,
            Event::Reap {
                ts: 2,
                task: ns_proc(20, 3),
                reaper: Some(ns_proc(10, 2)),
                how: ReapHow::Wait4,
                zombie_ns: Some(0),
            },
        );
        fails(&judge(&SIGCHLD_IGNORED, &ignored(), &waited), "(wait4)");
        // A zombie that waits to be reaped.
        let kept = replaced(
            &good,
            0,
            Event::Zombie {
                ts: 1,
                task: ns_proc(20, 3),
                parent: ns_proc(10, 2),
                status: code(3),
                autoreaped: false,
                before_trace: false,
            },
        );
        fails(
            &judge(&SIGCHLD_IGNORED, &ignored(), &kept),
            "must say autoreaped",
        );
        // A second zombie.
        let z2 = with(good.clone(), good[0].clone());
        fails(
            &judge(&SIGCHLD_IGNORED, &ignored(), &z2),
            "2 zombie events of 20",
        );
        // Namespace ids missing, or not the ones /proc showed.
        let zero = with(
            good.clone(),
            Event::Subreaper {
                ts: 3,
                task: Proc { pidns: 0, ..p(10) },
                enabled: false,
            },
        );
        fails(&judge(&SIGCHLD_IGNORED, &ignored(), &zero), "pidns 0");
        let global = replaced(&good, 1, {
            let mut e = good[1].clone();
            if let Event::Reap { task, .. } = &mut e {
                task.ns_pid = 20;
            }
            e
        });
        fails(
            &judge(&SIGCHLD_IGNORED, &ignored(), &global),
            "/proc said 3 in 77",
        );
    }

    // --- clone-parent -----------------------------------------------------------------------

    fn clone_parent() -> CloneParent {
        CloneParent {
            a: 10,
            b: 11,
            c: 12,
            c_ppid: 10,
            a_waits: vec![exited(11, 0), exited(12, 9)],
        }
    }

    #[test]
    fn clone_parent_names_the_real_parent_and_the_caller() {
        let good = vec![
            fork(10, 12, Some(11)),
            zombie(12, 10, false),
            reap(12, 10, ReapHow::Wait4),
        ];
        let r = judge(&CLONE_PARENT, &clone_parent(), &good);
        passes(&r);
        assert_eq!(
            r.observed_text,
            "parent 10, caller 11; reaped by 10 x (wait4)"
        );
        // The caller taken for the parent.
        let caller = replaced(&good, 0, fork(11, 12, None));
        fails(
            &judge(&CLONE_PARENT, &clone_parent(), &caller),
            "not the caller 11",
        );
        // No caller named.
        let anonymous = replaced(&good, 0, fork(10, 12, None));
        fails(
            &judge(&CLONE_PARENT, &clone_parent(), &anonymous),
            "must name its caller",
        );
        // The zombie waiting for the caller; the caller reaping it.
        let z = replaced(&good, 1, zombie(12, 11, false));
        fails(
            &judge(&CLONE_PARENT, &clone_parent(), &z),
            "names 11 as its parent",
        );
        let r2 = replaced(&good, 2, reap(12, 11, ReapHow::Wait4));
        fails(&judge(&CLONE_PARENT, &clone_parent(), &r2), "reaped by 11");
        // Two forks.
        let f2 = with(good.clone(), fork(11, 12, None));
        fails(
            &judge(&CLONE_PARENT, &clone_parent(), &f2),
            "2 fork events of 12",
        );
    }

    // --- wait-race --------------------------------------------------------------------------

    #[test]
    fn raced_waits_are_reaps_by_wait() {
        let pids = WaitRace {
            parent: 10,
            waits: (100..100 + RACE_CHILDREN as i32).map(|p| (p, 0)).collect(),
        };
        let mut good = Vec::new();
        for pid in 100..100 + RACE_CHILDREN as u32 {
            good.push(zombie(pid, 10, false));
            good.push(reap(pid, 10, ReapHow::Wait4));
        }
        let r = judge(&WAIT_RACE, &pids, &good);
        passes(&r);
        assert_eq!(
            r.observed_text,
            "1000 reaped by 10 (wait4), 0 auto, 0 missing"
        );
        let auto = replaced(&good, 1, reap(100, 10, ReapHow::Auto));
        fails(
            &judge(&WAIT_RACE, &pids, &auto),
            "1 of 1000 waited pids misrecorded",
        );
        let autoreaped = replaced(&good, 0, zombie(100, 10, true));
        fails(&judge(&WAIT_RACE, &pids, &autoreaped), "1 autoreaped");
        let extra = with(good.clone(), reap(100, 10, ReapHow::Wait4));
        fails(&judge(&WAIT_RACE, &pids, &extra), "misrecorded");
        let missing = without(&good, 1);
        fails(&judge(&WAIT_RACE, &pids, &missing), "no reap");
        let lost = with(
            good.clone(),
            Event::Lost {
                ts: 1,
                what: "wait".into(),
                count: 3,
            },
        );
        fails(&judge(&WAIT_RACE, &pids, &lost), "3 kernel records lost");
    }

    // --- threads-exit -----------------------------------------------------------------------

    fn threads_exit() -> ThreadsExit {
        ThreadsExit {
            reaper: 10,
            orphans: (0..(THREAD_BATCHES * THREAD_FATHERS) as u32)
                .map(|i| ThreadsOrphan {
                    father: 100 + i,
                    orphan: 200 + i,
                    ppid: 10,
                })
                .collect(),
        }
    }

    fn threads_events() -> Vec<Event> {
        let mut ev = Vec::new();
        for i in 0..(THREAD_BATCHES * THREAD_FATHERS) as u32 {
            let (f, k) = (100 + i, 200 + i);
            // From the forking thread to another thread of the father, then to the subreaper
            // (the prediction overtaken by a thread's exit: `changed`).
            ev.push(reparent(1, k, f, f, ReaperKind::Thread, f));
            ev.push(with_verdict(
                reparent(2, k, f, 10, ReaperKind::Subreaper, f),
                Verdict::Changed,
            ));
            ev.push(zombie(k, 10, false));
            ev.push(reap(k, 10, ReapHow::Wait4));
        }
        ev
    }

    #[test]
    fn threads_exiting_together_hand_the_orphan_on_without_mismatch() {
        let good = threads_events();
        let r = judge(&THREADS_EXIT, &threads_exit(), &good);
        passes(&r);
        assert!(r.notes[0].contains("40 match, 40 changed"), "{r:?}");
        // A mismatch anywhere in the chain.
        let mismatch = replaced(&good, 0, reparent(1, 200, 100, 100, ReaperKind::Thread, 7));
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &mismatch),
            "judged a mismatch",
        );
        // The last adoption naming another reaper than /proc showed.
        let last = replaced(
            &good,
            1,
            reparent(2, 200, 100, 11, ReaperKind::Subreaper, 11),
        );
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &last),
            "neither a thread of its father 100 nor 10",
        );
        // A phantom hand-over by a process that is not the father.
        let phantom = with(
            good.clone(),
            reparent(0, 200, 99, 100, ReaperKind::Thread, 100),
        );
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &phantom),
            "not by a thread of its father",
        );
        // Handed out of the father's process before its last thread died.
        let early = replaced(
            &good,
            0,
            reparent(1, 200, 100, 10, ReaperKind::Subreaper, 10),
        );
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &early),
            "2 hops out of its father 100's threads",
        );
        // A second zombie, a reap by another.
        let z2 = with(good.clone(), zombie(200, 10, false));
        fails(
            &judge(&THREADS_EXIT, &threads_exit(), &z2),
            "2 zombie events of 200",
        );
        let r2 = replaced(&good, 3, reap(200, 100, ReapHow::Wait4));
        fails(&judge(&THREADS_EXIT, &threads_exit(), &r2), "reaped by 100");
    }

    // --- pid-reuse --------------------------------------------------------------------------

    fn task(pid: u32, start: u64) -> Proc {
        Proc { start, ..p(pid) }
    }

    fn reuse_events() -> (PidReuse, Vec<Event>) {
        let pids = PidReuse {
            parent: 10,
            waits: vec![100, 101, 100],
            reused: Some(100),
            threads: 5,
            ms: 3,
        };
        let mut ev = Vec::new();
        for (pid, start) in [(100, 1000), (101, 1010), (100, 2000)] {
            ev.push(Event::Fork {
                ts: start,
                parent: p(10),
                child: task(pid, start),
                caller: None,
                thread: false,
            });
            ev.push(Event::Zombie {
                ts: start + 1,
                task: task(pid, start),
                parent: p(10),
                status: code(0),
                autoreaped: false,
                before_trace: false,
            });
            ev.push(Event::Reap {
                ts: start + 2,
                task: task(pid, start),
                reaper: Some(p(10)),
                how: ReapHow::Wait4,
                zombie_ns: Some(1),
            });
        }
        (pids, ev)
    }

    #[test]
    fn a_reused_pid_has_one_reap_per_task() {
        let (pids, good) = reuse_events();
        let r = judge(&PID_REUSE, &pids, &good);
        passes(&r);
        assert!(
            r.observed_text
                .contains("pid 100: reaps of starts [1000, 2000]"),
            "{r:?}"
        );
        // Both reaps given to the same task (the pid's first holder).
        let mut same = good.clone();
        if let Event::Reap { task: t, .. } = &mut same[8] {
            t.start = 1000;
        }
        fails(&judge(&PID_REUSE, &pids, &same), "1 of 2 pids misrecorded");
        // A reap of a task no fork created.
        let mut unforked = good.clone();
        if let Event::Reap { task: t, .. } = &mut unforked[8] {
            t.start = 5;
        }
        fails(&judge(&PID_REUSE, &pids, &unforked), "no fork created");
        // One reap missing, one not by wait.
        fails(&judge(&PID_REUSE, &pids, &without(&good, 8)), "misrecorded");
        let mut auto = good.clone();
        if let Event::Reap { how, .. } = &mut auto[2] {
            *how = ReapHow::Auto;
        }
        fails(&judge(&PID_REUSE, &pids, &auto), "misrecorded");
        // No pid came back in time: skipped, with the reason.
        let none = PidReuse {
            reused: None,
            ..reuse_events().0
        };
        let r = judge(&PID_REUSE, &none, &good);
        assert_eq!(r.status, Status::Skipped, "{r:?}");
        assert!(
            r.reason
                .unwrap()
                .starts_with("no pid was reused within 3 ms")
        );
    }

    #[test]
    fn dying_init_adopts_and_kills() {
        let pids = InitExits {
            reaper: 10,
            killed: 11,
            father: 12,
            orphan: 13,
            father_exited: Stat::GONE,
            orphan_adopted: held(true, 'S', 10),
            init_exiting: held(true, 'S', 1),
        };
        let good = vec![
            exit(1, 10, 9, None),
            exit(2, 11, 10, Some(9)),
            exit(2, 12, 10, Some(9)),
            exit(2, 13, 12, Some(9)),
            reparent(3, 13, 12, 10, ReaperKind::Init, 10),
        ];
        passes(&judge(&INIT_EXITS_WITH_CHILDREN, &pids, &good));
        let exited = replaced(&good, 1, exit(2, 11, 10, None));
        fails(
            &judge(&INIT_EXITS_WITH_CHILDREN, &pids, &exited),
            "not SIGKILL",
        );
        let handed = with(good.clone(), reparent(3, 11, 10, 1, ReaperKind::Init, 1));
        fails(
            &judge(&INIT_EXITS_WITH_CHILDREN, &pids, &handed),
            "recorded as adopted",
        );
        // The kernel's side: the father still alive while the orphan was held, the orphan
        // adopted elsewhere, the init not dying.
        for facts in [
            InitExits {
                father_exited: held(false, 'S', 10),
                ..pids
            },
            InitExits {
                orphan_adopted: held(true, 'S', 1),
                ..pids
            },
            InitExits {
                init_exiting: held(false, 'S', 1),
                ..pids
            },
        ] {
            fails(
                &judge(&INIT_EXITS_WITH_CHILDREN, &facts, &good),
                "did not behave",
            );
        }
    }
}
