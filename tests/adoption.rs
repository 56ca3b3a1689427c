//! Taking a live node over from the Go driver: the volumes it mounted (its layout built byte for
//! byte by `common::go_driver`) are adopted at start, renewed in place through the pods' existing
//! bind mounts, shown in status and metrics, and torn down by unpublish, the Go driver's tmpfs
//! last. Needs root for the real tmpfs and bind mounts (CI runs as root).
//!
//! One file (over 800 lines) because every test shares the Go driver's layout fixtures.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::csi::client::CsiClient;
use cert_manager_csi_driver::csi::proto::NodeGetVolumeStatsRequest;
use cert_manager_csi_driver::demo::publish_request;
use cert_manager_csi_driver::volume::mountinfo;
use common::binary::{BinaryNode, cert_manager_backend, kill_hard};
use common::cluster::{Cluster, cluster, event_with_reason};
use common::go_driver::{GoDriverNode, GoVolume};
use common::{
    Harness, http_get, is_root, key_matches, mounts_at, mounts_under, serial_of, unpublish,
    verify_volume_with_openssl, wait_for,
};
use kube_test_server::SignerMode;

async fn driver_adopting(go: &GoDriverNode) -> Harness {
    let root = go.root();
    Harness::start_with(move |config| {
        config.adopt_csi_lib_data_root = Some(root);
        config.metrics_address = Some("127.0.0.1:0".parse().unwrap());
        config.renewal_backoff = cert_manager_csi_driver::renewal::Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(1),
        };
    })
    .await
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn metadata_json(go: &GoDriverNode, volume_id: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(go.volume_dir(volume_id).join("metadata.json")).unwrap())
        .unwrap()
}

macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root for real tmpfs and bind mounts (CI runs as root)");
            return;
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_the_go_driver_mounted_is_renewed_in_place_through_its_bind_mount() {
    needs_root!();
    let go = GoDriverNode::create();
    // 6 s certificates renew 4 s after issuance.
    let volume = GoVolume::new("csi-go-renewed", "go-renewed").with(key::DURATION, "6s");
    let target = go.publish(&volume);
    let first = serial_of(&target);
    let bind = mountinfo::find_mount(&mountinfo::read_current().unwrap(), &target)
        .unwrap()
        .clone();

    let harness = driver_adopting(&go).await;
    assert_eq!(harness.driver().adopted().adopted, 1);
    let status = harness
        .driver()
        .manager()
        .snapshot("csi-go-renewed")
        .await
        .expect("the adopted volume is managed");
    assert!(status.adopted);
    assert_eq!(status.pod, "default/go-renewed");
    assert_eq!(status.certificate.unwrap().serial.to_string(), first);
    assert!(status.next_renewal.is_some(), "its renewal is scheduled");
    assert_eq!(harness.state_records(), 1, "remembered across restarts");

    renewed_since(&target, &first, "the adopted certificate was renewed").await;
    // The pod sees the new pair through the bind mount it already has.
    verify_volume_with_openssl(&target);
    assert!(key_matches(&target));
    let now = mountinfo::find_mount(&mountinfo::read_current().unwrap(), &target)
        .unwrap()
        .clone();
    assert_eq!(
        (now.mount_id, &now.root, &now.device),
        (bind.mount_id, &bind.root, &bind.device),
        "the same bind mount"
    );
    assert!(now.mount_options.split(',').any(|o| o == "ro"));
    // csi-lib's layout and modes, kept.
    let data = go.volume_dir("csi-go-renewed").join("data");
    assert_eq!(mode(&data), 0o550);
    for name in ["tls.crt", "tls.key", "ca.crt"] {
        assert_eq!(mode(&data.join("..data").join(name)), 0o440, "{name}");
        assert_eq!(
            std::fs::read_link(data.join(name)).unwrap(),
            Path::new("..data").join(name)
        );
    }
    let hidden: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".."))
        .collect();
    assert_eq!(hidden.len(), 2, "..data and one set: {hidden:?}");
    // A rollback to the Go driver renews when this driver would have.
    let recorded = metadata_json(&go, "csi-go-renewed");
    assert_ne!(
        recorded["nextIssuanceTime"], "2026-12-01T10:00:00.123456789Z",
        "{recorded}"
    );
    assert_eq!(recorded["volumeID"], "csi-go-renewed");

    harness.unpublish("csi-go-renewed", &target).await.unwrap();
    assert_eq!(mounts_at(&target), 0);
    assert!(!target.exists());
    assert!(!go.volume_dir("csi-go-renewed").exists());
    assert_eq!(
        mounts_at(&go.inmemfs()),
        0,
        "the last adopted volume took the Go driver's tmpfs with it"
    );
    assert_eq!(harness.state_records(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_drivers_tmpfs_stays_until_its_last_volume_is_unpublished() {
    needs_root!();
    let go = GoDriverNode::create();
    let first = go.publish(&GoVolume::new("csi-go-a", "go-a"));
    let second = go.publish(&GoVolume::new("csi-go-b", "go-b"));
    let harness = driver_adopting(&go).await;
    assert_eq!(harness.driver().adopted().adopted, 2);

    // A republish (kubelet's requiresRepublish) is a no-op success.
    let serial = serial_of(&first);
    harness
        .client
        .node
        .clone()
        .node_publish_volume(publish_request(
            "csi-go-a",
            &first,
            GoVolume::new("csi-go-a", "go-a").context(),
        ))
        .await
        .unwrap();
    assert_eq!(serial_of(&first), serial);
    assert_eq!(mounts_at(&first), 1, "nothing stacked on the bind mount");

    harness.unpublish("csi-go-a", &first).await.unwrap();
    assert_eq!(mounts_at(&first), 0);
    assert_eq!(mounts_at(&go.inmemfs()), 1, "still needed by csi-go-b");
    verify_volume_with_openssl(&second);
    // A repeated unpublish (kubelet retries) is success.
    harness.unpublish("csi-go-a", &first).await.unwrap();

    harness.unpublish("csi-go-b", &second).await.unwrap();
    assert_eq!(mounts_at(&go.inmemfs()), 0);
    assert!(
        go.inmemfs().is_dir(),
        "the directory stays, as the Go driver's chart made it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopted_volumes_show_in_status_and_metrics() {
    needs_root!();
    let go = GoDriverNode::create();
    let target = go.publish(&GoVolume::new("csi-go-seen", "go-seen"));
    let harness = driver_adopting(&go).await;
    let address = harness.driver().metrics_address().unwrap();
    let (_, metrics) = http_get(address, "/metrics").await;
    for line in [
        "certmanager_csi_managed_volume_count{node=\"test-node\"} 1",
        "certmanager_csi_adopted_volume_count{node=\"test-node\"} 1",
        "certmanager_csi_certificate_request_expiration_timestamp_seconds{name=\"csi-go-seen\"",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    let reports = cert_manager_csi_driver::status::collect(&harness.config.data_root).unwrap();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report.volume_id, "csi-go-seen");
    assert!(report.adopted);
    assert_eq!(report.state, "ok");
    assert_eq!(report.pod, "default/go-seen");
    assert!(report.not_after.is_some());
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("adopted from the Go driver")),
        "{:?}",
        report.notes
    );
    let table = cert_manager_csi_driver::status::render_table(&reports);
    assert!(table.contains("ok (adopted)"), "{table}");

    harness.unpublish("csi-go-seen", &target).await.unwrap();
    let (_, metrics) = http_get(address, "/metrics").await;
    assert!(metrics.contains("certmanager_csi_adopted_volume_count{node=\"test-node\"} 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_volume_with_attributes_this_driver_rejects_is_kept_and_not_renewed() {
    needs_root!();
    let go = GoDriverNode::create();
    // The Go driver accepts PKCS1 for ECDSA keys (writing SEC1); this driver rejects it.
    let volume = GoVolume::new("csi-go-rejected", "go-rejected")
        .with(key::DURATION, "4s")
        .recording(key::KEY_ENCODING, "PKCS1");
    let target = go.publish(&volume);
    let serial = serial_of(&target);
    let harness = driver_adopting(&go).await;
    let adopted = harness.driver().adopted();
    assert_eq!((adopted.adopted, adopted.not_renewed), (1, 1));
    let status = harness
        .driver()
        .manager()
        .snapshot("csi-go-rejected")
        .await
        .unwrap();
    let why = status.last_error.unwrap();
    assert!(
        why.contains("not renewed") && why.contains("key-encoding"),
        "{why}"
    );
    // Its renewal time (about 2.7 s) passes: nothing is issued, the files stay as they were.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(serial_of(&target), serial);
    assert!(key_matches(&target));
    // kubelet's republish (same attributes) must not fail and unmount it.
    harness
        .client
        .node
        .clone()
        .node_publish_volume(publish_request(
            "csi-go-rejected",
            &target,
            volume.context(),
        ))
        .await
        .expect("republish of a kept volume succeeds");
    // The condition kubelet polls names the reason.
    let stats = harness
        .client
        .node
        .clone()
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: "csi-go-rejected".into(),
            volume_path: target.display().to_string(),
            staging_target_path: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let condition = stats.volume_condition.unwrap();
    assert!(condition.abnormal && condition.message.contains("key-encoding"));
    let reports = cert_manager_csi_driver::status::collect(&harness.config.data_root).unwrap();
    assert_eq!(reports[0].state, "not renewed");
    assert_eq!(reports[0].pod, "default/go-rejected");

    harness.unpublish("csi-go-rejected", &target).await.unwrap();
    assert_eq!(mounts_at(&target), 0);
    assert!(!go.volume_dir("csi-go-rejected").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_adopted_is_reported_and_left_alone_and_unused_volumes_are_removed() {
    needs_root!();
    let go = GoDriverNode::create();
    let live = go.publish(&GoVolume::new("csi-go-live", "go-live"));
    // The Go driver died between unmounting this one and removing its directory.
    let gone_volume = GoVolume::new("csi-go-gone", "go-gone");
    let gone = go.publish(&gone_volume);
    rustix::mount::unmount(&gone, rustix::mount::UnmountFlags::empty()).unwrap();
    go.age("csi-go-gone", Duration::from_secs(600));
    // And this one a moment ago: a Go driver might still be running and publishing it.
    let fresh = go.publish(&GoVolume::new("csi-go-fresh", "go-fresh"));
    rustix::mount::unmount(&fresh, rustix::mount::UnmountFlags::empty()).unwrap();
    // A metadata.json that does not parse, on a volume still mounted.
    let broken_volume = GoVolume::new("csi-go-broken", "go-broken");
    let broken = go.publish(&broken_volume);
    let broken_metadata = go.volume_dir("csi-go-broken").join("metadata.json");
    std::fs::write(&broken_metadata, b"{\"volumeID\": truncated").unwrap();
    // Not a volume at all: no metadata.json.
    let stray = go.inmemfs().join("not-a-volume");
    std::fs::create_dir(&stray).unwrap();
    std::fs::write(stray.join("file"), b"x").unwrap();

    let harness = driver_adopting(&go).await;
    let adopted = harness.driver().adopted();
    assert_eq!(adopted.adopted, 1);
    assert_eq!(adopted.cleaned_up, 1);
    assert_eq!(adopted.unreadable, 1);
    assert_eq!(adopted.left_alone, 1);
    assert!(go.volume_dir("csi-go-fresh").join("metadata.json").exists());
    assert!(
        !go.volume_dir("csi-go-gone").exists(),
        "the unused volume is removed"
    );
    assert_eq!(
        std::fs::read(&broken_metadata).unwrap(),
        b"{\"volumeID\": truncated",
        "an unreadable metadata.json is left alone"
    );
    verify_volume_with_openssl(&broken);
    assert!(stray.join("file").exists(), "nothing else is touched");
    assert!(
        harness
            .driver()
            .manager()
            .snapshot("csi-go-broken")
            .await
            .is_none(),
        "not adopted"
    );

    // kubelet's republish of the unadopted volume (token refresh, kubelet restart) leaves it as
    // it is: no tmpfs of this driver's over it, no record, the pod's files untouched.
    harness
        .client
        .node
        .clone()
        .node_publish_volume(publish_request(
            "csi-go-broken",
            &broken,
            broken_volume.context(),
        ))
        .await
        .expect("a republish of the Go driver's volume is not an error");
    assert_eq!(mounts_at(&broken), 1);
    verify_volume_with_openssl(&broken);
    assert_eq!(harness.state_records(), 1, "only csi-go-live is recorded");

    // kubelet unpublishes the unadopted volume when its pod goes: its bind mount is still
    // recognised as the Go driver's, so the pod does not hang in Terminating.
    harness.unpublish("csi-go-broken", &broken).await.unwrap();
    assert_eq!(mounts_at(&broken), 0);
    assert!(!go.volume_dir("csi-go-broken").exists());
    assert_eq!(mounts_at(&go.inmemfs()), 1, "csi-go-live still uses it");

    // The one left alone at start: its pod goes too.
    harness.unpublish("csi-go-fresh", &fresh).await.unwrap();
    assert!(!go.volume_dir("csi-go-fresh").exists());

    harness.unpublish("csi-go-live", &live).await.unwrap();
    assert_eq!(
        mounts_at(&go.inmemfs()),
        0,
        "only garbage was left in the Go driver's tmpfs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_volume_keeps_its_fs_group_through_renewals() {
    needs_root!();
    let go = GoDriverNode::create();
    // The pod's fsGroup, as kubelet passed it to the Go driver (recorded in metadata.json).
    let volume = GoVolume::new("csi-go-group", "go-group")
        .with(key::DURATION, "6s")
        .mount_group("3000");
    let target = go.publish(&volume);
    let first = serial_of(&target);
    let data = go.volume_dir("csi-go-group").join("data");
    assert_eq!(std::fs::metadata(&data).unwrap().gid(), 3000);

    let _harness = driver_adopting(&go).await;
    renewed_since(&target, &first, "renewed").await;
    for name in ["tls.crt", "tls.key", "ca.crt"] {
        let file = std::fs::metadata(data.join("..data").join(name)).unwrap();
        assert_eq!(file.gid(), 3000, "{name}");
        assert_eq!(file.permissions().mode() & 0o777, 0o440, "{name}");
    }
    assert_eq!(std::fs::metadata(&data).unwrap().gid(), 3000);
    assert!(key_matches(&target));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_volume_asking_for_java_keystores_gets_them_with_its_renewal() {
    needs_root!();
    let go = GoDriverNode::create();
    // The Go driver ignores these attributes (it has no JKS); this driver writes the stores
    // into the adopted volume's next set, in csi-lib's modes.
    let volume = GoVolume::new("csi-go-jks", "go-jks")
        .with(key::DURATION, "6s")
        .with(key::JKS_ENABLE, "true")
        .with(key::JKS_PASSWORD, "changeit");
    let target = go.publish(&volume);
    let first = serial_of(&target);
    assert!(!target.join("keystore.jks").exists());

    let _harness = driver_adopting(&go).await;
    renewed_since(&target, &first, "renewed").await;
    let data = go.volume_dir("csi-go-jks").join("data");
    for name in [
        "tls.crt",
        "tls.key",
        "ca.crt",
        "keystore.jks",
        "truststore.jks",
    ] {
        assert_eq!(mode(&data.join("..data").join(name)), 0o440, "{name}");
        assert_eq!(
            std::fs::read_link(data.join(name)).unwrap(),
            Path::new("..data").join(name)
        );
    }
    let listed = common::java::keytool_list(&target.join("keystore.jks"), "JKS", "changeit");
    assert!(
        listed.contains("certificate, ") && listed.contains("PrivateKeyEntry"),
        "{listed}"
    );
    assert!(
        listed.contains("ca, ") && listed.contains("trustedCertEntry"),
        "{listed}"
    );
    assert!(key_matches(&target));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_driver_still_knows_its_adopted_volumes() {
    needs_root!();
    let go = GoDriverNode::create();
    let target = go.publish(&GoVolume::new("csi-go-kept", "go-kept").with(key::DURATION, "6s"));
    let mut harness = driver_adopting(&go).await;
    assert_eq!(harness.driver().adopted().adopted, 1);
    harness.restart().await;
    // Resumed from this driver's own record, not adopted a second time.
    assert_eq!(harness.driver().resumed().resumed, 1);
    assert_eq!(harness.driver().adopted().adopted, 0);
    let status = harness
        .driver()
        .manager()
        .snapshot("csi-go-kept")
        .await
        .unwrap();
    assert!(status.adopted);
    let first = serial_of(&target);
    renewed_since(&target, &first, "renewed after the restart").await;
    verify_volume_with_openssl(&target);
    harness.unpublish("csi-go-kept", &target).await.unwrap();
    assert_eq!(mounts_at(&go.inmemfs()), 0);
}

/// Waits (up to 20 s) until the volume at `target` holds another certificate than `serial`.
async fn renewed_since(target: &Path, serial: &str, what: &str) {
    wait_for(what, Duration::from_secs(20), || {
        serial_of(target) != serial
    })
    .await;
}

/// A driver on the cert-manager backend (the test API server), adopting from `go`.
async fn cluster_driver_adopting(
    cluster: &Cluster,
    go: &GoDriverNode,
    adjust: impl FnOnce(&mut cert_manager_csi_driver::driver::DriverConfig),
) -> Harness {
    let root = go.root();
    cluster
        .driver(move |config| {
            config.adopt_csi_lib_data_root = Some(root);
            config.cert_manager.publish_timeout = Duration::from_secs(10);
            config.renewal_backoff = cert_manager_csi_driver::renewal::Backoff {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(1),
            };
            adjust(config);
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption_is_reported_on_each_pod() {
    needs_root!();
    let cluster = cluster().await;
    let go = GoDriverNode::create();
    let renewed = go.publish(&GoVolume::new("csi-go-told", "go-told"));
    let kept = go.publish(
        &GoVolume::new("csi-go-kept-told", "go-kept-told").recording(key::KEY_SIZE, "1024"),
    );
    let harness = cluster_driver_adopting(&cluster, &go, |_| {}).await;
    let adopted = event_with_reason(&cluster.api, "go-told", "VolumeAdopted").await;
    assert_eq!(adopted["type"], "Normal");
    let note = adopted["note"].as_str().unwrap();
    assert!(
        note.contains("csi-go-told") && note.contains("renewed in place"),
        "{note}"
    );
    let warned = event_with_reason(&cluster.api, "go-kept-told", "AdoptedVolumeNotRenewed").await;
    assert_eq!(warned["type"], "Warning");
    let note = warned["note"].as_str().unwrap();
    assert!(
        note.contains("key-size") && note.contains("1024") && note.contains("will not be renewed"),
        "{note}"
    );
    harness.unpublish("csi-go-told", &renewed).await.unwrap();
    harness.unpublish("csi-go-kept-told", &kept).await.unwrap();
    assert_eq!(mounts_at(&go.inmemfs()), 0);
}

fn tokens(token: &str) -> String {
    serde_json::json!({"": {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_mode_renews_with_the_recorded_token_then_the_republished_one() {
    needs_root!();
    token_request_renewals(false).await;
}

/// With --strict-attributes, a republish of an adopted volume carrying a key the Go driver ignored
/// fails the strict parse, yet must still hand its fresh token over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strictly_rejected_republish_still_refreshes_the_token() {
    needs_root!();
    token_request_renewals(true).await;
}

async fn token_request_renewals(strict: bool) {
    let cluster = cluster().await;
    let pod_user = "system:serviceaccount:default:go-token";
    cluster.api.add_token("token-the-go-driver-saw", pod_user);
    cluster.api.add_token("token-from-a-republish", pod_user);
    let go = GoDriverNode::create();
    let typo = ("csi.cert-manager.io/dns-name", "typo.example.com");
    let mut volume = GoVolume::new("csi-go-token", "go-token")
        .with(key::DURATION, "6s")
        .tokens(&tokens("token-the-go-driver-saw"));
    if strict {
        volume = volume.with(typo.0, typo.1);
    }
    let target = go.publish(&volume);
    let first = serial_of(&target);
    let harness = cluster_driver_adopting(&cluster, &go, |config| {
        config.cert_manager.use_token_request = true;
        config.strict_attributes = strict;
    })
    .await;
    let reports = cert_manager_csi_driver::status::collect(&harness.config.data_root).unwrap();
    assert!(
        reports[0]
            .notes
            .iter()
            .any(|n| n.contains("pod token the Go driver recorded")),
        "{:?}",
        reports[0].notes
    );

    // The first renewal is made with the token from the Go driver's metadata.json.
    renewed_since(&target, &first, "renewed").await;
    verify_volume_with_openssl(&target);
    let created_by = |api: &kube_test_server::TestApiServer| -> Vec<Option<String>> {
        api.list_objects("cert-manager.io/v1", "certificaterequests")
            .iter()
            .map(|cr| {
                api.created_by(
                    "cert-manager.io/v1",
                    "certificaterequests",
                    "default",
                    cr["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(created_by(&cluster.api), vec![Some(pod_user.to_string())]);

    // That token expires; renewals fail (the current pair stays) until kubelet's republish
    // brings a fresh one, which the next attempt uses.
    cluster.api.reject_token("token-the-go-driver-saw");
    let second = serial_of(&target);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        serial_of(&target),
        second,
        "no renewal without a valid token"
    );
    assert!(key_matches(&target));
    let status = harness
        .driver()
        .manager()
        .snapshot("csi-go-token")
        .await
        .unwrap();
    assert!(status.failures > 0, "{status:?}");
    let mut republished = GoVolume::new("csi-go-token", "go-token")
        .with(key::DURATION, "6s")
        .tokens(&tokens("token-from-a-republish"));
    if strict {
        republished = republished.with(typo.0, typo.1);
    }
    harness
        .client
        .node
        .clone()
        .node_publish_volume(publish_request(
            "csi-go-token",
            &target,
            republished.context(),
        ))
        .await
        .unwrap();
    renewed_since(&target, &second, "renewed with the fresh token").await;
    verify_volume_with_openssl(&target);
    harness.unpublish("csi-go-token", &target).await.unwrap();
    assert_eq!(mounts_at(&go.inmemfs()), 0);
}

/// Every volume is known to the driver behind `client` and healthy.
async fn all_managed_and_healthy(client: &CsiClient, volumes: &[(String, std::path::PathBuf)]) {
    for (volume_id, target) in volumes {
        let condition = client
            .node
            .clone()
            .node_get_volume_stats(NodeGetVolumeStatsRequest {
                volume_id: volume_id.clone(),
                volume_path: target.display().to_string(),
                staging_target_path: String::new(),
            })
            .await
            .unwrap_or_else(|error| panic!("{volume_id}: {error:?}"))
            .into_inner()
            .volume_condition
            .unwrap();
        assert!(!condition.abnormal, "{volume_id}: {}", condition.message);
    }
}

async fn unpublish_all(client: &CsiClient, volumes: &[(String, std::path::PathBuf)]) {
    for (volume_id, target) in volumes {
        unpublish(client, volume_id, target).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_half_way_through_adoption_loses_nothing() {
    needs_root!();
    let dir = tempfile::Builder::new()
        .prefix("csi-adopt-kill-")
        .tempdir()
        .unwrap();
    let go = GoDriverNode::create_in(dir.path());
    let volumes: Vec<(String, std::path::PathBuf)> = (0..24)
        .map(|n| {
            let volume = GoVolume::new(&format!("csi-go-{n:02}"), &format!("go-{n:02}"));
            let target = go.publish(&volume);
            (volume.volume_id, target)
        })
        .collect();
    let mut node = BinaryNode::new(dir.path(), Vec::new());
    node.extra_args = vec![format!("--adopt-csi-lib-data-root={}", go.root().display())];

    // Killed as soon as adoption has recorded its first volume (polled every millisecond:
    // adopting all 24 takes tens of milliseconds).
    let mut driver = node.spawn();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while node.records().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was recorded"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    kill_hard(&mut driver);
    let recorded = node.records().len();
    eprintln!(
        "killed with {recorded} of {} volumes recorded",
        volumes.len()
    );
    // And the worst case, whatever the timing: a kill after some records, one mid-write.
    for name in node.records().iter().skip(volumes.len() / 2) {
        std::fs::remove_file(node.dir.join("state/volumes").join(name)).unwrap();
    }
    std::fs::write(
        node.dir.join("state/volumes/csi-go-23.json.tmp"),
        b"{\"volume_id\":\"csi-go-2",
    )
    .unwrap();
    // The pods never noticed.
    for (_, target) in &volumes {
        assert_eq!(mounts_at(target), 1);
        verify_volume_with_openssl(target);
    }

    let mut driver = node.spawn();
    let client = node.connect().await;
    all_managed_and_healthy(&client, &volumes).await;
    assert_eq!(node.records().len(), volumes.len(), "{:?}", node.records());
    for (volume_id, _) in &volumes {
        assert!(go.volume_dir(volume_id).join("metadata.json").exists());
    }
    unpublish_all(&client, &volumes).await;
    assert!(
        mounts_under(dir.path()).is_empty(),
        "{:?}",
        mounts_under(dir.path())
    );
    assert!(node.records().is_empty());
    kill_hard(&mut driver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_adopted_renewal_keeps_the_pair_and_renews_after_the_restart() {
    needs_root!();
    let cluster = cluster().await;
    let dir = tempfile::Builder::new()
        .prefix("csi-adopt-renewal-")
        .tempdir()
        .unwrap();
    let go = GoDriverNode::create_in(dir.path());
    let volume = GoVolume::new("csi-go-mid-renewal", "go-mid-renewal").with(key::DURATION, "6s");
    let target = go.publish(&volume);
    let first = serial_of(&target);
    let mut backend = cert_manager_backend(&cluster.kubeconfig);
    backend.push(format!("--adopt-csi-lib-data-root={}", go.root().display()));
    let node = BinaryNode::new(dir.path(), backend);
    // The renewal's request stays unanswered: the driver dies while it waits.
    cluster.signer.set_mode(SignerMode::Ignore);
    let mut driver = node.spawn();
    wait_for(
        "the renewal's request was created",
        Duration::from_secs(15),
        || {
            !cluster
                .api
                .list_objects("cert-manager.io/v1", "certificaterequests")
                .is_empty()
        },
    )
    .await;
    kill_hard(&mut driver);
    assert_eq!(serial_of(&target), first);
    assert!(key_matches(&target));
    assert_eq!(mounts_at(&target), 1);

    cluster.signer.set_mode(SignerMode::Approve);
    let mut driver = node.spawn();
    let client = node.connect().await;
    renewed_since(&target, &first, "renewed after the restart").await;
    verify_volume_with_openssl(&target);
    let volumes = vec![("csi-go-mid-renewal".to_string(), target.clone())];
    all_managed_and_healthy(&client, &volumes).await;
    unpublish_all(&client, &volumes).await;
    assert!(
        mounts_under(dir.path()).is_empty(),
        "{:?}",
        mounts_under(dir.path())
    );
    assert!(node.records().is_empty());
    kill_hard(&mut driver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_never_takes_over_or_unmounts_a_mount_it_did_not_make() {
    needs_root!();
    let go = GoDriverNode::create();
    let harness = driver_adopting(&go).await;
    // Something else's tmpfs at a target kubelet hands this driver.
    let target = go.target("foreign");
    std::fs::create_dir(&target).unwrap();
    rustix::mount::mount(
        "someone-else",
        &target,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None::<&std::ffi::CStr>,
    )
    .unwrap();
    std::fs::write(target.join("theirs"), b"keep me").unwrap();
    let error = harness
        .client
        .node
        .clone()
        .node_publish_volume(publish_request(
            "csi-new",
            &target,
            GoVolume::new("csi-new", "foreign").context(),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::FailedPrecondition, "{error:?}");
    assert!(error.message().contains("someone-else"), "{error:?}");
    assert_eq!(mounts_at(&target), 1);
    assert_eq!(std::fs::read(target.join("theirs")).unwrap(), b"keep me");
    assert!(std::fs::read_dir(&target).unwrap().count() == 1);
    assert_eq!(harness.state_records(), 0);

    // The Go driver's bind mount of another volume is not this one's either.
    let other = go.publish(&GoVolume::new("csi-go-other", "go-other"));
    std::fs::remove_dir(&target).ok();
    let error = harness
        .client
        .node
        .clone()
        .node_publish_volume(publish_request(
            "csi-not-that-one",
            &other,
            GoVolume::new("csi-not-that-one", "go-other").context(),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::FailedPrecondition, "{error:?}");
    verify_volume_with_openssl(&other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_volume_also_mounted_elsewhere_keeps_its_files_after_unpublish() {
    needs_root!();
    let go = GoDriverNode::create();
    let target = go.publish(&GoVolume::new("csi-go-twice", "go-twice"));
    let harness = driver_adopting(&go).await;
    assert_eq!(harness.driver().adopted().adopted, 1);
    // A second bind mount of the same data (another container's view, say).
    let second = go.dir.join("second-view");
    std::fs::create_dir(&second).unwrap();
    rustix::mount::mount_bind(go.volume_dir("csi-go-twice").join("data"), &second).unwrap();
    harness.unpublish("csi-go-twice", &target).await.unwrap();
    assert_eq!(mounts_at(&target), 0);
    verify_volume_with_openssl(&second);
    assert!(go.volume_dir("csi-go-twice").join("metadata.json").exists());
    assert_eq!(mounts_at(&go.inmemfs()), 1, "still in use");
}
