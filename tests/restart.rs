//! The real binary, killed with SIGKILL and started again: pod mounts keep working while it is
//! down, and every volume is managed again afterwards. Needs root for real mounts (CI is root).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cert_manager_csi_driver::csi::client::CsiClient;
use cert_manager_csi_driver::csi::proto::NodeGetVolumeStatsRequest;
use cert_manager_csi_driver::demo::{SamplePod, publish_request, sample_volume_context};
use common::binary::{BINARY, BinaryNode as Node, cert_manager_backend, kill_hard};
use common::cluster::{Cluster, cluster};
use common::{
    is_root, key_matches, mounts_at, mounts_under, publish_sample, serial_of, unpublish,
    verify_volume_with_openssl, wait_for,
};
use tokio::time::Instant;

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
    let node = Node::new(dir.path(), Vec::new());
    let mut driver = node.spawn();
    let client = node.connect().await;

    // A short-lived certificate (renews about 4 s after issuance), a long-lived one, and one whose
    // mount will vanish while the driver is down.
    let short = node.target("short-lived");
    let long = node.target("long-lived");
    let vanishing = node.target("vanishing");
    publish_sample(
        &client,
        "csi-short",
        &short,
        &[
            ("csi.cert-manager.io/duration", "6s"),
            ("csi.cert-manager.io/renew-before", "2s"),
        ],
    )
    .await
    .expect("publish succeeds");
    publish_sample(&client, "csi-long", &long, &[])
        .await
        .expect("publish succeeds");
    publish_sample(&client, "csi-vanishing", &vanishing, &[])
        .await
        .expect("publish succeeds");
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
    publish_sample(&client, "csi-long", &long, &[])
        .await
        .expect("publish succeeds");
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
        unpublish(&client, volume_id, target).await.unwrap();
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

/// A node whose driver uses the cert-manager backend against the test API server.
struct ClusterNode {
    node: Node,
    cluster: Cluster,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for ClusterNode {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

async fn cluster_node(prefix: &str) -> ClusterNode {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let cluster = cluster().await;
    ClusterNode {
        node: Node::new(dir.path(), cert_manager_backend(&cluster.kubeconfig)),
        cluster,
        _dir: dir,
    }
}

fn live_requests(api: &kube_test_server::TestApiServer) -> usize {
    api.list_objects("cert-manager.io/v1", "certificaterequests")
        .len()
}

/// Unpublishes like kubelet and checks that no mount and no record is left on the node.
async fn unpublish_leaves_nothing(client: &CsiClient, node: &Node, volume_id: &str, target: &Path) {
    unpublish(client, volume_id, target).await.unwrap();
    assert!(mounts_under(&node.dir).is_empty());
    assert!(node.records().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_publish_the_volume_is_finished_after_the_restart() {
    if !is_root() {
        eprintln!("skipped: needs root for real tmpfs mounts (CI runs as root)");
        return;
    }
    let cluster = cluster_node("csi-crash-publish-").await;
    let node = &cluster.node;
    // The first request is answered only after 3 s: the driver dies while it waits.
    cluster
        .signer
        .set_mode(kube_test_server::SignerMode::Delay(Duration::from_secs(3)));
    let mut driver = node.spawn();
    let client = node.connect().await;
    let target = node.target("mid-publish");
    let publishing = {
        let client = client.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let context = sample_volume_context(
                &SamplePod::new("mid-publish"),
                &[("csi.cert-manager.io/key-algorithm", "ECDSA")],
            );
            client
                .node
                .clone()
                .node_publish_volume(publish_request("csi-mid-publish", &target, context))
                .await
        })
    };
    wait_for("the request was created", Duration::from_secs(10), || {
        live_requests(&cluster.api) == 1
    })
    .await;
    kill_hard(&mut driver);
    assert!(publishing.await.unwrap().is_err(), "kubelet saw no success");
    drop(client);
    // What the dead driver left: a mounted, empty volume and its record.
    assert_eq!(mounts_at(&target), 1);
    assert_eq!(node.records().len(), 1);

    cluster
        .signer
        .set_mode(kube_test_server::SignerMode::Approve);
    let mut driver = node.spawn();
    let client = node.connect().await;
    // kubelet retries the publish; it succeeds with a complete volume.
    publish_sample(&client, "csi-mid-publish", &target, &[])
        .await
        .expect("publish succeeds");
    verify_volume_with_openssl(&target);
    assert_eq!(mounts_at(&target), 1, "no second mount stacked");
    // The pending request whose key died with the first process was replaced, not kept.
    wait_for("one live request", Duration::from_secs(10), || {
        live_requests(&cluster.api) == 1
    })
    .await;

    unpublish_leaves_nothing(&client, node, "csi-mid-publish", &target).await;
    kill_hard(&mut driver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_renewal_the_renewal_resumes_and_nothing_is_lost() {
    if !is_root() {
        eprintln!("skipped: needs root for real tmpfs mounts (CI runs as root)");
        return;
    }
    let cluster = cluster_node("csi-crash-renewal-").await;
    let node = &cluster.node;
    let mut driver = node.spawn();
    let client = node.connect().await;
    let target = node.target("mid-renewal");
    // 6 s certificates renew 4 s after issuance.
    publish_sample(
        &client,
        "csi-mid-renewal",
        &target,
        &[("csi.cert-manager.io/duration", "6s")],
    )
    .await
    .expect("publish succeeds");
    let first_serial = serial_of(&target);
    // The renewal's request stays unanswered: the driver dies while it waits.
    cluster
        .signer
        .set_mode(kube_test_server::SignerMode::Ignore);
    wait_for(
        "the renewal's request was created",
        Duration::from_secs(15),
        || {
            cluster
                .api
                .requests()
                .iter()
                .filter(|e| e.method == "POST" && e.path.ends_with("certificaterequests"))
                .count()
                == 2
        },
    )
    .await;
    kill_hard(&mut driver);
    drop(client);
    // The old files stay, whole and matching, while nobody manages them.
    assert_eq!(serial_of(&target), first_serial);
    assert!(key_matches(&target));
    assert_eq!(mounts_at(&target), 1);

    cluster
        .signer
        .set_mode(kube_test_server::SignerMode::Approve);
    let mut driver = node.spawn();
    let client = node.connect().await;
    // Overdue: renewed promptly after the restart, with a fresh key and request.
    wait_for("the renewal completed", Duration::from_secs(15), || {
        serial_of(&target) != first_serial
    })
    .await;
    assert!(key_matches(&target));
    verify_volume_with_openssl(&target);
    wait_for("the stale request is gone", Duration::from_secs(10), || {
        live_requests(&cluster.api) == 1
    })
    .await;

    unpublish_leaves_nothing(&client, node, "csi-mid-renewal", &target).await;
    kill_hard(&mut driver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_write_killed_half_way_leaves_is_tidied_at_restart() {
    if !is_root() {
        eprintln!("skipped: needs root for real tmpfs mounts (CI runs as root)");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("csi-crash-write-")
        .tempdir()
        .unwrap();
    let node = Node::new(dir.path(), Vec::new());
    let mut driver = node.spawn();
    let client = node.connect().await;
    let target = node.target("mid-write");
    publish_sample(&client, "csi-mid-write", &target, &[])
        .await
        .expect("publish succeeds");
    let serial = serial_of(&target);
    kill_hard(&mut driver);
    drop(client);

    // A kill between writing a new set and switching `..data` to it, and one in the middle of
    // saving a record.
    let half = target.join("..2026_11_23_half_written");
    std::fs::create_dir(&half).unwrap();
    std::fs::write(half.join("tls.key"), b"-----BEGIN PRIVATE KEY-----\ntrunc").unwrap();
    std::os::unix::fs::symlink("..2026_11_23_half_written", target.join("..data_tmp")).unwrap();
    let stray_record = node.dir.join("state/volumes/csi-mid-write.json.tmp");
    std::fs::write(&stray_record, b"{\"volume_id\":").unwrap();
    // The pod never sees the half-written set.
    assert_eq!(serial_of(&target), serial);
    assert!(key_matches(&target));

    let mut driver = node.spawn();
    let client = node.connect().await;
    assert!(!half.exists(), "the half-written set was removed");
    assert!(std::fs::symlink_metadata(target.join("..data_tmp")).is_err());
    assert!(!stray_record.exists());
    assert_eq!(serial_of(&target), serial);
    verify_volume_with_openssl(&target);
    let hidden: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".."))
        .collect();
    assert_eq!(hidden.len(), 2, "only ..data and its set: {hidden:?}");

    unpublish_leaves_nothing(&client, &node, "csi-mid-write", &target).await;
    kill_hard(&mut driver);
}

/// A node reboot: every tmpfs is gone, the driver's records are still on disk, and kubelet
/// publishes each pod's volumes again (same volume IDs, same targets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_node_reboot_stale_records_go_and_kubelets_republish_issues_afresh() {
    if !common::is_root() {
        eprintln!("skipped: needs root for real tmpfs mounts (CI runs as root)");
        return;
    }
    let mut harness = common::Harness::start().await;
    let volumes: Vec<(String, std::path::PathBuf)> = (0..3)
        .map(|index| {
            (
                format!("csi-reboot-{index}"),
                harness.target(&format!("reboot-{index}")),
            )
        })
        .collect();
    let mut serials = Vec::new();
    for (volume_id, target) in &volumes {
        harness.publish(volume_id, target, &[]).await.unwrap();
        serials.push(common::serial_of(target));
    }
    assert_eq!(harness.state_records(), 3);
    // The node goes down: the driver with it, and every tmpfs (kubelet's directories stay).
    harness.driver.take().unwrap().stop().await.unwrap();
    for (_, target) in &volumes {
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty()).unwrap();
    }
    harness.restart().await;
    let resumed = harness.driver().resumed();
    assert_eq!((resumed.resumed, resumed.cleaned_up), (0, 3), "{resumed:?}");
    assert_eq!(
        harness.state_records(),
        0,
        "the records of vanished mounts are gone"
    );
    // kubelet brings the pods' volumes back: each is issued afresh into a new tmpfs.
    for ((volume_id, target), old) in volumes.iter().zip(&serials) {
        harness.publish(volume_id, target, &[]).await.unwrap();
        assert_eq!(common::mounts_at(target), 1, "{volume_id}");
        assert_ne!(
            &common::serial_of(target),
            old,
            "{volume_id}: a new certificate"
        );
        assert!(common::key_matches(target), "{volume_id}");
    }
    assert_eq!(harness.state_records(), 3);
    assert_eq!(harness.driver().manager().volume_count(), 3);
}
