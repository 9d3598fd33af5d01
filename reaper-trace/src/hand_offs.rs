//! The hand-offs of each orphan, in the order the kernel made them, each naming the task that
//! received the orphan.
//!
//! An adoption is read at its father's final switch, some time after the kernel handed the
//! orphan over. When the orphan was handed on again in between (threads of one process exiting
//! together: C hands it to A, A exits and hands it to the subreaper, then C's final switch
//! runs), the read names where the orphan ended up, not the thread that received it from C.
//! The thread that received it is the next father to hand it on: it had the orphan at its own
//! exit (its children are saved there), and that exit came before C's read. So:
//!
//! - a hop waits while a related father (same process, or an ancestor or descendant process)
//!   that exited before the hop was read has adoptions still to report: that father may come
//!   before it in the orphan's chain, or be the one that received it;
//! - then the orphan's waiting hops go out in the order of their fathers' exits, each naming
//!   the first later father of the orphan that exited before the hop was read, else what was
//!   read.
//!
//! A father whose report never comes (its records lost) holds nothing past [`HOLD_NS`].

use std::collections::HashMap;

use reaper_trace_common::TaskId;

use crate::identity::same_start;

/// How long a father's adoptions are waited for, in record time, before hops that wait on it
/// go out without them. A final switch follows its exit by microseconds unless the exit blocks
/// (a file's flush), or the records were lost.
pub const HOLD_NS: u64 = 1_000_000_000;

/// One hand-off of `orphan` from `father`, as read at the father's final switch.
#[derive(Debug)]
pub struct Hop<T> {
    pub orphan: TaskId,
    pub father: TaskId,
    /// When the father's exit was recorded; `None` if it was not.
    pub father_exit: Option<u64>,
    /// When the adoption was read (the father's final switch).
    pub read_ts: u64,
    /// What the caller needs to write the hop out.
    pub data: T,
}

/// The task that received an orphan from a hop's father, when it was not the parent read: the
/// next father to hand the orphan on, and when that one exited (the hand-off came before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receiver {
    pub id: TaskId,
    pub exit_ts: u64,
}

/// A father whose adoptions are still to come.
#[derive(Debug, Clone, Copy)]
struct Father {
    start_ns: u64,
    tgid: u32,
    exit_ts: u64,
    left: u32,
}

/// The fathers of one orphan's hops already let go, for the receiver of a hop read late.
#[derive(Debug, Default)]
struct Seen {
    start_ns: u64,
    fathers: Vec<(TaskId, u64)>,
}

#[derive(Debug)]
pub struct HandOffs<T> {
    fathers: HashMap<u32, Father>,
    held: HashMap<u32, Vec<Hop<T>>>,
    seen: HashMap<u32, Seen>,
}

impl<T> Default for HandOffs<T> {
    fn default() -> Self {
        Self {
            fathers: HashMap::new(),
            held: HashMap::new(),
            seen: HashMap::new(),
        }
    }
}

impl<T> HandOffs<T> {
    /// `father` exited at `exit_ts` with `children` followed: that many adoption records are
    /// to come from its final switch.
    pub fn exited(&mut self, father: TaskId, exit_ts: u64, children: u32) {
        if children == 0 {
            self.fathers.remove(&father.tid);
            return;
        }
        self.fathers.insert(
            father.tid,
            Father {
                start_ns: father.start_ns,
                tgid: father.tgid,
                exit_ts,
                left: children,
            },
        );
    }

    /// One adoption record of `father` came (whatever it said).
    pub fn reported(&mut self, father: &TaskId) {
        if let Some(f) = self.fathers.get_mut(&father.tid)
            && same_start(f.start_ns, father.start_ns)
        {
            f.left = f.left.saturating_sub(1);
            if f.left == 0 {
                self.fathers.remove(&father.tid);
            }
        }
    }

    /// Holds a hop until [`HandOffs::release`] lets it go.
    pub fn add(&mut self, hop: Hop<T>) {
        self.held.entry(hop.orphan.tid).or_default().push(hop);
    }

    /// The hops that can go out now, with their receivers (see the module's rule).
    pub fn release(
        &mut self,
        related: impl Fn(u32, u32) -> bool,
    ) -> Vec<(Hop<T>, Option<Receiver>)> {
        let ready: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, queue)| !self.blocked(queue, &related))
            .map(|(&tid, _)| tid)
            .collect();
        let mut out = Vec::new();
        for tid in ready {
            let queue = self.held.remove(&tid).unwrap_or_default();
            self.let_go(queue, &mut out);
        }
        out
    }

    /// Record time has reached `now`: fathers whose report has not come within [`HOLD_NS`]
    /// of their exit hold nothing longer, nor does what was seen of orphans that long ago.
    pub fn expire(
        &mut self,
        now: u64,
        related: impl Fn(u32, u32) -> bool,
    ) -> Vec<(Hop<T>, Option<Receiver>)> {
        let limit = now.saturating_sub(HOLD_NS);
        self.fathers.retain(|_, f| f.exit_ts >= limit);
        let seen_limit = now.saturating_sub(2 * HOLD_NS);
        self.seen
            .retain(|_, s| s.fathers.iter().any(|&(_, exit)| exit >= seen_limit));
        self.release(related)
    }

    /// Everything held, for the end of a session.
    pub fn drain(&mut self) -> Vec<(Hop<T>, Option<Receiver>)> {
        self.fathers.clear();
        let mut tids: Vec<u32> = self.held.keys().copied().collect();
        tids.sort_unstable();
        let mut out = Vec::new();
        for tid in tids {
            let queue = self.held.remove(&tid).unwrap_or_default();
            self.let_go(queue, &mut out);
        }
        out
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.values().map(Vec::len).sum()
    }

    /// A related father that exited before the last of these hops was read still has
    /// adoptions to report (and did not report one of these).
    fn blocked(&self, queue: &[Hop<T>], related: &impl Fn(u32, u32) -> bool) -> bool {
        let Some(read) = queue.iter().map(|h| h.read_ts).max() else {
            return false;
        };
        self.fathers.iter().any(|(&tid, f)| {
            f.exit_ts < read
                && queue.iter().all(|h| h.father.tid != tid)
                && queue
                    .iter()
                    .any(|h| h.father_exit.is_some() && related(f.tgid, h.father.tgid))
        })
    }

    /// Writes out one orphan's hops in the order of their fathers' exits, each with the task
    /// that received it when that was not the one read.
    fn let_go(&mut self, mut queue: Vec<Hop<T>>, out: &mut Vec<(Hop<T>, Option<Receiver>)>) {
        queue.sort_by_key(|h| (h.father_exit.unwrap_or(u64::MAX), h.read_ts));
        let Some(first) = queue.first() else {
            return;
        };
        let seen = self.seen.entry(first.orphan.tid).or_default();
        if !same_start(seen.start_ns, first.orphan.start_ns) {
            *seen = Seen {
                start_ns: first.orphan.start_ns,
                fathers: Vec::new(),
            };
        }
        seen.fathers.extend(
            queue
                .iter()
                .filter_map(|h| Some((h.father, h.father_exit?))),
        );
        for hop in queue {
            let receiver = hop.father_exit.and_then(|exit| {
                seen.fathers
                    .iter()
                    .filter(|(f, e)| *e > exit && *e < hop.read_ts && f.tid != hop.father.tid)
                    .min_by_key(|(_, e)| *e)
                    .map(|&(id, exit_ts)| Receiver { id, exit_ts })
            });
            out.push((hop, receiver));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(tid: u32, tgid: u32) -> TaskId {
        TaskId {
            tid,
            tgid,
            start_ns: 1_000 + tid as u64,
        }
    }

    /// Same process, or none of these processes descend from each other.
    fn same_process(a: u32, b: u32) -> bool {
        a == b
    }

    const ORPHAN: u32 = 500;

    fn hop(father: TaskId, exit: u64, read_ts: u64, read: TaskId) -> Hop<TaskId> {
        Hop {
            orphan: id(ORPHAN, ORPHAN),
            father,
            father_exit: Some(exit),
            read_ts,
            data: read,
        }
    }

    /// (father, receiver) of each hop let go, in order.
    fn chain(out: Vec<(Hop<TaskId>, Option<Receiver>)>) -> Vec<(u32, u32)> {
        out.into_iter()
            .map(|(h, r)| (h.father.tid, r.map_or(h.data.tid, |r| r.id.tid)))
            .collect()
    }

    /// Threads C, B and A of process 100 exit in that order; the orphan goes C -> B -> A -> S.
    /// B's and A's final switches run before C's, which reads S.
    #[test]
    fn hops_read_late_name_the_thread_that_received_the_orphan() {
        let (c, b, a, s) = (id(101, 100), id(102, 100), id(103, 100), id(1, 1));
        let mut h = HandOffs::default();
        for (f, exit) in [(c, 10), (b, 20), (a, 30)] {
            h.exited(f, exit, 1);
        }
        h.reported(&b);
        h.add(hop(b, 20, 40, a));
        assert!(h.release(same_process).is_empty(), "C may come first: wait");
        h.reported(&a);
        h.add(hop(a, 30, 45, s));
        assert!(h.release(same_process).is_empty(), "C may come first: wait");
        h.reported(&c);
        h.add(hop(c, 10, 50, s));
        let out = h.release(same_process);
        let ts: Vec<Option<u64>> = out.iter().map(|(_, r)| r.map(|r| r.exit_ts)).collect();
        assert_eq!(chain(out), vec![(101, 102), (102, 103), (103, 1)]);
        assert_eq!(ts, vec![Some(20), Some(30), None]);
        assert_eq!(h.held(), 0);
    }

    /// C's final switch comes last, after the others' hops went out: it still names B.
    #[test]
    fn a_hop_read_after_the_next_ones_went_out_names_the_next_father() {
        let (c, b, s) = (id(101, 100), id(102, 100), id(1, 1));
        let mut h = HandOffs::default();
        h.exited(b, 20, 1);
        h.reported(&b);
        h.add(hop(b, 20, 40, s));
        assert_eq!(chain(h.release(same_process)), vec![(102, 1)]);
        // C's exit record was lost: nothing held it back. Its late read names S.
        h.add(hop(c, 10, 50, s));
        assert_eq!(chain(h.release(same_process)), vec![(101, 102)]);
    }

    #[test]
    fn unrelated_fathers_hold_nothing_and_silent_ones_not_for_long() {
        let (c, other, s) = (id(101, 100), id(201, 200), id(1, 1));
        let mut h = HandOffs::default();
        h.exited(other, 5, 3);
        h.exited(c, 10, 1);
        h.reported(&c);
        h.add(hop(c, 10, 50, s));
        assert_eq!(chain(h.release(same_process)), vec![(101, 1)]);

        let b = id(102, 100);
        let d = id(104, 100);
        h.exited(b, 60, 1);
        h.exited(d, 70, 1);
        h.reported(&d);
        h.add(hop(d, 70, 80, s));
        assert!(h.release(same_process).is_empty(), "B may come first: wait");
        assert!(h.expire(60 + HOLD_NS, same_process).is_empty());
        assert_eq!(chain(h.expire(61 + HOLD_NS, same_process)), vec![(104, 1)]);
    }
}
