//! The files a pod sees, replaced atomically like Kubernetes' AtomicWriter.
//!
//! Layout inside a volume:
//!
//! ```text
//! ..2026_11_23_10_00_00.123456789_ab12/   the current set (hidden, one per write)
//! ..data -> ..2026_11_23_10_00_00.123456789_ab12
//! tls.crt -> ..data/tls.crt                 user-visible names, symlinks through ..data
//! tls.key -> ..data/tls.key
//! ```
//!
//! A write fills a fresh hidden directory, then switches `..data` with one `rename(2)`, so a reader
//! resolving a name sees either the whole old set or the whole new set, never a mix being written.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The symlink that points at the current set.
pub const DATA_LINK: &str = "..data";
const DATA_LINK_TMP: &str = "..data_tmp";

/// One file of a set.
pub struct FileToWrite<'a> {
    pub name: &'a str,
    pub contents: &'a [u8],
    /// Private keys and keystores: readable by the owner (and the fsGroup) only.
    pub secret: bool,
}

impl std::fmt::Debug for FileToWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileToWrite")
            .field("name", &self.name)
            .field("bytes", &self.contents.len())
            .field("secret", &self.secret)
            .finish()
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// Every file already had these contents, owner group and mode: nothing was touched.
    Unchanged,
}

/// Which modes the files of a volume get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileModes {
    /// This driver's own: keys and keystores 0600 (0640 when a group must read them), everything
    /// else 0644.
    Driver,
    /// What the Go driver (cert-manager/csi-lib) writes, kept for the volumes adopted from it so
    /// their pods see the same permissions after a renewal: every file 0440.
    CsiLib,
}

impl FileModes {
    /// The mode of one file.
    pub fn mode(self, secret: bool, group: Option<u32>) -> u32 {
        match (self, secret, group) {
            (FileModes::CsiLib, _, _) => 0o440,
            (FileModes::Driver, true, None) => 0o600,
            (FileModes::Driver, true, Some(_)) => 0o640,
            (FileModes::Driver, false, _) => 0o644,
        }
    }
}

fn matches_current(
    dir: &Path,
    files: &[FileToWrite<'_>],
    group: Option<u32>,
    modes: FileModes,
) -> bool {
    let data = dir.join(DATA_LINK);
    let Ok(entries) = fs::read_dir(&data) else {
        return false;
    };
    if entries.count() != files.len() {
        return false;
    }
    files.iter().all(|file| {
        let path = data.join(file.name);
        let Ok(metadata) = fs::metadata(&path) else {
            return false;
        };
        metadata.permissions().mode() & 0o7777 == modes.mode(file.secret, group)
            && group.is_none_or(|gid| metadata.gid() == gid)
            && fs::read(&path).is_ok_and(|current| current == file.contents)
    })
}

fn unique_dir_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "..{}.{:09}_{:04x}",
        now.as_secs(),
        now.subsec_nanos(),
        fastrand::u16(..)
    )
}

/// What writing `files` into `dir` takes of a tmpfs at the peak, in bytes: each file rounded up
/// to whole pages, as tmpfs counts it, the current set included (it stays until the new one is
/// complete), and a page for each directory and for slack.
pub fn space_needed(dir: &Path, files: &[FileToWrite<'_>]) -> u64 {
    const PAGE: u64 = 4096;
    let pages = |bytes: u64| bytes.div_ceil(PAGE).max(1) * PAGE;
    let new: u64 = files
        .iter()
        .map(|file| pages(file.contents.len() as u64))
        .sum();
    let current: u64 = fs::read_dir(dir.join(DATA_LINK))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.metadata().ok())
                .map(|metadata| pages(metadata.len()))
                .sum()
        })
        .unwrap_or(0);
    new + current + 2 * PAGE
}

/// Writes `files` into `dir` atomically. Names must already be validated plain file names.
pub fn write_file_set(
    dir: &Path,
    files: &[FileToWrite<'_>],
    group: Option<u32>,
    modes: FileModes,
) -> io::Result<WriteOutcome> {
    if matches_current(dir, files, group, modes) {
        return Ok(WriteOutcome::Unchanged);
    }
    let new_name = unique_dir_name();
    let new_dir = dir.join(&new_name);
    fs::DirBuilder::new().mode(0o755).create(&new_dir)?;
    // The umask must not narrow it: non-root pods read through this directory.
    fs::set_permissions(&new_dir, fs::Permissions::from_mode(0o755))?;
    let written = (|| {
        for file in files {
            let mode = modes.mode(file.secret, group);
            let mut handle = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(new_dir.join(file.name))?;
            if let Some(gid) = group {
                std::os::unix::fs::fchown(&handle, None, Some(gid))?;
            }
            // The umask may have masked bits off; set the exact mode.
            handle.set_permissions(fs::Permissions::from_mode(mode))?;
            handle.write_all(file.contents)?;
        }
        let link_tmp = dir.join(DATA_LINK_TMP);
        let _ = fs::remove_file(&link_tmp);
        std::os::unix::fs::symlink(&new_name, &link_tmp)?;
        fs::rename(&link_tmp, dir.join(DATA_LINK))
    })();
    if let Err(error) = written {
        let _ = fs::remove_dir_all(&new_dir);
        return Err(error);
    }

    // User-visible names: symlinks through ..data, created once and never replaced.
    for file in files {
        let visible = dir.join(file.name);
        let target = Path::new(DATA_LINK).join(file.name);
        match fs::read_link(&visible) {
            Ok(current) if current == target => {}
            Ok(_) => {
                fs::remove_file(&visible)?;
                std::os::unix::fs::symlink(&target, &visible)?;
            }
            Err(_) => {
                if fs::symlink_metadata(&visible).is_ok() {
                    fs::remove_file(&visible)?;
                }
                std::os::unix::fs::symlink(&target, &visible)?;
            }
        }
    }
    remove_stale_entries(dir, files, &new_name);
    Ok(WriteOutcome::Written)
}

/// Removes old hidden sets (including ones left by a crash mid-write) and visible names that are no
/// longer part of the set.
fn remove_stale_entries(dir: &Path, files: &[FileToWrite<'_>], current: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == current || name == DATA_LINK {
            continue;
        }
        let path = entry.path();
        if name.starts_with("..") {
            if path.is_dir() && !path.is_symlink() {
                let _ = fs::remove_dir_all(&path);
            } else {
                let _ = fs::remove_file(&path);
            }
        } else if path.is_symlink() && !files.iter().any(|file| file.name == name) {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Removes what a write interrupted by a crash can leave behind: hidden set directories that
/// `..data` does not point at, and a half-made `..data` link. The current set and the
/// user-visible names are untouched, so the pod never sees a half-written set. Returns how many
/// entries were removed.
pub fn tidy_after_crash(dir: &Path) -> usize {
    let current = fs::read_link(dir.join(DATA_LINK))
        .ok()
        .and_then(|name| name.to_str().map(str::to_string));
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("..") || name == DATA_LINK || current.as_deref() == Some(name) {
            continue;
        }
        let path = entry.path();
        let gone = if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed += usize::from(gone.is_ok());
    }
    removed
}

/// Reads one file of the current set.
pub fn read_current(dir: &Path, name: &str) -> io::Result<Vec<u8>> {
    fs::read(dir.join(DATA_LINK).join(name))
}

/// The directory `..data` points at, if a set has been written.
pub fn current_set(dir: &Path) -> Option<PathBuf> {
    fs::read_link(dir.join(DATA_LINK))
        .ok()
        .map(|name| dir.join(name))
}

/// Removes everything inside `dir` (not `dir` itself).
pub fn clear(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set<'a>(cert: &'a [u8], key: &'a [u8]) -> Vec<FileToWrite<'a>> {
        vec![
            FileToWrite {
                name: "tls.crt",
                contents: cert,
                secret: false,
            },
            FileToWrite {
                name: "tls.key",
                contents: key,
                secret: true,
            },
        ]
    }

    #[test]
    fn writes_through_data_link_with_modes() {
        let dir = tempfile::tempdir().unwrap();
        let outcome =
            write_file_set(dir.path(), &set(b"cert", b"key"), None, FileModes::Driver).unwrap();
        assert_eq!(outcome, WriteOutcome::Written);
        assert_eq!(fs::read(dir.path().join("tls.crt")).unwrap(), b"cert");
        assert_eq!(
            fs::read_link(dir.path().join("tls.key")).unwrap(),
            Path::new("..data/tls.key")
        );
        let key_mode = fs::metadata(dir.path().join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let cert_mode = fs::metadata(dir.path().join("tls.crt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(cert_mode & 0o777, 0o644);
    }

    #[test]
    fn unchanged_content_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        write_file_set(dir.path(), &set(b"cert", b"key"), None, FileModes::Driver).unwrap();
        let before = current_set(dir.path()).unwrap();
        let outcome =
            write_file_set(dir.path(), &set(b"cert", b"key"), None, FileModes::Driver).unwrap();
        assert_eq!(outcome, WriteOutcome::Unchanged);
        assert_eq!(current_set(dir.path()).unwrap(), before);
    }

    #[test]
    fn rotation_swaps_the_set_and_removes_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        write_file_set(dir.path(), &set(b"cert1", b"key1"), None, FileModes::Driver).unwrap();
        let old = current_set(dir.path()).unwrap();
        // A leftover of a crash mid-write is cleaned up by the next write.
        fs::create_dir(dir.path().join("..crashed_write")).unwrap();
        write_file_set(dir.path(), &set(b"cert2", b"key2"), None, FileModes::Driver).unwrap();
        assert_eq!(fs::read(dir.path().join("tls.key")).unwrap(), b"key2");
        assert!(!old.exists());
        assert!(!dir.path().join("..crashed_write").exists());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }

    #[test]
    fn group_makes_key_group_readable() {
        let dir = tempfile::tempdir().unwrap();
        let gid = rustix::process::getegid().as_raw();
        write_file_set(dir.path(), &set(b"c", b"k"), Some(gid), FileModes::Driver).unwrap();
        let metadata = fs::metadata(dir.path().join("tls.key")).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, 0o640);
        assert_eq!(metadata.gid(), gid);
    }

    #[test]
    fn csi_lib_modes_make_every_file_read_only_for_owner_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let gid = rustix::process::getegid().as_raw();
        write_file_set(dir.path(), &set(b"c", b"k"), Some(gid), FileModes::CsiLib).unwrap();
        for name in ["tls.crt", "tls.key"] {
            let metadata = fs::metadata(dir.path().join(name)).unwrap();
            assert_eq!(metadata.permissions().mode() & 0o777, 0o440, "{name}");
            assert_eq!(metadata.gid(), gid);
        }
        // The same contents under the other mode policy are a change, not a no-op.
        let outcome =
            write_file_set(dir.path(), &set(b"c", b"k"), Some(gid), FileModes::Driver).unwrap();
        assert_eq!(outcome, WriteOutcome::Written);
    }

    #[test]
    fn tidying_after_a_crash_keeps_the_current_set_only() {
        let dir = tempfile::tempdir().unwrap();
        write_file_set(dir.path(), &set(b"cert", b"key"), None, FileModes::Driver).unwrap();
        let current = current_set(dir.path()).unwrap();
        // What a crash between writing a new set and switching ..data leaves.
        fs::create_dir(dir.path().join("..2026_interrupted")).unwrap();
        fs::write(dir.path().join("..2026_interrupted/tls.key"), b"half").unwrap();
        std::os::unix::fs::symlink("..2026_interrupted", dir.path().join(DATA_LINK_TMP)).unwrap();
        assert_eq!(tidy_after_crash(dir.path()), 2);
        assert_eq!(current_set(dir.path()).unwrap(), current);
        assert_eq!(read_current(dir.path(), "tls.key").unwrap(), b"key");
        assert_eq!(fs::read(dir.path().join("tls.crt")).unwrap(), b"cert");
        assert_eq!(tidy_after_crash(dir.path()), 0);
    }

    #[test]
    fn clear_empties_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        write_file_set(dir.path(), &set(b"c", b"k"), None, FileModes::Driver).unwrap();
        clear(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
