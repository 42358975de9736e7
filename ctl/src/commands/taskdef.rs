//! `berthctl taskdef register|ls|families|describe|deregister|delete`.

use std::io::Read;

use berth_proto::arn::TaskDefRef;
use berth_proto::v1 as pb;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use clap::{Subcommand, ValueEnum};

use super::Ctx;
use super::MAX_PAGES;
use crate::error::CtlError;
use crate::views::tag::DeleteView;
use crate::views::taskdef::{
    self as view, FamiliesView, TaskDefinitionArnsView, TaskDefinitionView,
};

#[derive(Debug, Subcommand)]
pub enum TaskdefCommand {
    /// Register a task definition from ECS JSON; prints `family:revision`, then the ARN
    ///
    /// The file may hold a bare definition (`aws ecs register-task-definition
    /// --cli-input-json` input) or the output of `aws ecs describe-task-definition`.
    Register {
        /// JSON file, or `-` for standard input
        #[arg(short = 'f', long = "file", value_name = "FILE|-")]
        file: String,
    },
    /// List task definition revisions
    Ls {
        /// Only this family
        #[arg(long, value_name = "FAMILY")]
        family: Option<String>,
        /// Only revisions with this status [default: ACTIVE]
        #[arg(long, value_enum, ignore_case = true)]
        status: Option<RevisionStatus>,
    },
    /// List task definition families
    Families {
        /// Only families whose name starts with this
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
        /// Only families with revisions of this status [default: ACTIVE]
        #[arg(long, value_enum, ignore_case = true)]
        status: Option<FamilyStatus>,
    },
    /// Describe a task definition (JSON: as `aws ecs describe-task-definition`)
    Describe {
        /// FAMILY (latest ACTIVE revision), FAMILY:REVISION or an ARN
        #[arg(value_name = "FAMILY[:REVISION]", value_parser = parse_ref)]
        task_definition: TaskDefRef,
    },
    /// Deregister a task definition revision (it becomes INACTIVE)
    Deregister {
        /// FAMILY:REVISION or an ARN
        #[arg(value_name = "FAMILY:REVISION", value_parser = parse_ref_with_revision)]
        task_definition: TaskDefRef,
    },
    /// Delete INACTIVE revisions (DELETE_IN_PROGRESS until no task uses them)
    Delete {
        /// FAMILY:REVISION or an ARN (1–10)
        #[arg(value_name = "FAMILY:REVISION", required = true, num_args = 1..=10, value_parser = parse_ref_with_revision)]
        task_definitions: Vec<TaskDefRef>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RevisionStatus {
    #[value(name = "ACTIVE")]
    Active,
    #[value(name = "INACTIVE")]
    Inactive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FamilyStatus {
    #[value(name = "ACTIVE")]
    Active,
    #[value(name = "INACTIVE")]
    Inactive,
    #[value(name = "ALL")]
    All,
}

fn parse_ref(s: &str) -> Result<TaskDefRef, String> {
    TaskDefRef::parse(s).map_err(|e| e.to_string())
}

fn parse_ref_with_revision(s: &str) -> Result<TaskDefRef, String> {
    let r = parse_ref(s)?;
    if r.revision.is_none() {
        return Err(format!("a revision is required, e.g. {s}:1"));
    }
    Ok(r)
}

/// The text of `file`, `-` being standard input.
fn read_input(file: &str) -> Result<String, CtlError> {
    let (path, result) = if file == "-" {
        let mut s = String::new();
        let r = std::io::stdin().read_to_string(&mut s).map(|_| s);
        ("standard input".to_owned(), r)
    } else {
        (file.to_owned(), std::fs::read_to_string(file))
    };
    result.map_err(|source| CtlError::ReadFile { path, source })
}

pub async fn run(cmd: TaskdefCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    // Read the file before connecting, so a typo in its name is reported first.
    let input = match &cmd {
        TaskdefCommand::Register { file } => Some(read_input(file)?),
        _ => None,
    };
    let mut client = TaskDefinitionServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    match cmd {
        TaskdefCommand::Register { .. } => {
            let resp = client
                .register_task_definition(pb::RegisterTaskDefinitionRequest {
                    task_definition_json: input.unwrap_or_default(),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = definition(resp.task_definition)?;
            for line in view::warning_lines(&resp.warnings) {
                ctx.note(&line)?;
            }
            ctx.emit(&v, view::register_table)
        }
        TaskdefCommand::Ls { family, status } => {
            let status = match status {
                None => "",
                Some(RevisionStatus::Active) => "ACTIVE",
                Some(RevisionStatus::Inactive) => "INACTIVE",
            };
            let mut arns = Vec::new();
            let mut next_token = String::new();
            for _ in 0..MAX_PAGES {
                let page = client
                    .list_task_definitions(pb::ListTaskDefinitionsRequest {
                        family_prefix: family.clone().unwrap_or_default(),
                        status: status.to_owned(),
                        sort: String::new(),
                        max_results: 0,
                        next_token: next_token.clone(),
                    })
                    .await
                    .map_err(&rpc)?
                    .into_inner();
                arns.extend(page.task_definition_arns);
                if page.next_token.is_empty() || page.next_token == next_token {
                    break;
                }
                next_token = page.next_token;
            }
            let v = TaskDefinitionArnsView {
                task_definition_arns: arns,
            };
            ctx.emit(&v, view::list_table)
        }
        TaskdefCommand::Families { prefix, status } => {
            let status = match status {
                None => "",
                Some(FamilyStatus::Active) => "ACTIVE",
                Some(FamilyStatus::Inactive) => "INACTIVE",
                Some(FamilyStatus::All) => "ALL",
            };
            let mut families = Vec::new();
            let mut next_token = String::new();
            for _ in 0..MAX_PAGES {
                let page = client
                    .list_task_definition_families(pb::ListTaskDefinitionFamiliesRequest {
                        family_prefix: prefix.clone().unwrap_or_default(),
                        status: status.to_owned(),
                        max_results: 0,
                        next_token: next_token.clone(),
                    })
                    .await
                    .map_err(&rpc)?
                    .into_inner();
                families.extend(page.families);
                if page.next_token.is_empty() || page.next_token == next_token {
                    break;
                }
                next_token = page.next_token;
            }
            ctx.emit(&FamiliesView { families }, view::families_table)
        }
        TaskdefCommand::Describe { task_definition } => {
            let resp = client
                .describe_task_definition(pb::DescribeTaskDefinitionRequest {
                    task_definition: task_definition.to_string(),
                    ..Default::default()
                })
                .await
                .map_err(rpc)?
                .into_inner();
            ctx.emit(&definition(resp.task_definition)?, view::describe_table)
        }
        TaskdefCommand::Delete { task_definitions } => {
            let v: DeleteView = client
                .delete_task_definitions(pb::DeleteTaskDefinitionsRequest {
                    task_definitions: task_definitions.iter().map(ToString::to_string).collect(),
                })
                .await
                .map_err(rpc)?
                .into_inner()
                .into();
            ctx.emit(&v, crate::views::tag::delete_table)?;
            if v.failures.is_empty() {
                Ok(())
            } else {
                Err(CtlError::NotDeleted {
                    items: v.failures.iter().map(Into::into).collect(),
                })
            }
        }
        TaskdefCommand::Deregister { task_definition } => {
            let resp = client
                .deregister_task_definition(pb::DeregisterTaskDefinitionRequest {
                    task_definition: task_definition.to_string(),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            ctx.emit(
                &definition(resp.task_definition)?,
                view::deregister_sentence,
            )
        }
    }
}

fn definition(td: Option<pb::TaskDefinition>) -> Result<TaskDefinitionView, CtlError> {
    td.ok_or_else(|| CtlError::BadResponse {
        what: "the answer holds no task definition".to_owned(),
    })?
    .try_into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_file_is_named() {
        let err = read_input("/nonexistent/web.json").unwrap_err();
        assert_eq!(
            err.render(),
            "error: cannot read /nonexistent/web.json: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn reads_the_file_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.json");
        std::fs::write(&p, "{\"taskDefinition\": {}}\n").unwrap();
        assert_eq!(
            read_input(&p.display().to_string()).unwrap(),
            "{\"taskDefinition\": {}}\n"
        );
    }
}
