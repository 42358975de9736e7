//! `WebhookService`: subscriptions to the event log delivered by signed POST
//! ([`crate::webhooks`]). Requests are checked here (name, URL, pattern
//! with its JSON path, secret length); the secret is sealed before it is
//! stored and no answer carries it. Each write pokes the delivery workers.

use berth_proto::v1 as pb;
use berth_proto::v1::webhook_service_server::WebhookService;
use tonic::{Request, Response, Status};

use super::{timestamp, ApiError, Shared};
use crate::auth::Principal;
use crate::records::{now_millis, DeadLetterRecord, WebhookRecord};
use crate::webhooks::{self, pattern::Pattern, Changes, MAX_SECRET_LEN, MIN_SECRET_LEN};

#[derive(Debug)]
pub struct WebhookApi {
    pub shared: Shared,
    /// Wakes the delivery workers after a change.
    pub changes: Changes,
}

fn name_arg(name: &str) -> Result<(), ApiError> {
    webhooks::validate_name(name).map_err(|m| ApiError::invalid("name", m))
}

impl WebhookApi {
    fn to_proto(&self, rec: &WebhookRecord) -> Result<pb::Webhook, ApiError> {
        let db = &self.shared.db;
        let state = db
            .webhook_state(&rec.name)?
            .map(|(s, _)| s)
            .unwrap_or_default();
        let dead = db.webhook_dead_letters(&rec.name)?.len();
        let redrives = db.webhook_redrives(&rec.name)?.len();
        Ok(pb::Webhook {
            name: rec.name.clone(),
            url: rec.url.clone(),
            event_pattern: rec.pattern.clone(),
            created_at: Some(timestamp(rec.created_at)),
            created_by: rec.created_by.clone(),
            cursor: state.cursor,
            latest_cursor: db.events().last_durable(),
            attempts: state.attempts,
            last_error: state.last_error.unwrap_or_default(),
            last_attempt_at: state.last_attempt_at.map(timestamp),
            last_success_at: state.last_success_at.map(timestamp),
            delivered: state.delivered,
            dead_lettered: state.dead_lettered,
            dead_letters: u32::try_from(dead).unwrap_or(u32::MAX),
            redrives_pending: u32::try_from(redrives).unwrap_or(u32::MAX),
        })
    }

    fn find(&self, name: &str) -> Result<WebhookRecord, ApiError> {
        name_arg(name)?;
        self.shared.db.webhook(name)?.ok_or_else(|| {
            ApiError::Db(crate::db::DbError::NotFound {
                kind: "webhook",
                name: name.to_owned(),
            })
        })
    }
}

fn letter_to_proto(l: &DeadLetterRecord, redriving: bool) -> pb::DeadLetter {
    pb::DeadLetter {
        cursor: l.seq,
        event_id: l.event_id.clone(),
        detail_type: l.detail_type.clone(),
        resource: l.resource.clone(),
        attempts: l.attempts,
        last_error: l.last_error.clone(),
        dead_lettered_at: Some(timestamp(l.dead_lettered_at)),
        body: l.body.clone(),
        redriving,
    }
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    #[tracing::instrument(skip_all)]
    async fn create_webhook(
        &self,
        req: Request<pb::CreateWebhookRequest>,
    ) -> Result<Response<pb::CreateWebhookResponse>, Status> {
        let who = req
            .extensions()
            .get::<Principal>()
            .map(|p| p.token_id.clone())
            .unwrap_or_default();
        let r = req.into_inner();
        name_arg(&r.name)?;
        webhooks::http::Target::parse(&r.url)
            .map_err(|e| ApiError::invalid("url", e.to_string()))?;
        let pattern = r.event_pattern.trim().to_owned();
        if !pattern.is_empty() {
            Pattern::compile(&pattern, "eventPattern")
                .map_err(|e| ApiError::invalid(&e.path, e.message))?;
        }
        if r.secret.len() < MIN_SECRET_LEN || r.secret.len() > MAX_SECRET_LEN {
            return Err(ApiError::invalid(
                "secret",
                format!(
                    "is {} bytes; it must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} (e.g. `openssl rand -hex 32`)",
                    r.secret.len()
                ),
            )
            .into());
        }
        let log = self.shared.db.events();
        let latest = log.last_durable();
        let start_cursor = if r.from_oldest {
            log.first()
                .map_err(crate::db::DbError::from)
                .map_err(ApiError::from)?
                .saturating_sub(1)
        } else if r.start_after_cursor == 0 {
            latest
        } else if r.start_after_cursor > latest {
            return Err(ApiError::invalid(
                "startAfterCursor",
                format!(
                    "{} is ahead of the event log (the last event is {latest})",
                    r.start_after_cursor
                ),
            )
            .into());
        } else {
            r.start_after_cursor
        };
        let created_at = now_millis();
        let rec = WebhookRecord {
            sealed_secret: self
                .shared
                .secrets
                .seal_webhook_secret(&r.name, created_at, &r.secret),
            name: r.name,
            url: r.url,
            pattern,
            created_at,
            created_by: who,
            start_cursor,
        };
        self.shared
            .db
            .create_webhook(&rec)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(webhook = %rec.name, url = %rec.url, start_cursor, "webhook created");
        self.changes.poke();
        Ok(Response::new(pb::CreateWebhookResponse {
            webhook: Some(self.to_proto(&rec)?),
        }))
    }

    async fn list_webhooks(
        &self,
        _req: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        let webhooks = self
            .shared
            .db
            .webhooks()
            .map_err(ApiError::from)?
            .iter()
            .map(|w| self.to_proto(w))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(pb::ListWebhooksResponse { webhooks }))
    }

    async fn describe_webhook(
        &self,
        req: Request<pb::DescribeWebhookRequest>,
    ) -> Result<Response<pb::DescribeWebhookResponse>, Status> {
        let rec = self.find(&req.into_inner().name)?;
        Ok(Response::new(pb::DescribeWebhookResponse {
            webhook: Some(self.to_proto(&rec)?),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_webhook(
        &self,
        req: Request<pb::DeleteWebhookRequest>,
    ) -> Result<Response<pb::DeleteWebhookResponse>, Status> {
        let name = req.into_inner().name;
        let rec = self.find(&name)?;
        let webhook = self.to_proto(&rec)?;
        self.shared
            .db
            .delete_webhook(&name)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(webhook = %name, "webhook deleted");
        self.changes.poke();
        Ok(Response::new(pb::DeleteWebhookResponse {
            webhook: Some(webhook),
        }))
    }

    async fn list_dead_letters(
        &self,
        req: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let name = req.into_inner().name;
        self.find(&name)?;
        let db = &self.shared.db;
        let mut dead_letters: Vec<pb::DeadLetter> = db
            .webhook_dead_letters(&name)
            .map_err(ApiError::from)?
            .iter()
            .map(|l| letter_to_proto(l, false))
            .collect();
        dead_letters.extend(
            db.webhook_redrives(&name)
                .map_err(ApiError::from)?
                .iter()
                .map(|l| letter_to_proto(l, true)),
        );
        dead_letters.sort_by_key(|l| l.cursor);
        Ok(Response::new(pb::ListDeadLettersResponse { dead_letters }))
    }

    #[tracing::instrument(skip_all)]
    async fn redrive_dead_letters(
        &self,
        req: Request<pb::RedriveDeadLettersRequest>,
    ) -> Result<Response<pb::RedriveDeadLettersResponse>, Status> {
        let r = req.into_inner();
        self.find(&r.name)?;
        let n = self
            .shared
            .db
            .redrive_webhook(&r.name, &r.cursors)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(webhook = %r.name, redriven = n, "webhook dead letters redriven");
        self.changes.poke();
        Ok(Response::new(pb::RedriveDeadLettersResponse {
            redriven: u32::try_from(n).unwrap_or(u32::MAX),
        }))
    }
}
