//! `AuditService`: the audit log of mutating calls, written by `api::auth`.

use berth_proto::v1::{
    audit_service_server::AuditService, AuditEvent, ListAuditEventsRequest, ListAuditEventsResponse,
};
use tonic::{Request, Response, Status};

use super::{millis, timestamp, ApiError, Shared};
use crate::db::AuditFilter;
use crate::records::AuditRecord;

#[derive(Debug)]
pub struct AuditApi {
    pub shared: Shared,
}

fn to_proto(e: AuditRecord) -> AuditEvent {
    AuditEvent {
        id: e.id,
        time: Some(timestamp(e.time)),
        token_id: e.token_id,
        token_name: e.token_name,
        method: e.method,
        resource: e.resource,
        outcome: e.outcome,
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        req: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        let r = req.into_inner();
        let limit = usize::try_from(r.limit)
            .map_err(|_| ApiError::invalid("limit", "must not be negative"))?;
        let non_empty = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let filter = AuditFilter {
            since: r.since.as_ref().map(millis),
            limit,
            method: non_empty(r.method),
            who: non_empty(r.who),
        };
        let events = self
            .shared
            .db
            .audit_events(&filter)
            .map_err(ApiError::from)?;
        Ok(Response::new(ListAuditEventsResponse {
            events: events.into_iter().map(to_proto).collect(),
        }))
    }
}
