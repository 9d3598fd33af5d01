//! Driving a terminal program as a person would: in a detached tmux session of a known size,
//! typing with `send-keys` and reading the screen with `capture-pane`.
//!
//! Every [`Tmux`] has a server of its own (its own socket, no configuration file), killed when
//! it is dropped, so a failing test never leaves a session behind nor touches a user's tmux.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
    pub session: String,
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Tmux {
    /// Starts `command` (run by `sh -c`) in a detached session of `width` x `height`.
    pub fn start(width: u16, height: u16, command: &str) -> Tmux {
        assert!(
            tmux_available(),
            "tmux is needed for this test: `cargo xtask setup` installs it"
        );
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let t = Tmux {
            socket: format!("reaper-trace-test-{}-{n}", std::process::id()),
            session: "test".into(),
        };
        let out = t.run(&[
            "new-session",
            "-d",
            "-s",
            &t.session,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// The server's socket name (`tmux -L NAME`), for commands this type has no method for.
    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// The screen's text, one line per row.
    pub fn capture(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", &self.session]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types keys (`send-keys` names: `q`, `Enter`, `C-c`, or literal text).
    pub fn send_keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "tmux send-keys {keys:?} failed");
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", &self.session, "-l", text]);
        assert!(out.status.success(), "tmux send-keys -l {text:?} failed");
    }

    /// A tmux format about the pane, e.g. `#{pane_pid}`, `#{alternate_on}`.
    pub fn display(&self, format: &str) -> String {
        let out = self.run(&["display-message", "-p", "-t", &self.session, format]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Whether the session still exists.
    pub fn alive(&self) -> bool {
        self.run(&["has-session", "-t", &self.session])
            .status
            .success()
    }

    /// Presses `q` and checks the program exits 0, for a command run as
    /// `PROGRAM ...; echo EXITED rc=$?`. Returns the last screen.
    pub fn quit_with_q(&self) -> String {
        self.send_keys(&["q"]);
        let screen = self
            .wait_for(Duration::from_secs(5), |s| s.contains("EXITED"))
            .unwrap_or_else(|s| panic!("it did not exit on q:\n{s}"));
        assert!(screen.contains("EXITED rc=0"), "{screen}");
        screen
    }

    /// Polls the screen until `done` accepts it; on timeout, the last screen is the error.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.capture();
            if done(&screen) {
                return Ok(screen);
            }
            if Instant::now() >= deadline {
                return Err(screen);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Tmux {
    /// The pid of the program the pane's `sh -c` runs (its first child).
    pub fn program_pid(&self) -> u32 {
        let sh: u32 = self.display("#{pane_pid}").parse().expect("pane pid");
        std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
            .expect("the pane's shell runs")
            .split_whitespace()
            .next()
            .expect("the program runs")
            .parse()
            .expect("a pid")
    }

    /// Closes the terminal: the tmux server and its panes go away, as when a user closes the
    /// window (the pane's processes get SIGHUP and their pty reads fail).
    pub fn close(&self) {
        let _ = self.run(&["kill-server"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
