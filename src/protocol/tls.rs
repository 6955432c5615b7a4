//! Mutual TLS between providers (protocol-06 §4.1): certificates authenticate both domains.
//!
//! Each daemon has a certificate for its provider domain (serverAuth and clientAuth) and a set
//! of trust anchors. It accepts only clients whose certificate chains to an anchor, and its
//! outgoing calls present the same certificate. Which domain a peer may speak for is read from
//! its certificate: [`certificate_covers`].

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("certificate generation: {0}")]
    Generate(String),
}

/// A certificate chain and its private key.
pub struct TlsIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl TlsIdentity {
    /// Reads a PEM certificate chain and a PEM private key.
    pub fn load(certificate: &Path, private_key: &Path) -> Result<TlsIdentity, TlsError> {
        let chain = CertificateDer::pem_file_iter(certificate)
            .map_err(|e| file_error(certificate, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error(certificate, e))?;
        if chain.is_empty() {
            return Err(file_error(certificate, "holds no certificate"));
        }
        let key =
            PrivateKeyDer::from_pem_file(private_key).map_err(|e| file_error(private_key, e))?;
        Ok(TlsIdentity { chain, key })
    }
}

/// Reads PEM trust anchors.
pub fn load_trust_anchors(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(file_error(path, "holds no usable trust anchor"));
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The listener's TLS: our certificate, and client certificates required and verified.
pub fn server_config(
    identity: &TlsIdentity,
    roots: RootCertStore,
) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Outgoing TLS: peers verified against the anchors, our certificate presented.
pub fn client_config(
    identity: &TlsIdentity,
    roots: RootCertStore,
) -> Result<ClientConfig, TlsError> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))
}

/// Whether an (already verified) end-entity certificate is valid for `domain` (RFC 6125).
pub fn certificate_covers(cert: &CertificateDer<'_>, domain: &str) -> bool {
    let Ok(name) = ServerName::try_from(domain) else {
        return false;
    };
    match webpki::EndEntityCert::try_from(cert) {
        Ok(ee) => ee.verify_is_valid_for_subject_name(&name).is_ok(),
        Err(_) => false,
    }
}

/// Development certificates: a CA and, for each provider domain, a certificate for both TLS
/// server and client use, signed by that CA. For running several providers on one machine;
/// production certificates come from a real CA.
pub struct DevCertificates {
    pub ca_pem: String,
    pub ca_key_pem: String,
    /// (domain, certificate PEM, private key PEM)
    pub providers: Vec<(String, String, String)>,
}

pub fn generate_dev_certificates(domains: &[String]) -> Result<DevCertificates, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "mimi-bridge development CA");
    ca_params.distinguished_name = name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut providers = Vec::new();
    for domain in domains {
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(vec![domain.clone()]).map_err(err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, domain.as_str());
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer).map_err(err)?;
        providers.push((domain.clone(), cert.pem(), key.serialize_pem()));
    }
    Ok(DevCertificates {
        ca_pem: ca_cert.pem(),
        ca_key_pem: issuer.key().serialize_pem(),
        providers,
    })
}

/// Writes development certificates into `dir`: `ca.pem`, `ca.key`, `<domain>.pem`, `<domain>.key`.
pub fn write_dev_certificates(
    dir: &Path,
    certs: &DevCertificates,
) -> Result<Vec<std::path::PathBuf>, TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    let mut written = Vec::new();
    let mut write = |name: String, text: &str, private: bool| -> Result<(), TlsError> {
        let path = dir.join(name);
        write_file(&path, text, private).map_err(|e| file_error(&path, e))?;
        written.push(path);
        Ok(())
    };
    write("ca.pem".into(), &certs.ca_pem, false)?;
    write("ca.key".into(), &certs.ca_key_pem, true)?;
    for (domain, cert, key) in &certs.providers {
        write(format!("{domain}.pem"), cert, false)?;
        write(format!("{domain}.key"), key, true)?;
    }
    Ok(written)
}

fn write_file(path: &Path, text: &str, private: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(if private { 0o600 } else { 0o644 })
            .open(path)?;
        f.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    {
        let _ = private;
        std::fs::write(path, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certificates_cover_their_domain_only() {
        let certs = generate_dev_certificates(&["a.example".into(), "b.example".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_dev_certificates(dir.path(), &certs).unwrap();
        let a = TlsIdentity::load(
            &dir.path().join("a.example.pem"),
            &dir.path().join("a.example.key"),
        )
        .unwrap();
        assert!(certificate_covers(&a.chain[0], "a.example"));
        assert!(!certificate_covers(&a.chain[0], "b.example"));
        assert!(!certificate_covers(&a.chain[0], "not a domain"));
        let roots = load_trust_anchors(&dir.path().join("ca.pem")).unwrap();
        assert!(server_config(&a, roots.clone()).is_ok());
        assert!(client_config(&a, roots).is_ok());
    }

    #[test]
    fn unusable_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = load_trust_anchors(&empty).unwrap_err().to_string();
        assert!(err.contains("empty.pem"), "{err}");
        let err = TlsIdentity::load(&empty, &empty).err().unwrap().to_string();
        assert!(err.contains("empty.pem"), "{err}");
        let err = TlsIdentity::load(&dir.path().join("missing.pem"), &empty)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }
}
