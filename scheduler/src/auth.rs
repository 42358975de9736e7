//! Operator authentication, the transport-free part: roles, the token format
//! `berth_<id>_<secret>`, and its hash. The gRPC layer that checks every
//! operator call against the method table is `api::auth`; tokens and the
//! audit log are stored by `db::auth`.
//!
//! The store keeps SHA-256(secret), which the gRPC API checks, and the
//! secret sealed with the scheduler's secrets key, which the ECS API needs
//! to verify SigV4 signatures (the token's id is the access key id, its
//! secret the secret access key). A token's id is public (it names the
//! token in `token ls` and the audit log); its secret is shown once.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token may do. Ordered: each role may do everything the ones
/// below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// List*, Describe*, Get*, logs.
    #[serde(rename = "read-only")]
    ReadOnly,
    /// Everything but tokens, activations and CA administration.
    #[serde(rename = "operator")]
    Operator,
    /// Everything.
    #[serde(rename = "admin")]
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::ReadOnly, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a call: the token that authenticated it. Put into the request's
/// extensions by the auth layer, for handlers and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub token_name: String,
    pub role: Role,
}

const PREFIX: &str = "berth_";
const ID_LEN: std::ops::RangeInclusive<usize> = 4..=32;
const SECRET_LEN: std::ops::RangeInclusive<usize> = 32..=128;

/// Why a presented token cannot even be looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("an operator token starts with \"berth_\"")]
    Prefix,
    #[error("an operator token is berth_<id>_<secret>")]
    Shape,
    #[error("the token id must be 4–32 lower-case letters and digits")]
    Id,
    #[error("the token secret must be 32–128 letters and digits")]
    Secret,
}

/// A token as presented (or just generated): its id and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, not even in debug logs.
        f.debug_struct("Token")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// A new random token: 12 hex digits of id, 64 of secret (256 bits).
    pub fn generate() -> Self {
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        rand::rng().fill_bytes(&mut secret);
        Self {
            id: hex::encode(id),
            secret: hex::encode(secret),
        }
    }

    pub fn parse(s: &str) -> Result<Self, TokenFormatError> {
        let rest = s.strip_prefix(PREFIX).ok_or(TokenFormatError::Prefix)?;
        let (id, secret) = rest.split_once('_').ok_or(TokenFormatError::Shape)?;
        if !ID_LEN.contains(&id.len())
            || !id
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        {
            return Err(TokenFormatError::Id);
        }
        if !SECRET_LEN.contains(&secret.len()) || !secret.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(TokenFormatError::Secret);
        }
        Ok(Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The whole token, `berth_<id>_<secret>`: shown once, never stored.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret)
    }

    /// The secret part: the SigV4 secret access key of the ECS API. Sealed
    /// before it is stored, never logged.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// SHA-256 of the secret, hex: what the store keeps.
    pub fn secret_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }

    /// Whether this token's secret hashes to `stored` (constant time).
    pub fn matches(&self, stored: &str) -> bool {
        let ours = self.secret_sha256();
        ours.len() == stored.len()
            && ours
                .bytes()
                .zip(stored.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// The value of an `authorization` header: `Bearer <token>` (the scheme is
/// case-insensitive, as HTTP says).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// SHA-256 (hex) of an activation code, as stored.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::ReadOnly < Role::Operator && Role::Operator < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert_eq!(Role::parse(" Admin "), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn generated_tokens_parse_and_match_only_their_hash() {
        let t = Token::generate();
        let s = t.expose();
        assert!(s.starts_with("berth_"), "{s}");
        let back = Token::parse(&s).unwrap();
        assert_eq!(back, t);
        assert!(back.matches(&t.secret_sha256()));
        let other = Token::generate();
        assert!(!other.matches(&t.secret_sha256()));
        assert!(!t.matches(""));
        // The hash is SHA-256 of the secret part only, hex.
        assert_eq!(t.secret_sha256().len(), 64);
        assert!(!format!("{t:?}").contains(&t.secret));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let secret = "a".repeat(40);
        assert_eq!(Token::parse("nope"), Err(TokenFormatError::Prefix));
        assert_eq!(Token::parse("berth_abcd"), Err(TokenFormatError::Shape));
        assert_eq!(
            Token::parse(&format!("berth_AB12_{secret}")),
            Err(TokenFormatError::Id)
        );
        assert_eq!(
            Token::parse(&format!("berth_ab_{secret}")),
            Err(TokenFormatError::Id)
        );
        assert_eq!(
            Token::parse("berth_abcd_short"),
            Err(TokenFormatError::Secret)
        );
        assert_eq!(
            Token::parse(&format!("berth_abcd_{secret}_x")),
            Err(TokenFormatError::Secret)
        );
        assert!(Token::parse(&format!("berth_abcd_{secret}")).is_ok());
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer("Bearer berth_x"), Some("berth_x"));
        assert_eq!(bearer("bearer  berth_x "), Some("berth_x"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("berth_x"), None);
    }
}
