//! Assembles the scheduler: opens the store, builds the services, and serves
//! them on a listener the caller bound (tests bind `127.0.0.1:0`).
//! Shutdown is a protocol: stop accepting, end agent streams, wait for
//! in-flight calls, flush the store.

use std::sync::Arc;

use berth_proto::v1::{
    activation_service_server::ActivationServiceServer, agent_service_server::AgentServiceServer,
    audit_service_server::AuditServiceServer, cluster_ca_service_server::ClusterCaServiceServer,
    cluster_service_server::ClusterServiceServer,
    container_instance_service_server::ContainerInstanceServiceServer,
    secret_service_server::SecretServiceServer, service_service_server::ServiceServiceServer,
    snapshot_service_server::SnapshotServiceServer, system_service_server::SystemServiceServer,
    task_definition_service_server::TaskDefinitionServiceServer,
    task_service_server::TaskServiceServer, token_service_server::TokenServiceServer,
};
use berth_proto::v1::{
    attribute_service_server::AttributeServiceServer, tag_service_server::TagServiceServer,
    target_group_service_server::TargetGroupServiceServer,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use crate::agent_link::LogRouter;
use crate::agents::desired::RenderCache;
use crate::agents::sessions::Sessions;
use crate::api::auth::AuthLayer;
use crate::api::task::TaskApi;
use crate::api::traffic::TargetGroupApi;
use crate::api::{
    agent::AgentApi,
    attribute::AttributeApi,
    audit::AuditApi,
    cluster::ClusterApi,
    instance::ContainerInstanceApi,
    secret::SecretApi,
    service::ServiceApi,
    snapshot::SnapshotApi,
    system::SystemApi,
    tags::TagApi,
    taskdef::TaskDefinitionApi,
    token::TokenApi,
    trust::{ActivationApi, ClusterCaApi},
    Shared,
};
use crate::auth::Token;
use crate::config::Config;
use crate::db::{Db, DbError};
use crate::secrets::{SecretKey, Secrets, SecretsError};
use crate::store::{SledStore, Store, StoreError};
use crate::tls::{ClusterCa, TlsError};

/// How long calls in flight may take to finish once shutdown starts.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Failures that stop the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("opening the store in {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("setting up TLS: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot bind the ECS API on {addr}: {source}")]
    BindEcsApi {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Dns(#[from] crate::dns::DnsError),
    #[error(transparent)]
    WebhookCa(#[from] crate::webhooks::http::CaError),
    #[error("cannot bind the metrics endpoint on {addr}: {source}")]
    BindMetrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("final flush of the store: {0}")]
    Flush(#[source] StoreError),
}

/// At the first start (no operator token in the store), creates the admin
/// token: the configured one, or a new one printed once on stdout.
async fn bootstrap(
    db: &Db,
    secrets: &Secrets,
    configured: Option<Token>,
) -> Result<(), ServerError> {
    let generated = configured.is_none();
    let token = configured.unwrap_or_else(Token::generate);
    let sealed = secrets.seal_token_secret(&token.id, token.secret());
    if db.bootstrap_token(&token, sealed).await? {
        tracing::info!(token = %token.id, "created the bootstrap admin token");
        if generated {
            // Shown this once; the store keeps only its hash.
            println!("bootstrap admin token: {}", token.expose());
        }
    } else if !generated {
        tracing::info!("BERTH_BOOTSTRAP_TOKEN is ignored: the store already holds operator tokens");
    }
    Ok(())
}

/// Accepted connections with TCP_NODELAY: gRPC replies are small, and
/// Nagle's algorithm against delayed ACKs added ~40 ms to each one.
fn nodelay(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|s| {
            if let Err(e) = s.set_nodelay(true) {
                tracing::debug!(cause = %e, "cannot set TCP_NODELAY");
            }
        })
    })
}

/// The watchdog's probe: the store answers a read. Runs on the blocking
/// pool, as every store read does, so a wedged store or a starved runtime
/// withholds systemd's keep-alive.
fn store_probe(
    db: Db,
) -> impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
{
    move || {
        let db = db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || db.clusters().map(|_| ()))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        })
    }
}

/// Runs the scheduler until `shutdown` is cancelled, with the ECS API and
/// `/metrics` on their configured addresses (bound here) if they are on.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let ecs = match config.ecs_api.listen {
        None => None,
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::BindEcsApi { addr, source })?,
        ),
    };
    let metrics = bind_metrics(&config).await?;
    run_with_metrics(config, listener, ecs, metrics, shutdown).await
}

/// The `/metrics` listener of `[metrics] listen`, if it is on.
pub async fn bind_metrics(config: &Config) -> Result<Option<TcpListener>, ServerError> {
    match config.metrics_listen {
        None => Ok(None),
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| ServerError::BindMetrics { addr, source }),
    }
}

/// Runs the scheduler until `shutdown` is cancelled: gRPC on `listener`,
/// the ECS API on `ecs_listener` when given, and DNS on its configured
/// address (bound here, before anything is served) if it is on; no `/metrics`.
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    ecs_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    run_with_metrics(config, listener, ecs_listener, None, shutdown).await
}

/// Runs the scheduler until `shutdown` is cancelled: gRPC on `listener`,
/// the ECS API on `ecs_listener` and `/metrics` on `metrics_listener` when
/// given.
pub async fn run_with_metrics(
    config: Config,
    listener: TcpListener,
    ecs_listener: Option<TcpListener>,
    metrics_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let dns_sockets = match config.dns.listen {
        None => None,
        Some(addr) => Some(crate::dns::Sockets::bind(addr).await?),
    };
    let store: Arc<dyn Store> =
        Arc::new(
            SledStore::open(&config.data_dir).map_err(|source| ServerError::Open {
                path: config.data_dir.clone(),
                source,
            })?,
        );
    let db = Db::open(store.clone()).await?;
    berth_proto::trust::install_crypto_provider();
    let ca = Arc::new(ClusterCa::load_or_create(&config.data_dir, &config.tls)?);
    tracing::info!(fingerprint = %ca.fingerprint(), "cluster CA");
    // Operators hand this to `berth-agent register` and `berthctl login`.
    println!("cluster CA fingerprint: {}", ca.fingerprint());
    let key = SecretKey::load_or_create(&config.secrets_key_file)?;
    let secrets = Secrets::new(key, db.clone());
    bootstrap(&db, &secrets, config.bootstrap_token.clone()).await?;
    let sessions = Sessions::new(config.heartbeat_ttl);
    let placer = crate::placer::Placer::start(db.clone(), sessions.clone());
    let controller = crate::services::Controller::new(
        db.clone(),
        placer.clone(),
        sessions.clone(),
        config.services,
    )
    .start(shutdown.child_token());
    let event_pruner = tokio::spawn(crate::events::prune_loop(
        db.events().clone(),
        config.events,
        shutdown.child_token(),
    ));
    let pruner =
        crate::retention::Pruner::new(db.clone(), config.retention).start(shutdown.child_token());
    let shared = Shared {
        db: db.clone(),
        placer,
        sessions,
        arn: Arc::new(config.arn.clone()),
        heartbeat_interval: config.heartbeat_interval,
        logs: LogRouter::default(),
        execs: Default::default(),
        usage: Default::default(),
        ca: ca.clone(),
        secrets,
        rendered: RenderCache::default(),
    };
    // Webhooks read the event log through their own cursors; the API edge
    // renders each event as EventBridge's JSON for them.
    let render_shared = shared.clone();
    let render: crate::webhooks::Render = Arc::new(move |e| {
        crate::api::events::render(&render_shared, e)
            .map(|ev| crate::webhooks::Rendered {
                json: ev.json,
                resource: ev.resource,
            })
            .map_err(|err| err.to_string())
    });
    let (webhook_changes, webhooks) = crate::webhooks::start(
        db.clone(),
        shared.secrets.clone(),
        config.webhooks.clone(),
        render,
        shutdown.child_token(),
    )?;
    let schedules = crate::schedules::Runner::new(
        db.clone(),
        crate::api::schedule::RunTaskLauncher::new(shared.clone()),
        config.schedules,
    )
    .start(shutdown.child_token());
    // Target tracking and step scaling read the agents' per-task readings.
    let autoscaler = crate::autoscaling::Autoscaler::new(
        db.clone(),
        config.autoscaling.clone(),
        Arc::new(crate::autoscaling::UsageMetrics::new(
            shared.usage.clone(),
            config.autoscaling.period,
        )),
    )
    .start(shutdown.child_token());
    let traffic = crate::traffic::Watcher::start(
        db.clone(),
        shared.sessions.clone(),
        shared.arn.clone(),
        shutdown.child_token(),
    )?;
    let dns = dns_sockets.map(|sockets| {
        tokio::spawn(crate::dns::serve(
            sockets,
            traffic.subscribe(),
            config.dns.ttl,
            shutdown.child_token(),
        ))
    });
    let metrics = metrics_listener.map(|l| {
        let registry = Arc::new(crate::metrics::registry(
            db.metrics(),
            crate::metrics::StoreCollector::new(db.clone(), shared.sessions.clone()),
        ));
        let scrape: berth_proto::metrics_http::Scrape =
            Arc::new(move || Box::pin(crate::metrics::scrape(registry.clone())));
        let stop = shutdown.child_token();
        tokio::spawn(berth_proto::metrics_http::serve(l, scrape, async move {
            stop.cancelled().await
        }))
    });
    let addr = listener.local_addr().ok();
    tracing::info!(listen = ?addr, data_dir = %config.data_dir.display(), "berth-scheduler serving");

    let ecs_api = match ecs_listener {
        None => None,
        Some(l) => {
            let api = Arc::new(crate::ecs_api::EcsApi::new(
                shared.clone(),
                config.ecs_api.region.clone(),
            ));
            Some(tokio::spawn(crate::ecs_api::serve(
                l,
                ca.https_server_config()?,
                api,
                shutdown.child_token(),
            )))
        }
    };
    let streams = shutdown.child_token();
    let serve = tonic::transport::Server::builder()
        .tls_config(ca.server_tls_config())?
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        // The one gate of the operator API; AgentService passes through it
        // (agents prove who they are with their client certificate).
        .layer(AuthLayer::new(db.clone()))
        .add_service(ClusterServiceServer::new(ClusterApi {
            shared: shared.clone(),
        }))
        .add_service(TaskDefinitionServiceServer::new(TaskDefinitionApi {
            shared: shared.clone(),
        }))
        .add_service(ContainerInstanceServiceServer::new(ContainerInstanceApi {
            shared: shared.clone(),
        }))
        .add_service(TaskServiceServer::new(TaskApi {
            shared: shared.clone(),
        }))
        .add_service(
            berth_proto::v1::exec_service_server::ExecServiceServer::new(
                crate::api::exec::ExecApi {
                    shared: shared.clone(),
                },
            ),
        )
        .add_service(
            berth_proto::v1::task_stats_service_server::TaskStatsServiceServer::new(
                crate::api::stats::StatsApi {
                    shared: shared.clone(),
                },
            ),
        )
        .add_service(ServiceServiceServer::new(ServiceApi {
            shared: shared.clone(),
        }))
        .add_service(SecretServiceServer::new(SecretApi {
            shared: shared.clone(),
        }))
        .add_service(SystemServiceServer::new(SystemApi))
        .add_service(ClusterCaServiceServer::new(ClusterCaApi { ca: ca.clone() }))
        .add_service(ActivationServiceServer::new(ActivationApi {
            shared: shared.clone(),
        }))
        .add_service(TokenServiceServer::new(TokenApi {
            shared: shared.clone(),
        }))
        .add_service(AuditServiceServer::new(AuditApi {
            shared: shared.clone(),
        }))
        .add_service(
            berth_proto::v1::event_service_server::EventServiceServer::new(
                crate::api::events::EventApi {
                    shared: shared.clone(),
                    shutdown: streams.clone(),
                },
            ),
        )
        .add_service(
            berth_proto::v1::webhook_service_server::WebhookServiceServer::new(
                crate::api::webhooks::WebhookApi {
                    shared: shared.clone(),
                    changes: webhook_changes,
                },
            ),
        )
        .add_service(SnapshotServiceServer::new(SnapshotApi {
            store: store.clone(),
            ca: ca.snapshot_files(),
            spool_dir: config.data_dir.clone(),
        }))
        .add_service(TagServiceServer::new(TagApi {
            shared: shared.clone(),
        }))
        .add_service(AttributeServiceServer::new(AttributeApi {
            shared: shared.clone(),
        }))
        .add_service(TargetGroupServiceServer::new(TargetGroupApi {
            shared: shared.clone(),
            traffic: traffic.clone(),
            shutdown: streams.clone(),
        }))
        .add_service(
            berth_proto::v1::schedule_service_server::ScheduleServiceServer::new(
                crate::api::schedule::ScheduleApi {
                    shared: shared.clone(),
                },
            ),
        )
        .add_service(
            berth_proto::v1::auto_scaling_service_server::AutoScalingServiceServer::new(
                crate::api::autoscaling::AutoScalingApi {
                    shared: shared.clone(),
                },
            ),
        )
        .add_service(AgentServiceServer::new(AgentApi {
            shared: shared.clone(),
            shutdown: streams.clone(),
        }))
        .serve_with_incoming_shutdown(nodelay(listener), {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                berth_proto::systemd::notify_stopping();
                tracing::info!("shutting down: no new calls, ending agent streams");
                streams.cancel();
            }
        });
    tokio::pin!(serve);
    // The store is open, the CA loaded and the listener bound: tonic accepts
    // from the first poll of `serve` below.
    berth_proto::systemd::notify_ready(&match addr {
        Some(a) => format!("serving on {a}"),
        None => "serving".to_owned(),
    });
    let watchdog = berth_proto::systemd::watchdog_period().map(|period| {
        tokio::spawn(berth_proto::systemd::run_watchdog(
            period,
            store_probe(db.clone()),
        ))
    });
    // Calls in flight get DRAIN to finish; a peer that keeps its connection
    // open after GOAWAY does not hold the shutdown hostage.
    let drain_expired = async {
        shutdown.cancelled().await;
        tokio::time::sleep(DRAIN).await;
    };
    tokio::select! {
        res = &mut serve => res?,
        _ = drain_expired => {
            tracing::warn!(drain = ?DRAIN, "connections still open after the drain period; closing them");
        }
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    if let Some(m) = metrics {
        let _ = m.await;
    }
    if let Some(e) = ecs_api {
        // It stops at the shutdown signal, after its calls in flight.
        let _ = e.await;
    }
    if let Some(d) = dns {
        let _ = d.await;
    }
    // The controller stops at the shutdown signal; wait for its last
    // evaluation before the final flush.
    let _ = controller.await;
    let _ = pruner.await;
    let _ = schedules.await;
    let _ = autoscaler.await;
    traffic.stopped().await;
    let _ = event_pruner.await;
    let _ = webhooks.await;
    db.close().await;
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .map_err(|e| {
            ServerError::Flush(StoreError::Io {
                path: config.data_dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        })?
        .map_err(ServerError::Flush)?;
    tracing::info!("berth-scheduler stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DNS address that cannot be bound stops the start-up before the
    /// store is opened or anything is served, naming the address.
    #[tokio::test]
    async fn a_dns_address_in_use_is_a_startup_error() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path());
        config.dns.listen = Some(addr);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = run_with(config, listener, None, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(matches!(err, ServerError::Dns(_)), "{err:?}");
        assert_eq!(
            err.to_string().split(": ").next(),
            Some(format!("cannot bind DNS (udp) on {addr}").as_str())
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing written before the bind"
        );
    }
}
