//! Kernel images fetched and unpacked once (cached), and the initramfs each one boots.

use super::*;

/// A kernel ready to boot: its image, and the FUSE module when FUSE is not built in.
pub(super) struct Kernel {
    pub(super) release: String,
    pub(super) vmlinuz: PathBuf,
    pub(super) fuse_module: Option<PathBuf>,
}

pub(super) fn find_file(dir: &Path, pred: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
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
pub(super) fn fetch_kernel(apt: &Apt, release: &str) -> Result<Kernel> {
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
pub(super) fn kernel_has_builtin_fuse(kernel: &Kernel) -> bool {
    kernel
        .vmlinuz
        .parent()
        .map(|d| d.join("config"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|c| c.lines().any(|l| l == "CONFIG_FUSE_FS=y"))
}

// ----- the initramfs -----

pub(super) fn copy_with_libraries(src: &Path, root: &Path, dest: &str) -> Result<()> {
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

pub(super) fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{name} is not installed"))
}

/// The guest's files, without a kernel module: built once per run.
pub(super) fn build_root(root: &Path, bins: &Path) -> Result<()> {
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
pub(super) fn initramfs(root: &Path, kernel: &Kernel, out: &Path) -> Result<()> {
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
