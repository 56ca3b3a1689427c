//! The real binary, killed with SIGKILL and started again: pod mounts keep working while it is
//! down, and every volume is managed again afterwards. Needs root for real mounts (CI is root).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cert_manager_csi_driver::csi::client::{self, CsiClient};
use cert_manager_csi_driver::csi::proto::{NodeGetVolumeStatsRequest, NodeUnpublishVolumeRequest};
use cert_manager_csi_driver::demo::{SamplePod, publish_request, sample_volume_context};
use common::{is_root, mounts_at, mounts_under, serial_of, verify_volume_with_openssl};

const BINARY: &str = env!("CARGO_BIN_EXE_cert-manager-csi-driver");

struct Node {
    dir: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        common::unmount_all_under(&self.dir);
    }
}

impl Node {
    fn socket(&self) -> PathBuf {
        self.dir.join("plugin/csi.sock")
    }

    fn spawn(&self) -> Child {
        Command::new(BINARY)
            .arg("--node-id=restart-node")
            .arg(format!("--endpoint=unix://{}", self.socket().display()))
            .arg(format!("--data-root={}", self.dir.join("state").display()))
            .arg("--issuer-backend=local-ca")
            .arg(format!("--local-ca-dir={}", self.dir.join("ca").display()))
            .arg("-v=2")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("driver binary starts")
    }

    async fn connect(&self) -> CsiClient {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(client) = client::connect(&self.socket()).await {
                return client;
            }
            assert!(Instant::now() < deadline, "driver socket never came up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn target(&self, pod: &str) -> PathBuf {
        let parent = self
            .dir
            .join(format!("kubelet/pods/{pod}/volumes/kubernetes.io~csi/tls"));
        std::fs::create_dir_all(&parent).unwrap();
        parent.join("mount")
    }

    fn records(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.join("state/volumes"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

async fn publish(client: &CsiClient, volume_id: &str, target: &Path, overrides: &[(&str, &str)]) {
    let pod = target
        .ancestors()
        .nth(4)
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut all = vec![("csi.cert-manager.io/key-algorithm", "ECDSA")];
    all.extend_from_slice(overrides);
    let context = sample_volume_context(&SamplePod::new(&pod), &all);
    client
        .node
        .clone()
        .node_publish_volume(publish_request(volume_id, target, context))
        .await
        .expect("publish succeeds");
}

async fn abnormal(
    client: &CsiClient,
    volume_id: &str,
    target: &Path,
) -> Result<bool, tonic::Status> {
    let response = client
        .node
        .clone()
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: volume_id.into(),
            volume_path: target.display().to_string(),
            staging_target_path: String::new(),
        })
        .await?;
    Ok(response.into_inner().volume_condition.unwrap().abnormal)
}

fn kill_hard(child: &mut Child) {
    // Child::kill sends SIGKILL: no chance to clean up, like an OOM kill or a node agent crash.
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_keeps_mounts_and_manages_every_volume_again() {
    if !is_root() {
        eprintln!("skipped: needs root for real tmpfs mounts (CI runs as root)");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("csi-restart-")
        .tempdir()
        .unwrap();
    let node = Node {
        dir: dir.path().to_path_buf(),
    };
    let mut driver = node.spawn();
    let client = node.connect().await;

    // A short-lived certificate (renews about 4 s after issuance), a long-lived one, and one whose
    // mount will vanish while the driver is down.
    let short = node.target("short-lived");
    let long = node.target("long-lived");
    let vanishing = node.target("vanishing");
    publish(
        &client,
        "csi-short",
        &short,
        &[
            ("csi.cert-manager.io/duration", "6s"),
            ("csi.cert-manager.io/renew-before", "2s"),
        ],
    )
    .await;
    publish(&client, "csi-long", &long, &[]).await;
    publish(&client, "csi-vanishing", &vanishing, &[]).await;
    let long_serial = serial_of(&long);

    kill_hard(&mut driver);
    drop(client);

    // While the driver is down, the pods' mounts and files are intact.
    for target in [&short, &long, &vanishing] {
        assert_eq!(mounts_at(target), 1, "{} still mounted", target.display());
        verify_volume_with_openssl(target);
    }
    // The node agent unmounted one pod's volume meanwhile (e.g. the pod was force-deleted).
    rustix::mount::unmount(&vanishing, rustix::mount::UnmountFlags::empty()).unwrap();

    let started = Instant::now();
    let mut driver = node.spawn();
    let client = node.connect().await;
    eprintln!("restart to serving: {:?}", started.elapsed());

    // Managed again: stats know both volumes and find them healthy.
    assert!(!abnormal(&client, "csi-short", &short).await.unwrap());
    assert!(!abnormal(&client, "csi-long", &long).await.unwrap());
    // The vanished one was cleaned up: no record, no directory, unknown to the driver.
    assert_eq!(node.records().len(), 2, "{:?}", node.records());
    assert!(!vanishing.exists());
    assert_eq!(
        abnormal(&client, "csi-vanishing", &vanishing)
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );

    // A republish after the restart (kubelet's retry) is idempotent: no reissue.
    publish(&client, "csi-long", &long, &[]).await;
    assert_eq!(serial_of(&long), long_serial);

    // Renewal resumed from the certificate on disk: a renewal happens after the restart. (Compare
    // with what is there now, not before the kill, in case one happened just before it.)
    let serial_after_restart = serial_of(&short);
    let deadline = Instant::now() + Duration::from_secs(20);
    while serial_of(&short) == serial_after_restart {
        assert!(
            Instant::now() < deadline,
            "short-lived certificate was not renewed after restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    verify_volume_with_openssl(&short);

    for (volume_id, target) in [("csi-short", &short), ("csi-long", &long)] {
        client
            .node
            .clone()
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: volume_id.into(),
                target_path: target.display().to_string(),
            })
            .await
            .unwrap();
    }
    assert!(
        mounts_under(dir.path()).is_empty(),
        "{:?}",
        mounts_under(dir.path())
    );
    assert!(node.records().is_empty());
    kill_hard(&mut driver);
}

#[test]
fn default_backend_without_a_cluster_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        // No cluster anywhere: not in a pod, no kubeconfig.
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env("HOME", dir.path())
        .arg("--node-id=n")
        .arg(format!(
            "--endpoint=unix://{}/csi.sock",
            dir.path().display()
        ))
        .arg(format!(
            "--data-root={}",
            dir.path().join("state").display()
        ))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--issuer-backend local-ca"), "{stderr}");
    assert!(
        !dir.path().join("csi.sock").exists(),
        "no socket when the backend cannot start"
    );
    assert!(
        stderr.contains("no Kubernetes configuration found"),
        "{stderr}"
    );
}

#[test]
fn node_id_is_required() {
    let output = Command::new(BINARY).env_remove("NODE_ID").output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--node-id"));
}
