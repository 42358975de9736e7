//! A local registry: Debian's `docker-registry` (distribution 2.8) on
//! `127.0.0.1:<free port>` (or another local address of the test's own,
//! such as a test bridge's gateway: [`Registry::start_on`]), plain HTTP, storage in a temp dir, optionally
//! behind htpasswd basic auth (bcrypt entries made with the `bcrypt` crate;
//! distribution accepts htpasswd auth without TLS). Images are pushed with
//! `skopeo copy` from OCI layouts built by [`crate::image`]. Killed on drop.

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use crate::image::{self, ImageFormat, ImageOptions, IndexDigests};
use crate::{free_port, require_binary, short_tempdir};

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running registry, killed on drop.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    ip: IpAddr,
    port: u16,
    auth: Option<(String, String)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("addr", &self.addr())
            .field("auth", &self.auth.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// A pushed single-platform image.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `127.0.0.1:PORT/NAME:TAG`.
    pub reference: String,
    /// The manifest digest in the registry.
    pub digest: String,
}

/// A pushed image index.
#[derive(Debug, Clone)]
pub struct PushedIndex {
    pub reference: String,
    pub digests: IndexDigests,
}

impl Registry {
    /// Starts the registry, with basic auth for `auth` = (user, password)
    /// when given, and waits until `/v2/` answers.
    pub fn start(auth: Option<(&str, &str)>) -> Self {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), auth)
    }

    /// Like [`start`](Self::start), listening on `ip` (an address of this
    /// host that the test set up, e.g. a test bridge's gateway, so agents
    /// in other network namespaces can pull).
    pub fn start_on(ip: IpAddr, auth: Option<(&str, &str)>) -> Self {
        let binary = require_binary("docker-registry", "docker-registry");
        require_binary("skopeo", "skopeo");
        let dir = short_tempdir("breg");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
             http:\n  addr: {ip}:{port}\n  secret: berth-testkit\n",
            data = dir.path().join("data").display(),
        );
        if let Some((user, pass)) = auth {
            let hash = bcrypt::hash_with_result(pass, 4)
                .expect("bcrypt the test password")
                .format_for_version(bcrypt::Version::TwoA);
            let htpasswd = dir.path().join("htpasswd");
            fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("write registry config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("create registry log");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let mut reg = Self {
            child: Some(child),
            dir,
            ip,
            port,
            auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let deadline = std::time::SystemTime::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "docker-registry exited during start-up ({status}); its log:\n{}",
                        self.log()
                    );
                }
            }
            if let Some(status) = self.probe() {
                if status == 200 || status == 401 {
                    return;
                }
            }
            if std::time::SystemTime::now() > deadline {
                panic!(
                    "docker-registry did not answer on {} within {START_TIMEOUT:?}; its log:\n{}",
                    self.addr(),
                    self.log()
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// The HTTP status of `GET /v2/`, if the registry answers.
    fn probe(&self) -> Option<u16> {
        let mut s = TcpStream::connect((self.ip, self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(s, "GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr()).ok()?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).ok()?;
        let head = String::from_utf8_lossy(&buf[..n]);
        head.split(' ').nth(1)?.parse().ok()
    }

    /// `IP:PORT` (`127.0.0.1:PORT` unless started with [`start_on`](Self::start_on)).
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// The registry's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Kills the registry (it stays down; the temp dir lives until drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Builds the busybox image with default options and pushes it as OCI.
    pub fn push_busybox(&self, name: &str, tag: &str) -> Pushed {
        self.push_busybox_with(name, tag, &ImageOptions::default(), ImageFormat::Oci)
    }

    /// Builds the busybox image with `opts` and pushes it in `format`.
    pub fn push_busybox_with(
        &self,
        name: &str,
        tag: &str,
        opts: &ImageOptions,
        format: ImageFormat,
    ) -> Pushed {
        let layout = short_tempdir("boci");
        image::write_busybox_layout(layout.path(), tag, opts);
        let digest = self.skopeo_push(layout.path(), name, tag, format, false);
        Pushed {
            reference: format!("{}/{name}:{tag}", self.addr()),
            digest,
        }
    }

    /// Builds and pushes an OCI index with linux/amd64 and linux/arm64
    /// manifests (see [`image::write_busybox_index_layout`]).
    pub fn push_busybox_multiarch(&self, name: &str, tag: &str) -> PushedIndex {
        let layout = short_tempdir("boci");
        let digests = image::write_busybox_index_layout(layout.path(), tag);
        let pushed = self.skopeo_push(layout.path(), name, tag, ImageFormat::Oci, true);
        assert_eq!(
            pushed, digests.index,
            "skopeo changed the index while pushing it"
        );
        PushedIndex {
            reference: format!("{}/{name}:{tag}", self.addr()),
            digests,
        }
    }

    fn skopeo_push(
        &self,
        layout: &Path,
        name: &str,
        tag: &str,
        format: ImageFormat,
        all: bool,
    ) -> String {
        let digest_file = layout.join("pushed.digest");
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "--dest-tls-verify=false"]);
        if all {
            cmd.arg("--all");
        }
        if format == ImageFormat::DockerV2S2 {
            cmd.args(["--format", "v2s2"]);
        }
        if let Some((u, p)) = &self.auth {
            cmd.arg("--dest-creds").arg(format!("{u}:{p}"));
        }
        cmd.arg("--digestfile")
            .arg(&digest_file)
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{name}:{tag}", self.addr()))
            .stdin(Stdio::null());
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy to {}/{name}:{tag} failed: {}\n{}",
            self.addr(),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        fs::read_to_string(&digest_file)
            .expect("read skopeo's digest file")
            .trim()
            .to_owned()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
