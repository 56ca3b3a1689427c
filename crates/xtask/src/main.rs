//! `cargo xtask <task>`: every command this project is worked with, in one place. The README's
//! commands and `.ci/run` call these tasks, so what a developer runs and what CI runs cannot drift
//! apart (a test below reads both files to keep it so).
//!
//! It runs cargo, the scripts under `deploy/` and helm; `image` also writes the OCI image archive
//! itself (`image.rs`, `oci.rs`) and checks it with skopeo (`image_check.rs`).

mod image;
mod image_check;
mod oci;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// One task of the index.
struct Task {
    name: &'static str,
    /// What `cargo xtask` prints for it.
    about: &'static str,
    run: fn(&[String]) -> Result<(), String>,
}

const TASKS: &[Task] = &[
    Task {
        name: "demo",
        about: "the driver on its embedded CA: one sample pod, its certificate, a rotation, the cleanup",
        run: demo,
    },
    Task {
        name: "test",
        about: "all tests (`cargo test`, extra arguments passed on); as root for the real tmpfs, mount and kill -9 tests",
        run: test,
    },
    Task {
        name: "fmt",
        about: "format the workspace (rustfmt.toml)",
        run: fmt,
    },
    Task {
        name: "lint",
        about: "helm lint of the chart (default and upstream-style values), cargo fmt --check, clippy -D warnings (clippy.toml bans)",
        run: lint,
    },
    Task {
        name: "static-binary",
        about: "build the statically linked binary (--release: the shipped, whole-program-LTO build) and check that it is static",
        run: static_binary,
    },
    Task {
        name: "image",
        about: "the container image as an OCI archive, no Docker: [--release] [--binary OS/ARCH=PATH]... [--out FILE] [--check: skopeo, chroot, chart, rebuild]",
        run: image::image,
    },
    Task {
        name: "bench",
        about: "a benchmark program: publish | keygen | cert_manager | scale | chaos | readiness | key_pool | footprint | volume_heap (arguments after the name go to it; several need root)",
        run: bench,
    },
    Task {
        name: "chaos",
        about: "the chaos bench for N minutes (default 10): churn, kill -9, API outages, a checker on every volume",
        run: chaos,
    },
];

/// The benchmark programs under `benches/`.
const BENCHES: &[&str] = &[
    "publish",
    "keygen",
    "cert_manager",
    "scale",
    "chaos",
    "readiness",
    "key_pool",
    "footprint",
    "volume_heap",
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(name) = args.first() else {
        print_index();
        return ExitCode::SUCCESS;
    };
    if matches!(name.as_str(), "help" | "-h" | "--help") {
        print_index();
        return ExitCode::SUCCESS;
    }
    let Some(task) = TASKS.iter().find(|task| task.name == name) else {
        eprintln!("unknown task {name:?}");
        print_index();
        return ExitCode::from(2);
    };
    match (task.run)(&args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {}: {message}", task.name);
            ExitCode::FAILURE
        }
    }
}

fn print_index() {
    println!("cargo xtask <task> [arguments]\n");
    for task in TASKS {
        println!("  {:<14} {}", task.name, task.about);
    }
}

/// The workspace root: this crate lives in `crates/xtask`.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/xtask sits two levels below the workspace root")
        .to_path_buf()
}

/// Runs a program in the workspace root, announcing it, and fails if it fails.
fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    println!("== {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|error| format!("could not run {program}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed ({status})", args.join(" ")))
    }
}

/// Where cargo builds: `CARGO_TARGET_DIR`, else `target/` of the workspace.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map(|dir| root().join(dir))
        .unwrap_or_else(|| root().join("target"))
}

/// Runs a program in the workspace root and returns its standard output; its standard error
/// goes to ours.
fn run_capture(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|error| format!("could not run {program}: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {} failed ({})",
            args.join(" "),
            output.status
        ));
    }
    String::from_utf8(output.stdout).map_err(|_| format!("{program} printed non-UTF-8"))
}

/// Runs a program and returns its standard output's last line (how the `deploy/` scripts print
/// the path they made).
fn last_line_of(program: &str, args: &[&str]) -> Result<String, String> {
    let stdout = run_capture(program, args)?;
    stdout
        .lines()
        .last()
        .map(str::to_string)
        .ok_or_else(|| format!("{program} printed nothing"))
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn demo(args: &[String]) -> Result<(), String> {
    let mut command = vec!["run", "--release", "--", "demo"];
    command.extend(strs(args));
    run("cargo", &command, &[])
}

fn test(args: &[String]) -> Result<(), String> {
    let mut command = vec!["test"];
    command.extend(strs(args));
    run("cargo", &command, &[])
}

fn fmt(_: &[String]) -> Result<(), String> {
    run("cargo", &["fmt", "--all"], &[])
}

fn lint(_: &[String]) -> Result<(), String> {
    let helm = last_line_of("deploy/tools/install-helm.sh", &[])?;
    let chart = "deploy/charts/cert-manager-csi-driver";
    run(&helm, &["lint", "--strict", chart], &[])?;
    run(
        &helm,
        &[
            "lint",
            "--strict",
            chart,
            "-f",
            "tests/chart/upstream-values.yaml",
        ],
        &[],
    )?;
    run(
        &helm,
        &[
            "lint",
            "--strict",
            "deploy/charts/cert-manager-csi-driver-spiffe",
        ],
        &[],
    )?;
    run("cargo", &["fmt", "--all", "--", "--check"], &[])?;
    run(
        "cargo",
        &["clippy", "--all-targets", "--", "-D", "warnings"],
        &[],
    )
}

fn static_binary(args: &[String]) -> Result<(), String> {
    let release = match strs(args).as_slice() {
        [] => false,
        ["--release"] => true,
        _ => return Err("usage: cargo xtask static-binary [--release]".into()),
    };
    let (binary, _) = image::build_static_binary(release)?;
    let bytes =
        std::fs::read(&binary).map_err(|error| format!("reading {}: {error}", binary.display()))?;
    image::check_static_executable(&image::host_platform()?, &bytes)
        .map_err(|error| format!("{}: {error}", binary.display()))?;
    println!("{}: a static executable for this machine", binary.display());
    Ok(())
}

fn bench(args: &[String]) -> Result<(), String> {
    let Some(name) = args.first() else {
        return Err(format!("which one? {}", BENCHES.join(" | ")));
    };
    if !BENCHES.contains(&name.as_str()) {
        return Err(format!("no bench {name:?}: {}", BENCHES.join(" | ")));
    }
    let mut command = vec!["bench", "--bench", name.as_str()];
    if args.len() > 1 {
        command.push("--");
        command.extend(strs(&args[1..]));
    }
    run("cargo", &command, &[])
}

fn chaos(args: &[String]) -> Result<(), String> {
    let minutes = args.first().map_or("10", String::as_str);
    bench(&["chaos".into(), "--minutes".into(), minutes.into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `cargo xtask …` commands a file names.
    fn xtask_commands(text: &str) -> Vec<String> {
        text.lines()
            .filter_map(|line| line.trim_start().strip_prefix("cargo xtask "))
            .map(|rest| rest.split('#').next().unwrap_or("").trim().to_string())
            .collect()
    }

    #[test]
    fn readme_and_ci_name_only_tasks_of_the_index_and_run_the_same_test_command() {
        let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
        let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
        for command in xtask_commands(&readme).iter().chain(&xtask_commands(&ci)) {
            let task = command.split_whitespace().next().unwrap_or("");
            assert!(
                TASKS.iter().any(|known| known.name == task),
                "`cargo xtask {command}` names no task"
            );
        }
        // The README opens with the two commands a newcomer runs; the second is the test command,
        // and CI runs exactly it.
        let opening: Vec<String> = xtask_commands(readme.split("\n## ").next().unwrap());
        assert_eq!(opening.first().map(String::as_str), Some("demo"));
        let test_command = opening.get(1).expect("the README's test command");
        assert!(
            xtask_commands(&ci).contains(test_command),
            ".ci/run does not run the README's test command `cargo xtask {test_command}`"
        );
    }

    #[test]
    fn every_bench_program_is_in_the_index() {
        // A bench program is `benches/<name>.rs` or `benches/<name>/main.rs`; `benches/common/`
        // (no main.rs) is the shared module.
        let mut on_disk: Vec<String> = std::fs::read_dir(root().join("benches"))
            .unwrap()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                if entry.path().join("main.rs").is_file() {
                    return Some(name);
                }
                name.strip_suffix(".rs").map(str::to_string)
            })
            .collect();
        on_disk.sort();
        let mut listed: Vec<&str> = BENCHES.to_vec();
        listed.sort();
        assert_eq!(on_disk, listed);
    }
}
