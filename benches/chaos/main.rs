//! Chaos on one node: the real driver binary under pod churn, `kill -9` at random moments and
//! Kubernetes API outages, while a checker reads every published volume the way a pod does.
//!
//! The scenario an operator ran by hand, as a program: ~40 live volumes with 30 s ECDSA
//! certificates (renewed about every 20 s), one pod replaced every ~2 s, the driver killed every
//! 15–40 s and restarted at once, the API server frozen for 20–40 s twice per 6 minutes, lesser API
//! faults (watch cuts, 500s, restarts with 410 Gone, 429 storms, a slow signer), and the data root
//! (a tmpfs of its own) filled up for 10–25 s every 1–2 minutes, and once a node reboot (every
//! volume's tmpfs gone, the records kept, kubelet publishing every pod again). kubelet's
//! part is played closely enough to matter: a failed publish or unpublish is retried every second
//! until it succeeds, and a volume counts as published from a successful publish until its
//! unpublish starts.
//!
//! The result is printed, not asserted: violations by kind (0s included) and the latencies kubelet
//! would see. A program to run by hand, not a CI test.
//!
//! Run (as root: real tmpfs mounts):
//! `cargo bench --bench chaos -- [--minutes 6] [--volumes 40] [--seed S] [--keep]`

#[path = "../common/mod.rs"]
mod common;

mod checker;
mod faults;
mod node;
mod report;
mod run;
mod state;
mod teardown;
mod workload;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::certificate::{inspect_leaf, key_matches_certificate};
use cert_manager_csi_driver::csi::client::{self, CsiClient};
use cert_manager_csi_driver::csi::proto::{
    NodePublishVolumeRequest, NodeUnpublishVolumeRequest, ProbeRequest,
};
use cert_manager_csi_driver::demo::{SamplePod, publish_request, sample_volume_context};
use cert_manager_csi_driver::volume::mountinfo;
use kube_test_server::{Signer, TestApiServer};
use parking_lot::{Mutex, MutexGuard};
use tokio::task::JoinSet;
use tokio::time::Instant;

use checker::*;
use faults::*;
use node::*;
use report::*;
use run::*;
use state::*;
use teardown::*;
use workload::*;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const BINARY: &str = env!("CARGO_BIN_EXE_cert-manager-csi-driver");
const USAGE: &str =
    "usage: cargo bench --bench chaos -- [--minutes N] [--volumes N] [--seed S] [--keep]";

/// Certificate lifetime; with no renew-before the driver renews at two thirds (≈ 20 s).
const LIFETIME: &str = "30s";
/// The data root's own tmpfs: room for thousands of records, small enough to fill for a spell.
const DATA_ROOT_BYTES: u64 = 64 * 1024 * 1024;
const CHURN_EVERY_MS: std::ops::RangeInclusive<u64> = 1_500..=2_500;
const KILL_EVERY_MS: std::ops::RangeInclusive<u64> = 15_000..=40_000;
const OUTAGE_LENGTH_MS: std::ops::RangeInclusive<u64> = 20_000..=40_000;
/// Other API faults a real cluster has now and then: a watch cut by a load balancer, a 500.
const API_FAULT_EVERY_MS: std::ops::RangeInclusive<u64> = 20_000..=60_000;
/// Loopback answers in microseconds; a real API server takes milliseconds.
const API_LATENCY: Duration = Duration::from_millis(5);
/// No outage in the first seconds (volumes settle) nor the last ones (renewals catch up, so
/// the end state is judged with the API up).
const QUIET_START: Duration = Duration::from_secs(20);
const QUIET_END: Duration = Duration::from_secs(45);
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// kubelet's pause between retries of a failed CSI call (its backoff starts around here).
const KUBELET_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// kubelet gives every CSI node call 2 minutes (`csiTimeout`).
const KUBELET_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// After the chaos, how long pending publishes and unpublishes may still take to succeed.
const DRAIN_LIMIT: Duration = Duration::from_secs(90);
/// How long an expired certificate is tolerated after the outage that covered its renewal ends:
/// held requests go through at once on thawing, and a failed attempt is retried within
/// `--renewal-backoff-max`.
const EXPIRY_GRACE: Duration = Duration::from_secs(5);
const START_LIMIT: Duration = Duration::from_secs(60);

const MISMATCH: &str = "mismatch";
const UNREADABLE: &str = "unreadable";
const LOST_MOUNT: &str = "lost mount";
const EXPIRED: &str = "expired outside an outage";
const NEVER_PUBLISHED: &str = "publish never succeeded";
const LEFTOVERS: &str = "leftovers";
const VIOLATION_KINDS: [&str; 6] = [
    MISMATCH,
    UNREADABLE,
    LOST_MOUNT,
    EXPIRED,
    NEVER_PUBLISHED,
    LEFTOVERS,
];
const EXAMPLES_PER_KIND: usize = 5;

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("{error}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Ctrl-C drops the run, whose cleanup guard kills the driver and unmounts everything.
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = run(options) => result,
            _ = tokio::signal::ctrl_c() => Err("interrupted (cleaned up, no report)".into()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nchaos failed: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone, Copy)]
struct Options {
    minutes: f64,
    volumes: usize,
    seed: u64,
    /// Keep the node directory (driver log, state) after the run.
    keep: bool,
}

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            minutes: 6.0,
            volumes: 40,
            // A fresh seed each run unless given; it is printed so a run can be repeated.
            seed: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64),
            keep: false,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or(format!("{name} needs a value"))
            };
            match name.as_str() {
                // cargo bench passes --bench to harness = false programs.
                "--bench" => {}
                "--keep" => options.keep = true,
                "--minutes" => options.minutes = parse_number(&name, &value()?)?,
                "--volumes" => options.volumes = parse_number(&name, &value()?)?,
                "--seed" => options.seed = parse_number(&name, &value()?)?,
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        if options.volumes == 0 || options.minutes <= 0.0 {
            return Err("--volumes and --minutes must be positive".into());
        }
        Ok(options)
    }

    fn chaos_length(&self) -> Duration {
        Duration::from_secs_f64(self.minutes * 60.0)
    }
}

fn parse_number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{name}: {text:?} is not a number"))
}
