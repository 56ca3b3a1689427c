//! Denied and failed requests, timed-out and conflicting publishes, stale requests and keys that
//! did not survive the driver.

use super::*;

#[tokio::test]
async fn denial_fails_at_once_with_the_approvers_message() {
    let cluster = cluster().await;
    cluster.signer.set_mode(SignerMode::Deny {
        reason: "policy.example.com".into(),
        message: "DNS name web-1.app.example.com is not allowed".into(),
    });
    // A long deadline: returning at all shows the denial was not waited out.
    let harness = driver(&cluster, Duration::from_secs(60)).await;
    let target = harness.target("web-1");
    let error = publish(&harness, "csi-denied", &target, &pod("web-1"), &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
    assert!(error.message().contains("is not allowed"), "{error:?}");
    assert!(error.message().contains("policy.example.com"), "{error:?}");
    if common::is_root() {
        assert_eq!(mounts_at(&target), 0, "nothing stays mounted");
    }
    assert_eq!(harness.state_records(), 0);
    let event = event_with_reason(&cluster.api, "web-1", "CertificateRequestDenied").await;
    assert_eq!(event["type"], "Warning");
    assert!(event["note"].as_str().unwrap().contains("is not allowed"));
}

#[tokio::test]
async fn issuer_failure_fails_with_the_issuers_message() {
    let cluster = cluster().await;
    cluster.signer.set_mode(SignerMode::Fail {
        message: "vault: permission denied on pki/sign/web".into(),
    });
    let harness = driver(&cluster, Duration::from_secs(60)).await;
    let target = harness.target("web-2");
    let error = publish(&harness, "csi-failed", &target, &pod("web-2"), &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert!(
        error.message().contains("vault: permission denied"),
        "{error:?}"
    );
    let event = event_with_reason(&cluster.api, "web-2", "CertificateRequestFailed").await;
    assert_eq!(event["type"], "Warning");
}

#[tokio::test]
async fn a_self_signed_issuer_is_called_out() {
    let cluster = cluster().await;
    cluster.signer.set_mode(SignerMode::SelfSignedFailure);
    let harness = driver(&cluster, Duration::from_secs(60)).await;
    let target = harness.target("web-3");
    let error = publish(&harness, "csi-selfsigned", &target, &pod("web-3"), &[])
        .await
        .unwrap_err();
    assert!(error.message().contains("SelfSigned"), "{error:?}");
    assert!(error.message().contains("CA issuer"), "{error:?}");
}

#[tokio::test]
async fn a_timed_out_publish_is_resumed_by_kubelets_retry() {
    let cluster = cluster().await;
    // Signed 3 s after it arrives; each publish waits 1 s.
    cluster
        .signer
        .set_mode(SignerMode::Delay(Duration::from_secs(3)));
    let harness = driver(&cluster, Duration::from_secs(1)).await;
    let web = pod("web-4");
    let target = harness.target("web-4");
    let error = publish(&harness, "csi-slow", &target, &web, &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
    assert!(error.message().contains("not signed after"), "{error:?}");
    assert!(
        error
            .message()
            .contains("Ready=False Pending: Waiting on certificate issuance"),
        "the last state is reported: {error:?}"
    );
    let event = event_with_reason(&cluster.api, "web-4", "CertificateRequestTimedOut").await;
    assert_eq!(event["type"], "Warning");
    assert!(harness.driver().manager().has_pending_key("csi-slow"));

    // kubelet retries with the same volume ID until one attempt sees the signature.
    let mut attempts = 1;
    loop {
        attempts += 1;
        match publish(&harness, "csi-slow", &target, &web, &[]).await {
            Ok(()) => break,
            Err(error) if error.code() == Code::DeadlineExceeded && attempts < 10 => {}
            Err(error) => panic!("retry failed: {error:?}"),
        }
    }
    assert!(attempts >= 2);
    assert_eq!(creates(&cluster.api), 1, "exactly one request created");
    assert_eq!(requests(&cluster.api).len(), 1);
    assert!(!harness.driver().manager().has_pending_key("csi-slow"));
    verify_volume_with_openssl(&target);
}

#[tokio::test]
async fn stale_requests_are_deleted_side_by_side_not_one_after_another() {
    let cluster = cluster().await;
    let web = pod("web-22");
    let volume_id = "csi-three-stale";
    let labels = serde_json::json!({
        NODE_ID_HASH: go_label_hash("test-node"),
        VOLUME_ID_HASH: go_label_hash(volume_id),
    });
    for n in 0..3 {
        leftover_request(
            &cluster.api,
            "apps",
            &format!("web-22-stale-{n}"),
            labels.clone(),
            Some(our_annotations(&web, volume_id, "2025-01-02T10:00:00.5Z")),
            false,
        );
    }
    let harness = driver(&cluster, Duration::from_secs(20)).await;
    // Every answer takes 400 ms: one after another, the three deletes would arrive 400 ms apart.
    cluster.api.set_latency(Duration::from_millis(400));
    let target = harness.target("web-22");
    publish(&harness, volume_id, &target, &web, &[])
        .await
        .unwrap();
    let deletes: Vec<_> = cluster
        .api
        .requests()
        .into_iter()
        .filter(|e| e.method == "DELETE" && e.path.contains("web-22-stale-"))
        .map(|e| e.at)
        .collect();
    assert_eq!(deletes.len(), 3);
    let spread = deletes
        .iter()
        .max()
        .unwrap()
        .duration_since(*deletes.iter().min().unwrap());
    assert!(
        spread < Duration::from_millis(200),
        "deletes arrived {spread:?} apart"
    );
    cluster.api.set_latency(Duration::ZERO);
    harness.unpublish(volume_id, &target).await.unwrap();
}

#[tokio::test]
async fn a_publish_that_conflicts_leaves_the_volumes_token_alone() {
    let cluster = cluster().await;
    cluster
        .api
        .add_token("token-of-the-pod", "system:serviceaccount:apps:web-23");
    cluster
        .api
        .add_token("token-of-a-stranger", "system:serviceaccount:apps:stranger");
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.cert_manager.use_token_request = true;
    })
    .await;
    let web = pod("web-23");
    let target = harness.target("web-23");
    publish_context(
        &harness,
        "csi-conflict",
        &target,
        token_context(&web, "token-of-the-pod"),
    )
    .await
    .unwrap();
    // The same volume ID at another target, with another token: refused...
    let elsewhere = harness.target("web-23-elsewhere");
    let error = publish_context(
        &harness,
        "csi-conflict",
        &elsewhere,
        token_context(&web, "token-of-a-stranger"),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists, "{error:?}");
    // ...and the volume's next request is still made as its own pod.
    harness.driver().manager().renew("csi-conflict").await;
    let users: Vec<Option<String>> = requests(&cluster.api)
        .iter()
        .map(|cr| cluster.api.created_by(CR_API, CRS, "apps", &name_of(cr)))
        .collect();
    assert_eq!(
        users,
        vec![Some("system:serviceaccount:apps:web-23".to_string())],
        "the renewal's request was made with the volume's own token"
    );
    harness.unpublish("csi-conflict", &target).await.unwrap();
}

#[tokio::test]
async fn an_unpublish_drops_the_key_kept_for_a_retry() {
    let cluster = cluster().await;
    cluster.signer.set_mode(SignerMode::Ignore);
    let harness = driver(&cluster, Duration::from_secs(1)).await;
    let target = harness.target("web-gone");
    let error = publish(&harness, "csi-gone", &target, &pod("web-gone"), &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
    assert!(harness.driver().manager().has_pending_key("csi-gone"));
    // The pod went instead of being retried: nothing is kept for it.
    harness.unpublish("csi-gone", &target).await.unwrap();
    assert!(!harness.driver().manager().has_pending_key("csi-gone"));
}

#[tokio::test]
async fn a_pending_request_whose_key_died_with_the_driver_is_replaced() {
    let cluster = cluster().await;
    cluster.signer.set_mode(SignerMode::Ignore);
    let mut harness = driver(&cluster, Duration::from_secs(1)).await;
    let web = pod("web-5");
    let target = harness.target("web-5");
    let error = publish(&harness, "csi-restart", &target, &web, &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded);
    let stale = name_of(&requests(&cluster.api)[0]);

    // A new driver process: the pending key is gone with the old one.
    harness.restart().await;
    cluster.signer.set_mode(SignerMode::Approve);
    publish(&harness, "csi-restart", &target, &web, &[])
        .await
        .unwrap();
    let all = requests(&cluster.api);
    assert_eq!(all.len(), 1, "the stale request was deleted: {all:#?}");
    assert_ne!(name_of(&all[0]), stale);
    assert_eq!(creates(&cluster.api), 2, "one per driver process");
    verify_volume_with_openssl(&target);
}

#[tokio::test]
async fn a_429_on_create_is_retried_after_the_wait_the_api_server_asks_for() {
    let cluster = cluster().await;
    let harness = driver(&cluster, Duration::from_secs(20)).await;
    // As the API server's priority and fairness answers a flood: 429, retryAfterSeconds 1.
    cluster
        .api
        .fail_next(3, 429, Some("POST"), Some("/certificaterequests"));
    let target = harness.target("web-429");
    publish(&harness, "csi-429", &target, &pod("web-429"), &[])
        .await
        .unwrap();
    let creates: Vec<(u16, tokio::time::Instant)> = cluster
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/certificaterequests"))
        .map(|r| (r.status, r.at))
        .collect();
    let statuses: Vec<u16> = creates.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [429, 429, 429, 201]);
    for pair in creates.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap >= Duration::from_millis(950),
            "retried after {gap:?}, sooner than the second the API server asked for"
        );
    }
    assert!(key_matches(&target));
}
