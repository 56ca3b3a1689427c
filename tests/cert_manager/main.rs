//! The cert-manager backend, driven like kubelet drives it (gRPC over the unix socket), against
//! the Kubernetes-API-compatible test server and its cert-manager-like signer. The driver reaches
//! the server only through its normal kube client, over HTTPS, configured by a kubeconfig file.

#[path = "../common/mod.rs"]
mod common;

mod connections;
mod events;
mod failures;
mod issuance;
mod keystores;
mod labels_and_history;
mod renewals;
mod token_requests;
mod watch_outages;

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

fn token_context(pod: &SamplePod, token: &str) -> HashMap<String, String> {
    let tokens = serde_json::json!({
        "": {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}
    });
    let mut context = ecdsa_context(pod, &[]);
    context.insert(key::SERVICE_ACCOUNT_TOKENS.into(), tokens.to_string());
    context
}
