//! A Kubernetes API for the cert-manager backend: the test API server, its cert-manager-like
//! signer, and a kubeconfig that points the driver at them.

use std::path::PathBuf;
use std::time::Duration;

use cert_manager_csi_driver::driver::{DriverConfig, IssuerBackend};
use kube_test_server::{Signer, TestApiServer};
use serde_json::Value;
use tempfile::TempDir;

use super::Harness;

pub struct Cluster {
    pub api: TestApiServer,
    pub signer: Signer,
    pub kubeconfig: PathBuf,
    _dir: TempDir,
}

/// The API over HTTPS (h2 or HTTP/1.1 by ALPN), as a real cluster serves it.
pub async fn cluster() -> Cluster {
    cluster_on(TestApiServer::start().await)
}

/// The API over plain HTTP/1.1.
pub async fn cluster_plain() -> Cluster {
    cluster_on(TestApiServer::start_plain().await)
}

fn cluster_on(api: TestApiServer) -> Cluster {
    let signer = Signer::start(&api);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, kube_test_server::DRIVER_TOKEN);
    Cluster {
        api,
        signer,
        kubeconfig,
        _dir: dir,
    }
}

impl Cluster {
    /// An in-process driver on the cert-manager backend talking to this cluster, with `adjust`
    /// applied last.
    pub async fn driver(&self, adjust: impl FnOnce(&mut DriverConfig)) -> Harness {
        let kubeconfig = self.kubeconfig.clone();
        Harness::start_with(move |config| {
            config.issuer_backend = IssuerBackend::CertManager;
            config.kube.kubeconfig = Some(kubeconfig);
            adjust(config);
        })
        .await
    }
}

/// Events about `pod`, as the API server stores them.
pub fn events_for(api: &TestApiServer, pod: &str) -> Vec<Value> {
    api.list_objects("events.k8s.io/v1", "events")
        .into_iter()
        .filter(|event| event["regarding"]["name"] == pod)
        .collect()
}

/// Waits (up to 10 s) for an event with this reason about `pod`.
pub async fn event_with_reason(api: &TestApiServer, pod: &str, reason: &str) -> Value {
    for _ in 0..200 {
        if let Some(event) = events_for(api, pod)
            .into_iter()
            .find(|event| event["reason"] == reason)
        {
            return event;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no {reason} event for {pod}; events: {:#?}",
        events_for(api, pod)
    );
}

/// How many CertificateRequests the API server accepted a create for: what a request storm would
/// inflate (counting live objects would not show a storm the driver cleans up after).
pub fn creates(api: &TestApiServer) -> usize {
    api.requests()
        .into_iter()
        .filter(|entry| {
            entry.method == "POST"
                && entry.path.ends_with("certificaterequests")
                && entry.status == 201
        })
        .count()
}
