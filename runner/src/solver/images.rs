//! The images and named directories a build reads: what a reference in the build file
//! stands for, which platform of a multi-platform image to take, and each image loaded
//! (and unpacked) once per build, from the store or a registry the user named.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Solver;
use super::error::{Cause, SolveError};
use crate::context::BuildContext;
use crate::rootfs::Tree;
use crate::source::ImageSource;
use crate::source::image::LoadedImage;
use crate::source::named::{ContextValue, NamedContext};

/// What an image reference in the build file stands for (see `Solver::source_of`).
pub(super) enum Referent<'n> {
    /// An image to load, from the store, a registry, or a layout the user named.
    Image(String),
    /// A directory the user named.
    Directory(&'n NamedContext, PathBuf),
}

impl Solver<'_> {
    /// What an image reference written in the build file (`FROM`, `COPY --from`) stands for:
    /// a named context the user gave, else an image of the store or a registry. An OCI
    /// layout on disk can only come from the command line: a build file that names one
    /// could read any layout on the machine.
    pub(in crate::solver) fn source_of(&self, reference: &str) -> Result<Referent<'_>, SolveError> {
        if let Some(named) = self.input.named_contexts.get(reference) {
            return Ok(match &named.value {
                ContextValue::Image(r) | ContextValue::Layout { reference: r } => Referent::Image(r.clone()),
                ContextValue::Directory(dir) => Referent::Directory(named, dir.clone()),
            });
        }
        if reference.starts_with("oci-layout://") {
            return Err(SolveError::new(Cause::LayoutInBuildFile { reference: reference.to_string() })
            .hint("name the layout on the command line instead: kiln build --build-context NAME=oci-layout://DIR[:TAG] ..., and write FROM NAME (or COPY --from=NAME)"));
        }
        Ok(Referent::Image(reference.to_string()))
    }

    /// A directory named with `--build-context`, read once per build (its own
    /// `.dockerignore` applies, and `--max-context-files`).
    pub(in crate::solver) fn directory(
        &self,
        named: &NamedContext,
        dir: &Path,
    ) -> Result<Arc<BuildContext>, SolveError> {
        let mut directories = self.directories.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = directories.get(&named.name) {
            return Ok(found.clone());
        }
        let fail = |error: Box<dyn std::error::Error + Send + Sync>| {
            SolveError::new(Cause::NamedDirectory { name: named.describe(), error })
        };
        // Its files' snapshots go in a directory of their own: each context numbers its own.
        let snapshots = self.scratch.new_dir().map_err(|e| fail(e.into()))?;
        let limits = &self.input.limits;
        let context = BuildContext::load(dir, None, limits.context_files, limits.build_file_size, &snapshots)
            .map_err(|e| fail(e.into()))?;
        let context = Arc::new(context);
        directories.insert(named.name.clone(), context.clone());
        Ok(context)
    }

    /// The platforms to take from a multi-platform image, most wanted first: the stage's
    /// `FROM --platform`, else `--platform`; without either, a stage that RUNs prefers a
    /// WASI image (what its RUN steps can execute), then the target platform.
    pub(in crate::solver) fn platforms(&self, stage_platform: Option<&str>, runs: bool) -> Vec<String> {
        if let Some(p) = stage_platform {
            return vec![p.to_string()];
        }
        let target = self.input.platform.clone();
        if runs && !self.input.platform_explicit {
            vec!["wasip2/wasm".into(), "wasip1/wasm".into(), "wasi/wasm".into(), target]
        } else {
            vec![target]
        }
    }

    /// Load an image (once per build): manifest and config, its blobs imported into the
    /// store; pulled from its registry when the store does not have it.
    pub(in crate::solver) fn image(
        &self,
        reference: &str,
        platforms: &[String],
    ) -> Result<Arc<LoadedImage>, SolveError> {
        let id = format!("{reference} {}", platforms.join(","));
        let mut images = self.images.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = images.get(&id) {
            return Ok(found.clone());
        }
        let source = ImageSource {
            store: self.store,
            registry: self.input.registry,
            scope: Some(self.input.registry_scope),
            always_pull: self.input.always_pull,
        };
        let report = |line: &str| self.progress.note(&format!("pulling {reference}: {line}"));
        let loaded = source.load(reference, platforms, &report).map_err(|e| {
            let hint = e.hint(reference, self.input.always_pull);
            let err = SolveError::new(Cause::Source(e));
            match hint {
                Some(hint) => err.hint(hint),
                None => err,
            }
        })?;
        let entry = Arc::new(loaded);
        images.insert(id, entry.clone());
        Ok(entry)
    }

    /// An image's filesystem (unpacked once per build).
    pub(in crate::solver) fn image_tree(&self, reference: &str, platforms: &[String]) -> Result<Arc<Tree>, SolveError> {
        let image = self.image(reference, platforms)?;
        let id = image.manifest_digest.to_string();
        let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = trees.get(&id) {
            return Ok(found.clone());
        }
        let tree = Arc::new(image.rootfs(self.store, &self.scratch)?);
        trees.insert(id, tree.clone());
        Ok(tree)
    }
}
