//! Registry credentials from Docker's `config.json` (`auths` only;
//! `credsStore` and `credHelpers` are not consulted).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

use super::{Credentials, ImageError};

/// A registry host as written in Docker's config: scheme and path dropped,
/// Docker Hub's aliases folded into `docker.io`.
fn registry_key(raw: &str) -> String {
    let s = raw
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

#[derive(Deserialize)]
struct DockerConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuthEntry>,
}

#[derive(Deserialize)]
struct DockerAuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The credentials Docker's `config.json` (text `json`) holds for
/// `registry`: `auths.<host>.auth` (base64 `user:password`) or its
/// `username`/`password` fields. `credsStore` and `credHelpers` are not
/// consulted.
pub fn docker_config_credentials(
    json: &str,
    registry: &str,
) -> Result<Option<Credentials>, String> {
    let file: DockerConfigFile =
        serde_json::from_str(json).map_err(|e| format!("not a Docker config.json: {e}"))?;
    let wanted = registry_key(registry);
    let Some((key, entry)) = file.auths.iter().find(|(k, _)| registry_key(k) == wanted) else {
        return Ok(None);
    };
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("auths.{key}.auth is not base64: {e}"))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| format!("auths.{key}.auth is not UTF-8 user:password"))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| format!("auths.{key}.auth is not user:password"))?;
        return Ok(Some(Credentials {
            username: user.to_owned(),
            password: pass.to_owned(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

pub(super) fn docker_config_error(path: &Path, reason: String) -> ImageError {
    ImageError::DockerConfig {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_gives_credentials_by_registry() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        let json = format!(
            r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{auth}"}},
                "https://index.docker.io/v1/": {{"username": "bob", "password": "pw"}},
                "http://other:5001/": {{}}
            }}, "credsStore": "desktop"}}"#
        );
        let c = docker_config_credentials(&json, "127.0.0.1:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "pa:ss")
        );
        let hub = docker_config_credentials(&json, "docker.io")
            .unwrap()
            .unwrap();
        assert_eq!(hub.username, "bob");
        assert_eq!(docker_config_credentials(&json, "other:5001"), Ok(None));
        assert_eq!(docker_config_credentials(&json, "nowhere:1"), Ok(None));
        assert!(docker_config_credentials("{", "x").is_err());
        let bad = r#"{"auths": {"h": {"auth": "!!"}}}"#;
        assert!(docker_config_credentials(bad, "h")
            .unwrap_err()
            .contains("auths.h.auth"));
    }
}
