//! The few bpf() commands aya does not offer for what sluice needs: `BPF_PROG_QUERY` on a cgroup
//! (aya answers it only for device and lirc programs); `BPF_LINK_CREATE` + `BPF_OBJ_PIN` for
//! the sysctl and device programs (aya keeps their links private, so they could not be pinned,
//! and an unpinned link ends with the process that made it); and `BPF_PROG_LOAD` of the
//! two-instruction programs on the unix-socket hooks, which aya 0.14 does not know.

use std::{
    ffi::CString,
    os::{
        fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_LINK_CREATE: libc::c_long = 28;

/// Layout of the `query` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// The start of the `link_create` member (the rest stays zero: no target-specific options).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    _rest: [u64; 6],
}

/// The `obj_pin` member.
#[repr(C)]
#[derive(Default)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    #[allow(unsafe_code)]
    // SAFETY: `attr` is a valid, fully initialised `union bpf_attr` member for `cmd`, alive for
    // the call; every pointer in it points at memory that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `BPF_F_QUERY_EFFECTIVE`: the programs in effect (attached here or inherited from ancestors).
const QUERY_EFFECTIVE: u32 = 1;

/// Ids of the programs attached to `cgroup` for `attach_type` (with `effective`, also those
/// inherited from its ancestors).
pub fn attached_programs(
    cgroup: impl AsFd,
    attach_type: u32,
    effective: bool,
) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_fd().as_raw_fd() as u32,
        attach_type,
        query_flags: if effective { QUERY_EFFECTIVE } else { 0 },
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate((attr.prog_cnt as usize).min(64));
    Ok(ids)
}

/// Attaches a loaded program to a cgroup as a link (always "multi": other programs stay).
pub fn link_create(
    prog: impl AsFd,
    cgroup: impl AsFd,
    attach_type: u32,
) -> std::io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_fd().as_raw_fd() as u32,
        target_fd: cgroup.as_fd().as_raw_fd() as u32,
        attach_type,
        ..Default::default()
    };
    let fd = bpf(BPF_LINK_CREATE, &mut attr)?;
    #[allow(unsafe_code)]
    // SAFETY: BPF_LINK_CREATE returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Pins a bpf object (here: a link) at `path` in bpffs.
pub fn obj_pin(fd: impl AsFd, path: &Path) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut attr = ObjPinAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd.as_fd().as_raw_fd() as u32,
        ..Default::default()
    };
    bpf(BPF_OBJ_PIN, &mut attr).map(|_| ())
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;

/// The start of the `prog_load` member (no BTF, no log: the program is two instructions).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _rest: [u64; 8],
}

/// A cgroup sock_addr program that answers `verdict` to every call: `r0 = verdict; exit`.
/// For the unix-socket hooks (`BPF_CGROUP_UNIX_CONNECT`/`SENDMSG`, Linux 6.7), which aya 0.14
/// cannot load; refusing every unix connect needs nothing more.
pub fn load_constant_sock_addr(
    name: &str,
    expected_attach_type: u32,
    verdict: i32,
) -> std::io::Result<OwnedFd> {
    // BPF_ALU64 | BPF_MOV | BPF_K into r0, then BPF_JMP | BPF_EXIT.
    let insns: [u64; 2] = [0xb7 | (u64::from(verdict as u32) << 32), 0x95];
    let license = c"GPL";
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name,
        expected_attach_type,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    #[allow(unsafe_code)]
    // SAFETY: BPF_PROG_LOAD returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The kernel id of a loaded program.
pub fn program_id(prog: impl AsFd) -> std::io::Result<u32> {
    #[repr(C)]
    #[derive(Default)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // The start of `struct bpf_prog_info`: type, id, ...
    let mut info = [0u32; 64];
    let mut attr = InfoAttr {
        bpf_fd: prog.as_fd().as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info[1])
}
