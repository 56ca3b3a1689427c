//! Key material checked by an outside party: openssl parses every key algorithm, size and
//! encoding, matches keys to certificates, reads subjects, SANs, usages and the CA flag, and opens
//! every PKCS#12 profile.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cert_manager_csi_driver::attributes::{Pkcs12Profile, key, parse_volume_context};
use cert_manager_csi_driver::demo::{SamplePod, sample_volume_context};
use cert_manager_csi_driver::issuer::IssueOrder;
use cert_manager_csi_driver::keys::{self, pkcs12::build_keystore};
use common::{openssl, shared_local_ca};

/// Files of one issued volume, as the driver writes them.
struct Issued {
    dir: tempfile::TempDir,
    key_pem: String,
}

impl Issued {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// Parses a sample volume context with `overrides`, makes the key and CSR, has the embedded CA
/// sign it, and writes tls.key / tls.crt / ca.crt / csr.pem into a temp directory.
fn issue(overrides: &[(&str, &str)]) -> Issued {
    let context: HashMap<String, String> =
        sample_volume_context(&SamplePod::new("km-pod"), overrides);
    let request = parse_volume_context(&context).expect("valid attributes");
    let spec = &request.spec;
    let private_key = keys::generate(&spec.key).expect("key generation");
    let csr_pem = keys::build_csr(spec, &private_key).expect("csr");
    let issued = shared_local_ca()
        .sign(&IssueOrder {
            volume_id: "csi-km".into(),
            pod: request.pod.clone(),
            issuer: spec.issuer.clone(),
            csr_pem: csr_pem.clone(),
            duration: Duration::from_secs(3600),
            is_ca: spec.is_ca,
            usages: spec.usages.clone(),
            annotations: Default::default(),
            token: None,
            resuming: false,
        })
        .expect("the embedded CA signs");
    let dir = tempfile::tempdir().unwrap();
    let key_pem = private_key.to_pem(spec.key.encoding).unwrap().to_string();
    std::fs::write(dir.path().join("tls.key"), &key_pem).unwrap();
    std::fs::write(dir.path().join("tls.crt"), &issued.chain_pem).unwrap();
    std::fs::write(dir.path().join("ca.crt"), &issued.ca_pem).unwrap();
    std::fs::write(dir.path().join("csr.pem"), &csr_pem).unwrap();
    if let Some(keystore) = &spec.pkcs12 {
        let bytes = build_keystore(
            &private_key,
            &issued.chain_pem,
            &issued.ca_pem,
            &keystore.password.0,
            keystore.profile,
        )
        .unwrap();
        std::fs::write(dir.path().join(&keystore.file_name), &*bytes).unwrap();
    }
    Issued { dir, key_pem }
}

fn assert_key_matches_and_verifies(issued: &Issued) {
    openssl(&["pkey", "-in", &issued.arg("tls.key"), "-noout"]);
    let from_key = openssl(&["pkey", "-in", &issued.arg("tls.key"), "-pubout"]);
    let from_cert = openssl(&["x509", "-in", &issued.arg("tls.crt"), "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert, "key does not match certificate");
    let verified = openssl(&[
        "verify",
        "-CAfile",
        &issued.arg("ca.crt"),
        &issued.arg("tls.crt"),
    ]);
    assert!(verified.contains(": OK"), "{verified}");
    let request = openssl(&["req", "-in", &issued.arg("csr.pem"), "-noout", "-verify"]);
    let _ = request;
}

#[test]
fn every_key_algorithm_size_and_encoding_parses_and_matches() {
    // (algorithm, size, encoding, PEM header, what openssl prints about the key)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "RSA",
            "2048",
            "PKCS1",
            "RSA PRIVATE KEY",
            "Public-Key: (2048 bit)",
        ),
        (
            "RSA",
            "2048",
            "PKCS8",
            "PRIVATE KEY",
            "Public-Key: (2048 bit)",
        ),
        (
            "RSA",
            "3072",
            "PKCS1",
            "RSA PRIVATE KEY",
            "Public-Key: (3072 bit)",
        ),
        (
            "RSA",
            "4096",
            "PKCS8",
            "PRIVATE KEY",
            "Public-Key: (4096 bit)",
        ),
        (
            "RSA",
            "8192",
            "PKCS1",
            "RSA PRIVATE KEY",
            "Public-Key: (8192 bit)",
        ),
        // Sizes aws-lc cannot generate come from the pure-Rust generator, exactly as asked.
        (
            "RSA",
            "2056",
            "PKCS1",
            "RSA PRIVATE KEY",
            "Public-Key: (2056 bit)",
        ),
        (
            "RSA",
            "3000",
            "PKCS8",
            "PRIVATE KEY",
            "Public-Key: (3000 bit)",
        ),
        ("ECDSA", "256", "PKCS8", "PRIVATE KEY", "NIST CURVE: P-256"),
        ("ECDSA", "384", "PKCS8", "PRIVATE KEY", "NIST CURVE: P-384"),
        ("ECDSA", "521", "PKCS8", "PRIVATE KEY", "NIST CURVE: P-521"),
        ("Ed25519", "", "PKCS8", "PRIVATE KEY", "ED25519"),
    ];
    std::thread::scope(|scope| {
        for (algorithm, size, encoding, header, shown) in cases {
            scope.spawn(move || {
                let mut overrides = vec![
                    (key::KEY_ALGORITHM, *algorithm),
                    (key::KEY_ENCODING, *encoding),
                ];
                if !size.is_empty() {
                    overrides.push((key::KEY_SIZE, size));
                }
                let issued = issue(&overrides);
                let label = format!("{algorithm} {size} {encoding}");
                assert!(
                    issued
                        .key_pem
                        .starts_with(&format!("-----BEGIN {header}-----")),
                    "{label}: {}",
                    issued.key_pem.lines().next().unwrap_or("")
                );
                assert_key_matches_and_verifies(&issued);
                let text = openssl(&["x509", "-in", &issued.arg("tls.crt"), "-noout", "-text"]);
                assert!(text.contains(shown), "{label}: {text}");
            });
        }
    });
}

#[test]
fn certificate_shows_the_requested_subject_sans_usages_and_ca_flag() {
    let issued = issue(&[
        (key::KEY_ALGORITHM, "ECDSA"),
        (key::COMMON_NAME, "${POD_NAME}.example.com"),
        (key::ORGANIZATIONS, "Example Inc.,Other Org"),
        (key::ORGANIZATIONAL_UNITS, "Platform"),
        (key::COUNTRIES, "GB"),
        (key::PROVINCES, "England"),
        (key::LOCALITIES, "London"),
        (key::STREET_ADDRESSES, "1 Main St"),
        (key::POSTAL_CODES, "N1 9GU"),
        (key::SERIAL_NUMBER, "1234"),
        (key::DNS_NAMES, "${POD_NAME}.svc,other.example.com"),
        (key::IP_SANS, "10.0.0.7,2001:db8::1"),
        (
            key::URI_SANS,
            "spiffe://cluster.local/ns/${POD_NAMESPACE}/pod/${POD_NAME}",
        ),
        (
            key::KEY_USAGES,
            "digital signature,key encipherment,server auth,client auth,code signing",
        ),
    ]);
    assert_key_matches_and_verifies(&issued);
    let subject = openssl(&[
        "x509",
        "-in",
        &issued.arg("tls.crt"),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]);
    assert_eq!(
        subject.trim(),
        r"subject=serialNumber=1234,CN=km-pod.example.com,OU=Platform,O=Example Inc.+O=Other Org,postalCode=N1 9GU,street=1 Main St,L=London,ST=England,C=GB",
        "the subject is in Go's pkix.Name order, the organizations one RDN (a DER SET: the \
         shorter encoding first, which openssl prints last)"
    );
    let text = openssl(&["x509", "-in", &issued.arg("tls.crt"), "-noout", "-text"]);
    for expected in [
        "X509v3 Key Usage: critical",
        "Digital Signature, Key Encipherment",
        "TLS Web Server Authentication, TLS Web Client Authentication, Code Signing",
        "DNS:km-pod.svc, DNS:other.example.com",
        "URI:spiffe://cluster.local/ns/default/pod/km-pod",
        "IP Address:10.0.0.7",
        "IP Address:2001:DB8:0:0:0:0:0:1",
        "X509v3 Basic Constraints: critical",
        "CA:FALSE",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    // The request carries the same subject and the SANs; like jetstack's driver's, no usages and
    // no CA flag (those are in the CertificateRequest's spec).
    let csr = openssl(&[
        "req",
        "-in",
        &issued.arg("csr.pem"),
        "-noout",
        "-text",
        "-nameopt",
        "RFC2253",
    ]);
    assert!(csr.contains(r"O=Example Inc.+O=Other Org"), "{csr}");
    assert!(csr.contains("X509v3 Subject Alternative Name"), "{csr}");
    for absent in ["Key Usage", "Code Signing", "Basic Constraints"] {
        assert!(!csr.contains(absent), "{absent:?} in the request:\n{csr}");
    }
}

#[test]
fn literal_subject_wins_and_is_encoded_exactly() {
    let issued = issue(&[
        (key::KEY_ALGORITHM, "ECDSA"),
        (
            key::LITERAL_SUBJECT,
            r"CN=${POD_NAME},OU=a+OU=b,O=Example\, Inc.,DC=example,DC=com",
        ),
        (key::ORGANIZATIONS, "ignored because literal-subject is set"),
    ]);
    let subject = openssl(&[
        "x509",
        "-in",
        &issued.arg("tls.crt"),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]);
    // OU=a+OU=b is one RDN, a DER SET (sorted), which openssl prints reversed like the rest.
    assert_eq!(
        subject.trim(),
        r"subject=CN=km-pod,OU=b+OU=a,O=Example\, Inc.,DC=example,DC=com"
    );
}

#[test]
fn ca_certificates_can_sign() {
    let issued = issue(&[
        (key::KEY_ALGORITHM, "ECDSA"),
        (key::IS_CA, "true"),
        (key::KEY_USAGES, "cert sign,crl sign"),
    ]);
    let text = openssl(&["x509", "-in", &issued.arg("tls.crt"), "-noout", "-text"]);
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
}

fn open_keystore(path: &Path, password: &str, legacy: bool) -> std::process::Output {
    let mut command = Command::new("openssl");
    command.args([
        "pkcs12",
        "-in",
        path.to_str().unwrap(),
        "-passin",
        &format!("pass:{password}"),
        "-nodes",
        "-info",
    ]);
    if legacy {
        command.arg("-legacy");
    }
    command.output().expect("openssl runs")
}

#[test]
fn every_pkcs12_profile_opens_with_the_password_and_holds_key_and_chain() {
    // (profile, needs openssl's legacy provider, algorithms openssl reports)
    let cases = [
        (
            Pkcs12Profile::LegacyRc2,
            true,
            &[
                "pbeWithSHA1And40BitRC2-CBC",
                "pbeWithSHA1And3-KeyTripleDES-CBC",
            ][..],
        ),
        (
            Pkcs12Profile::LegacyDes,
            false,
            &["pbeWithSHA1And3-KeyTripleDES-CBC"][..],
        ),
        (
            Pkcs12Profile::Modern2023,
            false,
            &["PBES2", "AES-256-CBC", "sha256"][..],
        ),
    ];
    for (profile, legacy, algorithms) in cases {
        let issued = issue(&[
            (key::KEY_ALGORITHM, "ECDSA"),
            (key::PKCS12_ENABLE, "true"),
            (key::PKCS12_PASSWORD, "s3cret pass"),
            (key::PKCS12_FILENAME, "app.p12"),
            (key::PKCS12_PROFILE, profile.name()),
        ]);
        let output = open_keystore(&issued.path("app.p12"), "s3cret pass", legacy);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let info = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{profile:?}: {info}");
        assert!(
            stdout.contains("-----BEGIN PRIVATE KEY-----"),
            "{profile:?}: {stdout}"
        );
        assert_eq!(
            stdout.matches("-----BEGIN CERTIFICATE-----").count(),
            2,
            "{profile:?}: leaf and CA"
        );
        for algorithm in algorithms {
            assert!(
                info.contains(algorithm),
                "{profile:?}: {algorithm} not in {info}"
            );
        }
        // The key inside is the certificate's key.
        let extracted = issued.path("from-p12.pem");
        std::fs::write(&extracted, stdout.as_bytes()).unwrap();
        let from_p12 = openssl(&["pkey", "-in", extracted.to_str().unwrap(), "-pubout"]);
        let from_cert = openssl(&["x509", "-in", &issued.arg("tls.crt"), "-noout", "-pubkey"]);
        assert_eq!(from_p12, from_cert, "{profile:?}");
        // A wrong password does not open it.
        assert!(
            !open_keystore(&issued.path("app.p12"), "wrong", legacy)
                .status
                .success()
        );
    }
}

#[test]
fn sec1_ec_keys_as_the_go_driver_writes_them_are_read() {
    // The Go driver's default key encoding (PKCS1) writes ECDSA keys as SEC1 "EC PRIVATE KEY";
    // an adopted volume with reuse-private-key must be able to keep its key.
    let dir = tempfile::tempdir().unwrap();
    for (curve, size) in [("prime256v1", 256), ("secp384r1", 384), ("secp521r1", 521)] {
        let path = dir.path().join(format!("{curve}.key"));
        let path = path.to_str().unwrap();
        openssl(&["ecparam", "-genkey", "-noout", "-name", curve, "-out", path]);
        let sec1 = std::fs::read_to_string(path).unwrap();
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"), "{sec1}");
        let key = keys::PrivateKey::from_pem(&sec1).expect("SEC1 key is read");
        assert_eq!(key.size(), size);
        // The same key: openssl derives the same public key from what the driver re-encodes.
        let pkcs8 = key
            .to_pem(cert_manager_csi_driver::attributes::KeyEncoding::Pkcs8)
            .unwrap();
        let reencoded = dir.path().join(format!("{curve}.pkcs8"));
        std::fs::write(&reencoded, pkcs8.as_bytes()).unwrap();
        assert_eq!(
            openssl(&["pkey", "-in", path, "-pubout"]),
            openssl(&["pkey", "-in", reencoded.to_str().unwrap(), "-pubout"])
        );
    }
}
