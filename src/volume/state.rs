//! What the driver keeps on the node's disk to resume after a restart: one small JSON record per
//! volume under `<data-root>/volumes/`. No key material, no service-account tokens.
//!
//! Records are written with a temporary file and a rename, without fsync: they only need to
//! survive a crash of the driver (the page cache does), not a node reboot, because a reboot also
//! empties every tmpfs they describe.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::attributes::key::SERVICE_ACCOUNT_TOKENS;

/// How a volume is doing, for the `status` command: written after every issuance, renewal and
/// failure, next to the records (not needed to resume; a missing one only hides the last error).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeProgress {
    pub volume_id: String,
    /// The CertificateRequest behind the current certificate (cert-manager backend).
    // Spelled as earlier versions wrote it, so their progress files still read.
    #[serde(
        default,
        rename = "request_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_request: Option<String>,
    /// Unix seconds of the next renewal (or retry) the driver scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_renewal: Option<u64>,
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What the issuance waits for on the pod (a readiness gate), and since when (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_on: Option<(String, u64)>,
    /// Unix seconds of this update.
    pub updated: u64,
}

/// One volume as the driver must remember it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub volume_id: String,
    pub target_path: PathBuf,
    /// The volume context kubelet sent, minus the service-account tokens.
    pub volume_context: BTreeMap<String, String>,
    /// kubelet's `volume_mount_group` (the pod's fsGroup), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mount_group: Option<String>,
    /// For a volume taken over from the Go driver: its directory on the Go driver's inmemfs
    /// (`<csi-lib data root>/inmemfs/<volume-id>`), where its files live. Absent for this
    /// driver's own volumes (and in every record written before adoption existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_from: Option<PathBuf>,
    /// With `adopted_from`: this driver published the volume there itself, in the Go driver's
    /// layout (`--publish-in-csi-lib-layout`), rather than taking it over.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub published_in_csi_lib_layout: bool,
}

impl std::fmt::Debug for VolumeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeRecord")
            .field("volume_id", &self.volume_id)
            .field("target_path", &self.target_path)
            .field(
                "volume_context",
                &crate::attributes::redacted_context(&self.volume_context),
            )
            .field("volume_mount_group", &self.volume_mount_group)
            .field("adopted_from", &self.adopted_from)
            .field(
                "published_in_csi_lib_layout",
                &self.published_in_csi_lib_layout,
            )
            .finish()
    }
}

impl VolumeRecord {
    /// The same record without the volume context, for keeping in memory.
    pub fn without_context(&self) -> VolumeRecord {
        VolumeRecord {
            volume_id: self.volume_id.clone(),
            target_path: self.target_path.clone(),
            volume_context: BTreeMap::new(),
            volume_mount_group: self.volume_mount_group.clone(),
            adopted_from: self.adopted_from.clone(),
            published_in_csi_lib_layout: self.published_in_csi_lib_layout,
        }
    }

    pub fn new<'a>(
        volume_id: &str,
        target_path: &Path,
        volume_context: impl IntoIterator<Item = (&'a String, &'a String)>,
        volume_mount_group: Option<String>,
    ) -> VolumeRecord {
        VolumeRecord {
            volume_id: volume_id.to_string(),
            target_path: target_path.to_path_buf(),
            volume_context: volume_context
                .into_iter()
                .filter(|(key, _)| key.as_str() != SERVICE_ACCOUNT_TOKENS)
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            volume_mount_group,
            adopted_from: None,
            published_in_csi_lib_layout: false,
        }
    }
}

/// The directory of volume records.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    /// `<data-root>/status`: one [`VolumeProgress`] per volume.
    progress_dir: PathBuf,
}

/// Maps a volume ID to a file name that cannot leave the directory: anything but
/// `[A-Za-z0-9_-]` is percent-escaped, so `.` and `/` never appear. A name that would outgrow
/// the file system's 255 bytes (an ID of 128 odd bytes escapes to 384) is `%%` and the SHA-256 of
/// the ID instead; escaping never produces `%%`, so the two kinds cannot collide.
pub fn record_file_name(volume_id: &str) -> String {
    let mut name = String::with_capacity(volume_id.len() + 5);
    for byte in volume_id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    if name.len() + ".json".len() > 255 {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, volume_id.as_bytes());
        name = digest
            .as_ref()
            .iter()
            .fold("%%".to_string(), |mut hex, byte| {
                hex.push_str(&format!("{byte:02x}"));
                hex
            });
    }
    name.push_str(".json");
    name
}

impl StateStore {
    /// Opens (creating, mode 0700) `<data_root>/volumes`.
    pub fn open(data_root: &Path) -> io::Result<StateStore> {
        let dir = data_root.join("volumes");
        let progress_dir = data_root.join("status");
        for dir in [&dir, &progress_dir] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        Ok(StateStore { dir, progress_dir })
    }

    /// Opens the state of a driver for reading only (the `status` command): creates nothing.
    pub fn open_existing(data_root: &Path) -> StateStore {
        StateStore {
            dir: data_root.join("volumes"),
            progress_dir: data_root.join("status"),
        }
    }

    fn progress_path(&self, volume_id: &str) -> PathBuf {
        self.progress_dir.join(record_file_name(volume_id))
    }

    /// Saves how a volume is doing.
    pub fn save_progress(&self, progress: &VolumeProgress) -> io::Result<()> {
        // 0600 like the records: last errors may name the pod's setup.
        write_private_json(&self.progress_path(&progress.volume_id), progress)
    }

    /// Removes a volume's progress file (it is healthy again).
    pub fn remove_progress(&self, volume_id: &str) {
        let _ = fs::remove_file(self.progress_path(volume_id));
    }

    /// How a volume was doing when last saved.
    pub fn load_progress(&self, volume_id: &str) -> Option<VolumeProgress> {
        let bytes = fs::read(self.progress_path(volume_id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, volume_id: &str) -> PathBuf {
        self.dir.join(record_file_name(volume_id))
    }

    /// Saves a record (mode 0600: the context may hold a keystore password).
    pub fn save(&self, record: &VolumeRecord) -> io::Result<()> {
        write_private_json(&self.path(&record.volume_id), record)
    }

    /// One volume's record, read again (a resting volume's attributes, when its renewal comes).
    pub fn load(&self, volume_id: &str) -> io::Result<VolumeRecord> {
        let bytes = fs::read(self.path(volume_id))?;
        serde_json::from_slice(&bytes)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }

    /// Removes a record; a missing one is fine.
    pub fn remove(&self, volume_id: &str) -> io::Result<()> {
        let _ = fs::remove_file(self.progress_path(volume_id));
        match fs::remove_file(self.path(volume_id)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// Every record on disk, read one at a time (10,000 records held at once would double the
    /// driver's memory at start-up). Unreadable files come as errors with their path, so the
    /// caller can report and remove them; leftover temporary files are deleted.
    pub fn records(
        &self,
    ) -> io::Result<impl Iterator<Item = Result<VolumeRecord, (PathBuf, String)>> + use<>> {
        self.read_records(true)
    }

    /// Like [`StateStore::records`], but touches nothing (the `status` command, which may run
    /// while the driver is writing).
    pub fn records_read_only(
        &self,
    ) -> io::Result<impl Iterator<Item = Result<VolumeRecord, (PathBuf, String)>> + use<>> {
        self.read_records(false)
    }

    fn read_records(
        &self,
        remove_temporaries: bool,
    ) -> io::Result<impl Iterator<Item = Result<VolumeRecord, (PathBuf, String)>> + use<>> {
        let entries = fs::read_dir(&self.dir)?;
        Ok(entries.filter_map(move |entry| {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(error) => return Some(Err((PathBuf::new(), error.to_string()))),
            };
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".json.tmp") {
                if remove_temporaries {
                    let _ = fs::remove_file(&path);
                }
                return None;
            }
            if !name.ends_with(".json") {
                return None;
            }
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<VolumeRecord>(&bytes).map_err(|e| e.to_string())
                });
            Some(parsed.map_err(|reason| (path, reason)))
        }))
    }

    /// Every record on disk, collected (for tests and small tools).
    pub fn load_all(&self) -> io::Result<Vec<Result<VolumeRecord, (PathBuf, String)>>> {
        Ok(self.records()?.collect())
    }

    /// Removes a file that [`StateStore::load_all`] could not read.
    pub fn remove_path(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
}

/// Writes `value` as JSON to `path`, mode 0600, through a temporary file and a rename so that a
/// reader never sees half of it.
fn write_private_json(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    replace_private_file(path, &path.with_extension("json.tmp"), &json)
}

/// Replaces `path` with `contents`, mode 0600: written to `temporary` (beside it), then renamed
/// over it, so that a reader sees the old file or the new one, never half of one.
pub(crate) fn replace_private_file(
    path: &Path,
    temporary: &Path,
    contents: &[u8],
) -> io::Result<()> {
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temporary)
        .and_then(|mut file| file.write_all(contents))
        .and_then(|()| fs::rename(temporary, path));
    if written.is_err() {
        // A full disk leaves no half-written file behind.
        let _ = fs::remove_file(temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn volume_ids_cannot_escape_the_directory() {
        assert_eq!(record_file_name("csi-abc_1"), "csi-abc_1.json");
        assert_eq!(
            record_file_name("../../etc/passwd"),
            "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd.json"
        );
    }

    #[test]
    fn long_volume_ids_get_names_the_file_system_accepts() {
        let odd = ".".repeat(128);
        let name = record_file_name(&odd);
        assert!(name.len() <= 255, "{}", name.len());
        assert!(name.starts_with("%%") && name.ends_with(".json"));
        assert_ne!(record_file_name(&".".repeat(127)), name);
        // A record of such a volume is saved and read back.
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path()).unwrap();
        let record = VolumeRecord::new(&odd, Path::new("/t"), &HashMap::new(), None);
        store.save(&record).unwrap();
        assert_eq!(
            store.load_all().unwrap()[0].as_ref().unwrap().volume_id,
            odd
        );
    }

    #[test]
    fn records_round_trip_without_tokens() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path()).unwrap();
        let context: HashMap<String, String> = [
            ("csi.cert-manager.io/issuer-name", "ca"),
            (SERVICE_ACCOUNT_TOKENS, "{\"\":{\"token\":\"secret\"}}"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let record = VolumeRecord::new("csi-1", Path::new("/target"), &context, None);
        store.save(&record).unwrap();
        let text = fs::read_to_string(store.dir().join("csi-1.json")).unwrap();
        assert!(!text.contains("secret"));
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].as_ref().unwrap(), &record);
        store.remove("csi-1").unwrap();
        store.remove("csi-1").unwrap();
        assert!(store.load_all().unwrap().is_empty());
    }

    #[test]
    fn corrupt_records_are_reported_not_fatal() {
        let root = tempfile::tempdir().unwrap();
        let store = StateStore::open(root.path()).unwrap();
        fs::write(store.dir().join("bad.json"), b"{not json").unwrap();
        let loaded = store.load_all().unwrap();
        assert!(loaded[0].is_err());
    }
}
