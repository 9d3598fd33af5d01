//! Real Docker for the container tests: dockerd started by hand when it is not running (as
//! `cargo xtask setup` installs it: Debian's docker.io, cgroupfs driver, no network), an image
//! made with `docker import` from busybox-static and bash (no registry), and the article's
//! experiment: a process entered with `docker exec` leaves orphans behind.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Tagged with the scripts' version: a changed script makes a new image.
pub const IMAGE: &str = "reaper-trace-test:busybox-3";

/// parent.sh is what `docker exec` runs: it starts child.sh and waits; the test kills it
/// once it has written its pid (after starting child.sh). child.sh starts a background
/// job, then each exits when the test says so (files, not timers: a loaded machine delays
/// `docker exec` by seconds). With no reaping PID 1, both stay zombies, adopted by PID 1
/// (with parent.sh's own `sleep 1000`).
const PARENT_SH: &str = "#!/bin/bash\nbash /child.sh &\necho $$ > /tmp/parent.pid\nsleep 1000\n";
const CHILD_SH: &str = "#!/bin/bash\nbash -c 'while [ ! -e /tmp/go2 ]; do sleep 0.1; done' &\nwhile [ ! -e /tmp/go ]; do sleep 0.1; done\n";

pub fn docker(args: &[&str]) -> Output {
    cli("docker", args)
}

/// `PROGRAM ARGS` for a Docker-like command line (docker, podman).
fn cli(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

fn cli_ok(program: &str, args: &[&str]) -> String {
    let out = cli(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker ARGS`, which must succeed; its standard output, trimmed.
pub fn docker_ok(args: &[&str]) -> String {
    cli_ok("docker", args)
}

fn daemon_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn found(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn start() -> Result<(), String> {
    if !found("docker") || !found("dockerd") {
        return Err("docker.io is not installed (`cargo xtask setup` installs it)".into());
    }
    if daemon_answers() {
        return Ok(());
    }
    let log = std::env::temp_dir().join("reaper-trace-test-dockerd.log");
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    use std::os::unix::process::CommandExt;
    // Its own process group: it outlives this test binary (the next run finds it running).
    Command::new("dockerd")
        .args([
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=overlay2",
        ])
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(|e| e.to_string())?)
        .stderr(file)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start dockerd: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if daemon_answers() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    Err(format!(
        "dockerd did not answer within 40 s (its log, {}, ends: {})",
        log.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    ))
}

/// Docker answering, with the test image: `Err(reason)` when dockerd cannot run here (the
/// caller prints the reason and skips).
pub fn ready() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            start()?;
            build_image()
        })
        .clone()
}

/// Prints why a Docker test is skipped; with `REAPER_TRACE_REQUIRE_DOCKER=1`, fails instead.
pub fn skip(test: &str, reason: &str) {
    if std::env::var_os("REAPER_TRACE_REQUIRE_DOCKER").is_some_and(|v| v == "1") {
        panic!("{test}: Docker is required (REAPER_TRACE_REQUIRE_DOCKER=1) but {reason}");
    }
    // Straight to standard error, not through the test harness's capture: a skip is seen.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

fn copy_with_libs(bin: &Path, root: &Path) -> Result<(), String> {
    let dest = root.join(bin.strip_prefix("/").unwrap());
    std::fs::create_dir_all(dest.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::copy(bin, &dest).map_err(|e| format!("copying {}: {e}", bin.display()))?;
    let ldd = Command::new("ldd")
        .arg(bin)
        .output()
        .map_err(|e| e.to_string())?;
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let lib = Path::new(lib);
        let dest = root.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::copy(lib, &dest).map_err(|e| format!("copying {}: {e}", lib.display()))?;
    }
    Ok(())
}

/// The image: busybox-static (sh, sleep, ps, kill), bash and its libraries, the scripts.
fn build_image() -> Result<(), String> {
    if docker(&["image", "inspect", IMAGE]).status.success() {
        return Ok(());
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("busybox-static is not installed (`cargo xtask setup` installs it)")?;
    let root = std::env::temp_dir().join(format!("reaper-trace-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("bin")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(root.join("tmp")).map_err(|e| e.to_string())?;
    std::fs::copy(busybox, root.join("bin/busybox")).map_err(|e| e.to_string())?;
    for applet in ["sh", "sleep", "ps", "kill", "cat", "touch"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
            .map_err(|e| e.to_string())?;
    }
    copy_with_libs(Path::new("/bin/bash"), &root)?;
    std::fs::write(root.join("parent.sh"), PARENT_SH).map_err(|e| e.to_string())?;
    std::fs::write(root.join("child.sh"), CHILD_SH).map_err(|e| e.to_string())?;
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let import = Command::new("docker")
        .args(["import", "-", IMAGE])
        .stdin(tar.stdout.unwrap())
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&root);
    if !import.status.success() {
        return Err(format!(
            "docker import failed: {}",
            String::from_utf8_lossy(&import.stderr).trim()
        ));
    }
    Ok(())
}

/// A container running `sleep 1000` as PID 1 (under docker-init with `init`), removed when
/// dropped.
pub struct Container {
    pub name: String,
    pub id: String,
    /// Its PID 1, as the host numbers it.
    pub init_pid: u32,
    /// The command line that runs it: `docker` or `podman`.
    program: &'static str,
}

impl Container {
    pub fn run(name: &str, init: bool) -> Self {
        Self::run_with("docker", &[], name, init)
    }

    /// With `program` (docker, or podman with the image `podman_ready` loaded), and
    /// `options` for its `run`.
    pub fn run_with(program: &'static str, options: &[&str], name: &str, init: bool) -> Self {
        let _ = cli(program, &["rm", "-f", name]);
        let mut args = vec!["run", "-d", "--name", name];
        if init {
            args.push("--init");
        }
        args.extend(options);
        args.extend([IMAGE, "sleep", "1000"]);
        let id = cli_ok(program, &args);
        let init_pid = cli_ok(program, &["inspect", "-f", "{{.State.Pid}}", name])
            .parse()
            .expect("a pid");
        Self {
            name: name.into(),
            id,
            init_pid,
            program,
        }
    }

    /// The article's experiment, started: `docker exec` runs parent.sh, which starts
    /// child.sh. [`Container::kill_parent`] then kills parent.sh.
    pub fn exec_parent(&self) {
        cli_ok(
            self.program,
            &["exec", "-d", &self.name, "bash", "/parent.sh"],
        );
    }

    /// Kills parent.sh (its orphans are adopted), then lets child.sh exit.
    pub fn kill_parent(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = cli(
                self.program,
                &[
                    "exec",
                    &self.name,
                    "sh",
                    "-c",
                    "kill -9 $(cat /tmp/parent.pid) && sleep 0.3 && touch /tmp/go",
                ],
            );
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "parent.sh never started in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Container {
    /// Lets child.sh's background job exit.
    pub fn release_job(&self) {
        cli_ok(self.program, &["exec", &self.name, "touch", "/tmp/go2"]);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = cli(self.program, &["rm", "-f", &self.name]);
    }
}

/// Podman installed, with the test image loaded from Docker's (`docker save`, an archive: no
/// registry), or why not.
pub fn podman_ready() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            ready()?;
            if !found("podman") {
                return Err("podman is not installed (`cargo xtask setup` installs it)".into());
            }
            if cli("podman", &["image", "exists", IMAGE]).status.success() {
                return Ok(());
            }
            let archive = std::env::temp_dir().join("reaper-trace-test-image.tar");
            let path = archive.to_str().expect("a UTF-8 temporary path");
            docker_ok(&["save", "-o", path, IMAGE]);
            let loaded = cli("podman", &["load", "-i", path]);
            let _ = std::fs::remove_file(&archive);
            if !loaded.status.success() {
                return Err(format!(
                    "podman load failed: {}",
                    String::from_utf8_lossy(&loaded.stderr).trim()
                ));
            }
            Ok(())
        })
        .clone()
}

/// The pids `/proc` lists now.
fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The zombies `/proc` shows with parent `pid`.
pub fn zombie_children(pid: u32) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|&p| state_and_ppid(p) == Some(('Z', pid)))
        .collect()
}

/// How many zombies `/proc` shows with parent `pid`.
pub fn zombies_of(pid: u32) -> usize {
    zombie_children(pid).len()
}

/// Waits until `/proc` shows `n` zombies with parent `pid` (up to 20 s: a loaded machine runs
/// the container's last `sleep 0.1` late); returns how many it shows then.
pub fn wait_for_zombies_of(pid: u32, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = zombies_of(pid);
        if found >= n || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `/proc` shows no `bash` left in the pid namespace of `init` (child.sh and its
/// job exited and, zombies included, were reaped), up to 20 s: the job exits only after its
/// current `sleep 0.1`, late on a loaded machine. Returns how many are left then.
pub fn wait_for_scripts_reaped(init: u32) -> usize {
    let ns_of = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(ns) = ns_of(init) else { return 0 };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = pids()
            .into_iter()
            .filter(|&p| {
                ns_of(p).as_ref() == Some(&ns)
                    && std::fs::read_to_string(format!("/proc/{p}/comm"))
                        .is_ok_and(|c| c.trim_end() == "bash")
            })
            .count();
        if left == 0 || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/proc/PID/stat`'s state and parent pid.
pub fn state_and_ppid(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// containerd, driven with `ctr` as a user of containerd alone would: the daemon Docker runs
/// (this machine's containerd), its own namespace, the test image imported from `docker save`
/// (an archive, no registry).
pub struct CtrContainer {
    pub name: String,
    /// Its PID 1, as the host numbers it.
    pub init_pid: u32,
}

const CTR_NAMESPACE: &str = "reaper-trace-test";

/// The socket of a containerd that answers: the system's, else the one dockerd started. (A
/// socket file nobody listens on makes `ctr` wait 10 s: connected to first.)
fn containerd_socket() -> Option<&'static str> {
    static SOCKET: OnceLock<Option<&'static str>> = OnceLock::new();
    *SOCKET.get_or_init(|| {
        [
            "/run/containerd/containerd.sock",
            "/run/docker/containerd/containerd.sock",
        ]
        .into_iter()
        .find(|s| std::os::unix::net::UnixStream::connect(s).is_ok())
    })
}

fn ctr(args: &[&str]) -> Output {
    let socket = containerd_socket().expect("a containerd answers");
    Command::new("ctr")
        .args(["-a", socket, "-n", CTR_NAMESPACE])
        .args(args)
        .output()
        .expect("ctr runs")
}

fn ctr_ok(args: &[&str]) -> String {
    let out = ctr(args);
    assert!(
        out.status.success(),
        "ctr {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl CtrContainer {
    /// Docker answering (its containerd with it) and `ctr` installed, or why not.
    pub fn ready() -> Result<(), String> {
        ready()?;
        if !found("ctr") {
            return Err("ctr is not installed (it comes with docker.io's containerd)".into());
        }
        containerd_socket().ok_or("no containerd answers on its socket")?;
        Ok(())
    }

    /// `sleep 1000` as PID 1 of a container named `name`, from the test image.
    pub fn run(name: &str) -> Self {
        let image = format!("docker.io/library/{IMAGE}");
        if !ctr_ok(&["images", "ls", "-q"]).lines().any(|l| l == image) {
            let mut save = Command::new("docker")
                .args(["save", IMAGE])
                .stdout(Stdio::piped())
                .spawn()
                .expect("docker save runs");
            let socket = containerd_socket().expect("a containerd answers");
            let import = Command::new("ctr")
                .args(["-a", socket, "-n", CTR_NAMESPACE, "images", "import", "-"])
                .stdin(save.stdout.take().expect("piped"))
                .output()
                .expect("ctr import runs");
            let saved = save.wait().expect("docker save ends");
            assert!(
                saved.success() && import.status.success(),
                "docker save ({saved}) | ctr images import: {}",
                String::from_utf8_lossy(&import.stderr)
            );
        }
        Self::remove(name);
        ctr_ok(&["run", "-d", &image, name, "sleep", "1000"]);
        let tasks = ctr_ok(&["tasks", "ls"]);
        let init_pid = tasks
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(name)).then(|| f.next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no task {name}: {tasks}"));
        Self {
            name: name.into(),
            init_pid,
        }
    }

    /// The experiment of [`Container`]: parent.sh started, killed, its orphans let exit.
    pub fn make_orphans_exit(&self) {
        ctr_ok(&[
            "tasks",
            "exec",
            "-d",
            "--exec-id",
            "parent",
            &self.name,
            "bash",
            "/parent.sh",
        ]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = ctr(&[
                "tasks",
                "exec",
                "--exec-id",
                "kill",
                &self.name,
                "sh",
                "-c",
                "kill -9 $(cat /tmp/parent.pid) && sleep 0.3 && touch /tmp/go",
            ]);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "parent.sh never started in {}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        ctr_ok(&[
            "tasks",
            "exec",
            "--exec-id",
            "release",
            &self.name,
            "touch",
            "/tmp/go2",
        ]);
    }

    fn remove(name: &str) {
        let _ = ctr(&["tasks", "kill", "-s", "KILL", name]);
        for _ in 0..50 {
            if ctr(&["tasks", "rm", name]).status.success()
                || !ctr_ok(&["tasks", "ls"]).contains(name)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = ctr(&["containers", "rm", name]);
    }
}

impl Drop for CtrContainer {
    fn drop(&mut self) {
        Self::remove(&self.name);
    }
}
