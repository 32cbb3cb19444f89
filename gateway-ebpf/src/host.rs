//! What a target's tasks may do to the host itself, judged by the task's cgroup (so it holds for
//! root too, and for sockets or files from anywhere):
//!
//! * `sysctl`: no writes under `/proc/sys` (`kernel.core_pattern` runs a program as root outside
//!   every cgroup; `kernel.modprobe`, `net.*`...). Reads stay allowed.
//! * `dev`: no block devices (reading a raw disk bypasses every file check), no `/dev/mem`,
//!   `/dev/kmem`, `/dev/port`, and no device nodes made (mknod). Every other device keeps working
//!   (`/dev/null`, terminals, `/dev/urandom`...): a device program attached to a cgroup is the
//!   only judge of its tasks' device access.

use aya_ebpf::{
    bindings::{BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_DEV_BLOCK, BPF_F_SYSCTL_BASE_NAME},
    helpers::generated::bpf_sysctl_get_name,
    macros::{cgroup_device, cgroup_sysctl},
    programs::{DeviceContext, SysctlContext},
};
use gateway_common::event;

use crate::common::{PROCEED, REFUSE, Report, report};

/// Character device major of the memory devices; minors 1 (mem), 2 (kmem), 4 (port).
const MEM_MAJOR: u32 = 1;

#[cgroup_sysctl]
pub fn sluice_sysctl(ctx: SysctlContext) -> i32 {
    // SAFETY: the kernel hands sysctl programs a valid context pointer.
    if unsafe { (*ctx.sysctl).write } == 0 {
        return PROCEED;
    }
    let mut r = Report::new(event::SYSCTL_DENIED);
    // The base name (`core_pattern`), cut to what an event carries.
    let mut name = [0u8; 16];
    // SAFETY: `name` is a writable buffer of the length given.
    unsafe {
        bpf_sysctl_get_name(
            ctx.sysctl,
            name.as_mut_ptr().cast(),
            name.len() as u64,
            u64::from(BPF_F_SYSCTL_BASE_NAME),
        );
    }
    r.addr = name;
    report(r);
    REFUSE
}

#[cgroup_device]
pub fn sluice_device(ctx: DeviceContext) -> i32 {
    // SAFETY: the kernel hands device programs a valid context pointer.
    let dev = unsafe { &*ctx.device };
    let kind = dev.access_type & 0xffff;
    let access = dev.access_type >> 16;
    let memory =
        kind != BPF_DEVCG_DEV_BLOCK && dev.major == MEM_MAJOR && matches!(dev.minor, 1 | 2 | 4);
    if kind != BPF_DEVCG_DEV_BLOCK && !memory && access & BPF_DEVCG_ACC_MKNOD == 0 {
        return PROCEED;
    }
    let mut r = Report::new(event::DEVICE_DENIED);
    r.detail = kind as u16;
    r.arg = (u64::from(dev.major) << 32) | u64::from(dev.minor);
    r.arg2 = u64::from(access);
    report(r);
    REFUSE
}
