//! The CSR subject is byte for byte the one jetstack's Go driver sends: every vector of
//! `tests/fixtures/csr_subject/vectors.json` (written by Go 1.19's `encoding/asn1` and
//! `crypto/x509/pkix`; see `generate.go` there) goes through this driver's attribute parser and
//! Name encoder, and the DER must be identical.

use std::collections::HashMap;

use cert_manager_csi_driver::attributes::subject::{StringKind, string_kind};
use cert_manager_csi_driver::attributes::{key, parse_volume_context};
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
