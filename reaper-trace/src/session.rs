//! A tracing session: the attached programs and the model fed from them. `record`, `top` and
//! `validate` all read events through this one path.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::clock::boottime_ns;
use crate::decode::{self, decode};
use crate::event::Event;
use crate::model::{Model, Scope};
use crate::tracer::Tracer;
use crate::{btf_offsets, preflight, procfs};

/// How often lost counters are read and zombies are checked against `/proc`.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(500);
/// A zombie whose reap has not been seen is checked against `/proc` after this long.
const RECONCILE_AFTER_NS: u64 = 2_000_000_000;

pub struct SessionOptions {
    pub scope: Scope,
    pub ring_bytes: u32,
}

pub struct Session {
    tracer: Tracer,
    pub model: Model,
    /// Records that failed to decode (a version mismatch between programs and userspace).
    pub bad_records: u64,
    pub started_ts: u64,
    last_housekeeping: Instant,
}

impl Session {
    /// `zombie` events (`before_trace`) for the zombies that existed when tracing began: the
    /// first events of a session.
    pub fn zombies_before_trace(&self) -> Vec<Event> {
        self.model.zombies_before_trace(self.started_ts)
    }

    /// Checks privileges and tracefs, resolves offsets, attaches, and learns existing tasks.
    pub fn start(opts: &SessionOptions) -> Result<Self> {
        preflight::check_privileges()?;
        if preflight::ensure_tracefs()? {
            eprintln!("reaper-trace: mounted tracefs at {}", preflight::TRACEFS);
        }
        let offsets = btf_offsets::resolve()?;
        let tracer = Tracer::attach(&offsets, opts.ring_bytes)?;
        let started_ts = boottime_ns();
        let mut model = Model::new(opts.scope);
        // Read /proc after attaching: a task born in between is then seen by both, never by
        // neither; the model takes the kernel's record over /proc's when both describe it.
        model.seed(&procfs::scan());
        Ok(Self {
            tracer,
            model,
            bad_records: 0,
            started_ts,
            last_housekeeping: Instant::now(),
        })
    }

    pub async fn readable(&self) -> Result<()> {
        self.tracer.readable().await
    }

    /// Applies every available record; events go to `out`. Runs housekeeping when due.
    pub fn poll(&mut self, out: &mut Vec<Event>) -> usize {
        let model = &mut self.model;
        let bad = &mut self.bad_records;
        let n = self.tracer.drain(|bytes| match decode(bytes) {
            Ok(raw) => model.apply(&raw, out),
            Err(_) => *bad += 1,
        });
        if self.last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
            self.housekeeping(out);
        }
        n
    }

    /// The last records, lost counts and reconciliation of a session that is ending.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.poll(out);
        self.housekeeping(out);
        self.model.finish(boottime_ns(), out);
    }

    /// What the kernel programs logged since the last call (rare conditions).
    pub fn kernel_messages(&mut self) -> Vec<String> {
        self.tracer.kernel_messages()
    }

    /// Reports lost records and drops zombies the kernel no longer has.
    pub fn housekeeping(&mut self, out: &mut Vec<Event>) {
        self.last_housekeeping = Instant::now();
        let now = boottime_ns();
        for (slot, count) in self.tracer.lost_since_last() {
            out.push(Event::Lost {
                ts: now,
                what: decode::kind_name(slot).to_string(),
                count,
            });
        }
        self.model.reconcile(now, RECONCILE_AFTER_NS, out);
    }
}
