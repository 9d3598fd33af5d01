//! `cargo xtask install [--prefix DIR]`: the optimized binaries in PREFIX/bin, their shell
//! completions and man pages where bash-completion, zsh, fish and man look under PREFIX.
//!
//! reaper-trace writes its own completions and man pages from its clap definitions (hidden
//! `completions` and `man` commands). reaper-init has no CLI framework (it runs as PID 1 and
//! stays small): its `--help` text is the one description of its options, so its pages and
//! completions are made here from that text, with the same clap generators.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Arg, ArgAction, Args, ValueHint};
use clap_complete::Shell;

pub const DEFAULT_PREFIX: &str = "/usr/local";

/// The binaries installed.
pub const PROGRAMS: &[&str] = &["reaper-trace", "reaper-init"];

/// Where each shell looks for completions under a prefix, and the file name it expects.
pub const SHELLS: &[(Shell, &str, &str)] = &[
    (Shell::Bash, "share/bash-completion/completions", "{}"),
    (Shell::Zsh, "share/zsh/site-functions", "_{}"),
    (Shell::Fish, "share/fish/vendor_completions.d", "{}.fish"),
];

pub const MAN_DIR: &str = "share/man/man1";

/// `install`'s own arguments.
#[derive(Args, Debug, PartialEq)]
pub struct InstallArgs {
    /// Where to install
    #[arg(
        long,
        value_name = "DIR",
        default_value = DEFAULT_PREFIX,
        value_parser = prefix_dir,
        // Given twice, the last one wins (as in most tools), rather than an error.
        overrides_with = "prefix"
    )]
    pub prefix: PathBuf,
}

/// `--prefix=` (an empty directory) is refused: joined with `bin`, it would install into the
/// current directory.
fn prefix_dir(dir: &str) -> Result<PathBuf, String> {
    if dir.is_empty() {
        return Err(
            "--prefix needs a directory, e.g. `cargo xtask install --prefix ~/.local`".into(),
        );
    }
    Ok(PathBuf::from(dir))
}

/// Installs the binaries of `bin_dir` (a cargo profile's output) under `prefix`. Idempotent:
/// every file is written to a temporary name and renamed over the old one, so a running
/// binary is replaced, not overwritten. Returns what it installed.
pub fn install(bin_dir: &Path, prefix: &Path) -> Result<Vec<PathBuf>> {
    let mut installed = Vec::new();
    let bin = prefix.join("bin");
    for program in PROGRAMS {
        let from = bin_dir.join(program);
        let bytes = std::fs::read(&from).with_context(|| {
            format!(
                "cannot read {}: build first (`cargo xtask build --release`)",
                from.display()
            )
        })?;
        installed.push(put(&bin.join(program), &bytes, 0o755)?);
    }
    let trace = bin.join("reaper-trace");
    let init_cmd = reaper_init_command(&bin.join("reaper-init"))?;
    for &(shell, dir, name) in SHELLS {
        let dir = prefix.join(dir);
        let script = output(Command::new(&trace).args(["completions", &shell.to_string()]))?;
        installed.push(put(
            &dir.join(name.replace("{}", "reaper-trace")),
            &script,
            0o644,
        )?);
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut init_cmd.clone(), "reaper-init", &mut script);
        installed.push(put(
            &dir.join(name.replace("{}", "reaper-init")),
            &script,
            0o644,
        )?);
    }
    // reaper-trace's pages are written to a scratch directory, then put in place like the rest.
    let man = prefix.join(MAN_DIR);
    let scratch = std::env::temp_dir().join(format!("reaper-trace-man.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let listed = output(Command::new(&trace).arg("man").arg(&scratch))?;
    for page in String::from_utf8_lossy(&listed).lines() {
        let page = Path::new(page);
        let name = page.file_name().context("a man page without a name")?;
        let bytes = std::fs::read(page).with_context(|| format!("reading {}", page.display()))?;
        installed.push(put(&man.join(name), &bytes, 0o644)?);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    installed.push(put(
        &man.join("reaper-init.1"),
        &reaper_init_man_page(&bin.join("reaper-init"), &init_cmd)?,
        0o644,
    )?);
    Ok(installed)
}

/// Writes `bytes` to `path` with `mode`, atomically (temporary file, then rename).
fn put(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().expect("a file under the prefix");
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create {}: run as root (`sudo -E cargo xtask install`) or choose a \
             writable --prefix",
            dir.display()
        )
    })?;
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = dir.join(format!(".{name}.xtask-install"));
    std::fs::write(&tmp, bytes).with_context(|| {
        format!(
            "cannot write {}: run as root or choose a writable --prefix",
            tmp.display()
        )
    })?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(path.to_path_buf())
}

fn output(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() || out.stdout.is_empty() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// reaper-init's help, cut into what clap and a man page need.
#[derive(Debug, Default, PartialEq)]
pub struct InitHelp {
    pub usage: String,
    /// The paragraphs before the options.
    pub description: Vec<String>,
    /// (short, long, value name, help)
    pub options: Vec<(char, String, Option<String>, String)>,
    /// The paragraphs after the options, each `Heading: text`.
    pub sections: Vec<(String, String)>,
}

/// Parses reaper-init's `--help`. Strict: a line it does not understand is an error, so a
/// change of the help's layout is noticed at install time, not shipped as a broken page.
pub fn parse_init_help(help: &str) -> Result<InitHelp> {
    let mut h = InitHelp::default();
    let paragraphs: Vec<&str> = help.trim().split("\n\n").collect();
    let Some(usage) = paragraphs.first().and_then(|p| p.strip_prefix("Usage: ")) else {
        bail!("reaper-init's help does not start with `Usage: `");
    };
    h.usage = usage.trim().to_string();
    let Some(opts_at) = paragraphs.iter().position(|p| p.starts_with("Options:")) else {
        bail!("reaper-init's help has no `Options:` paragraph");
    };
    h.description = paragraphs[1..opts_at].iter().map(|p| unwrap(p)).collect();
    for line in paragraphs[opts_at].lines().skip(1) {
        let text = line.trim_start();
        if text.starts_with('-') {
            // `-s, --subreaper         help` or `-e, --remap-exit CODE   help`
            let (flags, help) = text
                .split_once("  ")
                .with_context(|| format!("reaper-init help: no help after `{text}`"))?;
            let mut words = flags.split_whitespace();
            let short = words
                .next()
                .and_then(|s| s.strip_prefix('-'))
                .and_then(|s| s.strip_suffix(','))
                .filter(|s| s.chars().count() == 1)
                .and_then(|s| s.chars().next());
            let long = words.next().and_then(|s| s.strip_prefix("--"));
            let (Some(short), Some(long)) = (short, long) else {
                bail!("reaper-init help: cannot read the option `{flags}`");
            };
            let value = words.next().map(str::to_string);
            h.options
                .push((short, long.to_string(), value, help.trim().to_string()));
        } else if line.starts_with("      ") && !h.options.is_empty() {
            let last = &mut h.options.last_mut().expect("checked").3;
            last.push(' ');
            last.push_str(text);
        } else {
            bail!("reaper-init help: cannot read the option line `{line}`");
        }
    }
    for p in &paragraphs[opts_at + 1..] {
        let Some((heading, text)) = p.split_once(": ") else {
            bail!("reaper-init help: a closing paragraph is not `Heading: text`: `{p}`");
        };
        let text = unwrap(text);
        let mut chars = text.chars();
        let text = match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => text,
        };
        h.sections.push((heading.to_string(), text));
    }
    Ok(h)
}

/// A paragraph's lines joined into one.
fn unwrap(p: &str) -> String {
    p.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl InitHelp {
    /// reaper-init's command line as clap would define it: what the generators read.
    pub fn command(&self, version: &str) -> clap::Command {
        let mut cmd = clap::Command::new("reaper-init")
            .version(version.to_string())
            // NAME: the first paragraph's head ("A tiny init"), the whole of it in DESCRIPTION.
            .about(
                self.description
                    .first()
                    .map(|d| d.split(": ").next().unwrap_or(d).to_string())
                    .unwrap_or_default(),
            )
            .long_about(self.description.join("\n\n"))
            .override_usage(self.usage.clone())
            .disable_help_flag(true)
            .disable_version_flag(true);
        for (short, long, value, help) in &self.options {
            let mut arg = Arg::new(long.clone())
                .short(*short)
                .long(long.clone())
                .help(help.clone());
            arg = match (long.as_str(), value) {
                ("help", _) => arg.action(ArgAction::Help),
                ("version", _) => arg.action(ArgAction::Version),
                (_, Some(v)) => arg.value_name(v.clone()).action(ArgAction::Append),
                (_, None) => arg.action(ArgAction::SetTrue),
            };
            cmd = cmd.arg(arg);
        }
        cmd.arg(
            Arg::new("command")
                .value_name("COMMAND")
                .help("the command to run, with its arguments")
                .num_args(1..)
                .trailing_var_arg(true)
                .required(true)
                .value_hint(ValueHint::CommandWithArguments),
        )
    }
}

fn reaper_init_command(binary: &Path) -> Result<clap::Command> {
    let help = output(Command::new(binary).arg("--help"))?;
    let version = output(Command::new(binary).arg("--version"))?;
    let version = String::from_utf8_lossy(&version);
    let version = version.trim().trim_start_matches("reaper-init").trim();
    Ok(parse_init_help(&String::from_utf8_lossy(&help))?.command(version))
}

/// The man page: clap_mangen's sections, then the help's closing paragraphs as sections.
fn reaper_init_man_page(binary: &Path, cmd: &clap::Command) -> Result<Vec<u8>> {
    let help = parse_init_help(&String::from_utf8_lossy(&output(
        Command::new(binary).arg("--help"),
    )?))?;
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    for (heading, text) in &help.sections {
        out.extend_from_slice(format!(".SH {}\n", heading.to_uppercase()).as_bytes());
        out.extend_from_slice(roff_text(text).as_bytes());
        out.push(b'\n');
    }
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// Plain text as a roff paragraph: backslashes and leading dots escaped.
fn roff_text(text: &str) -> String {
    let t = text.replace('\\', "\\e");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "\
Usage: reaper-init [OPTIONS] [--] COMMAND [ARGS...]

A tiny init: runs COMMAND.

More words.

Options:
  -s, --subreaper         register as child subreaper
                          so orphans are reaped
  -e, --remap-exit CODE   exit with 0 instead of CODE
  -h, --help              print this help and exit
  -V, --version           print the version and exit

Exit status: COMMAND's status;
127 if not found.
";

    #[test]
    fn reaper_init_help_is_read_whole() {
        let h = parse_init_help(HELP).unwrap();
        assert_eq!(h.usage, "reaper-init [OPTIONS] [--] COMMAND [ARGS...]");
        assert_eq!(h.description, ["A tiny init: runs COMMAND.", "More words."]);
        assert_eq!(
            h.options[0],
            (
                's',
                "subreaper".into(),
                None,
                "register as child subreaper so orphans are reaped".into()
            )
        );
        assert_eq!(h.options[1].2.as_deref(), Some("CODE"));
        assert_eq!(
            h.sections,
            [(
                "Exit status".to_string(),
                "COMMAND's status; 127 if not found.".to_string()
            )]
        );
        let cmd = h.command("0.1.0");
        cmd.clone().debug_assert();
        let m = cmd
            .clone()
            .try_get_matches_from(["reaper-init", "-s", "-e", "3", "sleep", "-x"])
            .unwrap();
        assert!(m.get_flag("subreaper"));
        // A layout it does not know is refused.
        assert!(parse_init_help("Usage: x\n\nOptions:\n  what\n").is_err());
        assert!(parse_init_help("no usage").is_err());
    }

    /// `install`'s arguments as `cargo xtask` parses them; the error is the one-line message
    /// the user sees.
    fn prefix(args: &[&str]) -> Result<PathBuf, String> {
        use clap::Parser;
        let argv = ["cargo xtask", "install"].iter().chain(args);
        match crate::Cli::try_parse_from(argv) {
            Ok(crate::Cli {
                command: Some(crate::Cmd::Install(InstallArgs { prefix })),
            }) => Ok(prefix),
            Ok(other) => panic!("not an install command: {other:?}"),
            Err(e) => Err(crate::usage_error_line(&e)),
        }
    }

    #[test]
    fn prefix_arguments() {
        assert_eq!(prefix(&[]).unwrap(), Path::new(DEFAULT_PREFIX));
        assert_eq!(
            prefix(&["--prefix", "/opt/x"]).unwrap(),
            Path::new("/opt/x")
        );
        assert_eq!(prefix(&["--prefix=/opt/y"]).unwrap(), Path::new("/opt/y"));
        assert_eq!(
            prefix(&["--prefix", "/opt/x", "--prefix=/opt/z"]).unwrap(),
            Path::new("/opt/z")
        );
        let e = prefix(&["--prefix"]).unwrap_err();
        assert!(
            e.contains("a value is required for '--prefix <DIR>'"),
            "{e}"
        );
        let e = prefix(&["--prefix="]).unwrap_err();
        assert!(e.contains("--prefix needs a directory"), "{e}");
        let e = prefix(&["--bogus"]).unwrap_err();
        assert!(e.contains("unexpected argument '--bogus'"), "{e}");
        let e = prefix(&["--prefx", "/opt"]).unwrap_err();
        assert!(e.contains("'--prefix'"), "a suggestion: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    /// The binaries `cargo xtask test` built (it passes their paths), installed into a
    /// temporary prefix twice: everything is there, runs, and parses as a man page.
    #[test]
    fn install_into_a_temporary_prefix() {
        let Some(trace) = std::env::var_os("REAPER_TRACE_BIN") else {
            panic!("REAPER_TRACE_BIN is not set: run the tests with `cargo xtask test`");
        };
        let bin_dir = Path::new(&trace).parent().unwrap().to_path_buf();
        let prefix =
            std::env::temp_dir().join(format!("xtask-install-test.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&prefix);
        let first = install(&bin_dir, &prefix).unwrap();
        let second = install(&bin_dir, &prefix).unwrap();
        assert_eq!(first, second, "idempotent");
        for program in PROGRAMS {
            let out = Command::new(prefix.join("bin").join(program))
                .arg("--version")
                .output()
                .unwrap();
            assert!(out.status.success(), "{program} --version");
            assert!(String::from_utf8_lossy(&out.stdout).starts_with(program));
            for &(_, dir, name) in SHELLS {
                let f = prefix.join(dir).join(name.replace("{}", program));
                let text = std::fs::read_to_string(&f).unwrap();
                assert!(text.contains(program), "{}", f.display());
            }
        }
        let man = prefix.join(MAN_DIR);
        let pages: Vec<String> = std::fs::read_dir(&man)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        for page in [
            "reaper-trace.1",
            "reaper-trace-record.1",
            "reaper-trace-top.1",
            "reaper-trace-validate.1",
            "reaper-init.1",
        ] {
            assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
        }
        assert!(!pages.iter().any(|p| p.starts_with('.')), "{pages:?}");
        for page in &pages {
            let path = man.join(page);
            // groff reads it as a man page without a warning.
            let out = Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(&path)
                .output()
                .expect("groff (groff-base) is installed");
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{page}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = Command::new("man")
                .arg("-l")
                .arg(&path)
                .env("MANWIDTH", "80")
                .env("MANPAGER", "cat")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&text.stdout);
            assert!(
                text.contains("NAME") && text.contains("SYNOPSIS"),
                "{page}: {text}"
            );
        }
        let top = std::fs::read_to_string(man.join("reaper-trace-top.1")).unwrap();
        assert!(top.contains(".SH KEYS"), "{top}");
        let init = std::fs::read_to_string(man.join("reaper-init.1")).unwrap();
        for flag in [
            "subreaper",
            "group",
            "remap\\-exit",
            "verbose",
            "EXIT STATUS",
        ] {
            assert!(init.contains(flag), "{flag} missing:\n{init}");
        }
        std::fs::remove_dir_all(&prefix).unwrap();
    }
}
