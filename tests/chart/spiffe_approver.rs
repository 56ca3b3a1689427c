//! `deploy/charts/cert-manager-csi-driver-spiffe`: the approver's Deployment, ServiceAccount, RBAC
//! (approve scoped to the one issuer's signer name) and metrics Service, with upstream's value names.

use super::*;

const SPIFFE_CHART: &str = "deploy/charts/cert-manager-csi-driver-spiffe";

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
    let role = rendered.one("ClusterRole");
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
    let rules = &rendered.one("ClusterRole")["rules"];
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
    let role = rendered.one("Role");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(role["rules"][0]["resources"], json!(["leases"]));
    assert_eq!(
        role["rules"][0]["verbs"],
        json!(["get", "create", "update"])
    );
    let account = name(rendered.one("ServiceAccount")).to_string();
    for binding in [
        rendered.one("ClusterRoleBinding"),
        rendered.one("RoleBinding"),
    ] {
        assert_eq!(binding["subjects"][0]["name"], account.as_str());
        assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    }
    // Only the approver: the node plugin's objects are not part of this chart yet.
    assert!(rendered.all("DaemonSet").is_empty() && rendered.all("CSIDriver").is_empty());
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
    assert_eq!(
        pod["serviceAccountName"],
        name(rendered.one("ServiceAccount"))
    );
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
