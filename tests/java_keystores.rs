//! Java keystores and truststores checked by outside parties: the JDK's `keytool` lists every
//! JKS and PKCS#12 file the driver writes (aliases, entry types, chain length and order, CA
//! entries) and opens the key entry with the password; openssl matches the key inside to
//! `tls.crt`. Modern2026 (PBMAC1) files, which neither Java 17 nor OpenSSL 3.0 reads, are opened
//! by Python's `cryptography` when its OpenSSL is 3.4 or newer.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cert_manager_csi_driver::attributes::{
    CertRequestSpec, Pkcs12Profile, PodInfo, key, parse_volume_context,
};
use cert_manager_csi_driver::demo::{SamplePod, sample_volume_context};
use cert_manager_csi_driver::issuer::IssueOrder;
use cert_manager_csi_driver::keys::{self, PrivateKey, keystores};
use common::shared_local_ca;

const PASSWORD: &str = "s3cret pass";

/// The files of one volume, as the driver writes them.
struct Volume {
    dir: tempfile::TempDir,
    /// Names of the keystore files written, in the driver's order.
    stores: Vec<String>,
}

impl Volume {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

fn spec_for(overrides: &[(&str, &str)]) -> CertRequestSpec {
    let context: HashMap<String, String> =
        sample_volume_context(&SamplePod::new("jks-pod"), overrides);
    parse_volume_context(&context)
        .expect("valid attributes")
        .spec
}

/// Parses a sample context with `overrides`, makes the key, has the embedded CA sign it, and
/// writes the PEM files and every keystore file the driver would (`ca_pem` replaces the CA the
/// issuer returned, `extra_chain` is appended to its chain).
fn issue_with(overrides: &[(&str, &str)], extra_chain: &str, ca_pem: Option<&str>) -> Volume {
    let spec = spec_for(overrides);
    let private_key = keys::generate(&spec.key).expect("key generation");
    let csr_pem = keys::build_csr(&spec, &private_key).expect("csr");
    let issued = shared_local_ca()
        .sign(&IssueOrder {
            volume_id: "csi-jks".into(),
            pod: PodInfo {
                name: "jks-pod".into(),
                namespace: "default".into(),
                uid: "u".into(),
                service_account: None,
            },
            issuer: spec.issuer.clone(),
            csr_pem,
            duration: Duration::from_secs(3600),
            is_ca: false,
            usages: spec.usages.clone(),
            annotations: Default::default(),
            token: None,
            resuming: false,
        })
        .expect("the embedded CA signs");
    let chain_pem = format!("{}{extra_chain}", issued.chain_pem);
    let ca_pem = ca_pem.unwrap_or(&issued.ca_pem);
    write_volume(&spec, &private_key, &chain_pem, ca_pem)
}

fn issue(overrides: &[(&str, &str)]) -> Volume {
    issue_with(overrides, "", None)
}

fn write_volume(spec: &CertRequestSpec, key: &PrivateKey, chain_pem: &str, ca_pem: &str) -> Volume {
    let dir = tempfile::tempdir().unwrap();
    let key_pem = key.to_pem(spec.key.encoding).unwrap();
    std::fs::write(dir.path().join("tls.key"), key_pem.as_bytes()).unwrap();
    std::fs::write(dir.path().join("tls.crt"), chain_pem).unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca_pem).unwrap();
    let files = keystores::build(spec, key, chain_pem, ca_pem).expect("keystores");
    for file in &files {
        std::fs::write(dir.path().join(&file.name), &*file.contents).unwrap();
    }
    Volume {
        dir,
        stores: files.into_iter().map(|file| file.name).collect(),
    }
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (the JDK and openssl are installed): {e}"))
}

fn succeeded(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `keytool -list -v` of a store.
fn keytool_list(path: &Path, store_type: &str, password: &str) -> Output {
    run(
        "keytool",
        &[
            "-list",
            "-v",
            "-storetype",
            store_type,
            "-keystore",
            path.to_str().unwrap(),
            "-storepass",
            password,
        ],
    )
}

/// One entry of a `keytool -list -v` listing.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    alias: String,
    kind: String,
    /// Certificate chain length (private-key entries only).
    chain: Option<usize>,
    /// SHA-256 fingerprints of its certificates, in listing order, as `AB:CD:...`.
    fingerprints: Vec<String>,
}

fn listed(path: &Path, store_type: &str, password: &str) -> (String, Vec<Entry>) {
    let output = keytool_list(path, store_type, password);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "keytool -list {}: {text}{}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut entries: Vec<Entry> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(alias) = line.strip_prefix("Alias name:") {
            entries.push(Entry {
                alias: alias.trim().to_string(),
                kind: String::new(),
                chain: None,
                fingerprints: Vec::new(),
            });
        } else if let Some(entry) = entries.last_mut() {
            if let Some(kind) = line.strip_prefix("Entry type: ") {
                entry.kind = kind.to_string();
            } else if let Some(length) = line.strip_prefix("Certificate chain length: ") {
                entry.chain = Some(length.parse().unwrap());
            } else if let Some(fingerprint) = line.strip_prefix("SHA256: ") {
                entry.fingerprints.push(fingerprint.to_string());
            }
        }
    }
    entries.sort_by(|a, b| a.alias.cmp(&b.alias));
    (text, entries)
}

/// SHA-256 fingerprints of every certificate in a PEM file, in file order.
fn pem_fingerprints(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    pem::parse_many(text)
        .unwrap()
        .into_iter()
        .map(|block| {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, block.contents());
            digest
                .as_ref()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect()
}

/// The key entry opens with the password: keytool converts it to PKCS#12 (it must decrypt the
/// key to do so), openssl reads that, and its public key is `tls.crt`'s.
fn assert_key_entry_opens_and_matches(volume: &Volume, store: &str, alias: &str) {
    let converted = volume.arg("converted.p12");
    let _ = std::fs::remove_file(&converted);
    succeeded(
        "keytool",
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            &volume.arg(store),
            "-srcstoretype",
            "JKS",
            "-srcstorepass",
            PASSWORD,
            "-srcalias",
            alias,
            "-srckeypass",
            PASSWORD,
            "-destkeystore",
            &converted,
            "-deststoretype",
            "PKCS12",
            "-deststorepass",
            PASSWORD,
        ],
    );
    let pem = succeeded(
        "openssl",
        &[
            "pkcs12",
            "-in",
            &converted,
            "-passin",
            &format!("pass:{PASSWORD}"),
            "-nodes",
            "-nocerts",
        ],
    );
    let extracted = volume.path("from-jks.pem");
    std::fs::write(&extracted, pem).unwrap();
    let from_store = succeeded(
        "openssl",
        &["pkey", "-in", extracted.to_str().unwrap(), "-pubout"],
    );
    let from_cert = succeeded(
        "openssl",
        &["x509", "-in", &volume.arg("tls.crt"), "-noout", "-pubkey"],
    );
    assert_eq!(from_store, from_cert, "the key in {store} is tls.crt's");
}

const JKS_ON: [(&str, &str); 2] = [(key::JKS_ENABLE, "true"), (key::JKS_PASSWORD, PASSWORD)];

#[test]
fn jks_keystore_and_truststore_for_rsa_ecdsa_and_ed25519() {
    // Java 17 reads all three from a JKS key entry (Ed25519 since Java 15).
    let cases: &[&[(&str, &str)]] = &[
        &[(key::KEY_ALGORITHM, "RSA"), (key::KEY_SIZE, "2048")],
        &[(key::KEY_ALGORITHM, "RSA"), (key::KEY_SIZE, "4096")],
        &[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "256")],
        &[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "384")],
        &[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "521")],
        &[(key::KEY_ALGORITHM, "Ed25519")],
    ];
    for key_attributes in cases {
        let mut overrides = JKS_ON.to_vec();
        overrides.extend_from_slice(key_attributes);
        let volume = issue(&overrides);
        assert_eq!(volume.stores, ["keystore.jks", "truststore.jks"]);
        let leaf = pem_fingerprints(&volume.path("tls.crt"));
        let ca = pem_fingerprints(&volume.path("ca.crt"));

        let (text, entries) = listed(&volume.path("keystore.jks"), "JKS", PASSWORD);
        assert!(text.contains("Keystore type: JKS"), "{text}");
        assert_eq!(
            entries,
            [
                Entry {
                    alias: "ca".into(),
                    kind: "trustedCertEntry".into(),
                    chain: None,
                    fingerprints: ca.clone(),
                },
                Entry {
                    alias: "certificate".into(),
                    kind: "PrivateKeyEntry".into(),
                    chain: Some(1),
                    fingerprints: leaf.clone(),
                },
            ],
            "{key_attributes:?}: {text}"
        );
        assert_key_entry_opens_and_matches(&volume, "keystore.jks", "certificate");

        let (_, entries) = listed(&volume.path("truststore.jks"), "JKS", PASSWORD);
        assert_eq!(
            entries,
            [Entry {
                alias: "ca".into(),
                kind: "trustedCertEntry".into(),
                chain: None,
                fingerprints: ca,
            }],
            "{key_attributes:?}"
        );

        // A wrong password fails the file's integrity check.
        for store in ["keystore.jks", "truststore.jks"] {
            let output = keytool_list(&volume.path(store), "JKS", "wrong");
            assert!(
                !output.status.success(),
                "{store} opened with a wrong password"
            );
            let said = String::from_utf8_lossy(&output.stdout);
            assert!(said.contains("password was incorrect"), "{said}");
        }
    }
}

/// A self-signed certificate, PEM, standing in for an intermediate or another root.
fn other_certificate(name: &str) -> String {
    rcgen::generate_simple_self_signed(vec![name.to_string()])
        .unwrap()
        .cert
        .pem()
}

#[test]
fn chains_and_ca_bundles_keep_their_order_and_cert_managers_aliases() {
    let intermediate = other_certificate("intermediate.example");
    let bundle = format!(
        "{}{}",
        shared_local_ca().ca_pem(),
        other_certificate("root-b.example")
    );
    let mut overrides = JKS_ON.to_vec();
    overrides.extend([
        (key::JKS_ALIAS, "My-App"),
        (key::JKS_FILENAME, "app.jks"),
        (key::JKS_TRUSTSTORE_FILENAME, "trust.jks"),
        (key::PKCS12_ENABLE, "true"),
        (key::PKCS12_PASSWORD, PASSWORD),
        (key::PKCS12_PROFILE, "Modern2023"),
        (key::PKCS12_TRUSTSTORE_ENABLE, "true"),
    ]);
    let volume = issue_with(&overrides, &intermediate, Some(&bundle));
    assert_eq!(
        volume.stores,
        ["keystore.p12", "truststore.p12", "app.jks", "trust.jks"]
    );
    let chain = pem_fingerprints(&volume.path("tls.crt"));
    let cas = pem_fingerprints(&volume.path("ca.crt"));
    assert_eq!((chain.len(), cas.len()), (2, 2));
    let trusted = |alias: &str, fingerprint: &String| Entry {
        alias: alias.into(),
        kind: "trustedCertEntry".into(),
        chain: None,
        fingerprints: vec![fingerprint.clone()],
    };

    let (text, entries) = listed(&volume.path("app.jks"), "JKS", PASSWORD);
    assert_eq!(
        entries,
        [
            trusted("ca", &cas[0]),
            trusted("ca-1", &cas[1]),
            // JKS aliases are case-insensitive: Java shows them in lower case.
            Entry {
                alias: "my-app".into(),
                kind: "PrivateKeyEntry".into(),
                chain: Some(2),
                fingerprints: chain.clone(),
            },
        ],
        "{text}"
    );
    let (text, entries) = listed(&volume.path("trust.jks"), "JKS", PASSWORD);
    assert_eq!(
        entries,
        [trusted("ca", &cas[0]), trusted("ca-1", &cas[1])],
        "{text}"
    );
    let (text, entries) = listed(&volume.path("truststore.p12"), "PKCS12", PASSWORD);
    assert_eq!(
        entries,
        [trusted("ca", &cas[0]), trusted("ca-1", &cas[1])],
        "{text}"
    );
}

#[test]
fn pkcs12_truststores_open_in_keytool_and_openssl_for_every_profile_java_17_reads() {
    for profile in [
        Pkcs12Profile::LegacyRc2,
        Pkcs12Profile::LegacyDes,
        Pkcs12Profile::Modern2023,
    ] {
        let volume = issue(&[
            (key::PKCS12_ENABLE, "true"),
            (key::PKCS12_PASSWORD, PASSWORD),
            (key::PKCS12_PROFILE, profile.name()),
            (key::PKCS12_TRUSTSTORE_ENABLE, "true"),
        ]);
        assert_eq!(volume.stores, ["keystore.p12", "truststore.p12"]);
        let ca = pem_fingerprints(&volume.path("ca.crt"));
        let (text, entries) = listed(&volume.path("truststore.p12"), "PKCS12", PASSWORD);
        assert!(text.contains("Keystore type: PKCS12"), "{text}");
        assert_eq!(
            entries,
            [Entry {
                alias: "ca".into(),
                kind: "trustedCertEntry".into(),
                chain: None,
                fingerprints: ca,
            }],
            "{profile:?}: {text}"
        );
        // The keystore next to it, as before: one key entry with its chain.
        let (text, entries) = listed(&volume.path("keystore.p12"), "PKCS12", PASSWORD);
        assert_eq!(entries.len(), 1, "{profile:?}: {text}");
        assert_eq!(entries[0].kind, "PrivateKeyEntry", "{profile:?}");
        // openssl reads the truststore's certificate (RC2 needs its legacy provider).
        let mut args = vec![
            "pkcs12".to_string(),
            "-in".into(),
            volume.arg("truststore.p12"),
            "-passin".into(),
            format!("pass:{PASSWORD}"),
            "-nokeys".into(),
        ];
        if profile == Pkcs12Profile::LegacyRc2 {
            args.push("-legacy".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let certificates = succeeded("openssl", &args);
        assert_eq!(
            certificates.matches("BEGIN CERTIFICATE").count(),
            1,
            "{profile:?}"
        );
        assert!(
            !keytool_list(&volume.path("truststore.p12"), "PKCS12", "wrong")
                .status
                .success()
        );
    }
}

/// Python's `cryptography` with the OpenSSL it bundles, if that is 3.4 or newer (PBMAC1).
fn pbmac1_reader() -> bool {
    let output = Command::new("python3")
        .args([
            "-c",
            "from cryptography.hazmat.backends.openssl import backend as b\n\
             import sys; sys.exit(0 if b.openssl_version_number() >= 0x30400000 else 1)",
        ])
        .output();
    output.is_ok_and(|output| output.status.success())
}

/// Loads a PKCS#12 file with Python's `cryptography` (which checks the MAC); prints how many
/// keys and certificates it holds.
fn python_load(path: &Path, password: &str) -> Output {
    run(
        "python3",
        &[
            "-c",
            "import sys\n\
             from cryptography.hazmat.primitives.serialization import pkcs12\n\
             p = pkcs12.load_pkcs12(open(sys.argv[1], 'rb').read(), sys.argv[2].encode())\n\
             print('keys', int(p.key is not None), 'certificates', \
             int(p.cert is not None) + len(p.additional_certs))",
            path.to_str().unwrap(),
            password,
        ],
    )
}

#[test]
fn modern2026_stores_carry_a_pbmac1_mac_that_a_pbmac1_reader_verifies() {
    let volume = issue(&[
        (key::PKCS12_ENABLE, "true"),
        (key::PKCS12_PASSWORD, PASSWORD),
        (key::PKCS12_PROFILE, "Modern2026"),
        (key::PKCS12_TRUSTSTORE_ENABLE, "true"),
    ]);
    for store in ["keystore.p12", "truststore.p12"] {
        let path = volume.path(store);
        // The MAC is PBMAC1 (1.2.840.113549.1.5.14) ...
        let parsed = succeeded(
            "openssl",
            &["asn1parse", "-inform", "DER", "-in", path.to_str().unwrap()],
        );
        assert!(
            parsed.contains(":1.2.840.113549.1.5.14") || parsed.contains("PBMAC1"),
            "{parsed}"
        );
        // ... over contents encrypted as Modern2023's: OpenSSL 3.0, which cannot check the
        // MAC, decrypts them when told not to.
        let contents = succeeded(
            "openssl",
            &[
                "pkcs12",
                "-in",
                path.to_str().unwrap(),
                "-passin",
                &format!("pass:{PASSWORD}"),
                "-nomacver",
                "-nodes",
            ],
        );
        let certificates = if store == "keystore.p12" { 2 } else { 1 };
        assert_eq!(
            contents.matches("BEGIN CERTIFICATE").count(),
            certificates,
            "{store}"
        );
        if !pbmac1_reader() {
            eprintln!(
                "skipped the PBMAC1 check of {store}: no OpenSSL 3.4+ in python3's cryptography"
            );
            continue;
        }
        let loaded = python_load(&path, PASSWORD);
        let said = String::from_utf8_lossy(&loaded.stdout);
        assert!(
            loaded.status.success(),
            "{store}: {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
        let expected = if store == "keystore.p12" {
            "keys 1 certificates 2"
        } else {
            "keys 0 certificates 1"
        };
        assert_eq!(said.trim(), expected, "{store}");
        assert!(
            !python_load(&path, "wrong").status.success(),
            "{store}: wrong password"
        );
    }
}

#[test]
fn without_a_ca_the_truststores_are_not_written_and_the_keystores_hold_no_ca() {
    let mut overrides = JKS_ON.to_vec();
    overrides.extend([
        (key::PKCS12_ENABLE, "true"),
        (key::PKCS12_PASSWORD, PASSWORD),
        (key::PKCS12_TRUSTSTORE_ENABLE, "true"),
    ]);
    // An issuer that returns no CA (cert-manager's `status.ca` empty).
    let volume = issue_with(&overrides, "", Some(""));
    assert_eq!(volume.stores, ["keystore.p12", "keystore.jks"]);
    let (text, entries) = listed(&volume.path("keystore.jks"), "JKS", PASSWORD);
    assert_eq!(entries.len(), 1, "{text}");
    assert_eq!(
        (entries[0].alias.as_str(), entries[0].chain),
        ("certificate", Some(1))
    );
    assert_key_entry_opens_and_matches(&volume, "keystore.jks", "certificate");
}
