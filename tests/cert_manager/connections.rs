//! The driver's connections to the API server: requests multiplexed over h2 on one connection,
//! the watch included, whether made as the driver or with pods' tokens; plain HTTP/1.1 still
//! works where the server offers nothing else.

use super::*;
use common::cluster::cluster_plain;

const BURST: usize = 32;

/// Publishes `BURST` volumes at once (after one warm-up publish, so the watch is open) and
/// returns how many connections the burst made the server accept.
async fn burst(
    cluster: &Cluster,
    harness: &Harness,
    context: impl Fn(&SamplePod) -> HashMap<String, String>,
) -> usize {
    let first = pod("warm-up");
    publish_context(
        harness,
        "csi-warm-up",
        &harness.target("warm-up"),
        context(&first),
    )
    .await
    .unwrap();
    assert!(
        cluster.api.open_watches() >= 1,
        "the CertificateRequest watch is open"
    );
    let before = cluster.api.connections();
    let pods: Vec<(String, SamplePod)> = (0..BURST)
        .map(|i| (format!("csi-burst-{i}"), pod(&format!("burst-{i}"))))
        .collect();
    let publishes = pods.iter().map(|(volume_id, pod)| {
        let target = harness.target(&pod.name);
        let context = context(pod);
        async move { publish_context(harness, volume_id, &target, context).await }
    });
    for result in futures_util::future::join_all(publishes).await {
        result.unwrap();
    }
    assert_eq!(creates(&cluster.api), BURST + 1);
    let after = cluster.api.connections();
    after.accepted - before.accepted
}

#[tokio::test]
async fn a_burst_of_publishes_shares_one_h2_connection_with_the_watch() {
    let cluster = cluster().await;
    let harness = driver(&cluster, Duration::from_secs(30)).await;
    let opened = burst(&cluster, &harness, |pod| ecdsa_context(pod, &[])).await;
    assert_eq!(opened, 0, "the burst opened connections of its own");
    let connections = cluster.api.connections();
    assert!(connections.h2 >= 1, "{connections:?}");
    assert_eq!(connections.http1, 0, "{connections:?}");
    // Start-up may race a second connection before ALPN tells the pool it can share the first.
    assert!(connections.accepted <= 2, "{connections:?}");
}

#[tokio::test]
async fn pod_token_requests_share_the_drivers_connection() {
    let cluster = cluster().await;
    cluster
        .api
        .add_token("pod-token", "system:serviceaccount:apps:web");
    let harness = driver_with(&cluster, Duration::from_secs(30), |config| {
        config.cert_manager.use_token_request = true;
    })
    .await;
    let opened = burst(&cluster, &harness, |pod| token_context(pod, "pod-token")).await;
    assert_eq!(
        opened, 0,
        "pod-token clients opened connections of their own"
    );
    let made_as_pod = requests(&cluster.api)
        .iter()
        .filter(|request| {
            cluster
                .api
                .created_by(CR_API, CRS, "apps", &name_of(request))
                .as_deref()
                == Some("system:serviceaccount:apps:web")
        })
        .count();
    assert_eq!(
        made_as_pod,
        BURST + 1,
        "every request was created with the pod's token"
    );
    let connections = cluster.api.connections();
    assert_eq!(connections.http1, 0, "{connections:?}");
}

#[tokio::test]
async fn plain_http_still_serves_issuance_over_http1() {
    let cluster = cluster_plain().await;
    let harness = driver(&cluster, Duration::from_secs(30)).await;
    let web = pod("web-0");
    let target = harness.target("web-0");
    publish(&harness, "csi-plain", &target, &web, &[])
        .await
        .unwrap();
    verify_volume_with_openssl(&target);
    let connections = cluster.api.connections();
    assert!(connections.http1 >= 1, "{connections:?}");
    assert_eq!(connections.h2, 0, "{connections:?}");
}
