//! Looking at a volume without changing it: its status (for the demo, tests and
//! `NodeGetVolumeStats`) and its condition (healthy, or what is wrong).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{VolumeError, VolumeManager};
use crate::certificate::CertificateSummary;
use crate::volume::files;

/// What the outside world may know about a managed volume.
#[derive(Debug, Clone)]
pub struct VolumeSnapshot {
    pub volume_id: String,
    pub target_path: PathBuf,
    pub pod: String,
    pub certificate: Option<CertificateSummary>,
    pub next_renewal: Option<SystemTime>,
    pub failures: u32,
    pub last_error: Option<String>,
    /// Taken over from the Go driver.
    pub adopted: bool,
    /// What its issuance waits for on the pod (a readiness gate), while it does.
    pub waiting_on: Option<String>,
}

impl VolumeManager {
    /// A snapshot of one volume, for `NodeGetVolumeStats`, the demo and tests.
    pub async fn snapshot(&self, volume_id: &str) -> Option<VolumeSnapshot> {
        let snapshot = self.snapshot_of_slot(volume_id).await;
        self.release_slot_if_idle(volume_id);
        snapshot
    }

    async fn snapshot_of_slot(&self, volume_id: &str) -> Option<VolumeSnapshot> {
        let slot = self.existing_slot(volume_id)?;
        let guard = slot.volume.lock().await;
        let volume = guard.as_ref()?;
        let next_renewal = self.scheduler.deadline(volume_id).map(|at| {
            let from_now = at.saturating_duration_since(tokio::time::Instant::now());
            SystemTime::now() + from_now
        });
        Some(VolumeSnapshot {
            volume_id: volume_id.to_string(),
            target_path: volume.target().to_path_buf(),
            pod: volume.pod().to_string(),
            certificate: volume.certificate().cloned(),
            next_renewal,
            failures: volume.failures(),
            last_error: volume.last_error(),
            adopted: volume.layout.is_adopted(),
            waiting_on: volume.gate_wait.as_ref().map(|wait| wait.on.clone()),
        })
    }

    /// Checks that a volume is mounted and holds its certificate and key. `Ok(None)` means healthy;
    /// `Ok(Some(message))` describes what is wrong.
    pub async fn condition(
        &self,
        volume_id: &str,
        path: &Path,
    ) -> Result<Option<String>, VolumeError> {
        let condition = self.condition_of_slot(volume_id, path).await;
        self.release_slot_if_idle(volume_id);
        condition
    }

    async fn condition_of_slot(
        &self,
        volume_id: &str,
        path: &Path,
    ) -> Result<Option<String>, VolumeError> {
        let slot = self
            .existing_slot(volume_id)
            .ok_or_else(|| VolumeError::NotFound(volume_id.to_string()))?;
        // kubelet polls this; it must not wait behind an issuance that may take minutes with a
        // remote issuer. While one runs, what can be seen without the volume's state is checked.
        let Ok(guard) = slot.volume.try_lock() else {
            if !slot.is_at(path) {
                return Err(VolumeError::NotFound(format!(
                    "{volume_id} at {}",
                    path.display()
                )));
            }
            if !self.mounter.is_mounted(path).unwrap_or(false) {
                return Ok(Some(format!(
                    "{} is not mounted (issuance in progress)",
                    path.display()
                )));
            }
            if files::current_set(path).is_none() {
                return Ok(Some(
                    "certificate is being issued; no files yet".to_string(),
                ));
            }
            return Ok(None);
        };
        let volume = guard
            .as_ref()
            .ok_or_else(|| VolumeError::NotFound(volume_id.to_string()))?;
        if volume.target() != path {
            return Err(VolumeError::NotFound(format!(
                "{volume_id} at {}",
                path.display()
            )));
        }
        if !self.mounter.is_mounted(path).unwrap_or(false) {
            return Ok(Some(format!("{} is no longer mounted", path.display())));
        }
        if !volume.is_valid() {
            return Ok(volume.last_error());
        }
        let names = volume.file_names();
        for name in [&names.certificate, &names.private_key, &names.ca] {
            if std::fs::metadata(path.join(name)).is_err() {
                return Ok(Some(format!(
                    "file {name} is missing from {}",
                    path.display()
                )));
            }
        }
        if let Some(certificate) = volume.certificate()
            && certificate.not_after < SystemTime::now()
        {
            return Ok(Some(format!(
                "certificate expired; last renewal error: {}",
                volume.last_error().as_deref().unwrap_or("none")
            )));
        }
        Ok(None)
    }
}
