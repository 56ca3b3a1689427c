use std::collections::HashSet;

use super::*;
use crate::attributes::KeyEncoding;

const ECDSA_P256: KeyKind = KeyKind {
    algorithm: KeyAlgorithm::Ecdsa,
    size: 256,
};

fn spec_of(kind: KeyKind) -> KeySpec {
    KeySpec {
        algorithm: kind.algorithm,
        size: kind.size,
        encoding: KeyEncoding::Pkcs8,
    }
}

/// What a first issuance does: a pooled key, else a fresh one (see `make_key_and_csr`).
fn take_or_generate(pool: &KeyPool, spec: &KeySpec) -> Result<PrivateKey, KeyError> {
    match pool.take(KeyKind::of(spec)) {
        Some(key) => Ok(key),
        None => generate(spec),
    }
}

fn level_of(pool: &KeyPool, kind: KeyKind) -> Option<usize> {
    pool.levels()
        .into_iter()
        .find(|level| level.kind == kind)
        .map(|level| level.keys)
}

/// Polls for up to 30 s: the refill thread runs at the lowest priority on a shared machine.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn keys_are_handed_out_once_each_and_then_the_pool_misses() {
    let pool = KeyPool::idle(3);
    assert!(pool.take(ECDSA_P256).is_none(), "a new kind starts empty");
    while pool.refill_once() {}
    assert_eq!(level_of(&pool, ECDSA_P256), Some(3));

    let mut seen = HashSet::new();
    for _ in 0..3 {
        let key = pool.take(ECDSA_P256).expect("a pooled key");
        assert!(
            seen.insert(key.pkcs8.to_vec()),
            "a key was handed out twice"
        );
    }
    assert!(pool.take(ECDSA_P256).is_none());
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses), (3, 2));
    // What a miss falls back to is a fresh key, distinct from all handed out.
    let fresh = take_or_generate(&pool, &spec_of(ECDSA_P256)).unwrap();
    assert!(!seen.contains(fresh.pkcs8.as_slice()));
}

#[test]
fn a_pooled_key_encodes_as_the_volume_asks() {
    let pool = KeyPool::idle(1);
    assert!(pool.take(KeyKind::DEFAULT).is_none());
    assert!(pool.refill_once());
    let key = pool.take(KeyKind::DEFAULT).expect("a pooled RSA key");
    assert_eq!((key.algorithm(), key.size()), (KeyAlgorithm::Rsa, 2048));
    let pkcs1 = key.to_pem(KeyEncoding::Pkcs1).unwrap();
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let pkcs8 = key.to_pem(KeyEncoding::Pkcs8).unwrap();
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        PrivateKey::from_pem(&pkcs1).unwrap().pkcs8.as_slice(),
        key.pkcs8.as_slice()
    );
}

#[test]
fn only_a_bounded_number_of_kinds_is_pooled() {
    let pool = KeyPool::idle(2);
    let kinds: Vec<KeyKind> = [2048, 3072, 4096, 8192, 2560]
        .into_iter()
        .map(|size| KeyKind {
            algorithm: KeyAlgorithm::Rsa,
            size,
        })
        .collect();
    for kind in &kinds {
        assert!(pool.take(*kind).is_none());
    }
    let pooled: Vec<KeyKind> = pool.levels().iter().map(|level| level.kind).collect();
    assert_eq!(pooled, kinds[..MAX_KINDS].to_vec());
    // A kind beyond the bound is still served: generated on demand.
    let spec = spec_of(ECDSA_P256);
    assert!(take_or_generate(&pool, &spec).is_ok());
    assert_eq!(pool.levels().len(), MAX_KINDS);
}

#[test]
fn the_emptiest_kind_is_filled_first() {
    let pool = KeyPool::idle(2);
    pool.take(ECDSA_P256);
    while pool.refill_once() {}
    assert!(pool.take(ECDSA_P256).is_some());
    assert!(pool.take(ECDSA_P256).is_some());
    let p384 = KeyKind {
        algorithm: KeyAlgorithm::Ecdsa,
        size: 384,
    };
    pool.take(p384);
    // P-256 (emptied) and P-384 (new) hold 0, ahead of nothing else: P-256 was pooled first.
    assert!(pool.refill_once());
    assert_eq!(level_of(&pool, ECDSA_P256), Some(1));
    assert!(pool.refill_once());
    assert_eq!(level_of(&pool, p384), Some(1));
}

#[test]
fn kinds_nobody_asks_for_fall_idle_but_the_default_stays() {
    let pool = KeyPool::idle(1);
    pool.take(KeyKind::DEFAULT);
    pool.take(ECDSA_P256);
    let now = Instant::now();
    let mut state = pool.shared.state.lock();
    drop_idle(&mut state, now + IDLE_LIFETIME - Duration::from_secs(1));
    assert_eq!(state.kinds.len(), 2, "asked for recently: kept");
    drop_idle(&mut state, now + IDLE_LIFETIME + Duration::from_secs(1));
    let kinds: Vec<KeyKind> = state.kinds.iter().map(|pooled| pooled.kind).collect();
    assert_eq!(kinds, vec![KeyKind::DEFAULT]);
    assert_eq!(next_expiry(&state), None, "nothing left to time out");
}

#[test]
fn a_disabled_pool_hands_out_nothing_and_counts_misses() {
    let pool = KeyPool::start(0).unwrap();
    assert!(pool.take(KeyKind::DEFAULT).is_none());
    assert!(take_or_generate(&pool, &spec_of(ECDSA_P256)).is_ok());
    assert!(pool.levels().is_empty());
    assert_eq!(pool.stats().misses, 2);
}

#[test]
fn debug_output_shows_levels_and_no_key_material() {
    let pool = KeyPool::idle(1);
    pool.take(ECDSA_P256);
    assert!(pool.refill_once());
    let text = format!("{pool:?}");
    assert!(text.contains("ECDSA P-256: 1 keys"), "{text}");
    let key = pool.take(ECDSA_P256).unwrap();
    let shown = format!("{key:?}");
    assert!(shown.contains("<redacted>"));
    let der_hex: String = key
        .pkcs8
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!shown.contains(&der_hex));
}

#[test]
fn the_refill_thread_warms_the_default_fills_new_kinds_and_runs_at_idle_priority() {
    let pool = KeyPool::start(2).unwrap();
    eventually("two RSA 2048 keys", || {
        level_of(&pool, KeyKind::DEFAULT) == Some(2)
    });
    assert!(pool.take(ECDSA_P256).is_none());
    eventually("ECDSA keys", || level_of(&pool, ECDSA_P256) == Some(2));
    assert_eq!(policy_of_thread("key-pool"), Some(libc::SCHED_IDLE));
    // A taken key is replaced.
    assert!(pool.take(ECDSA_P256).is_some());
    eventually("the taken key replaced", || {
        level_of(&pool, ECDSA_P256) == Some(2)
    });
}

#[test]
fn the_refill_waits_while_node_work_runs() {
    let pool = KeyPool::start(3).unwrap();
    let busy = pool.busy();
    assert!(pool.take(ECDSA_P256).is_none());
    // An ECDSA key takes microseconds: had the thread not waited, some would be there by now.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(level_of(&pool, ECDSA_P256), Some(0));
    drop(busy);
    eventually("the refill after node work", || {
        level_of(&pool, ECDSA_P256) == Some(3)
    });
}

#[test]
fn dropping_the_pool_stops_its_thread() {
    let pool = KeyPool::start(1).unwrap();
    let shared = Arc::clone(&pool.shared);
    eventually("the thread to start", || {
        shared.thread_id.load(Ordering::Acquire) != 0
    });
    let task = format!(
        "/proc/self/task/{}",
        shared.thread_id.load(Ordering::Acquire)
    );
    assert!(std::path::Path::new(&task).exists());
    drop(pool);
    eventually("the thread to end", || {
        !std::path::Path::new(&task).exists()
    });
}

/// Thread ids of this process whose name is `name` (from `/proc/self/task`).
fn thread_ids_named(name: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            ids.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    ids
}

/// The scheduling policy of a thread named `name` (field 41 of its `stat`).
fn policy_of_thread(name: &str) -> Option<i32> {
    thread_ids_named(name).into_iter().find_map(|id| {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{id}/stat")).ok()?;
        // The name in parentheses may hold spaces; fields are counted after its closing one
        // (field 3 is the first after it).
        let after_name = &stat[stat.rfind(')')? + 2..];
        after_name.split(' ').nth(41 - 3)?.parse().ok()
    })
}
