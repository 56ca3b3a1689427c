//! DER for the two X.509 structures this driver writes itself: the volume's PKCS#10 request (the
//! bytes jetstack's Go driver sends, checked against Go's output in `tests/csr_subject.rs`) and,
//! in the embedded CA, the signed certificate. rcgen keeps one value per subject attribute type
//! and re-derives subjects, so requests with several organizations, multi-valued RDNs or a
//! literal subject could not be expressed exactly; here the subject is encoded as asked and the
//! CA copies it byte for byte, as cert-manager's CA issuer does.

use std::net::IpAddr;

use rcgen::{KeyPair, PublicKeyData, SigningKey};
use yasna::models::{GeneralizedTime, ObjectIdentifier, UTCTime};
use yasna::tags::TAG_PRINTABLESTRING;
use yasna::{DERWriter, Tag};

use crate::attributes::subject::{StringKind, Subject, string_kind};
use crate::attributes::{KeyAlgorithm, KeyUsage};

const EXTENSION_REQUEST: &[u64] = &[1, 2, 840, 113549, 1, 9, 14];
const SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];
const KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const EXTENDED_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const SUBJECT_KEY_IDENTIFIER: &[u64] = &[2, 5, 29, 14];
const AUTHORITY_KEY_IDENTIFIER: &[u64] = &[2, 5, 29, 35];
/// An empty Name: `SEQUENCE {}`.
const EMPTY_NAME: &[u8] = &[0x30, 0x00];

/// The signature algorithm a key signs with, as an AlgorithmIdentifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    RsaSha256,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
    Ed25519,
}

impl SignatureAlgorithm {
    /// What a key of this algorithm and size signs with (the same choice Go makes).
    pub fn for_key(algorithm: KeyAlgorithm, size: u32) -> SignatureAlgorithm {
        match (algorithm, size) {
            (KeyAlgorithm::Rsa, _) => SignatureAlgorithm::RsaSha256,
            (KeyAlgorithm::Ecdsa, 384) => SignatureAlgorithm::EcdsaSha384,
            (KeyAlgorithm::Ecdsa, 521) => SignatureAlgorithm::EcdsaSha512,
            (KeyAlgorithm::Ecdsa, _) => SignatureAlgorithm::EcdsaSha256,
            (KeyAlgorithm::Ed25519, _) => SignatureAlgorithm::Ed25519,
        }
    }

    fn write(self, writer: DERWriter<'_>) {
        let (oid, null_parameters): (&[u64], bool) = match self {
            SignatureAlgorithm::RsaSha256 => (&[1, 2, 840, 113549, 1, 1, 11], true),
            SignatureAlgorithm::EcdsaSha256 => (&[1, 2, 840, 10045, 4, 3, 2], false),
            SignatureAlgorithm::EcdsaSha384 => (&[1, 2, 840, 10045, 4, 3, 3], false),
            SignatureAlgorithm::EcdsaSha512 => (&[1, 2, 840, 10045, 4, 3, 4], false),
            SignatureAlgorithm::Ed25519 => (&[1, 3, 101, 112], false),
        };
        writer.write_sequence(|w| {
            w.next().write_oid(&ObjectIdentifier::from_slice(oid));
            if null_parameters {
                w.next().write_null();
            }
        });
    }
}

/// Why a structure could not be built.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("{0}")]
    Invalid(String),
}

/// Writes a Name as Go's `encoding/asn1` marshals a `pkix.RDNSequence`: each RDN a SET OF sorted
/// by encoding (DER), each value a PrintableString when it can be one, else a UTF8String
/// ([`string_kind`]). No input can make the encoder fail.
pub fn write_name(writer: DERWriter<'_>, subject: &Subject) {
    writer.write_sequence(|w| {
        for rdn in &subject.rdns {
            w.next().write_set_of(|set| {
                for attribute in rdn {
                    set.next().write_sequence(|pair| {
                        pair.next()
                            .write_oid(&ObjectIdentifier::from_slice(&attribute.kind.0));
                        let value = attribute.value.as_str();
                        match string_kind(value) {
                            // Not yasna's write_printable_string, which refuses `?`.
                            StringKind::Printable => {
                                pair.next().write_tagged_implicit(TAG_PRINTABLESTRING, |w| {
                                    w.write_bytes(value.as_bytes())
                                })
                            }
                            StringKind::Utf8 => pair.next().write_utf8_string(value),
                        }
                    });
                }
            });
        }
    });
}

/// The DER of a Name ([`write_name`]).
pub fn name_der(subject: &Subject) -> Vec<u8> {
    yasna::construct_der(|writer| write_name(writer, subject))
}

/// Subject alternative names of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AltNames<'a> {
    pub dns: &'a [String],
    pub ips: &'a [IpAddr],
    pub uris: &'a [String],
}

impl AltNames<'_> {
    fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ips.is_empty() && self.uris.is_empty()
    }

    fn validate(&self) -> Result<(), X509Error> {
        for name in self.dns.iter().chain(self.uris) {
            if !name.is_ascii() {
                return Err(X509Error::Invalid(format!("{name:?} is not ASCII")));
            }
        }
        Ok(())
    }

    fn der(&self) -> Vec<u8> {
        yasna::construct_der(|writer| {
            writer.write_sequence(|w| {
                for name in self.dns {
                    w.next()
                        .write_tagged_implicit(Tag::context(2), |w| w.write_ia5_string(name));
                }
                for ip in self.ips {
                    // Go writes an IPv4 address in 4 bytes, an IPv4-mapped IPv6 one included.
                    let bytes = match ip.to_canonical() {
                        IpAddr::V4(v4) => v4.octets().to_vec(),
                        IpAddr::V6(v6) => v6.octets().to_vec(),
                    };
                    w.next()
                        .write_tagged_implicit(Tag::context(7), |w| w.write_bytes(&bytes));
                }
                for uri in self.uris {
                    w.next()
                        .write_tagged_implicit(Tag::context(6), |w| w.write_ia5_string(uri));
                }
            })
        })
    }
}

/// The KeyUsage bit (RFC 5280 §4.2.1.3) of a cert-manager usage, if it is one.
pub fn key_usage_bit(usage: KeyUsage) -> Option<usize> {
    Some(match usage {
        KeyUsage::Signing | KeyUsage::DigitalSignature => 0,
        KeyUsage::ContentCommitment => 1,
        KeyUsage::KeyEncipherment => 2,
        KeyUsage::DataEncipherment => 3,
        KeyUsage::KeyAgreement => 4,
        KeyUsage::CertSign => 5,
        KeyUsage::CrlSign => 6,
        KeyUsage::EncipherOnly => 7,
        KeyUsage::DecipherOnly => 8,
        _ => return None,
    })
}

/// The extended key usage OID of a cert-manager usage, if it is one (as cert-manager maps them).
pub fn extended_key_usage_oid(usage: KeyUsage) -> Option<&'static [u64]> {
    Some(match usage {
        KeyUsage::Any => &[2, 5, 29, 37, 0],
        KeyUsage::ServerAuth => &[1, 3, 6, 1, 5, 5, 7, 3, 1],
        KeyUsage::ClientAuth => &[1, 3, 6, 1, 5, 5, 7, 3, 2],
        KeyUsage::CodeSigning => &[1, 3, 6, 1, 5, 5, 7, 3, 3],
        KeyUsage::EmailProtection | KeyUsage::Smime => &[1, 3, 6, 1, 5, 5, 7, 3, 4],
        KeyUsage::IpsecEndSystem => &[1, 3, 6, 1, 5, 5, 7, 3, 5],
        KeyUsage::IpsecTunnel => &[1, 3, 6, 1, 5, 5, 7, 3, 6],
        KeyUsage::IpsecUser => &[1, 3, 6, 1, 5, 5, 7, 3, 7],
        KeyUsage::Timestamping => &[1, 3, 6, 1, 5, 5, 7, 3, 8],
        KeyUsage::OcspSigning => &[1, 3, 6, 1, 5, 5, 7, 3, 9],
        KeyUsage::MicrosoftSgc => &[1, 3, 6, 1, 4, 1, 311, 10, 3, 3],
        KeyUsage::NetscapeSgc => &[2, 16, 840, 1, 113730, 4, 1],
        _ => return None,
    })
}

/// One extension: OID, criticality, DER value.
struct Extension {
    oid: &'static [u64],
    critical: bool,
    value: Vec<u8>,
}

fn write_extensions(writer: DERWriter<'_>, extensions: &[Extension]) {
    writer.write_sequence(|w| {
        for extension in extensions {
            w.next().write_sequence(|e| {
                e.next()
                    .write_oid(&ObjectIdentifier::from_slice(extension.oid));
                if extension.critical {
                    e.next().write_bool(true);
                }
                e.next().write_bytes(&extension.value);
            });
        }
    });
}

/// A certificate's KeyUsage, ExtendedKeyUsage and BasicConstraints as its request asks for them.
/// Key usage is critical and a CA certificate always gets keyCertSign, as cert-manager does.
fn usage_extensions(usages: &[KeyUsage], is_ca: bool) -> Vec<Extension> {
    let mut extensions = Vec::new();
    let mut bits = [0u8; 2];
    let mut highest = None;
    let ca_bit = is_ca.then_some(5);
    for bit in usages
        .iter()
        .filter_map(|u| key_usage_bit(*u))
        .chain(ca_bit)
    {
        bits[bit / 8] |= 0x80 >> (bit % 8);
        highest = highest.max(Some(bit));
    }
    if let Some(highest) = highest {
        let length = highest + 1;
        let bytes = &bits[..length.div_ceil(8)];
        extensions.push(Extension {
            oid: KEY_USAGE,
            critical: true,
            value: yasna::construct_der(|w| w.write_bitvec_bytes(bytes, length)),
        });
    }
    let mut ekus: Vec<&'static [u64]> = Vec::new();
    for oid in usages.iter().filter_map(|u| extended_key_usage_oid(*u)) {
        if !ekus.contains(&oid) {
            ekus.push(oid);
        }
    }
    if !ekus.is_empty() {
        extensions.push(Extension {
            oid: EXTENDED_KEY_USAGE,
            critical: false,
            value: yasna::construct_der(|w| {
                w.write_sequence(|seq| {
                    for oid in &ekus {
                        seq.next().write_oid(&ObjectIdentifier::from_slice(oid));
                    }
                })
            }),
        });
    }
    extensions.push(Extension {
        oid: BASIC_CONSTRAINTS,
        critical: true,
        value: yasna::construct_der(|w| {
            w.write_sequence(|seq| {
                if is_ca {
                    seq.next().write_bool(true);
                }
            })
        }),
    });
    extensions
}

fn signed(
    tbs: Vec<u8>,
    algorithm: SignatureAlgorithm,
    key: &KeyPair,
) -> Result<Vec<u8>, X509Error> {
    let signature = key
        .sign(&tbs)
        .map_err(|e| X509Error::Signing(e.to_string()))?;
    Ok(yasna::construct_der(|writer| {
        writer.write_sequence(|w| {
            w.next().write_der(&tbs);
            algorithm.write(w.next());
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    }))
}

/// What a certificate request asks for. Usages and the CA flag are not in it: like jetstack's
/// driver, this one sends them in the CertificateRequest's spec only.
#[derive(Debug, Clone)]
pub struct RequestContents<'a> {
    pub subject: &'a Subject,
    pub alt_names: AltNames<'a>,
}

/// A PKCS#10 request (DER) for `contents`, signed by `key` (proof of possession): the bytes Go's
/// `x509.CreateCertificateRequest` writes for the template jetstack's driver builds (subject,
/// DNS names, IP addresses, URIs): a subjectAltName extension (never critical: that is for the
/// certificate, where the issuer sets it) when there are SANs, no other extension or attribute.
pub fn certificate_request(
    contents: &RequestContents<'_>,
    key: &KeyPair,
    algorithm: SignatureAlgorithm,
) -> Result<Vec<u8>, X509Error> {
    contents.alt_names.validate()?;
    let mut extensions = Vec::new();
    if !contents.alt_names.is_empty() {
        extensions.push(Extension {
            oid: SUBJECT_ALT_NAME,
            critical: false,
            value: contents.alt_names.der(),
        });
    }
    let spki = key.subject_public_key_info();
    let info = yasna::construct_der(|writer| {
        writer.write_sequence(|w| {
            w.next().write_u8(0);
            write_name(w.next(), contents.subject);
            w.next().write_der(&spki);
            w.next()
                .write_tagged_implicit(Tag::context(0), |attributes| {
                    attributes.write_set(|set| {
                        if !extensions.is_empty() {
                            set.next().write_sequence(|attribute| {
                                attribute
                                    .next()
                                    .write_oid(&ObjectIdentifier::from_slice(EXTENSION_REQUEST));
                                attribute.next().write_set(|values| {
                                    write_extensions(values.next(), &extensions)
                                });
                            });
                        }
                    });
                });
        })
    });
    signed(info, algorithm, key)
}

/// A certificate to sign, with its parts taken verbatim from a verified request.
#[derive(Debug, Clone)]
pub struct CertificateContents<'a> {
    pub serial: &'a [u8],
    pub issuer_name_der: &'a [u8],
    pub issuer_key_id: &'a [u8],
    pub subject_name_der: &'a [u8],
    pub subject_public_key_info_der: &'a [u8],
    pub subject_public_key_bits: &'a [u8],
    /// The request's subjectAltName extension value, copied as it is; critical when the subject
    /// is empty (RFC 5280 §4.2.1.6, as cert-manager sets it).
    pub alt_names: Option<&'a [u8]>,
    pub not_before: time::OffsetDateTime,
    pub not_after: time::OffsetDateTime,
    pub usages: &'a [KeyUsage],
    pub is_ca: bool,
}

/// SHA-1 of the public key bits: the key identifier method of RFC 5280 §4.2.1.2 (1).
pub fn key_identifier(public_key_bits: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        public_key_bits,
    )
    .as_ref()
    .to_vec()
}

fn write_time(writer: DERWriter<'_>, at: time::OffsetDateTime) {
    // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after; whole seconds.
    let at = at.replace_nanosecond(0).unwrap_or(at);
    if at.year() < 2050 {
        writer.write_utctime(&UTCTime::from_datetime(at));
    } else {
        writer.write_generalized_time(&GeneralizedTime::from_datetime(at));
    }
}

/// An X.509 v3 certificate (DER) signed by `issuer_key`.
pub fn certificate(
    contents: &CertificateContents<'_>,
    issuer_key: &KeyPair,
    algorithm: SignatureAlgorithm,
) -> Result<Vec<u8>, X509Error> {
    let mut extensions = Vec::new();
    if let Some(value) = contents.alt_names {
        extensions.push(Extension {
            oid: SUBJECT_ALT_NAME,
            critical: contents.subject_name_der == EMPTY_NAME,
            value: value.to_vec(),
        });
    }
    extensions.extend(usage_extensions(contents.usages, contents.is_ca));
    extensions.push(Extension {
        oid: SUBJECT_KEY_IDENTIFIER,
        critical: false,
        value: yasna::construct_der(|w| {
            w.write_bytes(&key_identifier(contents.subject_public_key_bits))
        }),
    });
    extensions.push(Extension {
        oid: AUTHORITY_KEY_IDENTIFIER,
        critical: false,
        value: yasna::construct_der(|w| {
            w.write_sequence(|seq| {
                seq.next().write_tagged_implicit(Tag::context(0), |id| {
                    id.write_bytes(contents.issuer_key_id)
                })
            })
        }),
    });
    let tbs = yasna::construct_der(|writer| {
        writer.write_sequence(|w| {
            w.next().write_tagged(Tag::context(0), |v| v.write_u8(2));
            w.next().write_bigint_bytes(contents.serial, true);
            algorithm.write(w.next());
            w.next().write_der(contents.issuer_name_der);
            w.next().write_sequence(|validity| {
                write_time(validity.next(), contents.not_before);
                write_time(validity.next(), contents.not_after);
            });
            w.next().write_der(contents.subject_name_der);
            w.next().write_der(contents.subject_public_key_info_der);
            w.next()
                .write_tagged(Tag::context(3), |e| write_extensions(e, &extensions));
        })
    });
    signed(tbs, algorithm, issuer_key)
}
