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

fn tracefs_mounted() -> bool {
    [TRACEFS, "/sys/kernel/debug/tracing"]
        .iter()
        .any(|p| Path::new(p).join("events").is_dir())
}

/// The syscall tracepoints need tracefs for their ids: mount it when it is missing.
/// Returns true when this call mounted it.
pub fn ensure_tracefs() -> Result<bool> {
    if tracefs_mounted() {
        return Ok(false);
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
    if rc != 0 || !tracefs_mounted() {
        let err = std::io::Error::last_os_error();
        bail!(
            "tracefs is not mounted and mounting it failed ({err}): run `mount -t tracefs none {TRACEFS}` as root"
        );
    }
    Ok(true)
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
}
