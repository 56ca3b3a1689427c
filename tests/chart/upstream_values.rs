//! A values file written for upstream's chart, and OpenShift's SCC detected from the cluster.

use super::*;

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
        json!([{ "audience": "", "expirationSeconds": 3600 }])
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
