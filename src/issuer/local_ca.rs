//! The embedded CA: signs volume CSRs without a cluster. What a newcomer meets first, and what the
//! demo, the tests and the benchmarks run on.
//!
//! The CA key and certificate are created on first use and kept in `--local-ca-dir` (key mode
//! 0600, directory 0700), so certificates stay trusted across restarts.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber, SubjectPublicKeyInfo,
};
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::{IssueFuture, IssueRequest, IssuedCertificate, Issuer, IssuerError};
use crate::keys::apply_usages;

const KEY_FILE: &str = "ca.key";
const CERT_FILE: &str = "ca.crt";
/// Ten years: the embedded CA is a development and single-node tool, not a long-lived PKI root.
const CA_LIFETIME: time::Duration = time::Duration::days(3650);

/// An embedded certificate authority.
pub struct LocalCa {
    dir: PathBuf,
    ca_pem: String,
    issuer: rcgen::Issuer<'static, KeyPair>,
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
    IssuerError::Misconfigured(format!("{}: {what}", path.display()))
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
        .map_err(|e| misconfigured(&temporary, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| misconfigured(&temporary, e))?;
    fs::rename(&temporary, path).map_err(|e| misconfigured(path, e))
}

impl LocalCa {
    /// Loads the CA from `dir`, creating it there on first use.
    pub fn load_or_create(dir: &Path) -> Result<LocalCa, IssuerError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| misconfigured(dir, e))?;
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        if key_path.exists() && cert_path.exists() {
            // Whatever created the files, the key is tightened to owner-only.
            fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600))
                .map_err(|e| misconfigured(&key_path, e))?;
            let key_pem = fs::read_to_string(&key_path).map_err(|e| misconfigured(&key_path, e))?;
            let ca_pem =
                fs::read_to_string(&cert_path).map_err(|e| misconfigured(&cert_path, e))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| misconfigured(&key_path, e))?;
            let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, key)
                .map_err(|e| misconfigured(&cert_path, e))?;
            tracing::info!(dir = %dir.display(), "embedded CA loaded");
            return Ok(LocalCa {
                dir: dir.to_path_buf(),
                ca_pem,
                issuer,
            });
        }

        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| misconfigured(dir, e))?;
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
        params.serial_number = Some(random_serial());
        let certificate = params
            .self_signed(&key)
            .map_err(|e| misconfigured(dir, e))?;
        let ca_pem = certificate.pem();
        write_new_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_new_file(&cert_path, ca_pem.as_bytes(), 0o644)?;
        tracing::info!(dir = %dir.display(), "embedded CA created");
        Ok(LocalCa {
            dir: dir.to_path_buf(),
            ca_pem,
            issuer: rcgen::Issuer::new(params, key),
        })
    }

    /// The CA certificate (PEM), the trust anchor for everything this CA signs.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Signs a request: subject and SANs from the CSR (whose signature must verify), lifetime,
    /// usages and CA flag from the request, like cert-manager's CA issuer.
    pub fn sign(&self, request: &IssueRequest) -> Result<IssuedCertificate, IssuerError> {
        let rejected = |what: &str| IssuerError::Rejected(format!("CSR {what}"));
        let block = pem::parse(&request.csr_pem).map_err(|_| rejected("is not PEM"))?;
        let (_, csr) = X509CertificationRequest::from_der(block.contents())
            .map_err(|_| rejected("is not a valid PKCS#10 request"))?;
        csr.verify_signature()
            .map_err(|_| rejected("signature does not verify"))?;
        let info = &csr.certification_request_info;
        let public_key = SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
            .map_err(|e| IssuerError::Rejected(format!("CSR public key is unsupported: {e}")))?;

        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        for attribute in info.subject.iter_attributes() {
            let Some(oid) = attribute.attr_type().iter() else {
                continue;
            };
            let oid: Vec<u64> = oid.collect();
            let value = attribute
                .as_str()
                .map_err(|_| rejected("subject has a value that is not a string"))?;
            subject.push(DnType::from_oid(&oid), value);
        }
        params.distinguished_name = subject;
        if let Some(extensions) = csr.requested_extensions() {
            for extension in extensions {
                if let ParsedExtension::SubjectAlternativeName(names) = extension {
                    for name in &names.general_names {
                        params.subject_alt_names.push(san_from_csr(name)?);
                    }
                }
            }
        }
        apply_usages(&mut params, &request.usages, request.is_ca);
        let now = OffsetDateTime::now_utc();
        let lifetime = time::Duration::try_from(request.duration)
            .map_err(|_| IssuerError::Rejected("duration is too long".into()))?;
        params.not_before = now;
        params.not_after = now
            .checked_add(lifetime)
            .ok_or_else(|| IssuerError::Rejected("duration is too long".into()))?;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;

        let certificate = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|e| IssuerError::Rejected(format!("cannot sign: {e}")))?;
        Ok(IssuedCertificate {
            chain_pem: certificate.pem(),
            ca_pem: self.ca_pem.clone(),
        })
    }
}

fn san_from_csr(name: &GeneralName<'_>) -> Result<SanType, IssuerError> {
    let bad = |what: &str| IssuerError::Rejected(format!("CSR has an invalid {what} SAN"));
    Ok(match name {
        GeneralName::DNSName(dns) => SanType::DnsName((*dns).try_into().map_err(|_| bad("DNS"))?),
        GeneralName::URI(uri) => SanType::URI((*uri).try_into().map_err(|_| bad("URI"))?),
        GeneralName::RFC822Name(email) => {
            SanType::Rfc822Name((*email).try_into().map_err(|_| bad("email"))?)
        }
        GeneralName::IPAddress(bytes) => SanType::IpAddress(match bytes.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).map_err(|_| bad("IP"))?),
            16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).map_err(|_| bad("IP"))?),
            _ => return Err(bad("IP")),
        }),
        _ => {
            return Err(IssuerError::Rejected(
                "CSR has an unsupported SAN type".into(),
            ));
        }
    })
}

/// A positive 128-bit serial, random as RFC 5280 recommends.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

impl Issuer for LocalCa {
    fn backend_name(&self) -> &'static str {
        "local-ca"
    }

    fn signs_on_this_node(&self) -> bool {
        true
    }

    fn issue<'a>(&'a self, request: &'a IssueRequest) -> IssueFuture<'a> {
        Box::pin(async move {
            // The issuer reference is validated and recorded even though the embedded CA signs
            // everything itself: the same pod spec must work unchanged in a cluster.
            tracing::debug!(
                volume_id = %request.volume_id,
                pod = %format_args!("{}/{}", request.pod.namespace, request.pod.name),
                issuer_name = %request.issuer.name,
                issuer_kind = %request.issuer.kind,
                issuer_group = %request.issuer.group,
                "signing with the embedded CA"
            );
            self.sign(request)
        })
    }
}
