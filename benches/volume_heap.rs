//! What one idle volume costs on the heap: the driver in this process (embedded CA, plain
//! directories, no root needed) behind a counting allocator. Publishes N volumes, waits until the
//! node is idle, and prints the live heap per volume (bytes asked for, allocations, and what glibc
//! holds for them: each chunk is the request plus 8 bytes, rounded up to 16, at least 32); then
//! the same after a restart on the same data root, where every volume is reloaded from its record
//! (the state a node has after any restart).
//!
//! It tells where a change moves the per-volume figure without the noise of RSS (allocator
//! fragmentation, code pages); `cargo xtask bench scale` gives the RSS of the real binary.
//!
//! Run: `cargo bench --bench volume_heap` (`HEAP_VOLUMES=5000` for another count; default 2000).

// A counting global allocator cannot be written without `unsafe`: it only forwards to `System`.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::csi::client;
use cert_manager_csi_driver::demo::{SamplePod, sample_volume_context};
use cert_manager_csi_driver::driver::{self, MountMode};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Counts what is live on the heap: bytes asked for, allocations, and glibc's chunk sizes.
struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BLOCKS: AtomicI64 = AtomicI64::new(0);
static LIVE_CHUNK_BYTES: AtomicI64 = AtomicI64::new(0);

/// The size of the chunk glibc's malloc uses for a request of `size` bytes (64-bit).
fn glibc_chunk(size: usize) -> i64 {
    ((size + 8 + 15) & !15).max(32) as i64
}

fn count(size: usize, sign: i64) {
    LIVE_BYTES.fetch_add(sign * size as i64, Ordering::Relaxed);
    LIVE_BLOCKS.fetch_add(sign, Ordering::Relaxed);
    LIVE_CHUNK_BYTES.fetch_add(sign * glibc_chunk(size), Ordering::Relaxed);
}

// SAFETY: every call is passed to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size(), 1);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count(layout.size(), 1);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        count(layout.size(), -1);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count(layout.size(), -1);
            count(new_size, 1);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Clone, Copy)]
struct Heap {
    bytes: i64,
    blocks: i64,
    chunks: i64,
}

impl Heap {
    fn now() -> Heap {
        Heap {
            bytes: LIVE_BYTES.load(Ordering::Relaxed),
            blocks: LIVE_BLOCKS.load(Ordering::Relaxed),
            chunks: LIVE_CHUNK_BYTES.load(Ordering::Relaxed),
        }
    }

    fn per_volume_since(self, before: Heap, volumes: usize) -> String {
        let n = volumes as f64;
        format!(
            "{:.0} bytes asked for, {:.1} allocations, {:.0} bytes as glibc chunks ({:.2} MiB for 10,000 volumes)",
            (self.bytes - before.bytes) as f64 / n,
            (self.blocks - before.blocks) as f64 / n,
            (self.chunks - before.chunks) as f64 / n,
            (self.chunks - before.chunks) as f64 / n * 10_000.0 / 1024.0 / 1024.0,
        )
    }
}

fn main() -> ExitCode {
    common::block_on(run())
}

fn target_of(root: &Path, volume_id: &str) -> PathBuf {
    root.join(format!(
        "kubelet/pods/{volume_id}/volumes/kubernetes.io~csi/tls/mount"
    ))
}

/// Waits until the live heap stops moving (the key pool refilled, every task settled).
async fn settled() -> Heap {
    let mut last = Heap::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = Heap::now();
        if (now.chunks - last.chunks).abs() < 1024 {
            return now;
        }
        last = now;
    }
}

async fn run() -> BenchResult<()> {
    let volumes: usize = std::env::var("HEAP_VOLUMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let (_work, root) = common::work_dir("cm-csi-heap-")?;
    println!(
        "volume_heap: {volumes} volumes, the driver in this process (embedded CA, plain directories)"
    );
    let config = common::driver_config(&root, MountMode::PlainDirectories);

    let running = driver::start(config.clone()).await?;
    let csi = client::connect(running.socket_path()).await?;
    // One volume first, so that what is made once (connections, the key pool's keys of the
    // kind, lazily built tables) is not counted against every volume.
    publish(&csi, &root, 0..1).await?;
    let before = settled().await;
    publish(&csi, &root, 1..volumes + 1).await?;
    let after = settled().await;
    println!(
        "  published, idle: {}",
        after.per_volume_since(before, volumes)
    );
    println!(
        "    of which one volume's parsed attributes would be: {}",
        parsed_attributes_heap()
    );
    drop(csi);
    running.stop().await?;

    let base = settled().await;
    let running = driver::start(config).await?;
    let reloaded = settled().await;
    println!(
        "  restarted, every volume reloaded from its record: {}",
        reloaded.per_volume_since(base, volumes + 1)
    );
    running.stop().await?;
    Ok(())
}

/// The heap one volume's attributes take once parsed, had the volume kept them.
fn parsed_attributes_heap() -> String {
    let pod = SamplePod {
        name: "pod-00001".into(),
        namespace: "heap".into(),
        uid: "uid-00001".into(),
    };
    let context = sample_volume_context(&pod, &[(key::KEY_ALGORITHM, "ECDSA")]);
    let before = Heap::now();
    let parsed = cert_manager_csi_driver::attributes::parse_volume_context(&context);
    let after = Heap::now();
    drop(parsed);
    after.per_volume_since(before, 1)
}

async fn publish(
    csi: &client::CsiClient,
    root: &Path,
    indexes: std::ops::Range<usize>,
) -> BenchResult<()> {
    common::publish_sample_volumes(
        csi,
        indexes,
        "heap",
        &[(key::KEY_ALGORITHM, "ECDSA"), (key::RENEW_BEFORE, "240h")],
        |volume_id| target_of(root, volume_id),
        32,
    )
    .await?;
    Ok(())
}
