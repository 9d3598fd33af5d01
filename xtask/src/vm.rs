//! `cargo xtask vm-test`: reaper-trace on the kernels users have, each booted under qemu.
//!
//! Debian's kernel images are fetched with `apt-get download` through a private apt state
//! whose archive address is read from this machine's own apt sources (never written into the
//! repository), and cached outside the clone (`/var/cache/reaper-trace`, or
//! `$REAPER_TRACE_CACHE`). Each kernel boots an initramfs holding the built binaries,
//! busybox, tini, dumb-init, catatonit and bpftool; its `/init` (`vm/init.sh`) runs `check`,
//! an orphan/zombie experiment under `record` (`vm/experiment.sh`), a SIGTERM-stopped
//! recording and `validate`, and prints what it found on the console. This side checks it
//! all: the recording against what the guest's `/proc` showed, not against reaper-trace's
//! own model. Kernels boot one after another (TCG: KVM here cannot boot them).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// The suites whose kernels are offered (5.10 to 7.x).
const SUITES: [&str; 6] = [
    "bullseye",
    "bookworm",
    "bookworm-backports",
    "trixie",
    "trixie-backports",
    "sid",
];
/// The security suites: the newest patch release of the stable series is often only there.
const SECURITY_SUITES: [&str; 3] = ["bullseye-security", "bookworm-security", "trixie-security"];

/// The matrix `.ci/run` runs: the newest patch release of every series offered.
pub const DEFAULT_KERNELS: &str = EVERY_SERIES;
/// The spec for every series offered, each at its newest release.
const EVERY_SERIES: &str = "every";

/// What the VM test needs on the host.
pub const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "xz-utils",
    "zstd",
    "bpftool",
    "tini",
    "dumb-init",
    "catatonit",
];

/// Scenario failures known, by kernel series, scenario and the kind of one of its failures
/// (`failures[].kind` in `validate --json`): reported as KNOWN with their reason and the
/// scenario's own, not failing the run. Each names what was seen.
const KNOWN_FAILURES: &[(&str, &str, &str, &str)] = &[(
    "7.",
    "wait-race",
    "records_lost",
    "the kernel skipped a wait program, and reaper-trace reported the loss: classic \
     tracepoint programs share one recursion guard per CPU and run preemptibly on 7.x, so \
     standby copies cannot cover them (1-2 of its 1,000 racing waits in a 7.3 guest, in both \
     runs)",
)];

/// How long one kernel may take, boot to power-off.
const VM_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Boots again after a guest kernel panic or soft lockup under TCG (see `run`).
const BOOTS_AFTER_A_STOP: usize = 2;

const INIT: &str = include_str!("../vm/init.sh");
const EXPERIMENT: &str = include_str!("../vm/experiment.sh");

fn cache_dir() -> PathBuf {
    std::env::var_os("REAPER_TRACE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/reaper-trace"))
}

fn run_quiet(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ----- which kernels -----

/// A Debian archive: its address and keyring.
#[derive(Debug, Clone, PartialEq)]
struct Archive {
    uri: String,
    keyring: String,
}

/// The Debian archives this machine's apt uses: the main one, and the security one when the
/// machine has it (read from its apt sources: no address is written in the repository).
fn archives() -> Result<(Archive, Option<Archive>)> {
    let mut texts = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "sources") {
                texts.push(std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    let list = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    let (main, security) = parse_sources(&texts, &list);
    let main = main.ok_or_else(|| {
        anyhow!(
            "no Debian archive in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list: \
             the VM test fetches Debian's kernel images from it"
        )
    })?;
    Ok((main, security))
}

/// The main and the security archive named in deb822 `.sources` texts, else in a one-line
/// `sources.list`.
fn parse_sources(deb822: &[String], list: &str) -> (Option<Archive>, Option<Archive>) {
    const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
    let (mut main, mut security) = (None, None);
    let mut found = |uri: &str, suites: &str, keyring: Option<String>| {
        let archive = Archive {
            uri: uri.to_string(),
            keyring: keyring.unwrap_or_else(|| DEFAULT_KEYRING.to_string()),
        };
        let slot = if suites.contains("security") || uri.contains("security") {
            &mut security
        } else {
            &mut main
        };
        slot.get_or_insert(archive);
    };
    for text in deb822 {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    l.strip_prefix(name)
                        .and_then(|r| r.strip_prefix(':'))
                        .map(|v| v.trim().to_string())
                })
            };
            let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else {
                continue;
            };
            if !field("Types").unwrap_or_default().contains("deb") {
                continue;
            }
            if let Some(uri) = uris.split_whitespace().next() {
                found(uri, &suites, field("Signed-By"));
            }
        }
    }
    for line in list.lines() {
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.starts_with('['))
            .collect();
        if let ["deb", uri, suite, ..] = words.as_slice() {
            found(uri, suite, None);
        }
    }
    (main, security)
}

/// `apt-get`/`apt-cache` with a private state under the cache: the machine's own apt lists
/// are left alone.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new() -> Result<Self> {
        let dir = cache_dir().join("apt");
        for sub in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        let (main, security) = archives()?;
        let line = |a: &Archive, suite: &str| {
            format!("deb [signed-by={}] {} {suite} main\n", a.keyring, a.uri)
        };
        let mut sources: String = SUITES.iter().map(|s| line(&main, s)).collect();
        match &security {
            Some(sec) => sources.extend(SECURITY_SUITES.iter().map(|s| line(sec, s))),
            None => eprintln!(
                "xtask: this machine's apt has no security archive: the stable series are \
                 tested at the newest release of their main suite"
            ),
        }
        let path = dir.join("sources.list");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(sources.as_str()) {
            std::fs::write(&path, &sources)?;
            // Other sources: the lists are stale.
            let _ = std::fs::remove_file(dir.join("updated"));
        }
        Ok(Self { dir })
    }

    fn command(&self, tool: &str) -> Command {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let mut c = Command::new(tool);
        c.arg("-o")
            .arg(format!("Dir::Etc::sourcelist={}", d("sources.list")))
            .args(["-o", "Dir::Etc::sourceparts=/nonexistent"])
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", d("lists")))
            .arg("-o")
            .arg(format!("Dir::Cache={}", d("cache")))
            .args(["-o", "Dir::State::status=/dev/null"])
            .args(["-o", "APT::Sandbox::User=root"]);
        c
    }

    /// Refreshes the lists at most once a day.
    fn update(&self) -> Result<()> {
        let stamp = self.dir.join("updated");
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < Duration::from_secs(24 * 3600));
        if fresh {
            return Ok(());
        }
        eprintln!(
            "xtask: reading the kernel package lists ({})",
            SUITES.join(", ")
        );
        run_quiet(self.command("apt-get").args(["update", "-qq"]))?;
        std::fs::write(&stamp, b"")?;
        Ok(())
    }

    /// Every amd64 kernel release offered (`5.10.0-32-amd64`, `6.12.95+deb12-amd64`, ...).
    fn releases(&self) -> Result<Vec<String>> {
        let out = run_quiet(self.command("apt-cache").args([
            "search",
            "--names-only",
            "^linux-image-[0-9].*-amd64$",
        ]))?;
        let mut releases: Vec<String> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|n| n.strip_prefix("linux-image-"))
            .filter(|r| !r.contains("-cloud-") && !r.contains("-rt-"))
            .map(str::to_string)
            .collect();
        releases.sort_by(|a, b| natural_cmp(a, b));
        releases.dedup();
        Ok(releases)
    }

    fn download(&self, package: &str, into: &Path) -> Result<PathBuf> {
        run_quiet(
            self.command("apt-get")
                .current_dir(into)
                .args(["download", "-qq", package]),
        )?;
        let prefix = format!("{package}_");
        std::fs::read_dir(into)?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
            .ok_or_else(|| anyhow!("apt-get download {package} left no .deb"))
    }
}

/// Compares version-like strings number by number (`6.12.9` < `6.12.10`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, text)) if *d == digit => text.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x, y) {
            ((true, p), (true, q)) => p
                .parse::<u64>()
                .unwrap_or(0)
                .cmp(&q.parse::<u64>().unwrap_or(0)),
            ((_, p), (_, q)) => p.cmp(q),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

/// `major.minor` of a release (`5.10.0-32-amd64` is 5.10).
fn series(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The newest release for each spec: a series (`6.12`), a major version (`7`: its newest
/// series), or an exact release.
fn choose(specs: &[String], releases: &[String]) -> Result<Vec<String>> {
    let mut every = Vec::new();
    if specs.iter().any(|s| s == EVERY_SERIES) {
        let mut seen: Vec<(u32, u32)> = releases.iter().filter_map(|r| series(r)).collect();
        seen.sort_unstable();
        seen.dedup();
        every = seen
            .iter()
            .map(|(maj, min)| format!("{maj}.{min}"))
            .collect();
    }
    let specs = specs.iter().flat_map(|s| {
        if s == EVERY_SERIES {
            every.clone()
        } else {
            vec![s.clone()]
        }
    });
    let mut chosen = Vec::new();
    for spec in &specs.collect::<Vec<_>>() {
        let matches: Vec<&String> = if releases.contains(spec) {
            vec![spec]
        } else {
            let nums: Vec<u32> = spec.split('.').filter_map(|p| p.parse().ok()).collect();
            releases
                .iter()
                .filter(|r| match (series(r), nums.as_slice()) {
                    (Some((maj, min)), [m, n]) => maj == *m && min == *n,
                    (Some((maj, _)), [m]) => maj == *m,
                    _ => false,
                })
                .collect()
        };
        let newest = matches
            .into_iter()
            .max_by(|a, b| natural_cmp(a, b))
            .ok_or_else(|| {
                anyhow!(
                    "no kernel image for `{spec}` in {}: use a series such as 6.12, a major \
                     version such as 7, or one of the releases offered",
                    SUITES.join(", ")
                )
            })?;
        if !chosen.contains(newest) {
            chosen.push(newest.clone());
        }
    }
    Ok(chosen)
}

// ----- kernel images -----

/// A kernel ready to boot: its image, and the FUSE module when FUSE is not built in.
struct Kernel {
    release: String,
    vmlinuz: PathBuf,
    fuse_module: Option<PathBuf>,
}

fn find_file(dir: &Path, pred: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut subdirs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let ft = entry.file_type().ok()?;
        if ft.is_dir() {
            subdirs.push(path);
        } else if ft.is_file() && pred(&path) {
            return Some(path);
        }
    }
    subdirs.iter().find_map(|d| find_file(d, pred))
}

/// Fetches and unpacks `release` once; later runs use the cache.
fn fetch_kernel(apt: &Apt, release: &str) -> Result<Kernel> {
    let dir = cache_dir().join("kernels").join(release);
    let kernel = |dir: &Path| Kernel {
        release: release.to_string(),
        vmlinuz: dir.join("vmlinuz"),
        fuse_module: Some(dir.join("fuse.ko")).filter(|p| p.exists()),
    };
    if dir.join("vmlinuz").exists() {
        return Ok(kernel(&dir));
    }
    eprintln!("xtask: fetching Linux {release}");
    let work = cache_dir()
        .join("kernels")
        .join(format!("{release}.partial"));
    let _ = std::fs::remove_dir_all(&work);
    let debs = work.join("debs");
    let tree = work.join("tree");
    std::fs::create_dir_all(&debs)?;
    std::fs::create_dir_all(&tree)?;
    let unpack = |deb: &Path| run_quiet(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree));
    let image = apt.download(&format!("linux-image-{release}"), &debs)?;
    unpack(&image)?;
    let is_vmlinuz = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == "vmlinuz" || n == format!("vmlinuz-{release}"))
    };
    if find_file(&tree, &is_vmlinuz).is_none() {
        // Newer image packages only depend on the kernel (linux-binary-*) and its modules
        // (linux-modules-*). The archive may lack the modules: the kernel boots without them
        // (the FUSE scenarios are then skipped, and the table says so).
        let depends = run_quiet(
            Command::new("dpkg-deb")
                .arg("-f")
                .arg(&image)
                .arg("Depends"),
        )?;
        for dep in depends.split(',') {
            let name = dep.split_whitespace().next().unwrap_or("");
            if name.starts_with("linux-binary-") {
                unpack(&apt.download(name, &debs)?)?;
            } else if name.starts_with("linux-modules-") {
                match apt.download(name, &debs) {
                    Ok(deb) => {
                        unpack(&deb)?;
                    }
                    Err(_) => eprintln!(
                        "xtask: the archive has no {name}: Linux {release} boots without its \
                         modules"
                    ),
                }
            }
        }
    }
    let vmlinuz = find_file(&tree, &is_vmlinuz)
        .ok_or_else(|| anyhow!("no vmlinuz in the packages of Linux {release}"))?;
    std::fs::create_dir_all(&dir)?;
    let fuse = find_file(&tree, &|p: &Path| {
        p.parent().is_some_and(|d| d.ends_with("fs/fuse"))
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("fuse.ko"))
    });
    if let Some(module) = fuse {
        let name = module.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let out = std::fs::File::create(dir.join("fuse.ko"))?;
        let status = match name.rsplit('.').next() {
            Some("xz") => Command::new("xz")
                .arg("-dc")
                .arg(&module)
                .stdout(out)
                .status()?,
            Some("zst") => Command::new("zstd")
                .arg("-dcq")
                .arg(&module)
                .stdout(out)
                .status()?,
            _ => Command::new("cat").arg(&module).stdout(out).status()?,
        };
        if !status.success() {
            bail!("cannot decompress {}", module.display());
        }
    }
    let is_config = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == "config" || n == format!("config-{release}"))
    };
    if let Some(config) = find_file(&tree, &is_config) {
        std::fs::copy(config, dir.join("config"))?;
    }
    // Last: its presence marks the cache entry complete.
    std::fs::copy(&vmlinuz, dir.join("vmlinuz"))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(kernel(&dir))
}

/// FUSE built into the kernel (`CONFIG_FUSE_FS=y` in the config packaged beside it)?
fn kernel_has_builtin_fuse(kernel: &Kernel) -> bool {
    kernel
        .vmlinuz
        .parent()
        .map(|d| d.join("config"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|c| c.lines().any(|l| l == "CONFIG_FUSE_FS=y"))
}

// ----- the initramfs -----

fn copy_with_libraries(src: &Path, root: &Path, dest: &str) -> Result<()> {
    let target = root.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().expect("a file path"))?;
    std::fs::copy(src, &target).with_context(|| format!("copying {}", src.display()))?;
    let ldd = Command::new("ldd").arg(src).output()?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
        let path = line
            .split("=>")
            .last()
            .and_then(|r| r.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(lib) = path {
            let to = root.join(lib.trim_start_matches('/'));
            if !to.exists() {
                std::fs::create_dir_all(to.parent().expect("a file path"))?;
                std::fs::copy(lib, &to).with_context(|| format!("copying {lib}"))?;
            }
        }
    }
    Ok(())
}

fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{name} is not installed"))
}

/// The guest's files, without a kernel module: built once per run.
fn build_root(root: &Path, bins: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(root);
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "etc",
        "root",
        "lib/modules",
    ] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).context(
        "copying /bin/busybox (busybox-static): the guest's shell and tools come from it",
    )?;
    let applets = run_quiet(Command::new("/bin/busybox").arg("--list-full"))?;
    for applet in applets.lines().filter(|l| !l.is_empty()) {
        let link = root.join(applet);
        if !link.exists() {
            std::fs::create_dir_all(link.parent().expect("a file path"))?;
            std::os::unix::fs::symlink("/bin/busybox", &link)?;
        }
    }
    for (src, dest) in [
        (bins.join("reaper-trace"), "/usr/bin/reaper-trace"),
        (bins.join("reaper-init"), "/usr/bin/reaper-init"),
        (which("tini")?, "/usr/bin/tini"),
        (which("dumb-init")?, "/usr/bin/dumb-init"),
        (which("catatonit")?, "/usr/bin/catatonit"),
        (which("bpftool")?, "/usr/sbin/bpftool"),
    ] {
        copy_with_libraries(&src, root, dest)?;
    }
    let script = |path: &str, text: &str| -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let p = root.join(path);
        std::fs::write(&p, text)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    };
    script("init", INIT)?;
    script("experiment.sh", EXPERIMENT)?;
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}

/// The initramfs for `kernel`: the root, with its FUSE module if it has one.
fn initramfs(root: &Path, kernel: &Kernel, out: &Path) -> Result<()> {
    let module = root.join("lib/modules/fuse.ko");
    let _ = std::fs::remove_file(&module);
    if let Some(m) = &kernel.fuse_module {
        std::fs::copy(m, &module)?;
    }
    let file = std::fs::File::create(out)?;
    let mut find = Command::new("find")
        .args([".", "-print0"])
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn()?;
    let status = Command::new("cpio")
        .args(["--null", "--quiet", "-o", "-H", "newc"])
        .current_dir(root)
        .stdin(find.stdout.take().expect("piped"))
        .stdout(file)
        .status()?;
    find.wait()?;
    if !status.success() {
        bail!("cpio failed making {}", out.display());
    }
    Ok(())
}

// ----- booting -----

/// Boots `kernel` and returns its console output (`\r` removed).
fn boot(
    kernel: &Kernel,
    initrd: &Path,
    log: &Path,
    check_only: bool,
) -> Result<(String, Duration)> {
    let started = Instant::now();
    let file = std::fs::File::create(log)?;
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2"])
        .args(["-m", "2048", "-nographic", "-no-reboot", "-kernel"])
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init{}",
            if check_only { " rt.check_only" } else { "" }
        ))
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let mut last_lockup_check = 0;
    loop {
        if let Some(status) = qemu.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = qemu.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            let text = std::fs::read_to_string(log)
                .unwrap_or_default()
                .replace('\r', "");
            if !status.success() && !text.contains("@@RT done") {
                bail!("qemu exited with {status}: {}", err.trim());
            }
            return Ok((text, started.elapsed()));
        }
        // A soft lockup does not pass: stop there rather than at the timeout.
        let checked_lockup = started.elapsed().as_secs() / 5;
        if started.elapsed() > VM_TIMEOUT
            || (checked_lockup != last_lockup_check && {
                last_lockup_check = checked_lockup;
                std::fs::read_to_string(log).is_ok_and(|t| soft_lockup(&t).is_some())
            })
        {
            let _ = qemu.kill();
            let _ = qemu.wait();
            let text = std::fs::read_to_string(log)
                .unwrap_or_default()
                .replace('\r', "");
            return Ok((text, started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The guest kernel's first soft lockup report, if it had one.
fn soft_lockup(text: &str) -> Option<&str> {
    text.lines()
        .find(|l| l.contains("BUG: soft lockup"))
        .map(str::trim)
}

/// The guest kernel's panic line and the instruction it died at, if it panicked.
fn guest_panic(text: &str) -> Option<String> {
    let panic = text.lines().find(|l| l.contains("Kernel panic"))?;
    let rip = text
        .lines()
        .find(|l| l.contains("RIP: 0010:"))
        .map(|l| {
            l.split("RIP: 0010:")
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let what = panic
        .split("Kernel panic - ")
        .nth(1)
        .unwrap_or(panic)
        .trim();
    Some(format!("{what} at {rip}"))
}

/// The `@@RT` output of one boot.
struct Console {
    values: BTreeMap<String, String>,
    sections: BTreeMap<String, String>,
}

impl Console {
    fn parse(text: &str) -> Self {
        let mut values = BTreeMap::new();
        let mut sections = BTreeMap::new();
        let mut open: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("@@RT ") {
                if let Some(name) = rest.strip_suffix(" BEGIN") {
                    open = Some((name.to_string(), String::new()));
                    continue;
                }
                if let Some(name) = rest.strip_suffix(" END")
                    && let Some((open_name, body)) = open.take()
                    && open_name == name
                {
                    sections.insert(open_name, body);
                    continue;
                }
                if open.is_none() {
                    let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                    values.insert(k.to_string(), v.to_string());
                    continue;
                }
            }
            if let Some((_, body)) = open.as_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        Self { values, sections }
    }

    fn section(&self, name: &str) -> &str {
        self.sections.get(name).map(String::as_str).unwrap_or("")
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

// ----- checks -----

/// One line of `/proc/PID/stat`: pid, comm, state, ppid.
#[derive(Debug, Clone)]
struct ProcStat {
    pid: u64,
    comm: String,
    state: char,
    ppid: u64,
}

fn parse_proc(text: &str) -> Vec<ProcStat> {
    text.lines()
        .filter_map(|l| {
            let (pid, rest) = l.split_once(" (")?;
            let (comm, rest) = rest.rsplit_once(") ")?;
            let mut f = rest.split_whitespace();
            Some(ProcStat {
                pid: pid.trim().parse().ok()?,
                comm: comm.to_string(),
                state: f.next()?.chars().next()?,
                ppid: f.next()?.parse().ok()?,
            })
        })
        .collect()
}

fn jsonl(text: &str) -> Result<Vec<Value>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("line {} is not JSON ({e})", i + 1))
        })
        .collect()
}

fn pid_of(v: &Value, field: &str) -> Option<u64> {
    v.get(field)?.get("pid")?.as_u64()
}

#[derive(Debug, serde::Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn check(name: &'static str, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check {
            name,
            ok: true,
            detail,
        },
        Err(detail) => Check {
            name,
            ok: false,
            detail,
        },
    }
}

/// The experiment's recording against the guest's `/proc`.
fn experiment_checks(console: &Console) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(check(
        "record exits 0",
        match console.value("record-rc") {
            Some("0") => Ok("exit status 0 (the command's)".into()),
            other => Err(format!(
                "exit status {other:?}: {}",
                console.section("record-stderr").trim()
            )),
        },
    ));
    let events = match jsonl(console.section("experiment")) {
        Ok(e) if !e.is_empty() => e,
        Ok(_) => {
            checks.push(check("recording", Err("the recording is empty".into())));
            return checks;
        }
        Err(e) => {
            checks.push(check("recording", Err(e)));
            return checks;
        }
    };
    let of_type = |t: &'static str| {
        events
            .iter()
            .filter(move |e| e.get("type").and_then(Value::as_str) == Some(t))
    };
    checks.push(check(
        "recording is whole",
        if events[0].get("type").and_then(Value::as_str) != Some("header") {
            Err("the first line is not the header".into())
        } else if let Some(lost) = of_type("lost").next() {
            Err(format!("records were lost: {lost}"))
        } else {
            Ok(format!("{} lines, a header, nothing lost", events.len()))
        },
    ));
    let (p1, p2) = (
        parse_proc(console.section("proc1")),
        parse_proc(console.section("proc2")),
    );
    // The zombie: a `sleep` that /proc showed as Z both times, under a `sleep` parent.
    let zombie = p1.iter().find(|p| {
        p.comm == "sleep" && p.state == 'Z' && p2.iter().any(|q| q.pid == p.pid && q.state == 'Z')
    });
    let subreaper = p1.iter().find(|p| p.comm == "reaper-init");
    let (Some(zombie), Some(subreaper)) = (zombie, subreaper) else {
        checks.push(check(
            "/proc showed the experiment",
            Err(format!(
                "no zombie `sleep` in both /proc snapshots, or no reaper-init: {:?}",
                p1.iter()
                    .filter(|p| p.comm == "sleep" || p.comm == "reaper-init")
                    .collect::<Vec<_>>()
            )),
        ));
        return checks;
    };
    // The orphan: a `sleep` whose parent /proc showed as reaper-init.
    let orphan = p1
        .iter()
        .find(|p| p.comm == "sleep" && p.ppid == subreaper.pid && p.state != 'Z');
    checks.push(check(
        "zombie recorded with its parent",
        of_type("zombie")
            .find(|e| pid_of(e, "task") == Some(zombie.pid))
            .ok_or_else(|| format!("no zombie event for pid {}", zombie.pid))
            .and_then(|e| {
                if pid_of(e, "parent") == Some(zombie.ppid) {
                    Ok(format!(
                        "pid {} a zombie of {} (as /proc showed)",
                        zombie.pid, zombie.ppid
                    ))
                } else {
                    Err(format!(
                        "zombie {} recorded with parent {:?}, /proc showed {}",
                        zombie.pid,
                        pid_of(e, "parent"),
                        zombie.ppid
                    ))
                }
            }),
    ));
    let adopted_by_subreaper = |pid: u64, as_zombie: bool| {
        of_type("reparent")
            .find(|e| pid_of(e, "orphan") == Some(pid))
            .ok_or_else(|| format!("no reparent event for pid {pid}"))
            .and_then(|e| {
                let kind = e.get("kind").and_then(Value::as_str);
                let verdict = e.get("verdict").and_then(Value::as_str);
                let zombie = e.get("zombie").and_then(Value::as_bool).unwrap_or(false);
                if pid_of(e, "reaper") == Some(subreaper.pid)
                    && kind == Some("subreaper")
                    && verdict == Some("match")
                    && zombie == as_zombie
                {
                    Ok(format!(
                        "pid {pid} adopted by subreaper {} (verdict match)",
                        subreaper.pid
                    ))
                } else {
                    Err(format!(
                        "pid {pid}: reaper {:?} kind {kind:?} verdict {verdict:?} zombie \
                         {zombie}; expected subreaper {}",
                        pid_of(e, "reaper"),
                        subreaper.pid
                    ))
                }
            })
    };
    let reaped_by = |pid: u64, reaper: u64, min_ns: u64| {
        of_type("reap")
            .find(|e| pid_of(e, "task") == Some(pid))
            .ok_or_else(|| format!("no reap event for pid {pid}"))
            .and_then(|e| {
                let how = e.get("how").and_then(Value::as_str);
                let ns = e.get("zombie_ns").and_then(Value::as_u64).unwrap_or(0);
                if pid_of(e, "reaper") == Some(reaper) && how == Some("wait4") && ns >= min_ns {
                    Ok(format!(
                        "pid {pid} reaped by {reaper} (wait4) after {:.3} s a zombie",
                        ns as f64 / 1e9
                    ))
                } else {
                    Err(format!(
                        "pid {pid}: reaped by {:?} ({how:?}) after {ns} ns; expected {reaper} \
                         by wait4, after at least {min_ns} ns",
                        pid_of(e, "reaper")
                    ))
                }
            })
    };
    checks.push(check(
        "zombie adopted when its parent exited",
        adopted_by_subreaper(zombie.pid, true),
    ));
    // /proc showed it a zombie twice, 0.5 s apart.
    checks.push(check(
        "zombie's lifetime",
        reaped_by(zombie.pid, subreaper.pid, 500_000_000),
    ));
    match orphan {
        Some(o) => {
            checks.push(check(
                "orphan adopted by the subreaper",
                adopted_by_subreaper(o.pid, false),
            ));
            checks.push(check(
                "orphan reaped by the subreaper",
                reaped_by(o.pid, subreaper.pid, 0),
            ));
        }
        None => checks.push(check(
            "orphan adopted by the subreaper",
            Err(format!(
                "/proc showed no `sleep` under reaper-init {}",
                subreaper.pid
            )),
        )),
    }
    checks
}

/// The SIGTERM-stopped recording: exit status, every line JSON, no program left attached.
fn sigterm_checks(console: &Console) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(check(
        "SIGTERM stops record cleanly",
        match (
            console.value("sigterm-rc"),
            jsonl(console.section("sigterm")),
        ) {
            (Some("0"), Ok(events)) if !events.is_empty() => {
                Ok(format!("exit status 0, {} whole JSON lines", events.len()))
            }
            (rc, Ok(_)) => Err(format!(
                "exit status {rc:?}: {}",
                console.section("sigterm-stderr").trim()
            )),
            (_, Err(e)) => Err(e),
        },
    ));
    let ours = [
        "sched_process_",
        "sched_switch",
        "sys_exit_wait4",
        "sys_exit_waitid",
        "sys_exit_prctl",
        "sys_enter_waiti",
        "sys_enter_prctl",
    ];
    let progs = console.section("programs-after");
    let left: Vec<&str> = progs
        .lines()
        .filter(|l| ours.iter().any(|n| l.contains(&format!("name {n}"))))
        .collect();
    checks.push(check(
        "no program left attached",
        if left.is_empty() {
            Ok("bpftool lists none of reaper-trace's programs".into())
        } else {
            Err(format!("still loaded: {}", left.join(" | ")))
        },
    ));
    checks
}

/// What one kernel gave.
#[derive(serde::Serialize)]
struct KernelResult {
    release: String,
    seconds: f64,
    /// Program name (as the tracer loads it) -> verified instructions, or an error.
    programs: Vec<(String, Result<Option<u64>, String>)>,
    loaded: usize,
    validate_passed: u64,
    validate_total: u64,
    /// Scenarios skipped because the kernel has no FUSE (its modules are not in the archive).
    validate_skipped_no_fuse: u64,
    /// Failures listed in `KNOWN_FAILURES`, with their reason.
    validate_known: Vec<String>,
    validate_failures: Vec<String>,
    checks: Vec<Check>,
}

impl KernelResult {
    fn ok(&self, check_only: bool) -> bool {
        !self.programs.is_empty()
            && self.loaded == self.programs.len()
            && (check_only
                || (self.validate_total > 0
                    && self.validate_passed
                        + self.validate_skipped_no_fuse
                        + self.validate_known.len() as u64
                        == self.validate_total))
            && self.checks.iter().all(|c| c.ok)
    }
}

fn evaluate(
    release: &str,
    console: &Console,
    seconds: f64,
    check_only: bool,
    has_fuse: bool,
) -> KernelResult {
    let mut result = KernelResult {
        release: release.to_string(),
        seconds,
        programs: Vec::new(),
        loaded: 0,
        validate_passed: 0,
        validate_total: 0,
        validate_skipped_no_fuse: 0,
        validate_known: Vec::new(),
        validate_failures: Vec::new(),
        checks: Vec::new(),
    };
    if let Ok(check) = serde_json::from_str::<Value>(console.section("check").trim()) {
        for p in check
            .get("programs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = p.get("program").and_then(Value::as_str).unwrap_or("?");
            let entry = match p.get("error").and_then(Value::as_str) {
                Some(e) => Err(e.to_string()),
                None => Ok(p.get("verified_insns").and_then(Value::as_u64)),
            };
            result.loaded += entry.is_ok() as usize;
            result.programs.push((name.to_string(), entry));
        }
    } else {
        result.checks.push(check(
            "reaper-trace check",
            Err(format!(
                "no report: {}",
                console.section("check-stderr").trim()
            )),
        ));
    }
    if check_only {
        return result;
    }
    match serde_json::from_str::<Value>(console.section("validate").trim()) {
        Ok(v) => {
            result.validate_passed = v.get("passed").and_then(Value::as_u64).unwrap_or(0);
            let results = v.get("results").and_then(Value::as_array);
            result.validate_total = results.map_or(0, |r| r.len() as u64);
            for r in results.into_iter().flatten() {
                let status = r.get("status").and_then(Value::as_str);
                let reason = r.get("reason").and_then(Value::as_str).unwrap_or("");
                let skip = r.pointer("/skip/kind").and_then(Value::as_str);
                if !has_fuse && status == Some("SKIPPED") && skip == Some("no_fuse") {
                    result.validate_skipped_no_fuse += 1;
                    continue;
                }
                let scenario = r.get("scenario").and_then(Value::as_str).unwrap_or("?");
                let failed_as = |kind: &str| {
                    r.get("failures")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|f| f.get("kind").and_then(Value::as_str) == Some(kind))
                };
                let known = KNOWN_FAILURES.iter().find(|(series, name, kind, _)| {
                    release.starts_with(series) && *name == scenario && failed_as(kind)
                });
                if let (Some(&(_, _, _, why)), Some("FAIL")) = (known, status) {
                    result
                        .validate_known
                        .push(format!("{scenario}: KNOWN ({why}): {reason}"));
                    continue;
                }
                if status != Some("PASS") {
                    result.validate_failures.push(format!(
                        "{} {}: {}",
                        r.get("scenario").and_then(Value::as_str).unwrap_or("?"),
                        r.get("status").and_then(Value::as_str).unwrap_or("?"),
                        r.get("reason").and_then(Value::as_str).unwrap_or("")
                    ));
                }
            }
        }
        Err(_) => result.validate_failures.push(format!(
            "no report: {}",
            console
                .section("validate-stderr")
                .lines()
                .last()
                .unwrap_or("(the VM stopped before validate finished)")
        )),
    }
    result.checks.extend(experiment_checks(console));
    result.checks.extend(sigterm_checks(console));
    result
}

// ----- the command -----

/// Short column names for the table, by hook.
const COLUMNS: [(&str, &str); 8] = [
    ("fork", "sched_process_fork"),
    ("exec", "sched_process_exec"),
    ("exit", "sched_process_exit"),
    ("switch", "sched_switch"),
    ("free", "sched_process_free"),
    ("wait4", "sys_exit_wait4"),
    ("waitid", "sys_exit_waitid"),
    ("prctl", "sys_exit_prctl"),
];

fn table(results: &[KernelResult]) -> String {
    let mut out = format!("{:<22} {:>6} ", "kernel", "loaded");
    for (col, _) in COLUMNS {
        out += &format!("{col:>7} ");
    }
    out += &format!("{:>9} {:>7} {:>5}\n", "validate", "checks", "secs");
    for r in results {
        out += &format!(
            "{:<22} {:>6} ",
            r.release,
            format!("{}/{}", r.loaded, r.programs.len())
        );
        for (_, prefix) in COLUMNS {
            let cell = r
                .programs
                .iter()
                .find(|(name, _)| name.starts_with(prefix))
                .map(|(_, v)| match v {
                    Ok(Some(n)) => n.to_string(),
                    Ok(None) => "ok".into(),
                    Err(_) => "REFUSED".into(),
                })
                .unwrap_or_else(|| "-".into());
            out += &format!("{cell:>7} ");
        }
        let ok = r.checks.iter().filter(|c| c.ok).count();
        out += &format!(
            "{:>9} {:>7} {:>5.0}{}\n",
            format!("{}/{}", r.validate_passed, r.validate_total),
            format!("{ok}/{}", r.checks.len()),
            r.seconds,
            if r.validate_skipped_no_fuse > 0 {
                format!(
                    "  ({} skipped: no FUSE module in the archive)",
                    r.validate_skipped_no_fuse
                )
            } else {
                String::new()
            }
        );
    }
    out += "(verified instructions per program; \"ok\": loads, but the kernel (before 5.16) does not say how many)\n";
    out
}

fn details(r: &KernelResult) -> String {
    let mut out = String::new();
    for (name, v) in &r.programs {
        if let Err(e) = v {
            out += &format!("  {}: program {name}: {e}\n", r.release);
        }
    }
    for f in &r.validate_failures {
        out += &format!("  {}: validate: {f}\n", r.release);
    }
    for k in &r.validate_known {
        out += &format!("  {}: validate: {k}\n", r.release);
    }
    for c in r.checks.iter().filter(|c| !c.ok) {
        out += &format!("  {}: {}: {}\n", r.release, c.name, c.detail);
    }
    out
}

/// Runs the matrix; `bins` holds the built (release) binaries. Returns whether every kernel
/// passed everything.
pub fn run(specs: &[String], bins: &Path, out_dir: &Path, check_only: bool) -> Result<bool> {
    let apt = Apt::new()?;
    apt.update()?;
    let releases = apt.releases()?;
    let chosen = choose(specs, &releases)?;
    eprintln!("xtask: kernels: {}", chosen.join(", "));
    let kernels = chosen
        .iter()
        .map(|r| fetch_kernel(&apt, r))
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(out_dir)?;
    let root = out_dir.join("root");
    build_root(&root, bins)?;
    let mut results = Vec::new();
    for kernel in &kernels {
        let initrd = out_dir.join("initramfs.cpio");
        initramfs(&root, kernel, &initrd)?;
        let log = out_dir.join(format!("{}.log", kernel.release));
        eprint!("xtask: booting Linux {} ... ", kernel.release);
        let _ = std::io::stderr().flush();
        let (mut text, mut took) = boot(kernel, &initrd, &log, check_only)?;
        let mut retried: Option<String> = None;
        for boot_again in 1..=BOOTS_AFTER_A_STOP {
            let stuck = (!text.contains("@@RT done"))
                .then(|| {
                    guest_panic(&text)
                        .map(|p| format!("guest kernel panicked ({p})"))
                        .or_else(|| soft_lockup(&text).map(|l| format!("guest soft lockup ({l})")))
                })
                .flatten();
            let Some(what) = stuck else {
                break;
            };
            // Multi-threaded TCG does not always keep up with a guest kernel patching its own
            // code (static keys, with int3) while programs are attached or detached: a guest
            // may die of an int3 at a patched site or stop in a soft lockup, which real
            // hardware does not. Boot again, up to BOOTS_AFTER_A_STOP times, and say so in
            // the report.
            eprint!("{what}, booting again ... ");
            let _ = std::fs::rename(&log, log.with_extension(format!("stuck{boot_again}.log")));
            (text, took) = boot(kernel, &initrd, &log, check_only)?;
            retried = Some(match retried {
                Some(before) => format!("{before}; then {what}"),
                None => what,
            });
        }
        let console = Console::parse(&text);
        for (name, body) in &console.sections {
            if let Some(scenario) = name.strip_prefix("events-") {
                std::fs::write(
                    out_dir.join(format!("{}.{scenario}.jsonl", kernel.release)),
                    body,
                )?;
            }
        }
        // FUSE is there when built in, or when its module was packaged.
        let has_fuse = kernel.fuse_module.is_some() || kernel_has_builtin_fuse(kernel);
        let mut result = evaluate(
            &kernel.release,
            &console,
            took.as_secs_f64(),
            check_only,
            has_fuse,
        );
        if let Some(panic) = retried {
            result.checks.push(Check {
                name: "booted again after a guest kernel panic or soft lockup under TCG",
                ok: true,
                detail: panic,
            });
        }
        if let Some(lockup) = soft_lockup(&text) {
            result
                .checks
                .push(check("no soft lockup", Err(lockup.to_string())));
        }
        if console.value("done").is_none() {
            result.checks.push(check(
                "the guest finished",
                Err(format!(
                    "no end mark after {:.0} s: see {}",
                    took.as_secs_f64(),
                    log.display()
                )),
            ));
        }
        eprintln!(
            "{} in {:.0} s",
            if result.ok(check_only) {
                "ok"
            } else {
                "FAILED"
            },
            took.as_secs_f64()
        );
        results.push(result);
    }
    print!("{}", table(&results));
    let failures: String = results.iter().map(details).collect();
    if !failures.is_empty() {
        print!("failures:\n{failures}");
    }
    std::fs::write(
        out_dir.join("report.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    println!("consoles and report.json in {}", out_dir.display());
    Ok(results.iter().all(|r| r.ok(check_only)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_reported_loss_in_wait_race_on_7_x_is_a_known_failure() {
        let console = |reason: &str, failures: Value| {
            let doc = serde_json::json!({
                "passed": 0,
                "results": [{
                    "scenario": "wait-race",
                    "status": "FAIL",
                    "reason": reason,
                    "failures": failures,
                }],
            });
            Console::parse(&format!("@@RT validate BEGIN\n{doc}\n@@RT validate END\n"))
        };
        let lost = console(
            "1 kernel records lost: the recording cannot be checked",
            serde_json::json!([{"kind": "records_lost", "count": 1}]),
        );
        let known = evaluate("7.3.4+deb13-amd64", &lost, 1.0, false, true);
        assert_eq!(
            (known.validate_known.len(), known.validate_failures.len()),
            (1, 0)
        );
        // The same loss on another series, or another failure on 7.x, fails.
        let other_series = evaluate("6.19.14+deb13-amd64", &lost, 1.0, false, true);
        assert_eq!(other_series.validate_failures.len(), 1);
        let wrong = console(
            "1 of 1000 waited pids misrecorded",
            serde_json::json!([{"kind": "mismatch"}]),
        );
        let other_reason = evaluate("7.3.4+deb13-amd64", &wrong, 1.0, false, true);
        assert_eq!(
            (
                other_reason.validate_known.len(),
                other_reason.validate_failures.len()
            ),
            (0, 1)
        );
    }

    #[test]
    fn only_a_fuse_skip_is_excused_on_a_kernel_without_fuse() {
        let console = |skip: Value| {
            let doc = serde_json::json!({
                "passed": 0,
                "results": [{
                    "scenario": "exiting-subreaper",
                    "status": "SKIPPED",
                    "reason": "needs FUSE (/dev/fuse and the fuse file system)",
                    "skip": skip,
                }],
            });
            Console::parse(&format!("@@RT validate BEGIN\n{doc}\n@@RT validate END\n"))
        };
        let no_fuse = console(serde_json::json!({"kind": "no_fuse"}));
        let r = evaluate("6.19.14+deb13-amd64", &no_fuse, 1.0, false, false);
        assert_eq!(
            (r.validate_skipped_no_fuse, r.validate_failures.len()),
            (1, 0)
        );
        // With FUSE in the kernel, or skipped for another reason, it is a failure.
        let r = evaluate("6.19.14+deb13-amd64", &no_fuse, 1.0, false, true);
        assert_eq!(
            (r.validate_skipped_no_fuse, r.validate_failures.len()),
            (0, 1)
        );
        let other = console(serde_json::json!({"kind": "missing_program", "program": "tini"}));
        let r = evaluate("6.19.14+deb13-amd64", &other, 1.0, false, false);
        assert_eq!(
            (r.validate_skipped_no_fuse, r.validate_failures.len()),
            (0, 1)
        );
    }

    #[test]
    fn a_soft_lockup_on_the_console_is_found() {
        let console = "@@RT check-stderr END\n[   60.685125] watchdog: BUG: soft lockup - CPU#0 stuck for 45s! [detach:128]\n[   88.6] watchdog: BUG: soft lockup - CPU#0 stuck for 71s! [detach:128]\n";
        assert_eq!(
            soft_lockup(console),
            Some("[   60.685125] watchdog: BUG: soft lockup - CPU#0 stuck for 45s! [detach:128]")
        );
        assert_eq!(soft_lockup("@@RT done 0\n"), None);
    }

    #[test]
    fn releases_sort_by_number() {
        let mut v = vec![
            "6.12.9+deb12-amd64",
            "6.12.10+deb12-amd64",
            "5.10.0-32-amd64",
            "5.10.0-4-amd64",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "5.10.0-4-amd64",
                "5.10.0-32-amd64",
                "6.12.9+deb12-amd64",
                "6.12.10+deb12-amd64"
            ]
        );
    }

    #[test]
    fn specs_pick_the_newest_of_a_series() {
        let offered: Vec<String> = [
            "5.10.0-30-amd64",
            "5.10.0-32-amd64",
            "6.1.0-50-amd64",
            "6.12.95+deb12-amd64",
            "7.0.13+deb13-amd64",
            "7.2.12+deb13-amd64",
            "7.3.4+deb13-amd64",
        ]
        .map(String::from)
        .to_vec();
        let pick = |s: &str| choose(&[s.to_string()], &offered);
        assert_eq!(pick("5.10").unwrap(), ["5.10.0-32-amd64"]);
        assert_eq!(pick("6.1").unwrap(), ["6.1.0-50-amd64"]);
        assert_eq!(pick("7").unwrap(), ["7.3.4+deb13-amd64"]);
        assert_eq!(pick("7.0").unwrap(), ["7.0.13+deb13-amd64"]);
        assert_eq!(pick("5.10.0-30-amd64").unwrap(), ["5.10.0-30-amd64"]);
        assert!(pick("4.19").is_err());
        // Every series, each at its newest release, oldest first.
        assert_eq!(
            pick("every").unwrap(),
            [
                "5.10.0-32-amd64",
                "6.1.0-50-amd64",
                "6.12.95+deb12-amd64",
                "7.0.13+deb13-amd64",
                "7.2.12+deb13-amd64",
                "7.3.4+deb13-amd64"
            ]
        );
    }

    #[test]
    fn the_main_and_the_security_archive_are_read_from_apt_sources() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                      Signed-By: /k.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n\
                      Suites: bookworm-security\n"
            .to_string();
        let (main, sec) = parse_sources(&[deb822], "");
        assert_eq!(main.unwrap().uri, "http://mirror.example/debian");
        let sec = sec.unwrap();
        assert_eq!(sec.uri, "http://mirror.example/debian-security");
        assert!(sec.keyring.ends_with("debian-archive-keyring.gpg"));
        let (main, sec) = parse_sources(
            &[],
            "deb http://m.example/debian bullseye main\ndeb [arch=amd64] http://s.example/x bullseye-security main\n",
        );
        assert_eq!(main.unwrap().uri, "http://m.example/debian");
        assert_eq!(sec.unwrap().uri, "http://s.example/x");
        assert_eq!(parse_sources(&[], "# nothing\n"), (None, None));
    }

    #[test]
    fn console_sections_and_values() {
        let c = Console::parse(
            "[ 1.0] noise\n@@RT check-rc 0\n@@RT check BEGIN\n{\"a\":1}\n\n@@RT check END\n",
        );
        assert_eq!(c.value("check-rc"), Some("0"));
        assert_eq!(c.section("check").trim(), "{\"a\":1}");
        assert_eq!(c.section("missing"), "");
    }

    #[test]
    fn proc_stat_lines() {
        let p = parse_proc("12 (sleep) Z 7 1 1 0\n13 (a (b) c) S 1 13\n");
        assert_eq!((p[0].pid, p[0].state, p[0].ppid), (12, 'Z', 7));
        assert_eq!((p[1].comm.as_str(), p[1].ppid), ("a (b) c", 1));
    }
}
