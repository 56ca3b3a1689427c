//! `cargo xtask image`: the driver's container image as an OCI image archive, built from this
//! checkout without Docker, and `--check`, which reads it back with the tools an operator uses.
//!
//! ```text
//! cargo xtask image [--release] [--binary OS/ARCH=PATH]... [--out FILE] [--check]
//! ```
//!
//! - Without `--binary`, the static binary is built for this machine's platform by
//!   `deploy/build-static-binary.sh`: with `--release` in the `dist` profile (whole-program LTO,
//!   what a release ships), otherwise in the `ci` profile (opt-level 1: what CI builds and checks).
//! - `--binary OS/ARCH=PATH` (repeatable) packs binaries built elsewhere instead, one image per
//!   platform under one index: an arm64 machine builds its own binary with the same command and
//!   both are packed together. Each must be a static ELF executable of its platform's machine.
//! - The reference is `cert-manager-csi-driver:<the chart's appVersion>`, the chart's default
//!   image, and the labels say what was built: version, git revision, creation time
//!   (`SOURCE_DATE_EPOCH`, else the commit's time), source, licence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::oci::{self, ImageMetadata, Platform, PlatformBinary};
use crate::{root, run_capture};

/// The image's repository name: the chart's default `image.repository`.
pub const IMAGE_NAME: &str = "cert-manager-csi-driver";
/// Where the binary lies in the image, and its entrypoint (the chart's command, the README's
/// `status` examples).
pub const BINARY_PATH: &str = "/cert-manager-csi-driver";
const CHART: &str = "deploy/charts/cert-manager-csi-driver";

/// What `image` was asked to do.
#[derive(Debug, Default, PartialEq)]
struct Options {
    release: bool,
    binaries: Vec<(Platform, PathBuf)>,
    out: Option<PathBuf>,
    check: bool,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "--release" => options.release = true,
            "--check" => options.check = true,
            "--out" => options.out = Some(PathBuf::from(value("--out")?)),
            "--binary" => {
                let spec = value("--binary")?;
                let (platform, path) = spec.split_once('=').ok_or_else(|| {
                    format!("--binary {spec:?}: expected OS/ARCH=PATH, e.g. linux/arm64=./cert-manager-csi-driver")
                })?;
                options
                    .binaries
                    .push((Platform::parse(platform)?, PathBuf::from(path)));
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}: cargo xtask image [--release] [--binary OS/ARCH=PATH]... [--out FILE] [--check]"
                ));
            }
        }
    }
    if options.release && !options.binaries.is_empty() {
        return Err(
            "--release builds this machine's binary; with --binary nothing is built".into(),
        );
    }
    Ok(options)
}

/// The `image` task.
pub fn image(args: &[String]) -> Result<(), String> {
    let options = parse_options(args)?;
    let built = build(&options)?;
    print_summary(&built);
    if options.check {
        crate::image_check::check(&built, || build(&options))?;
    }
    Ok(())
}

/// An archive written to disk, and what it holds.
pub struct BuiltImage {
    pub path: PathBuf,
    pub reference: String,
    pub digest: String,
    pub manifests: Vec<(Platform, String)>,
    pub metadata: ImageMetadata,
    pub profile: &'static str,
}

/// Builds this machine's static binary with `deploy/build-static-binary.sh`, in the `dist`
/// profile (`release`) or the `ci` one; returns its path and the profile.
pub fn build_static_binary(release: bool) -> Result<(PathBuf, &'static str), String> {
    let profile = if release { "dist" } else { "ci" };
    println!("== deploy/build-static-binary.sh --profile {profile}");
    let path = crate::last_line_of("deploy/build-static-binary.sh", &["--profile", profile])?;
    Ok((PathBuf::from(path), profile))
}

fn build(options: &Options) -> Result<BuiltImage, String> {
    let (binaries, profile) = if options.binaries.is_empty() {
        let (path, profile) = build_static_binary(options.release)?;
        (vec![(host_platform()?, path)], profile)
    } else {
        (options.binaries.clone(), "given")
    };
    let mut platform_binaries = Vec::new();
    for (platform, path) in &binaries {
        let bytes = std::fs::read(path).map_err(|error| {
            format!("reading the {platform} binary {}: {error}", path.display())
        })?;
        check_static_executable(platform, &bytes)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        platform_binaries.push(PlatformBinary {
            platform: platform.clone(),
            bytes,
        });
    }

    let metadata = metadata()?;
    let archive = oci::write_archive(&metadata, &platform_binaries)?;
    let path = options
        .out
        .clone()
        .unwrap_or_else(|| default_archive_path(&metadata.tag));
    write_atomically(&path, &archive.bytes)?;
    Ok(BuiltImage {
        path,
        reference: format!("{IMAGE_NAME}:{}", metadata.tag),
        digest: archive.digest,
        manifests: archive.manifests,
        metadata,
        profile,
    })
}

fn print_summary(built: &BuiltImage) {
    let platforms: Vec<String> = built.manifests.iter().map(|(p, _)| p.to_string()).collect();
    let size = std::fs::metadata(&built.path).map_or(0, |m| m.len());
    let shown = built
        .path
        .strip_prefix(root())
        .unwrap_or(&built.path)
        .display()
        .to_string();
    println!("image     {}", built.reference);
    println!(
        "platforms {} (binary: {})",
        platforms.join(", "),
        match built.profile {
            "dist" => "profile dist, as a release ships it",
            "ci" => "profile ci, as CI builds and checks it; --release for the shipped build",
            _ => "given with --binary",
        }
    );
    println!("digest    {}", built.digest);
    if built.manifests.len() > 1 {
        for (platform, digest) in &built.manifests {
            println!("  {platform:<14} {digest}");
        }
    }
    println!(
        "archive   {shown} ({:.1} MiB)",
        size as f64 / (1024.0 * 1024.0)
    );
    let all = if built.manifests.len() > 1 {
        "--all "
    } else {
        ""
    };
    println!(
        "push      skopeo copy {all}oci-archive:{shown} docker://REGISTRY/{}",
        built.reference
    );
}

/// `target/image/cert-manager-csi-driver-<tag>.tar` (in `CARGO_TARGET_DIR` when set).
pub fn default_archive_path(tag: &str) -> PathBuf {
    crate::target_dir()
        .join("image")
        .join(format!("{IMAGE_NAME}-{tag}.tar"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("creating {}: {error}", parent.display()))?;
    }
    let partial = path.with_extension("tar.partial");
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|error| format!("writing {}: {error}", path.display()))
}

/// This machine's platform, in Go's names.
pub fn host_platform() -> Result<Platform, String> {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => return Err(format!("no image platform for this machine's {other}")),
    };
    Ok(Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: None,
    })
}

/// A binary fit for the image: an ELF executable for the platform's machine that needs no
/// dynamic loader (the image has none).
pub fn check_static_executable(platform: &Platform, bytes: &[u8]) -> Result<(), String> {
    use object::elf;
    use object::read::elf::{FileHeader, ProgramHeader};

    let expected = match (platform.os.as_str(), platform.architecture.as_str()) {
        ("linux", "amd64") => elf::EM_X86_64,
        ("linux", "arm64") => elf::EM_AARCH64,
        _ => return Err(format!("no binary check for platform {platform}")),
    };
    let header = elf::FileHeader64::<object::Endianness>::parse(bytes)
        .map_err(|_| format!("not a 64-bit ELF file, so no {platform} executable"))?;
    let endian = header
        .endian()
        .map_err(|error| format!("ELF header: {error}"))?;
    let machine = header.e_machine(endian);
    if machine != expected {
        return Err(format!(
            "an ELF binary for machine {machine}, not {platform} (machine {expected})"
        ));
    }
    if header.e_type(endian) != elf::ET_EXEC && header.e_type(endian) != elf::ET_DYN {
        return Err("not an executable".into());
    }
    let segments = header
        .program_headers(endian, bytes)
        .map_err(|error| format!("ELF program headers: {error}"))?;
    if segments.is_empty() {
        return Err("an ELF file without program headers cannot be run".into());
    }
    if segments.iter().any(|s| s.p_type(endian) == elf::PT_INTERP) {
        return Err(
            "dynamically linked (it names a program interpreter): the image has no libc; build it with deploy/build-static-binary.sh"
                .into(),
        );
    }
    Ok(())
}

/// The labels and tag, from the chart, the crate and git.
fn metadata() -> Result<ImageMetadata, String> {
    let tag = chart_app_version()?;
    let package = package_metadata()?;
    let revision = git_revision()?;
    let created_epoch = created_epoch()?;
    let source = source_url()?;
    let labels = BTreeMap::from([
        ("org.opencontainers.image.title", IMAGE_NAME.to_string()),
        ("org.opencontainers.image.description", package.description),
        ("org.opencontainers.image.version", tag.clone()),
        ("org.opencontainers.image.revision", revision),
        ("org.opencontainers.image.licenses", package.license),
        ("org.opencontainers.image.source", source),
        (
            "org.opencontainers.image.created",
            oci::rfc3339(created_epoch)?,
        ),
    ])
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect();
    Ok(ImageMetadata {
        tag,
        binary_path: BINARY_PATH.into(),
        // The driver mounts a tmpfs per volume, so it runs as root (the DaemonSet runs it
        // privileged).
        user: "0:0".into(),
        labels,
        created_epoch,
    })
}

/// The chart's `appVersion`: the image's tag, and the tag the chart pulls by default.
pub fn chart_app_version() -> Result<String, String> {
    let chart_yaml = root().join(CHART).join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml)
        .map_err(|error| format!("reading {}: {error}", chart_yaml.display()))?;
    app_version_of(&text).ok_or_else(|| format!("{} has no appVersion", chart_yaml.display()))
}

/// The top-level `appVersion:` of a Chart.yaml (a plain or quoted scalar).
fn app_version_of(chart_yaml: &str) -> Option<String> {
    chart_yaml.lines().find_map(|line| {
        let value = line.strip_prefix("appVersion:")?;
        let value = value.split(" #").next()?.trim().trim_matches(['"', '\'']);
        (!value.is_empty()).then(|| value.to_string())
    })
}

struct PackageMetadata {
    description: String,
    license: String,
}

/// The driver crate's description and licence, as cargo reads them.
fn package_metadata() -> Result<PackageMetadata, String> {
    let output = run_capture(
        "cargo",
        &["metadata", "--no-deps", "--format-version", "1", "--locked"],
    )?;
    let metadata: serde_json::Value =
        serde_json::from_str(&output).map_err(|error| format!("cargo metadata: {error}"))?;
    let package = metadata["packages"]
        .as_array()
        .and_then(|packages| {
            packages
                .iter()
                .find(|p| p["name"] == "cert-manager-csi-driver")
        })
        .ok_or("cargo metadata lists no cert-manager-csi-driver package")?;
    let field = |name: &str| {
        package[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("the cert-manager-csi-driver package has no {name}"))
    };
    Ok(PackageMetadata {
        description: field("description")?,
        license: field("license")?,
    })
}

/// The commit built, marked `-dirty` when tracked files differ from it (the binary then holds
/// changes no commit has).
fn git_revision() -> Result<String, String> {
    let commit = run_capture("git", &["rev-parse", "HEAD"])?
        .trim()
        .to_string();
    let changes = run_capture("git", &["status", "--porcelain", "--untracked-files=no"])?;
    Ok(if changes.trim().is_empty() {
        commit
    } else {
        format!("{commit}-dirty")
    })
}

/// `SOURCE_DATE_EPOCH` (the reproducible-builds convention), else the commit's time, so that a
/// build of the same commit gives the same image.
fn created_epoch() -> Result<i64, String> {
    if let Some(value) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return value
            .trim()
            .parse()
            .map_err(|_| format!("SOURCE_DATE_EPOCH={value:?} is not a number of seconds"));
    }
    let time = run_capture("git", &["log", "-1", "--format=%ct", "HEAD"])?;
    time.trim()
        .parse()
        .map_err(|_| format!("git log printed {time:?} for the commit time"))
}

/// Where the source can be fetched: `IMAGE_SOURCE` when set, else git's `origin` remote with
/// any credentials removed, else this checkout's path.
fn source_url() -> Result<String, String> {
    if let Some(source) = std::env::var("IMAGE_SOURCE").ok().filter(|s| !s.is_empty()) {
        return Ok(source);
    }
    let origin = Command::new("git")
        .args(["remote", "get-url", "origin"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|url| !url.is_empty());
    Ok(match origin {
        Some(url) => without_credentials(&url),
        None => format!("file://{}", root().display()),
    })
}

/// `https://user:token@host/path` → `https://host/path`: a token must never end up in a label.
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_parse() {
        assert_eq!(parse_options(&[]).unwrap(), Options::default());
        let options = parse_options(&args(
            "--binary linux/amd64=a --binary=linux/arm64=/b/c --out x.tar --check",
        ))
        .unwrap();
        assert_eq!(
            options.binaries,
            vec![
                (Platform::parse("linux/amd64").unwrap(), PathBuf::from("a")),
                (
                    Platform::parse("linux/arm64").unwrap(),
                    PathBuf::from("/b/c")
                ),
            ]
        );
        assert_eq!(options.out, Some(PathBuf::from("x.tar")));
        assert!(options.check && !options.release);
        assert!(parse_options(&args("--release")).unwrap().release);
        for bad in [
            "--binary",
            "--binary linux/amd64",
            "--binary amd64=x",
            "--out",
            "--fast",
            "--release --binary linux/amd64=x",
        ] {
            assert!(parse_options(&args(bad)).is_err(), "{bad:?} accepted");
        }
    }

    /// A minimal 64-bit little-endian ELF header with the given machine and program headers.
    fn elf(machine: object::elf::Machine, segment_types: &[object::elf::ProgramType]) -> Vec<u8> {
        let machine = machine.0;
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2; // 64-bit
        bytes[5] = 1; // little-endian
        bytes[6] = 1; // version
        bytes[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN (static-pie)
        bytes[18..20].copy_from_slice(&machine.to_le_bytes());
        bytes[20..24].copy_from_slice(&1u32.to_le_bytes());
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        bytes[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        bytes[56..58].copy_from_slice(&(segment_types.len() as u16).to_le_bytes());
        for kind in segment_types {
            let mut segment = vec![0u8; 56];
            segment[..4].copy_from_slice(&kind.0.to_le_bytes());
            bytes.extend(segment);
        }
        bytes
    }

    #[test]
    fn only_static_executables_of_the_platform_are_packed() {
        use object::elf::{EM_AARCH64, EM_X86_64, PT_DYNAMIC, PT_INTERP, PT_LOAD};
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let arm64 = Platform::parse("linux/arm64").unwrap();
        check_static_executable(&amd64, &elf(EM_X86_64, &[PT_LOAD, PT_DYNAMIC])).unwrap();
        check_static_executable(&arm64, &elf(EM_AARCH64, &[PT_LOAD])).unwrap();

        let wrong_machine = check_static_executable(&arm64, &elf(EM_X86_64, &[PT_LOAD]));
        assert!(wrong_machine.unwrap_err().contains("not linux/arm64"));
        let dynamic = check_static_executable(&amd64, &elf(EM_X86_64, &[PT_INTERP, PT_LOAD]));
        assert!(dynamic.unwrap_err().contains("dynamically linked"));
        assert!(check_static_executable(&amd64, b"#!/bin/sh\necho hi\n").is_err());
        let windows = Platform::parse("windows/amd64").unwrap();
        assert!(check_static_executable(&windows, &elf(EM_X86_64, &[PT_LOAD])).is_err());

        // This test program is itself a dynamically linked executable of this machine.
        let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let error = check_static_executable(&host_platform().unwrap(), &own).unwrap_err();
        assert!(error.contains("dynamically linked"), "{error}");
    }

    #[test]
    fn the_reference_is_the_charts_default_image() {
        // values.yaml: `repository: cert-manager-csi-driver` and `tag: ""` (= appVersion) under
        // `image:`; the chart tests render it, this pins the image task to the same name.
        let values = std::fs::read_to_string(root().join(CHART).join("values.yaml")).unwrap();
        let image_block: Vec<&str> = values
            .lines()
            .skip_while(|line| *line != "image:")
            .skip(1)
            .take_while(|line| line.starts_with(' ') || line.is_empty())
            .map(str::trim)
            .collect();
        assert!(image_block.contains(&"repository: cert-manager-csi-driver"));
        assert!(image_block.contains(&"tag: \"\""));
        assert!(image_block.contains(&"registry: \"\""));
        assert_eq!(IMAGE_NAME, "cert-manager-csi-driver");

        let app_version = chart_app_version().unwrap();
        let cargo_version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            app_version,
            format!("v{cargo_version}"),
            "the chart's appVersion and the crates' version move together"
        );
    }

    #[test]
    fn app_version_is_read_from_chart_yaml() {
        assert_eq!(
            app_version_of("name: x\nversion: 0.1.0\nappVersion: v1.2.3\n").as_deref(),
            Some("v1.2.3")
        );
        assert_eq!(
            app_version_of("appVersion: \"v1.2.3\" # the image tag\n").as_deref(),
            Some("v1.2.3")
        );
        assert_eq!(app_version_of("  appVersion: nested\n"), None);
        assert_eq!(app_version_of("version: 1\n"), None);
    }

    #[test]
    fn credentials_never_reach_the_source_label() {
        assert_eq!(
            without_credentials("https://user:token@github.com/org/repo.git"),
            "https://github.com/org/repo.git"
        );
        assert_eq!(
            without_credentials("https://github.com/org/repo"),
            "https://github.com/org/repo"
        );
        assert_eq!(
            without_credentials("ssh://git@host:22/repo"),
            "ssh://host:22/repo"
        );
        assert_eq!(without_credentials("/work/main"), "/work/main");
    }
}
