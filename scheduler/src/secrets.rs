//! Secrets: encrypted at rest, resolved only for the agent that runs a task.
//!
//! - The key: 32 random bytes in `<data_dir>/secrets.key` (or the configured
//!   `secrets.key_file`), created with mode 0600 on the first start and read
//!   on every later one. Losing it loses every secret; a replaced key makes
//!   them undecryptable (reported as such, never as "not found").
//! - Sealing: XChaCha20-Poly1305 with a fresh random 24-byte nonce per
//!   version; stored as `nonce || ciphertext`. The associated data binds the
//!   secret's name and version, so a sealed value copied to another name or
//!   version does not open.
//! - Resolution ([`Secrets::resolve_task`]): a task definition's
//!   `secrets[].valueFrom` and `repositoryCredentials.credentialsParameter`
//!   (names or ARN-shaped names, see `berth_proto::secret_ref`) become the
//!   values the agent needs. Problems name the JSON path and the secret, never
//!   a value.
//!
//! Invariant: values live only in [`SecretBytes`], [`TaskSecrets`] and the
//! `DesiredTask` messages built from them, whose `Debug` is redacted; no
//! error, log line or describe output of the scheduler contains one.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use berth_proto::secret_ref;
use berth_proto::taskdef::{FieldIssue, TaskDefinition};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::db::{Db, DbError};
use crate::records::SecretRecord;

/// Bytes of the key.
pub const KEY_LEN: usize = 32;
/// Bytes of XChaCha20's nonce.
const NONCE_LEN: usize = 24;
/// The largest value PutSecret takes (SSM's advanced tier and Secrets
/// Manager allow 8 KiB and 64 KiB).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Failures of the secret store. None carries a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secrets key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secrets key file {path} holds {len} bytes, expected {KEY_LEN}")]
    KeyLength { path: PathBuf, len: usize },
    #[error(
        "secret {name:?} version {version} cannot be decrypted with this scheduler's key \
         (was the secrets key file replaced?)"
    )]
    Undecryptable { name: String, version: u32 },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The key that seals secrets. `Debug` shows nothing of it.
pub struct SecretKey([u8; KEY_LEN]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Reads the key at `path`, or creates it (32 random bytes, mode 0600,
    /// never replacing a file that appears meanwhile).
    pub fn load_or_create(path: &Path) -> Result<Self, SecretsError> {
        let io = |source| SecretsError::KeyFile {
            path: path.to_owned(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the secrets key file is readable by others than its owner; chmod 600 it");
                }
                let key: [u8; KEY_LEN] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| SecretsError::KeyLength {
                            path: path.to_owned(),
                            len: bytes.len(),
                        })?;
                Ok(Self(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_LEN];
                rand::rng().fill_bytes(&mut key);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                // Written whole to a temporary file, then linked into place:
                // a crash leaves no short key, and a concurrent creator's key
                // is never replaced.
                let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io)?;
                f.write_all(&key).and_then(|()| f.sync_all()).map_err(io)?;
                drop(f);
                let linked = std::fs::hard_link(&tmp, path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "created the secrets key");
                        Ok(Self(key))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(&self.0))
    }
}

/// The name a webhook's sealed signing secret is bound to (its creation
/// time too, so a re-created subscription cannot take an old record's).
fn webhook_aad_name(name: &str, created_at: i64) -> String {
    format!("\0webhook\0{name}\0{created_at}")
}

/// The name a token's sealed secret is bound to.
fn token_aad_name(token_id: &str) -> String {
    format!("\0token\0{token_id}")
}

/// The associated data of a sealed version: its name and version.
fn aad(name: &str, version: u32) -> Vec<u8> {
    format!("berth-secret\0{name}\0{version}").into_bytes()
}

/// `nonce || ciphertext` of `plaintext` as version `version` of `name`.
pub fn seal(key: &SecretKey, name: &str, version: u32, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let aad = aad(name, version);
    let ct = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // Encryption fails only for messages near 2^38 bytes.
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

/// The plaintext of `sealed`, if it is version `version` of `name` under `key`.
pub fn open(
    key: &SecretKey,
    name: &str,
    version: u32,
    sealed: &[u8],
) -> Result<SecretBytes, SecretsError> {
    let fail = || SecretsError::Undecryptable {
        name: name.to_owned(),
        version,
    };
    if sealed.len() < NONCE_LEN {
        return Err(fail());
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let aad = aad(name, version);
    key.cipher()
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
        .map(SecretBytes)
        .map_err(|_| fail())
}

/// A secret's value. `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted>, {} bytes)", self.0.len())
    }
}

impl SecretBytes {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One environment variable from a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvSecret {
    pub container: String,
    pub name: String,
    pub value: String,
}

/// Registry credentials of one container.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    pub container: String,
    pub username: String,
    pub password: String,
}

/// What a task's agent gets from the secret store.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TaskSecrets {
    pub env: Vec<EnvSecret>,
    pub registry: Vec<RegistryCredential>,
}

impl fmt::Debug for TaskSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSecrets")
            .field(
                "env",
                &self
                    .env
                    .iter()
                    .map(|e| format!("{}/{}=<redacted>", e.container, e.name))
                    .collect::<Vec<_>>(),
            )
            .field(
                "registry",
                &self
                    .registry
                    .iter()
                    .map(|r| format!("{}: {}:<redacted>", r.container, r.username))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// ECS's format of a registry-credentials secret.
#[derive(serde::Deserialize)]
struct RegistryCredentialsJson {
    username: String,
    password: String,
}

/// The secret store: the key and the database.
#[derive(Debug, Clone)]
pub struct Secrets {
    key: Arc<SecretKey>,
    db: Db,
    /// Moves on every put and delete, so resolutions can be cached.
    generation: Arc<AtomicU64>,
}

impl Secrets {
    pub fn new(key: SecretKey, db: Db) -> Self {
        Self {
            key: Arc::new(key),
            db,
            generation: Arc::default(),
        }
    }

    /// A number that differs after every put or delete through this store
    /// (or its clones): what [`Secrets::resolve_task`] returned under one
    /// generation stays true until it moves.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Creates the secret or stores its next version.
    pub async fn put(&self, name: &str, value: &[u8]) -> Result<SecretRecord, SecretsError> {
        secret_ref::validate_name(name).map_err(|message| SecretsError::Invalid {
            field: "name",
            message,
        })?;
        if value.is_empty() {
            return Err(SecretsError::Invalid {
                field: "value",
                message: "must not be empty".into(),
            });
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(SecretsError::Invalid {
                field: "value",
                message: format!(
                    "is {} bytes; at most {MAX_VALUE_LEN} are allowed",
                    value.len()
                ),
            });
        }
        let key = self.key.clone();
        let put = self
            .db
            .put_secret(name, |version| {
                Ok(base64::engine::general_purpose::STANDARD
                    .encode(seal(&key, name, version, value)))
            })
            .await;
        // After the write, whatever its outcome: a resolution begun before
        // it is never taken for current.
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(put?)
    }

    pub fn list(&self) -> Result<Vec<SecretRecord>, SecretsError> {
        Ok(self.db.secrets()?)
    }

    pub async fn delete(&self, name: &str) -> Result<SecretRecord, SecretsError> {
        let deleted = self.db.delete_secret(name).await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(deleted?)
    }

    /// The current value of `name`, or None when there is no such secret.
    pub fn value(&self, name: &str) -> Result<Option<SecretBytes>, SecretsError> {
        let Some(rec) = self.db.secret(name)? else {
            return Ok(None);
        };
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&rec.sealed)
            .map_err(|_| SecretsError::Undecryptable {
                name: rec.name.clone(),
                version: rec.version,
            })?;
        open(&self.key, &rec.name, rec.version, &sealed).map(Some)
    }

    /// An operator token's secret, sealed for its [`TokenRecord`]: the
    /// associated data names the token (`\0token\0<id>`, which no secret
    /// name can be), so a sealed secret cannot be moved to another record.
    ///
    /// [`TokenRecord`]: crate::records::TokenRecord
    pub fn seal_token_secret(&self, token_id: &str, secret: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(seal(
            &self.key,
            &token_aad_name(token_id),
            0,
            secret.as_bytes(),
        ))
    }

    /// The secret [`Secrets::seal_token_secret`] sealed, or None when the
    /// record has none (tokens older than the ECS API) or it does not open
    /// under this key.
    pub fn token_secret(&self, rec: &crate::records::TokenRecord) -> Option<SecretBytes> {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(rec.sealed_secret.as_deref()?)
            .ok()?;
        match open(&self.key, &token_aad_name(&rec.id), 0, &sealed) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(token = %rec.id, cause = %e, "an operator token's sealed secret does not open");
                None
            }
        }
    }

    /// A webhook's signing secret sealed for its record (base64).
    pub fn seal_webhook_secret(&self, name: &str, created_at: i64, secret: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(seal(
            &self.key,
            &webhook_aad_name(name, created_at),
            0,
            secret,
        ))
    }

    /// The signing secret of `rec`, opened.
    pub fn webhook_secret(
        &self,
        rec: &crate::records::WebhookRecord,
    ) -> Result<SecretBytes, SecretsError> {
        let aad = webhook_aad_name(&rec.name, rec.created_at);
        let fail = || SecretsError::Undecryptable {
            name: format!("webhook {}", rec.name),
            version: 0,
        };
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&rec.sealed_secret)
            .map_err(|_| fail())?;
        open(&self.key, &aad, 0, &sealed).map_err(|_| fail())
    }

    /// The values `def`'s containers need, and every reference that cannot
    /// be resolved (missing secret, unusable value), each at its JSON path
    /// and left out of the values. A store failure is an error of its own.
    pub fn resolve_task(
        &self,
        def: &TaskDefinition,
    ) -> Result<(TaskSecrets, Vec<FieldIssue>), SecretsError> {
        let mut out = TaskSecrets::default();
        let mut issues = Vec::new();
        for (i, c) in def.container_definitions.iter().enumerate() {
            for (k, s) in c.secrets.iter().enumerate() {
                let path = format!("containerDefinitions[{i}].secrets[{k}].valueFrom");
                match self.lookup(&path, &s.value_from, &mut issues)? {
                    None => {}
                    Some((name, v)) => match String::from_utf8(v.0) {
                        Ok(text) if !text.contains('\0') => out.env.push(EnvSecret {
                            container: c.name.clone(),
                            name: s.name.clone(),
                            value: text,
                        }),
                        _ => issues.push(FieldIssue {
                            path,
                            message: format!(
                                "secret {name:?} is not UTF-8 text without NUL bytes, so it \
                                 cannot be an environment variable"
                            ),
                        }),
                    },
                }
            }
            if let Some(rc) = &c.repository_credentials {
                let path =
                    format!("containerDefinitions[{i}].repositoryCredentials.credentialsParameter");
                if let Some((name, v)) =
                    self.lookup(&path, &rc.credentials_parameter, &mut issues)?
                {
                    // serde's messages quote the input: never pass them on.
                    match serde_json::from_slice::<RegistryCredentialsJson>(v.as_bytes()) {
                        Ok(j) => out.registry.push(RegistryCredential {
                            container: c.name.clone(),
                            username: j.username,
                            password: j.password,
                        }),
                        Err(_) => issues.push(FieldIssue {
                            path,
                            message: format!(
                                "secret {name:?} must hold a JSON object with string fields \
                                 \"username\" and \"password\""
                            ),
                        }),
                    }
                }
            }
        }
        Ok((out, issues))
    }

    /// The name and value `reference` names, or None with an issue at `path`.
    fn lookup<'r>(
        &self,
        path: &str,
        reference: &'r str,
        issues: &mut Vec<FieldIssue>,
    ) -> Result<Option<(&'r str, SecretBytes)>, SecretsError> {
        let name = match secret_ref::secret_name(reference) {
            Ok(n) => n,
            Err(message) => {
                issues.push(FieldIssue {
                    path: path.to_owned(),
                    message,
                });
                return Ok(None);
            }
        };
        match self.value(name)? {
            Some(v) => Ok(Some((name, v))),
            None => {
                issues.push(FieldIssue {
                    path: path.to_owned(),
                    message: format!(
                        "secret {name:?} does not exist; create it with `berthctl secret put {name}`"
                    ),
                });
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    fn key(b: u8) -> SecretKey {
        SecretKey::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn seal_and_open_round_trip_and_bind_name_version_and_key() {
        let k = key(7);
        let sealed = seal(&k, "db", 3, b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(open(&k, "db", 3, &sealed).unwrap().as_bytes(), b"hunter2");
        // Two seals of one value differ (fresh nonce).
        assert_ne!(seal(&k, "db", 3, b"hunter2"), sealed);
        for (name, version, k2) in [("db", 4, key(7)), ("db2", 3, key(7)), ("db", 3, key(8))] {
            let err = open(&k2, name, version, &sealed).unwrap_err();
            assert!(matches!(err, SecretsError::Undecryptable { .. }), "{err}");
            assert!(!err.to_string().contains("hunter2"));
        }
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(&k, "db", 3, &tampered).is_err());
        assert!(open(&k, "db", 3, &sealed[..10]).is_err());
    }

    #[test]
    fn debug_output_is_redacted() {
        let v = SecretBytes(b"hunter2".to_vec());
        let t = TaskSecrets {
            env: vec![EnvSecret {
                container: "web".into(),
                name: "PW".into(),
                value: "hunter2".into(),
            }],
            registry: vec![RegistryCredential {
                container: "web".into(),
                username: "robot".into(),
                password: "hunter2".into(),
            }],
        };
        let text = format!("{v:?} {t:?} {:?}", key(1));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("web/PW=<redacted>"), "{text}");
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secrets.key");
        let k1 = SecretKey::load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), KEY_LEN as u64);
        let k2 = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(k1.0, k2.0, "the second start reads the same key");
        // Nothing but the key is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secrets.key")]);
        std::fs::write(&path, b"short").unwrap();
        let err = SecretKey::load_or_create(&path).unwrap_err();
        assert!(
            matches!(err, SecretsError::KeyLength { len: 5, .. }),
            "{err}"
        );
    }

    async fn store() -> (tempfile::TempDir, Secrets) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(Arc::new(SledStore::open_when_free(dir.path()).unwrap()))
            .await
            .unwrap();
        (dir, Secrets::new(key(9), db))
    }

    #[tokio::test]
    async fn versions_rise_and_values_are_sealed_in_the_store() {
        let (_dir, s) = store().await;
        assert_eq!(s.put("db", b"one").await.unwrap().version, 1);
        let r = s.put("db", b"two").await.unwrap();
        assert_eq!(r.version, 2);
        assert!(r.updated_at >= r.created_at);
        assert_eq!(s.value("db").unwrap().unwrap().as_bytes(), b"two");
        let raw =
            s.db.store()
                .scan_prefix(crate::store::Table::Secrets, b"")
                .unwrap();
        assert!(!raw.iter().any(|(_, v)| v.windows(3).any(|w| w == b"two")));
        assert!(matches!(
            s.put("bad name", b"x").await,
            Err(SecretsError::Invalid { field: "name", .. })
        ));
        assert!(matches!(
            s.put("empty", b"").await,
            Err(SecretsError::Invalid { field: "value", .. })
        ));
        s.delete("db").await.unwrap();
        assert!(s.value("db").unwrap().is_none());
        assert!(matches!(
            s.delete("db").await,
            Err(SecretsError::Db(DbError::NotFound { .. }))
        ));
        // Another key cannot read what this one sealed.
        s.put("db", b"three").await.unwrap();
        let other = Secrets::new(key(10), s.db.clone());
        assert!(matches!(
            other.value("db"),
            Err(SecretsError::Undecryptable { .. })
        ));
    }

    #[tokio::test]
    async fn resolution_names_paths_and_secrets_but_never_values() {
        let (_dir, s) = store().await;
        s.put("pw", b"hunter2").await.unwrap();
        s.put("creds", br#"{"username":"robot","password":"pa55"}"#)
            .await
            .unwrap();
        s.put("not-json", b"hunter2-as-text").await.unwrap();
        let def = berth_proto::taskdef::parse_registration(
            r#"{"family":"f","containerDefinitions":[
              {"name":"a","image":"x","memory":8,
               "secrets":[{"name":"PW","valueFrom":"arn:aws:ssm:r:1:parameter/pw"},
                          {"name":"GONE","valueFrom":"gone"}],
               "repositoryCredentials":{"credentialsParameter":"not-json"}},
              {"name":"b","image":"x","memory":8,
               "secrets":[{"name":"PW","valueFrom":"pw"}],
               "repositoryCredentials":{"credentialsParameter":"arn:aws:secretsmanager:r:1:secret:creds"}}]}"#,
        )
        .unwrap()
        .definition;
        let (partial, issues) = s.resolve_task(&def).unwrap();
        assert_eq!(partial.env.len(), 2, "what resolves is kept");
        let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            text,
            [
                "containerDefinitions[0].secrets[1].valueFrom: secret \"gone\" does not exist; \
                 create it with `berthctl secret put gone`",
                "containerDefinitions[0].repositoryCredentials.credentialsParameter: secret \
                 \"not-json\" must hold a JSON object with string fields \"username\" and \"password\"",
            ]
        );
        s.put("gone", b"back").await.unwrap();
        s.put("not-json", br#"{"username":"u","password":"p"}"#)
            .await
            .unwrap();
        let (t, issues) = s.resolve_task(&def).unwrap();
        assert!(issues.is_empty(), "{issues:?}");
        let env: Vec<_> = t
            .env
            .iter()
            .map(|e| (e.container.as_str(), e.name.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("a", "PW", "hunter2"),
                ("a", "GONE", "back"),
                ("b", "PW", "hunter2")
            ]
        );
        let reg: Vec<_> = t
            .registry
            .iter()
            .map(|r| {
                (
                    r.container.as_str(),
                    r.username.as_str(),
                    r.password.as_str(),
                )
            })
            .collect();
        assert_eq!(reg, [("a", "u", "p"), ("b", "robot", "pa55")]);
    }
}
