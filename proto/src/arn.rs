//! ECS-shaped ARNs: `arn:<partition>:ecs:<region>:<account>:<resource>`.
//!
//! Berth has no AWS account, but users' scripts and tools expect ARNs, so
//! every resource gets one built from the scheduler's configured partition,
//! region and account. Parsing accepts any partition/region/account: a name
//! is resolved by its resource part.
//!
//! [`ResourceArn::parse`] reads the ARN of a taggable resource (cluster,
//! service, task, task definition, container instance) strictly: the
//! resource API calls (TagResource, ...) take full ARNs only, as ECS's do.

use std::fmt;

/// The partition/region/account triple that prefixes every ARN a scheduler
/// issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnPrefix {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Default for ArnPrefix {
    fn default() -> Self {
        Self {
            partition: "berth".to_owned(),
            region: "local".to_owned(),
            account: "000000000000".to_owned(),
        }
    }
}

impl ArnPrefix {
    fn base(&self) -> String {
        format!(
            "arn:{}:ecs:{}:{}",
            self.partition, self.region, self.account
        )
    }

    pub fn cluster(&self, name: &str) -> String {
        format!("{}:cluster/{name}", self.base())
    }

    pub fn task_definition(&self, family: &str, revision: u32) -> String {
        format!("{}:task-definition/{family}:{revision}", self.base())
    }

    pub fn container_instance(&self, cluster: &str, id: &str) -> String {
        format!("{}:container-instance/{cluster}/{id}", self.base())
    }

    pub fn task(&self, cluster: &str, id: &str) -> String {
        format!("{}:task/{cluster}/{id}", self.base())
    }

    /// A container of a task (ECS uses a random id as the last segment;
    /// Berth uses the container's name, unique in its task).
    pub fn container(&self, cluster: &str, task: &str, name: &str) -> String {
        format!("{}:container/{cluster}/{task}/{name}", self.base())
    }

    pub fn service(&self, cluster: &str, name: &str) -> String {
        format!("{}:service/{cluster}/{name}", self.base())
    }

    /// A service deployment (ECS's ListServiceDeployments).
    pub fn service_deployment(&self, cluster: &str, service: &str, id: &str) -> String {
        format!(
            "{}:service-deployment/{cluster}/{service}/{id}",
            self.base()
        )
    }

    /// A service revision: what one deployment runs (Berth names it by the
    /// deployment's digits).
    pub fn service_revision(&self, cluster: &str, service: &str, id: &str) -> String {
        format!("{}:service-revision/{cluster}/{service}/{id}", self.base())
    }

    /// A target group, in ELBv2's form: `arn:<partition>:elasticloadbalancing:
    /// <region>:<account>:targetgroup/<name>/<id>` (`id`: 16 hex digits).
    pub fn target_group(&self, name: &str, id: &str) -> String {
        format!(
            "arn:{}:elasticloadbalancing:{}:{}:targetgroup/{name}/{id}",
            self.partition, self.region, self.account
        )
    }
}

/// A target group's name from its name or its ARN
/// (`…:targetgroup/<name>/<id>`).
pub fn target_group_name(s: &str) -> &str {
    match resource_part(s).strip_prefix("targetgroup/") {
        Some(rest) => rest.split('/').next().unwrap_or(rest),
        None => s,
    }
}

/// The cluster, service and id of a service-deployment ARN
/// (`…:service-deployment/<cluster>/<service>/<id>`); `None` for anything
/// else.
pub fn service_deployment_parts(arn: &str) -> Option<(&str, &str, &str)> {
    if !arn.starts_with("arn:") {
        return None;
    }
    let rest = resource_part(arn).strip_prefix("service-deployment/")?;
    let mut it = rest.split('/');
    let (cluster, service, id) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || cluster.is_empty() || service.is_empty() || id.is_empty() {
        return None;
    }
    Some((cluster, service, id))
}

/// The resource part of an ARN (`cluster/default`), or the input itself when
/// it is not an ARN.
pub fn resource_part(s: &str) -> &str {
    if !s.starts_with("arn:") {
        return s;
    }
    // arn:partition:service:region:account:resource — the resource may itself
    // contain ':' (task-definition/family:3), so split at most six ways.
    s.splitn(6, ':').nth(5).unwrap_or(s)
}

/// Cluster name from a name or a cluster ARN.
pub fn cluster_name(s: &str) -> &str {
    let r = resource_part(s);
    r.strip_prefix("cluster/").unwrap_or(r)
}

/// Last path segment of an id or an ARN (`container-instance/default/abc` → `abc`).
pub fn short_id(s: &str) -> &str {
    let r = resource_part(s);
    r.rsplit('/').next().unwrap_or(r)
}

/// The resource a full ECS ARN names (the long form, with the cluster in
/// the service, task and container-instance ARNs, as Berth issues them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceArn {
    Cluster { name: String },
    Service { cluster: String, name: String },
    Task { cluster: String, id: String },
    TaskDefinition { family: String, revision: u32 },
    ContainerInstance { cluster: String, id: String },
}

/// Why a string is not the ARN of a taggable resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("{input:?} is not an ARN (arn:<partition>:ecs:<region>:<account>:<resource>)")]
    NotAnArn { input: String },
    #[error("{input:?} is not an ECS ARN")]
    NotEcs { input: String },
    #[error(
        "{input:?} names no taggable resource; expected cluster/NAME, service/CLUSTER/NAME, \
         task/CLUSTER/ID, task-definition/FAMILY:REVISION or container-instance/CLUSTER/ID"
    )]
    Resource { input: String },
}

impl ResourceArn {
    pub fn parse(input: &str) -> Result<Self, ArnError> {
        let parts: Vec<&str> = input.splitn(6, ':').collect();
        let [arn, _partition, service, _region, _account, resource] = parts[..] else {
            return Err(ArnError::NotAnArn {
                input: input.to_owned(),
            });
        };
        if arn != "arn" {
            return Err(ArnError::NotAnArn {
                input: input.to_owned(),
            });
        }
        if service != "ecs" {
            return Err(ArnError::NotEcs {
                input: input.to_owned(),
            });
        }
        let bad = || ArnError::Resource {
            input: input.to_owned(),
        };
        let (kind, rest) = resource.split_once('/').ok_or_else(bad)?;
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(bad());
        }
        let two = || match segments[..] {
            [a, b] => Ok((a.to_owned(), b.to_owned())),
            _ => Err(bad()),
        };
        Ok(match kind {
            "cluster" if segments.len() == 1 => ResourceArn::Cluster {
                name: rest.to_owned(),
            },
            "service" => {
                let (cluster, name) = two()?;
                ResourceArn::Service { cluster, name }
            }
            "task" => {
                let (cluster, id) = two()?;
                ResourceArn::Task { cluster, id }
            }
            "container-instance" => {
                let (cluster, id) = two()?;
                ResourceArn::ContainerInstance { cluster, id }
            }
            "task-definition" if segments.len() == 1 => {
                let (family, revision) = rest.rsplit_once(':').ok_or_else(bad)?;
                let revision = revision
                    .parse::<u32>()
                    .ok()
                    .filter(|r| *r > 0)
                    .ok_or_else(bad)?;
                if family.is_empty() {
                    return Err(bad());
                }
                ResourceArn::TaskDefinition {
                    family: family.to_owned(),
                    revision,
                }
            }
            _ => return Err(bad()),
        })
    }

    /// The resource part (`cluster/prod`, `task-definition/web:3`).
    pub fn resource(&self) -> String {
        match self {
            ResourceArn::Cluster { name } => format!("cluster/{name}"),
            ResourceArn::Service { cluster, name } => format!("service/{cluster}/{name}"),
            ResourceArn::Task { cluster, id } => format!("task/{cluster}/{id}"),
            ResourceArn::TaskDefinition { family, revision } => {
                format!("task-definition/{family}:{revision}")
            }
            ResourceArn::ContainerInstance { cluster, id } => {
                format!("container-instance/{cluster}/{id}")
            }
        }
    }

    /// The ARN under `prefix`.
    pub fn to_arn(&self, prefix: &ArnPrefix) -> String {
        format!("{}:{}", prefix.base(), self.resource())
    }
}

/// A reference to a task definition: `family`, `family:revision`, or an ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefRef {
    pub family: String,
    pub revision: Option<u32>,
}

/// Why a task-definition reference could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskDefRefError {
    #[error("task definition reference is empty")]
    Empty,
    #[error("revision {revision:?} of {input:?} is not a positive whole number")]
    BadRevision { input: String, revision: String },
}

impl TaskDefRef {
    pub fn parse(s: &str) -> Result<Self, TaskDefRefError> {
        let r = resource_part(s.trim());
        let r = r.strip_prefix("task-definition/").unwrap_or(r);
        if r.is_empty() {
            return Err(TaskDefRefError::Empty);
        }
        match r.rsplit_once(':') {
            None => Ok(Self {
                family: r.to_owned(),
                revision: None,
            }),
            Some((family, rev)) => {
                let revision = rev.parse::<u32>().ok().filter(|r| *r > 0).ok_or_else(|| {
                    TaskDefRefError::BadRevision {
                        input: s.to_owned(),
                        revision: rev.to_owned(),
                    }
                })?;
                if family.is_empty() {
                    return Err(TaskDefRefError::Empty);
                }
                Ok(Self {
                    family: family.to_owned(),
                    revision: Some(revision),
                })
            }
        }
    }
}

impl fmt::Display for TaskDefRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.revision {
            Some(r) => write!(f, "{}:{r}", self.family),
            None => f.write_str(&self.family),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_group_arns_name_their_group() {
        let arn = ArnPrefix::default().target_group("web", "0123456789abcdef");
        assert_eq!(
            arn,
            "arn:berth:elasticloadbalancing:local:000000000000:targetgroup/web/0123456789abcdef"
        );
        assert_eq!(target_group_name(&arn), "web");
        assert_eq!(target_group_name("web"), "web");
    }

    #[test]
    fn service_deployment_arns_round_trip() {
        let p = ArnPrefix::default();
        let arn = p.service_deployment("prod", "web", "aBc123");
        assert_eq!(
            arn,
            "arn:berth:ecs:local:000000000000:service-deployment/prod/web/aBc123"
        );
        assert_eq!(
            service_deployment_parts(&arn),
            Some(("prod", "web", "aBc123"))
        );
        assert_eq!(service_deployment_parts("prod/web/aBc123"), None);
        assert_eq!(
            service_deployment_parts("arn:aws:ecs:r:1:service/prod/web"),
            None
        );
        assert_eq!(
            service_deployment_parts("arn:aws:ecs:r:1:service-deployment/prod/web"),
            None
        );
        assert_eq!(
            service_deployment_parts("arn:aws:ecs:r:1:service-deployment/prod/web/x/y"),
            None
        );
    }

    #[test]
    fn builds_ecs_shaped_arns() {
        let p = ArnPrefix::default();
        assert_eq!(
            p.cluster("default"),
            "arn:berth:ecs:local:000000000000:cluster/default"
        );
        assert_eq!(
            p.task_definition("web", 3),
            "arn:berth:ecs:local:000000000000:task-definition/web:3"
        );
    }

    #[test]
    fn parses_references() {
        let r = TaskDefRef::parse("arn:aws:ecs:us-east-1:123:task-definition/web:3").unwrap();
        assert_eq!(r.family, "web");
        assert_eq!(r.revision, Some(3));
        assert_eq!(TaskDefRef::parse("web").unwrap().revision, None);
        assert!(matches!(
            TaskDefRef::parse("web:0"),
            Err(TaskDefRefError::BadRevision { .. })
        ));
        assert!(matches!(
            TaskDefRef::parse("web:x"),
            Err(TaskDefRefError::BadRevision { .. })
        ));
        assert_eq!(TaskDefRef::parse(""), Err(TaskDefRefError::Empty));
        assert_eq!(cluster_name("arn:berth:ecs:local:0:cluster/prod"), "prod");
        assert_eq!(
            short_id("arn:berth:ecs:local:0:container-instance/prod/abc"),
            "abc"
        );
    }

    #[test]
    fn parses_resource_arns() {
        let p = ArnPrefix::default();
        let all = [
            ResourceArn::Cluster {
                name: "prod".into(),
            },
            ResourceArn::Service {
                cluster: "prod".into(),
                name: "web".into(),
            },
            ResourceArn::Task {
                cluster: "prod".into(),
                id: "0123abcd".into(),
            },
            ResourceArn::TaskDefinition {
                family: "web".into(),
                revision: 3,
            },
            ResourceArn::ContainerInstance {
                cluster: "prod".into(),
                id: "i1".into(),
            },
        ];
        for r in all {
            assert_eq!(ResourceArn::parse(&r.to_arn(&p)), Ok(r));
        }
        assert!(matches!(
            ResourceArn::parse("prod"),
            Err(ArnError::NotAnArn { .. })
        ));
        assert!(matches!(
            ResourceArn::parse("arn:aws:s3:::bucket/key"),
            Err(ArnError::NotEcs { .. })
        ));
        for bad in [
            "arn:aws:ecs:r:1:cluster/",
            "arn:aws:ecs:r:1:task/abc",
            "arn:aws:ecs:r:1:task/c/abc/x",
            "arn:aws:ecs:r:1:task-definition/web",
            "arn:aws:ecs:r:1:task-definition/web:0",
            "arn:aws:ecs:r:1:capacity-provider/x",
            "arn:aws:ecs:r:1:cluster",
        ] {
            assert!(
                matches!(ResourceArn::parse(bad), Err(ArnError::Resource { .. })),
                "{bad}"
            );
        }
    }
}
