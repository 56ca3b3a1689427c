//! The operator-facing HTTP endpoint (`--metrics-bind-address`): `/metrics` in the Prometheus
//! text format, `/healthz` (liveness: the CSI socket answers and the data root is usable) and
//! `/readyz` (readiness: that, and the issuer backend can work).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::metrics::{Gauges, Metrics};
use crate::volume::VolumeManager;

/// What the endpoint reports on.
pub struct Endpoint {
    pub metrics: Arc<Metrics>,
    pub manager: Arc<VolumeManager>,
    pub socket_path: PathBuf,
    pub data_root: PathBuf,
}

/// `--metrics-bind-address`: `0` (or empty) turns the endpoint off; `:9402` listens on every
/// address; `host:port` as given.
pub fn parse_bind_address(text: &str) -> Result<Option<SocketAddr>, String> {
    let text = text.trim();
    if text.is_empty() || text == "0" {
        return Ok(None);
    }
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!(
            "{text:?} is not an address to listen on (`:9402`, `127.0.0.1:9402`, or `0` for off)"
        )
    })
}

impl Endpoint {
    /// Liveness: `Err` says what is broken.
    pub async fn healthy(&self) -> Result<(), String> {
        tokio::net::UnixStream::connect(&self.socket_path)
            .await
            .map_err(|e| {
                format!(
                    "CSI socket {} does not answer: {e}",
                    self.socket_path.display()
                )
            })?;
        rustix::fs::access(&self.data_root, rustix::fs::Access::WRITE_OK).map_err(|e| {
            format!(
                "data root {} is not writable: {e}",
                self.data_root.display()
            )
        })?;
        Ok(())
    }

    /// Readiness: healthy, and the issuer backend can issue.
    pub async fn ready(&self) -> Result<(), String> {
        self.healthy().await?;
        self.manager.issuer_readiness().await
    }

    async fn answer(&self, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let text = |status: StatusCode, body: String| {
            Response::builder()
                .status(status)
                .header("content-type", "text/plain; charset=utf-8")
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_default()
        };
        let verdict = |result: Result<(), String>| match result {
            Ok(()) => text(StatusCode::OK, "ok\n".into()),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        };
        match request.uri().path() {
            "/metrics" => {
                let body = self.metrics.render(Gauges {
                    managed_volumes: self.manager.volume_count(),
                    adopted_volumes: self.manager.adopted_count(),
                    managed_requests: self.manager.issuer_managed_requests(),
                    waiting_volumes: self.manager.waiting_count(),
                    key_pool: self.manager.key_pool_stats(),
                    events_dropped: self.manager.events_dropped(),
                });
                Response::builder()
                    .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap_or_default()
            }
            "/healthz" | "/livez" => verdict(self.healthy().await),
            "/readyz" => verdict(self.ready().await),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /metrics, /healthz or /readyz\n".into(),
            ),
        }
    }
}

/// Binds the endpoint; serving starts with [`serve`].
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, endpoint: Arc<Endpoint>) {
    serve_http(listener, move |request| {
        let endpoint = Arc::clone(&endpoint);
        async move { endpoint.answer(request).await }
    })
    .await
}

/// Serves HTTP/1.1 on `listener` until the task is dropped, each request answered by `answer`
/// (this driver's endpoints, the SPIFFE approver's).
pub async fn serve_http<A, F>(listener: TcpListener, answer: A)
where
    A: Fn(Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = answer(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_like_upstream() {
        assert_eq!(parse_bind_address("0"), Ok(None));
        assert_eq!(parse_bind_address(""), Ok(None));
        assert_eq!(
            parse_bind_address(":9402"),
            Ok(Some("0.0.0.0:9402".parse().unwrap()))
        );
        assert_eq!(
            parse_bind_address("127.0.0.1:9402"),
            Ok(Some("127.0.0.1:9402".parse().unwrap()))
        );
        assert!(parse_bind_address("nine").is_err());
    }
}
