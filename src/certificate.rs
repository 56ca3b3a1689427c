//! Reading issued certificates: what the renewal clock, the restart path and the demo need to know
//! about a PEM chain.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// Why a certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("no PEM CERTIFICATE block found")]
    Missing,
    #[error("certificate is not valid PEM: {0}")]
    Pem(#[from] pem::PemError),
    #[error("certificate is not valid X.509: {0}")]
    X509(String),
}

/// A readable summary of a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    pub subject_alt_names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub public_key: String,
    pub is_ca: bool,
}

impl CertificateInfo {
    /// The certificate's actual lifetime.
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }
}

/// What the driver keeps in memory about the certificate in each volume: enough to schedule
/// renewals and report expiry. At 10,000 volumes the full [`CertificateInfo`] would cost
/// megabytes; the file in the volume has the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    pub serial: Serial,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// A certificate's serial number as the summary keeps it: RFC 5280 serials (at most 20 octets)
/// inline, which saves an allocation of ~64 bytes a volume; anything else as the text it came as.
/// Printed as colon-separated lowercase hex, like [`CertificateInfo::serial`].
#[derive(Clone, PartialEq, Eq)]
pub enum Serial {
    Inline { len: u8, octets: [u8; 20] },
    Text(Box<str>),
}

impl Serial {
    /// From the colon-separated hex form (`01:a2:…`).
    pub fn from_colon_hex(text: &str) -> Serial {
        let mut octets = [0u8; 20];
        let mut len = 0usize;
        for part in text.split(':') {
            let parsed = (part.len() == 2)
                .then(|| u8::from_str_radix(part, 16).ok())
                .flatten()
                .filter(|_| part.bytes().all(|b| !b.is_ascii_uppercase()));
            match (parsed, octets.get_mut(len)) {
                (Some(octet), Some(slot)) => {
                    *slot = octet;
                    len += 1;
                }
                _ => return Serial::Text(text.into()),
            }
        }
        Serial::Inline {
            len: len as u8,
            octets,
        }
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Serial::Inline { len, octets } => {
                for (index, octet) in octets[..usize::from(*len)].iter().enumerate() {
                    if index > 0 {
                        f.write_str(":")?;
                    }
                    write!(f, "{octet:02x}")?;
                }
                Ok(())
            }
            Serial::Text(text) => f.write_str(text),
        }
    }
}

impl std::fmt::Debug for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Serial({self})")
    }
}

impl CertificateSummary {
    /// The certificate's actual lifetime.
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }
}

impl From<&CertificateInfo> for CertificateSummary {
    fn from(info: &CertificateInfo) -> CertificateSummary {
        CertificateSummary {
            serial: Serial::from_colon_hex(&info.serial),
            not_before: info.not_before,
            not_after: info.not_after,
        }
    }
}

fn to_system_time(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// All certificates of a PEM bundle, in order, as DER.
pub fn pem_certificates(bundle: &str) -> Result<Vec<Vec<u8>>, CertificateError> {
    let certificates: Vec<Vec<u8>> = pem::parse_many(bundle)?
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certificates.is_empty() {
        return Err(CertificateError::Missing);
    }
    Ok(certificates)
}

/// Summarises the first certificate of a PEM chain (the leaf).
pub fn inspect_leaf(chain_pem: &str) -> Result<CertificateInfo, CertificateError> {
    let der = pem_certificates(chain_pem)?.swap_remove(0);
    inspect_der(&der)
}

/// Summarises one DER certificate.
pub fn inspect_der(der: &[u8]) -> Result<CertificateInfo, CertificateError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertificateError::X509(e.to_string()))?;
    let mut subject_alt_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            subject_alt_names.push(match name {
                GeneralName::DNSName(dns) => format!("DNS:{dns}"),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => format!(
                        "IP:{}",
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default())
                    ),
                    16 => format!(
                        "IP:{}",
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default())
                    ),
                    _ => "IP:<malformed>".to_string(),
                },
                GeneralName::URI(uri) => format!("URI:{uri}"),
                GeneralName::RFC822Name(email) => format!("email:{email}"),
                other => format!("{other:?}"),
            });
        }
    }
    let public_key = match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {} bits", rsa.key_size()),
        Ok(PublicKey::EC(point)) => format!("ECDSA P-{}", point.key_size()),
        _ if cert.public_key().algorithm.algorithm.to_id_string() == "1.3.101.112" => {
            "Ed25519".to_string()
        }
        _ => cert.public_key().algorithm.algorithm.to_id_string(),
    };
    Ok(CertificateInfo {
        serial: cert.raw_serial_as_string(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        subject_alt_names,
        not_before: to_system_time(cert.validity().not_before.timestamp()),
        not_after: to_system_time(cert.validity().not_after.timestamp()),
        public_key,
        is_ca: cert.is_ca(),
    })
}

/// Whether the PEM private key is the key of the chain's leaf certificate.
pub fn key_matches_certificate(key_pem: &str, chain_pem: &str) -> Result<bool, CertificateError> {
    use rcgen::PublicKeyData;
    let key = crate::keys::PrivateKey::from_pem(key_pem)
        .and_then(|key| key.signing_key())
        .map_err(|e| CertificateError::X509(e.to_string()))?;
    let der = pem_certificates(chain_pem)?.swap_remove(0);
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| CertificateError::X509(e.to_string()))?;
    Ok(cert.public_key().raw == key.subject_public_key_info().as_slice())
}

/// Whether the chain's leaf is signed by the CA certificate.
pub fn signed_by(chain_pem: &str, ca_pem: &str) -> Result<bool, CertificateError> {
    let leaf_der = pem_certificates(chain_pem)?.swap_remove(0);
    let ca_der = pem_certificates(ca_pem)?.swap_remove(0);
    let (_, leaf) =
        X509Certificate::from_der(&leaf_der).map_err(|e| CertificateError::X509(e.to_string()))?;
    let (_, ca) =
        X509Certificate::from_der(&ca_der).map_err(|e| CertificateError::X509(e.to_string()))?;
    Ok(leaf.verify_signature(Some(ca.public_key())).is_ok())
}

#[cfg(test)]
mod tests {
    use super::Serial;

    /// The summary prints a serial exactly as the certificate's full reading does, whether it is
    /// held inline (up to 20 octets) or kept as text.
    #[test]
    fn serials_print_as_they_were_read() {
        for text in [
            "01",
            "00:ff",
            "7a:3c:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:01:02",
            // 21 octets: not RFC 5280, kept as text.
            "7a:3c:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:01:02:03",
            "",
            "not:hex",
            "AB:CD",
            "1:2",
        ] {
            assert_eq!(Serial::from_colon_hex(text).to_string(), text);
        }
        assert!(matches!(
            Serial::from_colon_hex("7a:3c:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:01:02"),
            Serial::Inline { len: 20, .. }
        ));
        assert!(matches!(Serial::from_colon_hex("AB:CD"), Serial::Text(_)));
    }
}
