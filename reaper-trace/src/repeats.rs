//! Records sent twice by the kernel programs' standby copies (`reaper_trace_common::standby`):
//! where a preempted copy's note of the calls it handled is overwritten halfway, a later copy
//! handles the same call again. Each of these records is about something that happens once —
//! a task's fork, exit (and the snapshot taken with it) and release, or one exec of a task
//! (its exec count tells two execs apart) — so a second one with the same key is a repeat.

use std::collections::{HashSet, VecDeque};

use reaper_trace_common::kind;

use crate::decode::RawEvent;

/// Keys remembered: a repeat arrives right after the record it repeats (the same call on the
/// same CPU), so a window of this many distinct records is plenty.
const WINDOW: usize = 1 << 14;

/// (record kind, tid, start time, exec count).
type Key = (u32, u32, u64, u32);

#[derive(Default)]
pub struct Repeats {
    seen: HashSet<Key>,
    order: VecDeque<Key>,
}

impl Repeats {
    /// Is `raw` a record already seen? Remembers it when it is not.
    pub fn is_repeat(&mut self, raw: &RawEvent) -> bool {
        let key = match raw {
            RawEvent::Fork(e) => (kind::FORK, e.child.id.tid, e.child.id.start_ns, 0),
            RawEvent::Exec(e) => (kind::EXEC, e.task.id.tid, e.task.id.start_ns, e.exec_id),
            RawEvent::Exit(e) => (kind::EXIT, e.task.id.tid, e.task.id.start_ns, 0),
            RawEvent::ExitSnapshot(e) => (kind::EXIT_SNAPSHOT, e.father.tid, e.father.start_ns, 0),
            RawEvent::Free(e) => (kind::FREE, e.task.tid, e.task.start_ns, 0),
            _ => return false,
        };
        if !self.seen.insert(key) {
            return true;
        }
        self.order.push_back(key);
        if self.order.len() > WINDOW
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reaper_trace_common::{EventHeader, FreeEvent, TaskId};

    fn free(tid: u32, start_ns: u64) -> RawEvent {
        RawEvent::Free(FreeEvent {
            hdr: EventHeader {
                kind: kind::FREE,
                cpu: 0,
                ts_ns: 1,
            },
            task: TaskId {
                tid,
                tgid: tid,
                start_ns,
            },
        })
    }

    #[test]
    fn a_second_record_of_the_same_release_is_a_repeat() {
        let mut r = Repeats::default();
        assert!(!r.is_repeat(&free(7, 100)));
        assert!(r.is_repeat(&free(7, 100)));
        // The pid reused by another task: not a repeat.
        assert!(!r.is_repeat(&free(7, 200)));
    }

    #[test]
    fn the_window_forgets_the_oldest() {
        let mut r = Repeats::default();
        for tid in 0..WINDOW as u32 + 1 {
            assert!(!r.is_repeat(&free(tid, 1)));
        }
        assert!(!r.is_repeat(&free(0, 1)));
        assert!(r.is_repeat(&free(WINDOW as u32, 1)));
    }
}
