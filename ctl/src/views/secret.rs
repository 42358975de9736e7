//! Secrets as berthctl shows them: names, versions and times. There is no
//! field for a value, because the scheduler never sends one back.

use berth_proto::v1 as pb;
use serde::Serialize;

use super::{rfc3339, table_time};
use crate::output::Table;

/// One secret's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    pub name: String,
    pub version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(skip)]
    pub updated_table: String,
}

impl From<pb::SecretMetadata> for SecretView {
    fn from(s: pb::SecretMetadata) -> Self {
        Self {
            created_at: rfc3339(s.created_at.as_ref()),
            updated_at: rfc3339(s.updated_at.as_ref()),
            updated_table: table_time(s.updated_at.as_ref()),
            name: s.name,
            version: s.version,
        }
    }
}

/// `{"secrets": [...]}`, for `secret ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretsView {
    pub secrets: Vec<SecretView>,
}

impl From<pb::ListSecretsResponse> for SecretsView {
    fn from(r: pb::ListSecretsResponse) -> Self {
        Self {
            secrets: r.secrets.into_iter().map(Into::into).collect(),
        }
    }
}

/// `secret ls`: NAME, VERSION, UPDATED.
pub fn list_table(v: &SecretsView) -> String {
    let mut t = Table::new(&["NAME", "VERSION", "UPDATED"]);
    for s in &v.secrets {
        t.row([
            s.name.clone(),
            s.version.to_string(),
            s.updated_table.clone(),
        ]);
    }
    t.render()
}

pub fn put_sentence(v: &SecretView) -> String {
    format!("secret {} stored as version {}\n", v.name, v.version)
}

pub fn rm_sentence(v: &SecretView) -> String {
    format!("secret {} deleted (was version {})\n", v.name, v.version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::fixtures::{t0, t1};
    use expect_test::expect;

    fn list() -> SecretsView {
        pb::ListSecretsResponse {
            secrets: vec![
                pb::SecretMetadata {
                    name: "db-password".into(),
                    version: 3,
                    created_at: t0(),
                    updated_at: t1(),
                },
                pb::SecretMetadata {
                    name: "/prod/registry".into(),
                    version: 1,
                    created_at: t0(),
                    updated_at: t0(),
                },
            ],
        }
        .into()
    }

    #[test]
    fn table_and_json() {
        expect![[r#"
            NAME            VERSION  UPDATED
            db-password     3        2024-05-02T08:30:05Z
            /prod/registry  1        2024-05-01T12:00:00Z
        "#]]
        .assert_eq(&list_table(&list()));
        expect![[r#"
            {
              "secrets": [
                {
                  "name": "db-password",
                  "version": 3,
                  "createdAt": "2024-05-01T12:00:00.25Z",
                  "updatedAt": "2024-05-02T08:30:05Z"
                },
                {
                  "name": "/prod/registry",
                  "version": 1,
                  "createdAt": "2024-05-01T12:00:00.25Z",
                  "updatedAt": "2024-05-01T12:00:00.25Z"
                }
              ]
            }
        "#]]
        .assert_eq(&crate::output::json(&list()));
        expect![[r#"
            secret db-password stored as version 3
        "#]]
        .assert_eq(&put_sentence(&list().secrets[0]));
    }
}
