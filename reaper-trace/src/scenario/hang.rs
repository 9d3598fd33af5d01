//! `hang`: a hidden scenario that never ends, for the validator's timeout and clean-up.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Def;
use super::sys::{fork_then, new_pid_namespace};

// ---------------------------------------------------------------------------------------------
// hang

/// `hang` reports nothing: it never ends.
#[derive(Debug, Serialize, Deserialize)]
pub struct Nothing {}

/// `hang`: a tree that never ends and resists a polite cleanup: a pid namespace whose init
/// has children, a process that left the process group (setsid) and ignores SIGTERM, and an
/// orphan adopted outside the scenario's own process.
fn hang() -> ! {
    fn forever() -> ! {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let ignore_term = || {
        // SAFETY: setting a signal disposition.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
        }
    };
    let _ = fork_then(|| {
        // SAFETY: setsid has no preconditions.
        unsafe { libc::setsid() };
        ignore_term();
        let _ = fork_then(|| forever());
        // Exit: the child above becomes an orphan.
        0
    });
    if new_pid_namespace().is_ok() {
        let _ = fork_then(|| {
            let _ = fork_then(|| {
                ignore_term();
                let _ = fork_then(|| {
                    // SAFETY: as above.
                    unsafe { libc::setsid() };
                    forever()
                });
                forever()
            });
            forever()
        });
    }
    forever()
}

pub(super) static HANG: Def<Nothing> = Def::new(
    "hang",
    "(for testing `validate --timeout`) never ends: a pid namespace, a process that left the process group, an orphan",
    |_| hang(),
    |_, j| j.fail("hang is expected to time out"),
)
.hidden();
