//! Teardown never waits on the API: with the API server frozen (its requests unanswered, its
//! watches silent), an unpublish stops whatever issuance or renewal the volume has in flight,
//! unmounts and returns at once — mid-renewal, mid-first-issuance, and after `kill -9` and a
//! restart. A request already created is withdrawn in the background once the API answers
//! again, and no certificate is issued for a volume that is gone.

mod common;

use std::time::Duration;

use cert_manager_csi_driver::demo::publish_request;
use common::binary::{BinaryNode, cert_manager_backend, kill_hard};
use common::cluster::{Cluster, cluster, creates};
use common::{Harness, is_root, mounts_at, mounts_under, unpublish, wait_for};
use kube_test_server::{SignerMode, TestApiServer};
use serde_json::Value;
use tokio::time::Instant;

/// The bound the issue sets for an unpublish during a complete API outage.
const UNPUBLISH_BOUND: Duration = Duration::from_secs(1);

/// The volume's requests that are not signed (issued ones are its history, collected with the
/// pod through their ownerReference).
fn pending_requests_of(api: &TestApiServer, volume_id: &str) -> Vec<Value> {
    api.list_objects("cert-manager.io/v1", "certificaterequests")
        .into_iter()
        .filter(|cr| cr["metadata"]["annotations"]["csi.cert-manager.io/volume-id"] == volume_id)
        .filter(|cr| {
            cr["status"]["certificate"]
                .as_str()
                .is_none_or(str::is_empty)
        })
        .collect()
}

async fn driver(cluster: &Cluster, continue_on_not_ready: bool) -> Harness {
    cluster
        .driver(move |config| {
            // Long enough that waiting for it would show.
            config.cert_manager.publish_timeout = Duration::from_secs(30);
            config.continue_on_not_ready = continue_on_not_ready;
        })
        .await
}

fn context(pod: &str, duration: &str) -> std::collections::HashMap<String, String> {
    common::go_driver::GoVolume::new("unused", pod)
        .with("csi.cert-manager.io/duration", duration)
        .context()
}

/// Thaws the server and checks that what the unpublish left pending is withdrawn and nothing
/// more is requested for the volume.
async fn after_the_outage(cluster: &Cluster, volume_id: &str, creates_before: usize) {
    cluster.api.set_frozen(false);
    wait_for(
        "the unpublished volume's pending request was withdrawn",
        Duration::from_secs(20),
        || pending_requests_of(&cluster.api, volume_id).is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        creates(&cluster.api) <= creates_before + 1,
        "no new request for a volume that is gone"
    );
    assert!(pending_requests_of(&cluster.api, volume_id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_mid_renewal_during_an_api_outage_returns_at_once() {
    let cluster = cluster().await;
    let harness = driver(&cluster, false).await;
    let target = harness.target("outage-renewal");
    // 6 s certificates renew 4 s after issuance.
    harness
        .client
        .node
        .clone()
        .node_publish_volume(publish_request(
            "csi-outage-renewal",
            &target,
            context("outage-renewal", "6s"),
        ))
        .await
        .unwrap();
    // The renewal's request is created, then nothing answers any more.
    cluster.signer.set_mode(SignerMode::Ignore);
    wait_for("the renewal's request", Duration::from_secs(15), || {
        creates(&cluster.api) == 2
    })
    .await;
    cluster.api.set_frozen(true);
    let creates_before = creates(&cluster.api);

    let started = Instant::now();
    harness
        .unpublish("csi-outage-renewal", &target)
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("unpublish mid-renewal, API frozen: {took:?}");
    assert!(took < UNPUBLISH_BOUND, "took {took:?}");
    assert!(!target.exists());
    if is_root() {
        assert_eq!(mounts_at(&target), 0);
    }
    assert_eq!(harness.state_records(), 0);
    assert!(
        harness
            .driver()
            .manager()
            .snapshot("csi-outage-renewal")
            .await
            .is_none()
    );

    after_the_outage(&cluster, "csi-outage-renewal", creates_before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_mid_first_issuance_during_an_api_outage_returns_at_once() {
    let cluster = cluster().await;
    // --continue-on-not-ready: the publish returns once mounted, the issuance goes on.
    let harness = driver(&cluster, true).await;
    cluster.signer.set_mode(SignerMode::Ignore);
    // The watch has listed; then the API server stops answering.
    wait_for("the driver is ready", Duration::from_secs(10), || {
        cluster.api.open_watches() > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.api.set_frozen(true);
    let creates_before = creates(&cluster.api);
    let target = harness.target("outage-first");
    harness
        .client
        .node
        .clone()
        .node_publish_volume(publish_request(
            "csi-outage-first",
            &target,
            context("outage-first", "1h"),
        ))
        .await
        .expect("reported as published once mounted");
    // Its first issuance is now stuck on the API server.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    harness
        .unpublish("csi-outage-first", &target)
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("unpublish mid-first-issuance, API frozen: {took:?}");
    assert!(took < UNPUBLISH_BOUND, "took {took:?}");
    assert!(!target.exists());
    assert_eq!(harness.state_records(), 0);

    after_the_outage(&cluster, "csi-outage-first", creates_before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_after_kill_9_and_a_restart_during_an_api_outage_returns_at_once() {
    if !is_root() {
        eprintln!("skipped: needs root for real tmpfs mounts (CI runs as root)");
        return;
    }
    let cluster = cluster().await;
    let dir = tempfile::Builder::new()
        .prefix("csi-outage-restart-")
        .tempdir()
        .unwrap();
    // Its 20 s publish timeout is far longer than the bound.
    let node = BinaryNode::new(dir.path(), cert_manager_backend(&cluster.kubeconfig));
    let mut driver = node.spawn();
    let client = node.connect().await;
    let target = node.target("outage-restart");
    client
        .node
        .clone()
        .node_publish_volume(publish_request(
            "csi-outage-restart",
            &target,
            context("outage-restart", "6s"),
        ))
        .await
        .unwrap();
    // Down it goes, and the API server with it; the driver comes back first.
    cluster.signer.set_mode(SignerMode::Ignore);
    kill_hard(&mut driver);
    cluster.api.set_frozen(true);
    let creates_before = creates(&cluster.api);
    let mut driver = node.spawn();
    let client = node.connect().await;
    // The certificate's renewal time (4 s after issuance) passes: the renewal is stuck.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let started = Instant::now();
    unpublish(&client, "csi-outage-restart", &target)
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("unpublish after kill -9 and restart, API frozen: {took:?}");
    assert!(took < UNPUBLISH_BOUND, "took {took:?}");
    assert!(
        mounts_under(dir.path()).is_empty(),
        "{:?}",
        mounts_under(dir.path())
    );
    assert!(node.records().is_empty());

    after_the_outage(&cluster, "csi-outage-restart", creates_before).await;
    kill_hard(&mut driver);
}

/// A renewal that fails because its issuer does not answer (the API server frozen past the
/// attempt's deadline) waits out a backoff, here two minutes. Once an issuance through the same
/// issuer succeeds again, it is retried at once instead: after an outage every certificate that
/// fell due during it is renewed as soon as the API answers, not minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_that_could_not_reach_its_issuer_is_retried_once_the_issuer_answers() {
    let cluster = cluster().await;
    let harness = cluster
        .driver(|config| {
            config.cert_manager.publish_timeout = Duration::from_secs(2);
            config.renewal_backoff = cert_manager_csi_driver::renewal::Backoff {
                initial: Duration::from_secs(120),
                max: Duration::from_secs(120),
            };
        })
        .await;
    let target = harness.target("stuck");
    // 6 s certificates renew 4 s after issuance.
    harness
        .client
        .node
        .clone()
        .node_publish_volume(publish_request(
            "csi-stuck",
            &target,
            context("stuck", "6s"),
        ))
        .await
        .unwrap();
    let first = common::serial_of(&target);
    cluster.api.set_frozen(true);
    let manager = harness.driver().manager();
    for _ in 0..150 {
        if manager
            .snapshot("csi-stuck")
            .await
            .is_some_and(|volume| volume.failures > 0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed = manager.snapshot("csi-stuck").await.unwrap();
    assert!(failed.failures > 0, "the renewal failed in the outage");
    let retry_at = failed.next_renewal.expect("a retry is scheduled");
    assert!(
        retry_at > std::time::SystemTime::now() + Duration::from_secs(60),
        "its retry waits out the two-minute backoff"
    );

    // The API answers again, and another pod's volume is issued through the same issuer.
    cluster.api.set_frozen(false);
    let other = harness.target("other");
    harness
        .client
        .node
        .clone()
        .node_publish_volume(publish_request("csi-other", &other, context("other", "1h")))
        .await
        .unwrap();
    wait_for(
        "the stuck renewal, retried long before its backoff ends",
        Duration::from_secs(15),
        || common::serial_of(&target) != first,
    )
    .await;
}
