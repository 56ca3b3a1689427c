//! Test vectors of the attribute parser: upstream's defaults, every rule, every message.
//!
//! One file (just over 800 lines) because it is one table sharing the `context` builder.

use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn context(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = [
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
    for (k, v) in extra {
        map.insert(k.to_string(), v.to_string());
    }
    map
}

fn problems(extra: &[(&str, &str)]) -> InvalidAttributes {
    parse_volume_context(&context(extra)).expect_err("must be rejected")
}

#[test]
fn x509_upper_bounds_are_warnings_and_the_value_is_kept() {
    // jetstack's driver has no bounds on subject values and cert-manager issues longer ones.
    let cn_64 = "c".repeat(64);
    let request = parse_volume_context(&context(&[(key::COMMON_NAME, &cn_64)])).unwrap();
    assert!(request.warnings.is_empty(), "{:?}", request.warnings);
    for (attribute, value, length, bound, source) in [
        (key::COMMON_NAME, "c".repeat(65), 65, 64, "ub-common-name"),
        (key::COMMON_NAME, "c".repeat(200), 200, 64, "ub-common-name"),
        (
            key::ORGANIZATIONS,
            "o".repeat(65),
            65,
            64,
            "ub-organization-name",
        ),
        (
            key::ORGANIZATIONAL_UNITS,
            "u".repeat(65),
            65,
            64,
            "ub-organizational-unit-name",
        ),
        (
            key::LOCALITIES,
            "l".repeat(129),
            129,
            128,
            "ub-locality-name",
        ),
        (key::PROVINCES, "p".repeat(129), 129, 128, "ub-state-name"),
        (
            key::COUNTRIES,
            "GBR".to_string(),
            3,
            2,
            "ub-country-name-alpha-length",
        ),
        (key::POSTAL_CODES, "9".repeat(41), 41, 40, "ub-postal-code"),
        (
            key::STREET_ADDRESSES,
            "s".repeat(129),
            129,
            128,
            "ub-street-address",
        ),
        (
            key::SERIAL_NUMBER,
            "1".repeat(65),
            65,
            64,
            "ub-serial-number",
        ),
        (
            key::LITERAL_SUBJECT,
            format!("CN={}", "c".repeat(65)),
            65,
            64,
            "ub-common-name",
        ),
    ] {
        let request = parse_volume_context(&context(&[
            (key::DNS_NAMES, "a.example.com"),
            (attribute, &value),
        ]))
        .unwrap_or_else(|e| panic!("{attribute}: refused: {e}"));
        let subject = request.spec.subject.to_string();
        assert!(
            subject.contains(value.trim_start_matches("CN=")),
            "{attribute}: the value is requested as given, not {subject}"
        );
        let warning = request.warnings.join("\n");
        assert!(
            request.warnings.len() == 1
                && warning.contains(attribute)
                && warning.contains(&format!("{length} characters"))
                && warning.contains(&format!("over the {bound} "))
                && warning.contains(source),
            "{attribute}: {warning}"
        );
    }
    // A 1 MB common name is kept; its warning stays short (the value is not repeated).
    let huge = "x".repeat(1_000_000);
    let request = parse_volume_context(&context(&[(key::COMMON_NAME, &huge)])).unwrap();
    assert_eq!(request.spec.subject.common_name(), Some(huge.as_str()));
    let warning = request.warnings.join("\n");
    assert!(warning.contains("1000000 characters"), "{warning}");
    assert!(warning.len() < 1000, "{} bytes", warning.len());
    // DNS labels over 63 characters (RFC 1035): accepted, as the Go driver does, with a warning.
    let label = format!("{}.example.com", "d".repeat(64));
    let request = parse_volume_context(&context(&[(key::DNS_NAMES, &label)])).unwrap();
    assert!(
        request.warnings.iter().any(|w| w.contains("63 per label")),
        "{:?}",
        request.warnings
    );
}

#[test]
fn readme_example_gets_upstream_defaults() {
    let request = parse_volume_context(&context(&[(
        key::DNS_NAMES,
        "${POD_NAME}.${POD_NAMESPACE}.svc.cluster.local",
    )]))
    .unwrap();
    let spec = request.spec;
    assert_eq!(spec.dns_names, ["my-csi-app.sandbox.svc.cluster.local"]);
    assert_eq!(spec.issuer.kind, "Issuer");
    assert_eq!(spec.issuer.group, "cert-manager.io");
    assert_eq!(spec.duration, Duration::from_secs(720 * 3600));
    assert_eq!(spec.renew_before, None);
    assert_eq!(
        spec.usages,
        [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment]
    );
    assert_eq!(spec.key, KeySpec::DEFAULT);
    assert_eq!(spec.files.certificate, "tls.crt");
    assert_eq!(spec.files.private_key, "tls.key");
    assert_eq!(spec.files.ca, "ca.crt");
    assert!(!spec.is_ca && !spec.reuse_private_key);
    assert_eq!(request.pod.name, "my-csi-app");
}

#[test]
fn missing_issuer_name_is_named() {
    let mut ctx = context(&[(key::DNS_NAMES, "a.example.com")]);
    ctx.remove(key::ISSUER_NAME);
    let error = parse_volume_context(&ctx).unwrap_err();
    assert!(error.to_string().contains(key::ISSUER_NAME), "{error}");
}

#[test]
fn every_problem_is_reported_at_once_with_key_and_value() {
    let error = problems(&[
        (key::DURATION, "90d"),
        (key::IS_CA, "yes"),
        (key::IP_SANS, "10.0.0.1,not-an-ip"),
        (key::CERTIFICATE_FILE, "../escape"),
        (key::KEY_USAGES, "server auth,flying"),
    ]);
    let message = error.to_string();
    for expected in [
        "csi.cert-manager.io/duration=\"90d\"",
        "csi.cert-manager.io/is-ca=\"yes\"",
        "\"not-an-ip\"",
        "csi.cert-manager.io/certificate-file=\"../escape\"",
        "\"flying\"",
    ] {
        assert!(
            message.contains(expected),
            "{expected} missing from: {message}"
        );
    }
    assert_eq!(error.0.len(), 5);
}

#[test]
fn file_names_cannot_escape_the_volume() {
    for bad in [
        "/etc/passwd",
        "a/b",
        "..data",
        "..",
        " tls.crt",
        "tls.crt ",
        ".",
    ] {
        let error = problems(&[(key::DNS_NAMES, "a"), (key::PRIVATE_KEY_FILE, bad)]);
        assert!(
            error.to_string().contains(key::PRIVATE_KEY_FILE),
            "{bad:?}: {error}"
        );
    }
    let long = "x".repeat(256);
    assert!(
        problems(&[(key::DNS_NAMES, "a"), (key::CA_FILE, &long)])
            .0
            .len()
            == 1
    );
    assert!(
        parse_volume_context(&context(&[(key::DNS_NAMES, "a"), (key::CA_FILE, "...ca")])).is_err()
    );
    // An empty name is the default name, as for the Go driver.
    let files = parse_volume_context(&context(&[
        (key::DNS_NAMES, "a"),
        (key::PRIVATE_KEY_FILE, ""),
    ]))
    .unwrap()
    .spec
    .files;
    assert_eq!(files.private_key, "tls.key");
}

#[test]
fn file_names_must_be_distinct() {
    let error = problems(&[(key::DNS_NAMES, "a"), (key::CA_FILE, "tls.crt")]);
    assert!(error.to_string().contains("distinct"), "{error}");
}

#[test]
fn non_ephemeral_and_missing_pod_info_are_rejected() {
    let mut ctx = context(&[(key::DNS_NAMES, "a")]);
    ctx.remove(key::EPHEMERAL);
    ctx.remove(key::POD_NAMESPACE);
    let message = parse_volume_context(&ctx).unwrap_err().to_string();
    assert!(message.contains(key::EPHEMERAL), "{message}");
    assert!(message.contains(key::POD_NAMESPACE), "{message}");
}

#[test]
fn key_rules() {
    let ok = |pairs: &[(&str, &str)]| {
        let mut all = vec![(key::DNS_NAMES, "a")];
        all.extend_from_slice(pairs);
        parse_volume_context(&context(&all)).map(|r| r.spec.key)
    };
    assert_eq!(
        ok(&[(key::KEY_ALGORITHM, "ecdsa")]).unwrap(),
        KeySpec {
            algorithm: KeyAlgorithm::Ecdsa,
            size: 256,
            encoding: KeyEncoding::Pkcs8
        }
    );
    assert_eq!(ok(&[(key::KEY_ALGORITHM, "Ed25519")]).unwrap().size, 0);
    assert_eq!(ok(&[(key::KEY_SIZE, "4096")]).unwrap().size, 4096);
    assert!(ok(&[(key::KEY_SIZE, "1024")]).is_err());
    assert!(ok(&[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "2048")]).is_err());
    assert!(ok(&[(key::KEY_ALGORITHM, "Ed25519"), (key::KEY_SIZE, "256")]).is_err());
    assert!(ok(&[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_ENCODING, "PKCS1")]).is_err());
    assert!(ok(&[(key::KEY_ALGORITHM, "DSA")]).is_err());
}

#[test]
fn unknown_keys_get_a_hint_and_other_prefixes_become_annotations() {
    let request = parse_volume_context(&context(&[
        (key::DNS_NAMES, "a"),
        ("csi.cert-manager.io/dns-name", "b"),
        ("csi.cert-manager.io/private-key-file", "x.key"),
        ("csi.cert-manager.io/zzz", "1"),
        ("venafi.cert-manager.io/custom-fields", "[]"),
        ("plain-key", "ignored"),
    ]))
    .unwrap();
    assert_eq!(
        request.unknown_keys,
        [
            "csi.cert-manager.io/dns-name",
            "csi.cert-manager.io/private-key-file",
            "csi.cert-manager.io/zzz"
        ]
    );
    let warnings = request.warnings.join("\n");
    assert!(
        warnings
            .contains("csi.cert-manager.io/dns-name (did you mean csi.cert-manager.io/dns-names?)"),
        "{warnings}"
    );
    assert!(
        warnings.contains("did you mean csi.cert-manager.io/privatekey-file?"),
        "{warnings}"
    );
    assert!(
        warnings.contains("unknown attribute csi.cert-manager.io/zzz\n")
            || warnings.ends_with("unknown attribute csi.cert-manager.io/zzz"),
        "{warnings}"
    );
    assert_eq!(
        request.spec.annotations.keys().collect::<Vec<_>>(),
        ["venafi.cert-manager.io/custom-fields"]
    );
}

#[test]
fn strict_mode_makes_unknown_keys_errors() {
    let strict = ParseOptions {
        strict: true,
        ..ParseOptions::default()
    };
    let error = parse_volume_context_with(
        &context(&[(key::DNS_NAMES, "a"), ("csi.cert-manager.io/dns-name", "b")]),
        strict,
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("csi.cert-manager.io/dns-name is not a known attribute (did you mean csi.cert-manager.io/dns-names?)"), "{message}");
    assert!(
        !message.contains("\"b\""),
        "values of unknown keys are never shown: {message}"
    );
}

/// Seed 001's `keystore-pkcs12-*` spellings were never the Go driver's keys, which ignores them:
/// they are unknown keys (a warning with a hint), and no keystore is written.
#[test]
fn old_keystore_spellings_are_unknown_keys() {
    let request = parse_volume_context(&context(&[
        (key::DNS_NAMES, "a"),
        ("csi.cert-manager.io/keystore-pkcs12-enable", "true"),
        ("csi.cert-manager.io/keystore-pkcs12-password", "changeit"),
    ]))
    .unwrap();
    assert!(request.spec.pkcs12.is_none());
    assert_eq!(
        request.unknown_keys,
        [
            "csi.cert-manager.io/keystore-pkcs12-enable",
            "csi.cert-manager.io/keystore-pkcs12-password"
        ]
    );
    assert!(
        request.warnings.iter().any(|w| w
            .contains("keystore-pkcs12-enable (did you mean csi.cert-manager.io/pkcs12-enable?)")),
        "{:?}",
        request.warnings
    );
    // Enabled without a password: still accepted, as by the Go driver.
    assert!(
        parse_volume_context(&context(&[
            (key::DNS_NAMES, "a"),
            ("csi.cert-manager.io/keystore-pkcs12-enable", "true"),
        ]))
        .is_ok()
    );
}

#[test]
fn sans_are_parsed() {
    let request = parse_volume_context(&context(&[
        (key::DNS_NAMES, " a.example.com , b.example.com,"),
        (key::IP_SANS, "10.0.0.1,::1"),
        (
            key::URI_SANS,
            "spiffe://cluster.local/ns/${POD_NAMESPACE}/pod/${POD_NAME}",
        ),
    ]))
    .unwrap();
    assert_eq!(request.spec.dns_names, ["a.example.com", "b.example.com"]);
    assert_eq!(request.spec.ip_sans.len(), 2);
    assert_eq!(
        request.spec.uri_sans,
        ["spiffe://cluster.local/ns/sandbox/pod/my-csi-app"]
    );
    assert!(
        problems(&[(key::URI_SANS, "not a uri")])
            .to_string()
            .contains("not a URI")
    );
}

/// As the Go driver (and cert-manager) does, a certificate that nothing names is accepted, with
/// a warning.
#[test]
fn a_volume_without_any_name_is_accepted_with_a_warning() {
    for nameless in [
        vec![],
        vec![(key::DNS_NAMES, ",")],
        vec![(key::ORGANIZATIONS, "Only An Org")],
        vec![(key::LITERAL_SUBJECT, "O=Example")],
    ] {
        let request = parse_volume_context(&context(&nameless)).unwrap();
        assert!(
            request.warnings.iter().any(|w| w.contains("names nothing")),
            "{nameless:?}: {:?}",
            request.warnings
        );
    }
    // A CN inside literal-subject is a name.
    let request = parse_volume_context(&context(&[(key::LITERAL_SUBJECT, "CN=x,O=Example")]));
    assert!(request.unwrap().warnings.is_empty());
}

/// Every rule, one row each: the volume is rejected and the message names the key and the
/// value as written.
#[test]
fn each_invalid_value_is_rejected_naming_key_and_value() {
    let long_name = "x".repeat(256);
    let cases: Vec<(&str, &str)> = vec![
        (key::ISSUER_NAME, "  "),
        (key::LITERAL_SUBJECT, "CN"),
        (key::LITERAL_SUBJECT, "FOO=bar"),
        (key::LITERAL_SUBJECT, "CN=#04020102"),
        (key::COMMON_NAME, "${POD_IP}"),
        (key::ORGANIZATIONS, "${UNKNOWN}"),
        (key::DNS_NAMES, "has space.example.com"),
        (key::DNS_NAMES, "bücher.example"),
        (key::IP_SANS, "300.1.1.1"),
        (key::IP_SANS, "10.0.0.1/24"),
        (key::URI_SANS, "no-scheme"),
        (key::DURATION, "90d"),
        (key::DURATION, "-1h"),
        (key::RENEW_BEFORE, "1y"),
        (key::IS_CA, "True"),
        (key::REUSE_PRIVATE_KEY, "1"),
        (key::KEY_USAGES, "server auth,flying"),
        (key::KEY_USAGES, ","),
        (key::KEY_USAGES, "server auth,"),
        (key::KEY_SIZE, " 2048"),
        (key::FS_GROUP, " 1000"),
        (key::ISSUER_KIND, " Issuer"),
        (key::ISSUER_GROUP, "cert-manager.io "),
        (key::IP_SANS, "10.0.0.1,"),
        (key::URI_SANS, "spiffe://a:b"),
        (key::URI_SANS, "spiffe://a/%zz"),
        (key::RENEW_BEFORE, "-1h"),
        (key::RENEW_BEFORE, ""),
        (key::PKCS12_ENABLE, ""),
        (key::PKCS12_FILENAME, "keystore.p12"),
        (key::KEY_ALGORITHM, "DSA"),
        (key::KEY_SIZE, "1024"),
        (key::KEY_SIZE, "8193"),
        (key::KEY_SIZE, "big"),
        (key::KEY_ENCODING, "PKCS7"),
        (key::CERTIFICATE_FILE, "/etc/tls.crt"),
        (key::PRIVATE_KEY_FILE, "keys/tls.key"),
        (key::CA_FILE, "..ca.crt"),
        (key::CA_FILE, " ca.crt"),
        (key::CA_FILE, &long_name),
        (key::FS_GROUP, "0"),
        (key::FS_GROUP, "-1"),
        (key::FS_GROUP, "4294967296"),
        (key::FS_GROUP, "staff"),
        (key::PKCS12_ENABLE, "yes"),
    ];
    for (bad_key, bad_value) in cases {
        let error = problems(&[(key::DNS_NAMES, "a.example.com"), (bad_key, bad_value)]);
        let message = error.to_string();
        let shown = if bad_key == key::DNS_NAMES {
            // The list is reported entry by entry.
            format!("{bad_key}={:?}", bad_value)
        } else {
            format!("{bad_key}={bad_value:?}")
        };
        assert!(message.contains(&shown), "{shown} not in: {message}");
    }
    // Cross rules.
    for (pairs, named) in [
        (
            vec![(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "2048")],
            key::KEY_SIZE,
        ),
        (
            vec![(key::KEY_ALGORITHM, "Ed25519"), (key::KEY_SIZE, "256")],
            key::KEY_SIZE,
        ),
        (
            vec![(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_ENCODING, "PKCS1")],
            key::KEY_ENCODING,
        ),
        (vec![(key::PKCS12_ENABLE, "true")], key::PKCS12_PASSWORD),
        (
            vec![
                (key::PKCS12_ENABLE, "true"),
                (key::PKCS12_PASSWORD, "p"),
                (key::PKCS12_PROFILE, "Modern2024"),
            ],
            key::PKCS12_PROFILE,
        ),
        (
            vec![
                (key::PKCS12_ENABLE, "true"),
                (key::PKCS12_PASSWORD, "p"),
                (key::PKCS12_FILENAME, "tls.key"),
            ],
            key::PKCS12_FILENAME,
        ),
    ] {
        let mut all = vec![(key::DNS_NAMES, "a.example.com")];
        all.extend(pairs);
        let message = problems(&all).to_string();
        assert!(message.contains(named), "{named} not in: {message}");
    }
}

#[test]
fn valid_values_are_read() {
    let request = parse_volume_context(&context(&[
        (key::DNS_NAMES, "a.example.com"),
        (key::ORGANIZATIONS, "Example Inc.,${POD_NAMESPACE}"),
        (key::COUNTRIES, "GB"),
        (key::SERIAL_NUMBER, "42"),
        (key::COMMON_NAME, "${POD_NAME}"),
        (key::DURATION, "1h30m"),
        (key::RENEW_BEFORE, "90s"),
        (key::IS_CA, "true"),
        (key::KEY_USAGES, "cert sign, crl sign"),
        (key::KEY_ALGORITHM, "ecdsa"),
        (key::KEY_SIZE, "521"),
        (key::FS_GROUP, "2000"),
        (key::REUSE_PRIVATE_KEY, "true"),
        (key::PKCS12_ENABLE, "true"),
        (key::PKCS12_PASSWORD, "changeit"),
        (key::PKCS12_PROFILE, "modern2023"),
        (key::IP_SANS, "10.0.0.1, ::1"),
    ]))
    .unwrap();
    let spec = request.spec;
    assert_eq!(
        spec.subject.to_string(),
        "SERIALNUMBER=42,CN=my-csi-app,O=Example Inc.+O=sandbox,C=GB",
        "both organizations in one RDN, as Go's pkix.Name puts them"
    );
    // Lists are split at every comma, each entry kept as written (the Go driver's
    // strings.Split): no `\,` escape, spaces and empty entries stay.
    let request = parse_volume_context(&context(&[
        (key::DNS_NAMES, "a.example.com"),
        (key::ORGANIZATIONS, r"Example\, Inc., B,"),
    ]))
    .unwrap();
    let organizations: Vec<&str> = request.spec.subject.rdns[0]
        .iter()
        .map(|value| value.value.as_str())
        .collect();
    assert_eq!(organizations, ["Example\\", " Inc.", " B", ""]);
    assert_eq!(spec.duration, Duration::from_secs(5400));
    assert_eq!(spec.renew_before, Some(Duration::from_secs(90)));
    assert!(spec.is_ca && spec.reuse_private_key);
    assert_eq!(spec.usages, [KeyUsage::CertSign, KeyUsage::CrlSign]);
    assert_eq!(spec.key.size, 521);
    assert_eq!(spec.fs_group, Some(2000));
    let keystore = spec.pkcs12.unwrap();
    assert_eq!(keystore.profile, Pkcs12Profile::Modern2023);
    assert_eq!(format!("{:?}", keystore.password), "<redacted>");
    assert_eq!(spec.ip_sans.len(), 2);
}

#[test]
fn literal_subject_overrides_the_other_subject_keys_with_a_warning() {
    let request = parse_volume_context(&context(&[
        (key::LITERAL_SUBJECT, "CN=${POD_NAME},O=Lit"),
        (key::ORGANIZATIONS, "Ignored"),
        (key::COMMON_NAME, "ignored"),
    ]))
    .unwrap();
    assert_eq!(request.spec.subject.to_string(), "CN=my-csi-app,O=Lit");
    assert!(
        request
            .warnings
            .iter()
            .any(|w| w.contains("organizations") && w.contains("common-name")),
        "{:?}",
        request.warnings
    );
}

#[test]
fn hints_find_the_intended_key() {
    assert_eq!(
        closest_known_key("csi.cert-manager.io/dnsnames"),
        Some(key::DNS_NAMES)
    );
    assert_eq!(
        closest_known_key("csi.cert-manager.io/issuer"),
        Some(key::ISSUER_NAME)
    );
    assert_eq!(
        closest_known_key("csi.cert-manager.io/renewbefore"),
        Some(key::RENEW_BEFORE)
    );
    assert_eq!(
        closest_known_key("csi.cert-manager.io/organization"),
        Some(key::ORGANIZATIONS)
    );
    assert_eq!(
        closest_known_key("csi.cert-manager.io/something-else-entirely"),
        None
    );
}

#[test]
fn every_row_of_the_table_is_read_by_its_own_part() {
    // A context that sets every key, so that every parser reads all it can.
    let mut full = context(&[]);
    for row in ATTRIBUTES {
        full.entry(row.key.to_string())
            .or_insert_with(|| "x".into());
    }
    for switch in [
        key::PKCS12_ENABLE,
        key::PKCS12_TRUSTSTORE_ENABLE,
        key::JKS_ENABLE,
        key::JKS_TRUSTSTORE_ENABLE,
    ] {
        full.insert(switch.into(), "true".into());
    }
    let mut reader = Reader::new(&full);
    let _ = parse(&mut reader, ParseOptions::default());
    let reads = reader.reads.borrow();
    for row in ATTRIBUTES.iter().filter(|row| row.part != Part::Token) {
        assert!(
            reads.contains(&(Some(row.part), row.key)),
            "{} is in the table as {:?} but that part never reads it",
            row.key,
            row.part
        );
    }
}

fn with_pod_ip_wait(continue_on_not_ready: bool, pod_ip_gate: bool) -> ParseOptions {
    ParseOptions {
        pod_ip_wait: PodIpWait {
            continue_on_not_ready,
            pod_ip_gate,
        },
        ..ParseOptions::default()
    }
}

#[test]
fn pod_ip_variables_need_a_driver_that_waits_for_the_address() {
    let ctx = context(&[(key::IP_SANS, "${POD_IP}")]);
    for (continue_on_not_ready, pod_ip_gate, missing) in [
        (
            false,
            false,
            "--continue-on-not-ready=true and --pod-readiness-gate=pod-ip:any",
        ),
        (true, false, "--pod-readiness-gate=pod-ip:any"),
        (false, true, "--continue-on-not-ready=true"),
    ] {
        let message =
            parse_volume_context_with(&ctx, with_pod_ip_wait(continue_on_not_ready, pod_ip_gate))
                .unwrap_err()
                .to_string();
        assert!(
            message.contains(key::IP_SANS)
                && message.contains("${POD_IP}")
                && message.contains(missing),
            "{message}"
        );
    }
    let parsed = parse_volume_context_with(&ctx, with_pod_ip_wait(true, true)).unwrap();
    assert_eq!(parsed.spec.pod_ip_sans, PodIpSans::Primary);
    assert!(
        parsed.spec.ip_sans.is_empty(),
        "the pod's address alone names the certificate"
    );
}

#[test]
fn pod_ip_variables_are_whole_ip_sans_entries_and_nothing_else() {
    let waits = with_pod_ip_wait(true, true);
    let parsed = parse_volume_context_with(
        &context(&[(key::IP_SANS, "$POD_IP, 192.0.2.1, ${POD_IPS}")]),
        waits,
    )
    .unwrap();
    assert_eq!(parsed.spec.pod_ip_sans, PodIpSans::All);
    assert_eq!(
        parsed.spec.ip_sans,
        ["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
    );
    for (attribute, value) in [
        (key::IP_SANS, "10.0.0.${POD_IP}"),
        (key::DNS_NAMES, "${POD_IP}.example.com"),
        (key::URI_SANS, "spiffe://cluster/${POD_IPS}"),
        (key::COMMON_NAME, "${POD_IP}"),
    ] {
        let message = parse_volume_context_with(&context(&[(attribute, value)]), waits)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(attribute)
                && message.contains("ip-sans")
                && message.contains("whole entry"),
            "{attribute}: {message}"
        );
    }
}

#[test]
fn the_pods_addresses_come_first_in_the_issued_spec() {
    let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
    let parsed = parse_volume_context_with(
        &context(&[(key::IP_SANS, "${POD_IP},192.0.2.1,10.0.0.7")]),
        with_pod_ip_wait(true, true),
    )
    .unwrap();
    let pod_ips = [ip("10.0.0.7"), ip("fd00::7")];
    assert_eq!(
        parsed.spec.with_pod_ips(&pod_ips).ip_sans,
        [ip("10.0.0.7"), ip("192.0.2.1")],
        "the primary address first, a written address it repeats only once"
    );
    let mut all = parsed.spec.clone();
    all.pod_ip_sans = PodIpSans::All;
    assert_eq!(
        all.with_pod_ips(&pod_ips).ip_sans,
        [ip("10.0.0.7"), ip("fd00::7"), ip("192.0.2.1")]
    );
    let literal = parse_volume_context(&context(&[(key::IP_SANS, "192.0.2.1")])).unwrap();
    assert_eq!(literal.spec.with_pod_ips(&pod_ips), literal.spec);
}

#[test]
fn java_keystores_get_cert_managers_defaults() {
    let spec = parse_volume_context(&context(&[
        (key::DNS_NAMES, "a.example.com"),
        (key::JKS_ENABLE, "true"),
        (key::JKS_PASSWORD, "changeit"),
        (key::PKCS12_ENABLE, "true"),
        (key::PKCS12_PASSWORD, "changeit"),
    ]))
    .unwrap()
    .spec;
    let jks = spec.jks.unwrap();
    assert_eq!(jks.file_name, "keystore.jks");
    assert_eq!(jks.alias, "certificate");
    assert_eq!(jks.truststore.as_deref(), Some("truststore.jks"));
    assert_eq!(format!("{jks:?}").matches("changeit").count(), 0, "{jks:?}");
    // The Go driver never wrote a PKCS#12 truststore: still off unless asked for.
    let pkcs12 = spec.pkcs12.unwrap();
    assert_eq!(pkcs12.truststore, None);

    let spec = parse_volume_context(&context(&[
        (key::DNS_NAMES, "a.example.com"),
        (key::JKS_ENABLE, "true"),
        (key::JKS_PASSWORD, "changeit"),
        (key::JKS_ALIAS, "my-app"),
        (key::JKS_FILENAME, "app.jks"),
        (key::JKS_TRUSTSTORE_ENABLE, "false"),
        (key::JKS_TRUSTSTORE_FILENAME, "ignored.jks"),
        (key::PKCS12_ENABLE, "true"),
        (key::PKCS12_PASSWORD, "changeit"),
        (key::PKCS12_PROFILE, "modern2026"),
        (key::PKCS12_TRUSTSTORE_ENABLE, "true"),
    ]))
    .unwrap()
    .spec;
    let jks = spec.jks.unwrap();
    assert_eq!(
        (jks.file_name.as_str(), jks.alias.as_str(), jks.truststore),
        ("app.jks", "my-app", None)
    );
    let pkcs12 = spec.pkcs12.unwrap();
    assert_eq!(pkcs12.profile, Pkcs12Profile::Modern2026);
    assert_eq!(pkcs12.truststore.as_deref(), Some("truststore.p12"));
    // A keystore's other keys need its switch, as pkcs12-* do in the Go driver.
    let message =
        problems(&[(key::DNS_NAMES, "a.example.com"), (key::JKS_ALIAS, "ca")]).to_string();
    assert!(
        message.contains(
            "jks-alias=\"ca\" cannot use attribute without \"csi.cert-manager.io/jks-enable\""
        ),
        "{message}"
    );
    // Switched off: the password is still needed, nothing is written.
    let spec = parse_volume_context(&context(&[
        (key::DNS_NAMES, "a.example.com"),
        (key::JKS_ENABLE, "false"),
        (key::JKS_PASSWORD, "changeit"),
    ]))
    .unwrap()
    .spec;
    assert!(spec.jks.is_none());
}

#[test]
fn bad_java_keystore_input_is_one_error_naming_each_problem() {
    let error = problems(&[
        (key::DNS_NAMES, "a.example.com"),
        (key::JKS_ENABLE, "true"),
        (key::JKS_ALIAS, "CA-1"),
        (key::JKS_FILENAME, "tls.crt"),
        (key::JKS_TRUSTSTORE_ENABLE, "yes"),
        (key::PKCS12_ENABLE, "true"),
        (key::PKCS12_PASSWORD, "p"),
        (key::PKCS12_TRUSTSTORE_ENABLE, "true"),
        (key::PKCS12_TRUSTSTORE_FILENAME, "ca.crt"),
    ]);
    let keys: Vec<&str> = error.0.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            key::JKS_PASSWORD,
            key::JKS_ALIAS,
            key::JKS_TRUSTSTORE_ENABLE,
            key::PKCS12_TRUSTSTORE_FILENAME,
            key::JKS_FILENAME,
        ],
        "{error}"
    );
    let message = error.to_string();
    for shown in [
        "jks-password is required when csi.cert-manager.io/jks-enable is set",
        "jks-alias=\"CA-1\" is taken by the CA entries",
        "jks-truststore-enable=\"yes\" must be \"true\" or \"false\"",
        "pkcs12-truststore-filename=\"ca.crt\" names the same file",
        "jks-filename=\"tls.crt\" names the same file",
    ] {
        assert!(message.contains(shown), "{shown} not in: {message}");
    }

    for (alias, reason) in [
        ("", "must not be empty"),
        (" certificate", "must not start or end with spaces"),
        ("a\u{7}b", "must not contain control characters"),
        ("ca", "is taken by the CA entries"),
    ] {
        let message = problems(&[
            (key::DNS_NAMES, "a.example.com"),
            (key::JKS_ENABLE, "true"),
            (key::JKS_PASSWORD, "p"),
            (key::JKS_ALIAS, alias),
        ])
        .to_string();
        assert!(message.contains(reason), "{alias:?}: {message}");
    }
    let long = "a".repeat(65_536);
    let message = problems(&[
        (key::DNS_NAMES, "a.example.com"),
        (key::JKS_ENABLE, "true"),
        (key::JKS_PASSWORD, "p"),
        (key::JKS_ALIAS, &long),
    ])
    .to_string();
    assert!(message.contains("at most 65535 bytes"), "{message}");

    // The truststores collide with each other and with the keystores too; the blame goes to
    // the attribute the user set.
    let message = problems(&[
        (key::DNS_NAMES, "a.example.com"),
        (key::JKS_ENABLE, "true"),
        (key::JKS_PASSWORD, "p"),
        (key::JKS_TRUSTSTORE_FILENAME, "keystore.jks"),
    ])
    .to_string();
    assert!(
        message.contains("jks-truststore-filename=\"keystore.jks\" names the same file"),
        "{message}"
    );
}

#[test]
fn keystore_passwords_are_redacted_and_typos_are_hinted() {
    let context = context(&[
        (key::JKS_PASSWORD, "hunter2"),
        ("csi.cert-manager.io/jks-pasword", "hunter3"),
    ]);
    let shown = format!("{:?}", redacted_context(&context));
    assert!(!shown.contains("hunter"), "{shown}");
    assert_eq!(
        closest_known_key("csi.cert-manager.io/jks-enabled"),
        Some(key::JKS_ENABLE)
    );
    assert_eq!(
        closest_known_key("csi.cert-manager.io/jks-truststore-filname"),
        Some(key::JKS_TRUSTSTORE_FILENAME)
    );
    assert_eq!(
        closest_known_key("csi.cert-manager.io/pkcs12-trustore-enable"),
        Some(key::PKCS12_TRUSTSTORE_ENABLE)
    );
}
