//! The example manifests in docs/examples are what users copy: every CSI volume in them must be
//! one this driver accepts, read as kubelet would hand it over (with the pod's info).

use std::collections::HashMap;
use std::path::Path;

use cert_manager_csi_driver::attributes::{
    ParseOptions, PodIpWait, key, parse_volume_context_with,
};
use serde_json::Value;

/// Every `volumes[].csi.volumeAttributes` of our driver in a YAML stream, wherever the pod spec
/// sits (Pod, Deployment, …).
fn csi_volumes(document: &Value, found: &mut Vec<HashMap<String, String>>) {
    match document {
        Value::Object(map) => {
            if map.get("driver").and_then(Value::as_str) == Some("csi.cert-manager.io")
                && let Some(Value::Object(attributes)) = map.get("volumeAttributes")
            {
                found.push(
                    attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect(),
                );
            }
            map.values().for_each(|value| csi_volumes(value, found));
        }
        Value::Array(items) => items.iter().for_each(|item| csi_volumes(item, found)),
        _ => {}
    }
}

#[test]
fn every_example_volume_is_accepted_by_the_attribute_parser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        let mut volumes = Vec::new();
        documents
            .iter()
            .for_each(|document| csi_volumes(document, &mut volumes));
        for mut context in volumes {
            for (k, v) in [
                (key::EPHEMERAL, "true"),
                (key::POD_NAME, "example-0"),
                (key::POD_NAMESPACE, "default"),
                (key::POD_UID, "7d3c1f9e-0000-4000-8000-000000000000"),
                (key::SERVICE_ACCOUNT_NAME, "default"),
            ] {
                context.insert(k.to_string(), v.to_string());
            }
            // The driver the examples ask for (pod-ip.yaml says to run it with both flags).
            let options = ParseOptions {
                strict: true,
                pod_ip_wait: PodIpWait::AVAILABLE,
                ..ParseOptions::default()
            };
            let parsed = parse_volume_context_with(&context, options);
            assert!(
                parsed.is_ok(),
                "{}: {}",
                path.display(),
                parsed.unwrap_err()
            );
            checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for example in [
        "pod.yaml",
        "pkcs12.yaml",
        "jks.yaml",
        "pod-ip.yaml",
        "deployment.yaml",
    ] {
        assert!(
            checked.iter().any(|c| c == example),
            "{example} was not checked: {checked:?}"
        );
    }
}
