//! `cargo xtask`: set-up, build, run, test and bench for reaper-trace.
//!
//! Every command first makes sure the toolchain pieces are there (idempotent, and fast when
//! they are): the nightly's rust-src, LLVM 22's development files, bpf-linker built against
//! them, and the programs the tests compare against. Nothing is installed twice.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

mod install;
mod vm;

const NIGHTLY: &str = "nightly";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const LLVM_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];
/// Used by the tests: reference reaping inits, tmux for the dashboard test, bpftool to check
/// that no program stays attached, stress-ng for the load test, Docker (started by the
/// container tests themselves) with busybox-static for its image, Prometheus to scrape the
/// daemon.
const TEST_PACKAGES: &[&str] = &[
    "tini",
    "dumb-init",
    "catatonit",
    "tmux",
    "bpftool",
    "stress-ng",
    "docker.io",
    "busybox-static",
    "prometheus",
];

const HELP: &str = "\
cargo xtask <command> [-- args]

  setup            install what building needs (idempotent)
  build [--release]
  run [--debug] -- ARGS     build (optimized unless --debug), then run `reaper-trace ARGS`
                            (needs root)
  test [-- ARGS]   build, then run every test, the privileged end-to-end ones included
  bench [--startup]  measure start-up, reaping inits' zombie times, userspace throughput,
                   tracer overhead and dashboard CPU (figures, not pass/fail); --startup:
                   only the first two (docs/cost.md's start-up figures)
  bench --daemon-soak [-- --minutes N]  the daemon under stress-ng --fork 1 for N
                   minutes (5 by default): RSS every 10 s, its slope, CPU, events, losses
  vm-test [--kernels LIST] [--check-only]  boot Debian's kernel images under qemu (TCG) one
                   after another
                   and run check, validate and recording checks in each; LIST is series
                   (5.10,6.1,...; 7 = the newest 7.x) or exact releases, by default
                   5.10,6.1,6.12,6.16,6.17,6.18,6.19,7.0,7. Images are cached in
                   /var/cache/reaper-trace ($REAPER_TRACE_CACHE); consoles and report.json
                   go to target/vm-test. --check-only: only verify the programs
  install [--prefix DIR]    build optimized, then install reaper-trace and reaper-init in
                            DIR/bin with their shell completions and man pages
                            (default /usr/local; idempotent)
";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).trim() == "0"
}

fn missing_debs(pkgs: &[&str]) -> Vec<String> {
    pkgs.iter()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .contains("install ok installed")
        })
        .map(|p| p.to_string())
        .collect()
}

fn apt_install(pkgs: &[String]) -> Result<()> {
    if pkgs.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", pkgs.join(" "));
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let apt = |args: &[&str]| {
        let mut c = Command::new(sudo.first().copied().unwrap_or("apt-get"));
        if !sudo.is_empty() {
            c.arg("apt-get");
        }
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(&mut apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(pkgs);
    run(&mut install)
}

fn setup(with_test_tools: bool) -> Result<()> {
    // 1. The nightly toolchain's standard library sources (-Z build-std=core for bpfel).
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]));
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: adding rust-src to the {NIGHTLY} toolchain");
        run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))?;
    }
    // 2. LLVM 22 (matches the nightly's LLVM) and the test tools, from Debian's packages.
    let mut debs = missing_debs(LLVM_PACKAGES);
    if with_test_tools {
        debs.extend(missing_debs(TEST_PACKAGES));
    }
    apt_install(&debs)?;
    // 3. bpf-linker, built against that LLVM.
    if !succeeds(Command::new("bpf-linker").arg("--version")) {
        eprintln!("xtask: building bpf-linker against LLVM 22 (about a minute)");
        run(Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--version",
                "0.13.0",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX))?;
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root()).args(args);
    c
}

/// The eBPF crate only builds for the BPF target (reaper-trace's build script does that), so
/// workspace-wide commands leave it out.
fn build(release: bool) -> Result<PathBuf> {
    let mut args = vec![
        "build",
        "--workspace",
        "--exclude",
        "reaper-trace-ebpf",
        "--bins",
    ];
    if release {
        args.push("--release");
    }
    run(&mut cargo(&args))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    Ok(target.join(if release { "release" } else { "debug" }))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (ours, passthrough) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (&args[..], &[][..]),
    };
    let release = ours.iter().any(|a| a == "--release");
    match ours.first().map(String::as_str) {
        Some("setup") => setup(true).map(|_| ExitCode::SUCCESS),
        Some("build") => {
            setup(false)?;
            build(release)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("run") => {
            setup(false)?;
            // What users run is the optimized build: the unoptimized one falls behind a
            // zombie storm.
            let dir = build(!ours.iter().any(|a| a == "--debug"))?;
            let status = Command::new(dir.join("reaper-trace"))
                .args(passthrough)
                .status()
                .context("starting reaper-trace")?;
            Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(0, 255) as u8
            ))
        }
        Some("test") => {
            if !is_root() {
                bail!("the end-to-end tests load eBPF programs: run `cargo xtask test` as root");
            }
            setup(true)?;
            let dir = build(false)?;
            let mut test = cargo(&["test", "--workspace", "--exclude", "reaper-trace-ebpf"]);
            test.env("REAPER_TRACE_BIN", dir.join("reaper-trace"))
                .env("REAPER_INIT_BIN", dir.join("reaper-init"));
            if !passthrough.is_empty() {
                test.arg("--").args(passthrough);
            }
            run(&mut test)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("bench") if ours.iter().any(|a| a == "--daemon-soak") => {
            if !is_root() {
                bail!(
                    "the soak loads eBPF programs: run `cargo xtask bench --daemon-soak` as root"
                );
            }
            setup(true)?;
            let dir = build(true)?;
            let mut soak = cargo(&[
                "run",
                "--release",
                "-p",
                "reaper-trace-tests",
                "--bin",
                "daemon_soak",
                "--",
            ]);
            soak.args(passthrough)
                .env("REAPER_TRACE_BIN", dir.join("reaper-trace"));
            run(&mut soak)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("bench") => {
            setup(true)?;
            let dir = build(true)?;
            // Userspace throughput on synthetic records (no tracing), then docs/cost.md's
            // start-up and reaping-init figures (`--startup`: only those), tracing cost, and
            // the dashboard's own CPU under load.
            let startup_only = ours.iter().any(|a| a == "--startup");
            let bins: &[&str] = if startup_only {
                &["bench_startup"]
            } else {
                &["bench_startup", "bench", "bench_dashboard"]
            };
            if !startup_only {
                run(&mut cargo(&[
                    "bench",
                    "-p",
                    "reaper-trace",
                    "--bench",
                    "throughput",
                ]))?;
            }
            for bin in bins {
                let mut bench =
                    cargo(&["run", "--release", "-p", "reaper-trace-tests", "--bin", bin]);
                bench
                    .env("REAPER_TRACE_BIN", dir.join("reaper-trace"))
                    .env("REAPER_INIT_BIN", dir.join("reaper-init"));
                run(&mut bench)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("vm-test") => {
            if !is_root() {
                bail!(
                    "the VM test installs qemu and fetches kernels: run `cargo xtask vm-test` as root"
                );
            }
            let kernels = match ours.iter().position(|a| a == "--kernels") {
                Some(i) => ours
                    .get(i + 1)
                    .context("--kernels needs a list, e.g. --kernels 5.10,6.1,7")?
                    .clone(),
                None => vm::DEFAULT_KERNELS.to_string(),
            };
            let specs: Vec<String> = kernels
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            setup(false)?;
            apt_install(&missing_debs(vm::PACKAGES))?;
            let dir = build(true)?;
            let check_only = ours.iter().any(|a| a == "--check-only");
            let ok = vm::run(
                &specs,
                &dir,
                &root().join("target").join("vm-test"),
                check_only,
            )?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some("install") => {
            let prefix = install::prefix_from_args(&ours[1..])?;
            setup(false)?;
            let dir = build(true)?;
            let installed = install::install(&dir, &prefix)?;
            for path in &installed {
                eprintln!("xtask: installed {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("help") | Some("-h") | Some("--help") | None => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => bail!("unknown command `{other}`: see `cargo xtask help`"),
    }
}
