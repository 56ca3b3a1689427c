//! The contract's test vectors (SPEC section 11): the legitimate request is approved, each forged
//! variant is denied with a message naming the field at fault, and what is not the approver's to
//! judge is left alone. CSRs are real (rcgen), signed by real keys.

use super::*;
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    KeyPair, KeyUsagePurpose, SanType, SignatureAlgorithm,
};
use serde_json::json;

const TRUST_DOMAIN: &str = "cluster.local";
const NAMESPACE: &str = "sandbox";
const SA: &str = "sleep";
const LEGIT_ID: &str = "spiffe://cluster.local/ns/sandbox/sa/sleep";
const DRIVER_SA: &str = "system:serviceaccount:cert-manager:cert-manager-csi-driver-spiffe";

fn policy() -> Policy {
    Policy {
        trust_domain: TrustDomain::new(TRUST_DOMAIN).unwrap(),
        certificate_request_duration: Duration::from_secs(3600),
        issuer: IssuerRef::normalised("spiffe-ca", "ClusterIssuer", "cert-manager.io"),
        use_own_service_account: false,
        driver_service_account: None,
        auto_approve_non_spiffe: false,
    }
}

/// A CSR as the driver makes it (ECDSA P-256, empty subject, one URI SAN), changed by `change`.
fn csr_with(
    algorithm: &'static SignatureAlgorithm,
    change: impl FnOnce(&mut CertificateParams),
) -> String {
    let key = KeyPair::generate_for(algorithm).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(LEGIT_ID.try_into().unwrap())];
    change(&mut params);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn csr(change: impl FnOnce(&mut CertificateParams)) -> String {
    csr_with(&rcgen::PKCS_ECDSA_P256_SHA256, change)
}

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().unwrap())
}

/// The legitimate request: made by the pod's service account, in its namespace.
fn request(csr_pem: &str) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {
            "name": "req-1",
            "namespace": NAMESPACE,
            "annotations": { IDENTITY_ANNOTATION: LEGIT_ID },
        },
        "spec": {
            "request": serde_json::to_value(ByteString(csr_pem.as_bytes().to_vec())).unwrap(),
            "issuerRef": { "name": "spiffe-ca", "kind": "ClusterIssuer", "group": "cert-manager.io" },
            "duration": "1h0m0s",
            "isCA": false,
            "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
            "username": format!("system:serviceaccount:{NAMESPACE}:{SA}"),
            "groups": ["system:serviceaccounts", "system:serviceaccounts:sandbox", "system:authenticated"],
        },
    })
}

fn legit() -> Value {
    request(&csr(|_| {}))
}

/// Asserts a denial of `class` whose message holds every one of `words`.
#[track_caller]
fn assert_denied(decision: Decision, class: DenialClass, words: &[&str]) {
    let Decision::Deny(denial) = decision else {
        panic!("expected a {class:?} denial, got {decision:?}");
    };
    assert_eq!(denial.class, class, "{}", denial.message);
    for word in words {
        assert!(
            denial.message.contains(word),
            "{:?} does not mention {word:?}",
            denial.message
        );
    }
    assert!(denial.condition_message().starts_with("Denied request: "));
}

#[test]
fn approves_the_legitimate_request() {
    assert_eq!(decide(&legit(), &policy()), Decision::Approve);
}

#[test]
fn approves_key_usage_and_extended_key_usage_extensions_within_the_four() {
    let pem = csr(|p| {
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
    });
    assert_eq!(decide(&request(&pem), &policy()), Decision::Approve);
}

#[test]
fn usages_may_come_in_any_order_and_defaults_are_applied_to_the_issuer_ref() {
    let mut r = legit();
    r["spec"]["usages"] = json!([
        "client auth",
        "server auth",
        "key encipherment",
        "digital signature"
    ]);
    assert_eq!(decide(&r, &policy()), Decision::Approve);

    // An Issuer named by name only is Issuer/cert-manager.io.
    let issuer_policy = Policy {
        issuer: IssuerRef::normalised("spiffe-ca", "Issuer", "cert-manager.io"),
        ..policy()
    };
    r["spec"]["issuerRef"] = json!({ "name": "spiffe-ca" });
    assert_eq!(decide(&r, &issuer_policy), Decision::Approve);
    assert_eq!(
        decide(&r, &policy()),
        Decision::Leave(LeaveReason::OtherIssuer)
    );
}

#[test]
fn duration_is_compared_as_a_duration() {
    let mut r = legit();
    r["spec"]["duration"] = json!("60m");
    assert_eq!(decide(&r, &policy()), Decision::Approve);
}

#[test]
fn denies_another_service_accounts_id() {
    let pem =
        csr(|p| p.subject_alt_names = vec![uri("spiffe://cluster.local/ns/sandbox/sa/admin")]);
    assert_denied(
        decide(&request(&pem), &policy()),
        DenialClass::SpiffeId,
        &[
            "spiffe://cluster.local/ns/sandbox/sa/admin",
            LEGIT_ID,
            "spec.username",
        ],
    );
}

#[test]
fn denies_another_namespaces_id() {
    let pem =
        csr(|p| p.subject_alt_names = vec![uri("spiffe://cluster.local/ns/kube-system/sa/sleep")]);
    assert_denied(
        decide(&request(&pem), &policy()),
        DenialClass::SpiffeId,
        &["kube-system"],
    );
}

#[test]
fn denies_a_request_outside_the_service_accounts_namespace() {
    // Upstream approves this: the identity matches spec.username, only the request's own
    // namespace differs.
    let mut r = legit();
    r["metadata"]["namespace"] = json!("other");
    assert_denied(
        decide(&r, &policy()),
        DenialClass::Namespace,
        &["metadata.namespace", "\"other\"", "\"sandbox\""],
    );
}

#[test]
fn denies_extra_names() {
    let cases: [(&str, SanType); 3] = [
        (
            "DNS names",
            SanType::DnsName("sleep.sandbox.svc".try_into().unwrap()),
        ),
        (
            "email addresses",
            SanType::Rfc822Name("me@example.com".try_into().unwrap()),
        ),
        (
            "IP addresses",
            SanType::IpAddress("10.0.0.1".parse().unwrap()),
        ),
    ];
    for (label, extra) in cases {
        let pem = csr(|p| p.subject_alt_names.push(extra));
        assert_denied(
            decide(&request(&pem), &policy()),
            DenialClass::ForbiddenName,
            &[label],
        );
    }
}

#[test]
fn denies_a_common_name() {
    let pem = csr(|p| p.distinguished_name.push(DnType::CommonName, "sleep"));
    assert_denied(
        decide(&request(&pem), &policy()),
        DenialClass::ForbiddenName,
        &["common name", "sleep"],
    );
}

#[test]
fn denies_any_subject() {
    // Upstream accepts O=; the driver never writes a subject.
    let pem = csr(|p| {
        p.distinguished_name
            .push(DnType::OrganizationName, "Evil Corp")
    });
    assert_denied(
        decide(&request(&pem), &policy()),
        DenialClass::Subject,
        &["subject", "Evil Corp"],
    );
}

#[test]
fn denies_two_uris_and_no_uri() {
    let pem = csr(|p| {
        p.subject_alt_names
            .push(uri("spiffe://cluster.local/ns/sandbox/sa/other"))
    });
    assert_denied(
        decide(&request(&pem), &policy()),
        DenialClass::SpiffeId,
        &["exactly 1", "has 2"],
    );
    let pem = csr(|p| p.subject_alt_names.clear());
    assert_denied(
        decide(&request(&pem), &policy()),
        DenialClass::SpiffeId,
        &["has 0"],
    );
}

#[test]
fn denies_is_ca() {
    let mut r = legit();
    r["spec"]["isCA"] = json!(true);
    assert_denied(
        decide(&r, &policy()),
        DenialClass::IsCa,
        &["spec.isCA", "true"],
    );
    r["spec"]["isCA"] = json!("false");
    assert_denied(decide(&r, &policy()), DenialClass::IsCa, &["spec.isCA"]);
}

#[test]
fn denies_a_wrong_or_missing_duration() {
    let mut r = legit();
    r["spec"]["duration"] = json!("2h0m0s");
    assert_denied(
        decide(&r, &policy()),
        DenialClass::Duration,
        &["spec.duration", "1h0m0s", "2h0m0s"],
    );
    r["spec"]["duration"] = json!("one hour");
    assert_denied(decide(&r, &policy()), DenialClass::Duration, &["one hour"]);
    r["spec"].as_object_mut().unwrap().remove("duration");
    assert_denied(decide(&r, &policy()), DenialClass::Duration, &["not set"]);
}

#[test]
fn denies_wrong_usages() {
    let cases = [
        json!(["digital signature", "key encipherment", "server auth"]),
        json!([
            "digital signature",
            "key encipherment",
            "server auth",
            "client auth",
            "cert sign"
        ]),
        json!([
            "digital signature",
            "key encipherment",
            "server auth",
            "server auth"
        ]),
        json!([]),
        json!("digital signature"),
        json!(["digital signature", 1, "server auth", "client auth"]),
    ];
    for usages in cases {
        let mut r = legit();
        r["spec"]["usages"] = usages.clone();
        assert_denied(decide(&r, &policy()), DenialClass::Usages, &["spec.usages"]);
    }
    let mut r = legit();
    r["spec"].as_object_mut().unwrap().remove("usages");
    assert_denied(decide(&r, &policy()), DenialClass::Usages, &["spec.usages"]);
}

#[test]
fn denies_requests_made_by_someone_else() {
    // Another service account asking for the sleep identity.
    let mut r = legit();
    r["spec"]["username"] = json!("system:serviceaccount:sandbox:admin");
    assert_denied(
        decide(&r, &policy()),
        DenialClass::SpiffeId,
        &["spiffe://cluster.local/ns/sandbox/sa/admin", LEGIT_ID],
    );
    // Not a service account at all.
    for user in [
        "alice",
        "kubernetes-admin",
        "system:serviceaccount:sandbox",
        "system:serviceaccount:a:b:c",
        "",
    ] {
        r["spec"]["username"] = json!(user);
        assert_denied(
            decide(&r, &policy()),
            DenialClass::Requester,
            &["spec.username", &format!("{user:?}")],
        );
    }
    r["spec"].as_object_mut().unwrap().remove("username");
    assert_denied(
        decide(&r, &policy()),
        DenialClass::Requester,
        &["spec.username"],
    );
}

#[test]
fn denies_a_bad_signature() {
    let pem = csr(|_| {});
    let mut der = pem::parse(&pem).unwrap().into_contents();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let forged = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    assert_denied(
        decide(&request(&forged), &policy()),
        DenialClass::Signature,
        &["signature"],
    );
}

#[test]
fn denies_other_key_types() {
    for (algorithm, described) in [
        (&rcgen::PKCS_RSA_SHA256, "RSA 2048"),
        (&rcgen::PKCS_ECDSA_P384_SHA384, "ECDSA P-384"),
        (&rcgen::PKCS_ED25519, "Ed25519"),
    ] {
        let pem = csr_with(algorithm, |_| {});
        assert_denied(
            decide(&request(&pem), &policy()),
            DenialClass::KeyType,
            &["ECDSA P-256", described],
        );
    }
}

#[test]
fn denies_another_trust_domain() {
    let pem = csr(|p| p.subject_alt_names = vec![uri("spiffe://example.org/ns/sandbox/sa/sleep")]);
    assert_denied(
        decide(&request(&pem), &policy()),
        DenialClass::SpiffeId,
        &["example.org", LEGIT_ID],
    );
}

#[test]
fn denies_extra_extensions_and_usages() {
    let pem = csr(|p| {
        p.custom_extensions.push(CustomExtension::from_oid_content(
            &[1, 2, 3, 4, 5],
            vec![0x05, 0x00],
        ));
    });
    assert_denied(
        decide(&request(&pem), &policy()),
        DenialClass::Extension,
        &["forbidden extension", "1.2.3.4.5"],
    );
    let pem = csr(|p| p.key_usages = vec![KeyUsagePurpose::KeyCertSign]);
    assert_denied(
        decide(&request(&pem), &policy()),
        DenialClass::Extension,
        &["key usage"],
    );
    let pem = csr(|p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning]);
    assert_denied(
        decide(&request(&pem), &policy()),
        DenialClass::Extension,
        &["extended key usage"],
    );
}

#[test]
fn never_panics_on_malformed_requests() {
    let garbage = [
        json!(null),
        json!([]),
        json!({}),
        json!({ "spec": null }),
        json!({ "spec": { "issuerRef": "spiffe-ca" } }),
        json!({ "spec": { "issuerRef": { "name": 5 } } }),
        json!({ "status": { "conditions": "Approved" } }),
    ];
    for r in garbage {
        assert_eq!(
            decide(&r, &policy()),
            Decision::Leave(LeaveReason::OtherIssuer),
            "{r}"
        );
    }
    let cases: [(Value, &str); 7] = [
        (json!(null), "not set"),
        (json!(42), "not base64"),
        (json!("!!!"), "not base64"),
        (
            serde_json::to_value(ByteString(b"hello".to_vec())).unwrap(),
            "PEM",
        ),
        (
            serde_json::to_value(ByteString(
                pem::encode(&pem::Pem::new(
                    "CERTIFICATE REQUEST",
                    vec![0x30, 0x03, 1, 2, 3],
                ))
                .into_bytes(),
            ))
            .unwrap(),
            "PKCS#10",
        ),
        (
            serde_json::to_value(ByteString(
                pem::encode(&pem::Pem::new("CERTIFICATE", vec![0x30, 0x00])).into_bytes(),
            ))
            .unwrap(),
            "CERTIFICATE",
        ),
        (
            serde_json::to_value(ByteString(
                format!("{}{}", csr(|_| {}), csr(|_| {})).into_bytes(),
            ))
            .unwrap(),
            "2 PEM blocks",
        ),
    ];
    for (field, words) in cases {
        let mut r = legit();
        r["spec"]["request"] = field;
        assert_denied(
            decide(&r, &policy()),
            DenialClass::MalformedRequest,
            &["spec.request", words],
        );
    }
    let mut r = legit();
    r["spec"].as_object_mut().unwrap().remove("request");
    assert_denied(
        decide(&r, &policy()),
        DenialClass::MalformedRequest,
        &["not set"],
    );
}

#[test]
fn leaves_decided_requests_alone() {
    for condition in [
        json!({"type": "Approved", "status": "True"}),
        json!({"type": "Denied", "status": "True"}),
        json!({"type": "Ready", "status": "True"}),
    ] {
        let mut r = legit();
        r["status"] = json!({ "conditions": [condition] });
        assert_eq!(
            decide(&r, &policy()),
            Decision::Leave(LeaveReason::AlreadyDecided)
        );
    }
    let mut r = request("garbage");
    r["status"] = json!({ "failureTime": "2026-01-01T00:00:00Z" });
    assert_eq!(
        decide(&r, &policy()),
        Decision::Leave(LeaveReason::AlreadyDecided)
    );
    // A pending Ready=False is no decision.
    let mut r = legit();
    r["status"] =
        json!({ "conditions": [{"type": "Ready", "status": "False", "reason": "Pending"}] });
    assert_eq!(decide(&r, &policy()), Decision::Approve);
}

#[test]
fn leaves_requests_for_other_issuers_alone() {
    for issuer in [
        json!({ "name": "other-ca", "kind": "ClusterIssuer", "group": "cert-manager.io" }),
        json!({ "name": "spiffe-ca", "kind": "Issuer", "group": "cert-manager.io" }),
        json!({ "name": "spiffe-ca", "kind": "ClusterIssuer", "group": "example.com" }),
    ] {
        // Even a forged one: someone else's approver decides about it.
        let mut r = request("garbage");
        r["spec"]["issuerRef"] = issuer;
        assert_eq!(
            decide(&r, &policy()),
            Decision::Leave(LeaveReason::OtherIssuer)
        );
    }
}

#[test]
fn auto_approve_non_spiffe_approves_other_issuers_unless_they_reach_for_spiffe() {
    let auto = Policy {
        auto_approve_non_spiffe: true,
        ..policy()
    };
    let plain = csr(|p| {
        p.subject_alt_names = vec![SanType::DnsName("web.example.com".try_into().unwrap())];
        p.distinguished_name.push(DnType::CommonName, "web");
    });
    let mut r = request(&plain);
    r["metadata"]["annotations"] = json!({});
    r["spec"]["issuerRef"]["name"] = json!("letsencrypt");
    r["spec"]["username"] = json!("alice");
    assert_eq!(decide(&r, &auto), Decision::Approve);

    // A SPIFFE URI for another issuer.
    let mut spiffe = legit();
    spiffe["metadata"]["annotations"] = json!({});
    spiffe["spec"]["issuerRef"]["name"] = json!("letsencrypt");
    assert_denied(
        decide(&spiffe, &auto),
        DenialClass::SpiffeForOtherIssuer,
        &["SPIFFE URI", LEGIT_ID],
    );
    // The driver's annotation on a request for another issuer.
    let mut annotated = r.clone();
    annotated["metadata"]["annotations"] = json!({ IDENTITY_ANNOTATION: LEGIT_ID });
    assert_denied(
        decide(&annotated, &auto),
        DenialClass::SpiffeForOtherIssuer,
        &[IDENTITY_ANNOTATION],
    );
    // Requests for the SPIFFE issuer get the full rules whatever the flag says.
    let mut forged = request(&plain);
    forged["metadata"]["annotations"] = json!({});
    assert_denied(
        decide(&forged, &auto),
        DenialClass::ForbiddenName,
        &["web.example.com"],
    );
}

#[test]
fn own_service_account_mode_checks_the_requester_and_the_trust_domain() {
    let own = Policy {
        use_own_service_account: true,
        driver_service_account: Some(DRIVER_SA.to_string()),
        ..policy()
    };
    let mut r = legit();
    r["spec"]["username"] = json!(DRIVER_SA);
    assert_eq!(decide(&r, &own), Decision::Approve);

    // The pod's own account is not the driver.
    assert_denied(
        decide(&legit(), &own),
        DenialClass::Requester,
        &[DRIVER_SA, "system:serviceaccount:sandbox:sleep"],
    );

    // Another trust domain.
    let pem = csr(|p| p.subject_alt_names = vec![uri("spiffe://example.org/ns/sandbox/sa/sleep")]);
    let mut other = request(&pem);
    other["spec"]["username"] = json!(DRIVER_SA);
    assert_denied(
        decide(&other, &own),
        DenialClass::SpiffeId,
        &["example.org"],
    );

    // Not a SPIFFE ID of the ns/sa form (upstream does not look at the path).
    let pem = csr(|p| p.subject_alt_names = vec![uri("spiffe://cluster.local/anything/at/all")]);
    let mut odd = request(&pem);
    odd["spec"]["username"] = json!(DRIVER_SA);
    assert_denied(
        decide(&odd, &own),
        DenialClass::SpiffeId,
        &["anything/at/all"],
    );

    // Another namespace than the request's.
    let pem =
        csr(|p| p.subject_alt_names = vec![uri("spiffe://cluster.local/ns/kube-system/sa/sleep")]);
    let mut elsewhere = request(&pem);
    elsewhere["spec"]["username"] = json!(DRIVER_SA);
    assert_denied(
        decide(&elsewhere, &own),
        DenialClass::Namespace,
        &["kube-system"],
    );

    // No driver account configured: nobody qualifies.
    let unset = Policy {
        driver_service_account: None,
        ..own
    };
    assert_denied(
        decide(&r, &unset),
        DenialClass::Requester,
        &["spec.username"],
    );
}
