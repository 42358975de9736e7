//! Interim renderer (to be replaced by `berth_proto::ecs_json`).

use berth_proto::v1 as pb;
use serde_json::{json, Value};

fn epoch(ts: Option<&prost_types::Timestamp>) -> Value {
    ts.map_or(Value::Null, |t| {
        Value::from(t.seconds as f64 + f64::from(t.nanos) / 1e9)
    })
}

pub fn cluster(c: &pb::Cluster) -> Value {
    json!({
        "clusterArn": c.cluster_arn, "clusterName": c.cluster_name, "status": c.status,
        "registeredContainerInstancesCount": c.registered_container_instances_count,
        "runningTasksCount": c.running_tasks_count, "pendingTasksCount": c.pending_tasks_count,
        "activeServicesCount": c.active_services_count,
        "statistics": [], "tags": [], "settings": [], "capacityProviders": [], "defaultCapacityProviderStrategy": [],
    })
}

pub fn failure(f: &pb::Failure) -> Value {
    json!({"arn": f.arn, "reason": f.reason, "detail": f.detail})
}

pub fn task(t: &pb::Task) -> Value {
    json!({
        "taskArn": t.task_arn, "clusterArn": t.cluster_arn, "taskDefinitionArn": t.task_definition_arn,
        "containerInstanceArn": t.container_instance_arn, "lastStatus": t.last_status,
        "desiredStatus": t.desired_status, "healthStatus": t.health_status, "cpu": t.cpu, "memory": t.memory,
        "group": t.group, "startedBy": t.started_by, "launchType": "EC2", "version": t.version,
        "createdAt": epoch(t.created_at.as_ref()), "startedAt": epoch(t.started_at.as_ref()),
        "stoppedAt": epoch(t.stopped_at.as_ref()), "stopCode": t.stop_code, "stoppedReason": t.stopped_reason,
        "containers": t.containers.iter().map(|c| json!({
            "containerArn": c.container_arn, "taskArn": c.task_arn, "name": c.name, "image": c.image,
            "lastStatus": c.last_status, "exitCode": c.exit_code,
            "networkBindings": c.network_bindings.iter().map(|b| json!({
                "bindIP": b.bind_ip, "containerPort": b.container_port, "hostPort": b.host_port, "protocol": b.protocol,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "attachments": [], "attributes": [], "overrides": {"containerOverrides": []},
    })
}

pub fn service(s: &pb::Service) -> Value {
    json!({
        "serviceArn": s.service_arn, "serviceName": s.service_name, "clusterArn": s.cluster_arn,
        "status": s.status, "taskDefinition": s.task_definition, "desiredCount": s.desired_count,
        "runningCount": s.running_count, "pendingCount": s.pending_count, "launchType": "EC2",
        "schedulingStrategy": s.scheduling_strategy, "createdAt": epoch(s.created_at.as_ref()),
        "loadBalancers": [], "serviceRegistries": [],
        "deployments": s.deployments.iter().map(|d| json!({
            "id": d.id, "status": d.status, "taskDefinition": d.task_definition,
            "desiredCount": d.desired_count, "pendingCount": d.pending_count, "runningCount": d.running_count,
            "failedTasks": d.failed_tasks, "rolloutState": d.rollout_state, "rolloutStateReason": d.rollout_state_reason,
            "createdAt": epoch(d.created_at.as_ref()), "updatedAt": epoch(d.updated_at.as_ref()),
        })).collect::<Vec<_>>(),
        "events": s.events.iter().map(|e| json!({"id": e.id, "createdAt": epoch(e.created_at.as_ref()), "message": e.message})).collect::<Vec<_>>(),
    })
}

pub fn container_instance(ci: &pb::ContainerInstance) -> Value {
    json!({
        "containerInstanceArn": ci.container_instance_arn, "ec2InstanceId": ci.ec2_instance_id,
        "status": ci.status, "agentConnected": ci.agent_connected,
        "runningTasksCount": ci.running_tasks_count, "pendingTasksCount": ci.pending_tasks_count,
        "attributes": ci.attributes.iter().map(|a| json!({"name": a.name, "value": a.value})).collect::<Vec<_>>(),
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(String);

pub fn task_definition(td: &pb::TaskDefinition) -> Result<Value, RenderError> {
    serde_json::from_str(&td.json).map_err(|e| RenderError(e.to_string()))
}
