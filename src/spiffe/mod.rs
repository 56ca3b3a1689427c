//! csi-driver-spiffe: SPIFFE X.509 SVIDs for pods, issued through cert-manager.
//!
//! [`id`] is the identity itself (`spiffe://<trust domain>/ns/<namespace>/sa/<service account>`);
//! [`approver`] is the controller that approves the CertificateRequests that ask for exactly the
//! identity of the service account that made them, and denies every other request to the SPIFFE
//! issuer (`cert-manager-csi-driver spiffe-approver`).

pub mod active_issuer;
pub mod approver;
pub mod id;
pub mod node;
pub mod runtime_config;

pub use active_issuer::ActiveIssuer;
