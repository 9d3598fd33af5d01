//! A hostile neighbour for the daemon tests: opens N TCP connections to ADDR and holds them,
//! idle (`idle`: sends nothing) or half a request header (`partial`: slowloris), for SECS
//! seconds. Prints `held K` once K connections are open, then after SECS `closed C`: how
//! many of them the daemon has closed by then. Run as an unprivileged user.
//!
//! usage: hold_connections ADDR N SECS idle|partial

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, n, secs, mode] = &args[..] else {
        eprintln!("usage: hold_connections ADDR N SECS idle|partial");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let secs: u64 = secs.parse().expect("SECS is a number");
    raise_file_limit();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        // A connection the daemon's backlog still takes counts: that is what costs it a file.
        match TcpStream::connect_timeout(&addr.parse().expect("ADDR"), Duration::from_secs(5)) {
            Ok(mut s) => {
                if mode == "partial" {
                    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
                }
                held.push(s);
            }
            Err(_) => break,
        }
    }
    println!("held {}", held.len());
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(secs));
    let closed = held.iter_mut().map(is_closed).filter(|&c| c).count();
    println!("closed {closed}");
}

/// Whether the other end has closed the connection: a read gives end of file or a reset
/// (a connection left open has nothing to read and times out).
fn is_closed(s: &mut TcpStream) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // An answer (400 to half a request, say) before the close: read on.
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// An unprivileged user's soft limit (1,024) is below what it may hold.
fn raise_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit fill and read a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
