//! The command line's grammar (clap derive). Each group's arguments live
//! with its code in `commands/`; this file puts them together.

use clap::{Args, Parser, Subcommand};

use crate::commands::{
    activation::ActivationCommand, audit::AuditCommand, cluster::ClusterCommand,
    completion::CompletionArgs, events::EventsArgs, instance::InstanceCommand, login::LoginArgs,
    schedule::ScheduleCommand, secret::SecretCommand, service::ServiceCommand,
    snapshot::SnapshotCommand, tag::TagCommand, targetgroup::TargetGroupCommand, task::TaskCommand,
    taskdef::TaskdefCommand, token::TokenCommand, webhook::WebhookCommand,
};
use crate::output::OutputFormat;

/// berthctl: the command line for Berth, a self-hosted ECS.
#[derive(Debug, Parser)]
#[command(name = "berthctl", version = berth_proto::VERSION, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after the subcommand.
#[derive(Clone, Default, PartialEq, Eq, Args)]
pub struct GlobalArgs {
    /// Scheduler URL [env: BERTH_ENDPOINT, config `endpoint`; default: https://127.0.0.1:7400]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The cluster CA to trust, a PEM file [env: BERTH_CA_CERT, config `ca_cert`]
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<String>,
    /// Operator token, berth_<id>_<secret> [env: BERTH_TOKEN, config `token`]
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Output format
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

impl std::fmt::Debug for GlobalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: its presence only.
        let mut d = f.debug_struct("GlobalArgs");
        d.field("endpoint", &self.endpoint);
        d.field("ca_cert", &self.ca_cert);
        if self.token.is_some() {
            d.field("token", &"<redacted>");
        }
        d.field("output", &self.output).finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list and revoke activations (codes that let hosts join a cluster)
    #[command(subcommand)]
    Activation(ActivationCommand),
    /// Create, list, describe and delete clusters
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Register, list, describe and deregister task definitions
    #[command(subcommand, name = "taskdef")]
    Taskdef(TaskdefCommand),
    /// List and describe container instances (the hosts running agents)
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Start, list, describe and stop tasks; read their logs
    #[command(subcommand)]
    Task(TaskCommand),
    /// Create, update, scale, delete, list and describe services; read their events
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Create, list, describe, modify and delete target groups; their targets' health
    #[command(subcommand, name = "targetgroup")]
    Targetgroup(TargetGroupCommand),
    /// Scheduled tasks: run a task definition at(…), every rate(…) or on a cron(…) in a time zone
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Store, list and delete secrets (values are never shown)
    #[command(subcommand)]
    Secret(SecretCommand),
    /// List, add and remove the tags of clusters, services, tasks, task definitions and instances
    #[command(subcommand)]
    Tag(TagCommand),
    /// Running tasks sorted by CPU or memory, redrawn in place (the agents' readings)
    Top(crate::commands::stats::TopArgs),
    /// Print berthctl's version and the scheduler's
    Version,
    /// Pin the scheduler's CA, check a token and save them in the config file (0600)
    Login(LoginArgs),
    /// Create, list and revoke operator tokens (admin)
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read the audit log of mutating calls
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print the event log: task, instance, deployment and service events (-f follows)
    Events(EventsArgs),
    /// Send events to URLs by signed POST: subscriptions, dead letters, redrive
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Save a backup of the control plane (admin; restore with berth-scheduler snapshot restore)
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Print the shell completion script for bash, zsh or fish
    #[command(
        after_help = "The Debian package installs these scripts. Otherwise, e.g.:\n  \
        berthctl completion bash > ~/.local/share/bash-completion/completions/berthctl"
    )]
    Completion(CompletionArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use expect_test::{expect, Expect};

    fn check(args: &str, expected: Expect) {
        let argv = std::iter::once("berthctl").chain(args.split_whitespace());
        let actual = match Cli::try_parse_from(argv) {
            Ok(cli) => format!("{:?} {:?}", cli.global, cli.command),
            Err(e) => format!("error (exit {}): {:?}", e.exit_code(), e.kind()),
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options() {
        check(
            "cluster ls",
            expect![[r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Cluster(Ls)"#]],
        );
        check(
            "--endpoint http://s:7400 -o json cluster ls",
            expect![[
                r#"GlobalArgs { endpoint: Some("http://s:7400"), ca_cert: None, output: Json } Cluster(Ls)"#
            ]],
        );
        // Global options may follow the subcommand too.
        check(
            "cluster ls --output json --endpoint http://s:7400",
            expect![[
                r#"GlobalArgs { endpoint: Some("http://s:7400"), ca_cert: None, output: Json } Cluster(Ls)"#
            ]],
        );
        check(
            "-o yaml cluster ls",
            expect!["error (exit 2): InvalidValue"],
        );
        check(
            "",
            expect!["error (exit 2): DisplayHelpOnMissingArgumentOrSubcommand"],
        );
        check("frobnicate", expect!["error (exit 2): InvalidSubcommand"]);
        check("--version", expect!["error (exit 0): DisplayVersion"]);
    }

    #[test]
    fn cluster_commands() {
        check(
            "cluster create prod",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Cluster(Create { name: "prod" })"#
            ]],
        );
        check(
            "cluster create",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "cluster describe",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Cluster(Describe { names: [], cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "cluster describe a b",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Cluster(Describe { names: ["a", "b"], cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "cluster describe --cluster prod",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Cluster(Describe { names: [], cluster: ClusterArg { cluster: Some("prod") } })"#
            ]],
        );
        check(
            "cluster describe a --cluster prod",
            expect!["error (exit 2): ArgumentConflict"],
        );
        check(
            "cluster delete prod",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Cluster(Delete { name: "prod" })"#
            ]],
        );
    }

    #[test]
    fn taskdef_commands() {
        check(
            "taskdef register -f web.json",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Taskdef(Register { file: "web.json" })"#
            ]],
        );
        check(
            "taskdef register --file -",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Taskdef(Register { file: "-" })"#
            ]],
        );
        check(
            "taskdef register",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "taskdef ls",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Taskdef(Ls { family: None, status: None })"#
            ]],
        );
        check(
            "taskdef ls --family web --status inactive",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Taskdef(Ls { family: Some("web"), status: Some(Inactive) })"#
            ]],
        );
        check(
            "taskdef ls --status ALL",
            expect!["error (exit 2): InvalidValue"],
        );
        check(
            "taskdef families --prefix we --status ALL",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Taskdef(Families { prefix: Some("we"), status: Some(All) })"#
            ]],
        );
        check(
            "taskdef describe web",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Taskdef(Describe { task_definition: TaskDefRef { family: "web", revision: None } })"#
            ]],
        );
        check(
            "taskdef describe arn:berth:ecs:local:0:task-definition/web:7",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Taskdef(Describe { task_definition: TaskDefRef { family: "web", revision: Some(7) } })"#
            ]],
        );
        check(
            "taskdef describe web:x",
            expect!["error (exit 2): ValueValidation"],
        );
        check(
            "taskdef deregister web:3",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Taskdef(Deregister { task_definition: TaskDefRef { family: "web", revision: Some(3) } })"#
            ]],
        );
        check(
            "taskdef deregister web",
            expect!["error (exit 2): ValueValidation"],
        );
    }

    #[test]
    fn tag_attribute_and_delete_commands() {
        check(
            "tag add arn:berth:ecs:local:0:cluster/prod team=core env=",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Tag(Add { arn: "arn:berth:ecs:local:0:cluster/prod", tags: [Tag { key: "team", value: "core" }, Tag { key: "env", value: "" }] })"#
            ]],
        );
        check(
            "tag add arn:berth:ecs:local:0:cluster/prod team",
            expect!["error (exit 2): ValueValidation"],
        );
        check(
            "tag rm arn:berth:ecs:local:0:cluster/prod team env",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Tag(Rm { arn: "arn:berth:ecs:local:0:cluster/prod", keys: ["team", "env"] })"#
            ]],
        );
        check(
            "tag rm arn:berth:ecs:local:0:cluster/prod",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "tag ls arn:berth:ecs:local:0:cluster/prod",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Tag(Ls { arn: "arn:berth:ecs:local:0:cluster/prod" })"#
            ]],
        );
        check(
            "instance attribute put 4f1c tier=gold gpu --cluster prod",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Instance(Attribute(Put { id: "4f1c", attributes: [("tier", "gold"), ("gpu", "")], cluster: ClusterArg { cluster: Some("prod") } }))"#
            ]],
        );
        check(
            "instance attribute rm 4f1c tier",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Instance(Attribute(Rm { id: "4f1c", names: ["tier"], cluster: ClusterArg { cluster: None } }))"#
            ]],
        );
        check(
            "instance attribute ls --name tier --value gold",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Instance(Attribute(Ls { name: Some("tier"), value: Some("gold"), cluster: ClusterArg { cluster: None } }))"#
            ]],
        );
        check(
            "instance attribute ls --value gold",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "taskdef delete web:1 web:2",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Taskdef(Delete { task_definitions: [TaskDefRef { family: "web", revision: Some(1) }, TaskDefRef { family: "web", revision: Some(2) }] })"#
            ]],
        );
        check(
            "taskdef delete web",
            expect!["error (exit 2): ValueValidation"],
        );
        check(
            "taskdef delete",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
    }

    #[test]
    fn instance_and_version_commands() {
        check(
            "instance ls",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Instance(Ls { cluster: ClusterArg { cluster: None }, status: None })"#
            ]],
        );
        check(
            "instance ls --cluster prod --status draining",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Instance(Ls { cluster: ClusterArg { cluster: Some("prod") }, status: Some(Draining) })"#
            ]],
        );
        check(
            "instance describe 4f1c9a7e --cluster prod -o json",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Json } Instance(Describe { ids: ["4f1c9a7e"], cluster: ClusterArg { cluster: Some("prod") } })"#
            ]],
        );
        check(
            "instance describe",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "instance drain 4f1c9a7e 9b2d --cluster prod",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Instance(Drain { ids: ["4f1c9a7e", "9b2d"], cluster: ClusterArg { cluster: Some("prod") } })"#
            ]],
        );
        check(
            "instance activate 4f1c9a7e",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Instance(Activate { ids: ["4f1c9a7e"], cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "instance drain",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "version",
            expect![[r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Version"#]],
        );
    }

    #[test]
    fn auth_commands() {
        check(
            "login --endpoint http://s:7400 --token berth_ab_cd --ca-fingerprint sha256:00",
            expect!["error (exit 2): ValueValidation"],
        );
        check(
            &format!(
                "login --token berth_ab_cd --ca-fingerprint sha256:{}",
                "0F".repeat(32)
            ),
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, token: "<redacted>", output: Table } Login(LoginArgs { ca_fingerprint: Some("sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f") })"#
            ]],
        );
        check(
            "token create ci --role read-only --expires 30d",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Token(Create { name: "ci", role: ReadOnly, expires: Some(2592000s) })"#
            ]],
        );
        check(
            "token create ci",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "token create ci --role root",
            expect!["error (exit 2): InvalidValue"],
        );
        check(
            "token ls",
            expect!["GlobalArgs { endpoint: None, ca_cert: None, output: Table } Token(Ls)"],
        );
        check(
            "token revoke 0a1b2c",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Token(Revoke { id: "0a1b2c" })"#
            ]],
        );
        check(
            "audit ls --since 1h --limit 5 --method CreateCluster --who ci",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Audit(Ls { since: Some(3600s), limit: Some(5), all: false, method: Some("CreateCluster"), who: Some("ci") })"#
            ]],
        );
        check("audit ls --all", expect!["GlobalArgs { endpoint: None, ca_cert: None, output: Table } Audit(Ls { since: None, limit: None, all: true, method: None, who: None })"]);
        check(
            "audit ls --all --limit 5",
            expect!["error (exit 2): ArgumentConflict"],
        );
        check(
            "audit ls --limit 0",
            expect!["error (exit 2): ValueValidation"],
        );
    }

    #[test]
    fn events_command() {
        let argv = [
            "berthctl",
            "events",
            "-f",
            "--since",
            "10m",
            "--type",
            "ECS Task State Change",
            "--cluster",
            "prod",
        ];
        let cli = Cli::try_parse_from(argv).unwrap();
        expect![[
            r#"Events(EventsArgs { follow: true, since: Some(600s), detail_type: Some("ECS Task State Change"), cluster: Some("prod") })"#
        ]]
        .assert_eq(&format!("{:?}", cli.command));
        check(
            "events",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Events(EventsArgs { follow: false, since: None, detail_type: None, cluster: None })"#
            ]],
        );
    }

    #[test]
    fn secret_commands() {
        check(
            "secret put db-password",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Secret(Put { name: "db-password", from_file: None })"#
            ]],
        );
        check(
            "secret put db --from-file pw.txt",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Secret(Put { name: "db", from_file: Some("pw.txt") })"#
            ]],
        );
        check(
            "secret put",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "secret ls -o json",
            expect![[r#"GlobalArgs { endpoint: None, ca_cert: None, output: Json } Secret(Ls)"#]],
        );
        check(
            "secret rm db",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Secret(Rm { name: "db" })"#
            ]],
        );
    }

    #[test]
    fn task_commands() {
        check(
            "task start --taskdef web:3 --instance 4f1c --count 2",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Task(Start { task_definition: TaskDefRef { family: "web", revision: Some(3) }, instances: ["4f1c"], count: 2, group: None, started_by: None, enable_execute_command: false, cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "task start --taskdef web --instance a --instance b --group g --started-by ci",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Task(Start { task_definition: TaskDefRef { family: "web", revision: None }, instances: ["a", "b"], count: 1, group: Some("g"), started_by: Some("ci"), enable_execute_command: false, cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "task exec 0a1b -c app -i -t -- sh -c id",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Task(Exec(ExecArgs { id: "0a1b", container: Some("app"), interactive: true, tty: true, cluster: ClusterArg { cluster: None }, command: ["sh", "-c", "id"] }))"#
            ]],
        );
        check(
            "task run --taskdef web --enable-execute-command",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Task(Run { task_definition: TaskDefRef { family: "web", revision: None }, count: 1, group: None, started_by: None, strategies: [], constraints: [], overrides: None, client_token: None, wait: false, timeout: 600s, enable_execute_command: true, cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "task start --taskdef web --instance a --count 11",
            expect!["error (exit 2): ValueValidation"],
        );
        check(
            "task start --taskdef web",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "task ls --instance a --family web --desired-status stopped",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Task(Ls { instance: Some("a"), family: Some("web"), desired_status: Some(Stopped), cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "task describe 0a1b -o json",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Json } Task(Describe { ids: ["0a1b"], cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "task stop 0a1b --reason done",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Task(Stop { id: "0a1b", reason: Some("done"), cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "task logs 0a1b -c web -f --tail 20 --since 10m",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Task(Logs { id: "0a1b", container: Some("web"), follow: true, tail: Some(20), since: Some(600s), cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "task logs 0a1b --since yesterday",
            expect!["error (exit 2): ValueValidation"],
        );
        check(
            "task stats 0a1b -f -o json",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Json } Task(Stats(StatsArgs { id: "0a1b", follow: true, cluster: ClusterArg { cluster: None } }))"#
            ]],
        );
        check(
            "top --service web --sort memory -n 5 --once",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Top(TopArgs { service: Some("web"), sort: Memory, limit: 5, once: true, interval: 2s, cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check("top --sort disk", expect!["error (exit 2): InvalidValue"]);
    }

    #[test]
    fn service_commands() {
        check(
            "service deployments web --status SUCCESSFUL --status STOPPED",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Service(Deployments { name: "web", statuses: ["SUCCESSFUL", "STOPPED"], cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "service describe-deployments web abc def --cluster prod",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Service(DescribeDeployments { name: "web", ids: ["abc", "def"], cluster: ClusterArg { cluster: Some("prod") } })"#
            ]],
        );
        check(
            "service describe-deployments web",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Service(DescribeDeployments { name: "web", ids: [], cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "service create web --taskdef web:2 --desired-count 4 --min-healthy-percent 50 --max-percent 100 --circuit-breaker --rollback --wait",
            expect![[r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Service(Create { name: "web", task_definition: TaskDefRef { family: "web", revision: Some(2) }, desired_count: Some(4), daemon: false, deployment: DeploymentArgs { min_healthy: Some(50), max_percent: Some(100), circuit_breaker: true, rollback: true }, strategies: [], constraints: [], grace: 0, tags: [], load_balancers: [], dns: DnsArgs { dns_namespace: None, dns_name: None, dns_container: None }, enable_execute_command: false, wait: WaitArgs { wait: true, timeout: 600s }, cluster: ClusterArg { cluster: None } })"#]],
        );
        check(
            "service create agentd --taskdef agentd --daemon",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Service(Create { name: "agentd", task_definition: TaskDefRef { family: "agentd", revision: None }, desired_count: None, daemon: true, deployment: DeploymentArgs { min_healthy: None, max_percent: None, circuit_breaker: false, rollback: false }, strategies: [], constraints: [], grace: 0, tags: [], load_balancers: [], dns: DnsArgs { dns_namespace: None, dns_name: None, dns_container: None }, enable_execute_command: false, wait: WaitArgs { wait: false, timeout: 600s }, cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "service create agentd --taskdef agentd --daemon --desired-count 2",
            expect!["error (exit 2): ArgumentConflict"],
        );
        check(
            "service create web --taskdef web",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "service create web --taskdef web --desired-count 1 --rollback",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "service scale web 6 --wait --timeout 2m",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Service(Scale { name: "web", desired_count: 6, wait: WaitArgs { wait: true, timeout: 120s }, cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "service delete web --force",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Service(Delete { name: "web", force: true, cluster: ClusterArg { cluster: None } })"#
            ]],
        );
        check(
            "service events web -f",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Service(Events { name: "web", follow: true, cluster: ClusterArg { cluster: None } })"#
            ]],
        );
    }

    #[test]
    fn targetgroup_and_traffic_commands() {
        check(
            "targetgroup create web --port 80 --protocol http --health-check-port traffic-port --health-check-interval 10 --matcher 200-299 --slow-start 30",
            expect![[r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Targetgroup(Create { name: "web", protocol: Some(Http), port: 80, health_check: HealthCheckArgs { check_path: None, check_port: Some("traffic-port"), check_protocol: None, check_interval: Some(10), check_timeout: None, healthy_threshold: None, unhealthy_threshold: None, matcher: Some("200-299") }, attributes: AttributeArgs { deregistration_delay: None, slow_start: Some(30) } })"#]],
        );
        check(
            "targetgroup create web",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "targetgroup create web --port 80 --protocol UDP",
            expect!["error (exit 2): InvalidValue"],
        );
        check(
            "targetgroup create web --port 80 --health-check-port 0",
            expect!["error (exit 2): ValueValidation"],
        );
        check(
            "targetgroup describe",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "service create web --taskdef web --desired-count 1 --load-balancer arn:berth:elasticloadbalancing:local:0:targetgroup/web/0a:app:80 --dns-namespace prod.internal --dns-name www",
            expect![[r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Service(Create { name: "web", task_definition: TaskDefRef { family: "web", revision: None }, desired_count: Some(1), daemon: false, deployment: DeploymentArgs { min_healthy: None, max_percent: None, circuit_breaker: false, rollback: false }, strategies: [], constraints: [], grace: 0, tags: [], load_balancers: [LoadBalancer { target_group_arn: "arn:berth:elasticloadbalancing:local:0:targetgroup/web/0a", container_name: "app", container_port: 80 }], dns: DnsArgs { dns_namespace: Some("prod.internal"), dns_name: Some("www"), dns_container: None }, enable_execute_command: false, wait: WaitArgs { wait: false, timeout: 600s }, cluster: ClusterArg { cluster: None } })"#]],
        );
        check(
            "service create web --taskdef web --desired-count 1 --load-balancer web:app",
            expect!["error (exit 2): ValueValidation"],
        );
        check(
            "service create web --taskdef web --desired-count 1 --load-balancer loadBalancerName=classic,containerName=app,containerPort=80",
            expect!["error (exit 2): ValueValidation"],
        );
        check(
            "service create web --taskdef web --desired-count 1 --dns-name www",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
        check(
            "service update web --load-balancer web:app:80 --no-load-balancers",
            expect!["error (exit 2): ArgumentConflict"],
        );
    }

    #[test]
    fn snapshot_commands() {
        check(
            "snapshot save /backups/berth.snap",
            expect![[
                r#"GlobalArgs { endpoint: None, ca_cert: None, output: Table } Snapshot(Save { file: "/backups/berth.snap" })"#
            ]],
        );
        check(
            "snapshot save",
            expect!["error (exit 2): MissingRequiredArgument"],
        );
    }
}
