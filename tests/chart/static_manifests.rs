//! The static manifests in `deploy/manifests/`, kept in step with the chart.

use super::*;

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

#[test]
fn static_prometheus_rule_is_the_charts_alerts() {
    let file = "cert-manager-csi-driver-prometheusrule.yaml";
    let yaml = std::fs::read_to_string(repo().join(MANIFESTS).join(file)).unwrap();
    let rendered = Rendered::parse(&yaml);
    assert_eq!(
        rendered.kinds(),
        ["PrometheusRule/cert-manager-csi-driver"],
        "{file}"
    );
    assert_eq!(
        rendered.one("PrometheusRule")["metadata"]["namespace"],
        NAMESPACE,
        "{file}"
    );
}
