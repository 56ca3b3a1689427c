//! Every rendered object is what the Kubernetes API accepts.

use super::*;

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
            "ConfigMap" => round_trips_as::<core::v1::ConfigMap>(object),
            "PodMonitor" | "PrometheusRule" => {
                assert_eq!(object["apiVersion"], "monitoring.coreos.com/v1")
            }
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
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.dashboard.enabled=true",
    ]));
    assert_api_objects(&render(&[
        "--set",
        "metrics.enabled=false",
        "--set",
        "app.driver.continueOnNotReady=true",
        "--set",
        "app.driver.adoptUpstreamVolumes=false",
    ]));
}
