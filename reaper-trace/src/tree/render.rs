//! `tree`'s text: one line per process, indented like `ps xf`, with its marks and where its
//! children would go if it died now. Every name is escaped (processes name themselves).

use std::fmt::Write as _;

use crate::escape::escape_control as esc;

use super::{Destination, OrphanKind, ProcessNode, State, TaskRef, TreeDoc};

fn who(t: &TaskRef) -> String {
    let mut s = t.pid.to_string();
    if t.tid != t.pid {
        let _ = write!(s, "/{}", t.tid);
    }
    if t.ns_pid != 0 && t.ns_pid != t.pid {
        let _ = write!(s, " (ns {})", t.ns_pid);
    }
    let _ = write!(s, " {}", esc(&t.comm));
    s
}

/// `=> PID comm (kind)`, or why the snapshot cannot say.
pub fn destination(d: &Destination, global_init: bool) -> String {
    match (d.kind, &d.reaper) {
        (OrphanKind::Undecided, _) => format!(
            "undecided: {}",
            esc(d.reason.as_deref().unwrap_or("the snapshot cannot say"))
        ),
        (OrphanKind::Teardown, _) if global_init => "the kernel panics (init of the host)".into(),
        (OrphanKind::Teardown, _) => {
            "the namespace is torn down: every process in it is killed".into()
        }
        (kind, Some(r)) => {
            let k = match kind {
                OrphanKind::Thread => "thread",
                OrphanKind::Subreaper => "subreaper",
                _ => "init",
            };
            format!("{} ({k})", who(r))
        }
        (_, None) => "?".into(),
    }
}

fn marks(p: &ProcessNode) -> String {
    let mut m: Vec<String> = Vec::new();
    if p.ns_init {
        let what = match (&p.container, p.level) {
            (Some(c), _) => format!("init of {}", esc(&c.describe(p.pidns))),
            (None, 0) => "init".into(),
            (None, _) => format!("init of pid namespace {}", p.pidns),
        };
        m.push(what);
    }
    if p.subreaper {
        m.push("subreaper".into());
    }
    match p.state {
        State::Zombie => m.push(match &p.reaped_by {
            Some(r) => format!("zombie, to be reaped by {}", who(r)),
            None => "zombie".into(),
        }),
        State::Exiting => m.push("exiting".into()),
        State::Dead => m.push("being released".into()),
        State::Live => {}
    }
    if p.leader_exited {
        m.push("main thread exited".into());
    }
    if p.nr_threads > 1 {
        m.push(format!("{} threads", p.nr_threads));
    }
    if m.is_empty() {
        String::new()
    } else {
        format!("  [{}]", m.join(", "))
    }
}

fn indent(depth: u32) -> String {
    if depth == 0 {
        String::new()
    } else {
        format!("{}\\_ ", "  ".repeat(depth as usize - 1))
    }
}

/// The column header above [`process_line`]s.
pub const COLUMNS: &str = "    PID  NS PID  PROCESS";

/// A process's line: pid, namespace pid, name indented by its depth, its marks, and `=>`
/// where its children would go if it died now (when it has children).
pub fn process_line(p: &ProcessNode) -> String {
    let ns = if p.ns_pid != p.pid {
        p.ns_pid.to_string()
    } else {
        String::new()
    };
    let comm = if p.kernel_thread {
        format!("[{}]", esc(&p.comm))
    } else {
        esc(&p.comm).into_owned()
    };
    let mut out = format!(
        "{:>7} {:>7}  {}{comm}{}",
        p.pid,
        ns,
        indent(p.depth),
        marks(p)
    );
    if !p.children.is_empty() {
        let _ = write!(out, "  => {}", orphans_to(p));
    }
    out
}

/// Where `p`'s children would go if it died now, as `=>` says it.
pub fn orphans_to(p: &ProcessNode) -> String {
    let global_init = p.level == 0 && p.ns_init;
    destination(&p.orphans_to, global_init)
}

/// With `--threads`: a line per thread of `p` (none for a single thread without children).
pub fn thread_lines(p: &ProcessNode) -> Vec<String> {
    let Some(ts) = p.threads.as_ref() else {
        return Vec::new();
    };
    if ts.len() < 2 && ts.iter().all(|t| t.children.is_empty()) {
        return Vec::new();
    }
    ts.iter()
        .map(|t| {
            let ns = if t.ns_tid != t.tid {
                t.ns_tid.to_string()
            } else {
                String::new()
            };
            let state = match t.state {
                State::Live => "",
                State::Exiting => " exiting",
                State::Zombie => " exited",
                State::Dead => " being released",
            };
            format!(
                "{:>7} {:>7}  {}  {{{}}}{state}  => if this thread exited: {}",
                t.tid,
                ns,
                "  ".repeat(p.depth as usize),
                esc(&t.comm),
                destination(&t.orphans_to, false)
            )
        })
        .collect()
}

/// The whole text.
pub fn text(doc: &TreeDoc, threads: bool) -> String {
    let mut out = format!(
        "{} processes, {} tasks, read in {:.1} ms (Linux {}); `=>`: where its children would go if it died now\n",
        doc.processes.len(),
        doc.tasks,
        doc.read_ns as f64 / 1e6,
        esc(&doc.kernel)
    );
    out += COLUMNS;
    out.push('\n');
    for p in &doc.processes {
        out += &process_line(p);
        out.push('\n');
        if threads {
            for t in thread_lines(p) {
                out += &t;
                out.push('\n');
            }
        }
    }
    out
}
