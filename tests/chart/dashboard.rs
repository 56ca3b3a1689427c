//! The Grafana dashboard (`metrics.dashboard`): its ConfigMap, and every PromQL expression in
//! it parsed by promtool.

use super::alerts::{run_promtool, write_rule_file};
use super::*;

const DASHBOARD: &str = "dashboards/cert-manager-csi-driver.json";

fn dashboard_file() -> Value {
    let path = repo().join(CHART).join(DASHBOARD);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Values for the template variables Grafana fills in, one concrete value each: what a query
/// looks like once Grafana has expanded it.
const VARIABLES: [(&str, &str); 4] = [
    ("__rate_interval", "4m"),
    ("__interval", "1m"),
    ("node", "node-1"),
    ("pod", "cert-manager-csi-driver-x7k2p"),
];

/// Replaces `$name` and `${name}` by its value; fails on a variable the table does not know.
fn expand_variables(query: &str) -> String {
    let mut expanded = query.to_owned();
    // Longest names first, so `$__interval` does not eat the start of `$__interval_ms`.
    let mut variables = VARIABLES.to_vec();
    variables.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, value) in variables {
        expanded = expanded
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(
        !expanded.contains('$'),
        "unknown template variable in {query:?}: add it to VARIABLES in tests/chart/dashboard.rs"
    );
    expanded
}

/// Every `expr` of every panel target, with the panel's title, rows' nested panels included.
fn panel_expressions(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, found: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a target of panel {title:?} has no expr"));
                found.push((title.clone(), expr.to_owned()));
            }
            walk(&panel["panels"], found);
        }
    }
    let mut found = Vec::new();
    walk(&dashboard["panels"], &mut found);
    found
}

/// The series selectors of the `label_values(<selector>, <label>)` variable queries.
fn variable_selectors(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|variable| variable["type"] == "query")
        .map(|variable| {
            let name = variable["name"].as_str().unwrap().to_owned();
            let query = variable["query"]["query"].as_str().unwrap();
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable {name}: not label_values(...): {query}"));
            let (selector, _label) = inner
                .rsplit_once(',')
                .unwrap_or_else(|| panic!("variable {name}: label_values without a label"));
            (format!("variable {name}"), selector.trim().to_owned())
        })
        .collect()
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    let dashboard = dashboard_file();
    let mut queries = panel_expressions(&dashboard);
    assert!(queries.len() >= 15, "{} panel queries", queries.len());
    queries.extend(variable_selectors(&dashboard));
    // As recording rules, each expression is parsed by promtool check rules, which names the
    // rule of any that fails.
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| {
            json!({ "record": format!("dashboard:query_{i}"), "expr": expand_variables(expr) })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    write_rule_file(
        &dir.path().join("dashboard.rules.yaml"),
        &json!([{ "name": "dashboard", "rules": rules }]),
    );
    let (ok, printed) = run_promtool(dir.path(), &["check", "rules", "dashboard.rules.yaml"]);
    let index: Vec<String> = queries
        .iter()
        .enumerate()
        .map(|(i, (title, expr))| format!("dashboard:query_{i} = {title}: {expr}"))
        .collect();
    assert!(ok, "{printed}\n{}", index.join("\n"));
}

#[test]
fn dashboard_uses_its_variables_and_the_chosen_datasource() {
    let dashboard = dashboard_file();
    let defined: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variable| variable["name"].as_str().unwrap())
        .collect();
    assert_eq!(defined, ["datasource", "node", "pod"]);
    assert_eq!(dashboard["templating"]["list"][0]["query"], "prometheus");
    for (title, expr) in panel_expressions(&dashboard) {
        // Every panel follows the node and pod choice.
        assert!(expr.contains("pod=~\"$pod\""), "{title}: {expr}");
    }
    // Every panel and query reads the datasource chosen in the variable, none a fixed one.
    let mut datasources = Vec::new();
    fn collect<'a>(value: &'a Value, found: &mut Vec<&'a Value>) {
        match value {
            Value::Object(map) => {
                if let Some(datasource) = map.get("datasource") {
                    found.push(datasource);
                }
                map.values().for_each(|v| collect(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
            _ => {}
        }
    }
    collect(&dashboard, &mut datasources);
    assert!(!datasources.is_empty());
    for datasource in datasources {
        assert_eq!(
            datasource,
            &json!({ "type": "prometheus", "uid": "${datasource}" })
        );
    }
    // Panel ids are unique: Grafana links and edits panels by id.
    let mut ids: Vec<i64> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|panel| panel["id"].as_i64().unwrap())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate panel ids");
}

#[test]
fn dashboard_config_map_holds_the_dashboard_for_the_grafana_sidecar() {
    assert!(render(&[]).all("ConfigMap").is_empty());
    assert!(
        render(&[
            "--set",
            "metrics.dashboard.enabled=true",
            "--set",
            "metrics.enabled=false",
        ])
        .all("ConfigMap")
        .is_empty()
    );

    let rendered = render(&["--set", "metrics.dashboard.enabled=true"]);
    let config_map = rendered.one("ConfigMap");
    assert_eq!(config_map["metadata"]["namespace"], NAMESPACE);
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    let data = config_map["data"].as_object().unwrap();
    assert_eq!(data.len(), 1, "{data:?}");
    let json_text = data["cert-manager-csi-driver.json"].as_str().unwrap();
    let dashboard: Value = serde_json::from_str(json_text)
        .unwrap_or_else(|e| panic!("the ConfigMap's dashboard is not valid JSON: {e}"));
    assert_eq!(dashboard, dashboard_file());

    let rendered = render(&[
        "--set",
        "metrics.dashboard.enabled=true",
        "--set",
        "metrics.dashboard.namespace=monitoring",
        "--set",
        "metrics.dashboard.label=grafana.example.io/dashboard",
        "--set",
        "metrics.dashboard.labelValue=csi",
        "--set",
        "metrics.dashboard.annotations.grafana_folder=cert-manager",
    ]);
    let metadata = &rendered.one("ConfigMap")["metadata"];
    assert_eq!(metadata["namespace"], "monitoring");
    assert_eq!(metadata["labels"]["grafana.example.io/dashboard"], "csi");
    assert!(metadata["labels"].get("grafana_dashboard").is_none());
    assert_eq!(
        metadata["annotations"],
        json!({ "grafana_folder": "cert-manager" })
    );

    let error = render_error(&["--set", "metrics.dashboard.enable=true"]);
    assert!(error.contains("enable"), "{error}");
}
