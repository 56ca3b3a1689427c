//! The approver's control loop: one cluster-wide watch of CertificateRequests (kube's watcher,
//! which re-lists after `410 Gone`), a cache of the requests still undecided, and one worker that
//! — while this replica leads — decides each new or changed request and writes the condition
//! through the `status` subresource.
//!
//! Writes are PUTs of the request as read (its resourceVersion included), so a request changed
//! meanwhile is never overwritten: on `409 Conflict` it is read again and decided afresh.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::evaluate::{self, APPROVED_MESSAGE, CONDITION_REASON, Decision, IssuerRef, Policy};
use super::metrics::ApproverMetrics;
use crate::issuer::cert_manager::request::CertificateRequest;
use crate::kubernetes::{KubeConnection, api_status, describe_error, is_transient, retry_after};
use crate::spiffe::ActiveIssuer;

/// `(namespace, name)`.
type Key = (String, String);

/// How often a write is tried (conflicts re-read and re-decide; transient errors wait).
const WRITE_ATTEMPTS: u32 = 5;
/// When a request whose condition could not be written is looked at again.
const REQUEUE_AFTER: Duration = Duration::from_secs(5);

/// The undecided requests as last seen, and the keys waiting for the worker.
#[derive(Default)]
struct State {
    requests: Mutex<HashMap<Key, DynamicObject>>,
    queue: Mutex<(VecDeque<Key>, HashSet<Key>)>,
    wake: Notify,
    /// Keys seen during a re-list (between Init and InitDone).
    relisting: Mutex<Option<HashSet<Key>>>,
}

impl State {
    fn push(&self, key: Key) {
        let mut queue = self.queue.lock();
        if queue.1.insert(key.clone()) {
            queue.0.push_back(key);
            self.wake.notify_one();
        }
    }

    async fn pop(&self) -> Key {
        loop {
            let notified = self.wake.notified();
            {
                let mut queue = self.queue.lock();
                if let Some(key) = queue.0.pop_front() {
                    queue.1.remove(&key);
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Keeps an undecided request (and queues it); forgets a decided one.
    fn apply(&self, object: DynamicObject) {
        let key = key_of(&object);
        if let Some(seen) = self.relisting.lock().as_mut() {
            seen.insert(key.clone());
        }
        let value = serde_json::to_value(&object).unwrap_or(Value::Null);
        if evaluate::already_decided(&value) {
            self.requests.lock().remove(&key);
            return;
        }
        self.requests.lock().insert(key.clone(), object);
        self.push(key);
    }

    fn handle(&self, event: watcher::Event<DynamicObject>, metrics: &ApproverMetrics) {
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => self.apply(object),
            watcher::Event::Delete(object) => {
                self.requests.lock().remove(&key_of(&object));
            }
            watcher::Event::Init => *self.relisting.lock() = Some(HashSet::new()),
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisting.lock().take() {
                    // Requests deleted while the watch was down.
                    self.requests.lock().retain(|key, _| seen.contains(key));
                }
                metrics.set_synced();
            }
        }
    }
}

fn key_of(object: &DynamicObject) -> Key {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

/// The controller: what it needs to act.
pub struct Controller {
    pub connection: KubeConnection,
    pub policy: Arc<Policy>,
    /// The issuer whose requests are judged, now (the flags', or the runtime ConfigMap's).
    pub issuers: Arc<ActiveIssuer>,
    pub metrics: Arc<ApproverMetrics>,
    pub leading: watch::Receiver<bool>,
}

impl Controller {
    /// Runs until dropped.
    pub async fn run(self) {
        let state = Arc::new(State::default());
        let resource = ApiResource::erase::<CertificateRequest>(&());
        let all: Api<DynamicObject> = Api::all_with(self.connection.client(), &resource);

        let watch_state = Arc::clone(&state);
        let metrics = Arc::clone(&self.metrics);
        let watch = tokio::spawn(async move {
            let mut events = watcher(all, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => watch_state.handle(event, &metrics),
                    Err(error) => {
                        tracing::warn!(%error, "CertificateRequest watch failed; retrying")
                    }
                }
            }
        });
        let _watch = AbortOnDrop(watch);

        // Whenever this replica becomes the leader, everything undecided is looked at again:
        // the previous leader may have left some.
        let mut leading = self.leading.clone();
        let lead_state = Arc::clone(&state);
        let lead_metrics = Arc::clone(&self.metrics);
        let leadership = tokio::spawn(async move {
            loop {
                let is_leader = *leading.borrow_and_update();
                lead_metrics.set_leader(is_leader);
                if is_leader {
                    let keys: Vec<Key> = lead_state.requests.lock().keys().cloned().collect();
                    keys.into_iter().for_each(|key| lead_state.push(key));
                }
                if leading.changed().await.is_err() {
                    return;
                }
            }
        });
        let _leadership = AbortOnDrop(leadership);

        // When the active issuer changes, what was left alone as another issuer's may be this
        // one's now: everything undecided is looked at again.
        let mut changes = self.issuers.subscribe();
        let change_state = Arc::clone(&state);
        let issuer_changes = tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let keys: Vec<Key> = change_state.requests.lock().keys().cloned().collect();
                keys.into_iter().for_each(|key| change_state.push(key));
            }
        });
        let _issuer_changes = AbortOnDrop(issuer_changes);

        loop {
            let key = state.pop().await;
            if !*self.leading.borrow() {
                // Looked at again when leadership comes (see above).
                continue;
            }
            let Some(object) = state.requests.lock().get(&key).cloned() else {
                continue;
            };
            if let Err(error) = self.decide_and_write(&resource, object).await {
                self.metrics.write_failed();
                tracing::warn!(
                    namespace = %key.0, name = %key.1, %error,
                    "could not write the approval decision; trying again later"
                );
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    tokio::time::sleep(REQUEUE_AFTER).await;
                    state.push(key);
                });
            }
        }
    }

    /// Decides about `object` and writes the condition, re-reading it after a conflict.
    async fn decide_and_write(
        &self,
        resource: &ApiResource,
        mut object: DynamicObject,
    ) -> Result<(), String> {
        let (namespace, name) = key_of(&object);
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.connection.client(), &namespace, resource);
        // No issuer active (the runtime ConfigMap gone, no flags): nothing is judged until one is.
        let Some(issuer) = self.issuers.active() else {
            return Ok(());
        };
        let policy = Policy {
            issuer: IssuerRef::normalised(&issuer.name, &issuer.kind, &issuer.group),
            ..(*self.policy).clone()
        };
        for attempt in 1..=WRITE_ATTEMPTS {
            let value = serde_json::to_value(&object).map_err(|e| e.to_string())?;
            let decision = evaluate::decide(&value, &policy);
            let (kind, message) = match &decision {
                Decision::Leave(_) => return Ok(()),
                Decision::Approve => ("Approved", APPROVED_MESSAGE.to_string()),
                Decision::Deny(denial) => ("Denied", denial.condition_message()),
            };
            if !*self.leading.borrow() {
                return Ok(());
            }
            set_condition(&mut object, kind, &message);
            self.connection.throttle().await;
            let error = match api
                .replace_status(&name, &PostParams::default(), &object)
                .await
            {
                Ok(_) => {
                    match &decision {
                        Decision::Approve => {
                            let spiffe = spiffe_issuer(&value, &policy);
                            self.metrics.approved(spiffe);
                            tracing::info!(%namespace, %name, "approved CertificateRequest");
                        }
                        Decision::Deny(denial) => {
                            self.metrics.denied(denial.class);
                            tracing::info!(%namespace, %name, reason = %denial.message, "denied CertificateRequest");
                        }
                        Decision::Leave(_) => {}
                    }
                    return Ok(());
                }
                Err(error) => error,
            };
            match api_status(&error) {
                Some(404) => return Ok(()),
                Some(409) => {
                    // Changed since read: decide on what it is now.
                    self.connection.throttle().await;
                    match api.get_opt(&name).await {
                        Ok(Some(fresh)) => object = fresh,
                        Ok(None) => return Ok(()),
                        Err(error) => return Err(describe_error(&error)),
                    }
                }
                _ if is_transient(&error) && attempt < WRITE_ATTEMPTS => {
                    let wait = retry_after(&error)
                        .unwrap_or(Duration::from_millis(200 * u64::from(attempt)));
                    tokio::time::sleep(wait).await;
                    // Retried as read; a conflict would bring the fresh object.
                    object = strip_condition(object, kind);
                }
                _ => return Err(describe_error(&error)),
            }
        }
        Err(format!("gave up after {WRITE_ATTEMPTS} attempts"))
    }
}

fn spiffe_issuer(request: &Value, policy: &Policy) -> bool {
    let text = |pointer: &str| {
        request
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    evaluate::IssuerRef::normalised(
        text("/spec/issuerRef/name"),
        text("/spec/issuerRef/kind"),
        text("/spec/issuerRef/group"),
    ) == policy.issuer
}

/// Adds an Approved or Denied condition (status True, upstream's reason), as cert-manager's
/// `SetCertificateRequestCondition` does: replacing one of the same type.
fn set_condition(object: &mut DynamicObject, kind: &str, message: &str) {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let condition = json!({
        "type": kind,
        "status": "True",
        "reason": CONDITION_REASON,
        "message": message,
        "lastTransitionTime": now,
    });
    if !object.data.is_object() {
        object.data = json!({});
    }
    let status = &mut object.data["status"];
    if !status.is_object() {
        *status = json!({});
    }
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    if let Some(conditions) = status["conditions"].as_array_mut() {
        conditions.retain(|c| c["type"] != kind);
        conditions.push(condition);
    }
}

fn strip_condition(mut object: DynamicObject, kind: &str) -> DynamicObject {
    if let Some(conditions) = object
        .data
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        conditions.retain(|c| c["type"] != kind);
    }
    object
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_replace_their_own_type_only() {
        let mut object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {"name": "a", "namespace": "b"},
            "spec": {"request": "eA=="},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]},
        }))
        .unwrap();
        set_condition(&mut object, "Denied", "Denied request: x");
        set_condition(&mut object, "Denied", "Denied request: y");
        let conditions = object.data["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[1]["message"], "Denied request: y");
        assert_eq!(conditions[1]["reason"], CONDITION_REASON);
        assert_eq!(conditions[1]["status"], "True");
        assert!(
            conditions[1]["lastTransitionTime"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        assert_eq!(object.data["spec"]["request"], "eA==");
    }
}
