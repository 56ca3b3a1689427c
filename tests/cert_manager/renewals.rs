//! Renewals under failure: backoff, an API server outage, the concurrency bound.

use super::*;

/// When each request was created, from the server's change feed.
fn record_creation_times(
    api: &TestApiServer,
) -> std::sync::Arc<parking_lot::Mutex<Vec<tokio::time::Instant>>> {
    let created = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut changes = api.subscribe();
    let sink = created.clone();
    tokio::spawn(async move {
        while let Ok(change) = changes.recv().await {
            if change.resource == CRS && change.kind == kube_test_server::ChangeKind::Added {
                sink.lock().push(tokio::time::Instant::now());
            }
        }
    });
    created
}

fn quick_backoff(config: &mut cert_manager_csi_driver::driver::DriverConfig) {
    config.renewal_backoff = cert_manager_csi_driver::renewal::Backoff {
        initial: Duration::from_millis(300),
        max: Duration::from_millis(1200),
    };
}

#[tokio::test]
async fn failed_renewals_back_off_keep_the_certificate_and_recover() {
    let cluster = cluster().await;
    let harness = driver_with(&cluster, Duration::from_secs(10), quick_backoff).await;
    let web = pod("web-15");
    let target = harness.target("web-15");
    publish(
        &harness,
        "csi-backoff",
        &target,
        &web,
        &[(key::DURATION, "4s")],
    )
    .await
    .unwrap();
    let serial = serial_of(&target);
    // From now on the issuer fails every request.
    cluster.signer.set_mode(SignerMode::Fail {
        message: "vault is sealed".into(),
    });
    let created = record_creation_times(&cluster.api);
    wait_for(
        "four renewal attempts failed",
        Duration::from_secs(15),
        || created.lock().len() >= 4,
    )
    .await;
    // Meanwhile the pod keeps its (still valid, then expiring) certificate, whole.
    assert_eq!(serial_of(&target), serial);
    assert!(key_matches(&target));
    let event = event_with_reason(&cluster.api, "web-15", "CertificateRequestFailed").await;
    let note = event["note"].as_str().unwrap();
    assert!(note.contains("vault is sealed"), "{note}");
    assert!(
        note.contains("stays in place")
            && (note.contains("expires in") || note.contains("EXPIRED")),
        "the event says how long is left: {note}"
    );
    // Attempts are spaced out by the backoff: 300 ms, then 600 ms, then 1200 ms (±10%).
    let times = created.lock().clone();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= Duration::from_millis(250), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(520), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(1000), "{gaps:?}");

    // The issuer recovers: the next attempt renews.
    cluster.signer.set_mode(SignerMode::Approve);
    wait_for("renewed after recovery", Duration::from_secs(15), || {
        serial_of(&target) != serial
    })
    .await;
    assert!(key_matches(&target));
    verify_volume_with_openssl(&target);
    harness.unpublish("csi-backoff", &target).await.unwrap();
}

#[tokio::test]
async fn an_api_server_outage_keeps_certificates_and_renewal_resumes_after_it() {
    let cluster = cluster().await;
    let harness = driver_with(&cluster, Duration::from_secs(1), quick_backoff).await;
    let web = pod("web-16");
    let target = harness.target("web-16");
    publish(
        &harness,
        "csi-outage-renewal",
        &target,
        &web,
        &[(key::DURATION, "3s")],
    )
    .await
    .unwrap();
    let serial = serial_of(&target);
    // The API server answers nothing useful for 4 s: creates fail, the watch cannot reconnect.
    cluster.api.fail_next(usize::MAX, 503, None, None);
    cluster.api.drop_watches();
    let outage_started = tokio::time::Instant::now();
    while outage_started.elapsed() < Duration::from_secs(4) {
        assert_eq!(
            serial_of(&target),
            serial,
            "nothing changes during the outage"
        );
        assert!(key_matches(&target));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = cluster
        .api
        .requests()
        .iter()
        .filter(|e| e.method == "POST" && e.path.ends_with(CRS) && e.status == 503)
        .count();
    assert!(
        refused >= 2,
        "renewal kept trying during the outage ({refused} attempts)"
    );
    cluster.api.clear_faults();
    wait_for(
        "renewed once the API server is back",
        Duration::from_secs(15),
        || serial_of(&target) != serial,
    )
    .await;
    assert!(key_matches(&target));
    harness
        .unpublish("csi-outage-renewal", &target)
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_renewals_are_bounded_by_the_flag() {
    let cluster = cluster().await;
    // More than this machine's cores (node work, key generation, is bounded by those): a renewal
    // waiting on a remote issuer holds no node-work permit, so the flag is the bound here.
    let bound = std::thread::available_parallelism().map_or(2, |cores| cores.get()) + 2;
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.renewal_concurrency = bound;
    })
    .await;
    // Eight volumes whose 3 s certificates all fall due about 2 s from now, with an issuer that
    // takes 1 s per request.
    let count = 2 * bound;
    let volumes: Vec<(String, PathBuf, SamplePod)> = (0..count)
        .map(|index| {
            let name = format!("bounded-{index}");
            (format!("csi-{name}"), harness.target(&name), pod(&name))
        })
        .collect();
    let publishes = volumes.iter().map(|(volume_id, target, pod)| {
        publish(&harness, volume_id, target, pod, &[(key::DURATION, "3s")])
    });
    for result in futures_util::future::join_all(publishes).await {
        result.unwrap();
    }
    cluster
        .signer
        .set_mode(SignerMode::Delay(Duration::from_secs(1)));
    // Requests waiting for their signature, counted from the server's change feed.
    let mut changes = cluster.api.subscribe();
    let (mut waiting, mut peak, mut renewed) = (0i32, 0i32, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while renewed < count {
        let change = tokio::time::timeout_at(deadline, changes.recv())
            .await
            .expect("renewals finish")
            .unwrap();
        if change.resource != CRS {
            continue;
        }
        let ready = change.object["status"]["conditions"]
            .as_array()
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        match change.kind {
            kube_test_server::ChangeKind::Added => waiting += 1,
            kube_test_server::ChangeKind::Modified if ready => {
                waiting -= 1;
                renewed += 1;
            }
            _ => {}
        }
        peak = peak.max(waiting);
    }
    let bound = bound as i32;
    assert!(peak <= bound, "{peak} renewals ran at once, over {bound}");
    assert_eq!(
        peak, bound,
        "the configured concurrency is used (peak {peak})"
    );
    for (volume_id, target, _) in &volumes {
        harness.unpublish(volume_id, target).await.unwrap();
    }
}

#[tokio::test]
async fn a_renewal_refused_because_the_namespace_is_being_deleted_is_not_blamed_on_rbac() {
    let cluster = cluster().await;
    let harness = driver_with(&cluster, Duration::from_secs(10), quick_backoff).await;
    let web = pod("web-ns-going");
    let target = harness.target("web-ns-going");
    publish(
        &harness,
        "csi-ns-going",
        &target,
        &web,
        &[(key::DURATION, "3s")],
    )
    .await
    .unwrap();
    let serial = serial_of(&target);
    // `kubectl delete namespace apps`: the API server refuses everything new in it.
    cluster.api.set_namespace_terminating("apps", true);
    cluster.api.clear_requests();
    let refused_creates = || {
        cluster
            .api
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/certificaterequests"))
            .map(|r| r.status)
            .collect::<Vec<_>>()
    };
    wait_for("the renewal was refused", Duration::from_secs(10), || {
        !refused_creates().is_empty()
    })
    .await;
    assert_eq!(refused_creates(), [403]);
    // With a 300 ms backoff a retried failure would have tried again several times by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        refused_creates(),
        [403],
        "no retry toward a pod that is going"
    );
    let snapshot = harness
        .driver()
        .manager()
        .snapshot("csi-ns-going")
        .await
        .unwrap();
    assert_eq!(snapshot.failures, 0, "not counted as a failure");
    let waiting_on = snapshot
        .waiting_on
        .expect("the volume waits for its pod to go");
    assert!(
        waiting_on.contains("namespace apps is being deleted"),
        "{waiting_on}"
    );
    assert!(!waiting_on.contains("misconfigured"), "{waiting_on}");
    // Nothing about RBAC was said to the pod (the namespace refuses Events too, so none was
    // even tried with that text), and the certificate stays in place.
    assert!(
        cluster
            .api
            .list_objects("events.k8s.io/v1", "events")
            .iter()
            .all(|event| !event["note"]
                .as_str()
                .unwrap_or("")
                .contains("misconfigured"))
    );
    assert_eq!(serial_of(&target), serial);
    assert!(key_matches(&target));
    // The pod goes; its volume with it.
    harness.unpublish("csi-ns-going", &target).await.unwrap();
    assert_eq!(harness.state_records(), 0);
}

#[tokio::test]
async fn duration_0s_is_sent_as_the_go_driver_sends_it_and_never_renewed_in_a_loop() {
    let cluster = cluster().await;
    let harness = driver_with(&cluster, Duration::from_secs(10), |config| {
        config.renewal_backoff = cert_manager_csi_driver::renewal::Backoff {
            initial: Duration::from_millis(300),
            max: Duration::from_secs(2),
        };
    })
    .await;
    let created = record_creation_times(&cluster.api);
    let web = pod("web-zero");
    let target = harness.target("web-zero");
    publish(
        &harness,
        "csi-zero",
        &target,
        &web,
        &[(key::DURATION, "0s")],
    )
    .await
    .unwrap();
    // On the request as the Go driver puts it (csi-lib always sends spec.duration).
    let request = requests(&cluster.api)
        .into_iter()
        .find(|cr| {
            cr["metadata"]["labels"]
                .to_string()
                .contains("csi.cert-manager.io")
        })
        .expect("a request");
    assert_eq!(request["spec"]["duration"], "0s", "{request}");
    let event = event_with_reason(&cluster.api, "web-zero", "AttributeWarning").await;
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("expired when it arrives"),
        "{event}"
    );
    // The signer (as cert-manager's CA issuer) gives it no lifetime: it is due at once. Without
    // a floor it would be renewed every 0.5 s; with it, after the longest retry delay (2 s here).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let count = created.lock().len();
    assert!((1..=3).contains(&count), "{count} requests in 3.5 s");
    assert!(key_matches(&target));
}
