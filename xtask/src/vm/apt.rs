//! Which kernels: the Debian archives this machine's apt names, a private apt state, and the
//! newest release of each series asked for.

use super::*;

/// A Debian archive: its address and keyring.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Archive {
    pub(super) uri: String,
    pub(super) keyring: String,
}

/// The Debian archives this machine's apt uses: the main one, and the security one when the
/// machine has it (read from its apt sources: no address is written in the repository).
pub(super) fn archives() -> Result<(Archive, Option<Archive>)> {
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
pub(super) fn parse_sources(deb822: &[String], list: &str) -> (Option<Archive>, Option<Archive>) {
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
pub(super) struct Apt {
    pub(super) dir: PathBuf,
}

impl Apt {
    pub(super) fn new() -> Result<Self> {
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

    pub(super) fn command(&self, tool: &str) -> Command {
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
    pub(super) fn update(&self) -> Result<()> {
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
    pub(super) fn releases(&self) -> Result<Vec<String>> {
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

    /// Downloads `package` (`name`, `name=version` or `name/suite`) into `into`: its `.deb`.
    pub(super) fn download(&self, package: &str, into: &Path) -> Result<PathBuf> {
        run_quiet(
            self.command("apt-get")
                .current_dir(into)
                .args(["download", "-qq", package]),
        )?;
        let name = package.split(['=', '/']).next().unwrap_or(package);
        let prefix = format!("{name}_");
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
pub(super) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
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
pub(super) fn series(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The newest release for each spec: a series (`6.12`), a major version (`7`: its newest
/// series), or an exact release.
pub(super) fn choose(specs: &[String], releases: &[String]) -> Result<Vec<String>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
