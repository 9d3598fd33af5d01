//! Loads the kernel programs, attaches them, and hands out their records. Dropping the
//! `Tracer` detaches every program (the links are owned by the loaded object).

use anyhow::{Context, Result, anyhow};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, Program, TracePoint},
};
use aya_log::EbpfLogger;
use reaper_trace_common::{LOST_SLOTS, Offsets};
use std::sync::{Arc, Mutex};
use tokio::io::{Interest, unix::AsyncFd};

/// BTF tracepoints: typed `task_struct *` arguments, no tracefs needed. Attached in reverse.
const BTF_PROGRAMS: [&str; 5] = [
    "sched_process_fork",
    "sched_process_exec",
    "sched_process_exit",
    "sched_switch",
    "sched_process_free",
];

/// Classic syscall tracepoints (category `syscalls`): exit before enter, so no enter record
/// is ever left waiting for an exit program that is not attached yet.
const SYSCALL_PROGRAMS: [&str; 5] = [
    "sys_exit_wait4",
    "sys_exit_waitid",
    "sys_exit_prctl",
    "sys_enter_waitid",
    "sys_enter_prctl",
];

pub const DEFAULT_RING_BYTES: u32 = 4 << 20;

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
    ring: AsyncFd<RingBuf<MapData>>,
    lost: PerCpuArray<MapData, u64>,
    lost_seen: Vec<u64>,
    /// The processes of a traced tree (tree scope only): tgid -> leader start time.
    tracked: BpfHashMap<MapData, u32, u64>,
    logger: Option<EbpfLogger<KernelMessages>>,
    messages: KernelMessages,
    // Keeps programs and links alive; detached in `drop`.
    ebpf: Ebpf,
}

/// aya's load errors carry the whole verifier log: keep the first line and the verifier's
/// verdict (its last line), so the message stays one line.
fn one_line(err: impl std::fmt::Display) -> String {
    let text = err.to_string();
    if let Some(path) = std::env::var_os("REAPER_TRACE_VERIFIER_LOG") {
        // For developers: the whole verifier log.
        let _ = std::fs::write(path, &text);
    }
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or_default().to_string();
    match lines.next_back() {
        Some(last) => format!("{first} ... {}", last.trim()),
        None => first,
    }
}

fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/reaper-trace"))
}

/// Verifies program `name` of the object, a BTF tracepoint on `hook`.
fn load_btf<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
    hook: &str,
    btf: &Btf,
) -> Result<&'a mut BtfTracePoint> {
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the object"))?
        .try_into()?;
    prog.load(hook, btf)
        .map_err(|e| anyhow!("loading {name} failed: {}", one_line(e)))?;
    Ok(prog)
}

/// Verifies program `name` of the object, a classic tracepoint.
fn load_tracepoint<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut TracePoint> {
    let prog: &mut TracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the object"))?
        .try_into()?;
    prog.load()
        .map_err(|e| anyhow!("loading {name} failed: {}", one_line(e)))?;
    Ok(prog)
}

/// The bench's floor: programs that do nothing, attached to the tracer's hooks (see the
/// `floor` module of the kernel crate). Dropping the value detaches them.
pub fn attach_floor() -> Result<Ebpf> {
    let mut ebpf = EbpfLoader::new()
        .load(object())
        .map_err(|e| anyhow!("loading the eBPF programs failed: {}", one_line(e)))?;
    let btf = Btf::from_sys_fs().context("reading kernel BTF")?;
    for (name, hook) in [
        ("floor_fork", "sched_process_fork"),
        ("floor_exec", "sched_process_exec"),
        ("floor_exit", "sched_process_exit"),
        ("floor_switch", "sched_switch"),
        ("floor_free", "sched_process_free"),
    ] {
        load_btf(&mut ebpf, name, hook, &btf)?.attach()?;
    }
    load_tracepoint(&mut ebpf, "floor_exit_wait4")?.attach("syscalls", "sys_exit_wait4")?;
    Ok(ebpf)
}

impl Tracer {
    /// Loads and attaches everything. `ring_bytes` must be a power of two multiple of the page size.
    pub fn attach(offsets: &Offsets, ring_bytes: u32) -> Result<Self> {
        let mut ebpf = EbpfLoader::new()
            .override_global("OFFSETS", offsets, true)
            .map_max_entries("EVENTS", ring_bytes)
            .load(object())
            .map_err(|e| anyhow!("loading the eBPF programs failed: {}", one_line(e)))?;
        let messages = KernelMessages::default();
        // Only absent if the programs log nothing at all.
        let logger = EbpfLogger::init_with_logger(&mut ebpf, messages.clone()).ok();
        let btf = Btf::from_sys_fs().context("reading kernel BTF")?;
        // Verify everything first (the exit program takes the verifier a while), then attach
        // in quick succession, the programs of a task's last moments before those of its
        // first ones: once fork records flow, every later record of those tasks does too.
        for name in BTF_PROGRAMS {
            load_btf(&mut ebpf, name, name, &btf)?;
        }
        for name in SYSCALL_PROGRAMS {
            load_tracepoint(&mut ebpf, name)?;
        }
        for name in SYSCALL_PROGRAMS {
            let prog: &mut TracePoint = ebpf.program_mut(name).expect("loaded").try_into()?;
            prog.attach("syscalls", name)
                .map_err(|e| anyhow!("attaching tracepoint syscalls/{name} failed: {e}"))?;
        }
        for name in BTF_PROGRAMS.iter().rev() {
            let prog: &mut BtfTracePoint = ebpf.program_mut(name).expect("loaded").try_into()?;
            prog.attach()
                .map_err(|e| anyhow!("attaching tp_btf/{name} failed: {e}"))?;
        }
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("EVENTS map")?)?;
        let lost = PerCpuArray::try_from(ebpf.take_map("LOST").context("LOST map")?)?;
        let tracked = BpfHashMap::try_from(ebpf.take_map("TRACKED").context("TRACKED map")?)?;
        Ok(Self {
            logger,
            messages,
            ebpf,
            // SAFETY: the ring buffer owns its descriptor and keeps it open for as long as the
            // AsyncFd that owns the ring buffer exists.
            ring: unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                .map_err(|e| anyhow!("polling the ring buffer: {e}"))?,
            lost,
            lost_seen: vec![0; LOST_SLOTS as usize],
            tracked,
        })
    }

    /// Waits until records are available.
    pub async fn readable(&self) -> Result<()> {
        let mut guard = self.ring.readable().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Hands up to `max` available records to `f`, without blocking. Returns how many.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let ring = self.ring.get_mut();
        let mut n = 0;
        while n < max {
            let Some(item) = ring.next() else { break };
            f(&item);
            n += 1;
        }
        n
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
        out
    }
}

impl Drop for Tracer {
    /// Detaches every program. Closing a tracepoint link waits for the kernel (tens of
    /// milliseconds each, more on a loaded machine), so they are detached all at once rather
    /// than one after another: a stop takes one of those waits, not a dozen.
    fn drop(&mut self) {
        std::thread::scope(|scope| {
            for (_, program) in self.ebpf.programs_mut() {
                scope.spawn(move || {
                    let _ = match program {
                        Program::BtfTracePoint(p) => p.unload(),
                        Program::TracePoint(p) => p.unload(),
                        _ => Ok(()),
                    };
                });
            }
        });
    }
}
