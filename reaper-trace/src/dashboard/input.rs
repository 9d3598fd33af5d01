//! Reading the terminal's input (keys, resizes) on a thread of its own, handed to the async
//! run loop through a channel. The thread polls with a timeout so it can be stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossterm::event;
use tokio::sync::mpsc;

const POLL: Duration = Duration::from_millis(100);

pub struct Input {
    pub events: mpsc::UnboundedReceiver<event::Event>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Input {
    pub fn spawn() -> std::io::Result<Self> {
        let (tx, events) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("top-input".into())
            .spawn(move || {
                // An error (the terminal went away) ends the thread; the closed channel then
                // tells the run loop to quit.
                while !flag.load(Ordering::Relaxed) {
                    match event::poll(POLL) {
                        Ok(false) => continue,
                        Ok(true) => match event::read() {
                            Ok(ev) => {
                                if tx.send(ev).is_err() {
                                    break;
                                }
                            }
                            Err(_) => break,
                        },
                        Err(_) => break,
                    }
                }
            })?;
        Ok(Self {
            events,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Not joined: when the terminal has gone away (its pty closed), crossterm's read can
        // spin on end-of-file and never return; the thread ends with the process.
        drop(self.thread.take());
    }
}
