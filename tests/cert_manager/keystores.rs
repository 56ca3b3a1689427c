//! Java keystores and truststores written from the issued certificate and the status CA.

use super::*;

/// The aliases of a JKS the driver wrote (the volume's password is `changeit`).
fn jks_entries(store: &Path) -> Vec<String> {
    common::java::jks_aliases(store, "changeit")
}

#[tokio::test]
async fn java_stores_trust_status_ca_and_truststores_are_left_out_without_one() {
    let cluster = cluster().await;
    let harness = driver(&cluster, Duration::from_secs(20)).await;
    let stores = [
        (key::JKS_ENABLE, "true"),
        (key::JKS_PASSWORD, "changeit"),
        (key::PKCS12_ENABLE, "true"),
        (key::PKCS12_PASSWORD, "changeit"),
        (key::PKCS12_TRUSTSTORE_ENABLE, "true"),
    ];
    let with_ca = harness.target("java-0");
    publish(&harness, "csi-java-0", &with_ca, &pod("java-0"), &stores)
        .await
        .unwrap();
    assert_eq!(
        jks_entries(&with_ca.join("keystore.jks")),
        ["ca", "certificate"]
    );
    assert_eq!(jks_entries(&with_ca.join("truststore.jks")), ["ca"]);
    let exported = std::process::Command::new("keytool")
        .args([
            "-exportcert",
            "-rfc",
            "-alias",
            "ca",
            "-storepass",
            "changeit",
        ])
        .arg("-keystore")
        .arg(with_ca.join("truststore.jks"))
        .output()
        .unwrap();
    let ca_of = |pem_text: &str| pem::parse_many(pem_text).unwrap().swap_remove(0);
    assert_eq!(
        ca_of(&String::from_utf8_lossy(&exported.stdout)),
        ca_of(&cluster.signer.ca_pem()),
        "the truststore holds status.ca"
    );
    assert!(with_ca.join("truststore.p12").exists());

    // An issuer that leaves status.ca empty: the keystores are written without CA entries,
    // the truststores not at all (as cert-manager leaves truststore.* out of the Secret).
    cluster.signer.set_mode(SignerMode::ApproveWithoutCa);
    let without_ca = harness.target("java-1");
    publish(&harness, "csi-java-1", &without_ca, &pod("java-1"), &stores)
        .await
        .unwrap();
    assert_eq!(
        jks_entries(&without_ca.join("keystore.jks")),
        ["certificate"]
    );
    assert!(without_ca.join("keystore.p12").exists());
    for name in ["truststore.jks", "truststore.p12"] {
        assert!(!without_ca.join(name).exists(), "{name}");
    }
    assert_eq!(
        std::fs::read_to_string(without_ca.join("ca.crt")).unwrap(),
        ""
    );
}
