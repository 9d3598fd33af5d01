//! `cargo xtask vm-test`: reaper-trace on the kernels users have, each booted under qemu.
//!
//! Debian's kernel images are fetched with `apt-get download` through a private apt state
//! whose archive address is read from this machine's own apt sources (never written into the
//! repository), and cached outside the clone (`/var/cache/reaper-trace`, or
//! `$REAPER_TRACE_CACHE`). Each kernel boots an initramfs holding the built binaries,
//! busybox, tini, dumb-init, catatonit and bpftool; its `/init` (`vm/init.sh`) runs `check`,
//! an orphan/zombie experiment under `record` (`vm/experiment.sh`), a SIGTERM-stopped
//! recording and `validate`, and prints what it found on the console. This side checks it
//! all: the recording against what the guest's `/proc` showed, not against reaper-trace's
//! own model. Kernels boot one after another (TCG: KVM here cannot boot them), on the QEMU
//! `emulator` chooses.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// The suites whose kernels are offered (5.10 to 7.x).
const SUITES: [&str; 6] = [
    "bullseye",
    "bookworm",
    "bookworm-backports",
    "trixie",
    "trixie-backports",
    "sid",
];
/// The security suites: the newest patch release of the stable series is often only there.
const SECURITY_SUITES: [&str; 3] = ["bullseye-security", "bookworm-security", "trixie-security"];

/// The matrix `.ci/run` runs: the newest patch release of every series offered.
pub const DEFAULT_KERNELS: &str = EVERY_SERIES;
/// The spec for every series offered, each at its newest release.
const EVERY_SERIES: &str = "every";

/// What the VM test needs on the host.
pub const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "xz-utils",
    "zstd",
    "bpftool",
    "tini",
    "dumb-init",
    "catatonit",
];

/// How long one kernel may take, boot to power-off.
const VM_TIMEOUT: Duration = Duration::from_secs(15 * 60);

const INIT: &str = include_str!("../../vm/init.sh");
const EXPERIMENT: &str = include_str!("../../vm/experiment.sh");

fn cache_dir() -> PathBuf {
    std::env::var_os("REAPER_TRACE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/reaper-trace"))
}

fn run_quiet(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

mod apt;
mod checks;
mod emulator;
mod guest;
mod image;
mod report;

use apt::*;
use checks::*;
use emulator::*;
use guest::*;
use image::*;
use report::*;

/// What each guest runs.
pub struct Guest {
    /// Only verify the programs.
    pub check_only: bool,
    /// The validate scenarios (all when empty), and how many times each.
    pub only: Vec<String>,
    pub runs: u32,
}

/// Runs the matrix; `bins` holds the built (release) binaries. Returns whether every kernel
/// passed everything.
pub fn run(specs: &[String], bins: &Path, out_dir: &Path, guest: &Guest) -> Result<bool> {
    let check_only = guest.check_only;
    let apt = Apt::new()?;
    apt.update()?;
    let releases = apt.releases()?;
    let chosen = choose(specs, &releases)?;
    eprintln!("xtask: kernels: {}", chosen.join(", "));
    let emulator = emulator(&apt)?;
    eprintln!(
        "xtask: emulator: {}, TCG {}",
        emulator.describe(),
        tcg_threads()
    );
    let kernels = chosen
        .iter()
        .map(|r| fetch_kernel(&apt, r))
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(out_dir)?;
    let root = out_dir.join("root");
    build_root(&root, bins)?;
    let mut results = Vec::new();
    for kernel in &kernels {
        let initrd = out_dir.join("initramfs.cpio");
        initramfs(&root, kernel, &initrd)?;
        let log = out_dir.join(format!("{}.log", kernel.release));
        eprint!("xtask: booting Linux {} ... ", kernel.release);
        let _ = std::io::stderr().flush();
        // One boot: a guest that panics or locks up fails its kernel (the emulator is chosen
        // so that guests do not die of it; see `emulator`).
        let (text, took) = boot(&emulator, kernel, &initrd, &log, guest)?;
        let console = Console::parse(&text);
        for (name, body) in &console.sections {
            if let Some(scenario) = name.strip_prefix("events-") {
                std::fs::write(
                    out_dir.join(format!("{}.{scenario}.jsonl", kernel.release)),
                    body,
                )?;
            }
        }
        // FUSE is there when built in, or when its module was packaged.
        let has_fuse = kernel.fuse_module.is_some() || kernel_has_builtin_fuse(kernel);
        let mut result = evaluate(
            &kernel.release,
            &console,
            took.as_secs_f64(),
            check_only,
            has_fuse,
        );
        if let Some(panic) = guest_panic(&text) {
            result
                .checks
                .push(check("the guest kernel did not panic", Err(panic)));
        }
        if let Some(lockup) = soft_lockup(&text) {
            result
                .checks
                .push(check("no soft lockup", Err(lockup.to_string())));
        }
        if console.value("done").is_none() {
            result.checks.push(check(
                "the guest finished",
                Err(format!(
                    "no end mark after {:.0} s: see {}",
                    took.as_secs_f64(),
                    log.display()
                )),
            ));
        }
        eprintln!(
            "{} in {:.0} s",
            if result.ok(check_only) {
                "ok"
            } else {
                "FAILED"
            },
            took.as_secs_f64()
        );
        results.push(result);
    }
    print!("{}", table(&results));
    let ran_twice: String = results
        .iter()
        .flat_map(|r| {
            r.validate_ran_twice
                .iter()
                .map(move |n| format!("  {}: validate: {n}\n", r.release))
        })
        .collect();
    if !ran_twice.is_empty() {
        print!("ran twice (kernel records lost in the first run):\n{ran_twice}");
    }
    let failures: String = results.iter().map(details).collect();
    if !failures.is_empty() {
        print!("failures:\n{failures}");
    }
    std::fs::write(
        out_dir.join("report.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    println!("consoles and report.json in {}", out_dir.display());
    Ok(results.iter().all(|r| r.ok(check_only)))
}
