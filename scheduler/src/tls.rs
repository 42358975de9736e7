//! The cluster CA and the scheduler's TLS: the CA is created on first start
//! in `<data_dir>/tls/` (or loaded from files an operator configures), the
//! serving certificate is issued from it, and agents' CSRs are signed into
//! client certificates whose subject CN is the container instance id and
//! whose SAN URI is `urn:berth:instance:<cluster>:<instance-id>`.
//!
//! Private keys are written with mode 0600, atomically. The peer side
//! ([`peer_identity`]) reads the instance back out of a client certificate
//! that rustls has already verified against the CA.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_proto::trust::fingerprint_der;
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Directory of the CA and server files inside the data dir.
pub const TLS_DIR: &str = "tls";
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
pub const SERVER_CERT_FILE: &str = "server.pem";
pub const SERVER_KEY_FILE: &str = "server.key";
pub use crate::config::DEFAULT_CLIENT_VALIDITY;
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const SERVER_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Issued certificates start this far in the past, for clocks a little behind.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// The SAN URI prefix of an agent's certificate.
pub const INSTANCE_URI_PREFIX: &str = "urn:berth:instance:";

/// Why the CA or a certificate could not be made, loaded or read.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Cert {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("{0}")]
    BadCsr(String),
    #[error("{0}")]
    BadPeer(String),
    /// The serving certificate or key does not parse for rustls.
    #[error("{0}")]
    Pem(String),
}

fn cert_err(what: &str) -> impl FnOnce(rcgen::Error) -> TlsError + '_ {
    move |source| TlsError::Cert {
        what: what.to_owned(),
        source,
    }
}

pub use crate::config::TlsSettings;

/// A client certificate just issued.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub pem: String,
    /// Lower-case hex of the serial number's DER content.
    pub serial: String,
    pub not_after_ms: i64,
}

/// The instance a verified client certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub instance_id: String,
    pub cluster: String,
    pub serial: String,
}

/// The cluster CA, its key, and the serving identity.
pub struct ClusterCa {
    ca_pem: String,
    /// For snapshots only (`crate::snapshot`); never logged.
    ca_key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    fingerprint: String,
    server_cert_pem: String,
    server_key_pem: String,
    client_validity: Duration,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes `contents` atomically with `mode`
/// ([`berth_proto::fsutil::write_atomic_private`]); the directory is created (mode
/// 0700) if missing.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    berth_proto::fsutil::write_atomic_private(path, contents, mode).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    // Positive and without a leading zero byte, so its DER content is these bytes.
    b[0] = (b[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&b)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn validity(params: &mut CertificateParams, lifetime: Duration) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    // Short lifetimes (tests) are backdated less, so that renewal at two
    // thirds of the lifetime stays in the future.
    params.not_before = now - BACKDATE.min(lifetime / 10);
    params.not_after = now + lifetime;
    params.not_after
}

fn new_ca() -> Result<(String, String), TlsError> {
    let key = KeyPair::generate().map_err(cert_err("generating the CA key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Berth cluster CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Berth");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    validity(&mut params, CA_VALIDITY);
    let cert = params
        .self_signed(&key)
        .map_err(cert_err("self-signing the CA"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A name as a SAN: an IP address, else a DNS name (`None` if not ASCII;
/// config validation refuses such names before this runs).
fn san(name: &str) -> Option<SanType> {
    match name.parse::<IpAddr>() {
        Ok(ip) => Some(SanType::IpAddress(ip)),
        Err(_) => name.to_owned().try_into().ok().map(SanType::DnsName),
    }
}

/// The serving certificate's names: configured ones plus the loopback
/// names and this host's name.
pub fn server_names(configured: &[String]) -> Vec<String> {
    let mut names: Vec<String> = configured.to_vec();
    names.extend(["localhost", "127.0.0.1", "::1"].map(str::to_owned));
    if let Ok(h) = hostname() {
        names.push(h);
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

fn hostname() -> Result<String, std::io::Error> {
    let h = fs::read_to_string("/proc/sys/kernel/hostname")?;
    let h = h.trim();
    if h.is_empty()
        || !h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
    {
        return Err(std::io::Error::other("no usable host name"));
    }
    Ok(h.to_owned())
}

impl ClusterCa {
    /// Loads the CA from `<data_dir>/tls/` (creating it on first start) or
    /// from the configured files, and issues a fresh serving certificate
    /// unless one is configured.
    pub fn load_or_create(data_dir: &Path, settings: &TlsSettings) -> Result<Self, TlsError> {
        let dir = data_dir.join(TLS_DIR);
        let (ca_pem, ca_key_pem) = match &settings.ca {
            Some((cert, key)) => (read(cert)?, read(key)?),
            None => {
                let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
                if cert_path.exists() && key_path.exists() {
                    (read(&cert_path)?, read(&key_path)?)
                } else {
                    let (cert, key) = new_ca()?;
                    // The key first: a CA certificate without its key is useless.
                    write_atomic(&key_path, key.as_bytes(), 0o600)?;
                    write_atomic(&cert_path, cert.as_bytes(), 0o644)?;
                    tracing::info!(dir = %dir.display(), "created the cluster CA");
                    (cert, key)
                }
            }
        };
        let key = KeyPair::from_pem(&ca_key_pem).map_err(cert_err("reading the CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key)
            .map_err(cert_err("reading the CA certificate"))?;
        let der = rustls::pki_types::CertificateDer::from_pem_slice_compat(&ca_pem)?;
        let fingerprint = fingerprint_der(&der);

        let (server_cert_pem, server_key_pem) = match &settings.server {
            Some((cert, key)) => (read(cert)?, read(key)?),
            None => {
                let key = KeyPair::generate().map_err(cert_err("generating the server key"))?;
                let names = server_names(&settings.server_names);
                let mut params = CertificateParams::default();
                params.distinguished_name = rcgen::DistinguishedName::new();
                params
                    .distinguished_name
                    .push(DnType::CommonName, "berth-scheduler");
                params.subject_alt_names = names.iter().filter_map(|n| san(n)).collect();
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.serial_number = Some(random_serial());
                validity(&mut params, SERVER_VALIDITY);
                let cert = params
                    .signed_by(&key, &issuer)
                    .map_err(cert_err("issuing the server certificate"))?;
                // Reissued at every start, so a change of server_names
                // takes effect with a restart.
                write_atomic(
                    &dir.join(SERVER_KEY_FILE),
                    key.serialize_pem().as_bytes(),
                    0o600,
                )?;
                write_atomic(&dir.join(SERVER_CERT_FILE), cert.pem().as_bytes(), 0o644)?;
                (cert.pem(), key.serialize_pem())
            }
        };
        Ok(Self {
            ca_pem,
            ca_key_pem,
            issuer,
            fingerprint,
            server_cert_pem,
            server_key_pem,
            client_validity: settings.client_validity,
        })
    }

    /// `sha256:<hex>` of the CA certificate's DER.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA's certificate and key, as a snapshot carries them.
    pub fn snapshot_files(&self) -> crate::snapshot::CaFiles {
        crate::snapshot::CaFiles {
            cert_pem: self.ca_pem.clone(),
            key_pem: self.ca_key_pem.clone(),
        }
    }

    /// TLS for the listener: the serving identity, and client certificates
    /// optional but, when presented, verified against the CA.
    pub fn server_tls_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(
                &self.server_cert_pem,
                &self.server_key_pem,
            ))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(true)
    }

    /// TLS for the ECS API's listener: the same serving identity, HTTP/1.1,
    /// no client certificates (SigV4 authenticates its callers).
    pub fn https_server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        use rustls::pki_types::pem::PemObject;
        let certs =
            rustls::pki_types::CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Pem(format!("the serving certificate: {e}")))?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())
            .map_err(|e| TlsError::Pem(format!("the serving key: {e}")))?;
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Pem(format!("the serving certificate and key: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Signs an agent's CSR into a client certificate for `instance_id` of
    /// `cluster`. Only the CSR's public key is used (its signature, the
    /// proof that the host holds the key, is checked); the subject and
    /// names are the scheduler's.
    pub fn sign_client(
        &self,
        csr_pem: &str,
        cluster: &str,
        instance_id: &str,
    ) -> Result<IssuedCert, TlsError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| TlsError::BadCsr(format!("not a valid PEM CSR: {e}")))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, instance_id);
        let uri = format!("{INSTANCE_URI_PREFIX}{cluster}:{instance_id}");
        params.subject_alt_names =
            vec![SanType::URI(uri.try_into().map_err(|_| {
                TlsError::BadCsr("instance URI is not ASCII".into())
            })?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial();
        let serial_hex = hex(&serial.to_bytes());
        params.serial_number = Some(serial);
        let not_after = validity(&mut params, self.client_validity);
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(cert_err("signing the client certificate"))?;
        Ok(IssuedCert {
            pem: cert.pem(),
            serial: serial_hex,
            not_after_ms: (not_after.unix_timestamp_nanos() / 1_000_000) as i64,
        })
    }
}

/// Small extension: PEM → DER for the one certificate in a PEM text.
trait FromPemCompat: Sized {
    fn from_pem_slice_compat(pem: &str) -> Result<Self, TlsError>;
}

impl FromPemCompat for rustls::pki_types::CertificateDer<'static> {
    fn from_pem_slice_compat(pem: &str) -> Result<Self, TlsError> {
        use rustls::pki_types::pem::PemObject;
        Self::from_pem_slice(pem.as_bytes())
            .map_err(|e| TlsError::BadPeer(format!("CA certificate is not PEM: {e}")))
    }
}

/// The instance named by the first (leaf) certificate of a verified chain.
pub fn peer_identity(leaf_der: &[u8]) -> Result<PeerIdentity, TlsError> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(leaf_der)
        .map_err(|e| TlsError::BadPeer(format!("unreadable client certificate: {e}")))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| TlsError::BadPeer("client certificate has no subject CN".into()))?
        .to_owned();
    let uri = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|ext| {
            ext.value.general_names.iter().find_map(|n| match n {
                GeneralName::URI(u) if u.starts_with(INSTANCE_URI_PREFIX) => Some(u.to_string()),
                _ => None,
            })
        })
        .ok_or_else(|| {
            TlsError::BadPeer("client certificate has no urn:berth:instance SAN".into())
        })?;
    let rest = &uri[INSTANCE_URI_PREFIX.len()..];
    let (cluster, id) = rest
        .rsplit_once(':')
        .ok_or_else(|| TlsError::BadPeer(format!("malformed instance URI {uri:?}")))?;
    if id != cn {
        return Err(TlsError::BadPeer(format!(
            "client certificate CN {cn:?} does not match its instance URI {uri:?}"
        )));
    }
    Ok(PeerIdentity {
        instance_id: cn,
        cluster: cluster.to_owned(),
        serial: hex(cert.raw_serial()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn csr() -> (KeyPair, String) {
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        (key, csr)
    }

    fn der_of(pem: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn ca_is_created_once_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path(), &TlsSettings::default()).unwrap();
        assert!(ca.fingerprint().starts_with("sha256:"));
        assert_eq!(ca.fingerprint().len(), 7 + 64);
        for (f, mode) in [
            (CA_KEY_FILE, 0o600),
            (SERVER_KEY_FILE, 0o600),
            (CA_CERT_FILE, 0o644),
        ] {
            let m = fs::metadata(dir.path().join(TLS_DIR).join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(m, mode, "{f}");
        }
        // A restart loads the same CA.
        let again = ClusterCa::load_or_create(dir.path(), &TlsSettings::default()).unwrap();
        assert_eq!(again.fingerprint(), ca.fingerprint());
        assert_eq!(again.ca_pem(), ca.ca_pem());
    }

    #[test]
    fn server_certificate_names_the_configured_and_loopback_names() {
        let dir = tempfile::tempdir().unwrap();
        let settings = TlsSettings {
            server_names: vec!["sched.example".into(), "10.1.2.3".into()],
            ..TlsSettings::default()
        };
        ClusterCa::load_or_create(dir.path(), &settings).unwrap();
        let pem = fs::read_to_string(dir.path().join(TLS_DIR).join(SERVER_CERT_FILE)).unwrap();
        let der = der_of(&pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let names: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        let all = names.join(",");
        for want in [
            "DNSName(sched.example)",
            "IPAddress(0a:01:02:03)",
            "DNSName(localhost)",
            "IPAddress(7f:00:00:01)",
        ] {
            assert!(all.contains(want), "{want} missing from {all}");
        }
    }

    #[test]
    fn client_certificates_carry_the_instance_and_verify_against_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path(), &TlsSettings::default()).unwrap();
        let (_key, csr) = csr();
        let issued = ca.sign_client(&csr, "prod", "0b5e3c").unwrap();
        let der = der_of(&issued.pem);
        let id = peer_identity(&der).unwrap();
        assert_eq!(
            id,
            PeerIdentity {
                instance_id: "0b5e3c".into(),
                cluster: "prod".into(),
                serial: issued.serial.clone(),
            }
        );
        let days = (issued.not_after_ms - crate::records::now_millis()) / 86_400_000;
        assert!((29..=30).contains(&days), "{days}");

        // rustls's client verifier accepts it for the CA...
        let verify = |ca_pem: &str| {
            berth_proto::trust::install_crypto_provider();
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(rustls::pki_types::CertificateDer::from(der_of(ca_pem)))
                .unwrap();
            let v = rustls::server::WebPkiClientVerifier::builder(roots.into())
                .build()
                .unwrap();
            v.verify_client_cert(
                &rustls::pki_types::CertificateDer::from(der.clone()),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .is_ok()
        };
        assert!(verify(ca.ca_pem()));
        // ...and not for another cluster's CA.
        let other = tempfile::tempdir().unwrap();
        let other = ClusterCa::load_or_create(other.path(), &TlsSettings::default()).unwrap();
        assert!(!verify(other.ca_pem()));

        // Two certificates never share a serial.
        let second = ca.sign_client(&csr, "prod", "0b5e3c").unwrap();
        assert_ne!(second.serial, issued.serial);
    }

    #[test]
    fn garbage_csrs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(dir.path(), &TlsSettings::default()).unwrap();
        assert!(matches!(
            ca.sign_client("hello", "c", "i"),
            Err(TlsError::BadCsr(_))
        ));
    }

    #[test]
    fn operator_files_replace_the_generated_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = new_ca().unwrap();
        fs::write(dir.path().join("my-ca.pem"), &cert).unwrap();
        fs::write(dir.path().join("my-ca.key"), &key).unwrap();
        let settings = TlsSettings {
            ca: Some((dir.path().join("my-ca.pem"), dir.path().join("my-ca.key"))),
            ..TlsSettings::default()
        };
        let data = dir.path().join("data");
        let ca = ClusterCa::load_or_create(&data, &settings).unwrap();
        assert_eq!(ca.ca_pem(), cert);
        assert!(!data.join(TLS_DIR).join(CA_KEY_FILE).exists());
    }
}
