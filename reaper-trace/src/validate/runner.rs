//! The validator's end of the live session: the scenarios run one after another, each through
//! its phases (running, settling, reading its last records), its events kept, then judged.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::{
    Pipe, SETTLE, TICK, Tree, ValidateOptions, absorb, descendants, describe_status, kill_tree,
    last_line, processes, reap_children, run_again, save_events,
};
use crate::event::Event;
use crate::jsonl;
use crate::live::{Flow, Sink};
use crate::scenario::judge::evaluate;
use crate::scenario::result::{Failure, ScenarioResult};
use crate::scenario::{Scenario, ScenarioReport};
use crate::session::Session;

/// The share of `--timeout` a scenario may spend trying (see `--budget`).
const BUDGET_SHARE: f64 = 0.8;

pub struct Validator {
    exe: PathBuf,
    queue: std::vec::IntoIter<&'static dyn Scenario>,
    timeout: Duration,
    reap_within: Duration,
    events_dir: Option<PathBuf>,
    /// Runs of each scenario so far, to name their events files apart.
    runs: std::collections::HashMap<&'static str, u32>,
    progress: bool,
    current: Option<Run>,
    results: Vec<ScenarioResult>,
    /// Ctrl-C, SIGTERM or SIGHUP came: the current scenario is cleaned up and the run stops.
    stop_asked: bool,
    ticks: tokio::time::Interval,
}

impl Validator {
    pub fn new(
        exe: PathBuf,
        scenarios: Vec<&'static dyn Scenario>,
        opts: &ValidateOptions,
        progress: bool,
    ) -> Self {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            exe,
            queue: scenarios.into_iter(),
            timeout: opts.timeout,
            reap_within: opts.reap_within,
            events_dir: opts.events_dir.clone(),
            runs: Default::default(),
            progress,
            current: None,
            results: Vec::new(),
            stop_asked: false,
            ticks,
        }
    }

    /// The scenarios' results, and whether the run was interrupted.
    pub fn results(self) -> (Vec<ScenarioResult>, bool) {
        (self.results, self.stop_asked)
    }

    /// Starts the next scenario that can run (the others are skipped, with why); stops when
    /// none is left.
    fn start_next(&mut self, session: &mut Session) -> Result<Flow> {
        while !self.stop_asked
            && let Some(scenario) = self.queue.next()
        {
            if let Some(missing) = scenario.needs().missing() {
                self.results.push(ScenarioResult::skipped(
                    scenario.name(),
                    scenario.about(),
                    missing,
                ));
                continue;
            }
            if self.progress {
                eprint!("reaper-trace: {} ...", scenario.name());
            }
            match Run::start(session, &self.exe, scenario, self.timeout)? {
                Ok(run) => {
                    self.current = Some(run);
                    return Ok(Flow::Go);
                }
                Err(result) => self.done(scenario, crate::clock::boottime_ns(), result, &[])?,
            }
        }
        Ok(Flow::Stop)
    }

    /// A scenario's run is over: it is run once more when its failure says nothing of the
    /// kernel, else its result is kept.
    fn judged(&mut self, session: &mut Session, run: Run) -> Result<Flow> {
        let again = run.again.is_none() && !run.interrupted;
        let scenario = run.scenario;
        let started_ts = run.started_ts;
        let (mut result, events) = run.judge(self.reap_within);
        // A failure while kernel records were lost says nothing of the kernel: what the
        // scenario is about may be in what was not seen. It is run once more, and says so.
        if again && let Some(first) = run_again(&result, &events, false) {
            match Run::start(session, &self.exe, scenario, self.timeout)? {
                Ok(mut run) => {
                    run.again = Some(first);
                    self.current = Some(run);
                    return Ok(Flow::Go);
                }
                Err(r) => {
                    result = r;
                    result.notes.insert(0, first);
                }
            }
        }
        self.done(scenario, started_ts, result, &events)?;
        self.start_next(session)
    }

    /// Keeps a scenario's result, and writes its events to `--events-dir` (the evidence
    /// behind its verdict, a recording `top --replay` plays).
    fn done(
        &mut self,
        scenario: &dyn Scenario,
        started_ts: u64,
        result: ScenarioResult,
        events: &[Event],
    ) -> Result<()> {
        let run = self.runs.entry(scenario.name()).or_default();
        *run += 1;
        if let Some(dir) = &self.events_dir {
            // The first run's file is NAME.jsonl, later ones NAME.2.jsonl and on.
            let file = match *run {
                1 => format!("{}.jsonl", scenario.name()),
                n => format!("{}.{n}.jsonl", scenario.name()),
            };
            let mut command = vec![self.exe.display().to_string(), "scenario".into()];
            command.push(scenario.name().into());
            command.extend(scenario.args().iter().map(|a| a.to_string()));
            save_events(
                &dir.join(file),
                &jsonl::header(Some(command), started_ts),
                events,
            )?;
        }
        if self.progress {
            eprintln!(" {}", result.status.as_str());
        }
        self.results.push(result);
        Ok(())
    }
}

impl Sink<Session> for Validator {
    type Input = ();

    fn started(&mut self, session: &mut Session, _: &mut Vec<Event>) -> Result<Flow> {
        self.start_next(session)
    }

    async fn input(&mut self) {
        self.ticks.tick().await;
    }

    fn on_input(&mut self, _: (), session: &mut Session) -> Result<Flow> {
        let Some(run) = &mut self.current else {
            return Ok(Flow::Stop);
        };
        if run.advance(session) {
            let run = self.current.take().expect("running");
            return self.judged(session, run);
        }
        Ok(Flow::Go)
    }

    fn on_signal(&mut self, _: i32, _: &mut Session) -> Result<Flow> {
        self.stop_asked = true;
        match &mut self.current {
            Some(run) => {
                run.interrupt();
                Ok(Flow::Go)
            }
            None => Ok(Flow::Stop),
        }
    }

    fn on_events(&mut self, events: &mut Vec<Event>, _: &mut Session) -> Result<Flow> {
        if let Some(run) = &mut self.current {
            let tree = &mut run.tree;
            run.events
                .extend(events.drain(..).filter(|e| absorb(e, tree)));
        }
        Ok(Flow::Go)
    }

    fn finish(&mut self, _: &mut Vec<Event>, _: &mut Session) -> Result<()> {
        // Every scenario's events were read before it was judged.
        Ok(())
    }
}

/// Where a scenario's run is.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Until it exits, or `deadline` (then it is killed).
    Running { deadline: Instant },
    /// It exited: its processes must all be gone by `until`.
    Settling { until: Instant },
    /// Its last reaps and frees are read until `until`: they come after the processes are
    /// gone.
    Reading { until: Instant },
}

/// One run of one scenario.
struct Run {
    scenario: &'static dyn Scenario,
    started: Instant,
    /// When it started (`CLOCK_BOOTTIME`): its recording's start.
    started_ts: u64,
    timeout: Duration,
    /// Its pid: the validator reaps it itself (waitpid(-1) also reaps adopted orphans).
    root: u32,
    status: Option<i32>,
    stdout: Pipe,
    stderr: Pipe,
    tree: Tree,
    events: Vec<Event>,
    phase: Phase,
    timed_out: bool,
    interrupted: bool,
    killed: Vec<u32>,
    left_behind: Vec<u32>,
    /// Why this is the second run (see [`run_again`]).
    again: Option<String>,
}

impl Run {
    /// Spawns the scenario as a root of the session's tree; `Err`: the result of a scenario
    /// that could not start.
    fn start(
        session: &mut Session,
        exe: &std::path::Path,
        scenario: &'static dyn Scenario,
        timeout: Duration,
    ) -> Result<Result<Self, ScenarioResult>> {
        let started = Instant::now();
        let started_ts = crate::clock::boottime_ns();
        let (out_read, out_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        let mut cmd = std::process::Command::new(exe);
        // A scenario that tries until something happens may take most of its time: the rest
        // is for its clean-up.
        let budget = timeout.mul_f64(BUDGET_SHARE);
        cmd.arg("scenario")
            .arg(scenario.name())
            .arg(format!("--budget={}ms", budget.as_millis().max(1)))
            .args(scenario.args())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_write))
            .stderr(Stdio::from(err_write))
            .process_group(0);
        // The scenario is the root of the session's tree from its first instruction on.
        let spawned = session.spawn_tracked(|| cmd.spawn().map(|c| c.id()));
        drop(cmd);
        let root = match spawned {
            Ok(pid) => pid,
            Err(e) => {
                let mut r = ScenarioResult::new(scenario.name(), scenario.about());
                r.fail(
                    Failure::NotStarted,
                    format!("cannot start {}: {e:#}", exe.display()),
                );
                return Ok(Err(r));
            }
        };
        Ok(Ok(Self {
            scenario,
            started,
            started_ts,
            timeout,
            root,
            status: None,
            stdout: Pipe::new(out_read),
            stderr: Pipe::new(err_read),
            tree: Tree::new(root),
            events: Vec::new(),
            phase: Phase::Running {
                deadline: started + timeout,
            },
            timed_out: false,
            interrupted: false,
            killed: Vec::new(),
            left_behind: Vec::new(),
            again: None,
        }))
    }

    /// Kills what is left of the scenario, then reads its last records.
    fn kill(&mut self) {
        self.killed = kill_tree(self.root, self.root, &mut self.status);
        self.phase = Phase::Reading {
            until: Instant::now() + SETTLE,
        };
    }

    /// A stop was asked for: a running scenario is killed (its result says so).
    fn interrupt(&mut self) {
        if let Phase::Running { .. } = self.phase {
            self.interrupted = true;
            self.kill();
        }
    }

    /// Reads the scenario's output, reaps what exited, moves to the next phase when it is
    /// due. Returns true once the run is over.
    fn advance(&mut self, session: &mut Session) -> bool {
        self.stdout.read_available();
        self.stderr.read_available();
        reap_children(self.root, &mut self.status);
        let now = Instant::now();
        match self.phase {
            Phase::Running { .. } if self.status.is_some() => {
                self.phase = Phase::Settling {
                    until: now + SETTLE,
                };
            }
            Phase::Running { deadline } if now >= deadline => {
                self.timed_out = true;
                self.kill();
            }
            Phase::Running { .. } => {}
            Phase::Settling { until } => {
                let me = std::process::id();
                if descendants(me).is_empty() || now >= until {
                    self.left_behind = descendants(me).into_iter().map(|(p, _)| p).collect();
                    if self.left_behind.is_empty() {
                        self.phase = Phase::Reading {
                            until: now + SETTLE,
                        };
                    } else {
                        self.kill();
                    }
                }
            }
            Phase::Reading { until } if now >= until => {
                session.housekeeping(&mut Vec::new());
                return true;
            }
            Phase::Reading { .. } => {}
        }
        false
    }

    /// The run's result and its events.
    fn judge(mut self, reap_within: Duration) -> (ScenarioResult, Vec<Event>) {
        let (name, description) = (self.scenario.name(), self.scenario.about());
        self.stdout.read_available();
        self.stderr.read_available();
        let leftover: Vec<u32> = descendants(std::process::id())
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let out = self.stdout.text();
        let err = self.stderr.text();
        let report = out
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<ScenarioReport>(l).ok())
            .find(|r| r.scenario == name);
        let mut result = if self.interrupted {
            let mut r = ScenarioResult::new(name, description);
            r.fail(Failure::Interrupted, "interrupted");
            r
        } else if self.timed_out {
            let mut r = ScenarioResult::new(name, description);
            r.fail(
                Failure::Timeout,
                format!(
                    "timed out after {} s; killed {}",
                    self.timeout.as_secs_f64(),
                    processes(self.killed.len())
                ),
            );
            r
        } else {
            match (self.status, report) {
                (Some(s), Some(report)) if libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0 => {
                    evaluate(self.scenario, &report, &self.events, reap_within)
                }
                (s, _) => {
                    let mut r = ScenarioResult::new(name, description);
                    let how = s.map_or_else(|| "no exit status".into(), describe_status);
                    r.fail(
                        Failure::Crashed,
                        match last_line(&err) {
                            Some(line) => format!("the scenario failed ({how}): {line}"),
                            None => format!("the scenario failed ({how}) without a report"),
                        },
                    );
                    r
                }
            }
        };
        if !self.left_behind.is_empty() && !self.timed_out && !self.interrupted {
            result.fail(
                Failure::LeftRunning,
                format!(
                    "{} still running after the scenario ended (killed)",
                    processes(self.left_behind.len())
                ),
            );
        }
        if !leftover.is_empty() {
            result.fail(
                Failure::NotCleanedUp,
                format!("could not clean up processes {leftover:?}"),
            );
        }
        if let Some(first) = self.again {
            result.notes.insert(0, first);
        }
        result.processes = self.tree.processes.into_iter().collect();
        result.killed = self.killed;
        result.leftover = leftover;
        result.duration_ms = self.started.elapsed().as_millis() as u64;
        (result, self.events)
    }
}

/// A pipe: (read end, write end), both close-on-exec.
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
