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
use crate::pod_events::reason;

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

/// What caused an [`IssuerError`], kept for `Error::source` (logs, debugging); its text is
/// already part of the error's message wherever kubelet should see it.
pub type IssuerErrorCause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an issuer did not return a certificate. Each variant decides, in one place each, the gRPC
/// code kubelet sees ([`code`](Self::code)), the Event on the pod
/// ([`event_reason`](Self::event_reason)) and whether a retry continues with the same key
/// ([`keeps_key`](Self::keeps_key)). Kubelet shows the message (`Display`) in the pod's
/// `FailedMount` event and retries the publish with backoff whatever the code.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// The request itself is wrong (bad CSR, unknown issuer, an unreadable certificate back):
    /// retrying the same request will not help. Kubelet sees `InvalidArgument`.
    #[error("request rejected: {message}")]
    Rejected {
        message: String,
        #[source]
        source: Option<IssuerErrorCause>,
    },
    /// The issuer could not be reached, or failed in a way that may pass (API outage, the request
    /// deleted, no pod token yet). Kubelet sees `Unavailable`; its retry keeps the key.
    #[error("issuer unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<IssuerErrorCause>,
    },
    /// The approver denied the request; final for that request. Kubelet sees `PermissionDenied`.
    #[error("{message}")]
    Denied {
        message: String,
        #[source]
        source: Option<IssuerErrorCause>,
    },
    /// The issuer tried and failed; final for that request, a retry makes a new one. Kubelet
    /// sees `Unavailable`.
    #[error("{message}")]
    Failed {
        message: String,
        #[source]
        source: Option<IssuerErrorCause>,
    },
    /// Not signed before the publish deadline; a retry resumes waiting on the same request with
    /// the same key. Kubelet sees `DeadlineExceeded`.
    #[error("{message}")]
    TimedOut {
        message: String,
        #[source]
        source: Option<IssuerErrorCause>,
    },
    /// The issuer's own setup is broken (its CA files cannot be read or written, the driver's
    /// credentials or RBAC, missing CRDs): an operator must fix it. Kubelet sees
    /// `FailedPrecondition`.
    #[error("issuer is misconfigured: {message}")]
    Misconfigured {
        message: String,
        #[source]
        source: Option<IssuerErrorCause>,
    },
    /// The pod's namespace is being deleted, so the API server refuses anything new in it: not
    /// the issuer's fault nor the operator's, and no retry can succeed; the pod is going away.
    /// Kubelet sees `Unavailable`; no Event (the namespace refuses those too), no backoff.
    #[error("{message}")]
    NamespaceTerminating {
        message: String,
        #[source]
        source: Option<IssuerErrorCause>,
    },
}

impl IssuerError {
    // Constructors: the variant with its message and no source yet (see `with_source`).

    pub fn rejected(message: impl Into<String>) -> IssuerError {
        IssuerError::Rejected {
            message: message.into(),
            source: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> IssuerError {
        IssuerError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    pub fn denied(message: impl Into<String>) -> IssuerError {
        IssuerError::Denied {
            message: message.into(),
            source: None,
        }
    }

    pub fn failed(message: impl Into<String>) -> IssuerError {
        IssuerError::Failed {
            message: message.into(),
            source: None,
        }
    }

    pub fn timed_out(message: impl Into<String>) -> IssuerError {
        IssuerError::TimedOut {
            message: message.into(),
            source: None,
        }
    }

    pub fn misconfigured(message: impl Into<String>) -> IssuerError {
        IssuerError::Misconfigured {
            message: message.into(),
            source: None,
        }
    }

    pub fn namespace_terminating(message: impl Into<String>) -> IssuerError {
        IssuerError::NamespaceTerminating {
            message: message.into(),
            source: None,
        }
    }

    /// Keeps `cause` as the error's source. The message is left as it is: callers already say
    /// the cause there in the words kubelet should show.
    pub fn with_source(mut self, cause: impl Into<IssuerErrorCause>) -> IssuerError {
        let (IssuerError::Rejected { source, .. }
        | IssuerError::Unavailable { source, .. }
        | IssuerError::Denied { source, .. }
        | IssuerError::Failed { source, .. }
        | IssuerError::TimedOut { source, .. }
        | IssuerError::Misconfigured { source, .. }
        | IssuerError::NamespaceTerminating { source, .. }) = &mut self;
        *source = Some(cause.into());
        self
    }

    /// The gRPC code a publish that failed this way returns.
    pub fn code(&self) -> tonic::Code {
        match self {
            IssuerError::Rejected { .. } => tonic::Code::InvalidArgument,
            IssuerError::Unavailable { .. }
            | IssuerError::Failed { .. }
            | IssuerError::NamespaceTerminating { .. } => tonic::Code::Unavailable,
            IssuerError::Denied { .. } => tonic::Code::PermissionDenied,
            IssuerError::TimedOut { .. } => tonic::Code::DeadlineExceeded,
            IssuerError::Misconfigured { .. } => tonic::Code::FailedPrecondition,
        }
    }

    /// The reason of the Warning Event the driver puts on the pod, if it reports this failure
    /// itself; `None`: on a first publish kubelet's own `FailedMount` event carries it.
    pub fn event_reason(&self) -> Option<&'static str> {
        match self {
            IssuerError::Denied { .. } => Some(reason::DENIED),
            IssuerError::Failed { .. } => Some(reason::FAILED),
            IssuerError::TimedOut { .. } => Some(reason::TIMED_OUT),
            IssuerError::Unavailable { .. } => Some(reason::ISSUER_UNAVAILABLE),
            IssuerError::Rejected { .. }
            | IssuerError::Misconfigured { .. }
            | IssuerError::NamespaceTerminating { .. } => None,
        }
    }

    /// Whether the next attempt may continue with this attempt's key and CSR: the request may
    /// still be signed (timed out), or was never answered (unavailable). Denied, failed or
    /// rejected requests are final, so their key is never used again.
    pub fn keeps_key(&self) -> bool {
        matches!(
            self,
            IssuerError::TimedOut { .. } | IssuerError::Unavailable { .. }
        )
    }
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

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn each_variant_has_one_code_reason_and_key_policy() {
        // One row per variant: error, code, event reason, keeps the key.
        #[rustfmt::skip]
        let table = [
            (IssuerError::rejected("m"), Code::InvalidArgument, None, false),
            (IssuerError::unavailable("m"), Code::Unavailable, Some(reason::ISSUER_UNAVAILABLE), true),
            (IssuerError::denied("m"), Code::PermissionDenied, Some(reason::DENIED), false),
            (IssuerError::failed("m"), Code::Unavailable, Some(reason::FAILED), false),
            (IssuerError::timed_out("m"), Code::DeadlineExceeded, Some(reason::TIMED_OUT), true),
            (IssuerError::misconfigured("m"), Code::FailedPrecondition, None, false),
            (IssuerError::namespace_terminating("m"), Code::Unavailable, None, false),
        ];
        for (error, code, reason, keeps_key) in table {
            assert_eq!(error.code(), code, "{error:?}");
            assert_eq!(error.event_reason(), reason, "{error:?}");
            assert_eq!(error.keeps_key(), keeps_key, "{error:?}");
        }
    }

    #[test]
    fn a_source_is_kept_and_not_repeated_in_the_message() {
        use std::error::Error as _;
        let cause = std::io::Error::other("disk on fire");
        let error = IssuerError::misconfigured(format!("/ca: {cause}")).with_source(cause);
        assert_eq!(
            error.to_string(),
            "issuer is misconfigured: /ca: disk on fire"
        );
        assert_eq!(error.source().unwrap().to_string(), "disk on fire");
        assert!(IssuerError::denied("no").source().is_none());
        assert_eq!(
            IssuerError::rejected("bad CSR").to_string(),
            "request rejected: bad CSR"
        );
        assert_eq!(
            IssuerError::unavailable("down").to_string(),
            "issuer unavailable: down"
        );
        assert_eq!(IssuerError::timed_out("late").to_string(), "late");
    }
}
