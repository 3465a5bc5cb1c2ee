//! What a frontend may learn about base images: their configs (ENV, WORKDIR, USER, SHELL,
//! ONBUILD, platform), for `resolve-image-config`, answered from kiln's store and the
//! build's named contexts only.
//!
//! A frontend gets no network, directly or through the host: this resolver never pulls and
//! never reads an OCI layout a frontend names (only one the user named with
//! `--build-context`). What it was asked for and could not answer is recorded, so that the
//! caller can pull the images the returned graph builds on anyway — when their registry is
//! in the build's [`crate::source::registry::RegistryScope`] — and parse again with their configs.

use std::sync::Mutex;

use kiln_ir::ImageResolver;

use crate::image::ImageConfig;
use crate::source::image as loading;
use crate::source::named::{ContextValue, NamedContexts};
use crate::store::Store;

/// Answers `resolve-image-config` from the store and the named contexts.
pub struct StoreImages {
    store: Option<Store>,
    named: NamedContexts,
    /// The platform asked for when the frontend names none (`--platform`, else the host's).
    target_platform: String,
    /// References asked for that the store does not hold, with the platform asked for.
    missing: Mutex<Vec<(String, String)>>,
}

impl StoreImages {
    /// A resolver over `store` (none: every image is unknown).
    pub fn new(store: Option<Store>, named: NamedContexts, target_platform: String) -> Self {
        StoreImages { store, named, target_platform, missing: Mutex::new(Vec::new()) }
    }

    /// What the frontend asked for and the store did not hold: (reference, platform).
    pub fn missing(&self) -> Vec<(String, String)> {
        self.missing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ImageResolver for StoreImages {
    fn resolve_image_config(&self, reference: &str, platform: Option<&str>) -> Result<kiln_ir::ImageConfig, String> {
        let platform = platform.unwrap_or(&self.target_platform).to_string();
        let reference = match self.named.get(reference).map(|c| &c.value) {
            Some(ContextValue::Image(r) | ContextValue::Layout { reference: r }) => r.clone(),
            // A directory is a base with no config of its own.
            Some(ContextValue::Directory(_)) => {
                return Ok(kiln_ir::ImageConfig { platform, ..kiln_ir::ImageConfig::default() });
            }
            None if reference.starts_with("oci-layout://") => {
                return Err(format!(
                    "{reference}: a frontend cannot read OCI layouts; the user names them with --build-context"
                ));
            }
            None => reference.to_string(),
        };
        let Some(store) = &self.store else {
            return Err(format!("{reference}: kiln's store is not available"));
        };
        match loading::load(store, &reference, std::slice::from_ref(&platform)) {
            Ok(loaded) => Ok(resolver_config(&loaded.config)),
            Err(loading::ImageError::NotFound { .. }) => {
                let message =
                    format!("{reference} is not in kiln's store yet (frontends are answered from the store only)");
                self.missing.lock().unwrap_or_else(|e| e.into_inner()).push((reference, platform));
                Err(message)
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The parts of an image config a frontend sees.
fn resolver_config(config: &ImageConfig) -> kiln_ir::ImageConfig {
    kiln_ir::ImageConfig {
        env: config.config.env.clone(),
        working_dir: config.config.working_dir.clone().unwrap_or_default(),
        user: config.config.user.clone().unwrap_or_default(),
        shell: config.config.shell.clone(),
        on_build: config.config.on_build.clone(),
        platform: config.platform(),
    }
}
