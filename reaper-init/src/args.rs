//! Hand-rolled command-line parsing.
//!
//! The grammar is tiny (a handful of flags, then the command), so a CLI
//! framework would only add code to audit in a process that runs as PID 1.
//! Parsing is strict: the first unknown flag is an error, never a command.
//! Options must come before the command; everything from the first non-option
//! argument (or after `--`) on belongs to the command, untouched.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// Full help text, printed by `--help` (stdout) and when no command is given (stderr).
pub const USAGE: &str = "\
Usage: reaper-init [OPTIONS] [--] COMMAND [ARGS...]

A tiny init: runs COMMAND as its child, forwards signals to it, reaps every
zombie (orphans included) and exits with COMMAND's exit status
(128 + N if COMMAND was killed by signal N).

Options:
  -s, --subreaper         register as child subreaper (prctl PR_SET_CHILD_SUBREAPER)
                          so orphans are reaped even when not running as PID 1;
                          also enabled by the environment variable REAPER_INIT_SUBREAPER=1
  -g, --group             run COMMAND in its own process group and forward signals
                          to that whole group instead of only to COMMAND
  -e, --remap-exit CODE   exit with 0 instead of CODE (0..255) when COMMAND's
                          status maps to CODE (e.g. 143 for SIGTERM); repeatable
  -v, --verbose           log reaped processes and forwarded signals to stderr
  -h, --help              print this help and exit
  -V, --version           print the version and exit

Job control: when not PID 1, reaper-init forwards SIGTSTP (Ctrl-Z), SIGTTIN and
SIGTTOU to COMMAND and then stops itself with SIGSTOP, as dumb-init does: the
shell that sent them waits for its job to stop before it gives the prompt back.
While stopped it reaps nothing (zombies wait until SIGCONT, which it forwards
too). As PID 1 it never stops: nothing would continue it, and it must reap.

Exit status: COMMAND's status; 125 if reaper-init itself failed; 126 if COMMAND
is not executable; 127 if COMMAND was not found; 2 on usage errors.
";

/// Settings for a normal run (everything except `--help` / `--version`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Become a child subreaper (`-s`). The `REAPER_INIT_SUBREAPER` environment
    /// variable is looked at by the caller, not here, to keep parsing pure.
    pub subreaper: bool,
    /// Put the command in its own process group and signal the group (`-g`).
    pub group: bool,
    /// Log reaping and forwarding (`-v`).
    pub verbose: bool,
    /// Exit statuses that are reported as 0 (`-e CODE`), in the order given.
    pub remap_exit: Vec<u8>,
    /// The command and its arguments; never empty.
    pub command: Vec<OsString>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Run(Options),
    Help,
    Version,
}

/// Why the command line was rejected. Both cases exit with status 2.
#[derive(Debug, PartialEq, Eq)]
pub enum ArgError {
    /// No command was given: the caller prints the usage text.
    NoCommand,
    /// A malformed option: the caller prints this one-line message.
    Invalid(String),
}

/// Parses the arguments that follow `argv[0]`.
pub fn parse<I>(args: I) -> Result<Action, ArgError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut opts = Options::default();
    let mut args = args.into_iter();

    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            opts.command.extend(args.by_ref());
            break;
        }
        if let Some(long) = bytes.strip_prefix(b"--") {
            // `--name` or `--name=value`.
            let (name, inline_value) = match long.iter().position(|&b| b == b'=') {
                Some(eq) => (&long[..eq], Some(&long[eq + 1..])),
                None => (long, None),
            };
            let flag = format!("--{}", String::from_utf8_lossy(name));
            let takes_value = name == b"remap-exit";
            if inline_value.is_some() && !takes_value {
                return Err(ArgError::Invalid(format!(
                    "option '{flag}' does not take a value"
                )));
            }
            match name {
                b"subreaper" => opts.subreaper = true,
                b"group" => opts.group = true,
                b"verbose" => opts.verbose = true,
                b"help" => return Ok(Action::Help),
                b"version" => return Ok(Action::Version),
                b"remap-exit" => {
                    let value = match inline_value {
                        Some(v) => OsString::from(std::ffi::OsStr::from_bytes(v)),
                        None => args.next().ok_or_else(|| missing_value(&flag))?,
                    };
                    opts.remap_exit.push(parse_exit_code(&flag, &value)?);
                }
                _ => return Err(unknown_option(&flag)),
            }
            continue;
        }
        if bytes.len() > 1 && bytes[0] == b'-' {
            // One or more clustered short flags, getopt style: `-sv`, `-e3`, `-se 3`.
            let cluster = &bytes[1..];
            for (i, &c) in cluster.iter().enumerate() {
                match c {
                    b's' => opts.subreaper = true,
                    b'g' => opts.group = true,
                    b'v' => opts.verbose = true,
                    b'h' => return Ok(Action::Help),
                    b'V' => return Ok(Action::Version),
                    b'e' => {
                        // The rest of the cluster is the value, else the next argument.
                        let rest = &cluster[i + 1..];
                        let value = if rest.is_empty() {
                            args.next().ok_or_else(|| missing_value("-e"))?
                        } else {
                            OsString::from(std::ffi::OsStr::from_bytes(rest))
                        };
                        opts.remap_exit.push(parse_exit_code("-e", &value)?);
                        break;
                    }
                    _ => {
                        let flag = format!("-{}", String::from_utf8_lossy(&cluster[i..=i]));
                        return Err(unknown_option(&flag));
                    }
                }
            }
            continue;
        }
        // First non-option argument (a lone "-" counts too): the command starts here.
        opts.command.push(arg);
        opts.command.extend(args.by_ref());
        break;
    }

    if opts.command.is_empty() {
        return Err(ArgError::NoCommand);
    }
    Ok(Action::Run(opts))
}

fn unknown_option(flag: &str) -> ArgError {
    ArgError::Invalid(format!("unknown option '{flag}'"))
}

fn missing_value(flag: &str) -> ArgError {
    ArgError::Invalid(format!(
        "option '{flag}' requires a value (an exit code 0..255)"
    ))
}

/// Accepts plain decimal 0..=255 only (no sign, no hex), so typos are caught.
fn parse_exit_code(flag: &str, value: &OsString) -> Result<u8, ArgError> {
    let bytes = value.as_bytes();
    let parsed = if !bytes.is_empty() && bytes.len() <= 3 && bytes.iter().all(u8::is_ascii_digit) {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<u8>().ok())
    } else {
        None
    };
    parsed.ok_or_else(|| {
        ArgError::Invalid(format!(
            "invalid exit code '{}' for option '{flag}' (expected 0..255)",
            value.to_string_lossy()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Action, ArgError> {
        parse(args.iter().map(OsString::from))
    }

    fn run(args: &[&str]) -> Options {
        match parse_strs(args) {
            Ok(Action::Run(opts)) => opts,
            other => panic!("expected Run for {args:?}, got {other:?}"),
        }
    }

    fn invalid(args: &[&str]) -> String {
        match parse_strs(args) {
            Err(ArgError::Invalid(msg)) => msg,
            other => panic!("expected Invalid for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn plain_command_keeps_its_own_flags() {
        let opts = run(&["ls", "-l", "--all"]);
        assert_eq!(opts.command, ["ls", "-l", "--all"]);
        assert!(!opts.subreaper && !opts.group && !opts.verbose);
    }

    #[test]
    fn long_and_short_flags() {
        let long = run(&[
            "--subreaper",
            "--group",
            "--verbose",
            "--remap-exit",
            "143",
            "x",
        ]);
        let short = run(&["-s", "-g", "-v", "-e", "143", "x"]);
        let clustered = run(&["-sgve143", "x"]);
        let inline = run(&["-sgv", "--remap-exit=143", "x"]);
        for opts in [long, short, clustered, inline] {
            assert!(opts.subreaper && opts.group && opts.verbose);
            assert_eq!(opts.remap_exit, [143]);
            assert_eq!(opts.command, ["x"]);
        }
    }

    #[test]
    fn remap_is_repeatable() {
        assert_eq!(
            run(&["-e", "1", "-e2", "--remap-exit", "255", "x"]).remap_exit,
            [1, 2, 255]
        );
    }

    #[test]
    fn double_dash_ends_options() {
        assert_eq!(run(&["-v", "--", "-s", "--help"]).command, ["-s", "--help"]);
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse_strs(&["-h"]), Ok(Action::Help));
        assert_eq!(parse_strs(&["--help", "x"]), Ok(Action::Help));
        assert_eq!(parse_strs(&["-V"]), Ok(Action::Version));
        assert_eq!(parse_strs(&["--version"]), Ok(Action::Version));
    }

    #[test]
    fn missing_command() {
        assert_eq!(parse_strs(&[]), Err(ArgError::NoCommand));
        assert_eq!(parse_strs(&["-s", "--"]), Err(ArgError::NoCommand));
    }

    #[test]
    fn errors_name_the_flag() {
        assert!(invalid(&["--bogus", "x"]).contains("'--bogus'"));
        assert!(invalid(&["-sx", "x"]).contains("'-x'"));
        assert!(invalid(&["--subreaper=1", "x"]).contains("'--subreaper'"));
        assert!(invalid(&["-e"]).contains("'-e'"));
        assert!(invalid(&["--remap-exit"]).contains("'--remap-exit'"));
        for bad in ["256", "-1", "+3", "0x1", "", "abc", "1000"] {
            assert!(
                invalid(&["-e", bad, "x"]).contains("invalid exit code"),
                "{bad:?}"
            );
        }
    }
}
