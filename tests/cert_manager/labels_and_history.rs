//! The requests' labels (the Go driver's values, earlier versions' values, hash collisions) and
//! the request history kept per volume.

use super::*;

#[tokio::test]
async fn requests_carry_the_go_drivers_label_values() {
    let cluster = cluster().await;
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.node_id = "node-1".into();
    })
    .await;
    let target = harness.target("web-20");
    let volume_id = "csi-0123456789abcdef";
    publish(&harness, volume_id, &target, &pod("web-20"), &[])
        .await
        .unwrap();
    let all = requests(&cluster.api);
    assert_eq!(all.len(), 1);
    let labels = &all[0]["metadata"]["labels"];
    // As the Go driver labelled its requests on a real API server.
    assert_eq!(labels[NODE_ID_HASH], "9bd6bbf5f");
    assert_eq!(labels[VOLUME_ID_HASH], "747dc7849");
    assert_eq!(labels[NODE_ID_HASH], go_label_hash("node-1"));
    assert_eq!(labels[VOLUME_ID_HASH], go_label_hash(volume_id));
    assert_eq!(labels.as_object().unwrap().len(), 2, "{labels}");
    harness.unpublish(volume_id, &target).await.unwrap();
}

#[tokio::test]
async fn requests_an_earlier_version_labelled_are_still_handled_after_an_upgrade() {
    let cluster = cluster().await;
    let web = pod("web-21");
    let volume_id = "csi-upgraded";
    let legacy_labels = serde_json::json!({
        NODE_ID_HASH: legacy_label_hash("test-node"),
        VOLUME_ID_HASH: legacy_label_hash(volume_id),
    });
    // What the earlier version left: an issued request, and a pending one whose key died with it.
    leftover_request(
        &cluster.api,
        "apps",
        "web-21-issued",
        legacy_labels.clone(),
        Some(our_annotations(&web, volume_id, "2025-01-01T10:00:00.5Z")),
        true,
    );
    leftover_request(
        &cluster.api,
        "apps",
        "web-21-pending",
        legacy_labels,
        Some(our_annotations(&web, volume_id, "2025-01-02T10:00:00.5Z")),
        false,
    );

    let harness = driver(&cluster, Duration::from_secs(20)).await;
    let target = harness.target("web-21");
    publish(&harness, volume_id, &target, &web, &[])
        .await
        .unwrap();
    verify_volume_with_openssl(&target);
    // The stale pending one was deleted, the issued one pruned by the history limit of 1.
    let all = requests(&cluster.api);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(name_of(&all[0]).starts_with("web-21-"));
    assert!(!["web-21-issued", "web-21-pending"].contains(&name_of(&all[0]).as_str()));
    assert_eq!(
        all[0]["metadata"]["labels"][VOLUME_ID_HASH],
        go_label_hash(volume_id),
        "only the new hash is written"
    );
    assert_eq!(creates(&cluster.api), 1);
    harness.unpublish(volume_id, &target).await.unwrap();
}

#[tokio::test]
async fn the_go_drivers_requests_are_never_resumed_and_count_as_history() {
    let cluster = cluster().await;
    let web = pod("web-22");
    let volume_id = "csi-from-go";
    let go_labels = serde_json::json!({
        NODE_ID_HASH: go_label_hash("test-node"),
        VOLUME_ID_HASH: go_label_hash(volume_id),
    });
    // What the Go driver left on the node: requests named by UUID, without annotations.
    let (old, new, pending, elsewhere) = (
        "0c6f2d9e-8c1b-4f0e-9a57-3d2b1e4c5a01",
        "5e8a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a02",
        "9a7b6c5d-4e3f-4a21-9b0c-d1e2f3a4b503",
        "d4c3b2a1-0f9e-4d8c-8b7a-695847362504",
    );
    leftover_request(&cluster.api, "apps", old, go_labels.clone(), None, true);
    // Creation times have whole seconds: make the second one newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    leftover_request(&cluster.api, "apps", new, go_labels.clone(), None, true);
    leftover_request(
        &cluster.api,
        "apps",
        pending,
        go_labels.clone(),
        None,
        false,
    );
    // The same labels in another namespace: another pod's, whatever the hash says.
    leftover_request(&cluster.api, "other", elsewhere, go_labels, None, false);

    // Slow signing: the first publish times out and kubelet's retries resume the driver's own
    // request.
    cluster
        .signer
        .set_mode(SignerMode::Delay(Duration::from_millis(1500)));
    let harness = driver_with(&cluster, Duration::from_secs(1), |config| {
        config.cert_manager.history_limit = 2;
    })
    .await;
    let target = harness.target("web-22");
    let mut attempts = 0;
    loop {
        attempts += 1;
        match publish(&harness, volume_id, &target, &web, &[]).await {
            Ok(()) => break,
            Err(error) if error.code() == Code::DeadlineExceeded && attempts < 10 => {}
            Err(error) => panic!("publish failed: {error:?}"),
        }
    }
    assert!(attempts >= 2, "the first publish was to time out");
    verify_volume_with_openssl(&target);
    assert_eq!(creates(&cluster.api), 1, "resumed, never duplicated");
    // The pending one (its key died with the Go driver) is gone; of the issued ones, the newest
    // is kept beside the driver's own (history 2).
    let ours = requests(&cluster.api)
        .iter()
        .map(name_of)
        .find(|name| name.starts_with("web-22-"))
        .expect("the driver's request");
    let mut expected = vec![ours, new.to_string(), elsewhere.to_string()];
    expected.sort();
    assert_eq!(request_names(&cluster.api), expected);
    harness.unpublish(volume_id, &target).await.unwrap();
}

#[tokio::test]
async fn a_request_whose_hash_collides_but_names_another_volume_is_never_touched() {
    let cluster = cluster().await;
    let web = pod("web-23");
    let volume_id = "csi-mine";
    let labels = serde_json::json!({
        NODE_ID_HASH: go_label_hash("test-node"),
        VOLUME_ID_HASH: go_label_hash(volume_id),
    });
    let someone_else = our_annotations(&web, "csi-someone-else", "2025-01-01T10:00:00.5Z");
    leftover_request(
        &cluster.api,
        "apps",
        "collision-pending",
        labels.clone(),
        Some(someone_else.clone()),
        false,
    );
    leftover_request(
        &cluster.api,
        "apps",
        "collision-issued",
        labels,
        Some(someone_else),
        true,
    );
    // Unannotated with this volume's legacy hash: the Go driver never wrote that; nobody's.
    leftover_request(
        &cluster.api,
        "apps",
        "legacy-unannotated",
        serde_json::json!({
            NODE_ID_HASH: legacy_label_hash("test-node"),
            VOLUME_ID_HASH: legacy_label_hash(volume_id),
        }),
        None,
        false,
    );

    let harness = driver(&cluster, Duration::from_secs(20)).await;
    let target = harness.target("web-23");
    publish(&harness, volume_id, &target, &web, &[])
        .await
        .unwrap();
    // Renew once, so that the history limit (1) prunes for this volume with a finished request.
    harness.unpublish(volume_id, &target).await.unwrap();
    publish(&harness, volume_id, &target, &web, &[])
        .await
        .unwrap();
    let names = request_names(&cluster.api);
    assert_eq!(names.len(), 4, "{names:?}");
    for untouched in [
        "collision-issued",
        "collision-pending",
        "legacy-unannotated",
    ] {
        assert!(names.iter().any(|name| name == untouched), "{names:?}");
    }
    let deletes = cluster
        .api
        .requests()
        .into_iter()
        .filter(|entry| entry.method == "DELETE" && entry.path.contains(CRS))
        .count();
    assert!(deletes >= 1, "the driver's own first request was pruned");
    harness.unpublish(volume_id, &target).await.unwrap();
}

/// Names of the requests in the order they were created, from the server's change feed.
fn record_created_requests(api: &TestApiServer) -> std::sync::Arc<parking_lot::Mutex<Vec<String>>> {
    let created = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut changes = api.subscribe();
    let sink = created.clone();
    tokio::spawn(async move {
        while let Ok(change) = changes.recv().await {
            if change.resource == CRS && change.kind == kube_test_server::ChangeKind::Added {
                sink.lock().push(name_of(&change.object));
            }
        }
    });
    created
}

#[tokio::test]
async fn history_keeps_only_the_newest_requests() {
    let cluster = cluster().await;
    let created = record_created_requests(&cluster.api);
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.cert_manager.history_limit = 2;
    })
    .await;
    let web = pod("web-11");
    let target = harness.target("web-11");
    // Certificates of 3 s renew about every 2 s.
    publish(
        &harness,
        "csi-history",
        &target,
        &web,
        &[(key::DURATION, "3s")],
    )
    .await
    .unwrap();
    let signer = &cluster.signer;
    wait_for("three renewals happened", Duration::from_secs(15), || {
        signer.signed_count() >= 4
    })
    .await;
    let renewed = event_with_reason(&cluster.api, "web-11", "CertificateRenewed").await;
    assert_eq!(renewed["type"], "Normal");
    // Stop renewing, then compare what is left with the order of creation.
    harness.unpublish("csi-history", &target).await.unwrap();
    let created = created.lock().clone();
    assert!(created.len() >= 4, "{created:?}");
    let mut newest_two: Vec<String> = created[created.len() - 2..].to_vec();
    newest_two.sort();
    wait_for(
        "only the two newest requests are left",
        Duration::from_secs(15),
        || {
            let mut kept: Vec<String> = requests(&cluster.api).iter().map(name_of).collect();
            kept.sort();
            kept == newest_two
        },
    )
    .await;
}

#[tokio::test]
async fn by_default_one_request_per_volume_is_kept() {
    let cluster = cluster().await;
    let harness = driver(&cluster, Duration::from_secs(20)).await;
    let target = harness.target("web-12");
    publish(
        &harness,
        "csi-one",
        &target,
        &pod("web-12"),
        &[(key::DURATION, "3s")],
    )
    .await
    .unwrap();
    let signer = &cluster.signer;
    wait_for("two renewals happened", Duration::from_secs(15), || {
        signer.signed_count() >= 3
    })
    .await;
    harness.unpublish("csi-one", &target).await.unwrap();
    wait_for(
        "only the newest request is left",
        Duration::from_secs(15),
        || requests(&cluster.api).len() == 1,
    )
    .await;
}
