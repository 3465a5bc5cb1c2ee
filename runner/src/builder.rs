//! The executor: from a validated [`BuildGraph`], build the target stage and the stages it
//! needs, and assemble the resulting image in the store.
//!
//! Planning follows BuildKit: only stages the target reaches through `FROM <stage>`,
//! `COPY --from` and `RUN --mount=from=` are built, in dependency order; a stage nobody needs
//! is never looked at, and its base image never resolved. Each stage starts from its base
//! (scratch, an earlier stage's result, or an image), applies its instructions to a
//! [`Tree`] and an [`ImageConfig`], and every instruction that changed files becomes one
//! layer written straight into the store.
//!
//! This module writes only through [`Store`] (blobs) and its own scratch directory; it never
//! tags anything: the caller does, once the whole build succeeded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kiln_ir::{Base, BuildGraph, ConfigChange, CopySource, Instruction, MountKind, Op, Span, Stage};
use oci_spec::image::{Descriptor, ImageManifestBuilder, MediaType};

use crate::cache::{Cache, CachedLayer, Entry, Key};
use crate::context::BuildContext;
use crate::copy::{self, CopySpec, Origin};
use crate::ignore::Matcher;
use crate::image::{self, Healthcheck, History, ImageConfig, LoadedImage};
use crate::layer::{self, LayerError, Scratch};
use crate::named_context::{ContextValue, NamedContext, NamedContexts};
use crate::progress::Progress;
use crate::registry::{Registry, RegistryError, RegistryScope};
use crate::rootfs::{self, Meta, Tree};
use crate::sandbox::{OutputSink, RunSpec, Sandbox};
use crate::store::{self, Digest, Store};
use std::path::{Path, PathBuf};

/// The PATH Docker gives a Linux stage whose base does not set one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A build that failed, located in the build file where possible.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    /// What went wrong, starting with the step (`[builder 2/5] COPY . .: ...`).
    pub message: String,
    /// Where in the build file.
    pub span: Option<Span>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl BuildError {
    fn new(message: impl Into<String>) -> Self {
        BuildError { message: message.into(), span: None, hint: None }
    }

    fn at(mut self, span: Span) -> Self {
        self.span.get_or_insert(span);
        self
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// What a build needs besides the graph.
pub struct BuildInput<'a> {
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
    /// Whether the caller needs the target's files ([`Built::tree`], for `-o local` and
    /// the like); without it, a fully cached build never unpacks them.
    pub keep_tree: bool,
    /// `--build-context NAME=VALUE`: what `FROM NAME` and `COPY --from=NAME` name, and the
    /// stages they replace.
    pub named_contexts: &'a NamedContexts,
    /// The registries the user named: the only ones a missing image is pulled from.
    pub registry_scope: &'a RegistryScope,
}

/// What an image reference in the build file stands for (see `Executor::source_of`).
enum ImageSource<'n> {
    /// An image to load, from the store, a registry, or a layout the user named.
    Image(String),
    /// A directory the user named.
    Directory(&'n NamedContext, PathBuf),
}

/// Output of a RUN step kept for error messages and logs.
const RUN_OUTPUT_LIMIT: usize = 4 << 20;

/// The result of a build: the image in the store (untagged) and its final filesystem.
pub struct Built {
    /// The manifest's descriptor.
    pub manifest: Descriptor,
    /// The config's digest (the image ID).
    pub config_digest: Digest,
    /// The config.
    pub config: ImageConfig,
    /// The target stage's filesystem (empty unless [`BuildInput::keep_tree`]).
    pub tree: Tree,
    /// The stages that were built, in order.
    pub built_stages: Vec<usize>,
}

/// A stage's state while and after it is built.
#[derive(Clone)]
struct StageOut {
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

/// The stages a stage needs built first: its base, and the sources of its COPY --from and
/// RUN --mount from. A stage a named context replaces needs nothing.
fn stage_deps(stage: &Stage, named: &NamedContexts) -> Vec<usize> {
    let mut out = Vec::new();
    if replaced_by(stage, named).is_some() {
        return out;
    }
    if let Base::Stage(i) = stage.base {
        out.push(i as usize);
    }
    for instruction in &stage.instructions {
        match &instruction.op {
            Op::Copy(c) => {
                if let CopySource::Stage(i) = c.from {
                    out.push(i as usize);
                }
            }
            Op::Run(r) => {
                for m in &r.mounts {
                    let from = match &m.kind {
                        MountKind::Bind(b) => Some(&b.from),
                        MountKind::Cache(c) => c.from.as_ref(),
                        _ => None,
                    };
                    if let Some(CopySource::Stage(i)) = from {
                        out.push(*i as usize);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The named context that replaces a stage of the same name (as `docker buildx build
/// --build-context` replaces stages), if any.
fn replaced_by<'n>(stage: &Stage, named: &'n NamedContexts) -> Option<&'n NamedContext> {
    named.get(stage.name.as_deref()?)
}

/// The stages the target needs, in an order where each comes after what it needs.
pub fn plan(graph: &BuildGraph, named: &NamedContexts) -> Vec<usize> {
    fn visit(graph: &BuildGraph, named: &NamedContexts, i: usize, seen: &mut Vec<bool>, order: &mut Vec<usize>) {
        if seen[i] {
            return;
        }
        seen[i] = true;
        for d in stage_deps(&graph.stages[i], named) {
            if d < graph.stages.len() {
                visit(graph, named, d, seen, order);
            }
        }
        order.push(i);
    }
    let mut seen = vec![false; graph.stages.len()];
    let mut order = Vec::new();
    visit(graph, named, graph.target as usize, &mut seen, &mut order);
    order
}

/// The images a build of the graph's target loads, as `image::load` and the registry take
/// them: the bases and `COPY --from` images of the stages it builds, named contexts replaced
/// by the images they name (a directory or an OCI layout written in the build file is none).
pub fn images_needed(graph: &BuildGraph, named: &NamedContexts) -> Vec<String> {
    let mut needed = Vec::new();
    let mut add = |reference: &str| match named.get(reference).map(|c| &c.value) {
        Some(ContextValue::Image(r) | ContextValue::Layout { reference: r }) => needed.push(r.clone()),
        Some(ContextValue::Directory(_)) => {}
        None if reference.starts_with("oci-layout://") => {}
        None => needed.push(reference.to_string()),
    };
    for index in plan(graph, named) {
        let stage = &graph.stages[index];
        if let Some(name) = stage.name.as_deref().filter(|_| replaced_by(stage, named).is_some()) {
            add(name);
            continue;
        }
        if let Base::Image(reference) = &stage.base {
            add(reference);
        }
        for instruction in &stage.instructions {
            if let Op::Copy(kiln_ir::CopyFiles { from: CopySource::Image(reference), .. }) = &instruction.op {
                add(reference);
            }
        }
    }
    needed.sort();
    needed.dedup();
    needed
}

/// The label BuildKit gives a stage: its name, or `stage-N`.
pub fn stage_label(graph: &BuildGraph, index: usize) -> String {
    graph.stages[index].name.clone().unwrap_or_else(|| format!("stage-{index}"))
}

struct Executor<'a> {
    store: &'a Store,
    progress: &'a Progress,
    input: &'a BuildInput<'a>,
    scratch: Arc<Scratch>,
    /// Base images loaded in this build, by reference (loaded once, under the lock).
    images: Mutex<HashMap<String, Arc<LoadedImage>>>,
    /// Their filesystems, unpacked when a step first needs one.
    trees: Mutex<HashMap<String, Arc<Tree>>>,
    /// Directories named with `--build-context`, read when first used, by name.
    directories: Mutex<HashMap<String, Arc<BuildContext>>>,
    /// Set when a stage fails: the others stop at their next step (or mid-RUN).
    stop: Arc<AtomicBool>,
    sandbox: Sandbox,
    cache: Cache<'a>,
    /// What every key starts from: the cache format, kiln, its shell, the frontend, the
    /// platform and SOURCE_DATE_EPOCH.
    root_key: Key,
}

/// Bump when what a step produces changes for the same inputs (layer format, COPY or RUN
/// semantics), so that no cache keeps results of the old behaviour.
const CACHE_FORMAT: &[u8] = b"kiln-cache-1";

fn root_key(input: &BuildInput<'_>) -> Key {
    static SHELL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let shell = SHELL.get_or_init(|| crate::frontend::sha256_hex(crate::sandbox::program::KILN_SHELL));
    let epoch = input.epoch.map(|e| e.to_string()).unwrap_or_default();
    Key::of(&[
        CACHE_FORMAT,
        env!("CARGO_PKG_VERSION").as_bytes(),
        shell.as_bytes(),
        input.frontend_digest.as_bytes(),
        input.platform.as_bytes(),
        epoch.as_bytes(),
    ])
}

/// Build `input.graph`'s target into the store. `scratch_dir` holds extracted file contents
/// for the length of the build.
pub fn build(
    store: &Store,
    progress: &Progress,
    input: &BuildInput<'_>,
    scratch_dir: &std::path::Path,
) -> Result<Built, BuildError> {
    let order = plan(input.graph, input.named_contexts);
    let compiled = store.compiled_dir().map_err(|e| BuildError::new(e.to_string()))?;
    let exec = Executor {
        store,
        progress,
        input,
        scratch: Arc::new(Scratch::with_layer_limit(scratch_dir, input.limits.layer_size)),
        images: Mutex::new(HashMap::new()),
        trees: Mutex::new(HashMap::new()),
        directories: Mutex::new(HashMap::new()),
        stop: Arc::new(AtomicBool::new(false)),
        sandbox: Sandbox::new(Some(compiled)),
        cache: Cache::new(store),
        root_key: root_key(input),
    };
    let mut results = run_stages(&exec, &order, input.jobs.max(1))?;
    // A signal that came during the last step still stops the build: nothing is exported.
    if crate::cancel::requested() {
        return Err(BuildError::new("the build was interrupted"));
    }
    let target = input.graph.target as usize;
    let out = results[target].take().expect("the target is built last");
    exec.export(out, order)
}

/// Build the stages in `order`, up to `jobs` at a time: a stage starts once every stage it
/// needs is built. The first failure stops the others (at their next step, or inside a
/// RUN) and is the build's error.
fn run_stages(exec: &Executor<'_>, order: &[usize], jobs: usize) -> Result<Vec<Option<StageOut>>, BuildError> {
    let graph = exec.input.graph;
    let mut results: Vec<Option<StageOut>> = vec![None; graph.stages.len()];
    let mut waiting: Vec<usize> = order.to_vec();
    let mut first_error: Option<BuildError> = None;
    std::thread::scope(|scope| {
        let (sender, finished) = std::sync::mpsc::channel::<(usize, Result<StageOut, BuildError>)>();
        let mut running = 0;
        loop {
            while first_error.is_none() && running < jobs {
                let ready = waiting.iter().position(|&s| {
                    stage_deps(&graph.stages[s], exec.input.named_contexts)
                        .iter()
                        .all(|&d| d >= results.len() || results[d].is_some())
                });
                let Some(position) = ready else { break };
                let index = waiting.remove(position);
                // What this stage reads of earlier ones, for its thread.
                let mut inputs: Vec<Option<StageOut>> = vec![None; results.len()];
                for d in stage_deps(&graph.stages[index], exec.input.named_contexts) {
                    if d < results.len() {
                        inputs[d] = results[d].clone();
                    }
                }
                let sender = sender.clone();
                running += 1;
                scope.spawn(move || {
                    let mut inputs = inputs;
                    // A panic must still report back, or the scheduler would wait for it forever.
                    let result =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exec.stage(index, &mut inputs)))
                            .unwrap_or_else(|_| Err(BuildError::new("internal error: building this stage panicked")));
                    let _ = sender.send((index, result));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((index, result)) = finished.recv() else { break };
            running -= 1;
            match result {
                Ok(out) => results[index] = Some(out),
                Err(e) => {
                    if first_error.is_none() {
                        exec.stop.store(true, Ordering::SeqCst);
                        first_error = Some(e);
                    }
                }
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

fn created(epoch: Option<i64>) -> String {
    image::rfc3339(epoch.unwrap_or(0))
}

impl Executor<'_> {
    fn stage(&self, index: usize, results: &mut [Option<StageOut>]) -> Result<StageOut, BuildError> {
        let graph = self.input.graph;
        let stage = &graph.stages[index];
        let label = stage_label(graph, index);
        if let Some(named) = replaced_by(stage, self.input.named_contexts) {
            // The stage is the named context, as given: none of its instructions run.
            let text = format!("[{label} 1/1] FROM {} (--build-context)", named.describe());
            let step = self.progress.start(text.clone());
            return match self.named_base(named, stage) {
                Ok(out) => {
                    self.progress.done(step, "");
                    Ok(out)
                }
                Err(e) => {
                    self.progress.failed(step, &e.message);
                    Err(BuildError { message: format!("{text}: {}", e.message), ..e }.at(stage.span))
                }
            };
        }
        let steps = stage.instructions.len() + 1;
        let from_text = stage.text.clone();
        let step = self.progress.start(format!("[{label} 1/{steps}] {from_text}"));
        let mut out = match self.base(stage, results) {
            Ok(out) => out,
            Err(e) => {
                self.progress.failed(step, &e.message);
                return Err(BuildError { message: format!("[{label} 1/{steps}] {from_text}: {}", e.message), ..e }
                    .at(stage.span));
            }
        };
        self.progress.done(step, "");
        // ONBUILD triggers of the base already ran (the frontend inlined them); Docker clears
        // them so they do not fire again for images built on this one.
        out.config.config.on_build.clear();
        if out.config.os == "linux" && out.config.env("PATH").is_none() {
            out.config.set_env("PATH", DEFAULT_PATH);
        }
        let mut cmd_set = false;
        for (i, instruction) in stage.instructions.iter().enumerate() {
            let prefix = format!("[{label} {}/{steps}]", i + 2);
            let text = format!("{prefix} {}", instruction.text);
            if crate::cancel::requested() {
                return Err(BuildError::new(format!("{text}: interrupted")).at(instruction.span));
            }
            if self.stop.load(Ordering::SeqCst) {
                return Err(BuildError::new(format!("{text}: stopped, another stage failed")).at(instruction.span));
            }
            let fail = |progress: &Progress, step, e: BuildError| {
                progress.failed(step, &e.message);
                BuildError { message: format!("{text}: {}", e.message), ..e }.at(instruction.span)
            };
            let key = match self.step_key(&mut out, instruction, results) {
                Ok(key) => key,
                Err(e) => return Err(fail(self.progress, self.progress.start(text.clone()), e)),
            };
            // Steps that can add a layer are cached; the others only change the config.
            let cacheable = matches!(instruction.op, Op::Run(_) | Op::Copy(_) | Op::Config(ConfigChange::Workdir(_)));
            if cacheable
                && self.input.use_cache
                && let Some(entry) = self.cache.get(&key)
            {
                match self.reuse(&mut out, entry) {
                    Ok(()) => {
                        self.progress.cached(&text);
                        out.key = key;
                        continue;
                    }
                    Err(e) => tracing::warn!("not using a cached result of {text}: {}", e.message),
                }
            }
            if cacheable && let Err(e) = self.ready(&mut out) {
                return Err(fail(self.progress, self.progress.start(text.clone()), e));
            }
            let step = self.progress.start(text.clone());
            let layers_before = out.layers.len();
            let result = self.instruction(&mut out, instruction, results, &mut cmd_set, &label);
            match result {
                Ok(detail) => self.progress.done(step, &detail),
                Err(e) => return Err(fail(self.progress, step, e)),
            }
            if cacheable {
                let layer = (out.layers.len() > layers_before).then(|| {
                    let descriptor = out.layers.last().expect("a layer was added");
                    CachedLayer {
                        digest: descriptor.digest().to_string(),
                        size: descriptor.size(),
                        diff_id: out.config.rootfs.diff_ids.last().cloned().unwrap_or_default(),
                    }
                });
                self.cache.put(&key, &Entry { config: out.config.clone(), layer });
            }
            out.key = key;
        }
        Ok(out)
    }

    fn base(&self, stage: &Stage, results: &[Option<StageOut>]) -> Result<StageOut, BuildError> {
        match &stage.base {
            Base::Scratch => Ok(self.scratch_base(stage)),
            Base::Stage(i) => {
                let mut out = results[*i as usize].clone().ok_or_else(|| BuildError::new("internal: stage order"))?;
                out.tree.forget_changes();
                Ok(out)
            }
            Base::Image(reference) => match self.source_of(reference)? {
                ImageSource::Image(reference) => self.image_base(&reference, stage),
                ImageSource::Directory(named, dir) => self.directory_base(named, &dir, stage),
            },
        }
    }

    /// An empty stage for the stage's platform (`FROM scratch`).
    fn scratch_base(&self, stage: &Stage) -> StageOut {
        let platform = stage.platform.clone().unwrap_or_else(|| self.input.platform.clone());
        let mut parts = platform.split('/');
        let config = ImageConfig {
            os: parts.next().unwrap_or("linux").to_string(),
            architecture: parts.next().unwrap_or("amd64").to_string(),
            variant: parts.next().map(str::to_string),
            ..ImageConfig::default()
        };
        let key = self.root_key.then(&[b"scratch", platform.as_bytes()]);
        StageOut { tree: Tree::new(), config, layers: Vec::new(), key, lazy_base: None, pending: Vec::new() }
    }

    /// A stage on an image: its config and layers now, its files when a step needs them.
    fn image_base(&self, reference: &str, stage: &Stage) -> Result<StageOut, BuildError> {
        let runs = stage.instructions.iter().any(|i| matches!(i.op, Op::Run(_)));
        let platforms = self.platforms(stage.platform.as_deref(), runs);
        let image = self.image(reference, &platforms)?;
        let manifest = serde_json::to_vec(&image.manifest).map_err(|e| BuildError::new(format!("internal: {e}")))?;
        let key = self.root_key.then(&[b"image", &manifest]);
        Ok(StageOut {
            tree: Tree::new(),
            config: image.config.clone(),
            layers: image.manifest.layers().clone(),
            key,
            lazy_base: Some((reference.to_string(), platforms, stage.span)),
            pending: Vec::new(),
        })
    }

    /// A stage on a directory named with `--build-context`: an empty image for the stage's
    /// platform whose first layer holds the directory's files, root-owned, as BuildKit makes
    /// a local context into a base.
    fn directory_base(&self, named: &NamedContext, dir: &Path, stage: &Stage) -> Result<StageOut, BuildError> {
        let context = self.directory(named, dir)?;
        let mut out = self.scratch_base(stage);
        let exclude = Matcher::default();
        let spec = CopySpec {
            sources: &[".".to_string()],
            inline: &[],
            dest: "/",
            workdir: "/",
            owner: None,
            chmod: None,
            exclude: &exclude,
            parents: false,
            unpack: false,
            created_mtime: self.layer_epoch(),
        };
        let origin = Origin::NamedContext(named.name.clone());
        copy::copy(&mut out.tree, &context.tree, &origin, &spec, &self.scratch)
            .map_err(|e| BuildError::new(e.to_string()))?;
        let changes = out.tree.take_changes();
        let written =
            layer::write_changes(self.store, &out.tree, &changes, Some(self.layer_epoch()), self.scratch.layer_limit())
                .map_err(|e| BuildError::new(e.to_string()))?;
        let layer_id = match written {
            Some(l) => {
                out.layers.push(store::descriptor(MediaType::ImageLayerGzip, &l.digest, l.size));
                out.config.rootfs.diff_ids.push(l.diff_id.to_string());
                l.diff_id.to_string()
            }
            None => String::new(),
        };
        out.config.history.push(History {
            created: Some(created(self.input.epoch)),
            created_by: Some(format!("FROM {} (--build-context)", named.describe())),
            empty_layer: layer_id.is_empty(),
            ..History::default()
        });
        out.key = out.key.then(&[b"named-directory", layer_id.as_bytes()]);
        Ok(out)
    }

    /// A stage replaced by a named context: the image or directory it names, as it is.
    fn named_base(&self, named: &NamedContext, stage: &Stage) -> Result<StageOut, BuildError> {
        match &named.value {
            ContextValue::Image(reference) | ContextValue::Layout { reference } => self.image_base(reference, stage),
            ContextValue::Directory(dir) => self.directory_base(named, dir, stage),
        }
    }

    /// What an image reference written in the build file (`FROM`, `COPY --from`) stands for:
    /// a named context the user gave, else an image of the store or a registry. An OCI
    /// layout on disk can only come from the command line: a build file that names one
    /// could read any layout on the machine.
    fn source_of(&self, reference: &str) -> Result<ImageSource<'_>, BuildError> {
        if let Some(named) = self.input.named_contexts.get(reference) {
            return Ok(match &named.value {
                ContextValue::Image(r) | ContextValue::Layout { reference: r } => ImageSource::Image(r.clone()),
                ContextValue::Directory(dir) => ImageSource::Directory(named, dir.clone()),
            });
        }
        if reference.starts_with("oci-layout://") {
            return Err(BuildError::new(format!(
                "{reference}: a build file cannot name an OCI layout on disk (it could read any layout on the machine)"
            ))
            .hint("name the layout on the command line instead: kiln build --build-context NAME=oci-layout://DIR[:TAG] ..., and write FROM NAME (or COPY --from=NAME)"));
        }
        Ok(ImageSource::Image(reference.to_string()))
    }

    /// A directory named with `--build-context`, read once per build (its own
    /// `.dockerignore` applies, and `--max-context-files`).
    fn directory(&self, named: &NamedContext, dir: &Path) -> Result<Arc<BuildContext>, BuildError> {
        let mut directories = self.directories.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = directories.get(&named.name) {
            return Ok(found.clone());
        }
        let fail = |e: &dyn std::fmt::Display| BuildError::new(format!("--build-context {}: {e}", named.describe()));
        // Its files' snapshots go in a directory of their own: each context numbers its own.
        let snapshots = self.scratch.new_dir().map_err(|e| fail(&e))?;
        let limits = &self.input.limits;
        let context = BuildContext::load(dir, None, limits.context_files, limits.build_file_size, &snapshots)
            .map_err(|e| fail(&e))?;
        let context = Arc::new(context);
        directories.insert(named.name.clone(), context.clone());
        Ok(context)
    }

    /// The platforms to take from a multi-platform image, most wanted first: the stage's
    /// `FROM --platform`, else `--platform`; without either, a stage that RUNs prefers a
    /// WASI image (what its RUN steps can execute), then the target platform.
    fn platforms(&self, stage_platform: Option<&str>, runs: bool) -> Vec<String> {
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
    fn image(&self, reference: &str, platforms: &[String]) -> Result<Arc<LoadedImage>, BuildError> {
        let id = format!("{reference} {}", platforms.join(","));
        let mut images = self.images.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = images.get(&id) {
            return Ok(found.clone());
        }
        let unnamed = self.input.registry_scope.unnamed_registry(reference);
        let loaded = match self.input.registry {
            Some(registry) if unnamed.is_none() => {
                let report = |line: &str| self.progress.note(&format!("pulling {reference}: {line}"));
                registry.resolve(self.store, reference, platforms, self.input.always_pull, &report).map_err(|e| {
                    let err = BuildError::new(e.to_string());
                    match e {
                        RegistryError::Unreachable { .. } | RegistryError::NotFound { .. } if !self.input.always_pull => {
                            err.hint(format!(
                                "{reference} is not in kiln's store (`kiln images`), so kiln tried its registry; build or pull it first, or name an OCI layout with --build-context NAME=oci-layout://DIR[:TAG]"
                            ))
                        }
                        _ => err,
                    }
                })?
            }
            Some(_) => image::load(self.store, reference, platforms).map_err(|e| match e {
                image::ImageError::NotFound { .. } => BuildError::new(format!(
                    "{reference} is not in kiln's store, and kiln does not pull it: its registry {} appears nowhere in the build file, the build arguments or the named contexts, so the frontend chose it, not you",
                    unnamed.unwrap_or_default()
                ))
                .hint(format!(
                    "if you mean to build on it, pull it first (`kiln pull {reference}`), or name it in the build file or with --build-context NAME=docker-image://{reference}"
                )),
                other => BuildError::new(other.to_string()),
            })?,
            None => image::load(self.store, reference, platforms).map_err(|e| {
                let err = BuildError::new(e.to_string());
                match e {
                    image::ImageError::NotFound { .. } => err.hint(
                        "images come from kiln's store (`kiln images`) or an OCI layout named with --build-context NAME=oci-layout://DIR[:TAG]",
                    ),
                    _ => err,
                }
            })?,
        };
        loaded.import(self.store).map_err(|e| BuildError::new(e.to_string()))?;
        let entry = Arc::new(loaded);
        images.insert(id, entry.clone());
        Ok(entry)
    }

    /// An image's filesystem (unpacked once per build).
    fn image_tree(&self, reference: &str, platforms: &[String]) -> Result<Arc<Tree>, BuildError> {
        let image = self.image(reference, platforms)?;
        let id = image.manifest_digest.to_string();
        let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = trees.get(&id) {
            return Ok(found.clone());
        }
        let tree = Arc::new(image.rootfs(self.store, &self.scratch).map_err(|e| BuildError::new(e.to_string()))?);
        trees.insert(id, tree.clone());
        Ok(tree)
    }

    /// Make the stage's files real: unpack a lazy base and apply the layers of cached steps.
    fn ready(&self, out: &mut StageOut) -> Result<(), BuildError> {
        if let Some((reference, platforms, from)) = out.lazy_base.take() {
            // A base that cannot be unpacked is the FROM line's fault, not the step's that
            // first needed its files.
            let tree = self.image_tree(&reference, &platforms).map_err(|e| {
                BuildError { message: format!("unpacking the base image {reference}: {}", e.message), ..e }.at(from)
            })?;
            out.tree = (*tree).clone();
        }
        for layer in std::mem::take(&mut out.pending) {
            let parse = |text: &str| Digest::parse(text).map_err(|e| BuildError::new(e.to_string()));
            let expected = layer::Expected {
                digest: parse(&layer.digest)?,
                size: layer.size,
                diff_id: Some(parse(&layer.diff_id)?),
            };
            let blob = self.store.open_blob(&expected.digest).map_err(|e| BuildError::new(e.to_string()))?;
            // Checked as it streams: the cache checked the blob when it was looked up, but
            // this is the read whose bytes are used.
            layer::apply_blob(&mut out.tree, blob, &expected, &self.scratch, &layer.digest).map_err(|e| match e {
                LayerError::Damaged { digest, mismatch } => BuildError::new(format!(
                    "layer {digest}, the cached result of an earlier step, is damaged in kiln's store: {mismatch}"
                ))
                .hint("build again with --no-cache: the step runs again and writes its layer anew"),
                other => BuildError::new(other.to_string()),
            })?;
        }
        out.tree.forget_changes();
        Ok(())
    }

    fn history(&self, out: &mut StageOut, instruction: &Instruction, empty_layer: bool) {
        out.config.history.push(History {
            created: Some(created(self.input.epoch)),
            created_by: Some(instruction.created_by.clone()),
            comment: None,
            author: None,
            empty_layer,
        });
    }

    /// The latest mtime a layer may record: SOURCE_DATE_EPOCH, or 0 when it is unset, so that
    /// an image never depends on when its context's files were written or checked out.
    fn layer_epoch(&self) -> i64 {
        self.input.epoch.unwrap_or(0)
    }

    /// Write what the step changed as a layer (or record an empty one).
    fn commit(&self, out: &mut StageOut, instruction: &Instruction) -> Result<String, BuildError> {
        let changes = out.tree.take_changes();
        let written =
            layer::write_changes(self.store, &out.tree, &changes, Some(self.layer_epoch()), self.scratch.layer_limit())
                .map_err(|e| BuildError::new(e.to_string()))?;
        match written {
            Some(l) => {
                out.layers.push(store::descriptor(MediaType::ImageLayerGzip, &l.digest, l.size));
                out.config.rootfs.diff_ids.push(l.diff_id.to_string());
                self.history(out, instruction, false);
                Ok(format!("layer {} bytes", l.size))
            }
            None => {
                self.history(out, instruction, true);
                Ok(String::new())
            }
        }
    }

    fn instruction(
        &self,
        out: &mut StageOut,
        instruction: &Instruction,
        results: &mut [Option<StageOut>],
        cmd_set: &mut bool,
        label: &str,
    ) -> Result<String, BuildError> {
        match &instruction.op {
            Op::Run(run) => self.run(out, instruction, run, label),
            Op::Arg(_) => {
                self.history(out, instruction, true);
                Ok(String::new())
            }
            Op::Copy(c) => {
                self.copy(out, c, results)?;
                self.commit(out, instruction)
            }
            Op::Config(change) => self.config(out, instruction, change, cmd_set),
        }
    }

    /// The step's cache key: the stage's key so far, the instruction, and for COPY/ADD what
    /// it copies. That is, from the context: the files it takes, copied into an empty tree
    /// (paths, modes, owners, bytes; the stage's own files are fixed by the key so far); from
    /// a stage: that stage's key; from an image: its manifest. None of it needs the stage's
    /// files, so a cached step never unpacks them.
    fn step_key(
        &self,
        out: &mut StageOut,
        instruction: &Instruction,
        results: &mut [Option<StageOut>],
    ) -> Result<Key, BuildError> {
        let op = serde_json::to_vec(&instruction.op).map_err(|e| BuildError::new(format!("internal: {e}")))?;
        let key = out.key.then(&[&op, instruction.created_by.as_bytes()]);
        let Op::Copy(c) = &instruction.op else { return Ok(key) };
        // Where the COPY reads: an image is keyed by its manifest, a stage by its key, and
        // local files (the context, a directory named with --build-context) by what it takes.
        let source_image = match &c.from {
            CopySource::Image(reference) => match self.source_of(reference)? {
                ImageSource::Image(loaded) => Some(loaded),
                ImageSource::Directory(..) => None,
            },
            _ => None,
        };
        let source: Vec<u8> = match (&c.from, source_image) {
            (CopySource::Stage(i), _) => results
                .get(*i as usize)
                .and_then(|r| r.as_ref())
                .ok_or_else(|| BuildError::new("internal: stage order"))?
                .key
                .as_str()
                .as_bytes()
                .to_vec(),
            (_, Some(loaded)) => serde_json::to_vec(&self.image(&loaded, &self.platforms(None, false))?.manifest)
                .map_err(|e| BuildError::new(format!("internal: {e}")))?,
            (_, None) => {
                let mut probe = StageOut {
                    tree: Tree::new(),
                    config: out.config.clone(),
                    layers: Vec::new(),
                    key: out.key.clone(),
                    lazy_base: None,
                    pending: Vec::new(),
                };
                // --chown by name reads the stage's /etc/passwd and /etc/group.
                let by_name = c.chown.as_deref().is_some_and(|o| !o.chars().all(|ch| ch.is_ascii_digit() || ch == ':'));
                if by_name {
                    self.ready(out)?;
                    probe.tree = out.tree.clone();
                    probe.tree.forget_changes();
                }
                self.copy(&mut probe, c, results)?;
                let changes = probe.tree.take_changes();
                layer::changes_key(&probe.tree, &changes, Some(self.layer_epoch()))
                    .map_err(|e| BuildError::new(e.to_string()))?
                    .map(|d| d.as_str().as_bytes().to_vec())
                    .unwrap_or_default()
            }
        };
        Ok(key.then(&[b"copy-source", &source]))
    }

    /// Take a cached step's result: its config, and its layer (applied to the files when a
    /// later step needs them).
    fn reuse(&self, out: &mut StageOut, entry: Entry) -> Result<(), BuildError> {
        if let Some(layer) = &entry.layer {
            let digest = Digest::parse(&layer.digest).map_err(|e| BuildError::new(e.to_string()))?;
            out.layers.push(store::descriptor(MediaType::ImageLayerGzip, &digest, layer.size));
            out.pending.push(layer.clone());
        }
        out.config = entry.config;
        Ok(())
    }

    /// Copy files into the stage (COPY and ADD), without writing the layer.
    fn copy(
        &self,
        out: &mut StageOut,
        c: &kiln_ir::CopyFiles,
        results: &mut [Option<StageOut>],
    ) -> Result<(), BuildError> {
        let image_entry;
        let directory_entry;
        let (source_tree, origin) = match &c.from {
            CopySource::Context => (&self.input.context.tree, Origin::Context),
            CopySource::Stage(i) => {
                let source = results[*i as usize].as_mut().ok_or_else(|| BuildError::new("internal: stage order"))?;
                self.ready(source)?;
                (&source.tree, Origin::Stage(stage_label(self.input.graph, *i as usize)))
            }
            CopySource::Image(reference) => match self.source_of(reference)? {
                ImageSource::Image(loaded) => {
                    image_entry = self.image_tree(&loaded, &self.platforms(None, false))?;
                    (&*image_entry, Origin::Image(reference.clone()))
                }
                ImageSource::Directory(named, dir) => {
                    directory_entry = self.directory(named, &dir)?;
                    (&directory_entry.tree, Origin::NamedContext(named.name.clone()))
                }
            },
        };
        let owner = match &c.chown {
            Some(spec) => Some(
                copy::resolve_owner(spec, &out.tree, copy::OwnerSpec::Chown)
                    .map_err(|e| BuildError::new(e.to_string()))?,
            ),
            None => None,
        };
        let chmod = match &c.chmod {
            Some(text) => Some(copy::parse_chmod(text).map_err(|e| BuildError::new(e.to_string()))?),
            None => None,
        };
        let exclude = Matcher::new(&c.exclude).map_err(|e| BuildError::new(e.to_string()))?;
        let inline: Vec<(String, String, u32)> =
            c.inline_sources.iter().map(|f| (f.name.clone(), f.contents.clone(), f.mode)).collect();
        let workdir = out.config.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let unpack = c.add.as_ref().is_some_and(|a| a.unpack != Some(false));
        if let Some(add) = &c.add
            && add.checksum.is_some()
        {
            return Err(BuildError::new("ADD --checksum applies to remote sources, which kiln cannot fetch yet"));
        }
        let spec = CopySpec {
            sources: &c.sources,
            inline: &inline,
            dest: &c.dest,
            workdir: &workdir,
            owner,
            chmod,
            exclude: &exclude,
            parents: c.parents,
            unpack,
            created_mtime: self.input.epoch.unwrap_or(0),
        };
        copy::copy(&mut out.tree, source_tree, &origin, &spec, &self.scratch).map_err(|e| {
            let err = BuildError::new(e.to_string());
            match e {
                copy::CopyError::NotFound { origin: Origin::Context | Origin::NamedContext(_), .. } => {
                    err.hint("paths are relative to the build context; check the path and the .dockerignore")
                }
                _ => err,
            }
        })?;
        Ok(())
    }

    fn run(
        &self,
        out: &mut StageOut,
        instruction: &Instruction,
        run: &kiln_ir::Run,
        label: &str,
    ) -> Result<String, BuildError> {
        if !run.mounts.is_empty() {
            return Err(BuildError::new("RUN --mount is not supported by kiln yet")
                .hint("copy what the step needs into the stage with COPY first"));
        }
        // The environment: build args in scope, then ENV (which wins, as in Docker).
        let mut env: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| match env.iter_mut().find(|(key, _)| key == k) {
            Some(entry) => entry.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        };
        for kv in &run.build_args {
            set(&kv.key, &kv.value);
        }
        for entry in &out.config.config.env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            set(k, v);
        }
        let owner = user_owner(out)?;
        let cwd = out.config.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let seed = {
            use std::hash::{DefaultHasher, Hash, Hasher};
            let mut h = DefaultHasher::new();
            (&instruction.created_by, &run.argv, &cwd, instruction.span.start.line).hash(&mut h);
            h.finish()
        };
        let spec = RunSpec {
            argv: &run.argv,
            env: &env,
            cwd: &cwd,
            owner,
            epoch: self.input.epoch.unwrap_or(0),
            seed,
            memory: usize::try_from(self.input.limits.step_memory).unwrap_or(usize::MAX),
            timeout: self.input.step_timeout,
            output_limit: RUN_OUTPUT_LIMIT,
            output_budget: self.input.limits.step_output,
            processes: self.input.limits.step_processes,
            sink: OutputSink::Capture,
            stop: Some(self.stop.clone()),
        };
        let tree = std::mem::take(&mut out.tree);
        let (tree, outcome) = self.sandbox.run(tree, self.scratch.clone(), &spec);
        out.tree = tree;
        let outcome = outcome.map_err(|e| {
            use crate::limits::{Limit, exceeded, human_size};
            use crate::sandbox::RunError;
            let limits = &self.input.limits;
            let mut message = e.to_string();
            match &e {
                RunError::Trap { output, .. } => message.push_str(&last_lines(output)),
                RunError::Memory(_) => {
                    message =
                        format!("{message}: {}", exceeded(Limit::StepMemory, &(limits.step_memory >> 20).to_string()));
                }
                RunError::Output(_) => {
                    message = format!("{message}: {}", exceeded(Limit::StepOutput, &human_size(limits.step_output)));
                }
                RunError::Processes(_) => {
                    message =
                        format!("{message}: {}", exceeded(Limit::StepProcesses, &limits.step_processes.to_string()));
                }
                RunError::LayerSize { output, .. } => {
                    message = format!(
                        "{message}: {}{}",
                        exceeded(Limit::LayerSize, &human_size(limits.layer_size)),
                        last_lines(output)
                    );
                }
                _ => {}
            }
            BuildError::new(message)
        })?;
        for warning in &outcome.warnings {
            self.progress.note(&format!("warning: {warning}"));
        }
        if outcome.status != 0 {
            return Err(BuildError::new(format!(
                "process {:?} did not complete successfully: exit code: {}{}",
                run.argv.join(" "),
                outcome.status,
                last_lines(&outcome.output)
            )));
        }
        // One block, each line naming its stage: stages built side by side stay readable.
        let output: Vec<String> =
            String::from_utf8_lossy(&outcome.output).lines().map(|line| format!("  [{label}] {line}")).collect();
        if !output.is_empty() {
            self.progress.note(&output.join("\n"));
        }
        if outcome.output_clipped {
            self.progress.note(&format!(
                "  [{label}] [output clipped: the log keeps the first {} of a step]",
                crate::limits::human_size(RUN_OUTPUT_LIMIT as u64)
            ));
        }
        self.commit(out, instruction)
    }

    fn config(
        &self,
        out: &mut StageOut,
        instruction: &Instruction,
        change: &ConfigChange,
        cmd_set: &mut bool,
    ) -> Result<String, BuildError> {
        let run = &mut out.config.config;
        match change {
            ConfigChange::Env(pairs) => {
                for kv in pairs {
                    out.config.set_env(&kv.key, &kv.value);
                }
            }
            ConfigChange::Label(pairs) => {
                for kv in pairs {
                    run.labels.insert(kv.key.clone(), kv.value.clone());
                }
            }
            ConfigChange::Workdir(path) => {
                let current = run.working_dir.clone().unwrap_or_else(|| "/".into());
                let joined = if path.starts_with('/') { path.clone() } else { format!("{current}/{path}") };
                let absolute = format!("/{}", rootfs::join(&rootfs::clean(&joined)));
                run.working_dir = Some(absolute.clone());
                // Docker creates the directory, owned by the current USER.
                let (uid, gid) = user_owner(out)?;
                let meta = Meta { mode: 0o755, uid, gid, mtime: self.input.epoch.unwrap_or(0) };
                out.tree
                    .mkdir_all(&[], &absolute, meta)
                    .map_err(|e| BuildError::new(format!("WORKDIR {absolute}: {e}")))?;
                return self.commit(out, instruction);
            }
            ConfigChange::User(user) => run.user = Some(user.clone()),
            ConfigChange::Cmd(command) => {
                run.cmd = Some(command.argv.clone());
                *cmd_set = true;
            }
            ConfigChange::Entrypoint(command) => {
                run.entrypoint = Some(command.argv.clone());
                // An ENTRYPOINT resets a CMD inherited from the base, as in Docker.
                if !*cmd_set {
                    run.cmd = None;
                }
            }
            ConfigChange::Expose(ports) => {
                for port in ports {
                    run.exposed_ports.insert(port.clone(), serde_json::json!({}));
                }
            }
            ConfigChange::Volume(paths) => {
                for path in paths {
                    run.volumes.insert(path.clone(), serde_json::json!({}));
                }
            }
            ConfigChange::Healthcheck(h) => {
                run.healthcheck = Some(Healthcheck {
                    test: h.test.clone(),
                    interval: h.interval,
                    timeout: h.timeout,
                    start_period: h.start_period,
                    start_interval: h.start_interval,
                    retries: h.retries,
                });
            }
            ConfigChange::StopSignal(signal) => run.stop_signal = Some(signal.clone()),
            ConfigChange::Shell(shell) => run.shell = shell.clone(),
            ConfigChange::Onbuild(trigger) => run.on_build.push(trigger.clone()),
            ConfigChange::Maintainer(who) => out.config.author = Some(who.clone()),
        }
        self.history(out, instruction, true);
        Ok(String::new())
    }

    /// Write the target's config and manifest into the store.
    /// An image built on `scratch` whose program (ENTRYPOINT, else CMD) is WebAssembly says so
    /// in its platform, as the Wasm ecosystem expects: `wasip1/wasm` for a core module,
    /// `wasip2/wasm` for a component. Images on a base image keep the base's platform.
    fn mark_wasm(&self, out: &mut StageOut) -> Result<(), BuildError> {
        if out.lazy_base.is_some() || out.config.os != "linux" {
            return Ok(());
        }
        let config = &out.config.config;
        let Some(program) = config.entrypoint.iter().chain(config.cmd.iter()).find_map(|argv| argv.first()).cloned()
        else {
            return Ok(());
        };
        self.ready(out)?;
        let cwd = rootfs::clean(out.config.config.working_dir.as_deref().unwrap_or("/"));
        let candidates: Vec<String> = if program.contains('/') {
            vec![program]
        } else {
            let path = out.config.env("PATH").unwrap_or(DEFAULT_PATH).to_string();
            path.split(':').filter(|d| !d.is_empty()).map(|d| format!("{d}/{program}")).collect()
        };
        let found = candidates.iter().find_map(|c| {
            let path = out.tree.resolve(&cwd, c, true).ok()?;
            match out.tree.get(&path) {
                Some(rootfs::Node { kind: rootfs::Kind::File(data), .. }) => Some(data.clone()),
                _ => None,
            }
        });
        let Some(data) = found else { return Ok(()) };
        let mut head = [0u8; 8];
        let read = data.content.open().and_then(|mut r| std::io::Read::read_exact(&mut r, &mut head));
        let os = match (read, head) {
            (Ok(()), [0, b'a', b's', b'm', 1, 0, 0, 0]) => "wasip1",
            (Ok(()), [0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => "wasip2",
            _ => return Ok(()),
        };
        out.config.os = os.into();
        out.config.architecture = "wasm".into();
        out.config.variant = None;
        Ok(())
    }

    fn export(&self, mut out: StageOut, built_stages: Vec<usize>) -> Result<Built, BuildError> {
        let err = |e: store::StoreError| BuildError::new(e.to_string());
        if self.input.keep_tree {
            self.ready(&mut out)?;
        }
        self.mark_wasm(&mut out)?;
        out.config.created = Some(created(self.input.epoch));
        // Layers from Docker-format bases are described with their OCI media types.
        let layers: Vec<Descriptor> = out
            .layers
            .iter()
            .map(|d| {
                let mut d = d.clone();
                let media = match d.media_type() {
                    MediaType::Other(t) if t == "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                        MediaType::ImageLayerGzip
                    }
                    MediaType::Other(t) if t == "application/vnd.docker.image.rootfs.diff.tar" => MediaType::ImageLayer,
                    m => m.clone(),
                };
                d.set_media_type(media);
                d.set_annotations(None);
                d.set_urls(None);
                d
            })
            .collect();
        let config_desc = self.store.put_json(MediaType::ImageConfig, &out.config).map_err(err)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_desc.clone())
            .layers(layers)
            .build()
            .map_err(|e| BuildError::new(format!("cannot assemble the manifest: {e}")))?;
        let manifest_desc = self.store.put_json(MediaType::ImageManifest, &manifest).map_err(err)?;
        let config_digest = store::descriptor_digest(&config_desc).map_err(err)?;
        Ok(Built { manifest: manifest_desc, config_digest, config: out.config, tree: out.tree, built_stages })
    }
}

/// The ids of the stage's USER (root when unset), from its /etc/passwd and /etc/group.
fn user_owner(out: &StageOut) -> Result<(u32, u32), BuildError> {
    match out.config.config.user.as_deref().filter(|u| !u.is_empty()) {
        Some(user) => {
            copy::resolve_owner(user, &out.tree, copy::OwnerSpec::User).map_err(|e| BuildError::new(e.to_string()))
        }
        None => Ok((0, 0)),
    }
}

/// The last lines a program printed, for an error message.
fn last_lines(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(10)..];
    format!(
        "\noutput (last {} lines):\n{}",
        tail.len(),
        tail.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
    )
}
