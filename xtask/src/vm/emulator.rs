//! The emulator the guests run on: QEMU from this host's backports suite, unpacked into the
//! cache (nothing installed on the host), else the host's own.
//!
//! Why not the host's: bookworm's QEMU 7.2 let multi-threaded TCG guests die now and then of
//! an int3 taken at a site their kernel had finished patching (static keys and static calls,
//! changed whenever a program is attached or detached), 1-4 guests in a full matrix run;
//! single-threaded TCG died there too. The backported QEMU is built for this host's release,
//! so its libraries are the host's own.

use super::*;

/// A QEMU to boot the guests with.
pub(super) struct Emulator {
    pub(super) binary: PathBuf,
    /// Firmware directories (`-L`): the BIOS, and QEMU's option ROMs.
    pub(super) firmware: Vec<PathBuf>,
}

impl Emulator {
    fn host() -> Emulator {
        Emulator {
            binary: PathBuf::from("qemu-system-x86_64"),
            firmware: Vec::new(),
        }
    }

    /// `qemu-system-x86_64` with its firmware directories.
    pub(super) fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        for dir in &self.firmware {
            c.arg("-L").arg(dir);
        }
        c
    }

    /// What `--version` says (its first line).
    pub(super) fn describe(&self) -> String {
        let said = self
            .command()
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        said.lines()
            .next()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .unwrap_or("qemu-system-x86_64 (no version)")
            .to_string()
    }
}

/// The QEMU of `<codename>-backports`, fetched and unpacked once; the host's own when
/// `REAPER_TRACE_VM_QEMU=host`, or when the backports suite has none.
pub(super) fn emulator(apt: &Apt) -> Result<Emulator> {
    if std::env::var("REAPER_TRACE_VM_QEMU").as_deref() == Ok("host") {
        return Ok(Emulator::host());
    }
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let Some(codename) = os_release_field(&os_release, "VERSION_CODENAME") else {
        eprintln!("xtask: /etc/os-release names no release: the guests run on the host's QEMU");
        return Ok(Emulator::host());
    };
    let suite = format!("{codename}-backports");
    let madison = run_quiet(apt.command("apt-cache").args([
        "madison",
        "qemu-system-x86",
        "qemu-system-data",
        "seabios",
    ]))?;
    let in_suite = |package: &str| newest_in_suite(&madison, package, &suite);
    let (Some(qemu), Some(data)) = (in_suite("qemu-system-x86"), in_suite("qemu-system-data"))
    else {
        eprintln!("xtask: {suite} has no QEMU: the guests run on the host's QEMU");
        return Ok(Emulator::host());
    };
    let name = qemu.replace([':', '~', '+'], "_");
    let dir = cache_dir().join("qemu").join(&name);
    let emulator = Emulator {
        binary: dir.join("usr/bin/qemu-system-x86_64"),
        firmware: vec![dir.join("usr/share/seabios"), dir.join("usr/share/qemu")],
    };
    // Last written: its presence marks the cache entry complete.
    let complete = dir.join("complete");
    if complete.exists() {
        return Ok(emulator);
    }
    eprintln!("xtask: fetching QEMU {qemu} ({suite})");
    let work = cache_dir().join("qemu").join(format!("{name}.partial"));
    let _ = std::fs::remove_dir_all(&work);
    let debs = work.join("debs");
    std::fs::create_dir_all(&debs)?;
    let mut packages = vec![
        format!("qemu-system-x86={qemu}"),
        format!("qemu-system-common={qemu}"),
        format!("qemu-system-data={data}"),
    ];
    // Its BIOS: the suite's when it has one (the backported QEMU may need the newer one).
    packages.push(match in_suite("seabios") {
        Some(v) => format!("seabios={v}"),
        None => "seabios".to_string(),
    });
    let tree = work.join("tree");
    std::fs::create_dir_all(&tree)?;
    for package in &packages {
        let deb = apt.download(package, &debs)?;
        run_quiet(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    }
    let binary = tree.join("usr/bin/qemu-system-x86_64");
    let ldd = run_quiet(Command::new("ldd").arg(&binary))?;
    let missing: Vec<&str> = ldd
        .lines()
        .filter(|l| l.contains("not found"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if !missing.is_empty() {
        bail!(
            "QEMU {qemu} from {suite} needs libraries this host lacks ({}): install them, or run \
             with REAPER_TRACE_VM_QEMU=host",
            missing.join(", ")
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tree, &dir)
        .with_context(|| format!("cannot move QEMU into {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    std::fs::write(&complete, qemu.as_bytes())?;
    Ok(emulator)
}

/// `KEY=value` (quotes removed) from an os-release text.
fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The newest version of `package` that `apt-cache madison` lists in `suite` (madison lists
/// the newest first).
fn newest_in_suite(madison: &str, package: &str, suite: &str) -> Option<String> {
    madison.lines().find_map(|line| {
        let mut fields = line.split('|').map(str::trim);
        let (name, version, source) = (fields.next()?, fields.next()?, fields.next()?);
        let from_suite = source
            .split_whitespace()
            .nth(1)
            .is_some_and(|s| s.split('/').next() == Some(suite));
        (name == package && from_suite).then(|| version.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MADISON: &str = "\
qemu-system-x86 | 1:11.1.3+ds-2~bpo13+1 | http://deb.example/debian trixie-backports/main amd64 Packages
qemu-system-x86 | 1:10.0.2+ds-2+deb13u1~bpo12+1 | http://deb.example/debian bookworm-backports/main amd64 Packages
qemu-system-x86 | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.example/debian bookworm/main amd64 Packages
   seabios | 1.16.3-2~bpo12+1 | http://deb.example/debian bookworm-backports/main amd64 Packages
   seabios |   1.16.2-1 | http://deb.example/debian bookworm/main amd64 Packages
";

    #[test]
    fn the_backports_version_is_the_one_of_that_suite() {
        assert_eq!(
            newest_in_suite(MADISON, "qemu-system-x86", "bookworm-backports").as_deref(),
            Some("1:10.0.2+ds-2+deb13u1~bpo12+1")
        );
        assert_eq!(
            newest_in_suite(MADISON, "seabios", "bookworm-backports").as_deref(),
            Some("1.16.3-2~bpo12+1")
        );
        // "bookworm" is not "bookworm-backports", and a suite with none gives none.
        assert_eq!(
            newest_in_suite(MADISON, "qemu-system-x86", "bookworm").as_deref(),
            Some("1:7.2+dfsg-7+deb12u18+b3")
        );
        assert_eq!(
            newest_in_suite(MADISON, "qemu-system-x86", "bullseye-backports"),
            None
        );
        assert_eq!(
            newest_in_suite(MADISON, "seabios", "trixie-backports"),
            None
        );
    }

    #[test]
    fn the_codename_is_read_from_os_release() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\n";
        assert_eq!(
            os_release_field(text, "VERSION_CODENAME").as_deref(),
            Some("bookworm")
        );
        assert_eq!(os_release_field("ID=debian\n", "VERSION_CODENAME"), None);
        assert_eq!(
            os_release_field("VERSION_CODENAME=\n", "VERSION_CODENAME"),
            None
        );
    }
}
