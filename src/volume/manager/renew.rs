//! Renewal: one deadline queue for every volume, served by one task, at most
//! `renewal_concurrency` renewals at once. A failed renewal keeps the current files and is
//! retried with backoff (booked by `settle`).

use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::JoinHandle;

use super::issue::Action;
use super::volume::ManagedVolume;
use super::{Slot, VolumeManager};
use crate::attributes::CertRequestSpec;
use crate::certificate::CertificateSummary;
use crate::renewal;

impl VolumeManager {
    /// Renews one volume's certificate now. On failure the current files stay and a retry is
    /// scheduled with backoff.
    pub async fn renew(&self, volume_id: &str) {
        self.renew_volume(volume_id, false).await;
    }

    /// What the renewal queue runs for a volume it found due.
    async fn renew_volume(&self, volume_id: &str, only_if_still_due: bool) {
        let Some(slot) = self.existing_slot(volume_id) else {
            return;
        };
        self.renew_slot(&slot, only_if_still_due).await;
        drop(slot);
        self.release_slot_if_idle(volume_id);
    }

    async fn renew_slot(&self, slot: &Slot, only_if_still_due: bool) {
        let mut cancellation = slot.cancellation();
        let mut guard = tokio::select! {
            guard = slot.volume.lock() => guard,
            // Being unpublished: no renewal starts for it.
            () = cancellation.requested() => return,
        };
        let Some(volume) = guard.as_mut() else {
            return;
        };
        if !volume.is_valid() || cancellation.is_requested() {
            return;
        }
        // Taken off the queue before the lock was had: whatever held the lock meanwhile (a
        // publish that issued, say) may have rescheduled it for later. Then it is not due.
        if only_if_still_due
            && self
                .scheduler
                .deadline(volume.id())
                .is_some_and(|at| at > tokio::time::Instant::now())
        {
            return;
        }
        // A volume without a certificate yet (a publish cut short by a restart, or one reported
        // early with --continue-on-not-ready) is still on its first issuance.
        let action = if volume.certificate().is_some() {
            Action::Renew
        } else {
            Action::Issue
        };
        tracing::info!(
            volume_id = %volume.id(),
            pod = %volume.pod(),
            adopted = volume.layout.is_adopted(),
            "{}",
            match action {
                Action::Renew => "renewing certificate",
                Action::Publish | Action::Issue => "retrying the first issuance",
            }
        );
        let permit = tokio::select! {
            permit = self.node_permit() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = cancellation.requested() => return,
        };
        let outcome = self
            .issue_and_write(volume, action, permit, &mut cancellation)
            .await;
        // A failure is logged, reported and rescheduled there; nobody waits for this answer.
        let _ = self.settle(volume, action, outcome);
    }

    /// Serves the renewal queue: one task for all volumes, at most `renewal_concurrency`
    /// renewals at once.
    pub fn spawn_renewal_loop(self: &Arc<Self>) -> JoinHandle<()> {
        let this = Arc::clone(self);
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.config.renewal_concurrency.max(1),
        ));
        tokio::spawn(async move {
            loop {
                let volume_id = this.scheduler.next_due().await;
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    return;
                };
                let worker = Arc::clone(&this);
                tokio::spawn(async move {
                    worker.renew_volume(&volume_id, true).await;
                    drop(permit);
                });
            }
        })
    }

    /// When a certificate is due for renewal, before jitter: `notAfter − renew-before`, or two
    /// thirds of its lifetime; never sooner than a moment from now, so an issuer that hands out
    /// certificates already due (or expired) cannot make a volume renew in a tight loop.
    pub(super) fn renewal_time_of(
        &self,
        spec: &CertRequestSpec,
        certificate: &CertificateSummary,
    ) -> SystemTime {
        renewal::renewal_time(
            certificate.not_before,
            certificate.not_after,
            spec.renew_before,
        )
        .max(SystemTime::now() + renewal::MINIMUM_INTERVAL)
    }

    /// Schedules the renewal of a certificate just issued. One that is due already (`duration:
    /// 0s`, which cert-manager's CA issuer signs with no lifetime; an issuer that ignores the
    /// duration; a clock far off) is renewed after the longest retry delay (`--renewal-backoff-max`,
    /// 5 minutes) rather than at once: never a request storm (the Go driver renews such a volume
    /// every second).
    pub(super) fn schedule_renewal_after_issuance(
        &self,
        volume: &ManagedVolume,
        certificate: &CertificateSummary,
    ) {
        self.schedule(volume, certificate, true);
    }

    /// Schedules the volume's next renewal from its certificate.
    pub(super) fn schedule_renewal(
        &self,
        volume: &ManagedVolume,
        certificate: &CertificateSummary,
    ) {
        self.schedule(volume, certificate, false);
    }

    fn schedule(
        &self,
        volume: &ManagedVolume,
        certificate: &CertificateSummary,
        just_issued: bool,
    ) {
        if !volume.is_valid() {
            return;
        }
        let due = renewal::renewal_time(
            certificate.not_before,
            certificate.not_after,
            volume.renew_before,
        );
        let now = SystemTime::now();
        // Certificates carry whole seconds: one asked for less than a second (or 0s) ends in the
        // second it was signed in, and is due at once.
        let at = if just_issued && due <= now {
            let floor = self.config.backoff.max;
            tracing::warn!(
                volume_id = %volume.id(),
                pod = %volume.pod(),
                lifetime = ?certificate.lifetime(),
                renew_in = ?floor,
                "the certificate just issued is due for renewal already (its lifetime is too short \
                 for its renew-before); renewing it after the longest retry delay, not at once"
            );
            now + floor
        } else {
            renewal::with_jitter(due, certificate.lifetime()).max(now + renewal::MINIMUM_INTERVAL)
        };
        self.scheduler
            .schedule(volume.id(), renewal::instant_at(at));
        self.metrics.set_renewal_time(volume.id(), at);
    }
}
