//! Security contexts, the DaemonSet's selector and nodes, RBAC, the PodMonitor, images, the chart
//! version and the kubelet root dir.

use super::*;

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
        "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.17.0"
    );
    assert_eq!(
        defaults.container("liveness-probe")["image"],
        "registry.k8s.io/sig-storage/livenessprobe:v2.19.0"
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

/// The sidecar tags of upstream's release (jetstack csi-driver 4b98b47,
/// `deploy/charts/csi-driver/values.yaml`). The chart's defaults may be newer, never older: an
/// upgrade from upstream's release must not downgrade a sidecar.
const UPSTREAM_SIDECAR_TAGS: [(&str, &str); 2] = [
    ("node-driver-registrar", "v2.17.0"),
    ("liveness-probe", "v2.19.0"),
];

/// `vMAJOR.MINOR.PATCH` as numbers; anything else (a pre-release, a digest) is not a release
/// tag, and says so.
fn release_version(tag: &str) -> Result<[u64; 3], String> {
    let numbers: Vec<u64> = tag
        .strip_prefix('v')
        .unwrap_or(tag)
        .split('.')
        .map(|part| part.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{tag:?} is not a release tag vMAJOR.MINOR.PATCH"))?;
    numbers
        .try_into()
        .map_err(|_| format!("{tag:?} is not a release tag vMAJOR.MINOR.PATCH"))
}

#[test]
fn release_versions_compare_by_number_not_by_text() {
    assert!(release_version("v2.10.0").unwrap() > release_version("v2.9.9").unwrap());
    assert!(release_version("v3.0.0").unwrap() > release_version("v2.19.0").unwrap());
    assert_eq!(release_version("2.17.0"), Ok([2, 17, 0]));
    for not_a_release in ["v2.17", "v2.17.0-rc.1", "latest", "v2.17.0.1"] {
        assert!(release_version(not_a_release).is_err(), "{not_a_release}");
    }
}

#[test]
fn sidecar_defaults_are_not_older_than_upstreams() {
    let rendered = render(&[]);
    for (container, upstream_tag) in UPSTREAM_SIDECAR_TAGS {
        let image = rendered.container(container)["image"].as_str().unwrap();
        let (_, tag) = image
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{container}'s default image {image} has no tag"));
        let ours = release_version(tag).unwrap_or_else(|e| panic!("{container}: {e}"));
        assert!(
            ours >= release_version(upstream_tag).unwrap(),
            "{container}'s default tag {tag} is older than upstream's {upstream_tag}: \
             an upgrade from upstream's chart would downgrade it"
        );
    }
}
