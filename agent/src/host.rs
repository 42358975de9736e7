//! What this host really has, measured from `/proc` and `/sys` each time the
//! agent says Hello: CPU units (1024 per online CPU), memory (MemTotal minus
//! the configured reservation), the dynamic port range, reserved ports (the
//! configured lists plus every port a process on this host listens on), the
//! ECS attributes, and the host name.
//!
//! The parsers are pure functions over the text of the kernel files; the
//! [`HostProbe`] reads those files below a root that tests point elsewhere.
//!
//! Berth runs no tasks yet, so every listening port belongs to a process
//! outside Berth. Once tasks run, ports that Berth's own `host`-mode tasks
//! hold are already allocated by the scheduler and must be left out here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth_proto::ecs::Protocol;

use crate::config::{Config, PortRange};

/// CPU units per online CPU, as ECS counts them.
pub const CPU_UNITS_PER_CPU: u64 = 1024;
/// An instance needs at least this much memory (MiB) left after the
/// reservation to be worth registering.
pub const MIN_MEMORY_MIB: u64 = 128;

/// What the agent reports about the host in Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub hostname: String,
    /// `advertise_address`: where load balancers reach this host's task
    /// ports; `None` lets the scheduler use the connection's peer address.
    pub address: Option<std::net::Ipv4Addr>,
    pub resources: HostResources,
    pub attributes: Vec<Attribute>,
}

/// The resources the scheduler may allocate on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostResources {
    pub cpu_units: u64,
    pub memory_mib: u64,
    pub port_range: PortRange,
    /// Sorted, without duplicates.
    pub reserved_tcp_ports: Vec<u16>,
    /// Sorted, without duplicates.
    pub reserved_udp_ports: Vec<u16>,
}

/// An ECS attribute; an empty value states presence only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: String,
}

/// Why the host could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("cannot count online CPUs from {} ({reason}) nor from the scheduler affinity ({source})", path.display())]
    Cpus {
        path: PathBuf,
        reason: String,
        source: std::io::Error,
    },
    #[error(
        "reserved_memory_mib {reserved_mib} leaves {} MiB of the host's {total_mib} MiB; \
         at least {MIN_MEMORY_MIB} MiB must remain for tasks",
        total_mib.saturating_sub(*reserved_mib)
    )]
    NotEnoughMemory { total_mib: u64, reserved_mib: u64 },
    #[error("cannot read the host name: {source}")]
    Hostname { source: std::io::Error },
    #[error("the host name {name:?} is not valid UTF-8; set `hostname` in the config")]
    HostnameNotUtf8 { name: String },
    #[error(
        "the host name {name:?} is empty or longer than 255 bytes; set `hostname` in the config"
    )]
    HostnameInvalid { name: String },
}

impl HostError {
    /// True when the configuration, not the host, is at fault (exit code 64).
    pub fn is_config_error(&self) -> bool {
        matches!(self, HostError::NotEnoughMemory { .. })
    }
}

/// Measures the host. Cheap enough to call on every (re)connect.
#[derive(Debug, Clone)]
pub struct HostProbe {
    proc_root: PathBuf,
    sys_root: PathBuf,
    cpu_units: Option<u64>,
    reserved_memory_mib: u64,
    port_range: PortRange,
    reserved_tcp_ports: BTreeSet<u16>,
    reserved_udp_ports: BTreeSet<u16>,
    attributes: Vec<Attribute>,
    hostname: Option<String>,
    address: Option<std::net::Ipv4Addr>,
}

impl HostProbe {
    /// A probe of the real host (`/proc`, `/sys`).
    pub fn new(config: &Config) -> Self {
        Self::with_roots(config, "/proc", "/sys")
    }

    /// A probe that reads `<proc_root>/meminfo`, `<sys_root>/devices/...`.
    pub fn with_roots(
        config: &Config,
        proc_root: impl Into<PathBuf>,
        sys_root: impl Into<PathBuf>,
    ) -> Self {
        Self {
            proc_root: proc_root.into(),
            sys_root: sys_root.into(),
            cpu_units: config.cpu_units,
            reserved_memory_mib: config.reserved_memory_mib,
            port_range: config.port_range,
            reserved_tcp_ports: config.reserved_tcp_ports.clone(),
            reserved_udp_ports: config.reserved_udp_ports.clone(),
            attributes: attributes(
                std::env::consts::ARCH,
                config.availability_zone.as_deref(),
                config.instance_type.as_deref(),
                config.custom_attributes.iter(),
            ),
            hostname: config.hostname.clone(),
            address: config.advertise_address,
        }
    }

    /// Measures everything Hello reports, now.
    pub fn measure(&self) -> Result<HostFacts, HostError> {
        let cpu_units = match self.cpu_units {
            Some(units) => units,
            None => self.online_cpus()? * CPU_UNITS_PER_CPU,
        };

        let meminfo = self.proc_root.join("meminfo");
        let total_mib =
            parse_meminfo_total_mib(&read(&meminfo)?).map_err(|reason| HostError::Parse {
                path: meminfo,
                reason,
            })?;
        let memory_mib = total_mib
            .checked_sub(self.reserved_memory_mib)
            .filter(|m| *m >= MIN_MEMORY_MIB)
            .ok_or(HostError::NotEnoughMemory {
                total_mib,
                reserved_mib: self.reserved_memory_mib,
            })?;

        let mut tcp = self.reserved_tcp_ports.clone();
        tcp.extend(self.ports_in_use("tcp", Protocol::Tcp)?);
        tcp.extend(self.ports_in_use("tcp6", Protocol::Tcp)?);
        let mut udp = self.reserved_udp_ports.clone();
        udp.extend(self.ports_in_use("udp", Protocol::Udp)?);
        udp.extend(self.ports_in_use("udp6", Protocol::Udp)?);

        Ok(HostFacts {
            hostname: self.hostname()?,
            address: self.address,
            resources: HostResources {
                cpu_units,
                memory_mib,
                port_range: self.port_range,
                reserved_tcp_ports: tcp.into_iter().collect(),
                reserved_udp_ports: udp.into_iter().collect(),
            },
            attributes: self.attributes.clone(),
        })
    }

    /// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`).
    pub fn ephemeral_port_range(&self) -> Result<PortRange, HostError> {
        let path = self.proc_root.join("sys/net/ipv4/ip_local_port_range");
        parse_ip_local_port_range(&read(&path)?).map_err(|reason| HostError::Parse { path, reason })
    }

    /// The configured dynamic port range.
    pub fn port_range(&self) -> PortRange {
        self.port_range
    }

    /// The host name: the configured override, else the system's.
    pub fn hostname(&self) -> Result<String, HostError> {
        if let Some(name) = &self.hostname {
            return Ok(name.clone());
        }
        let name = hostname::get()
            .map_err(|source| HostError::Hostname { source })?
            .into_string()
            .map_err(|raw| HostError::HostnameNotUtf8 {
                name: raw.to_string_lossy().into_owned(),
            })?;
        if name.is_empty() || name.len() > 255 {
            return Err(HostError::HostnameInvalid { name });
        }
        Ok(name)
    }

    fn online_cpus(&self) -> Result<u64, HostError> {
        let path = self.sys_root.join("devices/system/cpu/online");
        let reason = match std::fs::read_to_string(&path) {
            Ok(text) => match parse_cpu_list(&text) {
                Ok(n) if n > 0 => return Ok(n),
                Ok(_) => "no CPU listed".to_owned(),
                Err(reason) => reason,
            },
            Err(e) => e.to_string(),
        };
        match std::thread::available_parallelism() {
            Ok(n) => {
                tracing::warn!(
                    path = %path.display(),
                    cause = %reason,
                    cpus = n.get(),
                    "cannot read online CPUs; counting the CPUs this process may use instead"
                );
                Ok(n.get() as u64)
            }
            Err(source) => Err(HostError::Cpus {
                path,
                reason,
                source,
            }),
        }
    }

    /// Ports in use according to `<proc_root>/net/<file>`; a missing file
    /// (IPv6 disabled) means none.
    fn ports_in_use(&self, file: &str, protocol: Protocol) -> Result<Vec<u16>, HostError> {
        let path = self.proc_root.join("net").join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(HostError::Read { path, source }),
        };
        parse_proc_net(&text, protocol).map_err(|reason| HostError::Parse { path, reason })
    }
}

fn read(path: &Path) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|source| HostError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The agent's attributes: the `ecs.*` ones it measures or is configured
/// with, then the custom ones (in name order).
pub fn attributes<'a>(
    rust_arch: &str,
    availability_zone: Option<&str>,
    instance_type: Option<&str>,
    custom: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<Attribute> {
    let attr = |name: &str, value: &str| Attribute {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let mut out = vec![
        attr("ecs.os-type", "linux"),
        attr("ecs.os-family", "LINUX"),
        attr("ecs.cpu-architecture", cpu_architecture(rust_arch)),
    ];
    if let Some(az) = availability_zone {
        out.push(attr("ecs.availability-zone", az));
    }
    if let Some(t) = instance_type {
        out.push(attr("ecs.instance-type", t));
    }
    out.extend(custom.into_iter().map(|(n, v)| attr(n, v)));
    out
}

/// ECS's spelling of a CPU architecture (`x86_64`, `arm64`); other
/// architectures keep Rust's name.
pub fn cpu_architecture(rust_arch: &str) -> &str {
    match rust_arch {
        "aarch64" => "arm64",
        other => other,
    }
}

/// `MemTotal` of `/proc/meminfo`, in MiB.
pub fn parse_meminfo_total_mib(text: &str) -> Result<u64, String> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .ok_or("no MemTotal line")?;
    let mut fields = line.split_whitespace();
    let kib = fields
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| format!("MemTotal {:?} is not a number", line.trim()))?;
    match fields.next() {
        Some("kB") => Ok(kib / 1024),
        unit => Err(format!("MemTotal has unit {unit:?}, expected kB")),
    }
}

/// The number of CPUs in a kernel CPU list such as `0-3,6,8-9`.
pub fn parse_cpu_list(text: &str) -> Result<u64, String> {
    let mut count = 0u64;
    for item in text.trim().split(',').filter(|i| !i.is_empty()) {
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{item:?} is not a CPU number or range"))
        };
        count += match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(format!("range {item:?} is backwards"));
                }
                b - a + 1
            }
            None => {
                num(item)?;
                1
            }
        };
    }
    Ok(count)
}

/// `net.ipv4.ip_local_port_range`: two numbers separated by whitespace.
pub fn parse_ip_local_port_range(text: &str) -> Result<PortRange, String> {
    let nums: Vec<&str> = text.split_whitespace().collect();
    let [a, b] = nums.as_slice() else {
        return Err(format!("expected two numbers, got {:?}", text.trim()));
    };
    let port = |s: &str| s.parse::<u16>().map_err(|_| format!("{s:?} is not a port"));
    Ok(PortRange {
        start: port(a)?,
        end: port(b)?,
    })
}

/// The local ports in use in a `/proc/net/{tcp,tcp6,udp,udp6}` table, sorted
/// and without duplicates. For tcp, the sockets in state LISTEN (`0A`); for
/// udp, the unconnected bound sockets (state `07`): servers, not clients'
/// connected sockets, whose ports are ephemeral.
pub fn parse_proc_net(text: &str, protocol: Protocol) -> Result<Vec<u16>, String> {
    const TCP_LISTEN: &str = "0A";
    const UDP_UNCONNECTED: &str = "07";
    let wanted = match protocol {
        Protocol::Tcp => TCP_LISTEN,
        Protocol::Udp => UDP_UNCONNECTED,
    };
    let mut ports = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || (i == 0 && fields[0] == "sl") {
            continue;
        }
        let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
            return Err(format!("line {}: too few fields: {line:?}", i + 1));
        };
        if !state.eq_ignore_ascii_case(wanted) {
            continue;
        }
        let port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            .ok_or_else(|| format!("line {}: bad local address {local:?}", i + 1))?;
        if port != 0 {
            ports.insert(port);
        }
    }
    Ok(ports.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20183 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   112        0 22036 1 0000000000000000 100 0 0 10 0
   2: 0F02000A:0016 0202000A:C5A2 01 00000000:00000000 02:000A7B4C 00000000     0        0 45124 4 0000000000000000 20 4 29 10 -1
   3: 0F02000A:9C40 5DB8D822:01BB 06 00000000:00000000 03:00001590 00000000     0        0 0 3 0000000000000000
";

    const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20185 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 31337 1 0000000000000000 100 0 0 10 0
";

    const UDP: &str = "\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  125: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 19911 2 0000000000000000 0
  139: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 21030 2 0000000000000000 0
  200: 0F02000A:D431 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 41000 2 0000000000000000 0
";

    #[test]
    fn tcp_keeps_listening_ports_only() {
        assert_eq!(parse_proc_net(TCP, Protocol::Tcp), Ok(vec![22, 3306]));
        assert_eq!(parse_proc_net(TCP6, Protocol::Tcp), Ok(vec![22, 8080]));
    }

    #[test]
    fn udp_keeps_unconnected_sockets_only() {
        assert_eq!(parse_proc_net(UDP, Protocol::Udp), Ok(vec![53, 68]));
    }

    #[test]
    fn proc_net_edge_cases() {
        assert_eq!(parse_proc_net("", Protocol::Tcp), Ok(vec![]));
        let header_only = TCP.lines().next().unwrap_or_default();
        assert_eq!(parse_proc_net(header_only, Protocol::Tcp), Ok(vec![]));
        let err = parse_proc_net("  0: 00000000:zz16 00000000:0000 0A 0", Protocol::Tcp)
            .expect_err("bad port");
        assert!(err.contains("line 1"), "{err}");
        assert!(parse_proc_net("  0: 00000000:0016", Protocol::Tcp).is_err());
    }

    #[test]
    fn meminfo() {
        let text = "MemTotal:       16318264 kB\nMemFree:         1234 kB\n";
        assert_eq!(parse_meminfo_total_mib(text), Ok(15935));
        assert!(parse_meminfo_total_mib("MemFree: 1 kB\n").is_err());
        assert!(parse_meminfo_total_mib("MemTotal: lots kB\n").is_err());
        assert!(parse_meminfo_total_mib("MemTotal: 1024 MB\n").is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0\n"), Ok(1));
        assert_eq!(parse_cpu_list("0-3\n"), Ok(4));
        assert_eq!(parse_cpu_list("0-3,6,8-9\n"), Ok(7));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    #[test]
    fn local_port_range() {
        assert_eq!(
            parse_ip_local_port_range("32768\t60999\n"),
            Ok(PortRange {
                start: 32768,
                end: 60999
            })
        );
        assert!(parse_ip_local_port_range("32768\n").is_err());
    }

    #[test]
    fn attributes_in_ecs_spelling() {
        assert_eq!(cpu_architecture("x86_64"), "x86_64");
        assert_eq!(cpu_architecture("aarch64"), "arm64");
        let custom = BTreeMap::from([("stack".to_owned(), "prod".to_owned())]);
        let got: Vec<String> = attributes("aarch64", Some("rack-1"), None, custom.iter())
            .into_iter()
            .map(|a| format!("{}={}", a.name, a.value))
            .collect();
        assert_eq!(
            got,
            [
                "ecs.os-type=linux",
                "ecs.os-family=LINUX",
                "ecs.cpu-architecture=arm64",
                "ecs.availability-zone=rack-1",
                "stack=prod"
            ]
        );
    }

    /// A fake `/proc` and `/sys` in a temp dir.
    fn fake_host(meminfo: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        for d in ["proc/net", "proc/sys/net/ipv4", "sys/devices/system/cpu"] {
            std::fs::create_dir_all(p.join(d)).expect("mkdir");
        }
        let files = [
            ("proc/meminfo", meminfo),
            ("proc/net/tcp", TCP),
            ("proc/net/tcp6", TCP6),
            ("proc/net/udp", UDP),
            ("proc/sys/net/ipv4/ip_local_port_range", "32768 60999\n"),
            ("sys/devices/system/cpu/online", "0-3\n"),
        ];
        for (f, text) in files {
            std::fs::write(p.join(f), text).expect("write");
        }
        dir
    }

    #[test]
    fn probe_measures_a_fake_host() {
        let dir = fake_host("MemTotal: 8388608 kB\n");
        let mut config = Config::new("http://s:1", "c");
        config.hostname = Some("h1".to_owned());
        config.reserved_udp_ports = [123].into_iter().collect();
        config.advertise_address = Some(std::net::Ipv4Addr::new(192, 0, 2, 10));
        let probe = HostProbe::with_roots(&config, dir.path().join("proc"), dir.path().join("sys"));
        let facts = probe.measure().expect("measure");
        assert_eq!(facts.hostname, "h1");
        assert_eq!(facts.address, config.advertise_address);
        assert_eq!(
            facts.resources,
            HostResources {
                cpu_units: 4096,
                memory_mib: 8192 - 256,
                port_range: PortRange {
                    start: 20000,
                    end: 32767
                },
                // configured 22 and 51679, listening 22, 3306, 8080 (udp6 missing: fine)
                reserved_tcp_ports: vec![22, 3306, 8080, 51679],
                reserved_udp_ports: vec![53, 68, 123],
            }
        );
        assert_eq!(
            probe.ephemeral_port_range().expect("range"),
            PortRange {
                start: 32768,
                end: 60999
            }
        );

        config.cpu_units = Some(1500);
        let probe = HostProbe::with_roots(&config, dir.path().join("proc"), dir.path().join("sys"));
        assert_eq!(probe.measure().expect("measure").resources.cpu_units, 1500);
    }

    #[test]
    fn too_large_a_reservation_is_a_config_error() {
        let dir = fake_host("MemTotal: 524288 kB\n"); // 512 MiB
        let mut config = Config::new("http://s:1", "c");
        config.hostname = Some("h1".to_owned());
        config.reserved_memory_mib = 400;
        let probe = HostProbe::with_roots(&config, dir.path().join("proc"), dir.path().join("sys"));
        let err = probe.measure().expect_err("112 MiB left");
        assert!(err.is_config_error());
        assert!(err.to_string().contains("leaves 112 MiB"), "{err}");

        config.reserved_memory_mib = 1000;
        let probe = HostProbe::with_roots(&config, dir.path().join("proc"), dir.path().join("sys"));
        assert!(probe
            .measure()
            .expect_err("more than total")
            .is_config_error());
    }

    #[test]
    fn probe_of_the_real_host() {
        let mut config = Config::new("http://s:1", "c");
        config.reserved_memory_mib = 0;
        let facts = HostProbe::new(&config)
            .measure()
            .expect("measure this host");
        assert!(facts.resources.cpu_units >= CPU_UNITS_PER_CPU);
        assert_eq!(facts.resources.cpu_units % CPU_UNITS_PER_CPU, 0);
        assert!(facts.resources.memory_mib >= MIN_MEMORY_MIB);
        assert!(!facts.hostname.is_empty());
    }
}
