//! End-to-end against a real cluster. Ignored by default; run when `KUBECONFIG` points at a
//! cluster with cert-manager installed and a working issuer:
//!
//! ```sh
//! E2E_ISSUER_NAME=ca-issuer E2E_ISSUER_KIND=ClusterIssuer \
//!   cargo test --test e2e_cluster -- --ignored --test-threads=1
//! ```
//!
//! The driver runs locally (in this test process) and is driven through its CSI socket like
//! kubelet; only the CertificateRequests, Pods and Events are in the cluster. For each volume a
//! Pod object is created (bound to a node that does not exist, so it never runs) so that the
//! requests' ownerReferences are real, and deleted at the end, which garbage-collects the
//! requests. Needs: create/delete pods, create/list/watch/delete certificaterequests and
//! create/list events in `E2E_NAMESPACE` (default `default`).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::demo::{SamplePod, publish_request, sample_volume_context};
use cert_manager_csi_driver::driver::IssuerBackend;
use cert_manager_csi_driver::issuer::cert_manager::request::{
    CertificateRequest, label, label_hash,
};
use common::{Harness, verify_volume_with_openssl};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use tonic::Code;

struct Settings {
    namespace: String,
    issuer_name: String,
    issuer_kind: String,
    issuer_group: String,
}

fn settings() -> Settings {
    let var = |name: &str, default: Option<&str>| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| default.map(str::to_string))
            .unwrap_or_else(|| panic!("set {name} (see the top of tests/e2e_cluster.rs)"))
    };
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "set KUBECONFIG to the cluster to test against"
    );
    Settings {
        namespace: var("E2E_NAMESPACE", Some("default")),
        issuer_name: var("E2E_ISSUER_NAME", None),
        issuer_kind: var("E2E_ISSUER_KIND", Some("ClusterIssuer")),
        issuer_group: var("E2E_ISSUER_GROUP", Some("cert-manager.io")),
    }
}

async fn client() -> kube::Client {
    kube::Client::try_default()
        .await
        .expect("a client from KUBECONFIG")
}

/// Creates a Pod that never runs, for ownerReferences; returns it as the driver will see it.
async fn create_pod(client: &kube::Client, namespace: &str, prefix: &str) -> SamplePod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": format!("{prefix}-"), "namespace": namespace},
        "spec": {
            "nodeName": "cert-manager-csi-e2e-no-such-node",
            "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]
        }
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    SamplePod {
        name: created.metadata.name.unwrap(),
        namespace: namespace.to_string(),
        uid: created.metadata.uid.unwrap(),
    }
}

async fn delete_pod(client: &kube::Client, pod: &SamplePod) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let _ = pods.delete(&pod.name, &DeleteParams::background()).await;
}

async fn start_driver(timeout: Duration) -> Harness {
    let kubeconfig = std::env::var_os("KUBECONFIG").map(Into::into);
    Harness::start_with(move |config| {
        config.issuer_backend = IssuerBackend::CertManager;
        config.kube.kubeconfig = kubeconfig;
        config.node_id = format!("e2e-{}", fastrand::u32(..));
        config.cert_manager.publish_timeout = timeout;
    })
    .await
}

fn context(settings: &Settings, pod: &SamplePod, issuer_name: &str) -> HashMap<String, String> {
    sample_volume_context(
        pod,
        &[
            (key::ISSUER_NAME, issuer_name),
            (key::ISSUER_KIND, settings.issuer_kind.as_str()),
            (key::ISSUER_GROUP, settings.issuer_group.as_str()),
            (key::KEY_ALGORITHM, "ECDSA"),
            (key::DURATION, "1h"),
        ],
    )
}

async fn requests_for_volume(
    client: &kube::Client,
    namespace: &str,
    volume_id: &str,
) -> Vec<CertificateRequest> {
    let api: Api<CertificateRequest> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default().labels(&format!(
        "{}={}",
        label::VOLUME_ID_HASH,
        label_hash(volume_id)
    )))
    .await
    .unwrap()
    .items
}

#[tokio::test]
#[ignore = "needs a cluster: see the top of this file"]
async fn issues_through_the_clusters_issuer() {
    let settings = settings();
    let client = client().await;
    let pod = create_pod(&client, &settings.namespace, "csi-e2e-issue").await;
    let harness = start_driver(Duration::from_secs(60)).await;
    let volume_id = format!("csi-e2e-{}", fastrand::u64(..));
    let target = harness.target(&pod.name);
    let request = publish_request(
        &volume_id,
        &target,
        context(&settings, &pod, &settings.issuer_name),
    );
    let published = harness
        .client
        .node
        .clone()
        .node_publish_volume(request)
        .await;
    let outcome = async {
        published.expect("publish succeeds");
        verify_volume_with_openssl(&target);
        let requests = requests_for_volume(&client, &settings.namespace, &volume_id).await;
        assert_eq!(requests.len(), 1);
        let owner = &requests[0].metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Pod", pod.uid.as_str())
        );
        harness
            .unpublish(&volume_id, &target)
            .await
            .expect("unpublish");
    }
    .await;
    delete_pod(&client, &pod).await;
    outcome
}

#[tokio::test]
#[ignore = "needs a cluster: see the top of this file"]
async fn a_request_nobody_signs_times_out_and_the_retry_resumes_it() {
    let settings = settings();
    let client = client().await;
    let pod = create_pod(&client, &settings.namespace, "csi-e2e-timeout").await;
    let harness = start_driver(Duration::from_secs(5)).await;
    let volume_id = format!("csi-e2e-{}", fastrand::u64(..));
    let target = harness.target(&pod.name);
    // An issuer that does not exist: cert-manager leaves the request pending.
    let context = context(&settings, &pod, "cert-manager-csi-e2e-no-such-issuer");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let error = harness
            .client
            .node
            .clone()
            .node_publish_volume(publish_request(&volume_id, &target, context.clone()))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
        let requests = requests_for_volume(&client, &settings.namespace, &volume_id).await;
        seen.push(
            requests
                .iter()
                .filter_map(|r| r.metadata.uid.clone())
                .collect::<Vec<_>>(),
        );
    }
    delete_pod(&client, &pod).await;
    // The same single request after both attempts: resumed, not deleted and made again.
    assert_eq!(seen[0].len(), 1, "{seen:?}");
    assert_eq!(seen[0], seen[1], "the retry resumed the first request");
}
