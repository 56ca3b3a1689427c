//! Token-request mode: requests created as the pod.

use super::*;

#[tokio::test]
async fn token_request_mode_creates_requests_as_the_pod() {
    let cluster = cluster().await;
    let pod_user = "system:serviceaccount:apps:web";
    cluster.api.add_token("pod-token-1", pod_user);
    cluster.api.add_token("pod-token-2", pod_user);
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.cert_manager.use_token_request = true;
    })
    .await;
    let web = pod("web-9");
    let target = harness.target("web-9");

    // No token from kubelet: a clear InvalidArgument.
    let error = publish(&harness, "csi-token", &target, &web, &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("tokenRequests"), "{error:?}");

    publish_context(
        &harness,
        "csi-token",
        &target,
        token_context(&web, "pod-token-1"),
    )
    .await
    .unwrap();
    verify_volume_with_openssl(&target);
    let all = requests(&cluster.api);
    assert_eq!(all.len(), 1);
    assert_eq!(
        cluster
            .api
            .created_by(CR_API, CRS, "apps", &name_of(&all[0])),
        Some(pod_user.to_string()),
        "the request was created with the pod's token"
    );
    // Everything else is the driver's own identity.
    let issued = event_with_reason(&cluster.api, "web-9", "CertificateIssued").await;
    assert_eq!(
        cluster.api.created_by(
            "events.k8s.io/v1",
            "events",
            "apps",
            issued["metadata"]["name"].as_str().unwrap()
        ),
        Some(DRIVER_USER.to_string())
    );
    let watch_users: Vec<Option<String>> = cluster
        .api
        .requests()
        .into_iter()
        .filter(|entry| entry.watch)
        .map(|entry| entry.user)
        .collect();
    assert!(
        watch_users
            .iter()
            .all(|user| user.as_deref() == Some(DRIVER_USER))
    );

    // kubelet's periodic republish with a fresh token: success, nothing reissued or remounted.
    let serial = serial_of(&target);
    publish_context(
        &harness,
        "csi-token",
        &target,
        token_context(&web, "pod-token-2"),
    )
    .await
    .unwrap();
    assert_eq!(serial_of(&target), serial);
    assert_eq!(requests(&cluster.api).len(), 1);
    if common::is_root() {
        assert_eq!(mounts_at(&target), 1);
    }
    // A republish whose token entry is unusable must not fail the working volume.
    let mut broken = token_context(&web, "x");
    broken.insert(key::SERVICE_ACCOUNT_TOKENS.into(), "not json".into());
    publish_context(&harness, "csi-token", &target, broken)
        .await
        .unwrap();
    assert_eq!(serial_of(&target), serial);

    // A token the API server refuses: said plainly, and the token itself never appears.
    cluster.api.reject_token("pod-token-1");
    let other = harness.target("web-10");
    let error = publish_context(
        &harness,
        "csi-token-2",
        &other,
        token_context(&pod("web-10"), "pod-token-1"),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    assert!(error.message().contains("service account"), "{error:?}");
    assert!(!error.message().contains("pod-token-1"));
    // The API server's answer is said once, readably: no dump of its status object.
    assert!(error.message().contains("401"), "{error:?}");
    assert!(
        !error.message().contains("Status {") && !error.message().contains("ErrorResponse"),
        "{error:?}"
    );

    // Both clients say who they are: the driver's own, and the one acting as the pod.
    let version = env!("CARGO_PKG_VERSION");
    let agents: std::collections::BTreeSet<String> = cluster
        .api
        .requests()
        .into_iter()
        .filter_map(|entry| entry.user_agent)
        .collect();
    assert!(
        agents.contains(&format!("cert-manager-csi-driver/{version} (driver)"))
            && agents.contains(&format!("cert-manager-csi-driver/{version} (pod token)")),
        "{agents:?}"
    );
    assert!(
        cluster
            .api
            .requests()
            .iter()
            .all(|entry| entry.user_agent.is_some()),
        "every request carries a User-Agent"
    );
}
