//! The client side of Berth's trust model, shared by `berth-agent` and
//! `berthctl`: the cluster CA's fingerprint, fetching the CA once without
//! verification (trust on first use, checked against the fingerprint the
//! operator gave), and TLS endpoints that trust only that CA.
//!
//! The wire and storage contracts are in `docs/trust-design.md`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Uri};

use crate::errors::error_chain;
use crate::v1::cluster_ca_service_client::ClusterCaServiceClient;
use crate::v1::GetClusterCaRequest;

/// The prefix of a CA fingerprint as Berth prints it.
pub const FINGERPRINT_PREFIX: &str = "sha256:";

/// Why a trust step failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("not a PEM certificate: {0}")]
    Pem(String),
    #[error("{0:?} is not a CA fingerprint; expected sha256:<64 hex digits> as `berth-scheduler` prints it")]
    BadFingerprint(String),
    #[error(
        "the scheduler's CA has fingerprint {actual}, not {expected}: refusing to trust it \
         (a wrong --ca-fingerprint, or someone in between)"
    )]
    FingerprintMismatch { expected: String, actual: String },
    #[error("invalid scheduler URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot reach the scheduler at {url}: {cause}")]
    Connect { url: String, cause: String },
    #[error("GetClusterCa failed: {0}")]
    Rpc(#[from] tonic::Status),
}

/// Installs aws-lc-rs as the process's rustls provider. Every binary calls
/// this before any TLS use; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// `sha256:<hex>` of a certificate's DER.
pub fn fingerprint_der(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(FINGERPRINT_PREFIX.len() + 64);
    out.push_str(FINGERPRINT_PREFIX);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The fingerprint of the first certificate of a PEM text.
pub fn fingerprint_pem(pem: &str) -> Result<String, TrustError> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| TrustError::Pem(e.to_string()))?;
    Ok(fingerprint_der(&der))
}

/// Normalises a fingerprint as an operator may type it: with or without
/// `sha256:`, any case, with or without `:` between bytes.
pub fn parse_fingerprint(s: &str) -> Result<String, TrustError> {
    let t = s.trim();
    let body = t
        .strip_prefix(FINGERPRINT_PREFIX)
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    let hex: String = body
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(TrustError::BadFingerprint(s.to_owned()));
    }
    Ok(format!("{FINGERPRINT_PREFIX}{hex}"))
}

fn https_uri(url: &str) -> Result<Uri, TrustError> {
    let bad = |reason: &str| TrustError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("the scheduler speaks TLS: use https://host:port"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    Ok(uri)
}

/// An endpoint for `url` (`https://host:port`) that trusts only `ca_pem`,
/// presenting `identity` (certificate and key PEM) when given.
pub fn endpoint(
    url: &str,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<Endpoint, TrustError> {
    https_uri(url)?;
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(url.to_owned())
        .and_then(|e| e.tls_config(tls))
        .map_err(|e| TrustError::Url {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

/// Fetches the cluster CA from `url` over TLS *without* verifying the
/// server, then accepts it only if its fingerprint is `expected`. Returns
/// the CA's PEM.
pub async fn fetch_cluster_ca(url: &str, expected: &str) -> Result<String, TrustError> {
    let expected = parse_fingerprint(expected)?;
    let uri = https_uri(url)?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    install_crypto_provider();
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Connect {
            url: url.to_owned(),
            cause: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(host.clone()).map_err(|e| TrustError::Url {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    // Plain http:// for tonic: the connector below does the TLS itself.
    let endpoint = Endpoint::from_shared(format!("http://{}:{port}", uri.host().unwrap_or("")))
        .map_err(|e| TrustError::Url {
            url: url.to_owned(),
            reason: e.to_string(),
        })?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(15));
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let name = name.clone();
            let host = host.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| TrustError::Connect {
            url: url.to_owned(),
            cause: error_chain(&e),
        })?;
    let ca_pem = ClusterCaServiceClient::new(channel)
        .get_cluster_ca(GetClusterCaRequest {})
        .await?
        .into_inner()
        .ca_pem;
    let actual = fingerprint_pem(&ca_pem)?;
    if actual != expected {
        return Err(TrustError::FingerprintMismatch { expected, actual });
    }
    Ok(ca_pem)
}

/// Accepts any server certificate (signatures of the handshake are still
/// checked). Used only to fetch the CA, whose fingerprint is then compared.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_normalised() {
        let hex = "ab".repeat(32);
        let want = format!("sha256:{hex}");
        assert_eq!(parse_fingerprint(&want).unwrap(), want);
        assert_eq!(parse_fingerprint(&hex.to_uppercase()).unwrap(), want);
        let colons: Vec<String> = (0..32).map(|_| "AB".to_owned()).collect();
        assert_eq!(
            parse_fingerprint(&format!("SHA256:{}", colons.join(":"))).unwrap(),
            want
        );
        assert!(parse_fingerprint("sha256:abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn fingerprint_of_der_is_sha256_hex() {
        assert_eq!(
            fingerprint_der(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn endpoints_must_be_https() {
        assert!(matches!(
            endpoint("http://127.0.0.1:7400", "", None),
            Err(TrustError::Url { .. })
        ));
    }
}
