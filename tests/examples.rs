//! The example manifests in `docs/examples/` ask for volumes this driver accepts: every
//! `csi.cert-manager.io` volume's attributes parse strictly (no unknown keys), with the pod
//! information kubelet adds.

use std::collections::HashMap;
use std::path::Path;

use cert_manager_csi_driver::attributes::{ParseOptions, key, parse_volume_context_with};
use serde_json::Value;

/// Every `csi:` volume source of this driver in a manifest object, however deep.
fn driver_volumes<'a>(value: &'a Value, found: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if let Some(csi) = map.get("csi")
                && csi["driver"] == "csi.cert-manager.io"
            {
                found.push(&csi["volumeAttributes"]);
            }
            map.values().for_each(|v| driver_volumes(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| driver_volumes(v, found)),
        _ => {}
    }
}

#[test]
fn every_example_volume_is_accepted_strictly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let objects: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        let mut volumes = Vec::new();
        objects.iter().for_each(|o| driver_volumes(o, &mut volumes));
        for attributes in volumes {
            let mut context: HashMap<String, String> = [
                (key::POD_NAME, "example-0"),
                (key::POD_NAMESPACE, "default"),
                (key::POD_UID, "uid-0"),
                (key::SERVICE_ACCOUNT_NAME, "default"),
                (key::EPHEMERAL, "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            for (k, v) in attributes.as_object().expect("volumeAttributes is a map") {
                let v = v
                    .as_str()
                    .unwrap_or_else(|| panic!("{k}: values are strings"));
                context.insert(k.clone(), v.to_string());
            }
            let options = ParseOptions {
                strict: true,
                ..ParseOptions::default()
            };
            if let Err(error) = parse_volume_context_with(&context, options) {
                panic!("{}: {error}", path.display());
            }
            checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for example in ["pod.yaml", "pkcs12.yaml", "jks.yaml"] {
        assert!(
            checked.iter().any(|c| c == example),
            "{example}: {checked:?}"
        );
    }
}
