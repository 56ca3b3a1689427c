//! What operators use: `/metrics`, `/healthz` and `/readyz`, the `status` command, and logs that
//! never carry secrets. Against the test API server, through the CSI socket.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::csi::client;
use cert_manager_csi_driver::demo::{SamplePod, publish_request};
use cert_manager_csi_driver::driver::DriverConfig;
use common::cluster::{Cluster, cluster};
use common::{Harness, ecdsa_context, eventually, http_get as get, pod_in, publish_context};
use kube_test_server::SignerMode;
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_cert-manager-csi-driver");

async fn driver(cluster: &Cluster, adjust: impl FnOnce(&mut DriverConfig)) -> Harness {
    cluster
        .driver(move |config| {
            config.cert_manager.publish_timeout = Duration::from_secs(10);
            config.cert_manager.watch_error_grace = Duration::from_secs(2);
            config.metrics_address = Some("127.0.0.1:0".parse().unwrap());
            config.renewal_backoff = cert_manager_csi_driver::renewal::Backoff {
                initial: Duration::from_millis(300),
                max: Duration::from_secs(1),
            };
            adjust(config);
        })
        .await
}

/// The pods of these tests live in `ops`.
fn pod(name: &str) -> SamplePod {
    pod_in("ops", name)
}

/// The value of the one sample line that starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> f64 {
    let lines: Vec<&str> = metrics.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "{prefix}: {lines:?}\n{metrics}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_report_what_happened() {
    let cluster = cluster().await;
    let harness = driver(&cluster, |_| {}).await;
    let address = harness
        .driver()
        .metrics_address()
        .expect("metrics are served");
    eventually("ready", Duration::from_secs(20), async || {
        get(address, "/readyz").await.0 == 200
    })
    .await;
    assert_eq!(get(address, "/healthz").await, (200, "ok\n".into()));

    // One volume issued and renewed, one denied.
    let good = harness.target("good");
    publish_context(
        &harness,
        "csi-good",
        &good,
        ecdsa_context(&pod("good"), &[(key::DURATION, "3s")]),
    )
    .await
    .unwrap();
    eventually("a renewal", Duration::from_secs(20), async || {
        get(address, "/metrics")
            .await
            .1
            .contains("certmanager_csi_renewals_total{result=\"success\"} 1")
    })
    .await;
    cluster.signer.set_mode(SignerMode::Deny {
        reason: "policy".into(),
        message: "not allowed".into(),
    });
    let bad = harness.target("bad");
    let denied = publish_context(&harness, "csi-bad", &bad, ecdsa_context(&pod("bad"), &[])).await;
    assert_eq!(denied.unwrap_err().code(), tonic::Code::PermissionDenied);

    let (status, metrics) = get(address, "/metrics").await;
    assert_eq!(status, 200);
    let node = "node=\"test-node\"";
    assert!(
        sample(
            &metrics,
            &format!("certmanager_csi_issue_requests_total{{{node},volume=\"csi-good\"}}")
        ) >= 2.0
    );
    // A volume whose first publish failed leaves no series behind (kubelet never unpublishes
    // it); its failure is in the gRPC counts below.
    assert!(!metrics.contains("csi-bad"), "{metrics}");
    let request = cluster
        .api
        .list_objects("cert-manager.io/v1", "certificaterequests")
        .into_iter()
        .rev()
        .find(|r| r["metadata"]["annotations"]["csi.cert-manager.io/volume-id"] == "csi-good")
        .unwrap();
    let name = request["metadata"]["name"].as_str().unwrap();
    let labels = format!(
        "name=\"{name}\",namespace=\"ops\",issuer_name=\"ca-issuer\",issuer_kind=\"ClusterIssuer\",issuer_group=\"cert-manager.io\""
    );
    assert_eq!(
        sample(
            &metrics,
            &format!(
                "certmanager_csi_certificate_request_ready_status{{{labels},condition=\"True\"}}"
            )
        ),
        1.0
    );
    let expires = sample(
        &metrics,
        &format!("certmanager_csi_certificate_request_expiration_timestamp_seconds{{{labels}}}"),
    );
    let renews = sample(
        &metrics,
        &format!("certmanager_csi_certificate_request_renewal_timestamp_seconds{{{labels}}}"),
    );
    assert!(renews < expires && expires > 1.7e9, "{renews} {expires}");
    assert_eq!(
        sample(
            &metrics,
            &format!("certmanager_csi_managed_volume_count{{{node}}}")
        ),
        1.0
    );
    assert!(
        sample(
            &metrics,
            &format!("certmanager_csi_managed_certificate_request_count{{{node}}}")
        ) >= 1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "certmanager_csi_grpc_requests_total{method=\"NodePublishVolume\",code=\"Ok\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "certmanager_csi_grpc_requests_total{method=\"NodePublishVolume\",code=\"PermissionDenied\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "certmanager_csi_grpc_request_duration_seconds_count{method=\"NodePublishVolume\"}"
        ),
        2.0
    );
    assert!(sample(&metrics, "process_resident_memory_bytes ") > 1e6);
    assert!(sample(&metrics, "process_open_fds ") > 3.0);

    // The good volume's renewals are denied now too: counted as errors, marked not ready.
    eventually(
        "a failed renewal is counted",
        Duration::from_secs(20),
        async || {
            let metrics = get(address, "/metrics").await.1;
            metrics
                .lines()
                .find(|l| {
                    l.starts_with(
                    "certmanager_csi_issue_errors_total{node=\"test-node\",volume=\"csi-good\"}",
                )
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .is_some_and(|errors| errors >= 1.0)
                && metrics.contains("condition=\"False\"} 1")
                && metrics.contains("certmanager_csi_renewals_total{result=\"failure\"}")
        },
    )
    .await;

    // The API server goes away: not ready (and says why), still alive.
    cluster.api.fail_next(usize::MAX, 503, None, None);
    cluster.api.drop_watches();
    eventually("not ready", Duration::from_secs(20), async || {
        get(address, "/readyz").await.0 == 503
    })
    .await;
    assert!(get(address, "/readyz").await.1.contains("watch"));
    assert_eq!(get(address, "/healthz").await.0, 200);
    cluster.api.clear_faults();
    eventually("ready again", Duration::from_secs(20), async || {
        get(address, "/readyz").await.0 == 200
    })
    .await;

    // The socket is gone: not alive.
    std::fs::remove_file(&harness.config.socket_path).unwrap();
    let (status, body) = get(address, "/healthz").await;
    assert_eq!(status, 503);
    assert!(body.contains("CSI socket"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_every_volume_in_its_state() {
    let cluster = cluster().await;
    let harness = driver(&cluster, |config| config.continue_on_not_ready = true).await;
    // One still waiting for its certificate (the signer never answers its issuer), one healthy,
    // and one whose renewals fail.
    let waiting = harness.target("waiting");
    // --continue-on-not-ready: the publish returns once the volume is mounted.
    publish_context(
        &harness,
        "csi-waiting",
        &waiting,
        ecdsa_context(
            &pod("waiting"),
            &[(key::ISSUER_NAME, kube_test_server::IGNORED_ISSUER)],
        ),
    )
    .await
    .unwrap();
    assert!(waiting.is_dir());
    let healthy = harness.target("healthy");
    publish_context(
        &harness,
        "csi-healthy",
        &healthy,
        ecdsa_context(&pod("healthy"), &[]),
    )
    .await
    .unwrap();
    let failing = harness.target("failing");
    publish_context(
        &harness,
        "csi-failing",
        &failing,
        ecdsa_context(&pod("failing"), &[(key::DURATION, "2s")]),
    )
    .await
    .unwrap();
    eventually(
        "both certificates are in place",
        Duration::from_secs(20),
        async || healthy.join("tls.crt").exists() && failing.join("tls.crt").exists(),
    )
    .await;
    cluster.signer.set_mode(SignerMode::Fail {
        message: "vault is sealed".into(),
    });

    let data_root = harness.config.data_root.clone();
    let status = |format: &str| {
        let output = Command::new(BINARY)
            .args(["status", "-o", format])
            .arg(format!("--data-root={}", data_root.display()))
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    eventually(
        "the failing renewal is recorded",
        Duration::from_secs(20),
        async || {
            let reports: Vec<serde_json::Value> = serde_json::from_str(&status("json")).unwrap();
            reports
                .iter()
                .any(|r| r["volume_id"] == "csi-failing" && r["failures"].as_u64() >= Some(1))
        },
    )
    .await;
    let reports: Vec<serde_json::Value> = serde_json::from_str(&status("json")).unwrap();
    let by_volume: HashMap<&str, &serde_json::Value> = reports
        .iter()
        .map(|r| (r["volume_id"].as_str().unwrap(), r))
        .collect();
    assert_eq!(by_volume.len(), 3, "{reports:#?}");
    let ok = by_volume["csi-healthy"];
    assert_eq!(ok["state"], "ok");
    assert_eq!(ok["pod"], "ops/healthy");
    assert_eq!(ok["issuer"], "ClusterIssuer/ca-issuer (cert-manager.io)");
    assert_eq!(ok["dns_names"][0], "healthy.app.example.com");
    assert!(ok["not_after"].is_string() && ok["next_renewal"].is_string());
    assert!(ok["last_error"].is_null());
    assert_eq!(ok["failures"], 0);
    let failing_report = by_volume["csi-failing"];
    assert!(failing_report["failures"].as_u64().unwrap() >= 1);
    // The request behind its certificate, named in the progress file the failure wrote.
    assert!(
        failing_report["certificate_request"]
            .as_str()
            .unwrap()
            .starts_with("failing-")
    );
    assert!(
        failing_report["last_error"]
            .as_str()
            .unwrap()
            .contains("vault is sealed")
    );
    assert_eq!(by_volume["csi-waiting"]["state"], "no certificate");

    let table = status("table");
    let header = table.lines().next().unwrap();
    for column in [
        "VOLUME",
        "POD",
        "ISSUER",
        "DNS NAMES",
        "NOT AFTER",
        "NEXT RENEWAL",
        "LAST ERROR",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert!(
        table.contains("ops/healthy") && table.contains("ops/waiting"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 4, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_verbose_logs_carry_no_secret() {
    let cluster = cluster().await;
    cluster
        .api
        .add_token("pod-token-SECRET-4d2f", "system:serviceaccount:ops:web");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("csi.sock");
    let log = dir.path().join("driver.log");
    let mut child = Command::new(BINARY)
        .arg("--node-id=log-node")
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .arg(format!(
            "--data-root={}",
            dir.path().join("state").display()
        ))
        .arg(format!("--kubeconfig={}", cluster.kubeconfig.display()))
        .args(["--use-token-request", "-v=9", "--log-format=json"])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        if let Ok(client) = client::connect(&socket).await {
            break client;
        }
        assert!(Instant::now() < deadline, "driver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let parent = dir.path().join("pods/web/volumes/kubernetes.io~csi/tls");
    std::fs::create_dir_all(&parent).unwrap();
    let target = parent.join("mount");
    let mut volume_context = ecdsa_context(
        &pod("web"),
        &[
            (key::DURATION, "2s"),
            (key::PKCS12_ENABLE, "true"),
            (key::PKCS12_PASSWORD, "keystore-pw-SECRET-9a1c"),
        ],
    );
    volume_context.insert(
        key::SERVICE_ACCOUNT_TOKENS.into(),
        serde_json::json!({"": {"token": "pod-token-SECRET-4d2f"}}).to_string(),
    );
    client
        .node
        .clone()
        .node_publish_volume(publish_request("csi-logs", &target, volume_context.clone()))
        .await
        .unwrap();
    // kubelet's republishes without a usable token: warned about once, not every time.
    let mut no_token = volume_context.clone();
    no_token.insert(key::SERVICE_ACCOUNT_TOKENS.into(), "not json".into());
    for _ in 0..3 {
        client
            .node
            .clone()
            .node_publish_volume(publish_request("csi-logs", &target, no_token.clone()))
            .await
            .unwrap();
    }
    // A failing call too: its error paths log the request.
    volume_context.insert(key::DURATION.into(), "90d".into());
    let _ = client
        .node
        .clone()
        .node_publish_volume(publish_request("csi-logs-bad", &target, volume_context))
        .await
        .unwrap_err();
    // Let a renewal happen (2 s certificates).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = client
        .node
        .clone()
        .node_unpublish_volume(
            cert_manager_csi_driver::csi::proto::NodeUnpublishVolumeRequest {
                volume_id: "csi-logs".into(),
                target_path: target.display().to_string(),
            },
        )
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    common::unmount_all_under(dir.path());

    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.lines().count() > 20, "verbose logging is on:\n{logs}");
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
    assert!(!logs.contains("SECRET"), "a secret reached the logs");
    // Each call received is logged, with the volume, the pod and the context (redacted).
    let received = logs
        .lines()
        .find(|line| line.contains("\"received\"") && line.contains("csi-logs"))
        .expect("the received publish is logged");
    assert!(
        received.contains("NodePublishVolume")
            && received.contains("ops/web")
            && received.contains("<redacted>")
            && received.contains("csi.cert-manager.io/duration"),
        "{received}"
    );
    assert_eq!(
        logs.lines()
            .filter(|line| line.contains("republish without a usable token"))
            .count(),
        1,
        "said once per volume"
    );
    // The libraries stay at warnings, whatever the driver's own level.
    for line in logs.lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        let target = line["target"].as_str().unwrap_or("");
        let level = line["level"].as_str().unwrap_or("");
        assert!(
            target.starts_with("cert_manager_csi_driver") || matches!(level, "WARN" | "ERROR"),
            "a library's {level} line at -v=9: {line}"
        );
    }
    // Nor the driver's own token, nor key material.
    assert!(
        !logs.contains(kube_test_server::DRIVER_TOKEN),
        "the driver's token reached the logs"
    );
    assert!(
        !logs.contains("PRIVATE KEY"),
        "key material reached the logs"
    );
    // Every renewal logs the word "renew" with the volume and pod, as people grep for it.
    let renewal = logs
        .lines()
        .find(|line| line.contains("renew") && line.contains("csi-logs"))
        .expect("a renewal was logged");
    assert!(renewal.contains("ops/web"), "{renewal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_on_not_ready_mounts_first_and_the_certificate_follows() {
    let cluster = cluster().await;
    let harness = driver(&cluster, |config| config.continue_on_not_ready = true).await;
    cluster
        .signer
        .set_mode(SignerMode::Delay(Duration::from_secs(2)));
    let target = harness.target("early");
    publish_context(
        &harness,
        "csi-early",
        &target,
        ecdsa_context(&pod("early"), &[]),
    )
    .await
    .unwrap();
    // Reported published while the issuer is still working: mounted, and empty for now.
    assert!(target.is_dir());
    if common::is_root() {
        assert_eq!(common::mounts_at(&target), 1);
    }
    assert!(
        !target.join("tls.crt").exists(),
        "the certificate came first"
    );
    eventually(
        "the certificate follows",
        Duration::from_secs(20),
        async || target.join("tls.crt").exists(),
    )
    .await;
    common::verify_volume_with_openssl(&target);
    // A republish now finds it complete.
    publish_context(
        &harness,
        "csi-early",
        &target,
        ecdsa_context(&pod("early"), &[]),
    )
    .await
    .unwrap();
    harness.unpublish("csi-early", &target).await.unwrap();
    assert!(!target.exists());
}
