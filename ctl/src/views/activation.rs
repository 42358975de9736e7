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

/// `activation create`: the id, the code (shown this once) and the CA
/// fingerprint a host needs to register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedView {
    pub activation_id: String,
    pub activation_code: String,
    pub ca_fingerprint: String,
    pub activation: ActivationView,
}

impl From<pb::CreateActivationResponse> for CreatedView {
    fn from(r: pb::CreateActivationResponse) -> Self {
        let activation: ActivationView = r.activation.unwrap_or_default().into();
        Self {
            activation_id: activation.activation_id.clone(),
            activation_code: r.activation_code,
            ca_fingerprint: r.ca_fingerprint,
            activation,
        }
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
        "\nThe code is shown only this once. On the host, run:\n  berth-agent register \
         --scheduler https://SCHEDULER:7400 \\\n    --activation-id ",
    );
    out.push_str(&v.activation_id);
    out.push_str(" \\\n    --activation-code ");
    out.push_str(&v.activation_code);
    out.push_str(" \\\n    --ca-fingerprint ");
    out.push_str(&v.ca_fingerprint);
    out.push('\n');
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
    fn created_shows_the_code_once_with_the_register_command() {
        let v: CreatedView = pb::CreateActivationResponse {
            activation: Some(activation()),
            activation_code: "c0de".into(),
            ca_fingerprint: "sha256:ab".into(),
        }
        .into();
        let text = created_table(&v);
        assert!(text.contains("Activation code:     c0de"), "{text}");
        assert!(text.contains("--ca-fingerprint sha256:ab"), "{text}");
        let json = crate::output::json(&v);
        assert!(json.contains("\"activationCode\": \"c0de\""), "{json}");
        assert!(json.contains("\"caFingerprint\": \"sha256:ab\""), "{json}");
    }
}
