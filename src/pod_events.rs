//! What the driver tells a pod's owner, as Kubernetes Events on the Pod: `kubectl describe pod`
//! is where users look first when a mount hangs (upstream #127: mounts timed out with no visible
//! reason). The volume manager reports outcomes here without knowing whether a cluster exists;
//! without one ([`NoEvents`]) the logs carry the same facts.

use crate::attributes::PodInfo;

/// `Normal` or `Warning`, as `kubectl describe` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The `reason` of every Event the driver emits, in one place so they stay stable.
pub mod reason {
    pub const ISSUED: &str = "CertificateIssued";
    pub const RENEWED: &str = "CertificateRenewed";
    pub const DENIED: &str = "CertificateRequestDenied";
    pub const FAILED: &str = "CertificateRequestFailed";
    pub const TIMED_OUT: &str = "CertificateRequestTimedOut";
    pub const ISSUER_UNAVAILABLE: &str = "IssuerUnavailable";
    pub const RENEWAL_FAILED: &str = "RenewalFailed";
    /// The certificate waits on the pod: a readiness gate, its address, or the pod is going.
    pub const WAITING_FOR_POD: &str = "CertificateWaitsForPod";
    pub const UNKNOWN_ATTRIBUTE: &str = "UnknownAttribute";
    /// Accepted attributes that likely do not give what was meant (a duration under a second, a
    /// name over X.509's bounds, a volume that names nothing).
    pub const ATTRIBUTE_WARNING: &str = "AttributeWarning";
    /// A volume the Go driver mounted is now managed (renewed, unmounted) by this driver.
    pub const ADOPTED: &str = "VolumeAdopted";
    /// A volume the Go driver mounted has attributes this driver rejects: kept, not renewed.
    pub const ADOPTED_NOT_RENEWED: &str = "AdoptedVolumeNotRenewed";
}

/// One event about one pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodEvent {
    pub event_type: EventType,
    /// One of [`reason`].
    pub reason: &'static str,
    /// What the driver was doing: `Issue` or `Renew`.
    pub action: &'static str,
    /// The human-readable part; never holds secrets.
    pub message: String,
}

impl PodEvent {
    pub fn normal(reason: &'static str, action: &'static str, message: String) -> PodEvent {
        PodEvent {
            event_type: EventType::Normal,
            reason,
            action,
            message,
        }
    }

    pub fn warning(reason: &'static str, action: &'static str, message: String) -> PodEvent {
        PodEvent {
            event_type: EventType::Warning,
            reason,
            action,
            message,
        }
    }
}

/// Where events go. `record` must not block: it is called on the publish path.
pub trait PodEvents: Send + Sync {
    fn record(&self, pod: &PodInfo, event: PodEvent);

    /// Events given up on so far: not written after every retry, or dropped from a full queue.
    fn dropped(&self) -> u64 {
        0
    }

    /// Waits, at most `within`, until everything recorded so far is written (or given up on).
    /// Whether it all was.
    fn flush_within(
        &self,
        _within: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(std::future::ready(true))
    }
}

/// No cluster: events are dropped (everything in them is logged already).
#[derive(Debug, Default)]
pub struct NoEvents;

impl PodEvents for NoEvents {
    fn record(&self, _pod: &PodInfo, _event: PodEvent) {}
}
