//! Exit statuses that follow the shell's conventions, carried through `anyhow` errors.
//!
//! Most failures exit 1. A few have a conventional status of their own: 2 for a usage error
//! (as clap's), 126 and 127 for a command that cannot be run (as shells and reaper-init), 141
//! when standard output was closed under us (as a shell reports a tool SIGPIPE stopped).

use std::fmt;

/// An error that ends the process with `code` (its message is printed as any other).
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl Exit {
    /// Usage errors, as clap exits for its own.
    pub const USAGE: u8 = 2;
    /// The command exists but cannot be executed (a shell's 126).
    pub const NOT_EXECUTABLE: u8 = 126;
    /// The command was not found (a shell's 127).
    pub const NOT_FOUND: u8 = 127;
    /// Standard output (or the recording's pipe) was closed by its reader: 128 + SIGPIPE,
    /// what a shell reports for a tool that SIGPIPE stopped (`set -o pipefail` sees it).
    /// reaper-trace ignores SIGPIPE so that it can detach its programs first, then exits
    /// with this status, quietly.
    pub const BROKEN_PIPE: u8 = 128 + libc::SIGPIPE as u8;

    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: Self::USAGE,
            message: message.into(),
        }
    }

    /// The exit status for an error: its [`Exit`]'s code, else 1.
    pub fn code_of(e: &anyhow::Error) -> u8 {
        e.chain()
            .find_map(|c| c.downcast_ref::<Exit>())
            .map_or(1, |x| x.code)
    }

    /// Why `program` cannot be run, with a shell's status: 127 if it does not exist, 126 if
    /// it is not an executable file (or the kernel refused to run it).
    pub fn cannot_run(program: &str, err: &std::io::Error) -> Self {
        let (code, why) = match err.kind() {
            std::io::ErrorKind::NotFound => (
                Self::NOT_FOUND,
                "no such executable: check the command and its PATH".to_string(),
            ),
            kind => (
                Self::NOT_EXECUTABLE,
                format!("not an executable file ({kind}): check its path and mode"),
            ),
        };
        Self {
            code,
            message: format!("cannot run {program}: {why}"),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Whether the error comes from writing to a pipe whose reader has gone.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_survive_context() {
        let e = anyhow::Error::from(Exit::usage("name one")).context("outer");
        assert_eq!(Exit::code_of(&e), 2);
        assert_eq!(Exit::code_of(&anyhow::anyhow!("plain")), 1);
        let nf = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Exit::cannot_run("x", &nf).code, 127);
        let acc = std::io::Error::from_raw_os_error(libc::EACCES);
        let e = Exit::cannot_run("./x", &acc);
        assert_eq!(e.code, 126);
        assert!(e.message.starts_with("cannot run ./x: "), "{e}");
        assert_eq!(Exit::BROKEN_PIPE, 141);
        let pipe: anyhow::Result<()> =
            Err::<(), _>(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
                .context("writing the recording");
        assert!(is_broken_pipe(&pipe.unwrap_err()));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
