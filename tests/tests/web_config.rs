//! `reaper-trace daemon --web-config FILE`: the metrics over TLS and behind a password, in the
//! exporter-toolkit's file format, checked with curl and with a real Prometheus scraping over
//! TLS with the password (and refused without it).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reaper_trace_tests::daemon::{Daemon, http_get};
use reaper_trace_tests::prometheus::Prometheus;
use reaper_trace_tests::{TempPath, require_root};

const USER: &str = "prometheus";
const PASSWORD: &str = "a long scrape password";

/// A CA and a server certificate for 127.0.0.1 signed by it, with openssl, in `dir`.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=reaper-trace test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

/// curl's HTTP status for `url` (0: no HTTP answer), trusting only the test CA.
fn curl_status(dir: &Path, url: &str, user: Option<(&str, &str)>) -> u32 {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
    ])
    .arg("--cacert")
    .arg(dir.join("ca.crt"));
    if let Some((user, password)) = user {
        c.arg("-u").arg(format!("{user}:{password}"));
    }
    let out = c.arg(url).output().expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn metrics_over_tls_with_a_password_and_prometheus_scrapes_them() {
    require_root();
    let dir = TempPath::new("web-config");
    std::fs::create_dir_all(&dir.0).unwrap();
    certificates(&dir.0);
    let hash = bcrypt::hash(PASSWORD, 10).unwrap();
    // Relative paths: relative to the file, as exporter-toolkit reads them.
    let config = dir.0.join("web.yml");
    std::fs::write(
        &config,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  {USER}: {hash}\n"
        ),
    )
    .unwrap();
    let socket = TempPath::new("web-config.sock");
    let ca = dir.0.clone();
    let daemon = Daemon::start_when(
        &[],
        socket.0.clone(),
        &["--web-config", config.to_str().unwrap()],
        |metrics| {
            curl_status(
                &ca,
                &format!("https://{metrics}/metrics"),
                Some((USER, PASSWORD)),
            ) == 200
        },
    );
    let url = format!("https://{}/metrics", daemon.metrics);
    assert_eq!(curl_status(&dir.0, &url, Some((USER, PASSWORD))), 200);
    assert_eq!(curl_status(&dir.0, &url, None), 401, "no password");
    assert_eq!(
        curl_status(&dir.0, &url, Some((USER, "a long scrape passwore"))),
        401,
        "a wrong password"
    );
    assert_eq!(
        curl_status(&dir.0, &url, Some(("admin", PASSWORD))),
        401,
        "another user"
    );
    assert!(
        http_get(&daemon.metrics, "/metrics").is_none(),
        "nothing in clear text"
    );

    // Prometheus, as an operator configures it: one job with the CA and the password, one
    // without the password.
    let ca_file = dir.0.join("ca.crt");
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
