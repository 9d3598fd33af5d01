//! The `reaper-trace` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::io::Write as _;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use reaper_trace::exit::Exit;
use reaper_trace::{check, daemon, dashboard, doctor, record, scenario, tracer, tree, validate};

#[derive(Parser)]
#[command(
    name = "reaper-trace",
    version,
    about = "See how Linux reaps processes: which reaper adopted each orphan, how long each zombie lived"
)]
struct Cli {
    /// Without a command: `top` on a terminal, this help otherwise.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Record fork, exec, exit, reparent, zombie, reap and subreaper events as JSON Lines.
    Record(RecordArgs),
    /// A live dashboard of adoptions, zombies and reapers (or a recording played back).
    #[command(after_help = dashboard::keys::help_text())]
    Top(TopArgs),
    /// Run the built-in scenarios (each as real processes, in its own pid namespace where it
    /// needs one) and check the kernel's reapers against the expected and predicted ones.
    Validate(ValidateArgs),
    /// Attach once and serve the host: Prometheus metrics over HTTP, and the event stream on a
    /// Unix socket for `top --connect` and `record --connect`, until SIGTERM or Ctrl-C.
    Daemon(DaemonArgs),
    /// Name every namespace init or subreaper that holds zombies past the threshold (it
    /// adopted orphans and did not reap them); exits 1 when it finds one (a health check).
    Doctor(DoctorArgs),
    /// Print the process tree as the kernel's reaper logic sees it: subreapers, namespace inits,
    /// zombies and who must reap them, and where each process's children would go if it died
    /// now (from one pass of a BPF task iterator; nothing is attached).
    Tree(TreeArgs),
    /// Check that this kernel can run reaper-trace: verify every program it would load here
    /// (attaching none) and print what the verifier processed, or why it refused one.
    Check {
        /// Print one JSON document instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Attach the bench's floor programs (empty programs on the tracer's hooks) until
    /// SIGTERM or Ctrl-C: what `cargo xtask bench` compares the tracer's programs against.
    #[command(hide = true)]
    Floor,
    /// Run a built-in process-tree experiment (used by the tests and `validate`).
    #[command(hide = true)]
    Scenario {
        /// Scenario name (`--list` shows them).
        name: Option<String>,
        /// Seconds for the scenarios that wait (zombie, sleep-init).
        #[arg(long, value_name = "SECS", default_value_t = 3.0)]
        seconds: f64,
        /// How long the scenarios that try until something happens (pid-reuse) may try.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
        budget: Duration,
        /// Name and describe every scenario, then exit.
        #[arg(long, conflicts_with = "name")]
        list: bool,
    },
    /// Print a shell completion script for reaper-trace (`cargo xtask install` installs them).
    #[command(hide = true)]
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write reaper-trace's man pages (reaper-trace.1 and one per command) into DIR.
    #[command(hide = true)]
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct RecordArgs {
    /// Write to this file instead of standard output (`-` is standard output).
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Stop after this long, e.g. `30s`, `5m`, `1h`, `250ms` (default: until Ctrl-C, or until
    /// the command exits).
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Ring buffer size in MiB (a power of two, 1 to 1024). It costs that much kernel memory
    /// (never swapped out), mapped once into reaper-trace: its RSS grows by as much.
    #[arg(long, value_name = "MIB", default_value_t = tracer::DEFAULT_RING_BYTES >> 20, value_parser = parse_ring_mib)]
    ring_mib: u32,
    /// No summary line on standard error.
    #[arg(short, long)]
    quiet: bool,
    /// With a command: after it exits, keep following the orphans it left (who adopts and
    /// who reaps them) for at most this long; stops as soon as none is left.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    linger: Duration,
    /// Run this command and trace only its process tree (filtered in the kernel), stopping
    /// when it exits and its orphans are gone (see --linger).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    /// Record a running daemon's stream instead of attaching (its socket; by default
    /// /run/reaper-trace.sock).
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, default_missing_value = daemon::DEFAULT_SOCKET, conflicts_with_all = ["command", "ring_mib", "linger"])]
    connect: Option<PathBuf>,
}

#[derive(clap::Args, Default)]
struct TopArgs {
    /// Play this recording (from `record`) instead of tracing live.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Replay speed (with --replay): 2 is twice as fast as recorded; 0 plays it all at once
    /// and stays on the final state [default: 1].
    #[arg(long, value_name = "X", value_parser = parse_speed)]
    speed: Option<f64>,
    /// Highlight zombies older than this, e.g. `5s`, `500ms`, `2m`.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    zombie_threshold: Duration,
    /// Ring buffer size in MiB (a power of two, 1 to 1024). It costs that much kernel memory
    /// (never swapped out), mapped once into reaper-trace: its RSS grows by as much.
    #[arg(long, value_name = "MIB", default_value_t = tracer::DEFAULT_RING_BYTES >> 20, value_parser = parse_ring_mib)]
    ring_mib: u32,
    /// Show only what involves this container: its name, pod name, or a prefix of its id
    /// (the `n` key cycles through the containers seen).
    #[arg(long, value_name = "NAME")]
    container: Option<String>,
    /// Show a running daemon's stream (its socket; by default /run/reaper-trace.sock).
    /// Without --connect, top uses a daemon on the default socket when one answers, and
    /// attaches by itself otherwise.
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, default_missing_value = daemon::DEFAULT_SOCKET, conflicts_with_all = ["replay", "ring_mib"])]
    connect: Option<PathBuf>,
}

impl TopArgs {
    fn defaults() -> Self {
        Self {
            zombie_threshold: Duration::from_secs(5),
            ring_mib: tracer::DEFAULT_RING_BYTES >> 20,
            ..Default::default()
        }
    }

    fn options(self) -> dashboard::TopOptions {
        dashboard::TopOptions {
            replay: self.replay,
            speed: self.speed.unwrap_or(1.0),
            zombie_threshold: self.zombie_threshold,
            ring_bytes: self.ring_mib << 20,
            container: self.container,
            connect: self.connect,
        }
    }
}

#[derive(clap::Args)]
struct DaemonArgs {
    /// Serve Prometheus metrics (text exposition, at /metrics) on this address.
    #[arg(long, value_name = "ADDR", default_value = daemon::DEFAULT_METRICS)]
    metrics: std::net::SocketAddr,
    /// Stream events (JSON Lines) on this Unix socket, mode 0600.
    #[arg(long, value_name = "PATH", default_value = daemon::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// A namespace init or subreaper holding a zombie older than this is counted in
    /// reaper_trace_unreaping_reapers.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    zombie_threshold: Duration,
    /// Ring buffer size in MiB (a power of two, 1 to 1024). It costs that much kernel memory
    /// (never swapped out), mapped once into reaper-trace: its RSS grows by as much.
    #[arg(long, value_name = "MIB", default_value_t = tracer::DEFAULT_RING_BYTES >> 20, value_parser = parse_ring_mib)]
    ring_mib: u32,
    /// HTTP connections to the metrics address at most; at the cap the oldest is closed to
    /// make room. A connection that sends no request within 10 s is closed.
    #[arg(long, value_name = "N", default_value_t = daemon::exporter::DEFAULT_MAX_CONNECTIONS as u16, value_parser = clap::value_parser!(u16).range(1..))]
    max_connections: u16,
    /// Serve the metrics over TLS and/or behind a password: a web configuration file in the
    /// format of Prometheus's exporter-toolkit (tls_server_config: cert_file, key_file,
    /// min_version; basic_auth_users: bcrypt hashes).
    #[arg(long, value_name = "FILE")]
    web_config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct TreeArgs {
    /// Show only these processes' subtrees (global pids; all processes by default).
    #[arg(value_name = "PID")]
    pids: Vec<u32>,
    /// Print one JSON document instead of the tree.
    #[arg(long)]
    json: bool,
    /// List each process's threads, and where each thread's own children would go if that
    /// thread alone exited.
    #[arg(long)]
    threads: bool,
}

#[derive(clap::Args)]
struct DoctorArgs {
    /// Watch this long before reporting, e.g. `10s`, `1m` (Ctrl-C reports at once).
    #[arg(short, long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// A zombie older than this is one too many, e.g. `5s`, `500ms`, `2m`.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    zombie_threshold: Duration,
    /// Diagnose a recording (from `record`) instead of watching live.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Ring buffer size in MiB (a power of two, 1 to 1024). It costs that much kernel memory
    /// (never swapped out), mapped once into reaper-trace: its RSS grows by as much.
    #[arg(long, value_name = "MIB", default_value_t = tracer::DEFAULT_RING_BYTES >> 20, value_parser = parse_ring_mib)]
    ring_mib: u32,
}

#[derive(clap::Args)]
struct ValidateArgs {
    /// Run only this scenario (repeatable; `reaper-trace scenario --list` names them).
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// Run each scenario this many times in a row (races show up in some runs only).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Time each scenario may run before it is killed and failed, e.g. `15s`, `500ms`, `2`.
    #[arg(long, value_name = "SECS", default_value = "15s", value_parser = parse_duration)]
    timeout: Duration,
    /// How soon a reaping init must reap an orphan's zombie in the pid1-* scenarios, e.g.
    /// `100ms`; raise it on a slow machine (an emulated one, or one under heavy load).
    #[arg(long, value_name = "TIME", default_value = "100ms", value_parser = parse_duration)]
    reap_within: Duration,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write each scenario's events to DIR/NAME.jsonl (the evidence behind its verdict).
    #[arg(long, value_name = "DIR")]
    events: Option<PathBuf>,
    /// Ring buffer size in MiB (a power of two, 1 to 1024). It costs that much kernel memory
    /// (never swapped out), mapped once into reaper-trace: its RSS grows by as much.
    #[arg(long, value_name = "MIB", default_value_t = tracer::DEFAULT_RING_BYTES >> 20, value_parser = parse_ring_mib)]
    ring_mib: u32,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('x').parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!(
            "`{s}` is not a speed: use e.g. 1, 2, 0.5, or 0 for as fast as possible"
        )),
    }
}

/// The longest duration any option takes: far beyond any recording, well within what a
/// deadline (`Instant` + duration) can hold.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: use e.g. 30s, 5m, 250ms"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit `{unit}` in `{s}`: use ms, s, m or h")),
    };
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("`{s}` must be a positive duration"));
    }
    // Checked before converting: `Duration::from_secs_f64` panics past u64 seconds.
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "`{s}` is too long: at most {}h (100 years)",
            MAX_DURATION.as_secs() / 3600
        ));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("`{s}` must be a positive duration of at least 1ns")),
    }
}

fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of MiB"))?;
    if !n.is_power_of_two() || !(1..=1024).contains(&n) {
        return Err(format!(
            "ring buffer size must be a power of two from 1 to 1024 MiB, not {n}"
        ));
    }
    Ok(n)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> Result<i32> {
    let Some(command) = cli.command else {
        // A bare `reaper-trace`: the dashboard on a terminal, else the help (and a usage error).
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            return runtime()?.block_on(dashboard::run(TopArgs::defaults().options()));
        }
        let _ = Cli::command().print_help();
        return Ok(2);
    };
    match command {
        Command::Top(a) => runtime()?.block_on(dashboard::run(a.options())),
        Command::Check { json } => check::run(json),
        Command::Tree(a) => tree::run(
            &tree::Options {
                pids: a.pids,
                threads: a.threads,
            },
            a.json,
        ),
        Command::Doctor(a) => runtime()?.block_on(doctor::run(doctor::DoctorOptions {
            duration: a.duration,
            zombie_threshold: a.zombie_threshold,
            replay: a.replay,
            ring_bytes: a.ring_mib << 20,
        })),
        Command::Validate(a) => runtime()?.block_on(validate::run(validate::ValidateOptions {
            only: a.only,
            runs: a.runs,
            timeout: a.timeout,
            reap_within: a.reap_within,
            json: a.json,
            ring_bytes: a.ring_mib << 20,
            events_dir: a.events,
        })),
        Command::Record(a) => {
            let connect = a.connect.clone();
            let opts = record::RecordOptions {
                output: a.output,
                duration: a.duration,
                command: a.command,
                ring_bytes: a.ring_mib << 20,
                quiet: a.quiet,
                linger: a.linger,
            };
            match connect {
                Some(socket) => runtime()?.block_on(record::run_connected(&socket, opts)),
                None => runtime()?.block_on(record::run(opts)),
            }
        }
        Command::Daemon(a) => runtime()?.block_on(daemon::run(daemon::DaemonOptions {
            metrics: a.metrics,
            socket: a.socket,
            zombie_threshold: a.zombie_threshold,
            ring_bytes: a.ring_mib << 20,
            limits: daemon::exporter::Limits {
                max_connections: a.max_connections.into(),
                ..Default::default()
            },
            web_config: a.web_config,
        })),
        Command::Floor => runtime()?.block_on(async {
            reaper_trace::preflight::check_privileges()?;
            reaper_trace::preflight::ensure_tracefs()?;
            let _floor = tracer::attach_floor()?;
            let mut signals = reaper_trace::live::StopSignals::new()?;
            println!("attached");
            signals.recv().await;
            Ok(0)
        }),
        Command::Scenario {
            name,
            seconds,
            budget,
            list,
        } => {
            if list {
                let mut out = std::io::stdout().lock();
                for s in scenario::REGISTRY {
                    writeln!(out, "{:26} {}", s.name(), s.about())?;
                }
                return Ok(0);
            }
            let Some(name) = name else {
                return Err(Exit::usage(
                    "name a scenario: `reaper-trace scenario --list` lists them",
                )
                .into());
            };
            let (report, code) = scenario::run(&name, seconds, budget)?;
            if let Some(report) = report {
                println!("{}", serde_json::to_string(&report)?);
            }
            Ok(code)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "reaper-trace", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { dir } => {
            for page in write_man_pages(&dir)? {
                println!("{}", page.display());
            }
            Ok(0)
        }
    }
}

/// What clap can't say by itself, as a usage error: `--speed` without `--replay` (clap's
/// `requires` names the missing argument on a line of its own, which the one-line usage error
/// leaves out).
fn check_cli(cli: Cli) -> Result<Cli, clap::Error> {
    if let Some(Command::Top(a)) = &cli.command
        && a.speed.is_some()
        && a.replay.is_none()
    {
        return Err(<Cli as clap::CommandFactory>::command().error(
            clap::error::ErrorKind::MissingRequiredArgument,
            "--speed sets how fast a recording plays: add --replay FILE (a live dashboard runs in real time)",
        ));
    }
    Ok(cli)
}

/// The dashboard's keys as a man page section (roff), from the key map.
fn keys_man_section() -> String {
    let mut s = String::from(".SH KEYS\n.nf\n");
    for line in dashboard::keys::help_text().lines().skip(1) {
        let line = line.trim_start().replace('\\', "\\e").replace('-', "\\-");
        s.push_str("\\&");
        s.push_str(&line);
        s.push('\n');
    }
    s.push_str(".fi\n");
    s
}

/// reaper-trace.1, and reaper-trace-COMMAND.1 for each command users run.
fn write_man_pages(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    use anyhow::Context;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}: choose a writable DIR", dir.display()))?;
    // `reaper-trace help` is a way to read this, not a page of its own.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = vec![(String::from("reaper-trace"), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("reaper-trace-{}", sub.get_name());
        let version = cmd.get_version().unwrap_or_default().to_string();
        pages.push((name.clone(), sub.clone().name(name).version(version)));
    }
    let mut written = Vec::new();
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        let man = clap_mangen::Man::new(page);
        if name == "reaper-trace-top" {
            // The keys get a section of their own rather than clap_mangen's "EXTRA".
            man.render_title(&mut out)?;
            man.render_name_section(&mut out)?;
            man.render_synopsis_section(&mut out)?;
            man.render_description_section(&mut out)?;
            man.render_options_section(&mut out)?;
            out.extend_from_slice(keys_man_section().as_bytes());
            man.render_version_section(&mut out)?;
        } else {
            man.render(&mut out)?;
        }
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// clap's usage errors end with usage and tip lines: keep the error itself on one line, say
/// where help is, and exit 2 as clap would. Help and version requests print as usual.
fn parse_cli() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    Cli::try_parse()
        .and_then(check_cli)
        .map_err(|e| match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                ExitCode::from(if e.use_stderr() { 2 } else { 0 })
            }
            _ => {
                // The error quotes the arguments: escaped like every other error.
                eprintln!(
                    "reaper-trace: error: {}",
                    reaper_trace::escape::escape_control(&one_line_usage_error(&e.to_string()))
                );
                ExitCode::from(2)
            }
        })
}

fn one_line_usage_error(rendered: &str) -> String {
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first} (see `reaper-trace --help`)")
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        // A closed standard output (`reaper-trace ... | head`) ends the run quietly.
        Err(e) if reaper_trace::exit::is_broken_pipe(&e) => ExitCode::from(Exit::BROKEN_PIPE),
        Err(e) => {
            eprintln!("{}", reaper_trace::escape::error_line(&e));
            ExitCode::from(Exit::code_of(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_are_one_line() {
        let e = Cli::try_parse_from(["reaper-trace", "record", "--bogus"])
            .err()
            .expect("an error");
        let line = one_line_usage_error(&e.to_string());
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains("--bogus") && line.ends_with("(see `reaper-trace --help`)"),
            "{line}"
        );
        let e = Cli::try_parse_from(["reaper-trace", "record", "-d", "3x"])
            .err()
            .expect("an error");
        assert!(one_line_usage_error(&e.to_string()).contains("unknown unit"));
        // `validate --runs`: 1 to 1000, a number.
        for bad in ["0", "1001", "two"] {
            let e = Cli::try_parse_from(["reaper-trace", "validate", "--runs", bad])
                .err()
                .unwrap_or_else(|| panic!("--runs {bad} accepted"));
            let line = one_line_usage_error(&e.to_string());
            assert!(line.contains("--runs"), "{line}");
        }
        assert!(Cli::try_parse_from(["reaper-trace", "validate", "--runs", "10"]).is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("3x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
        // Out of range is an error, not a panic (from_secs_f64 panicked past u64 seconds, a
        // deadline past what an Instant holds).
        for long in [
            "99999999999999999999h",
            "1e400",
            &"9".repeat(400),
            "876001h",
        ] {
            let err = parse_duration(long).unwrap_err();
            assert!(
                err.contains("too long") || err.contains("unknown unit"),
                "{long}: {err}"
            );
        }
        assert!(
            parse_duration("99999999999999999999h")
                .unwrap_err()
                .contains("at most 876000h")
        );
        assert_eq!(parse_duration("876000h"), Ok(MAX_DURATION));
        assert!(parse_duration("0.0000000001s").is_err());
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(parse_ring_mib("4"), Ok(4));
        assert!(parse_ring_mib("3").is_err());
        assert!(parse_ring_mib("0").is_err());
    }

    #[test]
    fn top_arguments() {
        assert_eq!(parse_speed("2"), Ok(2.0));
        assert_eq!(parse_speed("0.5x"), Ok(0.5));
        assert_eq!(parse_speed("0"), Ok(0.0));
        assert!(parse_speed("-1").is_err());
        assert!(parse_speed("fast").is_err());
        // A bare run has no command: `top` on a terminal, the help otherwise.
        assert!(
            Cli::try_parse_from(["reaper-trace"])
                .unwrap()
                .command
                .is_none()
        );
        let cli = Cli::try_parse_from(["reaper-trace", "top"]).unwrap();
        let Some(Command::Top(a)) = cli.command else {
            panic!("not top")
        };
        let (d, o) = (TopArgs::defaults(), a);
        assert_eq!(
            (o.speed, o.zombie_threshold, o.ring_mib, o.replay),
            (d.speed, d.zombie_threshold, d.ring_mib, d.replay)
        );
        let cli = Cli::try_parse_from([
            "reaper-trace",
            "top",
            "--replay",
            "t.jsonl",
            "--speed",
            "0",
            "--zombie-threshold",
            "500ms",
        ])
        .unwrap();
        let Some(Command::Top(a)) = cli.command else {
            panic!("not top")
        };
        assert_eq!(a.speed, Some(0.0));
        assert!(
            check_cli(
                Cli::try_parse_from(["reaper-trace", "top", "--replay", "t", "--speed", "2"])
                    .unwrap()
            )
            .is_ok()
        );
        assert_eq!(a.zombie_threshold, Duration::from_millis(500));
        // --speed means nothing live: a one-line usage error naming --replay.
        let cli = Cli::try_parse_from(["reaper-trace", "top", "--speed", "2"]).unwrap();
        let line = one_line_usage_error(&check_cli(cli).err().expect("an error").to_string());
        assert!(
            line.starts_with("--speed sets how fast a recording plays: add --replay FILE"),
            "{line}"
        );
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The defaults `--help` shows are the ones the library defines.
    #[test]
    fn defaults_are_the_librarys() {
        let cmd = Cli::command();
        let default = |sub: &str, long: &str| {
            let arg = cmd
                .find_subcommand(sub)
                .and_then(|s| s.get_arguments().find(|a| a.get_long() == Some(long)))
                .unwrap_or_else(|| panic!("{sub} --{long}"));
            let value = arg.get_default_values()[0].to_str().unwrap().to_string();
            parse_duration(&value).unwrap()
        };
        assert_eq!(default("record", "linger"), record::DEFAULT_LINGER);
        assert_eq!(default("validate", "timeout"), validate::DEFAULT_TIMEOUT);
    }

    /// The reference of every command's options (its table) and of the dashboard.
    const COMMANDS_DOC: &str = include_str!("../../docs/commands.md");
    const DASHBOARD_DOC: &str = include_str!("../../docs/dashboard.md");

    /// Every flag of every command users may type (the hidden `scenario` included) is in
    /// docs/commands.md, and the dashboard's key list, as `top --help` prints it, is in
    /// docs/dashboard.md.
    #[test]
    fn docs_document_every_flag_and_key() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            if ["floor", "completions", "man"].contains(&sub.get_name()) {
                continue;
            }
            for arg in sub.get_arguments() {
                if let Some(long) = arg.get_long().filter(|l| *l != "help") {
                    assert!(
                        COMMANDS_DOC.contains(&format!("--{long}")),
                        "`{} --{long}` is not in docs/commands.md",
                        sub.get_name()
                    );
                }
                if let Some(short) = arg.get_short().filter(|s| *s != 'h') {
                    assert!(
                        COMMANDS_DOC.contains(&format!("-{short}")),
                        "`{} -{short}` is not in docs/commands.md",
                        sub.get_name()
                    );
                }
            }
        }
        assert!(
            DASHBOARD_DOC.contains(&dashboard::keys::help_text()),
            "docs/dashboard.md's key list is not `top --help`'s:\n{}",
            dashboard::keys::help_text()
        );
    }

    #[test]
    fn top_help_lists_the_keys() {
        let mut cmd = Cli::command();
        let top = cmd.find_subcommand_mut("top").unwrap();
        let help = top.render_long_help().to_string();
        assert!(help.contains(&dashboard::keys::help_text()), "{help}");
        for b in dashboard::keys::KEYMAP {
            assert!(help.contains(&b.label()) && help.contains(b.what), "{help}");
        }
    }

    #[test]
    fn scenario_help_and_a_missing_name() {
        let mut cmd = Cli::command();
        let sc = cmd.find_subcommand_mut("scenario").unwrap();
        let help = sc.render_long_help().to_string();
        assert!(
            help.contains("--list") && help.contains("every scenario"),
            "{help}"
        );
        assert!(help.contains("--seconds <SECS>"), "{help}");
        // No name is not a clap error (which listed no argument): run() says what to do.
        let cli = Cli::try_parse_from(["reaper-trace", "scenario"]).unwrap();
        let e = run(cli).unwrap_err();
        assert_eq!(Exit::code_of(&e), 2);
        assert!(e.to_string().contains("scenario --list"), "{e}");
        assert!(Cli::try_parse_from(["reaper-trace", "scenario", "x", "--list"]).is_err());
    }

    #[test]
    fn completions_and_man_pages_are_generated() {
        use clap::ValueEnum;
        for shell in clap_complete::Shell::value_variants() {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "reaper-trace", &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("record") && text.contains("ring-mib"),
                "{shell}: {text}"
            );
        }
        let dir = std::env::temp_dir().join(format!("reaper-trace-man-{}", std::process::id()));
        let pages = write_man_pages(&dir).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "reaper-trace.1",
                "reaper-trace-record.1",
                "reaper-trace-top.1",
                "reaper-trace-validate.1",
                "reaper-trace-daemon.1",
                "reaper-trace-doctor.1",
                "reaper-trace-tree.1",
                "reaper-trace-check.1"
            ]
        );
        for p in &pages {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.starts_with(".ie") || text.contains(".TH "), "{text}");
            assert!(text.contains(".SH NAME") && text.contains(".SH SYNOPSIS"));
        }
        let top = std::fs::read_to_string(&pages[2]).unwrap();
        assert!(
            top.contains(".SH KEYS") && top.contains("Ctrl\\-\\e"),
            "{top}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
