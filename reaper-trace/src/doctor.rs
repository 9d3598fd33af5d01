//! `reaper-trace doctor`: names every namespace init or subreaper that holds zombies past the
//! threshold (it adopted orphans, or forked children, and did not reap them), with what to do.
//!
//! [`diagnose`] is pure: it reads a [`View`] fed with events, live or from a recording.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use tokio::time::{Instant, sleep_until};

use crate::container::{ContainerInfo, Runtime};
use crate::escape::escape_control;
use crate::event::{Event, Proc};
use crate::live::{self, Flow, Sink, StopSignals};
use crate::model::Scope;
use crate::session::{Session, SessionOptions};
use crate::view::{NS_PER_SEC, ROOT_PIDNS, View};

pub use crate::state::Role;

/// A reaper that holds zombies past the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub reaper: Proc,
    pub role: Role,
    /// Its pid namespace's container, when known.
    pub container: Option<ContainerInfo>,
    /// Orphans it adopted and zombies it reaped while watched.
    pub adopted: u64,
    pub reaped: u64,
    /// Zombies waiting for it now, and the oldest one's age.
    pub zombies: usize,
    pub oldest_ns: u64,
    /// The oldest was a zombie before watching began: its age is at least `oldest_ns`.
    pub oldest_at_least: bool,
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn fmt_secs(ns: u64) -> String {
    let s = ns as f64 / NS_PER_SEC as f64;
    if s < 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

impl Finding {
    /// One sentence, e.g. "container test (docker 3f2a1b2c4d5e): PID 1 `sleep` adopted 2
    /// orphans and reaped 0; 2 zombies, the oldest 31 s: run it under an init (docker run
    /// --init, tini, reaper-init)". Untrusted text (names) escaped.
    pub fn sentence(&self) -> String {
        let r = &self.reaper;
        let comm = escape_control(&r.comm);
        let place = match &self.container {
            Some(c) => escape_control(&c.describe(r.pidns)).into_owned(),
            None if r.pidns == ROOT_PIDNS => "host".to_string(),
            None => format!("pid namespace {}", r.pidns),
        };
        let who = match (self.role, r.pidns == ROOT_PIDNS && self.container.is_none()) {
            (Role::Init, true) => format!("PID 1 `{comm}`"),
            (Role::Init, false) => format!("PID 1 `{comm}` (host pid {})", r.pid),
            (Role::Subreaper, _) => format!("subreaper {} `{comm}`", r.pid),
        };
        let oldest = format!(
            "{}{}",
            if self.oldest_at_least {
                "at least "
            } else {
                ""
            },
            fmt_secs(self.oldest_ns)
        );
        let advice = match (self.role, self.container.as_ref().and_then(|c| c.runtime)) {
            (Role::Init, Some(Runtime::Docker)) => {
                "run it under an init (docker run --init, tini, reaper-init)"
            }
            (Role::Init, Some(Runtime::Podman)) => {
                "run it under an init (podman run --init, tini, reaper-init)"
            }
            (Role::Init, Some(Runtime::Containerd | Runtime::CriO)) => {
                "run it under an init (tini, dumb-init, reaper-init as the entrypoint, or shareProcessNamespace)"
            }
            (Role::Init, _) => "run it under an init (tini, dumb-init, reaper-init)",
            (Role::Subreaper, _) => {
                "it must wait for the orphans it adopts (or not set PR_SET_CHILD_SUBREAPER)"
            }
        };
        format!(
            "{place}: {who} adopted {} and reaped {}; {}, the oldest {oldest}: {advice}",
            plural(self.adopted, "orphan", "orphans"),
            self.reaped,
            plural(self.zombies as u64, "zombie", "zombies"),
        )
    }
}

/// Every namespace init or subreaper with a zombie older than the view's threshold, the
/// oldest first: the derived state's rule, the one `reaper_trace_unreaping_reapers` counts.
pub fn diagnose(view: &View) -> Vec<Finding> {
    let state = view.state();
    state
        .unreaping(view.now(), view.zombie_threshold_ns)
        .into_iter()
        .map(|u| Finding {
            container: state.container(u.reaper.pidns).cloned(),
            role: u.role,
            adopted: u.facts.adopted,
            reaped: u.facts.reaped,
            zombies: u.zombies,
            oldest_ns: u.oldest_ns,
            oldest_at_least: u.oldest_at_least,
            reaper: u.reaper,
        })
        .collect()
}

pub struct DoctorOptions {
    pub duration: Duration,
    pub zombie_threshold: Duration,
    pub replay: Option<PathBuf>,
    pub ring_bytes: u32,
}

/// Prints the findings; 1 when there is one, 0 when there is none.
fn report(view: &View, watched: &str) -> i32 {
    let findings = diagnose(view);
    for f in &findings {
        println!("{}", f.sentence());
    }
    if findings.is_empty() {
        println!(
            "no namespace init or subreaper holds a zombie longer than {} ({watched}: {} adoptions, {} reaps, {} zombies now)",
            fmt_secs(view.zombie_threshold_ns),
            view.adoptions_total(),
            view.reaps(),
            view.zombie_count(),
        );
        0
    } else {
        1
    }
}

pub async fn run(opts: DoctorOptions) -> Result<i32> {
    let threshold = opts.zombie_threshold.as_nanos().min(u64::MAX as u128) as u64;
    let mut view = View::new(threshold);
    if let Some(path) = &opts.replay {
        // Streamed: each event is applied as it is read, whatever the file's size.
        let mut reader = crate::jsonl::open(path)?;
        let mut last = reader.header().started_ts;
        while let Some(ev) = reader.next_event()? {
            last = last.max(ev.ts());
            view.apply(&ev);
        }
        view.set_clock(last);
        return Ok(report(
            &view,
            &format!("in {}", escape_control(&path.display().to_string())),
        ));
    }
    let mut signals = StopSignals::new()?;
    let mut session = Session::start(&SessionOptions {
        scope: Scope::All,
        ring_bytes: opts.ring_bytes,
        quiet: false,
    })?;
    let mut doctor = Doctor {
        view,
        deadline: Instant::now() + opts.duration,
    };
    let started = Instant::now();
    live::run(&mut session, &mut signals, &mut doctor).await?;
    let watched = format!("watched {}", fmt_secs(started.elapsed().as_nanos() as u64));
    Ok(report(&doctor.view, &watched))
}

/// A live diagnosis: the events applied to the view until the duration is over.
struct Doctor {
    view: View,
    deadline: Instant,
}

impl Sink<Session> for Doctor {
    type Input = ();

    fn started(&mut self, _: &mut Session, first: &mut Vec<Event>) -> Result<Flow> {
        self.apply(first)
    }

    fn input(&mut self) -> impl Future<Output = ()> {
        sleep_until(self.deadline)
    }

    fn on_input(&mut self, _: (), _: &mut Session) -> Result<Flow> {
        Ok(Flow::Stop)
    }

    fn on_events(&mut self, events: &mut Vec<Event>, _: &mut Session) -> Result<Flow> {
        self.apply(events)
    }

    fn finish(&mut self, last: &mut Vec<Event>, _: &mut Session) -> Result<()> {
        self.apply(last)?;
        self.view.set_clock(crate::clock::boottime_ns());
        Ok(())
    }
}

impl Doctor {
    fn apply(&mut self, events: &[Event]) -> Result<Flow> {
        for ev in events {
            self.view.apply(ev);
        }
        Ok(Flow::Go)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, ReaperKind};
    use crate::view::tests::{in_ns, p, reparent, zombie};

    const NS: u32 = 4026532177;

    fn docker_test() -> ContainerInfo {
        ContainerInfo {
            runtime: Some(Runtime::Docker),
            id: Some("3f2a1b2c4d5e".repeat(5) + "abcd"),
            name: Some("test".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_container_init_that_does_not_reap_is_named() {
        let s = NS_PER_SEC;
        let mut v = View::new(5 * s);
        v.apply(&Event::Container {
            ts: 0,
            pidns: NS,
            info: docker_test(),
        });
        let init = in_ns(p(100, 1, "sleep"), NS, 1);
        let bash = in_ns(p(200, 2, "bash"), NS, 20);
        let child = in_ns(p(201, 3, "child.sh"), NS, 21);
        let sleep = in_ns(p(202, 4, "sleep"), NS, 22);
        v.apply(&reparent(s, &child, &bash, &init, ReaperKind::Init));
        v.apply(&reparent(2 * s, &sleep, &child, &init, ReaperKind::Init));
        v.apply(&zombie(2 * s, &child, &init));
        v.apply(&zombie(3 * s, &sleep, &init));
        v.set_clock(6 * s);
        // Within the threshold: nothing yet.
        assert_eq!(diagnose(&v), []);
        v.set_clock(33 * s);
        let f = diagnose(&v);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            f[0].sentence(),
            "container test (docker 3f2a1b2c4d5e): PID 1 `sleep` (host pid 100) adopted 2 orphans and reaped 0; 2 zombies, the oldest 31 s: run it under an init (docker run --init, tini, reaper-init)"
        );
    }

    #[test]
    fn an_ordinary_parent_or_a_reaping_init_is_not_a_finding() {
        let s = NS_PER_SEC;
        let mut v = View::new(5 * s);
        // A shell that has not waited for its child yet: its own business.
        let sh = p(300, 1, "sh");
        let kid = p(301, 2, "kid");
        v.apply(&zombie(s, &kid, &sh));
        // An init that reaped what it adopted.
        let init = in_ns(p(400, 1, "tini\u{1b}[2J"), NS, 1);
        let o = in_ns(p(401, 2, "o"), NS, 2);
        v.apply(&reparent(s, &o, &kid, &init, ReaperKind::Init));
        v.apply(&zombie(s, &o, &init));
        v.apply(&crate::view::tests::reap(2 * s, &o, &init, Some(s)));
        v.set_clock(60 * s);
        assert_eq!(diagnose(&v), []);
        // A subreaper that holds an adopted zombie is.
        let shim = p(500, 1, "shim");
        let orphan = p(501, 2, "orphan");
        v.apply(&reparent(s, &orphan, &kid, &shim, ReaperKind::Subreaper));
        v.apply(&zombie(s, &orphan, &shim));
        let f = diagnose(&v);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].role, Role::Subreaper);
        assert!(
            f[0].sentence().starts_with("host: subreaper 500 `shim` adopted 1 orphan and reaped 0; 1 zombie, the oldest 59 s"),
            "{}",
            f[0].sentence()
        );
    }

    #[test]
    fn names_are_escaped() {
        let s = NS_PER_SEC;
        let mut v = View::new(s);
        let mut info = docker_test();
        info.name = Some("evil\u{1b}]0;x\u{7}".into());
        v.apply(&Event::Container {
            ts: 0,
            pidns: NS,
            info,
        });
        let init = in_ns(p(100, 1, "sl\u{1b}[2Jeep"), NS, 1);
        v.apply(&zombie(0, &in_ns(p(101, 2, "z"), NS, 2), &init));
        v.set_clock(10 * s);
        let line = diagnose(&v)[0].sentence();
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    }
}
