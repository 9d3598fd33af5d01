//! What `packaging/` ships for a fleet, checked against the real daemon: the Prometheus rules
//! (valid for `promtool check rules`, their unit tests passing with `promtool test rules`) and
//! the Grafana dashboard (every metric and label it queries is one the daemon serves). The
//! rules in a real Prometheus against the real daemon and a container: `containers.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use reaper_trace_tests::daemon::Daemon;
use reaper_trace_tests::{TempPath, require_root, workspace_root};

fn promtool(args: &[&str]) -> String {
    let dir = workspace_root().join("packaging/prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("promtool runs (Debian's prometheus package: `cargo xtask setup` installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_rules_are_valid() {
    let out = promtool(&["check", "rules", "reaper-trace.rules.yml"]);
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
}

#[test]
fn the_rules_pass_their_unit_tests() {
    let out = promtool(&["test", "rules", "reaper-trace.rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// A real daemon's `/metrics`, while this test holds a zombie (the zombie gauge is served
/// only while there is one).
fn served_metrics() -> String {
    require_root();
    let socket = TempPath::new("packaging.sock");
    let daemon = Daemon::start(socket.0.clone(), &[]);
    let mut zombie = Command::new("true").spawn().expect("true runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    let served = loop {
        let served = daemon.scrape();
        if served.contains("reaper_trace_zombies{") || Instant::now() > deadline {
            break served;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = zombie.wait();
    served
}

/// The label names of each sample name in an exposition (`name{a="x",b="y"} 1`).
fn labels_by_sample(exposition: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::<String, BTreeSet<String>>::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_string()).or_default();
        if let Some(body) = line[name_end..].strip_prefix('{') {
            for pair in body.split("\",") {
                if let Some((label, _)) = pair.split_once("=\"") {
                    labels.insert(label.trim_start_matches(',').to_string());
                }
            }
        }
    }
    out
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| !w.is_empty())
}

/// The label names a PromQL expression uses: in `by (...)`/`without (...)` and in selectors.
fn labels_used(expr: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for keyword in ["by (", "by(", "without (", "without("] {
        for (i, _) in expr.match_indices(keyword) {
            let rest = &expr[i + keyword.len()..];
            let group = &rest[..rest.find(')').unwrap_or(rest.len())];
            used.extend(words(group).map(String::from));
        }
    }
    for (i, _) in expr.match_indices('{') {
        let rest = &expr[i + 1..];
        let selector = &rest[..rest.find('}').unwrap_or(rest.len())];
        for matcher in selector.split(',') {
            if let Some(end) = matcher.find(['=', '!']) {
                used.insert(matcher[..end].trim().to_string());
            }
        }
    }
    used
}

/// Checks that every `reaper_trace_*` sample an expression reads is served, and that every
/// label it uses is one of theirs (or `instance`/`job`, which Prometheus adds).
fn check_expr(expr: &str, served: &BTreeMap<String, BTreeSet<String>>, exposition: &str) {
    let metrics: Vec<&str> = words(expr)
        .filter(|w| w.starts_with("reaper_trace_"))
        .collect();
    assert!(!metrics.is_empty(), "{expr} reads no reaper-trace metric");
    let mut known: BTreeSet<String> = ["instance", "job"].map(String::from).into();
    for m in &metrics {
        let labels = served.get(*m).unwrap_or_else(|| {
            panic!("{expr} reads {m}, which the daemon does not serve:\n{exposition}")
        });
        known.extend(labels.iter().cloned());
    }
    for label in labels_used(expr) {
        assert!(
            known.contains(&label),
            "{expr} uses label {label}, which {metrics:?} do not have:\n{exposition}"
        );
    }
}

/// Every metric and label the rules read is one a real daemon serves.
#[test]
fn the_rules_read_metrics_the_daemon_serves() {
    let rules = std::fs::read_to_string(
        workspace_root().join("packaging/prometheus/reaper-trace.rules.yml"),
    )
    .unwrap();
    let exposition = served_metrics();
    let served = labels_by_sample(&exposition);
    let exprs: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("expr:"))
        // The recording rules' own series are read by name, not served by the daemon.
        .filter(|e| words(e).any(|w| w.starts_with("reaper_trace_")))
        .collect();
    assert!(exprs.len() >= 5, "{exprs:?}");
    for expr in exprs {
        check_expr(expr, &served, &exposition);
    }
}

/// The Grafana dashboard's panels (zombies by container, adoptions by kind, the zombie
/// lifetime heat map, records lost, ...) and its host variable query only metrics and labels
/// a real daemon serves, and each panel's legend names only labels its query keeps.
#[test]
fn the_dashboard_queries_metrics_the_daemon_serves() {
    let text =
        std::fs::read_to_string(workspace_root().join("packaging/grafana/reaper-trace.json"))
            .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let exposition = served_metrics();
    let served = labels_by_sample(&exposition);
    let panels = dashboard["panels"].as_array().expect("panels");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Zombies by container",
        "Adoptions by kind",
        "Zombie lifetime",
        "Records lost",
    ] {
        assert!(titles.contains(&wanted), "no panel {wanted}: {titles:?}");
    }
    let mut checked = 0;
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL target");
            check_expr(expr, &served, &exposition);
            let kept = labels_used(expr);
            let legend = target["legendFormat"].as_str().unwrap_or("");
            for (i, _) in legend.match_indices("{{") {
                let label = &legend[i + 2..i + 2 + legend[i + 2..].find("}}").unwrap()];
                assert!(
                    kept.contains(label.trim()),
                    "{}: legend {legend} names {label}, which {expr} does not keep",
                    panel["title"]
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} queries");
    // The heat map reads the histogram's buckets as a heat map.
    let heatmap = panels
        .iter()
        .find(|p| p["type"] == "heatmap")
        .expect("a heat map");
    assert!(
        heatmap["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .contains("reaper_trace_zombie_lifetime_seconds_bucket")
    );
    assert_eq!(heatmap["targets"][0]["format"], "heatmap");
    // The host variable lists the instances that serve reaper-trace's metrics.
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let instance = variables
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("an instance variable");
    let query = instance["query"]["query"].as_str().unwrap();
    let metric = query
        .strip_prefix("label_values(")
        .and_then(|q| q.split_once(','))
        .map(|(m, _)| m.trim())
        .expect("label_values(METRIC, instance)");
    assert!(served.contains_key(metric), "{query}");
}
