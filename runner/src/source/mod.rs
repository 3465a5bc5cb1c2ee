//! Where images and files come from besides the build context: kiln's store, OCI image
//! layouts on disk, registries, and the named contexts the user passes with
//! `--build-context`.
//!
//! [`ImageSource`] is the one place an image reference becomes a loaded image: the store
//! first (or an OCI layout the user named), then the registry, when there is one and the
//! user named it ([`registry::RegistryScope`]). Every caller that loads an image (a stage's
//! base, `COPY --from`, `kiln run`) goes through it.
//!
//! This room only reads: nothing here writes an image or a layer except into kiln's store
//! (a pull, an import), and nothing here decides what a build does with what it found.

use crate::store::Store;

pub mod image;
pub mod layout;
pub mod named;
pub mod registry;

use image::{ImageError, LoadedImage};
use registry::{Registry, RegistryError, RegistryScope};

/// Where images are looked for, and which registries may be asked.
#[derive(Clone, Copy)]
pub struct ImageSource<'a> {
    /// kiln's store.
    pub store: &'a Store,
    /// The registry client; none: the store and OCI layouts only.
    pub registry: Option<&'a Registry>,
    /// The registries the user named (a build); none: any registry (`kiln run IMAGE`, where
    /// the user named the image itself).
    pub scope: Option<&'a RegistryScope>,
    /// Go to the registry even when the store has the image (`--pull`).
    pub always_pull: bool,
}

/// Why an image could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The store (or an OCI layout) has no such image, or it cannot be read.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The registry could not give it.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store lacks it and its registry is one the user never named.
    #[error(
        "{reference} is not in kiln's store, and kiln does not pull it: its registry {registry} appears nowhere in the build file, the build arguments or the named contexts, so the frontend chose it, not you"
    )]
    UnnamedRegistry {
        /// The image.
        reference: String,
        /// Its registry.
        registry: String,
    },
}

impl SourceError {
    /// What to do about it, when kiln knows.
    pub fn hint(&self, reference: &str, always_pull: bool) -> Option<String> {
        match self {
            SourceError::Registry(RegistryError::Unreachable { .. } | RegistryError::NotFound { .. })
                if !always_pull =>
            {
                Some(format!(
                    "{reference} is not in kiln's store (`kiln images`), so kiln tried its registry; build or pull it first, or name an OCI layout with --build-context NAME=oci-layout://DIR[:TAG]"
                ))
            }
            SourceError::UnnamedRegistry { .. } => Some(format!(
                "if you mean to build on it, pull it first (`kiln pull {reference}`), or name it in the build file or with --build-context NAME=docker-image://{reference}"
            )),
            SourceError::Image(ImageError::NotFound { .. }) => Some(
                "images come from kiln's store (`kiln images`) or an OCI layout named with --build-context NAME=oci-layout://DIR[:TAG]"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

impl ImageSource<'_> {
    /// Load `reference` (the first of `platforms` an index offers) with its blobs in the
    /// store: from the store or a layout, else pulled from its registry when that may be
    /// asked. `report` hears of a pull.
    ///
    /// # Errors
    /// See [`SourceError`].
    pub fn load(
        &self,
        reference: &str,
        platforms: &[String],
        report: &(dyn Fn(&str) + Sync),
    ) -> Result<LoadedImage, SourceError> {
        let unnamed = self.scope.and_then(|scope| scope.unnamed_registry(reference));
        let loaded = match (self.registry, unnamed) {
            (Some(registry), None) => registry.resolve(self.store, reference, platforms, self.always_pull, report)?,
            (Some(_), Some(registry)) => match image::load(self.store, reference, platforms) {
                Err(ImageError::NotFound { .. }) => {
                    return Err(SourceError::UnnamedRegistry { reference: reference.to_string(), registry });
                }
                other => other?,
            },
            (None, _) => image::load(self.store, reference, platforms)?,
        };
        loaded.import(self.store)?;
        Ok(loaded)
    }
}
