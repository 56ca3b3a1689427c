//! A CSI client over the unix socket, as kubelet connects: used by the demo, tests and benchmarks.

use std::path::Path;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::proto::identity_client::IdentityClient;
use super::proto::node_client::NodeClient;

/// A connected client for both services.
#[derive(Clone)]
pub struct CsiClient {
    pub identity: IdentityClient<Channel>,
    pub node: NodeClient<Channel>,
}

/// Connects to the driver's socket.
pub async fn connect(socket: &Path) -> Result<CsiClient, tonic::transport::Error> {
    let socket = socket.to_path_buf();
    // The URI is required by the API but unused: every connection goes to the socket.
    let channel = Endpoint::from_static("http://csi.localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await?;
    Ok(CsiClient {
        identity: IdentityClient::new(channel.clone()),
        node: NodeClient::new(channel),
    })
}
