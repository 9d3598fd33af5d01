//! Losses made up for: a fork or an exit every copy of its kernel program skipped is still
//! recorded, late, from `sched_switch` (`reaper_trace_common::backstop`). The kernel counts the
//! skip as a loss when it happens, and the late record comes after it (at the child's first
//! run, at the task's final switch), so a loss of these kinds is reported one housekeeping
//! round later than it is read, less the late records that came meanwhile. A late record
//! counts against losses for two rounds at most: one that made up for no counted loss (a task
//! that exited before the exit program was attached) must not hide a later one.

use reaper_trace_common::kind;

/// The kinds that have late records.
const KINDS: [u32; 2] = [kind::FORK, kind::EXIT];

/// Counts by lost-counter slot.
type Counts = Vec<(u32, u64)>;

#[derive(Debug, Default)]
pub struct LateRecords {
    /// Per kind of [`KINDS`]: losses read last round, not yet reported.
    held: [u64; 2],
    /// Late records applied this round, and the last one's still unmatched.
    fresh: [u64; 2],
    stale: [u64; 2],
}

impl LateRecords {
    /// A late record of `kind` was applied (not a repeat).
    pub fn applied(&mut self, kind: u32) {
        if let Some(i) = KINDS.iter().position(|&k| k == kind) {
            self.fresh[i] += 1;
        }
    }

    /// The losses to report this round, given those read now (by lost-counter slot); with
    /// `last`, nothing is held for later.
    pub fn net(&mut self, read: Counts, last: bool) -> Counts {
        let (mut late, mut out): (Counts, Counts) =
            read.into_iter().partition(|(slot, _)| KINDS.contains(slot));
        for (i, kind) in KINDS.into_iter().enumerate() {
            let new: u64 = late
                .iter_mut()
                .filter(|(slot, _)| *slot == kind)
                .map(|(_, n)| std::mem::take(n))
                .sum();
            // The oldest losses and late records are matched first.
            let mut losses = [self.held[i], new];
            for credit in [&mut self.stale[i], &mut self.fresh[i]] {
                for loss in losses.iter_mut() {
                    let matched = (*loss).min(*credit);
                    *loss -= matched;
                    *credit -= matched;
                }
            }
            let [held, new] = losses;
            let report = if last { held + new } else { held };
            self.held[i] = if last { 0 } else { new };
            // Unmatched for two rounds: it made up for no loss counted.
            self.stale[i] = std::mem::take(&mut self.fresh[i]);
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

    #[test]
    fn a_loss_made_up_for_by_a_late_record_is_not_reported() {
        let mut l = LateRecords::default();
        // Skipped: counted at once, held for a round.
        assert_eq!(
            l.net(vec![(kind::FORK, 2), (kind::WAIT, 1)], false),
            vec![(kind::WAIT, 1)]
        );
        // One of the two came late: the other is lost.
        l.applied(kind::FORK);
        assert_eq!(l.net(vec![], false), vec![(kind::FORK, 1)]);
        assert_eq!(l.net(vec![], false), vec![]);
    }

    #[test]
    fn a_late_record_before_its_loss_is_read_still_counts() {
        let mut l = LateRecords::default();
        l.applied(kind::EXIT);
        assert_eq!(l.net(vec![(kind::EXIT, 1)], false), vec![]);
        assert_eq!(l.net(vec![], false), vec![]);
    }

    #[test]
    fn a_late_record_that_made_up_for_nothing_expires() {
        let mut l = LateRecords::default();
        l.applied(kind::EXIT);
        assert_eq!(l.net(vec![], false), vec![]);
        assert_eq!(l.net(vec![], false), vec![]);
        // Two rounds later it hides nothing.
        assert_eq!(l.net(vec![(kind::EXIT, 1)], false), vec![]);
        assert_eq!(l.net(vec![], false), vec![(kind::EXIT, 1)]);
    }

    #[test]
    fn the_last_round_holds_nothing_back() {
        let mut l = LateRecords::default();
        assert_eq!(l.net(vec![(kind::FORK, 3)], false), vec![]);
        l.applied(kind::FORK);
        assert_eq!(l.net(vec![(kind::FORK, 1)], true), vec![(kind::FORK, 3)]);
        assert_eq!(l.net(vec![], true), vec![]);
    }
}
