//! The client side of the daemon's event stream (`record --connect`, `top --connect`): the
//! stream is a recording as it is written, so it is read by the one recording reader
//! ([`crate::jsonl::Reader`]: the same header check, line cap and error rules as a replay),
//! on a thread of its own, its lines handed over as they come.

use std::path::{Path, PathBuf};

use anyhow::Result;
use tokio::sync::mpsc;

use crate::event::{Event, Header};
use crate::live::{Flow, Source};

/// Lines read ahead of the consumer at most.
const AHEAD: usize = crate::session::BATCH;

/// A daemon's stream being read: its header, then its events.
pub struct Subscription {
    pub socket: PathBuf,
    pub header: Header,
    rx: mpsc::Receiver<Result<Event, Ended>>,
}

/// Why a daemon's stream gave no header.
enum Refused {
    /// Closed before a byte.
    Closed,
    /// Its first line is not a recording's header.
    NotAStream,
}

/// Why a daemon's stream ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    /// The end of the stream (or a last line cut short by the daemon's exit).
    #[error("the daemon stopped")]
    DaemonStopped,
    /// A line the reader refused: the error says which and why.
    #[error("{0}")]
    Unreadable(String),
}

/// Connects to the daemon on `socket` and reads its header: errors (nobody answers, a user
/// who may not connect, something that is not a daemon's stream) are one line each.
pub async fn subscribe(socket: &Path) -> Result<Subscription> {
    let stream = super::connect(socket).await?.into_std()?;
    stream.set_nonblocking(false)?;
    let name = socket.display().to_string();
    let (header_tx, header_rx) = tokio::sync::oneshot::channel();
    let (tx, rx) = mpsc::channel(AHEAD);
    std::thread::Builder::new()
        .name("stream-reader".into())
        .spawn(move || {
            use std::io::BufRead;
            let mut input = std::io::BufReader::new(stream);
            // Closed before a byte: refused (the daemon is at its client cap) or stopping.
            if input.fill_buf().map_or(true, |b| b.is_empty()) {
                let _ = header_tx.send(Err(Refused::Closed));
                return;
            }
            let mut reader = match crate::jsonl::Reader::new(input, name.clone()) {
                Ok(r) => r,
                Err(_) => {
                    let _ = header_tx.send(Err(Refused::NotAStream));
                    return;
                }
            };
            if header_tx.send(Ok(reader.header().clone())).is_err() {
                return;
            }
            loop {
                let item = match reader.next_event() {
                    Ok(Some(ev)) => Ok(ev),
                    Ok(None) => Err(Ended::DaemonStopped),
                    Err(e) => Err(Ended::Unreadable(format!("{e:#}"))),
                };
                let end = item.is_err();
                if tx.blocking_send(item).is_err() || end {
                    return;
                }
            }
        })?;
    let header = match header_rx.await {
        Ok(Ok(h)) => h,
        Ok(Err(Refused::NotAStream)) => anyhow::bail!(
            "{}: the daemon's stream does not start with a header: is it a reaper-trace daemon?",
            socket.display()
        ),
        Ok(Err(Refused::Closed)) | Err(_) => anyhow::bail!(
            "the daemon on {} closed the connection before sending anything: it serves {} clients at most (see reaper_trace_connections_closed_total), or it is stopping",
            socket.display(),
            super::stream::MAX_CLIENTS
        ),
    };
    Ok(Subscription {
        socket: socket.to_path_buf(),
        header,
        rx,
    })
}

impl Subscription {
    /// The next event; `Err` says why the stream ended. After an `Err`, nothing more comes.
    pub async fn next(&mut self) -> Result<Event, Ended> {
        self.rx.recv().await.unwrap_or(Err(Ended::DaemonStopped))
    }

    /// An event already read, without waiting.
    pub fn try_next(&mut self) -> Option<Result<Event, Ended>> {
        self.rx.try_recv().ok()
    }
}

/// A daemon's stream as a [`Source`]: events as they come, until the daemon stops or a line
/// is refused.
pub struct Connected {
    pub subscription: Subscription,
    /// Received while waiting, handed over at the next step.
    pending: Vec<Event>,
    /// Why the stream ended, once it has.
    pub ended: Option<Ended>,
}

impl Connected {
    pub fn new(subscription: Subscription) -> Self {
        Self {
            subscription,
            pending: Vec::new(),
            ended: None,
        }
    }

    fn take(&mut self, r: Result<Event, Ended>) {
        match r {
            Ok(ev) => self.pending.push(ev),
            Err(e) => self.ended = Some(e),
        }
    }
}

impl Source for Connected {
    async fn ready(&mut self) -> Result<()> {
        if self.ended.is_some() {
            return std::future::pending().await;
        }
        let r = self.subscription.next().await;
        self.take(r);
        Ok(())
    }

    fn step(&mut self, out: &mut Vec<Event>) -> Flow {
        while self.pending.len() < AHEAD
            && self.ended.is_none()
            && let Some(r) = self.subscription.try_next()
        {
            self.take(r);
        }
        out.append(&mut self.pending);
        if self.ended.is_some() {
            Flow::Stop
        } else {
            Flow::Go
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A socket that answers each connection with `reply`, then closes it.
    fn fake_daemon(name: &str, reply: &'static [u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rt-client-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.write_all(reply);
            }
        });
        path
    }

    fn subscribe_to(path: &Path) -> Result<Subscription> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(subscribe(path))
    }

    #[test]
    fn what_is_not_a_daemons_stream_is_said_in_one_line() {
        let closed = fake_daemon("closed", b"");
        let e = format!("{:#}", subscribe_to(&closed).err().unwrap());
        assert!(
            e.contains("closed the connection before sending anything")
                && e.contains("64 clients at most")
                && !e.contains('\n'),
            "{e}"
        );
        let other = fake_daemon("other", b"HTTP/1.1 400 Bad Request\r\n\r\n");
        let e = format!("{:#}", subscribe_to(&other).err().unwrap());
        assert!(
            e.contains("does not start with a header: is it a reaper-trace daemon?")
                && !e.contains('\n'),
            "{e}"
        );
        for p in [closed, other] {
            let _ = std::fs::remove_dir_all(p.parent().unwrap());
        }
    }

    #[test]
    fn a_stream_ends_with_why() {
        let header = crate::jsonl::header(None, 1);
        let mut text = serde_json::to_string(&header).unwrap();
        text.push('\n');
        text.push_str(r#"{"type":"lost","ts":2,"what":"fork","count":1}"#);
        text.push_str("\n{\"type\":\"nonsense\"}\n");
        let reply: &'static [u8] = Box::leak(text.into_bytes().into_boxed_slice());
        let path = fake_daemon("stream", reply);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut s = subscribe(&path).await.unwrap();
            assert_eq!(s.header.started_ts, 1);
            assert!(matches!(s.next().await, Ok(Event::Lost { count: 1, .. })));
            match s.next().await {
                Err(Ended::Unreadable(why)) => {
                    assert!(why.contains(":3: malformed event"), "{why}")
                }
                other => panic!("{other:?}"),
            }
            // Nothing after the end, and no hang.
            assert_eq!(s.next().await.err(), Some(Ended::DaemonStopped));
        });
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
