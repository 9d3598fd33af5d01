//! Kernel structure offsets for the eBPF programs, read from the running kernel's BTF.
//!
//! The Rust eBPF toolchain has no CO-RE relocations, so the programs read fields at offsets
//! that userspace resolves here, at load time, from `/sys/kernel/btf/vmlinux`. One build then
//! runs on any kernel that has BTF and the fields below; a kernel without one of them gets an
//! error naming the missing field instead of programs that read garbage.

use anyhow::{Context, Result, anyhow, bail};
use btf_rs::{Btf, Type};
use reaper_trace_common::{Offsets, standby};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Where a member lives inside its outermost struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPos {
    /// Offset in bits from the start of the struct.
    pub bit_offset: u32,
    /// Width in bits when the member is a bitfield.
    pub bitfield: Option<u32>,
}

impl FieldPos {
    pub fn byte(&self) -> u32 {
        self.bit_offset / 8
    }
}

pub struct KernelTypes {
    btf: Btf,
}

impl KernelTypes {
    pub fn load() -> Result<Self> {
        let btf = Btf::from_file(VMLINUX_BTF).with_context(|| {
            format!("cannot read kernel BTF at {VMLINUX_BTF}: reaper-trace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")
        })?;
        Ok(Self { btf })
    }

    fn struct_type(&self, name: &str) -> Result<btf_rs::Struct> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|e| anyhow!("kernel BTF has no type {name}: {e}"))?;
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) => Some(s),
                _ => None,
            })
            .ok_or_else(|| anyhow!("kernel BTF has no struct {name}"))
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn strip(&self, mut ty: Type) -> Result<Type> {
        loop {
            ty = match &ty {
                Type::Typedef(t) => self.btf.resolve_chained_type(t)?,
                Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => {
                    self.btf.resolve_chained_type(t)?
                }
                Type::TypeTag(t) => self.btf.resolve_chained_type(t)?,
                _ => return Ok(ty),
            };
        }
    }

    /// Finds `member` in `st`, looking into anonymous structs and unions.
    fn find_member(&self, st: &btf_rs::Struct, member: &str) -> Result<Option<(FieldPos, Type)>> {
        for m in &st.members {
            let name = self.btf.resolve_name(m).unwrap_or_default();
            if name == member {
                let ty = self.strip(self.btf.resolve_chained_type(m)?)?;
                return Ok(Some((
                    FieldPos {
                        bit_offset: m.bit_offset(),
                        bitfield: m.bitfield_size().filter(|&b| b != 0),
                    },
                    ty,
                )));
            }
            if name.is_empty() {
                let ty = self.strip(self.btf.resolve_chained_type(m)?)?;
                if let Type::Struct(inner) | Type::Union(inner) = &ty
                    && let Some((pos, t)) = self.find_member(inner, member)?
                {
                    return Ok(Some((
                        FieldPos {
                            bit_offset: m.bit_offset() + pos.bit_offset,
                            ..pos
                        },
                        t,
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Position of a dotted member path (`"ns.inum"`) in struct `st_name`.
    pub fn field(&self, st_name: &str, path: &str) -> Result<FieldPos> {
        let mut st = self.struct_type(st_name)?;
        let mut total = 0u32;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let (pos, ty) = self
                .find_member(&st, part)?
                .ok_or_else(|| anyhow!("kernel struct {st_name} has no member {path}"))?;
            total += pos.bit_offset;
            if parts.peek().is_none() {
                return Ok(FieldPos {
                    bit_offset: total,
                    bitfield: pos.bitfield,
                });
            }
            st = match ty {
                Type::Struct(s) | Type::Union(s) => s,
                _ => bail!("{st_name}.{path}: {part} is not a struct"),
            };
        }
        bail!("empty member path for {st_name}")
    }

    fn byte_offset(&self, st: &str, path: &str) -> Result<u32> {
        let pos = self.field(st, path)?;
        if pos.bitfield.is_some() || pos.bit_offset % 8 != 0 {
            bail!("{st}.{path} is a bitfield, expected a whole field");
        }
        Ok(pos.byte())
    }

    pub fn struct_size(&self, name: &str) -> Result<u32> {
        Ok(self.struct_type(name)?.size() as u32)
    }

    /// Arguments a BTF tracepoint passes (`btf_trace_NAME` is a pointer to a function whose
    /// first parameter is the tracepoint's private data, not an argument).
    pub fn tracepoint_args(&self, name: &str) -> Result<usize> {
        let typedef = format!("btf_trace_{name}");
        let ty = self
            .btf
            .resolve_types_by_name(&typedef)
            .map_err(|e| anyhow!("kernel BTF has no tracepoint {name}: {e}"))?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("kernel BTF has no tracepoint {name}"))?;
        let mut ty = self.strip(ty)?;
        if let Type::Ptr(p) = &ty {
            ty = self.strip(self.btf.resolve_chained_type(p)?)?;
        }
        match ty {
            Type::FuncProto(f) => Ok(f.parameters.len().saturating_sub(1)),
            other => bail!("{typedef} is a {}, not a function pointer", other.name()),
        }
    }

    /// Does the kernel know BPF helper `name` (`BPF_FUNC_loop`, ...)? Every helper is an
    /// enumerator of `enum bpf_func_id` in the kernel's BTF.
    pub fn has_helper(&self, name: &str) -> Result<bool> {
        for ty in self
            .btf
            .resolve_types_by_name("bpf_func_id")
            .map_err(|e| anyhow!("kernel BTF has no enum bpf_func_id: {e}"))?
        {
            if let Type::Enum(e) = ty {
                for m in &e.members {
                    if self.btf.resolve_name(m).is_ok_and(|n| n == name) {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// The value of enumerator `member` of `enum enum_name`, if the kernel has it.
    pub fn enum_value(&self, enum_name: &str, member: &str) -> Option<u32> {
        self.btf
            .resolve_types_by_name(enum_name)
            .ok()?
            .into_iter()
            .find_map(|ty| match ty {
                Type::Enum(e) => e
                    .members
                    .iter()
                    .find(|m| self.btf.resolve_name(*m).is_ok_and(|n| n == member))
                    .map(|m| m.val()),
                _ => None,
            })
    }

    /// Where io_uring keeps a waitid request's opcode, result and findings, on kernels with
    /// `IORING_OP_WAITID` (6.7+): the io_uring program's offsets, or `None` (it is then not
    /// loaded, and such reaps are seen only when the kernel frees the task). The request's
    /// command (`struct io_waitid`) lives in the `io_kiocb`'s `cmd` area.
    pub fn uring_offsets(&self) -> Option<UringOffsets> {
        let op_waitid = self.enum_value("io_uring_op", "IORING_OP_WAITID")?;
        let o = |st: &str, path: &str| self.byte_offset(st, path).ok();
        // The argument the program reads: `req`, after `ctx`.
        if self.tracepoint_args("io_uring_complete").ok()? < 2 {
            return None;
        }
        let cmd = o("io_kiocb", "cmd")?;
        Some(UringOffsets {
            op_waitid,
            ctx_cq_tail: o("io_ring_ctx", "cached_cq_tail")?,
            req_opcode: o("io_kiocb", "opcode")?,
            req_res: o("io_kiocb", "cqe.res")?,
            waitid_options: cmd + o("io_waitid", "options")?,
            waitid_pid: cmd + o("io_waitid", "info.pid")?,
            waitid_status: cmd + o("io_waitid", "info.status")?,
            waitid_cause: cmd + o("io_waitid", "info.cause")?,
        })
    }

    /// Resolves every offset the programs use.
    pub fn offsets(&self) -> Result<Offsets> {
        let o = |st: &str, path: &str| self.byte_offset(st, path);
        let is_sub = self.field("signal_struct", "is_child_subreaper")?;
        let has_sub = self.field("signal_struct", "has_child_subreaper")?;
        Ok(Offsets {
            task_pid: o("task_struct", "pid")?,
            task_tgid: o("task_struct", "tgid")?,
            task_flags: o("task_struct", "flags")?,
            task_real_parent: o("task_struct", "real_parent")?,
            task_group_leader: o("task_struct", "group_leader")?,
            task_children: o("task_struct", "children")?,
            task_sibling: o("task_struct", "sibling")?,
            task_thread_node: o("task_struct", "thread_node")?,
            task_comm: o("task_struct", "comm")?,
            task_exit_state: o("task_struct", "exit_state")?,
            task_exit_code: o("task_struct", "exit_code")?,
            // Renamed in Linux 5.14 (and made an `unsigned int`).
            task_state: o("task_struct", "__state").or_else(|_| o("task_struct", "state"))?,
            task_start_boottime: o("task_struct", "start_boottime")?,
            task_signal: o("task_struct", "signal")?,
            task_thread_pid: o("task_struct", "thread_pid")?,
            task_mm: o("task_struct", "mm")?,
            signal_thread_head: o("signal_struct", "thread_head")?,
            signal_is_child_subreaper_byte: is_sub.byte(),
            signal_is_child_subreaper_bit: is_sub.bit_offset % 8,
            signal_has_child_subreaper_byte: has_sub.byte(),
            signal_has_child_subreaper_bit: has_sub.bit_offset % 8,
            pid_level: o("pid", "level")?,
            pid_numbers: o("pid", "numbers")?,
            upid_size: self.struct_size("upid")?,
            upid_nr: o("upid", "nr")?,
            upid_ns: o("upid", "ns")?,
            pidns_child_reaper: o("pid_namespace", "child_reaper")?,
            pidns_inum: o("pid_namespace", "ns.inum")?,
            mm_arg_start: o("mm_struct", "arg_start")?,
            mm_arg_end: o("mm_struct", "arg_end")?,
            binprm_filename: o("linux_binprm", "filename")?,
            task_self_exec_id: o("task_struct", "self_exec_id")?,
            signal_live: o("signal_struct", "live")?,
            signal_nr_threads: o("signal_struct", "nr_threads")?,
            signal_flags: o("signal_struct", "flags")?,
            signal_group_exit_code: o("signal_struct", "group_exit_code")?,
            scope_tree: 0,
            exit_has_group_dead: (self.tracepoint_args("sched_process_exit")? >= 2) as u32,
            switch_has_prev_state: (self.tracepoint_args("sched_switch")? >= 4) as u32,
            // Filled by `UringOffsets::apply` where the kernel has io_uring's waitid.
            uring_op_waitid: 0,
            uring_ctx_cq_tail: 0,
            uring_req_opcode: 0,
            uring_req_res: 0,
            uring_waitid_options: 0,
            uring_waitid_pid: 0,
            uring_waitid_status: 0,
            uring_waitid_cause: 0,
            standby_hooks: 0,
            backstop_hooks: 0,
            task_sum_exec_runtime: o("task_struct", "se.sum_exec_runtime")?,
            test_skip_mask: 0,
            valid: 1,
        })
    }
}

/// See [`KernelTypes::uring_offsets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UringOffsets {
    pub op_waitid: u32,
    pub ctx_cq_tail: u32,
    pub req_opcode: u32,
    pub req_res: u32,
    pub waitid_options: u32,
    pub waitid_pid: u32,
    pub waitid_status: u32,
    pub waitid_cause: u32,
}

impl UringOffsets {
    fn apply(&self, o: &mut Offsets) {
        o.uring_op_waitid = self.op_waitid;
        o.uring_ctx_cq_tail = self.ctx_cq_tail;
        o.uring_req_opcode = self.req_opcode;
        o.uring_req_res = self.req_res;
        o.uring_waitid_options = self.waitid_options;
        o.uring_waitid_pid = self.waitid_pid;
        o.uring_waitid_status = self.waitid_status;
        o.uring_waitid_cause = self.waitid_cause;
    }
}

/// Whether a hook's standby copies are attached (see `reaper_trace_common::standby`), and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standby {
    /// Not attached: this kernel runs tracepoint programs with preemption disabled, so a
    /// program is never found still running on its CPU, and never skipped.
    NotNeeded,
    /// Attached: the kernel runs tracepoint programs preemptibly (Linux 7.0 on) and skips a
    /// program while its earlier run is preempted on the same CPU.
    Preemptible,
    /// Attached because an environment variable asked for it (tests, on any kernel).
    Forced,
}

impl Standby {
    pub fn attached(self) -> bool {
        self != Standby::NotNeeded
    }

    fn decide(preemptible: bool, forced: bool) -> Self {
        match (preemptible, forced) {
            (true, _) => Standby::Preemptible,
            (false, true) => Standby::Forced,
            (false, false) => Standby::NotNeeded,
        }
    }

    /// Why, in a few words (`reaper-trace check`).
    pub fn reason(self, kernel: &str) -> String {
        match self {
            Standby::NotNeeded => format!(
                "Linux {kernel} runs tracepoint programs with preemption disabled, so it never skips one"
            ),
            Standby::Preemptible => format!(
                "Linux {kernel} runs tracepoint programs preemptibly and skips one that is still running on its CPU"
            ),
            Standby::Forced => "forced by the environment (a test)".into(),
        }
    }
}

/// BPF helpers the programs use where the kernel has them; older kernels get the programs'
/// variants built without them. And the standby copies the kernel needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Features {
    /// `bpf_loop` (Linux 5.17): else bounded loops, with lower bounds.
    pub bpf_loop: bool,
    /// `bpf_get_current_task_btf` (Linux 5.11): else the current task is probe-read.
    pub current_task_btf: bool,
    /// The standby copies of the fork, exec, exit, free and io_uring programs: where the kernel
    /// skips programs (7.x), or when `REAPER_TRACE_STANDBY=1` asks for them. Each costs every
    /// call of its hook a program run.
    pub hook_standbys: Standby,
    /// The `sys_exit` standbys of the classic syscall programs: where the kernel skips those
    /// (7.x, whose syscall tracepoints run preemptibly), or when
    /// `REAPER_TRACE_SYSCALL_STANDBY=1` asks for them. They cost every system call a program run
    /// each.
    pub syscall_standby: Standby,
    /// io_uring's `IORING_OP_WAITID` (Linux 6.7, which also has the helper above): its reaps
    /// are recorded when the request completes; else the kernel has no such reaps.
    pub uring_waitid: bool,
    /// Forks and exits every copy skipped are recorded from `sched_switch`
    /// (`reaper_trace_common::backstop`): wherever the hooks have standby copies, unless
    /// `REAPER_TRACE_NO_BACKSTOP=1` (a test of what it makes up for).
    pub backstop: bool,
}

/// What the programs need to know about the running kernel.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub offsets: Offsets,
    pub features: Features,
}

/// Resolves the offsets and features of the running kernel.
///
/// For tests on a newer kernel of what older ones take: `REAPER_TRACE_NO_EXIT_GROUP_DEAD=1`
/// makes the exit program take the path of kernels whose `sched_process_exit` has no
/// `group_dead` argument, `REAPER_TRACE_NO_SWITCH_PREV_STATE=1` makes the switch program read
/// the task's state as before 5.18, and `REAPER_TRACE_NO_BPF_LOOP=1` /
/// `REAPER_TRACE_NO_CURRENT_TASK_BTF=1` load the variants built without those helpers;
/// `REAPER_TRACE_STANDBY=1` and `REAPER_TRACE_SYSCALL_STANDBY=1` attach the standby copies a
/// kernel that never skips a program does not need.
pub fn resolve() -> Result<Kernel> {
    let types = KernelTypes::load()?;
    let mut offsets = types.offsets()?;
    let forced_off = |var: &str| std::env::var_os(var).is_some_and(|v| v == "1");
    if forced_off("REAPER_TRACE_NO_EXIT_GROUP_DEAD") {
        offsets.exit_has_group_dead = 0;
    }
    if forced_off("REAPER_TRACE_NO_SWITCH_PREV_STATE") {
        offsets.switch_has_prev_state = 0;
    }
    let current_task_btf = types.has_helper("BPF_FUNC_get_current_task_btf")?
        && !forced_off("REAPER_TRACE_NO_CURRENT_TASK_BTF");
    let preemptible = crate::tracer::tracepoints_preemptible(&crate::tracer::kernel_release());
    let mut features = Features {
        bpf_loop: types.has_helper("BPF_FUNC_loop")? && !forced_off("REAPER_TRACE_NO_BPF_LOOP"),
        current_task_btf,
        hook_standbys: Standby::decide(preemptible, forced_off("REAPER_TRACE_STANDBY")),
        // They read the current task's registers through its BTF pointer.
        syscall_standby: if current_task_btf {
            Standby::decide(preemptible, forced_off("REAPER_TRACE_SYSCALL_STANDBY"))
        } else {
            Standby::NotNeeded
        },
        uring_waitid: false,
        backstop: false,
    };
    if features.current_task_btf
        && let Some(uring) = types.uring_offsets()
    {
        uring.apply(&mut offsets);
        features.uring_waitid = true;
    }
    offsets.standby_hooks = crate::tracer::standby_hooks(features);
    features.backstop =
        features.hook_standbys.attached() && !forced_off("REAPER_TRACE_NO_BACKSTOP");
    if features.backstop {
        offsets.backstop_hooks = 1 << standby::FORK | 1 << standby::EXIT;
    }
    offsets.test_skip_mask =
        test_skip_mask(std::env::var("REAPER_TRACE_TEST_SKIP").ok().as_deref())?;
    Ok(Kernel { offsets, features })
}

/// `REAPER_TRACE_TEST_SKIP=N` (a test of the backstop): the fork and exit programs skip one
/// task in N, a power of two, as if the kernel had skipped every copy.
fn test_skip_mask(value: Option<&str>) -> Result<u32> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    match value.parse::<u32>() {
        Ok(n) if n >= 2 && n.is_power_of_two() => Ok(n - 1),
        _ => bail!(
            "REAPER_TRACE_TEST_SKIP={value}: expected a power of two from 2 (one task in N skipped); unset it to skip none"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> Option<KernelTypes> {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            eprintln!("skipped: no {VMLINUX_BTF}");
            return None;
        }
        Some(KernelTypes::load().expect("BTF loads"))
    }

    #[test]
    fn a_test_skips_one_task_in_a_power_of_two() {
        assert_eq!(test_skip_mask(None).unwrap(), 0);
        assert_eq!(test_skip_mask(Some("")).unwrap(), 0);
        assert_eq!(test_skip_mask(Some("8")).unwrap(), 7);
        for bad in ["1", "6", "0", "x", "-8"] {
            let e = test_skip_mask(Some(bad)).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "REAPER_TRACE_TEST_SKIP={bad}: expected a power of two"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn resolves_every_offset_on_this_kernel() {
        let Some(k) = kernel() else { return };
        let o = k.offsets().expect("all fields found");
        // task_struct::pid and tgid are adjacent pid_t fields.
        assert_eq!(o.task_tgid, o.task_pid + 4);
        // struct upid { int nr; struct pid_namespace *ns; }
        assert_eq!((o.upid_nr, o.upid_ns, o.upid_size), (0, 8, 16));
        // The two subreaper bits are different bits.
        assert_ne!(
            (
                o.signal_is_child_subreaper_byte,
                o.signal_is_child_subreaper_bit
            ),
            (
                o.signal_has_child_subreaper_byte,
                o.signal_has_child_subreaper_bit
            )
        );
        assert!(o.task_comm > 0 && o.task_children > 0 && o.pidns_inum > 0);
    }

    #[test]
    fn tracepoint_arity() {
        let Some(k) = kernel() else { return };
        // sched_switch(preempt, prev, next[, prev_state since 5.18]).
        assert!((3..=4).contains(&k.tracepoint_args("sched_switch").unwrap()));
        assert_eq!(k.tracepoint_args("sched_process_free").unwrap(), 1);
        assert!(k.tracepoint_args("no_such_tracepoint").is_err());
    }

    #[test]
    fn uring_waitid_offsets_where_the_kernel_has_it() {
        let Some(k) = kernel() else { return };
        let Some(u) = k.uring_offsets() else {
            // Before 6.7 io_uring has no waitid request.
            assert!(k.enum_value("io_uring_op", "IORING_OP_WAITID").is_none());
            return;
        };
        // struct io_kiocb { union { file, cmd }; u8 opcode; ... struct io_cqe cqe; ... }
        assert!(u.req_opcode > 0 && u.req_res > u.req_opcode);
        // struct waitid_info { pid_t pid; uid_t uid; int status; int cause; }
        assert_eq!(
            (u.waitid_status, u.waitid_cause),
            (u.waitid_pid + 8, u.waitid_pid + 12)
        );
        assert!(u.op_waitid > 0 && u.ctx_cq_tail > 0);
    }

    #[test]
    fn helpers_are_found_by_name() {
        let Some(k) = kernel() else { return };
        // Every kernel with BTF has bpf_probe_read_kernel (5.5); no kernel has this one.
        assert!(k.has_helper("BPF_FUNC_probe_read_kernel").unwrap());
        assert!(!k.has_helper("BPF_FUNC_no_such_helper").unwrap());
    }

    #[test]
    fn bitfields_are_reported_as_such() {
        let Some(k) = kernel() else { return };
        let f = k.field("signal_struct", "is_child_subreaper").unwrap();
        assert_eq!(f.bitfield, Some(1));
        assert!(
            k.byte_offset("signal_struct", "is_child_subreaper")
                .is_err()
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let Some(k) = kernel() else { return };
        let err = k.field("task_struct", "no_such_field").unwrap_err();
        assert!(err.to_string().contains("no_such_field"), "{err}");
    }
}
