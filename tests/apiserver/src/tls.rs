//! HTTPS for the RBAC mode: client-go (kubectl, helm) sends no bearer token over plain
//! HTTP, so a server that authenticates must speak TLS. A throw-away CA is made at
//! start and its certificate goes into the kubeconfigs the server writes.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};

/// A server certificate for loopback and the CA that signed it.
pub struct Tls {
    /// The rustls configuration serving the certificate.
    pub config: Arc<rustls::ServerConfig>,
    /// The CA certificate (PEM), what clients trust.
    pub ca_pem: String,
}

impl Tls {
    /// A fresh CA and a certificate signed by it for `localhost`, `127.0.0.1` and `::1`.
    pub fn loopback() -> anyhow::Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ferrolb-testserver CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        for ip in [
            std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::Ipv6Addr::LOCALHOST.into(),
        ] {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| anyhow::anyhow!("server key: {e}"))?;
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key)?;
        // The server speaks HTTP/1.1 only; clients that offer h2 fall back to it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            ca_pem: ca.pem(),
        })
    }
}
