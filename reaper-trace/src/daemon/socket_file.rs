//! The daemon's Unix socket file: created mode 0600, and removed only when it is still the
//! one this daemon created. Whatever else is at the path (a regular file, a directory, a
//! socket another daemon answers on or took over since) is never removed.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tokio::net::UnixListener;

/// The socket file this daemon created: its path and identity. A file system reuses a
/// freed inode number at once, so the identity is the device, the inode and its change
/// time: a socket bound at that path since has a later one.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    identity: Identity,
}

#[derive(Debug, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

impl Identity {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// What is at the socket path before binding.
#[derive(Debug)]
enum Occupant {
    Nothing,
    /// A socket nobody listens on (connecting is refused): left by a daemon that died.
    StaleSocket,
    /// A socket a daemon answers on.
    LiveSocket,
    /// A socket that may not be connected to by this user: whether it is live is unknown.
    UncheckableSocket(std::io::Error),
    /// Not a socket: a regular file, a directory, a device...
    NotASocket(&'static str),
}

fn describe(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a regular file"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a FIFO"
    } else {
        "a device"
    }
}

fn occupant(path: &Path) -> Result<Occupant> {
    // lstat: a symbolic link is judged as itself, never followed to what it names.
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Occupant::Nothing),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot look at {}: choose another --socket",
                path.display()
            )));
        }
    };
    if !meta.file_type().is_socket() {
        return Ok(Occupant::NotASocket(describe(meta.file_type())));
    }
    Ok(match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Occupant::LiveSocket,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Occupant::StaleSocket,
        Err(e) => Occupant::UncheckableSocket(e),
    })
}

impl SocketFile {
    /// Binds a listener at `path` with mode 0600 (created so: the umask is set around the
    /// bind). A stale socket there is replaced; anything else there is a user error.
    pub fn bind(path: &Path) -> Result<(UnixListener, Self)> {
        match occupant(path)? {
            Occupant::Nothing => {}
            Occupant::StaleSocket => std::fs::remove_file(path).with_context(|| {
                format!(
                    "cannot replace the stale socket {}: remove it, or choose another --socket",
                    path.display()
                )
            })?,
            Occupant::LiveSocket => bail!(
                "a daemon already listens on {}: stop it, or choose another --socket",
                path.display()
            ),
            Occupant::UncheckableSocket(e) => bail!(
                "{} is a socket this user cannot check ({e}): run as root, or choose another --socket",
                path.display()
            ),
            Occupant::NotASocket(what) => bail!(
                "{} is {what}, not a socket: choose another --socket (reaper-trace never removes it)",
                path.display()
            ),
        }
        // SAFETY: umask only changes this process's file creation mask.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        unsafe { libc::umask(old) };
        let listener = bound.with_context(|| {
            format!(
                "cannot listen on {}: choose a writable --socket path",
                path.display()
            )
        })?;
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot look at {} after binding it", path.display()))?;
        Ok((
            listener,
            Self {
                path: path.to_path_buf(),
                identity: Identity::of(&meta),
            },
        ))
    }

    /// Whether the file at the path is still the socket this daemon created.
    fn still_ours(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && Identity::of(&m) == self.identity)
    }
}

impl Drop for SocketFile {
    /// Removes the socket file, unless another daemon has taken the path over since.
    fn drop(&mut self) {
        if self.still_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rt-sock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn anything_but_a_stale_socket_is_left_alone() {
        let dir = temp("alone");
        let file = dir.join("passwd");
        std::fs::write(&file, "root:x:0:0\n").unwrap();
        let sub = dir.join("subdir");
        std::fs::create_dir(&sub).unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let rt = runtime();
        let _g = rt.enter();
        for (path, what) in [
            (&file, "a regular file"),
            (&sub, "a directory"),
            (&link, "a symbolic link"),
        ] {
            let err = SocketFile::bind(path).unwrap_err().to_string();
            assert!(
                err.contains(&format!("is {what}, not a socket")) && !err.contains('\n'),
                "{err}"
            );
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "root:x:0:0\n");
        assert!(sub.is_dir() && link.symlink_metadata().is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = temp("stale");
        let path = dir.join("d.sock");
        // A socket nobody listens on any more.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(matches!(occupant(&path).unwrap(), Occupant::StaleSocket));
        let rt = runtime();
        let _g = rt.enter();
        let (listener, file) = SocketFile::bind(&path).unwrap();
        let err = SocketFile::bind(&path).unwrap_err().to_string();
        assert!(err.contains("a daemon already listens on"), "{err}");
        drop(listener);
        drop(file);
        assert!(!path.exists(), "its own socket is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_socket_taken_over_since_is_not_removed() {
        let dir = temp("taken");
        let path = dir.join("d.sock");
        let rt = runtime();
        let _g = rt.enter();
        let (listener, first) = SocketFile::bind(&path).unwrap();
        drop(listener);
        // Time stamps move by the clock's tick (a few ms): the next socket gets a later one.
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Another daemon found it stale and replaced it with its own.
        let (_listener2, second) = SocketFile::bind(&path).unwrap();
        drop(first);
        assert!(path.exists(), "the other daemon's socket is still there");
        drop(second);
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
