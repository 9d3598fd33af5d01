//! The pause after a failed accept. A full file table (EMFILE, ENFILE) fails every accept at
//! once while the pending connection stays queued: retrying at once spins a core and starves
//! the rest of the daemon. The pause doubles up to a second and starts over after a success.

use std::future::Future;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

const FIRST: Duration = Duration::from_millis(10);
const LONGEST: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// How long to pause after this failure.
    pub fn failed(&mut self) -> Duration {
        let pause = self.next.unwrap_or(FIRST);
        self.next = Some((pause * 2).min(LONGEST));
        pause
    }

    pub fn succeeded(&mut self) {
        self.next = None;
    }
}

/// A listener's accepts: each failure counted in `errors` and followed by the pause.
pub struct Acceptor {
    backoff: Backoff,
    errors: Counter,
}

impl Acceptor {
    pub fn new(errors: Counter) -> Self {
        Self {
            backoff: Backoff::default(),
            errors,
        }
    }

    /// The next connection `accept` gives, however many failures come first.
    pub async fn next<T, Fut>(&mut self, mut accept: impl FnMut() -> Fut) -> T
    where
        Fut: Future<Output = std::io::Result<T>>,
    {
        loop {
            match accept().await {
                Ok(conn) => {
                    self.backoff.succeeded();
                    return conn;
                }
                Err(_) => {
                    self.errors.inc();
                    tokio::time::sleep(self.backoff.failed()).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_second_and_starts_over_after_a_success() {
        let mut b = Backoff::default();
        let pauses: Vec<u128> = (0..9).map(|_| b.failed().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), FIRST);
    }
}
