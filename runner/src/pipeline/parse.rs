//! Parsing: the build file read (through the context when it is the context's own), its
//! frontend chosen and fetched, and the frontend run on it in its sandbox.
//!
//! The frontend learns about base images from the store and the named contexts only
//! ([`StoreImages`]): it reaches no registry. Before a build, the images it asked about that
//! the store lacked are pulled when the graph builds on them and the user named their
//! registry, and the file is parsed again so the frontend sees their configs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_ir::{BuildGraph, Diagnostic, KeyValue, Request, Severity};

use super::Session;
use crate::context::{self, ContextError};
use crate::frontend::images::StoreImages;
use crate::frontend::select::{self, SelectError};
use crate::frontend::{Frontend, FrontendError, FrontendLimits};
use crate::limits::{self, Limit};
use crate::platform;
use crate::progress::Progress;
use crate::solver;
use crate::source::named::NamedContexts;
use crate::source::registry::RegistryScope;
use crate::store::Store;

/// Where the build file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildFile {
    /// `CONTEXT/Dockerfile`, read through the context, so that a link cannot lead out of it.
    InContext,
    /// A file the user named (`-f FILE`), wherever it is.
    Path(PathBuf),
    /// Bytes the caller already has (`-f -`: standard input), and the name messages give them.
    Bytes {
        /// The name for messages (`-` for standard input).
        name: String,
        /// The file.
        contents: Vec<u8>,
    },
}

/// What to parse, and how.
#[derive(Debug, Clone)]
pub struct ParseRequest {
    /// The build context directory.
    pub context: PathBuf,
    /// The build file.
    pub file: BuildFile,
    /// `--build-arg` values.
    pub build_args: Vec<KeyValue>,
    /// `--build-context` values.
    pub named_contexts: NamedContexts,
    /// `--target`.
    pub target: Option<String>,
    /// `--platform`: the platform to build for (the host's Linux platform when unset).
    pub platform: Option<String>,
    /// `--frontend`: the frontend to use instead of what the file's `# syntax=` line or name
    /// says.
    pub frontend: Option<String>,
    /// What the frontend may use.
    pub frontend_limits: FrontendLimits,
    /// The largest build file (and ignore file) kiln reads.
    pub max_build_file_size: u64,
}

impl ParseRequest {
    /// A request for the Dockerfile of `context`, with default settings.
    pub fn new(context: impl Into<PathBuf>) -> Self {
        ParseRequest {
            context: context.into(),
            file: BuildFile::InContext,
            build_args: Vec::new(),
            named_contexts: NamedContexts::default(),
            target: None,
            platform: None,
            frontend: None,
            frontend_limits: FrontendLimits::default(),
            max_build_file_size: limits::DEFAULT_BUILD_FILE_SIZE,
        }
    }

    /// The build file's path, if it has one (for `FILE.dockerignore` and the frontend choice).
    pub fn file_path(&self) -> Option<PathBuf> {
        match &self.file {
            BuildFile::InContext => Some(self.context.join("Dockerfile")),
            BuildFile::Path(path) => Some(path.clone()),
            BuildFile::Bytes { .. } => None,
        }
    }
}

/// A build file parsed into a graph.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The build file's name, for messages.
    pub file_name: String,
    /// Its bytes, to quote lines in messages.
    pub contents: Vec<u8>,
    /// The frontend's graph, validated.
    pub graph: BuildGraph,
    /// The platform built for.
    pub target_platform: String,
    /// The build arguments it was parsed with.
    pub build_args: Vec<KeyValue>,
    /// The sha256 of the frontend component: part of every cache key.
    pub frontend_digest: String,
    /// The named contexts.
    pub named: NamedContexts,
    /// Base images the frontend asked about that the store does not hold (reference, platform).
    pub missing: Vec<(String, String)>,
}

/// Why the build file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BuildFileError {
    /// It is larger than `--max-build-file-size`.
    #[error("{name}: the build file is larger than {}: {}", limits::human_size(*.limit),
        limits::exceeded(Limit::BuildFileSize, &limits::human_size(*.limit)))]
    TooLarge {
        /// The file.
        name: String,
        /// The limit, bytes.
        limit: u64,
    },
    /// It cannot be opened or read.
    #[error(
        "cannot read {name}: {detail}\nhint: pass the build file with -f, or run kiln in the directory that holds the Dockerfile"
    )]
    Unreadable {
        /// The file.
        name: String,
        /// Why.
        detail: String,
    },
    /// The context refused it (a link out of the context, a FIFO, ...).
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// Why a build file could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The build file could not be read.
    #[error(transparent)]
    BuildFile(#[from] BuildFileError),
    /// The `# syntax=` line names a frontend kiln cannot get.
    #[error("{file_name}:{line}: the # syntax= line names a frontend kiln cannot get: {error}")]
    SyntaxLine {
        /// The build file.
        file_name: String,
        /// The line of the directive.
        line: u32,
        /// Why.
        error: Box<SelectError>,
    },
    /// The frontend `--frontend` or the file's name chose cannot be had.
    #[error(transparent)]
    Select(Box<SelectError>),
    /// The directory for compiled WebAssembly is unusable.
    #[error(transparent)]
    CompileCache(crate::store::StoreError),
    /// The frontend failed (it trapped, ran out of time or memory, or broke the IR's rules).
    #[error(transparent)]
    Frontend(#[from] FrontendError),
    /// The frontend rejected the file.
    #[error("{file_name}: {} error(s); no IR was produced", errors(.diagnostics))]
    Rejected {
        /// The build file.
        file_name: String,
        /// Its bytes, to quote lines.
        contents: Vec<u8>,
        /// What the frontend said.
        diagnostics: Vec<Diagnostic>,
    },
}

fn errors(diagnostics: &[Diagnostic]) -> usize {
    diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
}

/// Read the build file: bytes given, `-f FILE` wherever the user put it, else `Dockerfile`
/// of the context, read through the context so that a link cannot lead out of it. At most
/// `max_build_file_size` bytes are read.
fn read_build_file(request: &ParseRequest) -> Result<(String, Vec<u8>), BuildFileError> {
    let limit = request.max_build_file_size;
    let (name, contents) = match &request.file {
        BuildFile::Bytes { name, contents } => (name.clone(), contents.clone()),
        BuildFile::Path(file) => {
            let name = file.display().to_string();
            // Read at most one byte more than the limit: a huge file, or a device that never
            // ends, is refused without being read whole.
            let mut contents = Vec::new();
            std::fs::File::open(file)
                .and_then(|f| {
                    std::io::Read::read_to_end(&mut std::io::Read::take(f, limit.saturating_add(1)), &mut contents)
                })
                .map_err(|e| BuildFileError::Unreadable { name: name.clone(), detail: e.to_string() })?;
            (name, contents)
        }
        BuildFile::InContext => {
            let name = request.context.join("Dockerfile").display().to_string();
            let unreadable = |detail: String| BuildFileError::Unreadable { name: name.clone(), detail };
            let dir = cap_std::fs::Dir::open_ambient_dir(&request.context, cap_std::ambient_authority())
                .map_err(|e| unreadable(format!("cannot open the build context: {e}")))?;
            match context::read_in_context(&dir, &request.context, Path::new("Dockerfile"), "build file", limit) {
                Ok(Some(contents)) => (name, contents),
                Ok(None) => return Err(unreadable("No such file or directory (os error 2)".into())),
                Err(ContextError::TooLarge { .. }) => return Err(BuildFileError::TooLarge { name, limit }),
                Err(e) => return Err(e.into()),
            }
        }
    };
    if contents.len() as u64 > limit {
        return Err(BuildFileError::TooLarge { name, limit });
    }
    Ok((name, contents))
}

/// Read the build file and run its frontend. `store` answers the frontend's questions about
/// base images (none: every image is unknown); the session's registry only fetches a
/// frontend published as an image.
///
/// # Errors
/// The file cannot be read, its frontend cannot be had or fails, or rejects the file.
pub fn parse(session: &Session, request: &ParseRequest, store: Option<&Store>) -> Result<Parsed, ParseError> {
    let (file_name, contents) = read_build_file(request)?;
    let target_platform = request.platform.clone().unwrap_or_else(platform::default_target);
    let frontend_request = Request {
        file_name: file_name.clone(),
        contents,
        build_args: request.build_args.clone(),
        target: request.target.clone(),
        build_platform: platform::host(),
        target_platform: target_platform.clone(),
    };
    let path = request.file_path().unwrap_or_else(|| PathBuf::from("-"));
    let (reference, reason) = select::choose(request.frontend.as_deref(), &frontend_request.contents, &path);
    let fetched = select::fetch(&reference, store, Some(session.registry())).map_err(|error| match reason {
        select::Reason::Directive(line) => {
            ParseError::SyntaxLine { file_name: file_name.clone(), line, error: Box::new(error) }
        }
        _ => ParseError::Select(Box::new(error)),
    })?;
    let frontend_digest = crate::wasm::sha256_hex(&fetched.wasm);
    let cache = session.compile_cache().map_err(ParseError::CompileCache)?;
    let frontend = Frontend::load(&fetched.wasm, &fetched.origin, Some(cache), request.frontend_limits)?;
    let named = request.named_contexts.clone();
    let resolver = Arc::new(StoreImages::new(store.cloned(), named.clone(), target_platform.clone()));
    match frontend.parse(&frontend_request, resolver.clone())? {
        Err(diagnostics) => Err(ParseError::Rejected { file_name, contents: frontend_request.contents, diagnostics }),
        Ok(graph) => Ok(Parsed {
            file_name,
            contents: frontend_request.contents,
            graph,
            target_platform,
            build_args: request.build_args.clone(),
            frontend_digest,
            named,
            missing: resolver.missing(),
        }),
    }
}

/// Parse for a build: pull the base images the frontend asked about that the store lacked,
/// when the graph it returned builds on them and their registry is one the user named; then
/// parse again, so that the frontend sees their configs (ENV, WORKDIR, ...) as BuildKit's
/// does. The frontend itself never causes a pull: only the graph does, as it would anyway.
pub(super) fn parse_with_bases(
    session: &Session,
    request: &ParseRequest,
    store: &Store,
    progress: &Progress,
) -> Result<(Parsed, RegistryScope), ParseError> {
    let parsed = parse(session, request, Some(store))?;
    let values = parsed.build_args.iter().map(|kv| kv.value.as_str());
    let scope = RegistryScope::of_build(&parsed.contents, values, &parsed.named);
    if parsed.missing.is_empty() {
        return Ok((parsed, scope));
    }
    let needed = solver::images_needed(&parsed.graph, &parsed.named);
    let mut pulled = false;
    for (reference, platform) in &parsed.missing {
        if !needed.contains(reference) || scope.unnamed_registry(reference).is_some() {
            continue;
        }
        let report = |line: &str| progress.note(&format!("pulling {reference}: {line}"));
        // A failure here is reported by the build, at the line that needs the image.
        let platforms = std::slice::from_ref(platform);
        pulled |= session.registry().resolve(store, reference, platforms, false, &report).is_ok();
    }
    if !pulled {
        return Ok((parsed, scope));
    }
    let parsed = parse(session, request, Some(store))?;
    Ok((parsed, scope))
}
