//! The driver's watch kept down or expired, and API server errors, while a publish waits.

use super::*;

/// Publishes while the API server keeps the driver's watch down from 300 ms until well after
/// the signer answered (at 1.5 s), with `expire` also making the watch's resourceVersion too old.
/// The publish must still see the signature, through the watch's recovery alone.
async fn publish_across_a_watch_outage(expire: bool) -> (Cluster, Harness) {
    let cluster = cluster().await;
    cluster
        .signer
        .set_mode(SignerMode::Delay(Duration::from_millis(1500)));
    let harness = driver(&cluster, Duration::from_secs(30)).await;
    let target = harness.target("web-6");
    let web = pod("web-6");
    let publishing = publish(&harness, "csi-outage", &target, &web, &[]);
    let api = cluster.api.clone();
    let signer = cluster.signer.clone();
    let outage = async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Every list and watch of requests fails while the watch is cut.
        api.fail_next(usize::MAX, 503, Some("GET"), Some(CRS));
        api.drop_watches();
        wait_for("the signer answered", Duration::from_secs(15), || {
            signer.signed_count() == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            api.open_watches(),
            0,
            "the watch was down when the answer came"
        );
        if expire {
            api.expire_history();
        }
        api.clear_faults();
    };
    let (result, ()) = tokio::join!(publishing, outage);
    result.unwrap();
    verify_volume_with_openssl(&target);
    assert_eq!(creates(&cluster.api), 1);
    (cluster, harness)
}

#[tokio::test]
async fn a_signature_made_while_the_watch_is_down_still_wakes_the_publish() {
    publish_across_a_watch_outage(false).await;
}

#[tokio::test]
async fn an_expired_resource_version_relists_and_still_wakes_the_publish() {
    let (cluster, _harness) = publish_across_a_watch_outage(true).await;
    let successful_lists = cluster
        .api
        .requests()
        .into_iter()
        .filter(|entry| {
            entry.method == "GET"
                && entry.path.ends_with(CRS)
                && !entry.watch
                && entry.status == 200
        })
        .count();
    assert!(
        successful_lists >= 2,
        "the watcher re-listed after 410 ({successful_lists} lists)"
    );
}

#[tokio::test]
async fn api_server_errors_are_retried() {
    let cluster = cluster().await;
    let harness = driver(&cluster, Duration::from_secs(30)).await;
    // A 500 and a 503: both transient, retried within the publish deadline.
    cluster
        .api
        .fail_next(1, 500, Some("POST"), Some("certificaterequests"));
    cluster
        .api
        .fail_next(1, 503, Some("POST"), Some("certificaterequests"));
    let target = harness.target("web-8");
    publish(&harness, "csi-5xx", &target, &pod("web-8"), &[])
        .await
        .unwrap();
    verify_volume_with_openssl(&target);
    assert_eq!(requests(&cluster.api).len(), 1);
    let failed_posts = cluster
        .api
        .requests()
        .into_iter()
        .filter(|entry| entry.method == "POST" && entry.path.ends_with(CRS) && entry.status >= 500)
        .count();
    assert_eq!(failed_posts, 2);
    assert_eq!(creates(&cluster.api), 1);
}
