//! The embedded CA: signs volume CSRs without a cluster. What a newcomer meets first, and what the
//! demo, the tests and the benchmarks run on.
//!
//! The CA key and certificate are created on first use and kept in `--local-ca-dir` (key mode
//! 0600, directory 0700), so certificates stay trusted across restarts.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{IssueFuture, IssueOrder, IssuedCertificate, Issuer, IssuerError};
use crate::x509::{self, CertificateContents, SignatureAlgorithm};

const KEY_FILE: &str = "ca.key";
const CERT_FILE: &str = "ca.crt";
/// Ten years: the embedded CA is a development and single-node tool, not a long-lived PKI root.
const CA_LIFETIME: time::Duration = time::Duration::days(3650);

/// An embedded certificate authority.
pub struct LocalCa {
    dir: PathBuf,
    ca_pem: String,
    /// The CA's subject, exactly as encoded in its certificate: the issuer of what it signs.
    name_der: Vec<u8>,
    /// The CA's key identifier, for the authority key identifier of what it signs.
    key_id: Vec<u8>,
    /// Nothing it signs may outlive it.
    not_after: OffsetDateTime,
    key: KeyPair,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("dir", &self.dir)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn misconfigured(path: &Path, what: impl std::fmt::Display) -> IssuerError {
    IssuerError::misconfigured(format!("{}: {what}", path.display()))
}

/// [`misconfigured`] by an error, which is kept as the source.
fn misconfigured_by<E>(path: &Path) -> impl FnOnce(E) -> IssuerError + '_
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |error| misconfigured(path, &error).with_source(error)
}

/// Writes a file through a temporary name and a rename, so a crash never leaves half a key.
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), IssuerError> {
    let temporary = path.with_extension("tmp");
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .map_err(misconfigured_by(&temporary))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(misconfigured_by(&temporary))?;
    fs::rename(&temporary, path).map_err(misconfigured_by(path))
}

impl LocalCa {
    /// Loads the CA from `dir`, creating it there on first use.
    pub fn load_or_create(dir: &Path) -> Result<LocalCa, IssuerError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(misconfigured_by(dir))?;
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        if key_path.exists() != cert_path.exists() {
            // Half a CA: making a new key would silently replace the trust anchor pods rely on.
            return Err(misconfigured(
                dir,
                format!(
                    "only one of {KEY_FILE} and {CERT_FILE} exists; restore the other or remove both"
                ),
            ));
        }
        if key_path.exists() {
            // Whatever created the files, the key is tightened to owner-only.
            fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600))
                .map_err(misconfigured_by(&key_path))?;
            let key_pem = fs::read_to_string(&key_path).map_err(misconfigured_by(&key_path))?;
            let ca_pem = fs::read_to_string(&cert_path).map_err(misconfigured_by(&cert_path))?;
            let key = KeyPair::from_pem(&key_pem).map_err(misconfigured_by(&key_path))?;
            let ca = LocalCa::from_parts(dir, ca_pem, key)?;
            tracing::info!(dir = %dir.display(), "embedded CA loaded");
            return Ok(ca);
        }

        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(misconfigured_by(dir))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "cert-manager-csi-driver");
        name.push(DnType::CommonName, "cert-manager-csi-driver embedded CA");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + CA_LIFETIME;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        let certificate = params.self_signed(&key).map_err(misconfigured_by(dir))?;
        let ca_pem = certificate.pem();
        write_new_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_new_file(&cert_path, ca_pem.as_bytes(), 0o644)?;
        tracing::info!(dir = %dir.display(), "embedded CA created");
        LocalCa::from_parts(dir, ca_pem, key)
    }

    fn from_parts(dir: &Path, ca_pem: String, key: KeyPair) -> Result<LocalCa, IssuerError> {
        let cert_path = dir.join(CERT_FILE);
        let der = crate::certificate::pem_certificates(&ca_pem)
            .map_err(misconfigured_by(&cert_path))?
            .swap_remove(0);
        let (_, ca) = X509Certificate::from_der(&der).map_err(misconfigured_by(&cert_path))?;
        let public_key = ca.public_key();
        if public_key.raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
            return Err(misconfigured(
                &cert_path,
                "the CA certificate is not for the CA key",
            ));
        }
        let key_id = ca
            .extensions()
            .iter()
            .find_map(|extension| match extension.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .unwrap_or_else(|| x509::key_identifier(&public_key.subject_public_key.data));
        let not_after = OffsetDateTime::from_unix_timestamp(ca.validity().not_after.timestamp())
            .map_err(misconfigured_by(&cert_path))?;
        Ok(LocalCa {
            dir: dir.to_path_buf(),
            not_after,
            name_der: ca.subject().as_raw().to_vec(),
            key_id,
            ca_pem,
            key,
        })
    }

    /// The CA certificate (PEM), the trust anchor for everything this CA signs.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Signs a request: subject, public key and SANs copied from the CSR (whose signature must
    /// verify), lifetime, usages and CA flag from the request, like cert-manager's CA issuer.
    pub fn sign(&self, order: &IssueOrder) -> Result<IssuedCertificate, IssuerError> {
        let rejected = |what: &str| IssuerError::rejected(format!("CSR {what}"));
        let block =
            pem::parse(&order.csr_pem).map_err(|e| rejected("is not PEM").with_source(e))?;
        let (_, csr) = X509CertificationRequest::from_der(block.contents())
            .map_err(|e| rejected("is not a valid PKCS#10 request").with_source(e))?;
        verify_request_signature(&csr).map_err(|reason| rejected(&reason))?;
        let info = &csr.certification_request_info;
        let alt_names =
            info.iter_attributes()
                .find_map(|attribute| match attribute.parsed_attribute() {
                    ParsedCriAttribute::ExtensionRequest(request) => request
                        .extensions
                        .iter()
                        .find(|extension| extension.oid.to_id_string() == "2.5.29.17")
                        .map(|extension| extension.value),
                    _ => None,
                });
        let lifetime = time::Duration::try_from(order.duration)
            .map_err(|e| IssuerError::rejected("duration is too long").with_source(e))?;
        let now = OffsetDateTime::now_utc();
        // Capped at the CA's own end, as cert-manager's CA issuer does.
        let not_after = now
            .checked_add(lifetime)
            .unwrap_or(self.not_after)
            .min(self.not_after);
        let serial = random_serial();
        let contents = CertificateContents {
            serial: serial.as_ref(),
            issuer_name_der: &self.name_der,
            issuer_key_id: &self.key_id,
            subject_name_der: info.subject.as_raw(),
            subject_public_key_info_der: info.subject_pki.raw,
            subject_public_key_bits: &info.subject_pki.subject_public_key.data,
            alt_names,
            not_before: now,
            not_after,
            usages: &order.usages,
            is_ca: order.is_ca,
        };
        let der = x509::certificate(&contents, &self.key, SignatureAlgorithm::EcdsaSha256)
            .map_err(|e| IssuerError::misconfigured(format!("cannot sign: {e}")).with_source(e))?;
        Ok(IssuedCertificate {
            certificate_request: None,
            chain_pem: pem::encode(&pem::Pem::new("CERTIFICATE", der)),
            ca_pem: self.ca_pem.clone(),
        })
    }
}

/// Checks the request's self-signature (proof that the requester holds the key) with aws-lc
/// directly: x509-parser's own check lacks ECDSA P-521 with SHA-512, which Go and this driver
/// use for P-521 keys.
fn verify_request_signature(csr: &X509CertificationRequest<'_>) -> Result<(), String> {
    use aws_lc_rs::signature::{self, VerificationAlgorithm};
    let spki = &csr.certification_request_info.subject_pki;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|parameters| parameters.as_oid().ok())
        .map(|oid| oid.to_id_string());
    let algorithm: &'static dyn VerificationAlgorithm = match (
        csr.signature_algorithm.algorithm.to_id_string().as_str(),
        curve.as_deref(),
    ) {
        ("1.2.840.113549.1.1.11", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        ("1.2.840.10045.4.3.2", Some("1.2.840.10045.3.1.7")) => &signature::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some("1.2.840.10045.3.1.7")) => &signature::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.2", Some("1.3.132.0.34")) => &signature::ECDSA_P384_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some("1.3.132.0.34")) => &signature::ECDSA_P384_SHA384_ASN1,
        ("1.2.840.10045.4.3.4", Some("1.3.132.0.35")) => &signature::ECDSA_P521_SHA512_ASN1,
        ("1.3.101.112", _) => &signature::ED25519,
        (other, _) => return Err(format!("uses an unsupported signature algorithm {other}")),
    };
    signature::UnparsedPublicKey::new(algorithm, spki.subject_public_key.data.as_ref())
        .verify(
            csr.certification_request_info.raw,
            csr.signature_value.data.as_ref(),
        )
        .map_err(|_| "signature does not verify".to_string())
}

/// A positive 128-bit serial, random as RFC 5280 recommends.
fn random_serial() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
    // Positive and full length: the top bit clear, the next one set.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    bytes
}

impl Issuer for LocalCa {
    fn backend_name(&self) -> &'static str {
        "local-ca"
    }

    fn signs_on_this_node(&self) -> bool {
        true
    }

    fn issue<'a>(&'a self, order: &'a IssueOrder) -> IssueFuture<'a> {
        Box::pin(async move {
            // The issuer reference is validated and recorded even though the embedded CA signs
            // everything itself: the same pod spec must work unchanged in a cluster.
            tracing::debug!(
                volume_id = %order.volume_id,
                pod = %format_args!("{}/{}", order.pod.namespace, order.pod.name),
                issuer_name = %order.issuer.name,
                issuer_kind = %order.issuer.kind,
                issuer_group = %order.issuer.group,
                "signing with the embedded CA"
            );
            self.sign(order)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{KeyAlgorithm, KeyEncoding, KeySpec, KeyUsage, PodInfo, Subject};

    fn request(csr_pem: String, duration: std::time::Duration) -> IssueOrder {
        IssueOrder {
            volume_id: "csi-t".into(),
            pod: PodInfo {
                name: "p".into(),
                namespace: "n".into(),
                uid: "u".into(),
                service_account: None,
            },
            issuer: crate::attributes::IssuerRef {
                name: "ca".into(),
                kind: "Issuer".into(),
                group: "cert-manager.io".into(),
            },
            csr_pem,
            duration,
            is_ca: false,
            usages: vec![KeyUsage::ServerAuth],
            annotations: Default::default(),
            token: None,
            resuming: false,
        }
    }

    fn csr() -> String {
        let mut subject = Subject::default();
        subject.push(crate::attributes::subject::COMMON_NAME, "t");
        csr_for(&subject, &[])
    }

    fn csr_for(subject: &Subject, dns: &[String]) -> String {
        let key = crate::keys::generate(&KeySpec {
            algorithm: KeyAlgorithm::Ecdsa,
            size: 256,
            encoding: KeyEncoding::Pkcs8,
        })
        .unwrap();
        let contents = x509::RequestContents {
            subject,
            alt_names: x509::AltNames {
                dns,
                ..Default::default()
            },
        };
        let der = x509::certificate_request(
            &contents,
            &key.signing_key().unwrap(),
            SignatureAlgorithm::EcdsaSha256,
        )
        .unwrap();
        pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der))
    }

    #[test]
    fn nothing_it_signs_outlives_it() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::load_or_create(dir.path()).unwrap();
        // Go's longest duration, far beyond the CA's ten years.
        let long = std::time::Duration::from_secs(2_562_047 * 3600);
        let issued = ca.sign(&request(csr(), long)).unwrap();
        let leaf = crate::certificate::inspect_leaf(&issued.chain_pem).unwrap();
        let root = crate::certificate::inspect_leaf(&issued.ca_pem).unwrap();
        assert_eq!(leaf.not_after, root.not_after);
    }

    #[test]
    fn alt_names_are_critical_when_the_subject_is_empty() {
        // The request's SAN extension is never critical (as Go writes it); the certificate's is
        // when the subject is empty (RFC 5280 §4.2.1.6), as cert-manager sets it.
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::load_or_create(dir.path()).unwrap();
        let dns = ["a.example.com".to_string()];
        let mut named = Subject::default();
        named.push(crate::attributes::subject::COMMON_NAME, "a");
        for (subject, critical) in [(Subject::default(), true), (named, false)] {
            let issued = ca
                .sign(&request(
                    csr_for(&subject, &dns),
                    std::time::Duration::from_secs(3600),
                ))
                .unwrap();
            let block = pem::parse(&issued.chain_pem).unwrap();
            let (_, certificate) = X509Certificate::from_der(block.contents()).unwrap();
            let san = certificate
                .extensions()
                .iter()
                .find(|e| e.oid.to_id_string() == "2.5.29.17")
                .expect("a SAN extension");
            assert_eq!(san.critical, critical, "subject {subject:?}");
        }
    }

    #[test]
    fn half_a_ca_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = LocalCa::load_or_create(dir.path()).unwrap();
        let reloaded = LocalCa::load_or_create(dir.path()).unwrap();
        assert_eq!(
            first.ca_pem(),
            reloaded.ca_pem(),
            "reloaded, not regenerated"
        );
        fs::remove_file(dir.path().join(CERT_FILE)).unwrap();
        let error = LocalCa::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(error.contains("only one of"), "{error}");
        assert!(dir.path().join(KEY_FILE).exists(), "the key is kept");
    }
}
