//! The kubelet side of a pod on the test API server: the Pod object on a node, and its status
//! written over HTTP as kubelet writes it (`PATCH …/pods/<name>/status`), with kubelet's own
//! credentials so that the audit log tells its requests from the driver's.
//!
//! Shared by the tests and `benches/readiness.rs` (included there by path), so it uses only the
//! crates both see.

#![allow(dead_code)]

use std::path::Path;

use cert_manager_csi_driver::demo::SamplePod;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_test_server::{AuditEntry, TestApiServer};
use serde_json::{Value, json};

pub const KUBELET_TOKEN: &str = "kubelet-token";

/// A kubelet client of one node.
pub struct Kubelet {
    pub node: String,
    api: TestApiServer,
    client: kube::Client,
}

impl Kubelet {
    /// Registers kubelet's token on `api` and connects with it (its kubeconfig goes in `dir`).
    pub async fn connect(api: &TestApiServer, node: &str, dir: &Path) -> Kubelet {
        api.add_token(KUBELET_TOKEN, &format!("system:node:{node}"));
        let path = dir.join(format!("kubelet-{node}.kubeconfig"));
        api.write_kubeconfig(&path, KUBELET_TOKEN);
        let kubeconfig = Kubeconfig::read_from(&path).expect("kubelet's kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubelet's client configuration");
        Kubelet {
            node: node.to_string(),
            api: api.clone(),
            client: kube::Client::try_from(config).expect("kubelet's client"),
        }
    }

    /// A pod scheduled to this node, as the scheduler leaves it: no addresses, no conditions.
    /// Returns it as the volume context names it (with the UID the API server gave it).
    pub fn create_pod(&self, namespace: &str, name: &str) -> SamplePod {
        let created = self.api.create_object(
            "v1",
            "pods",
            namespace,
            json!({
                "metadata": {"name": name},
                "spec": {
                    "nodeName": self.node,
                    "containers": [{"name": "app", "image": "example.com/app:1"}],
                },
                "status": {"phase": "Pending"},
            }),
        );
        SamplePod {
            name: name.to_string(),
            namespace: namespace.to_string(),
            uid: created["metadata"]["uid"].as_str().unwrap().to_string(),
        }
    }

    fn pods(&self, pod: &SamplePod) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &pod.namespace)
    }

    /// Merges `status` into the pod's status through the `/status` subresource.
    pub async fn patch_status(&self, pod: &SamplePod, status: Value) {
        self.pods(pod)
            .patch_status(
                &pod.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap_or_else(|e| panic!("kubelet patches the status of {}: {e}", pod.name));
    }

    /// The sandbox is up and CNI gave it `ips`: `podIP` is the first, `podIPs` all of them.
    pub async fn set_ips(&self, pod: &SamplePod, ips: &[&str]) {
        let pod_ips: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
        self.patch_status(
            pod,
            json!({"phase": "Running", "podIP": ips.first(), "podIPs": pod_ips}),
        )
        .await;
    }

    /// Sets the pod's conditions (a merge patch replaces the list, so give all of them).
    pub async fn set_conditions(&self, pod: &SamplePod, conditions: &[(&str, &str)]) {
        let conditions: Vec<Value> = conditions
            .iter()
            .map(|(kind, status)| {
                json!({"type": kind, "status": status, "lastTransitionTime": now_rfc3339()})
            })
            .collect();
        self.patch_status(pod, json!({"conditions": conditions}))
            .await;
    }

    /// Sets an annotation on the pod (the main resource, as a controller would).
    pub async fn annotate(&self, pod: &SamplePod, key: &str, value: &str) {
        self.pods(pod)
            .patch(
                &pod.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("annotating {}: {e}", pod.name));
    }

    /// The pod is gone (deleted for good).
    pub async fn delete_pod(&self, pod: &SamplePod) {
        self.pods(pod)
            .delete(&pod.name, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("deleting {}: {e}", pod.name));
    }
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// What the driver asked the API server about pods, apart from watches.
pub fn pod_reads(requests: &[AuditEntry], driver_user: &str) -> Vec<AuditEntry> {
    requests
        .iter()
        .filter(|entry| {
            entry.user.as_deref() == Some(driver_user)
                && entry.method == "GET"
                && !entry.watch
                && is_pods_path(&entry.path)
        })
        .cloned()
        .collect()
}

/// The driver's watches of pods.
pub fn pod_watches(requests: &[AuditEntry], driver_user: &str) -> Vec<AuditEntry> {
    requests
        .iter()
        .filter(|entry| {
            entry.user.as_deref() == Some(driver_user) && entry.watch && is_pods_path(&entry.path)
        })
        .cloned()
        .collect()
}

/// `/api/v1/pods`, `/api/v1/namespaces/<ns>/pods[/<name>[/status]]`.
fn is_pods_path(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(
        parts.as_slice(),
        ["api", "v1", "pods", ..] | ["api", "v1", "namespaces", _, "pods", ..]
    )
}
