//! The one loop every front end runs: events from a [`Source`] (the kernel, a daemon's
//! stream, a recording) to a [`Sink`] (`record`, `daemon`, `doctor`, `top`, `validate`).
//!
//! The loop owns what every front end needs the same way: the stop signals, the first events
//! (the zombies already there), the order in which inputs are looked at (signals, then the
//! sink's own inputs, then records: however fast records come, a signal or a key is seen
//! between two batches), and the end (the source's last events, read after the sink has
//! stopped what it started). A sink says what its inputs are and what it does with events.

use std::future::Future;

use anyhow::Result;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::event::Event;
use crate::session::Session;

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Go,
    Stop,
}

/// Where events come from.
pub trait Source {
    /// The events known before the first record: for the kernel, the zombies already there.
    fn first_events(&mut self, _out: &mut Vec<Event>) {}
    /// Waits until [`Source::step`] has work. Cancel-safe: the loop drops it when a signal
    /// or an input comes first.
    fn ready(&mut self) -> impl Future<Output = Result<()>>;
    /// Appends a bounded batch of events to `out`; [`Flow::Stop`] once the source has ended.
    fn step(&mut self, out: &mut Vec<Event>) -> Flow;
    /// The source's last events, once the loop has ended.
    fn finish(&mut self, _out: &mut Vec<Event>) -> impl Future<Output = ()> {
        async {}
    }
    /// Warnings from the kernel programs since the last call (rare conditions).
    fn kernel_messages(&mut self) -> Vec<String> {
        Vec::new()
    }
}

impl Source for Session {
    fn first_events(&mut self, out: &mut Vec<Event>) {
        out.extend(self.zombies_before_trace());
    }

    fn ready(&mut self) -> impl Future<Output = Result<()>> {
        Session::ready(self)
    }

    fn step(&mut self, out: &mut Vec<Event>) -> Flow {
        Session::step(self, out);
        Flow::Go
    }

    fn finish(&mut self, out: &mut Vec<Event>) -> impl Future<Output = ()> {
        Session::finish(self, out)
    }

    fn kernel_messages(&mut self) -> Vec<String> {
        Session::kernel_messages(self)
    }
}

/// What a front end does with the events of a source `S`.
pub trait Sink<S: Source> {
    /// One of the front end's own inputs (a key, a command's exit, a timer).
    type Input;

    /// The source is ready and `first` holds its first events: write a header, start a
    /// command, apply them. The sink takes the events it keeps (`first` is then cleared).
    fn started(&mut self, source: &mut S, first: &mut Vec<Event>) -> Result<Flow>;
    /// Waits for the next of the front end's own inputs. Cancel-safe. None: never returns.
    fn input(&mut self) -> impl Future<Output = Self::Input>;
    fn on_input(&mut self, input: Self::Input, source: &mut S) -> Result<Flow>;
    /// Ctrl-C, SIGTERM or SIGHUP came: by default, the end.
    fn on_signal(&mut self, _signal: i32, _source: &mut S) -> Result<Flow> {
        Ok(Flow::Stop)
    }
    /// A batch of events (none, when housekeeping or an input woke the loop up), in order.
    fn on_events(&mut self, events: &mut Vec<Event>, source: &mut S) -> Result<Flow>;
    /// A warning from the kernel programs: one escaped line on standard error by default.
    fn on_kernel_message(&mut self, message: &str) {
        eprintln!(
            "reaper-trace: kernel: {}",
            crate::escape::escape_control(message)
        );
    }
    /// The loop has ended, the source's last events are not read yet: stop what the sink
    /// started (a command), give a terminal back.
    fn stopping(&mut self, _source: &mut S) -> impl Future<Output = Result<()>> {
        async { Ok(()) }
    }
    /// The source's last events.
    fn finish(&mut self, last: &mut Vec<Event>, source: &mut S) -> Result<()>;
}

/// Ctrl-C, SIGTERM and SIGHUP: what ends a session (unless the sink decides otherwise).
/// Registered once, before anything that waits (a FIFO's reader, the programs' loading), so
/// a signal is never lost to the default action.
pub struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl StopSignals {
    pub fn new() -> Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next of them to come, by number. Cancel-safe.
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.hup.recv() => libc::SIGHUP,
        }
    }
}

/// Runs `sink` on `source` until one of them, or a signal, ends it; then reads the source's
/// last events into the sink.
pub async fn run<S: Source, K: Sink<S>>(
    source: &mut S,
    signals: &mut StopSignals,
    sink: &mut K,
) -> Result<()> {
    let mut events = Vec::new();
    source.first_events(&mut events);
    let mut flow = sink.started(source, &mut events)?;
    events.clear();
    while flow == Flow::Go {
        // Signals, then the sink's inputs, then records (`biased`): the first two are seen
        // between two batches, however many records are waiting.
        flow = tokio::select! {
            biased;
            sig = signals.recv() => sink.on_signal(sig, source)?,
            input = sink.input() => sink.on_input(input, source)?,
            r = source.ready() => {
                r?;
                Flow::Go
            }
        };
        if flow == Flow::Stop {
            // Nothing to wait for: the end starts now, not after one more batch.
            break;
        }
        let ended = source.step(&mut events);
        flow = sink.on_events(&mut events, source)?;
        events.clear();
        for message in source.kernel_messages() {
            sink.on_kernel_message(&message);
        }
        if ended == Flow::Stop {
            flow = Flow::Stop;
        }
    }
    sink.stopping(source).await?;
    source.finish(&mut events).await;
    for message in source.kernel_messages() {
        sink.on_kernel_message(&message);
    }
    sink.finish(&mut events, source)
}
