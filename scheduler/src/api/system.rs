//! `SystemService`: version information.

use berth_proto::v1::{system_service_server::SystemService, VersionRequest, VersionResponse};
use tonic::{Request, Response, Status};

#[derive(Debug, Default)]
pub struct SystemApi;

#[tonic::async_trait]
impl SystemService for SystemApi {
    async fn version(
        &self,
        _req: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: berth_proto::VERSION.to_owned(),
            git_commit: option_env!("BERTH_GIT_COMMIT").unwrap_or("").to_owned(),
        }))
    }
}
