//! The metrics exporter: `GET /metrics` over HTTP/1.1, with the limits that keep a local
//! user from stalling it. Connections are capped (the oldest makes room for a new one, so a
//! scrape always gets in: a scrape takes well under a millisecond, idle connections are what
//! pile up), and a connection that sends no whole request header within the header timeout
//! is closed, between keep-alive requests too.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::backoff::Acceptor;
use super::web_config::{Users, WebConfig};
use crate::metrics::{ClosedLabels, Metrics, ServerMetrics};

pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Prometheus sends its request at once; 10 s is far beyond any honest client's pause.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers larger than this are refused (431): a scrape's are a few hundred bytes.
const MAX_HEADER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
        }
    }
}

/// The open connections, oldest first; dropping an entry's sender closes that connection.
#[derive(Default)]
struct Open {
    next_id: u64,
    conns: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl Open {
    /// Registers a new connection; at the cap, closes the oldest first. Returns the new
    /// connection's id, its close signal, and whether one was closed to make room.
    fn admit(&mut self, cap: usize) -> (u64, oneshot::Receiver<()>, bool) {
        let evicted = self.conns.len() >= cap.max(1);
        if evicted {
            self.conns.pop_front();
        }
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = oneshot::channel();
        self.conns.push_back((id, tx));
        (id, rx, evicted)
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.conns.iter().position(|(c, _)| *c == id) {
            self.conns.remove(i);
        }
    }
}

fn router(metrics: Arc<Mutex<Metrics>>, users: Option<Arc<Users>>) -> axum::Router {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move {
                let body = m.lock().unwrap_or_else(|e| e.into_inner()).encode();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    match users {
        Some(users) => app.layer(axum::middleware::from_fn(move |request, next| {
            authenticated(users.clone(), request, next)
        })),
        None => app,
    }
}

/// Lets a request through only with the user and password of `basic_auth_users`; else 401
/// with the challenge Prometheus and curl answer. The bcrypt check runs off the async
/// threads, so a slow check does not hold up other connections.
async fn authenticated(
    users: Arc<Users>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let allowed = tokio::task::spawn_blocking(move || users.allows(authorization.as_deref()))
        .await
        .unwrap_or(false);
    if allowed {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"reaper-trace\"")],
            "Unauthorized\n",
        )
            .into_response()
    }
}

/// Serves `/metrics` on `listener` until the task is aborted, over TLS and behind a password
/// where `web` asks for them.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Mutex<Metrics>>,
    server: ServerMetrics,
    limits: Limits,
    web: WebConfig,
) {
    let app = router(metrics, web.users.clone());
    let tls = web.tls.map(tokio_rustls::TlsAcceptor::from);
    let open = Arc::new(Mutex::new(Open::default()));
    let mut acceptor = Acceptor::new(
        server
            .accept_errors
            .get_or_create(&ServerMetrics::METRICS)
            .clone(),
    );
    loop {
        let (stream, _) = acceptor.next(|| listener.accept()).await;
        let (id, closed, evicted) = open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(limits.max_connections);
        if evicted {
            server
                .closed
                .get_or_create(&ClosedLabels {
                    listener: "metrics",
                    reason: "cap",
                })
                .inc();
        }
        server.http_connections.inc();
        let service = TowerToHyperService::new(app.clone());
        let open = open.clone();
        let server = server.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let timed_out = || {
                server
                    .closed
                    .get_or_create(&ClosedLabels {
                        listener: "metrics",
                        reason: "timeout",
                    })
                    .inc()
            };
            let served = async {
                match tls {
                    // The handshake within the header timeout too: a client that opens a
                    // connection and says nothing holds it no longer over TLS.
                    Some(tls) => {
                        match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await
                        {
                            Ok(Ok(stream)) => serve_http(stream, service, limits).await,
                            Ok(Err(_)) => Ok(()),
                            Err(_) => {
                                timed_out();
                                Ok(())
                            }
                        }
                    }
                    None => serve_http(stream, service, limits).await,
                }
            };
            tokio::select! {
                r = served => {
                    if r.is_err_and(|e| e.is_timeout()) {
                        timed_out();
                    }
                    open.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                }
                // Closed to make room: `admit` already dropped its entry.
                _ = closed => {}
            }
            server.http_connections.dec();
        });
    }
}

/// HTTP/1.1 on one connection, plain or TLS, with the header timeout and size limit.
async fn serve_http<S>(
    stream: S,
    service: TowerToHyperService<axum::Router>,
    limits: Limits,
) -> hyper::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEADER_BYTES);
    http.serve_connection(TokioIo::new(stream), service).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    #[test]
    fn the_oldest_connection_makes_room() {
        let mut open = Open::default();
        let (a, mut ra, e) = open.admit(2);
        assert!(!e);
        let (_b, mut rb, e) = open.admit(2);
        assert!(!e);
        let (_c, _rc, e) = open.admit(2);
        assert!(e, "the third closes the first");
        assert!(
            ra.try_recv()
                .is_err_and(|e| e == oneshot::error::TryRecvError::Closed)
        );
        assert!(
            rb.try_recv()
                .is_err_and(|e| e == oneshot::error::TryRecvError::Empty)
        );
        // A connection that ended by itself is forgotten; removing twice is harmless.
        open.remove(a);
        assert_eq!(open.conns.len(), 2);
    }

    fn scrape(addr: std::net::SocketAddr) -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    }

    /// Idle connections past the cap do not keep a scrape out, and those that send nothing
    /// are closed after the header timeout.
    #[test]
    fn idle_connections_cannot_keep_a_scrape_out() {
        let mut metrics = Metrics::new(1);
        let server = metrics.server_metrics();
        let metrics = Arc::new(Mutex::new(metrics));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let limits = Limits {
            max_connections: 8,
            header_timeout: Duration::from_millis(500),
        };
        // The exporter on a runtime of its own thread, as the daemon's; it ends with the test.
        {
            let server = server.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let listener = TcpListener::from_std(std_listener).unwrap();
                    serve(listener, metrics, server, limits, WebConfig::default()).await
                })
            });
        }
        let idle: Vec<_> = (0..20)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let started = Instant::now();
        let text = scrape(addr).unwrap();
        assert!(text.starts_with("HTTP/1.0 200"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(text.contains(
            "reaper_trace_connections_closed_total{listener=\"metrics\",reason=\"cap\"}"
        ));
        // All 20 idle ones are closed by now or soon: at the cap, or at the timeout.
        std::thread::sleep(Duration::from_millis(900));
        for mut s in idle {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 64];
            // Closed: end of file (or a reset), never a timeout.
            match s.read(&mut buf) {
                Ok(n) => assert_eq!(n, 0),
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
            }
        }
        let closed = |reason| {
            server
                .closed
                .get_or_create(&ClosedLabels {
                    listener: "metrics",
                    reason,
                })
                .get()
        };
        assert!(closed("cap") >= 13, "{}", closed("cap"));
        assert!(closed("timeout") >= 1, "{}", closed("timeout"));
    }
}
