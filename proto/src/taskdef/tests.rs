//! Tests of parsing and validation: a table of good and bad definitions
//! (each bad one asserting the exact path of every error), a real
//! `describe-task-definition` output, round trips through serde and
//! [`describe_json`], and junk input that must never panic.

use expect_test::expect;
use serde_json::{json, Value};
use time::macros::datetime;

use super::*;

const DESCRIBE_FIXTURE: &str = include_str!("testdata/describe-web-app.json");

/// A minimal valid definition that cases patch.
fn base() -> Value {
    json!({
        "family": "web",
        "containerDefinitions": [
            {"name": "app", "image": "nginx:1.27", "memory": 256}
        ]
    })
}

/// Sets `value` at a JSON pointer whose parent exists (appending when the
/// last segment is an array's length).
fn set(mut doc: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a '/'");
    match doc.pointer_mut(parent).expect("parent exists") {
        Value::Object(m) => {
            m.insert(key.to_owned(), value);
        }
        Value::Array(a) => {
            let i: usize = key.parse().expect("array index");
            if i == a.len() {
                a.push(value);
            } else {
                a[i] = value;
            }
        }
        other => panic!("cannot set {pointer} in {other}"),
    }
    doc
}

fn container(name: &str, extra: Value) -> Value {
    let mut c = json!({"name": name, "image": "busybox:1.36", "memory": 64});
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
    }
    c
}

fn with_containers(containers: Vec<Value>) -> Value {
    set(base(), "/containerDefinitions", Value::Array(containers))
}

enum Expect {
    /// Accepted, with warnings at exactly these paths.
    Ok(&'static [&'static str]),
    /// Rejected with exactly these errors: (path, part of the message).
    Err(&'static [(&'static str, &'static str)]),
}

struct Case {
    name: &'static str,
    input: String,
    expect: Expect,
}

fn case(name: &'static str, doc: Value, expect: Expect) -> Case {
    Case {
        name,
        input: doc.to_string(),
        expect,
    }
}

fn cases() -> Vec<Case> {
    use Expect::{Err, Ok};
    vec![
        // ---- accepted ----
        case("minimal bridge definition", base(), Ok(&[])),
        Case {
            name: "real describe-task-definition output with wrapper",
            input: DESCRIBE_FIXTURE.to_owned(),
            expect: Ok(&[
                "taskRoleArn",
                "executionRoleArn",
                "containerDefinitions[0].portMappings[0].appProtocol",
                "containerDefinitions[0].logConfiguration.logDriver",
                "containerDefinitions[2].logConfiguration.logDriver",
            ]),
        },
        case(
            "bare definition with read-only fields (jq .taskDefinition)",
            {
                let mut d = base();
                d["taskDefinitionArn"] = json!("arn:aws:ecs:us-east-1:1:task-definition/web:3");
                d["revision"] = json!(3);
                d["status"] = json!("ACTIVE");
                d["requiresAttributes"] = json!([{"name": "ecs.capability.secrets.ssm"}]);
                d["compatibilities"] = json!(["EC2"]);
                d["registeredAt"] = json!(1_700_000_000.5);
                d["registeredBy"] = json!("arn:aws:iam::1:root");
                d
            },
            Ok(&[]),
        ),
        case(
            "task-level sizes as strings cover containers without memory",
            json!({
                "family": "api", "cpu": "1 vCPU", "memory": "2 GB",
                "containerDefinitions": [{"name": "api", "image": "api:1", "cpu": 512}]
            }),
            Ok(&[]),
        ),
        case(
            "task-level sizes as numbers",
            json!({
                "family": "api", "cpu": 256, "memory": 512,
                "containerDefinitions": [{"name": "api", "image": "api:1"}]
            }),
            Ok(&[]),
        ),
        case(
            "host mode with hostPort equal to containerPort",
            set(
                set(base(), "/networkMode", json!("host")),
                "/containerDefinitions/0/portMappings",
                json!([{"containerPort": 80, "hostPort": 80}, {"containerPort": 53, "protocol": "udp"}]),
            ),
            Ok(&[]),
        ),
        case(
            "dynamic host ports may repeat",
            with_containers(vec![
                container("a", json!({"portMappings": [{"containerPort": 8080, "hostPort": 0}]})),
                container("b", json!({"portMappings": [{"containerPort": 8080}]})),
            ]),
            Ok(&[]),
        ),
        case(
            "same host port over tcp and udp",
            with_containers(vec![
                container("dns", json!({"portMappings": [
                    {"containerPort": 53, "hostPort": 5353, "protocol": "tcp"},
                    {"containerPort": 53, "hostPort": 5353, "protocol": "udp"}
                ]})),
            ]),
            Ok(&[]),
        ),
        case(
            "Fargate definition: AWS-only fields warned",
            json!({
                "family": "worker",
                "networkMode": "awsvpc",
                "requiresCompatibilities": ["FARGATE"],
                "cpu": "256", "memory": "512",
                "executionRoleArn": "arn:aws:iam::1:role/ecsTaskExecutionRole",
                "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
                "ephemeralStorage": {"sizeInGiB": 30},
                "enableFaultInjection": false,
                "containerDefinitions": [{
                    "name": "worker", "image": "worker:7",
                    "portMappings": [{"containerPort": 9000, "hostPort": 9000}],
                    "environmentFiles": [{"value": "arn:aws:s3:::cfg/worker.env", "type": "s3"}],
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {"awslogs-group": "/ecs/worker", "awslogs-region": "us-east-1"}
                    }
                }]
            }),
            Ok(&[
                "executionRoleArn",
                "networkMode",
                "requiresCompatibilities[0]",
                "ephemeralStorage",
                "containerDefinitions[0].environmentFiles[0]",
                "containerDefinitions[0].logConfiguration.logDriver",
            ]),
        ),
        case(
            "EFS volume and FireLens router are AWS-only",
            json!({
                "family": "shared-fs",
                "volumes": [{"name": "data", "efsVolumeConfiguration": {
                    "fileSystemId": "fs-0123", "transitEncryption": "ENABLED",
                    "authorizationConfig": {"accessPointId": "fsap-1", "iam": "ENABLED"}
                }}],
                "containerDefinitions": [
                    {"name": "app", "image": "app:1", "memory": 128,
                     "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}]},
                    {"name": "router", "image": "fluent-bit:3", "memory": 64, "essential": false,
                     "firelensConfiguration": {"type": "fluentbit", "options": {"enable-ecs-log-metadata": "true"}}}
                ]
            }),
            Ok(&[
                "volumes[0].efsVolumeConfiguration",
                "containerDefinitions[1].firelensConfiguration",
            ]),
        ),
        case(
            "nulls read as absent (terraform jsonencode output)",
            json!({
                "family": "tf", "taskRoleArn": null, "volumes": null, "cpu": null,
                "containerDefinitions": [{
                    "name": "app", "image": "app:1", "memory": 128, "memoryReservation": null,
                    "portMappings": [{"containerPort": 80, "hostPort": null, "protocol": null}],
                    "environment": null, "dockerLabels": null, "healthCheck": null
                }]
            }),
            Ok(&[]),
        ),
        case(
            "healthCheck NONE, ulimit -1, port range, every honoured knob",
            set(
                base(),
                "/containerDefinitions/0",
                json!({
                    "name": "app", "image": "app@sha256:0123456789abcdef", "memory": 512,
                    "memoryReservation": 512,
                    "healthCheck": {"command": ["NONE"]},
                    "ulimits": [{"name": "memlock", "softLimit": -1, "hardLimit": -1}],
                    "portMappings": [{"containerPortRange": "7000-7010", "protocol": "udp"}],
                    "hostname": "app-1.internal", "user": "nobody", "workingDirectory": "/srv",
                    "privileged": false, "interactive": true, "pseudoTerminal": true,
                    "dnsServers": ["10.0.0.2", "fd00::53"], "dnsSearchDomains": ["corp.example"],
                    "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.7"}],
                    "dockerSecurityOptions": ["no-new-privileges", "apparmor:docker-default"],
                    "linuxParameters": {
                        "capabilities": {"add": ["CAP_SYS_PTRACE"]},
                        "devices": [{"hostPath": "/dev/fuse", "permissions": ["read", "write"]}],
                        "maxSwap": 0, "swappiness": 10
                    },
                    "systemControls": [{"namespace": "kernel.shmmax", "value": "68719476736"}],
                    "restartPolicy": {"enabled": true},
                    "versionConsistency": "disabled",
                    "repositoryCredentials": {"credentialsParameter": "registry-creds"},
                    "logConfiguration": {"logDriver": "none"}
                }),
            ),
            Ok(&[]),
        ),
        // ---- rejected: one error each ----
        case(
            "family with a space",
            set(base(), "/family", json!("web app")),
            Err(&[("family", "letters, digits")]),
        ),
        case(
            "unknown top-level field with a suggestion",
            set(base(), "/familly", json!("x")),
            Err(&[("familly", "unknown field (did you mean `family`?)")]),
        ),
        case(
            "no containers",
            set(base(), "/containerDefinitions", json!([])),
            Err(&[("containerDefinitions", "at least one container")]),
        ),
        case(
            "eleven containers",
            with_containers((0..11).map(|i| container(&format!("c{i}"), json!({}))).collect()),
            Err(&[("containerDefinitions", "at most 10")]),
        ),
        case(
            "duplicate container names",
            with_containers(vec![container("app", json!({})), container("app", json!({}))]),
            Err(&[("containerDefinitions[1].name", "duplicate container name \"app\"")]),
        ),
        case(
            "empty image",
            set(base(), "/containerDefinitions/0/image", json!(" ")),
            Err(&[("containerDefinitions[0].image", "required")]),
        ),
        case(
            "misspelt container field",
            set(base(), "/containerDefinitions/0/portMapings", json!([])),
            Err(&[(
                "containerDefinitions[0].portMapings",
                "unknown field (did you mean `portMappings`?), expected one of `name`",
            )]),
        ),
        case(
            "wrong type",
            set(base(), "/containerDefinitions/0/memory", json!("x")),
            Err(&[(
                "containerDefinitions[0].memory",
                "invalid type: string \"x\", expected u32",
            )]),
        ),
        case(
            "containerPort out of range",
            set(base(), "/containerDefinitions/0/portMappings", json!([{"containerPort": 70000}])),
            Err(&[("containerDefinitions[0].portMappings[0].containerPort", "1–65535")]),
        ),
        case(
            "hostPort out of range",
            set(
                base(),
                "/containerDefinitions/0/portMappings",
                json!([{"containerPort": 80, "hostPort": 65536}]),
            ),
            Err(&[("containerDefinitions[0].portMappings[0].hostPort", "1–65535, or 0")]),
        ),
        case(
            "host mode hostPort differs from containerPort",
            set(
                set(base(), "/networkMode", json!("host")),
                "/containerDefinitions/0/portMappings",
                json!([{"containerPort": 80, "hostPort": 8080}]),
            ),
            Err(&[(
                "containerDefinitions[0].portMappings[0].hostPort",
                "in host network mode hostPort must be omitted or equal containerPort (80)",
            )]),
        ),
        case(
            "awsvpc hostPort 0",
            set(
                set(base(), "/networkMode", json!("awsvpc")),
                "/containerDefinitions/0/portMappings",
                json!([{"containerPort": 80, "hostPort": 0}]),
            ),
            Err(&[(
                "containerDefinitions[0].portMappings[0].hostPort",
                "in awsvpc network mode",
            )]),
        ),
        case(
            "unknown protocol",
            set(
                base(),
                "/containerDefinitions/0/portMappings",
                json!([{"containerPort": 80}, {"containerPort": 81, "protocol": "sctp"}]),
            ),
            Err(&[(
                "containerDefinitions[0].portMappings[1].protocol",
                "unknown variant `sctp`, expected `tcp` or `udp`",
            )]),
        ),
        case(
            "host port published twice in a task",
            with_containers(vec![
                container("a", json!({"portMappings": [{"containerPort": 80, "hostPort": 8080}]})),
                container("b", json!({"portMappings": [{"containerPort": 81, "hostPort": 8080, "protocol": "tcp"}]})),
            ]),
            Err(&[(
                "containerDefinitions[1].portMappings[0].hostPort",
                "host port 8080/tcp is already published by containerDefinitions[0].portMappings[0]",
            )]),
        ),
        case(
            "host mode: implied host ports collide",
            set(
                with_containers(vec![
                    container("a", json!({"portMappings": [{"containerPort": 9000}]})),
                    container("b", json!({"portMappings": [{"containerPort": 9000}]})),
                ]),
                "/networkMode",
                json!("host"),
            ),
            Err(&[(
                "containerDefinitions[1].portMappings[0].containerPort",
                "host port 9000/tcp is already published",
            )]),
        ),
        case(
            "ports in none mode",
            set(
                set(base(), "/networkMode", json!("none")),
                "/containerDefinitions/0/portMappings",
                json!([{"containerPort": 80}]),
            ),
            Err(&[("containerDefinitions[0].portMappings", "none network mode")]),
        ),
        case(
            "unknown network mode",
            set(base(), "/networkMode", json!("nat")),
            Err(&[("networkMode", "unknown variant `nat`")]),
        ),
        case(
            "no memory anywhere",
            json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "i"}]}),
            Err(&[(
                "containerDefinitions[0].memory",
                "set memory or memoryReservation (or the task-level memory)",
            )]),
        ),
        case(
            "memoryReservation above memory",
            set(base(), "/containerDefinitions/0/memoryReservation", json!(512)),
            Err(&[(
                "containerDefinitions[0].memoryReservation",
                "memoryReservation (512 MiB) must not exceed memory (256 MiB)",
            )]),
        ),
        case(
            "container memory under Docker's minimum",
            set(base(), "/containerDefinitions/0/memory", json!(4)),
            Err(&[("containerDefinitions[0].memory", "at least 6 MiB")]),
        ),
        case(
            "container hard limits exceed task memory",
            set(
                with_containers(vec![
                    container("a", json!({"memory": 300})),
                    container("b", json!({"memory": 300})),
                ]),
                "/memory",
                json!("512"),
            ),
            Err(&[("memory", "memory limits add up to 600 MiB, more than the task memory (512 MiB)")]),
        ),
        case(
            "container cpu above task cpu",
            set(
                set(base(), "/cpu", json!("0.25 vCPU")),
                "/containerDefinitions/0/cpu",
                json!(512),
            ),
            Err(&[(
                "containerDefinitions[0].cpu",
                "container cpu (512 units) exceeds the task cpu (256 units)",
            )]),
        ),
        case(
            "unreadable task cpu and memory",
            set(set(base(), "/cpu", json!("lots")), "/memory", json!("2 TB")),
            Err(&[
                ("cpu", "cannot read \"lots\" as CPU units"),
                ("memory", "unknown unit `TB`"),
            ]),
        ),
        case(
            "health check out of every range",
            set(
                base(),
                "/containerDefinitions/0/healthCheck",
                json!({"command": ["CMD", "true"], "interval": 2, "timeout": 200, "retries": 0, "startPeriod": 400}),
            ),
            Err(&[
                ("containerDefinitions[0].healthCheck.interval", "5–300 seconds, got 2"),
                ("containerDefinitions[0].healthCheck.timeout", "2–120 seconds, got 200"),
                ("containerDefinitions[0].healthCheck.retries", "1–10, got 0"),
                ("containerDefinitions[0].healthCheck.startPeriod", "0–300 seconds, got 400"),
            ]),
        ),
        case(
            "health check command without CMD",
            set(
                base(),
                "/containerDefinitions/0/healthCheck",
                json!({"command": ["curl", "-f", "http://localhost/"]}),
            ),
            Err(&[(
                "containerDefinitions[0].healthCheck.command[0]",
                "must be \"CMD\", \"CMD-SHELL\" or \"NONE\"",
            )]),
        ),
        case(
            "dependsOn an unknown container",
            set(
                base(),
                "/containerDefinitions/0/dependsOn",
                json!([{"containerName": "db", "condition": "START"}]),
            ),
            Err(&[("containerDefinitions[0].dependsOn[0].containerName", "no container named \"db\"")]),
        ),
        case(
            "dependsOn with an unknown condition",
            with_containers(vec![
                container("a", json!({"dependsOn": [{"containerName": "b", "condition": "READY"}]})),
                container("b", json!({"essential": false})),
            ]),
            Err(&[(
                "containerDefinitions[0].dependsOn[0].condition",
                "unknown variant `READY`, expected one of `START`, `COMPLETE`, `SUCCESS`, `HEALTHY`",
            )]),
        ),
        case(
            "HEALTHY needs a health check",
            with_containers(vec![
                container("a", json!({"dependsOn": [{"containerName": "b", "condition": "HEALTHY"}]})),
                container("b", json!({})),
            ]),
            Err(&[(
                "containerDefinitions[0].dependsOn[0].condition",
                "HEALTHY needs \"b\" to have a healthCheck",
            )]),
        ),
        case(
            "SUCCESS on an essential container",
            with_containers(vec![
                container("a", json!({"dependsOn": [{"containerName": "b", "condition": "SUCCESS"}]})),
                container("b", json!({})),
            ]),
            Err(&[(
                "containerDefinitions[0].dependsOn[0].condition",
                "\"b\" is essential",
            )]),
        ),
        case(
            "dependsOn cycle",
            with_containers(vec![
                container("a", json!({"dependsOn": [{"containerName": "b", "condition": "START"}]})),
                container("b", json!({"dependsOn": [{"containerName": "c", "condition": "START"}]})),
                container("c", json!({"dependsOn": [
                    {"containerName": "d", "condition": "START"},
                    {"containerName": "a", "condition": "START"}
                ]})),
                container("d", json!({})),
            ]),
            Err(&[(
                "containerDefinitions[0].dependsOn[0].containerName",
                "dependency cycle: a -> b -> c -> a",
            )]),
        ),
        case(
            "dependsOn itself",
            set(
                base(),
                "/containerDefinitions/0/dependsOn",
                json!([{"containerName": "app", "condition": "START"}]),
            ),
            Err(&[("containerDefinitions[0].dependsOn[0].containerName", "cannot depend on itself")]),
        ),
        case(
            "no essential container",
            set(base(), "/containerDefinitions/0/essential", json!(false)),
            Err(&[("containerDefinitions", "at least one container must be essential")]),
        ),
        case(
            "mount point of an unknown volume, relative path",
            set(
                base(),
                "/containerDefinitions/0/mountPoints",
                json!([{"sourceVolume": "data", "containerPath": "data"}]),
            ),
            Err(&[
                ("containerDefinitions[0].mountPoints[0].sourceVolume", "no volume named \"data\""),
                ("containerDefinitions[0].mountPoints[0].containerPath", "absolute path"),
            ]),
        ),
        case(
            "mount point without containerPath",
            set(
                set(base(), "/volumes", json!([{"name": "data"}])),
                "/containerDefinitions/0/mountPoints",
                json!([{"sourceVolume": "data"}]),
            ),
            Err(&[(
                "containerDefinitions[0].mountPoints[0].containerPath",
                "required field is missing",
            )]),
        ),
        case(
            "volumesFrom an unknown container",
            set(base(), "/containerDefinitions/0/volumesFrom", json!([{"sourceContainer": "ghost"}])),
            Err(&[("containerDefinitions[0].volumesFrom[0].sourceContainer", "no container named \"ghost\"")]),
        ),
        case(
            "duplicate volume names",
            set(base(), "/volumes", json!([{"name": "data"}, {"name": "data", "host": {"sourcePath": "/srv"}}])),
            Err(&[("volumes[1].name", "duplicate volume name \"data\" (also volumes[0])")]),
        ),
        case(
            "docker volume with a plugin driver",
            set(
                base(),
                "/volumes",
                json!([{"name": "v", "dockerVolumeConfiguration": {"scope": "shared", "driver": "rexray/ebs", "autoprovision": true}}]),
            ),
            Err(&[("volumes[0].dockerVolumeConfiguration.driver", "must be `local` or absent")]),
        ),
        case(
            "restart policy limits",
            set(
                base(),
                "/containerDefinitions/0/restartPolicy",
                json!({"enabled": true, "restartAttemptPeriod": 30, "ignoredExitCodes": (0..51).collect::<Vec<i32>>()}),
            ),
            Err(&[
                ("containerDefinitions[0].restartPolicy.restartAttemptPeriod", "60–1800 seconds, got 30"),
                ("containerDefinitions[0].restartPolicy.ignoredExitCodes", "at most 50 exit codes, got 51"),
            ]),
        ),
        case(
            "stop and start timeouts",
            set(
                set(base(), "/containerDefinitions/0/stopTimeout", json!(121)),
                "/containerDefinitions/0/startTimeout",
                json!(1),
            ),
            Err(&[
                ("containerDefinitions[0].startTimeout", "at least 2 seconds, got 1"),
                ("containerDefinitions[0].stopTimeout", "0–120 seconds"),
            ]),
        ),
        case(
            "unknown ulimit name",
            set(
                base(),
                "/containerDefinitions/0/ulimits",
                json!([{"name": "files", "softLimit": 1, "hardLimit": 2}]),
            ),
            Err(&[("containerDefinitions[0].ulimits[0].name", "unknown variant `files`")]),
        ),
        case(
            "ulimit soft above hard",
            set(
                base(),
                "/containerDefinitions/0/ulimits",
                json!([{"name": "nofile", "softLimit": 4096, "hardLimit": 1024}]),
            ),
            Err(&[(
                "containerDefinitions[0].ulimits[0].softLimit",
                "softLimit (4096) must not exceed hardLimit (1024)",
            )]),
        ),
        case(
            "environment variable without a name",
            set(base(), "/containerDefinitions/0/environment", json!([{"name": "", "value": "x"}])),
            Err(&[("containerDefinitions[0].environment[0].name", "must not be empty")]),
        ),
        case(
            "secret without valueFrom",
            set(base(), "/containerDefinitions/0/secrets", json!([{"name": "TOKEN"}])),
            Err(&[("containerDefinitions[0].secrets[0].valueFrom", "required field is missing")]),
        ),
        case(
            "secret referenced by a name Berth cannot hold",
            set(base(), "/containerDefinitions/0/secrets", json!([{"name": "TOKEN", "valueFrom": "arn:aws:s3:::bucket/key"}])),
            Err(&[("containerDefinitions[0].secrets[0].valueFrom", "\"arn:aws:s3:::bucket/key\" is neither a Secrets Manager ARN (…:s3:…:secret:NAME) nor an SSM parameter ARN (…:parameter/NAME)")]),
        ),
        case(
            "registry credentials with a JSON key",
            set(base(), "/containerDefinitions/0/repositoryCredentials", json!({"credentialsParameter": "arn:aws:secretsmanager:r:1:secret:creds:user::"})),
            Err(&[("containerDefinitions[0].repositoryCredentials.credentialsParameter", "\"arn:aws:secretsmanager:r:1:secret:creds:user::\": a JSON key, version stage or version id after the secret's name is not supported; store the value itself as a Berth secret")]),
        ),
        case(
            "placement constraint of another type",
            set(base(), "/placementConstraints", json!([{"type": "distinctInstance"}])),
            Err(&[("placementConstraints[0].type", "unknown variant `distinctInstance`, expected `memberOf`")]),
        ),
        case(
            "memberOf without expression",
            set(base(), "/placementConstraints", json!([{"type": "memberOf"}])),
            Err(&[("placementConstraints[0].expression", "needs a Cluster Query Language expression")]),
        ),
        case(
            "bad tags",
            set(
                base(),
                "/tags",
                json!([
                    {"key": "k".repeat(129), "value": "v"},
                    {"key": "aws:owner", "value": "me"},
                    {"key": "ok", "value": "v".repeat(257)}
                ]),
            ),
            Err(&[
                ("tags[0].key", "must be 1–128 characters"),
                ("tags[1].key", "`aws:` prefix is reserved"),
                ("tags[2].value", "must be 0–256 characters"),
            ]),
        ),
        case(
            "unsupported log driver",
            set(
                base(),
                "/containerDefinitions/0/logConfiguration",
                json!({"logDriver": "splunk", "options": {"splunk-url": "https://splunk"}}),
            ),
            Err(&[(
                "containerDefinitions[0].logConfiguration.logDriver",
                "log driver \"splunk\" is not supported by Berth; supported: json-file, none, awslogs",
            )]),
        ),
        case(
            "unsupported json-file option",
            set(
                base(),
                "/containerDefinitions/0/logConfiguration",
                json!({"logDriver": "json-file", "options": {"max-size": "10m", "labels-regex": "x"}}),
            ),
            Err(&[(
                "containerDefinitions[0].logConfiguration.options.labels-regex",
                "supported: max-size, max-file",
            )]),
        ),
        case(
            "GPU requirement",
            set(base(), "/containerDefinitions/0/resourceRequirements", json!([{"type": "GPU", "value": "1"}])),
            Err(&[("containerDefinitions[0].resourceRequirements[0].type", "not supported by Berth yet")]),
        ),
        case(
            "Windows platform",
            set(
                base(),
                "/runtimePlatform",
                json!({"cpuArchitecture": "X86_64", "operatingSystemFamily": "WINDOWS_SERVER_2022_CORE"}),
            ),
            Err(&[("runtimePlatform.operatingSystemFamily", "Linux containers only")]),
        ),
        case(
            "links outside bridge mode",
            set(
                with_containers(vec![
                    container("a", json!({"links": ["b:db"]})),
                    container("b", json!({})),
                ]),
                "/networkMode",
                json!("awsvpc"),
            ),
            Err(&[("containerDefinitions[0].links", "bridge network mode only")]),
        ),
        case(
            "network sysctl in host mode",
            set(
                set(base(), "/networkMode", json!("host")),
                "/containerDefinitions/0/systemControls",
                json!([{"namespace": "net.core.somaxconn", "value": "1024"}]),
            ),
            Err(&[("containerDefinitions[0].systemControls[0].namespace", "host network mode")]),
        ),
        case(
            "unknown capability",
            set(
                base(),
                "/containerDefinitions/0/linuxParameters",
                json!({"capabilities": {"add": ["SYS_PTRACE", "SUPERPOWERS"]}}),
            ),
            Err(&[(
                "containerDefinitions[0].linuxParameters.capabilities.add[1]",
                "unknown capability \"SUPERPOWERS\"",
            )]),
        ),
        Case {
            name: "not JSON",
            input: "{\"family\": ".to_owned(),
            expect: Err(&[("$", "not valid JSON")]),
        },
        case(
            "wrapper with an unknown sibling",
            json!({"taskDefinition": base(), "ResponseMetadata": {}}),
            Err(&[("ResponseMetadata", "unknown field beside taskDefinition")]),
        ),
        // ---- rejected: several errors at once ----
        case(
            "structural errors in several containers are all reported",
            json!({
                "family": "multi",
                "volumes": [{"name": "a"}, {"nam": "b"}],
                "containerDefinitions": [
                    {"name": "a", "image": "i", "memory": "lots", "essentail": true},
                    {"name": "b", "image": "i", "memory": 64,
                     "portMappings": [{"containerPort": 80}, {"containerPort": -1}],
                     "healthCheck": {"command": "CMD true"}},
                    {"image": "i"}
                ]
            }),
            Err(&[
                ("volumes[1].nam", "unknown field (did you mean `name`?)"),
                ("containerDefinitions[0].memory", "invalid type: string \"lots\", expected u32"),
                ("containerDefinitions[0].essentail", "did you mean `essential`?"),
                ("containerDefinitions[1].portMappings[1].containerPort", "invalid value: integer `-1`, expected u32"),
                ("containerDefinitions[1].healthCheck.command", "invalid type: string \"CMD true\", expected a sequence"),
                ("containerDefinitions[2].name", "required field is missing"),
            ]),
        ),
        case(
            "semantic errors in several containers are all reported",
            json!({
                "family": "multi",
                "memory": "512",
                "containerDefinitions": [
                    {"name": "web", "image": "web:1", "memory": 400,
                     "portMappings": [{"containerPort": 80, "hostPort": 8080}],
                     "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]},
                    {"name": "sidecar", "image": "", "memory": 200,
                     "portMappings": [{"containerPort": 81, "hostPort": 8080}],
                     "healthCheck": {"command": ["CMD-SHELL"], "retries": 20}}
                ]
            }),
            Err(&[
                ("containerDefinitions[0].dependsOn[0].containerName", "no container named \"db\""),
                ("containerDefinitions[1].image", "required"),
                ("containerDefinitions[1].healthCheck.command", "CMD-SHELL needs the command"),
                ("containerDefinitions[1].healthCheck.retries", "1–10, got 20"),
                ("memory", "add up to 600 MiB"),
                ("containerDefinitions[1].portMappings[0].hostPort", "host port 8080/tcp is already published"),
            ]),
        ),
    ]
}

#[test]
fn table() {
    let cases = cases();
    assert!(cases.len() >= 30, "the table keeps at least 30 cases");
    let mut failures = Vec::new();
    for c in &cases {
        let got = parse_registration(&c.input);
        let problem = match (&c.expect, &got) {
            (Expect::Ok(want), Ok(reg)) => {
                let mut got: Vec<&str> = reg.warnings.iter().map(|w| w.path.as_str()).collect();
                let mut want = want.to_vec();
                got.sort_unstable();
                want.sort_unstable();
                (got != want).then(|| format!("warnings {:#?}, want paths {want:?}", reg.warnings))
            }
            (Expect::Ok(_), Err(e)) => Some(format!("rejected:\n{e}")),
            (Expect::Err(_), Ok(reg)) => Some(format!("accepted: {reg:?}")),
            (Expect::Err(want), Err(e)) => {
                let missing: Vec<_> = want
                    .iter()
                    .filter(|(path, fragment)| {
                        !e.errors
                            .iter()
                            .any(|i| i.path == *path && i.message.contains(fragment))
                    })
                    .collect();
                (!missing.is_empty() || e.errors.len() != want.len())
                    .then(|| format!("errors:\n{e}\nmissing: {missing:?}"))
            }
        };
        if let Some(p) = problem {
            failures.push(format!("case {:?}: {p}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn accepted_cases_round_trip_through_serde() {
    for c in cases() {
        let Ok(reg) = parse_registration(&c.input) else {
            continue;
        };
        let text = serde_json::to_string(&reg.definition).expect("serializes");
        let again = parse_registration(&text)
            .unwrap_or_else(|e| panic!("case {:?}: re-parse failed:\n{e}", c.name));
        assert_eq!(again.definition, reg.definition, "case {:?}", c.name);
        assert_eq!(again.warnings, reg.warnings, "case {:?}", c.name);
    }
}

#[test]
fn describe_fixture_is_understood() {
    let reg = parse_registration(DESCRIBE_FIXTURE).expect("fixture registers");
    let d = &reg.definition;
    assert_eq!(d.family, "web-app");
    assert_eq!(d.task_cpu_units(), Some(1024));
    assert_eq!(d.task_memory_mib(), Some(2048));
    assert_eq!(d.cpu, Some(TaskSize::Text("1024".to_owned())));
    assert_eq!(d.effective_network_mode(), NetworkMode::Bridge);
    assert_eq!(d.pid_mode, Some(PidMode::Task));
    assert_eq!(
        d.tags,
        vec![
            Tag {
                key: "team".into(),
                value: "storefront".into()
            },
            Tag {
                key: "cost-center".into(),
                value: "cc-1042".into()
            },
        ]
    );
    assert_eq!(d.container_definitions.len(), 4);
    let web = d.container("web").expect("web container");
    assert!(web.is_essential());
    assert_eq!(web.port_mappings[0].host_port, Some(0));
    assert_eq!(web.entry_point, Some(vec![]));
    assert_eq!(
        web.log_configuration.as_ref().map(|l| &l.log_driver),
        Some(&LogDriver::Awslogs)
    );
    let hc = web.health_check.as_ref().expect("health check");
    assert_eq!(
        (
            hc.interval_secs(),
            hc.timeout_secs(),
            hc.retries(),
            hc.start_period_secs()
        ),
        (15, 5, 3, 30)
    );
    assert_eq!(web.depends_on[1].condition, DependencyCondition::Healthy);
    assert_eq!(web.ulimits[0].name, UlimitName::Nofile);
    let migrate = d.container("migrate").expect("migrate container");
    assert!(!migrate.is_essential());
    // Read-only fields are gone: serializing gives none of them back.
    let text = serde_json::to_string(d).expect("serializes");
    for field in READ_ONLY_FIELDS {
        assert!(!text.contains(&format!("\"{field}\"")), "{field} was kept");
    }
}

fn read_only() -> ReadOnlyFields {
    ReadOnlyFields {
        task_definition_arn: "arn:berth:ecs:local:000000000000:task-definition/web-app:3".into(),
        revision: 3,
        status: TaskDefinitionStatus::Inactive,
        registered_at: datetime!(2024-05-01 12:30:00.25 UTC),
        deregistered_at: Some(datetime!(2024-06-01 08:00:00 +02:00)),
        registered_by: Some("operator:alice".into()),
    }
}

#[test]
fn describe_json_round_trips() {
    let ro = read_only();
    for c in cases() {
        let Ok(reg) = parse_registration(&c.input) else {
            continue;
        };
        let def = &reg.definition;
        let described = describe_response_json(def, &ro);
        let back = parse_registration(&described.to_string())
            .unwrap_or_else(|e| panic!("case {:?}: describe output rejected:\n{e}", c.name));
        // ECS's defaults are filled in once: describing again changes nothing.
        assert_eq!(
            describe_response_json(&back.definition, &ro),
            described,
            "case {:?}",
            c.name
        );
        // The same task: the defaults are ECS's own.
        assert_eq!(
            back.definition.task_cpu_units(),
            def.task_cpu_units(),
            "case {:?}",
            c.name
        );
        assert_eq!(
            back.definition.task_memory_mib(),
            def.task_memory_mib(),
            "case {:?}",
            c.name
        );
        for (a, b) in back
            .definition
            .container_definitions
            .iter()
            .zip(&def.container_definitions)
        {
            assert_eq!(a.cpu.unwrap_or(0), b.cpu.unwrap_or(0));
            assert_eq!(a.essential.unwrap_or(true), b.essential.unwrap_or(true));
            assert_eq!((&a.command, &a.environment), (&b.command, &b.environment));
        }
        // The object alone (no tags beside it) gives back everything but the tags.
        let wrapped = json!({"taskDefinition": describe_json(def, &ro)}).to_string();
        let back = parse_registration(&wrapped).expect("describe object registers");
        assert_eq!(back.definition.tags, vec![]);
    }
}

#[test]
fn describe_json_has_the_read_only_fields() {
    let reg = parse_registration(DESCRIBE_FIXTURE).expect("fixture registers");
    let out = describe_json(&reg.definition, &read_only());
    assert_eq!(
        out["taskDefinitionArn"],
        "arn:berth:ecs:local:000000000000:task-definition/web-app:3"
    );
    assert_eq!(out["revision"], 3);
    assert_eq!(out["status"], "INACTIVE");
    assert!(
        out.get("requiresAttributes").is_none(),
        "ECS leaves an empty list out"
    );
    assert_eq!(out["compatibilities"], json!(["EXTERNAL", "EC2"]));
    assert_eq!(out["registeredAt"], json!(1_714_566_600.25));
    assert_eq!(out["deregisteredAt"], json!(1_717_221_600.0));
    assert_eq!(out["registeredBy"], "operator:alice");
    assert_eq!(out["cpu"], "1024", "strings stay strings");
    assert!(
        out.get("tags").is_none(),
        "ECS prints tags beside the object"
    );
    let keys: Vec<&str> = out
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys.first(), Some(&"taskDefinitionArn"));
    let response = describe_response_json(&reg.definition, &read_only());
    assert_eq!(response["tags"][0]["key"], "team");
}

/// A real ECS output (`testdata/README.md`): its `taskDefinition` object
/// without the fields Berth assigns differently.
fn ecs_output(text: &str) -> (Value, ReadOnlyFields) {
    let v: Value = serde_json::from_str(text).expect("fixture is JSON");
    let mut td = v["taskDefinition"].clone();
    let status = match td["status"].as_str() {
        Some("INACTIVE") => TaskDefinitionStatus::Inactive,
        _ => TaskDefinitionStatus::Active,
    };
    let ro = ReadOnlyFields {
        task_definition_arn: td["taskDefinitionArn"].as_str().unwrap_or("").to_owned(),
        revision: td["revision"]
            .as_u64()
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(1),
        status,
        registered_at: datetime!(2024-05-01 12:30:00.25 UTC),
        deregistered_at: None,
        registered_by: None,
    };
    let m = td.as_object_mut().expect("an object");
    for key in ["registeredAt", "registeredBy", "requiresAttributes"] {
        m.remove(key);
    }
    (td, ro)
}

/// `describe_json` of what `text` registers, without the same fields.
fn berth_output(text: &str, ro: &ReadOnlyFields) -> Value {
    let reg = parse_registration(text).unwrap_or_else(|e| panic!("registers:\n{e}"));
    let mut out = describe_json(&reg.definition, ro);
    if let Some(m) = out.as_object_mut() {
        m.remove("registeredAt");
    }
    out
}

#[test]
fn ecs_outputs_round_trip() {
    for (name, text) in [
        (
            "sleep360",
            include_str!("testdata/ecs-sleep360.output.json"),
        ),
        (
            "hello_world",
            include_str!("testdata/ecs-hello-world.output.json"),
        ),
        (
            "hello-world-task",
            include_str!("testdata/ecs-hello-world-task.output.json"),
        ),
        (
            "ContainerHandsOn",
            include_str!("testdata/ecs-container-hands-on.output.json"),
        ),
    ] {
        let (expected, ro) = ecs_output(text);
        assert_eq!(berth_output(text, &ro), expected, "{name}");
    }
}

#[test]
fn an_ecs_input_describes_as_ecs_printed_it() {
    let (expected, ro) = ecs_output(include_str!("testdata/ecs-sleep360.output.json"));
    let got = berth_output(include_str!("testdata/ecs-sleep360.input.json"), &ro);
    assert_eq!(got, expected);
    // In ECS's (the aws CLI's) key order too.
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&got), keys(&expected));
    assert_eq!(
        keys(&got["containerDefinitions"][0]),
        keys(&expected["containerDefinitions"][0])
    );
}

#[test]
fn task_sizes_are_described_as_units() {
    let reg = parse_registration(
        &json!({
            "family": "f", "cpu": "1 vCPU", "memory": "2 GB", "networkMode": "awsvpc",
            "containerDefinitions": [{"name": "a", "image": "i"}]
        })
        .to_string(),
    )
    .expect("valid");
    let out = describe_json(&reg.definition, &read_only());
    assert_eq!(
        (&out["cpu"], &out["memory"]),
        (&json!("1024"), &json!("2048"))
    );
    assert_eq!(out["compatibilities"], json!(["EC2", "FARGATE"]));
    let c = &out["containerDefinitions"][0];
    assert_eq!((&c["cpu"], &c["essential"]), (&json!(0), &json!(true)));
}

#[test]
fn numbers_stay_numbers_and_strings_stay_strings() {
    let reg = parse_registration(
        &json!({
            "family": "f", "cpu": 512, "memory": "1GB",
            "containerDefinitions": [{"name": "a", "image": "i"}]
        })
        .to_string(),
    )
    .expect("valid");
    let out = serde_json::to_value(&reg.definition).expect("serializes");
    assert_eq!(out["cpu"], json!(512));
    assert_eq!(out["memory"], json!("1GB"));
    assert_eq!(reg.definition.task_cpu_units(), Some(512));
    assert_eq!(reg.definition.task_memory_mib(), Some(1024));
    // Absent and empty fields are not printed.
    assert_eq!(
        out,
        json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "i"}], "cpu": 512, "memory": "1GB"})
    );
}

#[test]
fn task_size_accessors() {
    let def = |cpu: Value, memory: Value| -> TaskDefinition {
        serde_json::from_value(json!({
            "family": "f", "cpu": cpu, "memory": memory,
            "containerDefinitions": []
        }))
        .expect("model parses")
    };
    let d = def(json!("0.5 vcpu"), json!("512 MiB"));
    assert_eq!(
        (d.task_cpu_units(), d.task_memory_mib()),
        (Some(512), Some(512))
    );
    let d = def(json!(2048.0), json!("2 GB"));
    assert_eq!(
        (d.task_cpu_units(), d.task_memory_mib()),
        (Some(2048), Some(2048))
    );
    let d = def(json!("1 vCPU"), json!(3072));
    assert_eq!(
        (d.task_cpu_units(), d.task_memory_mib()),
        (Some(1024), Some(3072))
    );
    let d = def(json!(-1), json!("x"));
    assert_eq!((d.task_cpu_units(), d.task_memory_mib()), (None, None));
    let d = def(json!(0.3), json!(1.5));
    assert_eq!((d.task_cpu_units(), d.task_memory_mib()), (None, None));
}

#[test]
fn error_display_is_one_line_per_issue() {
    let err = parse_registration(
        &json!({
            "family": "bad family",
            "containerDefinitions": [
                {"name": "a", "image": "i", "memory": 2},
                {"name": "a", "image": "i", "memory": 64, "stopTimeout": 600}
            ]
        })
        .to_string(),
    )
    .expect_err("invalid");
    expect![[r#"
        family: must be 1–255 letters, digits, `_` or `-`, got "bad family"
        containerDefinitions[0].memory: must be at least 6 MiB (Docker's minimum), got 2
        containerDefinitions[1].name: duplicate container name "a" (also containerDefinitions[0].name)
        containerDefinitions[1].stopTimeout: must be 0–120 seconds (ECS's maximum), got 600"#]]
    .assert_eq(&err.to_string());
    assert_eq!(
        err.errors[0].to_string(),
        "family: must be 1–255 letters, digits, `_` or `-`, got \"bad family\""
    );
}

#[test]
fn validate_accepts_a_definition_built_in_code() {
    let mut def: TaskDefinition = serde_json::from_value(base()).expect("model parses");
    assert_eq!(validate(&def).map_err(|e| e.to_string()), Ok(vec![]));
    def.container_definitions[0].memory = None;
    let err = validate(&def).expect_err("no memory");
    assert_eq!(err.errors[0].path, "containerDefinitions[0].memory");
}

#[test]
fn wrapper_and_inner_tags() {
    let inner_tags = json!([{"key": "a", "value": "1"}]);
    let mut def = base();
    def["tags"] = inner_tags.clone();
    // Same tags in both places: fine.
    let same = json!({"taskDefinition": def.clone(), "tags": inner_tags});
    assert!(parse_registration(&same.to_string()).is_ok());
    // Different tags: an error at `tags`.
    let different = json!({"taskDefinition": def, "tags": [{"key": "b", "value": "2"}]});
    let err = parse_registration(&different.to_string()).expect_err("conflicting tags");
    assert_eq!(err.errors.len(), 1);
    assert_eq!(err.errors[0].path, "tags");
    // A non-object taskDefinition.
    let err = parse_registration("{\"taskDefinition\": []}").expect_err("not an object");
    assert_eq!(err.errors[0].path, "taskDefinition");
    // Scalars and arrays at the root.
    for junk in ["null", "3", "\"x\"", "[]", "true"] {
        let err = parse_registration(junk).expect_err("not an object");
        assert_eq!(err.errors[0].path, ROOT_PATH, "{junk}");
    }
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = parse_registration(&deep).expect_err("too deep");
    assert_eq!(err.errors[0].path, ROOT_PATH);
    let deep = format!(
        "{{\"family\":\"f\",\"containerDefinitions\":[{{\"name\":\"a\",\"image\":\"i\",\"command\":{}{}}}]}}",
        "[".repeat(120),
        "]".repeat(120)
    );
    assert!(parse_registration(&deep).is_err());
}

/// Deterministic xorshift64* generator (no dependency for a fuzz-ish test).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Field names and values that reach deep into the model and the validator.
const WORDS: &[&str] = &[
    "family",
    "containerDefinitions",
    "name",
    "image",
    "cpu",
    "memory",
    "memoryReservation",
    "portMappings",
    "containerPort",
    "hostPort",
    "protocol",
    "containerPortRange",
    "essential",
    "dependsOn",
    "containerName",
    "condition",
    "healthCheck",
    "command",
    "interval",
    "retries",
    "volumes",
    "host",
    "sourcePath",
    "mountPoints",
    "sourceVolume",
    "containerPath",
    "links",
    "logConfiguration",
    "logDriver",
    "options",
    "secretOptions",
    "ulimits",
    "softLimit",
    "hardLimit",
    "networkMode",
    "tags",
    "key",
    "value",
    "taskDefinition",
    "restartPolicy",
    "enabled",
    "linuxParameters",
    "capabilities",
    "add",
    "tmpfs",
    "size",
    "systemControls",
    "namespace",
    "placementConstraints",
    "type",
    "expression",
    "volumesFrom",
    "sourceContainer",
    "tcp",
    "udp",
    "bridge",
    "host",
    "awsvpc",
    "none",
    "START",
    "HEALTHY",
    "SUCCESS",
    "COMPLETE",
    "CMD",
    "CMD-SHELL",
    "NONE",
    "json-file",
    "awslogs",
    "memberOf",
    "1 vCPU",
    "2 GB",
    "0.5 vcpu",
    "a",
    "b",
    "app",
    "",
    "/data",
    "data",
    "nofile",
    "-",
    "net.core.somaxconn",
    "9999999999999",
];

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    let choice = if depth == 0 {
        rng.below(6)
    } else {
        rng.below(9)
    };
    match choice {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(*rng.pick(&[
            0i64,
            1,
            -1,
            2,
            6,
            80,
            65535,
            65536,
            1024,
            4_294_967_296,
            i64::MIN
        ])),
        3 => json!(*rng.pick(&[0.5f64, -0.0, 1e300, 2048.0, 3.25])),
        4 | 5 => Value::String((*rng.pick(WORDS)).to_owned()),
        6 | 7 => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                m.insert((*rng.pick(WORDS)).to_owned(), random_value(rng, depth - 1));
            }
            Value::Object(m)
        }
        _ => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
    }
}

/// Replaces or removes a random node of `doc`, at most `depth` levels down.
fn mutate(rng: &mut Rng, node: &mut Value, depth: usize) {
    if depth > 0 {
        let k = rng.next();
        match node {
            Value::Object(m) if !m.is_empty() => {
                let k = usize::try_from(k % m.len() as u64).unwrap_or(0);
                if let Some(child) = m.values_mut().nth(k) {
                    return mutate(rng, child, depth - 1);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let k = usize::try_from(k % a.len() as u64).unwrap_or(0);
                if let Some(child) = a.get_mut(k) {
                    return mutate(rng, child, depth - 1);
                }
            }
            _ => {}
        }
    }
    match node {
        Value::Object(m) if !m.is_empty() && rng.below(3) == 0 => {
            let k = rng.below(m.len());
            if let Some(key) = m.keys().nth(k).cloned() {
                m.remove(&key);
            }
        }
        _ => *node = random_value(rng, 3),
    }
}

fn check_no_panic_and_round_trip(input: &str) {
    if let Ok(reg) = parse_registration(input) {
        let text = serde_json::to_string(&reg.definition).expect("serializes");
        let again = parse_registration(&text).expect("serialized definition re-parses");
        assert_eq!(again.definition, reg.definition);
    }
}

#[test]
fn junk_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let fixture: Value = serde_json::from_str(DESCRIBE_FIXTURE).expect("fixture is JSON");
    let seeds = [fixture.clone(), fixture["taskDefinition"].clone(), base()];
    let mut accepted = 0;
    for round in 0..3000 {
        let input = match round % 4 {
            // Structured junk built from the model's own words.
            0 => random_value(&mut rng, 5).to_string(),
            // A valid definition with a few nodes replaced or removed.
            1 | 2 => {
                let mut doc = rng.pick(&seeds).clone();
                for _ in 0..=rng.below(3) {
                    let depth = rng.below(7);
                    mutate(&mut rng, &mut doc, depth);
                }
                doc.to_string()
            }
            // Byte-level damage to real text (kept on char boundaries).
            _ => {
                let mut chars: Vec<char> = DESCRIBE_FIXTURE.chars().collect();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(chars.len());
                    match rng.below(3) {
                        0 => {
                            chars.remove(at);
                        }
                        1 => chars.insert(
                            at,
                            *rng.pick(&['"', '{', '}', '[', ']', ',', ':', '0', 'x', 'é']),
                        ),
                        _ => chars.truncate(at),
                    }
                }
                chars.into_iter().collect()
            }
        };
        let outcome = std::panic::catch_unwind(|| check_no_panic_and_round_trip(&input));
        assert!(outcome.is_ok(), "panicked on input: {input}");
        if parse_registration(&input).is_ok() {
            accepted += 1;
        }
    }
    // The mutations keep some inputs valid, so the accepted path is exercised too.
    assert!(accepted > 10, "only {accepted} junk inputs were accepted");
}

#[test]
fn every_module_starts_with_a_doc_comment() {
    let modules = [
        ("mod.rs", include_str!("mod.rs")),
        ("model.rs", include_str!("model.rs")),
        ("parse.rs", include_str!("parse.rs")),
        ("validate.rs", include_str!("validate.rs")),
        ("units.rs", include_str!("units.rs")),
        ("describe.rs", include_str!("describe.rs")),
        ("issue.rs", include_str!("issue.rs")),
        ("tests.rs", include_str!("tests.rs")),
    ];
    for (name, text) in modules {
        assert!(
            text.starts_with("//!"),
            "{name} does not start with a //! doc"
        );
        assert!(
            !text.contains(concat!("#[", "ignore]")),
            "{name} has an ignored test"
        );
    }
}

#[test]
fn docker_labels_in_berths_namespace_and_oversized_ones_warn() {
    let def = |labels: Value| {
        json!({"family": "f", "containerDefinitions": [
            {"name": "a", "image": "i", "memory": 32, "dockerLabels": labels}
        ]})
        .to_string()
    };
    let reg = parse_registration(&def(
        json!({"berth.task-arn": "x", "traefik.enable": "true"}),
    ))
    .expect("valid");
    let paths: Vec<&str> = reg.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        [r#"containerDefinitions[0].dockerLabels["berth.task-arn"]"#]
    );
    // Warned, not rejected: definitions registered before the check must still run.
    let reg = parse_registration(&def(json!({"big": "x".repeat(4094)}))).expect("valid");
    assert_eq!(
        reg.warnings[0].path,
        "containerDefinitions[0].dockerLabels.big"
    );
}
