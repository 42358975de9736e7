//! `berth-agent register`: joins this host to a cluster with an activation.
//!
//! 1. Fetch the cluster CA with the open `GetClusterCa` (TLS without
//!    verification) and accept it only if its SHA-256 fingerprint is the one
//!    the operator gave.
//! 2. Generate the host's key here (ECDSA P-256) and a CSR for it; the key
//!    never leaves the host.
//! 3. `Register(activation id, code, CSR, hostname)` over TLS pinned to
//!    that CA; the answer is the client certificate (subject CN = the
//!    container instance id).
//! 4. Write `key.pem` (0600), `ca.pem`, `cert.pem`, then `identity.json`,
//!    each atomically, in the state dir.

use std::time::Duration;

use berth_proto::trust::{self, TrustError};
use berth_proto::v1::agent_service_client::AgentServiceClient;
use tonic::Status;

use crate::identity::{Credentials, Identity, IdentityError, IdentityStore};
use crate::transport::{self, TransportError};
use crate::wire::{self, WireError};

const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);

/// What `register` needs.
#[derive(Debug, Clone)]
pub struct RegisterArgs {
    /// `https://host:port` of the scheduler.
    pub scheduler: String,
    pub activation_id: String,
    pub activation_code: String,
    /// `sha256:<hex>` as `berth-scheduler` and `berthctl activation create` print it.
    pub ca_fingerprint: String,
    pub hostname: String,
    /// If set, the scheduler refuses an activation for another cluster
    /// (before the code is used).
    pub cluster: Option<String>,
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(
        "this host is already registered as container instance {id} of cluster {cluster} \
         ({path}); to join anew, deregister it (`berthctl instance deregister {id}`) and \
         remove the state directory's identity.json, cert.pem and key.pem"
    )]
    AlreadyRegistered {
        id: String,
        cluster: String,
        path: String,
    },
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the scheduler refused the registration: {}", .0.message())]
    Refused(Status),
    #[error("Register got no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot make the host's key or CSR: {0}")]
    Key(#[from] rcgen::Error),
    #[error("the scheduler's answer: {0}")]
    Protocol(#[from] WireError),
    #[error("the scheduler answered with another CA ({actual}) than the pinned one ({expected})")]
    CaChanged { expected: String, actual: String },
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl RegisterError {
    /// 64 when the operator's input is at fault (bad fingerprint or URL,
    /// already registered), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RegisterError::AlreadyRegistered { .. }
            | RegisterError::Trust(
                TrustError::BadFingerprint(_)
                | TrustError::Url { .. }
                | TrustError::FingerprintMismatch { .. },
            ) => crate::EXIT_CONFIG,
            _ => 1,
        }
    }
}

/// A new key and a CSR for it (the scheduler decides the subject).
pub fn new_key_and_csr(hostname: &str) -> Result<(String, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let csr = csr_for(&key, hostname)?;
    Ok((key.serialize_pem(), csr))
}

/// A CSR for an existing key (renewal keeps the host's key).
pub fn csr_for(key: &rcgen::KeyPair, hostname: &str) -> Result<String, rcgen::Error> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    params.serialize_request(key)?.pem()
}

/// Registers the host and persists what it got; returns the identity.
pub async fn register(
    args: &RegisterArgs,
    store: &IdentityStore,
) -> Result<Identity, RegisterError> {
    if let Some(id) = store.load()? {
        return Err(RegisterError::AlreadyRegistered {
            id: id.container_instance_id,
            cluster: id.cluster,
            path: store.path().display().to_string(),
        });
    }
    trust::install_crypto_provider();
    let expected = trust::parse_fingerprint(&args.ca_fingerprint)?;
    let ca_pem = trust::fetch_cluster_ca(&args.scheduler, &expected).await?;
    tracing::info!(fingerprint = %expected, "the scheduler's CA matches the fingerprint");

    let (key_pem, csr_pem) = new_key_and_csr(&args.hostname)?;
    let channel = transport::connect_as(&args.scheduler, &ca_pem, None).await?;
    let request = wire::register_request(
        args.activation_id.trim(),
        args.activation_code.trim(),
        &csr_pem,
        &args.hostname,
        args.cluster.as_deref(),
    );
    let response = tokio::time::timeout(
        REGISTER_TIMEOUT,
        AgentServiceClient::new(channel).register(request),
    )
    .await
    .map_err(|_| RegisterError::Timeout(REGISTER_TIMEOUT))?
    .map_err(RegisterError::Refused)?
    .into_inner();
    let (identity, cert_pem, answered_ca) = wire::identity(response)?;
    let actual = trust::fingerprint_pem(&answered_ca)?;
    if actual != expected {
        return Err(RegisterError::CaChanged { expected, actual });
    }
    store.save_credentials(&Credentials {
        cert_pem,
        key_pem,
        ca_pem,
    })?;
    store.save(&identity)?;
    Ok(identity)
}
