//! A web configuration for `daemon --web-config` as an operator makes one: a CA and a
//! certificate for 127.0.0.1 signed by it (openssl), and a bcrypt user, in a temporary
//! directory; and curl, trusting only that CA, to scrape with it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TempPath;

pub const USER: &str = "prometheus";
pub const PASSWORD: &str = "a long scrape password";

pub struct SecureWeb {
    pub dir: TempPath,
}

impl SecureWeb {
    /// `web.yml` (TLS and the user [`USER`] with [`PASSWORD`]), `server.crt`, `server.key`
    /// and `ca.crt` in a new directory.
    pub fn new(name: &str) -> Self {
        let dir = TempPath::new(name);
        std::fs::create_dir_all(&dir.0).unwrap();
        certificates(&dir.0);
        let hash = bcrypt::hash(PASSWORD, 10).unwrap();
        // Relative paths: relative to the file, as exporter-toolkit reads them.
        std::fs::write(
            dir.0.join("web.yml"),
            format!(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  {USER}: {hash}\n"
            ),
        )
        .unwrap();
        Self { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.0.join("web.yml")
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.0.join("ca.crt")
    }

    /// curl's HTTP status for `url` (0: no HTTP answer) and the body, with `user`.
    pub fn curl(&self, url: &str, user: Option<(&str, &str)>) -> (u32, String) {
        let body = self.dir.0.join("body");
        let mut c = Command::new("curl");
        c.args(["-s", "-w", "%{http_code}", "--max-time", "10", "-o"])
            .arg(&body)
            .arg("--cacert")
            .arg(self.ca());
        if let Some((user, password)) = user {
            c.arg("-u").arg(format!("{user}:{password}"));
        }
        let out = c.arg(url).output().expect("curl runs");
        let status = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let text = std::fs::read_to_string(&body).unwrap_or_default();
        let _ = std::fs::remove_file(&body);
        (status, text)
    }

    /// The metrics at `https://ADDR/metrics` with the password, if they come.
    pub fn scrape(&self, addr: &str) -> Option<String> {
        let (status, body) = self.curl(&format!("https://{addr}/metrics"), Some((USER, PASSWORD)));
        (status == 200).then_some(body)
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, with openssl, in `dir`.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=reaper-trace test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}
