//! Orphans adopted once, by the reaper `find_new_reaper` picks: the namespace's init, a
//! subreaper, the nearest of nested subreapers, an init a process was injected under
//! (setns), an init that never waits; a subreaper that reaps what it adopts, and one that is
//! itself exiting when the orphan is handed on (held there with FUSE).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::judge::{Judge, all_reaped_by_reaper, auto_note, brief, kernel_said, ms, reaper};
use crate::event::{Event, ReapHow, ReaperKind};

use super::ctx::{Noted, Notes};
use super::sys::{
    Stat, close, fork_then, global_pid, global_ppid, join_pid_namespace, new_pid_namespace, pipe,
    poll_until, read_u32, reap_all, set_subreaper, sleep_ms, stat_of, wait_for, wait_until_adopted,
    write_u32,
};
use super::{Def, Needs, fuse};

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

/// How long an orphan lives at least: long enough to be adopted and seen in `/proc` under its
/// new parent before it exits.
const ORPHAN_MS: u64 = 300;

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

pub(super) static ORPHAN_INIT: Def<Orphan> = Def::new(
    "orphan-init",
    "a parent exits before its child inside a pid namespace; the namespace init adopts it",
    |ctx| {
        let notes = &ctx.notes;
        new_pid_namespace()?;
        let init = fork_then(|| {
            notes.note("reaper", global_pid());
            if fork_then(|| orphan_maker(notes, ORPHAN_MS)).is_err() {
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

pub(super) static ORPHAN_SUBREAPER: Def<Orphan> = Def::new(
    "orphan-subreaper",
    "a parent exits before its child; the subreaper above adopts it",
    |ctx| {
        let notes = &ctx.notes;
        set_subreaper()?;
        notes.note("reaper", global_pid());
        let father = fork_then(|| orphan_maker(notes, ORPHAN_MS))?;
        wait_for(father);
        reap_all();
        Orphan::from_notes(&notes.collect()?)
    },
    |p, j| p.check(ReaperKind::Subreaper, Some(&[ReapHow::Wait4]), j),
);

pub(super) static NESTED_SUBREAPERS: Def<Orphan> = Def::new(
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
            orphan_maker(notes, ORPHAN_MS)
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

pub(super) static SETNS_INJECTED: Def<Injected> = Def::new(
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
            match fork_then(|| orphan_maker(notes, ORPHAN_MS)) {
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
            // Outlive the orphan, then reap it.
            sleep_ms(ORPHAN_MS + 400);
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

pub(super) static SLEEP_INIT: Def<Orphan> = Def::new(
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
        // dies (reaped inside the kernel: `namespace`).
        let zombie = j.one(j.zombies(o), format_args!("zombie events of {o}"));
        if let Some(Event::Zombie { parent, .. }) = zombie {
            j.check(parent.pid == init, || {
                format!("orphan {o} recorded as a zombie of {}, not of PID 1 ({init})", parent.pid)
            });
        }
        let z = j.zombie_stats(&[o], init);
        let reap = j.one(j.reaps(o), format_args!("reap events of {o}"));
        if let Some(Event::Reap { how, zombie_ns, .. }) = reap
            && j.check(matches!(how, ReapHow::Namespace), || {
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

pub(super) static SUBREAPER_REAPS: Def<SubreaperReaps> = Def::new(
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

pub(super) static EXITING_SUBREAPER: Def<ExitingSubreaper> = Def::new(
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::event::{Prediction, Proc, Verdict};
    use crate::scenario::result::Status;
    use crate::scenario::test_util::*;

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

    /// A hop out of a father whose exit was recorded late (7.x) has no prediction: the kernel's
    /// choice alone is checked. A hop without a prediction that is not late still fails.
    #[test]
    fn a_late_hop_is_judged_by_the_kernels_choice_alone() {
        let unpredicted = |late: bool, to: u32| {
            let mut events = adopted(to, ReaperKind::Init, to);
            if let Event::Reparent {
                predicted,
                verdict,
                late: l,
                ..
            } = &mut events[0]
            {
                (*predicted, *verdict, *l) = (None, Verdict::Unknown, late);
            }
            events
        };
        passes(&judge(&ORPHAN_INIT, &orphan(), &unpredicted(true, 10)));
        fails(
            &judge(&ORPHAN_INIT, &orphan(), &unpredicted(true, 20)),
            "adopted by 20",
        );
        fails(
            &judge(&ORPHAN_INIT, &orphan(), &unpredicted(false, 10)),
            "orphan 12",
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
                    start: 5 * crate::identity::NS_PER_TICK,
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
                    start: 5 * crate::identity::NS_PER_TICK,
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
            late: false,
        }];
        let r = judge(&ORPHAN_SUBREAPER, &orphan(), &ev);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.observed_text, "released before it could be read");
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
}
