//! `--publish-in-csi-lib-layout`: new volumes are published in the Go driver's on-node layout, so
//! that a `helm rollback` to the Go driver resumes and renews them as its own, with no pod
//! restarted. Checked against what the Go driver's start-up reads (`go_driver::go_start_up`, its
//! rules as read in csi-lib's source), against the layout `go_driver` builds byte for byte as the
//! Go driver does, and against this driver's own adoption of the Go driver's volumes. Needs root
//! for the real tmpfs and bind mounts (CI runs as root).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::demo::publish_request;
use cert_manager_csi_driver::volume::mountinfo;
use common::go_driver::{GoDriverNode, GoStartUp, GoVolume, go_start_up};
use common::{Harness, is_root, key_matches, serial_of, unmount_all_under, wait_for};

macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root for real tmpfs and bind mounts (CI runs as root)");
            return;
        }
    };
}

/// A node's directory for the Go driver's data root, whatever is mounted under it gone at the end.
struct Node(tempfile::TempDir);

impl Node {
    fn new() -> Node {
        Node(
            tempfile::Builder::new()
                .prefix("csi-rollback-")
                .tempdir()
                .unwrap(),
        )
    }

    fn root(&self) -> PathBuf {
        self.0.path().join("csi-data-dir")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        unmount_all_under(self.0.path());
    }
}

async fn driver_publishing_in_go_layout(root: &Path) -> Harness {
    let root = root.to_path_buf();
    Harness::start_with(move |config| {
        config.adopt_csi_lib_data_root = Some(root);
        config.publish_in_csi_lib_layout = true;
    })
    .await
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn metadata_of(root: &Path, volume_id: &str) -> String {
    std::fs::read_to_string(root.join("inmemfs").join(volume_id).join("metadata.json")).unwrap()
}

fn resumed_at(root: &Path, volume_id: &str) -> time::OffsetDateTime {
    match go_start_up(root).unwrap().remove(volume_id) {
        Some(GoStartUp::Resumed { renew_at }) => renew_at,
        other => panic!("{volume_id}: the Go driver would not resume it: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_volume_is_laid_out_as_the_go_driver_lays_out_its_own() {
    needs_root!();
    let node = Node::new();
    let root = node.root();
    let harness = driver_publishing_in_go_layout(&root).await;
    let target = harness.target("web-0");
    let context = harness.context(
        "web-0",
        &[(key::KEY_ALGORITHM, "ECDSA"), (key::FS_GROUP, "2000")],
    );
    harness
        .client
        .node
        .clone()
        .node_publish_volume(publish_request("csi-new", &target, context.clone()))
        .await
        .unwrap();
    common::verify_volume_with_openssl(&target);
    assert!(key_matches(&target));

    // The Go driver's tmpfs, mounted as its start-up mounts it (source tmpfs, no size option).
    let mounts = mountinfo::read_current().unwrap();
    let inmemfs = mountinfo::find_mount(&mounts, &root.join("inmemfs")).expect("inmemfs mounted");
    assert_eq!(
        (inmemfs.fs_type.as_str(), inmemfs.source.as_str()),
        ("tmpfs", "tmpfs")
    );
    // The target is a read-only bind mount of the volume's data/ in it.
    let bind = mountinfo::find_mount(&mounts, &target).expect("target mounted");
    assert_eq!(bind.device, inmemfs.device);
    assert_eq!(bind.root, Path::new("/csi-new/data"));
    assert!(bind.mount_options.split(',').any(|o| o == "ro"), "{bind:?}");

    // csi-lib's directory, file modes and AtomicWriter layout.
    let volume_dir = root.join("inmemfs/csi-new");
    assert_eq!(mode(&volume_dir), 0o644);
    assert_eq!(mode(&volume_dir.join("metadata.json")), 0o600);
    let data = volume_dir.join("data");
    assert_eq!(mode(&data), 0o550);
    assert_eq!(std::fs::metadata(&data).unwrap().gid(), 2000);
    for name in ["tls.crt", "tls.key", "ca.crt"] {
        assert_eq!(
            std::fs::read_link(data.join(name)).unwrap(),
            Path::new("..data").join(name),
            "{name} is a symlink through ..data"
        );
        let file = data.join("..data").join(name);
        assert_eq!(mode(&file), 0o440, "{name}");
        assert_eq!(std::fs::metadata(&file).unwrap().gid(), 2000, "{name}");
    }
    assert!(
        std::fs::read_link(data.join("..data"))
            .unwrap()
            .is_relative()
    );
    assert!(!data.join("..data_tmp").exists());
    let entries: Vec<String> = std::fs::read_dir(&volume_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "metadata.json and data/ only: {entries:?}"
    );

    // metadata.json as Go's json.Marshal writes csi-lib's struct: every byte but the renewal time.
    let metadata = metadata_of(&root, "csi-new");
    let mut keys: Vec<&String> = context.keys().collect();
    keys.sort();
    let mut expected_context = String::new();
    for (index, key) in keys.iter().enumerate() {
        if index > 0 {
            expected_context.push(',');
        }
        expected_context.push_str(&format!("\"{key}\":\"{}\"", context[*key]));
    }
    let renew_at = resumed_at(&root, "csi-new");
    let renew_at_text = renew_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(
        metadata,
        format!(
            "{{\"volumeID\":\"csi-new\",\"targetPath\":\"{}\",\"nextIssuanceTime\":\"{renew_at_text}\",\"volumeContext\":{{{expected_context}}}}}",
            target.display()
        )
    );
    // The Go driver would renew it by its rule (renew-before 240h before notAfter); this
    // driver plans the same moment, less its jitter (at most 1% of the lifetime, 60 s).
    let snapshot = harness
        .driver()
        .manager()
        .snapshot("csi-new")
        .await
        .unwrap();
    let not_after = snapshot.certificate.unwrap().not_after;
    let by_rule = time::OffsetDateTime::from(not_after - Duration::from_secs(240 * 3600));
    assert!(
        (by_rule - renew_at).abs() <= time::Duration::seconds(1),
        "{by_rule} vs {renew_at}"
    );
    let planned = time::OffsetDateTime::from(snapshot.next_renewal.unwrap());
    assert!(
        planned <= renew_at && renew_at - planned <= time::Duration::seconds(61),
        "{planned} vs {renew_at}"
    );
    // In this driver's status and metrics it is its own volume, not an adopted one.
    assert!(
        !harness
            .driver()
            .manager()
            .snapshot("csi-new")
            .await
            .unwrap()
            .adopted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rollback_the_go_driver_resumes_every_volume_at_its_renewal_time() {
    needs_root!();
    // A node that ran the Go driver: one of its volumes is adopted, two new ones are published in
    // its layout; one renews every few seconds.
    let go = GoDriverNode::create();
    let adopted = GoVolume::new("csi-from-go", "from-go");
    let adopted_target = go.publish(&adopted);
    let root = go.root();
    let mut harness = driver_publishing_in_go_layout(&root).await;
    assert_eq!(harness.driver().adopted().adopted, 1);
    let short = harness.target("short");
    harness
        .publish("csi-short", &short, &[(key::DURATION, "6s")])
        .await
        .unwrap();
    let long = harness.target("long");
    harness.publish("csi-long", &long, &[]).await.unwrap();

    // Renewed by this driver: the data/ swap and the metadata the Go driver will read.
    let first = serial_of(&short);
    let before = resumed_at(&root, "csi-short");
    wait_for("csi-short renewed", Duration::from_secs(15), || {
        serial_of(&short) != first
    })
    .await;
    wait_for("its next renewal recorded", Duration::from_secs(5), || {
        resumed_at(&root, "csi-short") > before
    })
    .await;
    assert!(key_matches(&short));

    // `helm rollback`: this driver stops (its mounts stay); the Go driver starts on the node.
    harness.driver.take().unwrap().stop().await.unwrap();
    let view = go_start_up(&root).expect("the Go driver starts");
    assert_eq!(view.len(), 3, "{view:?}");
    // The adopted one keeps the time the Go driver recorded until this driver renews it.
    assert!(matches!(view["csi-from-go"], GoStartUp::Resumed { .. }));
    let now = time::OffsetDateTime::now_utc();
    for volume_id in ["csi-short", "csi-long"] {
        match &view[volume_id] {
            GoStartUp::Resumed { renew_at } => assert!(
                *renew_at > now - time::Duration::seconds(10),
                "{volume_id}: renews at {renew_at}"
            ),
            other => panic!("{volume_id}: {other:?}"),
        }
    }
    // Every pod keeps its files, through the mounts it has.
    for target in [&adopted_target, &short, &long] {
        assert!(key_matches(target), "{}", target.display());
    }

    // And back again (`helm upgrade`): a driver that lost its records still takes them all over
    // as the Go driver's volumes.
    std::fs::remove_dir_all(&harness.config.data_root).unwrap();
    harness.restart().await;
    assert_eq!(harness.driver().adopted().adopted, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_unpublish_and_failed_publish_keep_the_layout_the_go_driver_reads() {
    needs_root!();
    let node = Node::new();
    let root = node.root();
    let root_for_config = root.clone();
    // A small size cap, so that a set of many names fails after the volume was laid out.
    let harness = Harness::start_with(move |config| {
        config.adopt_csi_lib_data_root = Some(root_for_config);
        config.publish_in_csi_lib_layout = true;
        config.volume_size_bytes = 32 * 1024;
    })
    .await;
    let target = harness.target("tokens");
    let with_token = |token: &str| {
        let mut context = harness.context("tokens", &[(key::KEY_ALGORITHM, "ECDSA")]);
        context.insert(
            key::SERVICE_ACCOUNT_TOKENS.into(),
            format!("{{\"\":{{\"token\":\"{token}\",\"expirationTimestamp\":\"2030-01-01T00:00:00Z\"}}}}"),
        );
        publish_request("csi-tokens", &target, context)
    };
    let mut node_client = harness.client.node.clone();
    node_client
        .node_publish_volume(with_token("first"))
        .await
        .unwrap();
    assert!(metadata_of(&root, "csi-tokens").contains("first"));
    // kubelet's republish with a fresh token: csi-lib records the new context.
    node_client
        .node_publish_volume(with_token("second"))
        .await
        .unwrap();
    let metadata = metadata_of(&root, "csi-tokens");
    assert!(
        metadata.contains("second") && !metadata.contains("first"),
        "{metadata}"
    );
    assert!(matches!(
        go_start_up(&root).unwrap()["csi-tokens"],
        GoStartUp::Resumed { .. }
    ));

    // A publish that fails leaves nothing the Go driver would trip on.
    let bad = harness.target("bad");
    let names: Vec<String> = (0..1200).map(|n| format!("name-{n}.example.com")).collect();
    let error = harness
        .publish("csi-bad", &bad, &[(key::DNS_NAMES, &names.join(","))])
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::ResourceExhausted, "{error:?}");
    assert!(!root.join("inmemfs/csi-bad").exists());
    assert!(!bad.exists());
    assert_eq!(common::mounts_at(&bad), 0);

    // Unpublish removes the volume's directory and target; the tmpfs stays for new volumes.
    harness.unpublish("csi-tokens", &target).await.unwrap();
    assert!(!root.join("inmemfs/csi-tokens").exists());
    assert!(!target.exists());
    assert!(go_start_up(&root).unwrap().is_empty());
    let mounts = mountinfo::read_current().unwrap();
    assert!(mountinfo::find_mount(&mounts, &root.join("inmemfs")).is_some());
}
