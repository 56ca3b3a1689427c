//! Step 2 of a volume's path: the private key (generated on the node, never sent anywhere) and
//! the PKCS#10 request that carries its public half to the issuer.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P521_SHA512_ASN1_SIGNING,
    EcdsaKeyPair, Ed25519KeyPair,
};
use pkcs8::der::{Decode, Encode};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SignatureAlgorithm,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

use crate::attributes::{CertRequestSpec, KeyAlgorithm, KeyEncoding, KeySpec, KeyUsage};

/// Why a key or request could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The crypto library cannot generate this kind of key.
    #[error("cannot generate a {0} key: {1}")]
    Unsupported(KeySpec, &'static str),
    /// The crypto library failed while generating.
    #[error("generating a {0} key failed")]
    Generation(KeySpec),
    /// A stored key could not be read back.
    #[error("private key is unreadable: {0}")]
    Unreadable(String),
    /// Building or signing the CSR failed.
    #[error("building the certificate signing request failed: {0}")]
    Csr(#[from] rcgen::Error),
}

/// `rsaEncryption`, the algorithm identifier PKCS#8 wraps PKCS#1 keys in.
const RSA_ENCRYPTION: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");
const SECP256R1: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// A private key held in memory as PKCS#8 DER. Zeroed on drop; never printed.
pub struct PrivateKey {
    algorithm: KeyAlgorithm,
    size: u32,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .field("size", &self.size)
            .field("material", &"<redacted>")
            .finish()
    }
}

/// Generates a fresh key pair as the volume asks.
pub fn generate(spec: &KeySpec) -> Result<PrivateKey, KeyError> {
    let rng = SystemRandom::new();
    let failed = |_| KeyError::Generation(*spec);
    let pkcs8: Vec<u8> = match spec.algorithm {
        KeyAlgorithm::Rsa => {
            let size = match spec.size {
                2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                8192 => aws_lc_rs::rsa::KeySize::Rsa8192,
                _ => {
                    return Err(KeyError::Unsupported(
                        *spec,
                        "this build generates RSA keys of 2048, 3072, 4096 or 8192 bits",
                    ));
                }
            };
            let pair = aws_lc_rs::rsa::KeyPair::generate(size).map_err(failed)?;
            pair.as_der().map_err(failed)?.as_ref().to_vec()
        }
        KeyAlgorithm::Ecdsa => {
            let curve = match spec.size {
                256 => &ECDSA_P256_SHA256_ASN1_SIGNING,
                384 => &ECDSA_P384_SHA384_ASN1_SIGNING,
                521 => &ECDSA_P521_SHA512_ASN1_SIGNING,
                _ => {
                    return Err(KeyError::Unsupported(
                        *spec,
                        "ECDSA curves are P-256, P-384, P-521",
                    ));
                }
            };
            EcdsaKeyPair::generate_pkcs8(curve, &rng)
                .map_err(failed)?
                .as_ref()
                .to_vec()
        }
        KeyAlgorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(failed)?
            .as_ref()
            .to_vec(),
    };
    Ok(PrivateKey {
        algorithm: spec.algorithm,
        size: spec.size,
        pkcs8: Zeroizing::new(pkcs8),
    })
}

impl PrivateKey {
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Bits for RSA, curve size for ECDSA, 0 for Ed25519.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The key as PEM in the requested encoding (`RSA PRIVATE KEY` or `PRIVATE KEY`).
    pub fn to_pem(&self, encoding: KeyEncoding) -> Result<Zeroizing<String>, KeyError> {
        let block = match (encoding, self.algorithm) {
            (KeyEncoding::Pkcs1, KeyAlgorithm::Rsa) => {
                let info = pkcs8::PrivateKeyInfo::from_der(&self.pkcs8)
                    .map_err(|e| KeyError::Unreadable(e.to_string()))?;
                pem::Pem::new("RSA PRIVATE KEY", info.private_key.to_vec())
            }
            _ => pem::Pem::new("PRIVATE KEY", self.pkcs8.to_vec()),
        };
        Ok(Zeroizing::new(pem::encode(&block)))
    }

    /// Reads a key written by [`PrivateKey::to_pem`] (PKCS#1 or PKCS#8), e.g. to reuse it on
    /// renewal.
    pub fn from_pem(text: &str) -> Result<PrivateKey, KeyError> {
        let unreadable = |e: &dyn fmt::Display| KeyError::Unreadable(e.to_string());
        let block = pem::parse(text).map_err(|e| unreadable(&e))?;
        let pkcs8 = match block.tag() {
            "PRIVATE KEY" => block.contents().to_vec(),
            "RSA PRIVATE KEY" => pkcs8::PrivateKeyInfo::new(
                pkcs8::AlgorithmIdentifierRef {
                    oid: RSA_ENCRYPTION,
                    parameters: Some(pkcs8::der::asn1::AnyRef::NULL),
                },
                block.contents(),
            )
            .to_der()
            .map_err(|e| unreadable(&e))?,
            other => {
                return Err(KeyError::Unreadable(format!(
                    "unexpected PEM block {other}"
                )));
            }
        };
        let info = pkcs8::PrivateKeyInfo::from_der(&pkcs8).map_err(|e| unreadable(&e))?;
        let (algorithm, size) = match info.algorithm.oid {
            RSA_ENCRYPTION => {
                let pair =
                    aws_lc_rs::rsa::KeyPair::from_pkcs8(&pkcs8).map_err(|e| unreadable(&e))?;
                (
                    KeyAlgorithm::Rsa,
                    u32::try_from(pair.public_modulus_len() * 8).unwrap_or(0),
                )
            }
            EC_PUBLIC_KEY => {
                let curve = info
                    .algorithm
                    .parameters_oid()
                    .map_err(|e| unreadable(&e))?;
                let size = match curve {
                    SECP256R1 => 256,
                    SECP384R1 => 384,
                    SECP521R1 => 521,
                    other => {
                        return Err(KeyError::Unreadable(format!("unsupported curve {other}")));
                    }
                };
                (KeyAlgorithm::Ecdsa, size)
            }
            ED25519 => (KeyAlgorithm::Ed25519, 0),
            other => {
                return Err(KeyError::Unreadable(format!(
                    "unsupported key algorithm {other}"
                )));
            }
        };
        let key = PrivateKey {
            algorithm,
            size,
            pkcs8: Zeroizing::new(pkcs8),
        };
        key.signing_key()?;
        Ok(key)
    }

    fn signature_algorithm(&self) -> &'static SignatureAlgorithm {
        match (self.algorithm, self.size) {
            (KeyAlgorithm::Rsa, _) => &rcgen::PKCS_RSA_SHA256,
            (KeyAlgorithm::Ecdsa, 384) => &rcgen::PKCS_ECDSA_P384_SHA384,
            (KeyAlgorithm::Ecdsa, 521) => &rcgen::PKCS_ECDSA_P521_SHA512,
            (KeyAlgorithm::Ecdsa, _) => &rcgen::PKCS_ECDSA_P256_SHA256,
            (KeyAlgorithm::Ed25519, _) => &rcgen::PKCS_ED25519,
        }
    }

    /// The key in the form the CSR and certificate builder signs with.
    pub fn signing_key(&self) -> Result<KeyPair, KeyError> {
        let der = PrivatePkcs8KeyDer::from(self.pkcs8.as_slice());
        KeyPair::from_pkcs8_der_and_sign_algo(&der, self.signature_algorithm())
            .map_err(|e| KeyError::Unreadable(e.to_string()))
    }
}

/// rcgen's names for the key usage bits.
pub fn key_usage_bit(usage: KeyUsage) -> Option<KeyUsagePurpose> {
    Some(match usage {
        KeyUsage::Signing | KeyUsage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
        KeyUsage::ContentCommitment => KeyUsagePurpose::ContentCommitment,
        KeyUsage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
        KeyUsage::KeyAgreement => KeyUsagePurpose::KeyAgreement,
        KeyUsage::DataEncipherment => KeyUsagePurpose::DataEncipherment,
        KeyUsage::CertSign => KeyUsagePurpose::KeyCertSign,
        KeyUsage::CrlSign => KeyUsagePurpose::CrlSign,
        KeyUsage::EncipherOnly => KeyUsagePurpose::EncipherOnly,
        KeyUsage::DecipherOnly => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

/// rcgen's names for the extended key usages (OIDs as cert-manager maps them).
pub fn extended_key_usage(usage: KeyUsage) -> Option<ExtendedKeyUsagePurpose> {
    Some(match usage {
        KeyUsage::Any => ExtendedKeyUsagePurpose::Any,
        KeyUsage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
        KeyUsage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        KeyUsage::CodeSigning => ExtendedKeyUsagePurpose::CodeSigning,
        KeyUsage::EmailProtection | KeyUsage::Smime => ExtendedKeyUsagePurpose::EmailProtection,
        KeyUsage::IpsecEndSystem => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5]),
        KeyUsage::IpsecTunnel => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6]),
        KeyUsage::IpsecUser => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7]),
        KeyUsage::Timestamping => ExtendedKeyUsagePurpose::TimeStamping,
        KeyUsage::OcspSigning => ExtendedKeyUsagePurpose::OcspSigning,
        KeyUsage::MicrosoftSgc => {
            ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 3])
        }
        KeyUsage::NetscapeSgc => ExtendedKeyUsagePurpose::Other(vec![2, 16, 840, 1, 113730, 4, 1]),
        _ => return None,
    })
}

/// Sets usages and the CA flag on certificate parameters, as the request asks.
pub fn apply_usages(params: &mut CertificateParams, usages: &[KeyUsage], is_ca: bool) {
    for usage in usages {
        if let Some(bit) = key_usage_bit(*usage)
            && !params.key_usages.contains(&bit)
        {
            params.key_usages.push(bit);
        }
        if let Some(eku) = extended_key_usage(*usage)
            && !params.extended_key_usages.contains(&eku)
        {
            params.extended_key_usages.push(eku);
        }
    }
    params.is_ca = if is_ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::NoCa
    };
}

/// Builds the PEM CSR for a volume: subject, SANs, usages and CA flag as requested, signed with
/// the volume's key (proof of possession).
pub fn build_csr(spec: &CertRequestSpec, key: &PrivateKey) -> Result<String, KeyError> {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    if let Some(common_name) = &spec.common_name {
        subject.push(DnType::CommonName, common_name.as_str());
    }
    params.distinguished_name = subject;
    for name in &spec.dns_names {
        params
            .subject_alt_names
            .push(SanType::DnsName(name.as_str().try_into()?));
    }
    for ip in &spec.ip_sans {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    for uri in &spec.uri_sans {
        params
            .subject_alt_names
            .push(SanType::URI(uri.as_str().try_into()?));
    }
    apply_usages(&mut params, &spec.usages, spec.is_ca);
    let signing_key = key.signing_key()?;
    Ok(params.serialize_request(&signing_key)?.pem()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_material() {
        let key = generate(&KeySpec {
            algorithm: KeyAlgorithm::Ecdsa,
            size: 256,
            encoding: KeyEncoding::Pkcs8,
        })
        .unwrap();
        let printed = format!("{key:?}");
        assert!(printed.contains("<redacted>"));
        assert!(!printed.contains("pkcs8"), "{printed}");
    }

    #[test]
    fn pem_round_trips_in_both_encodings() {
        let rsa = generate(&KeySpec::DEFAULT).unwrap();
        let pkcs1 = rsa.to_pem(KeyEncoding::Pkcs1).unwrap();
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let back = PrivateKey::from_pem(&pkcs1).unwrap();
        assert_eq!((back.algorithm(), back.size()), (KeyAlgorithm::Rsa, 2048));
        assert_eq!(
            *back.to_pem(KeyEncoding::Pkcs8).unwrap(),
            *rsa.to_pem(KeyEncoding::Pkcs8).unwrap()
        );

        for (algorithm, size) in [(KeyAlgorithm::Ecdsa, 384), (KeyAlgorithm::Ed25519, 0)] {
            let spec = KeySpec {
                algorithm,
                size,
                encoding: KeyEncoding::Pkcs8,
            };
            let key = generate(&spec).unwrap();
            let text = key.to_pem(KeyEncoding::Pkcs8).unwrap();
            assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
            let back = PrivateKey::from_pem(&text).unwrap();
            assert_eq!((back.algorithm(), back.size()), (algorithm, size));
        }
    }

    #[test]
    fn unsupported_rsa_size_says_so() {
        let spec = KeySpec {
            size: 2049,
            ..KeySpec::DEFAULT
        };
        let error = generate(&spec).unwrap_err().to_string();
        assert!(error.contains("RSA 2049"), "{error}");
    }
}
