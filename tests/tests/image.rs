//! The container image (`cargo xtask image`), run the way `packaging/kubernetes/daemonset.yaml`
//! runs it: privileged, in the host's pid namespace, with the host's BTF, tracefs and Docker's
//! container files under `/host`, and the metrics over TLS behind a password (its secret). A
//! zombie held by another container's PID 1 shows up in that daemon's `/metrics` with the
//! container's name, and `doctor` run inside the image names it.

use std::process::Command;
use std::time::{Duration, Instant};

use reaper_trace_tests::docker::{self, Container, docker};
use reaper_trace_tests::tls::SecureWeb;
use reaper_trace_tests::{reaper_trace, require_root, workspace_root};

const TAG: &str = "reaper-trace:test";
const DAEMON: &str = "reaper-trace-image-daemon";

/// Removes the daemon's container (SIGTERM first: the daemon detaches its programs).
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        let _ = docker(&["stop", "--time", "10", DAEMON]);
        let _ = docker(&["rm", "-f", DAEMON]);
    }
}

/// `docker run` as the DaemonSet does; where this machine's capability bounding set lacks one
/// `--privileged` grants (CAP_SYS_RESOURCE here), runc cannot start a privileged container,
/// so every capability but that one, with seccomp, AppArmor and the masked paths off.
fn run_daemon(metrics: &str, web: &SecureWeb) -> Running {
    let _ = docker(&["rm", "-f", DAEMON]);
    // The DaemonSet's secret: the web configuration, certificate and key.
    let secret = format!("{}:/etc/reaper-trace:ro", web.dir.0.display());
    let common = [
        "--pid=host",
        "--network=host",
        "-v",
        "/sys/kernel/btf:/sys/kernel/btf:ro",
        "-v",
        "/sys/kernel/tracing:/sys/kernel/tracing",
        "-v",
        "/var/lib/docker/containers:/host/var/lib/docker/containers:ro",
        "-v",
        &secret,
    ];
    let args = |privileges: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["run", "-d", "--name", DAEMON].map(String::from).into();
        a.extend(privileges.iter().map(|s| s.to_string()));
        a.extend(common.iter().map(|s| s.to_string()));
        a.extend([
            TAG.to_string(),
            "daemon".into(),
            format!("--metrics={metrics}"),
            "--socket=/run/reaper-trace/reaper-trace.sock".into(),
            "--web-config=/etc/reaper-trace/web.yml".into(),
        ]);
        a
    };
    let run = |privileges: &[&str]| {
        let a = args(privileges);
        docker(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(&["--privileged"]);
    let out = if String::from_utf8_lossy(&out.stderr).contains("unable to apply caps") {
        let _ = docker(&["rm", "-f", DAEMON]);
        eprintln!(
            "{DAEMON}: --privileged is refused here (unable to apply caps): every capability but CAP_SYS_RESOURCE instead"
        );
        run(&[
            "--cap-add=ALL",
            "--cap-drop=SYS_RESOURCE",
            "--security-opt=seccomp=unconfined",
            "--security-opt=apparmor=unconfined",
            "--security-opt=systempaths=unconfined",
        ])
    } else {
        out
    };
    assert!(
        out.status.success(),
        "docker run {TAG}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Running
}

#[test]
fn the_image_run_as_the_daemonset_names_a_containers_zombies() {
    require_root();
    if let Err(reason) = docker::ready() {
        docker::skip(
            "the_image_run_as_the_daemonset_names_a_containers_zombies",
            &reason,
        );
        return;
    }
    // The image, by the command users run (`cargo xtask image`), with this build's binary:
    // the xtask binary beside this test's when `cargo xtask test` built it (a nested cargo
    // would wait for the build directory's lock), else through cargo.
    let xtask = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("xtask")))
        .filter(|path| path.exists());
    let mut command = match xtask {
        Some(path) => Command::new(path),
        None => {
            let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            c.args(["run", "-q", "-p", "xtask", "--"]);
            c
        }
    };
    let built = command
        .current_dir(workspace_root())
        .args(["image", "--tag", TAG, "--binary"])
        .arg(reaper_trace())
        .output()
        .expect("xtask runs");
    assert!(
        built.status.success(),
        "cargo xtask image: {}",
        String::from_utf8_lossy(&built.stderr)
    );

    // A container whose PID 1 `sleep` holds two zombies (docker exec'd orphans).
    let held = Container::run("reaper-trace-image-held", false);
    held.exec_parent();
    held.kill_parent();
    held.release_job();
    let zombies = docker::wait_for_zombies_of(held.init_pid, 2);
    assert_eq!(
        zombies, 2,
        "/proc: two zombies held by the container's PID 1"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let web = SecureWeb::new("image-web");
    let _daemon = run_daemon(&metrics, &web);
    let wanted = format!(
        "reaper_trace_zombies{{container=\"{}\",reaper=\"sleep\"}} 2",
        held.name
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let served = web.scrape(&metrics).unwrap_or_default();
        if served.lines().any(|l| l == wanted) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no {wanted} within 60 s; served:\n{served}\nlogs: {}",
            String::from_utf8_lossy(&docker(&["logs", DAEMON]).stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // doctor, run inside the image, names the container and its PID 1, and fails.
    let out = docker(&[
        "exec",
        DAEMON,
        "reaper-trace",
        "doctor",
        "-d",
        "3s",
        "--zombie-threshold",
        "1s",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let short = &held.id[..12];
    assert!(
        stdout.contains(&format!(
            "container {} (docker {short}): PID 1 `sleep`",
            held.name
        )),
        "{stdout}"
    );
}
