//! A tracing session: the attached programs, the model fed from them, and the one read loop
//! `record`, `top` and `validate` share.
//!
//! A front end waits on [`Session::ready`] beside its own inputs (signals, keys, a command's
//! exit), with its inputs first, then calls [`Session::step`]: at most [`BATCH`] records are
//! applied per step, and housekeeping (lost counts, zombies checked against `/proc`) runs
//! between steps. However fast records come, the front end's inputs are looked at between
//! two batches, never behind a drain that waits for an empty ring.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use reaper_trace_common::{EXIT_FLAG_LATE, FORK_FLAG_LATE, kind};
use tokio::time::{Instant, sleep_until};

use crate::clock::boottime_ns;
use crate::container::Resolver;
use crate::decode::{self, RawEvent, decode};
use crate::event::Event;
use crate::late_records::LateRecords;
use crate::model::{Model, Scope, VANISH_GRACE_NS, ZombieCheck};
use crate::tracer::Tracer;
use crate::{btf_offsets, preflight, procfs};

/// How often lost counters are read and zombies are checked against `/proc`.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(500);
/// Records applied per step at most (a few milliseconds of work).
pub const BATCH: usize = 4096;
/// After the ring signals records, let more gather this long before reading: one read per
/// batch, not one wake-up per record.
const GATHER: Duration = Duration::from_millis(20);
/// Zombies checked against `/proc` per housekeeping round at most, and the time their
/// `stat` reads may take.
const CHECK_BUDGET: usize = 20_000;
const HOUSEKEEPING_CHECKS: Duration = Duration::from_millis(20);
/// At the end, the last records are read for at most this long.
const FINISH_DRAIN: Duration = Duration::from_millis(150);
/// At the end, the zombies whose reap may have been lost are checked against `/proc` for at
/// most this long (longest unchecked first), the directory read included (at most
/// `FINISH_LISTING` of it); the rest stay zombies in the recording, as the records left them.
const FINISH_CHECKS: Duration = Duration::from_millis(150);
const FINISH_LISTING: Duration = Duration::from_millis(100);

pub struct SessionOptions {
    pub scope: Scope,
    pub ring_bytes: u32,
    /// Say nothing on standard error but errors (`record -q`): not even that tracefs was
    /// mounted.
    pub quiet: bool,
}

/// What a session has read so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Kernel records applied.
    pub records: u64,
    /// Records that failed to decode (programs and userspace from different builds).
    pub bad_records: u64,
    /// Records a standby copy of a kernel program sent again, dropped (`repeats`).
    pub repeats: u64,
    /// Records lost (ring buffer full, children not followed, ...), by kind, as `lost`
    /// events name them.
    pub lost: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// `"12 fork, 3 zombie"`, or `None` when nothing was lost.
    pub fn describe_lost(&self) -> Option<String> {
        (!self.lost.is_empty()).then(|| {
            self.lost
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

pub struct Session {
    tracer: Tracer,
    model: Model,
    /// Losses of forks and exits, netted against the late records that made up for them.
    late: LateRecords,
    stats: Stats,
    repeats: crate::repeats::Repeats,
    pub started_ts: u64,
    last_housekeeping: Instant,
    last_step: Instant,
    /// The ring signalled records that have not all been read yet.
    data_pending: bool,
    /// The last step stopped at `BATCH` records: more are waiting.
    backlog: bool,
    /// Every record written before this time (`CLOCK_BOOTTIME`) has been applied.
    applied_until: u64,
    /// When the session was stopped (`CLOCK_BOOTTIME`): the programs are being detached, in
    /// any order, so a reap after it may come as a `free` record without the wait record
    /// that made it. Such `free` records are past the end: skipped (the zombie stays one, as
    /// it was at the end).
    stopped_at: Option<u64>,
    /// When records were last found lost (`CLOCK_BOOTTIME`; 0: never): a zombie not known
    /// to be one since may have had its reap among them.
    lost_by: u64,
    /// Pid namespaces to containers: a `container` event precedes the first event of each.
    containers: Resolver,
}

impl Session {
    /// Checks privileges and tracefs, resolves offsets, attaches, and learns existing tasks.
    pub fn start(opts: &SessionOptions) -> Result<Self> {
        preflight::check_privileges()?;
        if preflight::ensure_tracefs()? && !opts.quiet {
            eprintln!("reaper-trace: mounted tracefs at {}", preflight::TRACEFS);
        }
        let mut kernel = btf_offsets::resolve()?;
        kernel.offsets.scope_tree = (opts.scope == Scope::Tree) as u32;
        let tracer = Tracer::attach(&kernel, opts.ring_bytes)?;
        let started_ts = boottime_ns();
        let mut model = Model::new(opts.scope);
        // Read /proc after attaching: a task born in between is then seen by both, never by
        // neither; the model keeps one identity for it either way.
        model.seed(&procfs::scan());
        let now = Instant::now();
        Ok(Self {
            tracer,
            model,
            late: LateRecords::default(),
            stats: Stats::default(),
            repeats: Default::default(),
            started_ts,
            last_housekeeping: now,
            last_step: now,
            data_pending: false,
            backlog: false,
            applied_until: started_ts,
            stopped_at: None,
            lost_by: 0,
            containers: Resolver::new(host_root()),
        })
    }

    /// `zombie` events (`before_trace`) for the zombies that existed when tracing began: the
    /// first events of a system-wide session.
    pub fn zombies_before_trace(&mut self) -> Vec<Event> {
        let mut out = self.model.zombies_before_trace(self.started_ts);
        self.annotate(&mut out, 0);
        out
    }

    /// Puts a `container` event before the first event (from `from` on) that names a task of
    /// a pid namespace not seen yet. A namespace whose init is reaped is dead: its inode may
    /// be reused by a new one, which is resolved afresh.
    fn annotate(&mut self, out: &mut Vec<Event>, from: usize) {
        let mut found = Vec::new();
        let mut insert_at = None;
        for (i, ev) in out[from..].iter().enumerate() {
            for p in ev.procs() {
                if self.containers.is_new(p.pidns) {
                    let info = self.containers.resolve(p.pidns, p.pid, p.ns_pid);
                    insert_at.get_or_insert(from + i);
                    found.push(Event::Container {
                        ts: ev.ts(),
                        pidns: p.pidns,
                        info,
                    });
                }
            }
            if let Event::Reap { task, .. } = ev
                && task.ns_pid == 1
                && task.tid == task.pid
            {
                self.containers.forget(task.pidns);
            }
        }
        if let Some(at) = insert_at {
            out.splice(at..at, found);
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Starts the root of a tree-scoped session with `spawn` (which forks it): the kernel
    /// programs follow it and everything it forks from its first instruction on. For the
    /// instant of the spawn the recorder itself is in scope, so the fork program adds the
    /// child to the scope map before it runs (no window in which it could fork unseen).
    pub fn spawn_tracked<T>(&mut self, spawn: impl FnOnce() -> std::io::Result<T>) -> Result<T> {
        let me = std::process::id();
        self.tracer.track(me)?;
        let spawned = spawn();
        let untracked = self.tracer.untrack(me);
        let child = spawned?;
        untracked?;
        Ok(child)
    }

    /// Waits until there is work for [`Session::step`]: records, or housekeeping due.
    /// Cancel-safe: use it in a `select!` after the front end's own inputs.
    pub async fn ready(&mut self) -> Result<()> {
        if self.backlog {
            // Records are waiting, but let the runtime poll its drivers first: on a
            // current-thread runtime a signal or a key is only read when the task yields.
            tokio::task::yield_now().await;
            return Ok(());
        }
        let housekeeping = self.last_housekeeping + HOUSEKEEPING_EVERY;
        if !self.data_pending {
            tokio::select! {
                r = self.tracer.readable() => {
                    r?;
                    self.data_pending = true;
                }
                _ = sleep_until(housekeeping) => return Ok(()),
            }
        }
        sleep_until((self.last_step + GATHER).min(housekeeping)).await;
        Ok(())
    }

    /// Applies at most [`BATCH`] records, then housekeeping when it is due; events go to
    /// `out`. Returns how many records were applied.
    pub fn step(&mut self, out: &mut Vec<Event>) -> usize {
        let from = out.len();
        let n = self.step_records(out);
        self.annotate(out, from);
        n
    }

    fn step_records(&mut self, out: &mut Vec<Event>) -> usize {
        let n = self.apply_batch(out);
        if self.last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
            self.housekeeping(out);
        }
        n
    }

    /// Applies at most [`BATCH`] records.
    fn apply_batch(&mut self, out: &mut Vec<Event>) -> usize {
        let before = boottime_ns();
        let model = &mut self.model;
        let stats = &mut self.stats;
        let repeats = &mut self.repeats;
        let late = &mut self.late;
        let started_ts = self.started_ts;
        let mut newest = 0;
        let mut bad = false;
        let stopped_at = self.stopped_at.unwrap_or(u64::MAX);
        let n = self.tracer.drain(BATCH, |bytes| match decode(bytes) {
            Ok(raw) => {
                newest = raw.header().ts_ns;
                if matches!(raw, RawEvent::Free(_)) && newest > stopped_at {
                    return;
                }
                if repeats.is_repeat(&raw) {
                    stats.repeats += 1;
                    return;
                }
                // A late record makes up for a loss counted before it, while the programs are
                // attached: not one sent after the stop, when the exit program may be detached
                // before the switch program.
                match &raw {
                    // A task forked before the session that first runs in it: the model
                    // learned it from /proc, and no loss was counted for it.
                    RawEvent::Fork(e) if e.flags & FORK_FLAG_LATE != 0 => {
                        if e.child.id.start_ns < started_ts {
                            return;
                        }
                        if e.child.id.start_ns <= stopped_at {
                            late.applied(kind::FORK, newest);
                        }
                    }
                    RawEvent::Exit(e) if e.flags & EXIT_FLAG_LATE != 0 && newest <= stopped_at => {
                        late.applied(kind::EXIT, newest);
                    }
                    _ => {}
                }
                stats.records += 1;
                model.apply(&raw, out);
            }
            Err(_) => {
                stats.bad_records += 1;
                bad = true;
            }
        });
        if bad {
            self.lost_by = boottime_ns();
        }
        self.last_step = Instant::now();
        self.backlog = n == BATCH;
        if !self.backlog {
            // The ring was empty at some point after `before`: everything written before
            // it has been applied.
            self.data_pending = false;
            self.applied_until = self.applied_until.max(before);
        }
        self.applied_until = self.applied_until.max(newest);
        n
    }

    /// The end of a session: the programs are detached (in the background: the kernel takes
    /// its time), the last records read (for a bounded time; what is still unread then is
    /// counted as lost), the zombies whose reap may have been lost checked against `/proc`
    /// (for a bounded time), and what is still pending resolved. Nothing in it grows with the
    /// number of tasks or zombies on the machine but a pass over the zombies the model holds;
    /// it takes a few hundred milliseconds at most. Dropping the session then waits for the
    /// programs to be detached.
    pub async fn finish(&mut self, out: &mut Vec<Event>) {
        let from = out.len();
        self.finish_records(out).await;
        self.annotate(out, from);
    }

    /// Starts detaching the programs (in the background; dropping the session waits for it):
    /// no record is written after this but those of calls already under way.
    pub fn detach(&mut self) {
        self.tracer.detach();
    }

    async fn finish_records(&mut self, out: &mut Vec<Event>) {
        // Records written from now on are past the end of the session, not lost.
        let stopped_at = boottime_ns();
        self.stopped_at = Some(stopped_at);
        self.detach();
        if !self.drain_for(FINISH_DRAIN, out) {
            // Records are still coming faster than they are applied: count the rest.
            self.count_unread(stopped_at, out);
        }
        self.report_lost(out, true);
        // A zombie known to be one since the last records were lost is one: its reap is not
        // among them. Only the others are looked up in /proc (none when nothing was lost).
        let at_risk = if self.lost_by > 0 {
            self.model.zombies_at_risk(self.lost_by)
        } else {
            Vec::new()
        };
        if !at_risk.is_empty() {
            let (gone, checked_at) =
                self.check_zombies(at_risk, FINISH_CHECKS, Some(FINISH_LISTING));
            if gone > 0 {
                // Their reap records may still be on their way: wait for what was written
                // before the check, then read it.
                let settled = checked_at + VANISH_GRACE_NS;
                let wait = settled.saturating_sub(boottime_ns());
                tokio::time::sleep(Duration::from_nanos(wait)).await;
                self.drain_for(FINISH_DRAIN, out);
            }
        }
        self.count_unread(stopped_at, out);
        self.model.give_up_unread_hops();
        self.report_lost(out, true);
        self.model.settle(self.applied_until, out);
        self.model.finish(out);
    }

    /// Applies records until the ring is empty (returns true) or `limit` has passed (false).
    /// No housekeeping: the end of a session does its own.
    fn drain_for(&mut self, limit: Duration, out: &mut Vec<Event>) -> bool {
        let until = std::time::Instant::now() + limit;
        // Annotated by `finish`, once.
        loop {
            if self.apply_batch(out) < BATCH {
                return true;
            }
            if std::time::Instant::now() >= until {
                return false;
            }
        }
    }

    /// Records still in the ring when a stopping session has no time left to apply them:
    /// those written before the stop (`stopped_at`) are counted by kind and reported as lost,
    /// never dropped unsaid; later ones are past the end. Reading a header costs little, so
    /// this takes a few milliseconds for a full ring.
    fn count_unread(&mut self, stopped_at: u64, out: &mut Vec<Event>) {
        let mut unread = [0u64; reaper_trace_common::kind::COUNT as usize];
        let until = std::time::Instant::now() + Duration::from_millis(100);
        loop {
            let before = boottime_ns();
            let n = self.tracer.drain(BATCH, |bytes| {
                let Ok(header) = decode::header(bytes) else {
                    return;
                };
                if header.ts_ns <= stopped_at
                    && let Some(slot) = unread.get_mut(header.kind as usize)
                {
                    *slot += 1;
                }
            });
            if n < BATCH {
                // Every record written before `before` is now applied or counted as lost:
                // a zombie /proc stopped showing earlier than that, that no applied record
                // reaped, vanished.
                self.applied_until = self.applied_until.max(before);
                break;
            }
            if std::time::Instant::now() >= until {
                break;
            }
        }
        let now = boottime_ns();
        if unread.iter().any(|&c| c > 0) {
            self.lost_by = now;
        }
        for (slot, &count) in unread.iter().enumerate().filter(|(_, c)| **c > 0) {
            let what = decode::kind_name(slot as u32);
            *self.stats.lost.entry(what).or_default() += count;
            out.push(Event::Lost {
                ts: now,
                what: what.to_string(),
                count,
            });
        }
    }

    /// What the kernel programs logged since the last call (rare conditions).
    pub fn kernel_messages(&mut self) -> Vec<String> {
        self.tracer.kernel_messages()
    }

    /// Reports the losses counted since the last call, those of forks and exits once their
    /// late records had time to come (see [`LateRecords`]); `last` at the end of the session,
    /// when nothing is held back.
    fn report_lost(&mut self, out: &mut Vec<Event>, last: bool) {
        let now = boottime_ns();
        let read = self.tracer.lost_since_last();
        let mut lost = self.late.net(read, now, self.applied_until, last);
        let unread = self.model.take_unread_adoptions();
        if unread > 0 {
            lost.push((kind::REPARENT, unread));
        }
        if !lost.is_empty() {
            // Lost before the counters were read: before now.
            self.lost_by = boottime_ns();
        }
        for (slot, count) in lost {
            let what = decode::kind_name(slot);
            *self.stats.lost.entry(what).or_default() += count;
            out.push(Event::Lost {
                ts: now,
                what: what.to_string(),
                count,
            });
        }
    }

    /// Reports lost records, settles zombies whose reap went unseen, and checks the zombies
    /// that are due against `/proc`. [`Session::step`] runs it when it is due.
    pub fn housekeeping(&mut self, out: &mut Vec<Event>) {
        self.last_housekeeping = Instant::now();
        self.report_lost(out, false);
        self.model.settle(self.applied_until, out);
        let now = boottime_ns();
        let due = self.model.due_for_check(now, CHECK_BUDGET);
        if !due.is_empty() {
            self.check_zombies(due, HOUSEKEEPING_CHECKS, None);
        }
    }

    /// Tells the model which of `zombies` `/proc` no longer shows, and which it shows still
    /// zombies: one directory read (for at most `listing`, if given) settles those whose pid
    /// is gone; the others' `stat` is read (the pid may name a new process), until `limit`
    /// has passed since the start. Returns how many are gone, and when they were found gone.
    fn check_zombies(
        &mut self,
        zombies: Vec<ZombieCheck>,
        limit: Duration,
        listing: Option<Duration>,
    ) -> (usize, u64) {
        let started = std::time::Instant::now();
        // Seen as zombies at this time or later.
        let seen_at = boottime_ns();
        let (live, listed_up_to) = match listing {
            Some(l) => procfs::live_pids_until(started + l),
            None => (procfs::live_pids(), u32::MAX),
        };
        let until = started + limit;
        let mut gone = Vec::new();
        for z in zombies {
            let listed = z.tid <= listed_up_to;
            if listed && !live.contains(&z.tid) {
                gone.push(z);
                continue;
            }
            if std::time::Instant::now() >= until {
                continue;
            }
            if procfs::still_zombie(z.tid, z.start_ns) {
                self.model.still_zombie(z, seen_at);
            } else {
                gone.push(z);
            }
        }
        // Found gone at this time or earlier.
        let checked_at = boottime_ns();
        let n = gone.len();
        for z in gone {
            self.model.gone_from_proc(z, checked_at);
        }
        (n, checked_at)
    }
}

/// Where the host's files are (the runtimes' container configs, the kubelet's logs): `/`, or
/// `$REAPER_TRACE_HOST_ROOT` when reaper-trace runs in a container with the host's root
/// mounted there.
pub fn host_root() -> std::path::PathBuf {
    std::env::var_os("REAPER_TRACE_HOST_ROOT")
        .map(Into::into)
        .unwrap_or_else(|| "/".into())
}
