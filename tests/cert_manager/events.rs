//! Pod Events under load: their own share of the client-side rate limit, so a backlog of them
//! never holds up a CertificateRequest, and coalescing of what waits for that share.

use super::*;
use cert_manager_csi_driver::attributes::PodInfo;
use cert_manager_csi_driver::kubernetes::event_recorder::KubeEvents;
use cert_manager_csi_driver::kubernetes::{KubeConnection, KubeSettings};
use cert_manager_csi_driver::pod_events::{PodEvent, PodEvents};

/// Event creates and series updates, as the API server received them.
fn event_writes(api: &TestApiServer) -> usize {
    api.requests()
        .into_iter()
        .filter(|entry| {
            matches!(entry.method.as_str(), "POST" | "PATCH") && entry.path.contains("/events")
        })
        .count()
}

/// How many occurrences a stored Event stands for.
fn occurrences(event: &Value) -> i64 {
    event["series"]["count"].as_i64().unwrap_or(1)
}

const TYPO: [(&str, &str); 1] = [("csi.cert-manager.io/keystore-pkcs12-enabel", "true")];

#[tokio::test]
async fn a_backlog_of_events_delays_no_certificate_request() {
    let cluster = cluster().await;
    // 0.001/s with a burst of 5: the Events get one permit, the requests four, and a further
    // permit of either is minutes away, so any create that waited for one would time out.
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.kube.qps = 0.001;
        config.kube.burst = 5;
    })
    .await;
    // Each of these records a Warning before its request and a Normal after: six Events for
    // one permit. Sharing one bucket, the second pod's Events would hold up the third's request.
    for name in ["ev-1", "ev-2"] {
        publish(&harness, name, &harness.target(name), &pod(name), &TYPO)
            .await
            .unwrap();
    }
    event_with_reason(&cluster.api, "ev-1", "UnknownAttribute").await;
    for name in ["ev-3", "ev-4"] {
        publish(&harness, name, &harness.target(name), &pod(name), &[])
            .await
            .unwrap();
    }
    assert_eq!(creates(&cluster.api), 4, "every request created at once");
    assert_eq!(
        event_writes(&cluster.api),
        1,
        "the Events' one permit, no more"
    );
    let writes = cluster
        .api
        .requests()
        .into_iter()
        .filter(|entry| entry.method != "GET")
        .count();
    assert_eq!(writes, 5, "together, no more than --kube-api-burst");
}

#[tokio::test]
async fn repeats_waiting_for_the_event_budget_become_one_series_update() {
    let cluster = cluster().await;
    // Events 0.5/s with a burst of 1: after the first Warning the next write is 2 s away.
    let harness = driver_with(&cluster, Duration::from_secs(20), |config| {
        config.kube.qps = 2.5;
        config.kube.burst = 5;
    })
    .await;
    let web = pod("ev-repeat");
    let target = harness.target("ev-repeat");
    // Kubelet republishing a volume with a typo: the same Warning ten times.
    for _ in 0..10 {
        publish(&harness, "csi-ev-repeat", &target, &web, &TYPO)
            .await
            .unwrap();
    }
    let api = &cluster.api;
    wait_for(
        "the Warning's series counts all ten",
        Duration::from_secs(20),
        || {
            events_for(api, "ev-repeat")
                .iter()
                .any(|event| event["reason"] == "UnknownAttribute" && occurrences(event) == 10)
        },
    )
    .await;
    let events = events_for(api, "ev-repeat");
    let warnings: Vec<_> = events
        .iter()
        .filter(|event| event["reason"] == "UnknownAttribute")
        .collect();
    assert_eq!(warnings.len(), 1, "{events:#?}");
    assert!(
        events
            .iter()
            .any(|event| event["reason"] == "CertificateIssued"),
        "{events:#?}"
    );
    // Eleven recorded (ten Warnings, one Normal); written: the first Warning, the Normal, and
    // the other nine as few series updates as the 2 s between permits allow.
    let writes = event_writes(api);
    assert!(writes < 11, "{writes} Event writes for 11 events");
}

fn info(name: &str) -> PodInfo {
    PodInfo {
        name: name.into(),
        namespace: "apps".into(),
        uid: format!("uid-of-{name}"),
        service_account: None,
    }
}

#[tokio::test]
async fn a_deep_queue_writes_fewer_events_keeps_every_warning_and_every_count() {
    let cluster = cluster().await;
    // Events 2/s with a burst of 1: the queue counts as deep from 1 + 2 × 2 s = 5 entries.
    let settings = KubeSettings {
        kubeconfig: Some(cluster.kubeconfig.clone()),
        qps: 10.0,
        burst: 5,
    };
    let connection = KubeConnection::connect(&settings).await.unwrap();
    let events = KubeEvents::start(connection, "csi.cert-manager.io".into(), "test".into());
    let busy = info("busy");
    // All recorded before the writer runs: a burst faster than any budget.
    for volume in 0..6 {
        events.record(
            &busy,
            PodEvent::normal(
                "CertificateIssued",
                "Issue",
                format!("volume csi-{volume}: issued"),
            ),
        );
        events.record(
            &busy,
            PodEvent::warning(
                "CertificateRequestDenied",
                "Issue",
                format!("volume csi-{volume}: denied"),
            ),
        );
    }
    for _ in 0..10 {
        events.record(
            &busy,
            PodEvent::warning("IssuerUnavailable", "Issue", "issuer gone".into()),
        );
    }
    events.flush().await;

    let stored = events_for(&cluster.api, "busy");
    let with = |reason: &str| -> Vec<&Value> {
        stored
            .iter()
            .filter(|event| event["reason"] == reason)
            .collect()
    };
    // Every distinct Warning is its own Event, none combined.
    let denied = with("CertificateRequestDenied");
    let mut notes: Vec<&str> = denied.iter().map(|e| e["note"].as_str().unwrap()).collect();
    notes.sort();
    let expected: Vec<String> = (0..6)
        .map(|volume| format!("volume csi-{volume}: denied"))
        .collect();
    assert_eq!(notes, expected);
    assert!(denied.iter().all(|event| event["series"].is_null()));
    // The repeated Warning: one Event counting ten.
    let unavailable = with("IssuerUnavailable");
    assert_eq!(unavailable.len(), 1, "{stored:#?}");
    assert_eq!(occurrences(unavailable[0]), 10);
    assert_eq!(unavailable[0]["type"], "Warning");
    // The Normals collapsed once the queue was deep: fewer Events, the latest message, and the
    // counts still add up to six.
    let issued = with("CertificateIssued");
    assert!(issued.len() < 6, "{issued:#?}");
    assert_eq!(issued.iter().map(|e| occurrences(e)).sum::<i64>(), 6);
    let combined: Vec<&str> = issued
        .iter()
        .filter_map(|e| e["note"].as_str())
        .filter(|note| note.starts_with("(combined from similar events): "))
        .collect();
    assert_eq!(
        combined,
        ["(combined from similar events): volume csi-5: issued"]
    );
    let writes = event_writes(&cluster.api);
    assert_eq!(writes, stored.len(), "one write per stored Event");
    assert!(writes < 22, "{writes} writes for 22 events");
}

async fn recorder(cluster: &Cluster) -> KubeEvents {
    let settings = KubeSettings {
        kubeconfig: Some(cluster.kubeconfig.clone()),
        qps: 50.0,
        burst: 100,
    };
    let connection = KubeConnection::connect(&settings).await.unwrap();
    KubeEvents::start(connection, "csi.cert-manager.io".into(), "test".into())
}

#[tokio::test]
async fn an_event_the_api_server_fails_to_take_is_written_on_a_later_attempt() {
    let cluster = cluster().await;
    let events = recorder(&cluster).await;
    // 500 is not one kube's client retries by itself (it retries 429, 503 and 504).
    cluster.api.fail_next(2, 500, Some("POST"), Some("/events"));
    events.record(
        &info("retried"),
        PodEvent::warning("RenewalFailed", "Renew", "vault is sealed".into()),
    );
    assert!(events.flush_within(Duration::from_secs(10)).await);
    let event = event_with_reason(&cluster.api, "retried", "RenewalFailed").await;
    assert_eq!(event["note"], "vault is sealed");
    assert_eq!(occurrences(&event), 1, "written once");
    let posts: Vec<u16> = cluster
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.contains("/events"))
        .map(|r| r.status)
        .collect();
    assert_eq!(posts, [500, 500, 201]);
    assert_eq!(events.dropped(), 0);
}

#[tokio::test]
async fn an_event_that_cannot_be_written_is_given_up_on_and_counted() {
    let cluster = cluster().await;
    let events = recorder(&cluster).await;
    cluster
        .api
        .fail_next(100, 500, Some("POST"), Some("/events"));
    events.record(
        &info("lost"),
        PodEvent::warning("RenewalFailed", "Renew", "vault is sealed".into()),
    );
    // Five attempts, 0.25 + 0.5 + 1 + 2 s apart: given up on within 10 s, never in a tight loop.
    assert!(events.flush_within(Duration::from_secs(10)).await);
    assert_eq!(events.dropped(), 1);
    let posts = cluster
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.contains("/events"))
        .count();
    assert_eq!(posts, 5);
    cluster.api.clear_faults();
}

#[tokio::test]
async fn stopping_writes_the_events_still_queued() {
    let cluster = cluster().await;
    let mut harness = driver(&cluster, Duration::from_secs(10)).await;
    let web = pod("web-stop");
    let target = harness.target("web-stop");
    // Every API answer takes 300 ms: the issued Event is still queued when the publish returns.
    cluster.api.set_latency(Duration::from_millis(300));
    publish(&harness, "csi-stop", &target, &web, &[])
        .await
        .unwrap();
    assert!(
        events_for(&cluster.api, "web-stop").is_empty(),
        "not written yet"
    );
    harness.driver.take().unwrap().stop().await.unwrap();
    cluster.api.set_latency(Duration::ZERO);
    assert!(
        events_for(&cluster.api, "web-stop")
            .iter()
            .any(|event| event["reason"] == "CertificateIssued"),
        "written before stop returned"
    );
}
