//! Operator tokens and the audit log. Tokens are keyed by their public id
//! and hold only SHA-256 of the secret; audit events are keyed by a
//! time-ordered id, so a scan returns them oldest first.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use super::{encode, Db, DbError};
use crate::auth::{Role, Token};
use crate::records::{now_millis, AuditRecord, TokenRecord, UnixMillis};
use crate::store::{Table, Txn};

/// Name of the admin token created at the first start.
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap";
/// How many audit events a listing returns when not told.
pub const DEFAULT_AUDIT_LIMIT: usize = 100;
/// The most audit events one listing returns.
pub const MAX_AUDIT_LIMIT: usize = 1000;

/// Which audit events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub since: Option<UnixMillis>,
    /// The most recent `limit` matching events (0: the default).
    pub limit: usize,
    /// Full method path, or its last segment.
    pub method: Option<String>,
    /// Token id or name.
    pub who: Option<String>,
    /// Only events with an id before this one (the next page of a listing).
    pub before: Option<String>,
}

/// One page of the audit log: oldest first, and whether older events match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    pub more: bool,
}

impl AuditFilter {
    fn admits(&self, e: &AuditRecord) -> bool {
        self.since.is_none_or(|s| e.time >= s)
            && self.method.as_deref().is_none_or(|m| {
                e.method == m || e.method.rsplit('/').next() == Some(m.trim_start_matches('/'))
            })
            && self
                .who
                .as_deref()
                .is_none_or(|w| e.token_id == w || e.token_name == w)
    }
}

/// Audit ids: milliseconds, then a counter that starts at a random value
/// so that two processes within one millisecond (a restart) do not collide.
fn audit_id(time: UnixMillis) -> String {
    static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
    let n = COUNTER
        .get_or_init(|| AtomicU32::new(rand::random()))
        .fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{n:08x}", time.max(0))
}

impl Db {
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, DbError> {
        Ok(self.scan(Table::Tokens, b"")?)
    }

    pub fn token(&self, id: &str) -> Result<Option<TokenRecord>, DbError> {
        Ok(self
            .get::<TokenRecord>(Table::Tokens, id.as_bytes())?
            .map(|(t, _)| t))
    }

    /// Stores a new token. Names are unique among tokens not revoked.
    pub async fn create_token(&self, rec: TokenRecord) -> Result<TokenRecord, DbError> {
        let now = now_millis();
        if self
            .tokens()?
            .iter()
            .any(|t| t.name == rec.name && t.is_usable(now))
        {
            return Err(DbError::AlreadyExists {
                kind: "token",
                name: rec.name.clone(),
            });
        }
        self.write("token", || {
            Ok((
                Txn::new().check_absent(Table::Tokens, rec.id.as_str()).put(
                    Table::Tokens,
                    rec.id.as_str(),
                    encode(Table::Tokens, &rec)?,
                ),
                rec.clone(),
            ))
        })
        .await
    }

    /// At the first start (no token at all in the store) stores `token` as
    /// the admin token named `bootstrap`, with its `sealed` secret, and
    /// returns true. Otherwise returns false, after giving `sealed` to the
    /// stored token if it is this very token and has none yet (a
    /// bootstrap token older than the ECS API, configured again).
    pub async fn bootstrap_token(&self, token: &Token, sealed: String) -> Result<bool, DbError> {
        if !self.store.scan_prefix(Table::Tokens, b"")?.is_empty() {
            self.write("token", || {
                let Some((mut t, old)) =
                    self.get::<TokenRecord>(Table::Tokens, token.id.as_bytes())?
                else {
                    return Ok((Txn::new(), ()));
                };
                if t.sealed_secret.is_some() || !token.matches(&t.secret_sha256) {
                    return Ok((Txn::new(), ()));
                }
                t.sealed_secret = Some(sealed.clone());
                Ok((
                    Txn::new()
                        .check_equals(Table::Tokens, token.id.as_str(), old)
                        .put(Table::Tokens, token.id.as_str(), encode(Table::Tokens, &t)?),
                    (),
                ))
            })
            .await?;
            return Ok(false);
        }
        self.create_token(TokenRecord {
            id: token.id.clone(),
            name: BOOTSTRAP_TOKEN_NAME.to_owned(),
            role: Role::Admin,
            secret_sha256: token.secret_sha256(),
            created_at: now_millis(),
            expires_at: None,
            revoked_at: None,
            created_by: BOOTSTRAP_TOKEN_NAME.to_owned(),
            sealed_secret: Some(sealed),
        })
        .await?;
        Ok(true)
    }

    /// Revokes a token (revoking a revoked one returns it unchanged). The
    /// last usable admin token cannot be revoked: nobody could create
    /// tokens any more.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenRecord, DbError> {
        self.write("token", || {
            let now = now_millis();
            let Some((mut t, old)) = self.get::<TokenRecord>(Table::Tokens, id.as_bytes())? else {
                return Err(DbError::NotFound {
                    kind: "token",
                    name: id.to_owned(),
                });
            };
            if t.revoked_at.is_some() {
                return Ok((Txn::new(), t));
            }
            if t.role == Role::Admin && t.is_usable(now) {
                let admins = self
                    .tokens()?
                    .iter()
                    .filter(|o| o.role == Role::Admin && o.is_usable(now))
                    .count();
                if admins <= 1 {
                    return Err(DbError::FailedPrecondition(format!(
                        "token {id} ({}) is the last admin token; create another admin \
                         token before revoking it",
                        t.name
                    )));
                }
            }
            t.revoked_at = Some(now);
            Ok((
                Txn::new().check_equals(Table::Tokens, id, old).put(
                    Table::Tokens,
                    id,
                    encode(Table::Tokens, &t)?,
                ),
                t,
            ))
        })
        .await
    }

    /// Records an audit event durably. `id` and `time` are filled here.
    pub async fn record_audit(&self, mut rec: AuditRecord) -> Result<AuditRecord, DbError> {
        rec.time = now_millis();
        let rec = self
            .write("audit event", || {
                rec.id = audit_id(rec.time);
                Ok((
                    Txn::new().check_absent(Table::Audit, rec.id.as_str()).put(
                        Table::Audit,
                        rec.id.as_str(),
                        encode(Table::Audit, &rec)?,
                    ),
                    rec.clone(),
                ))
            })
            .await?;
        self.audit_written.fetch_add(1, Ordering::Relaxed);
        Ok(rec)
    }

    /// Audit records written through this `Db` since it was opened.
    pub(crate) fn audit_written(&self) -> u64 {
        self.audit_written.load(Ordering::Relaxed)
    }

    /// The most recent `limit` events that match (before `filter.before`),
    /// oldest first. Reads the log backwards from there, only as far as the
    /// page (and `since`) needs.
    pub fn audit_events(&self, filter: &AuditFilter) -> Result<AuditPage, DbError> {
        const CHUNK: usize = 256;
        let limit = match filter.limit {
            0 => DEFAULT_AUDIT_LIMIT,
            n => n.min(MAX_AUDIT_LIMIT),
        };
        let mut page = AuditPage::default();
        let mut before: Option<Vec<u8>> = filter.before.clone().map(String::into_bytes);
        'scan: loop {
            let chunk = self
                .store
                .scan_back(Table::Audit, before.as_deref(), CHUNK)?;
            let done = chunk.len() < CHUNK;
            for (k, v) in &chunk {
                let e: AuditRecord = super::decode(Table::Audit, k, v)?;
                if filter.since.is_some_and(|s| e.time < s) {
                    break 'scan;
                }
                if !filter.admits(&e) {
                    continue;
                }
                if page.events.len() == limit {
                    page.more = true;
                    break 'scan;
                }
                page.events.push(e);
            }
            match chunk.last() {
                Some((k, _)) if !done => before = Some(k.clone()),
                _ => break,
            }
        }
        page.events.reverse();
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::SledStore;

    async fn open(dir: &std::path::Path) -> Db {
        Db::open(Arc::new(SledStore::open(dir).unwrap()))
            .await
            .unwrap()
    }

    fn token(name: &str, role: Role) -> (Token, TokenRecord) {
        let t = Token::generate();
        let rec = TokenRecord {
            id: t.id.clone(),
            name: name.to_owned(),
            role,
            secret_sha256: t.secret_sha256(),
            created_at: now_millis(),
            expires_at: None,
            revoked_at: None,
            created_by: "test".to_owned(),
            sealed_secret: None,
        };
        (t, rec)
    }

    #[tokio::test]
    async fn bootstrap_happens_once_and_stores_only_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        let first = Token::generate();
        assert!(db.bootstrap_token(&first, "sealed".into()).await.unwrap());
        assert!(!db
            .bootstrap_token(&Token::generate(), "other".into())
            .await
            .unwrap());
        // Configured again, the first token gets nothing new: it has its sealed secret.
        assert!(!db.bootstrap_token(&first, "again".into()).await.unwrap());
        assert_eq!(
            db.token(&first.id)
                .unwrap()
                .unwrap()
                .sealed_secret
                .as_deref(),
            Some("sealed")
        );
        let all = db.tokens().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].role, Role::Admin);
        assert_eq!(all[0].name, BOOTSTRAP_TOKEN_NAME);
        assert!(first.matches(&all[0].secret_sha256));
        // The secret itself is nowhere in the store.
        let secret = first.expose();
        let secret = secret.rsplit('_').next().unwrap();
        for (_, v) in db.store().scan_prefix(Table::Tokens, b"").unwrap() {
            assert!(!String::from_utf8_lossy(&v).contains(secret));
        }
    }

    #[tokio::test]
    async fn names_are_unique_and_the_last_admin_stays() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        let (_, admin) = token("root", Role::Admin);
        db.create_token(admin.clone()).await.unwrap();
        let (_, dup) = token("root", Role::ReadOnly);
        assert!(matches!(
            db.create_token(dup).await,
            Err(DbError::AlreadyExists { .. })
        ));
        assert!(matches!(
            db.revoke_token(&admin.id).await,
            Err(DbError::FailedPrecondition(_))
        ));
        let (_, ro) = token("ci", Role::ReadOnly);
        db.create_token(ro.clone()).await.unwrap();
        let r = db.revoke_token(&ro.id).await.unwrap();
        assert!(r.revoked_at.is_some());
        assert!(!r.is_usable(now_millis()));
        // Again: unchanged.
        assert_eq!(db.revoke_token(&ro.id).await.unwrap(), r);
        // A revoked token's name may be reused.
        let (_, ro2) = token("ci", Role::ReadOnly);
        db.create_token(ro2).await.unwrap();
        assert!(matches!(
            db.revoke_token("nope").await,
            Err(DbError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn audit_events_are_time_ordered_filtered_and_limited() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        for (i, (who, method)) in [
            ("a", "/berth.v1.ClusterService/CreateCluster"),
            ("b", "/berth.v1.ClusterService/DeleteCluster"),
            ("a", "/berth.v1.TaskService/StopTask"),
        ]
        .into_iter()
        .enumerate()
        {
            db.record_audit(AuditRecord {
                id: String::new(),
                time: 0,
                token_id: format!("id{who}"),
                token_name: who.to_owned(),
                method: method.to_owned(),
                resource: format!("r{i}"),
                outcome: "OK".to_owned(),
            })
            .await
            .unwrap();
        }
        let all = db.audit_events(&AuditFilter::default()).unwrap().events;
        let resources: Vec<_> = all.iter().map(|e| e.resource.as_str()).collect();
        assert_eq!(resources, ["r0", "r1", "r2"]);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        let who = |w: &str| AuditFilter {
            who: Some(w.to_owned()),
            ..Default::default()
        };
        assert_eq!(db.audit_events(&who("a")).unwrap().events.len(), 2);
        assert_eq!(db.audit_events(&who("idb")).unwrap().events.len(), 1);
        let method = AuditFilter {
            method: Some("DeleteCluster".to_owned()),
            ..Default::default()
        };
        assert_eq!(db.audit_events(&method).unwrap().events[0].resource, "r1");
        let last = AuditFilter {
            limit: 1,
            ..Default::default()
        };
        assert_eq!(db.audit_events(&last).unwrap().events[0].resource, "r2");
        let future = AuditFilter {
            since: Some(now_millis() + 60_000),
            ..Default::default()
        };
        assert!(db.audit_events(&future).unwrap().events.is_empty());
    }

    #[tokio::test]
    async fn audit_pages_walk_back_without_gaps_or_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        for i in 0..7 {
            db.record_audit(AuditRecord {
                id: String::new(),
                time: 0,
                token_id: "id".to_owned(),
                token_name: if i % 2 == 0 { "even" } else { "odd" }.to_owned(),
                method: "/berth.v1.ClusterService/CreateCluster".to_owned(),
                resource: format!("r{i}"),
                outcome: "OK".to_owned(),
            })
            .await
            .unwrap();
        }
        let pages = |who: Option<&str>| {
            let mut out = Vec::new();
            let mut before = None;
            loop {
                let page = db
                    .audit_events(&AuditFilter {
                        limit: 2,
                        who: who.map(str::to_owned),
                        before: before.clone(),
                        ..Default::default()
                    })
                    .unwrap();
                let names: Vec<String> = page.events.iter().map(|e| e.resource.clone()).collect();
                out.push(names);
                if !page.more {
                    return out;
                }
                before = Some(page.events[0].id.clone());
            }
        };
        assert_eq!(
            pages(None),
            [
                vec!["r5", "r6"],
                vec!["r3", "r4"],
                vec!["r1", "r2"],
                vec!["r0"]
            ]
        );
        assert_eq!(
            pages(Some("even")),
            [vec!["r4", "r6"], vec!["r0", "r2"]],
            "an exact last page has no next"
        );
    }
}
