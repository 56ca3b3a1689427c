//! The optional PKCS#12 keystore (the volume's key and its full chain) and truststore (the CA
//! certificates alone), password-protected with one of cert-manager's encryption profiles.

use std::num::NonZeroU32;

use zeroize::Zeroizing;

use super::{KeyError, PrivateKey};
use crate::attributes::Pkcs12Profile;
use crate::certificate::pem_certificates;

/// Key derivation and MAC iterations, as cert-manager's profiles use.
const ITERATIONS: u32 = 2048;

fn failed(e: &dyn std::fmt::Display) -> KeyError {
    KeyError::Keystore(e.to_string())
}

/// Builds the keystore: the key, the leaf, any intermediates and the CA (unless the chain already
/// ends with it), under `password`.
pub fn build_keystore(
    key: &PrivateKey,
    chain_pem: &str,
    ca_pem: &str,
    password: &str,
    profile: Pkcs12Profile,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let mut certificates = pem_certificates(chain_pem).map_err(|e| failed(&e))?;
    if let Ok(ca) = pem_certificates(ca_pem) {
        for certificate in ca {
            if !certificates.contains(&certificate) {
                certificates.push(certificate);
            }
        }
    }
    let leaf = certificates[0].clone();
    let bytes =
        match profile {
            // RC2-40 for the certificates and 3DES for the key, SHA-1 MAC: upstream's format.
            Pkcs12Profile::LegacyRc2 => {
                let others: Vec<&[u8]> = certificates[1..].iter().map(Vec::as_slice).collect();
                p12::PFX::new_with_cas(&leaf, key.pkcs8_der(), &others, password, "")
                    .ok_or_else(|| KeyError::Keystore("PKCS#12 encoding failed".into()))?
                    .to_der()
            }
            Pkcs12Profile::LegacyDes | Pkcs12Profile::Modern2023 | Pkcs12Profile::Modern2026 => {
                let chain = certificates
                    .iter()
                    .map(|der| p12_keystore::Certificate::from_der(der))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| failed(&e))?;
                let private_key =
                    p12_keystore::PrivateKey::from_der(key.pkcs8_der()).map_err(|e| failed(&e))?;
                let local_key_id = crate::x509::key_identifier(&leaf);
                let mut store = p12_keystore::KeyStore::new();
                store.add_entry(
                    "certificate",
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(
                        p12_keystore::PrivateKeyChain::new(local_key_id, private_key, chain),
                    ),
                );
                write(&store, password, profile)?
            }
        };
    Ok(Zeroizing::new(bytes))
}

/// Builds the truststore: each CA certificate as a trusted-certificate entry (the bag attribute
/// Java needs to list it as `trustedCertEntry`), aliases `ca`, `ca-1`, … as in the JKS ones.
pub fn build_truststore(
    cas: &[Vec<u8>],
    password: &str,
    profile: Pkcs12Profile,
) -> Result<Vec<u8>, KeyError> {
    let mut store = p12_keystore::KeyStore::new();
    for (index, der) in cas.iter().enumerate() {
        let certificate = p12_keystore::Certificate::from_der(der).map_err(|e| failed(&e))?;
        store.add_entry(
            &super::jks::ca_alias(index),
            p12_keystore::KeyStoreEntry::Certificate(certificate),
        );
    }
    write(&store, password, profile)
}

/// Writes a store with a profile's algorithms. (A truststore has no key, so LegacyRC2's
/// RC2-40-for-certificates is all of that profile that applies.)
fn write(
    store: &p12_keystore::KeyStore,
    password: &str,
    profile: Pkcs12Profile,
) -> Result<Vec<u8>, KeyError> {
    use p12_keystore::{EncryptionAlgorithm as Encryption, MacAlgorithm as Mac};
    let (encryption, mac) = match profile {
        // The crate's "Rc4" variant is RC2-40 (pbeWithSHAAnd40BitRC2-CBC) by its OID.
        Pkcs12Profile::LegacyRc2 => (Encryption::PbeWithShaAnd40BitRc4Cbc, Mac::HmacSha1),
        Pkcs12Profile::LegacyDes => (Encryption::PbeWithShaAnd3KeyTripleDesCbc, Mac::HmacSha1),
        Pkcs12Profile::Modern2023 | Pkcs12Profile::Modern2026 => {
            (Encryption::PbeWithHmacSha256AndAes256, Mac::HmacSha256)
        }
    };
    let bytes = store
        .writer(password)
        .encryption_algorithm(encryption)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(mac)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| failed(&e))?;
    match profile {
        Pkcs12Profile::Modern2026 => with_pbmac1(&bytes, password),
        _ => Ok(bytes),
    }
}

// Object identifiers of the PBMAC1 MAC (RFC 9579) and what it names.
const PBMAC1: &[u64] = &[1, 2, 840, 113549, 1, 5, 14];
const PBKDF2: &[u64] = &[1, 2, 840, 113549, 1, 5, 12];
const HMAC_WITH_SHA256: &[u64] = &[1, 2, 840, 113549, 2, 9];
const PBMAC1_SALT_LEN: usize = 16;
const PBMAC1_KEY_LEN: usize = 32;

/// Modern2026 is Modern2023 with the MAC replaced by PBMAC1 (RFC 9579): the MAC key comes from
/// PBKDF2-HMAC-SHA-256 over the UTF-8 password (not the PKCS#12 KDF over a BMPString, which is
/// not FIPS-approved), and the MAC is HMAC-SHA-256. The crate writes the traditional MAC, so
/// the `PFX` is re-encoded here with a new `MacData`; the encrypted contents stay as they are.
fn with_pbmac1(pfx: &[u8], password: &str) -> Result<Vec<u8>, KeyError> {
    let malformed = |e: yasna::ASN1Error| KeyError::Keystore(format!("PKCS#12 re-encoding: {e}"));
    // PFX ::= SEQUENCE { version INTEGER, authSafe ContentInfo, macData MacData OPTIONAL }
    let (version, auth_safe) = yasna::parse_der(pfx, |reader| {
        reader.read_sequence(|reader| {
            let version = reader.next().read_u8()?;
            let auth_safe = reader.next().read_der()?;
            reader.read_optional(|reader| reader.read_der())?;
            Ok((version, auth_safe))
        })
    })
    .map_err(malformed)?;
    // ContentInfo ::= SEQUENCE { contentType (data), content [0] EXPLICIT OCTET STRING }: the
    // MAC covers the octets.
    let content = yasna::parse_der(&auth_safe, |reader| {
        reader.read_sequence(|reader| {
            reader.next().read_oid()?;
            reader
                .next()
                .read_tagged(yasna::Tag::context(0), |reader| reader.read_bytes())
        })
    })
    .map_err(malformed)?;

    let mut salt = [0u8; PBMAC1_SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt)
        .map_err(|_| KeyError::Keystore("the system random source failed".into()))?;
    let tag = pbmac1_tag(password, &salt, ITERATIONS, &content);
    let oid = yasna::models::ObjectIdentifier::from_slice;
    let hmac_sha256 = |writer: yasna::DERWriter<'_>| {
        writer.write_sequence(|writer| {
            writer.next().write_oid(&oid(HMAC_WITH_SHA256));
            writer.next().write_null();
        });
    };
    Ok(yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            writer.next().write_u8(version);
            writer.next().write_der(&auth_safe);
            // MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER }
            writer.next().write_sequence(|writer| {
                // DigestInfo ::= SEQUENCE { AlgorithmIdentifier (PBMAC1), digest OCTET STRING }
                writer.next().write_sequence(|writer| {
                    writer.next().write_sequence(|writer| {
                        writer.next().write_oid(&oid(PBMAC1));
                        // PBMAC1-params ::= SEQUENCE { keyDerivationFunc, messageAuthScheme }
                        writer.next().write_sequence(|writer| {
                            writer.next().write_sequence(|writer| {
                                writer.next().write_oid(&oid(PBKDF2));
                                // PBKDF2-params: salt, iterations, keyLength (RFC 9579 requires
                                // it), prf.
                                writer.next().write_sequence(|writer| {
                                    writer.next().write_bytes(&salt);
                                    writer.next().write_u32(ITERATIONS);
                                    writer.next().write_u32(PBMAC1_KEY_LEN as u32);
                                    hmac_sha256(writer.next());
                                });
                            });
                            hmac_sha256(writer.next());
                        });
                    });
                    writer.next().write_bytes(&tag);
                });
                // Ignored with PBMAC1 (RFC 9579's examples say so in the salt); `iterations`
                // is left at its DEFAULT 1, which DER omits.
                writer.next().write_bytes(b"NOT USED");
            });
        });
    }))
}

/// HMAC-SHA-256 of `content` under a key PBKDF2-HMAC-SHA-256 derives from the UTF-8 password.
fn pbmac1_tag(password: &str, salt: &[u8], iterations: u32, content: &[u8]) -> Vec<u8> {
    let mut mac_key = Zeroizing::new([0u8; PBMAC1_KEY_LEN]);
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN),
        salt,
        password.as_bytes(),
        &mut *mac_key,
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &*mac_key);
    aws_lc_rs::hmac::sign(&key, content).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a PBMAC1 `PFX` back and checks its MAC the way RFC 9579 says a reader does.
    fn verify_pbmac1(pfx: &[u8], password: &str) -> bool {
        let parsed = yasna::parse_der(pfx, |reader| {
            reader.read_sequence(|reader| {
                reader.next().read_u8()?;
                let content = reader.next().read_sequence(|reader| {
                    reader.next().read_oid()?;
                    reader
                        .next()
                        .read_tagged(yasna::Tag::context(0), |reader| reader.read_bytes())
                })?;
                let (algorithm, salt, iterations, tag) = reader.next().read_sequence(|reader| {
                    let parsed = reader.next().read_sequence(|reader| {
                        let (algorithm, salt, iterations) =
                            reader.next().read_sequence(|reader| {
                                let algorithm = reader.next().read_oid()?;
                                let (salt, iterations) = reader.next().read_sequence(|reader| {
                                    let kdf = reader.next().read_sequence(|reader| {
                                        reader.next().read_oid()?;
                                        reader.next().read_sequence(|reader| {
                                            let salt = reader.next().read_bytes()?;
                                            let iterations = reader.next().read_u32()?;
                                            reader.next().read_u32()?;
                                            reader.next().read_der()?;
                                            Ok((salt, iterations))
                                        })
                                    })?;
                                    reader.next().read_der()?;
                                    Ok(kdf)
                                })?;
                                Ok((algorithm, salt, iterations))
                            })?;
                        let tag = reader.next().read_bytes()?;
                        Ok((algorithm, salt, iterations, tag))
                    })?;
                    reader.next().read_bytes()?;
                    reader.read_optional(|reader| reader.read_u32())?;
                    Ok(parsed)
                })?;
                Ok((content, algorithm, salt, iterations, tag))
            })
        });
        let Ok((content, algorithm, salt, iterations, tag)) = parsed else {
            return false;
        };
        algorithm.components().as_slice() == PBMAC1
            && pbmac1_tag(password, &salt, iterations, &content) == tag
    }

    /// RFC 9579 appendix A.1 ("Valid PKCS #12 File with SHA-256 HMAC and PRF", password
    /// "1234"): our reading of PBMAC1 (UTF-8 password, MAC over the authSafe octets) is the RFC's.
    #[test]
    fn the_rfc_9579_example_verifies() {
        let text = include_str!("testdata/rfc9579-a1.p12.b64");
        let der = base64_decode(text);
        assert!(verify_pbmac1(&der, "1234"));
        assert!(!verify_pbmac1(&der, "12345"));
    }

    #[test]
    fn modern2026_truststores_carry_a_pbmac1_mac_that_verifies() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca.example".into()]).unwrap();
        let der = ca.cert.der().to_vec();
        let store = build_truststore(&[der], "s3cret", Pkcs12Profile::Modern2026).unwrap();
        assert!(verify_pbmac1(&store, "s3cret"));
        assert!(!verify_pbmac1(&store, "wrong"));
        let modern2023 = build_truststore(&[], "s3cret", Pkcs12Profile::Modern2023).unwrap();
        assert!(!verify_pbmac1(&modern2023, "s3cret"));
    }

    fn base64_decode(text: &str) -> Vec<u8> {
        let pem = format!("-----BEGIN X-----\n{}\n-----END X-----\n", text.trim());
        pem::parse(pem).unwrap().into_contents()
    }
}
