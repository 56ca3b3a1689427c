//! Pod readiness gates and `${POD_IP}`, driven like kubelet drives them: real Pod objects on the
//! test API server on the driver's node, their status patched over HTTP the way kubelet patches it,
//! the driver's gRPC socket, the cert-manager backend and real tmpfs (as root).

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::demo::SamplePod;
use cert_manager_csi_driver::driver::DriverConfig;
use cert_manager_csi_driver::pod_gates::{Gate, GateBackoff};
use cert_manager_csi_driver::volume::manager::VolumeSnapshot;
use common::binary::{BINARY, BinaryNode, cert_manager_backend, kill_hard};
use common::cluster::{Cluster, cluster, creates, event_with_reason, events_for};
use common::kubelet::{Kubelet, pod_reads, pod_watches};
use common::{
    Harness, eventually, is_root, mounts_under, openssl, publish, publish_context, serial_of,
    unpublish, wait_for, wait_for_new_serial,
};
use kube_test_server::DRIVER_USER;
use tonic::Code;

const NAMESPACE: &str = "apps";
const WAITS_FOR_POD: &str = "CertificateWaitsForPod";
const LIMIT: Duration = Duration::from_secs(15);

fn gates(specs: &[&str]) -> Vec<Gate> {
    specs.iter().map(|spec| spec.parse().unwrap()).collect()
}

/// A driver on this cluster that waits for pods to meet `specs`; re-checks without a watch event
/// come every 50–200 ms, so a test sees many of them.
async fn gated_driver(cluster: &Cluster, specs: &[&str]) -> Harness {
    let specs = gates(specs);
    cluster
        .driver(move |config: &mut DriverConfig| {
            config.continue_on_not_ready = true;
            config.readiness_gates = specs;
            config.gate_backoff = GateBackoff {
                initial: Duration::from_millis(50),
                factor: 2.0,
                jitter: 0.0,
                cap: Duration::from_millis(200),
            };
        })
        .await
}

/// A cluster, a gated driver on it, and the kubelet of the driver's node.
struct Gated {
    cluster: Cluster,
    harness: Harness,
    kubelet: Kubelet,
}

/// `None` (the test is skipped) when not root: the volumes are real tmpfs mounts.
async fn gated(specs: &[&str]) -> Option<Gated> {
    if !is_root() {
        eprintln!("skipped: needs root for real tmpfs mounts (CI runs as root)");
        return None;
    }
    let cluster = cluster().await;
    let harness = gated_driver(&cluster, specs).await;
    let kubelet = Kubelet::connect(&cluster.api, &harness.config.node_id, harness.dir.path()).await;
    Some(Gated {
        cluster,
        harness,
        kubelet,
    })
}

/// A gated driver, and a pod on its node (no IP yet) whose `${POD_IP}` volume `csi-<name>` is
/// published and waits on the first of `specs`.
async fn waiting(specs: &[&str], name: &str) -> Option<(Gated, SamplePod, PathBuf)> {
    let gated = gated(specs).await?;
    let pod = gated.kubelet.create_pod(NAMESPACE, name);
    // As on a node, where kubelet mounts volumes of a pod the API server has had for a while: the
    // driver's watch knows the pod, so the wait is on the gate, not on the watch catching up.
    let pods = gated.harness.driver().manager().pod_watch().cloned();
    let pods = pods.expect("gates need the pod watch");
    wait_for("the pod watch sees the pod", LIMIT, || {
        pods.get(NAMESPACE, name).is_some()
    })
    .await;
    let volume_id = format!("csi-{name}");
    let target = publish_for(&gated.harness, &volume_id, &pod, "${POD_IP}", &[]).await;
    wait_until_waiting_on(&gated.harness, &volume_id, specs[0]).await;
    Some((gated, pod, target))
}

/// A pod that has `ip` and whose volume has its first certificate: 6 s certificates, so the
/// renewal comes 4 s after issuance.
async fn issued_short_lived(
    gated: &Gated,
    name: &str,
    ip_sans: &str,
    ip: &str,
) -> (SamplePod, PathBuf) {
    let pod = gated.kubelet.create_pod(NAMESPACE, name);
    gated.kubelet.set_ips(&pod, &[ip]).await;
    let volume_id = format!("csi-{name}");
    let target = publish_for(
        &gated.harness,
        &volume_id,
        &pod,
        ip_sans,
        &[(key::DURATION, "6s")],
    )
    .await;
    wait_for_certificate(&target).await;
    assert_eq!(ip_sans_of(&target), ips(&[ip]));
    (pod, target)
}

/// The pod's volume with `${POD_IP}`-style `ip_sans` (and ECDSA keys, as elsewhere).
async fn publish_for(
    harness: &Harness,
    volume_id: &str,
    pod: &SamplePod,
    ip_sans: &str,
    overrides: &[(&str, &str)],
) -> PathBuf {
    let target = harness.target(&pod.name);
    let mut all = vec![(key::IP_SANS, ip_sans)];
    all.extend_from_slice(overrides);
    publish(harness, volume_id, &target, pod, &all)
        .await
        .expect("the publish returns once mounted (--continue-on-not-ready)");
    target
}

async fn snapshot(harness: &Harness, volume_id: &str) -> VolumeSnapshot {
    let snapshot = harness.driver().manager().snapshot(volume_id).await;
    snapshot.expect("the volume is managed")
}

async fn waiting_on(harness: &Harness, volume_id: &str) -> Option<String> {
    snapshot(harness, volume_id).await.waiting_on
}

async fn wait_until_waiting_on(harness: &Harness, volume_id: &str, gate: &str) {
    eventually(&format!("{volume_id} waits on {gate}"), LIMIT, async || {
        waiting_on(harness, volume_id).await.as_deref() == Some(gate)
    })
    .await;
}

async fn wait_for_certificate(target: &Path) {
    wait_for("the certificate is in the volume", LIMIT, || {
        target.join("tls.crt").exists()
    })
    .await;
}

/// The IP addresses among the leaf's SANs, in order.
fn ip_sans_of(target: &Path) -> Vec<IpAddr> {
    let chain = std::fs::read_to_string(target.join("tls.crt")).unwrap();
    cert_manager_csi_driver::certificate::inspect_leaf(&chain)
        .unwrap()
        .subject_alt_names
        .iter()
        .filter_map(|name| name.strip_prefix("IP:"))
        .map(|ip| ip.parse().unwrap())
        .collect()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().unwrap()).collect()
}

fn skip_unless_root() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root for real tmpfs mounts (CI runs as root)");
    }
    !is_root()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_ip_gate_holds_issuance_until_kubelet_reports_the_ip_and_the_certificate_names_it() {
    let Some((node, pod, target)) = waiting(&["pod-ip:any"], "web").await else {
        return;
    };
    let (cluster, harness, kubelet) = (&node.cluster, &node.harness, &node.kubelet);
    assert!(target.is_dir(), "mounted while it waits");
    assert!(!target.join("tls.crt").exists());
    assert_eq!(
        creates(&cluster.api),
        0,
        "no request before the pod has an IP"
    );

    kubelet.set_ips(&pod, &["10.244.1.17"]).await;
    wait_for_certificate(&target).await;
    let cert = target.join("tls.crt");
    let san = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(san.contains("IP Address:10.244.1.17"), "{san}");
    assert!(san.contains("DNS:web.app.example.com"), "{san}");
    assert_eq!(creates(&cluster.api), 1);
    assert_eq!(waiting_on(harness, "csi-web").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_volume_reads_its_pod_only_from_the_watch_and_warns_once_naming_the_gate() {
    let Some((node, pod, target)) = waiting(&["pod-ip:any"], "quiet").await else {
        return;
    };
    let (cluster, kubelet) = (&node.cluster, &node.kubelet);
    let event = event_with_reason(&cluster.api, "quiet", WAITS_FOR_POD).await;

    // The watch's own list and watch came before this; from here on, nothing but the watch.
    let watches_before = pod_watches(&cluster.api.requests(), DRIVER_USER).len();
    cluster.api.clear_requests();
    // An observation window, not synchronisation: re-checks come every 50–200 ms, so a driver
    // that polled the API server would show it here several times over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A change the gate does not care about wakes the volume, and still reads nothing.
    kubelet
        .set_conditions(&pod, &[("PodScheduled", "True")])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = cluster.api.requests();
    assert_eq!(
        pod_reads(&requests, DRIVER_USER),
        vec![],
        "no GET/LIST of pods"
    );
    assert_eq!(
        pod_watches(&requests, DRIVER_USER).len(),
        0,
        "the watch opened before ({watches_before}) is still the one"
    );
    assert!(watches_before >= 1);
    assert_eq!(creates(&cluster.api), 0);

    assert_eq!(event["type"], "Warning");
    let note = event["note"].as_str().unwrap();
    assert!(
        note.starts_with("volume csi-quiet: certificate issuance waits for pod-ip:any (since "),
        "{note}"
    );
    let warnings: Vec<_> = events_for(&cluster.api, "quiet")
        .into_iter()
        .filter(|event| event["reason"] == WAITS_FOR_POD)
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one Event, not one per check: {warnings:#?}"
    );
    assert!(
        warnings[0]["series"].is_null(),
        "not repeated within minutes"
    );

    kubelet.set_ips(&pod, &["10.244.1.18"]).await;
    wait_for_certificate(&target).await;
    assert_eq!(ip_sans_of(&target), ips(&["10.244.1.18"]));
}

/// A pod family gate: `gate` holds the volume (with `ip_sans`) while the pod has only
/// `other_family`, then issues once it has `final_ips`, naming `expected`.
async fn family_gate_waits_past_the_other_family(
    gate: &str,
    ip_sans: &str,
    other_family: &str,
    marker_ip: &str,
    final_ips: &[&str],
    expected: &[&str],
) {
    let Some(Gated {
        cluster,
        harness,
        kubelet,
    }) = gated(&[gate]).await
    else {
        return;
    };
    let pod = kubelet.create_pod(NAMESPACE, "family");
    let marker = kubelet.create_pod(NAMESPACE, "marker");
    let target = publish_for(&harness, "csi-family", &pod, ip_sans, &[]).await;
    let marker_target = publish_for(&harness, "csi-marker", &marker, "${POD_IP}", &[]).await;
    wait_until_waiting_on(&harness, "csi-family", gate).await;

    kubelet.set_ips(&pod, &[other_family]).await;
    // The watch delivers in order: once the marker (patched later) has its certificate, the
    // other-family-only change of the pod was judged too.
    kubelet.set_ips(&marker, &[marker_ip]).await;
    wait_for_certificate(&marker_target).await;
    assert_eq!(ip_sans_of(&marker_target), ips(&[marker_ip]));
    assert_eq!(
        waiting_on(&harness, "csi-family").await.as_deref(),
        Some(gate)
    );
    assert!(!target.join("tls.crt").exists());
    assert_eq!(creates(&cluster.api), 1, "the marker's only");

    kubelet.set_ips(&pod, final_ips).await;
    wait_for_certificate(&target).await;
    assert_eq!(ip_sans_of(&target), ips(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_gate_waits_past_an_ipv4_only_pod_and_pod_ips_names_both_families() {
    // The pod's addresses first, in status.podIPs order, then those written in the attribute.
    family_gate_waits_past_the_other_family(
        "pod-ip:ipv6",
        "${POD_IPS},192.0.2.1",
        "10.244.2.5",
        "fd00:10:244::9",
        &["10.244.2.5", "fd00:10:244::5"],
        &["10.244.2.5", "fd00:10:244::5", "192.0.2.1"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_gate_waits_past_an_ipv6_only_pod_and_pod_ip_is_the_first_address() {
    // An IPv6-primary dual-stack pod: ${POD_IP} is status.podIPs[0], whatever its family.
    family_gate_waits_past_the_other_family(
        "pod-ip:ipv4",
        "${POD_IP}",
        "fd00:10:244::4",
        "10.244.3.9",
        &["fd00:10:244::4", "10.244.3.4"],
        &["fd00:10:244::4"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_gates_must_all_pass_ip_condition_and_annotation() {
    let Some((node, pod, target)) = waiting(
        &[
            "pod-ip:any",
            "pod-condition:example.com/NetworkReady",
            "pod-annotation:example.com/registered",
        ],
        "gated",
    )
    .await
    else {
        return;
    };
    let (cluster, harness, kubelet) = (&node.cluster, &node.harness, &node.kubelet);

    kubelet.set_ips(&pod, &["10.244.4.2"]).await;
    let condition = "pod-condition:example.com/NetworkReady=True";
    wait_until_waiting_on(harness, "csi-gated", condition).await;
    // A condition of the wrong status (and another one that is True) does not pass it.
    kubelet
        .set_conditions(
            &pod,
            &[("example.com/NetworkReady", "False"), ("Ready", "True")],
        )
        .await;
    kubelet
        .set_conditions(&pod, &[("example.com/NetworkReady", "True")])
        .await;
    let annotation = "pod-annotation:example.com/registered";
    wait_until_waiting_on(harness, "csi-gated", annotation).await;
    // Present but empty is not set.
    kubelet.annotate(&pod, "example.com/registered", "").await;
    kubelet.annotate(&pod, "unrelated", "x").await;
    assert!(!target.join("tls.crt").exists());
    assert_eq!(
        creates(&cluster.api),
        0,
        "nothing issued before every gate passed"
    );
    assert_eq!(
        waiting_on(harness, "csi-gated").await.as_deref(),
        Some(annotation)
    );

    kubelet
        .annotate(&pod, "example.com/registered", "yes")
        .await;
    wait_for_certificate(&target).await;
    assert_eq!(ip_sans_of(&target), ips(&["10.244.4.2"]));
    assert_eq!(
        waiting_on(harness, "csi-gated").await,
        None,
        "the wait is over"
    );
    assert_eq!(
        creates(&cluster.api),
        1,
        "one request, once every gate passed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_while_waiting_ends_the_wait_issues_nothing_and_unpublishes_clean() {
    let Some((node, pod, target)) = waiting(&["pod-ip:any"], "doomed").await else {
        return;
    };
    let (cluster, harness, kubelet) = (&node.cluster, &node.harness, &node.kubelet);

    kubelet.delete_pod(&pod).await;
    wait_until_waiting_on(harness, "csi-doomed", "its pod is gone").await;
    let snapshot = snapshot(harness, "csi-doomed").await;
    assert_eq!(
        snapshot.next_renewal, None,
        "no more re-checks: the wait ended"
    );
    assert!(!target.join("tls.crt").exists());
    assert_eq!(creates(&cluster.api), 0);

    unpublish(&harness.client, "csi-doomed", &target)
        .await
        .unwrap();
    assert!(mounts_under(harness.dir.path()).is_empty());
    assert_eq!(harness.state_records(), 0);
    let forgotten = harness.driver().manager().snapshot("csi-doomed").await;
    assert!(forgotten.is_none());
    assert_eq!(creates(&cluster.api), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_waiting_when_the_driver_is_killed_still_waits_after_the_restart_then_issues() {
    if skip_unless_root() {
        return;
    }
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let mut node = BinaryNode::new(dir.path(), cert_manager_backend(&cluster.kubeconfig));
    node.extra_args = vec![
        "--continue-on-not-ready=true".into(),
        "--pod-readiness-gate=pod-ip:any".into(),
    ];
    // The binary's node (BinaryNode names it so).
    let kubelet = Kubelet::connect(&cluster.api, "restart-node", dir.path()).await;
    let pod = kubelet.create_pod(NAMESPACE, "resumed");
    let mut driver = node.spawn();
    let client = node.connect().await;
    let target = node.target("resumed");
    let context = common::ecdsa_context(&pod, &[(key::IP_SANS, "${POD_IP}")]);
    client
        .node
        .clone()
        .node_publish_volume(cert_manager_csi_driver::demo::publish_request(
            "csi-resumed",
            &target,
            context,
        ))
        .await
        .expect("publish returns once mounted");
    event_with_reason(&cluster.api, "resumed", WAITS_FOR_POD).await;

    kill_hard(&mut driver);
    drop(client);
    cluster.api.clear_requests();
    let _driver = node.spawn();
    let client = node.connect().await;
    // The new process watches the node's pods: it has resumed the volume (resumption comes
    // before the socket) and judged it on what the watch lists.
    wait_for("the restarted driver watches pods", LIMIT, || {
        !pod_watches(&cluster.api.requests(), DRIVER_USER).is_empty()
    })
    .await;
    let status = Command::new(BINARY)
        .args(["status", "-o", "json"])
        .arg(format!(
            "--data-root={}",
            dir.path().join("state").display()
        ))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(reports[0]["state"], "waiting on its pod", "{reports:#?}");
    assert!(!target.join("tls.crt").exists());
    assert_eq!(creates(&cluster.api), 0);

    kubelet.set_ips(&pod, &["10.244.5.3"]).await;
    wait_for_certificate(&target).await;
    assert_eq!(ip_sans_of(&target), ips(&["10.244.5.3"]));
    assert_eq!(creates(&cluster.api), 1);
    unpublish(&client, "csi-resumed", &target).await.unwrap();
    assert!(mounts_under(dir.path()).is_empty());
}

/// Runs the binary with `args` (on a throwaway node) and returns its exit status and stderr;
/// fails the test if it is still running after a few seconds (it started instead of refusing).
fn refused_at_start(args: &[&str]) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BINARY)
        .arg("--node-id=bad-flags-node")
        .arg(format!(
            "--endpoint=unix://{}",
            dir.path().join("csi.sock").display()
        ))
        .arg(format!(
            "--data-root={}",
            dir.path().join("state").display()
        ))
        .arg("--issuer-backend=local-ca")
        .arg(format!(
            "--local-ca-dir={}",
            dir.path().join("ca").display()
        ))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::SystemTime::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::SystemTime::now() > deadline {
            let _ = child.kill();
            panic!("the driver started with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[test]
fn a_bad_gate_spec_stops_the_binary_at_start_naming_the_spec() {
    for spec in [
        "pod-ip:ipv5",
        "pod-ip",
        "pod-condition:",
        "pod-condition:Ready=maybe",
        "pod-annotation:",
        "pod-phase:Running",
    ] {
        let gate = format!("--pod-readiness-gate={spec}");
        let (status, stderr) = refused_at_start(&["--continue-on-not-ready=true", &gate]);
        assert!(!status.success(), "{spec}");
        assert!(stderr.contains(&format!("{spec:?}")), "{spec}: {stderr}");
    }
}

#[test]
fn a_gate_without_continue_on_not_ready_stops_the_binary_at_start() {
    let (status, stderr) = refused_at_start(&["--pod-readiness-gate=pod-ip:any"]);
    assert!(!status.success());
    assert!(
        stderr.contains("--pod-readiness-gate requires --continue-on-not-ready=true"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_ip_without_the_flags_to_wait_for_it_is_refused_at_publish_naming_the_flag() {
    let cluster = cluster().await;
    let pod = common::pod_in(NAMESPACE, "early");
    let cases: [(bool, &[&str], &str); 3] = [
        (
            false,
            &[],
            "--continue-on-not-ready=true and --pod-readiness-gate=pod-ip",
        ),
        (true, &[], "--pod-readiness-gate=pod-ip:any"),
        (
            true,
            &["pod-condition:Ready"],
            "--pod-readiness-gate=pod-ip:any",
        ),
    ];
    for (continue_on_not_ready, specs, missing) in cases {
        let specs = gates(specs);
        let harness = cluster
            .driver(move |config| {
                config.continue_on_not_ready = continue_on_not_ready;
                config.readiness_gates = specs;
            })
            .await;
        for ip_sans in ["${POD_IP}", "10.0.0.1,${POD_IPS}"] {
            let target = harness.target("early");
            let context = common::ecdsa_context(&pod, &[(key::IP_SANS, ip_sans)]);
            let status = publish_context(&harness, "csi-early", &target, context)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(status.message().contains(missing), "{ip_sans}: {status:?}");
            assert!(status.message().contains("ip-sans"), "{status:?}");
        }
    }
    assert_eq!(creates(&cluster.api), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_carries_the_pods_current_addresses() {
    let Some(gated) = gated(&["pod-ip:any"]).await else {
        return;
    };
    let (pod, target) = issued_short_lived(&gated, "moving", "${POD_IPS}", "10.244.6.1").await;
    let first = serial_of(&target);

    // The pod's addresses change (a dual-stack network added its IPv6 address).
    gated
        .kubelet
        .set_ips(&pod, &["10.244.6.1", "fd00:10:244::61"])
        .await;
    wait_for_new_serial(&target, &first, LIMIT, "the certificate was renewed").await;
    assert_eq!(ip_sans_of(&target), ips(&["10.244.6.1", "fd00:10:244::61"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_due_for_a_pod_being_deleted_is_skipped() {
    let Some(gated) = gated(&["pod-ip:any"]).await else {
        return;
    };
    let (_, target) = issued_short_lived(&gated, "leaving", "${POD_IP}", "10.244.7.1").await;
    let (cluster, harness) = (&gated.cluster, &gated.harness);
    let serial = serial_of(&target);
    assert_eq!(creates(&cluster.api), 1);

    // A graceful delete: the API server sets deletionTimestamp and keeps the pod while kubelet
    // stops its containers.
    cluster
        .api
        .mark_deleting("v1", "pods", NAMESPACE, "leaving", 30)
        .expect("the pod exists");
    // The renewal (due 4 s after issuance) is judged, and skipped.
    wait_until_waiting_on(harness, "csi-leaving", "its pod is being deleted").await;
    assert_eq!(
        serial_of(&target),
        serial,
        "the certificate is kept as it is"
    );
    assert_eq!(creates(&cluster.api), 1, "no request for a dying pod");
    let snapshot = snapshot(harness, "csi-leaving").await;
    assert_eq!(snapshot.next_renewal, None, "and none is tried again");

    unpublish(&harness.client, "csi-leaving", &target)
        .await
        .unwrap();
    assert!(mounts_under(harness.dir.path()).is_empty());
    assert_eq!(creates(&cluster.api), 1);
}
