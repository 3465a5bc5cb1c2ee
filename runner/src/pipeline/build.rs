//! `kiln build` as a library call: parse, check every output before any work, load the
//! context, solve, export, tag, push. Nothing is tagged unless the whole build succeeded,
//! and no output is written over kiln's store or the part of a context the build reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::image::Descriptor;

use super::Session;
use super::parse::{ParseError, ParseRequest, Parsed, parse_with_bases};
use crate::context::{BuildContext, ContextError};
use crate::executor::{Dispatch, ExecutorChoice};
use crate::exporter::{self, ExportError, Output, Protected};
use crate::image::{self, InvalidName};
use crate::limits::Limits;
use crate::progress::Progress;
use crate::solver::{self, SolveError, SolveRequest};
use crate::source::named::ContextValue;
use crate::source::registry::{self, Pushed, RegistryError};
use crate::store::{Digest, Store, StoreError};

/// What to build and where the result goes.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// What to parse, and how.
    pub parse: ParseRequest,
    /// `-t`: names to give the image in the store (`NAME[:TAG]`).
    pub tags: Vec<String>,
    /// `-o`: files and directories to write the image to (registry outputs go in `pushes`).
    pub outputs: Vec<Output>,
    /// References to push the image to.
    pub pushes: Vec<String>,
    /// `--no-cache`: run every step (results are still recorded).
    pub no_cache: bool,
    /// `--pull`: pull base images even when the store has them.
    pub pull: bool,
    /// How many stages may be built at once (the number of CPUs when unset).
    pub jobs: Option<usize>,
    /// `--verify-reproducible`: build twice from scratch first and fail unless both agree.
    pub verify_reproducible: bool,
    /// Wall time each RUN step may take, if limited.
    pub step_timeout: Option<Duration>,
    /// What the build may consume.
    pub limits: Limits,
    /// SOURCE_DATE_EPOCH when the environment sets it (a build argument of that name wins).
    pub source_date_epoch: Option<String>,
    /// Which executors may run RUN steps (`--executor`): WASI only, or Linux programs under
    /// proot as well.
    pub executor: ExecutorChoice,
}

impl BuildRequest {
    /// A build of `context`'s Dockerfile with default settings, tagged nowhere.
    pub fn new(context: impl Into<PathBuf>) -> Self {
        BuildRequest {
            parse: ParseRequest::new(context),
            tags: Vec::new(),
            outputs: Vec::new(),
            pushes: Vec::new(),
            no_cache: false,
            pull: false,
            jobs: None,
            verify_reproducible: false,
            step_timeout: None,
            limits: Limits::default(),
            source_date_epoch: None,
            executor: ExecutorChoice::default(),
        }
    }
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The image's manifest, in the store.
    pub manifest: Descriptor,
    /// Its config's digest: the image ID.
    pub config_digest: Digest,
    /// The names it was given.
    pub names: Vec<String>,
    /// Where it was pushed.
    pub pushed: Vec<Pushed>,
    /// The frontend's warnings (also reported as they came).
    pub warnings: Vec<kiln_ir::Diagnostic>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A `-t` name Docker would not take.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// A push destination that is not a reference.
    #[error(transparent)]
    InvalidPush(RegistryError),
    /// SOURCE_DATE_EPOCH is not a number.
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds since 1970")]
    SourceDateEpoch(String),
    /// kiln's store cannot be opened.
    #[error("cannot open kiln's store: {0}")]
    OpenStore(StoreError),
    /// The build file could not be parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The build context could not be read.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The store or a context could not be resolved to protect it from the outputs.
    #[error("cannot resolve {}: {error}", path.display())]
    Resolve {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// An output may not be written where it says (checked before building).
    #[error(transparent)]
    Output(ExportError),
    /// `--verify-reproducible`: the two builds differ (or one failed).
    #[error("{file_name}: the build is not reproducible")]
    NotReproducible {
        /// The build file.
        file_name: String,
        /// What differs, one line each.
        differences: Vec<String>,
    },
    /// The build itself failed.
    #[error("{error}")]
    Solve {
        /// The build file, for locating the error.
        file_name: String,
        /// Its bytes, to quote the line.
        contents: Vec<u8>,
        /// What failed.
        error: Box<SolveError>,
    },
    /// An output could not be written.
    #[error("{error}")]
    Export {
        /// The build file, for messages.
        file_name: String,
        /// What failed.
        error: Box<ExportError>,
    },
    /// The store failed (its scratch directory, tagging).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A push failed.
    #[error(transparent)]
    Push(RegistryError),
}

impl BuildError {
    /// Whether the request itself is wrong (a name, an output, a setting): the caller's
    /// usage error, found before any work.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            BuildError::InvalidName(_)
                | BuildError::InvalidPush(_)
                | BuildError::SourceDateEpoch(_)
                | BuildError::Output(_)
        )
    }

    /// Whether the build stopped because it was interrupted (Ctrl-C or a signal).
    pub fn is_interrupted(&self) -> bool {
        match self {
            BuildError::Solve { error, .. } => error.is_interrupted() || crate::cancel::requested(),
            BuildError::Export { error, .. } => error.interrupted(),
            _ => false,
        }
    }
}

/// SOURCE_DATE_EPOCH from a build argument, else from `environment`.
fn source_date_epoch(parsed: &Parsed, environment: Option<&str>) -> Result<Option<i64>, BuildError> {
    let value = parsed
        .build_args
        .iter()
        .rev()
        .find(|kv| kv.key == "SOURCE_DATE_EPOCH")
        .map(|kv| kv.value.as_str())
        .or(environment)
        .filter(|v| !v.is_empty());
    match value {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| BuildError::SourceDateEpoch(v.to_string())),
    }
}

/// Build `request`: parse, solve, export, tag and push, reporting to `progress`.
///
/// # Errors
/// See [`BuildError`]; nothing is tagged or pushed unless every step before succeeded.
pub fn build(session: &Session, request: &BuildRequest, progress: &Progress) -> Result<BuildOutcome, BuildError> {
    // Check every name before doing any work.
    let names = request.tags.iter().map(|t| image::validate_tag(t)).collect::<Result<Vec<_>, _>>()?;
    for to in &request.pushes {
        registry::parse_reference(to).map_err(BuildError::InvalidPush)?;
    }
    let store = session.open_store().map_err(BuildError::OpenStore)?;
    let (parsed, registry_scope) = parse_with_bases(session, &request.parse, &store, progress)?;
    for warning in &parsed.graph.warnings {
        progress.warning(&parsed.file_name, &parsed.contents, warning);
    }
    let epoch = source_date_epoch(&parsed, request.source_date_epoch.as_deref())?;
    let build_file = request.parse.file_path();
    // Context files are snapshotted into the build's scratch directory when first read.
    let scratch = store.build_dir()?;
    let context = BuildContext::load(
        &request.parse.context,
        build_file.as_deref(),
        request.limits.context_files,
        request.parse.max_build_file_size,
        scratch.path(),
    )?;
    let protected = protect(&store, &context, &parsed, request.parse.max_build_file_size)?;
    for output in &request.outputs {
        exporter::check(output, &protected).map_err(BuildError::Output)?;
    }
    // One executor for the build: it holds the compiled-program caches.
    let executor = Dispatch::new(request.executor, Some(session.compile_cache()?));
    let solve_request = |use_cache: bool| SolveRequest {
        graph: &parsed.graph,
        context: &context,
        platform: parsed.target_platform.clone(),
        epoch,
        step_timeout: request.step_timeout,
        limits: request.limits,
        use_cache,
        frontend_digest: parsed.frontend_digest.clone(),
        jobs: request.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1),
        keep_tree: !request.outputs.is_empty(),
        registry: Some(session.registry()),
        always_pull: request.pull,
        platform_explicit: request.parse.platform.is_some(),
        named_contexts: &parsed.named,
        registry_scope: &registry_scope,
        executor: &executor,
    };
    if request.verify_reproducible {
        let step = progress.start("verifying that the build is reproducible: two builds in scratch stores".to_string());
        match verify_reproducible(&store, &solve_request(false), scratch.path()) {
            Ok(digest) => progress.done(step, &format!("both gave {digest}")),
            Err(differences) => {
                progress.failed(step, "the two builds differ");
                return Err(BuildError::NotReproducible { file_name: parsed.file_name, differences });
            }
        }
    }
    let solved =
        solver::solve(&store, progress, &solve_request(!request.no_cache), scratch.path()).map_err(|error| {
            BuildError::Solve {
                file_name: parsed.file_name.clone(),
                contents: parsed.contents.clone(),
                error: Box::new(error),
            }
        })?;
    for output in &request.outputs {
        let step = progress.start(format!("exporting to {}", output.describe()));
        match exporter::write(&store, &solved.manifest, &names, &solved.tree, output, &protected) {
            Ok(note) => {
                progress.done(step, "");
                if let Some(note) = note {
                    progress.note(&format!("warning: {note}"));
                }
            }
            Err(e) => {
                progress.failed(step, &e.to_string());
                return Err(BuildError::Export { file_name: parsed.file_name, error: Box::new(e) });
            }
        }
    }
    if !names.is_empty() {
        store.tag(&names, &solved.manifest)?;
        progress.note(&format!("naming to {}", names.join(", ")));
    }
    let mut pushed = Vec::new();
    for to in &request.pushes {
        let step = progress.start(format!("pushing {to}"));
        let report = |line: &str| progress.note(&format!("  {line}"));
        match session.registry().push(&store, &solved.manifest, to, &report) {
            Ok(p) => {
                progress.done(step, &p.summary());
                pushed.push(p);
            }
            Err(e) => {
                progress.failed(step, &e.to_string());
                return Err(BuildError::Push(e));
            }
        }
    }
    Ok(BuildOutcome {
        manifest: solved.manifest,
        config_digest: solved.config_digest,
        names,
        pushed,
        warnings: parsed.graph.warnings,
    })
}

/// What outputs may not be written over: the store, the context as the build reads it, and
/// the directories named with `--build-context` (one that cannot be read fails the build
/// where it is used, not here).
fn protect(
    store: &Store,
    context: &BuildContext,
    parsed: &Parsed,
    max_file_size: u64,
) -> Result<Protected, BuildError> {
    let resolve = |(path, error)| BuildError::Resolve { path, error };
    let mut protected =
        Protected::new(store.root(), Some((&context.root, &context.ignore, context.ignore_file.as_deref())))
            .map_err(resolve)?;
    for named in parsed.named.iter() {
        if let ContextValue::Directory(dir) = &named.value
            && let Ok((ignore, file)) = crate::context::ignore_patterns(dir, max_file_size)
        {
            protected.add_context(dir, &ignore, file.as_deref()).map_err(resolve)?;
        }
    }
    Ok(protected)
}

/// Build twice, each time into a fresh scratch store under `dir`; the manifest digest when
/// both agree, else what differs (or why a build failed).
fn verify_reproducible(store: &Store, request: &SolveRequest<'_>, dir: &Path) -> Result<String, Vec<String>> {
    let quiet = Progress::silent();
    let mut results = Vec::new();
    for name in ["first", "second"] {
        let root = dir.join(format!("verify-{name}"));
        let scratch = crate::verify::scratch_store(store, &root).map_err(|e| vec![e.to_string()])?;
        let work = scratch.build_dir().map_err(|e| vec![e.to_string()])?;
        let built = solver::solve(&scratch, &quiet, request, work.path())
            .map_err(|e| vec![format!("the {name} build failed: {e}")])?;
        results.push((scratch, built.manifest, work));
    }
    let (a, b) = (&results[0], &results[1]);
    let report = crate::verify::differences(&a.0, &a.1, &b.0, &b.1);
    if report.is_empty() { Ok(a.1.digest().to_string()) } else { Err(report) }
}
