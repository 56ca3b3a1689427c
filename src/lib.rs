//! cert-manager CSI driver: per-pod TLS certificates as CSI ephemeral inline volumes.
//!
//! The path of one volume through the code, one module per step:
//!
//! 1. [`csi`] — kubelet's gRPC calls over the unix socket (thin);
//! 2. [`attributes`] — the volume context → a validated [`attributes::CertRequestSpec`];
//! 3. [`keys`] — the private key, generated on the node, and its CSR;
//! 4. [`issuer`] — the CSR signed (embedded CA, or cert-manager in a cluster);
//! 5. [`volume`] — the files swapped atomically into the volume's own tmpfs;
//! 6. [`renewal`] — one deadline queue renewing every certificate before it expires.
//!
//! Alongside: [`kubernetes`] (the API connection, pod tokens and pod Events used by the
//! cert-manager backend) and [`pod_events`] (what the driver reports on the pod).
//!
//! [`driver`] wires these together; [`cli`] and [`demo`] are the binary's two faces.

pub mod attributes;
pub mod certificate;
pub mod cli;
pub mod csi;
pub mod demo;
pub mod driver;
pub mod endpoints;
pub mod issuer;
pub mod keys;
pub mod kubernetes;
pub mod memory;
pub mod metrics;
pub mod pod_events;
pub mod pod_gates;
pub mod renewal;
pub mod spiffe;
pub mod status;
pub mod volume;
pub mod x509;
