//! The process environment as a value, so that resolution of settings can be
//! tested without touching the real environment.

use std::collections::BTreeMap;

/// Scheduler endpoint, e.g. `http://10.0.0.5:7400`.
pub const BERTH_ENDPOINT: &str = "BERTH_ENDPOINT";
/// The cluster CA berthctl trusts: a PEM file's path, or the PEM itself.
pub const BERTH_CA_CERT: &str = "BERTH_CA_CERT";
/// Default cluster for commands that take `--cluster`.
pub const BERTH_CLUSTER: &str = "BERTH_CLUSTER";
/// Operator token, `berth_<id>_<secret>`.
pub const BERTH_TOKEN: &str = "BERTH_TOKEN";
/// Path of the user config file, overriding the XDG location.
pub const BERTH_CONFIG: &str = "BERTH_CONFIG";
pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
pub const HOME: &str = "HOME";

/// A snapshot of environment variables. Empty values count as unset, as
/// most shells make `FOO= cmd` the usual way to "unset" for one command.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The variables of this process (those that are valid UTF-8).
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment made of the given pairs (for tests).
    #[cfg(test)]
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The value of `name`, or `None` when it is unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}
