//! A `reaper-trace daemon` on a private socket and port, for the tests and the soak bench.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ChildGuard, reaper_trace};

pub struct Daemon {
    pub child: ChildGuard,
    pub socket: PathBuf,
    pub metrics: String,
}

impl Daemon {
    /// Starts a daemon with `args` on `socket` and a free loopback port; returns once it
    /// serves metrics (its programs attached).
    pub fn start(socket: PathBuf, args: &[&str]) -> Self {
        Self::start_under(&[], socket, args)
    }

    /// [`Daemon::start`] with the daemon run by a wrapper command, e.g.
    /// `["prlimit", "--nofile=1024:20000", "--"]`.
    pub fn start_under(wrapper: &[&str], socket: PathBuf, args: &[&str]) -> Self {
        Self::start_when(wrapper, socket, args, |metrics| {
            http_get(metrics, "/metrics").is_some()
        })
    }

    /// [`Daemon::start_under`], ready once `ready(metrics address)` says so (a daemon serving
    /// over TLS or behind a password answers no plain request).
    pub fn start_when(
        wrapper: &[&str],
        socket: PathBuf,
        args: &[&str],
        ready: impl Fn(&str) -> bool,
    ) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let metrics = format!("127.0.0.1:{port}");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(reaper_trace());
                c
            }
            None => Command::new(reaper_trace()),
        };
        let child = cmd
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .args(["--metrics", &metrics])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("reaper-trace daemon runs");
        let mut d = Self {
            child: ChildGuard::new(child),
            socket,
            metrics,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(&d.metrics) {
            if let Some(status) = d.child.try_wait() {
                panic!("the daemon exited ({status}): {}", d.child.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not serve metrics in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// The metrics text.
    pub fn scrape(&self) -> String {
        http_get(&self.metrics, "/metrics").expect("the daemon serves metrics")
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

/// The body of `GET PATH` on `addr` (HTTP/1.0, no client library), if it answers 200.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then_some(())?;
    head.lines()
        .next()?
        .contains(" 200 ")
        .then(|| body.to_string())
}

/// The value of the first sample of `text` whose line starts with `series`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}
