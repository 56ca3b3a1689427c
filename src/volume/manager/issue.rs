//! One issuance, as the first publish and every renewal run it: a key and CSR (or the pending
//! ones), the issuer's signature, the file set swapped in. [`VolumeManager::settle`] then books
//! the outcome in one place for both: the volume's phase, its next renewal or retry (with
//! backoff), events, metrics, logs and the progress file.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::gates::Verdict;
use super::publish::effective_group;
use super::volume::{ManagedVolume, PendingKey, Phase, Retry};
use super::{Cancellation, NodePermit, VolumeError, VolumeManager};
use crate::attributes::{CertRequestSpec, KeyAlgorithm};
use crate::certificate::{CertificateSummary, inspect_leaf};
use crate::issuer::{IssueOrder, IssuerError};
use crate::keys::pool::{KeyKind, KeyPool};
use crate::keys::{self, KeyError, PrivateKey};
use crate::volume::files::{self, FileToWrite, WriteOutcome};

/// Why an issuance runs, for logs, events and what happens after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// The first issuance, with kubelet waiting for the answer: a failure goes back to kubelet,
    /// which retries the call itself.
    Publish,
    /// A first issuance kubelet is not waiting for (`--continue-on-not-ready`, or a volume whose
    /// publish a restart cut short): the driver retries it with backoff.
    Issue,
    /// Replacing the certificate in place; failures retry with backoff, the old files stay.
    Renew,
}

impl Action {
    /// The Event `action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish | Action::Issue => "Issue",
            Action::Renew => "Renew",
        }
    }
}

/// A certificate written into the volume.
pub(super) struct Issued {
    pub certificate: CertificateSummary,
    /// The CertificateRequest that carried it (cert-manager backend).
    pub certificate_request: Option<String>,
}

/// An issuance that did not end in the volume.
pub(super) struct Failure {
    pub error: VolumeError,
    /// The key of a request the issuer still has pending (it timed out or could not be reached):
    /// the next attempt presents the same CSR.
    pub pending_key: Option<Box<PendingKey>>,
}

impl<E: Into<VolumeError>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure {
            error: error.into(),
            pending_key: None,
        }
    }
}

impl VolumeManager {
    /// Makes a key and CSR, gets it signed, and swaps the files in. The old files stay until the
    /// complete new set is written. `permit` is a node-work permit the caller already holds; it is
    /// let go while waiting on a remote issuer (and not taken again once it answers), and kept
    /// through a local one, whose signing is node work itself (keeping it lets a burst of volumes
    /// finish in arrival order).
    /// Gives up as soon as `cancellation` says the volume is being unpublished: the pending
    /// request is then left to the unpublish to clean up.
    pub(super) async fn issue_and_write(
        &self,
        volume: &mut ManagedVolume,
        action: Action,
        permit: NodePermit<'_>,
        cancellation: &mut Cancellation,
    ) -> Result<Issued, Failure> {
        if cancellation.is_requested() {
            return Err(VolumeError::Cancelled(volume.id().to_string()).into());
        }
        // A resting volume's attributes come back from its record.
        if self.load_attributes(volume)?.is_none() {
            return Err(VolumeError::Internal(format!(
                "volume {} has rejected attributes and is never issued",
                volume.id()
            ))
            .into());
        }
        // The pod first (readiness gates, its addresses): no key is made for a pod not ready.
        let pod_ips = match self.gate_verdict(volume, action) {
            Verdict::Issue(pod_ips) => {
                // Whatever happens next (the issuer may fail) is no longer the pod's doing.
                self.end_wait(volume);
                pod_ips
            }
            Verdict::Wait { on, pod_gone } => {
                return Err(VolumeError::Waiting {
                    volume_id: volume.id().to_string(),
                    on,
                    pod_gone,
                }
                .into());
            }
        };
        let Some(attributes) = volume.valid_attributes() else {
            return Err(VolumeError::Internal(format!(
                "volume {} has rejected attributes and is never issued",
                volume.id()
            ))
            .into());
        };
        let spec = attributes.spec.with_pod_ips(&pod_ips);
        let pod = attributes.pod.clone();
        let files_dir = volume.files_dir();
        let volume_id = volume.id().to_string();
        let (key, csr_pem, resuming) = match volume.take_pending_key(&spec) {
            Some(pending) => (pending.key, pending.csr_pem, true),
            None => {
                let reused = if spec.reuse_private_key {
                    read_reusable_key(&files_dir, &spec.files.private_key, &volume_id)
                } else {
                    None
                };
                // A pod is waiting for a first issuance: it takes a finished key if one is ready.
                // A renewal makes its own (see `keys::pool`).
                let pool = (action != Action::Renew).then_some(&self.config.key_pool);
                let (key, csr_pem) = make_key_and_csr(&spec, reused, pool).await?;
                (key, csr_pem, false)
            }
        };

        self.metrics.issue_attempted(&volume_id);
        let order = IssueOrder {
            volume_id: volume_id.clone(),
            pod,
            issuer: spec.issuer.clone(),
            csr_pem,
            duration: spec.duration,
            is_ca: spec.is_ca,
            usages: spec.usages.clone(),
            annotations: spec.annotations.clone(),
            token: volume.token.clone(),
            resuming,
        };
        // After a remote issuer answers, what is left (checking and writing a few small files)
        // is too light to queue for a permit behind other volumes' key generation: a volume
        // whose certificate has arrived finishes at once.
        let _permit = if self.issuer.signs_on_this_node() {
            Some(permit)
        } else {
            drop(permit);
            None
        };
        let outcome = tokio::select! {
            outcome = self.issuer.issue(&order) => outcome,
            () = cancellation.requested() => {
                return Err(VolumeError::Cancelled(volume_id).into());
            }
        };
        let issued = match outcome {
            Ok(issued) => issued,
            Err(error) => {
                let pending_key = error
                    .keeps_key()
                    .then(|| PendingKey::new(&spec, key, order.csr_pem));
                return Err(Failure {
                    error: error.into(),
                    pending_key,
                });
            }
        };
        let certificate = inspect_leaf(&issued.chain_pem)
            .map(|info| CertificateSummary::from(&info))
            .map_err(|e| {
                IssuerError::rejected(format!("issuer returned an unreadable certificate: {e}"))
                    .with_source(e)
            })?;

        let key_pem = key.to_pem(spec.key.encoding)?;
        let group = effective_group(spec.fs_group, volume.record.volume_mount_group.as_deref());
        // Keystores and truststores go into the same set, so one `..data` swap replaces the
        // key, the chain and the trust set together.
        let stores = keys::keystores::build(&spec, &key, &issued.chain_pem, &issued.ca_pem)?;
        let mut file_set = vec![
            FileToWrite {
                name: &spec.files.private_key,
                contents: key_pem.as_bytes(),
                secret: true,
            },
            FileToWrite {
                name: &spec.files.certificate,
                contents: issued.chain_pem.as_bytes(),
                secret: false,
            },
            FileToWrite {
                name: &spec.files.ca,
                contents: issued.ca_pem.as_bytes(),
                secret: false,
            },
        ];
        file_set.extend(stores.iter().map(|store| FileToWrite {
            name: &store.name,
            contents: &store.contents,
            secret: store.secret,
        }));
        // Key material goes to memory or nowhere.
        volume
            .layout
            .check_in_memory(volume.target(), self.mounter.as_ref())
            .map_err(VolumeError::io(format!("checking {}", files_dir.display())))?;
        // This driver's tmpfs has a size cap; the new set is written beside the current one. A
        // volume it publishes in the Go driver's shared tmpfs is held to the same cap here (the
        // file system does not enforce it there); an adopted one never had a cap.
        let too_large = |needed: u64| VolumeError::TooLarge {
            volume_id: volume_id.clone(),
            needed,
            limit: self.config.volume_size_bytes,
        };
        if !volume.layout.is_adopted() {
            let needed = files::space_needed(&files_dir, &file_set);
            if needed > self.config.volume_size_bytes {
                return Err(too_large(needed).into());
            }
        }
        let outcome =
            files::write_file_set(&files_dir, &file_set, group, volume.layout.file_modes())
                .map_err(|error| {
                    if error.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
                        too_large(files::space_needed(&files_dir, &file_set))
                    } else {
                        VolumeError::Io {
                            context: format!("writing files into {}", files_dir.display()),
                            source: error,
                        }
                    }
                })?;
        if outcome == WriteOutcome::Unchanged {
            tracing::debug!(%volume_id, "files unchanged");
        }
        volume
            .layout
            .after_write(group, self.renewal_time_of(&spec, &certificate));
        self.record_request_metrics(volume, issued.certificate_request.clone(), &certificate);
        Ok(Issued {
            certificate,
            certificate_request: issued.certificate_request,
        })
    }

    /// Books an issuance's outcome. On success the volume is `Ready` and its renewal scheduled;
    /// on failure it keeps whatever certificate it has, remembers the failure (and a pending
    /// key), and — unless kubelet is waiting for the answer and retries itself — is retried with
    /// backoff.
    pub(super) fn settle(
        &self,
        volume: &mut ManagedVolume,
        action: Action,
        outcome: Result<Issued, Failure>,
    ) -> Result<(), VolumeError> {
        match outcome {
            Ok(issued) => {
                if action == Action::Renew {
                    self.metrics.renewal_finished(true);
                }
                self.report_success(volume, action, &issued.certificate);
                let spec = volume.valid_attributes().map(|attributes| &attributes.spec);
                tracing::info!(
                    volume_id = %volume.id(),
                    pod = %volume.pod(),
                    issuer = %spec.map_or("", |spec| spec.issuer.name.as_str()),
                    serial = %issued.certificate.serial,
                    adopted = volume.layout.is_adopted(),
                    "{}",
                    match action {
                        Action::Renew => "certificate renewed",
                        Action::Publish | Action::Issue => "certificate issued and mounted",
                    }
                );
                self.schedule_renewal_after_issuance(volume, &issued.certificate);
                self.end_wait(volume);
                volume.certificate_request = issued.certificate_request;
                self.issuer_is_back(volume);
                volume.phase = Phase::Ready(issued.certificate);
                self.clear_progress(volume);
                volume.rest();
                Ok(())
            }
            // Being unpublished: nothing to report, retry or remember.
            Err(Failure {
                error: error @ VolumeError::Cancelled(_),
                ..
            }) => Err(error),
            // Not a failure: the pod is not ready for it yet (or is going).
            Err(Failure {
                error: VolumeError::Waiting { on, pod_gone, .. },
                ..
            }) => {
                self.book_wait(volume, on.clone(), pod_gone);
                Err(VolumeError::Waiting {
                    volume_id: volume.id().to_string(),
                    on,
                    pod_gone,
                })
            }
            // Not a failure either: the pod's namespace is being deleted, and the pod with it.
            Err(Failure {
                error: VolumeError::Issuer(IssuerError::NamespaceTerminating { message, .. }),
                ..
            }) => {
                self.book_wait(volume, message.clone(), true);
                Err(VolumeError::Waiting {
                    volume_id: volume.id().to_string(),
                    on: message,
                    pod_gone: true,
                })
            }
            Err(Failure { error, pending_key }) => {
                if action != Action::Publish && waits_on_issuer(&error) {
                    self.wait_on_issuer(volume);
                }
                let retry = Retry {
                    failures: volume.failures() + 1,
                    last_error: Some(error.to_string()),
                    pending_key,
                };
                volume.phase = match volume.certificate().cloned() {
                    Some(certificate) => Phase::Failing(certificate, Box::new(retry)),
                    None => Phase::Issuing(Box::new(retry)),
                };
                self.report_failure(volume, action, &error);
                if action != Action::Publish {
                    self.retry_later(volume);
                }
                Err(error)
            }
        }
    }

    /// Notes a volume whose attempt failed because its issuer could not be reached.
    fn wait_on_issuer(&self, volume: &ManagedVolume) {
        if let Some(issuer) = issuer_key(volume) {
            self.waiting_on_issuer
                .lock()
                .entry(issuer)
                .or_default()
                .insert(volume.id().to_string());
        }
    }

    /// An issuance through `volume`'s issuer succeeded: the volumes that failed to reach the
    /// same issuer are retried now (spread over a second) instead of after their backoff, which
    /// may have grown to minutes while it was away. Each is pulled forward once per failure.
    fn issuer_is_back(&self, volume: &ManagedVolume) {
        let Some(issuer) = issuer_key(volume) else {
            return;
        };
        let Some(mut waiting) = self.waiting_on_issuer.lock().remove(&issuer) else {
            return;
        };
        waiting.remove(volume.id());
        let now = tokio::time::Instant::now();
        let mut pulled = 0;
        for volume_id in waiting {
            // Unpublished meanwhile (no deadline), or due soon anyway: left as it is.
            if self
                .scheduler
                .deadline(&volume_id)
                .is_some_and(|at| at > now + ISSUER_BACK_SPREAD)
            {
                let spread = ISSUER_BACK_SPREAD.mul_f64(fastrand::f64());
                self.scheduler.schedule(&volume_id, now + spread);
                pulled += 1;
            }
        }
        if pulled > 0 {
            tracing::info!(
                issuer = %issuer.1,
                namespace = %issuer.0,
                volumes = pulled,
                "the issuer answers again: retrying the volumes that could not reach it now"
            );
        }
    }

    /// Schedules the next attempt of a failing volume with backoff, and saves its progress.
    pub(super) fn retry_later(&self, volume: &mut ManagedVolume) {
        let retry_in = self.config.backoff.delay(volume.failures().max(1));
        let expires_in = volume
            .certificate()
            .and_then(|c| c.not_after.duration_since(SystemTime::now()).ok());
        tracing::warn!(
            volume_id = %volume.id(),
            pod = %volume.pod(),
            failures = volume.failures(),
            retry_in = ?retry_in,
            expires_in = ?expires_in,
            error = volume.last_error().as_deref().unwrap_or(""),
            "{}",
            if volume.certificate().is_some() {
                "renewal failed; keeping the current certificate"
            } else {
                "issuance failed on a volume kubelet considers published; retrying"
            }
        );
        self.scheduler
            .schedule(volume.id(), tokio::time::Instant::now() + retry_in);
        self.save_progress(volume);
    }
}

/// The key (the reused one, one from `pool`, or a new one) and its CSR. RSA generation takes tens
/// to hundreds of milliseconds, so it runs on the blocking pool; ECDSA and Ed25519 take
/// microseconds, less than the hand-off to another thread would cost, so they run inline. A pooled
/// RSA key still costs an RSA signature for the CSR (about a millisecond), also inline: a worker
/// blocked that long is cheaper than the hand-off.
async fn make_key_and_csr(
    spec: &CertRequestSpec,
    reused: Option<PrivateKey>,
    pool: Option<&Arc<KeyPool>>,
) -> Result<(PrivateKey, String), VolumeError> {
    let ready = match reused {
        Some(key) => Some(key),
        None => pool.and_then(|pool| pool.take(KeyKind::of(&spec.key))),
    };
    let generates = ready.is_none();
    let work = move |spec: &CertRequestSpec| -> Result<(PrivateKey, String), KeyError> {
        let key = match ready {
            Some(key) => key,
            None => keys::generate(&spec.key)?,
        };
        let csr = keys::build_csr(spec, &key)?;
        Ok((key, csr))
    };
    if generates && spec.key.algorithm == KeyAlgorithm::Rsa {
        let spec = spec.clone();
        Ok(tokio::task::spawn_blocking(move || work(&spec))
            .await
            .map_err(|e| VolumeError::Internal(e.to_string()))??)
    } else {
        Ok(work(spec)?)
    }
}

/// The key currently in the volume, for reuse-private-key; `None` (with the reason logged) when it
/// cannot be read, so a fresh key is made instead.
fn read_reusable_key(files_dir: &Path, name: &str, volume_id: &str) -> Option<PrivateKey> {
    let bytes = match files::read_current(files_dir, name) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(%volume_id, %error, "cannot read the current key to reuse it; generating a new one");
            return None;
        }
    };
    let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
    match PrivateKey::from_pem(&text) {
        Ok(key) => Some(key),
        Err(error) => {
            tracing::warn!(%volume_id, %error, "current key is unusable; generating a new one");
            None
        }
    }
}

/// How far apart the retries of volumes pulled forward by [`VolumeManager::issuer_is_back`] are.
const ISSUER_BACK_SPREAD: std::time::Duration = std::time::Duration::from_secs(1);

/// An issuer as volumes reach it: their namespace (a namespaced Issuer is one per namespace),
/// and its reference.
pub(super) type IssuerKey = (String, String);

fn issuer_key(volume: &ManagedVolume) -> Option<IssuerKey> {
    let issuer = &volume.valid_attributes()?.spec.issuer;
    Some((
        volume.pod.namespace().to_string(),
        format!("{}/{}/{}", issuer.group, issuer.kind, issuer.name),
    ))
}

/// Whether a failure says the issuer could not be reached or did not answer in time (an API
/// outage), rather than that it refused or failed the request.
fn waits_on_issuer(error: &VolumeError) -> bool {
    matches!(
        error,
        VolumeError::Issuer(IssuerError::Unavailable { .. } | IssuerError::TimedOut { .. })
    )
}
