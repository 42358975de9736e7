//! `berthctl version`: the client's version and the scheduler's.

use berth_proto::v1 as pb;
use serde::Serialize;

use crate::output::Table;

/// `{"client": {...}, "server": {...} | null}`; `server` is null when the
/// scheduler could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionView {
    pub client: ClientVersion,
    pub server: Option<ServerVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientVersion {
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerVersion {
    pub version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub git_commit: String,
}

impl VersionView {
    pub fn new(server: Option<pb::VersionResponse>) -> Self {
        Self {
            client: ClientVersion {
                version: berth_proto::VERSION.to_owned(),
            },
            server: server.map(|s| ServerVersion {
                version: s.version,
                git_commit: s.git_commit,
            }),
        }
    }
}

/// `Client:` and, when known, `Server:` lines.
pub fn version_table(v: &VersionView) -> String {
    let mut t = Table::plain();
    t.row([
        "Client:".to_owned(),
        format!("berthctl {}", v.client.version),
    ]);
    if let Some(s) = &v.server {
        let commit = if s.git_commit.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.git_commit)
        };
        t.row([
            "Server:".to_owned(),
            format!("berth-scheduler {}{commit}", s.version),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::json;
    use expect_test::expect;

    #[test]
    fn with_and_without_a_server() {
        let both = VersionView::new(Some(pb::VersionResponse {
            version: "0.1.0".to_owned(),
            git_commit: "3f2a9c1".to_owned(),
        }));
        expect![[r#"
            Client:  berthctl 0.1.0
            Server:  berth-scheduler 0.1.0 (3f2a9c1)
        "#]]
        .assert_eq(&version_table(&both));
        expect![[r#"
            {
              "client": {
                "version": "0.1.0"
              },
              "server": {
                "version": "0.1.0",
                "gitCommit": "3f2a9c1"
              }
            }
        "#]]
        .assert_eq(&json(&both));
        let alone = VersionView::new(None);
        expect![[r#"
            Client:  berthctl 0.1.0
        "#]]
        .assert_eq(&version_table(&alone));
        expect![[r#"
            {
              "client": {
                "version": "0.1.0"
              },
              "server": null
            }
        "#]]
        .assert_eq(&json(&alone));
    }
}
