//! `berthctl targetgroup create|ls|describe|modify|rm|health|watch`:
//! `TargetGroupService` (ELBv2's CreateTargetGroup, DescribeTargetGroups,
//! ModifyTargetGroup, DeleteTargetGroup and DescribeTargetHealth, and
//! WatchTargets). `-o json` prints ELB's shapes (`views::target_group`).
//!
//! Values are checked by the scheduler, which names the field it refuses;
//! berthctl checks only the forms clap can (numbers, `traffic-port`).

use std::collections::BTreeMap;

use berth_proto::v1 as pb;
use berth_proto::v1::target_group_service_client::TargetGroupServiceClient;
use clap::{Args, Subcommand, ValueEnum};

use super::Ctx;
use crate::error::CtlError;
use crate::output::OutputFormat;
use crate::views::table_time;
use crate::views::target_group::{
    self as view, TargetGroupsView, TargetHealthDescriptionView, TargetHealthDescriptionsView,
};

/// A target group's or a health check's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetProtocol {
    #[value(name = "HTTP")]
    Http,
    #[value(name = "TCP")]
    Tcp,
}

impl TargetProtocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Tcp => "TCP",
        }
    }
}

/// `traffic-port` or a port number.
fn parse_check_port(s: &str) -> Result<String, String> {
    if s == "traffic-port" {
        return Ok(s.to_owned());
    }
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p.to_string()),
        _ => Err(format!("{s:?} is not traffic-port or a port 1–65535")),
    }
}

/// ELB's health check settings; those not given keep the scheduler's
/// default (create) or the group's current value (modify).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct HealthCheckArgs {
    /// The path an HTTP check requests [default: /]
    #[arg(long = "health-check-path", value_name = "PATH")]
    pub check_path: Option<String>,
    /// The port checked: traffic-port (the target's) or a number [default: traffic-port]
    #[arg(long = "health-check-port", value_name = "traffic-port|PORT", value_parser = parse_check_port)]
    pub check_port: Option<String>,
    /// HTTP or TCP [default: the group's protocol]
    #[arg(
        long = "health-check-protocol",
        value_name = "PROTOCOL",
        ignore_case = true
    )]
    pub check_protocol: Option<TargetProtocol>,
    /// Seconds between checks, 5–300 [default: 30]
    #[arg(long = "health-check-interval", value_name = "SECONDS")]
    pub check_interval: Option<u32>,
    /// Seconds before a check fails, 2–120 [default: 5 (HTTP), 10 (TCP)]
    #[arg(long = "health-check-timeout", value_name = "SECONDS")]
    pub check_timeout: Option<u32>,
    /// Passing checks before a target is healthy, 2–10 [default: 5]
    #[arg(long = "healthy-threshold", value_name = "N")]
    pub healthy_threshold: Option<u32>,
    /// Failing checks before a target is unhealthy, 2–10 [default: 2]
    #[arg(long = "unhealthy-threshold", value_name = "N")]
    pub unhealthy_threshold: Option<u32>,
    /// The HTTP codes of a healthy answer: 200, 200,202 or 200-299 [default: 200]
    #[arg(long = "matcher", value_name = "CODES")]
    pub matcher: Option<String>,
}

impl HealthCheckArgs {
    fn to_proto(&self) -> Option<pb::HealthCheck> {
        if *self == Self::default() {
            return None;
        }
        Some(pb::HealthCheck {
            protocol: self
                .check_protocol
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            path: self.check_path.clone().unwrap_or_default(),
            port: self.check_port.clone().unwrap_or_default(),
            interval_seconds: self.check_interval.unwrap_or(0),
            timeout_seconds: self.check_timeout.unwrap_or(0),
            healthy_threshold: self.healthy_threshold.unwrap_or(0),
            unhealthy_threshold: self.unhealthy_threshold.unwrap_or(0),
            matcher: self.matcher.clone().unwrap_or_default(),
        })
    }
}

/// The group's attributes (ELB's target group attributes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct AttributeArgs {
    /// Seconds a stopping task's target drains before it stops, 0–3600 [default: 300]
    #[arg(long = "deregistration-delay", value_name = "SECONDS")]
    pub deregistration_delay: Option<u32>,
    /// Seconds a new target ramps up its share of traffic: 0 (off) or 30–900 [default: 0]
    #[arg(long = "slow-start", value_name = "SECONDS")]
    pub slow_start: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum TargetGroupCommand {
    /// Create a target group (creating one that exists with the same
    /// settings answers it again, as ELB does)
    Create {
        /// 1–32 letters, digits and hyphens
        name: String,
        /// The protocol load balancers speak to the targets [default: HTTP]
        #[arg(long, value_name = "PROTOCOL", ignore_case = true)]
        protocol: Option<TargetProtocol>,
        /// The port a load balancer listens on for the group
        #[arg(long, value_name = "PORT")]
        port: u32,
        #[command(flatten)]
        health_check: HealthCheckArgs,
        #[command(flatten)]
        attributes: AttributeArgs,
    },
    /// List target groups
    Ls,
    /// Describe target groups: health check, attributes, services
    Describe {
        #[arg(value_name = "NAME|ARN", required = true)]
        target_groups: Vec<String>,
    },
    /// Change a target group's health check or attributes (only the options given)
    Modify {
        #[arg(value_name = "NAME|ARN")]
        target_group: String,
        #[command(flatten)]
        health_check: HealthCheckArgs,
        #[command(flatten)]
        attributes: AttributeArgs,
    },
    /// Delete a target group (refused while a service uses it)
    Rm {
        #[arg(value_name = "NAME|ARN")]
        target_group: String,
    },
    /// The targets of a group and their health (ELB's describe-target-health)
    Health {
        #[arg(value_name = "NAME|ARN")]
        target_group: String,
    },
    /// Follow the targets of groups (all when none is named): a line per
    /// target that appears, changes state or goes, until interrupted
    Watch {
        #[arg(value_name = "NAME|ARN")]
        target_groups: Vec<String>,
    },
}

fn no_group() -> CtlError {
    CtlError::BadResponse {
        what: "the answer holds no target group".to_owned(),
    }
}

pub async fn run(cmd: TargetGroupCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    if let TargetGroupCommand::Modify {
        health_check,
        attributes,
        ..
    } = &cmd
    {
        if *health_check == HealthCheckArgs::default() && *attributes == AttributeArgs::default() {
            return Err(CtlError::InvalidInput {
                message: "nothing to modify: give a --health-check-* option, a threshold, \
                          --matcher, --deregistration-delay or --slow-start"
                    .to_owned(),
            });
        }
    }
    let mut client = TargetGroupServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    match cmd {
        TargetGroupCommand::Create {
            name,
            protocol,
            port,
            health_check,
            attributes,
        } => {
            let r = client
                .create_target_group(pb::CreateTargetGroupRequest {
                    name,
                    protocol: protocol.map(|p| p.as_str().to_owned()).unwrap_or_default(),
                    port,
                    health_check: health_check.to_proto(),
                    deregistration_delay_seconds: attributes.deregistration_delay,
                    slow_start_seconds: attributes.slow_start,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = TargetGroupsView::from(vec![r.target_group.ok_or_else(no_group)?]);
            ctx.emit(&v, view::describe_table)
        }
        TargetGroupCommand::Ls => {
            let r = client
                .describe_target_groups(pb::DescribeTargetGroupsRequest {
                    target_groups: vec![],
                })
                .await
                .map_err(rpc)?
                .into_inner();
            ctx.emit(&TargetGroupsView::from(r.target_groups), view::list_table)
        }
        TargetGroupCommand::Describe { target_groups } => {
            let r = client
                .describe_target_groups(pb::DescribeTargetGroupsRequest { target_groups })
                .await
                .map_err(rpc)?
                .into_inner();
            ctx.emit(
                &TargetGroupsView::from(r.target_groups),
                view::describe_table,
            )
        }
        TargetGroupCommand::Modify {
            target_group,
            health_check,
            attributes,
        } => {
            let r = client
                .modify_target_group(pb::ModifyTargetGroupRequest {
                    target_group,
                    health_check: health_check.to_proto(),
                    deregistration_delay_seconds: attributes.deregistration_delay,
                    slow_start_seconds: attributes.slow_start,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = TargetGroupsView::from(vec![r.target_group.ok_or_else(no_group)?]);
            ctx.emit(&v, view::describe_table)
        }
        TargetGroupCommand::Rm { target_group } => {
            client
                .delete_target_group(pb::DeleteTargetGroupRequest {
                    target_group: target_group.clone(),
                })
                .await
                .map_err(rpc)?;
            let name = berth_proto::arn::target_group_name(&target_group).to_owned();
            // ELB's DeleteTargetGroup answers an empty object.
            ctx.emit(&serde_json::json!({}), |_| view::rm_sentence(&name))
        }
        TargetGroupCommand::Health { target_group } => {
            let r = client
                .describe_target_health(pb::DescribeTargetHealthRequest { target_group })
                .await
                .map_err(rpc)?
                .into_inner();
            ctx.emit(&TargetHealthDescriptionsView::from(r), view::health_table)
        }
        TargetGroupCommand::Watch { target_groups } => {
            let mut stream = client
                .watch_targets(pb::WatchTargetsRequest { target_groups })
                .await
                .map_err(&rpc)?
                .into_inner();
            let mut seen: BTreeMap<TargetKey, TargetHealthDescriptionView> = BTreeMap::new();
            let mut first = true;
            while let Some(snap) = stream.message().await.map_err(&rpc)? {
                let (lines, now) = changes(&seen, snap, first, ctx.output);
                first = false;
                seen = now;
                ctx.write(&lines)?;
            }
            Err(CtlError::BadResponse {
                what: "the scheduler ended the watch".to_owned(),
            })
        }
    }
}

/// A target across snapshots: its group, task, container and port.
type TargetKey = (String, String, String, u32);

/// The lines for what changed between `seen` and `snap`, and the targets
/// now. In table mode the first snapshot starts with a header.
fn changes(
    seen: &BTreeMap<TargetKey, TargetHealthDescriptionView>,
    snap: pb::TargetsSnapshot,
    first: bool,
    output: OutputFormat,
) -> (String, BTreeMap<TargetKey, TargetHealthDescriptionView>) {
    let mut now = BTreeMap::new();
    for g in snap.groups {
        let group = g
            .target_group
            .map(|g| g.target_group_name)
            .unwrap_or_default();
        for t in g.targets {
            let t = TargetHealthDescriptionView::from(t);
            let key = (
                group.clone(),
                t.berth.task_arn.clone(),
                t.berth.container_name.clone(),
                t.berth.container_port,
            );
            now.insert(key, t);
        }
    }
    let mut out = String::new();
    if first && output == OutputFormat::Table {
        out.push_str("TIME                  GROUP  TARGET  TASK  CONTAINER:PORT  STATE  REASON\n");
    }
    for (key, t) in &now {
        let changed = seen
            .get(key)
            .is_none_or(|old| old.target_health != t.target_health || old.target != t.target);
        if changed {
            out.push_str(&watch_line(&key.0, t, &t.target_health.state, output));
        }
    }
    for (key, t) in seen {
        if !now.contains_key(key) {
            out.push_str(&watch_line(&key.0, t, "deregistered", output));
        }
    }
    (out, now)
}

/// One change: a line of text, or a line of JSON (ELB's
/// TargetHealthDescription with the group's name and the new state).
fn watch_line(
    group: &str,
    t: &TargetHealthDescriptionView,
    state: &str,
    output: OutputFormat,
) -> String {
    match output {
        OutputFormat::Json => {
            let mut t = t.clone();
            t.target_health.state = state.to_owned();
            let v = serde_json::json!({"TargetGroupName": group, "TargetHealthDescription": t});
            format!("{v}\n")
        }
        OutputFormat::Table => format!(
            "{}  {group}  {}  {}  {}  {state}  {}\n",
            table_time(Some(&prost_types::Timestamp::from(
                std::time::SystemTime::now()
            ))),
            t.target(),
            t.task_id(),
            t.container_port(),
            crate::output::or_dash(&t.target_health.reason),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(states: &[(&str, &str)]) -> pb::TargetsSnapshot {
        let mut health = crate::views::target_group::tests::health();
        health.target_health_descriptions.truncate(states.len());
        for (d, (task, state)) in health.target_health_descriptions.iter_mut().zip(states) {
            d.task_arn = format!("arn:berth:ecs:local:000000000000:task/default/{task}");
            if let Some(h) = d.target_health.as_mut() {
                h.state = (*state).to_owned();
            }
        }
        pb::TargetsSnapshot {
            groups: vec![pb::TargetGroupTargets {
                target_group: Some(crate::views::target_group::tests::group()),
                targets: health.target_health_descriptions,
            }],
        }
    }

    /// The lines without their time column.
    fn untimed(s: &str) -> Vec<String> {
        s.lines()
            .skip_while(|l| l.starts_with("TIME"))
            .map(|l| l.split("  ").skip(1).collect::<Vec<_>>().join("  "))
            .collect()
    }

    #[test]
    fn watch_prints_a_line_per_change() {
        let (lines, seen) = changes(
            &BTreeMap::new(),
            snapshot(&[("a", "initial")]),
            true,
            OutputFormat::Table,
        );
        assert!(lines.starts_with("TIME"), "{lines}");
        assert_eq!(
            untimed(&lines),
            ["web  10.0.0.7:32768  a  app:80  initial  -"]
        );
        // The same state again: nothing; a new state and a new target: two lines.
        let (lines, seen) = changes(
            &seen,
            snapshot(&[("a", "initial")]),
            false,
            OutputFormat::Table,
        );
        assert_eq!(lines, "");
        let (lines, seen) = changes(
            &seen,
            snapshot(&[("a", "healthy"), ("b", "initial")]),
            false,
            OutputFormat::Table,
        );
        assert_eq!(
            untimed(&lines),
            [
                "web  10.0.0.7:32768  a  app:80  healthy  -",
                "web  10.0.0.7:32769  b  app:80  initial  Target.ResponseCodeMismatch",
            ]
        );
        // A target that goes is deregistered.
        let (lines, _) = changes(
            &seen,
            snapshot(&[("a", "healthy")]),
            false,
            OutputFormat::Json,
        );
        let v: serde_json::Value = serde_json::from_str(lines.trim()).unwrap();
        assert_eq!(v["TargetGroupName"], "web");
        assert_eq!(
            v["TargetHealthDescription"]["TargetHealth"]["State"],
            "deregistered"
        );
    }

    #[test]
    fn check_ports_are_traffic_port_or_numbers() {
        assert_eq!(parse_check_port("traffic-port").unwrap(), "traffic-port");
        assert_eq!(parse_check_port("8081").unwrap(), "8081");
        assert!(parse_check_port("0").is_err());
        assert!(parse_check_port("http").is_err());
    }
}
