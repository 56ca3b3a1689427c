//! An OCI image archive (`oci-archive`: an OCI image layout packed in one tar) that holds static
//! binaries, one image per platform, written byte for byte the same for the same inputs.
//!
//! The OCI types come from `oci-spec`, tar from `tar`, gzip from `flate2`, digests from `sha2`.
//! Two things are this file's own, because no crate does them for us:
//! - **Canonical JSON**: oci-spec keeps labels and annotations in `HashMap`s, whose iteration
//!   order changes from one process to the next, so every document is re-serialised with its
//!   object keys sorted before it is hashed ([`canonical_json`]).
//! - **Normalised tar entries**: owner 0:0 without names, fixed modes, every time set to the
//!   image's creation time, entries in a fixed order ([`tar_entry`]).
//!
//! With one platform, `index.json` names the image manifest directly (what `skopeo copy
//! oci-archive:FILE docker://…` pushes); with several, it names one image index that lists a
//! manifest per platform (push it with `skopeo copy --all`). Either way the descriptor in
//! `index.json` carries the tag as `org.opencontainers.image.ref.name`.

use std::collections::{BTreeMap, HashMap};
#[cfg(test)]
use std::io::Read;
use std::io::Write;

use flate2::{Compression, GzBuilder};
use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, ConfigBuilder, DescriptorBuilder, HistoryBuilder,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    PlatformBuilder, RootFsBuilder,
};
#[cfg(test)]
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The OCI image layout version written to `oci-layout`.
const IMAGE_LAYOUT_VERSION: &str = "1.0.0";

/// A platform an image runs on, as an image index names it: `linux/amd64`, `linux/arm64/v8`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `OS/ARCH` or `OS/ARCH/VARIANT`, in Go's names (GOOS/GOARCH), as `docker --platform` takes.
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |part: &&str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        match parts.as_slice() {
            [os, architecture] if valid(os) && valid(architecture) => Ok(Platform {
                os: os.to_string(),
                architecture: architecture.to_string(),
                variant: None,
            }),
            [os, architecture, variant] if valid(os) && valid(architecture) && valid(variant) => {
                Ok(Platform {
                    os: os.to_string(),
                    architecture: architecture.to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(format!(
                "platform {text:?} is not OS/ARCH or OS/ARCH/VARIANT (e.g. linux/amd64, linux/arm64)"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Everything in the image besides the binaries themselves.
#[derive(Clone, Debug)]
pub struct ImageMetadata {
    /// The tag, written as the `org.opencontainers.image.ref.name` annotation (`v0.1.0`).
    pub tag: String,
    /// Where the binary lies in the image (`/cert-manager-csi-driver`); also the entrypoint.
    pub binary_path: String,
    /// The user the container runs as (`0:0`).
    pub user: String,
    /// The image configuration's labels (`org.opencontainers.image.*`).
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch: the configuration's `created` and every file's time.
    pub created_epoch: i64,
}

/// One platform's binary.
pub struct PlatformBinary {
    pub platform: Platform,
    pub bytes: Vec<u8>,
}

/// A written archive.
pub struct Archive {
    /// The tar file's bytes.
    pub bytes: Vec<u8>,
    /// The digest `index.json` names: the image manifest's (one platform) or the image index's.
    pub digest: String,
    /// Each platform's image manifest digest, in platform order.
    pub manifests: Vec<(Platform, String)>,
}

/// Writes the archive for `binaries` (at least one, platforms distinct).
pub fn write_archive(
    metadata: &ImageMetadata,
    binaries: &[PlatformBinary],
) -> Result<Archive, String> {
    if binaries.is_empty() {
        return Err("no binary to put in the image".into());
    }
    let mut sorted: Vec<&PlatformBinary> = binaries.iter().collect();
    sorted.sort_by(|a, b| a.platform.cmp(&b.platform));
    if let Some(pair) = sorted
        .windows(2)
        .find(|pair| pair[0].platform == pair[1].platform)
    {
        return Err(format!("platform {} given twice", pair[0].platform));
    }
    let created = rfc3339(metadata.created_epoch)?;

    let mut blobs = Blobs::default();
    let mut manifests = Vec::new();
    for binary in sorted {
        let manifest = image_manifest(metadata, &created, binary, &mut blobs)?;
        let descriptor = descriptor(MediaType::ImageManifest, &blobs.add(manifest))
            .platform(platform_of(&binary.platform)?)
            .build()
            .map_err(|error| error.to_string())?;
        manifests.push((binary.platform.clone(), descriptor));
    }

    let ref_name = HashMap::from([(ANNOTATION_REF_NAME.to_string(), metadata.tag.clone())]);
    let top = if let [(_, only)] = manifests.as_slice() {
        let mut only = only.clone();
        only.set_annotations(Some(ref_name));
        only
    } else {
        let nested = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(
                manifests
                    .iter()
                    .map(|(_, descriptor)| descriptor.clone())
                    .collect::<Vec<_>>(),
            )
            .build()
            .map_err(|error| error.to_string())?;
        descriptor(MediaType::ImageIndex, &blobs.add(canonical_json(&nested)?))
            .annotations(ref_name)
            .build()
            .map_err(|error| error.to_string())?
    };
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![top.clone()])
        .build()
        .map_err(|error| error.to_string())?;
    let layout = serde_json::json!({ "imageLayoutVersion": IMAGE_LAYOUT_VERSION });

    let mut tar = tar::Builder::new(Vec::new());
    let time = metadata.created_epoch;
    for dir in ["blobs/", "blobs/sha256/"] {
        tar_entry(&mut tar, dir, tar::EntryType::Directory, 0o755, time, &[])?;
    }
    let index = canonical_json(&index)?;
    let layout = canonical_json(&layout)?;
    let files = blobs
        .0
        .iter()
        .map(|(hex, bytes)| (format!("blobs/sha256/{hex}"), bytes.as_slice()))
        .chain([
            ("index.json".to_string(), index.as_slice()),
            ("oci-layout".to_string(), layout.as_slice()),
        ]);
    for (path, bytes) in files {
        tar_entry(&mut tar, &path, tar::EntryType::Regular, 0o644, time, bytes)?;
    }
    let bytes = tar.into_inner().map_err(|error| error.to_string())?;

    Ok(Archive {
        bytes,
        digest: top.digest().to_string(),
        manifests: manifests
            .into_iter()
            .map(|(platform, descriptor)| (platform, descriptor.digest().to_string()))
            .collect(),
    })
}

/// The layer, configuration and manifest of one platform's image; returns the manifest's bytes
/// (the layer and configuration are added to `blobs`).
fn image_manifest(
    metadata: &ImageMetadata,
    created: &str,
    binary: &PlatformBinary,
    blobs: &mut Blobs,
) -> Result<Vec<u8>, String> {
    let layer_tar = layer_tar(metadata, &binary.bytes)?;
    let diff_id = sha256_digest(&layer_tar);
    let layer = blobs.add(gzip(&layer_tar)?);

    let labels: HashMap<String, String> = metadata.labels.clone().into_iter().collect();
    let config = ConfigBuilder::default()
        .entrypoint(vec![metadata.binary_path.clone()])
        .user(metadata.user.clone())
        .labels(labels)
        .build()
        .map_err(|error| error.to_string())?;
    let mut configuration = ImageConfigurationBuilder::default()
        .created(created.to_string())
        .architecture(Arch::from(binary.platform.architecture.as_str()))
        .os(Os::from(binary.platform.os.as_str()))
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id])
                .build()
                .map_err(|error| error.to_string())?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created(created.to_string())
                .created_by(format!("cargo xtask image: {}", metadata.binary_path))
                .build()
                .map_err(|error| error.to_string())?,
        ]);
    if let Some(variant) = &binary.platform.variant {
        configuration = configuration.variant(variant.clone());
    }
    let configuration = configuration.build().map_err(|error| error.to_string())?;
    let config = blobs.add(canonical_json(&configuration)?);

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(
            descriptor(MediaType::ImageConfig, &config)
                .build()
                .map_err(|error| error.to_string())?,
        )
        .layers(vec![
            descriptor(MediaType::ImageLayerGzip, &layer)
                .build()
                .map_err(|error| error.to_string())?,
        ])
        .build()
        .map_err(|error| error.to_string())?;
    canonical_json(&manifest)
}

/// The layer's uncompressed tar: the binary alone, 0755, owned by 0:0.
fn layer_tar(metadata: &ImageMetadata, binary: &[u8]) -> Result<Vec<u8>, String> {
    let path = metadata.binary_path.trim_start_matches('/');
    if path.is_empty() || path.contains('/') {
        return Err(format!(
            "binary path {:?} must name a file in the image's root",
            metadata.binary_path
        ));
    }
    let mut tar = tar::Builder::new(Vec::new());
    tar_entry(
        &mut tar,
        path,
        tar::EntryType::Regular,
        0o755,
        metadata.created_epoch,
        binary,
    )?;
    tar.into_inner().map_err(|error| error.to_string())
}

/// Appends one entry whose header says nothing about where or when it was built: owner 0:0 with
/// no names, the given mode, the image's time.
fn tar_entry(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    mode: u32,
    time: i64,
    bytes: &[u8],
) -> Result<(), String> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(u64::try_from(time).map_err(|_| format!("time {time} is before 1970"))?);
    header.set_size(bytes.len() as u64);
    tar.append_data(&mut header, path, bytes)
        .map_err(|error| format!("writing {path} into the tar: {error}"))
}

/// gzip with a header that carries no time, name or operating system.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|error| format!("gzip: {error}"))
}

/// The blobs of the layout, by their SHA-256 in hex (sorted, so written in a fixed order).
#[derive(Default)]
struct Blobs(BTreeMap<String, Vec<u8>>);

/// A blob as a descriptor needs it.
struct Blob {
    digest: String,
    size: u64,
}

impl Blobs {
    fn add(&mut self, bytes: Vec<u8>) -> Blob {
        let digest = sha256_digest(&bytes);
        let size = bytes.len() as u64;
        let hex = digest.trim_start_matches("sha256:").to_string();
        self.0.insert(hex, bytes);
        Blob { digest, size }
    }
}

fn descriptor(media_type: MediaType, blob: &Blob) -> DescriptorBuilder {
    DescriptorBuilder::default()
        .media_type(media_type)
        .size(blob.size)
        .digest(
            oci_spec::image::Digest::try_from(blob.digest.as_str())
                .expect("a sha256 digest this file computed"),
        )
}

fn platform_of(platform: &Platform) -> Result<oci_spec::image::Platform, String> {
    let mut builder = PlatformBuilder::default()
        .os(Os::from(platform.os.as_str()))
        .architecture(Arch::from(platform.architecture.as_str()));
    if let Some(variant) = &platform.variant {
        builder = builder.variant(variant.clone());
    }
    builder.build().map_err(|error| error.to_string())
}

/// `sha256:<hex>` of the bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in hash.iter() {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// Compact JSON with every object's keys in sorted order, whatever map type the value used.
pub fn canonical_json(value: &impl serde::Serialize) -> Result<Vec<u8>, String> {
    fn sorted(value: Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(key, value)| (key, sorted(value)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    let value = serde_json::to_value(value).map_err(|error| error.to_string())?;
    serde_json::to_vec(&sorted(value)).map_err(|error| error.to_string())
}

/// RFC 3339 in UTC, seconds precision (`2026-12-07T14:13:36Z`).
pub fn rfc3339(epoch: i64) -> Result<String, String> {
    let time = time::OffsetDateTime::from_unix_timestamp(epoch)
        .map_err(|error| format!("time {epoch}: {error}"))?;
    time.format(&time::format_description::well_known::Rfc3339)
        .map_err(|error| error.to_string())
}

/// An archive read back, for the tests: its files by path. (`image --check` reads the archive
/// with skopeo and GNU tar instead, not with this file's code.)
#[cfg(test)]
pub struct ReadArchive {
    pub files: BTreeMap<String, Vec<u8>>,
}

#[cfg(test)]
impl ReadArchive {
    pub fn parse(bytes: &[u8]) -> Result<ReadArchive, String> {
        let mut files = BTreeMap::new();
        let mut archive = tar::Archive::new(bytes);
        for entry in archive.entries().map_err(|error| error.to_string())? {
            let mut entry = entry.map_err(|error| error.to_string())?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = entry
                .path()
                .map_err(|error| error.to_string())?
                .to_string_lossy()
                .into_owned();
            let mut content = Vec::new();
            entry
                .read_to_end(&mut content)
                .map_err(|error| error.to_string())?;
            files.insert(path, content);
        }
        Ok(ReadArchive { files })
    }

    /// A blob by digest, checked against it.
    pub fn blob(&self, digest: &str) -> Result<&[u8], String> {
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("digest {digest} is not sha256"))?;
        let bytes = self
            .files
            .get(&format!("blobs/sha256/{hex}"))
            .ok_or_else(|| format!("no blob {digest}"))?;
        if sha256_digest(bytes) != digest {
            return Err(format!("blob {digest} does not hash to its name"));
        }
        Ok(bytes)
    }

    pub fn index(&self) -> Result<ImageIndex, String> {
        let bytes = self.files.get("index.json").ok_or("no index.json")?;
        serde_json::from_slice(bytes).map_err(|error| format!("index.json: {error}"))
    }

    /// The image manifest of every platform, following a nested index if there is one, with the
    /// descriptor each was found under.
    pub fn manifests(&self) -> Result<Vec<(Descriptor, ImageManifest)>, String> {
        let mut found = Vec::new();
        let mut pending: Vec<Descriptor> = self.index()?.manifests().clone();
        while let Some(descriptor) = pending.pop() {
            let bytes = self.blob(descriptor.digest().as_ref())?;
            check_size(&descriptor, bytes)?;
            match descriptor.media_type() {
                MediaType::ImageIndex => {
                    let nested: ImageIndex =
                        serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
                    pending.extend(nested.manifests().iter().cloned());
                }
                MediaType::ImageManifest => {
                    let manifest: ImageManifest =
                        serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
                    found.push((descriptor, manifest));
                }
                other => return Err(format!("unexpected media type {other} in an index")),
            }
        }
        found.sort_by_key(|(descriptor, _)| descriptor.digest().to_string());
        Ok(found)
    }

    /// The files of a manifest's layers, unpacked in memory: path → (mode, owner, time, bytes).
    pub fn layer_files(&self, manifest: &ImageManifest) -> Result<Vec<LayerFile>, String> {
        let mut files = Vec::new();
        for layer in manifest.layers() {
            let compressed = self.blob(layer.digest().as_ref())?;
            check_size(layer, compressed)?;
            let mut tar_bytes = Vec::new();
            flate2::read::GzDecoder::new(compressed)
                .read_to_end(&mut tar_bytes)
                .map_err(|error| format!("layer {}: {error}", layer.digest()))?;
            let mut archive = tar::Archive::new(tar_bytes.as_slice());
            for entry in archive.entries().map_err(|error| error.to_string())? {
                let mut entry = entry.map_err(|error| error.to_string())?;
                let header = entry.header().clone();
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|error| error.to_string())?;
                files.push(LayerFile {
                    path: entry
                        .path()
                        .map_err(|error| error.to_string())?
                        .to_string_lossy()
                        .into_owned(),
                    kind: header.entry_type(),
                    mode: header.mode().map_err(|error| error.to_string())?,
                    uid: header.uid().map_err(|error| error.to_string())?,
                    gid: header.gid().map_err(|error| error.to_string())?,
                    mtime: header.mtime().map_err(|error| error.to_string())?,
                    bytes,
                });
            }
        }
        Ok(files)
    }
}

#[cfg(test)]
fn check_size(descriptor: &Descriptor, bytes: &[u8]) -> Result<(), String> {
    if descriptor.size() != bytes.len() as u64 {
        return Err(format!(
            "{} is {} bytes, its descriptor says {}",
            descriptor.digest(),
            bytes.len(),
            descriptor.size()
        ));
    }
    Ok(())
}

/// One file of a layer.
#[cfg(test)]
pub struct LayerFile {
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub bytes: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::ImageConfiguration;

    fn metadata() -> ImageMetadata {
        let labels = (0..12)
            .map(|n| (format!("org.example.label-{n}"), format!("value {n}")))
            .chain([(
                "org.opencontainers.image.title".to_string(),
                "cert-manager-csi-driver".to_string(),
            )])
            .collect();
        ImageMetadata {
            tag: "v0.1.0".into(),
            binary_path: "/cert-manager-csi-driver".into(),
            user: "0:0".into(),
            labels,
            created_epoch: 1_765_000_000,
        }
    }

    fn binary(platform: &str, bytes: &[u8]) -> PlatformBinary {
        PlatformBinary {
            platform: Platform::parse(platform).unwrap(),
            bytes: bytes.to_vec(),
        }
    }

    /// `index.json`'s one entry: of `media_type`, naming the archive's digest, tagged v0.1.0.
    fn tagged_entry(read: &ReadArchive, archive: &Archive, media_type: MediaType) -> Descriptor {
        let index = read.index().unwrap();
        assert_eq!(index.schema_version(), 2);
        let [top] = index.manifests().as_slice() else {
            panic!("index.json lists {} entries", index.manifests().len());
        };
        assert_eq!(top.media_type(), &media_type);
        assert_eq!(top.digest().to_string(), archive.digest);
        assert_eq!(
            top.annotations().as_ref().unwrap()[ANNOTATION_REF_NAME],
            "v0.1.0"
        );
        top.clone()
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes_and_digest() {
        // Each write builds its label and annotation HashMaps afresh, with new random hash keys:
        // without canonical JSON their order, and so the digests, would differ between writes.
        let first =
            write_archive(&metadata(), &[binary("linux/amd64", b"\x7fELF binary")]).unwrap();
        for _ in 0..8 {
            let again =
                write_archive(&metadata(), &[binary("linux/amd64", b"\x7fELF binary")]).unwrap();
            assert_eq!(again.digest, first.digest);
            assert!(again.bytes == first.bytes, "archive bytes differ");
        }
    }

    #[test]
    fn a_different_binary_or_time_gives_a_different_digest() {
        let base = write_archive(&metadata(), &[binary("linux/amd64", b"one")]).unwrap();
        let other = write_archive(&metadata(), &[binary("linux/amd64", b"two")]).unwrap();
        assert_ne!(base.digest, other.digest);
        let mut later = metadata();
        later.created_epoch += 1;
        let later = write_archive(&later, &[binary("linux/amd64", b"one")]).unwrap();
        assert_ne!(base.digest, later.digest);
    }

    #[test]
    fn one_platform_is_an_oci_layout_whose_index_names_the_manifest() {
        let archive = write_archive(&metadata(), &[binary("linux/amd64", b"the binary")]).unwrap();
        let read = ReadArchive::parse(&archive.bytes).unwrap();
        assert_eq!(
            read.files["oci-layout"],
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()
        );
        let top = tagged_entry(&read, &archive, MediaType::ImageManifest);
        let platform = top.platform().as_ref().unwrap();
        assert_eq!(platform.architecture(), &Arch::Amd64);
        assert_eq!(platform.os(), &Os::Linux);

        let [(_, manifest)] = read.manifests().unwrap().try_into().ok().unwrap();
        let config: ImageConfiguration =
            serde_json::from_slice(read.blob(manifest.config().digest().as_ref()).unwrap())
                .unwrap();
        assert_eq!(config.architecture(), &Arch::Amd64);
        assert_eq!(config.created().as_deref(), Some("2025-12-06T05:46:40Z"));
        let run = config.config().as_ref().unwrap();
        assert_eq!(
            run.entrypoint().as_deref(),
            Some(&["/cert-manager-csi-driver".to_string()][..])
        );
        assert_eq!(run.user().as_deref(), Some("0:0"));
        assert_eq!(run.labels().as_ref().unwrap().len(), 13);

        // The layer: exactly the binary, 0755, 0:0, at the image's time; its uncompressed
        // digest is the configuration's diff ID.
        let files = read.layer_files(&manifest).unwrap();
        let [file] = files.as_slice() else {
            panic!("the layer holds {} entries", files.len());
        };
        assert_eq!(file.path, "cert-manager-csi-driver");
        assert_eq!(file.kind, tar::EntryType::Regular);
        assert_eq!((file.mode, file.uid, file.gid), (0o755, 0, 0));
        assert_eq!(file.mtime, 1_765_000_000);
        assert_eq!(file.bytes, b"the binary");
        let compressed = read.blob(manifest.layers()[0].digest().as_ref()).unwrap();
        let mut uncompressed = Vec::new();
        flate2::read::GzDecoder::new(compressed)
            .read_to_end(&mut uncompressed)
            .unwrap();
        assert_eq!(config.rootfs().diff_ids(), &[sha256_digest(&uncompressed)]);
    }

    #[test]
    fn several_platforms_are_one_index_listing_a_manifest_each() {
        let archive = write_archive(
            &metadata(),
            &[
                binary("linux/arm64/v8", b"arm binary"),
                binary("linux/amd64", b"amd binary"),
            ],
        )
        .unwrap();
        let read = ReadArchive::parse(&archive.bytes).unwrap();
        tagged_entry(&read, &archive, MediaType::ImageIndex);
        let manifests = read.manifests().unwrap();
        assert_eq!(manifests.len(), 2);
        let mut seen: Vec<(String, Vec<u8>)> = manifests
            .iter()
            .map(|(descriptor, manifest)| {
                let platform = descriptor.platform().as_ref().unwrap();
                let name = format!(
                    "{}/{}{}",
                    platform.os(),
                    platform.architecture(),
                    platform
                        .variant()
                        .as_ref()
                        .map(|v| format!("/{v}"))
                        .unwrap_or_default()
                );
                let files = read.layer_files(manifest).unwrap();
                (name, files[0].bytes.clone())
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("linux/amd64".to_string(), b"amd binary".to_vec()),
                ("linux/arm64/v8".to_string(), b"arm binary".to_vec()),
            ]
        );
        // The order binaries are given in changes nothing.
        let swapped = write_archive(
            &metadata(),
            &[
                binary("linux/amd64", b"amd binary"),
                binary("linux/arm64/v8", b"arm binary"),
            ],
        )
        .unwrap();
        assert_eq!(swapped.digest, archive.digest);
    }

    #[test]
    fn archive_entries_carry_no_owner_names_and_one_time() {
        let archive = write_archive(&metadata(), &[binary("linux/amd64", b"x")]).unwrap();
        let mut tar = tar::Archive::new(archive.bytes.as_slice());
        let mut paths = Vec::new();
        for entry in tar.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            assert_eq!(header.username().unwrap(), Some(""));
            assert_eq!(header.groupname().unwrap(), Some(""));
            assert_eq!(header.mtime().unwrap(), 1_765_000_000);
            paths.push(entry.path().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(paths[..2], ["blobs/", "blobs/sha256/"]);
        assert_eq!(paths[paths.len() - 2..], ["index.json", "oci-layout"]);
        let blobs = &paths[2..paths.len() - 2];
        assert_eq!(blobs.len(), 3, "layer, configuration, manifest");
        assert!(blobs.is_sorted());
    }

    #[test]
    fn a_platform_twice_or_no_binary_is_refused() {
        let error = write_archive(
            &metadata(),
            &[binary("linux/amd64", b"a"), binary("linux/amd64", b"b")],
        )
        .err()
        .unwrap();
        assert!(error.contains("linux/amd64 given twice"), "{error}");
        assert!(write_archive(&metadata(), &[]).is_err());
    }

    #[test]
    fn platforms_parse_as_docker_writes_them() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/amd64").unwrap(),
            Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None
            }
        );
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "Linux/amd64",
            "linux/amd64/v8/x",
            "",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = serde_json::json!({"b": {"z": 1, "a": [{"y": 2, "x": 3}]}, "a": "s"});
        assert_eq!(
            String::from_utf8(canonical_json(&value).unwrap()).unwrap(),
            r#"{"a":"s","b":{"a":[{"x":3,"y":2}],"z":1}}"#
        );
    }
}
