//! Taking volumes up at start without a publish: this driver's own records after a restart
//! ([`VolumeManager::resume`]), and the volumes the Go driver mounted ([`VolumeManager::adopt`]).
//! Both end in [`VolumeManager::take_up`]: parse the attributes as a publish would (leniently),
//! tidy what an interrupted write left, read the certificate on disk, schedule its renewal.
//!
//! Adoption writes this driver's record of a volume before it manages it, and changes nothing the
//! pod sees while taking it over (it only tidies leftovers of an interrupted write that `..data`
//! does not point at), so `kill -9` at any point loses nothing: a volume with a record is resumed
//! as adopted, one without is adopted again.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use super::volume::{self, Attributes, ManagedVolume, Phase, PodNames};
use super::{VolumeManager, rfc3339};
use crate::attributes::{PodInfo, check_file_name, key};
use crate::certificate::{CertificateSummary, inspect_leaf};
use crate::kubernetes::token;
use crate::pod_events::{PodEvent, reason};
use crate::volume::csi_lib::{self, CsiLibRoot, Found, Verdict};
use crate::volume::files;
use crate::volume::layout::Layout;
use crate::volume::mountinfo::{self, MountEntry};
use crate::volume::state::VolumeRecord;

/// Counts from [`VolumeManager::resume`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResumeSummary {
    /// Volumes whose mount still exists and that are managed again.
    pub resumed: usize,
    /// Records whose mount vanished while the driver was down; removed.
    pub cleaned_up: usize,
    /// Records that could not be read or parsed (removed), and records of adopted volumes that
    /// cannot be checked because the Go driver's tmpfs is not mounted here (kept for the next
    /// start).
    pub failed: usize,
}

/// Counts from [`VolumeManager::adopt`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AdoptionSummary {
    /// Volumes taken over: renewed in place and unmounted on unpublish from now on.
    pub adopted: usize,
    /// Of those, the ones whose attributes this driver rejects: kept as they are, not renewed.
    pub not_renewed: usize,
    /// Volumes nothing mounts any more; their directories were removed.
    pub cleaned_up: usize,
    /// Volumes mounted somewhere this driver cannot account for, whose mounts it cannot see, or
    /// unmounted only moments ago (a Go driver may still be publishing them); left as they are.
    pub left_alone: usize,
    /// `metadata.json` files that could not be read; left as they are.
    pub unreadable: usize,
}

impl VolumeManager {
    /// Reloads every volume recorded under the data root: mounts that still exist are managed
    /// again and their renewals scheduled from the certificate on disk; records whose mount
    /// vanished while the driver was down are removed.
    pub fn resume(&self) -> io::Result<ResumeSummary> {
        let mut summary = ResumeSummary::default();
        // Read once, and only if some record is an adopted volume.
        let mut mounts: Option<Vec<MountEntry>> = None;
        for loaded in self.store.records()? {
            let record = match loaded {
                Ok(record) => record,
                Err((path, reason)) => {
                    tracing::error!(path = %path.display(), %reason, "removing unreadable volume record");
                    let _ = self.store.remove_path(&path);
                    summary.failed += 1;
                    continue;
                }
            };
            let volume_id = record.volume_id.clone();
            let target = record.target_path.clone();
            let layout = Layout::of_record(&record);
            let still_mounted = match &layout {
                Layout::OwnTmpfs => self.mounter.is_mounted(&target).unwrap_or(false),
                Layout::CsiLib { volume_dir, .. } => {
                    if mounts.is_none() {
                        // Unreadable, every adopted record is kept as it cannot be checked.
                        mounts = Some(mountinfo::read_current().unwrap_or_else(|error| {
                            tracing::error!(%error, "cannot read the mount table");
                            Vec::new()
                        }));
                    }
                    let mounts = mounts.as_deref().unwrap_or_default();
                    match adopted_still_mounted(&volume_id, volume_dir, &target, mounts) {
                        Some(mounted) => mounted,
                        None => {
                            tracing::error!(%volume_id, volume_dir = %volume_dir.display(), "the Go driver's inmemfs is not mounted here, so this adopted volume can be neither served nor cleaned up; keeping its record for the next start");
                            summary.failed += 1;
                            continue;
                        }
                    }
                }
            };
            if !still_mounted {
                tracing::info!(%volume_id, target = %target.display(), adopted = layout.is_adopted(), "mount vanished while the driver was down; cleaning up");
                match &layout {
                    Layout::OwnTmpfs => {
                        let _ = std::fs::remove_dir(&target);
                    }
                    Layout::CsiLib { .. } => {
                        if let Err(error) = layout.tear_down(
                            &target,
                            true,
                            self.mounter.as_ref(),
                            self.config.publish_in_csi_lib_layout,
                        ) {
                            tracing::warn!(%volume_id, %error, "cleaning up an adopted volume was incomplete");
                        }
                    }
                }
                let _ = self.store.remove(&volume_id);
                summary.cleaned_up += 1;
                continue;
            }
            let volume = self.take_up(record, layout);
            self.insert_managed(volume);
            summary.resumed += 1;
        }
        Ok(summary)
    }

    /// Takes over the volumes the Go driver mounted under its data root `root`: each one whose
    /// target is still its bind mount is managed from now on (renewed in place, listed in metrics
    /// and status, unmounted on unpublish); each one nothing mounts any more is removed, as the
    /// Go driver's unpublish would have; everything else is reported and left alone. Volumes this
    /// driver already knows (from its own records) are skipped.
    pub fn adopt(&self, root: &CsiLibRoot) -> io::Result<AdoptionSummary> {
        let mut summary = AdoptionSummary::default();
        // With nothing found the Go driver's (empty) inmemfs is not unmounted: it costs nothing,
        // and it may belong to a Go driver that still runs beside this one. It goes with the
        // last adopted volume's unpublish.
        let found = root.scan()?;
        if found.is_empty() {
            return Ok(summary);
        }
        let mounts = mountinfo::read_current()?;
        let Some(inmemfs) = root.inmemfs_mount(&mounts).cloned() else {
            tracing::error!(
                inmemfs = %root.inmemfs().display(),
                entries = found.len(),
                "the Go driver's inmemfs is not a mounted tmpfs here, so its volumes cannot be \
                 adopted (is its data directory mounted into this container with Bidirectional \
                 propagation?); leaving them alone"
            );
            summary.left_alone = found.len();
            return Ok(summary);
        };
        for entry in found {
            let (volume_id, metadata) = match entry {
                Found::Volume {
                    volume_id,
                    metadata,
                } => (volume_id, metadata),
                Found::NoMetadata(path) => {
                    tracing::info!(path = %path.display(), "no metadata.json: not a volume of the Go driver's; left alone");
                    continue;
                }
                Found::Unreadable { path, reason } => {
                    tracing::error!(path = %path.display(), %reason, "cannot read the Go driver's volume metadata; not adopting it and leaving it alone");
                    summary.unreadable += 1;
                    continue;
                }
            };
            if self.existing_slot(&volume_id).is_some() {
                continue;
            }
            let target = metadata.target_path.clone();
            let verdict =
                csi_lib::judge(&volume_id, &target, &mounts, &inmemfs, |pods| pods.is_dir());
            match verdict {
                Verdict::Adopt => {}
                Verdict::Gone if recently_changed(&root.volume_dir(&volume_id)) => {
                    tracing::warn!(%volume_id, target = %target.display(), "the Go driver's volume is not mounted, but it changed moments ago (a Go driver may still be publishing it); left alone");
                    summary.left_alone += 1;
                    continue;
                }
                Verdict::Gone => {
                    tracing::info!(%volume_id, target = %target.display(), "the Go driver's volume is no longer mounted; removing it as its unpublish would have");
                    match std::fs::remove_dir_all(root.volume_dir(&volume_id)) {
                        Ok(()) => summary.cleaned_up += 1,
                        Err(error) => {
                            tracing::warn!(%volume_id, %error, "cannot remove the Go driver's volume directory");
                            summary.left_alone += 1;
                        }
                    }
                    continue;
                }
                Verdict::MountedElsewhere(at) => {
                    tracing::warn!(%volume_id, target = %target.display(), mounted_at = %at.display(), "the Go driver's volume is mounted, but not at the target its metadata names; left alone");
                    summary.left_alone += 1;
                    continue;
                }
                Verdict::Unknowable(pods) => {
                    tracing::warn!(%volume_id, target = %target.display(), kubelet_pods = %pods.display(), "cannot see kubelet's pods directory, so cannot tell whether the Go driver's volume is in use; left alone");
                    summary.left_alone += 1;
                    continue;
                }
            }
            let mut record = VolumeRecord::new(
                &volume_id,
                &target,
                &metadata.volume_context,
                Some(metadata.volume_mount_group.clone()).filter(|group| !group.is_empty()),
            );
            let volume_dir = root.volume_dir(&volume_id);
            record.adopted_from = Some(volume_dir.clone());
            // The record first: from here on a crash resumes the volume as adopted.
            if let Err(error) = self.store.save(&record) {
                tracing::error!(%volume_id, %error, "cannot record the adopted volume; leaving it to the next start");
                summary.left_alone += 1;
                continue;
            }
            let volume = self.take_up(
                record,
                Layout::CsiLib {
                    volume_dir,
                    adopted: true,
                },
            );
            summary.adopted += 1;
            if !volume.is_valid() {
                summary.not_renewed += 1;
            }
            self.report_adoption(&volume);
            self.insert_managed(volume);
        }
        Ok(summary)
    }

    /// Builds the managed volume for a record (with its context) of a volume that is mounted, and
    /// schedules its renewal from the certificate on disk.
    fn take_up(&self, mut record: VolumeRecord, layout: Layout) -> ManagedVolume {
        let volume_id = record.volume_id.clone();
        // Moved out: only the parsed request is kept in memory.
        let context: HashMap<String, String> = std::mem::take(&mut record.volume_context)
            .into_iter()
            .collect();
        let (attributes, pod, renew_before, unusual_file_names) = match self
            .parse_context(&context, self.lenient_parse_options())
        {
            Ok(attributes) => {
                let pod = PodNames::new(&attributes.pod);
                let renew_before = attributes.spec.renew_before;
                let names = volume::unusual(&attributes.spec.files);
                (
                    Attributes::Loaded(Box::new(attributes)),
                    pod,
                    renew_before,
                    names,
                )
            }
            Err(invalid) => {
                tracing::error!(%volume_id, adopted = layout.is_adopted(), error = %invalid, "the volume's attributes do not validate; keeping its files as they are, without renewing them");
                let problems = invalid.to_string();
                (
                    Attributes::Rejected { problems },
                    PodNames::new(&PodInfo::read_from(&context)),
                    None,
                    None,
                )
            }
        };
        let files_dir = layout.files_dir(&record.target_path);
        let tidied = files::tidy_after_crash(&files_dir);
        if tidied > 0 {
            tracing::info!(%volume_id, entries = tidied, "removed what an interrupted write left in the volume");
        }
        let certificate_file = match &attributes {
            Attributes::Loaded(attributes) => attributes.spec.files.certificate.as_str(),
            Attributes::Resting | Attributes::Rejected { .. } => context
                .get(key::CERTIFICATE_FILE)
                .map(String::as_str)
                .filter(|name| check_file_name(name).is_ok())
                .unwrap_or("tls.crt"),
        };
        let certificate = read_certificate(&files_dir, certificate_file);
        // With --use-token-request, the Go driver's metadata.json holds the pod's last token (it
        // may have expired; kubelet's next republish brings a fresh one). This driver's own
        // records hold none.
        let token = match &layout {
            Layout::CsiLib { volume_dir, .. } if self.issuer.needs_pod_token() => {
                recorded_token(volume_dir)
            }
            _ => None,
        };
        let phase = match &certificate {
            Some(certificate) => Phase::Ready(certificate.clone()),
            None => Phase::Issuing(Box::default()),
        };
        let volume = ManagedVolume {
            record,
            layout,
            pod,
            renew_before,
            unusual_file_names,
            attributes,
            phase,
            // Not read back at start (10,000 file reads): the metrics name the volume until
            // its next issuance names the request.
            certificate_request: None,
            // A file from before the restart may exist; the next success removes it.
            progress_saved: true,
            token,
            token_unusable: false,
            gate_wait: None,
            counted: None,
        };
        match (&volume.attributes, &certificate) {
            (_, Some(certificate)) => {
                self.record_request_metrics(&volume, None, certificate);
                self.schedule_renewal(&volume, certificate);
            }
            // Mounted but no certificate (killed mid-publish): issue as soon as possible.
            (Attributes::Loaded(_) | Attributes::Resting, None) => self
                .scheduler
                .schedule(&volume_id, tokio::time::Instant::now()),
            (Attributes::Rejected { .. }, None) => {}
        }
        volume
    }

    /// Tells the pod its volume changed hands.
    fn report_adoption(&self, volume: &ManagedVolume) {
        let expiry = volume
            .certificate()
            .map(|c| format!("valid until {}", rfc3339(c.not_after)))
            .unwrap_or_else(|| "no certificate yet".into());
        let event = match volume.valid_attributes() {
            Some(_) => {
                let next = self
                    .scheduler
                    .deadline(volume.id())
                    .map(|at| {
                        let from_now = at.saturating_duration_since(tokio::time::Instant::now());
                        rfc3339(std::time::SystemTime::now() + from_now)
                    })
                    .unwrap_or_else(|| "-".into());
                tracing::info!(volume_id = %volume.id(), pod = %volume.pod(), target = %volume.target().display(), next_renewal = %next, "adopted a volume the Go driver mounted");
                PodEvent::normal(
                    reason::ADOPTED,
                    "Adopt",
                    format!(
                        "volume {} (mounted by the Go cert-manager-csi-driver) is now managed by \
                         this driver; its certificate ({expiry}) is renewed in place from {next}",
                        volume.id()
                    ),
                )
            }
            None => PodEvent::warning(
                reason::ADOPTED_NOT_RENEWED,
                "Adopt",
                format!(
                    "volume {} (mounted by the Go cert-manager-csi-driver) is kept, but {}; its \
                     certificate ({expiry}) will not be renewed: recreate the pod with valid \
                     attributes",
                    volume.id(),
                    volume.last_error().unwrap_or_default()
                ),
            ),
        };
        self.events.record(&volume.pod(), event);
    }
}

/// Whether an adopted volume's target is still its bind mount; `None` when that cannot be told
/// because the Go driver's inmemfs is not mounted here. A mount this driver cannot see (kubelet's
/// pods directory missing) counts as mounted: only a visible absence removes a volume.
fn adopted_still_mounted(
    volume_id: &str,
    volume_dir: &Path,
    target: &Path,
    mounts: &[MountEntry],
) -> Option<bool> {
    let root = CsiLibRoot::of_volume_dir(volume_dir)?;
    let inmemfs = root.inmemfs_mount(mounts)?;
    let verdict = csi_lib::judge(volume_id, target, mounts, inmemfs, |pods| pods.is_dir());
    Some(verdict != Verdict::Gone)
}

/// The pod token in the Go driver's `metadata.json` of a volume, if there is one.
fn recorded_token(volume_dir: &Path) -> Option<crate::kubernetes::ServiceAccountToken> {
    let bytes = std::fs::read(volume_dir.join(csi_lib::METADATA_FILE)).ok()?;
    let metadata: csi_lib::Metadata = serde_json::from_slice(&bytes).ok()?;
    let context: HashMap<String, String> = metadata.volume_context.into_iter().collect();
    token::from_volume_context(&context).ok()
}

/// Whether a volume directory of the Go driver's changed in the last two minutes (longer than its
/// publish takes).
fn recently_changed(volume_dir: &Path) -> bool {
    std::fs::metadata(volume_dir.join(csi_lib::METADATA_FILE))
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age < std::time::Duration::from_secs(120))
}

fn read_certificate(files_dir: &Path, name: &str) -> Option<CertificateSummary> {
    let bytes = files::read_current(files_dir, name).ok()?;
    inspect_leaf(&String::from_utf8_lossy(&bytes))
        .ok()
        .map(|info| CertificateSummary::from(&info))
}
