//! Which container a pid namespace is: resolved once per namespace, from the cgroup of its
//! init (`/proc/PID/cgroup`, cgroup v1 or v2), and named from what the runtime keeps on disk
//! (no network call, no runtime API).
//!
//! The parsing functions are pure ([`parse_cgroup_file`], [`parse_cgroup_path`]); the
//! [`Resolver`] reads `/proc` and the runtimes' files under a root directory (`/` on a host,
//! the host's root mounted elsewhere in a container).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The container runtime a pid namespace belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Docker,
    /// containerd, directly (nerdctl, ctr) or under Kubernetes (CRI).
    Containerd,
    #[serde(rename = "cri-o")]
    CriO,
    Podman,
    SystemdNspawn,
    /// A pid namespace that no runtime's cgroup names (`unshare -p`, a sandbox, a test).
    None,
    /// The namespace's init and every task seen in it were gone before their cgroup was read.
    Unknown,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Podman => "podman",
            Self::SystemdNspawn => "systemd-nspawn",
            Self::None => "none",
            Self::Unknown => "unknown",
        }
    }
}

/// What the cgroup path alone says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMatch {
    pub runtime: Option<Runtime>,
    /// The container id (64 hex digits for OCI runtimes).
    pub id: Option<String>,
    /// Kubernetes pod uid (with dashes), when the path is under `kubepods`.
    pub pod_uid: Option<String>,
    /// A name the path itself carries (systemd-nspawn machines).
    pub name: Option<String>,
    /// The path does not say which runtime (Kubernetes over the cgroupfs driver): the
    /// runtime's files decide.
    pub guessed: bool,
}

/// A pid namespace's container, as the `container` event carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub runtime: Option<Runtime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The container's name (Docker's, Podman's, the Kubernetes container's, the machine's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Kubernetes: the pod, its namespace and uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The namespace's init (global pid) whose cgroup was read, when it was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_pid: Option<u32>,
    /// The cgroup path that was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
}

impl ContainerInfo {
    /// How a person names it, shortest first: the name, else the runtime and short id, else
    /// the namespace's inode. Untrusted text: escape before a terminal.
    pub fn label(&self, pidns: u32) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match (&self.runtime, &self.id) {
            (Some(r), Some(id)) => format!("{}:{}", r.as_str(), short_id(id)),
            _ => format!("ns:{pidns}"),
        }
    }

    /// `container test (docker 3f2a1b2c4d5e)`, `pod default/web container app (containerd
    /// 3f2a…)`, `pid namespace 4026532177`: for sentences.
    pub fn describe(&self, pidns: u32) -> String {
        let runtime = self.runtime.unwrap_or(Runtime::Unknown);
        let rid = match &self.id {
            // A name its client gave (`ctr run IMAGE NAME`) is said once.
            Some(id) if self.name.as_ref() != Some(id) => {
                format!("{} {}", runtime.as_str(), short_id(id))
            }
            _ => runtime.as_str().to_string(),
        };
        match (&self.pod, &self.name) {
            (Some(pod), name) => format!(
                "pod {}/{}{} ({rid})",
                self.pod_namespace.as_deref().unwrap_or("?"),
                pod,
                name.as_ref()
                    .map(|n| format!(" container {n}"))
                    .unwrap_or_default()
            ),
            (None, Some(name)) => format!("container {name} ({rid})"),
            (None, None) if self.id.is_some() => format!("container {rid}"),
            _ => format!("pid namespace {pidns} (runtime {})", runtime.as_str()),
        }
    }

    /// Whether `pattern` names it: its name, pod name, or a prefix of its id.
    pub fn matches(&self, pattern: &str) -> bool {
        let p = pattern.strip_prefix('/').unwrap_or(pattern);
        !p.is_empty()
            && (self.name.as_deref() == Some(p)
                || self.pod.as_deref() == Some(p)
                || self.id.as_deref().is_some_and(|id| id.starts_with(p)))
    }
}

/// How many characters of an id `docker ps` shows.
const SHORT_ID_LEN: usize = 12;
/// A container id is a SHA-256 in hex.
const CONTAINER_ID_LEN: usize = 64;
/// A pod uid is a UUID: 32 hex digits and 4 dashes.
const POD_UID_LEN: usize = 36;
/// The most of a runtime's JSON file that is read: they are a few KiB.
const MAX_JSON_BYTES: u64 = 16 << 20;

/// The first characters of an id, as `docker ps` shows it.
pub fn short_id(id: &str) -> &str {
    id.get(..SHORT_ID_LEN).unwrap_or(id)
}

fn is_container_id(s: &str) -> bool {
    s.len() == CONTAINER_ID_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `pod0f3e4a1c_2b8d_...` or `kubepods-burstable-pod0f3e..._...slice`: the pod uid with dashes.
fn pod_uid(component: &str) -> Option<String> {
    let c = component.strip_suffix(".slice").unwrap_or(component);
    const POD: &str = "pod";
    let i = c.rfind(POD)?;
    let uid = &c[i + POD.len()..];
    let uid = uid.replace('_', "-");
    (uid.len() == POD_UID_LEN && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .then_some(uid)
}

/// Undoes systemd's unit name escaping (`\x2d` is `-`).
fn systemd_unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(v) = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What one cgroup path says about its container, if anything.
pub fn parse_cgroup_path(path: &str) -> Option<CgroupMatch> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let kube = parts.iter().any(|c| c.starts_with("kubepods"));
    let pod_uid = if kube {
        parts.iter().rev().find_map(|c| pod_uid(c))
    } else {
        None
    };
    // The innermost component that names a container: `docker-ID.scope`, `ID`, ...
    for (i, c) in parts.iter().enumerate().rev() {
        let scope = c.strip_suffix(".scope").unwrap_or(c);
        let prefixed = [
            ("docker-", Runtime::Docker),
            ("cri-containerd-", Runtime::Containerd),
            ("crio-", Runtime::CriO),
            ("libpod-", Runtime::Podman),
            ("nerdctl-", Runtime::Containerd),
        ];
        for (prefix, runtime) in prefixed {
            if let Some(id) = scope.strip_prefix(prefix)
                && is_container_id(id)
            {
                return Some(CgroupMatch {
                    runtime: Some(runtime),
                    id: Some(id.to_string()),
                    pod_uid,
                    name: None,
                    guessed: false,
                });
            }
        }
        if is_container_id(c) {
            // cgroupfs driver: the parent says which runtime.
            let parent = i.checked_sub(1).map(|j| parts[j]).unwrap_or("");
            let runtime = if kube {
                // Kubernetes with the cgroupfs driver: containerd or cri-o, the path does not
                // say; containerd is by far the most common, docker (dockershim) is named
                // from its config on disk by the resolver.
                Runtime::Containerd
            } else if parent == "docker" {
                Runtime::Docker
            } else if parent == "libpod_parent" || parent.starts_with("libpod") {
                Runtime::Podman
            } else {
                // containerd's cgroupfs layout: /<containerd namespace>/<id>.
                Runtime::Containerd
            };
            return Some(CgroupMatch {
                runtime: Some(runtime),
                id: Some(c.to_string()),
                pod_uid,
                name: None,
                guessed: kube,
            });
        }
        if let Some(name) = c
            .strip_prefix("systemd-nspawn@")
            .and_then(|n| n.strip_suffix(".service"))
        {
            return Some(CgroupMatch {
                runtime: Some(Runtime::SystemdNspawn),
                id: None,
                pod_uid: None,
                name: Some(systemd_unescape(name)),
                guessed: false,
            });
        }
        if parts.first() == Some(&"machine.slice")
            && let Some(name) = c
                .strip_prefix("machine-")
                .and_then(|n| n.strip_suffix(".scope"))
        {
            return Some(CgroupMatch {
                runtime: Some(Runtime::SystemdNspawn),
                id: None,
                pod_uid: None,
                name: Some(systemd_unescape(name)),
                guessed: false,
            });
        }
    }
    None
}

/// What a `/proc/PID/cgroup` file says: the first hierarchy whose path names a container,
/// the unified one (`0::`) first, then `name=systemd`, then the others (cgroup v1 lists one
/// line per hierarchy, v2 one `0::` line, hybrid both). Returns the match and the path.
pub fn parse_cgroup_file(contents: &str) -> Option<(CgroupMatch, String)> {
    let mut lines: Vec<(u8, &str)> = contents
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (hier, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            let rank = match (hier, ctrl) {
                ("0", "") => 0,
                (_, "name=systemd") => 1,
                _ => 2,
            };
            Some((rank, path))
        })
        .collect();
    lines.sort_by_key(|&(rank, _)| rank);
    lines
        .iter()
        .find_map(|&(_, path)| parse_cgroup_path(path).map(|m| (m, path.to_string())))
}

/// Where the runtimes keep what names a container, under one root (`/` on a host).
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// Docker's container name and, under dockershim, its Kubernetes labels:
    /// `/var/lib/docker/containers/ID/config.v2.json`.
    fn docker(&self, id: &str, info: &mut ContainerInfo) {
        let path = self.at(&format!("var/lib/docker/containers/{id}/config.v2.json"));
        let Some(v) = read_json(&path) else { return };
        if let Some(name) = v.get("Name").and_then(|n| n.as_str()) {
            info.name = Some(name.trim_start_matches('/').to_string());
        }
        if let Some(labels) = v.pointer("/Config/Labels") {
            let label = |k: &str| labels.get(k).and_then(|v| v.as_str()).map(String::from);
            if let Some(c) = label("io.kubernetes.container.name") {
                info.name = Some(c);
                info.pod = label("io.kubernetes.pod.name");
                info.pod_namespace = label("io.kubernetes.pod.namespace");
                info.pod_uid = label("io.kubernetes.pod.uid").or(info.pod_uid.take());
            }
        }
    }

    /// Podman's name: `/var/lib/containers/storage/overlay-containers/containers.json`.
    fn podman(&self, id: &str, info: &mut ContainerInfo) {
        let path = self.at("var/lib/containers/storage/overlay-containers/containers.json");
        let Some(v) = read_json(&path) else { return };
        let name = v.as_array().and_then(|all| {
            all.iter()
                .find(|c| c.get("id").and_then(|i| i.as_str()) == Some(id))
                .and_then(|c| c.pointer("/names/0"))
                .and_then(|n| n.as_str())
        });
        if let Some(n) = name {
            info.name = Some(n.to_string());
        }
    }

    /// containerd's clients that name containers themselves (`ctr run IMAGE NAME`): the
    /// cgroupfs path is `/<namespace>/<name>`, which looks like any other cgroup, so it is
    /// taken for a container only where containerd keeps that task's bundle (its own
    /// containerd's state, or the one Docker runs). The name is the container's id.
    fn containerd_task(&self, cgroup_file: &str) -> Option<(CgroupMatch, String)> {
        const TASK_DIRS: [&str; 2] = [
            "run/containerd/io.containerd.runtime.v2.task",
            "run/docker/containerd/daemon/io.containerd.runtime.v2.task",
        ];
        cgroup_file.lines().find_map(|line| {
            let path = line.splitn(3, ':').nth(2)?;
            let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
            let [namespace, id] = parts[..] else {
                return None;
            };
            if [namespace, id]
                .iter()
                .any(|c| c.starts_with('.') || c.contains(".slice"))
            {
                return None;
            }
            TASK_DIRS
                .iter()
                .any(|dir| self.at(&format!("{dir}/{namespace}/{id}")).is_dir())
                .then(|| {
                    (
                        CgroupMatch {
                            runtime: Some(Runtime::Containerd),
                            id: Some(id.to_string()),
                            pod_uid: None,
                            name: Some(id.to_string()),
                            guessed: false,
                        },
                        path.to_string(),
                    )
                })
        })
    }

    /// Kubernetes: the kubelet's log directories name the pod (`/var/log/pods/NS_POD_UID/`)
    /// and the container (`/var/log/containers/POD_NS_CONTAINER-ID.log`).
    fn kubernetes(&self, uid: &str, id: Option<&str>, info: &mut ContainerInfo) {
        if let Ok(dir) = std::fs::read_dir(self.at("var/log/pods")) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some((ns, pod)) = parse_pod_log_dir(&name, uid) {
                    info.pod_namespace = Some(ns);
                    info.pod = Some(pod);
                    break;
                }
            }
        }
        if let (Some(id), Some(pod), Some(ns)) = (id, &info.pod, &info.pod_namespace)
            && let Ok(dir) = std::fs::read_dir(self.at("var/log/containers"))
        {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(c) = parse_container_log_name(&name, pod, ns, id) {
                    info.name = Some(c);
                    break;
                }
            }
        }
    }
}

/// `NAMESPACE_POD_UID` (a kubelet pod log directory) for the pod `uid`.
pub fn parse_pod_log_dir(dir: &str, uid: &str) -> Option<(String, String)> {
    let rest = dir.strip_suffix(uid)?.strip_suffix('_')?;
    // Namespaces cannot contain `_`; pod names cannot either (DNS subdomains).
    let (ns, pod) = rest.split_once('_')?;
    Some((ns.to_string(), pod.to_string()))
}

/// `POD_NAMESPACE_CONTAINER-ID.log` (a kubelet container log link) for container `id`.
pub fn parse_container_log_name(file: &str, pod: &str, ns: &str, id: &str) -> Option<String> {
    let rest = file
        .strip_suffix(".log")?
        .strip_suffix(id)?
        .strip_suffix('-')?;
    let c = rest.strip_prefix(pod)?.strip_prefix('_')?;
    let c = c.strip_prefix(ns)?.strip_prefix('_')?;
    (!c.is_empty()).then(|| c.to_string())
}

/// Reads a runtime's JSON file (at most [`MAX_JSON_BYTES`]).
fn read_json(path: &Path) -> Option<serde_json::Value> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    let mut s = String::new();
    f.take(MAX_JSON_BYTES).read_to_string(&mut s).ok()?;
    serde_json::from_str(&s).ok()
}

/// What a cgroup file's match becomes, with the names found on disk.
pub fn resolve_from_cgroup(contents: &str, paths: &Paths) -> ContainerInfo {
    let Some((m, path)) = parse_cgroup_file(contents).or_else(|| paths.containerd_task(contents))
    else {
        let cgroup = contents
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(String::from);
        return ContainerInfo {
            runtime: Some(Runtime::None),
            cgroup,
            ..Default::default()
        };
    };
    let mut info = ContainerInfo {
        runtime: m.runtime,
        id: m.id.clone(),
        name: m.name.clone(),
        pod_uid: m.pod_uid.clone(),
        cgroup: Some(path),
        ..Default::default()
    };
    if let Some(id) = &m.id {
        match m.runtime {
            Some(Runtime::Docker) => paths.docker(id, &mut info),
            Some(Runtime::Podman) => paths.podman(id, &mut info),
            Some(Runtime::Containerd) if m.guessed => {
                // Kubernetes over the cgroupfs driver may be dockershim: Docker's file says.
                paths.docker(id, &mut info);
                if info.name.is_some() && info.pod.is_none() {
                    info.runtime = Some(Runtime::Docker);
                }
            }
            _ => {}
        }
    }
    if let Some(uid) = info.pod_uid.clone()
        && info.pod.is_none()
    {
        paths.kubernetes(&uid, m.id.as_deref(), &mut info);
    }
    info
}

/// Inode of the initial pid namespace (`PROC_PID_INIT_INO`).
pub const ROOT_PIDNS: u32 = 0xEFFF_FFFC;

fn pidns_of(pid: u32) -> Option<u32> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// Whether `pid` is its namespace's init: the last `NSpid` of `/proc/PID/status` is 1.
fn is_ns_init(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            == Some("1")
    })
}

/// Resolves pid namespaces to containers, each once (a resolved namespace is never read
/// again; namespaces seen are bounded by [`Resolver::MAX`], the oldest forgotten first).
pub struct Resolver {
    paths: Paths,
    /// The namespace of the host's init (the root namespace; with `hostPID`, the host's).
    host: Option<u32>,
    known: HashMap<u32, u64>,
    order: std::collections::VecDeque<u32>,
}

impl Resolver {
    pub const MAX: usize = 8192;

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            paths: Paths { root: root.into() },
            host: pidns_of(1),
            known: HashMap::new(),
            order: Default::default(),
        }
    }

    /// Whether events in `pidns` need a `container` event first (the host's and root
    /// namespaces never do).
    pub fn is_new(&self, pidns: u32) -> bool {
        pidns != 0
            && pidns != ROOT_PIDNS
            && Some(pidns) != self.host
            && !self.known.contains_key(&pidns)
    }

    /// Forgets `pidns` (its init was reaped: the namespace is gone, its inode free for reuse).
    pub fn forget(&mut self, pidns: u32) {
        if self.known.remove(&pidns).is_some() {
            self.order.retain(|&n| n != pidns);
        }
    }

    /// Resolves `pidns`, which `seen` (a global pid, its pid `ns_pid` in there) is in: from
    /// its init's cgroup, found by `seen` being it or by a scan of `/proc`; else from `seen`'s
    /// own cgroup while it lives. Remembers it.
    pub fn resolve(&mut self, pidns: u32, seen: u32, seen_ns_pid: u32) -> ContainerInfo {
        if self.known.len() >= Self::MAX
            && let Some(old) = self.order.pop_front()
        {
            self.known.remove(&old);
        }
        self.known.insert(pidns, 0);
        self.order.push_back(pidns);
        let init = if seen_ns_pid == 1 && pidns_of(seen) == Some(pidns) {
            Some(seen)
        } else {
            find_init(pidns)
        };
        let from = init.or_else(|| (pidns_of(seen) == Some(pidns)).then_some(seen));
        let Some(pid) = from else {
            return ContainerInfo {
                runtime: Some(Runtime::Unknown),
                ..Default::default()
            };
        };
        match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
            Ok(c) => {
                let mut info = resolve_from_cgroup(&c, &self.paths);
                info.init_pid = init;
                info
            }
            Err(_) => ContainerInfo {
                runtime: Some(Runtime::Unknown),
                ..Default::default()
            },
        }
    }
}

/// The global pid of `pidns`'s init, by a scan of `/proc` (namespaces are few and each is
/// resolved once).
fn find_init(pidns: u32) -> Option<u32> {
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| pidns_of(pid) == Some(pidns) && is_ns_init(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "64b030c6d8e1ed6a1e3f8700df8c06bfeb3c6fcddd8375d49ebdae1488bd1785";
    const UID: &str = "0f3e4a1c-2b8d-4b8e-9c31-3d6b1f1c2e77";

    fn m(runtime: Runtime, id: &str, pod: Option<&str>) -> CgroupMatch {
        CgroupMatch {
            runtime: Some(runtime),
            id: Some(id.into()),
            pod_uid: pod.map(String::from),
            name: None,
            guessed: false,
        }
    }

    #[test]
    fn docker_cgroupfs_on_v1() {
        // Docker 20.10 on this machine (cgroup v1, cgroupfs driver), verbatim.
        let file = format!(
            "9:name=systemd:/docker/{ID}\n8:pids:/docker/{ID}\n4:memory:/docker/{ID}\n\
             1:cpu:/docker/{ID}\n0::/docker/{ID}\n"
        );
        let (got, path) = parse_cgroup_file(&file).unwrap();
        assert_eq!(got, m(Runtime::Docker, ID, None));
        assert_eq!(path, format!("/docker/{ID}"));
    }

    #[test]
    fn docker_systemd_on_v2() {
        let file = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(
            parse_cgroup_file(&file).unwrap().0,
            m(Runtime::Docker, ID, None)
        );
    }

    #[test]
    fn hybrid_prefers_a_line_that_names_a_container() {
        // The unified hierarchy of a hybrid host is often empty (`0::/`): the v1 lines say.
        let file = format!("12:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/\n");
        assert_eq!(
            parse_cgroup_file(&file).unwrap().0,
            m(Runtime::Docker, ID, None)
        );
        // A host process: nothing.
        assert!(parse_cgroup_file("0::/user.slice/user-0.slice/session-3.scope\n").is_none());
        assert!(
            parse_cgroup_file("4:memory:/process_api/e1cb466426ccb6a9f061181edcc9d9d4\n0::/\n")
                .is_none()
        );
        assert!(parse_cgroup_file("").is_none());
    }

    #[test]
    fn kubernetes_systemd_v2_containerd_and_crio() {
        let uid_ = UID.replace('-', "_");
        let file = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(
            parse_cgroup_file(&file).unwrap().0,
            m(Runtime::Containerd, ID, Some(UID))
        );
        let file = format!("0::/kubepods.slice/kubepods-pod{uid_}.slice/crio-{ID}.scope\n");
        assert_eq!(
            parse_cgroup_file(&file).unwrap().0,
            m(Runtime::CriO, ID, Some(UID))
        );
    }

    #[test]
    fn kubernetes_cgroupfs_v1() {
        let guessed = CgroupMatch {
            guessed: true,
            ..m(Runtime::Containerd, ID, Some(UID))
        };
        let file = format!(
            "11:memory:/kubepods/burstable/pod{UID}/{ID}\n1:name=systemd:/kubepods/burstable/pod{UID}/{ID}\n"
        );
        assert_eq!(parse_cgroup_file(&file).unwrap().0, guessed);
        let file = format!("3:cpu:/kubepods/besteffort/pod{UID}/{ID}\n");
        assert_eq!(parse_cgroup_file(&file).unwrap().0, guessed);
    }

    #[test]
    fn podman_rootful_rootless_and_cgroupfs() {
        for path in [
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
            format!("/libpod_parent/libpod-{ID}"),
        ] {
            assert_eq!(
                parse_cgroup_path(&path),
                Some(m(Runtime::Podman, ID, None)),
                "{path}"
            );
        }
        // conmon is not the container.
        assert_eq!(
            parse_cgroup_path(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn containerd_without_kubernetes() {
        assert_eq!(
            parse_cgroup_path(&format!("/default/{ID}")),
            Some(m(Runtime::Containerd, ID, None))
        );
        assert_eq!(
            parse_cgroup_path(&format!("/system.slice/nerdctl-{ID}.scope")),
            Some(m(Runtime::Containerd, ID, None))
        );
    }

    #[test]
    fn systemd_nspawn_machines() {
        let got = parse_cgroup_file("0::/machine.slice/systemd-nspawn@web.service/payload\n")
            .unwrap()
            .0;
        assert_eq!(got.runtime, Some(Runtime::SystemdNspawn));
        assert_eq!(got.name.as_deref(), Some("web"));
        let got = parse_cgroup_path(r"/machine.slice/machine-my\x2dbox.scope").unwrap();
        assert_eq!(got.name.as_deref(), Some("my-box"));
        assert_eq!(got.runtime, Some(Runtime::SystemdNspawn));
    }

    #[test]
    fn kubelet_log_names() {
        assert_eq!(
            parse_pod_log_dir(&format!("kube-system_coredns-5d78c9869d-x2x9q_{UID}"), UID),
            Some(("kube-system".into(), "coredns-5d78c9869d-x2x9q".into()))
        );
        assert_eq!(
            parse_pod_log_dir(&format!("default_web_{UID}"), "other"),
            None
        );
        assert_eq!(
            parse_container_log_name(
                &format!("web-0_default_app-{ID}.log"),
                "web-0",
                "default",
                ID
            ),
            Some("app".into())
        );
        assert_eq!(
            parse_container_log_name(
                &format!("web-0_default_app-{ID}.log"),
                "web-1",
                "default",
                ID
            ),
            None
        );
    }

    #[test]
    fn names_come_from_the_runtimes_files() {
        let root = std::env::temp_dir().join(format!("rt-container-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let docker = root.join(format!("var/lib/docker/containers/{ID}"));
        std::fs::create_dir_all(&docker).unwrap();
        std::fs::write(
            docker.join("config.v2.json"),
            r#"{"ID":"x","Name":"/test","Config":{"Labels":{}}}"#,
        )
        .unwrap();
        let paths = Paths { root: root.clone() };
        let info = resolve_from_cgroup(&format!("0::/docker/{ID}\n"), &paths);
        assert_eq!(info.name.as_deref(), Some("test"));
        assert_eq!(info.runtime, Some(Runtime::Docker));
        assert_eq!(info.describe(1), "container test (docker 64b030c6d8e1)");
        assert!(info.matches("test") && info.matches("64b0") && !info.matches("tes"));

        let pods = root.join(format!("var/log/pods/default_web-0_{UID}/app"));
        std::fs::create_dir_all(&pods).unwrap();
        std::fs::create_dir_all(root.join("var/log/containers")).unwrap();
        std::fs::write(
            root.join(format!("var/log/containers/web-0_default_app-{ID}.log")),
            "",
        )
        .unwrap();
        let uid_ = UID.replace('-', "_");
        let info = resolve_from_cgroup(
            &format!(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/cri-containerd-{ID}.scope\n"
            ),
            &paths,
        );
        assert_eq!(
            (
                info.pod.as_deref(),
                info.pod_namespace.as_deref(),
                info.name.as_deref()
            ),
            (Some("web-0"), Some("default"), Some("app"))
        );
        assert_eq!(
            info.describe(1),
            "pod default/web-0 container app (containerd 64b030c6d8e1)"
        );

        let podman = root.join("var/lib/containers/storage/overlay-containers");
        std::fs::create_dir_all(&podman).unwrap();
        std::fs::write(
            podman.join("containers.json"),
            format!(r#"[{{"id":"{ID}","names":["db"]}}]"#),
        )
        .unwrap();
        let info = resolve_from_cgroup(&format!("0::/machine.slice/libpod-{ID}.scope\n"), &paths);
        assert_eq!(info.name.as_deref(), Some("db"));

        // containerd with a name its client gave (`ctr run IMAGE rt-ctr`): a container only
        // where containerd keeps that task (seen live: a cgroup v1 file, Docker's containerd).
        let ctr = "9:name=systemd:/rt/rt-ctr\n8:pids:/rt/rt-ctr\n";
        assert_eq!(
            resolve_from_cgroup(ctr, &paths).runtime,
            Some(Runtime::None)
        );
        std::fs::create_dir_all(
            root.join("run/docker/containerd/daemon/io.containerd.runtime.v2.task/rt/rt-ctr"),
        )
        .unwrap();
        let info = resolve_from_cgroup(ctr, &paths);
        assert_eq!(info.runtime, Some(Runtime::Containerd));
        assert_eq!(info.name.as_deref(), Some("rt-ctr"));
        assert_eq!(info.describe(1), "container rt-ctr (containerd)");

        // No runtime: `none`, the cgroup kept.
        let info = resolve_from_cgroup("0::/user.slice/x.scope\n", &paths);
        assert_eq!(info.runtime, Some(Runtime::None));
        assert_eq!(info.label(42), "ns:42");
        let _ = std::fs::remove_dir_all(&root);
    }
}
