//! Step 3 of a volume's path: the private key (generated on the node, never sent anywhere) and
//! the PKCS#10 request that carries its public half to the issuer.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P521_SHA512_ASN1_SIGNING,
    EcdsaKeyPair, Ed25519KeyPair,
};
use pkcs8::der::{Decode, Encode};
use rcgen::{KeyPair, SignatureAlgorithm};
use rustls_pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

use crate::attributes::{CertRequestSpec, KeyAlgorithm, KeyEncoding, KeySpec};
use crate::x509::{self, AltNames, RequestContents, X509Error};

pub mod jks;
pub mod keystores;
pub mod pkcs12;
pub mod pool;

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
    Csr(#[from] X509Error),
    /// Writing a keystore or truststore (PKCS#12 or JKS) failed.
    #[error("writing the keystore failed: {0}")]
    Keystore(String),
}

impl KeyError {
    /// The gRPC code kubelet sees: a key the volume asks for that cannot be made is the caller's
    /// to change; anything else is the driver's own failure.
    pub fn code(&self) -> tonic::Code {
        match self {
            KeyError::Unsupported(..) => tonic::Code::InvalidArgument,
            KeyError::Generation(_)
            | KeyError::Unreadable(_)
            | KeyError::Csr(_)
            | KeyError::Keystore(_) => tonic::Code::Internal,
        }
    }
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
                2048 => Some(aws_lc_rs::rsa::KeySize::Rsa2048),
                3072 => Some(aws_lc_rs::rsa::KeySize::Rsa3072),
                4096 => Some(aws_lc_rs::rsa::KeySize::Rsa4096),
                8192 => Some(aws_lc_rs::rsa::KeySize::Rsa8192),
                2049..=8191 => None,
                _ => {
                    return Err(KeyError::Unsupported(
                        *spec,
                        "RSA keys must be 2048 to 8192 bits",
                    ));
                }
            };
            match size {
                Some(size) => {
                    let pair = aws_lc_rs::rsa::KeyPair::generate(size).map_err(failed)?;
                    pair.as_der().map_err(failed)?.as_ref().to_vec()
                }
                // aws-lc generates only the four common sizes; any other size in range is made
                // by the pure-Rust `rsa` crate (slower, but the size is honoured exactly).
                None => {
                    use rsa::pkcs8::EncodePrivateKey;
                    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, spec.size as usize)
                        .map_err(|_| KeyError::Generation(*spec))?;
                    key.to_pkcs8_der()
                        .map_err(|_| KeyError::Generation(*spec))?
                        .as_bytes()
                        .to_vec()
                }
            }
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
        // PKCS#8 v1 (no embedded public key): what openssl and Go read.
        KeyAlgorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8v1(&rng)
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
            // SEC1 (RFC 5915): what the Go driver writes for ECDSA keys with its default PKCS1
            // encoding, so a volume adopted from it can reuse its key.
            "EC PRIVATE KEY" => sec1_to_pkcs8(block.contents())?,
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

/// Builds the PEM CSR for a volume: subject and SANs as requested, signed with the volume's key
/// (proof of possession); the bytes jetstack's driver sends. Usages and the CA flag go in the
/// CertificateRequest's spec.
pub fn build_csr(spec: &CertRequestSpec, key: &PrivateKey) -> Result<String, KeyError> {
    let signing_key = key.signing_key()?;
    let contents = RequestContents {
        subject: &spec.subject,
        alt_names: AltNames {
            dns: &spec.dns_names,
            ips: &spec.ip_sans,
            uris: &spec.uri_sans,
        },
    };
    let algorithm = x509::SignatureAlgorithm::for_key(key.algorithm, key.size);
    let der = x509::certificate_request(&contents, &signing_key, algorithm)?;
    Ok(pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der)))
}

impl PrivateKey {
    /// The key as PKCS#8 DER (for keystores). Zeroed on drop.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }
}

/// A SEC1 `ECPrivateKey` (it names its curve) as PKCS#8, the form the driver keeps keys in.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Vec<u8>, KeyError> {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING,
        ECDSA_P521_SHA512_ASN1_SIGNING, EcdsaKeyPair,
    };
    [
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &ECDSA_P384_SHA384_ASN1_SIGNING,
        &ECDSA_P521_SHA512_ASN1_SIGNING,
    ]
    .into_iter()
    .find_map(|curve| EcdsaKeyPair::from_private_key_der(curve, sec1).ok())
    .and_then(|pair| pair.to_pkcs8v1().ok())
    .map(|document| document.as_ref().to_vec())
    .ok_or_else(|| {
        KeyError::Unreadable("an EC PRIVATE KEY on a curve other than P-256/384/521".into())
    })
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
    fn only_an_unsupported_key_is_the_callers_to_change() {
        let table = [
            (
                KeyError::Unsupported(KeySpec::DEFAULT, "m"),
                tonic::Code::InvalidArgument,
            ),
            (
                KeyError::Generation(KeySpec::DEFAULT),
                tonic::Code::Internal,
            ),
            (KeyError::Unreadable("m".into()), tonic::Code::Internal),
            (
                KeyError::Csr(X509Error::Invalid("m".into())),
                tonic::Code::Internal,
            ),
            (KeyError::Keystore("m".into()), tonic::Code::Internal),
        ];
        for (error, code) in table {
            assert_eq!(error.code(), code, "{error:?}");
        }
    }

    #[test]
    fn odd_rsa_sizes_are_generated_exactly() {
        let spec = KeySpec {
            size: 2056,
            ..KeySpec::DEFAULT
        };
        let key = generate(&spec).unwrap();
        let back = PrivateKey::from_pem(&key.to_pem(KeyEncoding::Pkcs8).unwrap()).unwrap();
        assert_eq!(back.size(), 2056);
        let out_of_range = KeySpec {
            size: 1024,
            ..KeySpec::DEFAULT
        };
        let error = generate(&out_of_range).unwrap_err().to_string();
        assert!(error.contains("RSA 1024"), "{error}");
    }
}
