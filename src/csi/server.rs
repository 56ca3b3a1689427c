//! Serving gRPC on the CSI unix socket.

use std::fs;
use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::UnixListener;
use tokio::time::Instant;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::codegen::http;

use super::identity::IdentityService;
use super::node::NodeService;
use super::proto::identity_server::IdentityServer;
use super::proto::node_server::NodeServer;

/// Socket mode: owner and group (kubelet and the registrar run as root), nobody else.
pub const SOCKET_MODE: u32 = 0o660;

/// `unix:///csi/csi.sock`, `unix:/csi/csi.sock` or a plain absolute path → the socket path.
/// Upstream's manifests write `unix://plugin/csi.sock`, a path relative to the working
/// directory (`/` in the container); that form is accepted and resolved the same way.
pub fn parse_endpoint(endpoint: &str) -> Result<PathBuf, String> {
    if endpoint.contains("://") && !endpoint.starts_with("unix://") {
        return Err(format!(
            "endpoint {endpoint:?}: only unix sockets are supported (unix:///path)"
        ));
    }
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .unwrap_or(endpoint);
    if path.is_empty() {
        return Err(format!("endpoint {endpoint:?} names no socket path"));
    }
    if path.starts_with('/') {
        return Ok(PathBuf::from(path));
    }
    std::env::current_dir()
        .map(|dir| dir.join(path))
        .map_err(|e| {
            format!("endpoint {endpoint:?} is relative and the working directory is unknown: {e}")
        })
}

/// Binds the socket so that it is never reachable with a looser mode: it is created inside a
/// private (0700) directory, given its final mode there, then renamed into place. A stale socket
/// from a previous run is removed first; any other file at the path is an error.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent)?;
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let private = tempfile::Builder::new()
        .prefix(".csi-bind")
        .tempdir_in(parent)?;
    let staged = private.path().join("csi.sock");
    let listener = std::os::unix::net::UnixListener::bind(&staged)?;
    fs::set_permissions(&staged, fs::Permissions::from_mode(SOCKET_MODE))?;
    fs::rename(&staged, path)?;
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

/// Serves Identity and Node on `listener` until `shutdown` completes, counting every call.
pub async fn serve(
    listener: UnixListener,
    identity: IdentityService,
    node: NodeService,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .layer(tower::layer::layer_fn(move |inner| CallMetrics {
            inner,
            metrics: Arc::clone(&metrics),
        }))
        .add_service(IdentityServer::new(identity))
        .add_service(NodeServer::new(node))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
}

/// Counts each gRPC call by method and status code, with its latency. A failed unary call is a
/// trailers-only response, whose `grpc-status` is in the headers; a success carries none there.
#[derive(Clone)]
struct CallMetrics<S> {
    inner: S,
    metrics: Arc<crate::metrics::Metrics>,
}

impl<S, B, R> tower::Service<http::Request<B>> for CallMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mut call = CallRecord {
            method: method_label(request.uri().path()),
            started: Instant::now(),
            metrics: Arc::clone(&self.metrics),
            done: false,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            if let Ok(response) = &response {
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok()?.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32);
                call.finish(code);
            }
            response
        })
    }
}

/// The CSI methods this driver serves; anything else is counted as `unknown`, so a client
/// cannot create series at will.
const METHODS: &[&str] = &[
    "GetPluginInfo",
    "GetPluginCapabilities",
    "Probe",
    "NodeStageVolume",
    "NodeUnstageVolume",
    "NodePublishVolume",
    "NodeUnpublishVolume",
    "NodeGetVolumeStats",
    "NodeExpandVolume",
    "NodeGetCapabilities",
    "NodeGetInfo",
];

fn method_label(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or_default();
    METHODS
        .iter()
        .find(|method| **method == name)
        .copied()
        .unwrap_or("unknown")
}

/// One call being counted. Dropped before it finished (kubelet gave up and the connection
/// went away), it is counted as `Cancelled`, so the slowest calls are not the ones missing.
struct CallRecord {
    method: &'static str,
    started: Instant,
    metrics: Arc<crate::metrics::Metrics>,
    done: bool,
}

impl CallRecord {
    fn finish(&mut self, code: tonic::Code) {
        self.done = true;
        self.metrics
            .grpc_call(self.method, code, self.started.elapsed());
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        if !self.done {
            self.metrics
                .grpc_call(self.method, tonic::Code::Cancelled, self.started.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("unix:///plugin/csi.sock").unwrap(),
            Path::new("/plugin/csi.sock")
        );
        assert_eq!(
            parse_endpoint("unix:/csi/csi.sock").unwrap(),
            Path::new("/csi/csi.sock")
        );
        assert_eq!(
            parse_endpoint("/csi/csi.sock").unwrap(),
            Path::new("/csi/csi.sock")
        );
        assert!(parse_endpoint("tcp://127.0.0.1:10000").is_err());
        assert!(parse_endpoint("unix://").is_err());
        assert_eq!(
            method_label("/csi.v1.Node/NodePublishVolume"),
            "NodePublishVolume"
        );
        assert_eq!(method_label("/csi.v1.Node/Made-Up"), "unknown");
        // Upstream's form: relative to the working directory.
        assert_eq!(
            parse_endpoint("unix://plugin/csi.sock").unwrap(),
            std::env::current_dir().unwrap().join("plugin/csi.sock")
        );
    }

    #[tokio::test]
    async fn socket_is_not_world_accessible_and_stale_sockets_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("csi.sock");
        let first = bind(&path).unwrap();
        drop(first);
        let _second = bind(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no staging leftovers"
        );
        fs::remove_file(&path).unwrap();
        fs::write(&path, b"not a socket").unwrap();
        assert!(bind(&path).is_err());
    }
}
