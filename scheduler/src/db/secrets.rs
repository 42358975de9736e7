//! Secrets in the store: one [`SecretRecord`] per name holding the current
//! version, sealed. Sealing is the caller's (`crate::secrets`), because the
//! version is part of what is sealed: `put_secret` hands the version it is
//! about to write to `seal`, and seals again if a concurrent put wins.

use super::{encode, Db, DbError};
use crate::records::{now_millis, SecretRecord};
use crate::store::{Table, Txn};

impl Db {
    /// Creates `name` at version 1 or writes the next version. `seal` gets
    /// the version and returns the sealed value (base64).
    pub async fn put_secret(
        &self,
        name: &str,
        seal: impl Fn(u32) -> Result<String, DbError>,
    ) -> Result<SecretRecord, DbError> {
        self.write("secret", || {
            let existing = self.get::<SecretRecord>(Table::Secrets, name.as_bytes())?;
            let now = now_millis();
            let (rec, txn) = match existing {
                Some((old, bytes)) => {
                    let version = old.version.checked_add(1).ok_or_else(|| {
                        DbError::FailedPrecondition(format!(
                            "secret {name:?} has run out of versions; delete and re-create it"
                        ))
                    })?;
                    (
                        SecretRecord {
                            name: name.to_owned(),
                            version,
                            created_at: old.created_at,
                            updated_at: now,
                            sealed: seal(version)?,
                        },
                        Txn::new().check_equals(Table::Secrets, name, bytes),
                    )
                }
                None => (
                    SecretRecord {
                        name: name.to_owned(),
                        version: 1,
                        created_at: now,
                        updated_at: now,
                        sealed: seal(1)?,
                    },
                    Txn::new().check_absent(Table::Secrets, name),
                ),
            };
            let txn = txn.put(Table::Secrets, name, encode(Table::Secrets, &rec)?);
            Ok((txn, rec))
        })
        .await
    }

    pub fn secret(&self, name: &str) -> Result<Option<SecretRecord>, DbError> {
        Ok(self
            .get::<SecretRecord>(Table::Secrets, name.as_bytes())?
            .map(|(s, _)| s))
    }

    /// Every secret, by name.
    pub fn secrets(&self) -> Result<Vec<SecretRecord>, DbError> {
        Ok(self.scan(Table::Secrets, b"")?)
    }

    /// Deletes a secret (its value is gone; tasks running keep theirs).
    pub async fn delete_secret(&self, name: &str) -> Result<SecretRecord, DbError> {
        self.write("secret", || {
            let (rec, bytes) = self
                .get::<SecretRecord>(Table::Secrets, name.as_bytes())?
                .ok_or_else(|| DbError::NotFound {
                    kind: "secret",
                    name: name.to_owned(),
                })?;
            Ok((
                Txn::new()
                    .check_equals(Table::Secrets, name, bytes)
                    .delete(Table::Secrets, name),
                rec,
            ))
        })
        .await
    }
}
