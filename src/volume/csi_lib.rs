//! The Go driver's volumes on a node (cert-manager/csi-lib v0.12, csi-driver v0.16), read so this
//! driver can take them over without draining a workload.
//!
//! What the Go driver leaves under its data root:
//!
//! ```text
//! <data-root>/inmemfs/                  one tmpfs (no size option) for every volume
//! <data-root>/inmemfs/<volume-id>/
//!     metadata.json                     volumeID, targetPath, nextIssuanceTime, volumeContext,
//!                                       volumeMountGroup
//!     data/                             0550; AtomicWriter layout (..<timestamp>/, ..data, and
//!                                       a symlink per file name), files 0440
//! ```
//!
//! and each pod's target path is a read-only bind mount of `<volume-id>/data`: in mountinfo its
//! device is the inmemfs tmpfs's and its root `/<volume-id>/data`. Deciding what to do with each
//! volume ([`judge`]) is pure and reads only the mount table; the rest are the few file
//! operations adoption needs.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::mountinfo::{self, MountEntry};

/// The tmpfs the Go driver mounts under its data root.
pub const INMEMFS: &str = "inmemfs";
/// Each volume's record, in its directory on the inmemfs.
pub const METADATA_FILE: &str = "metadata.json";
/// Each volume's files, bind-mounted into the pod.
pub const DATA_DIR: &str = "data";

/// A volume's `metadata.json`, field for field as csi-lib writes it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(rename = "volumeID")]
    pub volume_id: String,
    #[serde(rename = "targetPath")]
    pub target_path: PathBuf,
    /// RFC 3339; `0001-01-01T00:00:00Z` when the Go driver ran with `--continue-on-not-ready` and
    /// had not issued yet.
    #[serde(
        rename = "nextIssuanceTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_issuance_time: Option<String>,
    /// The full NodePublishVolume context, service-account tokens included.
    #[serde(rename = "volumeContext", default)]
    pub volume_context: BTreeMap<String, String>,
    #[serde(
        rename = "volumeMountGroup",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub volume_mount_group: String,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metadata")
            .field("volume_id", &self.volume_id)
            .field("target_path", &self.target_path)
            .field("next_issuance_time", &self.next_issuance_time)
            .field(
                "volume_context",
                &crate::attributes::redacted_context(&self.volume_context),
            )
            .field("volume_mount_group", &self.volume_mount_group)
            .finish()
    }
}

/// What `nextIssuanceTime` says before the first issuance of a volume this driver published in
/// the Go driver's layout: Go's zero time, which the Go driver reads as "issue at once". (csi-lib
/// leaves the field out until its first issuance, and then never resumes the volume after a
/// restart; the zero time hands a rollback a volume it finishes issuing.)
pub const ISSUE_AT_ONCE: &str = "0001-01-01T00:00:00Z";

impl Metadata {
    /// The bytes csi-lib writes: Go's `json.Marshal` of its struct (fields in struct order,
    /// `omitempty` fields left out, map keys sorted, Go's string escaping).
    pub fn to_go_json(&self) -> String {
        let mut json = String::from("{\"volumeID\":");
        go_json_string(&mut json, &self.volume_id);
        json.push_str(",\"targetPath\":");
        go_json_string(&mut json, &self.target_path.to_string_lossy());
        if let Some(at) = &self.next_issuance_time {
            json.push_str(",\"nextIssuanceTime\":");
            go_json_string(&mut json, at);
        }
        if !self.volume_context.is_empty() {
            json.push_str(",\"volumeContext\":{");
            for (index, (key, value)) in self.volume_context.iter().enumerate() {
                if index > 0 {
                    json.push(',');
                }
                go_json_string(&mut json, key);
                json.push(':');
                go_json_string(&mut json, value);
            }
            json.push('}');
        }
        if !self.volume_mount_group.is_empty() {
            json.push_str(",\"volumeMountGroup\":");
            go_json_string(&mut json, &self.volume_mount_group);
        }
        json.push('}');
        json
    }
}

/// A JSON string as Go's encoding/json writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped (its
/// HTML-safe default), `\n` `\r` `\t` short, every other control character as `\u00xx`.
/// (serde_json writes `\b`/`\f` and leaves `<>&` as they are: the same value, other bytes.)
fn go_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `metadata.json` whole: a temporary file in the volume's own directory (the Go driver
/// panics at start on anything but directories in the inmemfs), renamed over the old one.
fn write_metadata(volume_dir: &Path, metadata: &Metadata) -> io::Result<()> {
    super::state::replace_private_file(
        &volume_dir.join(METADATA_FILE),
        &volume_dir.join(".metadata.json.tmp"),
        metadata.to_go_json().as_bytes(),
    )
}

/// The Go driver's data root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsiLibRoot {
    root: PathBuf,
}

/// One entry of the inmemfs, as found.
#[derive(Debug)]
pub enum Found {
    /// A volume directory with a readable `metadata.json`.
    Volume {
        /// The directory's name: the volume ID, verbatim.
        volume_id: String,
        metadata: Box<Metadata>,
    },
    /// A directory whose `metadata.json` is missing: the Go driver treats it as garbage.
    NoMetadata(PathBuf),
    /// A `metadata.json` that cannot be read or parsed, or that names another volume.
    Unreadable { path: PathBuf, reason: String },
}

impl CsiLibRoot {
    pub fn new(root: impl Into<PathBuf>) -> CsiLibRoot {
        CsiLibRoot { root: root.into() }
    }

    /// The root a volume directory (`<root>/inmemfs/<volume-id>`) belongs to.
    pub fn of_volume_dir(volume_dir: &Path) -> Option<CsiLibRoot> {
        let inmemfs = volume_dir.parent()?;
        let root = inmemfs.parent()?;
        (inmemfs.file_name()? == INMEMFS).then(|| CsiLibRoot::new(root))
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn inmemfs(&self) -> PathBuf {
        self.root.join(INMEMFS)
    }

    pub fn volume_dir(&self, volume_id: &str) -> PathBuf {
        self.inmemfs().join(volume_id)
    }

    /// Every entry of the inmemfs. A missing inmemfs directory is an empty list: that node never
    /// ran the Go driver.
    pub fn scan(&self) -> io::Result<Vec<Found>> {
        let entries = match fs::read_dir(self.inmemfs()) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let metadata_path = path.join(METADATA_FILE);
            let Some(volume_id) = entry.file_name().to_str().map(str::to_string) else {
                found.push(Found::Unreadable {
                    path: metadata_path,
                    reason: "the directory name is not UTF-8".into(),
                });
                continue;
            };
            found.push(match read_metadata(&metadata_path) {
                Ok(metadata) if metadata.volume_id == volume_id => Found::Volume {
                    volume_id,
                    metadata: Box::new(metadata),
                },
                Ok(metadata) => Found::Unreadable {
                    path: metadata_path,
                    reason: format!(
                        "it names volume {:?}, not its directory's {volume_id:?}",
                        metadata.volume_id
                    ),
                },
                Err(error) if error.kind() == io::ErrorKind::NotFound => Found::NoMetadata(path),
                Err(error) => Found::Unreadable {
                    path: metadata_path,
                    reason: error.to_string(),
                },
            });
        }
        found.sort_by(|a, b| sort_key(a).cmp(sort_key(b)));
        Ok(found)
    }

    /// Mounts the Go driver's tmpfs at `inmemfs` as its start-up does (source `tmpfs`, no options,
    /// so no size cap) unless something is mounted there already, which is then used as it is.
    pub fn ensure_inmemfs(&self) -> io::Result<()> {
        // Two first publishes at once must not mount it twice.
        static MOUNTING: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
        let _one_at_a_time = MOUNTING.lock();
        let inmemfs = self.inmemfs();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&inmemfs)?;
        let mounts = mountinfo::read_current()?;
        if mountinfo::find_mount(&mounts, &inmemfs).is_some() {
            return Ok(());
        }
        rustix::mount::mount(
            "tmpfs",
            &inmemfs,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None::<&std::ffi::CStr>,
        )?;
        Ok(())
    }

    /// Lays a new volume out as csi-lib's publish does, short of its files: `<volume-id>/` (0644),
    /// `metadata.json` (0600) and `data/` (0550, owned by `group`). Returns the volume directory.
    /// A directory left by an earlier attempt is reused, its metadata rewritten.
    pub fn create_volume(&self, metadata: &Metadata, group: Option<u32>) -> io::Result<PathBuf> {
        let volume_dir = self.volume_dir(&metadata.volume_id);
        match fs::DirBuilder::new().mode(0o644).create(&volume_dir) {
            Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
            _ => {}
        }
        write_metadata(&volume_dir, metadata)?;
        let data = volume_dir.join(DATA_DIR);
        match fs::DirBuilder::new().mode(0o550).create(&data) {
            Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
            _ => {}
        }
        // The mode as given, whatever the umask.
        fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o550))?;
        if let Some(gid) = group {
            std::os::unix::fs::lchown(&data, None, Some(gid))?;
        }
        Ok(volume_dir)
    }

    /// The inmemfs mount, if it is mounted (and a tmpfs).
    pub fn inmemfs_mount<'a>(&self, mounts: &'a [MountEntry]) -> Option<&'a MountEntry> {
        mountinfo::find_mount(mounts, &self.inmemfs()).filter(|entry| entry.fs_type == "tmpfs")
    }

    /// A volume's `metadata.json`.
    pub fn metadata(&self, volume_id: &str) -> io::Result<Metadata> {
        read_metadata(&self.volume_dir(volume_id).join(METADATA_FILE))
    }

    /// Whether `target` is this volume's bind mount from the inmemfs (the mount table says so).
    pub fn mounts_volume_at(&self, volume_id: &str, target: &Path) -> io::Result<bool> {
        let mounts = mountinfo::read_current()?;
        Ok(self.inmemfs_mount(&mounts).is_some_and(|inmemfs| {
            judge(volume_id, target, &mounts, inmemfs, |_| true) == Verdict::Adopt
        }))
    }

    /// Whether any bind mount of this volume's `data/` is left in this mount namespace.
    pub fn volume_still_mounted(&self, volume_id: &str) -> io::Result<bool> {
        let mounts = mountinfo::read_current()?;
        let root = bind_root(volume_id);
        Ok(self.inmemfs_mount(&mounts).is_some_and(|inmemfs| {
            mounts
                .iter()
                .any(|entry| entry.device == inmemfs.device && entry.root == root)
        }))
    }

    /// Unmounts the inmemfs once nothing of the Go driver's needs it: no volume directory with a
    /// `metadata.json` (readable or not) is left in it, and no bind mount from it remains in this
    /// mount namespace. Directories without `metadata.json` are garbage to the Go driver too and go
    /// with the tmpfs. Returns whether it unmounted.
    pub fn release_inmemfs_if_unused(&self) -> io::Result<bool> {
        // Two unpublishes finishing together must not both decide and unmount.
        static RELEASING: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
        let _one_at_a_time = RELEASING.lock();
        let mounts = mountinfo::read_current()?;
        let Some(inmemfs) = self.inmemfs_mount(&mounts) else {
            return Ok(false);
        };
        let in_use = self
            .scan()?
            .iter()
            .any(|found| !matches!(found, Found::NoMetadata(_)))
            || mounts
                .iter()
                .any(|entry| entry.device == inmemfs.device && entry.mount_id != inmemfs.mount_id);
        if in_use {
            return Ok(false);
        }
        rustix::mount::unmount(self.inmemfs(), rustix::mount::UnmountFlags::empty())?;
        Ok(true)
    }
}

fn sort_key(found: &Found) -> &Path {
    match found {
        Found::Volume { metadata, .. } => &metadata.target_path,
        Found::NoMetadata(path) | Found::Unreadable { path, .. } => path,
    }
}

fn read_metadata(path: &Path) -> io::Result<Metadata> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

/// Where a Go driver volume's files are mounted, as the mount table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its target path is a bind mount of its `data/` directory: the pod uses it; take it over.
    Adopt,
    /// Nothing mounts it any more (the Go driver stopped between unmounting and removing it):
    /// remove its directory, as the Go driver's unpublish would have.
    Gone,
    /// Its `data/` is mounted, but not at the target its metadata names: left alone.
    MountedElsewhere(PathBuf),
    /// Its target is under a kubelet pods directory this driver cannot see (that directory is
    /// not mounted into the driver's container), or is not a kubelet path at all, so the mount
    /// table proves nothing: left alone. Holds the directory that should have been visible.
    Unknowable(PathBuf),
}

/// `/<volume-id>/data`: the root, within the inmemfs, of a volume's bind mounts.
pub fn bind_root(volume_id: &str) -> PathBuf {
    Path::new("/").join(volume_id).join(DATA_DIR)
}

/// What to do with one volume, given the mount table and the inmemfs mount. Pure.
pub fn judge(
    volume_id: &str,
    target: &Path,
    mounts: &[MountEntry],
    inmemfs: &MountEntry,
    kubelet_pods_visible: impl Fn(&Path) -> bool,
) -> Verdict {
    let root = bind_root(volume_id);
    let from_volume = |entry: &MountEntry| entry.device == inmemfs.device && entry.root == root;
    if mountinfo::find_mount(mounts, target).is_some_and(from_volume) {
        return Verdict::Adopt;
    }
    if let Some(elsewhere) = mounts.iter().find(|entry| from_volume(entry)) {
        return Verdict::MountedElsewhere(elsewhere.mount_point.clone());
    }
    match kubelet_pods_dir(target) {
        Some(pods) if kubelet_pods_visible(&pods) => Verdict::Gone,
        Some(pods) => Verdict::Unknowable(pods),
        None => Verdict::Unknowable(target.to_path_buf()),
    }
}

/// Whether `name` is one plain path component (what a volume ID must be to name a directory).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// `<kubelet>/pods` of a kubelet target path (`<kubelet>/pods/<uid>/volumes/kubernetes.io~csi/
/// <name>/mount`); `None` for a path of another shape.
pub fn kubelet_pods_dir(target: &Path) -> Option<PathBuf> {
    let mut ancestors = target.ancestors();
    let csi = ancestors.nth(2)?;
    let pods = ancestors.nth(2)?;
    let is_kubelet_path = csi.file_name()? == "kubernetes.io~csi"
        && csi.parent()?.file_name()? == "volumes"
        && pods.file_name()? == "pods"
        && target
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    is_kubelet_path.then(|| pods.to_path_buf())
}

/// Sets `nextIssuanceTime` in a volume's `metadata.json`, keeping every other field as it is, so
/// that a rollback to the Go driver renews when this driver would have. Written through a
/// temporary file and a rename, mode 0600 as csi-lib writes it.
pub fn write_next_issuance_time(volume_dir: &Path, at: SystemTime) -> io::Result<()> {
    let mut metadata = read_metadata(&volume_dir.join(METADATA_FILE))?;
    let at = time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .map_err(io::Error::other)?
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(io::Error::other)?;
    metadata.next_issuance_time = Some(at);
    write_metadata(volume_dir, &metadata)
}

/// Replaces the volume context in `metadata.json`, as csi-lib does when a republish brings a
/// different one (kubelet's token refresh with `requiresRepublish`): the Go driver builds its
/// requests from it, service-account tokens included. Nothing is written when it is unchanged.
pub fn write_volume_context(
    volume_dir: &Path,
    context: &std::collections::HashMap<String, String>,
) -> io::Result<()> {
    let mut metadata = read_metadata(&volume_dir.join(METADATA_FILE))?;
    let context: BTreeMap<String, String> = context
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if metadata.volume_context == context {
        return Ok(());
    }
    metadata.volume_context = context;
    write_metadata(volume_dir, &metadata)
}

/// Serves a volume's `data/` at kubelet's target as csi-lib does: the target made if missing
/// (`MkdirAll(target, 0440)`), then a bind mount remounted read-only (mount-utils' `bind,ro`).
pub fn bind_data_at(volume_dir: &Path, target: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o440).create(target) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
        _ => {}
    }
    rustix::mount::mount_bind(volume_dir.join(DATA_DIR), target)?;
    if let Err(error) = rustix::mount::mount_remount(
        target,
        rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY,
        "",
    ) {
        // Never left writable for the pod.
        let _ = rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty());
        return Err(error.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors made by Go's encoding/json (tests/fixtures/csi_lib_metadata/generate.go, Go 1.19).
    #[test]
    fn metadata_is_written_as_go_writes_it() {
        #[derive(Deserialize)]
        struct Vector {
            name: String,
            volume_id: String,
            target_path: PathBuf,
            next_issuance_time: Option<String>,
            volume_context: BTreeMap<String, String>,
            volume_mount_group: String,
            go_json: String,
        }
        let vectors: Vec<Vector> = serde_json::from_str(include_str!(
            "../../tests/fixtures/csi_lib_metadata/vectors.json"
        ))
        .unwrap();
        assert_eq!(vectors.len(), 4);
        for vector in vectors {
            let metadata = Metadata {
                volume_id: vector.volume_id,
                target_path: vector.target_path,
                next_issuance_time: vector.next_issuance_time,
                volume_context: vector.volume_context,
                volume_mount_group: vector.volume_mount_group,
            };
            assert_eq!(metadata.to_go_json(), vector.go_json, "{}", vector.name);
            // And what it writes reads back as it was.
            let read: Metadata = serde_json::from_str(&metadata.to_go_json()).unwrap();
            assert!(read == metadata, "{}", vector.name);
        }
    }

    // Two tmpfs mounts: the inmemfs (0:50) and an unrelated one (0:60); three bind mounts of
    // the inmemfs at kubelet targets.
    const MOUNTS: &str = "\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
30 22 0:50 / /csi-data-dir/inmemfs rw,relatime shared:10 - tmpfs tmpfs rw
31 22 0:50 /csi-aaa/data /var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/tls/mount ro,relatime shared:10 - tmpfs tmpfs rw
32 22 0:50 /csi-bbb/data /somewhere/else ro,relatime shared:10 - tmpfs tmpfs rw
33 22 0:60 / /var/lib/kubelet/pods/p3/volumes/kubernetes.io~csi/tls/mount rw,relatime - tmpfs cert-manager-csi rw
34 22 0:50 /csi-ddd/data /var/lib/kubelet/pods/p4/volumes/kubernetes.io~csi/tls/mount ro,relatime shared:10 - tmpfs tmpfs rw
";

    fn target(pod: &str) -> PathBuf {
        PathBuf::from(format!(
            "/var/lib/kubelet/pods/{pod}/volumes/kubernetes.io~csi/tls/mount"
        ))
    }

    #[test]
    fn volumes_are_judged_by_the_bind_mount_at_their_target() {
        let mounts = mountinfo::parse(MOUNTS);
        let root = CsiLibRoot::new("/csi-data-dir");
        let inmemfs = root.inmemfs_mount(&mounts).unwrap();
        let visible = |_: &Path| true;
        assert_eq!(
            judge("csi-aaa", &target("p1"), &mounts, inmemfs, visible),
            Verdict::Adopt
        );
        assert_eq!(
            judge("csi-bbb", &target("p2"), &mounts, inmemfs, visible),
            Verdict::MountedElsewhere(PathBuf::from("/somewhere/else"))
        );
        // p3's target holds some other tmpfs, p5's nothing: csi-ccc and csi-eee are unused.
        assert_eq!(
            judge("csi-ccc", &target("p3"), &mounts, inmemfs, visible),
            Verdict::Gone
        );
        assert_eq!(
            judge("csi-eee", &target("p5"), &mounts, inmemfs, visible),
            Verdict::Gone
        );
        // A bind mount of another volume's data at the target is not this volume's.
        assert_eq!(
            judge("csi-aaa", &target("p4"), &mounts, inmemfs, visible),
            Verdict::MountedElsewhere(target("p1"))
        );
    }

    #[test]
    fn nothing_is_removed_when_the_kubelet_pods_directory_is_not_visible() {
        let mounts = mountinfo::parse(MOUNTS);
        let root = CsiLibRoot::new("/csi-data-dir");
        let inmemfs = root.inmemfs_mount(&mounts).unwrap();
        assert_eq!(
            judge("csi-eee", &target("p5"), &mounts, inmemfs, |_| false),
            Verdict::Unknowable(PathBuf::from("/var/lib/kubelet/pods"))
        );
        // Nor for a target that is not a kubelet path: nothing says where its mount would be.
        assert_eq!(
            judge(
                "csi-eee",
                Path::new("/mnt/elsewhere"),
                &mounts,
                inmemfs,
                |_| true
            ),
            Verdict::Unknowable(PathBuf::from("/mnt/elsewhere"))
        );
        // A mounted volume is still adopted: the mount itself is the proof.
        assert_eq!(
            judge("csi-aaa", &target("p1"), &mounts, inmemfs, |_| false),
            Verdict::Adopt
        );
    }

    #[test]
    fn only_plain_names_can_name_a_volume_directory() {
        assert!(is_plain_name("csi-0123abcd"));
        for bad in ["", ".", "..", "a/b", "/abs", "../x"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn kubelet_target_paths_are_recognised() {
        assert_eq!(
            kubelet_pods_dir(&target("uid")),
            Some(PathBuf::from("/var/lib/kubelet/pods"))
        );
        assert_eq!(kubelet_pods_dir(Path::new("/mnt/x")), None);
        assert_eq!(
            kubelet_pods_dir(Path::new(
                "/var/lib/kubelet/pods/u/../x/kubernetes.io~csi/t/mount"
            )),
            None
        );
    }

    #[test]
    fn metadata_reads_what_csi_lib_writes() {
        // As csi-lib's json.Marshal writes it (no spaces, field order of the Go struct).
        let json = r#"{"volumeID":"csi-abc","targetPath":"/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/tls/mount","nextIssuanceTime":"2026-12-01T10:00:00.123456789Z","volumeContext":{"csi.cert-manager.io/issuer-name":"ca","csi.storage.k8s.io/serviceAccount.tokens":"{\"\":{\"token\":\"eyJ\"}}"},"volumeMountGroup":"2000"}"#;
        let metadata: Metadata = serde_json::from_str(json).unwrap();
        assert_eq!(metadata.volume_id, "csi-abc");
        assert_eq!(metadata.volume_mount_group, "2000");
        assert_eq!(
            metadata.next_issuance_time.as_deref(),
            Some("2026-12-01T10:00:00.123456789Z")
        );
        assert_eq!(metadata.volume_context.len(), 2);
        let printed = format!("{metadata:?}");
        assert!(!printed.contains("eyJ"), "{printed}");
        // Optional fields may be missing.
        let minimal: Metadata =
            serde_json::from_str(r#"{"volumeID":"v","targetPath":"/t"}"#).unwrap();
        assert!(minimal.volume_context.is_empty() && minimal.next_issuance_time.is_none());
    }

    #[test]
    fn next_issuance_time_is_rewritten_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let original = r#"{"volumeID":"v","targetPath":"/t","volumeContext":{"a":"b"},"volumeMountGroup":"7"}"#;
        fs::write(dir.path().join(METADATA_FILE), original).unwrap();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000);
        write_next_issuance_time(dir.path(), at).unwrap();
        let metadata = read_metadata(&dir.path().join(METADATA_FILE)).unwrap();
        assert_eq!(
            metadata.next_issuance_time.as_deref(),
            Some("2033-05-18T03:33:20Z")
        );
        assert_eq!(metadata.volume_context["a"], "b");
        assert_eq!(metadata.volume_mount_group, "7");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
    }

    #[test]
    fn scanning_sorts_volumes_garbage_and_unreadable_metadata_apart() {
        let dir = tempfile::tempdir().unwrap();
        let root = CsiLibRoot::new(dir.path());
        assert!(root.scan().unwrap().is_empty(), "no inmemfs: nothing");
        let inmemfs = root.inmemfs();
        for name in ["good", "garbage", "broken", "mismatch"] {
            fs::create_dir_all(inmemfs.join(name)).unwrap();
        }
        fs::write(
            inmemfs.join("good").join(METADATA_FILE),
            r#"{"volumeID":"good","targetPath":"/t"}"#,
        )
        .unwrap();
        fs::write(inmemfs.join("broken").join(METADATA_FILE), "{not json").unwrap();
        fs::write(
            inmemfs.join("mismatch").join(METADATA_FILE),
            r#"{"volumeID":"other","targetPath":"/t"}"#,
        )
        .unwrap();
        let found = root.scan().unwrap();
        assert_eq!(found.len(), 4);
        let volumes = found
            .iter()
            .filter(|f| matches!(f, Found::Volume { volume_id, .. } if volume_id == "good"))
            .count();
        let garbage = found
            .iter()
            .filter(|f| matches!(f, Found::NoMetadata(p) if p.ends_with("garbage")))
            .count();
        let unreadable = found
            .iter()
            .filter(|f| matches!(f, Found::Unreadable { .. }))
            .count();
        assert_eq!((volumes, garbage, unreadable), (1, 1, 2));
    }

    #[test]
    fn volume_dirs_know_their_root() {
        let root = CsiLibRoot::new("/csi-data-dir");
        assert_eq!(
            CsiLibRoot::of_volume_dir(&root.volume_dir("csi-1")),
            Some(root)
        );
        assert_eq!(CsiLibRoot::of_volume_dir(Path::new("/x/y")), None);
    }
}
