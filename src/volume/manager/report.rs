//! What the outside world learns of a volume's issuances: Events on its pod, metrics, and the
//! progress file the `status` command reads.

use std::time::SystemTime;

use super::issue::Action;
use super::volume::ManagedVolume;
use super::{VolumeError, VolumeManager, human_duration, rfc3339};
use crate::certificate::CertificateSummary;
use crate::metrics;
use crate::pod_events::{PodEvent, reason};
use crate::volume::state::VolumeProgress;

impl VolumeManager {
    pub(super) fn report_success(
        &self,
        volume: &ManagedVolume,
        action: Action,
        certificate: &CertificateSummary,
    ) {
        let Some(attributes) = volume.valid_attributes() else {
            return;
        };
        let issuer = &attributes.spec.issuer;
        let (reason, verb) = match action {
            Action::Publish | Action::Issue => (reason::ISSUED, "issued"),
            Action::Renew => (reason::RENEWED, "renewed"),
        };
        self.events.record(
            &volume.pod(),
            PodEvent::normal(
                reason,
                action.as_str(),
                format!(
                    "certificate for volume {} {verb} by {} {} (serial {}, valid until {})",
                    volume.id(),
                    issuer.kind,
                    issuer.name,
                    certificate.serial,
                    rfc3339(certificate.not_after)
                ),
            ),
        );
    }

    pub(super) fn report_failure(
        &self,
        volume: &ManagedVolume,
        action: Action,
        error: &VolumeError,
    ) {
        self.metrics.issue_failed(volume.id());
        self.metrics
            .mark_request_failing(volume.id(), self.request_state(volume, "False", None));
        if action == Action::Renew {
            self.metrics.renewal_finished(false);
        }
        let reason = match error.event_reason() {
            Some(reason) => reason,
            None if action == Action::Renew => reason::RENEWAL_FAILED,
            // Other first-publish failures reach the pod through kubelet's own FailedMount event.
            None => return,
        };
        let mut message = format!("volume {}: {error}", volume.id());
        if action == Action::Renew
            && let Some(certificate) = volume.certificate()
        {
            let left = certificate
                .not_after
                .duration_since(SystemTime::now())
                .map(|left| format!("expires in {}", human_duration(left)))
                .unwrap_or_else(|_| "has EXPIRED".to_string());
            message.push_str(&format!(
                "; the current certificate stays in place and {left} (at {}); retrying with backoff",
                rfc3339(certificate.not_after)
            ));
        }
        self.events.record(
            &volume.pod(),
            PodEvent::warning(reason, action.as_str(), message),
        );
    }

    /// The volume's request series: named after its CertificateRequest (the volume ID until one
    /// is known), labelled with its issuer.
    fn request_state(
        &self,
        volume: &ManagedVolume,
        ready: &'static str,
        certificate_request: Option<String>,
    ) -> metrics::RequestState {
        let issuer = volume
            .valid_attributes()
            .map(|attributes| &attributes.spec.issuer);
        let label = |value: Option<&String>| value.cloned().unwrap_or_default();
        metrics::RequestState {
            name: certificate_request
                .or_else(|| volume.certificate_request.clone())
                .unwrap_or_else(|| volume.id().to_string()),
            namespace: volume.pod().namespace.clone(),
            issuer_name: label(issuer.map(|i| &i.name)),
            issuer_kind: label(issuer.map(|i| &i.kind)),
            issuer_group: label(issuer.map(|i| &i.group)),
            ready,
            not_after: volume.certificate().map(|c| c.not_after),
            renewal_at: None,
        }
    }

    pub(super) fn record_request_metrics(
        &self,
        volume: &ManagedVolume,
        certificate_request: Option<String>,
        certificate: &CertificateSummary,
    ) {
        let mut state = self.request_state(volume, "True", certificate_request);
        state.not_after = Some(certificate.not_after);
        self.metrics.set_request(volume.id(), state);
    }

    /// A healthy volume needs no progress file (`status` computes its next renewal from the
    /// certificate), so the publish path writes nothing extra; only a volume that failed has one,
    /// removed again by its next success.
    pub(super) fn clear_progress(&self, volume: &mut ManagedVolume) {
        if std::mem::take(&mut volume.progress_saved) {
            self.store.remove_progress(volume.id());
        }
    }

    /// Saves how a failing volume is doing, for the `status` command; failing to is only logged.
    pub(super) fn save_progress(&self, volume: &mut ManagedVolume) {
        volume.progress_saved = true;
        let unix = |at: SystemTime| {
            at.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs())
        };
        let next_renewal = self.scheduler.deadline(volume.id()).map(|at| {
            unix(SystemTime::now() + at.saturating_duration_since(tokio::time::Instant::now()))
        });
        let progress = VolumeProgress {
            volume_id: volume.id().to_string(),
            certificate_request: volume.certificate_request.clone(),
            next_renewal,
            failures: volume.failures(),
            last_error: volume.last_error(),
            waiting_on: volume
                .gate_wait
                .as_ref()
                .map(|wait| (wait.on.clone(), unix(wait.since))),
            updated: unix(SystemTime::now()),
        };
        if let Err(error) = self.store.save_progress(&progress) {
            tracing::debug!(
                volume_id = %volume.id(),
                pod = %volume.pod(),
                %error,
                "could not save volume progress"
            );
        }
    }
}
