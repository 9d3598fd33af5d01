//! `--web-config FILE`: TLS and basic authentication for `/metrics`, in the file format of
//! Prometheus's exporter-toolkit (what node_exporter and the other exporters read), so one
//! file and one habit serve them all:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt     # PEM; relative paths are relative to this file
//!   key_file: server.key
//!   min_version: TLS12        # or TLS13 (the default: TLS12)
//! basic_auth_users:
//!   prometheus: $2y$10$...    # bcrypt hashes (htpasswd -nBC 10 USER)
//! ```
//!
//! Any other setting of that format (client certificates, cipher suites, HTTP/2, headers) is
//! refused by name rather than ignored: a setting that seems to protect but does not is worse
//! than an error.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    tls_server_config: Option<TlsFormat>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFormat {
    cert_file: PathBuf,
    key_file: PathBuf,
    min_version: Option<String>,
}

/// What `--web-config` asks for.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub users: Option<Arc<Users>>,
}

impl WebConfig {
    /// Reads and checks `path`: every error is one line that names the file and what to fix.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the web configuration {}", path.display()))?;
        let format: FileFormat = serde_yaml_ng::from_str(&text).map_err(|e| {
            anyhow!(
                "the web configuration {} is not valid: {} (reaper-trace reads tls_server_config: cert_file, key_file, min_version; and basic_auth_users)",
                path.display(),
                one_line(&e.to_string())
            )
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = format
            .tls_server_config
            .map(|t| tls_config(dir, &t).map(Arc::new))
            .transpose()
            .with_context(|| format!("in the web configuration {}", path.display()))?;
        let users = format
            .basic_auth_users
            .map(|u| Users::new(u).map(Arc::new))
            .transpose()
            .with_context(|| format!("in the web configuration {}", path.display()))?;
        Ok(Self { tls, users })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn tls_config(dir: &Path, t: &TlsFormat) -> Result<rustls::ServerConfig> {
    let cert_file = dir.join(&t.cert_file);
    let key_file = dir.join(&t.key_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|certs| certs.collect())
        .map_err(|e| {
            anyhow!(
                "cert_file {}: {e}: give a PEM certificate",
                cert_file.display()
            )
        })?;
    if certs.is_empty() {
        bail!("cert_file {} holds no PEM certificate", cert_file.display());
    }
    let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| {
        anyhow!(
            "key_file {}: {e}: give a PEM private key",
            key_file.display()
        )
    })?;
    let versions: &[&rustls::SupportedProtocolVersion] = match t.min_version.as_deref() {
        None | Some("TLS12") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(other) => bail!("min_version {other}: reaper-trace offers TLS12 or TLS13"),
    };
    // ring rather than rustls's default, aws-lc-rs: it builds from Rust and a little C with
    // the compiler every machine here has, where AWS-LC would add a CMake build of minutes to
    // every clean build. Its cost: no post-quantum key exchange (X25519 and the NIST curves).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            anyhow!(
                "cert_file {} and key_file {} do not make a server identity: {e}",
                cert_file.display(),
                key_file.display()
            )
        })
}

/// The users of `basic_auth_users`, and the passwords already checked against their hashes
/// (a bcrypt check takes tens of milliseconds by design: Prometheus's every scrape would pay
/// it, and a flood of wrong guesses would cost the daemon that much CPU each).
pub struct Users {
    hashes: BTreeMap<String, String>,
    checked: Mutex<HashMap<String, String>>,
}

impl Users {
    fn new(hashes: BTreeMap<String, String>) -> Result<Self> {
        for (user, hash) in &hashes {
            if user.contains(':') {
                bail!("basic_auth_users: the user name {user:?} contains a colon");
            }
            if !["$2a$", "$2b$", "$2x$", "$2y$"]
                .iter()
                .any(|p| hash.starts_with(p))
            {
                bail!(
                    "basic_auth_users: {user}'s password is not a bcrypt hash: make one with `htpasswd -nBC 10 {user}`"
                );
            }
        }
        Ok(Self {
            hashes,
            checked: Mutex::new(HashMap::new()),
        })
    }

    /// Whether an `Authorization` header names a user and their password. Runs bcrypt (slow,
    /// on purpose): call it off the async threads.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return false;
        };
        let Some(hash) = self.hashes.get(&user) else {
            return false;
        };
        if self
            .checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user)
            .is_some_and(|known| constant_time_eq(known.as_bytes(), password.as_bytes()))
        {
            return true;
        }
        let ok = bcrypt::verify(&password, hash).unwrap_or(false);
        if ok {
            self.checked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(user, password);
        }
        ok
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `Basic BASE64(user:password)` → (user, password).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rt-web-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn header(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn users_need_their_password() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Users::new(BTreeMap::from([("prom".to_string(), hash)])).unwrap();
        assert!(users.allows(Some(&header("prom", "s3cret"))));
        // Again: from the cache of checked passwords, still only the right one.
        assert!(users.allows(Some(&header("prom", "s3cret"))));
        assert!(!users.allows(Some(&header("prom", "s3cret!"))));
        assert!(!users.allows(Some(&header("prom", ""))));
        assert!(!users.allows(Some(&header("other", "s3cret"))));
        assert!(!users.allows(Some("Bearer abc")));
        assert!(!users.allows(Some("Basic !!!")));
        assert!(!users.allows(None));
    }

    #[test]
    fn errors_name_the_file_and_the_fix() {
        let dir = temp_dir("errors");
        let err = |text: &str| {
            let path = write(&dir, "web.yml", text);
            let e = format!("{:#}", WebConfig::load(&path).err().expect("refused"));
            assert!(!e.contains('\n'), "{e}");
            e
        };
        let e = err(
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: RequireAndVerifyClientCert\n",
        );
        assert!(e.contains("unknown field `client_auth_type`"), "{e}");
        let e = err("basic_auth_users:\n  prom: plain-text\n");
        assert!(e.contains("htpasswd -nBC 10 prom"), "{e}");
        let e = err("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n");
        assert!(e.contains("missing.crt") && e.contains("web.yml"), "{e}");
        let e = err("tls_server_config: [\n");
        assert!(e.contains("is not valid"), "{e}");
        let missing = WebConfig::load(&dir.join("nowhere.yml")).err().unwrap();
        assert!(format!("{missing:#}").contains("cannot read the web configuration"));
        // An empty file asks for nothing: plain HTTP, no password.
        let path = write(&dir, "empty.yml", "");
        let none = WebConfig::load(&path).unwrap();
        assert!(none.tls.is_none() && none.users.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
