//! The environment the agent gives every container on top of its
//! definition's: where its task metadata endpoint is
//! (`ECS_CONTAINER_METADATA_URI_V4`, `ECS_CONTAINER_METADATA_URI`) and, so a
//! container learns its mapped ports without asking the endpoint
//! (amazon-ecs-agent#198), the host's address and host ports:
//!
//! - `BERTH_HOST_IP`: the host's address (configured, or the address of the
//!   interface of the host's default route);
//! - `BERTH_HOST_PORT_<containerPort>`: the host port of a tcp mapping, and
//!   `BERTH_HOST_PORT_<containerPort>_UDP` of a udp one;
//! - `BERTH_PORT_<NAME>`: the host port of a named mapping (`portMappings[].name`
//!   upper-cased, every character other than `A-Z0-9` turned into `_`). In
//!   awsvpc mode, which publishes no host ports, it is the container port
//!   (the port on the task's own address).
//!
//! The values are computed once, when the container is created, from the
//! ports the scheduler reserved (the agent maps exactly those).

use std::net::IpAddr;
use std::process::Command;

use berth_proto::ecs::Protocol;
use berth_proto::taskdef::{ContainerDefinition, NetworkMode};

use super::plan::TaskPlan;

pub const METADATA_URI_V4: &str = "ECS_CONTAINER_METADATA_URI_V4";
pub const METADATA_URI: &str = "ECS_CONTAINER_METADATA_URI";
pub const HOST_IP: &str = "BERTH_HOST_IP";
pub const HOST_PORT_PREFIX: &str = "BERTH_HOST_PORT_";
pub const PORT_PREFIX: &str = "BERTH_PORT_";

/// `BERTH_PORT_<NAME>`'s name part: upper case, non-alphanumerics to `_`.
pub fn port_name_var(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{PORT_PREFIX}{upper}")
}

/// The variables for container `c` of `plan`. `metadata_base` is the
/// endpoint's `http://addr:port` (none when the endpoint is off or the
/// container has no metadata id).
pub fn agent_env(
    plan: &TaskPlan,
    c: &ContainerDefinition,
    metadata_id: &str,
    metadata_base: Option<&str>,
    host_ip: Option<IpAddr>,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(base) = metadata_base.filter(|_| !metadata_id.is_empty()) {
        env.push((
            METADATA_URI_V4.to_owned(),
            format!("{base}/v4/{metadata_id}"),
        ));
        env.push((METADATA_URI.to_owned(), format!("{base}/v3/{metadata_id}")));
    }
    if let Some(ip) = host_ip {
        env.push((HOST_IP.to_owned(), ip.to_string()));
    }
    let mine: Vec<_> = plan.ports_of(&c.name).collect();
    for p in &mine {
        let suffix = if p.protocol == Protocol::Udp {
            "_UDP"
        } else {
            ""
        };
        env.push((
            format!("{HOST_PORT_PREFIX}{}{suffix}", p.container_port),
            p.host_port.to_string(),
        ));
    }
    for m in &c.port_mappings {
        let (Some(name), Some(container_port)) = (
            &m.name,
            m.container_port.and_then(|p| u16::try_from(p).ok()),
        ) else {
            continue;
        };
        let protocol = m.effective_protocol();
        let host_port = mine
            .iter()
            .find(|p| p.container_port == container_port && p.protocol == protocol)
            .map(|p| p.host_port);
        let port = match (host_port, plan.network_mode) {
            (Some(h), _) => h,
            (None, NetworkMode::Awsvpc) => container_port,
            (None, _) => continue,
        };
        env.push((port_name_var(name), port.to_string()));
    }
    env
}

/// The host's address for `BERTH_HOST_IP`: the first IPv4 address of the
/// interface that carries the default route (`ip -j -4 route show default`,
/// then `ip -j -4 addr show dev`). `None` when the host has no default route.
pub fn detect_host_ip() -> Option<IpAddr> {
    let run = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let routes = run(&["-j", "-4", "route", "show", "default"])?;
    let (dev, prefsrc) = default_route(&routes)?;
    if let Some(ip) = prefsrc {
        return Some(ip);
    }
    first_address(&run(&["-j", "-4", "addr", "show", "dev", &dev])?)
}

/// The device (and preferred source) of the first default route in
/// `ip -j -4 route show default`'s output.
fn default_route(json: &str) -> Option<(String, Option<IpAddr>)> {
    let routes: Vec<serde_json::Value> = serde_json::from_str(json).ok()?;
    let r = routes.iter().find(|r| r["dev"].is_string())?;
    let prefsrc = r["prefsrc"].as_str().and_then(|s| s.parse().ok());
    Some((r["dev"].as_str()?.to_owned(), prefsrc))
}

/// The first `inet` address in `ip -j -4 addr show`'s output.
fn first_address(json: &str) -> Option<IpAddr> {
    let links: Vec<serde_json::Value> = serde_json::from_str(json).ok()?;
    links
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["family"] == "inet")
        .find_map(|a| a["local"].as_str().and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{DesiredTask, PortAssignment};
    use std::time::Duration;

    fn plan(json: &str, ports: Vec<PortAssignment>) -> TaskPlan {
        let d = DesiredTask {
            task_arn: "arn:berth:ecs:local:0:task/default/0123456789abcdef0123456789abcdef".into(),
            task_definition_json: json.into(),
            cluster: "default".into(),
            family: "web".into(),
            revision: 1,
            ports,
            ..Default::default()
        };
        TaskPlan::from_desired(&d, Duration::from_secs(30)).unwrap()
    }

    fn port(container: &str, cp: u16, proto: &str, hp: u16) -> PortAssignment {
        PortAssignment {
            container_name: container.into(),
            container_port: cp,
            protocol: proto.parse().unwrap(),
            host_port: hp,
        }
    }

    #[test]
    fn port_names_are_upper_snake() {
        assert_eq!(port_name_var("http"), "BERTH_PORT_HTTP");
        assert_eq!(port_name_var("web-api_2"), "BERTH_PORT_WEB_API_2");
    }

    #[test]
    fn bridge_container_learns_its_ports_and_endpoint() {
        let p = plan(
            r#"{"family":"web","containerDefinitions":[
              {"name":"web","image":"busybox","memory":32,"portMappings":[
                {"containerPort":80,"name":"http"},
                {"containerPort":53,"protocol":"udp","name":"dns"},
                {"containerPort":9000}]},
              {"name":"side","image":"busybox","memory":32,"essential":false,
               "portMappings":[{"containerPort":81}]}]}"#,
            vec![
                port("web", 80, "tcp", 20001),
                port("web", 53, "udp", 20002),
                port("web", 9000, "tcp", 20003),
                port("side", 81, "tcp", 20004),
            ],
        );
        let def = p.definition.clone().unwrap();
        let env = agent_env(
            &p,
            &def.container_definitions[0],
            "abc",
            Some("http://10.1.2.1:51679"),
            Some("192.0.2.7".parse().unwrap()),
        );
        let text: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        expect_test::expect![[r#"
            [
                "ECS_CONTAINER_METADATA_URI_V4=http://10.1.2.1:51679/v4/abc",
                "ECS_CONTAINER_METADATA_URI=http://10.1.2.1:51679/v3/abc",
                "BERTH_HOST_IP=192.0.2.7",
                "BERTH_HOST_PORT_80=20001",
                "BERTH_HOST_PORT_53_UDP=20002",
                "BERTH_HOST_PORT_9000=20003",
                "BERTH_PORT_HTTP=20001",
                "BERTH_PORT_DNS=20002",
            ]
        "#]]
        .assert_debug_eq(&text);
    }

    #[test]
    fn awsvpc_names_give_the_container_port_and_no_endpoint_without_an_id() {
        let p = plan(
            r#"{"family":"web","networkMode":"awsvpc","containerDefinitions":[
              {"name":"web","image":"busybox","memory":32,"portMappings":[
                {"containerPort":8080,"name":"admin-ui"}]}]}"#,
            vec![],
        );
        let def = p.definition.clone().unwrap();
        let env = agent_env(
            &p,
            &def.container_definitions[0],
            "",
            Some("http://10.1.2.1:51679"),
            None,
        );
        assert_eq!(env, [("BERTH_PORT_ADMIN_UI".to_owned(), "8080".to_owned())]);
    }

    #[test]
    fn host_ip_from_ip_json() {
        assert_eq!(
            default_route(r#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]}]"#),
            Some(("eth0".to_owned(), None))
        );
        assert_eq!(
            default_route(r#"[{"dst":"default","dev":"wg0","prefsrc":"10.9.0.2","flags":[]}]"#),
            Some(("wg0".to_owned(), Some("10.9.0.2".parse().unwrap())))
        );
        assert_eq!(default_route("[]"), None);
        assert_eq!(
            first_address(
                r#"[{"ifname":"eth0","addr_info":[{"family":"inet","local":"192.0.2.7","prefixlen":24}]}]"#
            ),
            Some("192.0.2.7".parse().unwrap())
        );
    }
}
