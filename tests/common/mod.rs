//! Shared test fixtures: a driver on a temp unix socket, a kubelet-like client, and external
//! checks (openssl, the mount table).

#![allow(dead_code)]

pub mod binary;
pub mod cluster;
pub mod go_driver;
pub mod java;
pub mod kubelet;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::csi::client::{self, CsiClient};
use cert_manager_csi_driver::demo::{SamplePod, publish_request, sample_volume_context};
use cert_manager_csi_driver::driver::{
    self, DriverConfig, IssuerBackend, MountMode, RunningDriver,
};
use cert_manager_csi_driver::issuer::local_ca::LocalCa;
use cert_manager_csi_driver::volume::mountinfo;
use tempfile::TempDir;
use tokio::time::Instant;
use tonic::Status;

/// One embedded CA for a whole test binary (made once: an RSA CA key takes a while).
pub fn shared_local_ca() -> &'static LocalCa {
    struct Ca {
        _dir: TempDir,
        ca: LocalCa,
    }
    static CA: std::sync::OnceLock<Ca> = std::sync::OnceLock::new();
    &CA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::load_or_create(&dir.path().join("ca")).unwrap();
        Ca { _dir: dir, ca }
    })
    .ca
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A driver serving on a socket in its own temp directory.
pub struct Harness {
    pub dir: TempDir,
    pub config: DriverConfig,
    pub driver: Option<RunningDriver>,
    pub client: CsiClient,
}

pub fn config_in(dir: &Path) -> DriverConfig {
    DriverConfig {
        node_id: "test-node".into(),
        driver_name: "csi.cert-manager.io".into(),
        socket_path: dir.join("plugin/csi.sock"),
        data_root: dir.join("state"),
        issuer_backend: IssuerBackend::LocalCa,
        local_ca_dir: dir.join("ca"),
        max_volumes_per_node: 0,
        volume_size_bytes: 1024 * 1024,
        renewal_concurrency: 4,
        // Small: the many drivers the tests start would each spend seconds of idle CPU filling
        // the default 16 (the pool's own tests use the default).
        key_pool_size: 2,
        renewal_backoff: Default::default(),
        continue_on_not_ready: false,
        metrics_address: None,
        // Real tmpfs mounts when root (as in CI); plain directories otherwise.
        mount_mode: if is_root() {
            MountMode::Tmpfs
        } else {
            MountMode::PlainDirectories
        },
        strict_attributes: false,
        kube: Default::default(),
        cert_manager: Default::default(),
        default_duration: cert_manager_csi_driver::attributes::DEFAULT_DURATION,
        adopt_csi_lib_data_root: None,
        publish_in_csi_lib_layout: false,
        readiness_gates: Vec::new(),
        gate_backoff: Default::default(),
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    /// Starts a driver whose configuration `adjust` changes first.
    pub async fn start_with(adjust: impl FnOnce(&mut DriverConfig)) -> Harness {
        let dir = tempfile::Builder::new()
            .prefix("csi-test-")
            .tempdir()
            .unwrap();
        let mut config = config_in(dir.path());
        adjust(&mut config);
        let driver = driver::start(config.clone()).await.expect("driver starts");
        let client = client::connect(&config.socket_path)
            .await
            .expect("client connects");
        Harness {
            dir,
            config,
            driver: Some(driver),
            client,
        }
    }

    /// Stops the driver (mounts and records stay, as after a crash) and starts a new one on the
    /// same configuration; everything held only in memory is gone.
    pub async fn restart(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.stop().await.expect("driver stops");
        }
        let driver = driver::start(self.config.clone())
            .await
            .expect("driver restarts");
        self.client = client::connect(&self.config.socket_path)
            .await
            .expect("client reconnects");
        self.driver = Some(driver);
    }

    pub fn driver(&self) -> &RunningDriver {
        self.driver.as_ref().unwrap()
    }

    /// A kubelet-style target path whose parent exists (kubelet creates the parent).
    pub fn target(&self, pod: &str) -> PathBuf {
        let parent = self
            .dir
            .path()
            .join(format!("kubelet/pods/{pod}/volumes/kubernetes.io~csi/tls"));
        std::fs::create_dir_all(&parent).unwrap();
        parent.join("mount")
    }

    pub fn context(&self, pod: &str, overrides: &[(&str, &str)]) -> HashMap<String, String> {
        sample_volume_context(&SamplePod::new(pod), overrides)
    }

    /// Publishes a sample volume with ECDSA keys (fast) plus `overrides`.
    pub async fn publish(
        &self,
        volume_id: &str,
        target: &Path,
        overrides: &[(&str, &str)],
    ) -> Result<(), Status> {
        publish_sample(&self.client, volume_id, target, overrides).await
    }

    pub async fn unpublish(&self, volume_id: &str, target: &Path) -> Result<(), Status> {
        unpublish(&self.client, volume_id, target).await
    }

    pub fn state_records(&self) -> usize {
        std::fs::read_dir(self.config.data_root.join("volumes"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }
}

/// A pod in `namespace` whose UID is made from its name, so that tests can expect it.
pub fn pod_in(namespace: &str, name: &str) -> SamplePod {
    SamplePod {
        name: name.into(),
        namespace: namespace.into(),
        uid: format!("uid-of-{name}"),
    }
}

/// The sample volume context for `pod`, with ECDSA keys (fast) plus `overrides`.
pub fn ecdsa_context(pod: &SamplePod, overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let mut all = vec![(key::KEY_ALGORITHM, "ECDSA")];
    all.extend_from_slice(overrides);
    sample_volume_context(pod, &all)
}

/// `NodePublishVolume` with `context`, as kubelet sends it.
pub async fn publish_context(
    harness: &Harness,
    volume_id: &str,
    target: &Path,
    context: HashMap<String, String>,
) -> Result<(), Status> {
    publish_request_to(&harness.client, volume_id, target, context).await
}

/// Publishes a sample volume of `pod` with ECDSA keys plus `overrides`.
pub async fn publish(
    harness: &Harness,
    volume_id: &str,
    target: &Path,
    pod: &SamplePod,
    overrides: &[(&str, &str)],
) -> Result<(), Status> {
    publish_context(harness, volume_id, target, ecdsa_context(pod, overrides)).await
}

/// Publishes a sample volume with ECDSA keys plus `overrides` through `client`, for the pod
/// whose kubelet directory holds `target`.
pub async fn publish_sample(
    client: &CsiClient,
    volume_id: &str,
    target: &Path,
    overrides: &[(&str, &str)],
) -> Result<(), Status> {
    let pod = target
        .ancestors()
        .nth(4)
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pod".into());
    let context = ecdsa_context(&SamplePod::new(&pod), overrides);
    publish_request_to(client, volume_id, target, context).await
}

async fn publish_request_to(
    client: &CsiClient,
    volume_id: &str,
    target: &Path,
    context: HashMap<String, String>,
) -> Result<(), Status> {
    client
        .node
        .clone()
        .node_publish_volume(publish_request(volume_id, target, context))
        .await
        .map(|_| ())
}

/// `NodeUnpublishVolume`, as kubelet sends it.
pub async fn unpublish(client: &CsiClient, volume_id: &str, target: &Path) -> Result<(), Status> {
    client
        .node
        .clone()
        .node_unpublish_volume(
            cert_manager_csi_driver::csi::proto::NodeUnpublishVolumeRequest {
                volume_id: volume_id.into(),
                target_path: target.display().to_string(),
            },
        )
        .await
        .map(|_| ())
}

/// Polls `condition` every 50 ms until it holds; fails the test after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`eventually`] for a condition that needs no waiting to check.
pub async fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    eventually(what, limit, async || condition()).await
}

/// Waits until the volume at `target` holds a certificate whose serial is not `old`, and returns
/// that serial; fails the test with `message` after `limit`.
pub async fn wait_for_new_serial(
    target: &Path,
    old: &str,
    limit: Duration,
    message: &str,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let serial = serial_of(target);
        if serial != old {
            return serial;
        }
        assert!(Instant::now() < deadline, "{message}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for Harness {
    /// Tests that end with volumes still published must not leave tmpfs mounts on the machine.
    fn drop(&mut self) {
        unmount_all_under(self.dir.path());
    }
}

/// Detaches every mount under `dir`, deepest first.
pub fn unmount_all_under(dir: &Path) {
    let mut mounts = mounts_under(dir);
    mounts.sort();
    for mount in mounts.into_iter().rev() {
        let _ = rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH);
    }
}

/// How many mounts are stacked at `path` in this process's mount table.
pub fn mounts_at(path: &Path) -> usize {
    mountinfo::read_current()
        .unwrap()
        .iter()
        .filter(|entry| entry.mount_point == path)
        .count()
}

/// Mounts anywhere under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    mountinfo::read_current()
        .unwrap()
        .into_iter()
        .filter(|entry| entry.mount_point.starts_with(dir))
        .map(|entry| entry.mount_point)
        .collect()
}

/// Runs openssl and returns stdout; panics with stderr on failure.
pub fn openssl(args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Checks with openssl that the volume's chain verifies against its CA and that the key is the
/// certificate's key. Returns `openssl x509 -text` of the leaf.
pub fn verify_volume_with_openssl(target: &Path) -> String {
    let cert = target.join("tls.crt");
    let key = target.join("tls.key");
    let ca = target.join("ca.crt");
    let verified = openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(verified.contains(": OK"), "{verified}");
    let from_key = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    let from_cert = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert, "tls.key does not match tls.crt");
    openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-text"])
}

pub fn serial_of(target: &Path) -> String {
    let chain = std::fs::read_to_string(target.join("tls.crt")).unwrap();
    cert_manager_csi_driver::certificate::inspect_leaf(&chain)
        .unwrap()
        .serial
}

/// Whether the volume's key is the key of its certificate.
pub fn key_matches(target: &Path) -> bool {
    let key = std::fs::read_to_string(target.join("tls.key")).unwrap();
    let chain = std::fs::read_to_string(target.join("tls.crt")).unwrap();
    cert_manager_csi_driver::certificate::key_matches_certificate(&key, &chain).unwrap()
}

/// A plain HTTP/1.0 GET: status code and body.
pub async fn http_get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}
