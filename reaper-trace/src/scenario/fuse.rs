//! A one-file FUSE file system served by a forked process. Closing the file sends
//! `FUSE_FLUSH` and waits for the answer, and an exiting process closes its files in
//! `do_exit` (`exit_files`) after it set `PF_EXITING` (`exit_signals`) and before it hands
//! its children on (`exit_notify`). Answering the flush only once a condition holds keeps
//! the process inside its exit, `PF_EXITING` set, for as long as that takes: a hold by
//! construction, on any kernel with FUSE. (The flush waits for the answer in an exiting
//! task too; the 2023 change that made it asynchronous there, "fuse: in fuse_flush only
//! wait if someone wants the return code", was reverted by 91ec6c85599b for 6.6 and the
//! stable trees. On a kernel that has it, nothing is held and the scenarios say so: their
//! `/proc` facts fail.) The ptrace exit stop cannot do this:
//! `ptrace_event(PTRACE_EVENT_EXIT)` comes before `exit_signals`.

use std::os::fd::RawFd;
use std::path::PathBuf;

use anyhow::{Result, bail};

const FUSE_LOOKUP: u32 = 1;
const FUSE_FORGET: u32 = 2;
const FUSE_GETATTR: u32 = 3;
const FUSE_OPEN: u32 = 14;
const FUSE_RELEASE: u32 = 18;
const FUSE_FLUSH: u32 = 25;
const FUSE_INIT: u32 = 26;
const FUSE_OPENDIR: u32 = 27;
const FUSE_RELEASEDIR: u32 = 29;
const FUSE_INTERRUPT: u32 = 36;
const FUSE_BATCH_FORGET: u32 = 42;
/// The file's name and inode number (the root directory's is 1).
pub const FILE: &str = "hold";
const FILE_INO: u64 = 2;
const ROOT_INO: u64 = 1;

/// The protocol version spoken (7.31: Linux 5.10's, answered by every newer kernel).
const PROTOCOL: [u32; 2] = [7, 31];
/// `struct fuse_in_header`: its size, and where the node id and the caller's pid are.
const IN_HEADER: usize = 40;
const IN_NODEID: usize = 16;
const IN_PID: usize = 32;
/// `struct fuse_out_header`: length, error, unique.
const OUT_HEADER: usize = 16;
/// Sizes of the replies' structs (`fuse_attr`, `fuse_init_out`, `fuse_entry_out`,
/// `fuse_attr_out`, `fuse_open_out`).
const ATTR_SIZE: usize = 88;
const INIT_OUT_SIZE: usize = 64;
const ENTRY_OUT_SIZE: usize = 128;
const ATTR_OUT_SIZE: usize = 104;
const OPEN_OUT_SIZE: usize = 16;
/// How long the kernel may cache names and attributes, in seconds: the file never changes.
const VALID_SECS: u64 = 3600;
/// Block size and largest write announced.
const BLOCK: u32 = 4096;
/// A request buffer as large as any request the kernel sends (1 MiB).
const REQUEST_BUFFER: usize = 1 << 20;
/// The file handle every open gets.
const FILE_HANDLE: u64 = 1;

pub fn available() -> bool {
    std::path::Path::new("/dev/fuse").exists()
        && std::fs::read_to_string("/proc/filesystems").is_ok_and(|s| {
            s.lines()
                .any(|l| l.split_whitespace().last() == Some("fuse"))
        })
}

/// A mounted hold; unmounting it ends its server.
pub struct Hold {
    dir: PathBuf,
}

impl Hold {
    /// Mounts the file system in a new private mount namespace of the calling process
    /// (its children share it; nothing outside sees the mount) and forks its server. The
    /// server calls `on_flush(pid)` when process `pid` flushes the file (it closed it, or
    /// exits with it open) and answers that flush only once `on_flush` returns.
    pub fn mount(on_flush: impl FnOnce(u32)) -> Result<Hold> {
        // SAFETY: unshare and mount with constant arguments.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                bail!("unshare(CLONE_NEWNS): {}", std::io::Error::last_os_error());
            }
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                bail!("making / private: {}", std::io::Error::last_os_error());
            }
        }
        let dir = std::env::temp_dir().join(format!("reaper-trace-hold-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&dev);
        let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
        let opts = std::ffi::CString::new(format!(
            "fd={fd},rootmode={:o},user_id=0,group_id=0",
            libc::S_IFDIR
        ))?;
        // SAFETY: mount with valid C strings.
        let r = unsafe {
            libc::mount(
                c"reaper-trace".as_ptr(),
                target.as_ptr(),
                c"fuse".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                opts.as_ptr().cast(),
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            let _ = std::fs::remove_dir(&dir);
            bail!("mounting FUSE: {e}");
        }
        // The server holds the only descriptor of the connection: if it dies, the
        // connection is aborted and whoever it held goes on.
        super::sys::fork_then(|| serve(fd, on_flush))?;
        drop(dev);
        Ok(Hold { dir })
    }

    /// The held file: open it in the process to hold.
    pub fn file(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Unmounts (the server then ends) and removes the mount point.
    pub fn unmount(self) {
        if let Ok(target) = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes()) {
            // SAFETY: umount2 with a valid C string.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `struct fuse_attr` of the root directory (1) or the file.
fn attr(ino: u64) -> Vec<u8> {
    let mut a = Vec::with_capacity(ATTR_SIZE);
    a.extend_from_slice(&ino.to_ne_bytes());
    a.extend_from_slice(&[0; 8 * 5]); // size, blocks, atime, mtime, ctime
    a.extend_from_slice(&[0; 4 * 3]); // their nanoseconds
    let mode: u32 = if ino == ROOT_INO {
        libc::S_IFDIR | 0o755
    } else {
        libc::S_IFREG | 0o644
    };
    for v in [mode, 1, 0, 0, 0, BLOCK, 0] {
        // mode, nlink, uid, gid, rdev, blksize, flags
        a.extend_from_slice(&v.to_ne_bytes());
    }
    a
}

/// Answers requests until the file system is unmounted (the read fails).
fn serve(fd: RawFd, on_flush: impl FnOnce(u32)) -> i32 {
    let mut on_flush = Some(on_flush);
    let mut buf = vec![0u8; REQUEST_BUFFER];
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = super::sys::errno();
            // ENOENT: the request was interrupted before we read it.
            if e == libc::EINTR || e == libc::ENOENT || e == libc::EAGAIN {
                continue;
            }
            return 0;
        }
        let req = &buf[..n as usize];
        if req.len() < IN_HEADER {
            continue;
        }
        let opcode = u32_at(req, 4);
        let unique = u64_at(req, 8);
        let nodeid = u64_at(req, IN_NODEID);
        let pid = u32_at(req, IN_PID);
        let body = &req[IN_HEADER..];
        let reply = |error: i32, data: &[u8]| {
            let mut out = Vec::with_capacity(OUT_HEADER + data.len());
            out.extend_from_slice(&((OUT_HEADER + data.len()) as u32).to_ne_bytes());
            out.extend_from_slice(&error.to_ne_bytes());
            out.extend_from_slice(&unique.to_ne_bytes());
            out.extend_from_slice(data);
            // SAFETY: writing our buffer to the device.
            unsafe { libc::write(fd, out.as_ptr().cast(), out.len()) };
        };
        match opcode {
            FUSE_INIT => {
                // struct fuse_init_out: major, minor, max_readahead, flags,
                // max_background, congestion_threshold, max_write, time_gran, max_pages,
                // map_alignment, flags2, then unused space: 64 bytes.
                let mut out = Vec::with_capacity(INIT_OUT_SIZE);
                for v in [PROTOCOL[0], PROTOCOL[1], 0, 0] {
                    out.extend_from_slice(&v.to_ne_bytes());
                }
                out.extend_from_slice(&[0; 4]); // max_background, congestion_threshold
                out.extend_from_slice(&BLOCK.to_ne_bytes()); // max_write
                out.resize(INIT_OUT_SIZE, 0);
                reply(0, &out);
            }
            FUSE_LOOKUP => {
                let name = body.split(|&c| c == 0).next().unwrap_or_default();
                if nodeid == ROOT_INO && name == FILE.as_bytes() {
                    // struct fuse_entry_out: nodeid, generation, entry_valid,
                    // attr_valid, their nanoseconds, attr.
                    let mut out = Vec::with_capacity(ENTRY_OUT_SIZE);
                    for v in [FILE_INO, 0, VALID_SECS, VALID_SECS] {
                        out.extend_from_slice(&v.to_ne_bytes());
                    }
                    out.extend_from_slice(&[0; 8]);
                    out.extend_from_slice(&attr(FILE_INO));
                    reply(0, &out);
                } else {
                    reply(-libc::ENOENT, &[]);
                }
            }
            FUSE_GETATTR => {
                // struct fuse_attr_out: attr_valid, its nanoseconds, dummy, attr.
                let mut out = Vec::with_capacity(ATTR_OUT_SIZE);
                out.extend_from_slice(&VALID_SECS.to_ne_bytes());
                out.extend_from_slice(&[0; 8]);
                out.extend_from_slice(&attr(nodeid));
                reply(0, &out);
            }
            FUSE_OPEN | FUSE_OPENDIR => {
                // struct fuse_open_out: fh, open_flags, backing_id.
                let mut out = Vec::with_capacity(OPEN_OUT_SIZE);
                out.extend_from_slice(&FILE_HANDLE.to_ne_bytes());
                out.extend_from_slice(&[0; 8]);
                reply(0, &out);
            }
            FUSE_FLUSH => {
                if nodeid == FILE_INO
                    && let Some(f) = on_flush.take()
                {
                    f(pid);
                }
                reply(0, &[]);
            }
            FUSE_RELEASE | FUSE_RELEASEDIR => reply(0, &[]),
            FUSE_FORGET | FUSE_BATCH_FORGET | FUSE_INTERRUPT => {}
            _ => reply(-libc::ENOSYS, &[]),
        }
    }
}
