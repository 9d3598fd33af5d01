//! Booting a kernel under qemu, and reading what its console says.

use super::*;

/// How the emulator runs the guest's two CPUs: `multi` (a host thread each) unless
/// `REAPER_TRACE_VM_TCG=single` (one host thread taking turns, 2.2-2.6 times as slow, with
/// more of the guest's programs preempted). Under the host's QEMU 7.2 neither kept guests
/// from dying of an int3 their kernel had finished patching; see `emulator`.
pub(super) fn tcg_threads() -> String {
    std::env::var("REAPER_TRACE_VM_TCG").unwrap_or_else(|_| "multi".to_string())
}

/// Boots `kernel` and returns its console output (`\r` removed).
pub(super) fn boot(
    emulator: &Emulator,
    kernel: &Kernel,
    initrd: &Path,
    log: &Path,
    guest: &Guest,
) -> Result<(String, Duration)> {
    let mut options = String::new();
    if guest.check_only {
        options += " rt.check_only";
    }
    if !guest.only.is_empty() {
        options += &format!(" rt.only={}", guest.only.join(","));
    }
    if guest.runs != 1 {
        options += &format!(" rt.runs={}", guest.runs);
    }
    let started = Instant::now();
    let file = std::fs::File::create(log)?;
    let mut qemu = emulator
        .command()
        .args(["-accel", &format!("tcg,thread={}", tcg_threads())])
        .args(["-cpu", "max", "-smp", "2"])
        .args(["-m", "2048", "-nographic", "-no-reboot", "-kernel"])
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init{options}"
        ))
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", emulator.binary.display()))?;
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
pub(super) fn soft_lockup(text: &str) -> Option<&str> {
    text.lines()
        .find(|l| l.contains("BUG: soft lockup"))
        .map(str::trim)
}

/// The guest kernel's panic line and the instruction it died at, if it panicked.
pub(super) fn guest_panic(text: &str) -> Option<String> {
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
pub(super) struct Console {
    pub(super) values: BTreeMap<String, String>,
    pub(super) sections: BTreeMap<String, String>,
}

impl Console {
    pub(super) fn parse(text: &str) -> Self {
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

    pub(super) fn section(&self, name: &str) -> &str {
        self.sections.get(name).map(String::as_str).unwrap_or("")
    }

    pub(super) fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn console_sections_and_values() {
        let c = Console::parse(
            "[ 1.0] noise\n@@RT check-rc 0\n@@RT check BEGIN\n{\"a\":1}\n\n@@RT check END\n",
        );
        assert_eq!(c.value("check-rc"), Some("0"));
        assert_eq!(c.section("check").trim(), "{\"a\":1}");
        assert_eq!(c.section("missing"), "");
    }
}
