//! `cert-manager-csi-driver spiffe`, the SPIFFE node plugin: an in-process driver built from the
//! subcommand's own flags, driven over its unix socket as kubelet drives it, against the
//! Kubernetes-API test server over HTTPS, with the real `spiffe-approver` binary deciding the
//! requests and the server's signer signing only what the approver approved. Pods' tokens are
//! JWTs with kubelet's claims, registered with the server as their service accounts, so the
//! server records the requester in `spec.username` as cert-manager's webhook does.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::csi::client::{self, CsiClient};
use cert_manager_csi_driver::demo::publish_request;
use cert_manager_csi_driver::driver::{self, MountMode, RunningDriver};
use cert_manager_csi_driver::spiffe::node::args::SpiffeArgs;
use cert_manager_csi_driver::spiffe::node::claims::unsigned_token;
use clap::Parser;
use kube_test_server::{Signer, SignerMode, TestApiServer};
use serde_json::{Value, json};
use tempfile::TempDir;
use tonic::Code;

const CR_API: &str = "cert-manager.io/v1";
const CRS: &str = "certificaterequests";
const NAMESPACE: &str = "sandbox";
const SA: &str = "sleep";
const SA_USER: &str = "system:serviceaccount:sandbox:sleep";
const ID: &str = "spiffe://cluster.local/ns/sandbox/sa/sleep";

#[derive(Parser)]
#[command(args_override_self = true)]
struct Flags {
    #[command(flatten)]
    spiffe: SpiffeArgs,
}

struct Node {
    api: TestApiServer,
    _signer: Signer,
    dir: TempDir,
    approver: Child,
    driver: Option<RunningDriver>,
    client: CsiClient,
    /// The node plugin's command line, to start it again.
    argv: Vec<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.approver.kill();
        let _ = self.approver.wait();
        if common::is_root() {
            common::unmount_all_under(self.dir.path());
        }
    }
}

/// The API server, the approver for `duration`, and a node plugin with `flags`.
async fn node(duration: &str, flags: &[&str]) -> Node {
    let api = TestApiServer::start().await;
    let signer = Signer::start(&api);
    signer.set_mode(SignerMode::SignApprovedOnly);
    let dir = tempfile::Builder::new()
        .prefix("spiffe-node-")
        .tempdir()
        .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, kube_test_server::DRIVER_TOKEN);
    api.add_token(
        "approver-token",
        "system:serviceaccount:cert-manager:approver",
    );
    let approver_kubeconfig = dir.path().join("kubeconfig-approver");
    api.write_kubeconfig(&approver_kubeconfig, "approver-token");
    let approver = Command::new(env!("CARGO_BIN_EXE_cert-manager-csi-driver"))
        .arg("spiffe-approver")
        .arg("--kubeconfig")
        .arg(&approver_kubeconfig)
        .args([
            "--issuer-name=spiffe-ca",
            "--metrics-bind-address=0",
            "--readiness-probe-bind-address=0",
            "--leader-election-lease-duration=2s",
            "--leader-election-renew-deadline=1500ms",
            "--leader-election-retry-period=200ms",
        ])
        .arg(format!("--certificate-request-duration={duration}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("approver.log")).unwrap())
        .spawn()
        .expect("starting the approver");

    let mut argv: Vec<String> = vec![
        "spiffe".into(),
        "--node-id=test-node".into(),
        "--issuer-name=spiffe-ca".into(),
        format!("--certificate-request-duration={duration}"),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!(
            "--endpoint=unix://{}",
            dir.path().join("plugin/csi.sock").display()
        ),
        "--publish-timeout=10s".into(),
    ];
    argv.extend(flags.iter().map(|flag| flag.to_string()));
    let (driver, client) = start_driver(dir.path(), &argv).await;
    Node {
        api,
        _signer: signer,
        dir,
        approver,
        driver: Some(driver),
        client,
        argv,
    }
}

/// The node plugin with this command line, on the data root under `dir`; retries after a
/// failed renewal come after half a second (the flags' default is 30 s).
async fn start_driver(dir: &Path, argv: &[String]) -> (RunningDriver, CsiClient) {
    let args = Flags::try_parse_from(argv).expect("flags parse").spiffe;
    let (mut config, requests) = args
        .to_config(Some(dir.join("state")))
        .expect("flags make a configuration");
    if !common::is_root() {
        config.mount_mode = MountMode::PlainDirectories;
    }
    config.renewal_backoff = cert_manager_csi_driver::renewal::Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(1),
    };
    let requests = requests.with_ca_poll_interval(Duration::from_millis(100));
    let driver = driver::start_spiffe(config.clone(), Arc::new(requests))
        .await
        .expect("driver starts");
    let client = client::connect(&config.socket_path)
        .await
        .expect("client connects");
    (driver, client)
}

impl Node {
    /// Stops the node plugin (its volumes stay mounted, as on a driver restart) and starts it
    /// again on the same data root.
    async fn restart(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.stop().await.expect("driver stops");
        }
        let (driver, client) = start_driver(self.dir.path(), &self.argv).await;
        self.driver = Some(driver);
        self.client = client;
    }

    fn driver(&self) -> &RunningDriver {
        self.driver.as_ref().expect("running")
    }

    fn target(&self, pod: &str) -> PathBuf {
        let parent = self.dir.path().join(format!(
            "kubelet/pods/{pod}/volumes/kubernetes.io~csi/spiffe"
        ));
        std::fs::create_dir_all(&parent).unwrap();
        parent.join("mount")
    }

    async fn publish(
        &self,
        volume_id: &str,
        target: &Path,
        context: HashMap<String, String>,
    ) -> Result<(), tonic::Status> {
        self.client
            .node
            .clone()
            .node_publish_volume(publish_request(volume_id, target, context))
            .await
            .map(|_| ())
    }

    fn requests(&self) -> Vec<Value> {
        self.api.list_objects(CR_API, CRS)
    }

    fn approver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("approver.log")).unwrap_or_default()
    }
}

/// What kubelet sends for a pod of `sandbox/sleep` (with `token` as its empty-audience token).
fn context(pod: &str, token: Option<&str>, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut context: HashMap<String, String> = [
        (key::EPHEMERAL, "true"),
        (key::POD_NAME, pod),
        (key::POD_NAMESPACE, NAMESPACE),
        (key::POD_UID, &format!("uid-of-{pod}")),
        (key::SERVICE_ACCOUNT_NAME, SA),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(token) = token {
        context.insert(
            key::SERVICE_ACCOUNT_TOKENS.into(),
            json!({"": {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}})
                .to_string(),
        );
    }
    for (k, v) in extra {
        context.insert(k.to_string(), v.to_string());
    }
    context
}

/// A pod token for `sandbox/sleep`, known to the API server as that service account.
fn pod_token(api: &TestApiServer, salt: &str) -> String {
    // The claims are the same; the signature part differs, so each token is its own.
    let token = format!("{}{salt}", unsigned_token(NAMESPACE, SA));
    api.add_token(&token, SA_USER);
    token
}

fn read(target: &Path, name: &str) -> String {
    std::fs::read_to_string(target.join(name)).unwrap()
}

fn leaf_of(target: &Path) -> Vec<u8> {
    let pem = read(target, "tls.crt");
    pem::parse_many(pem.as_bytes()).unwrap()[0]
        .contents()
        .to_vec()
}

fn serial(target: &Path) -> Vec<u8> {
    let der = leaf_of(target);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.raw_serial().to_vec()
}

#[tokio::test]
async fn a_pod_gets_its_spiffe_svid_requested_as_itself_and_the_ca_bundle_follows_its_file() {
    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir.path().join("trust.pem");
    std::fs::write(
        &bundle,
        "-----BEGIN CERTIFICATE-----\nb25l\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let node = node(
        "1h",
        &[
            &format!("--source-ca-bundle={}", bundle.display()),
            "--extra-certificate-request-annotations=team=payments,spiffe.csi.cert-manager.io/identity=forged",
        ],
    )
    .await;
    let token = pod_token(&node.api, "1");
    let target = node.target("sleep-1");
    let published = node
        .publish(
            "csi-spiffe-1",
            &target,
            context("sleep-1", Some(&token), &[]),
        )
        .await;
    assert!(
        published.is_ok(),
        "{published:?}\napprover: {}",
        node.approver_log()
    );

    // The certificate: the SPIFFE URI is its only name; a P-256 key.
    let der = leaf_of(&target);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|name| format!("{name:?}"))
        .collect();
    assert_eq!(names, [format!("URI({ID:?})")]);
    assert_eq!(cert.subject().iter_attributes().count(), 0, "empty subject");
    let spki = cert.public_key();
    assert_eq!(
        spki.algorithm.algorithm.to_id_string(),
        "1.2.840.10045.2.1",
        "EC key"
    );
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .unwrap()
        .as_oid()
        .unwrap();
    assert_eq!(curve.to_id_string(), "1.2.840.10045.3.1.7", "P-256");
    assert!(read(&target, "tls.key").starts_with("-----BEGIN PRIVATE KEY-----"));
    // The CA file holds the bundle, not the issuer's CA.
    assert_eq!(
        read(&target, "ca.crt"),
        std::fs::read_to_string(&bundle).unwrap()
    );

    // The request.
    let requests = node.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let name = request["metadata"]["name"].as_str().unwrap();
    let annotations = &request["metadata"]["annotations"];
    assert_eq!(annotations["spiffe.csi.cert-manager.io/identity"], ID);
    assert_eq!(annotations["team"], "payments");
    let spec = &request["spec"];
    assert_eq!(
        spec["usages"],
        json!([
            "digital signature",
            "key encipherment",
            "server auth",
            "client auth"
        ])
    );
    assert_eq!(spec["isCA"], json!(false));
    assert_eq!(spec["duration"], "1h0m0s");
    assert_eq!(
        spec["issuerRef"],
        json!({"name": "spiffe-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
    assert_eq!(
        spec["username"], SA_USER,
        "created with the pod's own token"
    );
    assert_eq!(
        node.api.created_by(CR_API, CRS, NAMESPACE, name),
        Some(SA_USER.to_string())
    );
    let approved = request["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Approved" && c["status"] == "True");
    assert!(approved, "{request:#}");

    // The bundle changes: the volume's CA file follows, the certificate and key stay.
    let (cert_before, key_before) = (read(&target, "tls.crt"), read(&target, "tls.key"));
    let new_bundle = "-----BEGIN CERTIFICATE-----\ndHdv\n-----END CERTIFICATE-----\n";
    std::fs::write(&bundle, new_bundle).unwrap();
    common::wait_for(
        "the CA file to follow the bundle",
        Duration::from_secs(10),
        || std::fs::read_to_string(target.join("ca.crt")).is_ok_and(|ca| ca == new_bundle),
    )
    .await;
    assert_eq!(read(&target, "tls.crt"), cert_before);
    assert_eq!(read(&target, "tls.key"), key_before);
    assert_eq!(node.requests().len(), 1, "no new request for a CA change");
}

#[tokio::test]
async fn a_short_lived_svid_is_renewed_with_the_pods_token() {
    let node = node("3s", &[]).await;
    let token = pod_token(&node.api, "2");
    let target = node.target("sleep-2");
    node.publish(
        "csi-spiffe-2",
        &target,
        context(
            "sleep-2",
            Some(&token),
            &[("spiffe.csi.cert-manager.io/fs-group", "456")],
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}\napprover: {}", node.approver_log()));
    let first = serial(&target);
    // Without --source-ca-bundle: the issuer's CA.
    assert!(read(&target, "ca.crt").contains("BEGIN CERTIFICATE"));
    if common::is_root() {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(target.join("tls.key")).unwrap().gid(),
            456
        );
    }
    common::wait_for("a renewal", Duration::from_secs(12), || {
        std::fs::read_to_string(target.join("tls.crt")).is_ok() && serial(&target) != first
    })
    .await;
    let requests = node.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request["spec"]["username"], SA_USER);
        assert_eq!(request["spec"]["duration"], "3s");
    }
    assert!(node.driver().manager().volume_count() == 1);
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let node = node("1h", &[]).await;
    let token = pod_token(&node.api, "3");
    let target = node.target("sleep-3");
    let refused = async |context: HashMap<String, String>| {
        let error = node
            .publish("csi-spiffe-3", &target, context)
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
        error.message().to_string()
    };

    let message = refused(context(
        "sleep-3",
        Some(&token),
        &[("csi.cert-manager.io/dns-names", "evil.example")],
    ))
    .await;
    assert!(
        message.contains("csi.cert-manager.io/dns-names"),
        "{message}"
    );

    for bad in ["0", "4294967296", "wheel"] {
        let message = refused(context(
            "sleep-3",
            Some(&token),
            &[("spiffe.csi.cert-manager.io/fs-group", bad)],
        ))
        .await;
        assert!(
            message.contains(&format!("spiffe.csi.cert-manager.io/fs-group=\"{bad}\"")),
            "{message}"
        );
    }

    // A token of another service account than the pod info says.
    let admin = unsigned_token(NAMESPACE, "admin");
    node.api
        .add_token(&admin, "system:serviceaccount:sandbox:admin");
    let message = refused(context("sleep-3", Some(&admin), &[])).await;
    assert!(
        message.contains("sandbox/admin") && message.contains("sandbox/sleep"),
        "{message}"
    );
    assert!(!message.contains(&admin), "the token is never shown");

    // A token without the claims.
    let message = refused(context("sleep-3", Some("not-a-jwt"), &[])).await;
    assert!(message.contains(key::SERVICE_ACCOUNT_TOKENS), "{message}");

    assert!(node.requests().is_empty(), "nothing was requested");
}

#[tokio::test]
async fn without_an_issuer_publishes_fail_until_the_runtime_config_map_names_one() {
    let node = node(
        "1h",
        &[
            "--issuer-name=",
            "--issuer-kind=",
            "--issuer-group=",
            "--runtime-issuance-config-map-name=spiffe-issuer",
            "--runtime-issuance-config-map-namespace=cert-manager",
        ],
    )
    .await;
    let token = pod_token(&node.api, "4");
    let target = node.target("sleep-4");
    let error = node
        .publish(
            "csi-spiffe-4",
            &target,
            context("sleep-4", Some(&token), &[]),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert!(
        error.message().contains("no issuerRef is currently active")
            && error.message().contains("cert-manager/spiffe-issuer"),
        "{error:?}"
    );
    assert!(node.requests().is_empty());

    // An invalid ConfigMap changes nothing.
    node.api.create_object(
        "v1",
        "configmaps",
        "cert-manager",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "spiffe-issuer"},
               "data": {"issuer-name": "spiffe-ca"}}),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let error = node
        .publish(
            "csi-spiffe-4",
            &target,
            context("sleep-4", Some(&token), &[]),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");

    // A valid one: issuance goes to its issuer.
    node.api.update_object(
        "v1",
        "configmaps",
        "cert-manager",
        "spiffe-issuer",
        |object| {
            object["data"] = json!({"issuer-name": "spiffe-ca", "issuer-kind": "ClusterIssuer",
                                "issuer-group": "cert-manager.io"});
        },
    );
    let mut published = Err(tonic::Status::unknown("not tried"));
    for _ in 0..40 {
        published = node
            .publish(
                "csi-spiffe-4",
                &target,
                context("sleep-4", Some(&token), &[]),
            )
            .await;
        if published.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(published.is_ok(), "{published:?}");
    let requests = node.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["spec"]["issuerRef"]["name"], "spiffe-ca");

    // Deleted: back to the flags' issuer, of which there is none.
    node.api
        .delete_object("v1", "configmaps", "cert-manager", "spiffe-issuer");
    let other = node.target("sleep-5");
    let mut refused = None;
    for _ in 0..40 {
        match node
            .publish(
                "csi-spiffe-5",
                &other,
                context("sleep-5", Some(&token), &[]),
            )
            .await
        {
            Err(error) => {
                refused = Some(error);
                break;
            }
            Ok(()) => {
                common::unpublish(&node.client, "csi-spiffe-5", &other)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let error = refused.expect("refused once the ConfigMap is gone");
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
}

/// After a restart the volume is reloaded from its record, which holds no token: its renewal
/// fails (retried) until kubelet's next republish brings the pod's token, and is then made with
/// it: every request, before and after, is the pod's own, for the same identity.
#[tokio::test]
async fn a_reloaded_volume_is_renewed_once_a_republish_brings_the_token() {
    let mut node = node("4s", &[]).await;
    let token = pod_token(&node.api, "restart");
    let target = node.target("sleep-r");
    let volume_context = context("sleep-r", Some(&token), &[]);
    node.publish("csi-spiffe-r", &target, volume_context.clone())
        .await
        .unwrap_or_else(|e| panic!("{e:?}\napprover: {}", node.approver_log()));
    let first = serial(&target);
    node.restart().await;
    assert_eq!(node.driver().resumed().resumed, 1, "the volume is reloaded");
    let names = |requests: Vec<Value>| -> Vec<String> {
        requests
            .iter()
            .map(|request| request["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let before = names(node.requests());

    // Due ~2.7 s after issuance; without a token nothing can be requested as the pod.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        serial(&target),
        first,
        "not renewed without the pod's token"
    );
    assert_eq!(
        names(node.requests()),
        before,
        "nothing requested as anyone else"
    );

    // kubelet republishes (requiresRepublish) with a fresh token: the next retry renews.
    node.publish("csi-spiffe-r", &target, volume_context)
        .await
        .expect("the republish of a mounted volume succeeds");
    common::wait_for(
        "a renewal after the republish",
        Duration::from_secs(12),
        || std::fs::read_to_string(target.join("tls.crt")).is_ok() && serial(&target) != first,
    )
    .await;
    let requests = node.requests();
    assert!(
        names(requests.clone())
            .iter()
            .any(|name| !before.contains(name)),
        "the renewal made a request"
    );
    for request in &requests {
        assert_eq!(request["spec"]["username"], SA_USER, "{request}");
        assert_eq!(
            request["metadata"]["annotations"]["spiffe.csi.cert-manager.io/identity"],
            ID
        );
    }
}
