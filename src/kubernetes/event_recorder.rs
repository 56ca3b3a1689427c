//! Pod Events through the `events.k8s.io/v1` API. Recording never blocks the caller: events go
//! into a bounded queue that one task writes from, within the Events' own share of the rate
//! limit ([`super::rate_limit::EVENT_SHARE`]), so no CertificateRequest waits behind them.
//!
//! What is kept and what is folded:
//! - A repeat of the same event (same pod, type, reason and message) is never written twice while
//!   one is queued: it adds to the queued one's count. Once written, a repeat within ten minutes
//!   updates the stored Event's `series` count instead of creating another object, as kubelet's
//!   recorder does; an Event written for several occurrences is created with its `series` at once.
//!   Counts are never lost by folding: `series.count` (1 when absent) sums to what was recorded.
//! - When the queue is deep (more than the Event budget sends in [`COLLAPSE_BACKLOG`]), a Normal
//!   event for a pod that already has a queued Normal event with the same reason and action is
//!   collapsed into that one: it keeps its place in the queue, takes the latest message (the note
//!   says `(combined from similar events)`) and adds the count. Normal events only report what
//!   went well; the latest says where a pod stands.
//! - Warnings are never collapsed with other messages, and never lost in favour of a Normal: when
//!   the queue is full (4096 entries) a Warning takes the place of the oldest queued Normal, and a
//!   new Normal is dropped. Only a queue full of Warnings drops a Warning. Every drop is logged.
//!
//! A queued event is taken only once the Event budget grants its write, so whatever arrives
//! while the writer waits for the budget is folded into what is queued.
//!
//! A write the API server fails (429, 5xx, no answer) puts the event back in its place and the
//! writer pauses, 0.25 s doubling, for up to [`WRITE_ATTEMPTS`] attempts; then, or on any other
//! refusal, it is given up on. Every event given up on is counted ([`PodEvents::dropped`], the
//! `certmanager_csi_events_dropped_total` metric), and stopping the driver writes what is queued.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{KubeConnection, api_status};
use crate::attributes::PodInfo;
use crate::pod_events::{EventType, PodEvent, PodEvents};

/// Events waiting to be written; beyond this, new ones are dropped (and logged) rather than
/// letting an API outage grow memory.
const QUEUE_CAPACITY: usize = 4096;
/// How long a repeat is folded into the earlier event.
const SERIES_WINDOW: Duration = Duration::from_secs(10 * 60);
/// The API server's limit on `note`.
const MAX_NOTE_BYTES: usize = 1024;
/// The queue is deep, and similar Normal events collapse, when it holds more than the Event
/// budget writes in this long (its burst included): beyond that an Event would show up in
/// `kubectl describe pod` noticeably late, and older successes are no longer news.
pub const COLLAPSE_BACKLOG: Duration = Duration::from_secs(2);
/// What a collapsed event's note starts with.
const COMBINED: &str = "(combined from similar events): ";
/// Attempts at writing one event that fails with an answer worth retrying (429, 5xx, no answer)
/// before it is given up on (and counted).
const WRITE_ATTEMPTS: u32 = 5;
/// The pause after the first failed attempt; it doubles after each further one (0.25, 0.5, 1, 2
/// s). The writer pauses as a whole: what fails for one event fails for the next.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Sends pod Events to the API server.
pub struct KubeEvents {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Something was queued, or the recorder is gone.
    wake: Notify,
    /// The writer finished a write and found the queue empty.
    idle: Notify,
}

impl KubeEvents {
    /// Starts the writer task. `controller` is the driver name, `instance` identifies this node's
    /// driver.
    pub fn start(connection: KubeConnection, controller: String, instance: String) -> KubeEvents {
        let events = connection.budget().events();
        let backlog = events.burst() + events.qps() * COLLAPSE_BACKLOG.as_secs_f64();
        let deep_at = (backlog.ceil() as usize).clamp(1, QUEUE_CAPACITY);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::new(QUEUE_CAPACITY, deep_at)),
            wake: Notify::new(),
            idle: Notify::new(),
        });
        let writer = EventWriter {
            connection,
            controller,
            instance: truncate(&instance, 128).to_string(),
            recent: HashMap::new(),
        };
        tokio::spawn(writer.run(shared.clone()));
        KubeEvents { shared }
    }

    /// Waits until everything recorded so far has been written (or failed to be).
    pub async fn flush(&self) {
        loop {
            let idle = self.shared.idle.notified();
            if self.shared.queue.lock().is_settled() {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for KubeEvents {
    /// The writer finishes what is queued, then ends.
    fn drop(&mut self) {
        self.shared.queue.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

impl PodEvents for KubeEvents {
    fn dropped(&self) -> u64 {
        self.shared.queue.lock().dropped
    }

    fn flush_within(
        &self,
        within: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(async move { tokio::time::timeout(within, self.flush()).await.is_ok() })
    }

    fn record(&self, pod: &PodInfo, event: PodEvent) {
        if pod.namespace.is_empty() || pod.name.is_empty() {
            return;
        }
        let outcome = self.shared.queue.lock().push(pod, event, Timestamp::now());
        match outcome {
            Pushed::Queued => self.shared.wake.notify_one(),
            Pushed::Folded => {}
            Pushed::Dropped { event, dropped } => {
                tracing::warn!(
                    pod = %pod,
                    reason = event.reason,
                    dropped,
                    "pod event dropped: {QUEUE_CAPACITY} events are waiting to be written"
                );
            }
            Pushed::Displaced { normal, dropped } => {
                self.shared.wake.notify_one();
                tracing::warn!(
                    pod = %normal.pod,
                    reason = normal.key.event.reason,
                    dropped,
                    "pod event dropped for a Warning: {QUEUE_CAPACITY} events are waiting to be \
                     written"
                );
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey {
    pod_uid: String,
    pod: (String, String),
    event: PodEvent,
}

impl EventKey {
    fn new(pod: &PodInfo, event: PodEvent) -> EventKey {
        EventKey {
            pod_uid: pod.uid.clone(),
            pod: (pod.namespace.clone(), pod.name.clone()),
            event,
        }
    }

    /// What Normal events collapse on when the queue is deep: the message left out.
    fn similar(&self) -> SimilarKey {
        SimilarKey {
            pod_uid: self.pod_uid.clone(),
            pod: self.pod.clone(),
            reason: self.event.reason,
            action: self.event.action,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SimilarKey {
    pod_uid: String,
    pod: (String, String),
    reason: &'static str,
    action: &'static str,
}

/// One queued write: an event and how often it (or, when `combined`, a similar one) happened.
#[derive(Debug, Clone)]
struct Pending {
    /// Its place in the queue (kept when a failed write puts it back).
    seq: u64,
    /// Failed attempts at writing it.
    attempts: u32,
    /// The event, with the latest message when `combined`.
    key: EventKey,
    pod: PodInfo,
    count: u32,
    /// Holds Normal events with different messages.
    combined: bool,
    first_seen: Timestamp,
    last_seen: Timestamp,
}

impl Pending {
    fn note(&self) -> String {
        let note = if self.combined {
            format!("{COMBINED}{}", self.key.event.message)
        } else {
            self.key.event.message.clone()
        };
        truncate(&note, MAX_NOTE_BYTES).to_string()
    }
}

/// What became of a recorded event.
#[derive(Debug)]
enum Pushed {
    /// A new entry.
    Queued,
    /// Counted in an entry already queued.
    Folded,
    /// Not kept: the queue is full. `dropped` counts every drop so far.
    Dropped { event: PodEvent, dropped: u64 },
    /// Queued (a Warning) in place of this Normal.
    Displaced { normal: Box<Pending>, dropped: u64 },
}

/// The events waiting for the writer, in the order they first arrived.
struct Queue {
    entries: BTreeMap<u64, Pending>,
    /// Entries by their event, for folding repeats.
    exact: HashMap<EventKey, u64>,
    /// Normal entries by pod, reason and action, for collapsing.
    similar: HashMap<SimilarKey, u64>,
    next: u64,
    capacity: usize,
    /// From this many entries on, similar Normal events collapse.
    deep_at: usize,
    dropped: u64,
    /// The writer has taken an entry and not finished writing it.
    writing: bool,
    closed: bool,
}

impl Queue {
    fn new(capacity: usize, deep_at: usize) -> Queue {
        Queue {
            entries: BTreeMap::new(),
            exact: HashMap::new(),
            similar: HashMap::new(),
            next: 0,
            capacity,
            deep_at,
            dropped: 0,
            writing: false,
            closed: false,
        }
    }

    fn push(&mut self, pod: &PodInfo, event: PodEvent, now: Timestamp) -> Pushed {
        let key = EventKey::new(pod, event);
        if let Some(entry) = self.exact.get(&key).and_then(|s| self.entries.get_mut(s)) {
            entry.count = entry.count.saturating_add(1);
            entry.last_seen = now;
            return Pushed::Folded;
        }
        let normal = key.event.event_type == EventType::Normal;
        let similar = (normal && self.entries.len() >= self.deep_at)
            .then(|| self.similar.get(&key.similar()).copied())
            .flatten();
        if let Some(seq) = similar
            && let Some(entry) = self.entries.get_mut(&seq)
        {
            self.exact.remove(&entry.key);
            entry.key = key.clone();
            entry.count = entry.count.saturating_add(1);
            entry.combined = true;
            entry.last_seen = now;
            self.exact.insert(key, seq);
            return Pushed::Folded;
        }
        let mut displaced = None;
        if self.entries.len() >= self.capacity {
            let oldest_normal = self
                .entries
                .iter()
                .find(|(_, entry)| entry.key.event.event_type == EventType::Normal)
                .map(|(&seq, _)| seq);
            match oldest_normal {
                Some(seq) if !normal => displaced = self.remove(seq),
                _ => {
                    self.dropped += 1;
                    return Pushed::Dropped {
                        event: key.event,
                        dropped: self.dropped,
                    };
                }
            }
        }
        let seq = self.next;
        self.next += 1;
        if normal {
            self.similar.insert(key.similar(), seq);
        }
        self.exact.insert(key.clone(), seq);
        self.entries.insert(
            seq,
            Pending {
                seq,
                attempts: 0,
                key,
                pod: pod.clone(),
                count: 1,
                combined: false,
                first_seen: now,
                last_seen: now,
            },
        );
        match displaced {
            Some(normal) => {
                self.dropped += 1;
                Pushed::Displaced {
                    normal: Box::new(normal),
                    dropped: self.dropped,
                }
            }
            None => Pushed::Queued,
        }
    }

    fn remove(&mut self, seq: u64) -> Option<Pending> {
        let entry = self.entries.remove(&seq)?;
        if self.exact.get(&entry.key) == Some(&seq) {
            self.exact.remove(&entry.key);
        }
        let similar = entry.key.similar();
        if self.similar.get(&similar) == Some(&seq) {
            self.similar.remove(&similar);
        }
        Some(entry)
    }

    /// An entry whose write failed, back in its place to be tried again. A repeat queued
    /// meanwhile is folded into it.
    fn put_back(&mut self, mut entry: Pending) {
        if let Some(seq) = self.exact.get(&entry.key).copied()
            && let Some(newer) = self.remove(seq)
        {
            entry.count = entry.count.saturating_add(newer.count);
            entry.last_seen = newer.last_seen;
        }
        if entry.key.event.event_type == EventType::Normal {
            self.similar.entry(entry.key.similar()).or_insert(entry.seq);
        }
        self.exact.insert(entry.key.clone(), entry.seq);
        self.entries.insert(entry.seq, entry);
    }

    /// The oldest entry, for writing.
    fn take(&mut self) -> Option<Pending> {
        let seq = *self.entries.keys().next()?;
        self.remove(seq)
    }

    fn is_settled(&self) -> bool {
        self.entries.is_empty() && !self.writing
    }
}

struct Recent {
    /// The stored event, as last written.
    event: Event,
    last_seen: tokio::time::Instant,
}

struct EventWriter {
    connection: KubeConnection,
    controller: String,
    instance: String,
    /// Events written within [`SERIES_WINDOW`], by event and whether it was combined.
    recent: HashMap<(EventKey, bool), Recent>,
}

impl EventWriter {
    async fn run(mut self, shared: Arc<Shared>) {
        loop {
            let wake = shared.wake.notified();
            let state = {
                let queue = shared.queue.lock();
                (queue.entries.is_empty(), queue.closed)
            };
            match state {
                (true, true) => return,
                (true, false) => {
                    wake.await;
                    continue;
                }
                (false, _) => {}
            }
            // The permit first: what arrives during the wait folds into the queued entry.
            self.connection.throttle_event().await;
            let entry = {
                let mut queue = shared.queue.lock();
                let entry = queue.take();
                queue.writing = entry.is_some();
                entry
            };
            let mut pause = None;
            if let Some(mut entry) = entry
                && let Err(error) = self.write(&entry).await
            {
                entry.attempts += 1;
                let retry = super::is_transient(&error) && entry.attempts < WRITE_ATTEMPTS;
                if retry {
                    let wait = (RETRY_PAUSE * 2u32.pow(entry.attempts - 1))
                        .max(super::retry_after(&error).unwrap_or_default());
                    tracing::debug!(pod = %entry.pod, reason = entry.key.event.reason, attempts = entry.attempts, retry_in = ?wait, %error, "pod event not written; trying again");
                    pause = Some(wait);
                    shared.queue.lock().put_back(entry);
                } else {
                    shared.queue.lock().dropped += 1;
                    if super::is_namespace_terminating(&error) {
                        // The pod goes with its namespace; nobody will read the Event.
                        tracing::debug!(pod = %entry.pod, %error, "pod event not written: its namespace is being deleted");
                    } else {
                        tracing::warn!(pod = %entry.pod, reason = entry.key.event.reason, attempts = entry.attempts, %error, "pod event dropped: it could not be written");
                    }
                }
            }
            let settled = {
                let mut queue = shared.queue.lock();
                queue.writing = false;
                queue.is_settled()
            };
            if settled {
                shared.idle.notify_waiters();
            }
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Writes one entry, a permit of the Event budget already taken.
    async fn write(&mut self, entry: &Pending) -> Result<(), kube::Error> {
        let now = tokio::time::Instant::now();
        self.recent
            .retain(|_, recent| now.duration_since(recent.last_seen) < SERIES_WINDOW);
        let api: Api<Event> = Api::namespaced(self.connection.client(), &entry.pod.namespace);
        let count = i32::try_from(entry.count).unwrap_or(i32::MAX);
        let recent_key = (entry.key.clone(), entry.combined);
        if let Some(recent) = self.recent.get_mut(&recent_key) {
            let before = recent.event.series.as_ref().map_or(1, |s| s.count);
            let patch = serde_json::json!({
                "series": EventSeries {
                    count: before.saturating_add(count),
                    last_observed_time: MicroTime(entry.last_seen),
                }
            });
            let name = recent.event.metadata.name.clone().unwrap_or_default();
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(stored) => {
                    recent.event = stored;
                    recent.last_seen = now;
                    return Ok(());
                }
                // Expired or deleted meanwhile: start a new one, with another permit.
                Err(error) if api_status(&error) == Some(404) => {
                    self.connection.throttle_event().await;
                }
                Err(error) => return Err(error),
            }
        }
        let fresh = self.new_event(entry);
        let stored = api.create(&PostParams::default(), &fresh).await?;
        self.recent.insert(
            recent_key,
            Recent {
                event: stored,
                last_seen: now,
            },
        );
        Ok(())
    }

    fn new_event(&self, entry: &Pending) -> Event {
        let (pod, event) = (&entry.pod, &entry.key.event);
        Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    truncate(&pod.name, 200).trim_end_matches(['-', '.']),
                    Timestamp::now().as_nanosecond()
                )),
                namespace: Some(pod.namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(entry.first_seen)),
            // The API server accepts a series only from the second occurrence on.
            series: (entry.count >= 2).then(|| EventSeries {
                count: i32::try_from(entry.count).unwrap_or(i32::MAX),
                last_observed_time: MicroTime(entry.last_seen),
            }),
            type_: Some(event.event_type.as_str().to_string()),
            reason: Some(event.reason.to_string()),
            action: Some(event.action.to_string()),
            note: Some(entry.note()),
            regarding: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: (!pod.uid.is_empty()).then(|| pod.uid.clone()),
                ..ObjectReference::default()
            }),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }
}

/// The longest prefix of `text` within `max` bytes, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> PodInfo {
        PodInfo {
            name: name.into(),
            namespace: "apps".into(),
            uid: format!("uid-{name}"),
            service_account: None,
        }
    }

    fn issued(volume: &str) -> PodEvent {
        PodEvent::normal(
            "CertificateIssued",
            "Issue",
            format!("volume {volume}: issued"),
        )
    }

    fn denied(volume: &str) -> PodEvent {
        PodEvent::warning(
            "CertificateRequestDenied",
            "Issue",
            format!("volume {volume}: no"),
        )
    }

    fn drain(queue: &mut Queue) -> Vec<Pending> {
        std::iter::from_fn(|| queue.take()).collect()
    }

    #[test]
    fn repeats_fold_into_the_queued_entry_with_their_count() {
        let mut queue = Queue::new(16, 16);
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = Timestamp::from_second(60).unwrap();
        for _ in 0..5 {
            queue.push(&pod("a"), denied("v1"), t0);
        }
        queue.push(&pod("b"), denied("v1"), t0);
        queue.push(&pod("a"), denied("v1"), t1);
        let written = drain(&mut queue);
        assert_eq!(written.len(), 2);
        assert_eq!((written[0].pod.name.as_str(), written[0].count), ("a", 6));
        assert_eq!((written[0].first_seen, written[0].last_seen), (t0, t1));
        assert_eq!((written[1].pod.name.as_str(), written[1].count), ("b", 1));
        assert!(!written[0].combined);
        // Taken entries no longer fold: the writer turns a later repeat into a series update.
        assert!(matches!(
            queue.push(&pod("a"), denied("v1"), t1),
            Pushed::Queued
        ));
    }

    #[test]
    fn a_deep_queue_collapses_similar_normals_into_the_latest_but_never_warnings() {
        let mut queue = Queue::new(64, 3);
        let now = Timestamp::UNIX_EPOCH;
        for volume in 0..10 {
            queue.push(&pod("a"), issued(&format!("v{volume}")), now);
            queue.push(&pod("a"), denied(&format!("v{volume}")), now);
        }
        queue.push(&pod("b"), issued("v0"), now);
        queue.push(
            &pod("a"),
            PodEvent::normal("CertificateRenewed", "Renew", "r".into()),
            now,
        );
        let written = drain(&mut queue);
        let normals: Vec<_> = written
            .iter()
            .filter(|entry| entry.key.event.event_type == EventType::Normal)
            .collect();
        let warnings: Vec<_> = written
            .iter()
            .filter(|entry| entry.key.event.event_type == EventType::Warning)
            .collect();
        // Below the depth of 3 entries nothing collapses: v0 Issued, v0 Denied, v1 Issued.
        assert_eq!(normals[0].note(), "volume v0: issued");
        assert_eq!(normals[0].count, 1);
        // From there on, a's Issued events are one entry in v1's place with the latest message.
        assert_eq!(normals[1].count, 9);
        assert!(normals[1].combined);
        assert_eq!(
            normals[1].note(),
            "(combined from similar events): volume v9: issued"
        );
        assert_eq!(written[2].key, normals[1].key, "it kept its place");
        // Another pod and another reason are not similar.
        assert_eq!(normals[2].pod.name, "b");
        assert_eq!(normals[3].key.event.reason, "CertificateRenewed");
        assert_eq!(normals.len(), 4);
        // Every Warning is its own entry.
        assert_eq!(warnings.len(), 10);
        assert!(
            warnings
                .iter()
                .all(|entry| entry.count == 1 && !entry.combined)
        );
        let sum: u32 = written.iter().map(|entry| entry.count).sum();
        assert_eq!(sum, 22, "no occurrence lost");
    }

    #[test]
    fn a_full_queue_drops_normals_and_makes_room_for_warnings() {
        let mut queue = Queue::new(4, 4);
        let now = Timestamp::UNIX_EPOCH;
        queue.push(&pod("w"), denied("v0"), now);
        for name in ["n1", "n2", "n3"] {
            queue.push(&pod(name), issued("v"), now);
        }
        assert!(matches!(
            queue.push(&pod("n4"), issued("v"), now),
            Pushed::Dropped { dropped: 1, .. }
        ));
        // A repeat needs no room.
        assert!(matches!(
            queue.push(&pod("n2"), issued("v"), now),
            Pushed::Folded
        ));
        // A full queue collapses similar Normals instead of dropping them.
        assert!(matches!(
            queue.push(&pod("n3"), issued("other"), now),
            Pushed::Folded
        ));
        for (i, name) in ["x1", "x2", "x3"].iter().enumerate() {
            match queue.push(&pod(name), denied("v"), now) {
                Pushed::Displaced { normal, dropped } => {
                    assert_eq!(normal.pod.name, format!("n{}", i + 1), "the oldest Normal");
                    assert_eq!(dropped, 2 + i as u64);
                }
                other => panic!("{other:?}"),
            }
        }
        // Only Warnings left: a Warning is dropped now, and so is a Normal.
        assert!(matches!(
            queue.push(&pod("x4"), denied("v"), now),
            Pushed::Dropped { dropped: 5, .. }
        ));
        assert!(matches!(
            queue.push(&pod("n5"), issued("v"), now),
            Pushed::Dropped { dropped: 6, .. }
        ));
        let written: Vec<_> = drain(&mut queue)
            .into_iter()
            .map(|entry| entry.pod.name)
            .collect();
        assert_eq!(written, ["w", "x1", "x2", "x3"]);
        assert!(queue.exact.is_empty() && queue.similar.is_empty());
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }
}
