//! `cert-manager-csi-driver spiffe-approver`, the real binary, against the Kubernetes-API-compatible
//! test server over HTTPS: requests are created through the kube client with the requester's own
//! bearer token (the server records `spec.username` from it, as cert-manager's webhook does), the
//! approver decides them, and the server's signer — in the mode where it signs only what someone
//! else approved — issues the approved one. Two replicas elect a leader on a Lease; only the leader
//! writes, and when it is killed the other takes over.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_test_server::{Signer, SignerMode, TestApiServer};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, KeyPair, SanType,
    SignatureAlgorithm,
};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const CR: (&str, &str) = ("cert-manager.io/v1", "certificaterequests");
const LEASE: (&str, &str) = ("coordination.k8s.io/v1", "leases");
const LEASE_NAMESPACE: &str = "cert-manager";
const LEASE_NAME: &str = "spiffe.csi.cert-manager.io";
const NAMESPACE: &str = "sandbox";
const LEGIT_ID: &str = "spiffe://cluster.local/ns/sandbox/sa/sleep";
const REASON: &str = "spiffe.csi.cert-manager.io";

/// Bearer tokens of the requesters, and who they are.
const SLEEP: (&str, &str) = ("sleep-token", "system:serviceaccount:sandbox:sleep");
const ADMIN_SA: (&str, &str) = ("admin-token", "system:serviceaccount:sandbox:admin");
const ALICE: (&str, &str) = ("alice-token", "alice");

/// Generous: the approver answers in milliseconds; this only bounds a hang.
const PATIENCE: Duration = Duration::from_secs(15);

fn csr_with(
    algorithm: &'static SignatureAlgorithm,
    change: impl FnOnce(&mut CertificateParams),
) -> String {
    let key = KeyPair::generate_for(algorithm).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![uri(LEGIT_ID)];
    change(&mut params);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn csr(change: impl FnOnce(&mut CertificateParams)) -> String {
    csr_with(&rcgen::PKCS_ECDSA_P256_SHA256, change)
}

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().unwrap())
}

/// A request as csi-driver-spiffe makes it.
fn request(name: &str, csr_pem: &str) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": { "name": name, "annotations": { "spiffe.csi.cert-manager.io/identity": LEGIT_ID } },
        "spec": {
            "request": k8s_openapi::ByteString(csr_pem.as_bytes().to_vec()),
            "issuerRef": { "name": "spiffe-ca", "kind": "ClusterIssuer", "group": "cert-manager.io" },
            "duration": "1h0m0s",
            "isCA": false,
            "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
        },
    })
}

async fn client(server: &TestApiServer, dir: &Path, token: &str) -> kube::Client {
    let path = dir.join(format!("kubeconfig-{token}"));
    server.write_kubeconfig(&path, token);
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Creates `object` in `namespace` as the user behind `token`, over HTTPS.
async fn create_as(
    server: &TestApiServer,
    dir: &Path,
    token: &str,
    namespace: &str,
    object: Value,
) {
    let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", "CertificateRequest");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "certificaterequests");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client(server, dir, token).await, namespace, &resource);
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
}

fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// One approver process; killed when dropped.
struct Approver {
    child: Child,
    token: String,
    user: String,
    metrics: SocketAddr,
    readiness: SocketAddr,
    log: PathBuf,
}

impl Approver {
    fn start(server: &TestApiServer, dir: &Path, name: &str) -> Approver {
        Approver::start_with(
            server,
            dir,
            name,
            &[
                "--issuer-name=spiffe-ca",
                "--issuer-kind=ClusterIssuer",
                "--issuer-group=cert-manager.io",
            ],
        )
    }

    /// An approver with these issuer flags.
    fn start_with(server: &TestApiServer, dir: &Path, name: &str, issuer: &[&str]) -> Approver {
        let token = format!("{name}-token");
        let user = format!("system:serviceaccount:cert-manager:{name}");
        server.add_token(&token, &user);
        let kubeconfig = dir.join(format!("kubeconfig-{name}"));
        server.write_kubeconfig(&kubeconfig, &token);
        let (metrics, readiness) = (free_address(), free_address());
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_cert-manager-csi-driver"))
            .arg("spiffe-approver")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(issuer)
            .args([
                "--trust-domain=cluster.local",
                "--certificate-request-duration=1h",
                "--leader-election-namespace=cert-manager",
                "--leader-election-lease-duration=2s",
                "--leader-election-renew-deadline=1500ms",
                "--leader-election-retry-period=200ms",
                "-v=2",
            ])
            .arg(format!("--metrics-bind-address={metrics}"))
            .arg(format!("--readiness-probe-bind-address={readiness}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting the approver");
        Approver {
            child,
            token,
            user,
            metrics,
            readiness,
            log,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether its metrics say it leads (`None` while it does not answer).
    async fn leads(&self) -> Option<bool> {
        let (status, body) = get(self.metrics, "/metrics").await?;
        assert_eq!(status, 200);
        Some(
            body.lines()
                .any(|l| l == "certmanager_csi_spiffe_approver_leader 1"),
        )
    }
}

impl Drop for Approver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET: the status code and the body.
async fn get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Polls until `done` holds; fails with the approvers' logs after [`PATIENCE`].
async fn eventually<T>(
    what: &str,
    approvers: &[&Approver],
    mut done: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = done().await {
            return value;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = approvers.iter().map(|a| a.logs()).collect();
            panic!(
                "timed out waiting for {what}; approver logs:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn condition<'v>(request: &'v Value, kind: &str) -> Option<&'v Value> {
    request["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Waits for an Approved or Denied condition and returns the request.
async fn decided(
    server: &TestApiServer,
    approvers: &[&Approver],
    namespace: &str,
    name: &str,
) -> Value {
    eventually(
        &format!("a decision on {namespace}/{name}"),
        approvers,
        async || {
            let request = server.get_object(CR.0, CR.1, namespace, name)?;
            (condition(&request, "Approved").is_some() || condition(&request, "Denied").is_some())
                .then_some(request)
        },
    )
    .await
}

/// Who wrote the status of `namespace/name`.
fn status_writers(server: &TestApiServer, namespace: &str, name: &str) -> Vec<String> {
    let path = format!(
        "/apis/cert-manager.io/v1/namespaces/{namespace}/certificaterequests/{name}/status"
    );
    server
        .requests()
        .into_iter()
        .filter(|entry| entry.method == "PUT" && entry.path == path && entry.status == 200)
        .filter_map(|entry| entry.user)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approves_the_pods_own_identity_and_denies_every_forgery() {
    let server = TestApiServer::start().await;
    let signer = Signer::start(&server);
    signer.set_mode(SignerMode::SignApprovedOnly);
    for (token, user) in [SLEEP, ADMIN_SA, ALICE] {
        server.add_token(token, user);
    }
    let dir = TempDir::new().unwrap();
    let approver = Approver::start(&server, dir.path(), "approver");
    let approvers = [&approver];

    // A request for another issuer, made first: the approver reaches it before the others.
    let mut other = request(
        "other-issuer",
        &csr(|p| p.subject_alt_names.push(uri("spiffe://x/y"))),
    );
    other["spec"]["issuerRef"]["name"] = json!("other-ca");
    create_as(&server, dir.path(), SLEEP.0, NAMESPACE, other).await;

    create_as(
        &server,
        dir.path(),
        SLEEP.0,
        NAMESPACE,
        request("legit", &csr(|_| {})),
    )
    .await;

    let bad_signature = {
        let pem = csr(|_| {});
        let mut der = pem::parse(&pem).unwrap().into_contents();
        let last = der.len() - 1;
        der[last] ^= 1;
        pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der))
    };
    type Change = Box<dyn Fn(&mut Value)>;
    let spec = |key: &'static str, value: Value| -> Change {
        Box::new(move |r| r["spec"][key] = value.clone())
    };
    let same: Change = Box::new(|_| {});
    // (name, requester, namespace, CSR, change to the request, what the denial must say)
    let forgeries: Vec<(&str, &str, &str, String, Change, &str)> = vec![
        (
            "other-sa-uri",
            SLEEP.0,
            NAMESPACE,
            csr(|p| p.subject_alt_names = vec![uri("spiffe://cluster.local/ns/sandbox/sa/admin")]),
            same,
            "unexpected SPIFFE ID",
        ),
        (
            "other-ns-uri",
            SLEEP.0,
            NAMESPACE,
            csr(|p| {
                p.subject_alt_names = vec![uri("spiffe://cluster.local/ns/kube-system/sa/sleep")]
            }),
            Box::new(|_| {}),
            "kube-system",
        ),
        (
            "dns-san",
            SLEEP.0,
            NAMESPACE,
            csr(|p| {
                p.subject_alt_names
                    .push(SanType::DnsName("sleep.sandbox.svc".try_into().unwrap()))
            }),
            Box::new(|_| {}),
            "DNS names [\"sleep.sandbox.svc\"]",
        ),
        (
            "common-name",
            SLEEP.0,
            NAMESPACE,
            csr(|p| p.distinguished_name.push(DnType::CommonName, "sleep")),
            Box::new(|_| {}),
            "common name [\"sleep\"]",
        ),
        (
            "email",
            SLEEP.0,
            NAMESPACE,
            csr(|p| {
                p.subject_alt_names
                    .push(SanType::Rfc822Name("a@b.c".try_into().unwrap()))
            }),
            Box::new(|_| {}),
            "email addresses",
        ),
        (
            "ip",
            SLEEP.0,
            NAMESPACE,
            csr(|p| {
                p.subject_alt_names
                    .push(SanType::IpAddress("10.1.2.3".parse().unwrap()))
            }),
            Box::new(|_| {}),
            "IP addresses [\"10.1.2.3\"]",
        ),
        (
            "two-uris",
            SLEEP.0,
            NAMESPACE,
            csr(|p| {
                p.subject_alt_names
                    .push(uri("spiffe://cluster.local/ns/sandbox/sa/other"))
            }),
            Box::new(|_| {}),
            "exactly 1 SPIFFE URI",
        ),
        (
            "is-ca",
            SLEEP.0,
            NAMESPACE,
            csr(|_| {}),
            spec("isCA", json!(true)),
            "spec.isCA",
        ),
        (
            "wrong-duration",
            SLEEP.0,
            NAMESPACE,
            csr(|_| {}),
            spec("duration", json!("2h")),
            "spec.duration: must be \"1h0m0s\", is \"2h\"",
        ),
        (
            "missing-usage",
            SLEEP.0,
            NAMESPACE,
            csr(|_| {}),
            spec(
                "usages",
                json!(["digital signature", "key encipherment", "server auth"]),
            ),
            "spec.usages",
        ),
        (
            "extra-usage",
            SLEEP.0,
            NAMESPACE,
            csr(|_| {}),
            spec(
                "usages",
                json!([
                    "digital signature",
                    "key encipherment",
                    "server auth",
                    "client auth",
                    "cert sign"
                ]),
            ),
            "spec.usages",
        ),
        (
            "other-sa-user",
            ADMIN_SA.0,
            NAMESPACE,
            csr(|_| {}),
            Box::new(|_| {}),
            "system:serviceaccount:sandbox:admin",
        ),
        (
            "non-sa-user",
            ALICE.0,
            NAMESPACE,
            csr(|_| {}),
            Box::new(|_| {}),
            "spec.username: \"alice\" is not a service account",
        ),
        // The webhook overwrites a claimed username with the real one.
        (
            "claimed-username",
            ALICE.0,
            NAMESPACE,
            csr(|_| {}),
            spec("username", json!(SLEEP.1)),
            "\"alice\" is not a service account",
        ),
        (
            "bad-signature",
            SLEEP.0,
            NAMESPACE,
            bad_signature,
            Box::new(|_| {}),
            "signature does not verify",
        ),
        (
            "rsa-key",
            SLEEP.0,
            NAMESPACE,
            csr_with(&rcgen::PKCS_RSA_SHA256, |_| {}),
            Box::new(|_| {}),
            "the key must be ECDSA P-256, is RSA 2048",
        ),
        (
            "other-trust-domain",
            SLEEP.0,
            NAMESPACE,
            csr(|p| p.subject_alt_names = vec![uri("spiffe://example.org/ns/sandbox/sa/sleep")]),
            Box::new(|_| {}),
            "example.org",
        ),
        (
            "extra-extension",
            SLEEP.0,
            NAMESPACE,
            csr(|p| {
                p.custom_extensions
                    .push(CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![5, 0]))
            }),
            Box::new(|_| {}),
            "forbidden extension 1.2.3.4",
        ),
        (
            "subject-o",
            SLEEP.0,
            NAMESPACE,
            csr(|p| p.distinguished_name.push(DnType::OrganizationName, "Evil")),
            Box::new(|_| {}),
            "subject must be empty",
        ),
        (
            "other-namespace",
            SLEEP.0,
            "elsewhere",
            csr(|_| {}),
            Box::new(|_| {}),
            "metadata.namespace",
        ),
    ];
    for (name, token, namespace, pem, change, _) in &forgeries {
        let mut object = request(name, pem);
        change(&mut object);
        create_as(&server, dir.path(), token, namespace, object).await;
    }

    let legit = decided(&server, &approvers, NAMESPACE, "legit").await;
    let approved = condition(&legit, "Approved").expect("the legitimate request is approved");
    assert_eq!(approved["status"], "True");
    assert_eq!(approved["reason"], REASON);
    assert_eq!(approved["message"], "Approved request");
    assert!(approved["lastTransitionTime"].is_string());
    // The signer (cert-manager) signs what the approver approved.
    let signed = eventually("the signature", &approvers, async || {
        let r = server.get_object(CR.0, CR.1, NAMESPACE, "legit")?;
        (condition(&r, "Ready")?["status"] == "True").then_some(r)
    })
    .await;
    assert!(signed["status"]["certificate"].is_string());

    for (name, _, namespace, _, _, expected) in &forgeries {
        let r = decided(&server, &approvers, namespace, name).await;
        assert!(
            condition(&r, "Approved").is_none(),
            "{name} was approved: {r}"
        );
        let denied = condition(&r, "Denied").unwrap();
        assert_eq!(denied["status"], "True", "{name}");
        assert_eq!(denied["reason"], REASON, "{name}");
        let message = denied["message"].as_str().unwrap();
        assert!(message.starts_with("Denied request: "), "{name}: {message}");
        assert!(
            message.contains(expected),
            "{name}: {message:?} does not say {expected:?}"
        );
    }
    // cert-manager marks the denied ones failed; none is signed.
    for (name, _, namespace, ..) in &forgeries {
        let r = eventually("Ready=False Denied", &approvers, async || {
            let r = server.get_object(CR.0, CR.1, namespace, name)?;
            condition(&r, "Ready").is_some().then_some(r)
        })
        .await;
        assert_eq!(
            condition(&r, "Ready").unwrap()["reason"],
            "Denied",
            "{name}"
        );
    }
    assert_eq!(signer.signed_count(), 1);

    // The request for another issuer was never touched.
    let other = server
        .get_object(CR.0, CR.1, NAMESPACE, "other-issuer")
        .unwrap();
    assert!(
        other["status"]["conditions"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{other}"
    );
    assert!(status_writers(&server, NAMESPACE, "other-issuer").is_empty());
    // Only the approver wrote the decisions, each once.
    assert_eq!(
        status_writers(&server, NAMESPACE, "legit"),
        [approver.user.as_str()]
    );

    let (status, body) = get(approver.metrics, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let value = |line_start: &str| -> u64 {
        body.lines()
            .filter(|l| l.starts_with(line_start))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(
        value("certmanager_csi_spiffe_approver_approved_total{kind=\"spiffe\"}"),
        1
    );
    assert_eq!(
        value("certmanager_csi_spiffe_approver_denied_total{"),
        forgeries.len() as u64
    );
    assert_eq!(
        value("certmanager_csi_spiffe_approver_denied_total{reason=\"key_type\"}"),
        1
    );
    assert_eq!(value("certmanager_csi_spiffe_approver_leader"), 1);
    assert_eq!(get(approver.readiness, "/readyz").await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_acts_and_another_replica_takes_over_when_it_dies() {
    let server = TestApiServer::start().await;
    server.add_token(SLEEP.0, SLEEP.1);
    let dir = TempDir::new().unwrap();
    // Exactly one leads, and the Lease says so.
    let (mut leader, follower) = elected(&server, dir.path()).await;
    let lease = server
        .get_object(LEASE.0, LEASE.1, LEASE_NAMESPACE, LEASE_NAME)
        .expect("the Lease");
    let spec = &lease["spec"];
    assert_eq!(spec["leaseDurationSeconds"], 2);
    assert_eq!(spec["leaseTransitions"], 0);
    let first_holder = spec["holderIdentity"].as_str().unwrap().to_string();
    assert!(!first_holder.is_empty());
    assert!(
        spec["acquireTime"].is_string() && spec["renewTime"].is_string(),
        "{lease}"
    );
    assert_eq!(
        server.created_by(LEASE.0, LEASE.1, LEASE_NAMESPACE, LEASE_NAME),
        Some(leader.user.clone())
    );

    create_as(
        &server,
        dir.path(),
        SLEEP.0,
        NAMESPACE,
        request("first", &csr(|_| {})),
    )
    .await;
    let first = decided(&server, &[&leader, &follower], NAMESPACE, "first").await;
    assert!(condition(&first, "Approved").is_some(), "{first}");
    assert_eq!(
        status_writers(&server, NAMESPACE, "first"),
        [leader.user.as_str()]
    );
    assert_eq!(follower.leads().await, Some(false));

    // The leader dies without handing the Lease back.
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    eventually("the follower to take over", &[&follower], async || {
        follower.leads().await.filter(|leads| *leads)
    })
    .await;
    let lease = server
        .get_object(LEASE.0, LEASE.1, LEASE_NAMESPACE, LEASE_NAME)
        .unwrap();
    assert_ne!(lease["spec"]["holderIdentity"], first_holder);
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    create_as(
        &server,
        dir.path(),
        SLEEP.0,
        NAMESPACE,
        request("second", &csr(|_| {})),
    )
    .await;
    let second = decided(&server, &[&follower], NAMESPACE, "second").await;
    assert!(condition(&second, "Approved").is_some(), "{second}");
    assert_eq!(
        status_writers(&server, NAMESPACE, "second"),
        [follower.user.as_str()]
    );
}

/// Two replicas, and which one leads once one does.
async fn elected(server: &TestApiServer, dir: &Path) -> (Approver, Approver) {
    let a = Approver::start(server, dir, "approver-a");
    let b = Approver::start(server, dir, "approver-b");
    let a_leads = eventually("a leader", &[&a, &b], async || {
        match (a.leads().await?, b.leads().await?) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        }
    })
    .await;
    if a_leads { (a, b) } else { (b, a) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_leading() {
    let server = TestApiServer::start().await;
    server.add_token(SLEEP.0, SLEEP.1);
    let dir = TempDir::new().unwrap();
    let (leader, follower) = elected(&server, dir.path()).await;

    // The API server stops accepting the leader's credentials: it cannot renew.
    server.reject_token(&leader.token);
    eventually(
        "the leader to step down",
        &[&leader, &follower],
        async || (!leader.leads().await?).then_some(()),
    )
    .await;
    eventually("the follower to take over", &[&follower], async || {
        follower.leads().await.filter(|leads| *leads)
    })
    .await;
    let lease = server
        .get_object(LEASE.0, LEASE.1, LEASE_NAMESPACE, LEASE_NAME)
        .unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    create_as(
        &server,
        dir.path(),
        SLEEP.0,
        NAMESPACE,
        request("after", &csr(|_| {})),
    )
    .await;
    let after = decided(&server, &[&follower], NAMESPACE, "after").await;
    assert!(condition(&after, "Approved").is_some(), "{after}");
    assert_eq!(
        status_writers(&server, NAMESPACE, "after"),
        [follower.user.as_str()]
    );
}

/// A request like [`request`], to another issuer.
fn request_to(name: &str, issuer: &str, csr_pem: &str) -> Value {
    let mut object = request(name, csr_pem);
    object["spec"]["issuerRef"]["name"] = json!(issuer);
    object
}

/// With `--runtime-issuance-config-map-*` (and no `--issuer-name`), the approver judges the
/// requests to the issuer the ConfigMap names and follows it as it changes: what it left alone
/// as another issuer's is judged once that issuer is the active one; with the ConfigMap gone and
/// no flags' issuer, nothing is judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_runtime_issuance_config_map() {
    let server = TestApiServer::start().await;
    server.add_token(SLEEP.0, SLEEP.1);
    let dir = TempDir::new().unwrap();
    let config_map = |issuer: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "spiffe-issuer"},
               "data": {"issuer-name": issuer, "issuer-kind": "ClusterIssuer",
                        "issuer-group": "cert-manager.io"}})
    };
    server.create_object("v1", "configmaps", "cert-manager", config_map("spiffe-ca"));
    let approver = Approver::start_with(
        &server,
        dir.path(),
        "approver",
        &[
            "--issuer-name=",
            "--runtime-issuance-config-map-name=spiffe-issuer",
            "--runtime-issuance-config-map-namespace=cert-manager",
        ],
    );
    eventually("it to lead", &[&approver], async || {
        approver.leads().await.filter(|leads| *leads)
    })
    .await;

    // The ConfigMap's issuer is judged; another one's request is left alone.
    let csr_pem = csr(|_| {});
    create_as(
        &server,
        dir.path(),
        SLEEP.0,
        NAMESPACE,
        request_to("to-other", "other-ca", &csr_pem),
    )
    .await;
    create_as(
        &server,
        dir.path(),
        SLEEP.0,
        NAMESPACE,
        request("to-spiffe", &csr_pem),
    )
    .await;
    let judged = decided(&server, &[&approver], NAMESPACE, "to-spiffe").await;
    assert!(condition(&judged, "Approved").is_some(), "{judged}");
    let other = server
        .get_object(CR.0, CR.1, NAMESPACE, "to-other")
        .unwrap();
    assert!(other["status"]["conditions"].is_null(), "{other}");

    // The ConfigMap now names other-ca: the request left alone is judged, and a new request to
    // spiffe-ca is another issuer's.
    server.update_object(
        "v1",
        "configmaps",
        "cert-manager",
        "spiffe-issuer",
        |object| {
            object["data"]["issuer-name"] = json!("other-ca");
        },
    );
    let judged = decided(&server, &[&approver], NAMESPACE, "to-other").await;
    assert!(condition(&judged, "Approved").is_some(), "{judged}");
    create_as(
        &server,
        dir.path(),
        SLEEP.0,
        NAMESPACE,
        request("late-spiffe", &csr_pem),
    )
    .await;
    create_as(
        &server,
        dir.path(),
        SLEEP.0,
        NAMESPACE,
        request_to("late-other", "other-ca", &csr_pem),
    )
    .await;
    decided(&server, &[&approver], NAMESPACE, "late-other").await;
    let late = server
        .get_object(CR.0, CR.1, NAMESPACE, "late-spiffe")
        .unwrap();
    assert!(late["status"]["conditions"].is_null(), "{late}");

    // Gone, with no issuer in the flags: nothing is judged.
    server.delete_object("v1", "configmaps", "cert-manager", "spiffe-issuer");
    eventually(
        "the ConfigMap's deletion to be seen",
        &[&approver],
        async || {
            approver
                .logs()
                .contains("Runtime issuance configuration was deleted and no issuerRef")
                .then_some(())
        },
    )
    .await;
    create_as(
        &server,
        dir.path(),
        SLEEP.0,
        NAMESPACE,
        request_to("orphan", "other-ca", &csr_pem),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let orphan = server.get_object(CR.0, CR.1, NAMESPACE, "orphan").unwrap();
    assert!(orphan["status"]["conditions"].is_null(), "{orphan}");
}
