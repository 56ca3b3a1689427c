//! The server's TLS identity: a CA made at start and a serving certificate it signs for
//! `127.0.0.1`, `::1` and `localhost`, as a kubeadm cluster's API server has one signed by the
//! cluster CA. ALPN offers `h2` then `http/1.1`, as kube-apiserver (Go's net/http) does.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// ALPN protocol IDs, in the server's order of preference.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// What a TLS server needs, and what a client must trust to reach it.
pub struct TlsIdentity {
    pub server_config: Arc<rustls::ServerConfig>,
    /// The CA certificate, PEM: what `certificate-authority-data` carries.
    pub ca_pem: String,
}

impl TlsIdentity {
    /// A fresh CA and serving certificate (ECDSA P-256, valid from an hour ago for a year).
    ///
    /// # Panics
    /// If key generation or signing fails (the crypto library is broken; nothing to recover).
    pub fn generate() -> TlsIdentity {
        let now = time::OffsetDateTime::now_utc();
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generating a CA key");
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kube-test-server API CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = now - time::Duration::hours(1);
        ca_params.not_after = now + time::Duration::days(365);
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("self-signing the API CA");

        let server_key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generating a server key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.subject_alt_names = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            SanType::DnsName("localhost".try_into().expect("localhost is a DNS name")),
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365);
        let server_cert = params
            .signed_by(&server_key, &ca)
            .expect("signing the server certificate");

        let chain = vec![
            CertificateDer::from(server_cert.der().to_vec()),
            CertificateDer::from(ca.der().to_vec()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        // The provider is named rather than taken from the process default, which the process
        // may not have installed (and which must not depend on whether a client ran first).
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3 with aws-lc-rs")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the server certificate matches its key");
        server_config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
        TlsIdentity {
            server_config: Arc::new(server_config),
            ca_pem: ca.pem(),
        }
    }
}
