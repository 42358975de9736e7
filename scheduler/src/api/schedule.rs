//! `ScheduleService`: scheduled tasks as EventBridge Scheduler keeps them
//! (CreateSchedule, UpdateScheduleState, DeleteSchedule, ListSchedules,
//! GetSchedule), and [`RunTaskLauncher`], the schedule loop's way to run a
//! fire: the same RunTask handler operators call, in-process, so a fire is
//! validated and placed exactly as `berthctl task run` would be.

use std::sync::Arc;

use berth_proto::v1::{
    schedule_service_server::ScheduleService, task_service_server::TaskService,
    CreateScheduleRequest, DeleteScheduleRequest, GetScheduleRequest, ListSchedulesRequest,
    ListSchedulesResponse, RunTaskRequest, Schedule, ScheduleFire, ScheduleResponse,
    ScheduleTarget as PbTarget, UpdateScheduleStateRequest,
};
use futures::future::BoxFuture;
use tonic::{Request, Response, Status};

use super::convert::{parse_ref, tags_to_proto, validate_tags};
use super::task::{overrides_to_proto, run_overrides, TaskApi};
use super::{cluster_arg, millis, timestamp, ApiError, Shared};
use crate::db::schedules::{ScheduleRecord, ScheduleState, ScheduleTarget};
use crate::db::MAX_RUN_COUNT;
use crate::records::now_millis;
use crate::schedules::{self, expr, LaunchError, Launched, Launcher};

#[derive(Debug)]
pub struct ScheduleApi {
    pub shared: Shared,
}

/// EventBridge Scheduler's name rule.
fn validate_schedule_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 64 {
        return Err(ApiError::invalid("name", "must be 1–64 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(ApiError::invalid(
            "name",
            format!("{name:?} contains {c:?}; only letters, digits and '-_.' are allowed"),
        ));
    }
    Ok(())
}

fn expr_error(e: expr::ExprError) -> ApiError {
    let field = if e.field == "timezone" {
        "timezone".to_owned()
    } else {
        format!("expression.{}", e.field)
    };
    ApiError::invalid(&field, e.message)
}

/// ENABLED or DISABLED (empty: `default`).
pub fn parse_state(s: &str, default: ScheduleState) -> Result<ScheduleState, ApiError> {
    match s {
        "" => Ok(default),
        "ENABLED" => Ok(ScheduleState::Enabled),
        "DISABLED" => Ok(ScheduleState::Disabled),
        other => Err(ApiError::invalid(
            "state",
            format!("{other:?} is not ENABLED or DISABLED"),
        )),
    }
}

impl ScheduleApi {
    fn target(&self, t: Option<&PbTarget>) -> Result<ScheduleTarget, ApiError> {
        let t = t.ok_or_else(|| ApiError::invalid("target", "required"))?;
        let cluster = cluster_arg(&t.cluster);
        self.shared.db.active_cluster(&cluster)?;
        let r = parse_ref("target.taskDefinition", &t.task_definition)?;
        let td = self.shared.db.task_definition(&r.family, r.revision)?;
        let count = match t.count {
            0 => 1,
            n @ 1.. if n as u32 <= MAX_RUN_COUNT => n as u32,
            n => {
                return Err(ApiError::invalid(
                    "target.count",
                    format!("{n} is not within 1–{MAX_RUN_COUNT}"),
                ))
            }
        };
        let overrides = run_overrides(&td, t.overrides.as_ref()).map_err(|e| match e {
            ApiError::InvalidFields(issues) => ApiError::InvalidFields(
                issues
                    .into_iter()
                    .map(|mut i| {
                        i.path = format!("target.{}", i.path);
                        i
                    })
                    .collect(),
            ),
            other => other,
        })?;
        Ok(ScheduleTarget {
            cluster,
            task_definition: match r.revision {
                Some(rev) => format!("{}:{rev}", r.family),
                None => r.family,
            },
            count,
            group: Some(t.group.clone()).filter(|g| !g.is_empty()),
            overrides,
            tags: validate_tags("target.tags", &t.tags)?,
            enable_execute_command: t.enable_execute_command,
        })
    }

    fn to_proto(&self, rec: &ScheduleRecord) -> Schedule {
        let arn = &self.shared.arn;
        Schedule {
            name: rec.name.clone(),
            expression: rec.expression.clone(),
            timezone: rec.timezone.clone(),
            target: Some(PbTarget {
                cluster: rec.target.cluster.clone(),
                task_definition: rec.target.task_definition.clone(),
                count: rec.target.count as i32,
                group: rec.target.group.clone().unwrap_or_default(),
                overrides: rec.target.overrides.as_ref().map(overrides_to_proto),
                tags: tags_to_proto(&rec.target.tags),
                enable_execute_command: rec.target.enable_execute_command,
            }),
            flexible_window_minutes: rec.flexible_window_minutes as i32,
            start_date: rec.start_date.map(timestamp),
            end_date: rec.end_date.map(timestamp),
            state: rec.state.as_str().to_owned(),
            creation_date: Some(timestamp(rec.created_at)),
            last_modification_date: Some(timestamp(rec.updated_at)),
            last_fire_time: rec.last_fire.map(timestamp),
            next_fire_time: schedules::next_fire(rec).map(timestamp),
            fires: rec
                .fires
                .iter()
                .map(|f| ScheduleFire {
                    fire_time: Some(timestamp(f.fire_time)),
                    handled_at: Some(timestamp(f.handled_at)),
                    outcome: f.outcome.as_str().to_owned(),
                    task_arns: f
                        .task_ids
                        .iter()
                        .map(|id| arn.task(&rec.target.cluster, id))
                        .collect(),
                    messages: f.messages.clone(),
                })
                .collect(),
        }
    }

    fn reply(&self, rec: &ScheduleRecord) -> Response<ScheduleResponse> {
        Response::new(ScheduleResponse {
            schedule: Some(self.to_proto(rec)),
        })
    }
}

#[tonic::async_trait]
impl ScheduleService for ScheduleApi {
    #[tracing::instrument(skip_all, fields(schedule = %req.get_ref().name))]
    async fn create_schedule(
        &self,
        req: Request<CreateScheduleRequest>,
    ) -> Result<Response<ScheduleResponse>, Status> {
        let req = req.into_inner();
        validate_schedule_name(&req.name)?;
        let expression = req.expression.trim().to_owned();
        expr::Expression::parse(&expression).map_err(expr_error)?;
        let timezone = if req.timezone.is_empty() {
            "UTC".to_owned()
        } else {
            req.timezone.clone()
        };
        expr::zone(&timezone).map_err(expr_error)?;
        if !(0..=1440).contains(&req.flexible_window_minutes) {
            return Err(ApiError::invalid(
                "flexibleWindowMinutes",
                format!("{} is not within 0–1440", req.flexible_window_minutes),
            )
            .into());
        }
        let start_date = req.start_date.as_ref().map(millis);
        let end_date = req.end_date.as_ref().map(millis);
        if let (Some(s), Some(e)) = (start_date, end_date) {
            if e <= s {
                return Err(ApiError::invalid("endDate", "must be after startDate").into());
            }
        }
        let state = parse_state(&req.state, ScheduleState::Enabled)?;
        let target = self.target(req.target.as_ref())?;
        let now = now_millis();
        let rec = ScheduleRecord {
            name: req.name,
            expression,
            timezone,
            start_date,
            end_date,
            flexible_window_minutes: req.flexible_window_minutes as u32,
            state,
            target,
            created_at: now,
            updated_at: now,
            last_fire: None,
            fires: Vec::new(),
        };
        let rec = self
            .shared
            .db
            .create_schedule(rec)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(expression = %rec.expression, timezone = %rec.timezone, "schedule created");
        Ok(self.reply(&rec))
    }

    async fn update_schedule_state(
        &self,
        req: Request<UpdateScheduleStateRequest>,
    ) -> Result<Response<ScheduleResponse>, Status> {
        let req = req.into_inner();
        let state = parse_state(&req.state, ScheduleState::Enabled)?;
        if req.state.is_empty() {
            return Err(ApiError::invalid("state", "required: ENABLED or DISABLED").into());
        }
        let now = now_millis();
        let rec = self
            .shared
            .db
            .update_schedule(&req.name, |r| {
                if r.state != state {
                    r.state = state;
                    r.updated_at = now;
                    if state == ScheduleState::Enabled {
                        // Fires while disabled are not made up for.
                        r.last_fire = Some(r.last_fire.unwrap_or(r.created_at).max(now - 1));
                    }
                }
                Ok(())
            })
            .await
            .map_err(ApiError::from)?;
        Ok(self.reply(&rec))
    }

    async fn delete_schedule(
        &self,
        req: Request<DeleteScheduleRequest>,
    ) -> Result<Response<ScheduleResponse>, Status> {
        let rec = self
            .shared
            .db
            .delete_schedule(&req.get_ref().name)
            .await
            .map_err(ApiError::from)?;
        Ok(self.reply(&rec))
    }

    async fn list_schedules(
        &self,
        req: Request<ListSchedulesRequest>,
    ) -> Result<Response<ListSchedulesResponse>, Status> {
        let req = req.into_inner();
        let state = if req.state.is_empty() {
            None
        } else {
            Some(parse_state(&req.state, ScheduleState::Enabled)?)
        };
        let all = self.shared.db.schedules().map_err(ApiError::from)?;
        Ok(Response::new(ListSchedulesResponse {
            schedules: all
                .iter()
                .filter(|r| r.name.starts_with(&req.name_prefix))
                .filter(|r| state.is_none_or(|s| r.state == s))
                .map(|r| self.to_proto(r))
                .collect(),
        }))
    }

    async fn get_schedule(
        &self,
        req: Request<GetScheduleRequest>,
    ) -> Result<Response<ScheduleResponse>, Status> {
        let name = &req.get_ref().name;
        let rec = self
            .shared
            .db
            .schedule(name)
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::Db(crate::db::DbError::NotFound {
                    kind: "schedule",
                    name: name.clone(),
                })
            })?;
        Ok(self.reply(&rec))
    }
}

/// Runs a schedule's fire through RunTask in-process.
#[derive(Debug, Clone)]
pub struct RunTaskLauncher {
    pub shared: Shared,
}

impl RunTaskLauncher {
    pub fn new(shared: Shared) -> Arc<Self> {
        Arc::new(Self { shared })
    }
}

impl Launcher for RunTaskLauncher {
    fn launch<'a>(
        &'a self,
        s: &'a ScheduleRecord,
        client_token: String,
    ) -> BoxFuture<'a, Result<Launched, LaunchError>> {
        Box::pin(async move {
            let t = &s.target;
            let req = RunTaskRequest {
                cluster: t.cluster.clone(),
                task_definition: t.task_definition.clone(),
                count: t.count as i32,
                group: t.group.clone().unwrap_or_default(),
                started_by: s.name.clone(),
                overrides: t.overrides.as_ref().map(overrides_to_proto),
                client_token,
                tags: tags_to_proto(&t.tags),
                enable_execute_command: t.enable_execute_command,
                ..Default::default()
            };
            let api = TaskApi {
                shared: self.shared.clone(),
            };
            match api.run_task(Request::new(req)).await {
                Ok(r) => {
                    let r = r.into_inner();
                    Ok(Launched {
                        task_ids: r
                            .tasks
                            .iter()
                            .map(|t| berth_proto::arn::short_id(&t.task_arn).to_owned())
                            .collect(),
                        failures: r
                            .failures
                            .iter()
                            .map(|f| format!("{}: {}", f.reason, f.detail))
                            .collect(),
                    })
                }
                Err(st) => match st.code() {
                    tonic::Code::InvalidArgument
                    | tonic::Code::NotFound
                    | tonic::Code::FailedPrecondition
                    | tonic::Code::AlreadyExists => {
                        Err(LaunchError::Refused(st.message().to_owned()))
                    }
                    _ => Err(LaunchError::Unavailable(st.message().to_owned())),
                },
            }
        })
    }
}
