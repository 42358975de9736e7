//! `berthctl login --endpoint URL --token T [--ca-fingerprint sha256:..]`:
//! checks the token with a read-only call, then saves endpoint, token and
//! fingerprint in the user's config file with mode 0600.

use berth_proto::v1 as pb;
use berth_proto::v1::cluster_service_client::ClusterServiceClient;
use clap::Args;

use super::Ctx;
use crate::config::Config;
use crate::error::CtlError;

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct LoginArgs {
    /// SHA-256 fingerprint of the cluster CA, `sha256:<hex>` (printed by the
    /// scheduler at start)
    #[arg(long, value_name = "sha256:HEX", value_parser = parse_fingerprint)]
    pub ca_fingerprint: Option<String>,
}

/// `sha256:` and 64 hex digits (colons between bytes allowed), normalised
/// to lower case without colons.
fn parse_fingerprint(s: &str) -> Result<String, String> {
    let hex: String = s
        .trim()
        .strip_prefix("sha256:")
        .ok_or("a fingerprint starts with sha256:")?
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("a SHA-256 fingerprint is 64 hex digits".to_owned());
    }
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

pub async fn run(args: LoginArgs, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let Some(token) = ctx.settings.token.clone() else {
        return Err(CtlError::Usage(
            "login needs a token: berthctl login --endpoint URL --token TOKEN".to_owned(),
        ));
    };
    let Some(path) = ctx.settings.config_file.clone() else {
        return Err(CtlError::Usage(
            "there is no config file to write: set HOME or BERTH_CONFIG".to_owned(),
        ));
    };
    // Any token role may list clusters: this proves the token before it is saved.
    ClusterServiceClient::new(ctx.channel().await?)
        .list_clusters(pb::ListClustersRequest {})
        .await
        .map_err(ctx.rpc_error())?;
    let mut config = Config::load(&path)?;
    config.endpoint = Some(ctx.settings.endpoint.clone());
    config.token = Some(token);
    if args.ca_fingerprint.is_some() {
        config.ca_fingerprint = args.ca_fingerprint;
    }
    config.save(&path)?;
    let text = format!(
        "logged in to {}; endpoint and token saved in {} (mode 0600)\n",
        ctx.settings.endpoint,
        path.display()
    );
    ctx.write(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_checked_and_normalised() {
        let hex = "AB".repeat(32);
        assert_eq!(
            parse_fingerprint(&format!("sha256:{hex}")).unwrap(),
            format!("sha256:{}", "ab".repeat(32))
        );
        let colons = vec!["ab"; 32].join(":");
        assert!(parse_fingerprint(&format!("sha256:{colons}")).is_ok());
        assert!(parse_fingerprint(&hex).is_err());
        assert!(parse_fingerprint("sha256:abc").is_err());
    }
}
