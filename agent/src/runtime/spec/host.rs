//! The spec's inputs that come from the host or the image's rootfs, kept
//! apart from the pure spec building in [`super`]: the user lookup in the
//! rootfs's `/etc/passwd` and `/etc/group` ([`resolve_user`]), the
//! per-container `/etc` files ([`write_etc_files`]) and the host's
//! resolv.conf, device nodes under `/dev`, the agent's own `RLIMIT_NOFILE`
//! and the static init binary.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use berth_proto::taskdef::{ContainerDefinition, NetworkMode, TaskDefinition};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceBuilder, LinuxDeviceType};

use super::{
    hosts_file, nameservers, resolv_conf, EtcFiles, SpecError, DEFAULT_NOFILE, INIT_CANDIDATES,
};

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`, …) to
/// `(uid, gid, additional gids)` through the rootfs's own `/etc/passwd` and
/// `/etc/group`, never the host's, as runc's `user.GetExecUser` does:
/// - a name must exist in `/etc/passwd`; a numeric uid need not (gid 0 then);
/// - a group given by name must exist in `/etc/group`; a numeric one need not;
/// - without an explicit group, the primary gid is the passwd entry's and the
///   additional gids are the groups that list the user as a member.
///
/// Symlinks inside the rootfs are followed within it.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>), SpecError> {
    let err = |reason: String| SpecError::User {
        user: user.to_owned(),
        reason,
    };
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_in_root(rootfs, "/etc/passwd")?;
    let entries: Vec<Vec<&str>> = passwd
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
        .collect();

    let uid: u32;
    let mut gid = 0u32;
    let mut name: Option<String> = None;
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    match user_part.parse::<u32>() {
        Ok(n) => {
            uid = n;
            if let Some(e) = entries
                .iter()
                .find(|e| e.len() >= 4 && e[2].parse::<u32>().ok() == Some(n))
            {
                name = Some(e[0].to_owned());
                gid = e[3].parse().unwrap_or(0);
            }
        }
        Err(_) => {
            let e = entries
                .iter()
                .find(|e| e.len() >= 4 && e[0] == user_part)
                .ok_or_else(|| {
                    err(format!(
                        "no user {user_part:?} in the image's /etc/passwd{}",
                        if passwd.is_none() {
                            " (the image has none)"
                        } else {
                            ""
                        }
                    ))
                })?;
            uid = e[2]
                .parse()
                .map_err(|_| err(format!("bad uid {:?} in /etc/passwd", e[2])))?;
            gid = e[3]
                .parse()
                .map_err(|_| err(format!("bad gid {:?} in /etc/passwd", e[3])))?;
            name = Some(user_part.to_owned());
        }
    }

    let group_file = read_in_root(rootfs, "/etc/group")?;
    let groups: Vec<(String, u32, Vec<String>)> = group_file
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            let members = f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Some((f[0].to_owned(), f[2].parse().ok()?, members))
        })
        .collect();

    let mut additional = Vec::new();
    match group_part {
        Some(g) if !g.is_empty() => {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => groups
                    .iter()
                    .find(|(n, _, _)| n == g)
                    .map(|(_, id, _)| *id)
                    .ok_or_else(|| err(format!("no group {g:?} in the image's /etc/group")))?,
            };
        }
        _ => {
            if let Some(name) = &name {
                for (_, id, members) in &groups {
                    if members.iter().any(|m| m == name) && !additional.contains(id) {
                        additional.push(*id);
                    }
                }
            }
        }
    }
    Ok((uid, gid, additional))
}

/// Reads `path` (absolute, in the container) below `root`, following
/// symlinks without leaving `root`. `None` when it does not exist.
fn read_in_root(root: &Path, path: &str) -> Result<Option<String>, SpecError> {
    let Some(resolved) = resolve_in_root(root, path, 0) else {
        return Ok(None);
    };
    match fs::read_to_string(&resolved) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SpecError::io(&resolved, e)),
    }
}

fn resolve_in_root(root: &Path, path: &str, depth: u32) -> Option<PathBuf> {
    if depth > 40 {
        return None;
    }
    let mut parts: Vec<String> = Vec::new();
    let comps: Vec<String> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_owned()),
            _ => None,
        })
        .collect();
    for (i, comp) in comps.iter().enumerate() {
        if comp == ".." {
            parts.pop();
            continue;
        }
        parts.push(comp.clone());
        let host = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        if let Ok(target) = fs::read_link(&host) {
            parts.pop();
            let rest = comps[i + 1..].join("/");
            let target = target.to_string_lossy().into_owned();
            let next = if target.starts_with('/') {
                format!("{target}/{rest}")
            } else {
                format!("/{}/{target}/{rest}", parts.join("/"))
            };
            return resolve_in_root(root, &next, depth + 1);
        }
    }
    Some(parts.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// The first static init binary of [`INIT_CANDIDATES`] present on the host.
pub fn find_init_binary() -> Option<PathBuf> {
    INIT_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// [`DEFAULT_NOFILE`], with the hard limit capped at this process's own hard
/// limit: raising a hard limit needs `CAP_SYS_RESOURCE`, which a runtime
/// started from a confined agent may lack (containerd's shim inherits the
/// same limits on a systemd host, where both run with `LimitNOFILE=infinity`).
pub fn default_nofile() -> (u64, u64) {
    let own_hard = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        })
        .and_then(|h| h.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let hard = DEFAULT_NOFILE.1.min(own_hard);
    (DEFAULT_NOFILE.0.min(hard), hard)
}

pub(super) fn device_node(host: &Path, dest: &str) -> Result<LinuxDevice, String> {
    let md = fs::metadata(host).map_err(|e| format!("cannot stat {}: {e}", host.display()))?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(format!("{} is not a device", host.display()));
    };
    let rdev = md.rdev();
    LinuxDeviceBuilder::default()
        .path(PathBuf::from(dest))
        .typ(typ)
        .major(i64::from(libc::major(rdev)))
        .minor(i64::from(libc::minor(rdev)))
        .file_mode(md.mode() & 0o7777)
        .uid(md.uid())
        .gid(md.gid())
        .build()
        .map_err(|e| e.to_string())
}

/// Every device node under `dir`, skipping what Docker skips.
pub(super) fn host_devices(dir: &Path, out: &mut Vec<LinuxDevice>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            let name = e.file_name();
            if !matches!(
                name.to_str(),
                Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev")
            ) {
                host_devices(&p, out);
            }
        } else if ft.is_char_device() || ft.is_block_device() {
            if p == Path::new("/dev/console") {
                continue;
            }
            if let Ok(d) = device_node(&p, &p.to_string_lossy()) {
                out.push(d);
            }
        }
    }
}

/// Writes `hosts`, `resolv.conf` and `hostname` for one container into `dir`
/// (created if needed) and returns their paths.
///
/// - `hosts`: localhost (v4 and v6), the hostname at `ip` (the task's address;
///   `127.0.1.1` without one, as Debian does), `extraHosts`, and `links`
///   (`name[:alias]`) at the task's address: the containers of a task share
///   its network namespace.
/// - `resolv.conf`: the host's (`host_resolv`), with `dnsServers` replacing
///   its nameservers and `dnsSearchDomains` its search list. Outside host
///   network mode, loopback nameservers are dropped (unreachable from the
///   task's namespace) and, when none remain, Docker's fallback (8.8.8.8,
///   8.8.4.4) is used.
/// - `hostname`: the hostname and a newline.
pub fn write_etc_files(
    dir: &Path,
    task: &TaskDefinition,
    c: &ContainerDefinition,
    hostname: &str,
    ip: Option<IpAddr>,
    host_resolv: &Path,
) -> Result<EtcFiles, SpecError> {
    fs::create_dir_all(dir).map_err(|e| SpecError::io(dir, e))?;
    let hosts = hosts_file(c, hostname, ip);
    let host_conf = match fs::read_to_string(host_resolv) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(SpecError::io(host_resolv, e)),
    };
    let resolv = resolv_conf(
        &host_conf,
        &c.dns_servers,
        &c.dns_search_domains,
        task.effective_network_mode() == NetworkMode::Host,
    );
    let files = EtcFiles {
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
        hostname: dir.join("hostname"),
    };
    for (path, content) in [
        (&files.hosts, hosts),
        (&files.resolv_conf, resolv),
        (&files.hostname, format!("{hostname}\n")),
    ] {
        fs::write(path, content).map_err(|e| SpecError::io(path, e))?;
    }
    Ok(files)
}

/// The host's resolv.conf to start from: systemd-resolved's upstream list
/// when `/etc/resolv.conf` only points at its local stub (as Docker does).
pub fn host_resolv_conf_path() -> PathBuf {
    let etc = Path::new("/etc/resolv.conf");
    let upstream = Path::new("/run/systemd/resolve/resolv.conf");
    let only_stub = fs::read_to_string(etc).is_ok_and(|s| {
        let ns: Vec<&str> = nameservers(&s).collect();
        !ns.is_empty() && ns.iter().all(|n| *n == "127.0.0.53")
    });
    if only_stub && upstream.is_file() {
        upstream.to_path_buf()
    } else {
        etc.to_path_buf()
    }
}

#[cfg(test)]
mod tests;
