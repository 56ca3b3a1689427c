//! Workload: kubelet's calls, retried like kubelet retries them, and the pod churn.

use super::*;

pub(crate) fn publish_request_for(volume: &Volume) -> NodePublishVolumeRequest {
    let pod = SamplePod {
        name: volume.pod.clone(),
        namespace: "chaos".into(),
        uid: volume.uid.clone(),
    };
    let mut context = sample_volume_context(
        &pod,
        &[(key::KEY_ALGORITHM, "ECDSA"), (key::DURATION, LIFETIME)],
    );
    // Renew at two thirds of the lifetime, cert-manager's default.
    context.remove(key::RENEW_BEFORE);
    publish_request(&volume.id, &volume.target, context)
}

/// One CSI call with kubelet's timeout; the error is the gRPC code's name and what the message
/// says, with the volume's own names and numbers taken out, so that failures of one cause count
/// together and every kind is explained in the report.
pub(crate) async fn with_kubelet_timeout<T>(
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<(), String> {
    match tokio::time::timeout(KUBELET_CALL_TIMEOUT, call).await {
        Ok(Ok(_)) => Ok(()),
        // What tonic's client says when nothing answers on the socket: the driver is down.
        Ok(Err(status)) if status.message() == "transport error" => Err(format!(
            "{:?}: transport error (the driver was down: kill -9 or reboot)",
            status.code()
        )),
        Ok(Err(status)) => Err(format!(
            "{:?}: {}",
            status.code(),
            failure_kind(status.message())
        )),
        Err(_) => Err("kubelet timeout".into()),
    }
}

/// A failure message with its particulars (IDs, paths, numbers, quoted values) masked.
fn failure_kind(message: &str) -> String {
    let mut kind = String::new();
    let mut in_number = false;
    for word in message.split_whitespace() {
        if !kind.is_empty() {
            kind.push(' ');
        }
        if word.contains('/') || word.starts_with('"') || word.starts_with('\'') {
            kind.push('…');
            continue;
        }
        for c in word.chars() {
            if c.is_ascii_digit() {
                if !in_number {
                    kind.push('#');
                }
                in_number = true;
            } else {
                in_number = false;
                kind.push(c);
            }
        }
        in_number = false;
    }
    if kind.chars().count() > 160 {
        kind = kind.chars().take(160).collect::<String>() + "…";
    }
    kind
}

/// Publishes like kubelet: retried after a pause until it succeeds (or the run gives up).
pub(crate) async fn kubelet_publish(chaos: Arc<Chaos>, volume: Volume) {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        if chaos.give_up.load(Ordering::Relaxed) {
            chaos.tally().never_published.push(volume);
            return;
        }
        attempts += 1;
        chaos.publishes_in_flight.fetch_add(1, Ordering::Relaxed);
        let mut node = chaos.client().node;
        let result =
            with_kubelet_timeout(node.node_publish_volume(publish_request_for(&volume))).await;
        chaos.publishes_in_flight.fetch_sub(1, Ordering::Relaxed);
        match result {
            Ok(()) => {
                let took = started.elapsed();
                chaos.published.lock().insert(volume.id.clone(), volume);
                chaos.tally().publishes.push((took, attempts));
                return;
            }
            Err(code) => {
                *chaos.tally().publish_errors.entry(code).or_default() += 1;
                tokio::time::sleep(KUBELET_RETRY_PAUSE).await;
            }
        }
    }
}

/// Unpublishes like kubelet (the volume already left the published set), retried until it
/// succeeds; times the whole thing.
pub(crate) async fn kubelet_unpublish(chaos: Arc<Chaos>, volume: Volume) {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        if chaos.give_up.load(Ordering::Relaxed) {
            chaos.tally().never_unpublished.push(volume);
            return;
        }
        attempts += 1;
        chaos.unpublishes_in_flight.fetch_add(1, Ordering::Relaxed);
        let mut node = chaos.client().node;
        let result =
            with_kubelet_timeout(node.node_unpublish_volume(unpublish_request(&volume))).await;
        chaos.unpublishes_in_flight.fetch_sub(1, Ordering::Relaxed);
        match result {
            Ok(()) => {
                chaos.tally().unpublishes.push(Unpublished {
                    volume_id: volume.id.clone(),
                    started,
                    ended: Instant::now(),
                    attempts,
                });
                return;
            }
            Err(code) => {
                *chaos.tally().unpublish_errors.entry(code).or_default() += 1;
                tokio::time::sleep(KUBELET_RETRY_PAUSE).await;
            }
        }
    }
}

pub(crate) fn unpublish_request(volume: &Volume) -> NodeUnpublishVolumeRequest {
    NodeUnpublishVolumeRequest {
        volume_id: volume.id.clone(),
        target_path: volume.target.display().to_string(),
    }
}

/// Every ~2 s one pod goes (a random published volume is unpublished) and a new one comes. Each
/// call runs on its own, as kubelet handles pods concurrently: a slow unpublish does not hold up
/// the next pod.
pub(crate) async fn churn_loop(
    chaos: &Arc<Chaos>,
    kubelet: &mut JoinSet<()>,
    mut rng: fastrand::Rng,
    mut names: fastrand::Rng,
    mut next_index: usize,
    deadline: Instant,
) -> BenchResult<()> {
    loop {
        let pause = random_duration(&mut rng, CHURN_EVERY_MS);
        if Instant::now() + pause >= deadline {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        let victim = {
            let mut published = chaos.published.lock();
            let ids: Vec<String> = published.keys().cloned().collect();
            rng.choice(ids).and_then(|id| published.remove(&id))
        };
        if let Some(victim) = victim {
            kubelet.spawn(kubelet_unpublish(Arc::clone(chaos), victim));
        }
        let volume = new_volume(&chaos.node, &mut names, next_index)?;
        next_index += 1;
        kubelet.spawn(kubelet_publish(Arc::clone(chaos), volume));
        // Reap finished calls as we go, surfacing a panic in one.
        while let Some(done) = kubelet.try_join_next() {
            done?;
        }
    }
}

/// Lets pending calls finish (the API is up again), then makes kubelet give up on the rest.
pub(crate) async fn drain(chaos: &Chaos, kubelet: &mut JoinSet<()>) -> BenchResult<()> {
    let limit = tokio::time::Instant::now() + DRAIN_LIMIT;
    loop {
        match tokio::time::timeout_at(limit, kubelet.join_next()).await {
            Ok(Some(done)) => done?,
            Ok(None) => return Ok(()),
            Err(_) => break,
        }
    }
    chaos.give_up.store(true, Ordering::Relaxed);
    while let Some(done) = kubelet.join_next().await {
        done?;
    }
    Ok(())
}
