//! Userspace throughput: kernel records through `decode` and `Model::apply`, and the events
//! they become through the recording's JSON Lines writer, on one core, for synthetic record
//! streams built byte for byte as the kernel programs write them.
//!
//! Run by `cargo xtask bench` (or `cargo bench -p reaper-trace --bench throughput`; add
//! `-- --records N` for a longer or shorter run, `--only NAME` for one stream, `--repeat N`
//! for the median of N runs (3), `--by-kind` for the cost of each record kind). Needs no
//! privileges. Each stream runs in a process of its own, pinned to one CPU, so its peak RSS is
//! its own. Prints figures beside the targets; asserts nothing about speed.
//!
//! The loop is `record`'s: records are applied [`BATCH`] at a time into a `Vec<Event>`, then
//! every event is written with [`JsonlWriter`] (here to `/dev/null`) and dropped. Building the
//! records is not timed. The model's housekeeping (`due_for_check`, `settle`) runs every 500 ms
//! of the records' own clock, as the session runs it; the `/proc` reads it would trigger are
//! not made (every zombie here is still a zombie), but their number is reported.
//!
//! Streams:
//! - `churn`: two workers fork children that exit at once and are reaped with `wait4`
//!   (fork, exit, zombie, wait, free: 5 records, 4 events per child);
//! - `churn+exec`: the same, each child exec'ing first (a shell's children);
//! - `zombies`: one parent makes 100,000 zombies and never waits; `churn` runs beside them;
//!   then the parent reaps them all;
//! - `reuse`: children's tids cycle through 16 numbers, and each child's `free` record comes
//!   after the next child with its tid was forked (the kernel frees a task an RCU grace
//!   period after its reap, by when its pid may be taken again).

use std::fs::OpenOptions;
use std::io::Write;
use std::mem::size_of;
use std::time::{Duration, Instant};

use reaper_trace::decode::decode;
use reaper_trace::event::Event;
use reaper_trace::jsonl::{JsonlWriter, Output};
use reaper_trace::model::{Model, Scope};
use reaper_trace::session::{BATCH, HOUSEKEEPING_EVERY};
use reaper_trace_common::{
    DeadEvent, EventHeader, ExecEvent, ExitEvent, ForkEvent, FreeEvent, TASK_COMM_LEN, TaskId,
    TaskInfo, UPid, WaitEvent, exit_state, kind, wait_syscall,
};

/// Targets the figures are printed beside (not asserted).
const TARGET_RECORDS_PER_SEC: f64 = 1_000_000.0;
const TARGET_EVENTS_PER_SEC: f64 = 500_000.0;
/// The initial pid namespace's inode on this kind of machine.
const PIDNS: u32 = 4026531836;
/// Simulated time between two records: 100,000 records/s of kernel activity (some 20,000
/// processes a second), so housekeeping runs every 50,000 records.
const NS_PER_RECORD: u64 = 10_000;
/// Zombies outstanding in the `zombies` stream.
const ZOMBIES: u32 = 100_000;
/// Tids the `reuse` stream's children cycle through.
const REUSE_TIDS: u32 = 16;

// ----- records, as the kernel programs fill them -----

fn comm(name: &str) -> [u8; TASK_COMM_LEN] {
    let mut c = [0u8; TASK_COMM_LEN];
    let n = name.len().min(TASK_COMM_LEN - 1);
    c[..n].copy_from_slice(&name.as_bytes()[..n]);
    c
}

#[derive(Clone, Copy)]
struct Task {
    tid: u32,
    tgid: u32,
    start: u64,
    comm: [u8; TASK_COMM_LEN],
}

impl Task {
    fn id(&self) -> TaskId {
        TaskId {
            tid: self.tid,
            tgid: self.tgid,
            start_ns: self.start,
        }
    }

    fn info(&self) -> TaskInfo {
        TaskInfo {
            id: self.id(),
            ns_tid: self.tid,
            ns_tgid: self.tgid,
            pidns: PIDNS,
            level: 0,
            comm: self.comm,
        }
    }

    fn pids(&self) -> [UPid; 4] {
        let mut p = [UPid::default(); 4];
        p[0] = UPid {
            nr: self.tgid,
            pidns: PIDNS,
        };
        p
    }
}

/// Records laid end to end, as a ring buffer hands them out (one slice each).
#[derive(Default)]
struct Records {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// The records' clock.
    now: u64,
}

impl Records {
    fn hdr(&mut self, kind: u32) -> EventHeader {
        self.now += NS_PER_RECORD;
        EventHeader {
            kind,
            _pad: 0,
            ts_ns: self.now,
        }
    }

    fn push<T: Copy>(&mut self, rec: &T) {
        // SAFETY: viewing a plain #[repr(C)] record as its bytes, as the ring buffer does.
        let bytes =
            unsafe { std::slice::from_raw_parts((rec as *const T).cast::<u8>(), size_of::<T>()) };
        self.bytes.extend_from_slice(bytes);
        self.ends.push(self.bytes.len());
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let r = &self.bytes[start..end];
            start = end;
            r
        })
    }

    /// `sched_process_fork`: `parent` forks a new process `tid`; returns it.
    fn fork(&mut self, parent: &Task, tid: u32) -> Task {
        let hdr = self.hdr(kind::FORK);
        let child = Task {
            tid,
            tgid: tid,
            start: hdr.ts_ns - 200,
            comm: parent.comm,
        };
        self.push(&ForkEvent {
            hdr,
            parent: parent.info(),
            child: child.info(),
            real_parent: parent.id(),
            flags: 0,
            _pad: 0,
        });
        child
    }

    /// `sched_process_exec`: `task` runs `/bin/true --flag ARG`.
    fn exec(&mut self, task: &mut Task) {
        let hdr = self.hdr(kind::EXEC);
        task.comm = comm("true");
        let mut filename = [0u8; 128];
        filename[..9].copy_from_slice(b"/bin/true");
        let argv = b"/bin/true\0--flag\0some-argument\0";
        let mut args = [0u8; 192];
        args[..argv.len()].copy_from_slice(argv);
        self.push(&ExecEvent {
            hdr,
            task: task.info(),
            old_tid: task.tid,
            args_len: argv.len() as u32,
            args_total: argv.len() as u32,
            exec_id: 1,
            filename,
            args,
        });
    }

    /// `sched_process_exit` of a process with no children, its only thread.
    fn exit(&mut self, task: &Task, parent: &Task) {
        let hdr = self.hdr(kind::EXIT);
        self.push(&ExitEvent {
            hdr,
            task: task.info(),
            parent: parent.id(),
            exit_code: 0,
            group_dead: 1,
            children_followed: 0,
            children_truncated: 0,
            exec_id: 0,
            flags: 0,
            pids: task.pids(),
        });
    }

    /// The final `sched_switch`: the process is a zombie of `parent`.
    fn dead(&mut self, task: &Task, parent: &Task) {
        let hdr = self.hdr(kind::DEAD);
        self.push(&DeadEvent {
            hdr,
            task: task.info(),
            last: task.id(),
            parent: parent.info(),
            exit_state: exit_state::EXIT_ZOMBIE,
            exit_code: 0,
            flags: 0,
            _pad: 0,
            pids: task.pids(),
        });
    }

    /// `sys_exit_wait4` in `parent`, returning `task`'s pid.
    fn wait(&mut self, parent: &Task, task: &Task) {
        let hdr = self.hdr(kind::WAIT);
        self.push(&WaitEvent {
            hdr,
            waiter: parent.info(),
            syscall: wait_syscall::WAIT4,
            pid: task.tgid,
            status: 0,
            code: 0,
        });
    }

    /// `sched_process_free`.
    fn free(&mut self, task: &Task) {
        let hdr = self.hdr(kind::FREE);
        self.push(&FreeEvent {
            hdr,
            task: task.id(),
            exec_id: 0,
            flags: 0,
        });
    }

    /// One child's whole life: fork, (exec,) exit, zombie, wait, free.
    fn life(&mut self, parent: &Task, tid: u32, exec: bool) {
        let mut child = self.fork(parent, tid);
        if exec {
            self.exec(&mut child);
        }
        self.exit(&child, parent);
        self.dead(&child, parent);
        self.wait(parent, &child);
        self.free(&child);
    }
}

// ----- the measurement -----

/// Peak resident memory of this process (`VmHWM`), KiB.
fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets `VmHWM` to the current RSS (`clear_refs` 5), so each stream's peak is its own.
fn reset_peak_rss() {
    if let Ok(mut f) = OpenOptions::new().write(true).open("/proc/self/clear_refs") {
        let _ = f.write_all(b"5");
    }
}

/// Runs on one CPU, the one it is on now.
fn pin_to_one_cpu() {
    // SAFETY: sched_getcpu/sched_setaffinity on this thread with a set we own.
    unsafe {
        let cpu = libc::sched_getcpu().max(0);
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

#[derive(Default, Clone)]
struct Figures {
    records: u64,
    events: u64,
    model: Duration,
    json: Duration,
    housekeeping: Duration,
    /// Zombies `due_for_check` handed out (each a `/proc` read in a real session).
    checks: u64,
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.records += o.records;
        self.events += o.events;
        self.model += o.model;
        self.json += o.json;
        self.housekeeping += o.housekeeping;
        self.checks += o.checks;
    }
}

/// The model and writer under test, fed the way `record` feeds them.
struct Pipeline {
    model: Model,
    writer: JsonlWriter,
    events: Vec<Event>,
    next_housekeeping: u64,
    fig: Figures,
    /// `--by-kind`: (records, time in decode + apply) by record kind, each record timed alone.
    by_kind: Option<Vec<(u64, Duration)>>,
}

impl Pipeline {
    fn new() -> Self {
        let out = Output::open(Some(std::path::Path::new("/dev/null"))).expect("/dev/null");
        Self {
            model: Model::new(Scope::All),
            writer: JsonlWriter::new(out),
            events: Vec::with_capacity(BATCH * 2),
            next_housekeeping: HOUSEKEEPING_EVERY.as_nanos() as u64,
            fig: Figures::default(),
            by_kind: BY_KIND
                .load(std::sync::atomic::Ordering::Relaxed)
                .then(|| vec![(0, Duration::ZERO); kind::COUNT as usize]),
        }
    }

    /// Applies `recs` a batch at a time, writing each batch's events, with housekeeping when
    /// the records' clock says it is due; then clears `recs`.
    fn run(&mut self, recs: &mut Records) {
        let all: Vec<&[u8]> = recs.iter().collect();
        for batch in all.chunks(BATCH) {
            let t0 = Instant::now();
            match &mut self.by_kind {
                None => {
                    for bytes in batch {
                        let raw = decode(bytes).expect("a well-formed record");
                        self.model.apply(&raw, &mut self.events);
                    }
                }
                Some(by_kind) => {
                    for bytes in batch {
                        let t = Instant::now();
                        let raw = decode(bytes).expect("a well-formed record");
                        self.model.apply(&raw, &mut self.events);
                        let slot = &mut by_kind[bytes[0] as usize];
                        slot.0 += 1;
                        slot.1 += t.elapsed();
                    }
                }
            }
            let t1 = Instant::now();
            let n = self.events.len() as u64;
            for ev in self.events.drain(..) {
                self.writer.event(&ev).expect("writing to /dev/null");
            }
            let t2 = Instant::now();
            self.fig.records += batch.len() as u64;
            self.fig.events += n;
            self.fig.model += t1 - t0;
            self.fig.json += t2 - t1;
            // The header's `ts_ns` (offset 8) of the batch's last record.
            let last = batch.last().expect("chunks are not empty");
            let ts = u64::from_ne_bytes(last[8..16].try_into().expect("8 bytes"));
            if ts >= self.next_housekeeping {
                self.housekeeping(ts);
            }
        }
        recs.clear();
    }

    /// What the session does every 500 ms, minus the `/proc` reads.
    fn housekeeping(&mut self, now: u64) {
        let t0 = Instant::now();
        self.model.settle(now, &mut self.events);
        let due = self.model.due_for_check(now, 2000);
        self.fig.checks += due.len() as u64;
        self.fig.housekeeping += t0.elapsed();
        self.next_housekeeping = now + HOUSEKEEPING_EVERY.as_nanos() as u64;
        for ev in self.events.drain(..) {
            self.writer.event(&ev).expect("writing to /dev/null");
        }
    }

    /// A row of the table: the figures since the last row, and the peak RSS so far. With
    /// `--by-kind`, the cost of each record kind goes to standard error.
    fn row(&mut self, name: &str, note: String) -> Row {
        if let Some(by_kind) = &mut self.by_kind {
            let costs: Vec<String> = by_kind
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| *n > 0)
                .map(|(k, (n, d))| {
                    format!(
                        "{} {:.0} ns",
                        reaper_trace::decode::kind_name(k as u32),
                        d.as_nanos() as f64 / *n as f64
                    )
                })
                .collect();
            eprintln!("{name}: decode + apply per record: {}", costs.join(", "));
            by_kind.fill((0, Duration::ZERO));
        }
        Row {
            name: name.to_string(),
            fig: std::mem::take(&mut self.fig),
            peak_rss_kib: peak_rss_kib(),
            note,
        }
    }
}

/// `--by-kind`: time every record on its own and print the cost by record kind.
static BY_KIND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Chunks of records built between timed runs: small enough to stay in cache-sized memory,
/// large enough that building them is not interleaved with every batch.
const CHUNK: usize = 16 * BATCH;

/// Workers forking and reaping children: about `n` records, tids from `tids`.
fn churn(
    p: &mut Pipeline,
    recs: &mut Records,
    workers: &[Task],
    n: u64,
    exec: bool,
    tids: &mut TidAlloc,
) {
    let mut done = 0;
    let mut w = 0;
    while done < n {
        let before = recs.len();
        recs.life(&workers[w % workers.len()], tids.next(), exec);
        w += 1;
        done += (recs.len() - before) as u64;
        if recs.len() >= CHUNK {
            p.run(recs);
        }
    }
    p.run(recs);
}

/// Pids as the kernel hands them out: increasing, wrapping at `hi` (`pid_max`).
struct TidAlloc {
    next: u32,
    lo: u32,
    hi: u32,
}

impl TidAlloc {
    fn new(lo: u32, hi: u32) -> Self {
        Self { next: lo, lo, hi }
    }

    fn next(&mut self) -> u32 {
        let t = self.next;
        self.next = if t + 1 >= self.hi { self.lo } else { t + 1 };
        t
    }
}

fn workers(recs: &mut Records, first_tid: u32) -> Vec<Task> {
    (0..2)
        .map(|i| Task {
            tid: first_tid + i,
            tgid: first_tid + i,
            start: recs.now + 1,
            comm: comm("stress-ng-fork"),
        })
        .collect()
}

struct Row {
    name: String,
    fig: Figures,
    peak_rss_kib: u64,
    note: String,
}

impl Row {
    /// One tab-separated line, from a stream's process to the one printing the table.
    fn to_line(&self) -> String {
        let f = &self.fig;
        format!(
            "ROW\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.name,
            f.records,
            f.events,
            f.model.as_nanos(),
            f.json.as_nanos(),
            f.housekeeping.as_nanos(),
            f.checks,
            self.peak_rss_kib,
            self.note
        )
    }

    fn from_line(line: &str) -> Option<Row> {
        let f: Vec<&str> = line.strip_prefix("ROW\t")?.splitn(9, '\t').collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        Some(Row {
            name: f.first()?.to_string(),
            fig: Figures {
                records: n(1)?,
                events: n(2)?,
                model: Duration::from_nanos(n(3)?),
                json: Duration::from_nanos(n(4)?),
                housekeeping: Duration::from_nanos(n(5)?),
                checks: n(6)?,
            },
            peak_rss_kib: n(7)?,
            note: f.get(8)?.to_string(),
        })
    }

    fn total(&self) -> Duration {
        self.fig.model + self.fig.json + self.fig.housekeeping
    }
}

fn stream_churn(records: u64, exec: bool) -> Vec<Row> {
    reset_peak_rss();
    let mut p = Pipeline::new();
    let mut recs = Records::default();
    let ws = workers(&mut recs, 1000);
    let mut tids = TidAlloc::new(2000, 32768);
    churn(&mut p, &mut recs, &ws, records, exec, &mut tids);
    let note = format!("model holds {} tasks at the end", p.model.len());
    vec![p.row(if exec { "churn+exec" } else { "churn" }, note)]
}

fn stream_zombies(records: u64) -> Vec<Row> {
    reset_peak_rss();
    let rss0 = rss_kib();
    let mut p = Pipeline::new();
    let mut recs = Records::default();
    let parent = Task {
        tid: 500,
        tgid: 500,
        start: 1,
        comm: comm("stress-ng-zombi"),
    };
    let mut rows = Vec::new();

    // 100,000 zombies of one parent that does not wait (tids above the churn's range; a
    // machine with pid_max 4194304 can have that many).
    let zombie_tid = |i: u32| 100_000 + i;
    let mut zombies = Vec::with_capacity(ZOMBIES as usize);
    for i in 0..ZOMBIES {
        let z = recs.fork(&parent, zombie_tid(i));
        recs.exit(&z, &parent);
        recs.dead(&z, &parent);
        zombies.push(z);
        if recs.len() >= CHUNK {
            p.run(&mut recs);
        }
    }
    p.run(&mut recs);
    assert_eq!(
        p.model.zombie_count(),
        ZOMBIES as usize,
        "every zombie is held"
    );
    let rss_held = rss_kib();
    let note = format!(
        "RSS {} MiB -> {} MiB with 100k zombies held (~{} bytes each)",
        rss0 / 1024,
        rss_held / 1024,
        (rss_held.saturating_sub(rss0)) * 1024 / ZOMBIES as u64
    );
    rows.push(p.row("zombies: make 100k", note));

    // Churn beside them: housekeeping now finds 100k zombies to check, 2000 per round.
    let ws = workers(&mut recs, 1000);
    let mut tids = TidAlloc::new(2000, 32768);
    churn(&mut p, &mut recs, &ws, records, false, &mut tids);
    rows.push(p.row("zombies: churn beside 100k", String::new()));

    // The parent reaps them all, oldest first.
    for z in &zombies {
        recs.wait(&parent, z);
        recs.free(z);
        if recs.len() >= CHUNK {
            p.run(&mut recs);
        }
    }
    p.run(&mut recs);
    assert_eq!(p.model.zombie_count(), 0, "every zombie was reaped");
    let note = format!("model holds {} tasks at the end", p.model.len());
    rows.push(p.row("zombies: reap 100k", note));
    rows
}

fn stream_reuse(records: u64) -> Vec<Row> {
    reset_peak_rss();
    let mut p = Pipeline::new();
    let mut recs = Records::default();
    let ws = workers(&mut recs, 1000);
    let mut tids = TidAlloc::new(3000, 3000 + REUSE_TIDS);
    // The previous holder of each tid, whose free record is still to come.
    let mut unfreed: Vec<Option<Task>> = vec![None; REUSE_TIDS as usize];
    let mut done = 0u64;
    let mut w = 0;
    while done < records {
        let before = recs.len();
        let parent = ws[w % ws.len()];
        w += 1;
        let tid = tids.next();
        let child = recs.fork(&parent, tid);
        // The task this tid named before is freed only now, after its pid was taken again.
        if let Some(old) = unfreed[(tid - 3000) as usize].take() {
            recs.free(&old);
        }
        recs.exit(&child, &parent);
        recs.dead(&child, &parent);
        recs.wait(&parent, &child);
        unfreed[(tid - 3000) as usize] = Some(child);
        done += (recs.len() - before) as u64;
        if recs.len() >= CHUNK {
            p.run(&mut recs);
        }
    }
    p.run(&mut recs);
    let note = format!("model holds {} tasks at the end", p.model.len());
    vec![p.row(&format!("reuse ({REUSE_TIDS} tids, late free)"), note)]
}

/// Average length of a JSON line for each stream's typical events, measured once.
fn bytes_per_event(records: u64) -> f64 {
    let mut model = Model::new(Scope::All);
    let mut recs = Records::default();
    let ws = workers(&mut recs, 1000);
    for i in 0..(records / 5).clamp(1, 10_000) as u32 {
        recs.life(&ws[(i % 2) as usize], 2000 + i, false);
    }
    let mut events = Vec::new();
    for r in recs.iter() {
        model.apply(&decode(r).unwrap(), &mut events);
    }
    let bytes: usize = events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap().len() + 1)
        .sum();
    bytes as f64 / events.len().max(1) as f64
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn human(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else {
        format!("{:.0} k", r / 1e3)
    }
}

/// Runs one stream `repeat` times in this process and prints its rows (the run whose total
/// time is the median, for each row).
fn child(stream: &str, records: u64, repeat: usize) {
    pin_to_one_cpu();
    let mut runs: Vec<Vec<Row>> = Vec::new();
    for _ in 0..repeat.max(1) {
        runs.push(match stream {
            "churn" => stream_churn(records, false),
            "churn+exec" => stream_churn(records, true),
            "zombies" => stream_zombies(records),
            "reuse" => stream_reuse(records),
            other => panic!("unknown stream {other}"),
        });
    }
    for i in 0..runs[0].len() {
        let mut of_row: Vec<&Row> = runs.iter().map(|r| &r[i]).collect();
        of_row.sort_by_key(|r| r.total());
        println!("{}", of_row[of_row.len() / 2].to_line());
    }
}

/// What one `/proc/PID/stat` check of housekeeping costs (`procfs::still_zombie`).
fn proc_check_cost() -> Duration {
    let me = std::process::id();
    let n = 2000;
    let t0 = Instant::now();
    for _ in 0..n {
        std::hint::black_box(reaper_trace::procfs::still_zombie(me, 0));
    }
    t0.elapsed() / n
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let records: u64 = value("--records")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let repeat: usize = value("--repeat").and_then(|v| v.parse().ok()).unwrap_or(3);
    let by_kind = args.iter().any(|a| a == "--by-kind");
    BY_KIND.store(by_kind, std::sync::atomic::Ordering::Relaxed);
    if let Some(stream) = value("--child") {
        child(&stream, records, repeat);
        return;
    }
    let only = value("--only");
    let debug = cfg!(debug_assertions);
    println!(
        "reaper-trace userspace throughput: decode + Model::apply, then JsonlWriter (to /dev/null)"
    );
    println!(
        "one thread pinned to one CPU, one process per stream; {records} records per churn phase; \
         median of {repeat} runs; batches of {BATCH}{}",
        if debug {
            "; DEBUG BUILD (figures are not meaningful)"
        } else {
            ""
        }
    );
    if by_kind {
        println!(
            "--by-kind: every record is timed on its own (costs by kind on standard error); the \
             timers slow the figures below"
        );
    }
    println!(
        "targets: >= {} records/s through the model, >= {} events/s written as JSON (not asserted)",
        human(TARGET_RECORDS_PER_SEC),
        human(TARGET_EVENTS_PER_SEC)
    );
    let bpe = bytes_per_event(records);
    println!("JSON: {bpe:.0} bytes per event on average (fork, exit, zombie, reap)");
    println!(
        "a zombie check against /proc (housekeeping, not in the figures below) costs {:.1} µs",
        proc_check_cost().as_secs_f64() * 1e6
    );
    println!();

    let exe = std::env::current_exe().expect("own path");
    let mut rows = Vec::new();
    for stream in ["churn", "churn+exec", "zombies", "reuse"] {
        if only.as_deref().is_some_and(|o| o != stream) {
            continue;
        }
        let out = std::process::Command::new(&exe)
            .args(["--child", stream, "--records"])
            .arg(records.to_string())
            .arg("--repeat")
            .arg(repeat.to_string())
            .args(by_kind.then_some("--by-kind"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("the bench runs itself");
        assert!(out.status.success(), "stream {stream}: {}", out.status);
        rows.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(Row::from_line),
        );
    }

    println!(
        "{:<32} {:>8} {:>8} {:>10} {:>6} {:>10} {:>6} {:>10} {:>9}",
        "stream", "records", "events", "records/s", "", "events/s", "", "end to end", "peak RSS"
    );
    let mut total = Figures::default();
    for row in &rows {
        let f = &row.fig;
        total.add(f);
        let rps = rate(f.records, f.model);
        let eps = rate(f.events, f.json);
        let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
        println!(
            "{:<32} {:>8} {:>8} {:>10} {:>6} {:>10} {:>6} {:>10} {:>5} MiB",
            row.name,
            f.records,
            f.events,
            human(rps),
            verdict(rps >= TARGET_RECORDS_PER_SEC),
            human(eps),
            verdict(eps >= TARGET_EVENTS_PER_SEC),
            human(rate(f.records, row.total())),
            row.peak_rss_kib / 1024,
        );
        let mut notes: Vec<String> = (!row.note.is_empty())
            .then(|| row.note.clone())
            .into_iter()
            .collect();
        if f.checks > 0 {
            notes.push(format!(
                "housekeeping {:.1} ms, {} zombies due for a /proc check",
                f.housekeeping.as_secs_f64() * 1e3,
                f.checks
            ));
        }
        println!("{:<32} {}", "", notes.join("; "));
    }
    println!();
    println!(
        "all streams: {} records/s through the model, {} events/s as JSON ({:.0} MB/s), {} records/s end to end",
        human(rate(total.records, total.model)),
        human(rate(total.events, total.json)),
        rate(total.events, total.json) * bpe / 1e6,
        human(rate(
            total.records,
            total.model + total.json + total.housekeeping
        )),
    );
}
