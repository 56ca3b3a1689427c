//! `NodeUnpublishVolume`: stop renewing, unmount, delete the files, the target directory and the
//! record — for this driver's volumes and the ones adopted from the Go driver alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{VolumeError, VolumeManager};
use crate::volume::csi_lib::{self, CsiLibRoot};
use crate::volume::layout::Layout;
use crate::volume::mount::Mounter;
use crate::volume::state::StateStore;

impl VolumeManager {
    /// Unpublishes: stops renewal, unmounts, deletes the files, the target directory and the
    /// record. A target that does not exist is success.
    pub async fn unpublish(&self, volume_id: &str, target: &Path) -> Result<(), VolumeError> {
        if volume_id.is_empty() {
            return Err(VolumeError::InvalidArgument("volume_id is required".into()));
        }
        if !target.is_absolute() {
            return Err(VolumeError::InvalidArgument(format!(
                "target_path {target:?} must be an absolute path"
            )));
        }
        let slot = self.existing_slot(volume_id);
        // Unpublish wins: whatever issuance or renewal holds the volume's lock gives up now
        // (even if it is waiting on an API server that does not answer), and none starts.
        if let Some(slot) = &slot {
            slot.set_removing(true);
        }
        let mut interrupted = false;
        let mut guard = match &slot {
            Some(slot) => Some(match slot.volume.try_lock() {
                Ok(guard) => guard,
                Err(_) => {
                    interrupted = true;
                    slot.volume.lock().await
                }
            }),
            None => None,
        };
        let result = self
            .unpublish_locked(volume_id, target, &mut guard, interrupted)
            .await;
        if let Some(slot) = &slot {
            slot.set_removing(false);
        }
        if result.is_err()
            && let Some(volume) = guard.as_ref().and_then(|guard| guard.as_ref())
            && volume.is_valid()
            && self.scheduler.deadline(volume_id).is_none()
        {
            // It stays (kubelet retries the unpublish); a renewal this call stopped comes back.
            self.scheduler.schedule(
                volume_id,
                tokio::time::Instant::now() + self.config.backoff.delay(1),
            );
        }
        drop(guard);
        drop(slot);
        self.release_slot_if_idle(volume_id);
        result
    }

    async fn unpublish_locked(
        &self,
        volume_id: &str,
        target: &Path,
        guard: &mut Option<tokio::sync::MutexGuard<'_, Option<super::volume::ManagedVolume>>>,
        interrupted: bool,
    ) -> Result<(), VolumeError> {
        let held = guard.as_ref().and_then(|guard| guard.as_ref());
        if let Some(volume) = held
            && volume.target() != target
        {
            return Err(VolumeError::NotFound(format!(
                "{volume_id} at {} (it is published at {})",
                target.display(),
                volume.target().display()
            )));
        }
        let layout = held.map(|volume| volume.layout.clone());
        let namespace = held.map(|volume| volume.pod().namespace.clone());
        let pod_name = held.map(|volume| volume.pod().name.clone());
        let teardown = self.teardown();
        let (id, path, known) = (volume_id.to_string(), target.to_path_buf(), layout.clone());
        // Unmounting and removing files can stall: not on the async runtime's threads.
        let result = tokio::task::spawn_blocking(move || teardown.run(&id, &path, known.as_ref()))
            .await
            .unwrap_or_else(|e| Err(VolumeError::Internal(e.to_string())));
        // Only a volume that is really gone stops being managed: if the unmount failed, it keeps
        // its renewals and kubelet's retry tries again.
        if result.is_ok() {
            self.scheduler.cancel(volume_id);
            self.metrics.forget_volume(volume_id);
            self.parked_keys.forget(volume_id);
            if let (Some(namespace), Some(name)) = (&namespace, &pod_name) {
                self.forget_waiting(&(namespace.clone(), name.clone()), volume_id);
            }
            if let Some(guard) = guard.as_mut() {
                **guard = None;
            }
            // A request still pending for it (an issuance this unpublish stopped) is withdrawn
            // in the background; the unpublish does not wait for the API server.
            if let Some(namespace) = &namespace {
                self.issuer.volume_gone(volume_id, namespace, interrupted);
            }
            tracing::info!(
                %volume_id,
                target = %target.display(),
                adopted = layout.as_ref().is_some_and(Layout::is_adopted),
                "volume unpublished"
            );
        }
        result
    }

    /// What taking a volume down needs, owned, so it can run on the blocking pool.
    fn teardown(&self) -> Teardown {
        Teardown {
            mounter: Arc::clone(&self.mounter),
            store: self.store.clone(),
            csi_lib_root: self.config.csi_lib_root.clone(),
            keep_inmemfs: self.config.publish_in_csi_lib_layout,
        }
    }

    /// Best-effort cleanup after a failed first publish, on the blocking pool.
    pub(super) async fn destroy_off_runtime(
        &self,
        volume_id: &str,
        target: &Path,
        layout: &Layout,
    ) {
        let (manager_teardown, id, path, layout) = (
            self.teardown(),
            volume_id.to_string(),
            target.to_path_buf(),
            layout.clone(),
        );
        self.scheduler.cancel(volume_id);
        self.metrics.forget_volume(volume_id);
        let outcome =
            tokio::task::spawn_blocking(move || manager_teardown.run(&id, &path, Some(&layout)))
                .await
                .unwrap_or_else(|e| Err(VolumeError::Internal(e.to_string())));
        if let Err(error) = outcome {
            tracing::warn!(%volume_id, %error, "cleanup after a failed publish was incomplete");
        }
    }

    /// Best-effort cleanup after a failed first publish, where it cannot wait (a panic unwinding).
    pub(super) fn destroy(&self, volume_id: &str, target: &Path, layout: &Layout) {
        self.scheduler.cancel(volume_id);
        // kubelet does not unpublish a volume whose publish failed, and each new pod brings a new
        // volume ID: keeping its series would grow them without bound. The failure stays visible
        // in the gRPC call counts and the pod's Events.
        self.metrics.forget_volume(volume_id);
        if let Err(error) = self.teardown().run(volume_id, target, Some(layout)) {
            tracing::warn!(%volume_id, %error, "cleanup after a failed publish was incomplete");
        }
    }
}

/// Takes volumes down: unmount, remove files, target directory and record.
pub(super) struct Teardown {
    mounter: Arc<dyn Mounter>,
    store: StateStore,
    csi_lib_root: Option<PathBuf>,
    /// New volumes are published in the Go driver's layout: its tmpfs stays mounted.
    keep_inmemfs: bool,
}

impl Teardown {
    /// Takes a volume down. `layout` is `None` for a volume the driver does not manage: a mount at
    /// the target is then only touched if it is recognisably a volume — one of this driver's
    /// tmpfs mounts (a publish that died half-way), or the Go driver's bind mount of this very
    /// volume (one adoption left alone, e.g. for an unreadable metadata.json).
    pub fn run(
        &self,
        volume_id: &str,
        target: &Path,
        layout: Option<&Layout>,
    ) -> Result<(), VolumeError> {
        let checking = || VolumeError::io("checking the target mount");
        let (layout, ours) = match layout {
            Some(layout) => (layout.clone(), true),
            None if self.mounter.holds_volume(target).map_err(checking())? => {
                (Layout::OwnTmpfs, true)
            }
            None => match self.csi_lib_volume_at(volume_id, target)? {
                Some(volume_dir) => {
                    tracing::info!(%volume_id, volume_dir = %volume_dir.display(), "unpublishing a volume the Go driver mounted");
                    (
                        Layout::CsiLib {
                            volume_dir,
                            adopted: true,
                        },
                        true,
                    )
                }
                None => (Layout::OwnTmpfs, false),
            },
        };
        layout
            .tear_down(target, ours, self.mounter.as_ref(), self.keep_inmemfs)
            .map_err(|error| {
                match error
                    .raw_os_error()
                    .map(rustix::io::Errno::from_raw_os_error)
                {
                    // What is at the target is not this driver's to remove.
                    Some(rustix::io::Errno::NOTEMPTY) if !ours => VolumeError::TargetInUse {
                        target: target.display().to_string(),
                        what: "files this driver did not write".into(),
                    },
                    Some(rustix::io::Errno::BUSY) if !ours => VolumeError::TargetInUse {
                        target: target.display().to_string(),
                        what: "a mount this driver did not make".into(),
                    },
                    _ => VolumeError::Io {
                        context: format!("tearing down {}", target.display()),
                        source: error,
                    },
                }
            })?;
        self.store
            .remove(volume_id)
            .map_err(VolumeError::io("removing volume state"))
    }

    /// The Go driver's directory of this volume, if its bind mount is what is at `target`.
    fn csi_lib_volume_at(
        &self,
        volume_id: &str,
        target: &Path,
    ) -> Result<Option<std::path::PathBuf>, VolumeError> {
        let Some(root) = &self.csi_lib_root else {
            return Ok(None);
        };
        // kubelet's volume ID names a directory in the inmemfs: only ever one plain component.
        if !csi_lib::is_plain_name(volume_id) {
            return Ok(None);
        }
        let root = CsiLibRoot::new(root);
        let mounted = root
            .mounts_volume_at(volume_id, target)
            .map_err(VolumeError::io("reading the mount table"))?;
        // Its bind mount may be gone already; the Go driver's unpublish removes the volume then
        // all the same, if it is the one recorded for this target.
        let recorded_here = || {
            root.metadata(volume_id)
                .is_ok_and(|metadata| metadata.target_path == target)
        };
        Ok((mounted || recorded_here()).then(|| root.volume_dir(volume_id)))
    }
}
