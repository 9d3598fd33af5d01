//! The tree panel (`t`): the selected process in the reaper-aware process tree that
//! `reaper-trace tree` prints, its ancestors up to its pid namespace's init and its subtree,
//! each with where its children would go if it died now. One iterator pass when the key is
//! pressed (and when `r` asks again), never in the background.
//!
//! Only a kernel can be snapshotted: live tracing, and `--connect` (a daemon's socket is a
//! Unix socket, so its kernel is this one; top then needs the privileges `tree` needs). A
//! replayed recording has none: the panel says so.

use anyhow::Result;

use crate::container::Resolver;
use crate::event::Proc;
use crate::identity::same_start_or_unknown;
use crate::tracer::TaskIterator;
use crate::tree::{self, Containers, Lineage, Options, Snapshot};

/// The open panel.
#[derive(Debug, Clone)]
pub struct TreePanel {
    /// The process it is about, as the dashboard showed it; None when nothing was selected.
    pub target: Option<Proc>,
    pub content: Content,
    /// First line of the tree shown.
    pub scroll: usize,
}

impl TreePanel {
    pub fn new(target: Option<Proc>, content: Content) -> Self {
        Self {
            target,
            content,
            scroll: 0,
        }
    }

    /// The processes it shows.
    pub fn len(&self) -> usize {
        match &self.content {
            Content::Ready(r) => r.lineage.processes.len(),
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the panel shows.
#[derive(Debug, Clone)]
pub enum Content {
    /// The focused panel has no row (or is the histogram).
    NoSelection,
    /// A replay: no live kernel to take a snapshot of.
    NeedsLiveKernel,
    /// The snapshot could not be taken (no privileges, no BPF iterators).
    Failed(String),
    /// The process is not in the snapshot any more (already escaped, as a line).
    Gone(String),
    Ready(Ready),
}

/// A snapshot's view of the process.
#[derive(Debug, Clone)]
pub struct Ready {
    pub lineage: Lineage,
    /// Task records read, and how long the pass took.
    pub tasks: usize,
    pub read_ns: u64,
    /// `CLOCK_BOOTTIME` ns when it was taken.
    pub taken_ts: u64,
}

/// What the panel shows about `target` in `snap`: its lineage, or why not. A process whose
/// pid now names a later process (its start time differs) is gone.
pub fn content(
    target: &Proc,
    snap: &Snapshot,
    read_ns: u64,
    taken_ts: u64,
    containers: &mut dyn Containers,
) -> Content {
    let label = crate::dashboard::ui::proc_label(target);
    let Some(lineage) = tree::lineage(snap, target.pid, &Options::default(), containers) else {
        return Content::Gone(format!(
            "{label} is not running any more: it is not in the snapshot"
        ));
    };
    let me = &lineage.processes[lineage.selected];
    // An event names a thread with its own start time: only the main thread's is the
    // process's.
    if target.is_leader() && !same_start_or_unknown(me.start, target.start) {
        return Content::Gone(format!(
            "{label} is not running any more: pid {} is another process now ({})",
            target.pid,
            crate::escape::escape_control(&me.comm)
        ));
    }
    Content::Ready(Ready {
        tasks: snap.len(),
        read_ns,
        taken_ts,
        lineage,
    })
}

/// Takes snapshots: the iterator program is loaded at the first one and kept.
#[derive(Default)]
pub struct Source {
    iter: Option<TaskIterator>,
}

impl Source {
    pub fn snapshot(&mut self, target: &Proc) -> Content {
        self.try_snapshot(target)
            .unwrap_or_else(|e| Content::Failed(format!("{e:#}")))
    }

    fn try_snapshot(&mut self, target: &Proc) -> Result<Content> {
        let iter = match &mut self.iter {
            Some(iter) => iter,
            None => {
                crate::preflight::check_privileges()?;
                let kernel = crate::btf_offsets::resolve()?;
                self.iter.insert(TaskIterator::load(&kernel)?)
            }
        };
        let taken_ts = crate::clock::boottime_ns();
        let (snap, took) = tree::take(iter)?;
        Ok(content(
            target,
            &snap,
            took.as_nanos() as u64,
            taken_ts,
            &mut Resolver::new("/"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::NoContainers;
    use crate::tree::tests::host;

    fn proc_(pid: u32, start: u64, comm: &str) -> Proc {
        Proc {
            start,
            ..Proc::fake(pid, comm)
        }
    }

    #[test]
    fn the_process_its_ancestors_and_its_subtree() {
        let snap = Snapshot::new(host());
        // 12: under 11 under the subreaper 10 under init 1; 13 below it.
        let c = content(
            &proc_(12, 12_000, "cleared"),
            &snap,
            1,
            2,
            &mut NoContainers,
        );
        let Content::Ready(r) = c else {
            panic!("{c:?}")
        };
        let shown: Vec<(u32, u32)> = r
            .lineage
            .processes
            .iter()
            .map(|p| (p.pid, p.depth))
            .collect();
        assert_eq!(shown, [(1, 0), (10, 1), (11, 2), (12, 3), (13, 4)]);
        assert_eq!(r.lineage.selected, 3);
        // Not in the snapshot, or its pid reused: gone.
        let c = content(&proc_(99, 99_000, "x"), &snap, 1, 2, &mut NoContainers);
        assert!(
            matches!(&c, Content::Gone(m) if m.contains("99 x is not running")),
            "{c:?}"
        );
        let c = content(&proc_(12, 5, "old"), &snap, 1, 2, &mut NoContainers);
        assert!(
            matches!(&c, Content::Gone(m) if m.contains("another process now (cleared)")),
            "{c:?}"
        );
    }
}
