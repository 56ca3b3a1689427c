//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics, so that of
//! several approver replicas exactly one writes conditions.
//!
//! Written here rather than taken from a crate: `kube` has no leader election, and the maintained
//! crate that fits kube 5 (`kube-lease-manager` 0.13) takes the lock with a server-side-apply
//! patch and relies on field-manager conflicts for mutual exclusion, not on the Lease's
//! resourceVersion as client-go (and so upstream's controller-runtime) does; it also needs a newer
//! Rust than this workspace's floor. What client-go does is small:
//!
//! - every `retry_period`, read the Lease; if it is free (no holder), ours, or its holder has not
//!   renewed within `leaseDurationSeconds` *as observed locally* (the time we last saw the record
//!   change, never the remote timestamps, so clock skew between nodes does not matter), write it
//!   with us as holder: a PUT carrying the resourceVersion read, so of two replicas racing, the
//!   API server lets one win (409 Conflict for the other);
//! - taking it over from someone else sets `acquireTime` and counts `leaseTransitions` up; renewing
//!   only moves `renewTime`;
//! - a leader that has not renewed for `renew_deadline` (shorter than the lease duration) stops
//!   leading at once, before any other replica may take over;
//! - on shutdown the leader hands the Lease back (empty holder), so a successor need not wait.
//!
//! Unlike controller-runtime, which exits the process when leadership is lost, a replica that
//! loses it stays up (ready, watching) and tries again: Kubernetes need not restart it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::kubernetes::{KubeConnection, api_status, describe_error};

/// How the election runs (controller-runtime's defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's `holderIdentity`: unique per process.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// Checks the three durations fit together as client-go requires.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease_duration <= self.renew_deadline {
            return Err(format!(
                "--leader-election-lease-duration ({:?}) must be longer than --leader-election-renew-deadline ({:?})",
                self.lease_duration, self.renew_deadline
            ));
        }
        if self.renew_deadline <= self.retry_period {
            return Err(format!(
                "--leader-election-renew-deadline ({:?}) must be longer than --leader-election-retry-period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        if self.retry_period.is_zero() || self.lease_duration.as_secs() == 0 {
            return Err(
                "--leader-election-retry-period must be positive and --leader-election-lease-duration at least 1s"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A unique holder identity, as controller-runtime makes one: `<hostname>_<random>`.
pub fn default_identity() -> String {
    // The pod's name, in a pod.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "spiffe-approver".to_string());
    let suffix: String = (0..16)
        .map(|_| char::from(b"0123456789abcdef"[fastrand::usize(..16)]))
        .collect();
    format!("{host}_{suffix}")
}

/// One replica's part in the election.
pub struct LeaderElector {
    connection: KubeConnection,
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The holder record last read and when it was first seen (client-go's observedRecord and
    /// observedTime).
    observed: Option<(LeaseSpec, Instant)>,
    /// When this replica last wrote the Lease as its holder.
    last_renewed: Option<Instant>,
}

/// The result of one try.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease (acquired or renewed).
    Held,
    /// Someone else holds a valid lease.
    HeldByOther(String),
    /// The API server could not be asked, or another replica won a race.
    Failed(String),
}

impl LeaderElector {
    pub fn new(connection: KubeConnection, settings: LeaseSettings) -> LeaderElector {
        let api = Api::namespaced(connection.client(), &settings.namespace);
        LeaderElector {
            connection,
            api,
            settings,
            observed: None,
            last_renewed: None,
        }
    }

    /// Runs the election until dropped, publishing whether this replica leads on `leading`.
    pub async fn run(mut self, leading: watch::Sender<bool>) {
        loop {
            let attempt = self.try_acquire_or_renew().await;
            let now = Instant::now();
            let was_leading = *leading.borrow();
            let is_leading = match &attempt {
                Attempt::Held => true,
                Attempt::HeldByOther(_) => false,
                // A failed renewal keeps leadership only until the renew deadline.
                Attempt::Failed(_) => {
                    was_leading
                        && self
                            .last_renewed
                            .is_some_and(|at| now.duration_since(at) < self.settings.renew_deadline)
                }
            };
            match (&attempt, was_leading, is_leading) {
                (_, false, true) => tracing::info!(
                    lease = %self.lease_ref(),
                    identity = %self.settings.identity,
                    "became the leader: approving and denying CertificateRequests"
                ),
                (Attempt::HeldByOther(holder), true, false) => tracing::warn!(
                    lease = %self.lease_ref(), %holder,
                    "lost leadership to another replica: no longer writing conditions"
                ),
                (_, true, false) => tracing::error!(
                    lease = %self.lease_ref(),
                    deadline = ?self.settings.renew_deadline,
                    "could not renew the lease within the renew deadline: no longer writing conditions"
                ),
                (Attempt::Failed(why), _, _) => {
                    tracing::debug!(lease = %self.lease_ref(), %why, "lease not acquired")
                }
                _ => {}
            }
            leading.send_if_modified(|current| {
                let changed = *current != is_leading;
                *current = is_leading;
                changed
            });
            // client-go's jitter: a little extra, so that replicas do not retry in lockstep.
            let jitter = self.settings.retry_period.mul_f64(fastrand::f64() * 0.2);
            tokio::time::sleep(self.settings.retry_period + jitter).await;
        }
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.settings.namespace, self.settings.name)
    }

    async fn try_acquire_or_renew(&mut self) -> Attempt {
        let now = MicroTime(Timestamp::now());
        let duration_seconds =
            i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let identity = self.settings.identity.clone();
        self.connection.throttle().await;
        let existing = match self.api.get_opt(&self.settings.name).await {
            Ok(existing) => existing,
            Err(error) => return Attempt::Failed(describe_error(&error)),
        };
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(identity),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            self.connection.throttle().await;
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => self.held(created),
                // Another replica created it first (409 AlreadyExists): its turn.
                Err(error) => Attempt::Failed(describe_error(&error)),
            };
        };
        let record = lease.spec.clone().unwrap_or_default();
        let observed_at = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((record.clone(), at));
                at
            }
        };
        let holder = record.holder_identity.clone().unwrap_or_default();
        let ours = holder == identity;
        let holder_duration = Duration::from_secs(
            u64::try_from(record.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        );
        if !holder.is_empty() && !ours && observed_at.elapsed() < holder_duration {
            return Attempt::HeldByOther(holder);
        }
        let transitions = record.lease_transitions.unwrap_or(0);
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(identity),
            lease_duration_seconds: Some(duration_seconds),
            acquire_time: if ours {
                record.acquire_time.clone()
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if ours {
                transitions
            } else {
                transitions.saturating_add(1)
            }),
            ..record
        });
        self.connection.throttle().await;
        // The PUT carries the resourceVersion read: if anyone wrote the Lease since, the API
        // server answers 409 Conflict and this try fails.
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(replaced) => self.held(replaced),
            Err(error) => Attempt::Failed(describe_error(&error)),
        }
    }

    fn held(&mut self, lease: Lease) -> Attempt {
        let now = Instant::now();
        self.observed = Some((lease.spec.unwrap_or_default(), now));
        self.last_renewed = Some(now);
        Attempt::Held
    }

    /// Hands the Lease back if this replica holds it (client-go's ReleaseOnCancel): an empty
    /// holder and a one-second duration, so the next replica takes over at its next try.
    pub async fn release(connection: &KubeConnection, settings: &LeaseSettings) {
        let api: Api<Lease> = Api::namespaced(connection.client(), &settings.namespace);
        let Ok(Some(mut lease)) = api.get_opt(&settings.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
            return;
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = Some(String::new());
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        match api
            .replace(&settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(lease = %format!("{}/{}", settings.namespace, settings.name), "released the lease")
            }
            Err(error) if api_status(&error) == Some(409) => {}
            Err(error) => {
                tracing::warn!(error = %describe_error(&error), "could not release the lease")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(lease: u64, renew: u64, retry: u64) -> LeaseSettings {
        LeaseSettings {
            namespace: "cert-manager".into(),
            name: "spiffe.csi.cert-manager.io".into(),
            identity: default_identity(),
            lease_duration: Duration::from_millis(lease),
            renew_deadline: Duration::from_millis(renew),
            retry_period: Duration::from_millis(retry),
        }
    }

    #[test]
    fn durations_must_nest_as_in_client_go() {
        assert_eq!(settings(15_000, 10_000, 2_000).validate(), Ok(()));
        assert!(settings(10_000, 10_000, 2_000).validate().is_err());
        assert!(settings(15_000, 2_000, 2_000).validate().is_err());
        assert!(settings(900, 600, 100).validate().is_err());
    }

    #[test]
    fn identities_are_unique_per_process() {
        let (a, b) = (default_identity(), default_identity());
        assert_ne!(a, b);
        assert!(a.contains('_'), "{a}");
    }
}
