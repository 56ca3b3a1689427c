//! The cert-manager-like signer: each mode, and certificates that verify against its CA.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{client, wait_for};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube_test_server::{DRIVER_TOKEN, DRIVER_USER, Signer, SignerMode, TestApiServer};
use rcgen::{CertificateParams, KeyPair, SignatureAlgorithm};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

const CR: (&str, &str) = ("cert-manager.io/v1", "certificaterequests");

fn csr(key: &KeyPair, dns_name: &str) -> String {
    let params = CertificateParams::new(vec![dns_name.to_string()]).unwrap();
    params.serialize_request(key).unwrap().pem().unwrap()
}

fn request(name: &str, csr_pem: &str, issuer: &str) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"name": name, "labels": {"app": "csi"}},
        "spec": {
            "request": BASE64.encode(csr_pem),
            "issuerRef": {"name": issuer, "kind": "Issuer", "group": "cert-manager.io"},
            "duration": "1h",
            "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
        },
    })
}

fn conditions(cr: &Value) -> Vec<(String, String, String)> {
    let text = |c: &Value, key: &str| c[key].as_str().unwrap_or_default().to_string();
    cr["status"]["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| (text(c, "type"), text(c, "status"), text(c, "reason")))
                .collect()
        })
        .unwrap_or_default()
}

fn condition(kind: &str, status: &str, reason: &str) -> (String, String, String) {
    (kind.to_string(), status.to_string(), reason.to_string())
}

fn is_ready(cr: &Value) -> bool {
    conditions(cr).iter().any(|(kind, ..)| kind == "Ready")
}

/// Creates a request as an admin and waits for the signer's Ready condition.
async fn answered(server: &TestApiServer, name: &str, csr_pem: &str) -> Value {
    server.create_object(CR.0, CR.1, "ns", request(name, csr_pem, "ca"));
    wait_for(server, (CR.0, CR.1, "ns", name), is_ready).await
}

#[tokio::test]
async fn approves_and_signs_through_the_kube_client() {
    let server = TestApiServer::start().await;
    let signer = Signer::start(&server);
    let key = KeyPair::generate().unwrap();
    let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", "CertificateRequest");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "certificaterequests");
    let requests: Api<DynamicObject> =
        Api::namespaced_with(client(&server, DRIVER_TOKEN).await, "ns", &resource);
    let cr: DynamicObject =
        serde_json::from_value(request("cr-1", &csr(&key, "pod.example"), "ca")).unwrap();
    let requested = Instant::now();
    requests.create(&PostParams::default(), &cr).await.unwrap();
    assert_eq!(
        server.created_by(CR.0, CR.1, "ns", "cr-1").as_deref(),
        Some(DRIVER_USER)
    );

    let cr = wait_for(&server, (CR.0, CR.1, "ns", "cr-1"), is_ready).await;
    assert_eq!(
        conditions(&cr),
        [
            condition("Approved", "True", "cert-manager.io"),
            condition("Ready", "True", "Issued")
        ]
    );
    assert_eq!(signer.signed_count(), 1);
    assert!(signer.signed_at("ns", "cr-1").unwrap() >= requested);
    assert_eq!(signer.signed_at("ns", "other"), None);

    let ca_pem = signer.ca_pem();
    assert_eq!(
        BASE64.decode(cr["status"]["ca"].as_str().unwrap()).unwrap(),
        ca_pem.as_bytes()
    );
    let leaf_pem = BASE64
        .decode(cr["status"]["certificate"].as_str().unwrap())
        .unwrap();
    let (_, ca) = parse_x509_pem(ca_pem.as_bytes()).unwrap();
    let ca = ca.parse_x509().unwrap();
    let (_, leaf) = parse_x509_pem(&leaf_pem).unwrap();
    let leaf = leaf.parse_x509().unwrap();
    leaf.verify_signature(Some(ca.public_key()))
        .expect("signed by the CA");
    assert_eq!(leaf.issuer(), ca.subject());
    assert_eq!(
        &*leaf.public_key().subject_public_key.data,
        key.public_key_raw()
    );
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert_eq!(lifetime, 3600);
    let sans = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        sans.value.general_names,
        [GeneralName::DNSName("pod.example")]
    );
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth && !eku.code_signing);
    let usage = leaf.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && usage.key_encipherment() && !usage.key_cert_sign());
    assert!(!leaf.is_ca());

    // Requests already answered are left alone.
    server.update_object(CR.0, CR.1, "ns", "cr-1", |cr| {
        cr["metadata"]["labels"]["x"] = json!("y")
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(signer.signed_count(), 1);
}

#[tokio::test]
async fn signs_every_key_type() {
    let server = TestApiServer::start().await;
    let signer = Signer::start(&server);
    let algorithms: [(&str, &SignatureAlgorithm); 3] = [
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
        ("rsa", &rcgen::PKCS_RSA_SHA256),
    ];
    for (name, algorithm) in algorithms {
        let key = if name == "rsa" {
            KeyPair::generate_rsa_for(algorithm, rcgen::RsaKeySize::_2048).unwrap()
        } else {
            KeyPair::generate_for(algorithm).unwrap()
        };
        let cr = answered(&server, name, &csr(&key, "k.example")).await;
        assert_eq!(
            conditions(&cr)[1],
            condition("Ready", "True", "Issued"),
            "{name}: {cr}"
        );
    }
    assert_eq!(signer.signed_count(), 3);
}

#[tokio::test]
async fn is_ca_and_default_duration() {
    let server = TestApiServer::start().await;
    let signer = Signer::start(&server);
    let mut cr = request(
        "ca",
        &csr(&KeyPair::generate().unwrap(), "ca.example"),
        "ca",
    );
    cr["spec"]["isCA"] = json!(true);
    cr["spec"].as_object_mut().unwrap().remove("duration");
    cr["spec"].as_object_mut().unwrap().remove("usages");
    server.create_object(CR.0, CR.1, "ns", cr);
    let cr = wait_for(&server, (CR.0, CR.1, "ns", "ca"), is_ready).await;
    let pem = BASE64
        .decode(cr["status"]["certificate"].as_str().unwrap())
        .unwrap();
    let (_, leaf) = parse_x509_pem(&pem).unwrap();
    let leaf = leaf.parse_x509().unwrap();
    assert!(leaf.is_ca());
    let usage = leaf.key_usage().unwrap().unwrap().value;
    assert!(usage.key_cert_sign() && usage.digital_signature() && usage.key_encipherment());
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert_eq!(lifetime, 90 * 24 * 3600);
    assert_eq!(signer.signed_count(), 1);
}

#[tokio::test]
async fn failure_modes() {
    let server = TestApiServer::start().await;
    let signer = Signer::start(&server);
    let pem = csr(&KeyPair::generate().unwrap(), "a.example");

    signer.set_mode(SignerMode::Deny {
        reason: "Policy".into(),
        message: "not allowed".into(),
    });
    let cr = answered(&server, "denied", &pem).await;
    assert_eq!(
        conditions(&cr),
        [
            condition("Denied", "True", "Policy"),
            condition("Ready", "False", "Denied")
        ]
    );
    assert_eq!(cr["status"]["conditions"][0]["message"], "not allowed");
    assert!(cr["status"]["failureTime"].is_string());

    signer.set_mode(SignerMode::Fail {
        message: "issuer broken".into(),
    });
    let cr = answered(&server, "failed", &pem).await;
    assert_eq!(
        conditions(&cr),
        [
            condition("Approved", "True", "cert-manager.io"),
            condition("Ready", "False", "Failed")
        ]
    );
    assert_eq!(cr["status"]["conditions"][1]["message"], "issuer broken");
    assert!(cr["status"]["failureTime"].is_string());

    signer.set_mode(SignerMode::SelfSignedFailure);
    let cr = answered(&server, "self-signed", &pem).await;
    let message = cr["status"]["conditions"][1]["message"].as_str().unwrap();
    assert!(message.starts_with(
        "Annotation \"cert-manager.io/private-key-secret-name\" missing or reference empty: "
    ));

    signer.set_mode(SignerMode::Approve);
    let cr = answered(
        &server,
        "garbage",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .await;
    assert_eq!(conditions(&cr)[1], condition("Ready", "False", "Failed"));
    assert!(cr["status"].get("certificate").is_none());

    signer.set_mode(SignerMode::SignWithoutApproval);
    let cr = answered(&server, "unapproved", &pem).await;
    assert_eq!(conditions(&cr), [condition("Ready", "True", "Issued")]);
    assert!(cr["status"]["certificate"].is_string());
    assert_eq!(signer.signed_count(), 1);
}

#[tokio::test]
async fn delayed_ignored_and_preexisting_requests() {
    let server = TestApiServer::start().await;
    let pem = csr(&KeyPair::generate().unwrap(), "a.example");
    // Created before the signer starts: still answered.
    server.create_object(CR.0, CR.1, "ns", request("early", &pem, "ca"));
    let signer = Signer::start(&server);
    wait_for(&server, (CR.0, CR.1, "ns", "early"), is_ready).await;

    signer.set_mode(SignerMode::Delay(Duration::from_millis(100)));
    let created = Instant::now();
    server.create_object(CR.0, CR.1, "ns", request("slow", &pem, "ca"));
    let pending = wait_for(&server, (CR.0, CR.1, "ns", "slow"), is_ready).await;
    assert_eq!(
        conditions(&pending)[1],
        condition("Ready", "False", "Pending")
    );
    let issued = wait_for(&server, (CR.0, CR.1, "ns", "slow"), |cr| {
        conditions(cr).contains(&condition("Ready", "True", "Issued"))
    })
    .await;
    assert!(created.elapsed() >= Duration::from_millis(100));
    assert!(issued["status"]["certificate"].is_string());

    signer.set_mode(SignerMode::Ignore);
    server.create_object(CR.0, CR.1, "ns", request("ignored", &pem, "ca"));
    // The mode counts when the signer sees the request: let it see this one first.
    tokio::time::sleep(Duration::from_millis(20)).await;
    signer.set_mode(SignerMode::Approve);
    server.create_object(
        CR.0,
        CR.1,
        "ns",
        request("not-mine", &pem, "ignored-by-signer"),
    );
    server.create_object(CR.0, CR.1, "ns", request("last", &pem, "ca"));
    wait_for(&server, (CR.0, CR.1, "ns", "last"), is_ready).await;
    for name in ["ignored", "not-mine"] {
        let cr = server.get_object(CR.0, CR.1, "ns", name).unwrap();
        assert!(cr.get("status").is_none(), "{name} was answered: {cr}");
    }
    assert_eq!(signer.signed_count(), 3);
}

// CSRs written by hand, as DER, to hold what rcgen cannot write: multi-valued RDNs and any string
// type or character in them, as Go's crypto/x509 writes subjects.

/// A DER element: `tag`, the length, `contents`.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut element = vec![tag];
    let length = contents.len().to_be_bytes();
    match contents.len() {
        0..0x80 => element.push(length[length.len() - 1]),
        _ => {
            let significant: Vec<u8> = length.into_iter().skip_while(|&b| b == 0).collect();
            element.push(0x80 | significant.len() as u8);
            element.extend(significant);
        }
    }
    element.extend_from_slice(contents);
    element
}

fn sequence(elements: &[&[u8]]) -> Vec<u8> {
    der(0x30, &elements.concat())
}

fn set(elements: &[&[u8]]) -> Vec<u8> {
    der(0x31, &elements.concat())
}

const OID_COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
const OID_ORGANIZATION: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x0a];
const PRINTABLE_STRING: u8 = 0x13;
const UTF8_STRING: u8 = 0x0c;
const BMP_STRING: u8 = 0x1e;

/// An AttributeTypeAndValue: an attribute OID and a string of that tag.
fn attribute(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
    sequence(&[oid, &der(tag, value)])
}

/// A PKCS#10 request for `subject` (a Name, as DER) asking for these DNS names, signed with
/// `key` (ECDSA P-256).
fn hand_made_csr(key: &KeyPair, subject: &[u8], dns_names: &[&str]) -> Vec<u8> {
    use rcgen::{PublicKeyData as _, SigningKey as _};
    let names: Vec<Vec<u8>> = dns_names.iter().map(|n| der(0x82, n.as_bytes())).collect();
    let names = der(0x30, &names.concat());
    let san = sequence(&[&[0x06, 0x03, 0x55, 0x1d, 0x11], &der(0x04, &names)]);
    let extension_request = sequence(&[
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e,
        ],
        &set(&[&sequence(&[&san])]),
    ]);
    let info = sequence(&[
        &[0x02, 0x01, 0x00],
        subject,
        &key.subject_public_key_info(),
        &der(0xa0, &extension_request),
    ]);
    let signature = key.sign(&info).unwrap();
    let ecdsa_with_sha256 =
        sequence(&[&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]]);
    sequence(&[
        &info,
        &ecdsa_with_sha256,
        &der(0x03, &[&[0u8][..], &signature].concat()),
    ])
}

fn csr_pem(der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines.join("\n")
    )
}

/// Has the signer sign a hand-made CSR for `subject` and checks the certificate: issued, signed
/// by the CA, the CSR's subject and key byte for byte, its DNS names in a SAN extension that is
/// critical exactly when the subject is empty.
async fn signs_subject_verbatim(
    server: &TestApiServer,
    signer: &Signer,
    name: &str,
    subject: &[u8],
) {
    let key = KeyPair::generate().unwrap();
    let dns_names = [&format!("{name}.example")[..], "other.example"];
    let cr = answered(
        server,
        name,
        &csr_pem(&hand_made_csr(&key, subject, &dns_names)),
    )
    .await;
    assert_eq!(
        conditions(&cr)[1],
        condition("Ready", "True", "Issued"),
        "{name}: {cr}"
    );
    let leaf_pem = BASE64
        .decode(cr["status"]["certificate"].as_str().unwrap())
        .unwrap();
    let (_, ca) = parse_x509_pem(signer.ca_pem().as_bytes()).unwrap();
    let ca = ca.parse_x509().unwrap();
    let (_, leaf) = parse_x509_pem(&leaf_pem).unwrap();
    let leaf = leaf.parse_x509().unwrap();
    leaf.verify_signature(Some(ca.public_key()))
        .expect("signed by the CA");
    assert_eq!(leaf.issuer(), ca.subject());
    assert_eq!(leaf.subject().as_raw(), subject, "{name}");
    assert_eq!(
        leaf.public_key().raw,
        &rcgen::PublicKeyData::subject_public_key_info(&key)[..]
    );
    let sans = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        sans.value.general_names,
        dns_names.map(GeneralName::DNSName),
        "{name}"
    );
    assert_eq!(sans.critical, subject == [0x30, 0x00], "{name}");
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let usage = leaf.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && usage.key_encipherment());
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert_eq!(lifetime, 3600);
    assert!(!leaf.is_ca());
}

#[tokio::test]
async fn multi_valued_rdns_are_copied_verbatim() {
    let server = TestApiServer::start().await;
    let signer = Signer::start(&server);
    // O=A+O=B (a PrintableString and a UTF8String in one RDN), then a BMPString CN.
    let subject = sequence(&[
        &set(&[
            &attribute(OID_ORGANIZATION, PRINTABLE_STRING, b"A"),
            &attribute(OID_ORGANIZATION, UTF8_STRING, b"B"),
        ]),
        &set(&[&attribute(OID_COMMON_NAME, BMP_STRING, b"\0b\0m\0p")]),
    ]);
    signs_subject_verbatim(&server, &signer, "multi", &subject).await;
    assert_eq!(signer.signed_count(), 1);
}

#[tokio::test]
async fn printable_strings_with_a_question_mark_are_copied_verbatim() {
    let server = TestApiServer::start().await;
    let signer = Signer::start(&server);
    // rcgen re-encoding this one panicked in yasna, and the signer with it.
    let subject = sequence(&[&set(&[&attribute(
        OID_COMMON_NAME,
        PRINTABLE_STRING,
        b"what?",
    )])]);
    signs_subject_verbatim(&server, &signer, "what", &subject).await;
    // What Go's pkix.Name makes of CN "what?" and organizations "Who?,Why?".
    let subject = sequence(&[
        &set(&[
            &attribute(OID_ORGANIZATION, PRINTABLE_STRING, b"Who?"),
            &attribute(OID_ORGANIZATION, PRINTABLE_STRING, b"Why?"),
        ]),
        &set(&[&attribute(OID_COMMON_NAME, PRINTABLE_STRING, b"what?")]),
    ]);
    signs_subject_verbatim(&server, &signer, "question", &subject).await;
    // The signer is still there for the next request.
    let cr = answered(
        &server,
        "next",
        &csr(&KeyPair::generate().unwrap(), "n.example"),
    )
    .await;
    assert_eq!(conditions(&cr)[1], condition("Ready", "True", "Issued"));
    assert_eq!(signer.signed_count(), 3);
}

#[tokio::test]
async fn an_empty_subject_gets_a_critical_san_extension() {
    let server = TestApiServer::start().await;
    let signer = Signer::start(&server);
    signs_subject_verbatim(&server, &signer, "empty", &sequence(&[])).await;
    assert_eq!(signer.signed_count(), 1);
}

#[tokio::test]
async fn a_csr_whose_signature_does_not_verify_fails() {
    let server = TestApiServer::start().await;
    let signer = Signer::start(&server);
    let subject = sequence(&[&set(&[&attribute(OID_COMMON_NAME, PRINTABLE_STRING, b"x")])]);
    let mut csr = hand_made_csr(&KeyPair::generate().unwrap(), &subject, &["x.example"]);
    // The last byte of the signature's S value.
    *csr.last_mut().unwrap() ^= 1;
    let cr = answered(&server, "forged", &csr_pem(&csr)).await;
    assert_eq!(conditions(&cr)[1], condition("Ready", "False", "Failed"));
    let message = cr["status"]["conditions"][1]["message"].as_str().unwrap();
    assert!(message.contains("signature"), "{message}");
    assert!(cr["status"].get("certificate").is_none());
    assert_eq!(signer.signed_count(), 0);
}

#[tokio::test]
async fn a_duration_past_the_year_9999_fails() {
    let server = TestApiServer::start().await;
    let signer = Signer::start(&server);
    let mut cr = request(
        "forever",
        &csr(&KeyPair::generate().unwrap(), "f.example"),
        "ca",
    );
    // About 11,400 years.
    cr["spec"]["duration"] = json!("100000000h");
    server.create_object(CR.0, CR.1, "ns", cr);
    let cr = wait_for(&server, (CR.0, CR.1, "ns", "forever"), is_ready).await;
    assert_eq!(conditions(&cr)[1], condition("Ready", "False", "Failed"));
    let message = cr["status"]["conditions"][1]["message"].as_str().unwrap();
    assert!(message.contains("9999"), "{message}");
    // The signer is still there for the next request.
    let cr = answered(
        &server,
        "next",
        &csr(&KeyPair::generate().unwrap(), "n.example"),
    )
    .await;
    assert_eq!(conditions(&cr)[1], condition("Ready", "True", "Issued"));
    assert_eq!(signer.signed_count(), 1);
}

#[tokio::test]
async fn records_the_requesting_user_as_cert_managers_webhook_does() {
    let server = TestApiServer::start().await;
    server.add_token("pod-token", "system:serviceaccount:app:web");
    let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", "CertificateRequest");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "certificaterequests");
    let key = KeyPair::generate().unwrap();
    let mut forged = request("cr-1", &csr(&key, "pod.example"), "ca");
    // Whatever the client claims is overwritten.
    forged["spec"]["username"] = json!("system:serviceaccount:kube-system:admin");
    forged["spec"]["groups"] = json!(["system:masters"]);
    forged["spec"]["uid"] = json!("1234");
    let requests: Api<DynamicObject> =
        Api::namespaced_with(client(&server, "pod-token").await, "app", &resource);
    let created = requests
        .create(
            &PostParams::default(),
            &serde_json::from_value(forged).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        created.data["spec"]["username"],
        "system:serviceaccount:app:web"
    );
    assert_eq!(
        created.data["spec"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:app",
            "system:authenticated"
        ])
    );
    assert!(created.data["spec"].get("uid").is_none());
    // A user that is no service account, and an admin's in-process create.
    let admin = server.create_object(CR.0, CR.1, "ns", request("cr-2", &csr(&key, "a"), "ca"));
    assert_eq!(admin["spec"]["username"], kube_test_server::ADMIN_USER);
    assert_eq!(admin["spec"]["groups"], json!(["system:authenticated"]));
    // Other resources are not touched.
    let pod = server.create_object(
        "v1",
        "pods",
        "ns",
        json!({"metadata": {"name": "p"}, "spec": {}}),
    );
    assert!(pod["spec"].get("username").is_none());
}

#[tokio::test]
async fn sign_approved_only_waits_for_someone_elses_decision() {
    let server = TestApiServer::start().await;
    let signer = Signer::start(&server);
    signer.set_mode(SignerMode::SignApprovedOnly);
    let key = KeyPair::generate().unwrap();
    for name in ["approved", "denied", "undecided"] {
        server.create_object(
            CR.0,
            CR.1,
            "ns",
            request(name, &csr(&key, "a.example"), "ca"),
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(signer.signed_count(), 0);
    let decide = |name: &str, kind: &str| {
        server.update_object(CR.0, CR.1, "ns", name, |cr| {
            cr["status"] = json!({"conditions": [{
                "type": kind, "status": "True", "reason": "test", "message": "by the test",
            }]});
        });
    };
    decide("approved", "Approved");
    decide("denied", "Denied");
    let approved = wait_for(&server, (CR.0, CR.1, "ns", "approved"), is_ready).await;
    assert_eq!(
        conditions(&approved),
        [
            condition("Approved", "True", "test"),
            condition("Ready", "True", "Issued")
        ]
    );
    let denied = wait_for(&server, (CR.0, CR.1, "ns", "denied"), is_ready).await;
    assert_eq!(
        conditions(&denied),
        [
            condition("Denied", "True", "test"),
            condition("Ready", "False", "Denied")
        ]
    );
    assert!(denied["status"]["failureTime"].is_string());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let undecided = server.get_object(CR.0, CR.1, "ns", "undecided").unwrap();
    assert!(conditions(&undecided).is_empty());
    assert_eq!(signer.signed_count(), 1);
}
