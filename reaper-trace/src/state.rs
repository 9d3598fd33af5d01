//! The facts every view of the event stream derives, derived once: the live zombies and who
//! has to reap each, the subreapers alive, the containers of live pid namespaces, what each
//! live reaper adopted and reaped, and the running counts (adoptions by kind and verdict,
//! reaps by path, records lost, zombie lifetimes). `top` ([`crate::view::View`]), the
//! daemon's metrics ([`crate::metrics::Metrics`]) and `doctor` read this, so they agree.
//!
//! Pure: fed [`Event`]s in recording order, knows nothing of terminals or HTTP. Memory is
//! bounded by what is live (one zombie per thread id, one entry per live reaper, the
//! containers of live namespaces) plus fixed caps.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::container::ContainerInfo;
use crate::event::{Event, Proc, ReapHow, ReaperKind, Verdict};

/// Log-scale buckets of zombie lifetimes: below 10 µs, then one per decade up to 100 s, then
/// 100 s and more.
pub const HIST_BUCKETS: usize = 9;
/// Exclusive upper bound of every bucket but the last, in nanoseconds.
pub const HIST_BOUNDS_NS: [u64; HIST_BUCKETS - 1] = [
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
];
/// Each bucket's label: its lower bound (the first is everything below 10 µs).
pub const HIST_LABELS: [&str; HIST_BUCKETS] = [
    "<10µs", "10µs", "100µs", "1ms", "10ms", "100ms", "1s", "10s", "≥100s",
];

/// Lost records are counted by kind, for up to this many kinds (a recording's `what` is
/// free text); the rest are counted under [`OTHER_LOST`].
pub const LOST_KINDS_KEPT: usize = 32;
pub const OTHER_LOST: &str = "other";
/// Containers of live namespaces remembered at most (a namespace whose init's reap was
/// never seen stays until then).
pub const MAX_CONTAINERS: usize = 8192;
/// Containers whose namespace ended, kept for their labels (the latest this many).
const GONE_CONTAINERS_KEPT: usize = 256;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Histogram {
    pub counts: [u64; HIST_BUCKETS],
}

impl Histogram {
    pub fn bucket(ns: u64) -> usize {
        HIST_BOUNDS_NS
            .iter()
            .position(|&bound| ns < bound)
            .unwrap_or(HIST_BUCKETS - 1)
    }

    pub fn add(&mut self, ns: u64) {
        self.counts[Self::bucket(ns)] += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// A live zombie.
#[derive(Debug, Clone, PartialEq)]
pub struct Zombie {
    pub task: Proc,
    /// When it became a zombie; when `since_known` is false, when it was first seen as one
    /// (it was a zombie before that: before tracing began, or its record was lost).
    pub since: u64,
    pub since_known: bool,
    /// Who has to reap it: its parent, or the reaper that adopted it since.
    pub reaper: Option<Proc>,
}

impl Zombie {
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.since)
    }
}

/// What a live process did as a reaper while watched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaperFacts {
    pub adopted: u64,
    pub reaped: u64,
}

/// What one event changed that a consumer may count on its own terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effect {
    /// A reap: who reaped (its reaper, else the zombie's last known reaper) and how long it
    /// was a zombie, when known.
    pub reaped: Option<Reaped>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reaped {
    pub reaper: Option<Proc>,
    pub lifetime_ns: Option<u64>,
}

/// What a reaper holding zombies past the threshold is to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The init (pid 1) of its pid namespace: every orphan there ends up with it.
    Init,
    /// A process that set `PR_SET_CHILD_SUBREAPER` (and has not cleared it).
    Subreaper,
}

/// A namespace init or subreaper holding a zombie past the threshold: one that does not reap.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreaping {
    pub reaper: Proc,
    pub role: Role,
    /// Zombies waiting for it now, and the oldest one's age.
    pub zombies: usize,
    pub oldest_ns: u64,
    /// The oldest was a zombie before watching began: its age is at least `oldest_ns`.
    pub oldest_at_least: bool,
    pub facts: ReaperFacts,
}

/// A reaped task that ends its pid namespace: the namespace's init (its main thread).
pub fn ends_namespace(task: &Proc) -> bool {
    task.is_leader() && task.ns_pid == 1
}

fn how_index(how: ReapHow) -> usize {
    ReapHow::ALL.iter().position(|&h| h == how).expect("listed")
}

#[derive(Debug, Clone, Default)]
pub struct State {
    events: u64,
    /// Live zombies by tid.
    zombies: HashMap<u32, Zombie>,
    /// Subreapers alive: pid -> the start time of the thread that made it known.
    subreapers: HashMap<u32, u64>,
    /// Live reapers' facts, by pid; dropped at the process's reap.
    reapers: HashMap<u32, ReaperFacts>,
    containers: HashMap<u32, ContainerInfo>,
    /// Containers whose namespace ended, oldest first (their labels stay readable).
    gone_containers: VecDeque<(u32, ContainerInfo)>,
    adoptions: BTreeMap<(Option<ReaperKind>, Verdict), u64>,
    reaps_by_how: [u64; ReapHow::ALL.len()],
    lost: u64,
    lost_by: BTreeMap<String, u64>,
    lifetimes: Histogram,
}

impl State {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event; returns what it changed that consumers count.
    pub fn apply(&mut self, ev: &Event) -> Effect {
        self.events += 1;
        let mut effect = Effect::default();
        match ev {
            Event::Fork { child, .. } => {
                // A tid is reused only once the task holding it is reaped: a zombie still
                // listed with it was reaped unseen (its record lost), and so was a process
                // that had its pid.
                if self
                    .zombies
                    .get(&child.tid)
                    .is_some_and(|z| !z.task.same_task(child))
                {
                    self.zombies.remove(&child.tid);
                }
                if child.is_leader() {
                    self.reapers.remove(&child.pid);
                    self.subreapers.remove(&child.pid);
                }
            }
            Event::Exec { .. } | Event::Exit { .. } => {}
            Event::Subreaper { task, enabled, .. } => {
                if *enabled {
                    self.subreapers.insert(task.pid, task.start);
                } else {
                    self.subreapers.remove(&task.pid);
                }
            }
            Event::Reparent {
                ts,
                orphan,
                reaper,
                kind,
                verdict,
                zombie,
                ..
            } => {
                *self.adoptions.entry((*kind, *verdict)).or_default() += 1;
                if let Some(r) = reaper {
                    if *kind == Some(ReaperKind::Subreaper) {
                        self.subreapers.insert(r.pid, r.start);
                    }
                    self.reapers.entry(r.pid).or_default().adopted += 1;
                    // Who has to reap it now is its new parent.
                    match self.zombies.get_mut(&orphan.tid) {
                        Some(z) if z.task.same_task(orphan) => z.reaper = Some(r.clone()),
                        _ if *zombie => {
                            self.zombies.insert(
                                orphan.tid,
                                Zombie {
                                    task: orphan.clone(),
                                    since: *ts,
                                    since_known: false,
                                    reaper: Some(r.clone()),
                                },
                            );
                        }
                        _ => {}
                    }
                }
            }
            Event::Zombie {
                ts,
                task,
                parent,
                autoreaped,
                before_trace,
                ..
            } => {
                if !autoreaped {
                    // A zombie holding this tid before is gone (its reap was not seen): a
                    // pid is only reused once the zombie holding it has been reaped.
                    self.zombies.insert(
                        task.tid,
                        Zombie {
                            task: task.clone(),
                            since: *ts,
                            since_known: !before_trace,
                            reaper: Some(parent.clone()),
                        },
                    );
                }
            }
            Event::Reap {
                ts,
                task,
                reaper,
                how,
                zombie_ns,
            } => {
                let zombie = match self.zombies.get(&task.tid) {
                    Some(z) if z.task.same_task(task) => self.zombies.remove(&task.tid),
                    _ => None,
                };
                let lifetime_ns = zombie_ns.or_else(|| {
                    zombie
                        .as_ref()
                        .filter(|z| z.since_known)
                        .map(|z| ts.saturating_sub(z.since))
                });
                // `namespace`/`free`/`vanished` name its last known parent; a released orphan names none.
                let reaper = reaper
                    .clone()
                    .or_else(|| zombie.and_then(|z| z.reaper))
                    .filter(|r| r.tid != 0);
                self.reaps_by_how[how_index(*how)] += 1;
                if let Some(ns) = lifetime_ns {
                    self.lifetimes.add(ns);
                }
                if let Some(r) = &reaper {
                    self.reapers.entry(r.pid).or_default().reaped += 1;
                }
                if task.is_leader() {
                    self.reapers.remove(&task.pid);
                    self.subreapers.remove(&task.pid);
                    if ends_namespace(task) {
                        self.end_namespace(task.pidns);
                    }
                }
                effect.reaped = Some(Reaped {
                    reaper,
                    lifetime_ns,
                });
            }
            Event::Lost { what, count, .. } => {
                self.lost += count;
                let kind =
                    if self.lost_by.contains_key(what) || self.lost_by.len() < LOST_KINDS_KEPT {
                        what.clone()
                    } else {
                        OTHER_LOST.to_string()
                    };
                *self.lost_by.entry(kind).or_default() += count;
            }
            Event::Container { pidns, info, .. } => {
                if self.containers.contains_key(pidns) || self.containers.len() < MAX_CONTAINERS {
                    self.containers.insert(*pidns, info.clone());
                }
            }
        }
        effect
    }

    /// The namespace's init was reaped: the namespace is gone, its container with it (its
    /// label stays readable a while).
    fn end_namespace(&mut self, pidns: u32) {
        if let Some(info) = self.containers.remove(&pidns) {
            if self.gone_containers.len() == GONE_CONTAINERS_KEPT {
                self.gone_containers.pop_front();
            }
            self.gone_containers.push_back((pidns, info));
        }
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn zombies(&self) -> impl Iterator<Item = &Zombie> {
        self.zombies.values()
    }

    pub fn zombie_count(&self) -> usize {
        self.zombies.len()
    }

    /// The container of a pid namespace, live or recently ended.
    pub fn container(&self, pidns: u32) -> Option<&ContainerInfo> {
        self.containers.get(&pidns).or_else(|| {
            self.gone_containers
                .iter()
                .rev()
                .find(|(ns, _)| *ns == pidns)
                .map(|(_, info)| info)
        })
    }

    /// Containers of the live pid namespaces.
    pub fn live_containers(&self) -> impl Iterator<Item = (u32, &ContainerInfo)> {
        self.containers.iter().map(|(&ns, info)| (ns, info))
    }

    pub fn is_subreaper(&self, pid: u32) -> bool {
        self.subreapers.contains_key(&pid)
    }

    /// What a live process adopted and reaped while watched.
    pub fn reaper_facts(&self, pid: u32) -> ReaperFacts {
        self.reapers.get(&pid).cloned().unwrap_or_default()
    }

    /// Adoptions by kind (`None`: the new parent could not be read) and verdict.
    pub fn adoptions(&self) -> &BTreeMap<(Option<ReaperKind>, Verdict), u64> {
        &self.adoptions
    }

    pub fn adoptions_of_kind(&self, kind: Option<ReaperKind>) -> u64 {
        self.adoptions
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn adoptions_total(&self) -> u64 {
        self.adoptions.values().sum()
    }

    pub fn mismatches(&self) -> u64 {
        self.adoptions
            .iter()
            .filter(|((_, v), _)| *v == Verdict::Mismatch)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn reaps(&self, how: ReapHow) -> u64 {
        self.reaps_by_how[how_index(how)]
    }

    pub fn reaps_total(&self) -> u64 {
        self.reaps_by_how.iter().sum()
    }

    pub fn lost(&self) -> u64 {
        self.lost
    }

    pub fn lost_by(&self) -> &BTreeMap<String, u64> {
        &self.lost_by
    }

    /// Lifetimes of every reaped zombie whose lifetime is known.
    pub fn lifetimes(&self) -> &Histogram {
        &self.lifetimes
    }

    /// Every namespace init or subreaper holding a zombie older than `threshold_ns` at `now`,
    /// the oldest first: the reapers that do not reap.
    pub fn unreaping(&self, now: u64, threshold_ns: u64) -> Vec<Unreaping> {
        // By process: any of its threads may be named. A process holding zombies is alive,
        // so its pid names no other process meanwhile.
        let mut by_pid: HashMap<u32, (Proc, Vec<(u64, bool)>)> = HashMap::new();
        for z in self.zombies.values() {
            let Some(r) = &z.reaper else { continue };
            let age = (z.age(now), !z.since_known);
            let (shown, ages) = by_pid
                .entry(r.pid)
                .or_insert_with(|| (r.clone(), Vec::new()));
            if r.is_leader() {
                *shown = r.clone();
            }
            ages.push(age);
        }
        let mut out: Vec<Unreaping> = by_pid
            .into_values()
            .filter_map(|(reaper, ages)| {
                let (oldest_ns, oldest_at_least) = ages.iter().copied().max()?;
                if oldest_ns <= threshold_ns {
                    return None;
                }
                let role = if reaper.ns_pid == 1 {
                    Role::Init
                } else if self.is_subreaper(reaper.pid) {
                    Role::Subreaper
                } else {
                    return None;
                };
                Some(Unreaping {
                    facts: self.reaper_facts(reaper.pid),
                    reaper,
                    role,
                    zombies: ages.len(),
                    oldest_ns,
                    oldest_at_least,
                })
            })
            .collect();
        out.sort_by_key(|u| (std::cmp::Reverse(u.oldest_ns), u.reaper.pid));
        out
    }

    /// What a client that connects now needs first: the containers known and the zombies
    /// now (as zombies from before its stream began, `ts` = `now`).
    pub fn snapshot(&self, now: u64) -> Vec<Event> {
        let mut out: Vec<Event> = self
            .containers
            .iter()
            .map(|(&pidns, info)| Event::Container {
                ts: now,
                pidns,
                info: info.clone(),
            })
            .collect();
        out.extend(self.zombies.values().filter_map(|z| {
            Some(Event::Zombie {
                ts: now,
                task: z.task.clone(),
                parent: z.reaper.clone()?,
                status: crate::event::ExitStatus::UNKNOWN,
                autoreaped: false,
                before_trace: true,
            })
        }));
        out
    }
}
