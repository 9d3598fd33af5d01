//! Playing a recording back on its own clock: the replay clock starts when the recording
//! started and runs `speed` times as fast as the wall clock; every event whose time has come
//! is handed to the view. Speed 0 plays everything at once and stays on the final state.

use std::time::Duration;

use crate::event::Event;
use crate::jsonl::Recording;

pub struct Player {
    events: Vec<Event>,
    next: usize,
    /// 0: as fast as possible.
    speed: f64,
    paused: bool,
    start: u64,
    end: u64,
    clock: u64,
}

impl Player {
    pub fn new(rec: Recording, speed: f64) -> Self {
        let first = rec.events.iter().map(Event::ts).min();
        let last = rec.events.iter().map(Event::ts).max();
        let start = first.map_or(rec.header.started_ts, |f| f.min(rec.header.started_ts));
        let end = last.unwrap_or(start).max(start);
        Self {
            events: rec.events,
            next: 0,
            speed: speed.max(0.0),
            paused: false,
            start,
            end,
            clock: start,
        }
    }

    /// Moves the replay clock on by `real` wall-clock time (unless paused) and returns the
    /// events that are now due, in recording order.
    pub fn advance(&mut self, real: Duration) -> &[Event] {
        if self.speed == 0.0 {
            self.clock = self.end;
        } else if !self.paused {
            let step = (real.as_nanos() as f64 * self.speed).min(u64::MAX as f64) as u64;
            self.clock = self.clock.saturating_add(step).min(self.end);
        }
        let from = self.next;
        while self.next < self.events.len() && self.events[self.next].ts() <= self.clock {
            self.next += 1;
        }
        &self.events[from..self.next]
    }

    /// The replay clock, in the recording's time (`CLOCK_BOOTTIME` ns of the traced host).
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Every event has been played.
    pub fn done(&self) -> bool {
        self.next == self.events.len()
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Multiplies the speed (a speed of 0, as fast as possible, stays so).
    pub fn scale_speed(&mut self, factor: f64) {
        if self.speed > 0.0 {
            self.speed = (self.speed * factor).clamp(1.0 / 64.0, 1024.0);
        }
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// (played, total) recording time in ns.
    pub fn position(&self) -> (u64, u64) {
        (self.clock - self.start, self.end - self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Header;

    fn rec(ts: &[u64]) -> Recording {
        Recording {
            header: Header {
                kind: "header".into(),
                schema: 1,
                tool: String::new(),
                kernel: String::new(),
                host: String::new(),
                boot_time_ns: 0,
                started_ts: 1_000,
                command: None,
            },
            events: ts
                .iter()
                .map(|&ts| Event::Lost {
                    ts,
                    what: "x".into(),
                    count: 1,
                })
                .collect(),
            cut_line: None,
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn plays_in_recording_time_times_speed() {
        let mut p = Player::new(rec(&[1_000, 2_000_000, 5_000_000]), 1.0);
        assert_eq!(p.advance(Duration::ZERO).len(), 1);
        assert_eq!(p.advance(MS).len(), 0);
        assert_eq!(p.advance(MS).len(), 1);
        assert!(!p.done());
        p.set_paused(true);
        assert_eq!(p.advance(10 * MS).len(), 0);
        p.set_paused(false);
        p.scale_speed(2.0);
        // 1.5 ms at 2x is 3 ms of recording: past 5 ms.
        assert_eq!(p.advance(Duration::from_micros(1500)).len(), 1);
        assert!(p.done());
        // The clock stops at the end of the recording.
        p.advance(Duration::from_secs(10));
        assert_eq!(p.clock(), 5_000_000);
        assert_eq!(p.position(), (4_999_000, 4_999_000));
    }

    #[test]
    fn speed_zero_plays_everything_at_once() {
        let mut p = Player::new(rec(&[5_000, 3_000, 9_000_000_000]), 0.0);
        assert_eq!(p.advance(Duration::ZERO).len(), 3);
        assert!(p.done());
        assert_eq!(p.clock(), 9_000_000_000);
        assert_eq!(p.advance(Duration::ZERO).len(), 0);
        p.scale_speed(2.0);
        assert_eq!(p.speed(), 0.0);
    }

    #[test]
    fn an_empty_recording_is_done_at_once() {
        let mut p = Player::new(rec(&[]), 1.0);
        assert!(p.advance(Duration::ZERO).is_empty());
        assert!(p.done());
        assert_eq!(p.position(), (0, 0));
    }
}
