//! The real driver binary on a test node: started, connected to like kubelet, killed with
//! SIGKILL and started again.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cert_manager_csi_driver::csi::client::{self, CsiClient};
use tokio::time::Instant;

pub const BINARY: &str = env!("CARGO_BIN_EXE_cert-manager-csi-driver");

/// A node directory (socket, state, CA, kubelet paths) and how to start the driver on it.
pub struct BinaryNode {
    pub dir: PathBuf,
    /// How the driver gets certificates; the embedded CA when empty.
    pub backend: Vec<String>,
    /// Further flags.
    pub extra_args: Vec<String>,
}

impl Drop for BinaryNode {
    fn drop(&mut self) {
        super::unmount_all_under(&self.dir);
    }
}

impl BinaryNode {
    pub fn new(dir: &std::path::Path, backend: Vec<String>) -> BinaryNode {
        BinaryNode {
            dir: dir.to_path_buf(),
            backend,
            extra_args: Vec::new(),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("plugin/csi.sock")
    }

    pub fn spawn(&self) -> DriverProcess {
        let child = Command::new(BINARY)
            .arg("--node-id=restart-node")
            .arg(format!("--endpoint=unix://{}", self.socket().display()))
            .arg(format!("--data-root={}", self.dir.join("state").display()))
            .args(if self.backend.is_empty() {
                vec![
                    "--issuer-backend=local-ca".to_string(),
                    format!("--local-ca-dir={}", self.dir.join("ca").display()),
                ]
            } else {
                self.backend.clone()
            })
            .args(&self.extra_args)
            .arg("-v=2")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("driver binary starts");
        DriverProcess(child)
    }

    pub async fn connect(&self) -> CsiClient {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(client) = client::connect(&self.socket()).await {
                return client;
            }
            assert!(Instant::now() < deadline, "driver socket never came up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn target(&self, pod: &str) -> PathBuf {
        let parent = self
            .dir
            .join(format!("kubelet/pods/{pod}/volumes/kubernetes.io~csi/tls"));
        std::fs::create_dir_all(&parent).unwrap();
        parent.join("mount")
    }

    /// The record files in the driver's state.
    pub fn records(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.join("state/volumes"))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Flags for the cert-manager backend against a test API server, with short timeouts.
pub fn cert_manager_backend(kubeconfig: &std::path::Path) -> Vec<String> {
    vec![
        "--issuer-backend=cert-manager".into(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--publish-timeout=20s".into(),
        "--renewal-backoff-initial=200ms".into(),
        "--renewal-backoff-max=1s".into(),
    ]
}

/// A running driver process; killed when dropped, so a failing test leaves none behind.
pub struct DriverProcess(Child);

impl Drop for DriverProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGKILL: no chance to clean up, like an OOM kill or a node agent crash.
pub fn kill_hard(driver: &mut DriverProcess) {
    driver.0.kill().unwrap();
    driver.0.wait().unwrap();
}
