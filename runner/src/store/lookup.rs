//! Finding an image of the store the way a user names it: by tag (`NAME[:TAG]`, normalised
//! as Docker does), or by image ID (the config digest, or a unique-enough prefix of it); and
//! the manifest and config digest behind a tag, an index choosing the host's platform.
//!
//! This module only reads the store.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::{Digest, Store, StoreError, descriptor_digest, ref_name};
use crate::image;
use crate::platform;

/// An image of the store, found by name or ID.
#[derive(Debug, Clone)]
pub struct Found {
    /// Every tag it has.
    pub names: Vec<String>,
    /// Its descriptor in the store's index (a manifest or an index).
    pub manifest: Descriptor,
}

/// Why an image could not be found.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No tag or image ID matches.
    #[error("no image {wanted} in the store (see `kiln images`)")]
    NoImage {
        /// What the user asked for.
        wanted: String,
    },
    /// A pulled index of which the store holds no platform's image.
    #[error("the store holds no image of the index {index}")]
    NoPlatform {
        /// The index.
        index: Digest,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The image `wanted` names: a tag, else an image ID or a prefix of one (at least four hex
/// digits, as `docker` takes them).
///
/// # Errors
/// Nothing matches, or the store fails.
pub fn find_image(store: &Store, wanted: &str) -> Result<Found, LookupError> {
    let index = store.index()?;
    let by_name = image::normalize_name(wanted);
    let mut matches: Vec<&Descriptor> =
        index.manifests().iter().filter(|d| ref_name(d) == Some(by_name.as_str())).collect();
    if matches.is_empty() {
        // An image ID is the config digest (as `docker images` shows it), or a prefix of it.
        let prefix = wanted.strip_prefix("sha256:").unwrap_or(wanted);
        if prefix.len() >= 4 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            for d in index.manifests() {
                if let Ok((_, config_digest)) = manifest_and_config(store, d)
                    && config_digest.hex().starts_with(prefix)
                {
                    matches.push(d);
                }
            }
        }
    }
    let Some(first) = matches.first() else {
        return Err(LookupError::NoImage { wanted: wanted.to_string() });
    };
    let names = index
        .manifests()
        .iter()
        .filter(|d| d.digest() == first.digest())
        .filter_map(|d| ref_name(d).map(str::to_string))
        .collect();
    Ok(Found { names, manifest: (*first).clone() })
}

/// The manifest a store entry stands for, and its config's digest (the image ID). A pulled
/// index gives the host's platform if the store has it, else any platform it has.
///
/// # Errors
/// The store fails, or holds no image of the index.
pub fn manifest_and_config(store: &Store, entry: &Descriptor) -> Result<(ImageManifest, Digest), LookupError> {
    let mut digest = descriptor_digest(entry)?;
    if image::is_index(entry.media_type()) {
        let index: ImageIndex = store.read_json(&digest)?;
        let present = |c: &&Descriptor| descriptor_digest(c).is_ok_and(|digest| store.has_blob(&digest));
        let child = image::pick_platform(&index, &[platform::default_target()])
            .filter(present)
            .or_else(|| index.manifests().iter().find(present))
            .ok_or(LookupError::NoPlatform { index: digest })?;
        digest = descriptor_digest(child)?;
    }
    let manifest = store.manifest(&digest)?;
    let config = descriptor_digest(manifest.config())?;
    Ok((manifest, config))
}
