//! `berthctl version`: the client's version, and the scheduler's when it
//! answers. An unreachable scheduler still gets the client's version printed,
//! then the error (exit code 3).

use berth_proto::v1 as pb;
use berth_proto::v1::system_service_client::SystemServiceClient;

use super::Ctx;
use crate::error::CtlError;
use crate::views::system::{version_table, VersionView};

pub async fn run(ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let server = match ctx.channel().await {
        Ok(channel) => SystemServiceClient::new(channel)
            .version(pb::VersionRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(ctx.rpc_error()),
        Err(e) => Err(e),
    };
    match server {
        Ok(s) => ctx.emit(&VersionView::new(Some(s)), version_table),
        Err(e) => {
            ctx.emit(&VersionView::new(None), version_table)?;
            Err(e)
        }
    }
}
