//! `top`, the daemon's `/metrics` and `doctor` read one derived state, so they agree: each
//! recorded stream is fed to the dashboard's view and to the metrics, and after every event
//! (every few in the storm) every figure they both show is compared: zombies (in all, and by
//! container and reaper), the reapers that do not reap (`doctor`'s findings and the gauge),
//! adoptions by kind, reaps, lost records, events, zombie lifetimes.
//!
//! The streams are real recordings (`reaper-trace record`, 6.18): a zombie storm
//! (`stress-ng --zombie`), the article's container experiment (a pid namespace whose PID 1
//! is `sleep`: orphans adopted by it, one already a zombie, none reaped until it dies), and a
//! recording that starts with zombies already there.

use std::collections::BTreeMap;
use std::path::Path;

use reaper_trace::doctor::diagnose;
use reaper_trace::jsonl::read_recording;
use reaper_trace::metrics::Metrics;
use reaper_trace::view::{Query, View};

const THRESHOLD_NS: u64 = 1_000_000_000;

/// Every sample of `text` whose series is `name` (with any labels): labels -> value.
fn samples(text: &str, name: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (n == name).then(|| (labels.to_string(), value.parse().unwrap()))
        })
        .collect()
}

fn sum(text: &str, name: &str) -> f64 {
    samples(text, name).values().sum()
}

fn label<'a>(labels: &'a str, key: &str) -> &'a str {
    labels
        .split(',')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=\"")))
        .map(|v| v.trim_end_matches('"'))
        .unwrap_or_else(|| panic!("no {key} in {labels}"))
}

/// What the comparisons saw over a whole stream, to check the stream exercised them.
#[derive(Default, Debug)]
struct Seen {
    checkpoints: usize,
    max_zombies: usize,
    max_unreaping: usize,
}

fn compare(view: &View, metrics: &mut Metrics, now: u64, seen: &mut Seen, at: &str) {
    metrics.update(now);
    let text = metrics.encode();
    let zombies = view.zombie_count();
    assert_eq!(
        sum(&text, "reaper_trace_zombies") as usize,
        zombies,
        "{at}: zombies"
    );
    // By container and reaper (below the series cap, every pair is its own series).
    let mut by_pair: BTreeMap<(String, String), f64> = BTreeMap::new();
    for z in view.zombies(&Query::default()) {
        let container = match view.state().container(z.task.pidns) {
            Some(info) => info.label(z.task.pidns),
            None => "host".into(),
        };
        let reaper = z.reaper.as_ref().map_or("?".into(), |r| r.comm.clone());
        *by_pair.entry((container, reaper)).or_default() += 1.0;
    }
    if by_pair.len() < reaper_trace::metrics::MAX_ZOMBIE_SERIES {
        let gauge: BTreeMap<(String, String), f64> = samples(&text, "reaper_trace_zombies")
            .into_iter()
            .map(|(l, v)| {
                (
                    (label(&l, "container").into(), label(&l, "reaper").into()),
                    v,
                )
            })
            .collect();
        assert_eq!(gauge, by_pair, "{at}: zombies by container and reaper");
    }
    let findings = diagnose(view);
    assert_eq!(
        sum(&text, "reaper_trace_unreaping_reapers") as usize,
        findings.len(),
        "{at}: doctor's findings and the unreaping gauge"
    );
    for (kind, n) in view.adoptions_by_kind() {
        let counted: f64 = samples(&text, "reaper_trace_adoptions_total")
            .iter()
            .filter(|(l, _)| label(l, "kind") == kind.as_str())
            .map(|(_, v)| v)
            .sum();
        assert_eq!(counted as u64, n, "{at}: adoptions of kind {kind:?}");
    }
    assert_eq!(
        sum(&text, "reaper_trace_adoptions_total") as u64,
        view.adoptions_total(),
        "{at}: adoptions"
    );
    assert_eq!(
        sum(&text, "reaper_trace_reaps_total") as u64,
        view.reaps(),
        "{at}: reaps"
    );
    assert_eq!(
        sum(&text, "reaper_trace_lost_records_total") as u64,
        view.lost(),
        "{at}: lost records"
    );
    assert_eq!(
        sum(&text, "reaper_trace_events_total") as u64,
        view.events(),
        "{at}: events"
    );
    assert_eq!(
        sum(&text, "reaper_trace_zombie_lifetime_seconds_count") as u64,
        view.histogram(&Query::default()).total(),
        "{at}: zombie lifetimes"
    );
    seen.checkpoints += 1;
    seen.max_zombies = seen.max_zombies.max(zombies);
    seen.max_unreaping = seen.max_unreaping.max(findings.len());
}

fn feed(fixture: &str, every: usize) -> Seen {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let rec = read_recording(&path).unwrap();
    let mut view = View::new(THRESHOLD_NS);
    let mut metrics = Metrics::new(THRESHOLD_NS);
    let mut seen = Seen::default();
    let mut now = rec.header.started_ts;
    for (i, ev) in rec.events.iter().enumerate() {
        view.apply(ev);
        metrics.apply(ev);
        now = now.max(ev.ts());
        view.set_clock(now);
        if i % every == 0 {
            compare(
                &view,
                &mut metrics,
                now,
                &mut seen,
                &format!("{fixture} event {i}"),
            );
        }
    }
    // And later, with the zombies still there older.
    for later in [now, now + 2 * THRESHOLD_NS] {
        view.set_clock(later);
        compare(
            &view,
            &mut metrics,
            later,
            &mut seen,
            &format!("{fixture} at the end"),
        );
    }
    seen
}

#[test]
fn a_zombie_storm() {
    let seen = feed("zombie-storm.jsonl", 7);
    assert!(seen.checkpoints > 100 && seen.max_zombies > 0, "{seen:?}");
}

#[test]
fn a_container_whose_pid_1_never_reaps() {
    let seen = feed("pid1-sleep-container.jsonl", 1);
    // PID 1 held its zombies (one adopted already a zombie) past the threshold.
    assert!(seen.max_zombies >= 2 && seen.max_unreaping == 1, "{seen:?}");
}

#[test]
fn a_recording_that_starts_with_zombies() {
    let seen = feed("zombies-before-trace.jsonl", 1);
    assert!(seen.max_zombies >= 2, "{seen:?}");
}
