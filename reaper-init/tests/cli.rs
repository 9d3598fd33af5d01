//! Command line, exec errors and exit-status pass-through.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

use common::{TempDir, isolated, reaper, run};

#[test]
fn help_prints_usage_to_stdout_and_exits_0() {
    for flag in ["-h", "--help"] {
        let out = run(reaper(&[flag]));
        assert_eq!(out.code(), 0, "{flag}: {out:?}");
        assert!(out.stdout.starts_with("Usage: reaper-init"), "{out:?}");
        for option in [
            "--subreaper",
            "--group",
            "--remap-exit",
            "--verbose",
            "--version",
        ] {
            assert!(out.stdout.contains(option), "help lacks {option}");
        }
    }
}

#[test]
fn version_prints_name_and_version() {
    for flag in ["-V", "--version"] {
        let out = run(reaper(&[flag]));
        assert_eq!(out.code(), 0, "{out:?}");
        assert_eq!(
            out.stdout,
            format!("reaper-init {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn no_command_prints_usage_and_exits_2() {
    for args in [&[][..], &["-s", "-v"], &["--"]] {
        let out = run(reaper(args));
        assert_eq!(out.code(), 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.starts_with("reaper-init: no command given\n"),
            "{out:?}"
        );
        assert!(out.stderr.contains("Usage: reaper-init"), "{out:?}");
    }
}

#[test]
fn bad_options_are_one_line_errors_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--frobnicate", "true"], "'--frobnicate'"),
        (&["-x", "true"], "'-x'"),
        (&["-sq", "true"], "'-q'"),
        (&["--verbose=yes", "true"], "'--verbose'"),
        (&["-e"], "'-e'"),
        (&["--remap-exit", "256", "true"], "'256'"),
        (&["-e", "abc", "true"], "'abc'"),
    ];
    for (args, needle) in cases {
        let out = run(reaper(args));
        assert_eq!(out.code(), 2, "{args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("reaper-init: "), "{out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {out:?}");
        assert!(out.stderr.contains("see --help"), "{args:?}: {out:?}");
    }
}

#[test]
fn options_end_at_the_command_and_after_double_dash() {
    // The command's own flags must reach it untouched.
    let out = run(reaper(&[
        "-s",
        "sh",
        "-c",
        "echo \"$@\"; exit 5",
        "sh",
        "-v",
        "--help",
        "-e",
    ]));
    assert_eq!(out.code(), 5, "{out:?}");
    assert_eq!(out.stdout, "-v --help -e\n");

    let out = run(reaper(&["-s", "--", "sh", "-c", "exit 6"]));
    assert_eq!(out.code(), 6, "{out:?}");
}

#[test]
fn missing_command_exits_127() {
    for cmd in ["reaper-init-no-such-command", "/nonexistent/dir/cmd"] {
        let out = run(reaper(&["-s", cmd]));
        assert_eq!(out.code(), 127, "{out:?}");
        assert!(
            out.stderr.starts_with("reaper-init: cannot execute"),
            "{out:?}"
        );
        assert!(out.stderr.contains(cmd), "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    }
}

#[test]
fn non_executable_command_exits_126() {
    let dir = TempDir::new("noexec");
    let file = dir.join("not-executable");
    std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    for cmd in [file.to_str().unwrap(), dir.path().to_str().unwrap()] {
        let out = run(reaper(&["-s", cmd]));
        assert_eq!(out.code(), 126, "{cmd}: {out:?}");
        assert!(
            out.stderr.starts_with("reaper-init: cannot execute"),
            "{out:?}"
        );
        assert!(out.stderr.contains(cmd), "{out:?}");
    }
}

#[test]
fn all_exit_codes_pass_through() {
    const THREADS: i32 = 8;
    let failures = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let failures = Arc::clone(&failures);
            thread::spawn(move || {
                for code in (t..256).step_by(THREADS as usize) {
                    let script = format!("exit {code}");
                    let out = run(reaper(&["-s", "sh", "-c", &script]));
                    if out.status.code() != Some(code) {
                        failures.lock().unwrap().push((code, out));
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker thread panicked");
    }
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "wrong exit status for: {failures:?}");
}

#[test]
fn signal_deaths_become_128_plus_signal() {
    let signals = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("ABRT", libc::SIGABRT),
        ("KILL", libc::SIGKILL),
        ("SEGV", libc::SIGSEGV),
        ("USR1", libc::SIGUSR1),
        ("TERM", libc::SIGTERM),
    ];
    for (name, num) in signals {
        // `ulimit -c 0`: no core files from QUIT/ABRT/SEGV.
        let script = format!("ulimit -c 0; kill -{name} $$; sleep 5; exit 99");
        let out = run(reaper(&["-v", "-s", "sh", "-c", &script]));
        assert_eq!(out.code(), 128 + num, "SIG{name}: {out:?}");
        assert!(
            out.stderr.contains(&format!("(signal {num})")),
            "SIG{name} not logged: {out:?}"
        );
    }
}

#[test]
fn remap_exit_maps_only_the_chosen_codes_to_0() {
    let cases = [
        // (options, child script, expected exit code)
        (vec!["-e", "3"], "exit 3", 0),
        (vec!["-e", "3"], "exit 4", 4),
        (vec!["-e", "3"], "exit 0", 0),
        (vec!["-e", "3", "--remap-exit", "7"], "exit 7", 0),
        (vec!["-e3", "--remap-exit=7"], "exit 3", 0),
        (vec!["-e", "3", "-e", "7"], "exit 5", 5),
        // Remapping applies to the final status, so a SIGTERM death (143) can be mapped too.
        (vec!["-e", "143"], "kill -TERM $$", 0),
        (vec!["-e", "3"], "kill -TERM $$", 143),
    ];
    for (opts, script, expected) in cases {
        let mut args = vec!["-s"];
        args.extend(&opts);
        args.extend(["sh", "-c", script]);
        let out = run(reaper(&args));
        assert_eq!(out.code(), expected, "{args:?}: {out:?}");
    }
}

/// Parses the "SigBlk:" and "SigIgn:" hex masks printed by the scripts below.
fn sig_masks(stdout: &str) -> (u64, u64) {
    let field = |name: &str| {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {stdout:?}"));
        u64::from_str_radix(line[name.len()..].trim(), 16).expect("hex mask")
    };
    (field("SigBlk:"), field("SigIgn:"))
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

#[test]
fn child_starts_with_default_dispositions_and_the_original_mask() {
    // Start with SIGHUP, SIGPIPE and SIGXCPU ignored and SIGUSR2 blocked.
    // Ignored dispositions survive exec, so reaper-init must reset them for
    // the child; the original mask (USR2 only) must be restored, i.e. all the
    // signals reaper-init blocks for itself are unblocked again.
    let ignored = [libc::SIGHUP, libc::SIGPIPE, libc::SIGXCPU];
    let show = "exec grep -E '^Sig(Blk|Ign):' /proc/self/status";
    let prepare = |mut cmd: Command| {
        // SAFETY: signal/sigprocmask are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                for sig in ignored {
                    libc::signal(sig, libc::SIG_IGN);
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR2);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        cmd
    };

    // Control: without reaper-init the command does inherit that state.
    let direct = run(prepare(isolated("sh", &["-c", show])));
    let (blocked, ignored_mask) = sig_masks(&direct.stdout);
    assert_eq!(blocked, bit(libc::SIGUSR2), "{direct:?}");
    for sig in ignored {
        assert_ne!(
            ignored_mask & bit(sig),
            0,
            "control: signal {sig} not ignored"
        );
    }

    let out = run(prepare(reaper(&["-s", "sh", "-c", show])));
    assert_eq!(out.code(), 0, "{out:?}");
    let (blocked, ignored_mask) = sig_masks(&out.stdout);
    assert_eq!(blocked, bit(libc::SIGUSR2), "{out:?}");
    // The only exception: the realtime signals the C library reserves for
    // itself (between 32 and SIGRTMIN) cannot be reset through it.
    let reserved: u64 = (32..libc::SIGRTMIN()).map(bit).sum();
    assert_eq!(ignored_mask & !reserved, 0, "{out:?}");
}
