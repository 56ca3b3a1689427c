//! The HTTP client under the driver's kube clients: HTTP/2 over TLS when the API server offers it
//! by ALPN (every kube-apiserver does), HTTP/1.1 otherwise, on one connection pool that the
//! driver's own client and the pod-token clients share.
//!
//! kube 5 builds its connector with HTTP/1.1 alone: a burst of N concurrent requests then opens N
//! connections, each a TCP and TLS handshake, and a watch holds one connection for itself. Over h2
//! the requests are streams on one connection and a watch is one more stream. The layers above
//! the connection pool are kube's own (base URI, authorization, extra headers), taken from the
//! same `kube::Config`, so authentication (bearer token, token file, exec, client certificates),
//! trust (the kubeconfig's CA, in-cluster CA reloading, `tls-server-name`, insecure skip) and
//! timeouts are kube's to interpret, as before.

use std::time::Duration;

use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ConfigExt};
use rustls_pki_types::ServerName;
use tower::{BoxError, ServiceBuilder};

/// How often an h2 connection is pinged while no frame arrives, and how long the answer may take:
/// client-go's `ReadIdleTimeout` and `PingTimeout`. One connection carries every request, so a
/// connection that died silently (a NAT or load balancer forgetting it) must be noticed without
/// waiting for TCP's own timeouts; the watch then reconnects and requests open a new connection.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(15);

type Connector = TimeoutConnector<HttpsConnector<HttpConnector>>;

/// A connection pool to the API server. Cloning shares the pool.
pub(crate) type HttpClient = hyper_util::client::legacy::Client<Connector, Body>;

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("tls-server-name {name:?} is neither a DNS name nor an IP address: {source}")]
    ServerName {
        name: String,
        #[source]
        source: rustls_pki_types::InvalidDnsNameError,
    },
    #[error("the TLS configuration: {0}")]
    Tls(#[source] kube::Error),
}

/// A pool that connects as `config` says: its trust roots, its TLS client identity (if any), its
/// `tls-server-name` and its connect, read and write timeouts.
pub(crate) fn http_client(config: &kube::Config) -> Result<HttpClient, TransportError> {
    // As kube does before building its own: rustls needs a process-wide provider to build a
    // client configuration when more than one is compiled in.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error only means another thread installed one first, which is as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    let tls = config.rustls_client_config().map_err(TransportError::Tls)?;
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    // Requests are small and answered at once: no Nagle delay on a request's last segment (Go
    // sets TCP_NODELAY on every connection too).
    tcp.set_nodelay(true);
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match &config.tls_server_name {
        Some(name) => {
            let server_name = ServerName::try_from(name.clone()).map_err(|source| {
                TransportError::ServerName {
                    name: name.clone(),
                    source,
                }
            })?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(server_name))
        }
        None => builder,
    };
    // ALPN offers h2 first and http/1.1 after it; a plain-HTTP URL gets HTTP/1.1.
    let https = builder.enable_all_versions().wrap_connector(tcp);
    let mut connector = TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_keep_alive_interval(H2_PING_INTERVAL)
            .http2_keep_alive_timeout(H2_PING_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            .build(connector),
    )
}

/// A kube client over `http` that authenticates and sets headers as `config` says (kube's own
/// layers, in kube's order). No retry layer: the driver's callers retry within their deadlines.
pub(crate) fn kube_client(
    config: &kube::Config,
    http: HttpClient,
) -> Result<kube::Client, kube::Error> {
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

/// Whether connections made for `config` present a TLS client certificate. Such connections
/// must not carry requests made with another identity: the API server would authenticate those
/// by the certificate, not by their bearer token.
pub(crate) fn presents_client_certificate(config: &kube::Config) -> bool {
    let auth = &config.auth_info;
    auth.client_certificate.is_some()
        || auth.client_certificate_data.is_some()
        // An exec plugin may answer with a client certificate.
        || auth.exec.is_some()
}
