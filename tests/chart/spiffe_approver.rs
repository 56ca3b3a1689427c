//! `deploy/charts/cert-manager-csi-driver-spiffe`: the approver's Deployment, ServiceAccount, RBAC
//! (approve scoped to the one issuer's signer name) and metrics Service, with upstream's value names.

use super::*;

const SPIFFE_CHART: &str = "deploy/charts/cert-manager-csi-driver-spiffe";
const APPROVER: &str = "cert-manager-csi-driver-spiffe-approver";

fn render_spiffe(flags: &[&str]) -> Rendered {
    let mut args = vec![
        "template",
        "csi-driver-spiffe",
        SPIFFE_CHART,
        "--namespace",
        NAMESPACE,
    ];
    args.extend_from_slice(flags);
    let output = run_helm(&args);
    assert!(
        output.status.success(),
        "helm {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Rendered::parse(&String::from_utf8_lossy(&output.stdout))
}

fn approve_rule(rendered: &Rendered) -> Value {
    let role = named(rendered, "ClusterRole", APPROVER);
    role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["resources"] == json!(["signers"]))
        .expect("a rule on signers")
        .clone()
}

#[test]
fn spiffe_chart_lints() {
    let output = run_helm(&["lint", "--strict", SPIFFE_CHART]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn spiffe_approver_may_approve_only_for_its_issuer() {
    let rule = approve_rule(&render_spiffe(&[]));
    assert_eq!(rule["apiGroups"], json!(["cert-manager.io"]));
    assert_eq!(rule["verbs"], json!(["approve"]));
    assert_eq!(
        rule["resourceNames"],
        json!(["clusterissuers.cert-manager.io/spiffe-ca"])
    );

    let rule = approve_rule(&render_spiffe(&[
        "--set",
        "app.issuer.name=my-ca",
        "--set",
        "app.issuer.kind=Issuer",
    ]));
    assert_eq!(rule["resourceNames"], json!(["issuers.cert-manager.io/*"]));

    let rule = approve_rule(&render_spiffe(&[
        "--set",
        "app.issuer.name=vault",
        "--set",
        "app.issuer.kind=VaultClusterIssuer",
        "--set",
        "app.issuer.group=example.com",
    ]));
    assert_eq!(
        rule["resourceNames"],
        json!(["vaultclusterissuers.example.com/vault"])
    );

    let rule = approve_rule(&render_spiffe(&["--set", "app.approver.signerName=a.b/c"]));
    assert_eq!(rule["resourceNames"], json!(["a.b/c"]));
}

#[test]
fn spiffe_approver_reads_requests_writes_status_and_leases_in_its_namespace() {
    let rendered = render_spiffe(&[]);
    let rules = &named(&rendered, "ClusterRole", APPROVER)["rules"];
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == json!(["certificaterequests"])
                && r["verbs"] == json!(["get", "list", "watch"]))
    );
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == json!(["certificaterequests/status"])
                && r["verbs"] == json!(["update"]))
    );
    let role = named(&rendered, "Role", APPROVER);
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(role["rules"][0]["resources"], json!(["leases"]));
    assert_eq!(
        role["rules"][0]["verbs"],
        json!(["get", "create", "update"])
    );
    let account = name(named(&rendered, "ServiceAccount", APPROVER)).to_string();
    for binding in [
        named(&rendered, "ClusterRoleBinding", APPROVER),
        named(&rendered, "RoleBinding", APPROVER),
    ] {
        assert_eq!(binding["subjects"][0]["name"], account.as_str());
        assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    }
}

#[test]
fn spiffe_approver_deployment_runs_the_subcommand_with_upstreams_flags() {
    let rendered = render_spiffe(&[
        "--set",
        "app.trustDomain=example.org",
        "--set",
        "app.certificateRequestDuration=2h",
        "--set",
        "app.approver.replicaCount=2",
    ]);
    let deployment = rendered.one("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], APPROVER);
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        format!("cert-manager-csi-driver:{}", app_version())
    );
    let args = strings(&container["args"]);
    assert_eq!(args[0], "spiffe-approver");
    for (key, value) in [
        ("--trust-domain", "example.org"),
        ("--certificate-request-duration", "2h"),
        ("--issuer-name", "spiffe-ca"),
        ("--issuer-kind", "ClusterIssuer"),
        ("--issuer-group", "cert-manager.io"),
        ("--csi-driver-name", "spiffe.csi.cert-manager.io"),
        ("--leader-election-namespace", "$(POD_NAMESPACE)"),
        ("--metrics-bind-address", ":9402"),
        ("--readiness-probe-bind-address", ":6060"),
    ] {
        assert_eq!(flag(&args, key), Some(value), "{key} in {args:?}");
    }
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], 6060);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let service = rendered.one("Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 9402);
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    let own = render_spiffe(&[
        "--set",
        "app.approver.useOwnServiceAccount=true",
        "--set",
        "app.approver.driverServiceAccount=system:serviceaccount:cert-manager:driver",
    ]);
    let args = strings(&own.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert_eq!(flag(&args, "--use-own-service-account"), Some("true"));
    assert_eq!(
        flag(&args, "--driver-service-account"),
        Some("system:serviceaccount:cert-manager:driver")
    );
}

fn named<'a>(rendered: &'a Rendered, kind: &str, wanted: &str) -> &'a Value {
    rendered
        .all(kind)
        .into_iter()
        .find(|object| name(object) == wanted)
        .unwrap_or_else(|| panic!("no {kind}/{wanted} in {:?}", rendered.kinds()))
}

#[test]
fn spiffe_csidriver_is_upstreams() {
    let rendered = render_spiffe(&[]);
    let driver = rendered.one("CSIDriver");
    assert_eq!(name(driver), "spiffe.csi.cert-manager.io");
    assert_eq!(
        driver["spec"],
        json!({
            "podInfoOnMount": true,
            "volumeLifecycleModes": ["Ephemeral"],
            "tokenRequests": [{"audience": "", "expirationSeconds": 3600}],
            "requiresRepublish": true,
        })
    );
}

#[test]
fn spiffe_driver_daemonset_runs_the_node_plugin_with_upstreams_flags() {
    let rendered = render_spiffe(&[]);
    let daemonset = named(
        &rendered,
        "DaemonSet",
        "cert-manager-csi-driver-spiffe-driver",
    );
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "cert-manager-csi-driver-spiffe");
    let containers = pod["containers"].as_array().unwrap();
    let names: Vec<&str> = containers
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "node-driver-registrar",
            "liveness-probe",
            "cert-manager-csi-driver-spiffe"
        ]
    );
    let registrar = strings(&containers[0]["args"]);
    assert!(registrar.contains(
        &"--kubelet-registration-path=/var/lib/kubelet/plugins/cert-manager-csi-driver-spiffe/csi.sock"
            .to_string()
    ));
    let driver = &containers[2];
    let args = strings(&driver["args"]);
    assert_eq!(args[0], "spiffe");
    for (key, value) in [
        ("--csi-driver-name", "spiffe.csi.cert-manager.io"),
        ("--certificate-request-duration", "1h"),
        ("--issuer-name", "spiffe-ca"),
        ("--issuer-kind", "ClusterIssuer"),
        ("--issuer-group", "cert-manager.io"),
        ("--trust-domain", "cluster.local"),
        ("--file-name-certificate", "tls.crt"),
        ("--file-name-key", "tls.key"),
        ("--file-name-ca", "ca.crt"),
        ("--source-ca-bundle", ""),
        ("--data-root", "/csi-data-dir"),
        ("--runtime-issuance-config-map-name", ""),
        ("--runtime-issuance-config-map-namespace", ""),
    ] {
        assert_eq!(flag(&args, key), Some(value), "{key} in {args:?}");
    }
    assert_eq!(driver["securityContext"]["privileged"], true);
    let mounts = driver["volumeMounts"].as_array().unwrap();
    let pods = mounts
        .iter()
        .find(|m| m["name"] == "pods-mount-dir")
        .unwrap();
    assert_eq!(pods["mountPropagation"], "Bidirectional");
    assert_eq!(pods["mountPath"], "/var/lib/kubelet/pods");
    let data = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "csi-data-dir")
        .unwrap();
    assert_eq!(
        data["hostPath"]["path"], "/var/lib/cert-manager-csi-driver-spiffe",
        "not the main driver's data directory"
    );

    // The driver may watch, create and delete requests; no ConfigMap access without the
    // runtime ConfigMap.
    let role = named(&rendered, "ClusterRole", "cert-manager-csi-driver-spiffe");
    assert_eq!(
        role["rules"][0],
        json!({"apiGroups": ["cert-manager.io"], "resources": ["certificaterequests"],
               "verbs": ["watch", "create", "delete", "list"]})
    );
    assert!(
        rendered
            .all("Role")
            .iter()
            .all(|r| name(r) != "cert-manager-csi-driver-spiffe")
    );
}

#[test]
fn spiffe_driver_values_reach_its_flags() {
    let rendered = render_spiffe(&[
        "--set",
        "app.issuer.name=spiffe-ca",
        "--set",
        "app.runtimeIssuanceConfigMap=spiffe-issuer",
        "--set",
        "app.extraCertificateRequestAnnotations=team=a\\,b=c",
        "--set",
        "app.driver.sourceCABundle=/trust/ca.pem",
        "--set",
        "app.driver.useOwnServiceAccount=true",
    ]);
    let daemonset = named(
        &rendered,
        "DaemonSet",
        "cert-manager-csi-driver-spiffe-driver",
    );
    let args = strings(&daemonset["spec"]["template"]["spec"]["containers"][2]["args"]);
    for (key, value) in [
        ("--issuer-name", "spiffe-ca"),
        ("--issuer-kind", "ClusterIssuer"),
        ("--issuer-group", "cert-manager.io"),
        ("--runtime-issuance-config-map-name", "spiffe-issuer"),
        ("--runtime-issuance-config-map-namespace", NAMESPACE),
        ("--extra-certificate-request-annotations", "team=a,b=c"),
        ("--source-ca-bundle", "/trust/ca.pem"),
        ("--use-own-service-account", "true"),
    ] {
        assert_eq!(flag(&args, key), Some(value), "{key} in {args:?}");
    }
    let role = named(&rendered, "Role", "cert-manager-csi-driver-spiffe");
    assert_eq!(role["rules"][0]["resourceNames"], json!(["spiffe-issuer"]));
    assert_eq!(role["rules"][0]["verbs"], json!(["get", "list", "watch"]));
    // The approver is told to expect the driver's own service account.
    let approver = strings(
        &named(
            &rendered,
            "Deployment",
            "cert-manager-csi-driver-spiffe-approver",
        )["spec"]["template"]["spec"]["containers"][0]["args"],
    );
    assert_eq!(
        flag(&approver, "--driver-service-account"),
        Some(format!("system:serviceaccount:{NAMESPACE}:cert-manager-csi-driver-spiffe").as_str())
    );

    // Neither an issuer nor the runtime ConfigMap: refused at render.
    let output = run_helm(&["template", "x", SPIFFE_CHART, "--set", "app.issuer.name="]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("app.runtimeIssuanceConfigMap"));
}

/// The flags the chart renders are ones the binary accepts.
#[test]
fn spiffe_driver_flags_parse() {
    let rendered = render_spiffe(&["--set", "app.extraCertificateRequestAnnotations=team=a"]);
    let daemonset = named(
        &rendered,
        "DaemonSet",
        "cert-manager-csi-driver-spiffe-driver",
    );
    let mut args = strings(&daemonset["spec"]["template"]["spec"]["containers"][2]["args"]);
    args.push("--help".into());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cert-manager-csi-driver"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// With only the runtime issuance ConfigMap (no issuer name), the approver follows it: its flags
/// name the ConfigMap, it may read that ConfigMap alone, and it may approve for any signer (the
/// issuer can change while it runs; it acts only for the active one).
#[test]
fn spiffe_approver_follows_the_runtime_config_map() {
    let rendered = render_spiffe(&[
        "--set",
        "app.issuer.name=",
        "--set",
        "app.runtimeIssuanceConfigMap=spiffe-issuer",
    ]);
    let approver = strings(
        &named(&rendered, "Deployment", APPROVER)["spec"]["template"]["spec"]["containers"][0]["args"],
    );
    assert_eq!(flag(&approver, "--issuer-name"), Some(""));
    assert_eq!(
        flag(&approver, "--runtime-issuance-config-map-name"),
        Some("spiffe-issuer")
    );
    assert_eq!(
        flag(&approver, "--runtime-issuance-config-map-namespace"),
        Some(NAMESPACE)
    );
    let rule = approve_rule(&rendered);
    assert!(rule.get("resourceNames").is_none(), "{rule}");
    let role = named(&rendered, "Role", APPROVER);
    let config_map_rule = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["resources"] == json!(["configmaps"]))
        .expect("a rule for the ConfigMap");
    assert_eq!(config_map_rule["resourceNames"], json!(["spiffe-issuer"]));
    assert_eq!(config_map_rule["verbs"], json!(["get", "list", "watch"]));
}
