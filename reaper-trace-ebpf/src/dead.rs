//! The `DEAD` record: a process finished exiting, a zombie or already released.

use reaper_trace_common::{DEAD_LEADER_GONE, DeadEvent, exit_state, kind, ns_pid_key};

use crate::emit::emit;
use crate::globals::off;
use crate::maps::TRACKED_ZOMBIE_PIDS;
use crate::mem::{Direct, Mem, zero};
use crate::scope::tree_scope;
use crate::task::{SIGNAL_GROUP_EXIT, read_pids, task_id, task_info};

/// Is `leader` still the leader of the group whose signal struct is `signal` (its memory not
/// released and reused)? `signal` is held by the task whose final switch this is.
#[inline(always)]
fn is_leader_of(leader: *const u8, tgid: u32, signal: *const u8) -> bool {
    Direct::read::<u32>(leader, off!(task_pid)) == tgid
        && Direct::ptr(leader, off!(task_signal)) == signal
}

pub(crate) fn report_dead(task: *const u8, signal: *const u8) {
    let tgid = Direct::read::<u32>(task, off!(task_tgid));
    let leader = Direct::ptr(task, off!(task_group_leader));
    let mut flags = 0;
    let mut exit_state = 0;
    if is_leader_of(leader, tgid, signal) {
        exit_state = Direct::read::<u32>(leader, off!(task_exit_state));
        if exit_state == 0 {
            // The leader has not exited: the process lives on.
            return;
        }
    } else {
        flags = DEAD_LEADER_GONE;
    }
    let group_exit = Direct::read::<u32>(signal, off!(signal_flags)) & SIGNAL_GROUP_EXIT != 0;
    // SAFETY: DeadEvent starts with the header; every other field is written.
    unsafe {
        emit::<DeadEvent>(kind::DEAD, |ev| {
            ev.last = task_id::<Direct>(task);
            ev.exit_code = if group_exit {
                Direct::read::<u32>(signal, off!(signal_group_exit_code))
            } else {
                Direct::read::<u32>(leader, off!(task_exit_code))
            };
            ev.task = task_info::<Direct>(leader);
            ev.parent = task_info::<Direct>(Direct::ptr(leader, off!(task_real_parent)));
            read_pids::<Direct>(leader, ev.task.level, &mut ev.pids);
            ev.exit_state = exit_state;
            ev._pad = 0;
            // Read again: what was read is only the leader's if it still is.
            if flags != 0 || !is_leader_of(leader, tgid, signal) {
                zero(&mut ev.task);
                ev.task.id.tid = tgid;
                ev.task.id.tgid = tgid;
                zero(&mut ev.parent);
                zero(&mut ev.pids);
                ev.exit_state = 0;
                flags = DEAD_LEADER_GONE;
            }
            ev.flags = flags;
            if tree_scope() && ev.exit_state == exit_state::EXIT_ZOMBIE {
                // A reaper outside the tree may wait for it: let its wait through.
                for upid in ev.pids.iter() {
                    if upid.nr != 0 {
                        let _ =
                            TRACKED_ZOMBIE_PIDS.insert(&ns_pid_key(upid.pidns, upid.nr), &tgid, 0);
                    }
                }
            }
        })
    };
}
