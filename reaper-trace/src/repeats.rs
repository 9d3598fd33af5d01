//! Records sent twice by the kernel programs' standby copies (`reaper_trace_common::standby`):
//! where a preempted copy's note of the calls it handled is overwritten halfway, a later copy
//! handles the same call again. Each of these records is about something that happens once —
//! a task's fork, exit (and the snapshot taken with it) and release, or one exec of a task —
//! so a second one with the same key is a repeat. The exec count is part of the key: it tells
//! two execs of a task apart, and the exit and release of a leader from those of the thread
//! whose exec took its place (`de_thread` gives that thread the leader's tid and start time).

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
            RawEvent::Exit(e) => (kind::EXIT, e.task.id.tid, e.task.id.start_ns, e.exec_id),
            RawEvent::ExitSnapshot(e) => {
                let f = &e.father;
                (kind::EXIT_SNAPSHOT, f.tid, f.start_ns, e.exec_id)
            }
            RawEvent::Free(e) => (kind::FREE, e.task.tid, e.task.start_ns, e.exec_id),
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
    use reaper_trace_common::{EventHeader, ExitEvent, FreeEvent, TaskId};

    fn free(tid: u32, start_ns: u64) -> RawEvent {
        free_after_exec(tid, start_ns, 0)
    }

    fn free_after_exec(tid: u32, start_ns: u64, exec_id: u32) -> RawEvent {
        RawEvent::Free(FreeEvent {
            hdr: EventHeader {
                kind: kind::FREE,
                _pad: 0,
                ts_ns: 1,
            },
            task: TaskId {
                tid,
                tgid: tid,
                start_ns,
            },
            exec_id,
            flags: 0,
        })
    }

    fn exit(tid: u32, start_ns: u64, exec_id: u32) -> RawEvent {
        let mut e = ExitEvent {
            exec_id,
            ..Default::default()
        };
        e.hdr.kind = kind::EXIT;
        e.task.id = TaskId {
            tid,
            tgid: tid,
            start_ns,
        };
        RawEvent::Exit(e)
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
    fn the_exit_of_a_thread_that_took_its_leaders_place_is_not_a_repeat() {
        // The leader exits (killed by the exec), then the thread that exec'd, now with the
        // leader's tid and start time and one exec more, exits and is released.
        let mut r = Repeats::default();
        assert!(!r.is_repeat(&exit(7, 100, 3)));
        assert!(!r.is_repeat(&exit(7, 100, 4)));
        assert!(r.is_repeat(&exit(7, 100, 4)));
        assert!(!r.is_repeat(&free_after_exec(7, 100, 3)));
        assert!(!r.is_repeat(&free_after_exec(7, 100, 4)));
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
