use super::*;

fn pods() -> Collection {
    Collection::new("v1", "pods")
}

fn filter(labels: &str) -> WatchFilter {
    WatchFilter {
        collection: pods(),
        namespace: None,
        labels: LabelSelector::parse(labels).unwrap(),
        fields: FieldSelector::default(),
    }
}

fn drain(receiver: &mut mpsc::UnboundedReceiver<WatchMessage>) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(message) = receiver.try_recv() {
        seen.push(match message {
            WatchMessage::Event { event_type, object } => {
                format!("{event_type} {}", meta_str(&object, "name"))
            }
            WatchMessage::Bookmark {
                resource_version, ..
            } => format!("BOOKMARK {resource_version}"),
            WatchMessage::Expired { message } => format!("EXPIRED {message}"),
            WatchMessage::End => "END".into(),
            WatchMessage::Abort => "ABORT".into(),
        });
    }
    seen
}

#[test]
fn create_fills_metadata() {
    let store = Store::default();
    let pod = store
        .create(
            &pods(),
            "ns",
            json!({"metadata": {"generateName": "p-"}}),
            Some("alice"),
        )
        .unwrap();
    let name = meta_str(&pod, "name");
    assert!(name.starts_with("p-") && name.len() == 7, "{name}");
    assert_eq!(meta_str(&pod, "namespace"), "ns");
    assert_eq!(meta_str(&pod, "uid").len(), 36);
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["apiVersion"], "v1");
    assert_eq!(pod["metadata"]["generation"], 1);
    assert!(meta_str(&pod, "creationTimestamp").ends_with('Z'));
    assert_eq!(
        store.created_by(&pods(), "ns", name).as_deref(),
        Some("alice")
    );
    let err = store
        .create(&pods(), "ns", json!({"metadata": {}}), None)
        .unwrap_err();
    assert_eq!((err.code, err.reason), (422, "Invalid"));
    let err = store
        .create(&pods(), "ns", json!({"metadata": {"name": name}}), None)
        .unwrap_err();
    assert_eq!((err.code, err.reason), (409, "AlreadyExists"));
}

#[test]
fn writes_bump_versions_and_keep_identity() {
    let store = Store::default();
    let pod = store
        .create(
            &pods(),
            "ns",
            json!({"metadata": {"name": "a"}, "spec": {"x": 1}}),
            None,
        )
        .unwrap();
    let version = meta_str(&pod, "resourceVersion").to_string();
    let updated = store
        .modify(&pods(), "ns", "a", Some(&version), Part::Main, |old| {
            let mut new = old.clone();
            new["spec"]["x"] = json!(2);
            new["status"] = json!({"ignored": true});
            new["metadata"]["uid"] = json!("changed");
            Ok(new)
        })
        .unwrap();
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_eq!(updated["metadata"]["uid"], pod["metadata"]["uid"]);
    assert!(updated.get("status").is_none());
    assert_ne!(meta_str(&updated, "resourceVersion"), version);
    let stale = store.modify(&pods(), "ns", "a", Some(&version), Part::Main, |o| {
        Ok(o.clone())
    });
    assert_eq!(stale.unwrap_err().reason, "Conflict");
    let status = store
        .modify(&pods(), "ns", "a", None, Part::Status, |old| {
            let mut new = old.clone();
            new["status"] = json!({"phase": "Running"});
            new["spec"]["x"] = json!(99);
            Ok(new)
        })
        .unwrap();
    assert_eq!(status["status"]["phase"], "Running");
    assert_eq!(status["spec"]["x"], 2);
    assert_eq!(status["metadata"]["generation"], 2);
    let unchanged = store
        .modify(&pods(), "ns", "a", None, Part::Whole, |o| Ok(o.clone()))
        .unwrap();
    assert_eq!(unchanged, status);
}

#[test]
fn watches_replay_history_and_see_label_transitions() {
    let store = Store::default();
    let start = store.list(&filter("")).resource_version;
    store
        .create(
            &pods(),
            "ns",
            json!({"metadata": {"name": "a", "labels": {"app": "x"}}}),
            None,
        )
        .unwrap();
    store
        .modify(&pods(), "ns", "a", None, Part::Whole, |old| {
            let mut new = old.clone();
            new["metadata"]["labels"]["app"] = json!("y");
            Ok(new)
        })
        .unwrap();
    let (_, mut replay) = store.watch(filter("app=x"), WatchStart::After(start));
    assert_eq!(drain(&mut replay), ["ADDED a", "DELETED a"]);
    let (_, mut snapshot) = store.watch(filter("app=y"), WatchStart::Snapshot);
    assert_eq!(drain(&mut snapshot), ["ADDED a"]);
    store.delete(&pods(), "ns", "a").unwrap();
    assert_eq!(drain(&mut snapshot), ["DELETED a"]);
    assert_eq!(drain(&mut replay), Vec::<String>::new());
    store.expire_history();
    assert_eq!(drain(&mut snapshot).len(), 1);
    let (_, mut old) = store.watch(filter(""), WatchStart::After(start));
    assert!(drain(&mut old)[0].starts_with("EXPIRED too old resource version"));
    assert_eq!(store.open_watches(), 0);
}
