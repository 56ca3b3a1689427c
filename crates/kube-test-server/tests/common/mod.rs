//! Helpers shared by the integration tests: a kube client built the way the driver builds one.

#![allow(dead_code)] // each test binary uses a different subset

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_test_server::TestApiServer;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// A kube client for `server` that authenticates with `token`, configured through a kubeconfig
/// file written by the server.
pub async fn client(server: &TestApiServer, token: &str) -> Client {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path, token);
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// Polls the server until the object exists and satisfies `done`.
pub async fn wait_for(
    server: &TestApiServer,
    (api_version, resource, namespace, name): (&str, &str, &str, &str),
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(object) = server.get_object(api_version, resource, namespace, name)
            && done(&object)
        {
            return object;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {resource} {namespace}/{name}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The Status of a failed kube call.
pub fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}
