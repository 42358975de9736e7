//! `berthctl login --endpoint URL --token T [--ca-fingerprint sha256:..]`:
//! pins the cluster CA (fetched with the open `GetClusterCa` and accepted
//! only if its fingerprint is the one given; without `--ca-fingerprint`, the
//! CA already configured with `--ca-cert`/`BERTH_CA_CERT`/`ca_cert`), checks
//! the token with a read-only call over TLS trusting only that CA, then
//! saves endpoint, token and CA in the user's config file with mode 0600.

use berth_proto::trust;
use berth_proto::v1 as pb;
use berth_proto::v1::cluster_service_client::ClusterServiceClient;
use clap::Args;

use super::Ctx;
use crate::client;
use crate::config::Config;
use crate::error::CtlError;

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct LoginArgs {
    /// SHA-256 fingerprint of the cluster CA, `sha256:<hex>` (printed by the
    /// scheduler at start and by `activation create`)
    #[arg(long, value_name = "sha256:HEX", value_parser = parse_fingerprint)]
    pub ca_fingerprint: Option<String>,
}

/// `sha256:` and 64 hex digits (colons between bytes allowed), normalised
/// to lower case without colons.
fn parse_fingerprint(s: &str) -> Result<String, String> {
    if !s.trim().starts_with(trust::FINGERPRINT_PREFIX) {
        return Err("a fingerprint starts with sha256:".to_owned());
    }
    trust::parse_fingerprint(s).map_err(|_| "a SHA-256 fingerprint is 64 hex digits".to_owned())
}

pub async fn run(args: LoginArgs, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let Some(token) = ctx.settings.token.clone() else {
        return Err(CtlError::Usage(
            "login needs a token: berthctl login --endpoint URL --token TOKEN \
             --ca-fingerprint sha256:HEX"
                .to_owned(),
        ));
    };
    let Some(path) = ctx.settings.config_file.clone() else {
        return Err(CtlError::Usage(
            "there is no config file to write: set HOME or BERTH_CONFIG".to_owned(),
        ));
    };
    let endpoint = client::endpoint_url(&ctx.settings.endpoint)?;
    let ca_pem = match &args.ca_fingerprint {
        Some(fp) => trust::fetch_cluster_ca(&endpoint, fp)
            .await
            .map_err(|e| match e {
                trust::TrustError::Connect { cause, .. } => CtlError::Unreachable {
                    target: ctx.settings.target(),
                    cause,
                },
                e => CtlError::UntrustedCa {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                },
            })?,
        None if ctx.settings.ca_cert.is_some() => ctx.settings.ca_pem()?,
        None => {
            return Err(CtlError::Usage(
                "login needs the cluster CA's fingerprint to pin it: --ca-fingerprint \
                 sha256:HEX (the scheduler prints it at start), or the CA itself with \
                 --ca-cert FILE"
                    .to_owned(),
            ))
        }
    };
    // Any token role may list clusters: this proves the token (and that the
    // pinned CA is the one the scheduler serves) before anything is saved.
    let conn = client::connect(&ctx.settings.target(), &ca_pem, Some(&token)).await?;
    ClusterServiceClient::new(conn)
        .list_clusters(pb::ListClustersRequest::default())
        .await
        .map_err(ctx.rpc_error())?;
    let fingerprint = trust::fingerprint_pem(&ca_pem).map_err(|e| CtlError::InvalidCa {
        origin: format!("of {endpoint}"),
        reason: e.to_string(),
    })?;
    let mut config = Config::load(&path)?;
    config.endpoint = Some(endpoint.clone());
    config.token = Some(token);
    config.ca_cert = Some(ca_pem);
    config.ca_fingerprint = Some(fingerprint.clone());
    config.save(&path)?;
    let text = format!(
        "logged in to {endpoint} (cluster CA {fingerprint}); endpoint, token and CA saved in \
         {} (mode 0600)\n",
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
