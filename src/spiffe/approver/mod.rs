//! `cert-manager-csi-driver spiffe-approver`: approves the CertificateRequests csi-driver-spiffe
//! makes and denies every other request to its issuer.
//!
//! [`evaluate`] decides (pure); the controller carries decisions out.

pub mod evaluate;
