//! Step 1 of a volume's path: the CSI gRPC surface kubelet talks to: Identity and Node over a unix socket. Thin: decode the
//! call, hand it to the [`crate::volume::VolumeManager`], map the result to a status code.

pub mod client;
pub mod fields;
pub mod identity;
pub mod node;
pub mod server;

/// Code generated from `proto/csi.proto` (package `csi.v1`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("csi.v1");
}
