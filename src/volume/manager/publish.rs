//! `NodePublishVolume`: validate, then mount a tmpfs at the target, issue and write the first
//! certificate. Idempotent; a republish of a published volume touches nothing.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::issue::Action;
use super::volume::{self, Attributes, ManagedVolume, Phase, PodNames, Retry};
use super::{Cancellation, PublishCall, VolumeError, VolumeManager};
use crate::attributes::{InvalidAttributes, VolumeAttributes};
use crate::kubernetes::{ServiceAccountToken, token};
use crate::pod_events::{PodEvent, reason};
use crate::volume::csi_lib::{self, CsiLibRoot, Verdict};
use crate::volume::layout::Layout;
use crate::volume::mount::MOUNT_SOURCE;
use crate::volume::mountinfo;
use crate::volume::state::VolumeRecord;

/// The volume context a publish may bring, keys and values together: sixteen times the CSI spec's
/// recommended 4 KiB for maps, as kubelet adds the pod's service-account tokens to it. Checked
/// after the attributes, so that an over-long attribute with a bound of its own (a DNS name, a
/// file name) is named with that bound.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;

/// What a publish must do, given what the driver already holds for the volume.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishPlan {
    /// Already published here with its files: report success, touch nothing.
    AlreadyPublished,
    /// Published under another target path.
    Conflict { existing: PathBuf },
    /// Issue a certificate and write it (mounting first if needed).
    Issue,
}

/// Decides what a publish does. Pure.
pub fn plan_publish(
    existing_target: Option<&Path>,
    requested_target: &Path,
    has_certificate_files: bool,
) -> PublishPlan {
    match existing_target {
        Some(existing) if existing != requested_target => PublishPlan::Conflict {
            existing: existing.to_path_buf(),
        },
        Some(_) if has_certificate_files => PublishPlan::AlreadyPublished,
        _ => PublishPlan::Issue,
    }
}

/// What is mounted at a target before a fresh publish.
enum TargetMount {
    Nothing,
    /// One of this driver's tmpfs mounts (a publish that died half-way).
    Ours,
    /// The Go driver's bind mount of this very volume.
    GoDriver,
    /// Something else (fs type and source).
    Foreign(String),
}

/// Destroys a freshly published volume when dropped while armed; disarmed once the publish
/// succeeds.
struct FailedPublishCleanup<'a> {
    manager: &'a VolumeManager,
    volume_id: &'a str,
    target: &'a Path,
    layout: Layout,
    armed: bool,
}

impl Drop for FailedPublishCleanup<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.manager
                .destroy(self.volume_id, self.target, &self.layout);
        }
    }
}

impl VolumeManager {
    /// Publishes a volume: validates, then issues and writes its certificate into a tmpfs at the
    /// target path. Idempotent. The work runs in its own task, so a caller that gives up (kubelet's
    /// deadline) never leaves a half-published volume behind.
    pub async fn publish(self: &Arc<Self>, call: PublishCall) -> Result<(), VolumeError> {
        if !call.target_path.is_absolute() {
            return Err(VolumeError::InvalidArgument(format!(
                "target_path {:?} must be an absolute path",
                call.target_path
            )));
        }
        let parsed = match self.parse_context(&call.volume_context, self.parse_options()) {
            Ok(parsed) => parsed,
            Err(invalid) => return self.republish_rejected(&call, invalid).await,
        };
        parse_group(call.volume_mount_group.as_deref())?;
        let context_bytes: usize = call
            .volume_context
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum();
        if context_bytes > MAX_CONTEXT_BYTES && self.existing_slot(&call.volume_id).is_none() {
            return Err(VolumeError::InvalidArgument(format!(
                "volume_context is {context_bytes} bytes; this driver accepts at most \
                 {MAX_CONTEXT_BYTES}"
            )));
        }
        let mut token_problem = None;
        let token = if self.issuer.needs_pod_token() {
            match token::from_volume_context(&call.volume_context) {
                // A republish (kubelet's `requiresRepublish`) comes here with a fresh token.
                Ok(token) => Some(token),
                // A republish must not fail in a way that makes kubelet unmount a working volume
                // (kubernetes #121271): keep the previous token and carry on. (Said once per
                // volume and change, under its lock, not with every republish.)
                Err(error) if self.existing_slot(&call.volume_id).is_some() => {
                    token_problem = Some(error);
                    None
                }
                Err(error) => return Err(VolumeError::InvalidArgument(error.to_string())),
            }
        } else {
            None
        };
        for warning in &parsed.warnings {
            tracing::warn!(
                volume_id = %call.volume_id,
                pod = %parsed.pod,
                "{warning}"
            );
        }
        if !parsed.warnings.is_empty() {
            self.events.record(
                &parsed.pod,
                PodEvent::warning(
                    if parsed.unknown_keys.is_empty() {
                        reason::ATTRIBUTE_WARNING
                    } else {
                        reason::UNKNOWN_ATTRIBUTE
                    },
                    Action::Publish.as_str(),
                    format!("volume {}: {}", call.volume_id, parsed.warnings.join("; ")),
                ),
            );
        }
        let this = Arc::clone(self);
        let (mounted, on_mounted) = tokio::sync::oneshot::channel();
        let mounted = self.config.continue_on_not_ready.then_some(mounted);
        let mut task = tokio::spawn(async move {
            this.publish_locked(call, parsed, (token, token_problem), mounted)
                .await
        });
        let joined = tokio::select! {
            // Mounted comes first: an issuance that fails at once must not turn a mounted volume's
            // publish into an error by the luck of the draw (the volume stays and is retried).
            biased;
            // `--continue-on-not-ready`: mounted is enough; the task finishes the issuance.
            Ok(()) = on_mounted => return Ok(()),
            joined = &mut task => joined,
        };
        joined.map_err(|e| VolumeError::Internal(e.to_string()))?
    }

    /// A publish whose attributes this driver rejects. For a volume it already manages at that
    /// target — one adopted from the Go driver, which accepted them, or one recorded before a rule
    /// was tightened — this is kubelet's periodic republish of a mounted volume: it succeeds, as
    /// failing it could make kubelet unmount what the pod uses (kubernetes #121271). Anything else
    /// gets the problems.
    async fn republish_rejected(
        &self,
        call: &PublishCall,
        invalid: InvalidAttributes,
    ) -> Result<(), VolumeError> {
        if let Some(slot) = self.existing_slot(&call.volume_id) {
            let mut guard = slot.volume.lock().await;
            if let Some(volume) = guard.as_mut()
                && volume.target() == call.target_path
                && volume.certificate().is_some()
                && self.mounter.is_mounted(volume.target()).unwrap_or(false)
            {
                tracing::warn!(
                    volume_id = %call.volume_id,
                    pod = %volume.pod(),
                    %invalid,
                    "republish of a mounted volume whose attributes this driver rejects; keeping it as it is"
                );
                // A republish is how kubelet refreshes the pod's token: keep taking it (not a
                // SPIFFE volume's: rejected there means the token is not the pod's).
                if self.issuer.needs_pod_token()
                    && !matches!(self.config.requests, super::RequestMode::Spiffe(_))
                    && let Ok(token) = token::from_volume_context(&call.volume_context)
                {
                    volume.token = Some(token);
                }
                return Ok(());
            }
        } else if matches!(
            self.mount_at_target(&call.volume_id, &call.target_path),
            Ok(TargetMount::GoDriver)
        ) {
            tracing::warn!(
                volume_id = %call.volume_id,
                %invalid,
                "republish of the Go driver's volume, which was not adopted; leaving it as it is"
            );
            return Ok(());
        }
        Err(invalid.into())
    }

    /// What is mounted at `target`. The mount table is only read when something is mounted
    /// there, which a fresh publish normally finds not to be the case with one `stat`.
    fn mount_at_target(&self, volume_id: &str, target: &Path) -> Result<TargetMount, VolumeError> {
        let checking = || VolumeError::io("checking the target mount");
        if !self.mounter.is_mounted(target).map_err(checking())? {
            return Ok(TargetMount::Nothing);
        }
        let mounts = mountinfo::read_current().map_err(checking())?;
        let Some(entry) = mountinfo::find_mount(&mounts, target) else {
            // A plain directory standing in for a mount (unprivileged runs).
            return Ok(TargetMount::Nothing);
        };
        if entry.fs_type == "tmpfs" && entry.source == MOUNT_SOURCE {
            return Ok(TargetMount::Ours);
        }
        if let Some(root) = &self.config.csi_lib_root {
            let root = CsiLibRoot::new(root);
            if let Some(inmemfs) = root.inmemfs_mount(&mounts)
                && csi_lib::judge(volume_id, target, &mounts, inmemfs, |_| true) == Verdict::Adopt
            {
                return Ok(TargetMount::GoDriver);
            }
        }
        Ok(TargetMount::Foreign(format!(
            "a {} mount of {}",
            entry.fs_type, entry.source
        )))
    }

    /// `mounted`, when given, is told as soon as the volume is mounted (`--continue-on-not-ready`).
    async fn publish_locked(
        &self,
        call: PublishCall,
        parsed: VolumeAttributes,
        (token, token_problem): (Option<ServiceAccountToken>, Option<token::TokenError>),
        mut mounted: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), VolumeError> {
        let action = if mounted.is_some() {
            Action::Issue
        } else {
            Action::Publish
        };
        let volume_id = call.volume_id.to_string();
        let slot = self.slot(&volume_id);
        let mut guard = slot.volume.lock().await;
        let existing_target = guard.as_ref().map(|v| v.target().to_path_buf());
        let has_files = guard.as_ref().is_some_and(|v| v.certificate().is_some())
            && self.mounter.is_mounted(&call.target_path).unwrap_or(false);
        let plan = plan_publish(existing_target.as_deref(), &call.target_path, has_files);
        if let PublishPlan::Conflict { existing } = plan {
            // Not this volume's publish: its token is not the volume's either.
            return Err(VolumeError::TargetConflict {
                volume_id,
                existing: existing.display().to_string(),
                requested: call.target_path.display().to_string(),
            });
        }
        slot.set_target(&call.target_path);
        // A republish is how kubelet refreshes the pod's token.
        if let Some(volume) = guard.as_mut() {
            match (&token, &token_problem) {
                (Some(token), _) => {
                    if std::mem::take(&mut volume.token_unusable) {
                        tracing::info!(%volume_id, pod = %volume.pod(), "republish with a usable token again");
                    }
                    volume.token = Some(token.clone());
                }
                (None, Some(error)) if !volume.token_unusable => {
                    volume.token_unusable = true;
                    tracing::warn!(
                        %volume_id,
                        pod = %volume.pod(),
                        %error,
                        "republish without a usable token; keeping the previous one (said once \
                         until a usable token comes again)"
                    );
                }
                _ => {}
            }
        }
        if let Some(volume) = guard.as_ref()
            && let Layout::CsiLib { volume_dir, .. } = &volume.layout
            && let Err(error) = csi_lib::write_volume_context(volume_dir, &call.volume_context)
        {
            // The Go driver, after a rollback, builds its requests from it (tokens included).
            tracing::warn!(%volume_id, volume_dir = %volume_dir.display(), %error, "cannot record the republished volume context in metadata.json");
        }
        if plan == PublishPlan::AlreadyPublished {
            tracing::debug!(%volume_id, "already published");
            return Ok(());
        }

        let mut record = VolumeRecord::new(
            &volume_id,
            &call.target_path,
            &call.volume_context,
            call.volume_mount_group.clone(),
        );
        let was_managed = guard.is_some();
        // A new volume in the Go driver's layout (`--publish-in-csi-lib-layout`): what csi-lib
        // records for it, the whole context included, as it would.
        let csi_lib_volume = if was_managed {
            None
        } else {
            self.csi_lib_layout_for_new(&volume_id).map(|root| {
                let metadata = csi_lib::Metadata {
                    volume_id: volume_id.clone(),
                    target_path: call.target_path.clone(),
                    next_issuance_time: Some(csi_lib::ISSUE_AT_ONCE.into()),
                    volume_context: call
                        .volume_context
                        .iter()
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect(),
                    volume_mount_group: call.volume_mount_group.clone().unwrap_or_default(),
                };
                record.adopted_from = Some(root.volume_dir(&volume_id));
                record.published_in_csi_lib_layout = true;
                (root, metadata)
            })
        };
        if !was_managed {
            // A fresh publish mounts its own tmpfs, and a failure takes it down again: it must
            // never take over (or, failing, unmount) a mount it did not make.
            match self.mount_at_target(&volume_id, &call.target_path)? {
                TargetMount::Nothing | TargetMount::Ours => {}
                TargetMount::GoDriver => {
                    tracing::warn!(
                        %volume_id,
                        target = %call.target_path.display(),
                        "the target is the Go driver's bind mount of this volume, which was not \
                         adopted at start (see the start-up log); leaving it as it is"
                    );
                    drop(guard);
                    drop(slot);
                    self.release_slot_if_idle(&volume_id);
                    return Ok(());
                }
                TargetMount::Foreign(what) => {
                    drop(guard);
                    drop(slot);
                    self.release_slot_if_idle(&volume_id);
                    return Err(VolumeError::TargetInUse {
                        target: call.target_path.display().to_string(),
                        what,
                    });
                }
            }
        }
        // Known from before a restart: its record is on disk already.
        let to_save = (!was_managed).then_some(&record);
        let mut volume = match guard.take() {
            Some(volume) => volume,
            None => {
                let pending_key = self.parked_keys.take(&volume_id, &parsed.spec);
                ManagedVolume {
                    record: record.without_context(),
                    layout: Layout::of_record(&record),
                    pod: PodNames::new(&parsed.pod),
                    renew_before: parsed.spec.renew_before,
                    unusual_file_names: volume::unusual(&parsed.spec.files),
                    // Warnings were logged and reported above; they need no memory from now on.
                    attributes: Attributes::Loaded(Box::new(VolumeAttributes {
                        warnings: Vec::new(),
                        unknown_keys: Vec::new(),
                        ..parsed
                    })),
                    phase: Phase::Issuing(Box::new(Retry {
                        pending_key,
                        ..Retry::default()
                    })),
                    certificate_request: None,
                    progress_saved: false,
                    token,
                    token_unusable: false,
                    gate_wait: None,
                    counted: None,
                }
            }
        };
        if !volume.is_valid() {
            // Taken up with attributes this driver rejects (yet this publish's validate: a rule
            // changed in between). It has no usable files, and nothing may be issued from what
            // it recorded: say so rather than report an empty volume.
            let message = volume.last_error().unwrap_or_default();
            *guard = Some(volume);
            return Err(VolumeError::InvalidArgument(format!(
                "volume {volume_id}: {message}"
            )));
        }
        // A fresh volume that fails, even by a panic, is taken down again: no mount, directory or
        // record is left for a volume kubelet never heard succeed.
        let mut cleanup = FailedPublishCleanup {
            manager: self,
            volume_id: &volume_id,
            target: &call.target_path,
            layout: volume.layout.clone(),
            armed: !was_managed,
        };
        let mut cancellation = slot.cancellation();
        let result = self
            .first_issuance(
                &mut volume,
                action,
                to_save,
                csi_lib_volume,
                &mut mounted,
                &mut cancellation,
            )
            .await;
        // kubelet was already told the volume is published: it stays, and issuance is retried.
        let reported = action == Action::Issue && mounted.is_none();
        match result {
            Ok(()) => {
                cleanup.armed = false;
                self.count(&mut volume);
                *guard = Some(volume);
                Ok(())
            }
            Err(error) if reported || was_managed => {
                // Published as far as kubelet knows (reported, or known from before a restart):
                // keep managing it. After `--continue-on-not-ready` the driver retries (`settle`
                // scheduled it); otherwise kubelet's own retry does, and a second, scheduled
                // attempt would only race it.
                cleanup.armed = false;
                if action == Action::Publish && !matches!(error, VolumeError::Cancelled(_)) {
                    self.save_progress(&mut volume);
                }
                self.count(&mut volume);
                *guard = Some(volume);
                Err(error)
            }
            Err(error) => {
                // kubelet retries with the same volume ID: a request still pending keeps its key.
                let pending_key = volume.take_any_pending_key();
                cleanup.armed = false;
                drop(cleanup);
                self.destroy_off_runtime(&volume_id, &call.target_path, &volume.layout)
                    .await;
                if let Some(pending_key) = pending_key {
                    self.parked_keys.park(&volume_id, pending_key);
                }
                drop(guard);
                drop(slot);
                self.release_slot_if_idle(&volume_id);
                Err(error)
            }
        }
    }

    /// Where a new volume goes in the Go driver's layout, if it does: with
    /// `--publish-in-csi-lib-layout`, when its ID can name a directory there.
    fn csi_lib_layout_for_new(&self, volume_id: &str) -> Option<CsiLibRoot> {
        if !self.config.publish_in_csi_lib_layout {
            return None;
        }
        let root = self.config.csi_lib_root.as_ref()?;
        if !csi_lib::is_plain_name(volume_id) {
            tracing::warn!(%volume_id, "this volume ID cannot name a directory in the Go driver's layout; publishing it in this driver's own (a rollback will not take it over)");
            return None;
        }
        Some(CsiLibRoot::new(root))
    }

    /// Saves the record (when given), mounts, issues, writes, schedules. `csi_lib_volume`: a new
    /// volume laid out as the Go driver lays its volumes out, with its `metadata.json`.
    async fn first_issuance(
        &self,
        volume: &mut ManagedVolume,
        action: Action,
        record: Option<&VolumeRecord>,
        csi_lib_volume: Option<(CsiLibRoot, csi_lib::Metadata)>,
        mounted: &mut Option<tokio::sync::oneshot::Sender<()>>,
        cancellation: &mut Cancellation,
    ) -> Result<(), VolumeError> {
        let target = volume.target().to_path_buf();
        let permit = tokio::select! {
            permit = self.node_permit() => permit?,
            () = cancellation.requested() => {
                return Err(VolumeError::Cancelled(volume.id().to_string()));
            }
        };
        if let Some(record) = record {
            // What kubelet handed over must be usable before anything is recorded for it.
            if volume.layout == Layout::OwnTmpfs || csi_lib_volume.is_some() {
                check_target(&target)?;
            }
            self.store.save(record).map_err(VolumeError::io(format!(
                "saving the volume's record in the data root {}",
                self.store.dir().display()
            )))?;
        }
        let mounted_now = || {
            self.mounter
                .is_mounted(&target)
                .map_err(VolumeError::io("checking the target mount"))
        };
        match &volume.layout {
            Layout::OwnTmpfs => {
                match std::fs::create_dir(&target) {
                    Ok(()) => {}
                    // kubelet creates the parent; without it the path is not one kubelet made.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        return Err(VolumeError::InvalidArgument(format!(
                            "target_path {}: its parent directory does not exist",
                            target.display()
                        )));
                    }
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                        if !target.is_dir() {
                            return Err(VolumeError::InvalidArgument(format!(
                                "target_path {} exists and is not a directory",
                                target.display()
                            )));
                        }
                    }
                    Err(error) => {
                        return Err(VolumeError::Io {
                            context: format!("creating target path {}", target.display()),
                            source: error,
                        });
                    }
                }
                if !mounted_now()? {
                    // mount(2) waits on the mount namespace's lock: not on the runtime's threads.
                    let (mounter, at, size) = (
                        Arc::clone(&self.mounter),
                        target.clone(),
                        self.config.volume_size_bytes,
                    );
                    tokio::task::spawn_blocking(move || mounter.mount_tmpfs(&at, size))
                        .await
                        .map_err(|e| VolumeError::Internal(e.to_string()))?
                        .map_err(VolumeError::io(format!(
                            "mounting tmpfs at {}",
                            target.display()
                        )))?;
                }
            }
            // An adopted volume is only ever served through the Go driver's bind mount; a tmpfs
            // of this driver's at its target would hide the files from the pod.
            Layout::CsiLib { .. } if csi_lib_volume.is_some() => {
                let group = volume.valid_attributes().and_then(|attributes| {
                    effective_group(
                        attributes.spec.fs_group,
                        volume.record.volume_mount_group.as_deref(),
                    )
                });
                let (root, metadata) = csi_lib_volume.expect("matched");
                let at = target.clone();
                let mounted_already = mounted_now()?;
                let inmemfs_mounted = Arc::clone(&self.inmemfs_mounted);
                // Mounts and file work: not on the runtime's threads.
                tokio::task::spawn_blocking(move || -> io::Result<()> {
                    if !inmemfs_mounted.load(std::sync::atomic::Ordering::Acquire) {
                        root.ensure_inmemfs()?;
                        inmemfs_mounted.store(true, std::sync::atomic::Ordering::Release);
                    }
                    let volume_dir = root.create_volume(&metadata, group)?;
                    if !mounted_already {
                        csi_lib::bind_data_at(&volume_dir, &at)?;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| VolumeError::Internal(e.to_string()))?
                .map_err(VolumeError::io(format!(
                    "laying the volume out in the Go driver's layout at {}",
                    target.display()
                )))?;
            }
            Layout::CsiLib { volume_dir, .. } => {
                if !mounted_now()? {
                    return Err(VolumeError::Io {
                        context: format!(
                            "{} (adopted from the Go driver, files in {}) is no longer mounted",
                            target.display(),
                            volume_dir.display()
                        ),
                        source: io::Error::from(io::ErrorKind::NotFound),
                    });
                }
            }
        }
        if let Some(mounted) = mounted.take() {
            let _ = mounted.send(());
        }
        let outcome = self
            .issue_and_write(volume, action, permit, cancellation)
            .await;
        self.settle(volume, action, outcome)
    }
}

/// A target kubelet can have handed over: its parent exists (kubelet makes it), and it is a
/// directory if it exists at all.
fn check_target(target: &Path) -> Result<(), VolumeError> {
    if target.parent().is_some_and(|parent| !parent.is_dir()) {
        return Err(VolumeError::InvalidArgument(format!(
            "target_path {}: its parent directory does not exist",
            target.display()
        )));
    }
    match std::fs::symlink_metadata(target) {
        Ok(metadata) if !metadata.is_dir() => Err(VolumeError::InvalidArgument(format!(
            "target_path {} exists and is not a directory",
            target.display()
        ))),
        _ => Ok(()),
    }
}

/// The group that owns the files: the `fs-group` attribute, else the pod's fsGroup from kubelet.
pub(super) fn effective_group(
    fs_group: Option<u32>,
    volume_mount_group: Option<&str>,
) -> Option<u32> {
    fs_group.or_else(|| parse_group(volume_mount_group).ok().flatten())
}

fn parse_group(volume_mount_group: Option<&str>) -> Result<Option<u32>, VolumeError> {
    match volume_mount_group.map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => raw.parse::<u32>().map(Some).map_err(|_| {
            VolumeError::InvalidArgument(format!(
                "volume_capability.mount.volume_mount_group={raw:?} is not a numeric group ID"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::volume::VolumeId;

    #[test]
    fn publish_plan_follows_what_is_held() {
        let target = Path::new("/pods/a/mount");
        assert_eq!(plan_publish(None, target, false), PublishPlan::Issue);
        assert_eq!(
            plan_publish(Some(target), target, true),
            PublishPlan::AlreadyPublished
        );
        // Known but no files yet (e.g. killed mid-publish): never report success on it.
        assert_eq!(
            plan_publish(Some(target), target, false),
            PublishPlan::Issue
        );
        assert_eq!(
            plan_publish(Some(Path::new("/other")), target, true),
            PublishPlan::Conflict {
                existing: PathBuf::from("/other")
            }
        );
    }

    #[test]
    fn debug_output_redacts_tokens_and_passwords() {
        let call = PublishCall {
            volume_id: VolumeId::new("csi-1").unwrap(),
            target_path: PathBuf::from("/t"),
            volume_context: [
                (
                    "csi.storage.k8s.io/serviceAccount.tokens",
                    "{\"\":{\"token\":\"eyJtoken\"}}",
                ),
                ("csi.cert-manager.io/pkcs12-password", "hunter2"),
                ("csi.cert-manager.io/issuer-name", "ca"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
            volume_mount_group: None,
        };
        let printed = format!("{call:?}");
        assert!(
            !printed.contains("eyJtoken") && !printed.contains("hunter2"),
            "{printed}"
        );
        assert!(
            printed.contains("<redacted>") && printed.contains("issuer-name"),
            "{printed}"
        );
    }

    #[test]
    fn group_comes_from_attribute_then_kubelet() {
        assert_eq!(effective_group(Some(2000), Some("3000")), Some(2000));
        assert_eq!(effective_group(None, Some("3000")), Some(3000));
        assert_eq!(effective_group(None, None), None);
        assert!(parse_group(Some("staff")).is_err());
    }
}
