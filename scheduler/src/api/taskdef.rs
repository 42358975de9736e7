//! `TaskDefinitionService`: register (ECS JSON in), describe (ECS JSON out,
//! tags beside it with `include: ["TAGS"]`), list, list families,
//! deregister, and ECS's DeleteTaskDefinitions (INACTIVE revisions become
//! DELETE_IN_PROGRESS; each call first and last removes the deleted
//! revisions nothing uses any more, and so does the service controller's
//! loop every 10 s while some are left: `Db::sweep_deleted_task_definitions`).

use berth_proto::taskdef::{self, TaskDefinitionStatus};
use berth_proto::v1::{
    task_definition_service_server::TaskDefinitionService, DeleteTaskDefinitionsRequest,
    DeleteTaskDefinitionsResponse, DeregisterTaskDefinitionRequest,
    DeregisterTaskDefinitionResponse, DescribeTaskDefinitionRequest,
    DescribeTaskDefinitionResponse, Failure, FieldMessage, ListTaskDefinitionFamiliesRequest,
    ListTaskDefinitionFamiliesResponse, ListTaskDefinitionsRequest, ListTaskDefinitionsResponse,
    RegisterTaskDefinitionRequest, RegisterTaskDefinitionResponse, TaskDefinition,
};
use tonic::{Request, Response, Status};

use super::convert::{includes_tags, parse_ref, tags_to_proto};
use super::{timestamp, ApiError, Shared};
use crate::db::DbError;
use crate::paging::{self, paginate, Order, PageRequest};
use crate::records::{Tagged, TaskDefinitionRecord};

/// Largest request body accepted for a task definition (ECS allows 64 KiB
/// of JSON; Berth is generous but bounded).
const MAX_JSON_BYTES: usize = 1024 * 1024;
/// ECS's limit on revisions named in one DeleteTaskDefinitions call.
const MAX_DELETE: usize = 10;

#[derive(Debug)]
pub struct TaskDefinitionApi {
    pub shared: Shared,
}

fn parse_status(field: &str, s: &str) -> Result<Option<TaskDefinitionStatus>, ApiError> {
    match s.to_ascii_uppercase().as_str() {
        "" | "ACTIVE" => Ok(Some(TaskDefinitionStatus::Active)),
        "INACTIVE" => Ok(Some(TaskDefinitionStatus::Inactive)),
        "ALL" => Ok(None),
        other => Err(ApiError::invalid(
            field,
            format!("{other:?} is not one of ACTIVE, INACTIVE, ALL"),
        )),
    }
}

impl TaskDefinitionApi {
    pub fn to_proto(&self, r: &TaskDefinitionRecord) -> TaskDefinition {
        let arn = self.shared.arn.task_definition(&r.family, r.revision);
        let json = r.describe_json(&self.shared.arn);
        TaskDefinition {
            task_definition_arn: arn,
            family: r.family.clone(),
            revision: r.revision as i32,
            status: r.status.as_str().to_owned(),
            registered_at: Some(timestamp(r.registered_at)),
            deregistered_at: r.deregistered_at.map(timestamp),
            json,
        }
    }
}

#[tonic::async_trait]
impl TaskDefinitionService for TaskDefinitionApi {
    #[tracing::instrument(skip_all)]
    async fn register_task_definition(
        &self,
        req: Request<RegisterTaskDefinitionRequest>,
    ) -> Result<Response<RegisterTaskDefinitionResponse>, Status> {
        let json = req.into_inner().task_definition_json;
        if json.len() > MAX_JSON_BYTES {
            return Err(ApiError::invalid(
                "taskDefinitionJson",
                format!(
                    "{} bytes is more than the {MAX_JSON_BYTES} allowed",
                    json.len()
                ),
            )
            .into());
        }
        let reg =
            taskdef::parse_registration(&json).map_err(|e| ApiError::InvalidFields(e.errors))?;
        let rec = self
            .shared
            .db
            .register_task_definition(reg.definition)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(family = %rec.family, revision = rec.revision, warnings = reg.warnings.len(), "task definition registered");
        Ok(Response::new(RegisterTaskDefinitionResponse {
            task_definition: Some(self.to_proto(&rec)),
            warnings: reg
                .warnings
                .into_iter()
                .map(|w| FieldMessage {
                    path: w.path,
                    message: w.message,
                })
                .collect(),
        }))
    }

    async fn describe_task_definition(
        &self,
        req: Request<DescribeTaskDefinitionRequest>,
    ) -> Result<Response<DescribeTaskDefinitionResponse>, Status> {
        let req = req.into_inner();
        let with_tags = includes_tags(&req.include, &[])?;
        let r = parse_ref("taskDefinition", &req.task_definition)?;
        let rec = self
            .shared
            .db
            .task_definition(&r.family, r.revision)
            .map_err(ApiError::from)?;
        Ok(Response::new(DescribeTaskDefinitionResponse {
            task_definition: Some(self.to_proto(&rec)),
            tags: if with_tags {
                tags_to_proto(&rec.tags())
            } else {
                Vec::new()
            },
        }))
    }

    async fn list_task_definitions(
        &self,
        req: Request<ListTaskDefinitionsRequest>,
    ) -> Result<Response<ListTaskDefinitionsResponse>, Status> {
        let req = req.into_inner();
        let status = parse_status("status", &req.status)?;
        let desc = match req.sort.to_ascii_uppercase().as_str() {
            "" | "ASC" => false,
            "DESC" => true,
            other => {
                return Err(
                    ApiError::invalid("sort", format!("{other:?} is not ASC or DESC")).into(),
                )
            }
        };
        let page = PageRequest::parse(
            "task-definitions",
            req.max_results,
            &req.next_token,
            paging::DEFAULT_PAGE,
        )
        .map_err(ApiError::from)?;
        let db = &self.shared.db;
        let mut recs = if req.family_prefix.is_empty() {
            db.all_task_definitions()
        } else {
            db.task_definitions_of(&req.family_prefix)
        }
        .map_err(ApiError::from)?;
        // Deleted revisions are never listed (ECS's DELETE_IN_PROGRESS).
        recs.retain(|r| {
            r.status != TaskDefinitionStatus::DeleteInProgress
                && status.is_none_or(|s| r.status == s)
        });
        // By family, then revision (numerically), as the store keys them.
        let key = |r: &TaskDefinitionRecord| format!("{}\0{:010}", r.family, r.revision);
        let order = if desc {
            Order::Descending
        } else {
            Order::Ascending
        };
        let page = paginate(recs, key, order, &page);
        Ok(Response::new(ListTaskDefinitionsResponse {
            task_definition_arns: page
                .items
                .iter()
                .map(|r| self.shared.arn.task_definition(&r.family, r.revision))
                .collect(),
            next_token: page.next_token,
        }))
    }

    async fn list_task_definition_families(
        &self,
        req: Request<ListTaskDefinitionFamiliesRequest>,
    ) -> Result<Response<ListTaskDefinitionFamiliesResponse>, Status> {
        let req = req.into_inner();
        let status = parse_status("status", &req.status)?;
        let page = PageRequest::parse(
            "task-definition-families",
            req.max_results,
            &req.next_token,
            paging::DEFAULT_PAGE,
        )
        .map_err(ApiError::from)?;
        let recs = self
            .shared
            .db
            .all_task_definitions()
            .map_err(ApiError::from)?;
        // Records come ordered by family: fold each family's revisions.
        let mut families: Vec<(String, bool)> = Vec::new();
        for r in recs.iter().filter(|r| {
            r.family.starts_with(&req.family_prefix)
                && r.status != TaskDefinitionStatus::DeleteInProgress
        }) {
            let active = r.status == TaskDefinitionStatus::Active;
            match families.last_mut() {
                Some((f, any_active)) if *f == r.family => *any_active |= active,
                _ => families.push((r.family.clone(), active)),
            }
        }
        let families: Vec<String> = families
            .into_iter()
            .filter(|(_, any_active)| match status {
                None => true,
                Some(TaskDefinitionStatus::Active) => *any_active,
                Some(TaskDefinitionStatus::Inactive) => !*any_active,
                Some(TaskDefinitionStatus::DeleteInProgress) => false,
            })
            .map(|(f, _)| f)
            .collect();
        let page = paginate(families, |f| f.clone(), Order::Ascending, &page);
        Ok(Response::new(ListTaskDefinitionFamiliesResponse {
            families: page.items,
            next_token: page.next_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(task_definition = %req.get_ref().task_definition))]
    async fn deregister_task_definition(
        &self,
        req: Request<DeregisterTaskDefinitionRequest>,
    ) -> Result<Response<DeregisterTaskDefinitionResponse>, Status> {
        let r = parse_ref("taskDefinition", &req.into_inner().task_definition)?;
        let Some(revision) = r.revision else {
            return Err(ApiError::invalid(
                "taskDefinition",
                format!(
                    "{:?} names no revision; deregister takes family:revision",
                    r.family
                ),
            )
            .into());
        };
        let rec = self
            .shared
            .db
            .deregister_task_definition(&r.family, revision)
            .await
            .map_err(ApiError::from)?;
        tracing::info!("task definition deregistered");
        Ok(Response::new(DeregisterTaskDefinitionResponse {
            task_definition: Some(self.to_proto(&rec)),
        }))
    }

    #[tracing::instrument(skip_all, fields(count = req.get_ref().task_definitions.len()))]
    async fn delete_task_definitions(
        &self,
        req: Request<DeleteTaskDefinitionsRequest>,
    ) -> Result<Response<DeleteTaskDefinitionsResponse>, Status> {
        let req = req.into_inner();
        let n = req.task_definitions.len();
        if n == 0 || n > MAX_DELETE {
            return Err(ApiError::invalid(
                "taskDefinitions",
                format!("between 1 and {MAX_DELETE} task definitions, got {n}"),
            )
            .into());
        }
        // Every reference must name a revision, as ECS's do.
        let mut refs = Vec::with_capacity(n);
        for (i, s) in req.task_definitions.iter().enumerate() {
            let field = format!("taskDefinitions[{i}]");
            let r = parse_ref(&field, s)?;
            let Some(revision) = r.revision else {
                return Err(ApiError::invalid(
                    &field,
                    format!("{s:?} names no revision; give family:revision or an ARN"),
                )
                .into());
            };
            refs.push((r.family, revision));
        }
        let db = &self.shared.db;
        db.sweep_deleted_task_definitions()
            .await
            .map_err(ApiError::from)?;
        let mut out = DeleteTaskDefinitionsResponse::default();
        for (family, revision) in refs {
            let arn = self.shared.arn.task_definition(&family, revision);
            let failure = |reason: &str, detail: String| Failure {
                arn: arn.clone(),
                reason: reason.to_owned(),
                detail,
            };
            match db.delete_task_definition(&family, revision).await {
                Ok(rec) => {
                    tracing::info!(%family, revision, "task definition deleted");
                    out.task_definitions.push(self.to_proto(&rec));
                }
                Err(DbError::NotFound { .. }) => out.failures.push(failure(
                    "The specified task definition does not exist.",
                    String::new(),
                )),
                Err(DbError::FailedPrecondition(reason)) => {
                    out.failures.push(failure(&reason, String::new()))
                }
                Err(e) => return Err(ApiError::from(e).into()),
            }
        }
        db.sweep_deleted_task_definitions()
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(out))
    }
}
