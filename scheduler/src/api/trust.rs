//! `ClusterCaService` (open: the CA certificate and its fingerprint) and
//! `ActivationService` (admin: activations that let hosts join a cluster).
//! Activation codes are shown once and stored only as SHA-256.

use std::sync::Arc;
use std::time::Duration;

use berth_proto::v1::{
    activation_service_server::ActivationService, cluster_ca_service_server::ClusterCaService,
    Activation, Attribute, CreateActivationRequest, CreateActivationResponse, GetClusterCaRequest,
    GetClusterCaResponse, ListActivationsRequest, ListActivationsResponse, RevokeActivationRequest,
    RevokeActivationResponse,
};
use rand::RngCore;
use tonic::{Request, Response, Status};

use super::convert::validate_attribute;
use super::{cluster_arg, timestamp, ApiError, Shared};
use crate::records::{now_millis, ActivationRecord};
use crate::tls::ClusterCa;

/// How long an activation lasts unless the request says otherwise (ECS's
/// default is 24 hours too).
pub const DEFAULT_ACTIVATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// ECS allows at most 30 days.
pub const MAX_ACTIVATION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// ECS Anywhere's registration limit is at most 1000.
pub const MAX_REGISTRATION_LIMIT: u32 = 1000;

#[derive(Debug)]
pub struct ClusterCaApi {
    pub ca: Arc<ClusterCa>,
}

#[tonic::async_trait]
impl ClusterCaService for ClusterCaApi {
    async fn get_cluster_ca(
        &self,
        _req: Request<GetClusterCaRequest>,
    ) -> Result<Response<GetClusterCaResponse>, Status> {
        Ok(Response::new(GetClusterCaResponse {
            ca_pem: self.ca.ca_pem().to_owned(),
            fingerprint: self.ca.fingerprint().to_owned(),
        }))
    }
}

#[derive(Debug)]
pub struct ActivationApi {
    pub shared: Shared,
}

impl ActivationApi {
    fn to_proto(&self, a: &ActivationRecord) -> Activation {
        Activation {
            activation_id: a.id.clone(),
            cluster_arn: self.shared.arn.cluster(&a.cluster),
            created_at: Some(timestamp(a.created_at)),
            expires_at: Some(timestamp(a.expires_at)),
            registration_limit: a.registration_limit,
            registrations_count: a.registrations,
            attributes: a
                .attributes
                .iter()
                .map(|(name, value)| Attribute {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            revoked: a.revoked,
            status: a.status(now_millis()).as_str().to_owned(),
        }
    }
}

#[tonic::async_trait]
impl ActivationService for ActivationApi {
    #[tracing::instrument(skip_all, fields(cluster = %req.get_ref().cluster))]
    async fn create_activation(
        &self,
        req: Request<CreateActivationRequest>,
    ) -> Result<Response<CreateActivationResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let ttl = match req.expires_in_seconds {
            0 => DEFAULT_ACTIVATION_TTL,
            s => Duration::from_secs(s),
        };
        if ttl > MAX_ACTIVATION_TTL {
            return Err(ApiError::invalid("expiresInSeconds", "must be at most 30 days").into());
        }
        let limit = match req.registration_limit {
            0 => 1,
            n if n > MAX_REGISTRATION_LIMIT => {
                return Err(ApiError::invalid(
                    "registrationLimit",
                    format!("must be at most {MAX_REGISTRATION_LIMIT}"),
                )
                .into())
            }
            n => n,
        };
        let mut attributes = Vec::with_capacity(req.attributes.len());
        for (i, a) in req.attributes.into_iter().enumerate() {
            validate_attribute("attributes", i, &a.name, &a.value)?;
            if a.name.starts_with("ecs.") {
                return Err(ApiError::invalid(
                    &format!("attributes[{i}].name"),
                    "names starting with \"ecs.\" are reserved for the agent",
                )
                .into());
            }
            attributes.push((a.name, a.value));
        }
        attributes.sort();
        if let Some(w) = attributes.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ApiError::invalid(
                "attributes",
                format!("attribute {:?} is given twice", w[0].0),
            )
            .into());
        }
        let mut secret = [0u8; 20];
        rand::rng().fill_bytes(&mut secret);
        let code = hex::encode(secret);
        let now = now_millis();
        let rec = ActivationRecord {
            id: uuid::Uuid::new_v4().to_string(),
            code_sha256: crate::auth::sha256_hex(&code),
            cluster,
            created_at: now,
            expires_at: now.saturating_add(ttl.as_millis() as i64),
            registration_limit: limit,
            registrations: 0,
            attributes,
            revoked: false,
        };
        let rec = self
            .shared
            .db
            .create_activation(rec)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(activation = %rec.id, cluster = %rec.cluster, limit, "activation created");
        Ok(Response::new(CreateActivationResponse {
            activation: Some(self.to_proto(&rec)),
            activation_code: code,
            ca_fingerprint: self.shared.ca.fingerprint().to_owned(),
        }))
    }

    async fn list_activations(
        &self,
        req: Request<ListActivationsRequest>,
    ) -> Result<Response<ListActivationsResponse>, Status> {
        let req = req.into_inner();
        let cluster = (!req.cluster.trim().is_empty()).then(|| cluster_arg(&req.cluster));
        let activations = self
            .shared
            .db
            .activations()
            .map_err(ApiError::from)?
            .iter()
            .filter(|a| cluster.as_ref().is_none_or(|c| *c == a.cluster))
            .map(|a| self.to_proto(a))
            .collect();
        Ok(Response::new(ListActivationsResponse { activations }))
    }

    #[tracing::instrument(skip_all, fields(activation = %req.get_ref().activation_id))]
    async fn revoke_activation(
        &self,
        req: Request<RevokeActivationRequest>,
    ) -> Result<Response<RevokeActivationResponse>, Status> {
        let id = req.into_inner().activation_id;
        if id.trim().is_empty() {
            return Err(ApiError::invalid("activationId", "required").into());
        }
        let rec = self
            .shared
            .db
            .revoke_activation(id.trim())
            .await
            .map_err(ApiError::from)?;
        tracing::info!(activation = %rec.id, "activation revoked");
        Ok(Response::new(RevokeActivationResponse {
            activation: Some(self.to_proto(&rec)),
        }))
    }
}
