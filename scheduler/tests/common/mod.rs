//! The one in-process scheduler of the loopback tests (`mod common;` in
//! each file): `server::run_with` on `127.0.0.1:0` with the ECS API on a
//! second ephemeral port, real sled in a temp dir (or a given one, for
//! restarts), the bootstrap admin token, and the channels to reach it.
//! Dropping it cancels the server; [`InProcess::stop`] also waits for its
//! last flush.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test file uses part of it

use std::path::{Path, PathBuf};

use berth_scheduler::config::Config;
use berth_tests::fake_agent::AgentTarget;
use berth_tests::AuthedChannel;
use tokio_util::sync::CancellationToken;

/// A running scheduler.
pub struct InProcess {
    /// Agents' TLS channels (no operator token), activations, and
    /// `operator`: a channel carrying the admin token.
    pub target: AgentTarget,
    /// Every call on it carries the bootstrap admin token.
    pub ops: AuthedChannel,
    /// The same TLS channel without a token.
    pub channel: tonic::transport::Channel,
    /// The bootstrap admin token, `berth_<id>_<secret>`.
    pub admin: String,
    /// The scheduler's data dir.
    pub data_dir: PathBuf,
    /// `https://127.0.0.1:<port>/`: the ECS API.
    pub ecs_url: String,
    shutdown: CancellationToken,
    done: Option<tokio::task::JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

impl InProcess {
    /// A new scheduler on a fresh store, with a new admin token.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`InProcess::start`], with `tune` changing the test config.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let admin = berth_tests::generate_token();
        let mut s = Self::start_in(tmp.path(), &admin, true, tune).await;
        s._tmp = Some(tmp);
        s
    }

    /// A scheduler on `dir` (kept by the caller, for restarts). `admin`
    /// becomes the bootstrap token of a new store when `bootstrap` is set;
    /// a store that has tokens keeps them.
    pub async fn start_in(
        dir: &Path,
        admin: &str,
        bootstrap: bool,
        tune: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::for_tests(dir);
        if bootstrap {
            config.bootstrap_token = Some(berth_scheduler::auth::Token::parse(admin).unwrap());
        }
        tune(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ecs = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ecs_url = format!("https://{}/", ecs.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let done = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                berth_scheduler::server::run_with(config, listener, Some(ecs), shutdown)
                    .await
                    .unwrap();
            }
        });
        let target = berth_tests::connect_in_process(addr, dir, admin).await;
        let channel = target.channel(None).await.unwrap();
        Self {
            ops: target.operator.clone(),
            channel,
            target,
            admin: admin.to_owned(),
            data_dir: dir.to_owned(),
            ecs_url,
            shutdown,
            done: Some(done),
            _tmp: None,
        }
    }

    /// The cluster CA's certificate file.
    pub fn ca_path(&self) -> PathBuf {
        self.data_dir.join("tls/ca.pem")
    }

    /// Stops the server and waits for its final flush (a restart on the
    /// same dir may follow).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(done) = self.done.take() {
            done.await.unwrap();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
