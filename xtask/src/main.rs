//! `cargo xtask`: set-up, build, run, test and bench for reaper-trace.
//!
//! Every command first makes sure the toolchain pieces are there (idempotent, and fast when
//! they are): the nightly's rust-src, LLVM 22's development files, bpf-linker built against
//! them, and the programs the tests compare against. Nothing is installed twice.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};

mod image;
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
/// container tests themselves) with busybox-static for its image, Prometheus (and promtool)
/// to scrape the daemon and check the rules, openssl and curl for the metrics over TLS, podman
/// for its container names (containerd's ctr comes with docker.io).
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
    "openssl",
    "curl",
    "podman",
];
/// Used by the bench: bpftrace's `count()` on each hook is the floor the programs are held to.
const BENCH_PACKAGES: &[&str] = &["bpftrace"];

/// `cargo xtask`'s command line: one definition gives both the parsing and the help.
#[derive(Parser, Debug, PartialEq)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Set-up, build, run, test and bench for reaper-trace",
    long_about = "Set-up, build, run, test and bench for reaper-trace.\n\n\
                  Every command first installs what it needs and is missing (idempotent, \
                  and fast when nothing is)."
)]
struct Cli {
    /// None: print the help (what `cargo xtask` alone has always done).
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug, PartialEq)]
enum Cmd {
    /// Install what building and testing need (idempotent)
    ///
    /// The nightly's rust-src, clippy, LLVM 22's development files, bpf-linker built against
    /// them, and the programs the tests compare against.
    Setup,
    /// Build the workspace's binaries
    Build {
        /// The optimized build
        #[arg(long)]
        release: bool,
    },
    /// Build, then run `reaper-trace ARGS` (needs root)
    ///
    /// The optimized build unless --debug: the unoptimized one falls behind a zombie storm.
    Run {
        /// Run the unoptimized build
        #[arg(long)]
        debug: bool,
        /// reaper-trace's arguments
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Build, run clippy, then every test (needs root)
    ///
    /// clippy's warnings are errors. The tests include the privileged end-to-end ones, on the
    /// running kernel.
    Test {
        /// Passed to the test binaries (`cargo test -- ARGS`)
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Measure the figures in docs/cost.md (needs root)
    ///
    /// Start-up, reaping inits' zombie times, userspace throughput, tracer overhead and
    /// dashboard CPU: figures, not pass/fail.
    Bench {
        /// Only the first two: start-up and reaping inits' zombie times
        #[arg(long, conflicts_with_all = ["daemon_soak", "costs", "args"])]
        startup: bool,
        /// Only the kernel programs' cost beside bpftrace's `count()` (for work on the
        /// programs; `REAPER_TRACE_COMPARE=BIN[:BIN...]` measures other builds in the same rounds)
        #[arg(long, conflicts_with = "daemon_soak")]
        costs: bool,
        /// Only the daemon's soak: `stress-ng --fork 1` for N minutes (5 by default, `--
        /// --minutes N`); RSS every 10 s, its slope, CPU, events, losses
        #[arg(long)]
        daemon_soak: bool,
        /// Passed to the soak (`-- --minutes N`), or else to every `record` the bench starts
        /// (`-- --ring-mib 1`)
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Run the checks on Debian's kernel images under qemu (needs root)
    ///
    /// Boots the kernels one after another (TCG) and runs check, validate and recording checks
    /// in each. Images are cached in /var/cache/reaper-trace ($REAPER_TRACE_CACHE); consoles
    /// and report.json go to target/vm-test.
    VmTest {
        /// Kernels, comma-separated: series (5.10, 6.1, ...; 7 = the newest 7.x) or exact
        /// releases
        #[arg(long, value_name = "LIST", default_value = vm::DEFAULT_KERNELS, value_parser = kernel_list)]
        kernels: KernelList,
        /// Only verify the programs (no recording checks)
        #[arg(long)]
        check_only: bool,
        /// Run only this validate scenario in each guest (repeatable)
        #[arg(long, value_name = "NAME")]
        only: Vec<String>,
        /// Run each validate scenario this many times in each guest
        #[arg(long, value_name = "N", default_value_t = 1)]
        runs: u32,
    },
    /// Build optimized, then install reaper-trace and reaper-init (idempotent)
    ///
    /// The binaries go in DIR/bin, their shell completions and man pages where bash, zsh, fish
    /// and man look under DIR.
    Install(install::InstallArgs),
    /// Build the container image (docker build, no base image pulled) of
    /// packaging/image/Dockerfile: the optimized binary and the libraries it loads
    Image(image::ImageArgs),
}

/// `--kernels`' value, split at commas: blanks around a name and empty names are dropped.
#[derive(Clone, Debug, PartialEq)]
struct KernelList(Vec<String>);

/// An empty list is refused rather than run as a matrix of no kernel, which would pass.
fn kernel_list(list: &str) -> Result<KernelList, String> {
    let specs: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() {
        return Err("--kernels needs a list, e.g. --kernels 5.10,6.1,7".into());
    }
    Ok(KernelList(specs))
}

/// What `cargo xtask test` runs first: clippy over everything the tests build, warnings as
/// errors (the eBPF crate only builds for the BPF target, so it is left out as in `build`).
const CLIPPY: &[&str] = &[
    "clippy",
    "--workspace",
    "--exclude",
    "reaper-trace-ebpf",
    "--all-targets",
    "--",
    "-D",
    "warnings",
];

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
    // 2. clippy for the toolchain that builds the workspace: `test` runs it before the tests.
    if with_test_tools && !succeeds(&mut cargo(&["clippy", "--version"])) {
        eprintln!("xtask: adding clippy to the toolchain");
        run(Command::new("rustup")
            .current_dir(root())
            .args(["component", "add", "clippy"]))?;
    }
    // 3. LLVM 22 (matches the nightly's LLVM) and the test tools, from Debian's packages.
    let mut debs = missing_debs(LLVM_PACKAGES);
    if with_test_tools {
        debs.extend(missing_debs(TEST_PACKAGES));
    }
    apt_install(&debs)?;
    // 4. bpf-linker, built against that LLVM.
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
    Ok(target_dir().join(if release { "release" } else { "debug" }))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_failure(&e),
    };
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version requests are printed whole by clap. A usage error is one line, like every
/// other xtask error: `xtask: error: ...`, then where the usage is described.
fn parse_failure(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
    }
    let mut line = usage_error_line(e);
    if e.kind() == ErrorKind::InvalidSubcommand {
        line += "; see `cargo xtask help`";
    }
    eprintln!("xtask: error: {line}");
    ExitCode::from(e.exit_code().clamp(1, 255) as u8)
}

/// clap's message on one line: its paragraphs (the error, a tip, the usage) joined by `; `,
/// their own line breaks by spaces, without the `error: `/`tip: ` heads and the closing
/// "For more information" (the usage says it).
fn usage_error_line(e: &clap::Error) -> String {
    e.render()
        .to_string()
        .split("\n\n")
        .map(|paragraph| {
            let words: Vec<&str> = paragraph.lines().map(str::trim).collect();
            let text = words.join(" ");
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            let text = text.strip_prefix("tip: ").unwrap_or(text);
            text.replacen("Usage: ", "usage: ", 1)
        })
        .filter(|p| !p.is_empty() && !p.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn execute(command: Option<Cmd>) -> Result<ExitCode> {
    let Some(command) = command else {
        Cli::command().print_long_help()?;
        return Ok(ExitCode::SUCCESS);
    };
    match command {
        Cmd::Setup => setup(true).map(|_| ExitCode::SUCCESS),
        Cmd::Build { release } => {
            setup(false)?;
            build(release)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { debug, args } => {
            setup(false)?;
            // What users run is the optimized build: the unoptimized one falls behind a
            // zombie storm.
            let dir = build(!debug)?;
            let status = Command::new(dir.join("reaper-trace"))
                .args(&args)
                .status()
                .context("starting reaper-trace")?;
            Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(0, 255) as u8
            ))
        }
        Cmd::Test { args } => {
            if !is_root() {
                bail!("the end-to-end tests load eBPF programs: run `cargo xtask test` as root");
            }
            setup(true)?;
            let dir = build(false)?;
            // CI's gate: a clippy warning fails `.ci/run` like a failing test does.
            run(&mut cargo(CLIPPY))?;
            let mut test = cargo(&["test", "--workspace", "--exclude", "reaper-trace-ebpf"]);
            test.env("REAPER_TRACE_BIN", dir.join("reaper-trace"))
                .env("REAPER_INIT_BIN", dir.join("reaper-init"));
            if !args.is_empty() {
                test.arg("--").args(&args);
            }
            run(&mut test)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            daemon_soak: true,
            args,
            ..
        } => {
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
            soak.args(&args)
                .env("REAPER_TRACE_BIN", dir.join("reaper-trace"));
            run(&mut soak)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            startup: startup_only,
            costs: costs_only,
            args,
            ..
        } => {
            setup(true)?;
            if !startup_only {
                apt_install(&missing_debs(BENCH_PACKAGES))?;
            }
            let dir = build(true)?;
            // Userspace throughput on synthetic records (no tracing), then docs/cost.md's
            // start-up and reaping-init figures (`--startup`: only those), tracing cost, and
            // the dashboard's own CPU under load.
            let bins: &[&str] = if startup_only {
                &["bench_startup"]
            } else if costs_only {
                &["bench"]
            } else {
                &["bench_startup", "bench", "bench_dashboard"]
            };
            if !startup_only && !costs_only {
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
                if *bin == "bench" {
                    bench.arg("--");
                    if costs_only {
                        bench.arg("--costs");
                    }
                    if !args.is_empty() {
                        bench.arg("--").args(&args);
                    }
                }
                bench
                    .env("REAPER_TRACE_BIN", dir.join("reaper-trace"))
                    .env("REAPER_INIT_BIN", dir.join("reaper-init"));
                run(&mut bench)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::VmTest {
            kernels: KernelList(specs),
            check_only,
            only,
            runs,
        } => {
            if !is_root() {
                bail!(
                    "the VM test installs qemu and fetches kernels: run `cargo xtask vm-test` as root"
                );
            }
            setup(false)?;
            apt_install(&missing_debs(vm::PACKAGES))?;
            let dir = build(true)?;
            let ok = vm::run(
                &specs,
                &dir,
                &root().join("target").join("vm-test"),
                &vm::Guest {
                    check_only,
                    only,
                    runs,
                },
            )?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Image(image::ImageArgs { tag, binary }) => {
            apt_install(&missing_debs(&["docker.io"]))?;
            if !succeeds(Command::new("docker").arg("info")) {
                bail!(
                    "docker does not answer: start it (`systemctl start docker`, or `dockerd &`)"
                );
            }
            let binary = match binary {
                Some(path) => path,
                None => {
                    setup(false)?;
                    build(true)?.join("reaper-trace")
                }
            };
            image::build(&root(), &target_dir().join("image"), &binary, &tag)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Install(install::InstallArgs { prefix }) => {
            setup(false)?;
            let dir = build(true)?;
            let installed = install::install(&dir, &prefix)?;
            for path in &installed {
                eprintln!("xtask: installed {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Option<Cmd>, String> {
        Cli::try_parse_from(line.split_whitespace())
            .map(|cli| cli.command)
            .map_err(|e| usage_error_line(&e))
    }

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The two command lines `.ci/run` runs.
    #[test]
    fn ci_command_lines() {
        assert_eq!(
            parse("cargo-xtask test"),
            Ok(Some(Cmd::Test { args: vec![] }))
        );
        assert_eq!(
            parse("cargo-xtask vm-test --kernels 5.10,6.1,6.12,6.16,6.17,6.18,6.19,7.0,7"),
            Ok(Some(Cmd::VmTest {
                kernels: KernelList(strings(&[
                    "5.10", "6.1", "6.12", "6.16", "6.17", "6.18", "6.19", "7.0", "7"
                ])),
                check_only: false,
                only: vec![],
                runs: 1,
            }))
        );
    }

    #[test]
    fn passthrough_after_the_double_dash() {
        assert_eq!(
            parse("cargo-xtask test -- --nocapture"),
            Ok(Some(Cmd::Test {
                args: strings(&["--nocapture"])
            }))
        );
        assert_eq!(
            parse("cargo-xtask run --debug -- record -o out.jsonl -- sleep 1"),
            Ok(Some(Cmd::Run {
                debug: true,
                args: strings(&["record", "-o", "out.jsonl", "--", "sleep", "1"])
            }))
        );
        assert_eq!(
            parse("cargo-xtask bench --daemon-soak -- --minutes 2"),
            Ok(Some(Cmd::Bench {
                startup: false,
                costs: false,
                daemon_soak: true,
                args: strings(&["--minutes", "2"])
            }))
        );
        // Without the soak, they go to `record`, as docs/cost.md shows.
        assert_eq!(
            parse("cargo-xtask bench --costs -- --ring-mib 1"),
            Ok(Some(Cmd::Bench {
                startup: false,
                costs: true,
                daemon_soak: false,
                args: strings(&["--ring-mib", "1"])
            }))
        );
        // Before the `--` only xtask's own flags are taken: reaper-trace's are refused there.
        assert!(parse("cargo-xtask run top").is_err());
        // The start-up figures start no `record`.
        assert!(parse("cargo-xtask bench --startup -- --ring-mib 1").is_err());
    }

    #[test]
    fn flags_and_defaults() {
        assert_eq!(parse("cargo-xtask"), Ok(None));
        assert_eq!(parse("cargo-xtask setup"), Ok(Some(Cmd::Setup)));
        assert_eq!(
            parse("cargo-xtask build --release"),
            Ok(Some(Cmd::Build { release: true }))
        );
        assert_eq!(
            parse("cargo-xtask bench --startup"),
            Ok(Some(Cmd::Bench {
                startup: true,
                costs: false,
                daemon_soak: false,
                args: vec![]
            }))
        );
        assert!(parse("cargo-xtask bench --startup --daemon-soak").is_err());
        assert!(parse("cargo-xtask bench --costs --daemon-soak").is_err());
        assert_eq!(
            parse("cargo-xtask image"),
            Ok(Some(Cmd::Image(image::ImageArgs {
                tag: image::DEFAULT_TAG.into(),
                binary: None
            })))
        );
        assert_eq!(
            parse("cargo-xtask image --tag rt:1 --binary /tmp/rt"),
            Ok(Some(Cmd::Image(image::ImageArgs {
                tag: "rt:1".into(),
                binary: Some("/tmp/rt".into())
            })))
        );
        assert_eq!(
            parse("cargo-xtask vm-test --check-only"),
            Ok(Some(Cmd::VmTest {
                kernels: kernel_list(vm::DEFAULT_KERNELS).unwrap(),
                check_only: true,
                only: vec![],
                runs: 1,
            }))
        );
        assert_eq!(
            parse("cargo-xtask vm-test --kernels=7,,6.1,"),
            Ok(Some(Cmd::VmTest {
                kernels: KernelList(strings(&["7", "6.1"])),
                check_only: false,
                only: vec![],
                runs: 1,
            }))
        );
        let e = parse("cargo-xtask vm-test --kernels ,").unwrap_err();
        assert!(e.contains("--kernels needs a list"), "{e}");
    }

    #[test]
    fn usage_errors_are_one_line() {
        assert_eq!(
            parse("cargo-xtask tset").unwrap_err(),
            "unrecognized subcommand 'tset'; some similar subcommands exist: 'setup', 'test'; \
             usage: cargo xtask [COMMAND]"
        );
        assert_eq!(
            parse("cargo-xtask test --nocapture").unwrap_err(),
            "unexpected argument '--nocapture' found; to pass '--nocapture' as a value, use \
             '-- --nocapture'; usage: cargo xtask test [-- <ARGS>...]"
        );
        assert_eq!(
            parse("cargo-xtask bench --startup -- --ring-mib 1").unwrap_err(),
            "the argument '--startup' cannot be used with '[ARGS]...'; usage: cargo xtask bench \
             --startup [-- <ARGS>...]"
        );
        let e = parse("cargo-xtask build --relase").unwrap_err();
        assert!(e.contains("unexpected argument '--relase'"), "{e}");
        assert!(e.contains("'--release'"), "a suggestion: {e}");
        for wrong in ["cargo-xtask vm-test --kernels", "cargo-xtask run top"] {
            let e = parse(wrong).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
