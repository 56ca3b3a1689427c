//! `cargo xtask image --check`: the archive just built, read back by the tools an operator
//! uses rather than by the code that wrote it.
//!
//! 1. `skopeo inspect` (and `--config`) reads the archive: digest, platform, labels, entrypoint
//!    and user are what was meant.
//! 2. GNU tar unpacks the archive and then this platform's layer into a directory, which must
//!    hold exactly the binary (0755, owned by root).
//! 3. The binary runs from there, chrooted (`--version`), so it needs nothing the image lacks.
//! 4. `skopeo copy` pushes it, as the README's install path does, to a registry (Debian's
//!    `docker-registry`, started on loopback for the check), which then serves the same digest.
//! 5. `helm template` of the chart pulls exactly this reference by default.
//! 6. A second build gives the same digest and the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::image::{ImageIndex, ImageManifest, MediaType};
use serde_json::Value;

use crate::image::{BINARY_PATH, BuiltImage};
use crate::{last_line_of, run_capture};

pub fn check(
    built: &BuiltImage,
    rebuild: impl Fn() -> Result<BuiltImage, String>,
) -> Result<(), String> {
    let archive = format!("oci-archive:{}", built.path.display());
    let host_platform = crate::image::host_platform()?;
    let host = built
        .manifests
        .iter()
        .find(|(platform, _)| platform.architecture == host_platform.architecture)
        .ok_or("the image has no manifest for this machine's platform, so nothing to run")?;

    println!("== skopeo inspect {archive}");
    let inspected = skopeo(&["inspect", &archive])?;
    expect_eq(
        "skopeo's Digest",
        &inspected["Digest"],
        built.digest.as_str(),
    )?;
    expect_eq("skopeo's Os", &inspected["Os"], "linux")?;
    expect_eq(
        "skopeo's Architecture",
        &inspected["Architecture"],
        host.0.architecture.as_str(),
    )?;
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(inspected["Labels"].clone())
            .map_err(|error| format!("skopeo's Labels: {error}"))?;
    if labels != built.metadata.labels {
        return Err(format!(
            "skopeo reads the labels {labels:#?}, expected {:#?}",
            built.metadata.labels
        ));
    }
    for (key, value) in &labels {
        println!("   {key} = {value}");
    }

    println!("== skopeo inspect --config {archive}");
    let config = skopeo(&["inspect", "--config", &archive])?;
    expect_eq(
        "the entrypoint",
        &config["config"]["Entrypoint"],
        serde_json::json!([BINARY_PATH]),
    )?;
    expect_eq("the user", &config["config"]["User"], "0:0")?;
    if config["config"]
        .get("Cmd")
        .is_some_and(|cmd| !cmd.is_null())
    {
        return Err(format!("the image has a Cmd: {}", config["config"]["Cmd"]));
    }
    println!(
        "   entrypoint {}, user {}, {}/{}",
        config["config"]["Entrypoint"],
        config["config"]["User"],
        config["os"],
        config["architecture"]
    );

    // Under target/image/, not /tmp: the unpacked binary must be able to run (a noexec /tmp).
    let image_dir = crate::target_dir().join("image");
    let work = tempfile::Builder::new()
        .prefix("check-")
        .tempdir_in(&image_dir)
        .map_err(|error| format!("a scratch directory in {}: {error}", image_dir.display()))?;
    let rootfs = unpack_layer(&built.path, &host.1, work.path())?;
    let binary = rootfs.join(BINARY_PATH.trim_start_matches('/'));
    check_only_the_binary(&rootfs, &binary)?;

    println!("== chroot {} {BINARY_PATH} --version", rootfs.display());
    let version = run_chrooted(&rootfs, &[BINARY_PATH, "--version"])?;
    println!("   {}", version.trim());
    let expected = built.metadata.tag.trim_start_matches('v');
    if version.split_whitespace().nth(1) != Some(expected) {
        return Err(format!(
            "the binary in the image says {:?}, the image is tagged {}",
            version.trim(),
            built.metadata.tag
        ));
    }

    push_to_a_registry(built, &archive, work.path())?;

    println!("== helm template: the chart's default image");
    let images = chart_default_images()?;
    if !images.iter().any(|image| image == &built.reference) {
        return Err(format!(
            "the chart pulls {images:?} by default, not {}",
            built.reference
        ));
    }
    println!("   {}", built.reference);

    println!("== a second build");
    let first = std::fs::read(&built.path).map_err(|error| error.to_string())?;
    let second = rebuild()?;
    let second_bytes = std::fs::read(&second.path).map_err(|error| error.to_string())?;
    if second.digest != built.digest || second_bytes != first {
        return Err(format!(
            "not reproducible: {} then {}",
            built.digest, second.digest
        ));
    }
    println!(
        "   same digest {}, same {} bytes",
        second.digest,
        first.len()
    );
    println!("image check passed");
    Ok(())
}

/// Pushes the archive with the README's command to a registry on loopback and reads back the
/// digest it serves for the tag.
fn push_to_a_registry(built: &BuiltImage, archive: &str, work: &Path) -> Result<(), String> {
    let registry = Registry::start(work)?;
    let destination = format!("docker://{}/{}", registry.address, built.reference);
    let mut copy = vec!["copy", "--quiet", "--dest-tls-verify=false"];
    if built.manifests.len() > 1 {
        copy.push("--all");
    }
    copy.extend([archive, destination.as_str()]);
    println!("== skopeo {}", copy.join(" "));
    skopeo_output(&copy)?;
    let raw = skopeo_output(&["inspect", "--raw", "--tls-verify=false", &destination])?;
    let served = crate::oci::sha256_digest(&raw);
    if served != built.digest {
        return Err(format!(
            "the registry serves {served} for {}, the archive holds {}",
            built.reference, built.digest
        ));
    }
    println!("   the registry serves {} as {served}", built.reference);
    Ok(())
}

/// Debian's `docker-registry` (the CNCF distribution registry) on a free loopback port, with its
/// storage under the check's scratch directory; stopped when dropped.
struct Registry {
    address: String,
    process: std::process::Child,
}

impl Registry {
    fn start(work: &Path) -> Result<Registry, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|error| format!("finding a free port: {error}"))?
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = work.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                work.join("registry").display()
            ),
        )
        .map_err(|error| error.to_string())?;
        // It logs every HEAD of a blob it does not have yet (the push's first question) as an
        // error: keep its log in the scratch directory.
        let log =
            std::fs::File::create(work.join("registry.log")).map_err(|error| error.to_string())?;
        let process = Command::new("docker-registry")
            .args(["serve", &path_str(&config)?])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|error| {
                format!("could not run docker-registry ({error}): install Debian's docker-registry package")
            })?;
        let registry = Registry { address, process };
        // Up to 15 s (300 tries 50 ms apart) for it to listen.
        let mut tries = 0;
        while std::net::TcpStream::connect(&registry.address).is_err() {
            tries += 1;
            if tries > 300 {
                return Err(format!(
                    "docker-registry did not listen on {} within 15 s",
                    registry.address
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// skopeo's JSON answer.
fn skopeo(args: &[&str]) -> Result<Value, String> {
    let output = skopeo_output(args)?;
    serde_json::from_slice(&output).map_err(|error| format!("skopeo's output: {error}"))
}

/// Runs skopeo; its standard output, or its error.
fn skopeo_output(args: &[&str]) -> Result<Vec<u8>, String> {
    let output = Command::new("skopeo")
        .args(args)
        .output()
        .map_err(|error| {
            format!("could not run skopeo ({error}): install Debian's skopeo package")
        })?;
    if !output.status.success() {
        return Err(format!(
            "skopeo {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(output.stdout)
}

fn expect_eq(what: &str, actual: &Value, expected: impl Into<Value>) -> Result<(), String> {
    let expected = expected.into();
    if *actual != expected {
        return Err(format!("{what} is {actual}, expected {expected}"));
    }
    Ok(())
}

/// Unpacks the archive with GNU tar, follows `index.json` to the manifest with `digest`, and
/// unpacks its layer into `<work>/rootfs`.
fn unpack_layer(archive: &Path, digest: &str, work: &Path) -> Result<PathBuf, String> {
    let layout = work.join("layout");
    let rootfs = work.join("rootfs");
    for dir in [&layout, &rootfs] {
        std::fs::create_dir_all(dir).map_err(|error| error.to_string())?;
    }
    println!("== tar -xf {} (the OCI layout)", archive.display());
    tar(&[
        "-xf",
        &archive.display().to_string(),
        "-C",
        &path_str(&layout)?,
    ])?;
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let read_json = |path: PathBuf| -> Result<Value, String> {
        let bytes = std::fs::read(&path).map_err(|error| format!("{}: {error}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|error| format!("{}: {error}", path.display()))
    };
    // The layout's own index must lead to the manifest skopeo named.
    let index: ImageIndex = serde_json::from_value(read_json(layout.join("index.json"))?)
        .map_err(|error| format!("index.json: {error}"))?;
    let mut reachable: Vec<String> = Vec::new();
    for descriptor in index.manifests() {
        reachable.push(descriptor.digest().to_string());
        if descriptor.media_type() == &MediaType::ImageIndex {
            let nested: ImageIndex =
                serde_json::from_value(read_json(blob(descriptor.digest().as_ref()))?)
                    .map_err(|error| format!("nested index: {error}"))?;
            reachable.extend(nested.manifests().iter().map(|d| d.digest().to_string()));
        }
    }
    if !reachable.iter().any(|d| d == digest) {
        return Err(format!("index.json does not lead to {digest}"));
    }
    let manifest: ImageManifest = serde_json::from_value(read_json(blob(digest))?)
        .map_err(|error| format!("manifest {digest}: {error}"))?;
    let [layer] = manifest.layers().as_slice() else {
        return Err(format!(
            "the manifest has {} layers, not one",
            manifest.layers().len()
        ));
    };
    let layer_path = blob(layer.digest().as_ref());
    println!("== tar -xzf {} (the layer)", layer.digest());
    tar(&["-xzf", &path_str(&layer_path)?, "-C", &path_str(&rootfs)?])?;
    Ok(rootfs)
}

fn tar(args: &[&str]) -> Result<(), String> {
    let status = Command::new("tar")
        .args(args)
        .status()
        .map_err(|error| format!("could not run tar: {error}"))?;
    if !status.success() {
        return Err(format!("tar {} failed ({status})", args.join(" ")));
    }
    Ok(())
}

/// The unpacked layer holds the binary, executable, and nothing else: no shell, no libc.
fn check_only_the_binary(rootfs: &Path, binary: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let mut entries: Vec<String> = Vec::new();
    let mut pending = vec![rootfs.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|error| error.to_string())? {
            let path = entry.map_err(|error| error.to_string())?.path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            entries.push(
                path.strip_prefix(rootfs)
                    .unwrap_or(&path)
                    .display()
                    .to_string(),
            );
        }
    }
    let expected = BINARY_PATH.trim_start_matches('/');
    if entries != [expected] {
        return Err(format!("the layer holds {entries:?}, not just {expected}"));
    }
    let metadata = std::fs::symlink_metadata(binary).map_err(|error| error.to_string())?;
    let mode = metadata.mode() & 0o7777;
    if !metadata.is_file() || mode != 0o755 {
        return Err(format!(
            "{expected} is not a regular file with mode 0755 (mode {mode:o})"
        ));
    }
    if is_root() && (metadata.uid(), metadata.gid()) != (0, 0) {
        return Err(format!(
            "{expected} is owned by {}:{}, not 0:0",
            metadata.uid(),
            metadata.gid()
        ));
    }
    println!(
        "   the layer holds only {expected} ({:.1} MiB, mode {mode:o}, owner {}:{})",
        metadata.len() as f64 / (1024.0 * 1024.0),
        metadata.uid(),
        metadata.gid()
    );
    Ok(())
}

/// Runs a command inside `rootfs` with chroot, as root, or in a user namespace where root is
/// mapped to the caller (`unshare -r`) otherwise.
fn run_chrooted(rootfs: &Path, command: &[&str]) -> Result<String, String> {
    let rootfs = path_str(rootfs)?;
    let mut args: Vec<&str> = Vec::new();
    if !is_root() {
        args.extend(["unshare", "--map-root-user"]);
    }
    args.extend(["chroot", &rootfs]);
    args.extend(command);
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|error| format!("could not run {}: {error}", args.join(" ")))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn is_root() -> bool {
    run_capture("id", &["-u"]).is_ok_and(|uid| uid.trim() == "0")
}

/// The images `helm template` of the chart names with default values.
fn chart_default_images() -> Result<Vec<String>, String> {
    let helm = last_line_of("deploy/tools/install-helm.sh", &[])?;
    let rendered = run_capture(
        &helm,
        &[
            "template",
            "cert-manager-csi-driver",
            "deploy/charts/cert-manager-csi-driver",
            "--namespace",
            "cert-manager",
            "--show-only",
            "templates/daemonset.yaml",
        ],
    )?;
    Ok(rendered
        .lines()
        .filter_map(|line| line.trim().strip_prefix("image:"))
        .map(|image| image.trim().trim_matches('"').to_string())
        .collect())
}

fn path_str(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}
