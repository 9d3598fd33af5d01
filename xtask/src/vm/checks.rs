//! What a guest's console is checked for: the recording against what the guest's `/proc`
//! showed, and the SIGTERM-stopped recording.

use super::*;

/// One line of `/proc/PID/stat`: pid, comm, state, ppid.
#[derive(Debug, Clone)]
pub(super) struct ProcStat {
    pub(super) pid: u64,
    pub(super) comm: String,
    pub(super) state: char,
    pub(super) ppid: u64,
}

pub(super) fn parse_proc(text: &str) -> Vec<ProcStat> {
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

pub(super) fn jsonl(text: &str) -> Result<Vec<Value>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("line {} is not JSON ({e})", i + 1))
        })
        .collect()
}

pub(super) fn pid_of(v: &Value, field: &str) -> Option<u64> {
    v.get(field)?.get("pid")?.as_u64()
}

#[derive(Debug, serde::Serialize)]
pub(super) struct Check {
    pub(super) name: &'static str,
    pub(super) ok: bool,
    pub(super) detail: String,
}

pub(super) fn check(name: &'static str, result: Result<String, String>) -> Check {
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
pub(super) fn experiment_checks(console: &Console) -> Vec<Check> {
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
pub(super) fn sigterm_checks(console: &Console) -> Vec<Check> {
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
    checks.push(check("no program left attached", left_attached(console)));
    checks
}

/// Nothing of the recorder's is left in the kernel once it exited: no link (the guest runs no
/// other BPF user), and none of its programs (bpftool shows names cut to 15 bytes) once the
/// kernel freed them, which it does after a grace period.
fn left_attached(console: &Console) -> Result<String, String> {
    const OURS: [&str; 6] = [
        "sched_process_",
        "sched_switch",
        "sys_exit_",
        "sys_enter_",
        "io_uring_comple",
        "tree_task",
    ];
    let links: Vec<&str> = console
        .section("links-after")
        .lines()
        .filter(|l| {
            l.split_once(": ")
                .is_some_and(|(id, _)| id.parse::<u32>().is_ok())
        })
        .collect();
    if !links.is_empty() {
        return Err(format!("links left: {}", links.join(" | ")));
    }
    let progs: Vec<&str> = console
        .section("programs-after")
        .lines()
        .filter(|l| OURS.iter().any(|n| l.contains(&format!("name {n}"))))
        .collect();
    let waited = console.value("programs-freed-within-ms").unwrap_or("?");
    if !progs.is_empty() {
        return Err(format!(
            "no link left, but programs still loaded after {waited} ms: {}",
            progs.join(" | ")
        ));
    }
    Ok(format!(
        "bpftool lists no link, and none of reaper-trace's programs (freed within {waited} ms)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_or_a_program_left_after_the_recorder_exits_fails() {
        let console = |links: &str, progs: &str| {
            Console::parse(&format!(
                "@@RT links-after BEGIN\n{links}\n@@RT links-after END\n@@RT programs-freed-within-ms 300\n@@RT programs-after BEGIN\n{progs}\n@@RT programs-after END\n"
            ))
        };
        let bpftool_own = "7: tracing  name iter  tag 1234  gpl";
        let ok = left_attached(&console("", bpftool_own));
        assert!(
            ok.as_ref().is_ok_and(|d| d.contains("within 300 ms")),
            "{ok:?}"
        );
        let link = "63: tracing  prog 63\n\tprog_type tracing  attach_type trace_raw_tp";
        assert!(
            left_attached(&console(link, ""))
                .unwrap_err()
                .contains("links left: 63:")
        );
        let prog = "63: tracing  name sched_process_fork_standby  tag 651e7b841ad6a7dd  gpl";
        let err = left_attached(&console("", prog)).unwrap_err();
        assert!(
            err.contains("after 300 ms") && err.contains("sched_process_fork_standby"),
            "{err}"
        );
    }

    #[test]
    fn proc_stat_lines() {
        let p = parse_proc("12 (sleep) Z 7 1 1 0\n13 (a (b) c) S 1 13\n");
        assert_eq!((p[0].pid, p[0].state, p[0].ppid), (12, 'Z', 7));
        assert_eq!((p[1].comm.as_str(), p[1].ppid), ("a (b) c", 1));
    }
}
