//! The runtime issuance ConfigMap (`--runtime-issuance-config-map-name/-namespace`): while it
//! exists with a valid `issuer-name`, `issuer-kind` and `issuer-group`, requests go to that
//! issuer instead of the flags'; deleted, they go to the flags' again (or nowhere, said at each
//! issuance); changed to something invalid, the previous issuer stays and the problem is logged.
//! A watch (list, then changes; re-listed after errors), never polled.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::ActiveIssuer;
use crate::attributes::IssuerRef;

pub const ISSUER_NAME: &str = "issuer-name";
pub const ISSUER_KIND: &str = "issuer-kind";
pub const ISSUER_GROUP: &str = "issuer-group";

/// The issuer a ConfigMap's data names, or what is missing.
pub fn issuer_of(data: Option<&BTreeMap<String, String>>) -> Result<IssuerRef, String> {
    let get = |key: &str| {
        data.and_then(|data| data.get(key))
            .filter(|value| !value.is_empty())
            .cloned()
    };
    let (name, kind, group) = (get(ISSUER_NAME), get(ISSUER_KIND), get(ISSUER_GROUP));
    match (name, kind, group) {
        (Some(name), Some(kind), Some(group)) => Ok(IssuerRef { name, kind, group }),
        (name, kind, group) => {
            let missing: Vec<&str> = [
                (name.is_none(), ISSUER_NAME),
                (kind.is_none(), ISSUER_KIND),
                (group.is_none(), ISSUER_GROUP),
            ]
            .into_iter()
            .filter_map(|(missing, key)| missing.then_some(key))
            .collect();
            Err(format!(
                "missing key/value in ConfigMap data: {}",
                missing.join(", ")
            ))
        }
    }
}

/// Applies what the watch says about the ConfigMap (`None`: it does not exist).
pub fn apply(issuers: &ActiveIssuer, config_map: Option<&ConfigMap>) {
    match config_map {
        Some(config_map) => match issuer_of(config_map.data.as_ref()) {
            Ok(issuer) => {
                if issuers.runtime().as_ref() != Some(&issuer) {
                    tracing::info!(
                        issuer_name = %issuer.name,
                        issuer_kind = %issuer.kind,
                        issuer_group = %issuer.group,
                        "Changed active issuerRef in response to runtime configuration ConfigMap"
                    );
                    issuers.set_runtime(Some(issuer));
                }
            }
            Err(error) => tracing::error!(
                %error,
                "Failed to handle runtime configuration issuerRef change; keeping the active issuerRef"
            ),
        },
        None => {
            if issuers.runtime().is_none() {
                return;
            }
            issuers.set_runtime(None);
            match issuers.static_issuer() {
                Some(_) => tracing::info!(
                    "Runtime issuance configuration was deleted; issuance will revert to original \
                     issuerRef configured at install time"
                ),
                None => tracing::error!(
                    "Runtime issuance configuration was deleted and no issuerRef was configured at \
                     install time; issuance will fail until runtime configuration is reinstated"
                ),
            }
        }
    }
}

/// Watches the ConfigMap until the process ends.
pub async fn run_watch(
    issuers: Arc<ActiveIssuer>,
    client: kube::Client,
    namespace: String,
    name: String,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).default_backoff().boxed();
    // Whether the list in progress has seen the ConfigMap.
    let mut listed = false;
    tracing::info!(config_map_namespace = %namespace, config_map_name = %name, "Starting watcher for runtime configuration");
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listed = false,
            Ok(watcher::Event::InitApply(config_map)) => {
                listed = true;
                apply(&issuers, Some(&config_map));
            }
            Ok(watcher::Event::InitDone) => {
                if !listed {
                    apply(&issuers, None);
                }
            }
            Ok(watcher::Event::Apply(config_map)) => apply(&issuers, Some(&config_map)),
            Ok(watcher::Event::Delete(_)) => apply(&issuers, None),
            Err(error) => {
                tracing::warn!(%error, "runtime configuration watch failed; retrying")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_all_three_keys() {
        let data = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let full = data(&[
            (ISSUER_NAME, "ca"),
            (ISSUER_KIND, "Issuer"),
            (ISSUER_GROUP, "cert-manager.io"),
        ]);
        assert_eq!(issuer_of(Some(&full)).unwrap().kind, "Issuer");
        let error = issuer_of(Some(&data(&[(ISSUER_NAME, "ca"), (ISSUER_KIND, "")]))).unwrap_err();
        assert!(error.contains("issuer-kind, issuer-group"), "{error}");
        assert!(issuer_of(None).is_err());
    }
}
