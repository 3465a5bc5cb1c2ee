//! The pipeline as a library: what `kiln parse`, `kiln build`, `kiln run`, `kiln pull` and
//! `kiln push` do, callable by any program (and by tests) without the command line.
//!
//! Each entry point takes a [`Session`] (kiln's store and how registries are reached), a
//! request of plain data, and a [`Progress`](crate::progress::Progress) that reports to
//! whoever shows it; it returns a typed outcome or a typed error. Nothing here prints, reads
//! flags or the terminal, or exits the process: the CLI renders events and errors and picks
//! exit codes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::source::registry::{Registry, RegistryOptions};
use crate::store::{Store, StoreError};

mod build;
mod images;
mod parse;

pub use build::{BuildError, BuildOutcome, BuildRequest, build};
pub use images::{PullError, PushError, RunImageRequest, pull, push, run_image};
pub use parse::{BuildFile, BuildFileError, ParseError, ParseRequest, Parsed, parse};

/// Where kiln keeps its images and how it reaches registries: what every entry point shares.
pub struct Session {
    root: PathBuf,
    registry: Arc<Registry>,
    compile_cache: Option<PathBuf>,
}

impl Session {
    /// A session on the store at `root` (created when first opened), reaching registries as
    /// `registry` says.
    pub fn new(root: impl Into<PathBuf>, registry: RegistryOptions) -> Self {
        Session { root: root.into(), registry: Arc::new(Registry::new(registry)), compile_cache: None }
    }

    /// Keep compiled WebAssembly in `dir` instead of the store's `compiled/` (several stores
    /// then compile each module once); `None` keeps it in the store.
    pub fn with_compile_cache(mut self, dir: Option<PathBuf>) -> Self {
        self.compile_cache = dir;
        self
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The registry client.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Open the store (refused when another user could write to it).
    ///
    /// # Errors
    /// The store cannot be opened or is not safe to use.
    pub fn open_store(&self) -> Result<Store, StoreError> {
        Store::open(&self.root)
    }

    /// Where compiled WebAssembly is cached: the directory given with
    /// [`Session::with_compile_cache`] (created when missing), else the store's `compiled/`.
    ///
    /// # Errors
    /// A directory given cannot be created, or another user could write to it.
    pub fn compile_cache(&self) -> Result<PathBuf, StoreError> {
        match &self.compile_cache {
            Some(dir) => {
                crate::store::prepare_compile_cache(dir)?;
                Ok(dir.clone())
            }
            None => Ok(self.root.join("compiled")),
        }
    }
}
