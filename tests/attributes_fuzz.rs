//! Property tests for the volume-attribute parser: the project's fuzz target.
//!
//! The volume context is the one input of this driver that any pod author controls, so every path
//! from it to DER must be total: `parse_volume_context` either accepts a context or names what is
//! wrong with it, and whatever it accepts must become a CSR the embedded CA signs, without a panic
//! anywhere on the way (yasna asserts on PrintableString, IA5String and OID arcs it cannot encode).
//!
//! The generators are biased towards what reaches deep code: most contexts start from a valid base
//! and then have a few keys changed, with keys drawn mostly from the real attribute names and values
//! drawn mostly from values that look right for that key.
//!
//! Proptest's failure files are turned off (this file must not write beside itself); known
//! problem inputs are instead listed in `known_tricky_contexts_are_handled`. For a longer fuzz run,
//! `PROPTEST_CASES=50000 cargo test --test attributes_fuzz` (about a minute); keep it a debug build,
//! whose overflow checks turn silent arithmetic wrap-arounds into findings.
//!
//! One file (over 800 lines) because generators, checks and properties are one pipeline.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use cert_manager_csi_driver::attributes::subject::{self, AttributeType, AttributeValue};
use cert_manager_csi_driver::attributes::{
    self, InvalidAttributes, KeyAlgorithm, KeyEncoding, KeySpec, KeyUsage, PREFIX, ParseOptions,
    PodInfo, Subject, VolumeAttributes, key,
};
use cert_manager_csi_driver::certificate;
use cert_manager_csi_driver::issuer::IssueOrder;
use cert_manager_csi_driver::issuer::local_ca::LocalCa;
use cert_manager_csi_driver::keys::{self, PrivateKey};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;

// ---------------------------------------------------------------------------------------------
// Configuration and shared fixtures
// ---------------------------------------------------------------------------------------------

/// Case counts are sized so the whole file runs in well under 20 s in a debug build on 2 cores;
/// `PROPTEST_CASES` in the environment overrides them for longer runs.
fn config(cases: u32) -> Config {
    let from_env = std::env::var_os("PROPTEST_CASES").is_some();
    Config {
        cases: if from_env {
            Config::default().cases
        } else {
            cases
        },
        // No `proptest-regressions/` directory next to this file.
        failure_persistence: None,
        // A failure found late still shrinks to something readable, without shrinking forever.
        max_shrink_iters: 4096,
        ..Config::default()
    }
}

/// One key and one CA for the whole run: key generation and CA creation are the slow parts, and
/// neither is what is under test.
struct Fixture {
    key: PrivateKey,
    ca: LocalCa,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = keys::generate(&KeySpec {
            algorithm: KeyAlgorithm::Ecdsa,
            size: 256,
            encoding: KeyEncoding::Pkcs8,
        })
        .expect("ECDSA P-256 key");
        // Cargo's scratch directory for integration tests: reused across runs, never left in /tmp.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("attributes-fuzz-ca");
        let ca = LocalCa::load_or_create(&dir).expect("embedded CA");
        Fixture { key, ca }
    })
}

// ---------------------------------------------------------------------------------------------
// Key names
// ---------------------------------------------------------------------------------------------

/// Every key the parser reads, under both prefixes.
fn known_keys() -> Vec<&'static str> {
    attributes::ATTRIBUTES.iter().map(|row| row.key).collect()
}

const ALIAS_ENABLE: &str = "csi.cert-manager.io/keystore-pkcs12-enable";
const ALIAS_FILENAME: &str = "csi.cert-manager.io/keystore-pkcs12-filename";
const ALIAS_PASSWORD: &str = "csi.cert-manager.io/keystore-pkcs12-password";

/// Seed 001's spellings of the PKCS#12 keys: unknown keys (a warning with a hint), as the Go
/// driver ignores them; drawn often because they once enabled a keystore.
const ALIAS_KEYS: &[&str] = &[ALIAS_ENABLE, ALIAS_FILENAME, ALIAS_PASSWORD];

/// Keys one slip away from real ones, and keys of other prefixes: they exercise the did-you-mean
/// hints, strict mode and the annotation pass-through.
const NEAR_MISS_KEYS: &[&str] = &[
    "csi.cert-manager.io/dns-name",
    "csi.cert-manager.io/dnsnames",
    "csi.cert-manager.io/private-key-file",
    "csi.cert-manager.io/Issuer-Name",
    "csi.cert-manager.io/issuer-name ",
    "csi.cert-manager.io/keyusages",
    "csi.cert-manager.io/duraton",
    "csi.cert-manager.io/pkcs12enable",
    "csi.cert-manager.io/jks-pasword",
    "csi.cert-manager.io/jks-truststore-enabled",
    "csi.cert-manager.io/",
    "csi.cert-manager.io",
    "CSI.cert-manager.io/issuer-name",
    "csi.storage.k8s.io/pod.Name",
    "csi.storage.k8s.io/unknown",
    "venafi.cert-manager.io/custom-fields",
    "example.com/annotation",
    "plain-key",
    "",
];

/// Keys whose absence the parser itself reports: a problem may name one of these even when the
/// context does not contain it.
const REQUIRED_KEYS: &[&str] = &[
    key::EPHEMERAL,
    key::POD_NAME,
    key::POD_NAMESPACE,
    key::POD_UID,
    key::ISSUER_NAME,
    key::PKCS12_PASSWORD,
    key::JKS_PASSWORD,
];

/// Keys whose values end up in the certificate's subject or SANs: the road to the DER encoders.
const NAME_KEYS: &[&str] = &[
    key::LITERAL_SUBJECT,
    key::COMMON_NAME,
    key::DNS_NAMES,
    key::IP_SANS,
    key::URI_SANS,
    key::ORGANIZATIONS,
    key::ORGANIZATIONAL_UNITS,
    key::COUNTRIES,
    key::PROVINCES,
    key::LOCALITIES,
    key::STREET_ADDRESSES,
    key::POSTAL_CODES,
    key::SERIAL_NUMBER,
];

fn key_name() -> BoxedStrategy<String> {
    prop_oneof![
        12 => select(known_keys()).prop_map(str::to_string),
        4 => select(NAME_KEYS).prop_map(str::to_string),
        2 => select(ALIAS_KEYS).prop_map(str::to_string),
        2 => select(NEAR_MISS_KEYS).prop_map(str::to_string),
        1 => "[a-z0-9._-]{0,24}".prop_map(|rest| format!("{PREFIX}{rest}")),
        1 => any::<String>(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// Strings no well-meaning user writes: any unicode, control characters, very long, empty.
fn hostile_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>(),
        1 => "[\\x00-\\x1f\\x7f ]{0,8}",
        1 => "\\PC{0,24}",
        1 => "[a-z$\\\\,]{250,600}",
        1 => Just(String::new()),
    ]
    .boxed()
}

/// Variable references, well formed or not.
fn variable() -> BoxedStrategy<String> {
    select(
        &[
            "${POD_NAME}",
            "${POD_NAMESPACE}",
            "$POD_UID",
            "${SERVICE_ACCOUNT_NAME}",
            "$POD_NAME",
            "${UNKNOWN}",
            "$UNKNOWN",
            "${",
            "${}",
            "${POD-NAME}",
            "$",
            "$$",
            "$*",
            "$1",
            "${$}",
            "${POD_NAME",
            "}",
        ][..],
    )
    .prop_map(str::to_string)
    .boxed()
}

/// Short text mixing plain words, variables and the characters lists and subjects treat specially.
fn text_with_variables() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9.-]{1,8}",
        2 => variable(),
        1 => select(&[",", "\\,", " ", "\\", "+", "=", "é", "\u{3000}", "\t"][..]).prop_map(str::to_string),
    ];
    vec(piece, 0..6).prop_map(|pieces| pieces.concat()).boxed()
}

/// Go durations, valid and not; the long digit runs probe the parser's overflow handling.
fn duration_text() -> BoxedStrategy<String> {
    let unit = select(&["ns", "us", "µs", "μs", "ms", "s", "m", "h", "d", "", "H"][..]);
    let number = prop_oneof![
        4 => "[0-9]{1,4}(\\.[0-9]{1,3})?",
        1 => "[0-9]{15,42}(\\.[0-9]{0,20})?",
        1 => "\\.?[0-9]{0,2}\\.?",
    ];
    let composite = vec((number, unit), 1..4).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(number, unit)| format!("{number}{unit}"))
            .collect::<String>()
    });
    prop_oneof![
        4 => composite,
        1 => select(&["1h30m", "720h", "0", "0s", "-1h", "+5m", "90d", "1.5h", ".5s", "5.s"][..])
            .prop_map(str::to_string),
    ]
    .boxed()
}

fn boolean_text() -> BoxedStrategy<String> {
    select(&["true", "false", "True", "FALSE", "yes", "1", "", " true"][..])
        .prop_map(str::to_string)
        .boxed()
}

fn key_size_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(&["256", "384", "521", "2048", "2056", "3000", "4096", "8192", " 384 ", "+2048"][..])
            .prop_map(str::to_string),
        1 => select(&["0", "1024", "8193", "-1", "99999999999", "2k", ""][..]).prop_map(str::to_string),
        1 => any::<u32>().prop_map(|bits| bits.to_string()),
    ]
    .boxed()
}

fn one_of(values: &'static [&'static str]) -> BoxedStrategy<String> {
    select(values).prop_map(str::to_string).boxed()
}

/// Usage lists: real names (in any order, repeated), case slips and unknown names.
fn usages_text() -> BoxedStrategy<String> {
    let name = prop_oneof![
        6 => select(&KeyUsage::ALL[..]).prop_map(|usage| usage.name().to_string()),
        1 => select(&["Server Auth", "flying", "", " client auth "][..]).prop_map(str::to_string),
    ];
    vec(name, 1..5).prop_map(|names| names.join(",")).boxed()
}

fn ip_text() -> BoxedStrategy<String> {
    let one = prop_oneof![
        8 => any::<std::net::IpAddr>().prop_map(|ip| ip.to_string()),
        1 => select(&["not-an-ip", "10.0.0.256", "::ffff:10.0.0.1", "fe80::1%eth0", ""][..])
            .prop_map(str::to_string),
    ];
    vec(one, 0..4).prop_map(|ips| ips.join(",")).boxed()
}

fn uri_text() -> BoxedStrategy<String> {
    let one = prop_oneof![
        3 => select(&[
            "spiffe://cluster.local/ns/${POD_NAMESPACE}/pod/${POD_NAME}",
            "urn:example:${POD_UID}",
            "https://example.com/a?b=c#d",
            "not a uri",
            "https://example.com/é",
            "1http://x",
            "mailto:",
            "x:\u{7f}",
            "/path/only",
            "*",
            "SPIFFE://Cluster.local/x",
            "spiffe://a:b/c",
            "spiffe://a/%zz",
            "spiffe://a b/c",
            "spiffe://user@[::1]:8443/x?q",
        ][..])
        .prop_map(str::to_string),
        1 => "[a-z][a-z0-9+.-]{0,6}:[!-~]{1,16}",
    ];
    vec(one, 0..3).prop_map(|uris| uris.join(",")).boxed()
}

/// DNS names and common names: what users write, with variables, wildcards and near misses.
fn dns_text() -> BoxedStrategy<String> {
    let one = prop_oneof![
        3 => select(&[
            "${POD_NAME}.${POD_NAMESPACE}.svc.cluster.local",
            "app.example.com",
            "*.example.com",
            "é.example.com",
            "a b",
            "localhost",
            "-bad-.example",
            "a\u{1}b",
        ][..])
        .prop_map(str::to_string),
        2 => text_with_variables(),
        1 => "[a-z.]{250,260}",
    ];
    vec(one, 0..4).prop_map(|names| names.join(",")).boxed()
}

/// `organizations`-style lists, where `\,` is a comma inside one entry.
fn escaped_list_text() -> BoxedStrategy<String> {
    let entry = prop_oneof![
        3 => "[a-zA-Z .]{0,10}",
        1 => select(&["Example\\, Inc.", "\\,", "\\", "GB", "Café", "a\\+b", "${POD_NAME}"][..])
            .prop_map(str::to_string),
        1 => "\\PC{0,6}",
    ];
    vec(entry, 0..5)
        .prop_map(|entries| entries.join(","))
        .boxed()
}

/// RFC 4514 subjects: printed from a generated [`Subject`], or stitched together from the
/// fragments a parser trips over (escapes, dotted OIDs with out-of-range arcs, `#`, stray `+`).
fn literal_subject_text() -> BoxedStrategy<String> {
    let fragment = prop_oneof![
        3 => "[a-zA-Z0-9 .]{1,6}",
        2 => select(&[
            "CN=", "O=", "OU=", "C=", "DC=", "E=", "SERIALNUMBER=", "UID=", "cn=", "FOO=",
            "OID.2.5.4.3=", "2.5.4.10=", "0.39=", "1.40=", "0.99=", "2.999=", "3.1=", "1=",
            "2.18446744073709551615=", ",", "+", "=", "#", "\\", "\\,", "\\+", "\\2C", "\\C3\\A9",
            "\\C3", "\\zz", "\\ ", "\\#", "\\=", " ", "\"", ";", "${POD_NAME}", "$UNKNOWN",
        ][..])
        .prop_map(str::to_string),
    ];
    prop_oneof![
        1 => subject_value().prop_map(|subject| subject.to_string()),
        1 => vec(fragment, 1..12).prop_map(|fragments| fragments.concat()),
    ]
    .boxed()
}

fn file_name_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => one_of(&[
            "tls.crt", "tls.key", "ca.crt", "keystore.p12", "cert.pem", "../x", "a/b", "/etc/passwd",
            "", ".", "..", "...ca", " x", "x ", "a\u{0}b", "é.pem",
        ]),
        1 => "[a-z.]{1,300}",
    ]
    .boxed()
}

/// A value for `key`: usually one shaped for that key, sometimes one meant for another key, and
/// sometimes hostile text.
fn value_for(key: &str) -> BoxedStrategy<String> {
    prop_oneof![
        6 => shaped_value_for(key),
        1 => select(known_keys()).prop_flat_map(shaped_value_for),
        2 => hostile_text(),
    ]
    .boxed()
}

fn shaped_value_for(key: &str) -> BoxedStrategy<String> {
    match key {
        key::DURATION | key::RENEW_BEFORE => duration_text(),
        key::IS_CA
        | key::REUSE_PRIVATE_KEY
        | key::PKCS12_ENABLE
        | key::PKCS12_TRUSTSTORE_ENABLE
        | key::JKS_ENABLE
        | key::JKS_TRUSTSTORE_ENABLE
        | key::EPHEMERAL
        | ALIAS_ENABLE => boolean_text(),
        key::KEY_SIZE => key_size_text(),
        key::KEY_ALGORITHM => one_of(&[
            "RSA", "rsa", "ECDSA", "ecdsa", "Ed25519", "ED25519", "DSA", "",
        ]),
        key::KEY_ENCODING => one_of(&["PKCS1", "pkcs1", "PKCS8", "pkcs8", "PKCS#8", ""]),
        key::KEY_USAGES => usages_text(),
        key::IP_SANS => ip_text(),
        key::URI_SANS => uri_text(),
        key::DNS_NAMES | key::COMMON_NAME => dns_text(),
        key::LITERAL_SUBJECT => literal_subject_text(),
        key::ORGANIZATIONS
        | key::ORGANIZATIONAL_UNITS
        | key::COUNTRIES
        | key::PROVINCES
        | key::LOCALITIES
        | key::STREET_ADDRESSES
        | key::POSTAL_CODES => escaped_list_text(),
        key::SERIAL_NUMBER => {
            prop_oneof!["[0-9A-F]{1,20}", "[ a-z_?*]{0,6}", escaped_list_text()].boxed()
        }
        key::CERTIFICATE_FILE
        | key::PRIVATE_KEY_FILE
        | key::CA_FILE
        | key::PKCS12_FILENAME
        | key::PKCS12_TRUSTSTORE_FILENAME
        | key::JKS_FILENAME
        | key::JKS_TRUSTSTORE_FILENAME
        | ALIAS_FILENAME => file_name_text(),
        key::JKS_ALIAS => prop_oneof![
            one_of(&["certificate", "ca", "CA-2", "ca-", " a", "", "My-App"]),
            any::<String>(),
        ]
        .boxed(),
        key::FS_GROUP => prop_oneof![
            one_of(&[
                "0",
                "1",
                "4294967295",
                "4294967296",
                " 12 ",
                "-1",
                "x",
                "+1000"
            ]),
            any::<u32>().prop_map(|gid| gid.to_string()),
        ]
        .boxed(),
        key::PKCS12_PROFILE => one_of(&[
            "LegacyRC2",
            "legacydes",
            "Modern2023",
            "modern2026",
            "modern",
            "",
        ]),
        key::PKCS12_PASSWORD | key::JKS_PASSWORD | ALIAS_PASSWORD => {
            prop_oneof![Just(String::new()), any::<String>()].boxed()
        }
        key::POD_NAME | key::POD_NAMESPACE | key::POD_UID | key::SERVICE_ACCOUNT_NAME => {
            prop_oneof![4 => "[a-z0-9-]{1,12}", 1 => text_with_variables()].boxed()
        }
        key::ISSUER_NAME | key::ISSUER_KIND | key::ISSUER_GROUP => {
            prop_oneof![4 => "[a-zA-Z.-]{1,12}", 1 => one_of(&["", "  "])].boxed()
        }
        _ => text_with_variables(),
    }
}

// ---------------------------------------------------------------------------------------------
// Contexts
// ---------------------------------------------------------------------------------------------

/// A context kubelet would send for a correct pod spec; most generated contexts start here so
/// the parser gets past the pod info and reaches the subject, SAN, key and file rules.
fn base_context() -> HashMap<String, String> {
    [
        (key::EPHEMERAL, "true"),
        (key::POD_NAME, "web-0"),
        (key::POD_NAMESPACE, "prod"),
        (key::POD_UID, "2f0c9a4e-0000-4000-8000-000000000001"),
        (key::SERVICE_ACCOUNT_NAME, "web"),
        (key::ISSUER_NAME, "ca-issuer"),
        (
            key::DNS_NAMES,
            "${POD_NAME}.${POD_NAMESPACE}.svc.cluster.local",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One change to a context: set `key` to a value, or (`None`) remove it.
type Edit = (String, Option<String>);

fn edit() -> impl Strategy<Value = Edit> {
    key_name().prop_flat_map(|name| {
        let value = prop_oneof![9 => value_for(&name).prop_map(Some), 1 => Just(None)];
        (Just(name), value)
    })
}

/// An edit that keeps a context likely to be accepted: a name key set to a value shaped for it.
fn name_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => select(NAME_KEYS),
        1 => select(known_keys()),
    ]
    .prop_flat_map(|name| {
        (
            Just(name.to_string()),
            shaped_value_for(name).prop_map(Some),
        )
    })
}

fn apply(mut context: HashMap<String, String>, edits: Vec<Edit>) -> HashMap<String, String> {
    for (name, value) in edits {
        match value {
            Some(value) => context.insert(name, value),
            None => context.remove(&name),
        };
    }
    context
}

/// Any context: usually a valid one with a few keys changed, sometimes one built from nothing.
fn context() -> impl Strategy<Value = HashMap<String, String>> {
    (prop::bool::weighted(0.85), vec(edit(), 0..8)).prop_map(|(from_base, edits)| {
        let start = if from_base {
            base_context()
        } else {
            HashMap::new()
        };
        apply(start, edits)
    })
}

/// A context likely to be accepted and to carry unusual subjects and SANs: what the CSR and
/// certificate encoders are fuzzed with.
fn deep_context() -> impl Strategy<Value = HashMap<String, String>> {
    vec(name_edit(), 1..6).prop_map(|edits| apply(base_context(), edits))
}

// ---------------------------------------------------------------------------------------------
// Subjects
// ---------------------------------------------------------------------------------------------

/// The OIDs of the keywords `literal-subject` accepts (`CN`, `O`, `DC`, `E`, …).
const KEYWORD_OIDS: &[&[u64]] = &[
    &[2, 5, 4, 3],
    &[2, 5, 4, 4],
    &[2, 5, 4, 5],
    &[2, 5, 4, 6],
    &[2, 5, 4, 7],
    &[2, 5, 4, 8],
    &[2, 5, 4, 9],
    &[2, 5, 4, 10],
    &[2, 5, 4, 11],
    &[2, 5, 4, 12],
    &[2, 5, 4, 17],
    &[2, 5, 4, 42],
    &[0, 9, 2342, 19200300, 100, 1, 25],
    &[0, 9, 2342, 19200300, 100, 1, 1],
    &[1, 2, 840, 113549, 1, 9, 1],
];

/// Attribute types: keywords, and dotted OIDs that X.660 allows (first arc 0-2, second arc below
/// 40 under 0 and 1), which are the only ones a subject can be printed and encoded with.
fn attribute_type() -> BoxedStrategy<AttributeType> {
    let dotted = (0..=2u64, 0..40u64, vec(any::<u32>(), 0..4)).prop_map(|(first, second, rest)| {
        let mut arcs = vec![first, second];
        arcs.extend(rest.into_iter().map(u64::from));
        AttributeType(arcs)
    });
    prop_oneof![
        4 => select(KEYWORD_OIDS).prop_map(AttributeType::of),
        1 => dotted,
    ]
    .boxed()
}

/// Attribute values heavy in what RFC 4514 escapes: `,+"\<>;=`, `#`, edge spaces, non-ASCII.
fn attribute_value_text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => any::<String>(),
        2 => "[ ,+\"\\\\<>;=#a-c]{0,10}",
        1 => "\\PC{0,10}",
        1 => "[a-zA-Z0-9]{1,10}",
    ]
    .boxed()
}

fn subject_value() -> BoxedStrategy<Subject> {
    let attribute = (attribute_type(), attribute_value_text())
        .prop_map(|(kind, value)| AttributeValue { kind, value });
    vec(vec(attribute, 1..3), 1..5)
        .prop_map(|rdns| Subject { rdns })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the properties and the known-input test
// ---------------------------------------------------------------------------------------------

/// Every problem names a key the user wrote, or a required one the parser found missing, and the
/// message shows that key.
fn check_problems_name_keys(
    context: &HashMap<String, String>,
    error: &InvalidAttributes,
) -> Result<(), String> {
    if error.0.is_empty() {
        return Err("an error without any problem".into());
    }
    let message = error.to_string();
    for problem in &error.0 {
        let known =
            context.contains_key(&problem.key) || REQUIRED_KEYS.contains(&problem.key.as_str());
        if !known {
            return Err(format!(
                "problem names {:?}, which is neither in the context nor required: {problem}",
                problem.key
            ));
        }
        if !message.contains(&problem.key) {
            return Err(format!(
                "message does not show {:?}: {message}",
                problem.key
            ));
        }
    }
    Ok(())
}

/// Strict mode reports what lenient mode reports, plus one problem per unknown
/// `csi.cert-manager.io/*` key, and accepts nothing lenient mode rejects.
fn check_strict_extends_lenient(
    lenient: &Result<VolumeAttributes, InvalidAttributes>,
    strict: &Result<VolumeAttributes, InvalidAttributes>,
) -> Result<(), String> {
    let lenient_problems: &[_] = match lenient {
        Ok(_) => &[],
        Err(error) => &error.0,
    };
    let strict_problems: &[_] = match strict {
        Ok(request) => {
            if lenient.as_ref().ok() != Some(request) {
                return Err("strict mode accepted what lenient mode did not".into());
            }
            if !request.unknown_keys.is_empty() {
                return Err("strict mode accepted unknown keys".into());
            }
            &[]
        }
        Err(error) => &error.0,
    };
    if !strict_problems.starts_with(lenient_problems) {
        return Err("strict mode dropped or reordered lenient mode's problems".into());
    }
    let extra = &strict_problems[lenient_problems.len()..];
    if let Some(odd) = extra
        .iter()
        .find(|p| !p.key.starts_with(PREFIX) || !p.reason.starts_with("is not a known attribute"))
    {
        return Err(format!("strict mode added an unexpected problem: {odd}"));
    }
    if let Ok(request) = lenient {
        let named: Vec<&String> = extra.iter().map(|p| &p.key).collect();
        if named != request.unknown_keys.iter().collect::<Vec<_>>() {
            return Err(format!(
                "strict problems {named:?} are not the unknown keys {:?}",
                request.unknown_keys
            ));
        }
    }
    Ok(())
}

/// Parses `context` both ways and checks both results.
fn check_parse(context: &HashMap<String, String>) -> Result<(), String> {
    let lenient = attributes::parse_volume_context(context);
    let strict = attributes::parse_volume_context_with(
        context,
        ParseOptions {
            strict: true,
            ..ParseOptions::default()
        },
    );
    for result in [&lenient, &strict] {
        if let Err(error) = result {
            check_problems_name_keys(context, error)?;
        }
    }
    check_strict_extends_lenient(&lenient, &strict)
}

/// An accepted context becomes a CSR (or a clear refusal), and a CSR becomes a certificate the
/// embedded CA signs and that reads back with the requested CA flag and SANs.
fn check_issuance(request: &VolumeAttributes) -> Result<(), String> {
    let fixture = fixture();
    let spec = &request.spec;
    let csr_pem = match keys::build_csr(spec, &fixture.key) {
        Ok(csr) => csr,
        Err(error) if error.to_string().trim().is_empty() => {
            return Err("build_csr failed without saying why".into());
        }
        // A refusal with a reason is allowed; accepting the context was then too lenient, but
        // the volume still fails cleanly.
        Err(_) => return Ok(()),
    };
    let issue = IssueOrder {
        volume_id: "fuzz".into(),
        pod: request.pod.clone(),
        issuer: spec.issuer.clone(),
        csr_pem,
        duration: Duration::from_secs(3600),
        is_ca: spec.is_ca,
        usages: spec.usages.clone(),
        annotations: spec.annotations.clone(),
        token: None,
        resuming: false,
    };
    let issued = fixture.ca.sign(&issue).map_err(|e| {
        format!("the embedded CA refused a CSR built from an accepted context: {e}")
    })?;
    let info = certificate::inspect_leaf(&issued.chain_pem)
        .map_err(|e| format!("the signed certificate does not parse: {e}"))?;
    // Whatever password, alias or profile was accepted, the keystores can be written.
    let stores = keys::keystores::build(spec, &fixture.key, &issued.chain_pem, &issued.ca_pem)
        .map_err(|e| format!("the keystores of an accepted context fail: {e}"))?;
    let asked = [
        spec.pkcs12
            .as_ref()
            .map(|s| 1 + usize::from(s.truststore.is_some())),
        spec.jks
            .as_ref()
            .map(|s| 1 + usize::from(s.truststore.is_some())),
    ];
    if stores.len() != asked.into_iter().flatten().sum::<usize>() {
        return Err(format!("{} keystore files for {asked:?}", stores.len()));
    }
    if info.is_ca != spec.is_ca {
        return Err(format!("is_ca is {}, asked for {}", info.is_ca, spec.is_ca));
    }
    // A certificate that names nothing is accepted (with a warning), as by the Go driver.
    let sans = spec.dns_names.len() + spec.ip_sans.len() + spec.uri_sans.len();
    if info.subject_alt_names.len() != sans {
        return Err(format!(
            "{} SANs asked for, certificate has {:?}",
            sans, info.subject_alt_names
        ));
    }
    Ok(())
}

/// Runs a check, turning a panic into a failure that names the input.
fn without_panic(what: &str, check: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    match panic::catch_unwind(AssertUnwindSafe(check)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("<non-string panic>");
            Err(format!("{what} panicked: {message}"))
        }
    }
}

fn check_context_end_to_end(context: &HashMap<String, String>) -> Result<(), String> {
    without_panic("parsing", || check_parse(context))?;
    // Parsing is now known not to panic on this context.
    if let Ok(request) = attributes::parse_volume_context(context) {
        without_panic("issuing", || check_issuance(&request))?;
    }
    Ok(())
}

fn sample_pod() -> PodInfo {
    PodInfo {
        name: "web-0".into(),
        namespace: "prod".into(),
        uid: "1234".into(),
        service_account: Some("web".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn arbitrary_contexts_never_panic_and_problems_name_their_keys(context in context()) {
        let result = without_panic("parsing", || check_parse(&context));
        prop_assert!(result.is_ok(), "{}\ncontext: {:?}", result.unwrap_err(), context);
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn accepted_contexts_become_certificates_the_embedded_ca_signs(
        context in prop_oneof![1 => context().boxed(), 3 => deep_context().boxed()],
    ) {
        // Parsing is checked by the property above; here only accepted contexts matter.
        let Ok(request) = panic::catch_unwind(|| attributes::parse_volume_context(&context)) else {
            return Ok(());
        };
        if let Ok(request) = request {
            let result = without_panic("issuing", || check_issuance(&request));
            prop_assert!(result.is_ok(), "{}\ncontext: {:?}", result.unwrap_err(), context);
        }
    }
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn variable_expansion_never_panics(
        input in prop_oneof![any::<String>(), text_with_variables()],
        pod_name in "[a-z$]{0,4}",
    ) {
        let pod = PodInfo { name: pod_name, ..sample_pod() };
        let expanded = attributes::expand(&input, &pod);
        // Without a `$` there is nothing to expand.
        if !input.contains('$') {
            prop_assert_eq!(expanded, Ok(input));
        }
    }

    #[test]
    fn literal_subject_parser_never_panics(
        input in prop_oneof![any::<String>(), literal_subject_text()],
    ) {
        let _ = subject::parse_literal_subject(&input);
    }

    #[test]
    fn printed_subjects_parse_back_to_the_same_subject(subject in subject_value()) {
        let printed = subject.to_string();
        let parsed = subject::parse_literal_subject(&printed);
        prop_assert_eq!(parsed, Ok(subject), "printed as {:?}", printed);
    }
}

/// Inputs the properties above found going wrong (and a few that nearly could), checked on every
/// run whatever proptest draws. All failures are collected, so one run shows every known problem.
#[test]
fn known_tricky_contexts_are_handled() {
    let cases: &[&[(&str, &str)]] = &[
        // OID arcs the DER encoder cannot write.
        &[(key::LITERAL_SUBJECT, "CN=a,1.40=x")],
        &[(key::LITERAL_SUBJECT, "CN=a,0.99=x")],
        &[(key::LITERAL_SUBJECT, "CN=a,2.18446744073709551615=x")],
        // Fractions that push a duration past u128.
        &[(key::DURATION, "340282366920938463463374607431.9s")],
        &[(key::DURATION, "94522879700260684295381835.99999999999999h")],
        // Defaulted file names colliding with one the user set.
        &[(key::CERTIFICATE_FILE, "ca.crt")],
        &[
            (key::PKCS12_ENABLE, "true"),
            (key::PKCS12_PASSWORD, "x"),
            (key::CA_FILE, "keystore.p12"),
        ],
        // Every store at once, the truststores' defaults colliding with names the user set.
        &[
            (key::JKS_ENABLE, "true"),
            (key::JKS_PASSWORD, "x"),
            (key::PKCS12_ENABLE, "true"),
            (key::PKCS12_PASSWORD, "x"),
            (key::PKCS12_TRUSTSTORE_ENABLE, "true"),
            (key::CERTIFICATE_FILE, "truststore.jks"),
            (key::JKS_FILENAME, "truststore.p12"),
        ],
        &[
            (key::JKS_ENABLE, "true"),
            (key::JKS_PASSWORD, "x"),
            (key::JKS_ALIAS, "CA"),
            (key::JKS_TRUSTSTORE_ENABLE, "x"),
        ],
        // Seed 001's keystore spellings with bad values: unknown keys, ignored.
        &[(ALIAS_ENABLE, "yes")],
        &[
            (ALIAS_ENABLE, "true"),
            (ALIAS_PASSWORD, "x"),
            (ALIAS_FILENAME, "../x"),
        ],
        // Name attributes that are set but yield no name (accepted, with a warning).
        &[(key::DNS_NAMES, ","), (key::COMMON_NAME, "")],
        &[(key::DNS_NAMES, ""), (key::LITERAL_SUBJECT, "O=Example")],
        // URIs that url.ParseRequestURI takes but that have no scheme or nothing after it.
        &[(key::URI_SANS, "/path/only,*,foo:,SPIFFE://X/y")],
        // Strings the subject encoders must fall back from.
        &[(key::COUNTRIES, "G?B,*,é"), (key::SERIAL_NUMBER, "a_b")],
        &[(key::LITERAL_SUBJECT, "CN=x,DC=é,E=\\00,SERIALNUMBER=*")],
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|overrides| {
            let mut context = base_context();
            for (k, v) in *overrides {
                context.insert(k.to_string(), v.to_string());
            }
            check_context_end_to_end(&context)
                .err()
                .map(|failure| format!("{overrides:?}: {failure}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The printer and the parser agree on the RFC 4514 edge cases: leading and trailing spaces,
/// leading `#`, and leading whitespace other than a space.
#[test]
fn subject_edge_values_round_trip() {
    let failures: Vec<String> = [
        " a",
        "a ",
        "  ",
        "#1",
        "\ta",
        "\u{a0}a",
        "\u{2000}",
        "\u{3000}a",
        "a\t",
        "",
        "a\\",
    ]
    .iter()
    .filter_map(|value| {
        let mut subject = Subject::default();
        subject.push(subject::COMMON_NAME, *value);
        let printed = subject.to_string();
        match subject::parse_literal_subject(&printed) {
            Ok(parsed) if parsed == subject => None,
            other => Some(format!(
                "{value:?} printed as {printed:?} parses as {other:?}"
            )),
        }
    })
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The keys this file calls required really are reported when missing, so allowing them in
/// `check_problems_name_keys` does not hide anything.
#[test]
fn required_keys_are_reported_when_missing() {
    let error = attributes::parse_volume_context(&HashMap::new()).expect_err("empty context");
    let named: Vec<&str> = error.0.iter().map(|p| p.key.as_str()).collect();
    for required in REQUIRED_KEYS
        .iter()
        .filter(|k| ![key::PKCS12_PASSWORD, key::JKS_PASSWORD].contains(*k))
    {
        assert!(named.contains(required), "{required} not reported: {error}");
    }
}

/// A keystore password never reaches a log, whichever spelling the volume uses for it (seed
/// 001's `keystore-pkcs12-password` is an unknown key now, and still a secret).
#[test]
fn keystore_passwords_are_redacted_under_every_spelling() {
    for password_key in [
        key::PKCS12_PASSWORD,
        ALIAS_PASSWORD,
        key::JKS_PASSWORD,
        "csi.cert-manager.io/jks-pasword",
        key::SERVICE_ACCOUNT_TOKENS,
    ] {
        let mut context = base_context();
        context.insert(password_key.to_string(), "hunter2-secret".to_string());
        let shown = format!("{:?}", attributes::redacted_context(&context));
        assert!(!shown.contains("hunter2-secret"), "{password_key}: {shown}");
    }
}
