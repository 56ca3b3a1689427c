//! The server's transport: HTTPS with its own CA and ALPN (h2 or HTTP/1.1), plain HTTP on
//! request, and the connection counts.

mod common;

use bytes::Bytes;
use common::client;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use kube_test_server::{Connections, DRIVER_TOKEN, TestApiServer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

/// A TLS connection to `server` offering exactly `alpn`, trusting `roots`.
async fn connect_tls(
    server: &TestApiServer,
    roots: rustls::RootCertStore,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let address = server.url().trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(address).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

fn roots_of(server: &TestApiServer) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let pem = server.ca_pem().expect("a TLS server has a CA");
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .unwrap();
    roots
}

#[tokio::test]
async fn kube_over_tls_trusts_the_kubeconfig_ca_and_is_counted() {
    let server = TestApiServer::start().await;
    assert!(server.url().starts_with("https://127.0.0.1:"));
    assert_eq!(server.connections(), Connections::default());

    let maps: Api<ConfigMap> = Api::namespaced(client(&server, DRIVER_TOKEN).await, "ns");
    maps.create(&PostParams::default(), &config_map("one"))
        .await
        .unwrap();
    maps.get("one").await.unwrap();

    // kube 5's own connector offers only http/1.1 by ALPN, and reuses its keep-alive connection.
    let connections = server.connections();
    assert_eq!(
        connections,
        Connections {
            accepted: 1,
            http1: 1,
            h2: 0,
            tls_failed: 0
        }
    );
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_fails_the_handshake() {
    let server = TestApiServer::start().await;
    let other = TestApiServer::start().await;
    let result = connect_tls(&server, roots_of(&other), &[b"h2"]).await;
    assert!(
        result.is_err(),
        "a certificate from another CA was accepted"
    );
    // The server sees the client's alert after its own half of the handshake.
    for _ in 0..100 {
        if server.connections().tls_failed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connections = server.connections();
    assert_eq!((connections.accepted, connections.tls_failed), (1, 1));
    assert_eq!((connections.http1, connections.h2), (0, 0));
}

/// One h2 connection carries a watch that stays open and, meanwhile, other requests, which is
/// what a client multiplexing on one connection relies on.
#[tokio::test]
async fn h2_multiplexes_a_watch_and_requests_on_one_connection() {
    let server = TestApiServer::start().await;
    let tls = connect_tls(&server, roots_of(&server), &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);

    let request = |method: &str, path: &str, body: Option<Value>| {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", server.url()))
            .header("authorization", format!("Bearer {DRIVER_TOKEN}"))
            .header("content-type", "application/json")
            .body(match body {
                Some(body) => Full::new(Bytes::from(body.to_string())).boxed(),
                None => Empty::<Bytes>::new().boxed(),
            })
            .unwrap()
    };
    let watch = sender
        .send_request(request(
            "GET",
            "/api/v1/namespaces/ns/configmaps?watch=true&resourceVersion=0",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    let mut watch_body = watch.into_body();

    // While the watch is open, a create on the same connection goes through...
    let created = sender
        .send_request(request(
            "POST",
            "/api/v1/namespaces/ns/configmaps",
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}})),
        ))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // ...and the watch, still open, tells of it.
    let event = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = Vec::new();
        while let Some(frame) = watch_body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                buffer.extend_from_slice(&data);
            }
            if let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                return serde_json::from_slice::<Value>(&buffer[..end]).unwrap();
            }
        }
        panic!("the watch ended without an event");
    })
    .await
    .expect("no watch event within 5 s");
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "one");

    let connections = server.connections();
    assert_eq!((connections.accepted, connections.h2), (1, 1));
    assert_eq!(connections.http1, 0);
}

#[tokio::test]
async fn start_plain_serves_http_without_a_ca() {
    let server = TestApiServer::start_plain().await;
    assert!(server.url().starts_with("http://127.0.0.1:"));
    assert_eq!(server.ca_pem(), None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path, DRIVER_TOKEN);
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("certificate-authority-data")
    );

    let maps: Api<ConfigMap> = Api::namespaced(client(&server, DRIVER_TOKEN).await, "ns");
    maps.create(&PostParams::default(), &config_map("one"))
        .await
        .unwrap();
    let connections = server.connections();
    assert_eq!((connections.accepted, connections.http1), (1, 1));
    assert_eq!((connections.h2, connections.tls_failed), (0, 0));
}
