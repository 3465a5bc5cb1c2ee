//! The solver: from a validated [`BuildGraph`], build the target stage and the stages it
//! needs, and assemble the resulting image in the store.
//!
//! What BuildKit calls the solver, in one module per job: [`plan`] (which stages, in which
//! order), `schedule` (stages side by side), `stage` (one stage, step by step), `cachekey`
//! (what a step's result depends on), `images` (base images and named directories), `ops`
//! (what each instruction does), `finish` (config and manifest). RUN steps go to the
//! [`Executor`] the caller hands in.
//!
//! This module writes only through [`Store`] (blobs) and its own scratch directory; it never
//! tags anything: the caller does, once the whole build succeeded.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use kiln_ir::{BuildGraph, Span};
use oci_spec::image::Descriptor;

use crate::cache::{Cache, CachedLayer, Key};
use crate::context::BuildContext;
use crate::executor::Executor;
use crate::image::{self, ImageConfig};
use crate::progress::Progress;
use crate::rootfs::Tree;
use crate::scratch::Scratch;
use crate::source::image::LoadedImage;
use crate::source::named::NamedContexts;
use crate::source::registry::{Registry, RegistryScope};
use crate::store::{Digest, Store};

mod cachekey;
mod error;
mod finish;
mod images;
mod ops;
pub mod plan;
mod schedule;
mod stage;
#[cfg(test)]
mod tests;

pub use error::{Cause, SolveError};
pub use plan::{images_needed, stage_label};

/// What a solve needs besides the store: the graph, the context, the executor, and the
/// settings of the build.
pub struct SolveRequest<'a> {
    /// The frontend's output.
    pub graph: &'a BuildGraph,
    /// The build context.
    pub context: &'a BuildContext,
    /// The platform to build for (`os/arch[/variant]`).
    pub platform: String,
    /// SOURCE_DATE_EPOCH, when set: image and history times, and the clamp for mtimes.
    pub epoch: Option<i64>,
    /// Wall time each RUN step may take, if limited.
    pub step_timeout: Option<std::time::Duration>,
    /// What the build may consume: memory, programs and output of RUN steps, layer sizes.
    pub limits: crate::limits::Limits,
    /// Whether cached step results may be used (`--no-cache` turns this off; results are
    /// recorded either way).
    pub use_cache: bool,
    /// The frontend component's sha256, part of every cache key.
    pub frontend_digest: String,
    /// How many stages may be built at once.
    pub jobs: usize,
    /// Where images not in the store come from (none: only the store and OCI layouts).
    pub registry: Option<&'a Registry>,
    /// Pull base images even when the store has them (`--pull`).
    pub always_pull: bool,
    /// Whether `platform` was asked for (`--platform`): then it is the only platform taken
    /// from a multi-platform base. Otherwise a stage that RUNs prefers the base's WASI image.
    pub platform_explicit: bool,
    /// Whether the caller needs the target's files ([`Solved::tree`], for `-o local` and
    /// the like); without it, a fully cached build never unpacks them.
    pub keep_tree: bool,
    /// `--build-context NAME=VALUE`: what `FROM NAME` and `COPY --from=NAME` name, and the
    /// stages they replace.
    pub named_contexts: &'a NamedContexts,
    /// The registries the user named: the only ones a missing image is pulled from.
    pub registry_scope: &'a RegistryScope,
    /// What runs RUN steps.
    pub executor: &'a dyn Executor,
}

/// The result of a build: the image in the store (untagged) and its final filesystem.
#[derive(Debug)]
pub struct Solved {
    /// The manifest's descriptor.
    pub manifest: Descriptor,
    /// The config's digest (the image ID).
    pub config_digest: Digest,
    /// The config.
    pub config: ImageConfig,
    /// The target stage's filesystem (empty unless [`SolveRequest::keep_tree`]).
    pub tree: Tree,
    /// The stages that were built, in order.
    pub built_stages: Vec<usize>,
}

/// A stage's state while and after it is built.
#[derive(Clone)]
pub(crate) struct StageOut {
    tree: Tree,
    config: ImageConfig,
    layers: Vec<Descriptor>,
    /// The cache key of everything so far: the base and every step.
    key: Key,
    /// A base image whose files are not in `tree` yet (reference, platform): loaded only when
    /// a step needs the files, so that a build whose steps all come from the cache never
    /// unpacks its bases.
    lazy_base: Option<(String, Vec<String>, Span)>,
    /// Layers of cached steps not applied to `tree` yet, in order.
    pending: Vec<CachedLayer>,
}

/// One solve: the request, the store, and what the stages share while they are built.
struct Solver<'a> {
    store: &'a Store,
    progress: &'a Progress,
    input: &'a SolveRequest<'a>,
    scratch: Arc<Scratch>,
    /// Base images loaded in this build, by reference (loaded once, under the lock).
    images: Mutex<HashMap<String, Arc<LoadedImage>>>,
    /// Their filesystems, unpacked when a step first needs one.
    trees: Mutex<HashMap<String, Arc<Tree>>>,
    /// Directories named with `--build-context`, read when first used, by name.
    directories: Mutex<HashMap<String, Arc<BuildContext>>>,
    /// Set when a stage fails: the others stop at their next step (or mid-RUN).
    stop: Arc<AtomicBool>,
    cache: Cache<'a>,
    /// What every key starts from: the cache format, kiln, its shell, the frontend, the
    /// platform and SOURCE_DATE_EPOCH.
    root_key: Key,
}

/// Build `input.graph`'s target into the store. `scratch_dir` holds extracted file contents
/// for the length of the build.
pub fn solve(
    store: &Store,
    progress: &Progress,
    input: &SolveRequest<'_>,
    scratch_dir: &std::path::Path,
) -> Result<Solved, SolveError> {
    let order = plan::plan(input.graph, input.named_contexts);
    let solver = Solver {
        store,
        progress,
        input,
        scratch: Arc::new(Scratch::with_layer_limit(scratch_dir, input.limits.layer_size)),
        images: Mutex::new(HashMap::new()),
        trees: Mutex::new(HashMap::new()),
        directories: Mutex::new(HashMap::new()),
        stop: Arc::new(AtomicBool::new(false)),
        cache: Cache::new(store),
        root_key: cachekey::root_key(input),
    };
    let mut results = schedule::run_stages(&solver, &order, input.jobs.max(1))?;
    // A signal that came during the last step still stops the build: nothing is exported.
    if crate::cancel::requested() {
        return Err(SolveError::new(Cause::BuildInterrupted));
    }
    let target = input.graph.target as usize;
    let out = results[target].take().expect("the target is built last");
    solver.export(out, order)
}

/// The `created` time of images and history entries: SOURCE_DATE_EPOCH, or 1970.
pub(crate) fn created(epoch: Option<i64>) -> String {
    image::rfc3339(epoch.unwrap_or(0))
}
