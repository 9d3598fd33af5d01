//! Loads the kernel programs, attaches them, and hands out their records. Dropping the
//! `Tracer` detaches every program (the links are owned by the loaded object).

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray},
    programs::{
        BtfTracePoint, Iter, TracePoint, tp_btf::BtfTracePointLink, trace_point::TracePointLink,
    },
};
use aya_log::EbpfLogger;
use reaper_trace_common::{LOST_SLOTS, OFFSETS_GLOBAL, Offsets, kind, map, program, standby};
use std::sync::{Arc, Mutex};
use tokio::io::{Interest, unix::AsyncFd};

use crate::btf_offsets::{Features, Kernel};
use crate::ring::RingReader;

/// Where a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A BTF tracepoint (`tp_btf/NAME`): typed `task_struct *` arguments, no tracefs needed.
    Btf(&'static str),
    /// A classic tracepoint of the `syscalls` category (needs tracefs).
    Syscall(&'static str),
    /// A BPF iterator (`iter/NAME`): run on demand, never attached to an event.
    Iter(&'static str),
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hook::Btf(name) => write!(f, "tp_btf/{name}"),
            Hook::Syscall(name) => write!(f, "syscalls/{name}"),
            Hook::Iter(name) => write!(f, "iter/{name}"),
        }
    }
}

/// A program's part in its hook (see `reaper_trace_common::standby`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The hook's one program.
    Only,
    /// The program of hook slot `N` that does the work, unless the kernel skips it.
    Primary(u32),
    /// The copy that does it when the kernel skipped the primary one (it was already running
    /// on this CPU, preempted).
    Standby(u32),
}

/// One program of the object, and the hook it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramSpec {
    pub name: &'static str,
    pub hook: Hook,
    pub role: Role,
    /// The lost-counter slot (a record kind, or a `lost_slot`) charged when the kernel skips
    /// this program (its `recursion_misses`).
    pub skipped_as: u32,
}

/// The programs to load on a kernel with `features`, in load order: the BTF tracepoints, then
/// the syscall ones, exit before enter (so no enter record is ever left waiting for an exit
/// program that is not attached yet). Where the kernel lacks `bpf_loop` (before 5.17) or
/// `bpf_get_current_task_btf` (before 5.11), the variants built without it are chosen.
pub fn programs(features: Features) -> Vec<ProgramSpec> {
    let pick = |has: bool, with: &'static str, without: &'static str| {
        if has { with } else { without }
    };
    let btf = |name, hook, role, skipped_as| ProgramSpec {
        name,
        hook: Hook::Btf(hook),
        role,
        skipped_as,
    };
    let syscall = |name, hook, slot, skipped_as| ProgramSpec {
        name,
        hook: Hook::Syscall(hook),
        role: Role::Primary(slot),
        skipped_as,
    };
    let typed = features.current_task_btf;
    // A hook's primary program, then its standby copies where the kernel needs them.
    let copies = if features.hook_standbys.attached() {
        standby::COPIES as usize
    } else {
        1
    };
    let with_standbys = |names: program::Copies, hook, slot, kind| {
        names
            .into_iter()
            .take(copies)
            .enumerate()
            .map(move |(copy, name)| {
                let role = if copy == 0 {
                    Role::Primary(slot)
                } else {
                    Role::Standby(slot)
                };
                btf(name, hook, role, kind)
            })
    };
    let mut specs: Vec<ProgramSpec> = with_standbys(
        program::FORK,
        "sched_process_fork",
        standby::FORK,
        kind::FORK,
    )
    .chain(with_standbys(
        program::EXEC,
        "sched_process_exec",
        standby::EXEC,
        kind::EXEC,
    ))
    .collect();
    // Kernels without `bpf_loop` (before 5.17) run tracepoint programs with preemption
    // disabled: the bounded exit program has no standby copies (they would only multiply its
    // long verification there).
    if features.bpf_loop {
        specs.extend(with_standbys(
            program::EXIT,
            "sched_process_exit",
            standby::EXIT,
            kind::EXIT,
        ));
    } else {
        specs.push(btf(
            program::EXIT_BOUNDED,
            "sched_process_exit",
            Role::Only,
            kind::EXIT,
        ));
    }
    specs.extend([
        // Runs with preemption disabled (inside the scheduler) on every kernel.
        btf(
            pick(features.bpf_loop, program::SWITCH, program::SWITCH_BOUNDED),
            "sched_switch",
            Role::Only,
            kind::REPARENT,
        ),
    ]);
    specs.extend(with_standbys(
        program::FREE,
        "sched_process_free",
        standby::FREE,
        kind::FREE,
    ));
    // A skipped completion may have been a reap by io_uring: counted as a lost wait record.
    if features.uring_waitid {
        specs.extend(with_standbys(
            program::URING,
            "io_uring_complete",
            standby::URING,
            kind::WAIT,
        ));
    }
    // The syscalls' programs: each is the primary of its call's slot (an enter program's
    // skip loses its exit's record too), covered by the `sys_exit` standby where attached.
    specs.extend([
        syscall(
            pick(typed, program::EXIT_WAIT4, program::EXIT_WAIT4_PLAIN),
            "sys_exit_wait4",
            standby::WAIT4,
            kind::WAIT,
        ),
        syscall(
            pick(typed, program::EXIT_WAITID, program::EXIT_WAITID_PLAIN),
            "sys_exit_waitid",
            standby::WAITID,
            kind::WAIT,
        ),
        syscall(
            pick(typed, program::EXIT_PRCTL, program::EXIT_PRCTL_PLAIN),
            "sys_exit_prctl",
            standby::PRCTL,
            kind::SUBREAPER,
        ),
        syscall(
            program::ENTER_WAITID,
            "sys_enter_waitid",
            standby::WAITID,
            kind::WAIT,
        ),
        syscall(
            program::ENTER_PRCTL,
            "sys_enter_prctl",
            standby::PRCTL,
            kind::SUBREAPER,
        ),
    ]);
    if features.syscall_standby.attached() {
        for name in program::SYSCALL_STANDBY {
            specs.push(btf(
                name,
                "sys_exit",
                Role::Standby(standby::WAIT4),
                kind::WAIT,
            ));
        }
    }
    specs
}

/// The hooks whose standby copies `features` attaches, one bit per `standby` slot: where the
/// primary program notes the calls it handled (`Offsets::standby_hooks`).
pub fn standby_hooks(features: Features) -> u32 {
    let bits = |slots: &[u32]| slots.iter().fold(0, |mask, slot| mask | 1 << slot);
    programs(features)
        .iter()
        .map(|spec| match spec.role {
            // The syscalls' standbys serve the three calls' slots.
            Role::Standby(slot) if SYSCALL_SLOTS.contains(&slot) => bits(&SYSCALL_SLOTS),
            Role::Standby(slot) => bits(&[slot]),
            _ => 0,
        })
        .fold(0, |mask, bits| mask | bits)
}

/// The order to attach `specs` in: the syscall programs first (exit before enter), then the
/// BTF ones hook by hook in reverse (the programs of a task's last moments before those of its
/// first ones). A hook's copies keep their order: the kernel calls a tracepoint's programs in
/// the order they were attached, and a standby copy must run after the copies before it.
fn attach_order(specs: &[ProgramSpec]) -> Vec<&ProgramSpec> {
    let (btf, syscall): (Vec<&ProgramSpec>, Vec<&ProgramSpec>) =
        specs.iter().partition(|s| matches!(s.hook, Hook::Btf(_)));
    let mut hooks: Vec<Hook> = Vec::new();
    for spec in &btf {
        if !hooks.contains(&spec.hook) {
            hooks.push(spec.hook);
        }
    }
    let by_hook = hooks
        .into_iter()
        .rev()
        .flat_map(|hook| btf.iter().copied().filter(move |s| s.hook == hook));
    syscall.into_iter().chain(by_hook).collect()
}

/// How many times the kernel skipped a program because it was already running on the same
/// CPU (`recursion_misses` in its fdinfo, since 5.12; 0 where the kernel does not say).
fn recursion_misses(fd: std::os::fd::RawFd) -> u64 {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .ok()
        .and_then(|text| parse_recursion_misses(&text))
        .unwrap_or(0)
}

fn parse_recursion_misses(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("recursion_misses:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The slots the syscalls' one `sys_exit` standby serves.
const SYSCALL_SLOTS: [u32; 3] = [standby::WAIT4, standby::WAITID, standby::PRCTL];

/// Calls of a hook the kernel skipped and nothing handled: record kinds lost, by `LOST` slot,
/// counted so that a loss is never hidden. A call is lost only if the kernel skipped every
/// program of its hook: each of those counted it among its skips, so the calls lost are at
/// most the fewest skips of any one of them. Without standby copies that is the primary's
/// skips, every one a loss. With them it is an upper bound, exact when only one program was
/// skipped at a time: the copies cannot count what they covered exactly (their per-CPU ring of
/// tokens can miss one, and a copy then covers a call that was not skipped), and a count of
/// covers a copy inflated would hide a loss. A slot's primaries (a syscall's enter and exit
/// programs share one) add up; the `sys_exit` standbys serve the three syscall slots at once,
/// so those slots' losses together are at most the fewest skips of one of them (and each at
/// most its primaries' skips, which include calls that are no record: a prctl that names a
/// thread, a wait4 that fails).
fn lost_calls(skipped: &[(ProgramSpec, u64)]) -> std::collections::BTreeMap<u32, u64> {
    let mut lost = std::collections::BTreeMap::new();
    let mut by_slot = std::collections::BTreeMap::<(u32, u32), u64>::new();
    // The fewest skips of one standby, per slot (the syscalls' standbys under WAIT4).
    let mut standby_min = std::collections::BTreeMap::<u32, u64>::new();
    for (spec, misses) in skipped {
        match spec.role {
            Role::Only => *lost.entry(spec.skipped_as).or_default() += *misses,
            Role::Primary(slot) => *by_slot.entry((slot, spec.skipped_as)).or_default() += *misses,
            Role::Standby(slot) => {
                let slot = if SYSCALL_SLOTS.contains(&slot) {
                    standby::WAIT4
                } else {
                    slot
                };
                standby_min
                    .entry(slot)
                    .and_modify(|m| *m = (*m).min(*misses))
                    .or_insert(*misses);
            }
        }
    }
    let mut syscall_budget = standby_min
        .get(&standby::WAIT4)
        .copied()
        .unwrap_or(u64::MAX);
    for ((slot, kind), misses) in by_slot {
        let n = if SYSCALL_SLOTS.contains(&slot) {
            let n = misses.min(syscall_budget);
            syscall_budget -= n;
            n
        } else {
            misses.min(standby_min.get(&slot).copied().unwrap_or(u64::MAX))
        };
        *lost.entry(kind).or_default() += n;
    }
    lost
}

/// `reaper-trace tree`'s task iterator: not part of the tracer, loaded on its own when a
/// snapshot is asked for (and verified by `check` with the others).
pub const TREE_PROGRAM: ProgramSpec = ProgramSpec {
    name: program::TREE_TASK,
    hook: Hook::Iter("task"),
    role: Role::Only,
    // Never attached to a hook: nothing it could skip.
    skipped_as: 0,
};

pub const DEFAULT_RING_BYTES: u32 = 4 << 20;

/// What to do when the ring buffer can't be had: it is kernel memory (charged to the memory
/// cgroup), mapped once into this process (`ring`): its size counts in the address space and
/// the resident memory.
const RING_ADVICE: &str = "choose a smaller --ring-mib, or raise the address-space limit (ulimit -v) or the memory available";

/// What the kernel programs log (aya-log: rare conditions, e.g. a task with more children
/// than are followed), kept for the caller to show where it fits.
#[derive(Clone, Default)]
pub struct KernelMessages(Arc<Mutex<Vec<String>>>);

impl log::Log for KernelMessages {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        if let Ok(mut v) = self.0.lock() {
            v.push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

pub struct Tracer {
    ring: AsyncFd<RingReader>,
    lost: PerCpuArray<MapData, u64>,
    lost_seen: Vec<u64>,
    /// The attached programs with their descriptors, whose skipped calls are read from
    /// fdinfo.
    attached: Vec<(ProgramSpec, std::os::fd::RawFd)>,
    /// Skipped calls already reported, by `LOST` slot.
    skipped_seen: std::collections::BTreeMap<u32, u64>,
    /// The processes of a traced tree (tree scope only): tgid -> leader start time.
    tracked: BpfHashMap<MapData, u32, u64>,
    logger: Option<EbpfLogger<KernelMessages>>,
    messages: KernelMessages,
    /// The attached programs' links, until [`Tracer::detach`] (or the drop) detaches them.
    links: Vec<Link>,
    /// Whether links may be closed from several threads at once (see [`detach_links`]).
    parallel_detach: bool,
    /// Detaching started by [`Tracer::detach`]; waited for in `drop`.
    detaching: Option<Detaching>,
    // Keeps the programs loaded (and their descriptors open for `attached`).
    _ebpf: Ebpf,
}

/// aya's load errors carry the whole verifier log. Its reason is near the end: the last line
/// that is not the statistics (`processed N insns ...`) nor a notice, followed by the
/// statistics when there are any. Notices at the start (e.g. "func#0 @0", or a note about
/// BTF) are no reason.
pub fn verifier_reason(err: impl std::fmt::Display) -> String {
    let text = err.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let (head, log) = match lines.split_first() {
        Some((head, log)) => (*head, log),
        None => return String::new(),
    };
    // The first line is aya's own ("the BPF_PROG_LOAD syscall returned ..."): keep what it
    // says before the log.
    let head = head
        .split_once(". Verifier output:")
        .map_or(head, |(h, _)| h);
    let is_stats = |l: &str| l.starts_with("processed ") && l.contains(" insns");
    let is_notice = |l: &str| {
        l.starts_with("func#")
            || l.starts_with("verification time")
            || l.starts_with("stack depth")
            || l.starts_with("mark_precise")
            || l.starts_with("last_idx")
            || l.starts_with("regs=")
            || l.starts_with(';')
            || l.starts_with("from ")
            || l.starts_with("Validating ")
            || l.starts_with("Func#")
            || l.chars().next().is_some_and(|c| c.is_ascii_digit())
    };
    let stats = log.iter().rev().find(|l| is_stats(l));
    let reason = log.iter().rev().find(|l| !is_stats(l) && !is_notice(l));
    match (reason, stats) {
        (Some(r), Some(st)) => format!("{head}: {r} ({st})"),
        (Some(r), None) => format!("{head}: {r}"),
        (None, Some(st)) => format!("{head} ({st})"),
        (None, None) => head.to_string(),
    }
}

/// Whether links may be closed from several threads at once on kernel `release`: from 6.12
/// on. Before it, closing them in parallel can leave every detaching thread in a soft lockup
/// for minutes, so they are closed one after another. A release that does not parse is taken
/// as old.
pub fn detach_in_parallel(release: &str) -> bool {
    kernel_version(release).is_some_and(|v| v >= (6, 12))
}

/// `(major, minor)` of a kernel release such as `6.1.0-50-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether the kernel runs tracepoint programs preemptibly, so that it skips a program while
/// its earlier run (or, for the classic syscall programs, another one) is preempted on the
/// same CPU: 7.0 on (seen on every 7.x in the matrix, never before, where every tracepoint
/// runs its programs with preemption disabled, and none of the hooks fires in an interrupt
/// that could nest in its own program). A release that does not parse is taken as old.
pub fn tracepoints_preemptible(release: &str) -> bool {
    kernel_version(release).is_some_and(|v| v >= (7, 0))
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The error for a program the kernel refused: the program, the kernel, the verifier's reason.
///
/// For developers: `REAPER_TRACE_VERIFIER_LOG=DIR` saves each refused program's whole
/// verifier log as `DIR/PROGRAM.log`.
fn refused(spec: &ProgramSpec, err: impl std::fmt::Display) -> anyhow::Error {
    if let Some(dir) = std::env::var_os("REAPER_TRACE_VERIFIER_LOG") {
        let path = std::path::Path::new(&dir).join(format!("{}.log", spec.name));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(path, err.to_string());
    }
    anyhow!(
        "the kernel (Linux {}) refused program {} for {}: {}",
        kernel_release(),
        spec.name,
        spec.hook,
        verifier_reason(err)
    )
}

fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/reaper-trace"))
}

/// Verifies one program of the object.
fn load(ebpf: &mut Ebpf, spec: &ProgramSpec, btf: &Btf) -> Result<()> {
    let prog = ebpf
        .program_mut(spec.name)
        .ok_or_else(|| anyhow!("program {} missing from the object", spec.name))?;
    match spec.hook {
        Hook::Btf(hook) => {
            let prog: &mut BtfTracePoint = prog.try_into()?;
            prog.load(hook, btf).map_err(|e| refused(spec, e))
        }
        Hook::Syscall(_) => {
            let prog: &mut TracePoint = prog.try_into()?;
            prog.load().map_err(|e| refused(spec, e))
        }
        Hook::Iter(kind) => {
            let prog: &mut Iter = prog.try_into()?;
            prog.load(kind, btf).map_err(|e| refused(spec, e))
        }
    }
}

/// Attaches one loaded program.
fn attach(ebpf: &mut Ebpf, spec: &ProgramSpec) -> Result<()> {
    let prog = ebpf.program_mut(spec.name).expect("loaded");
    match spec.hook {
        Hook::Btf(_) => {
            let prog: &mut BtfTracePoint = prog.try_into()?;
            prog.attach().map(drop)
        }
        Hook::Syscall(name) => {
            let prog: &mut TracePoint = prog.try_into()?;
            prog.attach("syscalls", name).map(drop)
        }
        Hook::Iter(_) => {
            let prog: &mut Iter = prog.try_into()?;
            prog.attach().map(drop)
        }
    }
    .map_err(|e| anyhow!("attaching {} to {} failed: {e}", spec.name, spec.hook))
}

/// A program's attachment, owned apart from the program: dropping it detaches the program
/// (the program itself stays loaded, its descriptor open, until the [`Tracer`] goes).
enum Link {
    Btf(#[allow(dead_code, reason = "held for its Drop")] BtfTracePointLink),
    Syscall(#[allow(dead_code, reason = "held for its Drop")] TracePointLink),
}

/// Attaches one loaded program and takes its link out of the program.
fn attach_owned(ebpf: &mut Ebpf, spec: &ProgramSpec) -> Result<Link> {
    let prog = ebpf.program_mut(spec.name).expect("loaded");
    match spec.hook {
        Hook::Btf(_) => {
            let prog: &mut BtfTracePoint = prog.try_into()?;
            prog.attach()
                .and_then(|id| prog.take_link(id))
                .map(Link::Btf)
        }
        Hook::Syscall(name) => {
            let prog: &mut TracePoint = prog.try_into()?;
            prog.attach("syscalls", name)
                .and_then(|id| prog.take_link(id))
                .map(Link::Syscall)
        }
        Hook::Iter(_) => bail!("{} is an iterator: it is read, not attached", spec.name),
    }
    .map_err(|e| anyhow!("attaching {} to {} failed: {e}", spec.name, spec.hook))
}

/// Detaches `links` (dropping each detaches it). Closing a link waits for the kernel: RCU
/// grace periods, tens of milliseconds each, up to a second on a loaded machine with tens of
/// thousands of tasks (the syscall tracepoints' wait for a tasks-trace grace period, and
/// the kernel takes them one after another under its `event_mutex`). So they are all closed
/// at once, each on its own thread: the waits that can overlap do. Where no thread can be
/// started (the machine is out of pids), one after another.
///
/// Not on kernels before 6.12 (`parallel` false, see [`detach_in_parallel`]): there they are
/// closed one after another.
fn detach_links(links: Vec<Link>, parallel: bool) {
    if !parallel {
        links.into_iter().for_each(drop);
        return;
    }
    std::thread::scope(|scope| {
        for link in links {
            // A spawn that fails drops its closure: that link is detached here and now.
            let _ = std::thread::Builder::new()
                .name("detach".into())
                .spawn_scoped(scope, move || drop(link));
        }
    });
}

/// Detaching started at the end of a session, in the background; see [`Tracer::detach`].
pub struct Detaching(Option<std::thread::JoinHandle<()>>);

impl Detaching {
    /// Waits until every program is detached.
    pub fn wait(mut self) {
        self.join();
    }

    fn join(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Detaching {
    fn drop(&mut self) {
        self.join();
    }
}

/// The object with `kernel`'s offsets written in, not yet verified.
fn open_object(offsets: &Offsets, ring_bytes: u32) -> Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    loader
        .override_global(OFFSETS_GLOBAL, offsets, true)
        .map_max_entries(map::EVENTS, ring_bytes);
    // The marks of a hook without a backstop are never used: no memory for them.
    if offsets.backstop_hooks & (1 << standby::FORK) == 0 {
        loader.map_max_entries(map::FORK_MARKS, 1);
    }
    if offsets.backstop_hooks & (1 << standby::EXIT) == 0 {
        loader.map_max_entries(map::EXIT_MARKS, 1);
    }
    loader.load(object()).map_err(|e| {
        if e.to_string().contains(&format!("`{}`", map::EVENTS)) {
            // The ring buffer is the one large allocation: say which, and its cause.
            anyhow!(
                "creating the {} MiB ring buffer failed: {}: {RING_ADVICE}",
                ring_bytes >> 20,
                verifier_reason(format!("{:#}", anyhow::Error::new(e)))
            )
        } else {
            anyhow!("loading the eBPF object failed: {}", verifier_reason(e))
        }
    })
}

/// What the kernel said of one program (`reaper-trace check`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub program: &'static str,
    pub hook: String,
    /// Instructions the verifier processed (`None` where the kernel does not say: before
    /// 5.16, or when it refused the program).
    pub verified_insns: Option<u32>,
    /// Why the kernel refused it.
    pub error: Option<String>,
}

/// Verifies every program the tracer would load on this kernel, one by one, without attaching
/// any: what `reaper-trace check` reports. A refused program does not stop the others.
pub fn verify_all(kernel: &Kernel) -> Result<Vec<Verified>> {
    let mut ebpf = open_object(&kernel.offsets, 1 << 12)?;
    let btf = Btf::from_sys_fs().context("reading kernel BTF")?;
    let mut out = Vec::new();
    for spec in programs(kernel.features).into_iter().chain([TREE_PROGRAM]) {
        let loaded = load(&mut ebpf, &spec, &btf);
        let verified_insns = loaded
            .as_ref()
            .ok()
            .and_then(|_| ebpf.program(spec.name)?.info().ok())
            .and_then(|info| info.verified_instruction_count());
        out.push(Verified {
            program: spec.name,
            hook: spec.hook.to_string(),
            verified_insns,
            error: loaded.err().map(|e| format!("{e:#}")),
        });
    }
    Ok(out)
}

/// The task iterator's program (`reaper-trace tree`), loaded (verified) once and run as often
/// as asked: the dashboard's tree panel takes a snapshot per key press without loading it
/// again.
pub struct TaskIterator {
    ebpf: Ebpf,
}

impl TaskIterator {
    pub fn load(kernel: &Kernel) -> Result<Self> {
        let mut ebpf = open_object(&kernel.offsets, 1 << 12)?;
        let btf = Btf::from_sys_fs().context("reading kernel BTF")?;
        load(&mut ebpf, &TREE_PROGRAM, &btf)?;
        Ok(Self { ebpf })
    }

    /// One pass: the bytes it wrote (whole `TreeTask` records), and how long the pass took.
    /// The iterator runs when its file is read; its link is dropped on return.
    pub fn read(&mut self) -> Result<(Vec<u8>, std::time::Duration)> {
        use std::io::Read;
        let prog: &mut Iter = self
            .ebpf
            .program_mut(TREE_PROGRAM.name)
            .expect("loaded")
            .try_into()?;
        let link_id = prog
            .attach()
            .map_err(|e| anyhow!("creating the task iterator failed: {e}"))?;
        let link = prog.take_link(link_id)?;
        let started = std::time::Instant::now();
        let mut file = link.into_file().map_err(|e| {
            anyhow!(
                "opening the task iterator failed: {e}: the kernel needs BPF iterators (Linux 5.8+)"
            )
        })?;
        let mut out = Vec::with_capacity(256 << 10);
        // Large reads: the kernel fills each read's buffer from as many tasks as fit, so fewer
        // reads means fewer pauses between tasks.
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow!("reading the task iterator failed: {e}")),
            }
        }
        Ok((out, started.elapsed()))
    }
}

/// The bench's floor: programs that do nothing, attached to the tracer's hooks (see the
/// `floor` module of the kernel crate). Dropping the value detaches them.
pub fn attach_floor() -> Result<Ebpf> {
    let mut ebpf = EbpfLoader::new()
        .load(object())
        .map_err(|e| anyhow!("loading the eBPF object failed: {}", verifier_reason(e)))?;
    let btf = Btf::from_sys_fs().context("reading kernel BTF")?;
    for spec in [
        (program::FLOOR_FORK, Hook::Btf("sched_process_fork")),
        (program::FLOOR_EXEC, Hook::Btf("sched_process_exec")),
        (program::FLOOR_EXIT, Hook::Btf("sched_process_exit")),
        (program::FLOOR_SWITCH, Hook::Btf("sched_switch")),
        (program::FLOOR_FREE, Hook::Btf("sched_process_free")),
        (program::FLOOR_EXIT_WAIT4, Hook::Syscall("sys_exit_wait4")),
    ]
    .map(|(name, hook)| ProgramSpec {
        name,
        hook,
        role: Role::Only,
        skipped_as: 0,
    }) {
        load(&mut ebpf, &spec, &btf)?;
        attach(&mut ebpf, &spec)?;
    }
    Ok(ebpf)
}

impl Tracer {
    /// Loads and attaches everything. `ring_bytes` must be a power of two multiple of the page size.
    pub fn attach(kernel: &Kernel, ring_bytes: u32) -> Result<Self> {
        let mut ebpf = open_object(&kernel.offsets, ring_bytes)?;
        let messages = KernelMessages::default();
        // Only absent if the programs log nothing at all.
        let logger = EbpfLogger::init_with_logger(&mut ebpf, messages.clone()).ok();
        let btf = Btf::from_sys_fs().context("reading kernel BTF")?;
        // Verify everything first (the exit program takes the verifier a while), then attach
        // in quick succession, the programs of a task's last moments before those of its
        // first ones: once fork records flow, every later record of those tasks does too.
        let specs = programs(kernel.features);
        for spec in &specs {
            load(&mut ebpf, spec, &btf)?;
        }
        let mut links = Vec::with_capacity(specs.len());
        for spec in attach_order(&specs) {
            // On an error, the links taken so far detach as they are dropped.
            links.push(attach_owned(&mut ebpf, spec)?);
        }
        let aya::maps::Map::RingBuf(events) = ebpf.take_map(map::EVENTS).context("EVENTS map")?
        else {
            return Err(anyhow!("the EVENTS map is not a ring buffer"));
        };
        let ring = RingReader::new(events, ring_bytes as usize).map_err(|e| {
            anyhow!(
                "mapping the {} MiB ring buffer into memory failed: {e}: {RING_ADVICE}",
                ring_bytes >> 20
            )
        })?;
        let lost = PerCpuArray::try_from(ebpf.take_map(map::LOST).context("LOST map")?)?;
        let attached = specs
            .iter()
            .map(|spec| {
                use std::os::fd::{AsFd, AsRawFd};
                let fd = ebpf
                    .program(spec.name)
                    .expect("loaded")
                    .fd()?
                    .as_fd()
                    .as_raw_fd();
                Ok((*spec, fd))
            })
            .collect::<Result<Vec<_>>>()?;
        let tracked = BpfHashMap::try_from(ebpf.take_map(map::TRACKED).context("TRACKED map")?)?;
        Ok(Self {
            logger,
            messages,
            _ebpf: ebpf,
            // SAFETY: the ring buffer owns its descriptor and keeps it open for as long as the
            // AsyncFd that owns the ring buffer exists.
            ring: unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                .map_err(|e| anyhow!("polling the ring buffer: {e}"))?,
            lost,
            lost_seen: vec![0; LOST_SLOTS as usize],
            attached,
            skipped_seen: Default::default(),
            tracked,
            links,
            detaching: None,
            parallel_detach: detach_in_parallel(&kernel_release()),
        })
    }

    /// Starts detaching every program, in the background: the end of the session. Records
    /// already in the ring buffer stay readable, and lost counts (the programs stay loaded)
    /// too. Dropping the tracer waits until every program is detached.
    pub fn detach(&mut self) {
        if self.detaching.is_some() || self.links.is_empty() {
            return;
        }
        let links = std::mem::take(&mut self.links);
        let parallel = self.parallel_detach;
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("detach".into())
            .spawn(move || {
                if let Ok(links) = rx.recv() {
                    detach_links(links, parallel);
                }
            });
        match spawned {
            Ok(t) => {
                let _ = tx.send(links);
                self.detaching = Some(Detaching(Some(t)));
            }
            // No thread to be had (the machine is out of pids): here and now.
            Err(_) => detach_links(links, parallel),
        }
    }

    /// Waits until records are available.
    pub async fn readable(&self) -> Result<()> {
        let mut guard = self.ring.readable().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Hands up to `max` available records to `f`, without blocking. Returns how many.
    pub fn drain(&mut self, max: usize, f: impl FnMut(&[u8])) -> usize {
        self.ring.get_mut().drain(max, f)
    }

    /// Adds process `pid` to the traced tree (tree scope): its records, and those of
    /// everything it forks from now on, are written. Its start time is pinned by the kernel
    /// programs at its first record.
    pub fn track(&mut self, pid: u32) -> Result<()> {
        self.tracked
            .insert(pid, 0, 0)
            .map_err(|e| anyhow!("adding process {pid} to the traced tree: {e}"))
    }

    /// Takes process `pid` out of the traced tree (what it already forked stays in).
    pub fn untrack(&mut self, pid: u32) -> Result<()> {
        self.tracked
            .remove(&pid)
            .map_err(|e| anyhow!("removing process {pid} from the traced tree: {e}"))
    }

    /// Messages the kernel programs logged since the last call.
    pub fn kernel_messages(&mut self) -> Vec<String> {
        if let Some(logger) = &mut self.logger {
            logger.flush();
        }
        self.messages
            .0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// Records lost since the last call, per kind slot (summed over CPUs).
    pub fn lost_since_last(&mut self) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        for slot in 0..LOST_SLOTS {
            let total: u64 = match self.lost.get(&slot, 0) {
                Ok(values) => values.iter().sum(),
                Err(_) => continue,
            };
            let seen = &mut self.lost_seen[slot as usize];
            if total > *seen {
                out.push((slot, total - *seen));
                *seen = total;
            }
        }
        // Calls the kernel skipped and nothing handled. Each count only grows, and so does
        // the bound taken from them: a skip not read yet is taken next time.
        let skipped: Vec<(ProgramSpec, u64)> = self
            .attached
            .iter()
            .map(|(spec, fd)| (*spec, recursion_misses(*fd)))
            .collect();
        for (slot, total) in lost_calls(&skipped) {
            let seen = self.skipped_seen.entry(slot).or_default();
            if total > *seen {
                match out.iter_mut().find(|(s, _)| *s == slot) {
                    Some((_, n)) => *n += total - *seen,
                    None => out.push((slot, total - *seen)),
                }
                *seen = total;
            }
        }
        out
    }
}

impl Drop for Tracer {
    /// Detaches every program (see [`detach_links`]), or waits for [`Tracer::detach`] to
    /// have done so. Unloading the programs afterwards (when `ebpf` goes) does not wait.
    fn drop(&mut self) {
        detach_links(std::mem::take(&mut self.links), self.parallel_detach);
        if let Some(d) = self.detaching.take() {
            d.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf_offsets::Standby;

    #[test]
    fn links_are_closed_in_parallel_from_6_12_on() {
        for old in ["5.10.0-32-amd64", "6.1.0-50-amd64", "6.11.0", "", "linux"] {
            assert!(!detach_in_parallel(old), "{old}");
        }
        for new in [
            "6.12.95+deb12-amd64",
            "6.18.44-fc-v857",
            "7.0.13+deb13-amd64",
            "10.0",
        ] {
            assert!(detach_in_parallel(new), "{new}");
        }
    }

    #[test]
    fn recursion_misses_from_fdinfo() {
        let text = "pos:\t0\nflags:\t02000002\nprog_type:\t26\nrun_time_ns:\t0\nrun_cnt:\t0\nrecursion_misses:\t37\nverified_insns:\t606\n";
        assert_eq!(parse_recursion_misses(text), Some(37));
        // Before 5.12 the kernel does not say.
        assert_eq!(parse_recursion_misses("pos:\t0\nprog_id:\t5\n"), None);
    }

    /// A kernel with every helper and io_uring's waitid, standby copies on its hooks (7.x)
    /// and `syscall` on the syscalls.
    fn features_with(bpf_loop: bool, syscall: Standby) -> Features {
        Features {
            bpf_loop,
            current_task_btf: true,
            hook_standbys: Standby::Preemptible,
            syscall_standby: syscall,
            uring_waitid: true,
            backstop: true,
        }
    }

    #[test]
    fn a_call_is_lost_only_if_every_program_of_its_hook_skipped_it() {
        let features = features_with(true, Standby::NotNeeded);
        let specs = programs(features);
        let misses = |name: &str, n: u64| {
            let spec = *specs.iter().find(|s| s.name == name).unwrap();
            (spec, n)
        };
        let skipped = [
            // A standby never skipped: nothing lost, whatever the primary skipped.
            misses("sched_process_fork", 37),
            misses("sched_process_fork_standby", 5),
            misses("sched_process_fork_standby2", 0),
            // Every program skipped some: at most the fewest, 2.
            misses("sched_process_exit", 29),
            misses("sched_process_exit_standby", 2),
            misses("sched_process_exit_standby2", 3),
            // Each primary skipped fewer than its standbys: at most what it skipped.
            misses("sched_process_free", 1),
            misses("sched_process_free_standby", 4),
            misses("sched_process_free_standby2", 4),
            // No standby attached here: every skip of the syscalls' programs is a loss.
            misses("sys_exit_wait4", 3),
            misses("sys_exit_waitid", 2),
            misses("sys_enter_waitid", 1),
        ];
        let lost = lost_calls(&skipped);
        assert_eq!(lost.get(&kind::FORK), Some(&0));
        assert_eq!(lost.get(&kind::EXIT), Some(&2));
        assert_eq!(lost.get(&kind::FREE), Some(&1));
        assert_eq!(lost.get(&kind::WAIT), Some(&6));
        // A copy's count of calls it covered could hide a loss: none is asked for. A primary
        // that skipped 37 while a standby also skipped 5 and the last one 1 may have lost 1.
        let mut one_left = skipped.to_vec();
        one_left[2] = misses("sched_process_fork_standby2", 1);
        assert_eq!(lost_calls(&one_left).get(&kind::FORK), Some(&1));

        // With the sys_exit standbys attached, the syscalls together lose at most the fewest
        // skips of one of them: skipped prctls that named threads are not lost records.
        let every = programs(features_with(true, Standby::Preemptible));
        let spec = |name: &str| *every.iter().find(|s| s.name == name).unwrap();
        let syscall_losses = |skipped: &[(ProgramSpec, u64)]| -> u64 {
            let lost = lost_calls(skipped);
            [kind::WAIT, kind::SUBREAPER]
                .iter()
                .map(|k| lost.get(k).copied().unwrap_or(0))
                .sum()
        };
        let mut with_standby = skipped.to_vec();
        with_standby.push(misses("sys_exit_prctl", 5));
        with_standby.push((spec(program::SYSCALL_STANDBY[0]), 0));
        assert_eq!(syscall_losses(&with_standby), 0);
        with_standby.pop();
        with_standby.push((spec(program::SYSCALL_STANDBY[0]), 4));
        assert_eq!(syscall_losses(&with_standby), 4);
        // More standbys: a call is lost only when every one was skipped.
        with_standby.push((spec(program::SYSCALL_STANDBY[1]), 1));
        assert_eq!(syscall_losses(&with_standby), 1);
        with_standby.push((spec(program::SYSCALL_STANDBY[2]), 0));
        assert_eq!(syscall_losses(&with_standby), 0);
    }

    #[test]
    fn copies_attach_after_the_copies_before_them() {
        let specs = programs(features_with(true, Standby::NotNeeded));
        let order: Vec<&str> = attach_order(&specs).iter().map(|s| s.name).collect();
        assert_eq!(order.len(), specs.len());
        assert!(order[0].starts_with("sys_exit_"), "{order:?}");
        let at = |name: &str| order.iter().position(|n| *n == name).unwrap();
        for hook in ["fork", "exec", "exit", "free"] {
            let p = format!("sched_process_{hook}");
            assert!(at(&p) < at(&format!("{p}_standby")), "{order:?}");
            assert!(
                at(&format!("{p}_standby")) < at(&format!("{p}_standby2")),
                "{order:?}"
            );
        }
        // The end of a task before its beginning.
        assert!(at("sched_process_free") < at("sched_switch"), "{order:?}");
        assert!(at("sched_switch") < at("sched_process_exit"), "{order:?}");
        assert!(
            at("sched_process_exit") < at("sched_process_fork"),
            "{order:?}"
        );
    }

    #[test]
    fn standby_copies_only_where_tracepoints_can_preempt_them() {
        let names = |bpf_loop| -> Vec<&str> {
            programs(features_with(bpf_loop, Standby::NotNeeded))
                .iter()
                .filter(|s| matches!(s.role, Role::Standby(_)))
                .map(|s| s.name)
                .collect()
        };
        assert_eq!(
            names(true),
            [
                "sched_process_fork_standby",
                "sched_process_fork_standby2",
                "sched_process_exec_standby",
                "sched_process_exec_standby2",
                "sched_process_exit_standby",
                "sched_process_exit_standby2",
                "sched_process_free_standby",
                "sched_process_free_standby2",
                "io_uring_complete_standby",
                "io_uring_complete_standby2",
            ]
        );
        assert!(
            !names(false)
                .iter()
                .any(|n| n.starts_with("sched_process_exit"))
        );
        // The syscalls' standby only where asked for (7.x): it runs at every system call.
        let with = programs(features_with(true, Standby::Preemptible));
        assert!(
            with.iter()
                .any(|s| s.name == "sys_exit_standby" && s.hook == Hook::Btf("sys_exit"))
        );
        assert!(tracepoints_preemptible("7.0.13+deb13-amd64"));
        assert!(!tracepoints_preemptible("6.19.14+deb13-amd64"));
        assert!(!tracepoints_preemptible("?"));
        // A kernel that never skips a program gets none, and its primaries note nothing.
        let before_7 = Features {
            hook_standbys: Standby::NotNeeded,
            ..features_with(true, Standby::NotNeeded)
        };
        assert!(
            !programs(before_7)
                .iter()
                .any(|s| matches!(s.role, Role::Standby(_)))
        );
        assert_eq!(standby_hooks(before_7), 0);
        let bits = |slots: &[u32]| slots.iter().fold(0, |m, s| m | 1 << s);
        let hooks = bits(&[
            standby::FORK,
            standby::EXEC,
            standby::EXIT,
            standby::FREE,
            standby::URING,
        ]);
        assert_eq!(
            standby_hooks(features_with(true, Standby::NotNeeded)),
            hooks
        );
        // The syscalls' standbys serve wait4, waitid and prctl: each call's program notes
        // what it sent for them.
        assert_eq!(
            standby_hooks(features_with(true, Standby::Preemptible)) & !hooks,
            bits(&[standby::WAIT4, standby::WAITID, standby::PRCTL])
        );
    }
}
