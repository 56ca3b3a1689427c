//! The driver's view of its own CertificateRequests, fed by one watch per driver process
//! (label-selected to this node). A publish waiting on a request subscribes to it and wakes the
//! moment the watch delivers a change — no polling. A re-list (after a dropped watch or
//! `410 Gone`) replaces the whole view and wakes every waiter whose request changed or vanished,
//! so no wake-up is lost across disconnects.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::watch;

use super::request::{CertificateRequest, label};

/// `(namespace, name)`.
pub type RequestKey = (String, String);

type Entry = watch::Sender<Option<Arc<CertificateRequest>>>;

/// One request's latest copy as the watch delivers it (`None` until seen, or once deleted).
pub type Updates = watch::Receiver<Option<Arc<CertificateRequest>>>;

fn key_of(request: &CertificateRequest) -> RequestKey {
    (request.namespace().to_string(), request.name().to_string())
}

#[derive(Default)]
struct View {
    /// One channel per request anyone knows about: the watch's latest copy (`None` until seen
    /// or once deleted) and the publishes waiting on it.
    entries: HashMap<RequestKey, Entry>,
    /// Requests by the volume-id-hash label, to find a volume's requests without a scan.
    by_volume: HashMap<String, BTreeSet<RequestKey>>,
    /// A re-list in progress: what it has delivered so far.
    relisting: Option<HashMap<RequestKey, Arc<CertificateRequest>>>,
}

impl View {
    fn entry(&mut self, key: &RequestKey) -> &Entry {
        self.entries
            .entry(key.clone())
            .or_insert_with(|| watch::channel(None).0)
    }

    fn index(&mut self, key: &RequestKey, request: &CertificateRequest) {
        if let Some(hash) = request.label(label::VOLUME_ID_HASH) {
            self.by_volume
                .entry(hash.to_string())
                .or_default()
                .insert(key.clone());
        }
    }

    fn unindex(&mut self, key: &RequestKey, request: &CertificateRequest) {
        if let Some(hash) = request.label(label::VOLUME_ID_HASH)
            && let Some(keys) = self.by_volume.get_mut(hash)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_volume.remove(hash);
            }
        }
    }

    fn apply(&mut self, request: Arc<CertificateRequest>) {
        let key = key_of(&request);
        // Indexed under the labels it has now, not the ones an older copy had. (The old copy
        // is only read: a waiter must never see the request vanish in between.)
        let old = self
            .entries
            .get(&key)
            .and_then(|entry| entry.borrow().clone());
        if let Some(old) = old {
            self.unindex(&key, &old);
        }
        self.index(&key, &request);
        self.entry(&key).send_replace(Some(request));
    }

    fn delete(&mut self, key: &RequestKey) {
        let Some(entry) = self.entries.get(key) else {
            return;
        };
        if let Some(old) = entry.send_replace(None) {
            self.unindex(key, &old);
        }
        if self.entries[key].receiver_count() == 0 {
            self.entries.remove(key);
        }
    }
}

/// The watch-fed view. Cheap to share.
#[derive(Default)]
pub struct RequestCache {
    view: Mutex<View>,
    /// True once the first full list arrived.
    synced: watch::Sender<bool>,
    /// The watch's latest error, for messages while it is failing.
    last_error: Mutex<Option<(String, tokio::time::Instant)>>,
}

impl RequestCache {
    pub fn new() -> Arc<RequestCache> {
        Arc::new(RequestCache::default())
    }

    fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock()
    }

    /// Follows one request. Subscribe before creating it, so that no update can slip past.
    pub fn subscribe(&self, key: &RequestKey) -> Updates {
        self.view().entry(key).subscribe()
    }

    /// Forgets an entry nobody waits on and the watch has not delivered (a request whose create
    /// failed).
    pub fn release(&self, key: &RequestKey) {
        let mut view = self.view();
        if let Some(entry) = view.entries.get(key)
            && entry.receiver_count() == 0
            && entry.borrow().is_none()
        {
            view.entries.remove(key);
        }
    }

    /// The latest copy of one request.
    pub fn get(&self, key: &RequestKey) -> Option<Arc<CertificateRequest>> {
        self.view().entries.get(key)?.borrow().clone()
    }

    /// Every known request carrying one of these volume-id-hash label values (a volume's
    /// requests may carry the current or the legacy hash).
    pub fn for_volume(&self, volume_hashes: &[impl AsRef<str>]) -> Vec<Arc<CertificateRequest>> {
        let view = self.view();
        volume_hashes
            .iter()
            .filter_map(|hash| view.by_volume.get(hash.as_ref()))
            .flatten()
            .filter_map(|key| view.entries.get(key)?.borrow().clone())
            .collect()
    }

    /// Number of requests in the view.
    pub fn len(&self) -> usize {
        self.view()
            .entries
            .values()
            .filter(|e| e.borrow().is_some())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first list has arrived, or `deadline`. Returns whether it is synced.
    pub async fn wait_synced(&self, deadline: tokio::time::Instant) -> bool {
        let mut synced = self.synced.subscribe();
        tokio::time::timeout_at(deadline, synced.wait_for(|synced| *synced))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// The watch's latest error and when it happened, until the next full list succeeds.
    pub fn last_error_at(&self) -> Option<(String, tokio::time::Instant)> {
        self.last_error.lock().clone()
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error_at().map(|(error, _)| error)
    }

    /// What `/readyz` says of the watch. Only reads: the watch task alone decides what it has
    /// seen. A watch that reconnected quietly reports nothing, so an error counts while it is
    /// recent (younger than `grace`): the watcher retries at least every 30 s while it keeps
    /// failing, so a failing watch never looks recovered.
    pub fn readiness(&self, grace: Duration) -> Result<(), String> {
        match (self.is_synced(), self.last_error_at()) {
            (false, Some((error, _))) => Err(format!(
                "the CertificateRequest watch has not listed yet: {error}"
            )),
            (false, None) => Err("the CertificateRequest watch has not listed yet".into()),
            (true, Some((error, at))) if at.elapsed() < grace => {
                Err(format!("the CertificateRequest watch is failing: {error}"))
            }
            (true, _) => Ok(()),
        }
    }

    /// Remembers the watch's latest error, for [`Self::readiness`] and messages.
    fn watch_failed(&self, error: String) {
        *self.last_error.lock() = Some((error, tokio::time::Instant::now()));
    }

    /// Applies one event from the watch.
    pub fn handle(&self, event: watcher::Event<CertificateRequest>) {
        let mut view = self.view();
        match event {
            watcher::Event::Apply(request) => {
                let request = Arc::new(request);
                view.apply(request);
            }
            watcher::Event::Delete(request) => view.delete(&key_of(&request)),
            watcher::Event::Init => view.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(request) => {
                let key = key_of(&request);
                view.relisting
                    .get_or_insert_with(HashMap::new)
                    .insert(key, Arc::new(request));
            }
            watcher::Event::InitDone => {
                let listed = view.relisting.take().unwrap_or_default();
                // Whatever the view held that the list no longer has was deleted meanwhile.
                let vanished: Vec<RequestKey> = view
                    .entries
                    .iter()
                    .filter(|(key, entry)| entry.borrow().is_some() && !listed.contains_key(*key))
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in vanished {
                    view.delete(&key);
                }
                for (key, request) in listed {
                    // Unchanged objects do not wake anyone.
                    let unchanged = view.entries.get(&key).is_some_and(|entry| {
                        entry.borrow().as_ref().is_some_and(|old| {
                            old.metadata.resource_version == request.metadata.resource_version
                        })
                    });
                    if !unchanged {
                        view.apply(request);
                    }
                }
                drop(view);
                self.synced.send_replace(true);
                *self.last_error.lock() = None;
            }
        }
    }

    /// Runs the watch for this node's requests (`label_selector`: see
    /// [`super::request::node_selector`]) until the process ends. Reconnects with backoff after
    /// errors; kube's watcher re-lists after `410 Gone`.
    pub async fn run_watch(self: Arc<Self>, client: kube::Client, label_selector: String) {
        let api: kube::Api<CertificateRequest> = kube::Api::all(client);
        let config = watcher::Config::default().labels(&label_selector);
        let mut events = watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => self.handle(event),
                Err(error) => {
                    tracing::warn!(%error, "CertificateRequest watch failed; retrying");
                    self.watch_failed(error.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn request(name: &str, volume_hash: &str, rv: &str) -> CertificateRequest {
        CertificateRequest {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                labels: Some(BTreeMap::from([(
                    label::VOLUME_ID_HASH.to_string(),
                    volume_hash.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            ..CertificateRequest::default()
        }
    }

    fn key(name: &str) -> RequestKey {
        ("ns".into(), name.into())
    }

    #[tokio::test]
    async fn a_subscriber_wakes_on_apply_and_delete() {
        let cache = RequestCache::new();
        let mut waiter = cache.subscribe(&key("a"));
        assert!(waiter.borrow_and_update().is_none());
        cache.handle(watcher::Event::Apply(request("a", "v1", "1")));
        waiter.changed().await.unwrap();
        assert_eq!(waiter.borrow_and_update().as_ref().unwrap().name(), "a");
        assert_eq!(cache.for_volume(&["v1"]).len(), 1);
        cache.handle(watcher::Event::Delete(request("a", "v1", "2")));
        waiter.changed().await.unwrap();
        assert!(waiter.borrow_and_update().is_none());
        assert!(cache.for_volume(&["v1"]).is_empty());
    }

    #[tokio::test]
    async fn a_relist_replaces_the_view_and_wakes_only_what_changed() {
        let cache = RequestCache::new();
        assert!(!cache.is_synced());
        cache.handle(watcher::Event::Init);
        cache.handle(watcher::Event::InitApply(request("a", "v1", "1")));
        cache.handle(watcher::Event::InitApply(request("b", "v2", "1")));
        cache.handle(watcher::Event::InitDone);
        assert!(cache.is_synced());
        assert_eq!(cache.len(), 2);

        let mut a = cache.subscribe(&key("a"));
        let mut b = cache.subscribe(&key("b"));
        let mut c = cache.subscribe(&key("c"));
        a.borrow_and_update();
        b.borrow_and_update();
        c.borrow_and_update();
        // The watch was lost; meanwhile a changed, b was deleted and c created.
        cache.handle(watcher::Event::Init);
        cache.handle(watcher::Event::InitApply(request("a", "v1", "5")));
        cache.handle(watcher::Event::InitApply(request("c", "v3", "6")));
        cache.handle(watcher::Event::InitDone);
        assert!(a.has_changed().unwrap());
        assert_eq!(
            a.borrow_and_update()
                .as_ref()
                .unwrap()
                .metadata
                .resource_version
                .as_deref(),
            Some("5")
        );
        assert!(b.has_changed().unwrap());
        assert!(b.borrow_and_update().is_none());
        assert!(c.has_changed().unwrap());
        assert!(cache.for_volume(&["v2"]).is_empty());
        assert_eq!(cache.for_volume(&["v3"]).len(), 1);

        // A re-list with nothing new wakes nobody.
        cache.handle(watcher::Event::Init);
        cache.handle(watcher::Event::InitApply(request("a", "v1", "5")));
        cache.handle(watcher::Event::InitApply(request("c", "v3", "6")));
        cache.handle(watcher::Event::InitDone);
        assert!(!a.has_changed().unwrap());
    }

    #[test]
    fn a_volume_is_found_under_each_of_its_hashes() {
        let cache = RequestCache::new();
        cache.handle(watcher::Event::Apply(request("current", "new-hash", "1")));
        cache.handle(watcher::Event::Apply(request("legacy", "old-hash", "2")));
        cache.handle(watcher::Event::Apply(request("other", "other-hash", "3")));
        let mut found: Vec<String> = cache
            .for_volume(&["new-hash", "old-hash"])
            .iter()
            .map(|cr| cr.name().to_string())
            .collect();
        found.sort();
        assert_eq!(found, ["current", "legacy"]);
        assert_eq!(cache.for_volume(&["new-hash"]).len(), 1);
        assert!(cache.for_volume(&[] as &[&str]).is_empty());
    }

    #[tokio::test]
    async fn a_relabelled_request_is_found_under_its_new_label_only() {
        let cache = RequestCache::new();
        cache.handle(watcher::Event::Apply(request("a", "v1", "1")));
        cache.handle(watcher::Event::Apply(request("a", "v2", "2")));
        assert!(cache.for_volume(&["v1"]).is_empty());
        assert_eq!(cache.for_volume(&["v2"]).len(), 1);
    }

    #[test]
    fn released_entries_for_unseen_requests_are_forgotten() {
        let cache = RequestCache::new();
        drop(cache.subscribe(&key("never-created")));
        cache.release(&key("never-created"));
        assert!(cache.view().entries.is_empty());
    }

    /// `/readyz` reports a watch error for the default grace, 40 s, and not a moment longer.
    #[tokio::test(start_paused = true)]
    async fn a_watch_error_is_reported_for_forty_seconds_after_it() {
        let grace = super::super::CertManagerSettings::default().watch_error_grace;
        let cache = RequestCache::new();
        cache.handle(watcher::Event::Init);
        cache.handle(watcher::Event::InitDone);
        assert_eq!(cache.readiness(grace), Ok(()));

        cache.watch_failed("connection refused".into());
        let failing = Err("the CertificateRequest watch is failing: connection refused".into());
        assert_eq!(cache.readiness(grace), failing);
        tokio::time::advance(Duration::from_secs(40) - Duration::from_millis(1)).await;
        assert_eq!(cache.readiness(grace), failing, "just before 40 s");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.readiness(grace), Ok(()), "at 40 s");
    }
}
