//! The end: teardown with the driver up, leftovers, the driver's log.

use super::*;

#[derive(Default)]
pub(crate) struct Teardown {
    pub(crate) volumes: usize,
    pub(crate) took: Duration,
    pub(crate) failed: Vec<String>,
}

/// kubelet deletes every pod: each volume it published, or tried to, is unpublished.
pub(crate) async fn teardown(chaos: &Chaos) -> Teardown {
    let started = Instant::now();
    let mut volumes: Vec<Volume> = std::mem::take(&mut *chaos.published.lock())
        .into_values()
        .collect();
    {
        let mut tally = chaos.tally();
        volumes.extend(tally.never_published.iter().cloned());
        volumes.append(&mut tally.never_unpublished);
    }
    let mut outcome = Teardown {
        volumes: volumes.len(),
        ..Teardown::default()
    };
    for volume in &volumes {
        let mut result = Err(String::new());
        for _ in 0..10 {
            let mut node = chaos.client().node;
            result =
                with_kubelet_timeout(node.node_unpublish_volume(unpublish_request(volume))).await;
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(KUBELET_RETRY_PAUSE).await;
        }
        if let Err(code) = result {
            outcome.failed.push(format!("{}: {code}", volume.id));
        }
    }
    outcome.took = started.elapsed();
    outcome
}

/// Anything a finished node should not have: mounts, volume records, target directories.
pub(crate) fn leftovers(node: &Node) -> Vec<String> {
    // The data root's own tmpfs is the bench's (a disk on a real node), not the driver's.
    let data_root = node.data_root();
    let mut found: Vec<String> = node
        .mounts()
        .into_iter()
        .filter(|mount| *mount != data_root)
        .map(|mount| format!("mount {}", mount.display()))
        .collect();
    if let Ok(records) = std::fs::read_dir(node.data_root().join("volumes")) {
        found.extend(
            records
                .flatten()
                .map(|record| format!("record {}", record.path().display())),
        );
    }
    if let Ok(pods) = std::fs::read_dir(node.pods()) {
        for pod in pods.flatten() {
            let target = pod.path().join("volumes/kubernetes.io~csi/tls/mount");
            if std::fs::symlink_metadata(&target).is_ok() {
                found.push(format!("target {}", target.display()));
            }
        }
    }
    found.sort();
    found
}

#[derive(Default)]
pub(crate) struct LogScan {
    pub(crate) panics: Vec<String>,
    pub(crate) errors: usize,
    pub(crate) warnings: usize,
}

pub(crate) fn scan_log(path: &Path) -> LogScan {
    let mut scan = LogScan::default();
    let Ok(file) = File::open(path) else {
        return scan;
    };
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        if line.contains("panicked") {
            scan.panics.push(line);
        } else if line.contains(" ERROR ") {
            scan.errors += 1;
        } else if line.contains(" WARN ") {
            scan.warnings += 1;
        }
    }
    scan
}
