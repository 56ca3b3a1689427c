//! What the Go driver (cert-manager/csi-lib v0.12, csi-driver v0.16) leaves on a node, built byte
//! for byte as it builds it, so tests can hand such a node to this driver:
//!
//! - a tmpfs mounted at `<data-root>/inmemfs` (source `tmpfs`, no options);
//! - per volume `inmemfs/<volume-id>/` (mode 0644, as csi-lib's `MkdirAll(.., 0644)` makes it) with
//!   `metadata.json` (mode 0600; Go's `json.Marshal` of its struct: no spaces, fields in struct
//!   order, map keys sorted) and `data/` (0550, group = fsGroup) written like Kubernetes'
//!   AtomicWriter: `..<UTC timestamp>.<random digits>/` (0755) holding the files (0440, group =
//!   fsGroup), `..data` -> that directory (made as `..data_tmp` and renamed), and each file name a
//!   symlink to `..data/<name>`;
//! - the pod's target path (`MkdirAll(target, 0440)`) a read-only bind mount of `data/`.
//!
//! Certificates are real: issued by an embedded CA for a key made as the Go driver makes it
//! (ECDSA keys are written in SEC1 "EC PRIVATE KEY" form, its PKCS1 default).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cert_manager_csi_driver::attributes::{KeyAlgorithm, KeyEncoding, key, parse_volume_context};
use cert_manager_csi_driver::demo::{SamplePod, sample_volume_context};
use cert_manager_csi_driver::issuer::IssueOrder;
use cert_manager_csi_driver::issuer::local_ca::LocalCa;
use cert_manager_csi_driver::keys;
use rustix::mount::{MountFlags, mount, mount_bind, mount_remount};

/// The Go driver's data root on a test node.
pub struct GoDriverNode {
    /// The test's directory: the Go data root, a kubelet directory and the CA live in it.
    pub dir: PathBuf,
    ca: LocalCa,
    _temp: Option<tempfile::TempDir>,
}

impl Drop for GoDriverNode {
    /// Nothing the test mounted stays on the machine.
    fn drop(&mut self) {
        super::unmount_all_under(&self.dir);
    }
}

/// One volume as the Go driver published it.
pub struct GoVolume {
    pub volume_id: String,
    pub pod: String,
    /// Attributes on top of the sample pod's (ECDSA keys unless overridden).
    pub overrides: Vec<(String, String)>,
    /// Attributes that go into `metadata.json` but not into the certificate the fixture issues:
    /// ones the Go driver accepted and this driver rejects.
    pub recorded_only: Vec<(String, String)>,
    pub volume_mount_group: Option<String>,
    pub next_issuance_time: Option<String>,
    /// The pod's service-account tokens (`csi.storage.k8s.io/serviceAccount.tokens`), when the
    /// Go driver ran with token requests.
    pub tokens: Option<String>,
}

impl GoVolume {
    pub fn new(volume_id: &str, pod: &str) -> GoVolume {
        GoVolume {
            volume_id: volume_id.into(),
            pod: pod.into(),
            overrides: Vec::new(),
            recorded_only: Vec::new(),
            volume_mount_group: None,
            next_issuance_time: Some("2026-12-01T10:00:00.123456789Z".into()),
            tokens: None,
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> GoVolume {
        self.overrides.push((key.into(), value.into()));
        self
    }

    pub fn recording(mut self, key: &str, value: &str) -> GoVolume {
        self.recorded_only.push((key.into(), value.into()));
        self
    }

    pub fn mount_group(mut self, group: &str) -> GoVolume {
        self.volume_mount_group = Some(group.into());
        self
    }

    pub fn tokens(mut self, tokens: &str) -> GoVolume {
        self.tokens = Some(tokens.into());
        self
    }

    /// The context kubelet sent (and sends again with each republish).
    pub fn context(&self) -> HashMap<String, String> {
        let mut overrides: Vec<(&str, &str)> = vec![(key::KEY_ALGORITHM, "ECDSA")];
        overrides.extend(
            self.overrides
                .iter()
                .chain(&self.recorded_only)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let mut context = sample_volume_context(&SamplePod::new(&self.pod), &overrides);
        if let Some(tokens) = &self.tokens {
            context.insert(key::SERVICE_ACCOUNT_TOKENS.into(), tokens.clone());
        }
        context
    }
}

impl GoDriverNode {
    /// A node of its own in a fresh temporary directory.
    pub fn create() -> GoDriverNode {
        let temp = tempfile::Builder::new()
            .prefix("csi-go-")
            .tempdir()
            .unwrap();
        let mut node = GoDriverNode::create_in(temp.path());
        node._temp = Some(temp);
        node
    }

    /// Mounts the Go driver's inmemfs under `dir/csi-data-dir`, as its start-up does.
    pub fn create_in(dir: &Path) -> GoDriverNode {
        let inmemfs = dir.join("csi-data-dir").join("inmemfs");
        fs::create_dir_all(&inmemfs).unwrap();
        mount(
            "tmpfs",
            &inmemfs,
            "tmpfs",
            MountFlags::empty(),
            None::<&std::ffi::CStr>,
        )
        .unwrap();
        let ca = LocalCa::load_or_create(&dir.join("go-driver-ca")).unwrap();
        GoDriverNode {
            dir: dir.to_path_buf(),
            ca,
            _temp: None,
        }
    }

    /// `--data-root` of the Go driver (what `--adopt-csi-lib-data-root` names).
    pub fn root(&self) -> PathBuf {
        self.dir.join("csi-data-dir")
    }

    pub fn inmemfs(&self) -> PathBuf {
        self.root().join("inmemfs")
    }

    pub fn volume_dir(&self, volume_id: &str) -> PathBuf {
        self.inmemfs().join(volume_id)
    }

    /// Makes a volume's metadata look written `ago` (as by a Go driver that stopped since).
    pub fn age(&self, volume_id: &str, ago: std::time::Duration) {
        let metadata = fs::File::options()
            .write(true)
            .open(self.volume_dir(volume_id).join("metadata.json"))
            .unwrap();
        metadata
            .set_modified(std::time::SystemTime::now() - ago)
            .unwrap();
    }

    /// A kubelet target path for the pod (its parent exists, as kubelet makes it).
    pub fn target(&self, pod: &str) -> PathBuf {
        let parent = self
            .dir
            .join(format!("kubelet/pods/{pod}/volumes/kubernetes.io~csi/tls"));
        fs::create_dir_all(&parent).unwrap();
        parent.join("mount")
    }

    /// Publishes a volume as the Go driver would: metadata, a first certificate, the bind mount.
    /// Returns the target path.
    pub fn publish(&self, volume: &GoVolume) -> PathBuf {
        let target = self.target(&volume.pod);
        self.register(volume, &target);
        self.write_certificate(volume);
        self.bind_mount(volume, &target);
        target
    }

    /// Only the metadata, as the Go driver records a volume before it issues.
    pub fn register(&self, volume: &GoVolume, target: &Path) {
        let volume_dir = self.volume_dir(&volume.volume_id);
        fs::DirBuilder::new()
            .mode(0o644)
            .recursive(true)
            .create(&volume_dir)
            .unwrap();
        let metadata = metadata_json(volume, target);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(volume_dir.join("metadata.json"))
            .and_then(|mut file| std::io::Write::write_all(&mut file, metadata.as_bytes()))
            .unwrap();
    }

    /// Issues and writes a certificate into `data/` with the AtomicWriter layout.
    pub fn write_certificate(&self, volume: &GoVolume) {
        let mut issued_context = volume.context();
        for (key, _) in &volume.recorded_only {
            issued_context.remove(key);
        }
        let request = parse_volume_context(&issued_context).expect("fixture attributes are valid");
        let spec = &request.spec;
        let private_key = keys::generate(&spec.key).unwrap();
        let csr_pem = keys::build_csr(spec, &private_key).unwrap();
        let issued = self
            .ca
            .sign(&IssueOrder {
                volume_id: volume.volume_id.clone(),
                pod: request.pod.clone(),
                issuer: spec.issuer.clone(),
                csr_pem,
                duration: spec.duration,
                is_ca: spec.is_ca,
                usages: spec.usages.clone(),
                annotations: BTreeMap::new(),
                token: None,
                resuming: false,
            })
            .unwrap();
        let key_pem = match spec.key.algorithm {
            KeyAlgorithm::Ecdsa => sec1(&private_key.to_pem(KeyEncoding::Pkcs8).unwrap()),
            _ => private_key.to_pem(spec.key.encoding).unwrap().to_string(),
        };
        let group = spec.fs_group.or_else(|| {
            volume
                .volume_mount_group
                .as_deref()
                .and_then(|g| g.parse().ok())
        });
        let data = self.volume_dir(&volume.volume_id).join("data");
        fs::DirBuilder::new().mode(0o550).create(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o550)).unwrap();
        chown_group(&data, group);
        // Go's `time.Now().UTC().Format("..2006_01_02_15_04_05.")` plus MkdirTemp's digits.
        let now = time::OffsetDateTime::now_utc();
        let timestamp = format!(
            "{:04}_{:02}_{:02}_{:02}_{:02}_{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let ts_name = format!(
            "..{timestamp}.{}",
            fastrand::u32(100_000_000..1_000_000_000)
        );
        let ts_dir = data.join(&ts_name);
        fs::create_dir(&ts_dir).unwrap();
        fs::set_permissions(&ts_dir, fs::Permissions::from_mode(0o755)).unwrap();
        let files = [
            (spec.files.private_key.as_str(), key_pem.into_bytes()),
            (
                spec.files.certificate.as_str(),
                issued.chain_pem.into_bytes(),
            ),
            (spec.files.ca.as_str(), issued.ca_pem.into_bytes()),
        ];
        for (name, contents) in &files {
            let path = ts_dir.join(name);
            fs::write(&path, contents).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o440)).unwrap();
            chown_group(&path, group);
        }
        std::os::unix::fs::symlink(&ts_name, data.join("..data_tmp")).unwrap();
        fs::rename(data.join("..data_tmp"), data.join("..data")).unwrap();
        for (name, _) in &files {
            std::os::unix::fs::symlink(Path::new("..data").join(name), data.join(name)).unwrap();
        }
    }

    /// `mount --bind data target` then `mount -o remount,ro,bind`, as mount-utils does for
    /// `[]string{"bind", "ro"}`.
    pub fn bind_mount(&self, volume: &GoVolume, target: &Path) {
        fs::DirBuilder::new()
            .mode(0o440)
            .recursive(true)
            .create(target)
            .unwrap();
        let data = self.volume_dir(&volume.volume_id).join("data");
        mount_bind(&data, target).unwrap();
        mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "").unwrap();
    }
}

/// `metadata.json` exactly as Go's `json.Marshal` writes csi-lib's `Metadata`.
fn metadata_json(volume: &GoVolume, target: &Path) -> String {
    let string = |value: &str| serde_json::to_string(value).unwrap();
    let mut json = format!(
        "{{\"volumeID\":{},\"targetPath\":{}",
        string(&volume.volume_id),
        string(&target.display().to_string())
    );
    if let Some(at) = &volume.next_issuance_time {
        json.push_str(&format!(",\"nextIssuanceTime\":{}", string(at)));
    }
    // Go sorts map keys; a BTreeMap iterates in the same byte order.
    let context: BTreeMap<String, String> = volume.context().into_iter().collect();
    json.push_str(",\"volumeContext\":{");
    let entries: Vec<String> = context
        .iter()
        .map(|(k, v)| format!("{}:{}", string(k), string(v)))
        .collect();
    json.push_str(&entries.join(","));
    json.push('}');
    if let Some(group) = &volume.volume_mount_group {
        json.push_str(&format!(",\"volumeMountGroup\":{}", string(group)));
    }
    json.push('}');
    json
}

/// A PKCS#8 EC key as SEC1 ("EC PRIVATE KEY"), by openssl.
fn sec1(pkcs8_pem: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["pkey", "-traditional"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed (.ci/run installs it)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), pkcs8_pem.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("-----BEGIN EC PRIVATE KEY-----"), "{text}");
    text
}

fn chown_group(path: &Path, group: Option<u32>) {
    if let Some(gid) = group {
        std::os::unix::fs::lchown(path, None, Some(gid)).unwrap();
    }
}

/// What the Go driver's start-up (csi-lib's `NewFilesystem` + `NewManager`, as read in its
/// source) makes of each entry of `<root>/inmemfs`: a volume it resumes (with the time it renews
/// at), one it skips, or one it deletes. `Err`: what makes it panic, so that it renews nothing on
/// the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoStartUp {
    /// Managed again; renewed once this time has passed (Go's zero time: at once).
    Resumed { renew_at: time::OffsetDateTime },
    /// `nextIssuanceTime` absent: "never successfully completed", not managed until a republish.
    Skipped,
    /// A directory without `metadata.json`: removed.
    Deleted,
}

pub fn go_start_up(root: &Path) -> Result<BTreeMap<String, GoStartUp>, String> {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct GoMetadata {
        #[serde(rename = "volumeID")]
        volume_id: String,
        #[serde(rename = "targetPath")]
        target_path: String,
        #[serde(rename = "nextIssuanceTime", default)]
        next_issuance_time: Option<String>,
        #[serde(rename = "volumeContext", default)]
        volume_context: Option<BTreeMap<String, String>>,
        #[serde(rename = "volumeMountGroup", default)]
        volume_mount_group: Option<String>,
    }
    let mut found = BTreeMap::new();
    let inmemfs = root.join("inmemfs");
    for entry in fs::read_dir(&inmemfs).map_err(|e| format!("{}: {e}", inmemfs.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            return Err(format!("panics: {name} in the inmemfs is not a directory"));
        }
        let bytes = match fs::read(entry.path().join("metadata.json")) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                found.insert(name, GoStartUp::Deleted);
                continue;
            }
            Err(error) => return Err(format!("panics: reading {name}/metadata.json: {error}")),
        };
        let metadata: GoMetadata = serde_json::from_slice(&bytes)
            .map_err(|e| format!("panics: decoding {name}/metadata.json: {e}"))?;
        // Renewals write the files and the metadata under the volume ID it names.
        if metadata.volume_id != name {
            return Err(format!(
                "{name}/metadata.json names volume {:?}",
                metadata.volume_id
            ));
        }
        let state = match &metadata.next_issuance_time {
            None => GoStartUp::Skipped,
            Some(at) => GoStartUp::Resumed {
                renew_at: time::OffsetDateTime::parse(
                    at,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| format!("panics: {name} nextIssuanceTime {at:?}: {e}"))?,
            },
        };
        found.insert(name, state);
    }
    Ok(found)
}
