//! Issuance end to end: the request as specified, the default duration, renewal with a reused
//! key, unknown attributes reported on the pod.

use super::*;

#[tokio::test]
async fn issues_end_to_end_with_the_specified_request() {
    let cluster = cluster().await;
    let harness = driver(&cluster, Duration::from_secs(20)).await;
    let web = pod("web-0");
    let target = harness.target("web-0");
    publish(
        &harness,
        "csi-e2e",
        &target,
        &web,
        &[("example.com/team", "payments")],
    )
    .await
    .unwrap();

    let text = verify_volume_with_openssl(&target);
    assert!(text.contains("DNS:web-0.app.example.com"), "{text}");
    assert_eq!(
        std::fs::read_to_string(target.join("ca.crt")).unwrap(),
        cluster.signer.ca_pem(),
        "ca.crt is the issuer's CA from status.ca"
    );
    if common::is_root() {
        assert_eq!(mounts_at(&target), 1);
    }

    let all = requests(&cluster.api);
    assert_eq!(all.len(), 1, "exactly one request");
    let request = &all[0];
    let metadata = &request["metadata"];
    assert_eq!(metadata["namespace"], "apps");
    assert_eq!(
        metadata["labels"]["csi.cert-manager.io/node-id-hash"],
        go_label_hash("test-node")
    );
    assert_eq!(
        metadata["labels"]["csi.cert-manager.io/volume-id-hash"],
        go_label_hash("csi-e2e")
    );
    let annotations = &metadata["annotations"];
    assert_eq!(annotations["csi.cert-manager.io/pod-name"], "web-0");
    assert_eq!(annotations["csi.cert-manager.io/pod-uid"], "uid-of-web-0");
    assert_eq!(annotations["csi.cert-manager.io/volume-id"], "csi-e2e");
    assert_eq!(annotations["csi.cert-manager.io/node-id"], "test-node");
    assert_eq!(annotations["example.com/team"], "payments");
    let owner = &metadata["ownerReferences"][0];
    assert_eq!(owner["apiVersion"], "v1");
    assert_eq!(owner["kind"], "Pod");
    assert_eq!(owner["name"], "web-0");
    assert_eq!(owner["uid"], "uid-of-web-0");
    let spec = &request["spec"];
    assert_eq!(spec["issuerRef"]["name"], "ca-issuer");
    assert_eq!(spec["issuerRef"]["kind"], "ClusterIssuer");
    assert_eq!(spec["issuerRef"]["group"], "cert-manager.io");
    assert_eq!(spec["duration"], "720h0m0s");
    assert_eq!(spec["isCA"], false);
    assert_eq!(
        spec["usages"],
        serde_json::json!(["server auth", "client auth"])
    );
    assert!(csr_of(request).starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    assert_eq!(
        cluster
            .api
            .created_by(CR_API, CRS, "apps", &name_of(request)),
        Some(DRIVER_USER.to_string())
    );

    // Waiting was done on the watch: no request was ever read back by name.
    let polls = cluster
        .api
        .requests()
        .into_iter()
        .filter(|entry| entry.method == "GET" && entry.path.contains(&name_of(request)))
        .count();
    assert_eq!(polls, 0, "the driver polled the request");

    let issued = event_with_reason(&cluster.api, "web-0", "CertificateIssued").await;
    assert_eq!(issued["type"], "Normal");
    assert_eq!(issued["regarding"]["kind"], "Pod");
    assert_eq!(issued["regarding"]["uid"], "uid-of-web-0");
    assert!(issued["note"].as_str().unwrap().contains("ca-issuer"));

    harness.unpublish("csi-e2e", &target).await.unwrap();
    assert!(!target.exists());
}

#[tokio::test]
async fn a_volume_without_a_duration_gets_the_default_duration() {
    async fn requested_duration(default_duration: Option<Duration>) -> Value {
        let cluster = cluster().await;
        let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
            if let Some(duration) = default_duration {
                config.default_duration = duration;
            }
        })
        .await;
        let web = pod("web-24");
        let target = harness.target("web-24");
        let mut context = ecdsa_context(&web, &[]);
        context.remove(key::DURATION);
        publish_context(&harness, "csi-default-duration", &target, context)
            .await
            .unwrap();
        let duration = requests(&cluster.api)[0]["spec"]["duration"].clone();
        harness
            .unpublish("csi-default-duration", &target)
            .await
            .unwrap();
        duration
    }
    assert_eq!(requested_duration(None).await, "720h0m0s");
    assert_eq!(
        requested_duration(Some(Duration::from_secs(2160 * 3600))).await,
        "2160h0m0s"
    );
}

#[tokio::test]
async fn renewal_with_a_reused_rsa_key_gets_a_new_certificate() {
    // RSA PKCS#1 v1.5 signatures are deterministic: with the key reused, every renewal's CSR is
    // byte for byte the previous one's, and the previous (issued) request must not be mistaken
    // for the renewal's answer.
    let cluster = cluster().await;
    let harness = driver(&cluster, Duration::from_secs(20)).await;
    let target = harness.target("web-14");
    let overrides = [
        (key::KEY_ALGORITHM, "RSA"),
        (key::REUSE_PRIVATE_KEY, "true"),
        (key::DURATION, "3s"),
    ];
    publish(&harness, "csi-reuse", &target, &pod("web-14"), &overrides)
        .await
        .unwrap();
    let key_before = std::fs::read_to_string(target.join("tls.key")).unwrap();
    let mut serials = vec![serial_of(&target)];
    let signer = &cluster.signer;
    wait_for("two renewals were signed", Duration::from_secs(15), || {
        signer.signed_count() >= 3
    })
    .await;
    wait_for(
        "the mounted certificate changed twice",
        Duration::from_secs(15),
        || {
            let serial = serial_of(&target);
            if serials.last() != Some(&serial) {
                serials.push(serial);
            }
            serials.len() >= 3
        },
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(target.join("tls.key")).unwrap(),
        key_before,
        "the key was reused"
    );
    let csrs: std::collections::BTreeSet<String> =
        requests(&cluster.api).iter().map(csr_of).collect();
    assert_eq!(csrs.len(), 1, "every request carried the same CSR");
    harness.unpublish("csi-reuse", &target).await.unwrap();
}

#[tokio::test]
async fn unknown_attributes_are_reported_on_the_pod_once() {
    let cluster = cluster().await;
    let harness = driver(&cluster, Duration::from_secs(20)).await;
    let web = pod("web-13");
    let target = harness.target("web-13");
    let typo = [("csi.cert-manager.io/keystore-pkcs12-enabel", "true")];
    publish(&harness, "csi-typo", &target, &web, &typo)
        .await
        .unwrap();
    let first = event_with_reason(&cluster.api, "web-13", "UnknownAttribute").await;
    assert_eq!(first["type"], "Warning");
    assert!(
        first["note"]
            .as_str()
            .unwrap()
            .contains("keystore-pkcs12-enabel"),
        "{first:#?}"
    );
    // The same warning again (kubelet republishing) is folded into the first event.
    publish(&harness, "csi-typo", &target, &web, &typo)
        .await
        .unwrap();
    let name = first["metadata"]["name"].as_str().unwrap().to_string();
    let api = &cluster.api;
    wait_for(
        "the event's series counts the repeat",
        Duration::from_secs(15),
        || {
            api.get_object("events.k8s.io/v1", "events", "apps", &name)
                .is_some_and(|event| event["series"]["count"] == 2)
        },
    )
    .await;
    let unknown = events_for(&cluster.api, "web-13")
        .into_iter()
        .filter(|event| event["reason"] == "UnknownAttribute")
        .count();
    assert_eq!(unknown, 1);
}

#[tokio::test]
async fn subjects_go_encodes_as_printable_strings_with_a_question_mark_are_signed() {
    let cluster = cluster().await;
    let harness = driver(&cluster, Duration::from_secs(10)).await;
    let web = pod("web-question");
    let target = harness.target("web-question");
    publish(
        &harness,
        "csi-question",
        &target,
        &web,
        &[
            (key::COMMON_NAME, "what?"),
            (key::ORGANIZATIONS, "Who?,Why?"),
        ],
    )
    .await
    .unwrap();
    let subject = common::openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
        "-in",
        &target.join("tls.crt").display().to_string(),
    ]);
    assert!(subject.contains("CN=what?"), "{subject}");
    assert!(
        subject.contains("O=Who?+O=Why?") || subject.contains("O=Why?+O=Who?"),
        "{subject}"
    );
}
