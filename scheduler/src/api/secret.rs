//! `SecretService`: put, list and delete secrets. Values go in and never
//! come back out through this service: List returns names, versions and
//! times. The values leave the scheduler only in the `DesiredTask`s of the
//! agent that runs a task using them (`api::agent`).

use berth_proto::v1::{
    secret_service_server::SecretService, DeleteSecretRequest, DeleteSecretResponse,
    ListSecretsRequest, ListSecretsResponse, PutSecretRequest, PutSecretResponse, SecretMetadata,
};
use tonic::{Request, Response, Status};

use super::{timestamp, ApiError, Shared};
use crate::records::SecretRecord;

#[derive(Debug)]
pub struct SecretApi {
    pub shared: Shared,
}

fn metadata(r: &SecretRecord) -> SecretMetadata {
    SecretMetadata {
        name: r.name.clone(),
        version: r.version,
        created_at: Some(timestamp(r.created_at)),
        updated_at: Some(timestamp(r.updated_at)),
    }
}

#[tonic::async_trait]
impl SecretService for SecretApi {
    // The request's value never reaches a span or a log line.
    #[tracing::instrument(skip_all, fields(secret = %req.get_ref().name))]
    async fn put_secret(
        &self,
        req: Request<PutSecretRequest>,
    ) -> Result<Response<PutSecretResponse>, Status> {
        let req = req.into_inner();
        let rec = self
            .shared
            .secrets
            .put(&req.name, &req.value)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(version = rec.version, "secret stored");
        Ok(Response::new(PutSecretResponse {
            secret: Some(metadata(&rec)),
        }))
    }

    async fn list_secrets(
        &self,
        _req: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsResponse>, Status> {
        let list = self.shared.secrets.list().map_err(ApiError::from)?;
        Ok(Response::new(ListSecretsResponse {
            secrets: list.iter().map(metadata).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(secret = %req.get_ref().name))]
    async fn delete_secret(
        &self,
        req: Request<DeleteSecretRequest>,
    ) -> Result<Response<DeleteSecretResponse>, Status> {
        let name = req.into_inner().name;
        let rec = self
            .shared
            .secrets
            .delete(&name)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(version = rec.version, "secret deleted");
        Ok(Response::new(DeleteSecretResponse {
            secret: Some(metadata(&rec)),
        }))
    }
}
