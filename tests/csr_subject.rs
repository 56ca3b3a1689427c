//! The CSR is byte for byte the one jetstack's Go driver sends.
//!
//! - Subjects: every vector of `tests/fixtures/csr_subject/vectors.json` (written by Go 1.19's
//!   `encoding/asn1` and `crypto/x509/pkix`; see `generate.go` there) goes through this driver's
//!   attribute parser and Name encoder, and the DER must be identical.
//! - Whole requests: every vector of `tests/fixtures/csr/vectors.json` (Go's
//!   `x509.CreateCertificateRequest` with the template jetstack's driver builds, signed with the
//!   fixed keys in `tests/fixtures/csr/keys`) against [`keys::build_csr`]: identical bytes for RSA
//!   and Ed25519 (deterministic signatures), everything but the signature for ECDSA.

use std::collections::HashMap;

use cert_manager_csi_driver::attributes::subject::{StringKind, string_kind};
use cert_manager_csi_driver::attributes::{key, parse_volume_context};
use cert_manager_csi_driver::keys;
use cert_manager_csi_driver::x509::name_der;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    go_version: String,
    printable_ascii: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    attributes: HashMap<String, String>,
    subject_der: String,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/csr_subject/vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("the committed fixture");
    serde_json::from_str(&text).expect("vectors.json parses")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A volume context as kubelet sends it, with the vector's attributes on top.
fn context(attributes: &HashMap<String, String>) -> HashMap<String, String> {
    let mut context: HashMap<String, String> = [
        (key::EPHEMERAL, "true"),
        (key::POD_NAME, "my-csi-app"),
        (key::POD_NAMESPACE, "sandbox"),
        (key::POD_UID, "c0ffee"),
        (key::SERVICE_ACCOUNT_NAME, "default"),
        (key::ISSUER_NAME, "ca-issuer"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    context.extend(attributes.clone());
    context
}

#[test]
fn every_subject_is_encoded_as_go_encodes_it() {
    let fixture = fixture();
    assert!(fixture.vectors.len() >= 60, "{}", fixture.vectors.len());
    let failures: Vec<String> = fixture
        .vectors
        .iter()
        .filter_map(|vector| {
            let parsed = match parse_volume_context(&context(&vector.attributes)) {
                Ok(parsed) => parsed,
                Err(error) => return Some(format!("{}: refused: {error}", vector.name)),
            };
            let ours = hex(&name_der(&parsed.spec.subject));
            (ours != vector.subject_der).then(|| {
                format!(
                    "{} ({}):\n  Go   {}\n  ours {ours}",
                    vector.name, parsed.spec.subject, vector.subject_der
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} vectors differ from {}:\n{}",
        failures.len(),
        fixture.vectors.len(),
        fixture.go_version,
        failures.join("\n")
    );
}

#[test]
fn printable_string_is_the_set_go_measured() {
    let fixture = fixture();
    let ours: String = (0x20u8..0x7f)
        .map(char::from)
        .filter(|c| string_kind(&c.to_string()) == StringKind::Printable)
        .collect();
    assert_eq!(ours, fixture.printable_ascii);
}

#[derive(Deserialize)]
struct RequestFixture {
    go_version: String,
    vectors: Vec<RequestVector>,
}

#[derive(Deserialize)]
struct RequestVector {
    name: String,
    key: String,
    attributes: HashMap<String, String>,
    deterministic: bool,
    csr_der: String,
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The header length and content length of the DER TLV at the start of `der`.
fn tlv_header(der: &[u8]) -> (usize, usize) {
    match der[1] {
        short if short < 0x80 => (2, usize::from(short)),
        long => {
            let count = usize::from(long & 0x7f);
            let length = der[2..2 + count]
                .iter()
                .fold(0, |acc, b| (acc << 8) | usize::from(*b));
            (2 + count, length)
        }
    }
}

/// The TLVs inside a DER SEQUENCE, each with its header.
fn der_elements(der: &[u8]) -> Vec<&[u8]> {
    let (header, length) = tlv_header(der);
    assert_eq!(header + length, der.len(), "one SEQUENCE");
    let mut rest = &der[header..];
    let mut elements = Vec::new();
    while !rest.is_empty() {
        let (header, length) = tlv_header(rest);
        elements.push(&rest[..header + length]);
        rest = &rest[header + length..];
    }
    elements
}

#[test]
fn every_request_is_the_one_the_go_driver_sends() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/csr/vectors.json"
    );
    let fixture: RequestFixture =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the committed fixture"))
            .expect("vectors.json parses");
    assert!(fixture.vectors.len() >= 10, "{}", fixture.vectors.len());
    let failures: Vec<String> = fixture
        .vectors
        .iter()
        .filter_map(|vector| {
            let key_path = format!(
                "{}/tests/fixtures/csr/keys/{}.pem",
                env!("CARGO_MANIFEST_DIR"),
                vector.key
            );
            let key = keys::PrivateKey::from_pem(&std::fs::read_to_string(key_path).unwrap())
                .expect("the fixture key");
            let parsed = match parse_volume_context(&context(&vector.attributes)) {
                Ok(parsed) => parsed,
                Err(error) => return Some(format!("{}: refused: {error}", vector.name)),
            };
            let pem = keys::build_csr(&parsed.spec, &key).expect("a request");
            let ours = pem::parse(&pem).expect("PEM").into_contents();
            let go = unhex(&vector.csr_der);
            let (ours_compared, go_compared) = if vector.deterministic {
                (ours.clone(), go.clone())
            } else {
                // Certification request info and signature algorithm; not the signature.
                let strip = |der: &[u8]| der_elements(der)[..2].concat();
                (strip(&ours), strip(&go))
            };
            (ours_compared != go_compared).then(|| {
                format!(
                    "{}:\n  Go   {}\n  ours {}",
                    vector.name,
                    vector.csr_der,
                    hex(&ours)
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests differ from {}'s:\n{}",
        failures.len(),
        fixture.vectors.len(),
        fixture.go_version,
        failures.join("\n")
    );
}
