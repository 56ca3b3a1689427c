//! The cert-manager backend, driven like kubelet drives it (gRPC over the unix socket), against
//! the Kubernetes-API-compatible test server and its cert-manager-like signer. The driver reaches
//! the server only through its normal kube client, over HTTP, configured by a kubeconfig file.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::demo::SamplePod;
use common::cluster::{Cluster, cluster, creates, event_with_reason, events_for};
use common::{
    Harness, ecdsa_context, key_matches, mounts_at, pod_in, publish, publish_context, serial_of,
    verify_volume_with_openssl, wait_for,
};
use kube_test_server::{IGNORED_ISSUER, SignerMode, TestApiServer};
use serde_json::Value;
use tonic::Code;

const CR_API: &str = "cert-manager.io/v1";
const CRS: &str = "certificaterequests";
const DRIVER_USER: &str = "system:serviceaccount:cert-manager:cert-manager-csi-driver";

/// A driver on the cert-manager backend talking to `cluster`.
async fn driver(cluster: &Cluster, publish_timeout: Duration) -> Harness {
    driver_with(cluster, publish_timeout, |_| {}).await
}

async fn driver_with(
    cluster: &Cluster,
    publish_timeout: Duration,
    adjust: impl FnOnce(&mut cert_manager_csi_driver::driver::DriverConfig),
) -> Harness {
    cluster
        .driver(move |config| {
            config.cert_manager.publish_timeout = publish_timeout;
            adjust(config);
        })
        .await
}

/// The pods of these tests live in `apps`.
fn pod(name: &str) -> SamplePod {
    pod_in("apps", name)
}

fn requests(api: &TestApiServer) -> Vec<Value> {
    api.list_objects(CR_API, CRS)
}

fn name_of(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap().to_string()
}

fn csr_of(request: &Value) -> String {
    let bytes: k8s_openapi::ByteString =
        serde_json::from_value(request["spec"]["request"].clone()).unwrap();
    String::from_utf8(bytes.0).unwrap()
}

const NODE_ID_HASH: &str = "csi.cert-manager.io/node-id-hash";
const VOLUME_ID_HASH: &str = "csi.cert-manager.io/volume-id-hash";

/// The Go driver's label value, computed here independently of the driver: 32-bit FNV-1 of the
/// ID (multiply, then XOR), in decimal, each digit mapped by apimachinery's
/// `rand.SafeEncodeString`.
fn go_label_hash(id: &str) -> String {
    let mut hash: u64 = 0x811c_9dc5;
    for byte in id.as_bytes() {
        hash = (hash * 0x0100_0193) & 0xffff_ffff;
        hash ^= u64::from(*byte);
    }
    let alphabet: Vec<char> = "bcdfghjklmnpqrstvwxz2456789".chars().collect();
    hash.to_string()
        .chars()
        .map(|digit| alphabet[digit as usize % alphabet.len()])
        .collect()
}

/// The label value earlier versions of this driver wrote: the first 16 hex digits of SHA-256.
fn legacy_label_hash(id: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A request another driver left in `namespace`, with these labels and annotations and a CSR of
/// some other key. It names the issuer the signer ignores, so it stays as made: pending, or
/// issued if `issued`.
fn leftover_request(
    api: &TestApiServer,
    namespace: &str,
    name: &str,
    labels: Value,
    annotations: Option<Value>,
    issued: bool,
) {
    let mut metadata = serde_json::json!({"name": name, "labels": labels});
    if let Some(annotations) = annotations {
        metadata["annotations"] = annotations;
    }
    let mut object = serde_json::json!({
        "apiVersion": CR_API,
        "kind": "CertificateRequest",
        "metadata": metadata,
        "spec": {
            // base64 of "-----BEGIN CERTIFICATE REQUEST-----\n", of no key this driver holds.
            "request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
            "issuerRef": {"name": IGNORED_ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
        },
    });
    if issued {
        object["status"] = serde_json::json!({
            "conditions": [
                {"type": "Approved", "status": "True", "reason": "cert-manager.io"},
                {"type": "Ready", "status": "True", "reason": "Issued"},
            ],
            // base64 of "an old certificate".
            "certificate": "YW4gb2xkIGNlcnRpZmljYXRl",
        });
    }
    api.create_object(CR_API, CRS, namespace, object);
}

/// Annotations as this driver writes them, for a request of `volume_id` made at `requested_at`.
fn our_annotations(pod: &SamplePod, volume_id: &str, requested_at: &str) -> Value {
    serde_json::json!({
        "csi.cert-manager.io/pod-name": pod.name,
        "csi.cert-manager.io/pod-uid": pod.uid,
        "csi.cert-manager.io/volume-id": volume_id,
        "csi.cert-manager.io/node-id": "test-node",
        "csi.cert-manager.io/requested-at": requested_at,
    })
}

fn request_names(api: &TestApiServer) -> Vec<String> {
    let mut names: Vec<String> = requests(api).iter().map(name_of).collect();
    names.sort();
    names
}

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
async fn requests_carry_the_go_drivers_label_values() {
    let cluster = cluster().await;
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.node_id = "node-1".into();
    })
    .await;
    let target = harness.target("web-20");
    let volume_id = "csi-0123456789abcdef";
    publish(&harness, volume_id, &target, &pod("web-20"), &[])
        .await
        .unwrap();
    let all = requests(&cluster.api);
    assert_eq!(all.len(), 1);
    let labels = &all[0]["metadata"]["labels"];
    // As the Go driver labelled its requests on a real API server.
    assert_eq!(labels[NODE_ID_HASH], "9bd6bbf5f");
    assert_eq!(labels[VOLUME_ID_HASH], "747dc7849");
    assert_eq!(labels[NODE_ID_HASH], go_label_hash("node-1"));
    assert_eq!(labels[VOLUME_ID_HASH], go_label_hash(volume_id));
    assert_eq!(labels.as_object().unwrap().len(), 2, "{labels}");
    harness.unpublish(volume_id, &target).await.unwrap();
}

#[tokio::test]
async fn requests_an_earlier_version_labelled_are_still_handled_after_an_upgrade() {
    let cluster = cluster().await;
    let web = pod("web-21");
    let volume_id = "csi-upgraded";
    let legacy_labels = serde_json::json!({
        NODE_ID_HASH: legacy_label_hash("test-node"),
        VOLUME_ID_HASH: legacy_label_hash(volume_id),
    });
    // What the earlier version left: an issued request, and a pending one whose key died with it.
    leftover_request(
        &cluster.api,
        "apps",
        "web-21-issued",
        legacy_labels.clone(),
        Some(our_annotations(&web, volume_id, "2025-01-01T10:00:00.5Z")),
        true,
    );
    leftover_request(
        &cluster.api,
        "apps",
        "web-21-pending",
        legacy_labels,
        Some(our_annotations(&web, volume_id, "2025-01-02T10:00:00.5Z")),
        false,
    );

    let harness = driver(&cluster, Duration::from_secs(20)).await;
    let target = harness.target("web-21");
    publish(&harness, volume_id, &target, &web, &[])
        .await
        .unwrap();
    verify_volume_with_openssl(&target);
    // The stale pending one was deleted, the issued one pruned by the history limit of 1.
    let all = requests(&cluster.api);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(name_of(&all[0]).starts_with("web-21-"));
    assert!(!["web-21-issued", "web-21-pending"].contains(&name_of(&all[0]).as_str()));
    assert_eq!(
        all[0]["metadata"]["labels"][VOLUME_ID_HASH],
        go_label_hash(volume_id),
        "only the new hash is written"
    );
    assert_eq!(creates(&cluster.api), 1);
    harness.unpublish(volume_id, &target).await.unwrap();
}

#[tokio::test]
async fn the_go_drivers_requests_are_never_resumed_and_count_as_history() {
    let cluster = cluster().await;
    let web = pod("web-22");
    let volume_id = "csi-from-go";
    let go_labels = serde_json::json!({
        NODE_ID_HASH: go_label_hash("test-node"),
        VOLUME_ID_HASH: go_label_hash(volume_id),
    });
    // What the Go driver left on the node: requests named by UUID, without annotations.
    let (old, new, pending, elsewhere) = (
        "0c6f2d9e-8c1b-4f0e-9a57-3d2b1e4c5a01",
        "5e8a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a02",
        "9a7b6c5d-4e3f-4a21-9b0c-d1e2f3a4b503",
        "d4c3b2a1-0f9e-4d8c-8b7a-695847362504",
    );
    leftover_request(&cluster.api, "apps", old, go_labels.clone(), None, true);
    // Creation times have whole seconds: make the second one newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    leftover_request(&cluster.api, "apps", new, go_labels.clone(), None, true);
    leftover_request(
        &cluster.api,
        "apps",
        pending,
        go_labels.clone(),
        None,
        false,
    );
    // The same labels in another namespace: another pod's, whatever the hash says.
    leftover_request(&cluster.api, "other", elsewhere, go_labels, None, false);

    // Slow signing: the first publish times out and kubelet's retries resume the driver's own
    // request.
    cluster
        .signer
        .set_mode(SignerMode::Delay(Duration::from_millis(1500)));
    let harness = driver_with(&cluster, Duration::from_secs(1), |config| {
        config.cert_manager.history_limit = 2;
    })
    .await;
    let target = harness.target("web-22");
    let mut attempts = 0;
    loop {
        attempts += 1;
        match publish(&harness, volume_id, &target, &web, &[]).await {
            Ok(()) => break,
            Err(error) if error.code() == Code::DeadlineExceeded && attempts < 10 => {}
            Err(error) => panic!("publish failed: {error:?}"),
        }
    }
    assert!(attempts >= 2, "the first publish was to time out");
    verify_volume_with_openssl(&target);
    assert_eq!(creates(&cluster.api), 1, "resumed, never duplicated");
    // The pending one (its key died with the Go driver) is gone; of the issued ones, the newest
    // is kept beside the driver's own (history 2).
    let ours = requests(&cluster.api)
        .iter()
        .map(name_of)
        .find(|name| name.starts_with("web-22-"))
        .expect("the driver's request");
    let mut expected = vec![ours, new.to_string(), elsewhere.to_string()];
    expected.sort();
    assert_eq!(request_names(&cluster.api), expected);
    harness.unpublish(volume_id, &target).await.unwrap();
}

#[tokio::test]
async fn a_request_whose_hash_collides_but_names_another_volume_is_never_touched() {
    let cluster = cluster().await;
    let web = pod("web-23");
    let volume_id = "csi-mine";
    let labels = serde_json::json!({
        NODE_ID_HASH: go_label_hash("test-node"),
        VOLUME_ID_HASH: go_label_hash(volume_id),
    });
    let someone_else = our_annotations(&web, "csi-someone-else", "2025-01-01T10:00:00.5Z");
    leftover_request(
        &cluster.api,
        "apps",
        "collision-pending",
        labels.clone(),
        Some(someone_else.clone()),
        false,
    );
    leftover_request(
        &cluster.api,
        "apps",
        "collision-issued",
        labels,
        Some(someone_else),
        true,
    );
    // Unannotated with this volume's legacy hash: the Go driver never wrote that; nobody's.
    leftover_request(
        &cluster.api,
        "apps",
        "legacy-unannotated",
        serde_json::json!({
            NODE_ID_HASH: legacy_label_hash("test-node"),
            VOLUME_ID_HASH: legacy_label_hash(volume_id),
        }),
        None,
        false,
    );

    let harness = driver(&cluster, Duration::from_secs(20)).await;
    let target = harness.target("web-23");
    publish(&harness, volume_id, &target, &web, &[])
        .await
        .unwrap();
    // Renew once, so that the history limit (1) prunes for this volume with a finished request.
    harness.unpublish(volume_id, &target).await.unwrap();
    publish(&harness, volume_id, &target, &web, &[])
        .await
        .unwrap();
    let names = request_names(&cluster.api);
    assert_eq!(names.len(), 4, "{names:?}");
    for untouched in [
        "collision-issued",
        "collision-pending",
        "legacy-unannotated",
    ] {
        assert!(names.iter().any(|name| name == untouched), "{names:?}");
    }
    let deletes = cluster
        .api
        .requests()
        .into_iter()
        .filter(|entry| entry.method == "DELETE" && entry.path.contains(CRS))
        .count();
    assert!(deletes >= 1, "the driver's own first request was pruned");
    harness.unpublish(volume_id, &target).await.unwrap();
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
async fn denial_fails_at_once_with_the_approvers_message() {
    let cluster = cluster().await;
    cluster.signer.set_mode(SignerMode::Deny {
        reason: "policy.example.com".into(),
        message: "DNS name web-1.app.example.com is not allowed".into(),
    });
    // A long deadline: returning at all shows the denial was not waited out.
    let harness = driver(&cluster, Duration::from_secs(60)).await;
    let target = harness.target("web-1");
    let error = publish(&harness, "csi-denied", &target, &pod("web-1"), &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
    assert!(error.message().contains("is not allowed"), "{error:?}");
    assert!(error.message().contains("policy.example.com"), "{error:?}");
    if common::is_root() {
        assert_eq!(mounts_at(&target), 0, "nothing stays mounted");
    }
    assert_eq!(harness.state_records(), 0);
    let event = event_with_reason(&cluster.api, "web-1", "CertificateRequestDenied").await;
    assert_eq!(event["type"], "Warning");
    assert!(event["note"].as_str().unwrap().contains("is not allowed"));
}

#[tokio::test]
async fn issuer_failure_fails_with_the_issuers_message() {
    let cluster = cluster().await;
    cluster.signer.set_mode(SignerMode::Fail {
        message: "vault: permission denied on pki/sign/web".into(),
    });
    let harness = driver(&cluster, Duration::from_secs(60)).await;
    let target = harness.target("web-2");
    let error = publish(&harness, "csi-failed", &target, &pod("web-2"), &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert!(
        error.message().contains("vault: permission denied"),
        "{error:?}"
    );
    let event = event_with_reason(&cluster.api, "web-2", "CertificateRequestFailed").await;
    assert_eq!(event["type"], "Warning");
}

#[tokio::test]
async fn a_self_signed_issuer_is_called_out() {
    let cluster = cluster().await;
    cluster.signer.set_mode(SignerMode::SelfSignedFailure);
    let harness = driver(&cluster, Duration::from_secs(60)).await;
    let target = harness.target("web-3");
    let error = publish(&harness, "csi-selfsigned", &target, &pod("web-3"), &[])
        .await
        .unwrap_err();
    assert!(error.message().contains("SelfSigned"), "{error:?}");
    assert!(error.message().contains("CA issuer"), "{error:?}");
}

#[tokio::test]
async fn a_timed_out_publish_is_resumed_by_kubelets_retry() {
    let cluster = cluster().await;
    // Signed 3 s after it arrives; each publish waits 1 s.
    cluster
        .signer
        .set_mode(SignerMode::Delay(Duration::from_secs(3)));
    let harness = driver(&cluster, Duration::from_secs(1)).await;
    let web = pod("web-4");
    let target = harness.target("web-4");
    let error = publish(&harness, "csi-slow", &target, &web, &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
    assert!(error.message().contains("not signed after"), "{error:?}");
    assert!(
        error
            .message()
            .contains("Ready=False Pending: Waiting on certificate issuance"),
        "the last state is reported: {error:?}"
    );
    let event = event_with_reason(&cluster.api, "web-4", "CertificateRequestTimedOut").await;
    assert_eq!(event["type"], "Warning");
    assert!(harness.driver().manager().has_pending_key("csi-slow"));

    // kubelet retries with the same volume ID until one attempt sees the signature.
    let mut attempts = 1;
    loop {
        attempts += 1;
        match publish(&harness, "csi-slow", &target, &web, &[]).await {
            Ok(()) => break,
            Err(error) if error.code() == Code::DeadlineExceeded && attempts < 10 => {}
            Err(error) => panic!("retry failed: {error:?}"),
        }
    }
    assert!(attempts >= 2);
    assert_eq!(creates(&cluster.api), 1, "exactly one request created");
    assert_eq!(requests(&cluster.api).len(), 1);
    assert!(!harness.driver().manager().has_pending_key("csi-slow"));
    verify_volume_with_openssl(&target);
}

#[tokio::test]
async fn stale_requests_are_deleted_side_by_side_not_one_after_another() {
    let cluster = cluster().await;
    let web = pod("web-22");
    let volume_id = "csi-three-stale";
    let labels = serde_json::json!({
        NODE_ID_HASH: go_label_hash("test-node"),
        VOLUME_ID_HASH: go_label_hash(volume_id),
    });
    for n in 0..3 {
        leftover_request(
            &cluster.api,
            "apps",
            &format!("web-22-stale-{n}"),
            labels.clone(),
            Some(our_annotations(&web, volume_id, "2025-01-02T10:00:00.5Z")),
            false,
        );
    }
    let harness = driver(&cluster, Duration::from_secs(20)).await;
    // Every answer takes 400 ms: one after another, the three deletes would arrive 400 ms apart.
    cluster.api.set_latency(Duration::from_millis(400));
    let target = harness.target("web-22");
    publish(&harness, volume_id, &target, &web, &[])
        .await
        .unwrap();
    let deletes: Vec<_> = cluster
        .api
        .requests()
        .into_iter()
        .filter(|e| e.method == "DELETE" && e.path.contains("web-22-stale-"))
        .map(|e| e.at)
        .collect();
    assert_eq!(deletes.len(), 3);
    let spread = deletes
        .iter()
        .max()
        .unwrap()
        .duration_since(*deletes.iter().min().unwrap());
    assert!(
        spread < Duration::from_millis(200),
        "deletes arrived {spread:?} apart"
    );
    cluster.api.set_latency(Duration::ZERO);
    harness.unpublish(volume_id, &target).await.unwrap();
}

#[tokio::test]
async fn a_publish_that_conflicts_leaves_the_volumes_token_alone() {
    let cluster = cluster().await;
    cluster
        .api
        .add_token("token-of-the-pod", "system:serviceaccount:apps:web-23");
    cluster
        .api
        .add_token("token-of-a-stranger", "system:serviceaccount:apps:stranger");
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.cert_manager.use_token_request = true;
    })
    .await;
    let web = pod("web-23");
    let target = harness.target("web-23");
    publish_context(
        &harness,
        "csi-conflict",
        &target,
        token_context(&web, "token-of-the-pod"),
    )
    .await
    .unwrap();
    // The same volume ID at another target, with another token: refused...
    let elsewhere = harness.target("web-23-elsewhere");
    let error = publish_context(
        &harness,
        "csi-conflict",
        &elsewhere,
        token_context(&web, "token-of-a-stranger"),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists, "{error:?}");
    // ...and the volume's next request is still made as its own pod.
    harness.driver().manager().renew("csi-conflict").await;
    let users: Vec<Option<String>> = requests(&cluster.api)
        .iter()
        .map(|cr| cluster.api.created_by(CR_API, CRS, "apps", &name_of(cr)))
        .collect();
    assert_eq!(
        users,
        vec![Some("system:serviceaccount:apps:web-23".to_string())],
        "the renewal's request was made with the volume's own token"
    );
    harness.unpublish("csi-conflict", &target).await.unwrap();
}

#[tokio::test]
async fn an_unpublish_drops_the_key_kept_for_a_retry() {
    let cluster = cluster().await;
    cluster.signer.set_mode(SignerMode::Ignore);
    let harness = driver(&cluster, Duration::from_secs(1)).await;
    let target = harness.target("web-gone");
    let error = publish(&harness, "csi-gone", &target, &pod("web-gone"), &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
    assert!(harness.driver().manager().has_pending_key("csi-gone"));
    // The pod went instead of being retried: nothing is kept for it.
    harness.unpublish("csi-gone", &target).await.unwrap();
    assert!(!harness.driver().manager().has_pending_key("csi-gone"));
}

#[tokio::test]
async fn a_pending_request_whose_key_died_with_the_driver_is_replaced() {
    let cluster = cluster().await;
    cluster.signer.set_mode(SignerMode::Ignore);
    let mut harness = driver(&cluster, Duration::from_secs(1)).await;
    let web = pod("web-5");
    let target = harness.target("web-5");
    let error = publish(&harness, "csi-restart", &target, &web, &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded);
    let stale = name_of(&requests(&cluster.api)[0]);

    // A new driver process: the pending key is gone with the old one.
    harness.restart().await;
    cluster.signer.set_mode(SignerMode::Approve);
    publish(&harness, "csi-restart", &target, &web, &[])
        .await
        .unwrap();
    let all = requests(&cluster.api);
    assert_eq!(all.len(), 1, "the stale request was deleted: {all:#?}");
    assert_ne!(name_of(&all[0]), stale);
    assert_eq!(creates(&cluster.api), 2, "one per driver process");
    verify_volume_with_openssl(&target);
}

/// Publishes while the API server keeps the driver's watch down from 300 ms until well after
/// the signer answered (at 1.5 s), with `expire` also making the watch's resourceVersion too old.
/// The publish must still see the signature, through the watch's recovery alone.
async fn publish_across_a_watch_outage(expire: bool) -> (Cluster, Harness) {
    let cluster = cluster().await;
    cluster
        .signer
        .set_mode(SignerMode::Delay(Duration::from_millis(1500)));
    let harness = driver(&cluster, Duration::from_secs(30)).await;
    let target = harness.target("web-6");
    let web = pod("web-6");
    let publishing = publish(&harness, "csi-outage", &target, &web, &[]);
    let api = cluster.api.clone();
    let signer = cluster.signer.clone();
    let outage = async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Every list and watch of requests fails while the watch is cut.
        api.fail_next(usize::MAX, 503, Some("GET"), Some(CRS));
        api.drop_watches();
        wait_for("the signer answered", Duration::from_secs(15), || {
            signer.signed_count() == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            api.open_watches(),
            0,
            "the watch was down when the answer came"
        );
        if expire {
            api.expire_history();
        }
        api.clear_faults();
    };
    let (result, ()) = tokio::join!(publishing, outage);
    result.unwrap();
    verify_volume_with_openssl(&target);
    assert_eq!(creates(&cluster.api), 1);
    (cluster, harness)
}

#[tokio::test]
async fn a_signature_made_while_the_watch_is_down_still_wakes_the_publish() {
    publish_across_a_watch_outage(false).await;
}

#[tokio::test]
async fn an_expired_resource_version_relists_and_still_wakes_the_publish() {
    let (cluster, _harness) = publish_across_a_watch_outage(true).await;
    let successful_lists = cluster
        .api
        .requests()
        .into_iter()
        .filter(|entry| {
            entry.method == "GET"
                && entry.path.ends_with(CRS)
                && !entry.watch
                && entry.status == 200
        })
        .count();
    assert!(
        successful_lists >= 2,
        "the watcher re-listed after 410 ({successful_lists} lists)"
    );
}

#[tokio::test]
async fn api_server_errors_are_retried() {
    let cluster = cluster().await;
    let harness = driver(&cluster, Duration::from_secs(30)).await;
    // A 500 and a 503: both transient, retried within the publish deadline.
    cluster
        .api
        .fail_next(1, 500, Some("POST"), Some("certificaterequests"));
    cluster
        .api
        .fail_next(1, 503, Some("POST"), Some("certificaterequests"));
    let target = harness.target("web-8");
    publish(&harness, "csi-5xx", &target, &pod("web-8"), &[])
        .await
        .unwrap();
    verify_volume_with_openssl(&target);
    assert_eq!(requests(&cluster.api).len(), 1);
    let failed_posts = cluster
        .api
        .requests()
        .into_iter()
        .filter(|entry| entry.method == "POST" && entry.path.ends_with(CRS) && entry.status >= 500)
        .count();
    assert_eq!(failed_posts, 2);
    assert_eq!(creates(&cluster.api), 1);
}

fn token_context(pod: &SamplePod, token: &str) -> HashMap<String, String> {
    let tokens = serde_json::json!({
        "": {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}
    });
    let mut context = ecdsa_context(pod, &[]);
    context.insert(key::SERVICE_ACCOUNT_TOKENS.into(), tokens.to_string());
    context
}

#[tokio::test]
async fn token_request_mode_creates_requests_as_the_pod() {
    let cluster = cluster().await;
    let pod_user = "system:serviceaccount:apps:web";
    cluster.api.add_token("pod-token-1", pod_user);
    cluster.api.add_token("pod-token-2", pod_user);
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.cert_manager.use_token_request = true;
    })
    .await;
    let web = pod("web-9");
    let target = harness.target("web-9");

    // No token from kubelet: a clear InvalidArgument.
    let error = publish(&harness, "csi-token", &target, &web, &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("tokenRequests"), "{error:?}");

    publish_context(
        &harness,
        "csi-token",
        &target,
        token_context(&web, "pod-token-1"),
    )
    .await
    .unwrap();
    verify_volume_with_openssl(&target);
    let all = requests(&cluster.api);
    assert_eq!(all.len(), 1);
    assert_eq!(
        cluster
            .api
            .created_by(CR_API, CRS, "apps", &name_of(&all[0])),
        Some(pod_user.to_string()),
        "the request was created with the pod's token"
    );
    // Everything else is the driver's own identity.
    let issued = event_with_reason(&cluster.api, "web-9", "CertificateIssued").await;
    assert_eq!(
        cluster.api.created_by(
            "events.k8s.io/v1",
            "events",
            "apps",
            issued["metadata"]["name"].as_str().unwrap()
        ),
        Some(DRIVER_USER.to_string())
    );
    let watch_users: Vec<Option<String>> = cluster
        .api
        .requests()
        .into_iter()
        .filter(|entry| entry.watch)
        .map(|entry| entry.user)
        .collect();
    assert!(
        watch_users
            .iter()
            .all(|user| user.as_deref() == Some(DRIVER_USER))
    );

    // kubelet's periodic republish with a fresh token: success, nothing reissued or remounted.
    let serial = serial_of(&target);
    publish_context(
        &harness,
        "csi-token",
        &target,
        token_context(&web, "pod-token-2"),
    )
    .await
    .unwrap();
    assert_eq!(serial_of(&target), serial);
    assert_eq!(requests(&cluster.api).len(), 1);
    if common::is_root() {
        assert_eq!(mounts_at(&target), 1);
    }
    // A republish whose token entry is unusable must not fail the working volume.
    let mut broken = token_context(&web, "x");
    broken.insert(key::SERVICE_ACCOUNT_TOKENS.into(), "not json".into());
    publish_context(&harness, "csi-token", &target, broken)
        .await
        .unwrap();
    assert_eq!(serial_of(&target), serial);

    // A token the API server refuses: said plainly, and the token itself never appears.
    cluster.api.reject_token("pod-token-1");
    let other = harness.target("web-10");
    let error = publish_context(
        &harness,
        "csi-token-2",
        &other,
        token_context(&pod("web-10"), "pod-token-1"),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    assert!(error.message().contains("service account"), "{error:?}");
    assert!(!error.message().contains("pod-token-1"));
    // The API server's answer is said once, readably: no dump of its status object.
    assert!(error.message().contains("401"), "{error:?}");
    assert!(
        !error.message().contains("Status {") && !error.message().contains("ErrorResponse"),
        "{error:?}"
    );

    // Both clients say who they are: the driver's own, and the one acting as the pod.
    let version = env!("CARGO_PKG_VERSION");
    let agents: std::collections::BTreeSet<String> = cluster
        .api
        .requests()
        .into_iter()
        .filter_map(|entry| entry.user_agent)
        .collect();
    assert!(
        agents.contains(&format!("cert-manager-csi-driver/{version} (driver)"))
            && agents.contains(&format!("cert-manager-csi-driver/{version} (pod token)")),
        "{agents:?}"
    );
    assert!(
        cluster
            .api
            .requests()
            .iter()
            .all(|entry| entry.user_agent.is_some()),
        "every request carries a User-Agent"
    );
}

/// Names of the requests in the order they were created, from the server's change feed.
fn record_created_requests(api: &TestApiServer) -> std::sync::Arc<parking_lot::Mutex<Vec<String>>> {
    let created = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut changes = api.subscribe();
    let sink = created.clone();
    tokio::spawn(async move {
        while let Ok(change) = changes.recv().await {
            if change.resource == CRS && change.kind == kube_test_server::ChangeKind::Added {
                sink.lock().push(name_of(&change.object));
            }
        }
    });
    created
}

#[tokio::test]
async fn history_keeps_only_the_newest_requests() {
    let cluster = cluster().await;
    let created = record_created_requests(&cluster.api);
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.cert_manager.history_limit = 2;
    })
    .await;
    let web = pod("web-11");
    let target = harness.target("web-11");
    // Certificates of 3 s renew about every 2 s.
    publish(
        &harness,
        "csi-history",
        &target,
        &web,
        &[(key::DURATION, "3s")],
    )
    .await
    .unwrap();
    let signer = &cluster.signer;
    wait_for("three renewals happened", Duration::from_secs(15), || {
        signer.signed_count() >= 4
    })
    .await;
    let renewed = event_with_reason(&cluster.api, "web-11", "CertificateRenewed").await;
    assert_eq!(renewed["type"], "Normal");
    // Stop renewing, then compare what is left with the order of creation.
    harness.unpublish("csi-history", &target).await.unwrap();
    let created = created.lock().clone();
    assert!(created.len() >= 4, "{created:?}");
    let mut newest_two: Vec<String> = created[created.len() - 2..].to_vec();
    newest_two.sort();
    wait_for(
        "only the two newest requests are left",
        Duration::from_secs(15),
        || {
            let mut kept: Vec<String> = requests(&cluster.api).iter().map(name_of).collect();
            kept.sort();
            kept == newest_two
        },
    )
    .await;
}

#[tokio::test]
async fn by_default_one_request_per_volume_is_kept() {
    let cluster = cluster().await;
    let harness = driver(&cluster, Duration::from_secs(20)).await;
    let target = harness.target("web-12");
    publish(
        &harness,
        "csi-one",
        &target,
        &pod("web-12"),
        &[(key::DURATION, "3s")],
    )
    .await
    .unwrap();
    let signer = &cluster.signer;
    wait_for("two renewals happened", Duration::from_secs(15), || {
        signer.signed_count() >= 3
    })
    .await;
    harness.unpublish("csi-one", &target).await.unwrap();
    wait_for(
        "only the newest request is left",
        Duration::from_secs(15),
        || requests(&cluster.api).len() == 1,
    )
    .await;
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

/// When each request was created, from the server's change feed.
fn record_creation_times(
    api: &TestApiServer,
) -> std::sync::Arc<parking_lot::Mutex<Vec<tokio::time::Instant>>> {
    let created = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut changes = api.subscribe();
    let sink = created.clone();
    tokio::spawn(async move {
        while let Ok(change) = changes.recv().await {
            if change.resource == CRS && change.kind == kube_test_server::ChangeKind::Added {
                sink.lock().push(tokio::time::Instant::now());
            }
        }
    });
    created
}

fn quick_backoff(config: &mut cert_manager_csi_driver::driver::DriverConfig) {
    config.renewal_backoff = cert_manager_csi_driver::renewal::Backoff {
        initial: Duration::from_millis(300),
        max: Duration::from_millis(1200),
    };
}

#[tokio::test]
async fn failed_renewals_back_off_keep_the_certificate_and_recover() {
    let cluster = cluster().await;
    let harness = driver_with(&cluster, Duration::from_secs(10), quick_backoff).await;
    let web = pod("web-15");
    let target = harness.target("web-15");
    publish(
        &harness,
        "csi-backoff",
        &target,
        &web,
        &[(key::DURATION, "4s")],
    )
    .await
    .unwrap();
    let serial = serial_of(&target);
    // From now on the issuer fails every request.
    cluster.signer.set_mode(SignerMode::Fail {
        message: "vault is sealed".into(),
    });
    let created = record_creation_times(&cluster.api);
    wait_for(
        "four renewal attempts failed",
        Duration::from_secs(15),
        || created.lock().len() >= 4,
    )
    .await;
    // Meanwhile the pod keeps its (still valid, then expiring) certificate, whole.
    assert_eq!(serial_of(&target), serial);
    assert!(key_matches(&target));
    let event = event_with_reason(&cluster.api, "web-15", "CertificateRequestFailed").await;
    let note = event["note"].as_str().unwrap();
    assert!(note.contains("vault is sealed"), "{note}");
    assert!(
        note.contains("stays in place")
            && (note.contains("expires in") || note.contains("EXPIRED")),
        "the event says how long is left: {note}"
    );
    // Attempts are spaced out by the backoff: 300 ms, then 600 ms, then 1200 ms (±10%).
    let times = created.lock().clone();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= Duration::from_millis(250), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(520), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(1000), "{gaps:?}");

    // The issuer recovers: the next attempt renews.
    cluster.signer.set_mode(SignerMode::Approve);
    wait_for("renewed after recovery", Duration::from_secs(15), || {
        serial_of(&target) != serial
    })
    .await;
    assert!(key_matches(&target));
    verify_volume_with_openssl(&target);
    harness.unpublish("csi-backoff", &target).await.unwrap();
}

#[tokio::test]
async fn an_api_server_outage_keeps_certificates_and_renewal_resumes_after_it() {
    let cluster = cluster().await;
    let harness = driver_with(&cluster, Duration::from_secs(1), quick_backoff).await;
    let web = pod("web-16");
    let target = harness.target("web-16");
    publish(
        &harness,
        "csi-outage-renewal",
        &target,
        &web,
        &[(key::DURATION, "3s")],
    )
    .await
    .unwrap();
    let serial = serial_of(&target);
    // The API server answers nothing useful for 4 s: creates fail, the watch cannot reconnect.
    cluster.api.fail_next(usize::MAX, 503, None, None);
    cluster.api.drop_watches();
    let outage_started = tokio::time::Instant::now();
    while outage_started.elapsed() < Duration::from_secs(4) {
        assert_eq!(
            serial_of(&target),
            serial,
            "nothing changes during the outage"
        );
        assert!(key_matches(&target));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = cluster
        .api
        .requests()
        .iter()
        .filter(|e| e.method == "POST" && e.path.ends_with(CRS) && e.status == 503)
        .count();
    assert!(
        refused >= 2,
        "renewal kept trying during the outage ({refused} attempts)"
    );
    cluster.api.clear_faults();
    wait_for(
        "renewed once the API server is back",
        Duration::from_secs(15),
        || serial_of(&target) != serial,
    )
    .await;
    assert!(key_matches(&target));
    harness
        .unpublish("csi-outage-renewal", &target)
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_renewals_are_bounded_by_the_flag() {
    let cluster = cluster().await;
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.renewal_concurrency = 3;
    })
    .await;
    // Eight volumes whose 3 s certificates all fall due about 2 s from now, with an issuer that
    // takes 1 s per request.
    let volumes: Vec<(String, PathBuf, SamplePod)> = (0..8)
        .map(|index| {
            let name = format!("bounded-{index}");
            (format!("csi-{name}"), harness.target(&name), pod(&name))
        })
        .collect();
    let publishes = volumes.iter().map(|(volume_id, target, pod)| {
        publish(&harness, volume_id, target, pod, &[(key::DURATION, "3s")])
    });
    for result in futures_util::future::join_all(publishes).await {
        result.unwrap();
    }
    cluster
        .signer
        .set_mode(SignerMode::Delay(Duration::from_secs(1)));
    // Requests waiting for their signature, counted from the server's change feed.
    let mut changes = cluster.api.subscribe();
    let (mut waiting, mut peak, mut renewed) = (0i32, 0i32, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while renewed < 8 {
        let change = tokio::time::timeout_at(deadline, changes.recv())
            .await
            .expect("renewals finish")
            .unwrap();
        if change.resource != CRS {
            continue;
        }
        let ready = change.object["status"]["conditions"]
            .as_array()
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        match change.kind {
            kube_test_server::ChangeKind::Added => waiting += 1,
            kube_test_server::ChangeKind::Modified if ready => {
                waiting -= 1;
                renewed += 1;
            }
            _ => {}
        }
        peak = peak.max(waiting);
    }
    assert!(peak <= 3, "{peak} renewals ran at once");
    assert!(peak >= 2, "renewals did run in parallel (peak {peak})");
    for (volume_id, target, _) in &volumes {
        harness.unpublish(volume_id, target).await.unwrap();
    }
}

/// `keytool -list` of a JKS, one line per entry.
fn jks_entries(store: &Path) -> Vec<String> {
    let output = std::process::Command::new("keytool")
        .args([
            "-list",
            "-storetype",
            "JKS",
            "-storepass",
            "changeit",
            "-keystore",
        ])
        .arg(store)
        .output()
        .expect("keytool runs (the JDK is installed)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("Entry,"))
        .map(|line| line.split(',').next().unwrap().to_string())
        .collect()
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
