//! Losses made up for: a fork or an exit every copy of its kernel program skipped is still
//! recorded, late, from `sched_switch` (`reaper_trace_common::backstop`). The kernel counts the
//! skip when it happens, and the late record comes after it (at the child's first run, at the
//! task's final switch), and is applied later still when records back up. So a loss of these
//! kinds is reported only once every record written up to [`GRACE_NS`] after it was read has
//! been applied, less the late records that came meanwhile. A late record's skip happened
//! before it (or, for a fork, just after the child's start, which is its time), so it is read
//! by the first count taken [`GRACE_NS`] after the record's time: a late record that matched no
//! loss by then made up for none (a task that exited before the exit program was attached),
//! and must not hide a later one.

use reaper_trace_common::kind;

/// The kinds that have late records.
const KINDS: [u32; 2] = [kind::FORK, kind::EXIT];

/// How long, in record time, a late record may come after the loss it makes up for was read:
/// a child's first run after its fork, or a task's final switch after its exit, under load.
pub const GRACE_NS: u64 = 1_000_000_000;

/// Counts by lost-counter slot.
type Counts = Vec<(u32, u64)>;

#[derive(Debug, Default)]
pub struct LateRecords {
    /// Per kind of [`KINDS`]: losses read and not yet matched or reported, (count, when read),
    /// oldest first.
    held: [Vec<(u64, u64)>; 2],
    /// Per kind: the times of late records applied and not matched yet, oldest first.
    credits: [Vec<u64>; 2],
}

impl LateRecords {
    /// A late record of `kind`, of time `ts`, was applied (not a repeat).
    pub fn applied(&mut self, kind: u32, ts: u64) {
        if let Some(i) = KINDS.iter().position(|&k| k == kind) {
            self.credits[i].push(ts);
        }
    }

    /// The losses to report now, given those `read` at `read_at` (by lost-counter slot) and
    /// the time up to which every record has been applied; with `last`, nothing is held back.
    pub fn net(&mut self, read: Counts, read_at: u64, applied_until: u64, last: bool) -> Counts {
        let (late, mut out): (Counts, Counts) =
            read.into_iter().partition(|(slot, _)| KINDS.contains(slot));
        for (i, kind) in KINDS.into_iter().enumerate() {
            let new: u64 = late
                .iter()
                .filter(|(s, _)| *s == kind)
                .map(|(_, n)| n)
                .sum();
            if new > 0 {
                self.held[i].push((new, read_at));
            }
            // Oldest loss first, against the oldest late records.
            let (held, credits) = (&mut self.held[i], &mut self.credits[i]);
            let mut used = 0;
            for (count, _) in held.iter_mut() {
                let matched = (*count).min((credits.len() - used) as u64);
                *count -= matched;
                used += matched as usize;
            }
            credits.drain(..used);
            held.retain(|(count, _)| *count > 0);
            // A count taken this long after a late record's time saw its loss.
            credits.retain(|&ts| ts.saturating_add(GRACE_NS) > read_at);
            let due = |at: u64| last || at.saturating_add(GRACE_NS) <= applied_until;
            let report: u64 = held.iter().filter(|(_, at)| due(*at)).map(|(n, _)| n).sum();
            held.retain(|(_, at)| !due(*at));
            if report > 0 {
                out.push((kind, report));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_loss_made_up_for_by_a_late_record_is_not_reported() {
        let mut l = LateRecords::default();
        // Two skips read at 10 s: held while the records written until 11 s are not applied.
        let read = vec![(kind::FORK, 2), (kind::WAIT, 1)];
        assert_eq!(l.net(read, 10 * S, 10 * S, false), vec![(kind::WAIT, 1)]);
        // One of them came late; records are applied past 11 s: the other is lost.
        l.applied(kind::FORK, 10 * S);
        assert_eq!(l.net(vec![], 11 * S, 10 * S + S / 2, false), vec![]);
        assert_eq!(l.net(vec![], 12 * S, 11 * S, false), vec![(kind::FORK, 1)]);
        assert_eq!(l.net(vec![], 13 * S, 13 * S, false), vec![]);
    }

    #[test]
    fn records_applied_late_still_make_up_for_losses_read_earlier() {
        // Records back up: the late record is applied seconds after its loss was read.
        let mut l = LateRecords::default();
        assert_eq!(l.net(vec![(kind::EXIT, 1)], 10 * S, 8 * S, false), vec![]);
        assert_eq!(l.net(vec![], 12 * S, 9 * S, false), vec![]);
        l.applied(kind::EXIT, 10 * S);
        assert_eq!(l.net(vec![], 14 * S, 14 * S, false), vec![]);
    }

    #[test]
    fn a_late_record_before_its_loss_is_read_still_counts() {
        let mut l = LateRecords::default();
        l.applied(kind::EXIT, 10 * S);
        assert_eq!(
            l.net(vec![(kind::EXIT, 1)], 10 * S + 1, 10 * S, false),
            vec![]
        );
        assert_eq!(l.net(vec![], 12 * S, 12 * S, false), vec![]);
    }

    #[test]
    fn a_late_record_that_made_up_for_nothing_expires() {
        let mut l = LateRecords::default();
        l.applied(kind::EXIT, 10 * S);
        assert_eq!(l.net(vec![], 11 * S, 11 * S, false), vec![]);
        // Read a second after its time: it hides no later loss.
        assert_eq!(l.net(vec![(kind::EXIT, 1)], 12 * S, 12 * S, false), vec![]);
        assert_eq!(l.net(vec![], 14 * S, 14 * S, false), vec![(kind::EXIT, 1)]);
    }

    #[test]
    fn the_last_round_holds_nothing_back() {
        let mut l = LateRecords::default();
        assert_eq!(l.net(vec![(kind::FORK, 3)], 10 * S, 10 * S, false), vec![]);
        l.applied(kind::FORK, 10 * S);
        let last = l.net(vec![(kind::FORK, 1)], 10 * S + 1, 10 * S, true);
        assert_eq!(last, vec![(kind::FORK, 3)]);
        assert_eq!(l.net(vec![], 11 * S, 11 * S, true), vec![]);
    }
}
