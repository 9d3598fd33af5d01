//! A real Prometheus server (Debian's `prometheus` package) on loopback, scraping one target
//! every second, with its data in a temporary directory; stopped when dropped.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::http_get;
use crate::{ChildGuard, TempPath};

pub struct Prometheus {
    _child: ChildGuard,
    _dir: TempPath,
    pub addr: String,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`, path /metrics); `Err` when it is not
    /// installed or does not come up.
    pub fn start(target: &str) -> Result<Self, String> {
        Self::start_with_rules(target, false)
    }

    /// [`Prometheus::start`], evaluating `packaging/prometheus/reaper-trace.rules.yml` every
    /// second with every `for:` cut to 2 s (a test cannot wait the real 5 to 10 minutes; the
    /// rules' unit tests check those).
    pub fn start_with_rules(target: &str, rules: bool) -> Result<Self, String> {
        Self::start_with(
            &format!(
                "  - job_name: reaper-trace\n    static_configs:\n      - targets: ['{target}']\n"
            ),
            rules,
        )
    }

    /// Prometheus with these `scrape_configs` entries (YAML, indented under the key), every
    /// second.
    pub fn start_with(scrape_configs: &str, rules: bool) -> Result<Self, String> {
        let dir = TempPath::new("prometheus");
        std::fs::create_dir_all(&dir.0).map_err(|e| e.to_string())?;
        let mut rule_files = String::new();
        if rules {
            let path = dir.0.join("reaper-trace.rules.yml");
            std::fs::write(&path, quick_rules()).map_err(|e| e.to_string())?;
            rule_files = format!("rule_files:\n  - {}\n", path.display());
        }
        let config = dir.0.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rule_files}scrape_configs:\n{scrape_configs}"
            ),
        )
        .map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start prometheus ({e}): `cargo xtask setup` installs it")
            })?;
        let mut child = ChildGuard::new(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&addr, "/-/ready").is_none() {
            if let Some(status) = child.try_wait() {
                return Err(format!("prometheus exited at start ({status})"));
            }
            if Instant::now() > deadline {
                return Err("prometheus was not ready within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(Self {
            _child: child,
            _dir: dir,
            addr,
        })
    }

    /// An instant query through the HTTP API: the `data.result` array.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let mut q = String::new();
        for b in promql.bytes() {
            if b.is_ascii_alphanumeric() || b"_-.~".contains(&b) {
                q.push(b as char);
            } else {
                q.push_str(&format!("%{b:02X}"));
            }
        }
        let body = http_get(&self.addr, &format!("/api/v1/query?query={q}")).unwrap_or_default();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The alerts named `name` firing now, each as its labels.
    pub fn firing(&self, name: &str) -> Vec<Value> {
        self.query(&format!(
            r#"ALERTS{{alertname="{name}",alertstate="firing"}}"#
        ))
        .into_iter()
        .map(|r| r["metric"].clone())
        .collect()
    }
}

/// The packaged rules with every `for:` duration cut to 2 s.
pub fn quick_rules() -> String {
    let path = crate::workspace_root().join("packaging/prometheus/reaper-trace.rules.yml");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|line| match line.split_once("for: ") {
            Some((indent, _)) if indent.trim().is_empty() => format!("{indent}for: 2s\n"),
            _ => format!("{line}\n"),
        })
        .collect()
}
