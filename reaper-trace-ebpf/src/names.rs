//! Each program and map userspace looks up has the name `reaper_trace_common` gives it:
//! checked at compile time here, since aya-ebpf's macros name a program after its function and
//! a map after its static (they take no constant). reaper-trace's build script checks the
//! built object for the same names.

use reaper_trace_common::{OFFSETS_GLOBAL, map, program};

/// Fails the build unless item `$module::$item` exists and is named `$name`.
macro_rules! named {
    ($name:expr => $module:ident::$item:ident) => {
        const _: () = assert!(
            reaper_trace_common::same_name($name, stringify!($item)),
            concat!(
                "crate::",
                stringify!($module),
                "::",
                stringify!($item),
                " does not have the name reaper_trace_common gives it"
            )
        );
        #[allow(unused_imports)]
        use crate::$module::$item as _;
    };
}

named!(program::FORK[0] => fork::sched_process_fork);
named!(program::FORK[1] => fork::sched_process_fork_standby);
named!(program::FORK[2] => fork::sched_process_fork_standby2);
named!(program::EXEC[0] => exec::sched_process_exec);
named!(program::EXEC[1] => exec::sched_process_exec_standby);
named!(program::EXEC[2] => exec::sched_process_exec_standby2);
named!(program::EXIT[0] => exit::sched_process_exit);
named!(program::EXIT[1] => exit::sched_process_exit_standby);
named!(program::EXIT[2] => exit::sched_process_exit_standby2);
named!(program::EXIT_BOUNDED => exit::sched_process_exit_bounded);
named!(program::SWITCH => switch::sched_switch);
named!(program::SWITCH_BOUNDED => switch::sched_switch_bounded);
named!(program::FREE[0] => free::sched_process_free);
named!(program::FREE[1] => free::sched_process_free_standby);
named!(program::FREE[2] => free::sched_process_free_standby2);
named!(program::URING[0] => uring::io_uring_complete);
named!(program::URING[1] => uring::io_uring_complete_standby);
named!(program::URING[2] => uring::io_uring_complete_standby2);
named!(program::EXIT_WAIT4 => wait::sys_exit_wait4);
named!(program::EXIT_WAIT4_PLAIN => wait::sys_exit_wait4_plain);
named!(program::ENTER_WAITID => wait::sys_enter_waitid);
named!(program::EXIT_WAITID => wait::sys_exit_waitid);
named!(program::EXIT_WAITID_PLAIN => wait::sys_exit_waitid_plain);
named!(program::ENTER_PRCTL => prctl::sys_enter_prctl);
named!(program::EXIT_PRCTL => prctl::sys_exit_prctl);
named!(program::EXIT_PRCTL_PLAIN => prctl::sys_exit_prctl_plain);
named!(program::SYSCALL_STANDBY[0] => sys_exit::sys_exit_standby);
named!(program::SYSCALL_STANDBY[1] => sys_exit::sys_exit_standby2);
named!(program::SYSCALL_STANDBY[2] => sys_exit::sys_exit_standby3);
named!(program::TREE_TASK => tree::tree_task);
named!(program::FLOOR_FORK => floor::floor_fork);
named!(program::FLOOR_EXEC => floor::floor_exec);
named!(program::FLOOR_EXIT => floor::floor_exit);
named!(program::FLOOR_SWITCH => floor::floor_switch);
named!(program::FLOOR_FREE => floor::floor_free);
named!(program::FLOOR_EXIT_WAIT4 => floor::floor_exit_wait4);

named!(map::EVENTS => maps::EVENTS);
named!(map::LOST => maps::LOST);
named!(map::TRACKED => maps::TRACKED);
named!(map::FORK_MARKS => maps::FORK_MARKS);
named!(map::EXIT_MARKS => maps::EXIT_MARKS);

named!(OFFSETS_GLOBAL => globals::OFFSETS);
