//! The registry side of a pull: the `oci-client` client (timeouts,
//! insecure registries), its auth (given credentials, else the Docker
//! config's, else anonymous), and registry errors mapped to [`ImageError`].

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;

use super::docker_config::{docker_config_credentials, docker_config_error};
use super::{Credentials, ImageError, ImageStore};

fn innermost_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

pub(super) fn registry_error(reference: &Reference, e: OciDistributionError) -> ImageError {
    let name = reference.whole();
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            ImageError::Unauthorized { reference: name }
        }
        OciDistributionError::ImageManifestNotFoundError(_) => {
            ImageError::ManifestUnknown { reference: name }
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                ImageError::Unauthorized { reference: name }
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::ManifestUnknown))
            {
                ImageError::ManifestUnknown { reference: name }
            } else if codes.iter().any(|c| matches!(c, OciErrorCode::NameUnknown)) {
                ImageError::RepositoryUnknown { reference: name }
            } else {
                let cause = envelope
                    .errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                ImageError::Registry {
                    reference: name,
                    cause,
                }
            }
        }
        OciDistributionError::ServerError { code: 401, .. } => {
            ImageError::Unauthorized { reference: name }
        }
        OciDistributionError::ServerError { code: 404, .. } => {
            ImageError::ManifestUnknown { reference: name }
        }
        OciDistributionError::RequestError(ref re) => ImageError::Unreachable {
            registry: reference.registry().to_owned(),
            reference: name,
            cause: innermost_cause(re),
        },
        OciDistributionError::DigestError(_) => ImageError::DigestMismatch {
            reference: name,
            digest: reference.digest().unwrap_or_default().to_owned(),
        },
        other => ImageError::Registry {
            reference: name,
            cause: other.to_string(),
        },
    }
}

impl ImageStore {
    pub(super) fn oci_client(&self) -> oci_client::Client {
        let config = ClientConfig {
            protocol: if self.cfg.insecure_registries.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(self.cfg.insecure_registries.clone())
            },
            // Platform choice is ours (see `select_platform`).
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("berth-agent/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        oci_client::Client::new(config)
    }

    pub(super) fn registry_auth(
        &self,
        reference: &Reference,
        creds: Option<&Credentials>,
    ) -> Result<RegistryAuth, ImageError> {
        if let Some(c) = creds {
            return Ok(RegistryAuth::Basic(c.username.clone(), c.password.clone()));
        }
        let Some(path) = &self.cfg.docker_config else {
            return Ok(RegistryAuth::Anonymous);
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), "no docker config; pulling anonymously");
                return Ok(RegistryAuth::Anonymous);
            }
            Err(e) => return Err(docker_config_error(path, e.to_string())),
        };
        match docker_config_credentials(&text, reference.registry())
            .map_err(|reason| docker_config_error(path, reason))?
        {
            Some(c) => Ok(RegistryAuth::Basic(c.username, c.password)),
            None => Ok(RegistryAuth::Anonymous),
        }
    }
}
