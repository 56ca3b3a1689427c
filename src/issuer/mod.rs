//! Step 4 of a volume's path: getting a CSR signed. One interface, two backends: the cert-manager
//! `CertificateRequest` backend for clusters, and [`local_ca::LocalCa`], an embedded CA for running
//! without one.

pub mod cert_manager;
pub mod local_ca;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::attributes::{IssuerRef, KeyUsage, PodInfo};
use crate::kubernetes::ServiceAccountToken;

/// Everything an issuer needs to sign one volume's certificate. Mirrors the spec of a
/// cert-manager `CertificateRequest`.
#[derive(Debug, Clone)]
pub struct IssueOrder {
    pub volume_id: String,
    pub pod: PodInfo,
    pub issuer: IssuerRef,
    pub csr_pem: String,
    pub duration: Duration,
    pub is_ca: bool,
    pub usages: Vec<KeyUsage>,
    pub annotations: BTreeMap<String, String>,
    /// The pod's service-account token, when requests are made as the pod
    /// (`--use-token-request`). Held in memory only.
    pub token: Option<ServiceAccountToken>,
    /// This attempt continues one that gave up waiting (same key, same CSR): a request the
    /// backend already made for it may be taken up again even if it has meanwhile been issued.
    pub resuming: bool,
}

/// A signed certificate as an issuer returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The CertificateRequest that carried it (cert-manager backend), for metrics and status.
    pub certificate_request: Option<String>,
    /// Leaf first, then any intermediates.
    pub chain_pem: String,
    /// The CA that signed the chain, for the pod's trust bundle.
    pub ca_pem: String,
}

/// Why an issuer did not return a certificate. The variants decide the gRPC code kubelet sees.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// The request itself is wrong (bad CSR, unknown issuer): retrying will not help.
    #[error("request rejected: {0}")]
    Rejected(String),
    /// The issuer could not be reached or failed in a way that may pass.
    #[error("issuer unavailable: {0}")]
    Unavailable(String),
    /// The approver denied the request; final for that request.
    #[error("{0}")]
    Denied(String),
    /// The issuer tried and failed; final for that request.
    #[error("{0}")]
    Failed(String),
    /// Not signed before the publish deadline; a retry resumes waiting.
    #[error("{0}")]
    TimedOut(String),
    /// The issuer's own state is broken (e.g. its CA files cannot be read or written).
    #[error("issuer is misconfigured: {0}")]
    Misconfigured(String),
}

/// The future an [`Issuer`] returns; boxed so backends can be chosen at run time.
pub type IssueFuture<'a> =
    Pin<Box<dyn Future<Output = Result<IssuedCertificate, IssuerError>> + Send + 'a>>;

/// Signs certificate requests.
pub trait Issuer: Send + Sync {
    /// Short name for logs (`local-ca`, `cert-manager`).
    fn backend_name(&self) -> &'static str;

    /// Whether signing happens right here, as CPU work on this node (the embedded CA), rather than
    /// elsewhere while this node waits.
    fn signs_on_this_node(&self) -> bool {
        false
    }

    /// Whether requests must carry the pod's service-account token (`--use-token-request`).
    fn needs_pod_token(&self) -> bool {
        false
    }

    /// Whether the backend can issue now; `Err` says why not (for `/readyz`).
    fn readiness(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async { Ok(()) })
    }

    /// CertificateRequests this node's driver currently knows of (for metrics).
    fn managed_requests(&self) -> usize {
        0
    }

    /// Gets the request signed, waiting as long as the backend needs.
    fn issue<'a>(&'a self, order: &'a IssueOrder) -> IssueFuture<'a>;

    /// The volume was unpublished (`interrupted`: while an issuance for it was in progress):
    /// withdraw whatever the backend still has pending for it (best effort, in the background: it
    /// must never hold up the unpublish).
    fn volume_gone(&self, _volume_id: &str, _namespace: &str, _interrupted: bool) {}
}
