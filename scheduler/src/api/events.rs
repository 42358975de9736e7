//! `EventService`: ListEvents and WatchEvents over the event log
//! ([`crate::events`]), each event rendered here, at the edge, as
//! EventBridge delivers ECS's events: the envelope (`version`, `id`,
//! `detail-type`, `source`, `account`, `time`, `region`, `resources`) around
//! a `detail` that is the task or container instance as
//! [`berth_proto::ecs_json`] renders it for Describe*, or the deployment's
//! and service action's fields. Timestamps in `detail` are ISO 8601 strings,
//! as EventBridge has them.

use std::pin::Pin;

use berth_proto::v1 as pb;
use berth_proto::v1::event_service_server::EventService;
use futures::Stream;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::instance::ContainerInstanceApi;
use super::task::task_to_proto;
use super::{cluster_arg, millis, timestamp, ApiError, Shared};
use crate::events::{EventBody, EventFilter, EventKind, Sequenced};
use crate::records::UnixMillis;

/// ListEvents' page size when none is asked for, and its maximum.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Events read from the store per step of a WatchEvents stream.
const WATCH_BATCH: usize = 256;

#[derive(Debug)]
pub struct EventApi {
    pub shared: Shared,
    /// Cancelled on scheduler shutdown, ending every WatchEvents stream.
    pub shutdown: CancellationToken,
}

/// ISO 8601 in UTC with milliseconds, as EventBridge writes times.
fn iso(ms: UnixMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// EventBridge's envelope `time`: whole seconds.
fn iso_seconds(ms: UnixMillis) -> String {
    let s = iso(ms.div_euclid(1000) * 1000);
    s.replace(".000Z", "Z")
}

/// The Describe* JSON has epoch seconds (numbers) under `…At` members;
/// EventBridge's details have ISO strings there.
fn iso_timestamps(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    Value::Number(n) if k.ends_with("At") => {
                        if let Some(secs) = n.as_f64() {
                            *v = Value::String(iso((secs * 1000.0).round() as i64));
                        }
                    }
                    other => iso_timestamps(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(iso_timestamps),
        _ => {}
    }
}

fn filter_from(f: Option<pb::EventFilter>) -> Result<EventFilter, ApiError> {
    let f = f.unwrap_or_default();
    let kind = match f.detail_type.trim() {
        "" => None,
        t => Some(EventKind::from_detail_type(t).ok_or_else(|| {
            ApiError::invalid(
                "filter.detail_type",
                format!(
                    "{t:?} is not one of {}",
                    EventKind::ALL
                        .map(|k| format!("{:?}", k.detail_type()))
                        .join(", ")
                ),
            )
        })?),
    };
    Ok(EventFilter {
        cluster: (!f.cluster.trim().is_empty()).then(|| cluster_arg(&f.cluster)),
        kind,
        since_time: f.since_time.as_ref().map(millis),
    })
}

/// One event as the API gives it: EventBridge's JSON and a summary line.
pub fn render(shared: &Shared, e: &Sequenced) -> Result<pb::Event, ApiError> {
    let arn = &shared.arn;
    let ev = &e.event;
    let (resource, summary, detail) = match &ev.body {
        EventBody::Task { task } => {
            let t = task_to_proto(arn, task);
            let summary = format!(
                "{} lastStatus={} desiredStatus={}{}",
                task.id,
                task.last_status,
                task.desired_status,
                task.stop_code
                    .map(|c| format!(" stopCode={c}"))
                    .unwrap_or_default()
            );
            (t.task_arn.clone(), summary, berth_proto::ecs_json::task(&t))
        }
        EventBody::Instance { instance } => {
            let ci = ContainerInstanceApi {
                shared: shared.clone(),
            }
            .to_proto(instance)?;
            let summary = format!("{} status={}", instance.id, instance.status.as_str());
            (
                ci.container_instance_arn.clone(),
                summary,
                berth_proto::ecs_json::container_instance(&ci),
            )
        }
        EventBody::Deployment {
            cluster,
            service,
            deployment_id,
            event_type,
            event_name,
            reason,
            updated_at,
        } => (
            arn.service(cluster, service),
            format!("{service} {event_name} {deployment_id}"),
            json!({
                "eventType": event_type,
                "eventName": event_name,
                "deploymentId": deployment_id,
                "updatedAt": iso(*updated_at),
                "reason": reason,
            }),
        ),
        EventBody::ServiceAction {
            cluster,
            service,
            event_type,
            event_name,
            message,
            created_at,
        } => (
            arn.service(cluster, service),
            format!("{service} {event_name}"),
            json!({
                "eventType": event_type,
                "eventName": event_name,
                "clusterArn": arn.cluster(cluster),
                "createdAt": iso(*created_at),
                "reason": message,
            }),
        ),
    };
    let mut detail = detail;
    iso_timestamps(&mut detail);
    let mut envelope = Map::new();
    envelope.insert("version".into(), json!("0"));
    envelope.insert("id".into(), json!(ev.id));
    envelope.insert("detail-type".into(), json!(ev.body.kind().detail_type()));
    envelope.insert("source".into(), json!("aws.ecs"));
    envelope.insert("account".into(), json!(arn.account));
    envelope.insert("time".into(), json!(iso_seconds(ev.time)));
    envelope.insert("region".into(), json!(arn.region));
    envelope.insert("resources".into(), json!([resource]));
    envelope.insert("detail".into(), detail);
    Ok(pb::Event {
        cursor: e.seq,
        detail_type: ev.body.kind().detail_type().to_owned(),
        time: Some(timestamp(ev.time)),
        resource,
        summary,
        json: Value::Object(envelope).to_string(),
    })
}

#[tonic::async_trait]
impl EventService for EventApi {
    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let req = req.into_inner();
        let filter = filter_from(req.filter)?;
        let limit = match req.max_results as usize {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(ApiError::invalid(
                    "max_results",
                    format!("{n} is more than {MAX_PAGE}"),
                )
                .into())
            }
            n => n,
        };
        let log = self.shared.db.events();
        let (found, next) = log
            .read_after(req.since_cursor, &filter, limit)
            .map_err(ApiError::from)?;
        let events = found
            .iter()
            .map(|e| render(&self.shared, e))
            .collect::<Result<Vec<_>, _>>()?;
        let latest = log.last_durable();
        Ok(Response::new(pb::ListEventsResponse {
            events,
            next_cursor: next,
            more: next < latest,
            latest_cursor: latest,
        }))
    }

    type WatchEventsStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let req = req.into_inner();
        let filter = filter_from(req.filter)?;
        let log = self.shared.db.events().clone();
        // Subscribe before the first read, so no notification falls between.
        let mut durable = log.durable();
        let mut cursor = if req.from_now {
            log.last_durable()
        } else {
            req.since_cursor
        };
        // A cursor that lost events fails the call itself, not the stream.
        log.read_after(cursor, &filter, 0).map_err(ApiError::from)?;
        let shared = self.shared.clone();
        let shutdown = self.shutdown.clone();
        let (tx, out) = tokio::sync::mpsc::channel::<Result<pb::Event, Status>>(64);
        tokio::spawn(async move {
            loop {
                durable.borrow_and_update();
                // Everything durable now, in batches.
                loop {
                    let (batch, next) = match log.read_after(cursor, &filter, WATCH_BATCH) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send(Err(ApiError::from(e).into())).await;
                            return;
                        }
                    };
                    for e in &batch {
                        let msg = render(&shared, e).map_err(Status::from);
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                    let moved = next != cursor;
                    cursor = next;
                    if !moved || cursor >= log.last_durable() {
                        break;
                    }
                }
                tokio::select! {
                    r = durable.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                    _ = shutdown.cancelled() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }
}
