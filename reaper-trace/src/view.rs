//! What `top` shows, computed from the event stream alone: adoptions by kind, the live
//! zombies and who has to reap them, per-reaper statistics, the zombie lifetime histogram,
//! the event rate.
//!
//! Pure: a [`View`] is fed [`Event`]s and a clock value (`CLOCK_BOOTTIME` nanoseconds, the
//! events' own clock) and knows nothing of terminals. The live session and `--replay` feed
//! the same `View`, so a recording replayed shows what the live run showed. Filters and sort
//! orders are a [`Query`] the caller passes to the accessors.
//!
//! Tasks are identified by thread id plus start time, never by pid alone: a pid can be reused
//! (`pid_max` is 32768 by default). Start times of tasks known from `/proc` are only precise
//! to a 10 ms tick, so two start times less than a tick apart name the same task.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::container::ContainerInfo;
use crate::event::{Event, Prediction, Proc, ReapHow, ReaperKind, Verdict};
use crate::state::State;

/// Inode of the initial pid namespace (`PROC_PID_INIT_INO`): shown as `root`.
pub const ROOT_PIDNS: u32 = 0xEFFF_FFFC;
pub const NS_PER_SEC: u64 = 1_000_000_000;
/// Events per second are averaged over this window.
pub const RATE_WINDOW_NS: u64 = 5 * NS_PER_SEC;
const RATE_BUCKET_NS: u64 = 100_000_000;
const RATE_BUCKETS: usize = 64;
/// The adoptions panel keeps this many of the latest adoptions.
pub const ADOPTIONS_KEPT: usize = 1000;
/// Median and p99 per reaper are over its latest this many zombie lifetimes.
pub const LIFETIMES_KEPT: usize = 4096;
/// The reapers panel keeps this many processes. Each reaper ever seen would otherwise stay
/// (an endless stream has endless short-lived parents); once [`REAPERS_SLACK`] more are
/// known, the least telling are forgotten: processes already reaped first, then those that
/// adopted and reaped least. With [`LIFETIMES_KEPT`] lifetimes each, at most about 40 MiB.
pub const REAPERS_KEPT: usize = 1024;
/// Reapers are forgotten in batches of this many (sorting once per batch, not per reaper).
pub const REAPERS_SLACK: usize = REAPERS_KEPT / 4;
/// Reaped tasks are remembered (so a late event naming one does not count it alive again)
/// up to this many, the latest; live tasks are one per thread id.
pub const GONE_TASKS_KEPT: usize = 64 * 1024;
pub use crate::state::{HIST_BUCKETS, HIST_LABELS, Histogram, Zombie};

/// Median and 99th percentile (nearest rank) of a reaper's children's zombie lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    pub median: u64,
    pub p99: u64,
    /// How many lifetimes they are computed from.
    pub samples: usize,
}

impl Percentiles {
    /// Nearest-rank percentiles; `None` for no samples.
    pub fn of(samples: impl IntoIterator<Item = u64>) -> Option<Self> {
        let mut v: Vec<u64> = samples.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Self {
            median: rank(0.5),
            p99: rank(0.99),
            samples: v.len(),
        })
    }
}

/// One reparent event, as the adoptions panel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Adoption {
    pub ts: u64,
    pub orphan: Proc,
    pub father: Proc,
    pub reaper: Option<Proc>,
    pub kind: Option<ReaperKind>,
    pub predicted: Option<Prediction>,
    pub verdict: Verdict,
    /// The orphan was already a zombie.
    pub zombie: bool,
}

impl Adoption {
    /// A finding: the kernel's choice is unexplained or differs from the prediction.
    pub fn is_finding(&self) -> bool {
        self.verdict == Verdict::Mismatch || self.kind == Some(ReaperKind::Unexpected)
    }
}

/// A reaper is a process: any of its threads may adopt (a thread reaper is one of them) or
/// wait, so its threads' adoptions and reaps add up. Events name threads, with their own
/// start times: the process is told apart from a later one with the same pid by its main
/// thread's start time (threads start after it).
#[derive(Debug, Clone)]
struct ReaperEntry {
    /// How it is shown: its main thread once seen, else the first thread seen.
    proc: Proc,
    /// Start time of its main thread, once seen.
    leader_start: Option<u64>,
    /// Earliest start time of a thread of it seen.
    first_start: u64,
    adopted: u64,
    reaped: u64,
    /// Its process has been reaped: it reaps no more.
    gone: bool,
    /// It adopted as a subreaper, or set `PR_SET_CHILD_SUBREAPER`.
    subreaper: bool,
    lifetimes: VecDeque<u64>,
    hist: Histogram,
    /// Percentiles of `lifetimes`, computed on demand; cleared when a lifetime is added.
    pct: Cell<Option<Option<Percentiles>>>,
}

impl ReaperEntry {
    fn new(proc: Proc) -> Self {
        Self {
            leader_start: proc.is_leader().then_some(proc.start),
            first_start: proc.start,
            proc,
            adopted: 0,
            reaped: 0,
            gone: false,
            subreaper: false,
            lifetimes: VecDeque::new(),
            hist: Histogram::default(),
            pct: Cell::new(None),
        }
    }

    /// Whether the thread `p` belongs to this process (and not to a later one with its pid).
    fn has(&self, p: &Proc) -> bool {
        crate::identity::in_thread_group(p, self.proc.pid, self.leader_start, self.first_start)
    }

    /// Learns a thread of it.
    fn note(&mut self, p: &Proc) {
        self.first_start = self.first_start.min(p.start);
        if p.is_leader() {
            self.leader_start = Some(p.start);
        }
        // Later events know it better (a new name after exec, an exact start time); the
        // main thread names the process. An event that only knew an id (no name) adds nothing.
        let better = (p.is_leader() || !self.proc.is_leader())
            && !p.comm.is_empty()
            && (self.proc.comm != p.comm || self.proc.start != p.start || self.proc.tid != p.tid);
        if better {
            self.proc = p.clone();
        }
    }

    fn percentiles(&self) -> Option<Percentiles> {
        if let Some(p) = self.pct.get() {
            return p;
        }
        let p = Percentiles::of(self.lifetimes.iter().copied());
        self.pct.set(Some(p));
        p
    }
}

/// A reaper as the reapers panel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaperRow<'a> {
    pub proc: &'a Proc,
    /// Orphans it adopted.
    pub adopted: u64,
    /// Zombies it reaped (its own children and adopted ones).
    pub reaped: u64,
    /// Live zombies waiting for it now.
    pub waiting: usize,
    pub lifetimes: Option<Percentiles>,
}

/// What filters rows: a pid namespace, and a name (case-insensitive substring of a process
/// name; all digits also matches that pid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub pidns: Option<u32>,
    pub name: Option<String>,
    /// A container's name, pod name or id prefix (`top --container`).
    pub container: Option<String>,
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.pidns.is_none() && self.name.is_none() && self.container.is_none()
    }

    fn name_matches(&self, p: &Proc) -> bool {
        match &self.name {
            None => true,
            Some(n) => {
                contains_ignore_case(&p.comm, n)
                    || (n.bytes().all(|b| b.is_ascii_digit())
                        && n.parse::<u32>()
                            .is_ok_and(|n| n == p.pid || n == p.tid || n == p.ns_pid))
            }
        }
    }

    /// A row about `subject` (whose pid namespace counts) involving `others` (whose names
    /// count too).
    fn matches(&self, subject: &Proc, others: &[Option<&Proc>]) -> bool {
        if let Some(ns) = self.pidns
            && subject.pidns != ns
            && !others.iter().flatten().any(|o| o.pidns == ns)
        {
            return false;
        }
        self.name.is_none()
            || self.name_matches(subject)
            || others.iter().flatten().any(|o| self.name_matches(o))
    }
}

/// Orders of the adoptions panel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdoptionSort {
    #[default]
    Newest,
    /// Mismatches and unexpected reapers first, then newest.
    Findings,
}

/// Orders of the zombies panel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ZombieSort {
    #[default]
    Oldest,
    Pid,
    /// Grouped by who has to reap them, oldest first within a reaper.
    Reaper,
}

/// Orders of the reapers panel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReaperSort {
    #[default]
    Reaped,
    Adopted,
    /// Most zombies waiting for it now.
    Waiting,
    /// Slowest reapers (p99 of zombie lifetimes) first.
    P99,
    Pid,
}

macro_rules! cycle {
    ($t:ty, [$($v:ident),+], $names:expr) => {
        impl $t {
            const ORDER: &'static [$t] = &[$(<$t>::$v),+];
            pub fn next(self) -> Self {
                let i = Self::ORDER.iter().position(|&s| s == self).unwrap_or(0);
                Self::ORDER[(i + 1) % Self::ORDER.len()]
            }
            pub fn name(self) -> &'static str {
                let i = Self::ORDER.iter().position(|&s| s == self).unwrap_or(0);
                $names[i]
            }
        }
    };
}
cycle!(AdoptionSort, [Newest, Findings], ["newest", "findings"]);
cycle!(
    ZombieSort,
    [Oldest, Pid, Reaper],
    ["oldest", "pid", "reaper"]
);
cycle!(
    ReaperSort,
    [Reaped, Adopted, Waiting, P99, Pid],
    ["reaped", "adopted", "waiting", "p99", "pid"]
);

/// Filters and sort orders: what the user chose, applied when rows are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub filter: Filter,
    pub adoptions: AdoptionSort,
    pub zombies: ZombieSort,
    pub reapers: ReaperSort,
}

/// Events per second over a sliding window, in 100 ms buckets keyed by event time.
#[derive(Debug, Clone)]
struct Rate {
    buckets: [(u64, u32); RATE_BUCKETS],
    first_ts: Option<u64>,
}

impl Rate {
    fn new() -> Self {
        Self {
            buckets: [(0, 0); RATE_BUCKETS],
            first_ts: None,
        }
    }

    fn add(&mut self, ts: u64) {
        let idx = ts / RATE_BUCKET_NS;
        let slot = &mut self.buckets[idx as usize % RATE_BUCKETS];
        if slot.0 != idx {
            if idx < slot.0 {
                return; // older than the window: the slot already holds newer events
            }
            *slot = (idx, 0);
        }
        slot.1 += 1;
        self.first_ts = Some(self.first_ts.map_or(ts, |f| f.min(ts)));
    }

    fn per_sec(&self, now: u64) -> f64 {
        let Some(first) = self.first_ts else {
            return 0.0;
        };
        let now_idx = now / RATE_BUCKET_NS;
        let lo = (now.saturating_sub(RATE_WINDOW_NS) / RATE_BUCKET_NS) + 1;
        let count: u64 = self
            .buckets
            .iter()
            .filter(|(idx, _)| (lo..=now_idx).contains(idx))
            .map(|&(_, n)| n as u64)
            .sum();
        let start = (lo * RATE_BUCKET_NS).max(first);
        let span = now.saturating_sub(start).max(NS_PER_SEC);
        count as f64 * NS_PER_SEC as f64 / span as f64
    }
}

/// Tasks known from the events alone (for replays, where there is no live model): every task
/// an event names is alive until its reap (a process) or its exit (a thread). Bounded: one
/// entry per thread id, and the [`GONE_TASKS_KEPT`] latest gone tasks.
#[derive(Debug, Clone, Default)]
struct TaskTracker {
    /// tid -> (start, alive)
    tasks: HashMap<u32, (u64, bool)>,
    alive: usize,
    /// Gone tasks, oldest first: (tid, start).
    gone: VecDeque<(u32, u64)>,
}

impl TaskTracker {
    fn set(&mut self, p: &Proc, alive: bool) {
        if p.tid == 0 {
            return;
        }
        let was_alive = self
            .tasks
            .insert(p.tid, (p.start, alive))
            .is_some_and(|(_, a)| a);
        self.alive = self.alive + alive as usize - was_alive as usize;
    }

    /// A task named by an event: alive, unless it is one already reported gone.
    fn see(&mut self, p: &Proc) {
        match self.tasks.get(&p.tid) {
            Some(&(start, _)) if crate::identity::same_start(start, p.start) => {}
            _ => self.set(p, true),
        }
    }

    fn gone(&mut self, p: &Proc) {
        if p.tid == 0 {
            return;
        }
        self.set(p, false);
        self.gone.push_back((p.tid, p.start));
        if self.gone.len() > GONE_TASKS_KEPT
            && let Some((tid, start)) = self.gone.pop_front()
            && self.tasks.get(&tid) == Some(&(start, false))
        {
            self.tasks.remove(&tid);
        }
    }
}

/// Where the tracked-task count comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// The live model's count (every task on the machine).
    Live(usize),
    /// Derived from the events (a replay): the tasks they named that are still alive.
    FromEvents(usize),
}

#[derive(Debug, Clone)]
pub struct View {
    /// A zombie older than this is highlighted.
    pub zombie_threshold_ns: u64,
    now: u64,
    generation: u64,
    rate: Rate,
    /// The facts `/metrics` and `doctor` read too.
    state: State,
    adoptions: VecDeque<Adoption>,
    reapers: Vec<ReaperEntry>,
    /// pid -> index in `reapers` of its latest entry.
    reaper_index: HashMap<u32, usize>,
    pidns_seen: BTreeSet<u32>,
    tasks: TaskTracker,
    live_tasks: Option<usize>,
}

impl View {
    pub fn new(zombie_threshold_ns: u64) -> Self {
        Self {
            zombie_threshold_ns,
            now: 0,
            generation: 0,
            rate: Rate::new(),
            state: State::new(),
            adoptions: VecDeque::new(),
            reapers: Vec::new(),
            reaper_index: HashMap::new(),
            pidns_seen: BTreeSet::new(),
            tasks: TaskTracker::default(),
            live_tasks: None,
        }
    }

    /// The derived facts (zombies, subreapers, containers, counts) behind this view.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Sets the clock (`CLOCK_BOOTTIME` ns): zombie ages and the event rate are relative to it.
    pub fn set_clock(&mut self, now: u64) {
        self.now = now;
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    /// Changes whenever an event is applied: whether there is something new to draw.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The live model's task count; without it, the count is derived from the events.
    pub fn set_live_tasks(&mut self, n: usize) {
        self.live_tasks = Some(n);
    }

    fn note_ns(&mut self, p: &Proc) {
        if p.pidns != 0 {
            self.pidns_seen.insert(p.pidns);
        }
    }

    fn reaper_index(&self, p: &Proc) -> Option<usize> {
        self.reaper_index
            .get(&p.pid)
            .copied()
            .filter(|&i| self.reapers[i].has(p))
    }

    fn reaper_entry(&mut self, p: &Proc) -> &mut ReaperEntry {
        let i = match self.reaper_index(p) {
            Some(i) => i,
            None => {
                if self.reapers.len() >= REAPERS_KEPT + REAPERS_SLACK {
                    self.forget_reapers();
                }
                self.reapers.push(ReaperEntry::new(p.clone()));
                let i = self.reapers.len() - 1;
                // The index names the latest process with that pid; a late event about an
                // older one gets an entry of its own.
                let older = self
                    .reaper_index
                    .get(&p.pid)
                    .is_some_and(|&j| self.reapers[j].first_start > p.start);
                if !older {
                    self.reaper_index.insert(p.pid, i);
                }
                i
            }
        };
        let e = &mut self.reapers[i];
        e.note(p);
        e
    }

    /// Keeps the [`REAPERS_KEPT`] reapers that tell most: live ones before reaped ones, then
    /// those that adopted and reaped most, then the latest started; in the order they came.
    fn forget_reapers(&mut self) {
        let mut order: Vec<usize> = (0..self.reapers.len()).collect();
        order.sort_by_key(|&i| {
            let e = &self.reapers[i];
            (
                e.gone,
                std::cmp::Reverse(e.adopted + e.reaped),
                std::cmp::Reverse(e.first_start),
            )
        });
        let mut keep = vec![false; self.reapers.len()];
        for &i in order.iter().take(REAPERS_KEPT) {
            keep[i] = true;
        }
        let mut kept = keep.iter();
        self.reapers
            .retain(|_| *kept.next().expect("one flag per entry"));
        // The index names each pid's latest process, as `reaper_entry` keeps it.
        self.reaper_index.clear();
        for (i, e) in self.reapers.iter().enumerate() {
            let later = self
                .reaper_index
                .get(&e.proc.pid)
                .is_some_and(|&j| self.reapers[j].first_start > e.first_start);
            if !later {
                self.reaper_index.insert(e.proc.pid, i);
            }
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, ev: &Event) {
        self.generation += 1;
        self.rate.add(ev.ts());
        let effect = self.state.apply(ev);
        match ev {
            Event::Fork { parent, child, .. } => {
                self.note_ns(child);
                self.tasks.see(parent);
                self.tasks.see(child);
            }
            Event::Exec { task, .. } => {
                self.note_ns(task);
                self.tasks.see(task);
            }
            Event::Subreaper { task, enabled, .. } => {
                self.note_ns(task);
                self.tasks.see(task);
                if *enabled {
                    self.reaper_entry(task).subreaper = true;
                }
            }
            Event::Exit {
                task,
                thread,
                parent,
                ..
            } => {
                if *thread {
                    self.tasks.gone(task); // a thread is released as it exits
                } else {
                    self.tasks.see(task);
                }
                if let Some(p) = parent {
                    self.tasks.see(p);
                }
            }
            Event::Reparent {
                ts,
                orphan,
                father,
                reaper,
                kind,
                predicted,
                verdict,
                zombie,
                ..
            } => {
                self.note_ns(orphan);
                if let Some(r) = reaper {
                    self.tasks.see(r);
                    let e = self.reaper_entry(r);
                    e.adopted += 1;
                    e.subreaper |= *kind == Some(ReaperKind::Subreaper);
                }
                if self.adoptions.len() == ADOPTIONS_KEPT {
                    self.adoptions.pop_front();
                }
                self.adoptions.push_back(Adoption {
                    ts: *ts,
                    orphan: orphan.clone(),
                    father: father.clone(),
                    reaper: reaper.clone(),
                    kind: *kind,
                    predicted: predicted.clone(),
                    verdict: *verdict,
                    zombie: *zombie,
                });
            }
            Event::Zombie { task, parent, .. } => {
                self.note_ns(task);
                self.tasks.see(task);
                self.tasks.see(parent);
            }
            Event::Reap { task, how, .. } => {
                self.tasks.gone(task);
                if task.is_leader()
                    && let Some(i) = self.reaper_index(task)
                {
                    self.reapers[i].gone = true;
                }
                let reaped = effect.reaped.expect("a reap's effect");
                if let Some(r) = reaped.reaper {
                    if *how != ReapHow::Vanished {
                        self.tasks.see(&r);
                    }
                    let e = self.reaper_entry(&r);
                    e.reaped += 1;
                    if let Some(ns) = reaped.lifetime_ns {
                        e.hist.add(ns);
                        if e.lifetimes.len() == LIFETIMES_KEPT {
                            e.lifetimes.pop_front();
                        }
                        e.lifetimes.push_back(ns);
                        e.pct.set(None);
                    }
                }
            }
            Event::Lost { .. } => {}
            Event::Container { pidns, .. } => {
                self.pidns_seen.insert(*pidns);
            }
        }
    }

    /// The container of a pid namespace, when a `container` event named it.
    pub fn container(&self, pidns: u32) -> Option<&ContainerInfo> {
        self.state.container(pidns)
    }

    /// How a pid namespace is shown: `host` for the initial one (and the host's), the
    /// container's name (or runtime and short id) when known, else the namespace's inode.
    /// Untrusted text: escape it before a terminal.
    pub fn container_label(&self, pidns: u32) -> String {
        match (pidns, self.state.container(pidns)) {
            (_, Some(info)) => info.label(pidns),
            (ROOT_PIDNS, None) => "host".into(),
            (0, None) => "?".into(),
            (n, None) => n.to_string(),
        }
    }

    /// Whether a row about `subject` involving `others` passes `f`.
    fn passes(&self, f: &Filter, subject: &Proc, others: &[Option<&Proc>]) -> bool {
        f.matches(subject, others)
            && f.container.as_deref().is_none_or(|c| {
                std::iter::once(subject)
                    .chain(others.iter().flatten().copied())
                    .any(|p| self.state.container(p.pidns).is_some_and(|i| i.matches(c)))
            })
    }

    // ---- header figures (unfiltered) ----

    pub fn events(&self) -> u64 {
        self.state.events()
    }

    pub fn events_per_sec(&self) -> f64 {
        self.rate.per_sec(self.now)
    }

    pub fn tracked(&self) -> Tracked {
        match self.live_tasks {
            Some(n) => Tracked::Live(n),
            None => Tracked::FromEvents(self.tasks.alive),
        }
    }

    pub fn zombie_count(&self) -> usize {
        self.state.zombie_count()
    }

    /// Live zombies older than the threshold.
    pub fn zombies_over_threshold(&self) -> usize {
        self.state
            .zombies()
            .filter(|z| self.over_threshold(z))
            .count()
    }

    pub fn over_threshold(&self, z: &Zombie) -> bool {
        z.age(self.now) > self.zombie_threshold_ns
    }

    /// Adoptions so far, by kind (in `ReaperKind::ALL` order).
    pub fn adoptions_by_kind(&self) -> [(ReaperKind, u64); 4] {
        ReaperKind::ALL.map(|k| (k, self.state.adoptions_of_kind(Some(k))))
    }

    pub fn adoptions_total(&self) -> u64 {
        self.state.adoptions_total()
    }

    /// Adoptions whose new parent could not be read (released while being adopted).
    pub fn unobserved(&self) -> u64 {
        self.state.adoptions_of_kind(None)
    }

    /// Reparent events with verdict `mismatch`.
    pub fn mismatches(&self) -> u64 {
        self.state.mismatches()
    }

    /// Records lost (dropped by the ring buffer, or children not followed), in total.
    pub fn lost(&self) -> u64 {
        self.state.lost()
    }

    pub fn lost_by(&self) -> &BTreeMap<String, u64> {
        self.state.lost_by()
    }

    pub fn reaps(&self) -> u64 {
        self.state.reaps_total()
    }

    /// Pid namespaces seen so far (for the namespace filter).
    pub fn pid_namespaces(&self) -> impl Iterator<Item = u32> + '_ {
        self.pidns_seen.iter().copied()
    }

    // ---- panels (filtered and sorted by the query) ----

    pub fn adoptions(&self, q: &Query) -> Vec<&Adoption> {
        let mut rows: Vec<&Adoption> = self
            .adoptions
            .iter()
            .rev()
            .filter(|a| self.passes(&q.filter, &a.orphan, &[Some(&a.father), a.reaper.as_ref()]))
            .collect();
        if q.adoptions == AdoptionSort::Findings {
            rows.sort_by_key(|a| !a.is_finding()); // stable: newest first within each
        }
        rows
    }

    pub fn zombies(&self, q: &Query) -> Vec<&Zombie> {
        let mut rows: Vec<&Zombie> = self
            .state
            .zombies()
            .filter(|z| self.passes(&q.filter, &z.task, &[z.reaper.as_ref()]))
            .collect();
        // Oldest first: a zombie first seen already dead is older than its `since`.
        let age_key = |z: &Zombie| (z.since_known, z.since, z.task.tid);
        match q.zombies {
            ZombieSort::Oldest => rows.sort_by_key(|z| age_key(z)),
            ZombieSort::Pid => rows.sort_by_key(|z| (z.task.pid, z.task.tid)),
            ZombieSort::Reaper => {
                rows.sort_by_key(|z| (z.reaper.as_ref().map(|r| r.pid), age_key(z)))
            }
        }
        rows
    }

    pub fn reapers(&self, q: &Query) -> Vec<ReaperRow<'_>> {
        let mut waiting = vec![0usize; self.reapers.len()];
        for z in self.state.zombies() {
            if let Some(i) = z.reaper.as_ref().and_then(|r| self.reaper_index(r)) {
                waiting[i] += 1;
            }
        }
        let mut rows: Vec<ReaperRow> = self
            .reapers
            .iter()
            .zip(waiting)
            .filter(|(e, _)| self.passes(&q.filter, &e.proc, &[]))
            .map(|(e, waiting)| ReaperRow {
                proc: &e.proc,
                adopted: e.adopted,
                reaped: e.reaped,
                waiting,
                lifetimes: e.percentiles(),
            })
            .collect();
        let pid = |r: &ReaperRow| (r.proc.pid, r.proc.tid, r.proc.start);
        match q.reapers {
            ReaperSort::Reaped => rows.sort_by(|a, b| {
                (b.reaped, b.adopted)
                    .cmp(&(a.reaped, a.adopted))
                    .then(pid(a).cmp(&pid(b)))
            }),
            ReaperSort::Adopted => rows.sort_by(|a, b| {
                (b.adopted, b.reaped)
                    .cmp(&(a.adopted, a.reaped))
                    .then(pid(a).cmp(&pid(b)))
            }),
            ReaperSort::Waiting => rows.sort_by(|a, b| {
                (b.waiting, b.reaped)
                    .cmp(&(a.waiting, a.reaped))
                    .then(pid(a).cmp(&pid(b)))
            }),
            ReaperSort::P99 => rows.sort_by(|a, b| {
                let p = |r: &ReaperRow| r.lifetimes.map(|l| l.p99);
                p(b).cmp(&p(a)).then(pid(a).cmp(&pid(b)))
            }),
            ReaperSort::Pid => rows.sort_by_key(pid),
        }
        rows
    }

    /// Zombie lifetimes on a log scale. Filtered: the lifetimes of the children of the
    /// reapers the filter keeps.
    pub fn histogram(&self, q: &Query) -> Histogram {
        if q.filter.is_empty() {
            return *self.state.lifetimes();
        }
        let mut h = Histogram::default();
        for e in self
            .reapers
            .iter()
            .filter(|e| self.passes(&q.filter, &e.proc, &[]))
        {
            h.merge(&e.hist);
        }
        h
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::ExitStatus;

    pub const MS: u64 = 1_000_000;
    pub const S: u64 = NS_PER_SEC;

    pub fn p(pid: u32, start: u64, comm: &str) -> Proc {
        Proc {
            pid,
            tid: pid,
            ns_pid: pid,
            ns_tid: pid,
            pidns: ROOT_PIDNS,
            start,
            comm: comm.into(),
        }
    }

    pub fn in_ns(mut proc: Proc, pidns: u32, ns_pid: u32) -> Proc {
        proc.pidns = pidns;
        proc.ns_pid = ns_pid;
        proc.ns_tid = ns_pid;
        proc
    }

    pub fn zombie(ts: u64, task: &Proc, parent: &Proc) -> Event {
        Event::Zombie {
            ts,
            task: task.clone(),
            parent: parent.clone(),
            status: ExitStatus::from_wait_status(0),
            autoreaped: false,
            before_trace: false,
        }
    }

    pub fn reap(ts: u64, task: &Proc, reaper: &Proc, zombie_ns: Option<u64>) -> Event {
        Event::Reap {
            ts,
            task: task.clone(),
            reaper: Some(reaper.clone()),
            how: ReapHow::Wait4,
            zombie_ns,
        }
    }

    pub fn reparent(
        ts: u64,
        orphan: &Proc,
        father: &Proc,
        reaper: &Proc,
        kind: ReaperKind,
    ) -> Event {
        Event::Reparent {
            ts,
            orphan: orphan.clone(),
            father: father.clone(),
            reaper: Some(reaper.clone()),
            kind: Some(kind),
            predicted: Some(Prediction {
                tid: reaper.tid,
                pid: reaper.pid,
                kind,
            }),
            verdict: Verdict::Match,
            reason: None,
            zombie: false,
            late: false,
        }
    }

    fn fork(ts: u64, parent: &Proc, child: &Proc) -> Event {
        Event::Fork {
            ts,
            parent: parent.clone(),
            child: child.clone(),
            thread: false,
            late: false,
            caller: None,
        }
    }

    fn q() -> Query {
        Query::default()
    }

    #[test]
    fn zombies_age_with_the_clock() {
        let mut v = View::new(5 * S);
        let (sh, child) = (p(100, 1, "sh"), p(101, 2, "sleep"));
        v.apply(&zombie(10 * S, &child, &sh));
        v.set_clock(12 * S);
        let zs = v.zombies(&q());
        assert_eq!(zs.len(), 1);
        assert_eq!(zs[0].age(v.now()), 2 * S);
        assert_eq!(zs[0].reaper.as_ref().unwrap().pid, 100);
        assert_eq!(v.zombies_over_threshold(), 0);
        v.set_clock(16 * S);
        assert_eq!(v.zombies(&q())[0].age(v.now()), 6 * S);
        assert!(v.over_threshold(v.zombies(&q())[0]));
        assert_eq!(v.zombies_over_threshold(), 1);
        v.apply(&reap(17 * S, &child, &sh, Some(7 * S)));
        assert_eq!(v.zombie_count(), 0);
        assert_eq!(v.zombies_over_threshold(), 0);
    }

    #[test]
    fn oldest_zombie_first_and_unknown_birth_before_known() {
        let mut v = View::new(S);
        let sh = p(100, 1, "sh");
        let (a, b, c) = (p(101, 2, "a"), p(102, 3, "b"), p(103, 4, "c"));
        v.apply(&zombie(20 * S, &b, &sh));
        v.apply(&zombie(10 * S, &a, &sh));
        // c was a zombie before tracing: only its adoption shows it.
        let mut ev = reparent(30 * S, &c, &p(99, 0, "dead"), &sh, ReaperKind::Subreaper);
        if let Event::Reparent { zombie, .. } = &mut ev {
            *zombie = true;
        }
        v.apply(&ev);
        let order: Vec<u32> = v.zombies(&q()).iter().map(|z| z.task.pid).collect();
        assert_eq!(order, [103, 101, 102]);
        let by_pid = Query {
            zombies: ZombieSort::Pid,
            ..q()
        };
        let order: Vec<u32> = v.zombies(&by_pid).iter().map(|z| z.task.pid).collect();
        assert_eq!(order, [101, 102, 103]);
    }

    #[test]
    fn reparent_of_a_zombie_changes_who_must_reap_it() {
        let mut v = View::new(S);
        let (father, child, init) = (p(200, 1, "father"), p(201, 2, "child"), p(1, 0, "init"));
        v.apply(&zombie(S, &child, &father));
        assert_eq!(v.zombies(&q())[0].reaper.as_ref().unwrap().pid, 200);
        let mut ev = reparent(2 * S, &child, &father, &init, ReaperKind::Init);
        if let Event::Reparent { zombie, .. } = &mut ev {
            *zombie = true;
        }
        v.apply(&ev);
        let zs = v.zombies(&q());
        assert_eq!(zs[0].reaper.as_ref().unwrap().pid, 1);
        // Its age still counts from when it died.
        assert!(zs[0].since_known);
        assert_eq!(zs[0].since, S);
        let rows = v.reapers(&q());
        let init_row = rows.iter().find(|r| r.proc.pid == 1).unwrap();
        assert_eq!((init_row.adopted, init_row.waiting), (1, 1));
        // Reaped by init, the lifetime is init's.
        v.apply(&reap(3 * S, &child, &init, Some(2 * S)));
        assert_eq!(v.zombie_count(), 0);
        let rows = v.reapers(&q());
        let init_row = rows.iter().find(|r| r.proc.pid == 1).unwrap();
        assert_eq!((init_row.reaped, init_row.waiting), (1, 0));
        assert_eq!(init_row.lifetimes.unwrap().median, 2 * S);
        assert_eq!(v.adoptions_by_kind()[2], (ReaperKind::Init, 1));
    }

    #[test]
    fn pid_reuse_makes_a_different_zombie() {
        let mut v = View::new(S);
        let sh = p(100, 1, "sh");
        let old = p(300, 10 * S, "old");
        let new = p(300, 50 * S, "new");
        v.apply(&zombie(11 * S, &old, &sh));
        // The old zombie's reap was lost; pid 300 is reused and dies too.
        v.apply(&zombie(51 * S, &new, &sh));
        v.set_clock(52 * S);
        let zs = v.zombies(&q());
        assert_eq!(zs.len(), 1);
        assert_eq!(zs[0].task.comm, "new");
        assert_eq!(zs[0].age(v.now()), S);
        // A late reap of the old task does not reap the new one.
        v.apply(&Event::Reap {
            ts: 52 * S,
            task: old.clone(),
            reaper: Some(sh.clone()),
            how: ReapHow::Vanished,
            zombie_ns: Some(41 * S),
        });
        assert_eq!(v.zombie_count(), 1);
        assert_eq!(v.zombies(&q())[0].task.start, 50 * S);
        v.apply(&reap(53 * S, &new, &sh, Some(2 * S)));
        assert_eq!(v.zombie_count(), 0);
        // Reapers are told apart the same way: a new sh with the same pid is another reaper.
        let sh2 = p(100, 60 * S, "sh");
        v.apply(&reap(61 * S, &p(400, 1, "x"), &sh2, Some(MS)));
        let rows = v.reapers(&Query {
            reapers: ReaperSort::Pid,
            ..q()
        });
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].reaped, rows[1].reaped), (2, 1));
    }

    #[test]
    fn a_proc_start_time_matches_within_a_tick() {
        let mut v = View::new(S);
        // pid 1 known from /proc: start rounded down to a 10 ms tick.
        let init_approx = p(1, 120 * MS, "init");
        let init_exact = p(1, 123_456_789, "init");
        v.apply(&reparent(
            S,
            &p(5, 1, "o"),
            &p(4, 1, "f"),
            &init_approx,
            ReaperKind::Init,
        ));
        v.apply(&reap(2 * S, &p(5, 1, "o"), &init_exact, Some(MS)));
        let rows = v.reapers(&q());
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].adopted, rows[0].reaped), (1, 1));
        assert_eq!(rows[0].proc.start, 123_456_789);
    }

    #[test]
    fn a_reapers_threads_add_up() {
        let mut v = View::new(S);
        let main = p(500, 10 * S, "server");
        let mut worker = p(500, 11 * S, "tokio-rt-w");
        worker.tid = 503;
        // A thread reaps first; the main thread names the process once seen.
        v.apply(&reap(20 * S, &p(600, 1, "c"), &worker, Some(MS)));
        v.apply(&reparent(
            21 * S,
            &p(601, 1, "o"),
            &p(599, 1, "f"),
            &main,
            ReaperKind::Subreaper,
        ));
        v.apply(&reap(22 * S, &p(601, 1, "o"), &main, Some(2 * MS)));
        v.apply(&zombie(23 * S, &p(602, 1, "z"), &worker));
        let rows = v.reapers(&q());
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.proc.tid, r.proc.comm.as_str()), (500, "server"));
        assert_eq!((r.adopted, r.reaped, r.waiting), (1, 2, 1));
        // A thread that started before the main thread is of another process (pid reuse).
        let mut old_thread = p(500, 5 * S, "old");
        old_thread.tid = 501;
        v.apply(&reap(24 * S, &p(603, 1, "c"), &old_thread, Some(MS)));
        assert_eq!(v.reapers(&q()).len(), 2);
        // ... and the server's later events still go to the server.
        v.apply(&reap(25 * S, &p(604, 1, "c"), &worker, Some(MS)));
        let rows = v.reapers(&q());
        let reaped: Vec<(&str, u64)> = rows
            .iter()
            .map(|r| (r.proc.comm.as_str(), r.reaped))
            .collect();
        assert_eq!(reaped, [("server", 3), ("old", 1)]);
    }

    #[test]
    fn zombies_from_before_the_events() {
        let mut v = View::new(S);
        let (z, parent) = (p(70, 1, "old"), p(69, 1, "lazy"));
        v.apply(&Event::Zombie {
            ts: 100 * S,
            task: z.clone(),
            parent: parent.clone(),
            status: ExitStatus::UNKNOWN,
            autoreaped: false,
            before_trace: true,
        });
        v.set_clock(103 * S);
        let zs = v.zombies(&q());
        assert_eq!(
            (zs.len(), zs[0].since_known, zs[0].age(v.now())),
            (1, false, 3 * S)
        );
        assert_eq!(zs[0].reaper.as_ref().unwrap().comm, "lazy");
        // Its reap says how long it lived, if it knows; else it is not timed.
        v.apply(&reap(104 * S, &z, &parent, None));
        assert_eq!((v.zombie_count(), v.histogram(&q()).total()), (0, 0));
        assert_eq!(v.reapers(&q())[0].reaped, 1);
    }

    #[test]
    fn per_reaper_median_and_p99() {
        let mut v = View::new(S);
        let shim = p(50, 1, "shim");
        for i in 1..=100u64 {
            let c = p(1000 + i as u32, i, "c");
            v.apply(&zombie(i * S, &c, &shim));
            v.apply(&reap(i * S + i * MS, &c, &shim, Some(i * MS)));
        }
        let other = p(60, 1, "other");
        v.apply(&reap(200 * S, &p(2000, 1, "d"), &other, Some(5 * S)));
        let rows = v.reapers(&q());
        assert_eq!(rows[0].proc.comm, "shim");
        let l = rows[0].lifetimes.unwrap();
        assert_eq!((l.median, l.p99, l.samples), (50 * MS, 99 * MS, 100));
        assert_eq!(rows[0].reaped, 100);
        let by_p99 = v.reapers(&Query {
            reapers: ReaperSort::P99,
            ..q()
        });
        assert_eq!(by_p99[0].proc.comm, "other");
        assert_eq!(by_p99[0].lifetimes.unwrap().p99, 5 * S);

        assert_eq!(Percentiles::of([]), None);
        let one = Percentiles::of([7]).unwrap();
        assert_eq!((one.median, one.p99), (7, 7));
        let four = Percentiles::of([4, 1, 3, 2]).unwrap();
        assert_eq!((four.median, four.p99), (2, 4));
    }

    #[test]
    fn lifetimes_kept_are_bounded() {
        let mut v = View::new(S);
        let r = p(50, 1, "r");
        for i in 0..(LIFETIMES_KEPT as u64 + 10) {
            v.apply(&reap(i, &p(100 + i as u32, 1, "c"), &r, Some(i)));
        }
        let rows = v.reapers(&q());
        assert_eq!(rows[0].reaped, LIFETIMES_KEPT as u64 + 10);
        assert_eq!(rows[0].lifetimes.unwrap().samples, LIFETIMES_KEPT);
        assert_eq!(v.histogram(&q()).total(), LIFETIMES_KEPT as u64 + 10);
    }

    /// An endless stream: short-lived parents fork, exec and exit; their children become
    /// zombies, are reparented to a subreaper or init and reaped; pids are reused (the pid
    /// space is smaller than the number of processes), some records are lost.
    #[test]
    fn an_endless_stream_stays_bounded() {
        let mut v = View::new(S);
        let init = p(1, 0, "init");
        let sub = p(2, 0, "subreaper");
        const PIDS: u32 = 100_000;
        let rounds: u64 = 3 * GONE_TASKS_KEPT as u64;
        let mut ts = 0;
        for i in 0..rounds {
            let pid = 10 + (2 * i as u32) % PIDS;
            let start = i * MS;
            let parent = p(pid, start, "sh");
            let child = p(pid + 1, start + 1, "job");
            let mut tick = || {
                ts += 1_000;
                ts
            };
            v.apply(&fork(tick(), &init, &parent));
            v.apply(&fork(tick(), &parent, &child));
            v.apply(&Event::Exec {
                ts: tick(),
                task: child.clone(),
                filename: "/bin/job".into(),
                args: vec!["job".into()],
                args_truncated: false,
            });
            v.apply(&zombie(tick(), &child, &parent));
            if i % 3 == 0 {
                // The parent dies first: its zombie child goes to the subreaper.
                v.apply(&zombie(tick(), &parent, &init));
                v.apply(&reparent(
                    tick(),
                    &child,
                    &parent,
                    &sub,
                    ReaperKind::Subreaper,
                ));
                v.apply(&reap(tick(), &parent, &init, Some(1_000)));
                if i % 1000 != 0 {
                    // Now and then the child's reap is lost: its pid's reuse ends it.
                    v.apply(&reap(tick(), &child, &sub, Some(2_000)));
                }
            } else {
                v.apply(&reap(tick(), &child, &parent, Some(3_000)));
                v.apply(&zombie(tick(), &parent, &init));
                v.apply(&reap(tick(), &parent, &init, Some(4_000)));
            }
            if i % 10 == 0 {
                v.apply(&Event::Lost {
                    ts: tick(),
                    what: format!("kind-{i}"),
                    count: 1,
                });
            }
        }
        // Every reaped child and parent reaped, none left over but the lost ones' last
        // round (each pid's zombie is dropped when its pid comes back).
        assert!(
            v.zombie_count() <= (PIDS as usize / 2) / 1000 + 1,
            "{}",
            v.zombie_count()
        );
        assert!(v.adoptions.len() <= ADOPTIONS_KEPT);
        // Every parent reaped something: only the kept ones remain, init and the
        // subreaper (which reap most) among them.
        assert!(
            v.reapers.len() <= REAPERS_KEPT + REAPERS_SLACK,
            "{}",
            v.reapers.len()
        );
        assert!(v.reapers.len() >= REAPERS_KEPT);
        let rows = v.reapers(&q());
        let reaped_by = |r: &Proc| {
            rows.iter()
                .find(|row| row.proc.same_task(r))
                .map(|row| row.reaped)
        };
        let thirds = rounds.div_ceil(3);
        assert_eq!(reaped_by(&init), Some(rounds));
        assert_eq!(reaped_by(&sub), Some(thirds - rounds.div_ceil(3000)));
        assert!(v.reaper_index.len() <= v.reapers.len());
        assert!(v.reaper_index.values().all(|&i| i < v.reapers.len()));
        // Reaped tasks are forgotten past the kept ones; the live are init and the subreaper.
        assert!(
            v.tasks.tasks.len() <= GONE_TASKS_KEPT + 2 + (PIDS as usize / 1000),
            "{}",
            v.tasks.tasks.len()
        );
        assert_eq!(v.tracked(), Tracked::FromEvents(2 + v.zombie_count()));
        // Lost records by kind: the first kinds, then the rest together.
        assert_eq!(v.lost_by().len(), crate::state::LOST_KINDS_KEPT + 1);
        assert_eq!(v.lost(), rounds.div_ceil(10));
        assert_eq!(v.lost_by().values().sum::<u64>(), v.lost());
    }

    #[test]
    fn forgotten_reapers_are_the_reaped_and_least_busy() {
        let mut v = View::new(S);
        let busy = p(5, 1, "busy");
        for i in 0..10 {
            v.apply(&reap(i, &p(900_000 + i as u32, 1, "c"), &busy, Some(1)));
        }
        let reaped_early = p(6, 1, "early");
        v.apply(&reap(20, &p(800_000, 1, "c"), &reaped_early, Some(1)));
        v.apply(&reap(21, &reaped_early, &p(1, 0, "init"), Some(1)));
        for i in 0..(REAPERS_KEPT + REAPERS_SLACK) as u32 {
            v.apply(&reap(
                100 + i as u64,
                &p(700_000 + i, 1, "c"),
                &p(10_000 + i, 1, "r"),
                Some(1),
            ));
        }
        let rows = v.reapers(&q());
        assert!(rows.len() <= REAPERS_KEPT + REAPERS_SLACK);
        let has = |r: &Proc| rows.iter().any(|row| row.proc.same_task(r));
        // The busiest stays; the reaped one goes first, though it reaped as much as the rest.
        assert!(has(&busy));
        assert!(!has(&reaped_early));
        // Still counted where it adds up (the histogram is of every reap).
        assert_eq!(v.reaps(), 12 + (REAPERS_KEPT + REAPERS_SLACK) as u64);
        // The index still finds the kept ones.
        v.apply(&reap(10_000, &p(600_000, 1, "c"), &busy, Some(1)));
        let rows = v.reapers(&q());
        let busy_row = rows.iter().find(|row| row.proc.same_task(&busy)).unwrap();
        assert_eq!(busy_row.reaped, 11);
    }

    #[test]
    fn histogram_buckets_are_decades() {
        assert_eq!(Histogram::bucket(0), 0);
        assert_eq!(Histogram::bucket(9_999), 0);
        assert_eq!(Histogram::bucket(10_000), 1);
        assert_eq!(Histogram::bucket(99_999), 1);
        assert_eq!(Histogram::bucket(MS), 3);
        assert_eq!(Histogram::bucket(999 * MS), 5);
        assert_eq!(Histogram::bucket(S), 6);
        assert_eq!(Histogram::bucket(99 * S), 7);
        assert_eq!(Histogram::bucket(100 * S), 8);
        assert_eq!(Histogram::bucket(u64::MAX), 8);

        let mut v = View::new(S);
        let sh = p(1, 1, "sh");
        for (i, ns) in [0, 50_000, 2 * MS, 3 * MS, 2 * S].iter().enumerate() {
            v.apply(&reap(S, &p(10 + i as u32, 1, "c"), &sh, Some(*ns)));
        }
        // No lifetime known (a zombie from before tracing): counted as a reap, not binned.
        v.apply(&reap(S, &p(20, 1, "c"), &sh, None));
        assert_eq!(v.histogram(&q()).counts, [1, 1, 0, 2, 0, 0, 1, 0, 0]);
        assert_eq!(v.reaps(), 6);
    }

    #[test]
    fn filters_by_namespace_and_name() {
        let mut v = View::new(S);
        let ns = 4026532177;
        let init = in_ns(p(500, 1, "sleep"), ns, 1);
        let father = in_ns(p(501, 2, "bash"), ns, 2);
        let orphan = in_ns(p(502, 3, "worker"), ns, 3);
        let host_sh = p(100, 1, "zsh");
        v.apply(&reparent(S, &orphan, &father, &init, ReaperKind::Init));
        v.apply(&zombie(2 * S, &orphan, &init));
        v.apply(&zombie(2 * S, &p(101, 5, "Zed"), &host_sh));
        v.apply(&reap(3 * S, &p(102, 6, "x"), &host_sh, Some(MS)));

        let f = |pidns: Option<u32>, name: Option<&str>| Query {
            filter: Filter {
                pidns,
                name: name.map(str::to_string),
                container: None,
            },
            ..q()
        };
        assert_eq!(v.zombies(&q()).len(), 2);
        let in_container = f(Some(ns), None);
        assert_eq!(v.zombies(&in_container).len(), 1);
        assert_eq!(v.zombies(&in_container)[0].task.pid, 502);
        assert_eq!(v.adoptions(&in_container).len(), 1);
        assert_eq!(v.reapers(&in_container).len(), 1);
        assert_eq!(v.histogram(&in_container).total(), 0);
        assert_eq!(v.histogram(&f(None, Some("ZSH"))).total(), 1);
        // Names match case-insensitively, on the zombie or on who must reap it.
        assert_eq!(v.zombies(&f(None, Some("zed"))).len(), 1);
        assert_eq!(v.zombies(&f(None, Some("SLEEP")))[0].task.pid, 502);
        // Digits match a pid too (global or namespace-local).
        assert_eq!(v.zombies(&f(None, Some("101")))[0].task.pid, 101);
        assert_eq!(v.zombies(&f(None, Some("100")))[0].task.pid, 101);
        assert_eq!(v.adoptions(&f(None, Some("bash"))).len(), 1);
        assert_eq!(v.adoptions(&f(None, Some("nomatch"))).len(), 0);
        assert_eq!(v.zombies(&f(Some(ns), Some("zed"))).len(), 0);
        assert_eq!(v.pid_namespaces().collect::<Vec<_>>(), [ROOT_PIDNS, ns]);
    }

    #[test]
    fn header_counts() {
        let mut v = View::new(S);
        let (a, b, c) = (p(1, 1, "init"), p(2, 2, "f"), p(3, 3, "o"));
        v.apply(&reparent(S, &c, &b, &a, ReaperKind::Init));
        v.apply(&reparent(S, &c, &b, &a, ReaperKind::Subreaper));
        let mut mismatch = reparent(S, &c, &b, &a, ReaperKind::Unexpected);
        if let Event::Reparent { verdict, .. } = &mut mismatch {
            *verdict = Verdict::Mismatch;
        }
        v.apply(&mismatch);
        v.apply(&Event::Reparent {
            ts: S,
            orphan: c.clone(),
            father: b.clone(),
            reaper: None,
            kind: None,
            predicted: None,
            verdict: Verdict::Unobserved,
            reason: None,
            zombie: true,
            late: false,
        });
        v.apply(&Event::Lost {
            ts: S,
            what: "fork".into(),
            count: 7,
        });
        v.apply(&Event::Lost {
            ts: S,
            what: "exit".into(),
            count: 2,
        });
        let kinds: Vec<u64> = v.adoptions_by_kind().iter().map(|(_, n)| *n).collect();
        assert_eq!(kinds, [0, 1, 1, 1]);
        assert_eq!(v.unobserved(), 1);
        assert_eq!(v.adoptions_total(), 4);
        assert_eq!(v.mismatches(), 1);
        assert_eq!(v.lost(), 9);
        assert_eq!(v.lost_by()["fork"], 7);
        assert_eq!(v.events(), 6);
        // Newest first; findings first on request.
        assert_eq!(v.adoptions(&q())[0].verdict, Verdict::Unobserved);
        let findings = Query {
            adoptions: AdoptionSort::Findings,
            ..q()
        };
        assert_eq!(v.adoptions(&findings)[0].verdict, Verdict::Mismatch);
    }

    #[test]
    fn events_per_second_over_a_sliding_window() {
        let mut v = View::new(S);
        let t0 = 1000 * S;
        // 10 s at 200 events/s.
        for i in 0..2000u64 {
            v.apply(&Event::Lost {
                ts: t0 + i * 5 * MS,
                what: "x".into(),
                count: 0,
            });
        }
        v.set_clock(t0 + 10 * S);
        let r = v.events_per_sec();
        assert!((r - 200.0).abs() < 10.0, "{r}");
        // Nothing for 3 s: the window still holds 2 s worth.
        v.set_clock(t0 + 13 * S);
        let r = v.events_per_sec();
        assert!((r - 80.0).abs() < 10.0, "{r}");
        v.set_clock(t0 + 30 * S);
        assert_eq!(v.events_per_sec(), 0.0);
        // Just started: divided by at least a second, not by the few ms elapsed.
        let mut v = View::new(S);
        for i in 0..10 {
            v.apply(&Event::Lost {
                ts: t0 + i,
                what: "x".into(),
                count: 0,
            });
        }
        v.set_clock(t0 + 10 * MS);
        assert_eq!(v.events_per_sec(), 10.0);
    }

    #[test]
    fn tracked_tasks_from_events_or_from_the_model() {
        let mut v = View::new(S);
        let (sh, c1, c2) = (p(10, 1, "sh"), p(11, 2, "a"), p(12, 3, "b"));
        v.apply(&fork(S, &sh, &c1));
        v.apply(&fork(S, &sh, &c2));
        assert_eq!(v.tracked(), Tracked::FromEvents(3));
        v.apply(&zombie(2 * S, &c1, &sh));
        assert_eq!(v.tracked(), Tracked::FromEvents(3));
        v.apply(&reap(3 * S, &c1, &sh, Some(S)));
        assert_eq!(v.tracked(), Tracked::FromEvents(2));
        // A reaped task named again later (out of order) stays gone.
        v.apply(&zombie(2 * S, &c1, &sh));
        v.apply(&reap(3 * S, &c1, &sh, Some(S)));
        assert_eq!(v.tracked(), Tracked::FromEvents(2));
        // A reused pid is a new task.
        v.apply(&fork(4 * S, &sh, &p(11, 4 * S, "c")));
        assert_eq!(v.tracked(), Tracked::FromEvents(3));
        v.set_live_tasks(321);
        assert_eq!(v.tracked(), Tracked::Live(321));
    }

    #[test]
    fn sort_orders_cycle() {
        assert_eq!(ZombieSort::Oldest.next(), ZombieSort::Pid);
        assert_eq!(ZombieSort::Reaper.next(), ZombieSort::Oldest);
        assert_eq!(ReaperSort::Pid.next(), ReaperSort::Reaped);
        assert_eq!(ReaperSort::P99.name(), "p99");
        assert_eq!(AdoptionSort::Newest.next().name(), "findings");
    }
}
