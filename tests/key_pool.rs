//! The key pool (`--key-pool-size`) through the driver: default-attribute publishes take finished
//! keys, each volume gets a key of its own in the encoding it asks for, renewals make their own,
//! the pool refills, a pool of 0 is off, and the metrics say so.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use cert_manager_csi_driver::demo::SamplePod;
use cert_manager_csi_driver::keys::pool::{KeyKind, PoolStats};
use common::{Harness, publish_context, wait_for};

fn stats(harness: &Harness) -> PoolStats {
    harness.driver().manager().key_pool_stats()
}

fn pooled_rsa(harness: &Harness) -> usize {
    stats(harness)
        .levels
        .iter()
        .find(|level| level.kind == KeyKind::DEFAULT)
        .map_or(0, |level| level.keys)
}

/// The volume's key, as written.
fn key_of(target: &std::path::Path) -> String {
    std::fs::read_to_string(target.join("tls.key")).unwrap()
}

/// Bits of the RSA key at `target`, as openssl reads it.
fn rsa_bits(target: &std::path::Path) -> String {
    let text = common::openssl(&[
        "pkey",
        "-in",
        &target.join("tls.key").display().to_string(),
        "-noout",
        "-text",
    ]);
    text.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_publishes_take_distinct_pooled_keys_in_the_encoding_asked_for() {
    let harness = Harness::start_with(|config| config.key_pool_size = 3).await;
    wait_for("a full pool", Duration::from_secs(60), || {
        pooled_rsa(&harness) == 3
    })
    .await;

    let mut keys = HashSet::new();
    for (index, encoding) in ["PKCS1", "PKCS8", "PKCS1"].into_iter().enumerate() {
        let pod = format!("pooled-{index}");
        let target = harness.target(&pod);
        // The default attributes: no key-algorithm, so RSA 2048.
        let context = harness.context(&pod, &[("csi.cert-manager.io/key-encoding", encoding)]);
        publish_context(&harness, &format!("csi-{pod}"), &target, context)
            .await
            .unwrap();
        let key = key_of(&target);
        let header = if encoding == "PKCS1" {
            "-----BEGIN RSA PRIVATE KEY-----"
        } else {
            "-----BEGIN PRIVATE KEY-----"
        };
        assert!(key.starts_with(header), "{encoding}: {key:.40}");
        assert!(
            rsa_bits(&target).contains("2048 bit"),
            "{}",
            rsa_bits(&target)
        );
        assert!(common::key_matches(&target));
        assert!(keys.insert(key), "a pooled key was handed out twice");
    }
    let after = stats(&harness);
    assert_eq!((after.hits, after.misses), (3, 0));
    // Taken keys are replaced.
    wait_for("the pool refilled", Duration::from_secs(60), || {
        pooled_rsa(&harness) == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_pool_means_the_publish_makes_its_own_key() {
    let harness = Harness::start_with(|config| config.key_pool_size = 0).await;
    let target = harness.target("unpooled");
    let context = harness.context("unpooled", &[]);
    publish_context(&harness, "csi-unpooled", &target, context)
        .await
        .unwrap();
    assert!(rsa_bits(&target).contains("2048 bit"));
    let stats = stats(&harness);
    assert_eq!((stats.hits, stats.misses), (0, 1));
    assert!(stats.levels.is_empty(), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_make_their_own_keys_and_reuse_keeps_the_key() {
    let harness = Harness::start_with(|config| config.key_pool_size = 2).await;
    wait_for("a full pool", Duration::from_secs(60), || {
        pooled_rsa(&harness) == 2
    })
    .await;
    let short = [
        ("csi.cert-manager.io/duration", "3s"),
        ("csi.cert-manager.io/renew-before", "1h"),
    ];
    let renewing = harness.target("renewing");
    let context = harness.context("renewing", &short);
    publish_context(&harness, "csi-renewing", &renewing, context)
        .await
        .unwrap();
    let reusing = harness.target("reusing");
    let mut overrides = short.to_vec();
    overrides.push(("csi.cert-manager.io/reuse-private-key", "true"));
    let context = harness.context("reusing", &overrides);
    publish_context(&harness, "csi-reusing", &reusing, context)
        .await
        .unwrap();
    assert_eq!(
        stats(&harness).hits,
        2,
        "first issuances take from the pool"
    );

    let (first_key, first_serial) = (key_of(&renewing), common::serial_of(&renewing));
    let reused_key = key_of(&reusing);
    let reused_serial = common::serial_of(&reusing);
    common::wait_for_new_serial(
        &renewing,
        &first_serial,
        Duration::from_secs(20),
        "no renewal",
    )
    .await;
    common::wait_for_new_serial(
        &reusing,
        &reused_serial,
        Duration::from_secs(20),
        "no renewal",
    )
    .await;
    assert_ne!(key_of(&renewing), first_key, "a renewal makes a new key");
    assert_eq!(
        key_of(&reusing),
        reused_key,
        "reuse-private-key keeps the key"
    );
    let after = stats(&harness);
    assert_eq!(
        (after.hits, after.misses),
        (2, 0),
        "renewals neither take from the pool nor count as misses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_kinds_get_a_pool_once_asked_for_and_metrics_show_it() {
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let harness = Harness::start_with(|config| {
        config.key_pool_size = 2;
        config.metrics_address = Some(address);
    })
    .await;
    let ecdsa = KeyKind {
        algorithm: cert_manager_csi_driver::attributes::KeyAlgorithm::Ecdsa,
        size: 384,
    };
    let pod = SamplePod::new("p384");
    let target = harness.target(&pod.name);
    let overrides = [
        ("csi.cert-manager.io/key-algorithm", "ECDSA"),
        ("csi.cert-manager.io/key-size", "384"),
    ];
    publish_context(
        &harness,
        "csi-p384-a",
        &target,
        harness.context(&pod.name, &overrides),
    )
    .await
    .unwrap();
    assert_eq!(
        stats(&harness).misses,
        1,
        "the first of a kind finds no pool"
    );
    wait_for("a P-384 pool", Duration::from_secs(60), || {
        stats(&harness)
            .levels
            .iter()
            .any(|level| level.kind == ecdsa && level.keys == 2)
    })
    .await;
    let second = harness.target("p384-b");
    publish_context(
        &harness,
        "csi-p384-b",
        &second,
        harness.context("p384-b", &overrides),
    )
    .await
    .unwrap();
    assert_eq!(stats(&harness).hits, 1);

    let (status, body) = common::http_get(address, "/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        "certmanager_csi_key_pool_hits_total{node=\"test-node\"} 1",
        "certmanager_csi_key_pool_misses_total{node=\"test-node\"} 1",
        "certmanager_csi_key_pool_keys{node=\"test-node\",algorithm=\"RSA\",size=\"2048\"}",
        "certmanager_csi_key_pool_keys{node=\"test-node\",algorithm=\"ECDSA\",size=\"384\"}",
    ] {
        assert!(body.contains(expected), "missing {expected:?} in\n{body}");
    }
}
