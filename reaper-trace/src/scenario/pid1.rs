//! Pid namespace inits: an init that exits with children (they are killed), and orphans
//! under a PID 1 that waits for them (reaper-init, tini, dumb-init, catatonit) or not (sleep).

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::judge::{Judge, all_reaped_by_reaper, auto_note, kernel_said, reaper};
use crate::event::{Event, ReaperKind};

use super::ctx::{Ctx, Noted, Notes, exec_stage};
use super::sys::{
    Stat, close, fork_then, global_pid, global_ppid, init_binary, new_pid_namespace, pipe,
    poll_until, read_u32, read_until_eof, reap_all, sleep_ms, stat_of, wait_for, write_u32,
    zombies_of,
};
use super::{Def, Needs, fuse};

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

pub(super) static INIT_EXITS_WITH_CHILDREN: Def<InitExits> = Def::new(
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
        let Some(init_exit) = j.exits(init).first().copied() else {
            j.fail(format!("no exit event for the init {init}"));
            return;
        };
        // An exit recorded late (7.x: every copy skipped) is timed at the init's final switch,
        // after the namespace's teardown: it bounds the exit, and orders nothing.
        let init_late = matches!(init_exit, Event::Exit { late: true, .. });
        let t_init = if init_late { 0 } else { init_exit.ts() };
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
            "namespace torn down: {killed} processes SIGKILLed; orphan {} held inside its exit until its father {} was gone, adopted by the dying init; the init's own children reaped inside the kernel, never reparented{}",
            p.orphan,
            p.father,
            if init_late {
                " (the init's exit was recorded late: the kills' order after it is not checked)"
            } else {
                ""
            }
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

pub(super) static PID1_SLEEP: Def<Burst> = Def::new(
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

pub(super) static PID1_REAPER_INIT: Def<Burst> = Def::new(
    "pid1-reaper-init",
    "PID 1 is reaper-init running a command that makes 10 orphans: each is reaped at once",
    |ctx| burst_under(ctx, "pid1-reaper-init", "reaper-init", &[]),
    |p, j| p.check(true, j),
)
.needs(Needs::Program("reaper-init"))
.after_exec(burst_stage);

pub(super) static PID1_TINI: Def<Burst> = Def::new(
    "pid1-tini",
    "PID 1 is tini running a command that makes 10 orphans: each is reaped at once",
    |ctx| burst_under(ctx, "pid1-tini", "tini", &["--"]),
    |p, j| p.check(true, j),
)
.needs(Needs::Program("tini"))
.after_exec(burst_stage);

pub(super) static PID1_DUMB_INIT: Def<Burst> = Def::new(
    "pid1-dumb-init",
    "PID 1 is dumb-init running a command that makes 10 orphans: each is reaped at once",
    |ctx| burst_under(ctx, "pid1-dumb-init", "dumb-init", &[]),
    |p, j| p.check(true, j),
)
.needs(Needs::Program("dumb-init"))
.after_exec(burst_stage);

pub(super) static PID1_CATATONIT: Def<Burst> = Def::new(
    "pid1-catatonit",
    "PID 1 is catatonit running a command that makes 10 orphans: each is reaped at once",
    |ctx| burst_under(ctx, "pid1-catatonit", "catatonit", &["--"]),
    |p, j| p.check(true, j),
)
.needs(Needs::Program("catatonit"))
.after_exec(burst_stage);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ReapHow;
    use crate::scenario::test_util::*;

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
        // handed to PID 1 already dead, which the kernel may do.
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
            ev.push(reap(o, 50, ReapHow::Namespace));
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
