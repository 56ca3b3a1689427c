//! `cargo bench --bench keygen`: what a volume's private key costs, per algorithm and size.
//!
//! A program, not a test: it prints figures and asserts nothing about them. Key generation is
//! the dominant CPU cost of a publish for RSA, and RSA generation time is random (it searches for
//! primes), so each size is sampled repeatedly and reported as a distribution. For each key it
//! also times what follows generation in a publish: building the CSR (a signature with the new
//! key) and encoding the key as PEM.
//!
//! Sample counts adapt to a time budget per measurement, so the whole run stays within about two
//! minutes on a slow machine while fast operations still get thousands of samples.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use cert_manager_csi_driver::attributes::{self, CertRequestSpec, KeySpec, key};
use cert_manager_csi_driver::demo::{self, SamplePod};
use cert_manager_csi_driver::keys::{self, PrivateKey};
use tokio::time::Instant;

/// How many samples to take of one operation: at least `min`, at most `max`, and no more once
/// `budget` is spent. The minimum wins over the budget so every figure rests on a few samples.
#[derive(Debug, Clone, Copy)]
struct Plan {
    min: usize,
    max: usize,
    budget: Duration,
}

impl Plan {
    const fn new(min: usize, max: usize, budget_ms: u64) -> Plan {
        Plan {
            min,
            max,
            budget: Duration::from_millis(budget_ms),
        }
    }
}

/// One key type to measure. `overrides` are the volume attributes that ask for it, so the spec
/// comes from the parser exactly as in a real publish.
struct Case {
    label: &'static str,
    /// Which implementation generates it: aws-lc for the common sizes, the pure-Rust `rsa`
    /// crate for any other RSA size.
    backend: &'static str,
    overrides: &'static [(&'static str, &'static str)],
    keygen: Plan,
}

/// Key generation plans: RSA is slow and grows steeply with size (8192 can take seconds per key),
/// ECDSA and Ed25519 are cheap enough for thousands of samples.
const CASES: &[Case] = &[
    Case {
        label: "RSA 2048",
        backend: "aws-lc",
        overrides: &[(key::KEY_ALGORITHM, "RSA"), (key::KEY_SIZE, "2048")],
        keygen: Plan::new(20, 50, 10_000),
    },
    Case {
        label: "RSA 3072",
        backend: "aws-lc",
        overrides: &[(key::KEY_ALGORITHM, "RSA"), (key::KEY_SIZE, "3072")],
        keygen: Plan::new(10, 30, 10_000),
    },
    Case {
        label: "RSA 4096",
        backend: "aws-lc",
        overrides: &[(key::KEY_ALGORITHM, "RSA"), (key::KEY_SIZE, "4096")],
        keygen: Plan::new(8, 20, 15_000),
    },
    Case {
        label: "RSA 8192",
        backend: "aws-lc",
        overrides: &[(key::KEY_ALGORITHM, "RSA"), (key::KEY_SIZE, "8192")],
        keygen: Plan::new(3, 10, 30_000),
    },
    Case {
        label: "RSA 2056",
        backend: "rsa crate",
        overrides: &[(key::KEY_ALGORITHM, "RSA"), (key::KEY_SIZE, "2056")],
        keygen: Plan::new(8, 20, 12_000),
    },
    Case {
        label: "RSA 3000",
        backend: "rsa crate",
        overrides: &[(key::KEY_ALGORITHM, "RSA"), (key::KEY_SIZE, "3000")],
        keygen: Plan::new(5, 15, 15_000),
    },
    Case {
        label: "ECDSA P-256",
        backend: "aws-lc",
        overrides: &[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "256")],
        keygen: Plan::new(100, 2000, 2_000),
    },
    Case {
        label: "ECDSA P-384",
        backend: "aws-lc",
        overrides: &[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "384")],
        keygen: Plan::new(100, 2000, 2_000),
    },
    Case {
        label: "ECDSA P-521",
        backend: "aws-lc",
        overrides: &[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "521")],
        keygen: Plan::new(100, 2000, 2_000),
    },
    Case {
        label: "Ed25519",
        backend: "aws-lc",
        overrides: &[(key::KEY_ALGORITHM, "Ed25519")],
        keygen: Plan::new(100, 2000, 2_000),
    },
];

/// CSR building signs once with the new key (slow for big RSA keys); PEM encoding is a copy and
/// base64, microseconds at most.
const CSR_PLAN: Plan = Plan::new(10, 2000, 1_500);
const PEM_PLAN: Plan = Plan::new(100, 2000, 500);

type BenchResult<T> = Result<T, String>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keygen bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> BenchResult<()> {
    let started = Instant::now();
    print_header();
    for case in CASES {
        let rows = measure_case(case)?;
        for row in &rows {
            print_row(row);
        }
    }
    println!();
    println!("total run time: {}", human(started.elapsed()));
    Ok(())
}

fn print_header() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("key generation, CSR and PEM cost per key type (keys::generate, keys::build_csr)");
    println!("  cpu    {}", common::cpu_model());
    println!("  cores  {cores} (one thread used)");
    if cfg!(debug_assertions) {
        // The figures of an unoptimised build say little about the driver in production.
        println!("  NOTE   debug build: run with `cargo bench --bench keygen` for real figures");
    }
    println!();
    println!(
        "{:<12} {:<10} {:<7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "key", "backend", "op", "samples", "p50", "p90", "mean", "min", "max"
    );
}

/// What one publish asks of the issuer for this key type: the demo's sample volume with the
/// key attributes overridden, parsed as the driver parses it.
fn typical_spec(case: &Case) -> BenchResult<CertRequestSpec> {
    let context = demo::sample_volume_context(&SamplePod::new("keygen-bench"), case.overrides);
    attributes::parse_volume_context(&context)
        .map(|request| request.spec)
        .map_err(|e| format!("{}: sample context rejected: {e}", case.label))
}

/// One printed line: an operation on one key type and its timing distribution.
struct Row {
    label: &'static str,
    backend: &'static str,
    operation: &'static str,
    summary: Summary,
}

fn measure_case(case: &Case) -> BenchResult<Vec<Row>> {
    let spec = typical_spec(case)?;
    let (keygen, key) = time_keygen(&spec.key, case.keygen)?;
    let csr = time_plan(CSR_PLAN, || keys::build_csr(&spec, &key).map(drop))
        .map_err(|e| format!("{}: CSR: {e}", case.label))?;
    let pem = time_plan(PEM_PLAN, || key.to_pem(spec.key.encoding).map(drop))
        .map_err(|e| format!("{}: PEM: {e}", case.label))?;
    let row = |operation, summary| Row {
        label: case.label,
        backend: case.backend,
        operation,
        summary,
    };
    Ok(vec![
        row("keygen", keygen),
        row("csr", csr),
        row("pem", pem),
    ])
}

/// Times key generation and keeps the last key, so the CSR and PEM figures are for a key of
/// exactly this type.
fn time_keygen(spec: &KeySpec, plan: Plan) -> BenchResult<(Summary, PrivateKey)> {
    let mut last = None;
    let summary = time_plan(plan, || {
        keys::generate(spec).map(|key| {
            last = Some(key);
        })
    })
    .map_err(|e| format!("{spec}: {e}"))?;
    let key = last.ok_or_else(|| format!("{spec}: no key generated"))?;
    Ok((summary, key))
}

/// Runs `operation` as `plan` says, timing each call on its own.
fn time_plan<E: std::fmt::Display>(
    plan: Plan,
    mut operation: impl FnMut() -> Result<(), E>,
) -> BenchResult<Summary> {
    // One untimed call first, so lazy initialisation (CPU feature detection, the RNG) is not
    // charged to the first sample; skipped when samples are few and each is expensive.
    if plan.max >= 100 {
        operation().map_err(|e| e.to_string())?;
    }
    let started = Instant::now();
    let mut samples = Vec::with_capacity(plan.max);
    while samples.len() < plan.max && (samples.len() < plan.min || started.elapsed() < plan.budget)
    {
        let call = Instant::now();
        operation().map_err(|e| e.to_string())?;
        samples.push(call.elapsed());
    }
    Ok(Summary::of(samples))
}

/// The distribution of a set of timings.
struct Summary {
    count: usize,
    p50: Duration,
    p90: Duration,
    mean: Duration,
    min: Duration,
    max: Duration,
}

impl Summary {
    fn of(mut samples: Vec<Duration>) -> Summary {
        samples.sort_unstable();
        let count = samples.len();
        let total: Duration = samples.iter().sum();
        Summary {
            count,
            p50: percentile(&samples, 50),
            p90: percentile(&samples, 90),
            mean: total / u32::try_from(count.max(1)).unwrap_or(u32::MAX),
            min: samples.first().copied().unwrap_or_default(),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

/// Nearest-rank percentile of sorted samples: always one of the measured values, which is the
/// honest choice with as few as three samples.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Three significant figures in a unit that fits: 812ns, 41.2µs, 3.07ms, 1.52s.
fn human(d: Duration) -> String {
    let nanos = d.as_nanos() as f64;
    let (value, unit) = if nanos < 1e3 {
        (nanos, "ns")
    } else if nanos < 1e6 {
        (nanos / 1e3, "µs")
    } else if nanos < 1e9 {
        (nanos / 1e6, "ms")
    } else {
        (nanos / 1e9, "s")
    };
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$}{unit}")
}

fn print_row(row: &Row) {
    let s = &row.summary;
    println!(
        "{:<12} {:<10} {:<7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10}",
        row.label,
        row.backend,
        row.operation,
        s.count,
        human(s.p50),
        human(s.p90),
        human(s.mean),
        human(s.min),
        human(s.max)
    );
}
