//! The pods on this node, as one watch sees them (`spec.nodeName=<node>`, the field selector
//! kubelet itself uses): what readiness gates and `${POD_IP}` need. Every change of a pod's facts
//! is announced on [`PodWatch::changes`], so a volume waiting on its pod is woken the moment the
//! watch delivers it; nothing polls the API server.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::pod_gates::PodFacts;

/// `(namespace, name)`.
pub type PodKey = (String, String);

/// The few fields of a Pod the driver uses.
pub fn facts_of(pod: &Pod) -> PodFacts {
    let status = pod.status.as_ref();
    let ips = status
        .and_then(|status| status.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.ip.parse().ok())
        .collect();
    let conditions = status
        .and_then(|status| status.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|condition| (condition.type_.clone(), condition.status.clone()))
        .collect();
    PodFacts {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        ips,
        conditions,
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
        deleting: pod.metadata.deletion_timestamp.is_some(),
    }
}

fn key_of(pod: &Pod) -> PodKey {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

struct View {
    /// The latest facts of every pod the watch delivered.
    pods: HashMap<PodKey, Arc<PodFacts>>,
    /// A re-list in progress: what it has delivered so far.
    relisting: Option<BTreeMap<PodKey, PodFacts>>,
    /// Every pod whose facts changed, for whoever waits on pods (the manager's gate loop).
    changes: broadcast::Sender<PodKey>,
}

/// Changes a slow listener may fall behind by before it is told it lagged (and looks at all).
const CHANGES_BUFFERED: usize = 1024;

impl Default for View {
    fn default() -> View {
        View {
            pods: HashMap::new(),
            relisting: None,
            changes: broadcast::channel(CHANGES_BUFFERED).0,
        }
    }
}

impl View {
    /// Stores a pod's facts; a change is announced only when a fact changed (a pod's status is
    /// rewritten often, mostly in fields no gate reads).
    fn apply(&mut self, key: PodKey, facts: PodFacts) {
        if self.pods.get(&key).is_some_and(|known| **known == facts) {
            return;
        }
        self.pods.insert(key.clone(), Arc::new(facts));
        let _ = self.changes.send(key);
    }

    fn delete(&mut self, key: &PodKey) {
        if self.pods.remove(key).is_some() {
            let _ = self.changes.send(key.clone());
        }
    }
}

/// The watch-fed view of this node's pods. Cheap to share.
#[derive(Default)]
pub struct PodWatch {
    view: Mutex<View>,
    /// True once the first full list arrived.
    synced: AtomicBool,
}

impl PodWatch {
    pub fn new() -> Arc<PodWatch> {
        Arc::new(PodWatch::default())
    }

    /// The latest facts of one pod.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodFacts>> {
        let key = (namespace.to_string(), name.to_string());
        self.view.lock().pods.get(&key).cloned()
    }

    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Every change from now on, by pod.
    pub fn changes(&self) -> broadcast::Receiver<PodKey> {
        self.view.lock().changes.subscribe()
    }

    /// Applies one event from the watch.
    pub fn handle(&self, event: watcher::Event<Pod>) {
        let mut view = self.view.lock();
        match event {
            watcher::Event::Apply(pod) => view.apply(key_of(&pod), facts_of(&pod)),
            watcher::Event::Delete(pod) => view.delete(&key_of(&pod)),
            watcher::Event::Init => view.relisting = Some(BTreeMap::new()),
            watcher::Event::InitApply(pod) => {
                view.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key_of(&pod), facts_of(&pod));
            }
            watcher::Event::InitDone => {
                let listed = view.relisting.take().unwrap_or_default();
                // What the view held that the list no longer has was deleted meanwhile.
                let vanished: Vec<PodKey> = view
                    .pods
                    .keys()
                    .filter(|key| !listed.contains_key(*key))
                    .cloned()
                    .collect();
                for key in vanished {
                    view.delete(&key);
                }
                for (key, facts) in listed {
                    view.apply(key, facts);
                }
                drop(view);
                self.synced.store(true, Ordering::Release);
            }
        }
    }

    /// Runs the watch of the pods on `node` until the process ends. Reconnects with backoff after
    /// errors; kube's watcher re-lists after `410 Gone`.
    pub async fn run_watch(self: Arc<Self>, client: kube::Client, node: String) {
        let api: kube::Api<Pod> = kube::Api::all(client);
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let mut events = watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => self.handle(event),
                Err(error) => tracing::warn!(%error, "pod watch failed; retrying"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodIP, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod(name: &str, ips: &[&str], ready: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                pod_ips: Some(ips.iter().map(|ip| PodIP { ip: ip.to_string() }).collect()),
                conditions: ready.map(|status| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: status.into(),
                        ..PodCondition::default()
                    }]
                }),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn facts_are_read_from_the_pod() {
        let facts = facts_of(&pod(
            "a",
            &["10.0.0.7", "fd00::7", "not-an-ip"],
            Some("True"),
        ));
        assert_eq!(facts.uid, "uid-a");
        assert_eq!(
            facts.ips,
            [
                "10.0.0.7".parse::<std::net::IpAddr>().unwrap(),
                "fd00::7".parse().unwrap()
            ]
        );
        assert_eq!(facts.conditions["Ready"], "True");
        assert!(!facts.deleting);
    }

    fn key(name: &str) -> PodKey {
        ("ns".into(), name.into())
    }

    #[test]
    fn a_change_is_announced_when_what_gates_see_changes_and_not_otherwise() {
        let watch = PodWatch::new();
        let mut changes = watch.changes();
        watch.handle(watcher::Event::Apply(pod("a", &[], None)));
        assert_eq!(changes.try_recv().unwrap(), key("a"));
        assert!(watch.get("ns", "a").unwrap().ips.is_empty());
        // The same facts again (another field of the status changed): nothing is announced.
        watch.handle(watcher::Event::Apply(pod("a", &[], None)));
        assert!(changes.try_recv().is_err());
        watch.handle(watcher::Event::Apply(pod("a", &["10.0.0.7"], None)));
        assert_eq!(changes.try_recv().unwrap(), key("a"));
        assert_eq!(watch.get("ns", "a").unwrap().ips.len(), 1);
        watch.handle(watcher::Event::Delete(pod("a", &["10.0.0.7"], None)));
        assert_eq!(changes.try_recv().unwrap(), key("a"));
        assert!(watch.get("ns", "a").is_none());
    }

    #[test]
    fn a_relist_replaces_the_view_and_announces_only_what_changed() {
        let watch = PodWatch::new();
        assert!(!watch.is_synced());
        watch.handle(watcher::Event::Init);
        watch.handle(watcher::Event::InitApply(pod("a", &[], None)));
        watch.handle(watcher::Event::InitApply(pod("b", &[], None)));
        watch.handle(watcher::Event::InitApply(pod("c", &[], None)));
        watch.handle(watcher::Event::InitDone);
        assert!(watch.is_synced());
        let mut changes = watch.changes();
        // Lost watch: meanwhile b was deleted and a got an address; c is as it was.
        watch.handle(watcher::Event::Init);
        watch.handle(watcher::Event::InitApply(pod("a", &["10.0.0.7"], None)));
        watch.handle(watcher::Event::InitApply(pod("c", &[], None)));
        watch.handle(watcher::Event::InitDone);
        assert!(watch.get("ns", "b").is_none());
        assert_eq!(watch.get("ns", "a").unwrap().ips.len(), 1);
        let mut announced = vec![changes.try_recv().unwrap(), changes.try_recv().unwrap()];
        announced.sort();
        assert_eq!(announced, [key("a"), key("b")]);
        assert!(changes.try_recv().is_err(), "c did not change");
    }
}
