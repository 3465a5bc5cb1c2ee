//! Images: the config document (with Docker's extensions), references, and loading an image
//! from the store or from an OCI image layout on disk.
//!
//! The config is kiln's own serde model rather than `oci-spec`'s, because Docker images
//! carry fields the OCI type drops (`Healthcheck`, `OnBuild`, `Shell`, `ArgsEscaped`), and a
//! base image's config must survive a round trip untouched: unknown fields are kept.
//!
//! Loading never trusts a layout on disk: its files are read through [`crate::source::layout`] (no
//! symlink followed, nothing but regular files, documents bounded), and every blob read from
//! one is checked against its digest before it is used or imported into the store. Nor does
//! unpacking trust the store: each layer is checked while it streams against its descriptor
//! and the config's diff_id ([`layer::apply_blob`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layer::{self, LayerError, Mismatch};
use crate::rootfs::Tree;
use crate::scratch::Scratch;
use crate::source::layout::{LayoutDir, LayoutError};
use crate::store::{self, Digest, Document, Store, StoreError};

/// `config` inside an image config: how a container runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs, reason = "the fields are the image spec's own, documented there")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_default")]
    pub exposed_ports: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_default")]
    pub volumes: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub shell: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub on_build: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Fields kiln does not model, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Docker's health check (durations in nanoseconds; 0 means "inherit").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs, reason = "the fields are the image spec's own, documented there")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub retries: u32,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digests of the uncompressed layer tars, bottom first.
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs { kind: "layers".into(), diff_ids: Vec::new() }
    }
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "the fields are the image spec's own, documented there")]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// An image config document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "the fields are the image spec's own, documented there")]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub history: Vec<History>,
    /// Fields kiln does not model, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ImageConfig {
    /// `os/architecture[/variant]`.
    pub fn platform(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// A value of `Env`.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.config.env.iter().find_map(|e| e.strip_prefix(key)?.strip_prefix('='))
    }

    /// Set `key=value` in `Env`, replacing an earlier value in place.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self.config.env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
            Some(existing) => *existing = entry,
            None => self.config.env.push(entry),
        }
    }
}

/// RFC 3339 text for a Unix time.
pub fn rfc3339(seconds: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Errors finding or reading an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer cannot be applied.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// No such image.
    #[error("image {reference} not found: {detail}")]
    NotFound {
        /// The reference as written.
        reference: String,
        /// Where kiln looked.
        detail: String,
    },
    /// An image layout or image document is malformed.
    #[error("{reference}: {detail}")]
    Malformed {
        /// The reference as written.
        reference: String,
        /// What is wrong.
        detail: String,
    },
    /// A file of an image layout cannot be used.
    #[error("{reference}: {source}")]
    Layout {
        /// The reference as written.
        reference: String,
        /// What is wrong.
        source: LayoutError,
    },
    /// A blob's bytes are not what the image says they are.
    #[error("{0}")]
    Damaged(Box<Damage>),
}

/// A blob of an image whose bytes are not what the image says they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The reference as written.
    pub reference: String,
    /// `layer` or `config`.
    pub what: &'static str,
    /// The blob's digest.
    pub digest: Digest,
    /// Where the blob was read.
    pub place: Place,
    /// What differs.
    pub mismatch: Mismatch,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Damage { reference, what, digest, place, mismatch } = self;
        write!(f, "{reference}: {what} {digest} in {place} is damaged: {mismatch}; {}", place.remedy())
    }
}

/// Where a blob was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// kiln's store.
    Store,
    /// An OCI image layout directory.
    Layout(PathBuf),
}

impl Place {
    /// What to do about a damaged blob here.
    fn remedy(&self) -> String {
        match self {
            Place::Store => store::DAMAGED_REMEDY.to_string(),
            Place::Layout(_) => "the layout is corrupt: write or copy it again".to_string(),
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Store => f.write_str("kiln's store"),
            Place::Layout(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A tag in kiln's store (normalised to `name:tag`).
    Store(String),
    /// An OCI image layout directory, optionally with the tag or the digest to pick.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick.
        tag: Option<String>,
        /// The digest of the index entry to pick (`@sha256:...`).
        digest: Option<String>,
    },
}

/// Parse a reference: `oci-layout://DIR[:TAG|@DIGEST]`, or a store name (`name[:tag]`).
pub fn parse_ref(reference: &str) -> ImageRef {
    if let Some(rest) = reference.strip_prefix("oci-layout://") {
        if let Some((dir, digest)) = rest.rsplit_once('@').filter(|(dir, d)| !dir.is_empty() && d.contains(':')) {
            return ImageRef::Layout { dir: PathBuf::from(dir), tag: None, digest: Some(digest.to_string()) };
        }
        // The tag follows the last ':' unless that ':' is part of the path.
        return match split_tag(rest) {
            (dir, Some(tag)) if !dir.is_empty() => {
                ImageRef::Layout { dir: PathBuf::from(dir), tag: Some(tag.to_string()), digest: None }
            }
            _ => ImageRef::Layout { dir: PathBuf::from(rest), tag: None, digest: None },
        };
    }
    ImageRef::Store(normalize_name(reference))
}

/// `repository:tag` split at the tag's colon, if there is a tag: a colon followed by a `/`
/// belongs to a registry's port (`host:5000/app`), not to a tag.
pub fn split_tag(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
        _ => (name, None),
    }
}

/// `name` → `name:latest`; names with a tag or digest are kept.
pub fn normalize_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') { name.to_string() } else { format!("{name}:latest") }
}

/// Check a `-t` name the way Docker does: lowercase path components of `[a-z0-9._-]`, an
/// optional `host[:port]/` prefix, an optional `:tag` of `[A-Za-z0-9_.-]{1,128}`.
///
/// # Errors
/// The name is not one Docker would take.
pub fn validate_tag(name: &str) -> Result<String, InvalidName> {
    let normalized = normalize_name(name);
    let (repo, tag) = split_tag(&normalized);
    let tag = tag.unwrap_or("latest");
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    let mut parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
        parts.remove(0);
    }
    let repo_ok = !repo.is_empty()
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && p.ends_with(|c: char| c.is_ascii_alphanumeric())
        });
    if tag_ok && repo_ok { Ok(normalized) } else { Err(InvalidName { name: name.to_string() }) }
}

/// A `-t` name Docker would not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image name {name:?}: use lowercase name[:tag], for example myapp:1.0")]
pub struct InvalidName {
    /// The name as given.
    pub name: String,
}

/// An image ready to build on: its manifest, config, and where its blobs are.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The reference as written.
    pub reference: String,
    /// The manifest's digest.
    pub manifest_digest: Digest,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config.
    pub config: ImageConfig,
    /// A layout directory the blobs must be imported from, when not in the store.
    pub layout: Option<PathBuf>,
}

fn malformed(reference: &str, detail: impl Into<String>) -> ImageError {
    ImageError::Malformed { reference: reference.to_string(), detail: detail.into() }
}

fn layout_error(reference: &str) -> impl Fn(LayoutError) -> ImageError + '_ {
    move |source| ImageError::Layout { reference: reference.to_string(), source }
}

fn digest_of(reference: &str, d: &Descriptor) -> Result<Digest, ImageError> {
    store::descriptor_digest(d).map_err(|e| malformed(reference, e.to_string()))
}

/// `os/arch[/variant]` of an index entry.
pub fn platform_of(d: &Descriptor) -> Option<String> {
    let p = d.platform().as_ref()?;
    let mut text = format!("{}/{}", p.os(), p.architecture());
    if let Some(v) = p.variant() {
        text.push('/');
        text.push_str(v);
    }
    Some(text)
}

/// Whether a media type names an index (OCI's, or Docker's manifest list).
pub fn is_index(media_type: &MediaType) -> bool {
    match media_type {
        MediaType::ImageIndex => true,
        MediaType::Other(t) => t == "application/vnd.docker.distribution.manifest.list.v2+json",
        _ => false,
    }
}

/// Pick a manifest from an index: the first platform of `wanted` (`os/arch[/variant]`,
/// most wanted first; an `os/arch` matches any variant) that it offers, else its only entry.
pub fn pick_platform<'a>(index: &'a ImageIndex, wanted: &[String]) -> Option<&'a Descriptor> {
    let matches = |d: &Descriptor, w: &str| {
        platform_of(d).is_some_and(|p| p == w || (w.matches('/').count() == 1 && p.starts_with(&format!("{w}/"))))
    };
    wanted
        .iter()
        .find_map(|w| index.manifests().iter().find(|d| matches(d, w)))
        .or_else(|| (index.manifests().len() == 1).then(|| &index.manifests()[0]))
}

/// Load an image, picking the first of `platforms` an index offers.
pub fn load(store: &Store, reference: &str, platforms: &[String]) -> Result<LoadedImage, ImageError> {
    match parse_ref(reference) {
        ImageRef::Store(name) => {
            let descriptor = find_in_store(store, &name)?.ok_or_else(|| ImageError::NotFound {
                reference: reference.to_string(),
                detail: format!("no image tagged {name} in kiln's store"),
            })?;
            load_from_store(store, reference, &descriptor, platforms)
        }
        ImageRef::Layout { dir, tag, digest } => {
            let layout = LayoutDir::open(&dir).map_err(layout_error(reference))?;
            let index = layout.index().map_err(layout_error(reference))?;
            let descriptor = match (&tag, &digest) {
                (Some(tag), _) => index.manifests().iter().find(|d| store::ref_name(d) == Some(tag.as_str())).cloned(),
                (_, Some(digest)) => index.manifests().iter().find(|d| d.digest().as_ref() == digest.as_str()).cloned(),
                (None, None) if index.manifests().len() == 1 => index.manifests().first().cloned(),
                (None, None) => None,
            };
            let descriptor = descriptor.ok_or_else(|| {
                let tags: Vec<&str> = index.manifests().iter().filter_map(store::ref_name).collect();
                ImageError::NotFound {
                    reference: reference.to_string(),
                    detail: format!(
                        "{} has {} image(s) with tags [{}]; name one as oci-layout://DIR:TAG or oci-layout://DIR@DIGEST",
                        dir.display(),
                        index.manifests().len(),
                        tags.join(", ")
                    ),
                }
            })?;
            let read = |digest: &Digest, kind| layout.read_blob(digest, kind).map_err(layout_error(reference));
            resolve_descriptor(reference, &descriptor, platforms, &read, Some(dir.clone()))
        }
    }
}

/// Load the image a descriptor of the store's index names (a manifest, or an index to pick
/// `platform` from): how an image found by its ID rather than its tag is loaded.
/// `reference` is how the user wrote it, for messages.
pub fn load_from_store(
    store: &Store,
    reference: &str,
    descriptor: &Descriptor,
    platforms: &[String],
) -> Result<LoadedImage, ImageError> {
    let read = |digest: &Digest, kind| store.read_document(digest, kind).map_err(ImageError::from);
    resolve_descriptor(reference, descriptor, platforms, &read, None)
}

/// Look a name up in the store, trying Docker Hub's spellings too.
fn find_in_store(store: &Store, name: &str) -> Result<Option<Descriptor>, ImageError> {
    let short = name.strip_prefix("docker.io/library/").or_else(|| name.strip_prefix("docker.io/")).unwrap_or(name);
    for candidate in [name.to_string(), short.to_string(), format!("docker.io/library/{short}")] {
        if let Some(d) = store.lookup(&candidate)? {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// Reads a whole document, checked against its digest and bounded by its kind.
type BlobReader<'a> = dyn Fn(&Digest, Document) -> Result<Vec<u8>, ImageError> + 'a;

fn resolve_descriptor(
    reference: &str,
    descriptor: &Descriptor,
    platforms: &[String],
    read: &BlobReader<'_>,
    layout: Option<PathBuf>,
) -> Result<LoadedImage, ImageError> {
    let mut descriptor = descriptor.clone();
    let mut from_index = false;
    for _ in 0..4 {
        let digest = digest_of(reference, &descriptor)?;
        let bytes = match read(&digest, Document::Manifest) {
            Err(ImageError::Store(StoreError::Io { source, .. }))
                if from_index && source.kind() == std::io::ErrorKind::NotFound =>
            {
                // A pulled index keeps only the platforms pulled so far.
                return Err(ImageError::NotFound {
                    reference: reference.to_string(),
                    detail: format!("the store has its index but not its image for {}", platforms.join(" or ")),
                });
            }
            other => other?,
        };
        match descriptor.media_type() {
            media if is_index(media) => {
                let index: ImageIndex =
                    serde_json::from_slice(&bytes).map_err(|e| malformed(reference, format!("index {digest}: {e}")))?;
                descriptor = pick_platform(&index, platforms).cloned().ok_or_else(|| {
                    let offered: Vec<String> = index.manifests().iter().filter_map(platform_of).collect();
                    ImageError::NotFound {
                        reference: reference.to_string(),
                        detail: format!(
                            "it has no image for {} (it offers {}); choose one with --platform",
                            platforms.join(" or "),
                            offered.join(", ")
                        ),
                    }
                })?;
                from_index = true;
            }
            _ => {
                let manifest: ImageManifest = serde_json::from_slice(&bytes)
                    .map_err(|e| malformed(reference, format!("manifest {digest}: {e}")))?;
                let config_digest = digest_of(reference, manifest.config())?;
                let config_bytes = read(&config_digest, Document::Config)?;
                let config: ImageConfig = serde_json::from_slice(&config_bytes)
                    .map_err(|e| malformed(reference, format!("config {config_digest}: {e}")))?;
                if config.rootfs.diff_ids.len() != manifest.layers().len() {
                    return Err(malformed(
                        reference,
                        format!(
                            "its config lists {} layers but its manifest {}",
                            config.rootfs.diff_ids.len(),
                            manifest.layers().len()
                        ),
                    ));
                }
                return Ok(LoadedImage {
                    reference: reference.to_string(),
                    manifest_digest: digest,
                    manifest,
                    config,
                    layout,
                });
            }
        }
    }
    Err(malformed(reference, "indexes nest too deeply"))
}

impl LoadedImage {
    /// Copy the image's config and layers into the store (verifying each), so images built
    /// on it are complete there.
    pub fn import(&self, store: &Store) -> Result<(), ImageError> {
        let Some(dir) = &self.layout else { return Ok(()) };
        let layout = LayoutDir::open(dir).map_err(layout_error(&self.reference))?;
        let mut descriptors = vec![self.manifest.config().clone()];
        descriptors.extend(self.manifest.layers().iter().cloned());
        for d in descriptors {
            let digest = digest_of(&self.reference, &d)?;
            if store.has_blob(&digest) {
                continue;
            }
            let what = if d == *self.manifest.config() { "config" } else { "layer" };
            let file = self.open_layout_blob(&layout, &digest, d.size(), what)?;
            // No further than its descriptor's size: the digest is checked on what is copied.
            store
                .import_blob(&digest, &mut file.take(d.size()))
                .map_err(|e| malformed(&self.reference, e.to_string()))?;
        }
        Ok(())
    }

    /// Unpack the image's layers, bottom first, into a new [`Tree`] whose file contents live
    /// in `scratch`. A layer is read from the store when it is there, else from the layout
    /// the image was loaded from, and checked while it streams: its size and digest against
    /// its descriptor, its tar against the config's diff_id. Nothing is written to the store,
    /// so this also serves a throwaway copy (`kiln run`).
    ///
    /// # Errors
    ///
    /// A layer is missing or damaged ([`ImageError::Damaged`], naming it, where it was read
    /// and what to do), compressed in a way kiln cannot read, or holds an entry that cannot
    /// be applied.
    pub fn rootfs(&self, store: &Store, scratch: &Scratch) -> Result<Tree, ImageError> {
        let layout = match &self.layout {
            Some(dir) => Some(LayoutDir::open(dir).map_err(layout_error(&self.reference))?),
            None => None,
        };
        let mut tree = Tree::new();
        for (descriptor, diff_id) in self.manifest.layers().iter().zip(&self.config.rootfs.diff_ids) {
            let digest = digest_of(&self.reference, descriptor)?;
            let diff_id = Digest::parse(diff_id).map_err(|_| {
                malformed(&self.reference, format!("its config lists the diff_id {diff_id:?}, not a sha256 digest"))
            })?;
            let (blob, place) = match &layout {
                Some(layout) if !store.has_blob(&digest) => (
                    self.open_layout_blob(layout, &digest, descriptor.size(), "layer")?,
                    Place::Layout(layout.path().to_path_buf()),
                ),
                _ => (store.open_blob(&digest)?, Place::Store),
            };
            let expected = layer::Expected { digest, size: descriptor.size(), diff_id: Some(diff_id) };
            let name = format!("{} {}", self.reference, expected.digest);
            layer::apply_blob(&mut tree, blob, &expected, scratch, &name).map_err(|e| match e {
                LayerError::Damaged { digest, mismatch } => ImageError::Damaged(Box::new(Damage {
                    reference: self.reference.clone(),
                    what: "layer",
                    digest,
                    place,
                    mismatch,
                })),
                other => ImageError::Layer(other),
            })?;
        }
        tree.forget_changes();
        Ok(tree)
    }

    /// Open a blob of a layout for streaming, once its size on disk is the one its
    /// descriptor gives (the caller checks its content while it streams).
    fn open_layout_blob(
        &self,
        layout: &LayoutDir,
        digest: &Digest,
        size: u64,
        what: &'static str,
    ) -> Result<std::fs::File, ImageError> {
        let (file, actual) = layout.open_blob(digest).map_err(layout_error(&self.reference))?;
        if actual != size {
            return Err(ImageError::Damaged(Box::new(Damage {
                reference: self.reference.clone(),
                what,
                digest: digest.clone(),
                place: Place::Layout(layout.path().to_path_buf()),
                mismatch: Mismatch::Size { expected: size, actual },
            })));
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(parse_ref("alpine"), ImageRef::Store("alpine:latest".into()));
        assert_eq!(parse_ref("localhost:5000/a/b"), ImageRef::Store("localhost:5000/a/b:latest".into()));
        assert_eq!(
            parse_ref("oci-layout:///tmp/x:v1"),
            ImageRef::Layout { dir: "/tmp/x".into(), tag: Some("v1".into()), digest: None }
        );
        assert_eq!(parse_ref("oci-layout://./x"), ImageRef::Layout { dir: "./x".into(), tag: None, digest: None });
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse_ref(&format!("oci-layout://./x@{digest}")),
            ImageRef::Layout { dir: "./x".into(), tag: None, digest: Some(digest) }
        );
        assert!(validate_tag("MyApp").is_err());
        assert!(validate_tag("my app").is_err());
        assert_eq!(validate_tag("registry.example:5000/team/app:1.0").unwrap(), "registry.example:5000/team/app:1.0");
        assert_eq!(validate_tag("app").unwrap(), "app:latest");
    }

    #[test]
    fn config_round_trips_unknown_fields() {
        let text = r#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Cmd":null,"Custom":1,"Healthcheck":{"Test":["NONE"]}},"rootfs":{"type":"layers","diff_ids":[]},"os.features":["x"]}"#;
        let mut c: ImageConfig = serde_json::from_str(text).unwrap();
        assert_eq!(c.env("A"), Some("1"));
        c.set_env("A", "2");
        c.set_env("B", "3");
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["config"]["Custom"], 1);
        assert_eq!(back["os.features"][0], "x");
        assert_eq!(back["config"]["Env"], serde_json::json!(["A=2", "B=3"]));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
