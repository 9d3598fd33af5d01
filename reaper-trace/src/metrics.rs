//! The daemon's Prometheus metrics (prometheus-client), rendered from the derived [`State`]
//! that `top` and `doctor` read too: the gauges and counters are its figures, not counted
//! again here.
//!
//! Memory is bounded by what is live: the zombies now, the containers of live namespaces, the
//! subreapers alive; every label set is bounded (the zombie gauge keeps the busiest
//! [`MAX_ZOMBIE_SERIES`] container/reaper pairs and sums the rest as `other`).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::event::{Event, ReapHow, ReaperKind, Verdict};
use crate::state::{HIST_BOUNDS_NS, State};

/// Series of `reaper_trace_zombies` at most, `other` included.
pub const MAX_ZOMBIE_SERIES: usize = 20;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZombieLabels {
    /// The zombie's container (`host` for the host's processes).
    pub container: String,
    /// The name of the process that has to reap it.
    pub reaper: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdoptionLabels {
    kind: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HowLabels {
    how: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhatLabels {
    what: String,
}

/// Which of the daemon's listeners: `metrics` (HTTP) or `stream` (the Unix socket).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: &'static str,
}

/// The daemon's own health as a server, not derived from events: handles the listeners
/// update without taking the metrics lock.
#[derive(Clone)]
pub struct ServerMetrics {
    /// Accepts that failed (a full file table: EMFILE, ENFILE), each followed by a pause.
    pub accept_errors: Family<ListenerLabels, Counter>,
    /// HTTP connections open now (stream clients are `reaper_trace_stream_clients`).
    pub http_connections: Gauge,
    /// Connections closed by the daemon: at the cap (the oldest HTTP connection makes room;
    /// a stream client past the cap is refused) or idle past the header timeout.
    pub closed: Family<ClosedLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    pub listener: &'static str,
    /// `cap` or `timeout`.
    pub reason: &'static str,
}

impl ServerMetrics {
    pub const METRICS: ListenerLabels = ListenerLabels {
        listener: "metrics",
    };
    pub const STREAM: ListenerLabels = ListenerLabels { listener: "stream" };
}

pub struct Metrics {
    registry: Registry,
    zombies_gauge: Family<ZombieLabels, Gauge>,
    lifetime: Histogram,
    adoptions: Family<AdoptionLabels, Counter>,
    reaps: Family<HowLabels, Counter>,
    lost: Family<WhatLabels, Counter>,
    events: Counter,
    events_per_sec: Gauge<f64, AtomicU64>,
    unreaping: Gauge,
    pub clients: Gauge,
    zombie_threshold_ns: u64,
    state: State,
    /// The state's counts as the counters last showed them: a sync adds the difference.
    synced: Synced,
    last_rate: Option<(u64, u64)>,
}

#[derive(Default)]
struct Synced {
    adoptions: HashMap<(Option<ReaperKind>, Verdict), u64>,
    reaps: HashMap<ReapHow, u64>,
    lost: HashMap<String, u64>,
    events: u64,
}

fn verdict_label(v: Verdict) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn label(s: &str) -> String {
    s.to_string()
}

impl Metrics {
    pub fn new(zombie_threshold_ns: u64) -> Self {
        let mut registry = Registry::default();
        let zombies_gauge = Family::<ZombieLabels, Gauge>::default();
        registry.register(
            "reaper_trace_zombies",
            "Zombies now, by container and by the process that has to reap them (the busiest pairs; the rest are summed as other)",
            zombies_gauge.clone(),
        );
        // The dashboard's buckets, in seconds.
        let lifetime = Histogram::new(HIST_BOUNDS_NS.map(|ns| ns as f64 / 1e9));
        registry.register(
            "reaper_trace_zombie_lifetime_seconds",
            "How long reaped zombies were zombies",
            lifetime.clone(),
        );
        let adoptions = Family::<AdoptionLabels, Counter>::default();
        registry.register(
            "reaper_trace_adoptions",
            "Orphans adopted, by reaper kind (thread, subreaper, init, unexpected, none: released while adopted) and verdict against find_new_reaper",
            adoptions.clone(),
        );
        let reaps = Family::<HowLabels, Counter>::default();
        registry.register(
            "reaper_trace_reaps",
            "Zombies reaped, by how (wait4, waitid, io_uring, auto, namespace, free, vanished)",
            reaps.clone(),
        );
        let lost = Family::<WhatLabels, Counter>::default();
        registry.register(
            "reaper_trace_lost_records",
            "Kernel records lost, by kind (never silently dropped)",
            lost.clone(),
        );
        let events = Counter::default();
        registry.register("reaper_trace_events", "Events", events.clone());
        let events_per_sec = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "reaper_trace_events_per_second",
            "Events per second, over the last update interval",
            events_per_sec.clone(),
        );
        let unreaping = Gauge::default();
        registry.register(
            "reaper_trace_unreaping_reapers",
            "Namespace inits and subreapers holding a zombie past the zombie threshold (what `reaper-trace doctor` names)",
            unreaping.clone(),
        );
        let clients = Gauge::default();
        registry.register(
            "reaper_trace_stream_clients",
            "Clients connected to the event stream",
            clients.clone(),
        );
        // Zero is information ("nothing lost"): every record kind, reap path and adoption
        // kind is there from the start.
        for k in 0..reaper_trace_common::LOST_SLOTS {
            let what = crate::decode::kind_name(k);
            if what != "unknown" {
                let _ = lost.get_or_create(&WhatLabels { what: what.into() });
            }
        }
        for how in ReapHow::ALL {
            let _ = reaps.get_or_create(&HowLabels {
                how: how.as_str().into(),
            });
        }
        for kind in ReaperKind::ALL {
            let _ = adoptions.get_or_create(&AdoptionLabels {
                kind: kind.as_str().into(),
                verdict: "match".into(),
            });
        }
        Self {
            registry,
            zombies_gauge,
            lifetime,
            adoptions,
            reaps,
            lost,
            events,
            events_per_sec,
            unreaping,
            clients,
            zombie_threshold_ns,
            state: State::new(),
            synced: Synced::default(),
            last_rate: None,
        }
    }

    /// Registers the daemon's server metrics (every series there from the start, at 0).
    pub fn server_metrics(&mut self) -> ServerMetrics {
        let m = ServerMetrics {
            accept_errors: Family::default(),
            http_connections: Gauge::default(),
            closed: Family::default(),
        };
        self.registry.register(
            "reaper_trace_accept_errors",
            "Connections the daemon failed to accept (a full file table), by listener; each is followed by a pause",
            m.accept_errors.clone(),
        );
        self.registry.register(
            "reaper_trace_http_connections",
            "HTTP connections to the metrics listener open now",
            m.http_connections.clone(),
        );
        self.registry.register(
            "reaper_trace_connections_closed",
            "Connections the daemon closed, by listener and reason (cap: past --max-connections; timeout: no request within the header timeout)",
            m.closed.clone(),
        );
        for listener in [ServerMetrics::METRICS, ServerMetrics::STREAM] {
            let _ = m.accept_errors.get_or_create(&listener);
        }
        for (listener, reason) in [
            ("metrics", "cap"),
            ("metrics", "timeout"),
            ("stream", "cap"),
        ] {
            let _ = m.closed.get_or_create(&ClosedLabels { listener, reason });
        }
        m
    }

    /// The text exposition (OpenMetrics) of every metric, its counters up to date.
    pub fn encode(&mut self) -> String {
        self.sync_counters();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// The facts the metrics show.
    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn apply(&mut self, ev: &Event) {
        let effect = self.state.apply(ev);
        if let Some(ns) = effect.reaped.and_then(|r| r.lifetime_ns) {
            self.lifetime.observe(ns as f64 / 1e9);
        }
    }

    /// Brings every counter to the state's count (counters only go up: each gets the
    /// difference since the last sync).
    fn sync_counters(&mut self) {
        for (&(kind, verdict), &n) in self.state.adoptions() {
            let seen = self.synced.adoptions.entry((kind, verdict)).or_default();
            self.adoptions
                .get_or_create(&AdoptionLabels {
                    kind: kind.map_or("none", ReaperKind::as_str).into(),
                    verdict: verdict_label(verdict),
                })
                .inc_by(n - *seen);
            *seen = n;
        }
        for how in ReapHow::ALL {
            let n = self.state.reaps(how);
            let seen = self.synced.reaps.entry(how).or_default();
            self.reaps
                .get_or_create(&HowLabels {
                    how: label(how.as_str()),
                })
                .inc_by(n - *seen);
            *seen = n;
        }
        for (what, &n) in self.state.lost_by() {
            let seen = self.synced.lost.entry(what.clone()).or_default();
            self.lost
                .get_or_create(&WhatLabels { what: what.clone() })
                .inc_by(n - *seen);
            *seen = n;
        }
        let events = self.state.events();
        self.events.inc_by(events - self.synced.events);
        self.synced.events = events;
    }

    fn container_label(&self, pidns: u32) -> String {
        match self.state.container(pidns) {
            Some(info) => info.label(pidns),
            None => "host".into(),
        }
    }

    /// Recomputes the gauges (at `now`, `CLOCK_BOOTTIME` ns): zombies by container and
    /// reaper, the reapers that do not reap, the event rate; and brings the counters up.
    pub fn update(&mut self, now: u64) {
        self.sync_counters();
        let mut pairs: HashMap<ZombieLabels, i64> = HashMap::new();
        for z in self.state.zombies() {
            *pairs
                .entry(ZombieLabels {
                    container: self.container_label(z.task.pidns),
                    reaper: z.reaper.as_ref().map_or("?".into(), |r| r.comm.clone()),
                })
                .or_default() += 1;
        }
        let mut pairs: Vec<(ZombieLabels, i64)> = pairs.into_iter().collect();
        pairs.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| a.0.container.cmp(&b.0.container))
        });
        self.zombies_gauge.clear();
        let keep = if pairs.len() > MAX_ZOMBIE_SERIES {
            MAX_ZOMBIE_SERIES - 1
        } else {
            pairs.len()
        };
        let other: i64 = pairs[keep..].iter().map(|p| p.1).sum();
        for (labels, n) in &pairs[..keep] {
            self.zombies_gauge.get_or_create(labels).set(*n);
        }
        if keep < pairs.len() {
            self.zombies_gauge
                .get_or_create(&ZombieLabels {
                    container: "other".into(),
                    reaper: "other".into(),
                })
                .set(other);
        }
        self.unreaping
            .set(self.state.unreaping(now, self.zombie_threshold_ns).len() as i64);
        let events = self.state.events();
        if let Some((t, n)) = self.last_rate
            && now > t
        {
            self.events_per_sec
                .set((events - n) as f64 / ((now - t) as f64 / 1e9));
        }
        self.last_rate = Some((now, events));
    }

    /// What a client that connects now needs first: the containers known and the zombies
    /// now (as zombies from before its stream began, `ts` = `now`).
    pub fn snapshot(&self, now: u64) -> Vec<Event> {
        self.state.snapshot(now)
    }

    /// Zombies now (for tests and the log).
    pub fn zombie_count(&self) -> usize {
        self.state.zombie_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{ContainerInfo, Runtime};
    use crate::view::tests::{in_ns, p, reap, reparent, zombie};

    const S: u64 = 1_000_000_000;

    #[test]
    fn zombies_by_container_and_reaper_and_what_does_not_reap() {
        let mut m = Metrics::new(2 * S);
        let ns = 4026532177;
        m.apply(&Event::Container {
            ts: 0,
            pidns: ns,
            info: ContainerInfo {
                runtime: Some(Runtime::Docker),
                id: Some("ab".repeat(32)),
                name: Some("test".into()),
                ..Default::default()
            },
        });
        let init = in_ns(p(100, 1, "sleep"), ns, 1);
        let a = in_ns(p(101, 2, "bash"), ns, 2);
        let b = in_ns(p(102, 3, "sleep"), ns, 3);
        m.apply(&reparent(S, &a, &p(9, 0, "x"), &init, ReaperKind::Init));
        m.apply(&zombie(S, &a, &init));
        m.apply(&zombie(S, &b, &init));
        let sh = p(200, 4, "sh");
        let c = p(201, 5, "c");
        m.apply(&zombie(S, &c, &sh));
        m.apply(&reap(2 * S, &c, &sh, Some(S)));
        m.update(10 * S);
        let text = m.encode();
        assert!(
            text.contains(r#"reaper_trace_zombies{container="test",reaper="sleep"} 2"#),
            "{text}"
        );
        assert!(!text.contains(r#"reaper="sh""#), "{text}");
        assert!(
            text.contains(r#"reaper_trace_adoptions_total{kind="init",verdict="match"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"reaper_trace_reaps_total{how="wait4"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("reaper_trace_zombie_lifetime_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("reaper_trace_unreaping_reapers 1"), "{text}");
        // The init's reap ends the namespace: its zombies go, the container is forgotten.
        m.apply(&reap(11 * S, &a, &init, None));
        m.apply(&reap(11 * S, &b, &init, None));
        m.apply(&reap(11 * S, &init, &p(1, 0, "shim"), None));
        m.update(12 * S);
        let text = m.encode();
        assert!(!text.contains("reaper_trace_zombies{"), "{text}");
        assert!(text.contains("reaper_trace_unreaping_reapers 0"), "{text}");
        assert_eq!(m.state().live_containers().count(), 0);
    }

    #[test]
    fn label_sets_are_bounded() {
        let mut m = Metrics::new(S);
        for i in 0..100u32 {
            let parent = p(1000 + i, i as u64, &format!("r{i}"));
            m.apply(&zombie(S, &p(5000 + i, 1000 + i as u64, "z"), &parent));
        }
        m.apply(&Event::Lost {
            ts: 0,
            what: "fork".into(),
            count: 7,
        });
        m.update(2 * S);
        let text = m.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("reaper_trace_zombies{"))
            .count();
        assert_eq!(series, MAX_ZOMBIE_SERIES, "{text}");
        assert!(
            text.contains(r#"reaper_trace_zombies{container="other",reaper="other"} 81"#),
            "{text}"
        );
        assert!(text.contains(r#"reaper_trace_lost_records_total{what="fork"} 7"#));
        assert_eq!(m.snapshot(3 * S).len(), 100);
    }
}
