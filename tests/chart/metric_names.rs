//! The alerts and the dashboard read only series the driver serves: every `certmanager_csi_*`
//! selector in them names a family the driver's own exposition has, and matches only on labels
//! that family carries (or the scrape adds). A renamed metric or label fails here instead of
//! silently never firing or drawing nothing.

use super::*;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use cert_manager_csi_driver::keys::pool::{KeyKind, PoolLevel, PoolStats};
use cert_manager_csi_driver::metrics::{Gauges, Metrics, RequestState};

/// Labels Prometheus adds to every series scraped through the chart's PodMonitor, and the one
/// it renames a clashing `namespace` to.
const SCRAPE_LABELS: [&str; 7] = [
    "job",
    "namespace",
    "pod",
    "container",
    "endpoint",
    "instance",
    "exported_namespace",
];

/// The driver's exposition with every family holding at least one series: name → label names.
fn served_series() -> BTreeMap<String, BTreeSet<String>> {
    let metrics = Metrics::new("node-1");
    metrics.issue_attempted("csi-a");
    metrics.issue_failed("csi-a");
    metrics.renewal_finished(false);
    metrics.set_request(
        "csi-a",
        RequestState {
            name: "web-0-abcde".into(),
            namespace: "apps".into(),
            issuer_name: "ca".into(),
            issuer_kind: "ClusterIssuer".into(),
            issuer_group: "cert-manager.io".into(),
            ready: "True",
            not_after: Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000)),
            renewal_at: Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
        },
    );
    metrics.grpc_call(
        "NodePublishVolume",
        tonic::Code::Ok,
        Duration::from_millis(5),
    );
    let text = metrics.render(Gauges {
        key_pool: PoolStats {
            hits: 1,
            misses: 1,
            levels: vec![PoolLevel {
                kind: KeyKind::DEFAULT,
                keys: 1,
            }],
        },
        ..Gauges::default()
    });
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let name_end = line.find(['{', ' ']).expect("a sample line");
        let labels = series.entry(line[..name_end].to_owned()).or_default();
        if let Some(inner) = line[name_end..]
            .strip_prefix('{')
            .and_then(|rest| rest.split_once('}'))
            .map(|(inner, _)| inner)
        {
            labels.extend(
                inner
                    .split(',')
                    .map(|pair| pair.split_once('=').expect("label=value").0.to_owned()),
            );
        }
    }
    series
}

/// Each `certmanager_csi_*` selector in `text`: the series name and the labels it matches on.
fn selectors(text: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("certmanager_csi_") {
        let after = &rest[start..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = after[..name_len].to_owned();
        let mut labels = Vec::new();
        if let Some(matchers) = after[name_len..].strip_prefix('{') {
            let (inner, _) = matchers.split_once('}').expect("a closed selector");
            for matcher in inner.split(',').filter(|m| !m.trim().is_empty()) {
                let label_end = matcher.find(['=', '!']).expect("a label matcher");
                labels.push(matcher[..label_end].trim().to_owned());
            }
        }
        found.push((name, labels));
        rest = &after[name_len..];
    }
    found
}

/// Returns how many selectors it checked.
fn assert_served(source: &str, text: &str, served: &BTreeMap<String, BTreeSet<String>>) -> usize {
    let found = selectors(text);
    let count = found.len();
    for (name, labels) in found {
        let Some(family_labels) = served.get(&name) else {
            panic!(
                "{source} reads {name}, which the driver does not serve; it serves {:?}",
                served.keys()
            );
        };
        for label in labels {
            assert!(
                family_labels.contains(&label) || SCRAPE_LABELS.contains(&label.as_str()),
                "{source} matches {name} on `{label}`, a label it does not have \
                 (it has {family_labels:?}, plus the scrape's {SCRAPE_LABELS:?})"
            );
        }
    }
    count
}

#[test]
fn alerts_and_dashboard_read_only_what_the_driver_serves() {
    let served = served_series();
    let rendered = render(&[
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.dashboard.enabled=true",
    ]);
    let mut in_alerts = 0;
    for group in rendered.one("PrometheusRule")["spec"]["groups"]
        .as_array()
        .unwrap()
    {
        for rule in group["rules"].as_array().unwrap() {
            in_alerts += assert_served(
                rule["alert"].as_str().unwrap(),
                rule["expr"].as_str().unwrap(),
                &served,
            );
        }
    }
    let dashboard = rendered.one("ConfigMap")["data"]["cert-manager-csi-driver.json"]
        .as_str()
        .unwrap();
    // The `up` and kube-state-metrics alerts read no driver series; the others do.
    assert!(
        in_alerts >= 5,
        "{in_alerts} driver series read by the alerts"
    );
    assert!(assert_served("the dashboard", dashboard, &served) >= 15);
}

#[test]
fn selectors_are_read_with_their_labels() {
    assert_eq!(
        selectors(r#"rate(certmanager_csi_a_total{job="x", code!="Ok"}[5m]) / certmanager_csi_b"#),
        [
            (
                "certmanager_csi_a_total".to_owned(),
                vec!["job".to_owned(), "code".to_owned()]
            ),
            ("certmanager_csi_b".to_owned(), vec![]),
        ]
    );
}
