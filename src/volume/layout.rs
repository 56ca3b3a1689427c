//! Where a volume's files live and how it is mounted: this driver's own layout, or the Go
//! driver's for a volume adopted from it. Publish, renewal and unpublish go through [`Layout`],
//! so the rest of the manager does not care which one a volume has.

use std::io;
use std::path::{Path, PathBuf};

use super::csi_lib::{self, CsiLibRoot};
use super::files::{self, FileModes};
use super::mount::{Mounter, TmpfsMounter, is_on_tmpfs};
use super::state::VolumeRecord;

/// How one volume is laid out on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// This driver's: a size-capped tmpfs of the volume's own, mounted read-write at kubelet's
    /// target path (the pod sees it read-only); the files are written straight into it.
    OwnTmpfs,
    /// The Go driver's: the files live in `<volume_dir>/data` on its shared inmemfs tmpfs, which
    /// is bind-mounted read-only at the target path. Either adopted from it, or published so by
    /// this driver (`--publish-in-csi-lib-layout`) for a rollback to hand back.
    CsiLib {
        /// `<csi-lib data root>/inmemfs/<volume-id>`.
        volume_dir: PathBuf,
        /// Taken over from the Go driver (not published by this driver).
        adopted: bool,
    },
}

impl Layout {
    /// The layout a volume record says its volume has.
    pub fn of_record(record: &VolumeRecord) -> Layout {
        match &record.adopted_from {
            Some(volume_dir) => Layout::CsiLib {
                volume_dir: volume_dir.clone(),
                adopted: !record.published_in_csi_lib_layout,
            },
            None => Layout::OwnTmpfs,
        }
    }

    /// The directory the file set (`..data` and the visible names) is written into.
    pub fn files_dir(&self, target: &Path) -> PathBuf {
        match self {
            Layout::OwnTmpfs => target.to_path_buf(),
            Layout::CsiLib { volume_dir, .. } => volume_dir.join(csi_lib::DATA_DIR),
        }
    }

    pub fn file_modes(&self) -> FileModes {
        match self {
            Layout::OwnTmpfs => FileModes::Driver,
            Layout::CsiLib { .. } => FileModes::CsiLib,
        }
    }

    /// Taken over from the Go driver.
    pub fn is_adopted(&self) -> bool {
        matches!(self, Layout::CsiLib { adopted: true, .. })
    }

    /// In the Go driver's layout (adopted, or published so for a rollback).
    pub fn is_csi_lib(&self) -> bool {
        matches!(self, Layout::CsiLib { .. })
    }

    /// Whether key material may be written now: only into memory. This driver's volume must still
    /// be its tmpfs at the target (if it was unmounted behind the driver's back, writing would put
    /// the key on the node's disk); an adopted one must still be on the inmemfs.
    pub fn check_in_memory(&self, target: &Path, mounter: &dyn Mounter) -> io::Result<()> {
        let (in_memory, what) = match self {
            Layout::OwnTmpfs => (mounter.holds_memory_volume(target)?, target.to_path_buf()),
            Layout::CsiLib { .. } => {
                let dir = self.files_dir(target);
                (is_on_tmpfs(&dir).unwrap_or(false), dir)
            }
        };
        if in_memory {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is no longer a mounted tmpfs; not writing key material",
                    what.display()
                ),
            ))
        }
    }

    /// After a set was written: csi-lib owns the data directory by the fsGroup on every write, and
    /// its metadata says when to renew, which a rollback to the Go driver reads.
    pub fn after_write(&self, group: Option<u32>, next_renewal: std::time::SystemTime) {
        let Layout::CsiLib { volume_dir, .. } = self else {
            return;
        };
        if let Some(gid) = group
            && let Err(error) =
                std::os::unix::fs::lchown(volume_dir.join(csi_lib::DATA_DIR), None, Some(gid))
        {
            tracing::warn!(volume_dir = %volume_dir.display(), %error, "cannot set the data directory's group");
        }
        if let Err(error) = csi_lib::write_next_issuance_time(volume_dir, next_renewal) {
            tracing::warn!(volume_dir = %volume_dir.display(), %error, "cannot record the next renewal in metadata.json");
        }
    }

    /// Takes the volume down: unmounts the target, removes what the layout keeps, removes the
    /// target directory. Safe to repeat. `ours` says whether this driver made the mount at the
    /// target (for its own layout: only then may it be unmounted and emptied). `keep_inmemfs`:
    /// the Go driver's tmpfs stays mounted after its last volume (new volumes go there).
    pub fn tear_down(
        &self,
        target: &Path,
        ours: bool,
        mounter: &dyn Mounter,
        keep_inmemfs: bool,
    ) -> io::Result<()> {
        match self {
            Layout::OwnTmpfs => {
                if ours && mounter.is_mounted(target)? {
                    mounter.unmount(target)?;
                }
                if ours && target.is_dir() {
                    files::clear(target)?;
                }
                remove_target_dir(target)
            }
            Layout::CsiLib { volume_dir, .. } => {
                // A bind mount from a real tmpfs, whatever mounter this driver runs with.
                let mounter = TmpfsMounter;
                if mounter.is_mounted(target)? {
                    mounter.unmount(target)?;
                }
                remove_target_dir(target)?;
                let Some(root) = CsiLibRoot::of_volume_dir(volume_dir) else {
                    return Ok(());
                };
                let volume_id = volume_dir
                    .file_name()
                    .and_then(|name| name.to_str())
                    .unwrap_or_default();
                // Its files are still bind-mounted somewhere else: they stay.
                if root.volume_still_mounted(volume_id)? {
                    tracing::warn!(volume_dir = %volume_dir.display(), "the Go driver's volume is still mounted elsewhere; keeping its files");
                    return Ok(());
                }
                match std::fs::remove_dir_all(volume_dir) {
                    Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                    _ => {}
                }
                // The Go driver never unmounts its inmemfs; this driver does once the last of its
                // volumes is gone, so a migrated node ends with no trace of it — unless new
                // volumes are published there (a fresh one could be laid out in the moment
                // between the check and the unmount).
                if !keep_inmemfs {
                    match root.release_inmemfs_if_unused() {
                        Ok(true) => tracing::info!(
                            inmemfs = %root.inmemfs().display(),
                            "the last volume adopted from the Go driver is gone; unmounted its tmpfs"
                        ),
                        Ok(false) => {}
                        Err(error) => tracing::warn!(
                            inmemfs = %root.inmemfs().display(),
                            %error,
                            "cannot unmount the Go driver's tmpfs"
                        ),
                    }
                }
                Ok(())
            }
        }
    }
}

fn remove_target_dir(target: &Path) -> io::Result<()> {
    // The error stays as the system gave it: whoever tears down tells a busy or non-empty target
    // (not this driver's) from a failure by its code.
    match std::fs::remove_dir(target) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}
