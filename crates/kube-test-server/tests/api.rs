//! The server through the real kube client: CRUD, errors, authentication, faults, the audit
//! log, watches, and kube's event recorder.

mod common;

use common::{api_error, client};
use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Resource, ResourceExt};
use kube_test_server::{DRIVER_TOKEN, DRIVER_USER, TestApiServer};
use serde_json::json;
use std::pin::Pin;
use std::time::Duration;

fn pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap()
}

#[tokio::test]
async fn crud_round_trip() {
    let server = TestApiServer::start().await;
    let pods: Api<Pod> = Api::namespaced(client(&server, DRIVER_TOKEN).await, "ns1");

    let created = pods
        .create(&PostParams::default(), &pod("web-1", "web"))
        .await
        .unwrap();
    assert_eq!(created.namespace().as_deref(), Some("ns1"));
    assert_eq!(created.uid().unwrap().len(), 36);
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let first_version: u64 = created.resource_version().unwrap().parse().unwrap();
    assert_eq!(
        server.created_by("v1", "pods", "ns1", "web-1").as_deref(),
        Some(DRIVER_USER)
    );

    let fetched = pods.get("web-1").await.unwrap();
    assert_eq!(fetched.uid(), created.uid());

    let duplicate = api_error(
        pods.create(&PostParams::default(), &pod("web-1", "web"))
            .await,
    );
    assert_eq!(
        (duplicate.code, duplicate.reason.as_str()),
        (409, "AlreadyExists")
    );

    let mut generated = pod("", "db");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("db-".into());
    let generated = pods
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    assert!(generated.name_any().starts_with("db-") && generated.name_any().len() == 8);

    let nameless = api_error(pods.create(&PostParams::default(), &pod("", "x")).await);
    assert_eq!((nameless.code, nameless.reason.as_str()), (422, "Invalid"));

    let names = |list: kube::core::ObjectList<Pod>| {
        list.items.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    };
    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert!(web.metadata.resource_version.is_some());
    assert_eq!(names(web), ["web-1"]);
    let both = pods
        .list(&ListParams::default().labels("app in (web,db)"))
        .await
        .unwrap();
    assert_eq!(both.items.len(), 2);
    let by_name = pods
        .list(&ListParams::default().fields("metadata.name=web-1"))
        .await
        .unwrap();
    assert_eq!(names(by_name), ["web-1"]);
    let everywhere: Api<Pod> = Api::all(pods.clone().into_client());
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    let patched = pods
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.labels().get("tier").map(String::as_str),
        Some("front")
    );
    assert_eq!(patched.labels().get("app").map(String::as_str), Some("web"));
    let patched_version: u64 = patched.resource_version().unwrap().parse().unwrap();
    assert!(patched_version > first_version);

    let strategic = pods
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"annotations": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        strategic.annotations().get("a").map(String::as_str),
        Some("b")
    );
    // kube's `Patch::Json` needs its "jsonpatch" feature, so send a JSON patch by hand.
    let request = hyper::Request::patch("/api/v1/namespaces/ns1/pods/web-1")
        .header("Content-Type", "application/json-patch+json")
        .body(br#"[{"op": "add", "path": "/metadata/labels/json", "value": "yes"}]"#.to_vec())
        .unwrap();
    let json_patched: Pod = pods.clone().into_client().request(request).await.unwrap();
    assert_eq!(
        json_patched.labels().get("json").map(String::as_str),
        Some("yes")
    );

    let status = pods
        .patch_status(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    assert_eq!(status.status.unwrap().phase.as_deref(), Some("Running"));

    // A replace with an old resourceVersion loses.
    let stale = api_error(
        pods.replace("web-1", &PostParams::default(), &created)
            .await,
    );
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    let mut current = pods.get("web-1").await.unwrap();
    current
        .labels_mut()
        .insert("replaced".into(), "true".into());
    let replaced = pods
        .replace("web-1", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(
        replaced.labels().get("replaced").map(String::as_str),
        Some("true")
    );
    // Status survives a replace of the main resource.
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Running"));

    let deleted = pods
        .delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = deleted.left().expect("the deleted object");
    assert_eq!(deleted.name_any(), "web-1");
    let missing = api_error(pods.get("web-1").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "pods \"web-1\" not found");
    let missing = api_error(pods.delete("web-1", &DeleteParams::default()).await);
    assert_eq!(missing.code, 404);
    assert_eq!(server.get_object("v1", "pods", "ns1", "web-1"), None);

    let version = pods.into_client().apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
}

#[tokio::test]
async fn authentication_and_audit() {
    let server = TestApiServer::start().await;
    let anonymous: Api<Pod> = Api::namespaced(client(&server, "unknown-token").await, "ns");
    let refused = api_error(anonymous.get("x").await);
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (401, "Unauthorized")
    );

    server.add_token("alice-token", "alice");
    let alice: Api<Pod> = Api::namespaced(client(&server, "alice-token").await, "ns");
    alice
        .create(&PostParams::default(), &pod("a", "web"))
        .await
        .unwrap();
    assert_eq!(
        server.created_by("v1", "pods", "ns", "a").as_deref(),
        Some("alice")
    );
    server.reject_token("alice-token");
    assert_eq!(api_error(alice.get("a").await).code, 401);

    let requests = server.requests();
    let summary: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.user.as_deref(), r.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", None, 401),
            ("POST", Some("alice"), 201),
            ("GET", None, 401)
        ]
    );
    assert_eq!(requests[1].path, "/api/v1/namespaces/ns/pods");
    assert!(requests.windows(2).all(|w| w[0].at <= w[1].at));

    server.clear_requests();
    let driver: Api<Pod> = Api::namespaced(client(&server, DRIVER_TOKEN).await, "ns");
    driver
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].query, "&labelSelector=app%3Dweb");
    assert_eq!(requests[0].user.as_deref(), Some(DRIVER_USER));
    assert!(!requests[0].watch);
}

#[tokio::test]
async fn injected_faults_then_recovery() {
    let server = TestApiServer::start().await;
    server.create_object("v1", "pods", "ns", json!({"metadata": {"name": "p"}}));
    let pods: Api<Pod> = Api::namespaced(client(&server, DRIVER_TOKEN).await, "ns");

    server.fail_next(1, 500, Some("GET"), Some("/pods/p"));
    let failed = api_error(pods.get("p").await);
    assert_eq!(
        (failed.code, failed.reason.as_str()),
        (500, "InternalError")
    );
    pods.get("p").await.unwrap();

    // Requests that don't match are not affected and don't use the fault up.
    server.fail_next(1, 500, Some("DELETE"), None);
    pods.get("p").await.unwrap();
    assert_eq!(
        api_error(pods.delete("p", &DeleteParams::default()).await).code,
        500
    );

    // kube retries 503 by itself, so two of them are invisible to the caller.
    server.clear_requests();
    server.fail_next(2, 503, None, None);
    pods.get("p").await.unwrap();
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 200]);

    server.set_latency(Duration::from_millis(50));
    let started = tokio::time::Instant::now();
    pods.get("p").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50));
}

type PodEvents = Pin<Box<dyn Stream<Item = Result<Event<Pod>, watcher::Error>> + Send>>;

#[tokio::test]
async fn a_frozen_server_answers_nothing_until_it_thaws() {
    let server = TestApiServer::start().await;
    server.create_object("v1", "pods", "ns", json!({"metadata": {"name": "a"}}));
    let pods: Api<Pod> = Api::all(client(&server, DRIVER_TOKEN).await);
    let mut events: PodEvents = watcher(pods.clone(), watcher::Config::default()).boxed();
    assert_eq!(
        until(&mut events, "InitDone").await,
        ["Init", "InitApply a"]
    );

    server.set_frozen(true);
    let namespaced: Api<Pod> = Api::namespaced(client(&server, DRIVER_TOKEN).await, "ns");
    let get = tokio::spawn(async move { namespaced.get("a").await });
    server.create_object("v1", "pods", "ns", json!({"metadata": {"name": "b"}}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!get.is_finished(), "a request to a frozen server hangs");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), events.next())
            .await
            .is_err(),
        "a frozen server's watches deliver nothing"
    );

    server.set_frozen(false);
    assert_eq!(get.await.unwrap().unwrap().name_any(), "a");
    assert_eq!(
        next(&mut events).await,
        "Apply b",
        "held back, then delivered"
    );
}

/// The next watcher event, described as e.g. "Apply a" or "Error 410".
async fn next(events: &mut PodEvents) -> String {
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("timed out waiting for a watcher event")
        .expect("the watcher ended");
    match event {
        Ok(Event::Init) => "Init".into(),
        Ok(Event::InitApply(p)) => format!("InitApply {}", p.name_any()),
        Ok(Event::InitDone) => "InitDone".into(),
        Ok(Event::Apply(p)) => format!("Apply {}", p.name_any()),
        Ok(Event::Delete(p)) => format!("Delete {}", p.name_any()),
        Err(watcher::Error::WatchError(status)) => format!("Error {}", status.code),
        Err(other) => format!("Failed {other}"),
    }
}

/// Skips events (such as errors while reconnecting) until `wanted`; returns what was skipped.
async fn until(events: &mut PodEvents, wanted: &str) -> Vec<String> {
    let mut skipped = Vec::new();
    loop {
        let event = next(events).await;
        if event == wanted {
            return skipped;
        }
        assert!(skipped.len() < 20, "never saw {wanted:?}; saw {skipped:?}");
        skipped.push(event);
    }
}

fn label(server: &TestApiServer, name: &str, key: &str, value: &str) {
    server
        .update_object("v1", "pods", "ns", name, |pod| {
            pod["metadata"]["labels"][key] = json!(value);
        })
        .unwrap();
}

#[tokio::test]
async fn watcher_sees_adds_modifies_and_deletes() {
    let server = TestApiServer::start().await;
    server.create_object(
        "v1",
        "pods",
        "ns",
        json!({"metadata": {"name": "a", "labels": {"app": "web"}}}),
    );
    let pods: Api<Pod> = Api::all(client(&server, DRIVER_TOKEN).await);
    let mut events: PodEvents = watcher(pods, watcher::Config::default().labels("app=web")).boxed();
    assert_eq!(next(&mut events).await, "Init");
    assert_eq!(next(&mut events).await, "InitApply a");
    assert_eq!(next(&mut events).await, "InitDone");

    server.create_object(
        "v1",
        "pods",
        "ns",
        json!({"metadata": {"name": "b", "labels": {"app": "web"}}}),
    );
    assert_eq!(next(&mut events).await, "Apply b");
    server.create_object(
        "v1",
        "pods",
        "other",
        json!({"metadata": {"name": "c", "labels": {"app": "db"}}}),
    );
    label(&server, "b", "tier", "front");
    assert_eq!(next(&mut events).await, "Apply b");
    // Starting and stopping to match the selector look like an add and a delete.
    server.update_object("v1", "pods", "other", "c", |c| {
        c["metadata"]["labels"]["app"] = json!("web")
    });
    assert_eq!(next(&mut events).await, "Apply c");
    label(&server, "b", "app", "db");
    assert_eq!(next(&mut events).await, "Delete b");
    server.delete_object("v1", "pods", "ns", "a").unwrap();
    assert_eq!(next(&mut events).await, "Delete a");

    let watches: Vec<_> = server.requests().into_iter().filter(|r| r.watch).collect();
    assert_eq!(watches.len(), 1);
    let list = server.requests().into_iter().find(|r| !r.watch).unwrap();
    assert_eq!(list.path, "/api/v1/pods");
    assert_eq!(list.query, "&labelSelector=app%3Dweb&limit=500");
    assert!(watches[0].query.starts_with("&watch=true&timeoutSeconds=290&labelSelector=app%3Dweb&allowWatchBookmarks=true&resourceVersion="));
}

/// What a node's pod watch (kubelet's, or the CSI driver's) relies on: the `spec.nodeName` field
/// selector, kubelet's merge patches of `/status`, and a graceful deletion that shows as a
/// MODIFIED pod with `deletionTimestamp` before the pod goes away.
#[tokio::test]
async fn a_node_watch_sees_status_patches_and_a_graceful_deletion_before_the_delete() {
    let server = TestApiServer::start().await;
    for (name, node) in [("here", "node-a"), ("elsewhere", "node-b")] {
        server.create_object(
            "v1",
            "pods",
            "ns",
            json!({"metadata": {"name": name}, "spec": {"nodeName": node, "containers": []}}),
        );
    }
    let client = client(&server, DRIVER_TOKEN).await;
    let all: Api<Pod> = Api::all(client.clone());
    let mut events: PodEvents = watcher(
        all,
        watcher::Config::default().fields("spec.nodeName=node-a"),
    )
    .boxed();
    assert_eq!(
        until(&mut events, "InitDone").await,
        ["Init", "InitApply here"]
    );

    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let status = json!({"status": {"podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}]}});
    for name in ["elsewhere", "here"] {
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }
    // Only this node's pod, with its status and without the patch touching its spec.
    assert_eq!(next(&mut events).await, "Apply here");
    let here = pods.get("here").await.unwrap();
    let here_status = here.status.unwrap();
    assert_eq!(here_status.pod_ip.as_deref(), Some("10.0.0.7"));
    assert_eq!(here_status.pod_ips.unwrap()[0].ip, "10.0.0.7");
    assert_eq!(here.spec.unwrap().node_name.as_deref(), Some("node-a"));

    let marked = server
        .mark_deleting("v1", "pods", "ns", "here", 30)
        .unwrap();
    let since = marked["metadata"]["deletionTimestamp"].clone();
    assert!(since.is_string());
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(next(&mut events).await, "Apply here");
    let deleting = pods.get("here").await.unwrap();
    assert!(
        deleting.metadata.deletion_timestamp.is_some(),
        "still there, being deleted"
    );
    // Marking again keeps the first deadline (and writes nothing).
    let again = server.mark_deleting("v1", "pods", "ns", "here", 5).unwrap();
    assert_eq!(again["metadata"]["deletionTimestamp"], since);
    assert_eq!(
        again["metadata"]["resourceVersion"],
        marked["metadata"]["resourceVersion"]
    );
    server.delete_object("v1", "pods", "ns", "here").unwrap();
    assert_eq!(next(&mut events).await, "Delete here");
    assert!(
        server
            .mark_deleting("v1", "pods", "ns", "here", 30)
            .is_none()
    );
}

#[tokio::test]
async fn watcher_with_a_set_based_selector_sees_every_value_of_the_set() {
    let server = TestApiServer::start().await;
    let hash = "example.com/hash";
    let labelled = |name: &str, value: &str| json!({"metadata": {"name": name, "labels": {"example.com/hash": value}}});
    server.create_object("v1", "pods", "ns", labelled("new-1", "9bd6bbf5f"));
    server.create_object("v1", "pods", "ns", labelled("old-1", "35971be6e9bb024a"));
    server.create_object("v1", "pods", "ns", labelled("other", "f56fd9f8b"));
    let pods: Api<Pod> = Api::all(client(&server, DRIVER_TOKEN).await);
    let selector = format!("{hash} in (9bd6bbf5f,35971be6e9bb024a)");
    let mut events: PodEvents =
        watcher(pods.clone(), watcher::Config::default().labels(&selector)).boxed();
    assert_eq!(next(&mut events).await, "Init");
    let mut listed = vec![next(&mut events).await, next(&mut events).await];
    listed.sort();
    assert_eq!(listed, ["InitApply new-1", "InitApply old-1"]);
    assert_eq!(next(&mut events).await, "InitDone");

    server.create_object("v1", "pods", "ns", labelled("other-2", "f56fd9f8b"));
    server.create_object("v1", "pods", "ns", labelled("old-2", "35971be6e9bb024a"));
    assert_eq!(next(&mut events).await, "Apply old-2");
    label(&server, "other", hash, "9bd6bbf5f");
    assert_eq!(next(&mut events).await, "Apply other");
    label(&server, "old-1", hash, "f56fd9f8b");
    assert_eq!(next(&mut events).await, "Delete old-1");

    // The selector travels URL-encoded, and a list applies it as the watch does.
    let watch = server.requests().into_iter().find(|r| r.watch).unwrap();
    assert!(
        watch
            .query
            .contains("labelSelector=example.com%2Fhash+in+%289bd6bbf5f%2C35971be6e9bb024a%29"),
        "{}",
        watch.query
    );
    let mut names: Vec<String> = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    names.sort();
    assert_eq!(names, ["new-1", "old-2", "other"]);
    let invalid = api_error(
        pods.list(&ListParams::default().labels(&format!("{hash} in (-x)")))
            .await,
    );
    assert_eq!(invalid.code, 400);
}

#[tokio::test]
async fn watcher_survives_dropped_watches_and_expired_history() {
    let server = TestApiServer::start().await;
    let pods: Api<Pod> = Api::namespaced(client(&server, DRIVER_TOKEN).await, "ns");
    let mut events: PodEvents = watcher(pods, watcher::Config::default()).boxed();
    assert_eq!(until(&mut events, "InitDone").await, ["Init"]);
    server.create_object("v1", "pods", "ns", json!({"metadata": {"name": "x"}}));
    assert_eq!(next(&mut events).await, "Apply x");
    assert_eq!(server.open_watches(), 1);

    // A change made while the watch is broken arrives once the watcher resumes.
    server.drop_watches();
    label(&server, "x", "step", "1");
    let skipped = until(&mut events, "Apply x").await;
    assert!(
        skipped.iter().all(|e| e.starts_with("Failed")),
        "{skipped:?}"
    );
    assert_eq!(
        server.get_object("v1", "pods", "ns", "x").unwrap()["metadata"]["labels"]["step"],
        "1"
    );
    let watches: Vec<_> = server.requests().into_iter().filter(|r| r.watch).collect();
    assert_eq!(watches.len(), 2, "resumed without re-listing");

    // Forgotten history: the open watch is told 410 and the watcher re-lists.
    server.expire_history();
    label(&server, "x", "step", "2");
    assert_eq!(next(&mut events).await, "Error 410");
    assert_eq!(next(&mut events).await, "Init");
    assert_eq!(next(&mut events).await, "InitApply x");
    assert_eq!(next(&mut events).await, "InitDone");
    label(&server, "x", "step", "3");
    assert_eq!(next(&mut events).await, "Apply x");

    // Broken, and the history it would resume from forgotten: 410 on the new watch, re-list.
    server.drop_watches();
    label(&server, "x", "step", "4");
    server.expire_history();
    let skipped = until(&mut events, "InitApply x").await;
    assert!(skipped.contains(&"Error 410".to_string()), "{skipped:?}");
    assert_eq!(next(&mut events).await, "InitDone");
    server.delete_object("v1", "pods", "ns", "x").unwrap();
    assert_eq!(next(&mut events).await, "Delete x");
}

#[tokio::test]
async fn raw_watch_stream() {
    let server = TestApiServer::start().await;
    let pods: Api<Pod> = Api::namespaced(client(&server, DRIVER_TOKEN).await, "ns");
    let start = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    server.create_object("v1", "pods", "ns", json!({"metadata": {"name": "a"}}));

    // From an old resourceVersion: history replay, then a BOOKMARK, then the end at the timeout.
    let stream = pods
        .watch(&WatchParams::default().timeout(1), &start)
        .await
        .unwrap();
    let events: Vec<_> = stream.map(|e| e.unwrap()).collect().await;
    assert!(
        matches!(&events[0], WatchEvent::Added(p) if p.name_any() == "a"),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(WatchEvent::Bookmark(_))),
        "{events:?}"
    );

    // From a forgotten resourceVersion: a 410 ERROR event.
    server.expire_history();
    let mut stream = pods
        .watch(&WatchParams::default(), &start)
        .await
        .unwrap()
        .boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(status))) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.starts_with("too old resource version"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(stream.next().await.is_none());

    // Streaming lists: initial events, then a BOOKMARK saying they are done.
    let mut events: PodEvents = watcher(pods, watcher::Config::default().streaming_lists()).boxed();
    assert_eq!(until(&mut events, "InitApply a").await, ["Init"]);
    assert_eq!(next(&mut events).await, "InitDone");
    let streaming = server.requests().into_iter().rfind(|r| r.watch).unwrap();
    assert!(
        streaming.query.contains("sendInitialEvents=true"),
        "{}",
        streaming.query
    );
}

#[tokio::test]
async fn kube_event_recorder() {
    use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
    let server = TestApiServer::start().await;
    let pod = server.create_object("v1", "pods", "ns", json!({"metadata": {"name": "p"}}));
    let pod: Pod = serde_json::from_value(pod).unwrap();
    let reporter = Reporter {
        controller: "csi-driver".into(),
        instance: Some("node-1".into()),
    };
    let recorder = Recorder::new(client(&server, DRIVER_TOKEN).await, reporter);
    let event = KubeEvent {
        type_: EventType::Normal,
        reason: "Issued".into(),
        note: Some("certificate issued".into()),
        action: "Issue".into(),
        secondary: None,
    };
    recorder
        .publish(&event, &pod.object_ref(&()))
        .await
        .unwrap();
    recorder
        .publish(&event, &pod.object_ref(&()))
        .await
        .unwrap();

    let events = server.list_objects("events.k8s.io/v1", "events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["series"]["count"], 2);
    assert_eq!(events[0]["regarding"]["name"], "p");
    let writes: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.status))
        .collect();
    let name = events[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        writes,
        [
            (
                "POST".to_string(),
                "/apis/events.k8s.io/v1/namespaces/ns/events".to_string(),
                201
            ),
            (
                "PATCH".to_string(),
                format!("/apis/events.k8s.io/v1/namespaces/ns/events/{name}"),
                200
            ),
        ]
    );
}
