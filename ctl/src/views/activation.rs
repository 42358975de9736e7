//! Activations, shaped like `aws ssm create-activation` /
//! `describe-activations` (ActivationId, ActivationCode shown once).

use berth_proto::v1 as pb;
use serde::Serialize;

use super::{rfc3339, table_time};
use crate::output::Table;

/// One activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationView {
    pub activation_id: String,
    pub cluster_arn: String,
    pub status: String,
    pub registration_limit: u32,
    pub registrations_count: u32,
    pub created_at: Option<String>,
    pub expiration_date: Option<String>,
    pub attributes: Vec<AttributeView>,
    #[serde(skip)]
    pub expires_table: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeView {
    pub name: String,
    pub value: String,
}

impl From<pb::Activation> for ActivationView {
    fn from(a: pb::Activation) -> Self {
        Self {
            created_at: rfc3339(a.created_at.as_ref()),
            expiration_date: rfc3339(a.expires_at.as_ref()),
            expires_table: table_time(a.expires_at.as_ref()),
            activation_id: a.activation_id,
            cluster_arn: a.cluster_arn,
            status: a.status,
            registration_limit: a.registration_limit,
            registrations_count: a.registrations_count,
            attributes: a
                .attributes
                .into_iter()
                .map(|x| AttributeView {
                    name: x.name,
                    value: x.value,
                })
                .collect(),
        }
    }
}

/// `activation create`: the id, the code (shown this once), the CA
/// fingerprint a host needs to register, and the `berth-agent join`
/// command that does it all on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedView {
    pub activation_id: String,
    pub activation_code: String,
    pub ca_fingerprint: String,
    pub activation: ActivationView,
    pub join_command: String,
    /// The join command cut into lines, for the table.
    #[serde(skip)]
    pub join_lines: Vec<String>,
}

impl CreatedView {
    /// The answer, with the join command for the scheduler at `scheduler`
    /// (the URL this berthctl used).
    pub fn new(r: pb::CreateActivationResponse, scheduler: &str) -> Self {
        let activation: ActivationView = r.activation.unwrap_or_default().into();
        let join_lines = join_command(
            scheduler,
            &activation.activation_id,
            &r.activation_code,
            &r.ca_fingerprint,
        );
        Self {
            join_command: join_lines.join(" "),
            join_lines,
            activation_id: activation.activation_id.clone(),
            activation_code: r.activation_code,
            ca_fingerprint: r.ca_fingerprint,
            activation,
        }
    }
}

/// `berth-agent join --scheduler URL --activation-id ID --activation-code
/// CODE --ca-fingerprint SHA256` in three parts (joined by a space, it is
/// one command line), each value quoted for a POSIX shell if it needs to be.
pub fn join_command(scheduler: &str, id: &str, code: &str, fingerprint: &str) -> Vec<String> {
    vec![
        format!("berth-agent join --scheduler {}", shell_word(scheduler)),
        format!(
            "--activation-id {} --activation-code {}",
            shell_word(id),
            shell_word(code)
        ),
        format!("--ca-fingerprint {}", shell_word(fingerprint)),
    ]
}

/// `s` as one POSIX shell word: as it is when it holds only safe
/// characters, else in single quotes.
fn shell_word(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,[]".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn created_table(v: &CreatedView) -> String {
    let mut t = Table::plain();
    t.row(["Activation id:", v.activation_id.as_str()]);
    t.row(["Activation code:", v.activation_code.as_str()]);
    t.row(["CA fingerprint:", v.ca_fingerprint.as_str()]);
    t.row(["Cluster:", v.activation.cluster_arn.as_str()]);
    t.row(["Expires:", v.activation.expires_table.as_str()]);
    t.row([
        "Registration limit:".to_owned(),
        v.activation.registration_limit.to_string(),
    ]);
    let mut out = t.render();
    out.push_str(
        "\nThe code is shown only this once. On the host (as root, with containerd and the \
         agent installed), run:\n  ",
    );
    out.push_str(&v.join_lines.join(" \\\n    "));
    out.push_str(
        "\n\nIt checks containerd, registers the host, writes /etc/berth/agent.toml and starts \
         berth-agent.service.\nIf hosts reach the scheduler at another address than this \
         berthctl does, change --scheduler.\n",
    );
    out
}

/// `{"activations": [...]}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivationsView {
    pub activations: Vec<ActivationView>,
}

pub fn list_table(v: &ActivationsView) -> String {
    let mut t = Table::new(&[
        "ACTIVATION ID",
        "CLUSTER",
        "STATUS",
        "REGISTERED",
        "EXPIRES",
    ]);
    for a in &v.activations {
        t.row([
            a.activation_id.clone(),
            berth_proto::arn::cluster_name(&a.cluster_arn).to_owned(),
            a.status.clone(),
            format!("{}/{}", a.registrations_count, a.registration_limit),
            a.expires_table.clone(),
        ]);
    }
    t.render()
}

/// `{"activation": {...}}`, for `activation revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivationResultView {
    pub activation: ActivationView,
}

pub fn result_table(v: &ActivationResultView) -> String {
    list_table(&ActivationsView {
        activations: vec![v.activation.clone()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn activation() -> pb::Activation {
        pb::Activation {
            activation_id: "5c1e".into(),
            cluster_arn: "arn:berth:ecs:local:000000000000:cluster/prod".into(),
            created_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1_700_086_400,
                nanos: 0,
            }),
            registration_limit: 3,
            registrations_count: 1,
            attributes: vec![pb::Attribute {
                name: "rack".into(),
                value: "r1".into(),
            }],
            revoked: false,
            status: "ACTIVE".into(),
        }
    }

    #[test]
    fn list_table_shows_usage_and_expiry() {
        let v = ActivationsView {
            activations: vec![activation().into()],
        };
        expect![[r#"
            ACTIVATION ID  CLUSTER  STATUS  REGISTERED  EXPIRES
            5c1e           prod     ACTIVE  1/3         2023-11-15T22:13:20Z
        "#]]
        .assert_eq(&list_table(&v));
    }

    #[test]
    fn created_shows_the_code_once_with_the_join_command() {
        let v = CreatedView::new(
            pb::CreateActivationResponse {
                activation: Some(activation()),
                activation_code: "c0de".into(),
                ca_fingerprint: "sha256:ab".into(),
            },
            "https://10.0.0.5:7400",
        );
        expect![[r#"
            Activation id:       5c1e
            Activation code:     c0de
            CA fingerprint:      sha256:ab
            Cluster:             arn:berth:ecs:local:000000000000:cluster/prod
            Expires:             2023-11-15T22:13:20Z
            Registration limit:  3

            The code is shown only this once. On the host (as root, with containerd and the agent installed), run:
              berth-agent join --scheduler https://10.0.0.5:7400 \
                --activation-id 5c1e --activation-code c0de \
                --ca-fingerprint sha256:ab

            It checks containerd, registers the host, writes /etc/berth/agent.toml and starts berth-agent.service.
            If hosts reach the scheduler at another address than this berthctl does, change --scheduler.
        "#]]
        .assert_eq(&created_table(&v));
        let json = crate::output::json(&v);
        assert!(json.contains("\"activationCode\": \"c0de\""), "{json}");
        assert!(json.contains("\"caFingerprint\": \"sha256:ab\""), "{json}");
        assert!(
            json.contains(
                "\"joinCommand\": \"berth-agent join --scheduler https://10.0.0.5:7400 \
                 --activation-id 5c1e --activation-code c0de --ca-fingerprint sha256:ab\""
            ),
            "{json}"
        );
    }

    #[test]
    fn join_command_quotes_what_the_shell_would_split() {
        assert_eq!(
            join_command("https://h:1/a b", "i'd", "c", "sha256:ab").join(" "),
            "berth-agent join --scheduler 'https://h:1/a b' --activation-id 'i'\\''d' \
             --activation-code c --ca-fingerprint sha256:ab"
        );
    }
}
