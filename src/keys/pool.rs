//! Keys made before they are asked for (`--key-pool-size`).
//!
//! An RSA key takes tens to hundreds of milliseconds to generate (a search for primes), which is
//! most of what a default-attribute publish costs. The pool keeps a few finished keys of each kind
//! in demand, so a publish takes one instead of waiting for it:
//!
//! - **What is pooled.** The default kind (RSA 2048) from the start; any other kind once a first
//!   issuance asks for it, until it has not been asked for in [`IDLE_LIFETIME`]. At most
//!   [`MAX_KINDS`] kinds at once (the default among them), so memory is bounded by
//!   `size × MAX_KINDS` keys whatever the volumes ask for: with the default size of 16, 16 RSA
//!   2048 keys are about 19 KiB of PKCS#8, and the worst case (four kinds of RSA 8192) about
//!   300 KiB.
//! - **Who takes from it.** First issuances (a publish, or a volume kubelet is not waiting for),
//!   where a pod is waiting. Renewals make their own key: they are not waited for, and a renewal
//!   storm would otherwise empty the pool just before a rollout needs it.
//! - **Refilling** happens on one thread of its own, outside the async runtime, at the lowest
//!   scheduling priority (`SCHED_IDLE`, else nice 19), one key at a time, and not at all while node work (key, CSR,
//!   mount, file writes of any volume) is running or waiting for a permit: a publish never waits
//!   for CPU behind the refill. A publish that finds the pool empty generates its key at once, as
//!   without a pool.
//! - **Secrecy.** A pooled key is a [`PrivateKey`]: only in this process's memory, zeroed when
//!   dropped, redacted in `Debug`, never written anywhere. Taking one moves it out of the pool, so
//!   no key is handed out twice. A key is made earlier than without the pool, never seen by
//!   anyone else.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::time::Instant;

use super::{KeyError, PrivateKey, generate};
use crate::attributes::{KeyAlgorithm, KeySpec};

/// `--key-pool-size` when not given: a rollout of 16 default-attribute pods landing on one node
/// at once finds a key each.
pub const DEFAULT_SIZE: usize = 16;
/// The largest `--key-pool-size`: a node that starts more pods at once than this gains little from
/// more, and the bound keeps the worst case (every kind RSA 8192) near 20 MiB.
pub const MAX_SIZE: usize = 1024;
/// How many kinds of key are pooled at once; a kind asked for beyond this is generated on demand.
pub const MAX_KINDS: usize = 4;
/// A kind other than the default loses its pool when not asked for in this long.
pub const IDLE_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The thread's niceness should `SCHED_IDLE` be refused: the lowest `setpriority` offers.
const REFILL_NICENESS: i32 = 19;

/// What a key pool is keyed on: the encoding only matters when the key is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyKind {
    pub algorithm: KeyAlgorithm,
    /// Bits for RSA, curve size for ECDSA, 0 for Ed25519.
    pub size: u32,
}

impl KeyKind {
    /// RSA 2048: what a volume gets without `key-algorithm`, kept warm from the start.
    pub const DEFAULT: KeyKind = KeyKind::of(&KeySpec::DEFAULT);

    pub const fn of(spec: &KeySpec) -> KeyKind {
        KeyKind {
            algorithm: spec.algorithm,
            size: spec.size,
        }
    }

    fn spec(self) -> KeySpec {
        KeySpec {
            algorithm: self.algorithm,
            size: self.size,
            ..KeySpec::DEFAULT
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.spec().fmt(f)
    }
}

/// The pool shared by the volume manager (which takes keys) and the refill thread. Dropping the
/// last handle stops the thread.
pub struct KeyPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let levels: Vec<String> = self
            .levels()
            .iter()
            .map(|level| format!("{}: {} keys", level.kind, level.keys))
            .collect();
        f.debug_struct("KeyPool")
            .field("size", &self.shared.size)
            .field("levels", &levels)
            .finish_non_exhaustive()
    }
}

struct Shared {
    /// Keys kept per kind; 0 = no pool at all.
    size: usize,
    state: Mutex<State>,
    /// Wakes the refill thread: a key was taken, a kind was added, node work ended, or stop.
    refill: Condvar,
    /// Node work running or waiting for a permit; the refill waits for 0.
    busy: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
    /// The refill thread's id once it runs (0 before), so tests can watch it end.
    #[cfg(test)]
    thread_id: std::sync::atomic::AtomicI32,
}

#[derive(Default)]
struct State {
    kinds: Vec<Pooled>,
    stopping: bool,
}

struct Pooled {
    kind: KeyKind,
    keys: VecDeque<PrivateKey>,
    /// The last time a first issuance asked for this kind.
    last_wanted: Instant,
    /// A kind that failed to generate is not tried again (the publish's own attempt reports why).
    broken: bool,
}

/// One kind's pool, for metrics and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLevel {
    pub kind: KeyKind,
    pub keys: usize,
}

/// The pool's counters, for metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Keys handed out from the pool.
    pub hits: u64,
    /// Keys a first issuance had to generate itself (the pool was empty or off).
    pub misses: u64,
    pub levels: Vec<PoolLevel>,
}

/// Held while node work runs or waits for its permit: the refill thread waits until none is held.
pub struct BusyGuard {
    shared: Arc<Shared>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if self.shared.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Taking the lock orders this wake-up after the refill thread's check of `busy`.
            let _state = self.shared.state.lock();
            self.shared.refill.notify_all();
        }
    }
}

impl KeyPool {
    /// Starts a pool of `size` keys per kind, warming the default kind at once. `size` 0 gives a
    /// pool that holds nothing and starts no thread: every first issuance generates its own key.
    pub fn start(size: usize) -> Result<KeyPool, std::io::Error> {
        let pool = KeyPool::idle(size);
        if size > 0 {
            pool.shared.state.lock().kinds.push(Pooled {
                kind: KeyKind::DEFAULT,
                keys: VecDeque::with_capacity(size),
                last_wanted: Instant::now(),
                broken: false,
            });
            let shared = Arc::clone(&pool.shared);
            std::thread::Builder::new()
                .name("key-pool".into())
                // Key generation needs little stack; the default 2 MiB would only cost address
                // space, but say what is needed.
                .stack_size(256 * 1024)
                .spawn(move || refill_loop(&shared))?;
        }
        Ok(pool)
    }

    /// A pool that is never refilled (size 0, or a test driving [`KeyPool::refill_once`]).
    fn idle(size: usize) -> KeyPool {
        KeyPool {
            shared: Arc::new(Shared {
                size,
                state: Mutex::new(State::default()),
                refill: Condvar::new(),
                busy: AtomicUsize::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                #[cfg(test)]
                thread_id: std::sync::atomic::AtomicI32::new(0),
            }),
        }
    }

    /// No pool: every first issuance generates its own key.
    pub fn disabled() -> KeyPool {
        KeyPool::idle(0)
    }

    /// Takes a pooled key of `kind` (counted as a hit), or says there is none (a miss).
    pub fn take(&self, kind: KeyKind) -> Option<PrivateKey> {
        if self.shared.size == 0 {
            self.shared.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut state = self.shared.state.lock();
        let now = Instant::now();
        let key = match state.kinds.iter_mut().find(|pooled| pooled.kind == kind) {
            Some(pooled) => {
                pooled.last_wanted = now;
                pooled.keys.pop_front()
            }
            None => {
                if state.kinds.len() < MAX_KINDS {
                    state.kinds.push(Pooled {
                        kind,
                        keys: VecDeque::with_capacity(self.shared.size),
                        last_wanted: now,
                        broken: false,
                    });
                }
                None
            }
        };
        // Taking a key (or adding a kind) leaves room to fill.
        self.shared.refill.notify_all();
        drop(state);
        let counter = if key.is_some() {
            &self.shared.hits
        } else {
            &self.shared.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        key
    }

    /// Marks node work as running until the guard is dropped; the refill waits meanwhile.
    pub fn busy(&self) -> BusyGuard {
        self.shared.busy.fetch_add(1, Ordering::AcqRel);
        BusyGuard {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Keys kept per kind (0 = off).
    pub fn size(&self) -> usize {
        self.shared.size
    }

    /// How many keys each pooled kind holds now.
    pub fn levels(&self) -> Vec<PoolLevel> {
        self.shared
            .state
            .lock()
            .kinds
            .iter()
            .map(|pooled| PoolLevel {
                kind: pooled.kind,
                keys: pooled.keys.len(),
            })
            .collect()
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            hits: self.shared.hits.load(Ordering::Relaxed),
            misses: self.shared.misses.load(Ordering::Relaxed),
            levels: self.levels(),
        }
    }

    /// Generates one key for the first kind below its size, on the calling thread; `false` when
    /// every kind is full. What the refill thread does each round, callable from tests.
    #[cfg(test)]
    fn refill_once(&self) -> bool {
        // Bound first: a guard in the match's scrutinee would live through `store`'s own lock.
        let next = next_to_fill(&mut self.shared.state.lock(), self.shared.size);
        match next {
            Some(kind) => {
                let made = generate(&kind.spec());
                store(&self.shared, kind, made);
                true
            }
            None => false,
        }
    }
}

impl Drop for KeyPool {
    fn drop(&mut self) {
        self.shared.state.lock().stopping = true;
        self.shared.refill.notify_all();
    }
}

/// How long the node stays quiet (no node work, the pool full) before the heap is trimmed: one
/// wake-up after a burst, none while idle.
const QUIET_BEFORE_TRIM: Duration = Duration::from_secs(1);

/// The refill thread: fills each kind to the pool's size, one key at a time, while no node work
/// runs; drops kinds nobody asked for in a while; sleeps (no timer while only the default kind is
/// pooled, so an idle node never wakes it) when all are full.
fn refill_loop(shared: &Shared) {
    lower_own_priority();
    #[cfg(test)]
    shared.thread_id.store(
        rustix::thread::gettid().as_raw_nonzero().get(),
        Ordering::Release,
    );
    let mut state = shared.state.lock();
    // Node work ran, or keys were made, since the heap was last trimmed.
    let mut worked = false;
    // Whether the pages only start-up used were given back (see `memory`).
    let mut start_up_released = false;
    loop {
        if state.stopping {
            return;
        }
        if shared.busy.load(Ordering::Acquire) > 0 {
            worked = true;
            shared.refill.wait(&mut state);
            continue;
        }
        drop_idle(&mut state, Instant::now());
        match next_to_fill(&mut state, shared.size) {
            Some(kind) => {
                drop(state);
                let made = generate(&kind.spec());
                store(shared, kind, made);
                worked = true;
                state = shared.state.lock();
            }
            // The node has gone quiet and the pool is full: if it stays quiet a moment longer,
            // what the work left free on the heap goes back to the kernel (see `memory`).
            None if worked => {
                if shared
                    .refill
                    .wait_for(&mut state, QUIET_BEFORE_TRIM)
                    .timed_out()
                    && shared.busy.load(Ordering::Acquire) == 0
                {
                    worked = false;
                    drop(state);
                    crate::memory::release_free_heap();
                    if !start_up_released {
                        // The first quiet moment: start-up is over.
                        crate::memory::release_start_up_pages();
                        start_up_released = true;
                    }
                    state = shared.state.lock();
                }
            }
            None => match next_expiry(&state) {
                Some(at) => {
                    let timeout = at.saturating_duration_since(Instant::now());
                    shared.refill.wait_for(&mut state, timeout);
                }
                None => shared.refill.wait(&mut state),
            },
        }
    }
}

/// Drops the kinds other than the default that nobody asked for in [`IDLE_LIFETIME`]; dropping a
/// kind drops (and so zeroes) its keys.
fn drop_idle(state: &mut State, now: Instant) {
    state.kinds.retain(|pooled| {
        pooled.kind == KeyKind::DEFAULT || now.duration_since(pooled.last_wanted) < IDLE_LIFETIME
    });
}

/// The emptiest kind that has room and can be generated (the earliest pooled on a tie): a kind
/// that was just emptied is served before one that is merely short of full, so a cheap kind (an
/// ECDSA key takes microseconds) is not kept waiting behind a long RSA refill.
fn next_to_fill(state: &mut State, size: usize) -> Option<KeyKind> {
    state
        .kinds
        .iter()
        .filter(|pooled| !pooled.broken && pooled.keys.len() < size)
        .min_by_key(|pooled| pooled.keys.len())
        .map(|pooled| pooled.kind)
}

/// When the next kind other than the default may fall idle.
fn next_expiry(state: &State) -> Option<Instant> {
    state
        .kinds
        .iter()
        .filter(|pooled| pooled.kind != KeyKind::DEFAULT)
        .map(|pooled| pooled.last_wanted + IDLE_LIFETIME)
        .min()
}

/// Puts a freshly made key into its kind's pool, if the kind is still pooled and has room (it may
/// have been dropped meanwhile; the key is then dropped, and zeroed).
fn store(shared: &Shared, kind: KeyKind, made: Result<PrivateKey, KeyError>) {
    let mut state = shared.state.lock();
    let Some(pooled) = state.kinds.iter_mut().find(|pooled| pooled.kind == kind) else {
        return;
    };
    match made {
        Ok(key) if pooled.keys.len() < shared.size => pooled.keys.push_back(key),
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%kind, %error, "cannot pre-generate keys of this kind; publishes generate their own");
            pooled.broken = true;
        }
    }
}

/// `SCHED_IDLE` for this thread alone: it runs only on a CPU nothing else wants, and any other
/// thread that wakes preempts it at once. Nice 19 alone is not enough: the scheduler lets a
/// running nice-19 thread finish its slice (milliseconds) before a woken publish gets the CPU,
/// which the key pool bench showed as milliseconds added to publishes while the pool refilled.
/// Should the policy be refused, nice 19 (on Linux, `setpriority` on a thread id sets that
/// thread's niceness); failing both is logged, not fatal.
fn lower_own_priority() {
    if let Err(error) = set_idle_policy() {
        tracing::debug!(%error, "SCHED_IDLE refused for the key pool thread; using nice 19");
        let me = rustix::thread::gettid();
        if let Err(error) = rustix::process::setpriority_process(Some(me), REFILL_NICENESS) {
            tracing::warn!(%error, "cannot lower the key pool thread's priority");
        }
    }
}

/// `sched_setscheduler(0, SCHED_IDLE)`: pid 0 is the calling thread. Lowering one's own policy
/// needs no privilege.
#[allow(unsafe_code)]
fn set_idle_policy() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, initialised `sched_param` that outlives the call, which only
    // reads it; the call changes nothing but this thread's scheduling policy.
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests;
