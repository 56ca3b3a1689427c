//! Mounting the per-volume tmpfs, behind a trait so that unprivileged runs (tests without root, the
//! demo's announced fallback) can use plain directories instead.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::mount::{MountFlags, UnmountFlags};

/// Mounts and unmounts volume filesystems.
pub trait Mounter: Send + Sync + 'static {
    /// Short name for logs and the demo.
    fn kind(&self) -> &'static str;
    /// Mounts a fresh size-capped tmpfs at `target` (an existing directory).
    fn mount_tmpfs(&self, target: &Path, size_bytes: u64) -> io::Result<()>;
    /// Unmounts what [`Mounter::mount_tmpfs`] mounted.
    fn unmount(&self, target: &Path) -> io::Result<()>;
    /// Whether `target` currently holds a volume filesystem.
    fn is_mounted(&self, target: &Path) -> io::Result<bool>;
    /// Whether `target` holds a volume this driver made, even one it has no record of (a publish
    /// that died half-way): only those may be unmounted and emptied.
    fn holds_volume(&self, target: &Path) -> io::Result<bool>;
    /// Whether key material may be written into `target` now: it is a mounted, memory-backed
    /// filesystem (checked before every write, so a mount swapped behind the driver's back never
    /// receives a key).
    fn holds_memory_volume(&self, target: &Path) -> io::Result<bool>;
}

/// Whether `path` is on a tmpfs.
pub fn is_on_tmpfs(path: &Path) -> io::Result<bool> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let stat = rustix::fs::statfs(path)?;
    #[allow(clippy::unnecessary_cast)]
    Ok(stat.f_type as i64 == TMPFS_MAGIC)
}

/// The mount source every volume tmpfs carries, so the driver can recognise its own mounts.
pub const MOUNT_SOURCE: &str = "cert-manager-csi";

/// Real tmpfs mounts: key material lives in memory only, and the size cap keeps a pod from filling
/// node memory.
#[derive(Debug, Default)]
pub struct TmpfsMounter;

impl Mounter for TmpfsMounter {
    fn kind(&self) -> &'static str {
        "tmpfs"
    }

    fn mount_tmpfs(&self, target: &Path, size_bytes: u64) -> io::Result<()> {
        let options = std::ffi::CString::new(format!("size={size_bytes},mode=0755"))
            .map_err(io::Error::other)?;
        rustix::mount::mount(
            MOUNT_SOURCE,
            target,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            options.as_c_str(),
        )?;
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        match rustix::mount::unmount(target, UnmountFlags::empty()) {
            Ok(()) => Ok(()),
            // Something still has it open: detach it now, the kernel frees it when released.
            Err(rustix::io::Errno::BUSY) => {
                tracing::warn!(target = %target.display(), "volume busy, detaching lazily");
                Ok(rustix::mount::unmount(target, UnmountFlags::DETACH)?)
            }
            Err(error) => Err(error.into()),
        }
    }

    fn is_mounted(&self, target: &Path) -> io::Result<bool> {
        // Every volume is its own tmpfs, so it has its own device number: a target on the same
        // device as its parent is not mounted. One stat pair instead of reading the mount table.
        let target_meta = match std::fs::metadata(target) {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error),
        };
        let parent = target.parent().unwrap_or(Path::new("/"));
        Ok(std::fs::metadata(parent)?.dev() != target_meta.dev())
    }

    fn holds_memory_volume(&self, target: &Path) -> io::Result<bool> {
        // Two cheap system calls per write, not a read of the mount table.
        Ok(self.is_mounted(target)? && is_on_tmpfs(target)?)
    }

    fn holds_volume(&self, target: &Path) -> io::Result<bool> {
        let entries = super::mountinfo::read_current()?;
        Ok(super::mountinfo::find_mount(&entries, target)
            .is_some_and(|entry| entry.fs_type == "tmpfs" && entry.source == MOUNT_SOURCE))
    }
}

/// No mounts at all: the volume is a plain directory. For unprivileged runs only; the files are
/// then on whatever filesystem holds the target, which the demo announces.
#[derive(Debug, Default)]
pub struct PlainDirectoryMounter;

impl Mounter for PlainDirectoryMounter {
    fn kind(&self) -> &'static str {
        "plain directory (no mount)"
    }

    fn mount_tmpfs(&self, _target: &Path, _size_bytes: u64) -> io::Result<()> {
        Ok(())
    }

    fn unmount(&self, _target: &Path) -> io::Result<()> {
        Ok(())
    }

    /// The directory stands in for the mount.
    fn is_mounted(&self, target: &Path) -> io::Result<bool> {
        Ok(target.is_dir())
    }

    fn holds_volume(&self, target: &Path) -> io::Result<bool> {
        Ok(target.join(super::files::DATA_LINK).exists())
    }

    /// Plain directories are this mounter's announced fallback: nothing is memory-backed.
    fn holds_memory_volume(&self, target: &Path) -> io::Result<bool> {
        Ok(target.is_dir())
    }
}
