//! Checks made before anything is attached, each failing with one line that says what to do.

use std::path::Path;

use anyhow::{Result, bail};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capabilities of this process (`CapEff` in `/proc/self/status`).
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1 << cap) != 0
}

/// Loading tracing programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN, which covers
/// both). Names what is missing.
pub fn check_privileges() -> Result<()> {
    check_caps(effective_caps())
}

fn check_caps(caps: u64) -> Result<()> {
    if has(caps, CAP_SYS_ADMIN) || (has(caps, CAP_BPF) && has(caps, CAP_PERFMON)) {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !has(caps, CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(caps, CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    bail!(
        "missing {} (or CAP_SYS_ADMIN) to load eBPF programs: run reaper-trace as root, e.g. with sudo",
        missing.join(" and ")
    )
}

pub const TRACEFS: &str = "/sys/kernel/tracing";
/// Where tracefs also shows up when debugfs is mounted.
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// What a look at tracefs found.
#[derive(Debug, PartialEq, Eq)]
enum Tracefs {
    /// Its `events` directory can be read.
    Usable,
    /// Mounted, but this user may not look inside (tracefs is mode 0700, root's, by default).
    Unreadable {
        at: String,
        mode: Option<u32>,
    },
    Missing,
}

/// One place tracefs may be: what looking up `PLACE/events` gave, and the mode of `PLACE`.
struct Probe<'a> {
    at: &'a str,
    events: std::io::Result<std::fs::Metadata>,
    mode: Option<u32>,
}

fn probe(at: &str) -> Probe<'_> {
    use std::os::unix::fs::PermissionsExt;
    Probe {
        at,
        events: std::fs::metadata(Path::new(at).join("events")),
        mode: std::fs::metadata(at)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777),
    }
}

fn classify(probes: &[Probe]) -> Tracefs {
    if probes
        .iter()
        .any(|p| p.events.as_ref().is_ok_and(|m| m.is_dir()))
    {
        return Tracefs::Usable;
    }
    match probes.iter().find(|p| {
        p.events
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
    }) {
        Some(p) => Tracefs::Unreadable {
            at: p.at.to_string(),
            mode: p.mode,
        },
        None => Tracefs::Missing,
    }
}

fn tracefs() -> Tracefs {
    classify(&[probe(TRACEFS), probe(DEBUGFS_TRACING)])
}

fn unreadable(at: &str, mode: Option<u32>) -> anyhow::Error {
    let mode = mode.map(|m| format!(" (mode {m:04o})")).unwrap_or_default();
    // Its files are root's and mode 0440 or 0640 inside: `mode=` alone opens only the top
    // directory, `gid=` gives them all to a group.
    anyhow::anyhow!(
        "tracefs is mounted at {at} but not readable by you{mode}: run reaper-trace as root, \
         e.g. with sudo, or give a group of yours access: \
         `sudo mount -o remount,gid=GROUP,mode=0750 {at}`"
    )
}

/// The syscall tracepoints need tracefs for their ids: mount it when it is missing, and say
/// what to do when it is mounted but this user may not read it.
/// Returns true when this call mounted it.
pub fn ensure_tracefs() -> Result<bool> {
    match tracefs() {
        Tracefs::Usable => return Ok(false),
        Tracefs::Unreadable { at, mode } => return Err(unreadable(&at, mode)),
        Tracefs::Missing => {}
    }
    let target = std::ffi::CString::new(TRACEFS)?;
    // SAFETY: plain mount(2) with NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    let err = std::io::Error::last_os_error();
    match (rc, tracefs()) {
        (0, Tracefs::Usable) => Ok(true),
        (0, Tracefs::Unreadable { at, mode }) => Err(unreadable(&at, mode)),
        _ => bail!(
            "tracefs is not mounted and mounting it failed ({err}): run `mount -t tracefs none {TRACEFS}` as root"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_check_names_what_is_missing() {
        assert!(check_caps(1 << CAP_SYS_ADMIN).is_ok());
        assert!(check_caps((1 << CAP_BPF) | (1 << CAP_PERFMON)).is_ok());
        let e = check_caps(0).unwrap_err().to_string();
        assert!(e.contains("CAP_BPF and CAP_PERFMON"), "{e}");
        let e = check_caps(1 << CAP_BPF).unwrap_err().to_string();
        assert!(e.contains("missing CAP_PERFMON ("), "{e}");
        assert!(!e.contains('\n'));
    }

    fn at<'a>(at: &'a str, events: std::io::Result<std::fs::Metadata>, mode: u32) -> Probe<'a> {
        Probe {
            at,
            events,
            mode: Some(mode),
        }
    }

    #[test]
    fn tracefs_mounted_but_unreadable_is_not_missing() {
        use std::io::{Error, ErrorKind};
        let dir = || std::fs::metadata("/");
        let file = || std::fs::metadata("/proc/self/status");
        let denied = || Err(Error::from(ErrorKind::PermissionDenied));
        let absent = || Err(Error::from(ErrorKind::NotFound));
        let d = DEBUGFS_TRACING;
        assert_eq!(classify(&[at(TRACEFS, dir(), 0o700)]), Tracefs::Usable);
        // Either place will do.
        assert_eq!(
            classify(&[at(TRACEFS, absent(), 0o755), at(d, dir(), 0o700)]),
            Tracefs::Usable
        );
        // Mode 0700 and not root: the lookup of `events` is refused.
        assert_eq!(
            classify(&[at(TRACEFS, denied(), 0o700), at(d, absent(), 0o700)]),
            Tracefs::Unreadable {
                at: TRACEFS.into(),
                mode: Some(0o700)
            }
        );
        assert_eq!(
            classify(&[at(TRACEFS, absent(), 0o755), at(d, denied(), 0o700)]),
            Tracefs::Unreadable {
                at: d.into(),
                mode: Some(0o700)
            }
        );
        // Not mounted: an empty directory, or `events` is not a directory.
        assert_eq!(
            classify(&[at(TRACEFS, absent(), 0o755), at(d, absent(), 0o700)]),
            Tracefs::Missing
        );
        assert_eq!(classify(&[at(TRACEFS, file(), 0o755)]), Tracefs::Missing);
        let e = unreadable(TRACEFS, Some(0o700)).to_string();
        assert!(
            e.starts_with("tracefs is mounted at /sys/kernel/tracing but not readable by you (mode 0700): run reaper-trace as root"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }
}
