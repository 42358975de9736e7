//! The user config file, `$XDG_CONFIG_HOME/berth/config.toml` (by default
//! `~/.config/berth/config.toml`; `BERTH_CONFIG` names another file).
//!
//! ```toml
//! endpoint = "https://10.0.0.5:7400"
//! cluster = "prod"
//! # The cluster CA to trust: a path or the PEM itself (`berthctl login` writes the PEM).
//! ca_cert = "/home/ann/.config/berth/ca.pem"
//! token = "berth_<id>_<secret>"
//! ca_fingerprint = "sha256:<hex>"
//! ```
//!
//! `berthctl login` writes it with mode 0600, since it holds a token.
//! A missing file is the same as an empty one; a file that exists but cannot
//! be read or parsed is an error naming the path, so a typo never silently
//! sends commands to the wrong scheduler.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::env::{self, Env};
use crate::error::CtlError;

/// Settings from the config file; every key is optional.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Scheduler endpoint used when neither `--endpoint` nor `BERTH_ENDPOINT` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Default cluster used when neither `--cluster` nor `BERTH_CLUSTER` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The cluster CA to trust when neither `--ca-cert` nor `BERTH_CA_CERT`
    /// is set: a PEM file's path or the PEM text itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Operator token used when neither `--token` nor `BERTH_TOKEN` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The cluster CA's fingerprint, `sha256:<hex>`, as `login` was given it
    /// (a record of what was verified; `ca_cert` is what is trusted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_fingerprint: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("cluster", &self.cluster)
            .field("ca_cert", &self.ca_cert)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish()
    }
}

impl Config {
    /// Parses the text of a config file; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, CtlError> {
        toml::from_str(text).map_err(|e| CtlError::Config {
            path: path.to_owned(),
            reason: e.message().to_owned(),
        })
    }

    /// Loads the file at `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, CtlError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(CtlError::ReadFile {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

impl Config {
    /// Writes the file readable by its owner only (0600; its directory
    /// 0700 when created), replacing it atomically.
    pub fn save(&self, path: &Path) -> Result<(), CtlError> {
        use std::os::unix::fs::DirBuilderExt as _;
        let fail = |source: io::Error| CtlError::WriteFile {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(fail)?;
        }
        let text = toml::to_string(self).map_err(|e| fail(io::Error::other(e)))?;
        berth_proto::fsutil::write_atomic(path, text.as_bytes(), 0o600).map_err(fail)
    }
}

/// Where the config file is: `BERTH_CONFIG`, else
/// `$XDG_CONFIG_HOME/berth/config.toml` (XDG requires an absolute path; a
/// relative one is ignored), else `$HOME/.config/berth/config.toml`; `None`
/// when there is no home either.
pub fn config_path(env: &Env) -> Option<PathBuf> {
    if let Some(p) = env.get(env::BERTH_CONFIG) {
        return Some(PathBuf::from(p));
    }
    let base = env
        .get(env::XDG_CONFIG_HOME)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| env.get(env::HOME).map(|h| Path::new(h).join(".config")))?;
    Some(base.join("berth").join("config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn path_prefers_berth_config_then_xdg_then_home() {
        let p = |pairs: &[(&'static str, &'static str)]| {
            config_path(&Env::from_pairs(pairs.iter().copied())).map(|p| p.display().to_string())
        };
        assert_eq!(p(&[]), None);
        assert_eq!(
            p(&[("HOME", "/home/ann")]).as_deref(),
            Some("/home/ann/.config/berth/config.toml")
        );
        assert_eq!(
            p(&[("HOME", "/home/ann"), ("XDG_CONFIG_HOME", "/xdg")]).as_deref(),
            Some("/xdg/berth/config.toml")
        );
        // Relative and empty XDG_CONFIG_HOME are ignored, as the spec says.
        assert_eq!(
            p(&[("HOME", "/home/ann"), ("XDG_CONFIG_HOME", "rel")]).as_deref(),
            Some("/home/ann/.config/berth/config.toml")
        );
        assert_eq!(
            p(&[("HOME", "/home/ann"), ("XDG_CONFIG_HOME", "")]).as_deref(),
            Some("/home/ann/.config/berth/config.toml")
        );
        assert_eq!(
            p(&[
                ("HOME", "/home/ann"),
                ("XDG_CONFIG_HOME", "/xdg"),
                ("BERTH_CONFIG", "/etc/b.toml")
            ])
            .as_deref(),
            Some("/etc/b.toml")
        );
    }

    #[test]
    fn parses_known_keys() {
        let c = Config::parse(
            Path::new("c.toml"),
            "endpoint = \"http://10.0.0.5:7400\"\ncluster = \"prod\"\nca_cert = \"/x/ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.ca_cert.as_deref(), Some("/x/ca.pem"));
        assert_eq!(c.endpoint.as_deref(), Some("http://10.0.0.5:7400"));
        assert_eq!(c.cluster.as_deref(), Some("prod"));
        assert_eq!(
            Config::parse(Path::new("c.toml"), "").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn rejects_unknown_keys_naming_the_file() {
        let err = Config::parse(
            Path::new("/home/ann/.config/berth/config.toml"),
            "endpont = \"x\"",
        )
        .unwrap_err();
        expect![[r#"
            error: invalid config file /home/ann/.config/berth/config.toml: unknown field `endpont`, expected one of `endpoint`, `cluster`, `ca_cert`, `token`, `ca_fingerprint`"#]]
        .assert_eq(&err.render());
    }

    #[test]
    fn save_writes_a_private_file_that_loads_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/berth/config.toml");
        let c = Config {
            endpoint: Some("https://10.0.0.5:7400".into()),
            cluster: Some("prod".into()),
            ca_cert: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
            token: Some("berth_abcd_secret".into()),
            ca_fingerprint: Some(format!("sha256:{}", "ab".repeat(32))),
        };
        c.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(Config::load(&path).unwrap(), c);
        assert!(!format!("{c:?}").contains("secret"));
        // Saving again replaces the file.
        Config::default().save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), Config::default());
    }

    #[test]
    fn missing_file_is_empty_and_unreadable_file_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Config::load(&dir.path().join("none.toml")).unwrap(),
            Config::default()
        );
        // A directory cannot be read as a file.
        let err = Config::load(dir.path()).unwrap_err();
        assert!(
            err.render().contains(&dir.path().display().to_string()),
            "{}",
            err.render()
        );
    }
}
