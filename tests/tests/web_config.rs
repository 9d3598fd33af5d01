//! `reaper-trace daemon --web-config FILE`: the metrics over TLS and behind a password, in the
//! exporter-toolkit's file format, checked with curl and with a real Prometheus scraping over
//! TLS with the password (and refused without it).

use std::process::Command;
use std::time::{Duration, Instant};

use reaper_trace_tests::daemon::{Daemon, http_get};
use reaper_trace_tests::prometheus::Prometheus;
use reaper_trace_tests::tls::{PASSWORD, SecureWeb, USER};
use reaper_trace_tests::{TempPath, require_root};

#[test]
fn metrics_over_tls_with_a_password_and_prometheus_scrapes_them() {
    require_root();
    let web = SecureWeb::new("web-config");
    let config = web.config();
    let socket = TempPath::new("web-config.sock");
    let daemon = Daemon::start_when(
        &[],
        socket.0.clone(),
        &["--web-config", config.to_str().unwrap()],
        |metrics| web.scrape(metrics).is_some(),
    );
    let url = format!("https://{}/metrics", daemon.metrics);
    let status = |user| web.curl(&url, user).0;
    assert_eq!(status(Some((USER, PASSWORD))), 200);
    assert_eq!(status(None), 401, "no password");
    assert_eq!(
        status(Some((USER, "a long scrape passwore"))),
        401,
        "a wrong password"
    );
    assert_eq!(status(Some(("admin", PASSWORD))), 401, "another user");
    assert!(
        http_get(&daemon.metrics, "/metrics").is_none(),
        "nothing in clear text"
    );

    // Prometheus, as an operator configures it: one job with the CA and the password, one
    // without the password.
    let ca_file = web.ca();
    let jobs = format!(
        "  - job_name: reaper-trace\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: {USER}\n      password: {PASSWORD}\n    static_configs:\n      - targets: ['{target}']\n  - job_name: no-password\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    static_configs:\n      - targets: ['{target}']\n",
        ca = ca_file.display(),
        target = daemon.metrics
    );
    let prometheus = Prometheus::start_with(&jobs, false).expect("prometheus starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let up = |job: &str| -> Option<String> {
        prometheus
            .query(&format!(r#"up{{job="{job}"}}"#))
            .first()
            .and_then(|r| r["value"][1].as_str().map(String::from))
    };
    loop {
        let (with, without) = (up("reaper-trace"), up("no-password"));
        if with.is_some() && without.is_some() {
            assert_eq!(with.as_deref(), Some("1"), "scraped with the password");
            assert_eq!(without.as_deref(), Some("0"), "refused without it");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape both jobs in 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let events = prometheus.query(r#"reaper_trace_events_total{job="reaper-trace"}"#);
    assert_eq!(events.len(), 1, "{events:?}");
}

#[test]
fn a_bad_web_config_is_refused_in_one_line() {
    require_root();
    let dir = TempPath::new("web-config-bad");
    std::fs::create_dir_all(&dir.0).unwrap();
    let config = dir.0.join("web.yml");
    std::fs::write(
        &config,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
    )
    .unwrap();
    let socket = TempPath::new("web-config-bad.sock");
    let out = Command::new(reaper_trace_tests::reaper_trace())
        .args(["daemon", "--metrics", "127.0.0.1:0", "--socket"])
        .arg(&socket.0)
        .arg("--web-config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("client_auth_type") && stderr.contains("web.yml"),
        "{stderr}"
    );
}
