//! The `reaper-trace` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use reaper_trace::{record, scenario, tracer};

#[derive(Parser)]
#[command(
    name = "reaper-trace",
    version,
    about = "See how Linux reaps processes: which reaper adopted each orphan, how long each zombie lived"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record fork, exec, exit, reparent, zombie, reap and subreaper events as JSON Lines.
    Record(RecordArgs),
    /// Run a built-in process-tree experiment (used by the tests and `validate`).
    #[command(hide = true)]
    Scenario {
        /// Scenario name (`--list` shows them).
        #[arg(required_unless_present = "list")]
        name: Option<String>,
        /// Seconds for the scenarios that wait (zombie, sleep-init).
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long)]
        list: bool,
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
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, value_name = "MIB", default_value_t = tracer::DEFAULT_RING_BYTES >> 20, value_parser = parse_ring_mib)]
    ring_mib: u32,
    /// No summary line on standard error.
    #[arg(short, long)]
    quiet: bool,
    /// Run this command and trace only its process tree, stopping when it exits.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

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
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
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
    match cli.command {
        Command::Record(a) => runtime()?.block_on(record::run(record::RecordOptions {
            output: a.output,
            duration: a.duration,
            command: a.command,
            ring_bytes: a.ring_mib << 20,
            quiet: a.quiet,
        })),
        Command::Scenario {
            name,
            seconds,
            list,
        } => {
            if list {
                for (name, about) in scenario::SCENARIOS {
                    println!("{name:18} {about}");
                }
                return Ok(0);
            }
            let Some(name) = name else {
                bail!("name a scenario: see `reaper-trace scenario --list`")
            };
            let report = scenario::run(&name, seconds)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("reaper-trace: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("3x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(parse_ring_mib("4"), Ok(4));
        assert!(parse_ring_mib("3").is_err());
        assert!(parse_ring_mib("0").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
