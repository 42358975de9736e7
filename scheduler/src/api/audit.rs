//! `AuditService`: the audit log of mutating calls, written by `api::auth`,
//! listed a page at a time from the most recent (`next_token`).

use berth_proto::v1::{
    audit_service_server::AuditService, AuditEvent, ListAuditEventsRequest, ListAuditEventsResponse,
};
use tonic::{Request, Response, Status};

use super::{millis, timestamp, ApiError, Shared};
use crate::db::AuditFilter;
use crate::records::AuditRecord;

/// The paging tokens' listing name.
const LISTING: &str = "audit";

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
        let before = crate::paging::resume_key(LISTING, &r.next_token).map_err(ApiError::from)?;
        let filter = AuditFilter {
            since: r.since.as_ref().map(millis),
            limit,
            method: non_empty(r.method),
            who: non_empty(r.who),
            before,
        };
        let page = self
            .shared
            .db
            .audit_events(&filter)
            .map_err(ApiError::from)?;
        // The next page holds the events before the oldest of this one.
        let next_token = match (page.more, page.events.first()) {
            (true, Some(oldest)) => crate::paging::encode_token(LISTING, &oldest.id),
            _ => String::new(),
        };
        Ok(Response::new(ListAuditEventsResponse {
            events: page.events.into_iter().map(to_proto).collect(),
            next_token,
        }))
    }
}
