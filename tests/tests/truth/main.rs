//! Truth tests: recordings checked against what the KERNEL said, not against what the tracer
//! believes.
//!
//! Each test runs one case of the `truth_workload` binary (`tests/src/bin/truth_workload/`)
//! under `reaper-trace record -q -o F -- truth_workload CASE FACTS`. The workload performs the
//! real process operations and writes FACTS: what each wait returned, and what `/proc` showed
//! about each task while it existed (its ids, pid namespace, start time, state and parent).
//! The test then checks the recording against those facts only. Workload and expectations sit
//! side by side: the doc comment of each case in the workload says what it does, the test says
//! what the recording must show.
//!
//! Every check of a test is evaluated and the failures are reported together, with the events
//! about the case's tasks. A broken workload (a handshake that did not happen, a kernel that
//! did not behave as the case assumes) fails the test as a broken case, not as a tracer finding.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use reaper_trace::identity::{NS_PER_TICK, start_tick};
use reaper_trace_tests::{
    TempPath, Trace, assert_consistent, reaper_trace, require_root, trace_command,
};
use serde_json::{Value, json};

mod before_tracing;
mod checks;
mod clone_parent;
mod exec_thread;
mod facts;
mod io_uring;
mod many_children;
mod pid_reuse;
mod ptrace;
mod run;
mod sigchld;
mod threads_exit;
mod wait_race;

use checks::*;
use facts::*;
use run::*;
