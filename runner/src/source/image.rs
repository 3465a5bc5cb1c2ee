//! Loading an image to build on: from kiln's store by tag or digest, or from an OCI layout
//! the user named (every file read through [`super::layout`]: no symlink followed, nothing
//! but regular files, documents bounded, every blob checked against its digest before it is
//! used or imported into the store); and unpacking its layers into a tree, each checked
//! while it streams against its descriptor and the config's diff_id
//! ([`crate::layer::apply_blob`]).

use std::io::Read;
use std::path::PathBuf;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::layout::{LayoutDir, LayoutError};
use crate::image::{ImageConfig, ImageRef, is_index, parse_ref, pick_platform, platform_of};
use crate::layer::{self, LayerError, Mismatch};
use crate::rootfs::Tree;
use crate::scratch::Scratch;
use crate::store::{self, Digest, Document, Store, StoreError};

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
