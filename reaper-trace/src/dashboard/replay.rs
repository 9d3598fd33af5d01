//! Playing a recording back on its own clock: the replay clock starts when the recording
//! started and runs `speed` times as fast as the wall clock; every event whose time has come
//! is handed to the view. Speed 0 plays everything at once and stays on the final state.
//!
//! The recording is streamed: events are read as the clock reaches them, never held all at
//! once, so memory does not grow with the file. Its length is known up front from its header
//! or first event (the start) and its last line (the end, read from the file's tail); an
//! event met later than that end moves the end. Seeking forward plays every event up to the
//! target at once; seeking back starts again from the beginning of the file (the view is
//! rebuilt by the caller) and plays up to the target.

use std::collections::VecDeque;
use std::io::{BufRead, Seek};
use std::time::Duration;

use anyhow::Result;

use crate::event::Event;
use crate::jsonl::{self, Reader};
use crate::view::NS_PER_SEC;

/// At most this many events are handed out per [`Player::advance`]: a jump over a large
/// recording is played over several turns of the run loop, which keeps the keys answered.
pub const BATCH: usize = 16 * 1024;

/// Before the first frame, the events in this many bytes of lines are read ahead: a malformed
/// line among them (in a small recording, any) is an error before the terminal is touched.
pub const CHECKED_AHEAD_BYTES: usize = 1 << 20;

/// A jump in recording time (keys `]`, `[`, `}`, `{`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jump {
    /// This many seconds (negative: back).
    Seconds(i64),
    /// This many tenths of the recording's length.
    Tenths(i64),
}

/// What a seek asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeked {
    /// The events up to the target are due at the next [`Player::advance`].
    Forward,
    /// Playing starts again from the beginning: start from an empty view; the events up to the
    /// target are due.
    Rewound,
}

pub struct Player<R> {
    reader: Reader<R>,
    /// Events read but not due yet, in file order: all of the first [`CHECKED_AHEAD_BYTES`]
    /// at the start, then at most one.
    ahead: VecDeque<Event>,
    /// The events of the latest `advance`.
    due: Vec<Event>,
    /// The last `advance` stopped at [`BATCH`] with events still due.
    behind: bool,
    /// Why playing stopped before the end (a malformed line, a read error).
    error: Option<anyhow::Error>,
    /// 0: as fast as possible.
    speed: f64,
    paused: bool,
    start: u64,
    end: u64,
    clock: u64,
}

impl<R: BufRead + Seek> Player<R> {
    /// Reads the recording's header, its end and the first [`CHECKED_AHEAD_BYTES`] of its
    /// events: an error among them is returned here.
    pub fn new(mut reader: Reader<R>, speed: f64) -> Result<Self> {
        let last = jsonl::last_event_ts(reader.get_mut()).ok().flatten();
        let mut ahead = VecDeque::new();
        let mut read = 0;
        while read < CHECKED_AHEAD_BYTES
            && let Some(ev) = reader.next_event()?
        {
            read += reader.line_bytes();
            ahead.push_back(ev);
        }
        let started = reader.header().started_ts;
        let start = ahead.front().map_or(started, |ev| ev.ts().min(started));
        let seen = ahead.iter().map(Event::ts).max();
        let end = last.max(seen).unwrap_or(start).max(start);
        Ok(Self {
            reader,
            ahead,
            due: Vec::new(),
            behind: false,
            error: None,
            speed: speed.max(0.0),
            paused: false,
            start,
            end,
            clock: start,
        })
    }

    /// The next event in the file, read if need be (the end moves past a later one). A
    /// reading error stops playing, kept for [`Player::error`].
    fn peek(&mut self) -> Option<&Event> {
        if self.ahead.is_empty() && self.error.is_none() {
            match self.reader.next_event() {
                Ok(Some(ev)) => {
                    self.end = self.end.max(ev.ts());
                    self.ahead.push_back(ev);
                }
                Ok(None) => {}
                Err(e) => self.error = Some(e),
            }
        }
        self.ahead.front()
    }

    /// Moves the replay clock on by `real` wall-clock time (unless paused) and returns the
    /// events that are now due, in recording order, at most [`BATCH`] of them (see
    /// [`Player::behind`]).
    pub fn advance(&mut self, real: Duration) -> &[Event] {
        if self.speed > 0.0 && !self.paused {
            let step = (real.as_nanos() as f64 * self.speed).min(u64::MAX as f64) as u64;
            self.clock = self.clock.saturating_add(step).min(self.end);
        }
        self.due.clear();
        let all = self.speed == 0.0;
        while self.due.len() < BATCH {
            let clock = self.clock;
            match self.peek() {
                Some(ev) if all || ev.ts() <= clock => {
                    let ev = self.ahead.pop_front().expect("peeked");
                    self.due.push(ev);
                }
                _ => break,
            }
        }
        self.behind = self.due.len() == BATCH;
        if all {
            self.clock = self.end;
        }
        &self.due
    }

    /// [`Player::advance`], the due events moved into `out` (not copied).
    pub fn advance_into(&mut self, real: Duration, out: &mut Vec<Event>) {
        self.advance(real);
        out.append(&mut self.due);
    }

    /// Events are due still: call [`Player::advance`] again without waiting.
    pub fn behind(&self) -> bool {
        self.behind
    }

    /// Moves the replay clock by `jump`, within the recording. Forward, the events up to the
    /// target are due; back, the file is read again from the start (see [`Seeked::Rewound`]).
    /// When it cannot be read again, playing stops with that error.
    pub fn seek(&mut self, jump: Jump) -> Seeked {
        let delta = match jump {
            Jump::Seconds(s) => s as i128 * NS_PER_SEC as i128,
            Jump::Tenths(t) => t as i128 * (self.end - self.start) as i128 / 10,
        };
        let target =
            (self.clock as i128 + delta).clamp(self.start as i128, self.end as i128) as u64;
        if target >= self.clock {
            self.clock = target;
            self.behind = true;
            return Seeked::Forward;
        }
        self.ahead.clear();
        self.error = self.reader.rewind().err();
        self.clock = target;
        self.behind = true;
        Seeked::Rewound
    }

    /// The replay clock, in the recording's time (`CLOCK_BOOTTIME` ns of the traced host).
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Every event has been played (or an error stopped playing).
    pub fn done(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Why playing stopped before the end: a malformed line met while playing, a read error.
    pub fn error(&self) -> Option<&anyhow::Error> {
        self.error.as_ref()
    }

    pub fn take_error(&mut self) -> Option<anyhow::Error> {
        self.error.take()
    }

    /// The number of the recording's last line, once it has been met cut short.
    pub fn cut_line(&self) -> Option<usize> {
        self.reader.cut_line()
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
    use std::io::Cursor;

    const S: u64 = NS_PER_SEC;
    const MS: Duration = Duration::from_millis(1);

    /// A recording started at 1000 ns, as text: `lost` events at these times, then `tail`.
    fn text(ts: &[u64], tail: &str) -> String {
        let mut s = String::from(
            r#"{"type":"header","schema":1,"tool":"t","kernel":"k","host":"h","boot_time_ns":0,"started_ts":1000}"#,
        );
        s.push('\n');
        for ts in ts {
            s.push_str(&format!(
                "{{\"type\":\"lost\",\"ts\":{ts},\"what\":\"x\",\"count\":1}}\n"
            ));
        }
        s.push_str(tail);
        s
    }

    fn player_of(text: String, speed: f64) -> Result<Player<Cursor<Vec<u8>>>> {
        let reader = Reader::new(Cursor::new(text.into_bytes()), "t.jsonl")?;
        Player::new(reader, speed)
    }

    fn player(ts: &[u64], speed: f64) -> Player<Cursor<Vec<u8>>> {
        player_of(text(ts, ""), speed).unwrap()
    }

    fn times(events: &[Event]) -> Vec<u64> {
        events.iter().map(Event::ts).collect()
    }

    #[test]
    fn plays_in_recording_time_times_speed() {
        let mut p = player(&[1_000, 2_000_000, 5_000_000], 1.0);
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
    fn advance_into_moves_the_due_events_out() {
        let mut p = player(&[1_000, 2_000_000], 1.0);
        let mut out = Vec::new();
        p.advance_into(Duration::ZERO, &mut out);
        assert_eq!(times(&out), [1_000]);
        p.advance_into(2 * MS, &mut out);
        assert_eq!(times(&out), [1_000, 2_000_000]);
        p.advance_into(MS, &mut out);
        assert_eq!(out.len(), 2, "nothing handed out twice");
    }

    #[test]
    fn speed_zero_plays_everything_at_once() {
        let mut p = player(&[5_000, 3_000, 9_000_000_000], 0.0);
        assert_eq!(p.advance(Duration::ZERO).len(), 3);
        assert!(p.done());
        assert_eq!(p.clock(), 9_000_000_000);
        assert_eq!(p.advance(Duration::ZERO).len(), 0);
        p.scale_speed(2.0);
        assert_eq!(p.speed(), 0.0);
    }

    #[test]
    fn an_empty_recording_is_done_at_once() {
        let mut p = player(&[], 1.0);
        assert!(p.advance(Duration::ZERO).is_empty());
        assert!(p.done());
        assert_eq!(p.position(), (0, 0));
    }

    #[test]
    fn many_due_events_come_in_batches() {
        let ts: Vec<u64> = (0..BATCH as u64 + 10).map(|i| 1_000 + i).collect();
        let mut p = player(&ts, 0.0);
        assert_eq!(p.advance(Duration::ZERO).len(), BATCH);
        assert!(p.behind());
        assert_eq!(p.advance(Duration::ZERO).len(), 10);
        assert!(!p.behind() && p.done());
    }

    /// Events every second from 1 s to 100 s of recording time (the start is 1000 ns).
    fn seconds() -> Player<Cursor<Vec<u8>>> {
        let ts: Vec<u64> = (1..=100).map(|i| i * S).collect();
        player(&ts, 1.0)
    }

    #[test]
    fn seeking_forward_plays_up_to_the_target_at_once() {
        let mut p = seconds();
        assert!(p.advance(Duration::ZERO).is_empty());
        assert_eq!(p.seek(Jump::Seconds(10)), Seeked::Forward);
        assert!(p.behind());
        let due = times(p.advance(Duration::ZERO));
        assert_eq!(due, (1..=10).map(|i| i * S).collect::<Vec<_>>());
        assert_eq!(p.position(), (10 * S, 100 * S - 1_000));
        // A tenth of the recording: about 10 s more.
        assert_eq!(p.seek(Jump::Tenths(1)), Seeked::Forward);
        let due = times(p.advance(Duration::ZERO));
        assert_eq!(due, (11..=20).map(|i| i * S).collect::<Vec<_>>());
        // Paused, a seek still plays what it passes.
        p.set_paused(true);
        p.seek(Jump::Seconds(5));
        assert_eq!(p.advance(Duration::ZERO).len(), 5);
    }

    #[test]
    fn seeking_back_starts_again_up_to_the_target() {
        let mut p = seconds();
        p.seek(Jump::Seconds(30));
        assert_eq!(p.advance(Duration::ZERO).len(), 30);
        assert_eq!(p.seek(Jump::Seconds(-10)), Seeked::Rewound);
        // Everything from the start up to 20 s, for a view built again.
        let due = times(p.advance(Duration::ZERO));
        assert_eq!(due, (1..=20).map(|i| i * S).collect::<Vec<_>>());
        assert_eq!(p.position().0, 20 * S);
        // Then it plays on from there.
        assert_eq!(times(p.advance(Duration::from_secs(1))), [21 * S]);
    }

    #[test]
    fn seeking_stops_at_either_end() {
        let mut p = seconds();
        p.seek(Jump::Seconds(50));
        p.advance(Duration::ZERO);
        // Before the start: the start.
        assert_eq!(p.seek(Jump::Tenths(-20)), Seeked::Rewound);
        assert!(p.advance(Duration::ZERO).is_empty());
        assert_eq!(p.position().0, 0);
        // Already at the start, back again: still the start, nothing played.
        assert_eq!(p.seek(Jump::Seconds(-10)), Seeked::Forward);
        assert!(p.advance(Duration::ZERO).is_empty());
        // Past the end: the end, every event played.
        assert_eq!(p.seek(Jump::Seconds(1_000)), Seeked::Forward);
        assert_eq!(p.advance(Duration::ZERO).len(), 100);
        assert!(p.done());
        assert_eq!(p.position(), (100 * S - 1_000, 100 * S - 1_000));
    }

    /// More events than are read ahead before the first frame, with lines of this many bytes.
    fn past_the_read_ahead() -> Vec<u64> {
        let line = text(&[1_000_000], "").lines().nth(1).unwrap().len() + 1;
        (0..(2 * CHECKED_AHEAD_BYTES / line) as u64)
            .map(|i| 1_000_000 + i)
            .collect()
    }

    #[test]
    fn the_length_is_known_from_the_tail_and_grows_past_it() {
        let mut ts = past_the_read_ahead();
        let n = ts.len();
        // Out of order, beyond the read-ahead: later than the last line.
        ts[n - 10] = 50 * S;
        let last = ts[n - 1];
        let mut p = player(&ts, 0.0);
        assert_eq!(p.position(), (0, last - 1_000));
        while !p.done() {
            p.advance(Duration::ZERO);
        }
        assert_eq!(p.position(), (50 * S - 1_000, 50 * S - 1_000));
        // A cut last line is passed over for the length, and said once reached.
        let mut p = player_of(text(&ts[..n - 1], r#"{"type":"lost","ts":99"#), 0.0).unwrap();
        assert_eq!(p.position().1, ts[n - 2] - 1_000);
        assert_eq!(p.cut_line(), None);
        while !p.done() {
            p.advance(Duration::ZERO);
        }
        assert_eq!(p.cut_line(), Some(n + 1));
        assert!(p.error().is_none());
    }

    #[test]
    fn a_malformed_line_stops_playing_where_it_is_met() {
        // Within the read-ahead: an error before anything is shown.
        let err = player_of(text(&[5_000], "{\"type\":\n"), 1.0)
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").starts_with("t.jsonl:3: malformed event"),
            "{err:#}"
        );
        // Past it: the events before it are played, then playing stops with the error.
        let ts = past_the_read_ahead();
        let n = ts.len();
        let mut p = player_of(text(&ts, "{\"type\":\n{\"type\":\"lost\"}\n"), 0.0).unwrap();
        let mut played = 0;
        while !p.done() {
            played += p.advance(Duration::ZERO).len();
        }
        assert_eq!(played, n);
        let msg = format!("{:#}", p.error().unwrap());
        assert!(
            msg.starts_with(&format!("t.jsonl:{}: malformed event", n + 2)),
            "{msg}"
        );
        // Seeking back plays again, up to the same line.
        assert_eq!(p.seek(Jump::Tenths(-10)), Seeked::Rewound);
        assert!(p.error().is_none());
    }
}
