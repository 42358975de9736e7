//! Where the scheduler is and how to reach it.
//!
//! The endpoint comes from, in order: `--endpoint`, `BERTH_ENDPOINT`,
//! `endpoint` in the config file, `https://127.0.0.1:7400`. The scheduler
//! speaks TLS only; berthctl trusts exactly one CA, from `--ca-cert`,
//! `BERTH_CA_CERT` or `ca_cert` in the config file (a path or the PEM). The default
//! cluster from `BERTH_CLUSTER`, `cluster` in the config file, `default`
//! (a command's `--cluster` beats all of them). The operator token from
//! `--token`, `BERTH_TOKEN`, `token` in the config file; none is sent when
//! none is set. Resolution is a pure function
//! of the flag, an [`Env`] and a [`Config`], so it is tested without touching
//! the process environment.

use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::Duration;

use berth_proto::auth::BearerToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use berth_proto::trust;

use crate::config::{config_path, Config};
use crate::env::{self, Env};
use crate::error::{CtlError, Target};

pub const DEFAULT_ENDPOINT: &str = "https://127.0.0.1:7400";
pub const DEFAULT_CLUSTER: &str = "default";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to the scheduler that sends the operator token on every call.
pub type Conn = InterceptedService<Channel, BearerToken>;

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env(&'static str),
    Config(PathBuf),
    Default,
}

impl Origin {
    /// How a hint names it: "set by BERTH_ENDPOINT", ...
    pub fn describe(&self) -> String {
        match self {
            Self::Flag => "set by --endpoint".to_owned(),
            Self::Env(name) => format!("set by {name}"),
            Self::Config(path) => format!("set by `endpoint` in {}", path.display()),
            Self::Default => "the default (neither --endpoint, BERTH_ENDPOINT nor a config \
                              file sets one)"
                .to_owned(),
        }
    }
}

/// The settings every command starts from.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    pub endpoint: String,
    pub endpoint_origin: Origin,
    /// The cluster for commands run without `--cluster`.
    pub default_cluster: String,
    /// The CA to trust (a path or PEM) and where that came from.
    pub ca_cert: Option<(String, String)>,
    /// The operator token sent with every call, if any.
    pub token: Option<String>,
    /// The config file, when there is a home to put it in.
    pub config_file: Option<PathBuf>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("endpoint_origin", &self.endpoint_origin)
            .field("default_cluster", &self.default_cluster)
            .field("ca_cert", &self.ca_cert)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Settings {
    /// Resolves the settings from the `--endpoint` flag, the environment and
    /// the config file (read from `config_file`, when there is one).
    #[cfg(test)]
    pub fn resolve(
        endpoint_flag: Option<&str>,
        token_flag: Option<&str>,
        env: &Env,
        config: &Config,
        config_file: Option<PathBuf>,
    ) -> Self {
        Self::resolve_with_ca(endpoint_flag, None, token_flag, env, config, config_file)
    }

    /// [`resolve`](Self::resolve) with the `--ca-cert` flag.
    pub fn resolve_with_ca(
        endpoint_flag: Option<&str>,
        ca_flag: Option<&str>,
        token_flag: Option<&str>,
        env: &Env,
        config: &Config,
        config_file: Option<PathBuf>,
    ) -> Self {
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let (endpoint, endpoint_origin) = if let Some(e) = endpoint_flag.filter(|e| !e.is_empty()) {
            (e.to_owned(), Origin::Flag)
        } else if let Some(e) = env.get(env::BERTH_ENDPOINT) {
            (e.to_owned(), Origin::Env(env::BERTH_ENDPOINT))
        } else if let (Some(e), Some(path)) = (non_empty(&config.endpoint), config_file.clone()) {
            (e, Origin::Config(path))
        } else {
            (DEFAULT_ENDPOINT.to_owned(), Origin::Default)
        };
        let default_cluster = env
            .get(env::BERTH_CLUSTER)
            .map(str::to_owned)
            .or_else(|| non_empty(&config.cluster))
            .unwrap_or_else(|| DEFAULT_CLUSTER.to_owned());
        let ca_cert = if let Some(c) = ca_flag.filter(|c| !c.is_empty()) {
            Some((c.to_owned(), "--ca-cert".to_owned()))
        } else if let Some(c) = env.get(env::BERTH_CA_CERT) {
            Some((c.to_owned(), env::BERTH_CA_CERT.to_owned()))
        } else {
            non_empty(&config.ca_cert).map(|c| {
                let origin = config_file.as_ref().map_or_else(
                    || "`ca_cert` in the config file".to_owned(),
                    |p| format!("`ca_cert` in {}", p.display()),
                );
                (c, origin)
            })
        };
        let token = token_flag
            .filter(|t| !t.is_empty())
            .or_else(|| env.get(env::BERTH_TOKEN))
            .map(str::to_owned)
            .or_else(|| non_empty(&config.token));
        Self {
            endpoint,
            endpoint_origin,
            default_cluster,
            ca_cert,
            token,
            config_file,
        }
    }

    /// Reads the config file named by `env` and resolves the settings.
    pub fn load(
        endpoint_flag: Option<&str>,
        ca_flag: Option<&str>,
        token_flag: Option<&str>,
        env: &Env,
    ) -> Result<Self, CtlError> {
        let path = config_path(env);
        let config = match &path {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        Ok(Self::resolve_with_ca(
            endpoint_flag,
            ca_flag,
            token_flag,
            env,
            &config,
            path,
        ))
    }

    /// The PEM of the CA to trust.
    pub fn ca_pem(&self) -> Result<String, CtlError> {
        let (value, origin) = self.ca_cert.as_ref().ok_or_else(|| CtlError::NoCa {
            endpoint: self.endpoint.clone(),
        })?;
        let pem = if value.trim_start().starts_with("-----BEGIN") {
            value.clone()
        } else {
            std::fs::read_to_string(value).map_err(|source| CtlError::ReadFile {
                path: value.clone(),
                source,
            })?
        };
        trust::fingerprint_pem(&pem).map_err(|e| CtlError::InvalidCa {
            origin: format!("set by {origin}"),
            reason: e.to_string(),
        })?;
        Ok(pem)
    }

    /// The endpoint and where it came from, for error messages.
    pub fn target(&self) -> Target {
        Target {
            url: self.endpoint.clone(),
            origin: self.endpoint_origin.describe(),
        }
    }

    /// The cluster a command works on: its `--cluster`, else the default.
    pub fn cluster(&self, flag: Option<&str>) -> String {
        flag.filter(|c| !c.is_empty())
            .map_or_else(|| self.default_cluster.clone(), str::to_owned)
    }
}

/// Checks an endpoint (`host:port` without a scheme means
/// `https://host:port`) and returns it in full.
pub fn endpoint_url(url: &str) -> Result<String, CtlError> {
    let invalid = |reason: &str| CtlError::InvalidEndpoint {
        endpoint: url.to_owned(),
        reason: reason.to_owned(),
    };
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("https://{url}")
    };
    let ep = Endpoint::from_shared(full.clone()).map_err(|_| invalid("not a URL"))?;
    match ep.uri().scheme_str() {
        Some("https") => {}
        Some("http") => return Err(invalid("the scheduler speaks TLS only: use https://")),
        _ => return Err(invalid("the scheme must be https://")),
    }
    if ep.uri().host().is_none_or(str::is_empty) {
        return Err(invalid("it names no host"));
    }
    Ok(full)
}

/// Prepares a TLS connection to `url` that trusts only `ca_pem`.
pub fn endpoint(url: &str, ca_pem: &str) -> Result<Endpoint, CtlError> {
    let full = endpoint_url(url)?;
    let ep = trust::endpoint(&full, ca_pem, None).map_err(|e| CtlError::InvalidEndpoint {
        endpoint: url.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(ep.connect_timeout(CONNECT_TIMEOUT).timeout(REQUEST_TIMEOUT))
}

/// Connects to the scheduler at `target`, trusting `ca_pem`; every call
/// carries `token`.
pub async fn connect(target: &Target, ca_pem: &str, token: Option<&str>) -> Result<Conn, CtlError> {
    trust::install_crypto_provider();
    let channel = endpoint(&target.url, ca_pem)?
        .connect()
        .await
        .map_err(|e| CtlError::Unreachable {
            target: target.clone(),
            cause: root_cause(&e),
        })?;
    Ok(InterceptedService::new(channel, BearerToken::new(token)))
}

/// The innermost error of a chain ("Connection refused (os error 111)"),
/// which is what an operator can act on; tonic's outer layers only say
/// "transport error".
fn root_cause(e: &(dyn StdError + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(endpoint: Option<&str>, cluster: Option<&str>) -> Config {
        Config {
            endpoint: endpoint.map(str::to_owned),
            cluster: cluster.map(str::to_owned),
            ..Config::default()
        }
    }

    #[test]
    fn token_precedence_is_flag_env_config() {
        let env = Env::from_pairs([("BERTH_TOKEN", "env")]);
        let config = Config {
            token: Some("config".into()),
            ..Config::default()
        };
        let t = |flag, env: &Env, config: &Config| {
            Settings::resolve(None, flag, env, config, file()).token
        };
        assert_eq!(t(Some("flag"), &env, &config).as_deref(), Some("flag"));
        assert_eq!(t(None, &env, &config).as_deref(), Some("env"));
        assert_eq!(t(None, &Env::default(), &config).as_deref(), Some("config"));
        assert_eq!(t(Some(""), &Env::default(), &Config::default()), None);
        let s = Settings::resolve(None, Some("berth_x_y"), &env, &config, file());
        assert!(!format!("{s:?}").contains("berth_x_y"));
    }

    fn file() -> Option<PathBuf> {
        Some(PathBuf::from("/home/ann/.config/berth/config.toml"))
    }

    #[test]
    fn endpoint_precedence_is_flag_env_config_default() {
        let env = Env::from_pairs([("BERTH_ENDPOINT", "http://env:7400")]);
        let config = cfg(Some("http://config:7400"), None);

        let s = Settings::resolve(Some("http://flag:7400"), None, &env, &config, file());
        assert_eq!(
            (s.endpoint.as_str(), s.endpoint_origin),
            ("http://flag:7400", Origin::Flag)
        );

        let s = Settings::resolve(None, None, &env, &config, file());
        assert_eq!(
            (s.endpoint.as_str(), s.endpoint_origin),
            ("http://env:7400", Origin::Env("BERTH_ENDPOINT"))
        );

        let s = Settings::resolve(None, None, &Env::default(), &config, file());
        assert_eq!(s.endpoint, "http://config:7400");
        assert_eq!(s.endpoint_origin, Origin::Config(file().unwrap()));

        let s = Settings::resolve(None, None, &Env::default(), &Config::default(), file());
        assert_eq!(
            (s.endpoint.as_str(), s.endpoint_origin),
            (DEFAULT_ENDPOINT, Origin::Default)
        );

        // Empty values count as unset.
        let empty = Env::from_pairs([("BERTH_ENDPOINT", "")]);
        let s = Settings::resolve(Some(""), None, &empty, &cfg(Some(""), None), file());
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
    }

    #[test]
    fn cluster_precedence_is_flag_env_config_default() {
        let env = Env::from_pairs([("BERTH_CLUSTER", "staging")]);
        let config = cfg(None, Some("prod"));
        let s = Settings::resolve(None, None, &env, &config, file());
        assert_eq!(s.cluster(Some("adhoc")), "adhoc");
        assert_eq!(s.cluster(None), "staging");
        let s = Settings::resolve(None, None, &Env::default(), &config, file());
        assert_eq!(s.cluster(None), "prod");
        let s = Settings::resolve(None, None, &Env::default(), &Config::default(), None);
        assert_eq!(s.cluster(None), "default");
        assert_eq!(s.cluster(Some("")), "default");
    }

    #[test]
    fn load_reads_the_config_file_named_by_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let xdg = dir.path().join("xdg");
        std::fs::create_dir_all(xdg.join("berth")).unwrap();
        std::fs::write(
            xdg.join("berth/config.toml"),
            "endpoint = \"http://10.1.2.3:7400\"\ncluster = \"prod\"\n",
        )
        .unwrap();
        let xdg = xdg.display().to_string();
        let env = Env::from_pairs([("XDG_CONFIG_HOME", xdg.as_str()), ("HOME", "/nonexistent")]);
        let s = Settings::load(None, None, None, &env).unwrap();
        assert_eq!(s.endpoint, "http://10.1.2.3:7400");
        assert_eq!(s.default_cluster, "prod");

        // No config file at all: defaults.
        let env = Env::from_pairs([("HOME", "/nonexistent")]);
        let s = Settings::load(None, None, None, &env).unwrap();
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
    }

    /// A CA certificate (PEM) for tests.
    pub(crate) fn test_ca() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn endpoints_are_checked_before_connecting() {
        assert_eq!(
            endpoint_url("https://10.0.0.5:7400").unwrap(),
            "https://10.0.0.5:7400"
        );
        assert_eq!(
            endpoint("sched.internal:7400", &test_ca())
                .unwrap()
                .uri()
                .to_string(),
            "https://sched.internal:7400/"
        );
        let err = |u: &str| endpoint_url(u).unwrap_err().render();
        assert_eq!(
            err("http://x:7400"),
            "error: invalid endpoint \"http://x:7400\": the scheduler speaks TLS only: use \
             https://"
        );
        assert_eq!(
            err("ftp://x"),
            "error: invalid endpoint \"ftp://x\": the scheme must be https://"
        );
        assert_eq!(
            err("https://"),
            "error: invalid endpoint \"https://\": not a URL"
        );
        assert_eq!(
            endpoint_url("a b").unwrap_err().exit_code(),
            crate::error::EXIT_USAGE
        );
    }

    #[test]
    fn the_ca_comes_from_flag_env_or_config_as_a_path_or_pem() {
        let dir = tempfile::tempdir().unwrap();
        let pem = test_ca();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, &pem).unwrap();
        let path = path.display().to_string();
        let mut config = cfg(None, None);
        config.ca_cert = Some(pem.clone());
        let env = Env::from_pairs([("BERTH_CA_CERT", path.as_str())]);

        let s =
            Settings::resolve_with_ca(None, Some(&path), None, &Env::default(), &config, file());
        assert_eq!(s.ca_cert.as_ref().unwrap().1, "--ca-cert");
        assert_eq!(s.ca_pem().unwrap(), pem);
        let s = Settings::resolve_with_ca(None, None, None, &env, &config, file());
        assert_eq!(s.ca_cert.as_ref().unwrap().1, "BERTH_CA_CERT");
        let s = Settings::resolve_with_ca(None, None, None, &Env::default(), &config, file());
        assert_eq!(s.ca_pem().unwrap(), pem, "inline PEM in the config");
        let s = Settings::resolve(None, None, &Env::default(), &cfg(None, None), file());
        let err = s.ca_pem().unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
        assert!(err.render().contains("berthctl login"), "{}", err.render());
        let mut bad = cfg(None, None);
        bad.ca_cert = Some("-----BEGIN CERTIFICATE-----\nnope\n".into());
        let s = Settings::resolve(None, None, &Env::default(), &bad, file());
        assert!(s.ca_pem().is_err());
    }

    #[tokio::test]
    async fn an_unreachable_scheduler_names_the_endpoint_and_the_cause() {
        // Bind and drop a listener so that the port is (almost surely) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("https://127.0.0.1:{port}");
        let env = Env::from_pairs([("BERTH_ENDPOINT", url.as_str())]);
        let settings = Settings::resolve(None, None, &env, &Config::default(), None);
        let err = connect(&settings.target(), &test_ca(), None)
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_UNREACHABLE);
        let text = err.render();
        assert!(
            text.starts_with(&format!(
                "error: cannot reach the Berth scheduler at {url}: "
            )),
            "{text}"
        );
        assert!(text.contains("refused"), "{text}");
        assert!(
            text.ends_with(
                "hint: is the scheduler running there? The endpoint is set by \
             BERTH_ENDPOINT; point berthctl at the scheduler with --endpoint URL or BERTH_ENDPOINT"
            ),
            "{text}"
        );
    }
}
