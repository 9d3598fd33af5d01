//! `cargo xtask image`: the container image of `packaging/image/Dockerfile`, built from a
//! root file system assembled here (the binary and the shared libraries `ldd` says it loads),
//! so that no base image is pulled from a registry.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

pub const DEFAULT_TAG: &str = "reaper-trace:0.1.0";

/// `image`'s own arguments.
#[derive(Args, Debug, PartialEq)]
pub struct ImageArgs {
    /// The image's name and tag
    #[arg(long, value_name = "NAME:TAG", default_value = DEFAULT_TAG)]
    pub tag: String,
    /// Put this reaper-trace binary in the image instead of building the optimized one (the
    /// tests use their own build)
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
}

/// The files a dynamically linked `binary` loads: the `=> /path` of each library `ldd` lists,
/// and the interpreter (`/lib64/ld-linux-x86-64.so.2 (0x...)`).
pub fn libraries(ldd_output: &str) -> Vec<PathBuf> {
    ldd_output
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Copies `from` to `rootfs` at the same absolute path (the file's content: symbolic links
/// are followed).
fn copy_in(rootfs: &Path, from: &Path, to: &Path) -> Result<()> {
    let dest = rootfs.join(to.strip_prefix("/").unwrap_or(to));
    std::fs::create_dir_all(dest.parent().expect("a file in a directory"))?;
    std::fs::copy(from, &dest)
        .with_context(|| format!("copying {} into the image", from.display()))?;
    Ok(())
}

/// Assembles the build context under `work` (the Dockerfile and `rootfs/`) and builds `tag`.
pub fn build(root: &Path, work: &Path, binary: &Path, tag: &str) -> Result<()> {
    if work.exists() {
        std::fs::remove_dir_all(work)?;
    }
    let rootfs = work.join("rootfs");
    copy_in(&rootfs, binary, Path::new("/usr/local/bin/reaper-trace"))?;
    let ldd = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    let listed = String::from_utf8_lossy(&ldd.stdout);
    for lib in libraries(&listed) {
        copy_in(&rootfs, &lib, &lib)?;
    }
    // The daemon's socket directory, and a /tmp for anything that wants one.
    std::fs::create_dir_all(rootfs.join("run/reaper-trace"))?;
    std::fs::create_dir_all(rootfs.join("tmp"))?;
    std::fs::set_permissions(
        rootfs.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )?;
    std::fs::copy(
        root.join("packaging/image/Dockerfile"),
        work.join("Dockerfile"),
    )?;
    let status = Command::new("docker")
        .args(["build", "--quiet", "--tag", tag])
        .arg(work)
        .status()
        .context("running docker build (Debian's docker.io: `cargo xtask setup` installs it)")?;
    if !status.success() {
        bail!("docker build of {tag} failed with {status}");
    }
    eprintln!("xtask: built image {tag} ({})", binary.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_libraries_ldd_lists() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f78)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f78)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f78)\n";
        assert_eq!(
            libraries(out),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        // A static binary: nothing to copy.
        assert!(libraries("\tnot a dynamic executable\n").is_empty());
    }
}
