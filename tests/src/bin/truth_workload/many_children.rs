//! Case 9: fathers with many children.

use super::*;

/// Case 9: F has 300 children when it exits; they are adopted by W (the subreaper), which
/// then lets them exit and reaps them all. The children block on a pipe only W holds open.
/// State and parent of a task from `/proc/PID/stat` (one small read: the 10,000-children case
/// reads it for every child).
pub(crate) fn stat_state_ppid(pid: i32) -> Option<(u8, u32)> {
    let mut stat = [0u8; 1024];
    let len = read_file(proc_path(pid, "stat").as_bytes(), &mut stat)?;
    // Fields after the last ')', which the comm may contain.
    let close = stat[..len].iter().rposition(|&c| c == b')')?;
    let mut fields = stat[close + 1..len]
        .split(|c| c.is_ascii_whitespace())
        .filter(|t| !t.is_empty());
    let state = *fields.next()?.first()?;
    // Fields `stat_field::STATE` and `stat_field::PPID`: the first two.
    let ppid = parse_num(fields.next()?)? as u32;
    Some((state, ppid))
}

/// Numbers per fact line: a line is at most 16 KiB.
pub(crate) const PIDS_PER_LINE: usize = 1000;

/// `many-children LIVING ZOMBIES`: a subreaper's child (the father) forks LIVING children that
/// block on a pipe and ZOMBIES children that exit at once, waits until those are zombies, and
/// exits. The subreaper reaps the father, then reads `/proc/PID/stat` of every child (notes
/// `many_children_ppids`: pids, states and ppids as `/proc` shows them after the hand-off),
/// then kills and reaps them, `EXIT_BATCH` at a time.
/// Notes `many_children` (possibly several lines): `father`, `children` (the living ones),
/// `zombies`.
pub(crate) fn many_children(args: &[String]) -> i32 {
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| die("usage: many-children LIVING ZOMBIES"))
    };
    let (living, zombies) = (num(0), num(1));
    let total = living + zombies;
    record_me("subreaper");
    set_subreaper();
    let (r, w) = pipe_cloexec();
    let (pids_r, pids_w) = pipe_cloexec();
    let f = fork_child(|| {
        close(pids_r);
        let f = record_me("father");
        let mut kids = Vec::with_capacity(living);
        for _ in 0..living {
            kids.push(fork_child(|| {
                close(w);
                close(pids_w);
                read_until_eof(r);
                0
            }));
        }
        let mut dead = Vec::with_capacity(zombies);
        for _ in 0..zombies {
            dead.push(fork_child(|| 0));
        }
        // They are zombies when the father exits: adopted as zombies.
        for &z in &dead {
            while stat_state_ppid(z).is_none_or(|(state, _)| state != b'Z') {
                sleep_ms(1);
            }
        }
        for (i, part) in kids.chunks(PIDS_PER_LINE).enumerate() {
            fact!(
                "{{\"kind\":\"note\",\"what\":\"many_children\",\"father\":{},\"part\":{i},\"children\":{},\"zombies\":[]}}",
                f.tgid,
                List(part)
            );
        }
        for (i, part) in dead.chunks(PIDS_PER_LINE).enumerate() {
            fact!(
                "{{\"kind\":\"note\",\"what\":\"many_children\",\"father\":{},\"part\":{i},\"children\":[],\"zombies\":{}}}",
                f.tgid,
                List(part)
            );
        }
        for &k in kids.iter().chain(&dead) {
            write_u32(pids_w, k as u32);
        }
        0
    });
    close(pids_w);
    close(r);
    let mut all = Vec::with_capacity(total);
    for _ in 0..total {
        match read_u32(pids_r) {
            Some(pid) => all.push(pid as i32),
            None => die("the father did not fork its children"),
        }
    }
    wait_fact("subreaper waits father", f, 0, true);
    for part in all.chunks(PIDS_PER_LINE) {
        let mut states = Vec::with_capacity(part.len());
        let mut ppids = Vec::with_capacity(part.len());
        for &pid in part {
            let (state, ppid) = stat_state_ppid(pid).unwrap_or((b'?', 0));
            states.push(state as char);
            ppids.push(ppid);
        }
        let states: String = states.into_iter().collect();
        fact!(
            "{{\"kind\":\"note\",\"what\":\"many_children_ppids\",\"pids\":{},\"states\":\"{}\",\"ppids\":{}}}",
            List(part),
            Esc(states.as_bytes()),
            List(&ppids)
        );
    }
    // The orphans go in batches, each reaped before the next: all of them exiting at once
    // would be a storm of exit, zombie, reap and free records (four per child), which is not
    // what this case is about (the hand-off above is not paced).
    let waiter = me();
    for batch in all.chunks(EXIT_BATCH) {
        for &pid in batch {
            // SAFETY: signalling our own (adopted) child; a zombie ignores it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for &pid in batch {
            let r = raw_wait4(pid, libc::__WALL);
            emit_wait("subreaper wait", &waiter, pid, r, true);
            if r.0 != pid {
                die("the subreaper could not reap an orphan");
            }
        }
        sleep_ms(10);
    }
    close(w);
    if !reap_all("subreaper wait").is_empty() {
        die("the subreaper had children it did not know of");
    }
    0
}

/// Orphans let go at a time at the end of `many-children`.
pub(crate) const EXIT_BATCH: usize = 250;
