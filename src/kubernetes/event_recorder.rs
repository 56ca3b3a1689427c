//! Pod Events through the `events.k8s.io/v1` API. Recording never blocks the caller: events go
//! through a bounded queue to one task that writes them. A repeat of the same event (same pod,
//! type, reason and message) within a few minutes updates the first one's `series` count instead
//! of creating another object, as kubelet's own recorder does.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use super::{KubeConnection, api_status};
use crate::attributes::PodInfo;
use crate::pod_events::{PodEvent, PodEvents};

/// Events waiting to be written; beyond this, new ones are dropped (and logged) rather than
/// letting an API outage grow memory.
const QUEUE_CAPACITY: usize = 4096;
/// How long a repeat is folded into the earlier event.
const SERIES_WINDOW: Duration = Duration::from_secs(10 * 60);
/// The API server's limit on `note`.
const MAX_NOTE_BYTES: usize = 1024;

/// Sends pod Events to the API server.
pub struct KubeEvents {
    queue: mpsc::Sender<(PodInfo, PodEvent)>,
}

impl KubeEvents {
    /// Starts the writer task. `controller` is the driver name, `instance` identifies this node's
    /// driver.
    pub fn start(connection: KubeConnection, controller: String, instance: String) -> KubeEvents {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let writer = EventWriter {
            connection,
            controller,
            instance: truncate(&instance, 128).to_string(),
            recent: HashMap::new(),
        };
        tokio::spawn(writer.run(receiver));
        KubeEvents { queue }
    }
}

impl PodEvents for KubeEvents {
    fn record(&self, pod: &PodInfo, event: PodEvent) {
        if pod.namespace.is_empty() || pod.name.is_empty() {
            return;
        }
        if let Err(error) = self.queue.try_send((pod.clone(), event)) {
            tracing::warn!(
                pod = %pod,
                "pod event dropped: {error}"
            );
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey {
    pod_uid: String,
    pod: (String, String),
    event: PodEvent,
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
    recent: HashMap<EventKey, Recent>,
}

impl EventWriter {
    async fn run(mut self, mut receiver: mpsc::Receiver<(PodInfo, PodEvent)>) {
        while let Some((pod, event)) = receiver.recv().await {
            if let Err(error) = self.write(&pod, event).await {
                tracing::warn!(pod = %pod, %error, "could not write a pod event");
            }
        }
    }

    async fn write(&mut self, pod: &PodInfo, event: PodEvent) -> Result<(), kube::Error> {
        let now = tokio::time::Instant::now();
        self.recent
            .retain(|_, recent| now.duration_since(recent.last_seen) < SERIES_WINDOW);
        let api: Api<Event> = Api::namespaced(self.connection.client(), &pod.namespace);
        let key = EventKey {
            pod_uid: pod.uid.clone(),
            pod: (pod.namespace.clone(), pod.name.clone()),
            event: event.clone(),
        };
        if let Some(recent) = self.recent.get_mut(&key) {
            let count = recent.event.series.as_ref().map_or(2, |s| s.count + 1);
            let patch = serde_json::json!({
                "series": EventSeries { count, last_observed_time: MicroTime(Timestamp::now()) }
            });
            let name = recent.event.metadata.name.clone().unwrap_or_default();
            self.connection.throttle().await;
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(stored) => {
                    recent.event = stored;
                    recent.last_seen = now;
                    return Ok(());
                }
                // Expired or deleted meanwhile: start a new one.
                Err(error) if api_status(&error) == Some(404) => {}
                Err(error) => return Err(error),
            }
        }
        let fresh = self.new_event(pod, &event);
        self.connection.throttle().await;
        let stored = api.create(&PostParams::default(), &fresh).await?;
        self.recent.insert(
            key,
            Recent {
                event: stored,
                last_seen: now,
            },
        );
        Ok(())
    }

    fn new_event(&self, pod: &PodInfo, event: &PodEvent) -> Event {
        let now = Timestamp::now();
        Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    truncate(&pod.name, 200).trim_end_matches(['-', '.']),
                    now.as_nanosecond()
                )),
                namespace: Some(pod.namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(event.event_type.as_str().to_string()),
            reason: Some(event.reason.to_string()),
            action: Some(event.action.to_string()),
            note: Some(truncate(&event.message, MAX_NOTE_BYTES).to_string()),
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
    use super::truncate;

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }
}
