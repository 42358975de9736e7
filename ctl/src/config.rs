//! The user config file, `$XDG_CONFIG_HOME/berth/config.toml` (by default
//! `~/.config/berth/config.toml`; `BERTH_CONFIG` names another file).
//!
//! ```toml
//! endpoint = "https://10.0.0.5:7400"
//! cluster = "prod"
//! # The cluster CA to trust (written by `berthctl login`): a path or the PEM itself.
//! ca_cert = "/home/ann/.config/berth/ca.pem"
//! ```
//!
//! A missing file is the same as an empty one; a file that exists but cannot
//! be read or parsed is an error naming the path, so a typo never silently
//! sends commands to the wrong scheduler.

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::env::{self, Env};
use crate::error::CtlError;

/// Settings from the config file; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Scheduler endpoint used when neither `--endpoint` nor `BERTH_ENDPOINT` is set.
    pub endpoint: Option<String>,
    /// Default cluster used when neither `--cluster` nor `BERTH_CLUSTER` is set.
    pub cluster: Option<String>,
    /// The cluster CA to trust when neither `--ca-cert` nor `BERTH_CA_CERT`
    /// is set: a PEM file's path or the PEM text itself.
    pub ca_cert: Option<String>,
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
            error: invalid config file /home/ann/.config/berth/config.toml: unknown field `endpont`, expected one of `endpoint`, `cluster`, `ca_cert`"#]]
        .assert_eq(&err.render());
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
