//! The in-memory object store behind every resource path, with the API server's bookkeeping:
//! metadata filled on create, one global `resourceVersion` counter, a bounded history of changes
//! (so a watch can resume from a resourceVersion, or be told it is too old), and the open watches.
//!
//! This exists so the HTTP layer, the test helpers on [`crate::TestApiServer`] and the signer all
//! read and write the same objects and all writers notify the same watchers. Objects are kept as
//! plain JSON: the store knows nothing about particular resources.
//!
//! One file (over 800 lines): `Store`, `State` and the watches share private fields.

use crate::selector::{FieldSelector, LabelSelector};
use parking_lot::{Mutex, MutexGuard};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use tokio::sync::{broadcast, mpsc};

/// How many past changes are kept for watches resuming from an older resourceVersion; older ones
/// are forgotten (as etcd compaction does) and such watches get `410 Expired`.
const MAX_HISTORY: usize = 10_000;

/// Capacity of the in-process change feed; a receiver that falls further behind gets `Lagged`.
const CHANGE_FEED_CAPACITY: usize = 16_384;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One change, as seen by the in-process feed ([`crate::TestApiServer::subscribe`]).
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: ChangeKind,
    /// `"v1"` or `"group/version"`.
    pub api_version: String,
    /// Plural resource name, e.g. `"certificaterequests"`.
    pub resource: String,
    /// The object after the change (for deletions: as deleted, with the deletion's resourceVersion).
    pub object: Value,
}

/// A resource type: where its objects live, e.g. (`cert-manager.io/v1`, `certificaterequests`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Collection {
    pub api_version: String,
    pub resource: String,
}

impl Collection {
    pub fn new(api_version: &str, resource: &str) -> Collection {
        Collection {
            api_version: api_version.to_string(),
            resource: resource.to_string(),
        }
    }

    /// The name used in API messages: `pods` or `certificaterequests.cert-manager.io`.
    fn qualified_name(&self) -> String {
        match self.api_version.split_once('/') {
            Some((group, _)) => format!("{}.{group}", self.resource),
            None => self.resource.clone(),
        }
    }
}

/// A failed request, rendered by the HTTP layer as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// The Status's `details`, when the API server gives them (e.g. its `causes`).
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// What the API server's NamespaceLifecycle admission answers a create in a namespace that is
    /// being deleted: 403 Forbidden, with the cause `NamespaceTerminating`.
    fn namespace_terminating(collection: &Collection, namespace: &str, name: &str) -> ApiError {
        let what = collection.qualified_name();
        let group = collection
            .api_version
            .split_once('/')
            .map_or("", |(group, _)| group);
        ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{what} \"{name}\" is forbidden: unable to create new content in namespace \
                 {namespace} because it is being terminated"
            ),
            details: Some(json!({
                "name": name,
                "group": group,
                "kind": collection.resource,
                "causes": [{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {namespace} is being terminated"),
                    "field": "metadata.namespace",
                }],
            })),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "Invalid", message)
    }

    fn not_found(collection: &Collection, name: &str) -> ApiError {
        let what = collection.qualified_name();
        ApiError::new(404, "NotFound", format!("{what} \"{name}\" not found"))
    }

    fn already_exists(collection: &Collection, name: &str) -> ApiError {
        let what = collection.qualified_name();
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{what} \"{name}\" already exists"),
        )
    }

    fn conflict(collection: &Collection, name: &str) -> ApiError {
        let what = collection.qualified_name();
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {what} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
    }
}

/// Which part of an existing object a write may change, like the API server's main resource
/// and `/status` subresource endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Writes to the object itself: its `status` is kept as stored.
    Main,
    /// Writes to `/status`: only its `status` is taken.
    Status,
    /// Test helpers: anything but the object's identity may change.
    Whole,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// `resourceVersion` empty or `"0"`: synthetic ADDED events for the current objects first.
    Snapshot,
    /// `sendInitialEvents=true`: like `Snapshot`, then a BOOKMARK marking the end of them.
    InitialEvents,
    /// Every change after this resourceVersion.
    After(u64),
}

/// Which objects a watch (or list) is about.
#[derive(Debug, Clone)]
pub struct WatchFilter {
    pub collection: Collection,
    /// `None` for all namespaces.
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl WatchFilter {
    pub fn matches(&self, object: &Value) -> bool {
        let in_namespace = self
            .namespace
            .as_deref()
            .is_none_or(|ns| object_namespace(object) == ns);
        in_namespace && self.labels.matches_object(object) && self.fields.matches_object(object)
    }

    /// The watch event type this watch sees for a change, if any: an object that starts or stops
    /// matching appears as ADDED or DELETED, as on a real API server.
    fn event_type(
        &self,
        kind: ChangeKind,
        object: &Value,
        previous: Option<&Value>,
    ) -> Option<&'static str> {
        let now = self.matches(object);
        match kind {
            ChangeKind::Added => now.then_some("ADDED"),
            ChangeKind::Deleted => now.then_some("DELETED"),
            ChangeKind::Modified => match (previous.is_some_and(|p| self.matches(p)), now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }
    }
}

/// What the store sends down an open watch, in order.
#[derive(Debug, Clone)]
pub enum WatchMessage {
    Event {
        event_type: &'static str,
        object: Value,
    },
    Bookmark {
        resource_version: u64,
        initial_events_end: bool,
    },
    /// The watch's starting point is no longer in the history: send a 410 ERROR and close.
    Expired { message: String },
    /// Close the stream cleanly.
    End,
    /// Break the connection without ending the stream properly.
    Abort,
}

/// The result of a list request.
pub struct ListResult {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub kind: String,
}

pub struct Store {
    state: Mutex<State>,
}

struct State {
    resource_version: u64,
    next_sequence: u64,
    collections: HashMap<Collection, Objects>,
    history: VecDeque<HistoryEntry>,
    /// Watches from a resourceVersion below this have missed forgotten history.
    history_floor: u64,
    watches: Vec<Watch>,
    next_watch_id: u64,
    changes: broadcast::Sender<Change>,
    /// Namespaces being deleted: nothing new may be created in them.
    terminating_namespaces: std::collections::HashSet<String>,
}

#[derive(Default)]
struct Objects {
    /// The `kind` of the objects, learnt from the first one created.
    kind: Option<String>,
    /// Keyed by (namespace, name); the namespace is empty for cluster-scoped objects.
    items: BTreeMap<(String, String), Stored>,
}

struct Stored {
    object: Value,
    created_by: Option<String>,
    sequence: u64,
}

struct HistoryEntry {
    resource_version: u64,
    collection: Collection,
    kind: ChangeKind,
    object: Value,
    previous: Option<Value>,
}

struct Watch {
    id: u64,
    filter: WatchFilter,
    /// The resourceVersion of the last event sent.
    position: u64,
    sender: mpsc::UnboundedSender<WatchMessage>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            state: Mutex::new(State {
                resource_version: 1,
                next_sequence: 0,
                collections: HashMap::new(),
                history: VecDeque::new(),
                history_floor: 1,
                watches: Vec::new(),
                next_watch_id: 1,
                changes: broadcast::channel(CHANGE_FEED_CAPACITY).0,
                terminating_namespaces: Default::default(),
            }),
        }
    }
}

impl Store {
    /// Marks a namespace as being deleted (or no longer): creates in it are then refused.
    pub fn set_namespace_terminating(&self, namespace: &str, terminating: bool) {
        let mut state = self.lock();
        if terminating {
            state.terminating_namespaces.insert(namespace.to_string());
        } else {
            state.terminating_namespaces.remove(namespace);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.lock().changes.subscribe()
    }

    /// Creates an object in `namespace` (empty for cluster-scoped), filling in its metadata.
    pub fn create(
        &self,
        collection: &Collection,
        namespace: &str,
        mut object: Value,
        user: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| state.kind_of(collection));
        let Some(fields) = object.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        };
        fields
            .entry("apiVersion")
            .or_insert_with(|| json!(collection.api_version));
        fields.entry("kind").or_insert_with(|| json!(kind));
        let metadata = ensure_object(fields.entry("metadata").or_insert_with(|| json!({})));
        let given_namespace = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !given_namespace.is_empty() && given_namespace != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = match metadata.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => match metadata.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{kind} \"\" is invalid: metadata.name: Required value: name or generateName is required"
                    )));
                }
            },
        };
        if state.terminating_namespaces.contains(namespace) {
            return Err(ApiError::namespace_terminating(
                collection, namespace, &name,
            ));
        }
        let key = (namespace.to_string(), name.clone());
        let objects = state.collections.entry(collection.clone()).or_default();
        if objects.items.contains_key(&key) {
            return Err(ApiError::already_exists(collection, &name));
        }
        objects.kind.get_or_insert(kind);

        state.resource_version += 1;
        metadata.insert("name".into(), json!(name));
        if namespace.is_empty() {
            metadata.remove("namespace");
        } else {
            metadata.insert("namespace".into(), json!(namespace));
        }
        metadata.insert("uid".into(), json!(random_uid()));
        metadata.insert(
            "resourceVersion".into(),
            json!(state.resource_version.to_string()),
        );
        metadata.insert("creationTimestamp".into(), json!(now_rfc3339()));
        metadata.insert("generation".into(), json!(1));

        if let Some(user) = user {
            stamp_requester(collection, &mut object, user);
        }
        let sequence = state.next_sequence;
        state.next_sequence += 1;
        let stored = Stored {
            object: object.clone(),
            created_by: user.map(str::to_string),
            sequence,
        };
        state
            .collections
            .entry(collection.clone())
            .or_default()
            .items
            .insert(key, stored);
        state.record(collection, ChangeKind::Added, object.clone(), None);
        Ok(object)
    }

    pub fn get(
        &self,
        collection: &Collection,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.lock()
            .find(collection, namespace, name)
            .map(|s| s.object.clone())
            .ok_or_else(|| ApiError::not_found(collection, name))
    }

    pub fn created_by(
        &self,
        collection: &Collection,
        namespace: &str,
        name: &str,
    ) -> Option<String> {
        self.lock()
            .find(collection, namespace, name)?
            .created_by
            .clone()
    }

    /// The objects matching `filter`, ordered by namespace and name like a real list.
    pub fn list(&self, filter: &WatchFilter) -> ListResult {
        let state = self.lock();
        let items = state
            .collections
            .get(&filter.collection)
            .into_iter()
            .flat_map(|objects| objects.items.values())
            .map(|stored| &stored.object)
            .filter(|object| filter.matches(object))
            .cloned()
            .collect();
        ListResult {
            items,
            resource_version: state.resource_version,
            kind: state.kind_of(&filter.collection),
        }
    }

    /// Every object of a collection, in all namespaces, in creation order.
    pub fn all_in_creation_order(&self, collection: &Collection) -> Vec<Value> {
        let state = self.lock();
        let mut stored: Vec<&Stored> = state
            .collections
            .get(collection)
            .into_iter()
            .flat_map(|objects| objects.items.values())
            .collect();
        stored.sort_by_key(|s| s.sequence);
        stored.into_iter().map(|s| s.object.clone()).collect()
    }

    /// Writes a new version of an existing object, computed by `change` from the stored one.
    ///
    /// With `expected_version`, fails with 409 Conflict unless it is the stored resourceVersion.
    /// The object's identity (kind, name, namespace, uid, creation time) cannot change; `part`
    /// says whether its status or everything else is kept. A write that changes nothing is not
    /// an update (no new resourceVersion, no event), as on a real API server.
    pub fn modify(
        &self,
        collection: &Collection,
        namespace: &str,
        name: &str,
        expected_version: Option<&str>,
        part: Part,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let old = state
            .find(collection, namespace, name)
            .ok_or_else(|| ApiError::not_found(collection, name))?
            .object
            .clone();
        if expected_version.is_some_and(|v| v != meta_str(&old, "resourceVersion")) {
            return Err(ApiError::conflict(collection, name));
        }
        let proposed = change(&old)?;
        if !proposed.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        let mut new = match part {
            Part::Main => with_member(proposed, "status", old.get("status")),
            Part::Status => with_member(old.clone(), "status", proposed.get("status")),
            Part::Whole => proposed,
        };
        if let (Some(fields), Some(old_fields)) = (new.as_object_mut(), old.as_object()) {
            for key in ["apiVersion", "kind"] {
                copy_member(fields, old_fields, key);
            }
            let metadata = ensure_object(fields.entry("metadata").or_insert_with(|| json!({})));
            if let Some(old_metadata) = old.get("metadata").and_then(Value::as_object) {
                for key in [
                    "name",
                    "namespace",
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "resourceVersion",
                ] {
                    copy_member(metadata, old_metadata, key);
                }
            }
        }
        if new == old {
            return Ok(old);
        }
        if without_metadata_and_status(&new) != without_metadata_and_status(&old) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        state.resource_version += 1;
        new["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
        if let Some(stored) = state.find_mut(collection, namespace, name) {
            stored.object = new.clone();
        }
        state.record(collection, ChangeKind::Modified, new.clone(), Some(old));
        Ok(new)
    }

    /// Removes an object; the returned copy carries the deletion's resourceVersion.
    pub fn delete(
        &self,
        collection: &Collection,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let mut object = state
            .collections
            .get_mut(collection)
            .and_then(|objects| objects.items.remove(&key))
            .ok_or_else(|| ApiError::not_found(collection, name))?
            .object;
        state.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
        state.record(collection, ChangeKind::Deleted, object.clone(), None);
        Ok(object)
    }

    /// Opens a watch. Its events (initial ones first) arrive on the returned receiver until the
    /// store ends it; the caller must [`Store::remove_watch`] it when the client goes away.
    pub fn watch(
        &self,
        filter: WatchFilter,
        start: WatchStart,
    ) -> (u64, mpsc::UnboundedReceiver<WatchMessage>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut state = self.lock();
        let id = state.next_watch_id;
        state.next_watch_id += 1;
        let mut position = state.resource_version;
        let mut initial = Vec::new();
        match start {
            WatchStart::After(version) if version < state.history_floor => {
                let message = format!(
                    "too old resource version: {version} ({})",
                    state.history_floor
                );
                let _ = sender.send(WatchMessage::Expired { message });
                return (id, receiver);
            }
            WatchStart::After(version) => {
                position = version;
                for entry in state
                    .history
                    .iter()
                    .filter(|e| e.resource_version > version)
                {
                    if entry.collection != filter.collection {
                        continue;
                    }
                    if let Some(event_type) =
                        filter.event_type(entry.kind, &entry.object, entry.previous.as_ref())
                    {
                        position = entry.resource_version;
                        initial.push(WatchMessage::Event {
                            event_type,
                            object: entry.object.clone(),
                        });
                    }
                }
            }
            WatchStart::Snapshot | WatchStart::InitialEvents => {
                let mut current: Vec<&Value> = state
                    .collections
                    .get(&filter.collection)
                    .into_iter()
                    .flat_map(|objects| objects.items.values())
                    .map(|stored| &stored.object)
                    .filter(|object| filter.matches(object))
                    .collect();
                current.sort_by_key(|object| resource_version_of(object));
                initial.extend(current.into_iter().map(|object| WatchMessage::Event {
                    event_type: "ADDED",
                    object: object.clone(),
                }));
                if start == WatchStart::InitialEvents {
                    initial.push(WatchMessage::Bookmark {
                        resource_version: state.resource_version,
                        initial_events_end: true,
                    });
                }
            }
        }
        for message in initial {
            let _ = sender.send(message);
        }
        state.watches.push(Watch {
            id,
            filter,
            position,
            sender,
        });
        (id, receiver)
    }

    /// Sends an open watch a BOOKMARK at the current resourceVersion.
    pub fn bookmark(&self, id: u64) {
        let mut state = self.lock();
        let resource_version = state.resource_version;
        if let Some(watch) = state.watches.iter_mut().find(|w| w.id == id) {
            watch.position = resource_version;
            let _ = watch.sender.send(WatchMessage::Bookmark {
                resource_version,
                initial_events_end: false,
            });
        }
    }

    /// Ends an open watch cleanly (its timeout expired), after a final BOOKMARK if wanted.
    pub fn end_watch(&self, id: u64, bookmark: bool) {
        if bookmark {
            self.bookmark(id);
        }
        let mut state = self.lock();
        if let Some(index) = state.watches.iter().position(|w| w.id == id) {
            let _ = state
                .watches
                .swap_remove(index)
                .sender
                .send(WatchMessage::End);
        }
    }

    pub fn remove_watch(&self, id: u64) {
        self.lock().watches.retain(|w| w.id != id);
    }

    /// Breaks every open watch connection.
    pub fn drop_watches(&self) {
        for watch in self.lock().watches.drain(..) {
            let _ = watch.sender.send(WatchMessage::Abort);
        }
    }

    /// Forgets all history: open watches get 410 Expired, as does any later watch from an
    /// older resourceVersion than the current one.
    pub fn expire_history(&self) {
        let mut state = self.lock();
        state.history.clear();
        state.history_floor = state.resource_version;
        let floor = state.history_floor;
        for watch in state.watches.drain(..) {
            let message = format!("too old resource version: {} ({floor})", watch.position);
            let _ = watch.sender.send(WatchMessage::Expired { message });
        }
    }

    /// The resourceVersion of the latest change.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    pub fn open_watches(&self) -> usize {
        self.lock().watches.len()
    }

    pub fn kind_of(&self, collection: &Collection) -> String {
        self.lock().kind_of(collection)
    }
}

impl State {
    fn find(&self, collection: &Collection, namespace: &str, name: &str) -> Option<&Stored> {
        self.collections
            .get(collection)?
            .items
            .get(&(namespace.to_string(), name.to_string()))
    }

    fn find_mut(
        &mut self,
        collection: &Collection,
        namespace: &str,
        name: &str,
    ) -> Option<&mut Stored> {
        self.collections
            .get_mut(collection)?
            .items
            .get_mut(&(namespace.to_string(), name.to_string()))
    }

    fn kind_of(&self, collection: &Collection) -> String {
        self.collections
            .get(collection)
            .and_then(|objects| objects.kind.clone())
            .unwrap_or_else(|| kind_for_resource(&collection.resource))
    }

    /// Tells open watches, the in-process feed and the history about a change that has just
    /// been given the current resourceVersion.
    fn record(
        &mut self,
        collection: &Collection,
        kind: ChangeKind,
        object: Value,
        previous: Option<Value>,
    ) {
        let resource_version = self.resource_version;
        self.watches.retain_mut(|watch| {
            if watch.filter.collection != *collection {
                return !watch.sender.is_closed();
            }
            match watch.filter.event_type(kind, &object, previous.as_ref()) {
                Some(event_type) => {
                    watch.position = resource_version;
                    let message = WatchMessage::Event {
                        event_type,
                        object: object.clone(),
                    };
                    watch.sender.send(message).is_ok()
                }
                None => !watch.sender.is_closed(),
            }
        });
        // Having no in-process subscribers is fine.
        let _ = self.changes.send(Change {
            kind,
            api_version: collection.api_version.clone(),
            resource: collection.resource.clone(),
            object: object.clone(),
        });
        self.history.push_back(HistoryEntry {
            resource_version,
            collection: collection.clone(),
            kind,
            object,
            previous,
        });
        if self.history.len() > MAX_HISTORY
            && let Some(forgotten) = self.history.pop_front()
        {
            self.history_floor = forgotten.resource_version;
        }
    }
}

/// What cert-manager's mutating webhook does to every CertificateRequest created: it records who
/// asked, from the API request's authenticated user, in `spec.username` and `spec.groups`,
/// overwriting whatever the client sent (approvers, such as csi-driver-spiffe's, trust these
/// fields). Service accounts get the groups the API server gives them; the test server knows no
/// UIDs, so `spec.uid` is left out.
fn stamp_requester(collection: &Collection, object: &mut Value, user: &str) {
    if collection.api_version != "cert-manager.io/v1"
        || collection.resource != "certificaterequests"
    {
        return;
    }
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let mut groups = Vec::new();
    if let Some(namespace) = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(namespace, _)| namespace)
    {
        groups.push("system:serviceaccounts".to_string());
        groups.push(format!("system:serviceaccounts:{namespace}"));
    }
    groups.push("system:authenticated".to_string());
    spec.insert("username".into(), json!(user));
    spec.insert("groups".into(), json!(groups));
    for key in ["uid", "extra"] {
        spec.remove(key);
    }
}

/// The kind for a resource nobody has created an object of yet (used only to name empty lists).
fn kind_for_resource(resource: &str) -> String {
    let known = [
        ("pods", "Pod"),
        ("events", "Event"),
        ("certificaterequests", "CertificateRequest"),
        ("secrets", "Secret"),
        ("configmaps", "ConfigMap"),
        ("namespaces", "Namespace"),
        ("serviceaccounts", "ServiceAccount"),
        ("nodes", "Node"),
        ("leases", "Lease"),
    ];
    if let Some((_, kind)) = known.iter().find(|(r, _)| *r == resource) {
        return kind.to_string();
    }
    let singular = resource.strip_suffix('s').unwrap_or(resource);
    let mut chars = singular.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn ensure_object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = json!({});
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

fn copy_member(to: &mut Map<String, Value>, from: &Map<String, Value>, key: &str) {
    match from.get(key) {
        Some(value) => to.insert(key.to_string(), value.clone()),
        None => to.remove(key),
    };
}

fn with_member(mut object: Value, key: &str, value: Option<&Value>) -> Value {
    if let Some(fields) = object.as_object_mut() {
        match value {
            Some(value) => fields.insert(key.to_string(), value.clone()),
            None => fields.remove(key),
        };
    }
    object
}

fn without_metadata_and_status(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(fields) = object.as_object_mut() {
        fields.remove("metadata");
        fields.remove("status");
    }
    object
}

fn meta_str<'v>(object: &'v Value, key: &str) -> &'v str {
    object
        .get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn object_namespace(object: &Value) -> &str {
    meta_str(object, "namespace")
}

fn resource_version_of(object: &Value) -> u64 {
    meta_str(object, "resourceVersion").parse().unwrap_or(0)
}

/// Now, as RFC 3339 with whole seconds in UTC, like Kubernetes' `metav1.Time`.
/// `after` from now, in RFC 3339 at second precision (as metadata timestamps are).
pub fn rfc3339_in(after: std::time::Duration) -> String {
    let at = time::OffsetDateTime::now_utc() + after;
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A random version-4 UUID.
fn random_uid() -> String {
    let mut bytes: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Five random lowercase letters, appended to `generateName`.
fn random_suffix() -> String {
    (0..5).map(|_| fastrand::lowercase()).collect()
}

#[cfg(test)]
mod tests;
