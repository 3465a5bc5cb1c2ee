//! Why a solve failed: a typed cause, the step it failed in, where in the build file, and
//! what to do about it.
//!
//! The text users see is [`SolveError`]'s `Display`: `[builder 2/5] COPY . .: <cause>`; the
//! CLI renders it with the span and the hint. Callers that need to tell failures apart match
//! on [`Cause`]: a missing image from a registry's refusal, a program's exit status from an
//! executor's limit, a user's error from kiln's own bug ([`Cause::Internal`]).

use kiln_ir::Span;

use crate::copy::CopyError;
use crate::executor::RunError;
use crate::ignore::PatternError;
use crate::layer::LayerError;
use crate::rootfs::PathError;
use crate::source::SourceError;
use crate::source::image::ImageError;
use crate::store::StoreError;

/// A failed solve, located in the build file where possible.
#[derive(Debug)]
pub struct SolveError {
    /// The step that failed, as progress shows it (`[builder 2/5] COPY . .`); none when the
    /// failure belongs to no step.
    pub step: Option<String>,
    /// Where in the build file.
    pub span: Option<Span>,
    /// What to do about it.
    pub hint: Option<String>,
    /// What went wrong (boxed: errors travel up every step of a stage, and stay small).
    pub cause: Box<Cause>,
}

impl std::fmt::Display for SolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Some(step) => write!(f, "{step}: {}", self.cause),
            None => write!(f, "{}", self.cause),
        }
    }
}

impl std::error::Error for SolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}

/// What went wrong in a solve.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// An image could not be loaded or unpacked.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// COPY or ADD failed (a missing source, a bad --chown or --chmod, ...).
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// An `--exclude` pattern is malformed.
    #[error(transparent)]
    Exclude(#[from] PatternError),
    /// A layer could not be written or applied.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// kiln's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A directory named with `--build-context` could not be read.
    #[error("--build-context {name}: {error}")]
    NamedDirectory {
        /// The context, as the user wrote it.
        name: String,
        /// Why.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A build file named an OCI layout on disk, which only the command line may.
    #[error("{reference}: a build file cannot name an OCI layout on disk (it could read any layout on the machine)")]
    LayoutInBuildFile {
        /// The `oci-layout://` reference.
        reference: String,
    },
    /// An image could not be had from the store, a layout or a registry.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A base image could not be unpacked when a step first needed its files.
    #[error("unpacking the base image {reference}: {cause}")]
    Unpack {
        /// The base image.
        reference: String,
        /// Why.
        cause: Box<Cause>,
    },
    /// The layer of a cached step is damaged in the store.
    #[error("layer {digest}, the cached result of an earlier step, is damaged in kiln's store: {mismatch}")]
    DamagedCachedLayer {
        /// The layer.
        digest: String,
        /// What does not match.
        mismatch: String,
    },
    /// WORKDIR could not make its directory.
    #[error("WORKDIR {path}: {error}")]
    Workdir {
        /// The directory.
        path: String,
        /// Why.
        error: PathError,
    },
    /// A RUN step could not run to completion (its program is missing, crashed, or went past
    /// a limit); `detail` adds the limit's name and the program's last lines.
    #[error("{error}{detail}")]
    Run {
        /// What the executor reported.
        error: RunError,
        /// The limit that was hit and what the program printed last.
        detail: String,
    },
    /// A RUN step's program exited with a non-zero status.
    #[error("process {argv:?} did not complete successfully: exit code: {status}{}", super::ops::run::last_lines(.output))]
    Exit {
        /// The step's argv, joined by spaces.
        argv: String,
        /// The exit status.
        status: i32,
        /// What it printed (the last lines are shown).
        output: Vec<u8>,
    },
    /// Something kiln cannot do yet.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A step was stopped by Ctrl-C or a signal.
    #[error("interrupted")]
    Interrupted,
    /// The build was interrupted after its last step, before anything was exported.
    #[error("the build was interrupted")]
    BuildInterrupted,
    /// A step was stopped because another stage failed.
    #[error("stopped, another stage failed")]
    Stopped,
    /// The manifest could not be assembled.
    #[error("cannot assemble the manifest: {0}")]
    Manifest(#[from] oci_spec::OciSpecError),
    /// A bug in kiln, not in the build.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SolveError {
    /// An error with no step, span or hint yet.
    pub fn new(cause: impl Into<Cause>) -> Self {
        SolveError { step: None, span: None, hint: None, cause: Box::new(cause.into()) }
    }

    /// A bug in kiln.
    pub(super) fn internal(what: impl std::fmt::Display) -> Self {
        SolveError::new(Cause::Internal(what.to_string()))
    }

    /// Located at `span`, unless it already is.
    pub(super) fn at(mut self, span: Span) -> Self {
        self.span.get_or_insert(span);
        self
    }

    /// Failed in `step`, unless a step is already named.
    pub(super) fn in_step(mut self, step: &str) -> Self {
        self.step.get_or_insert_with(|| step.to_string());
        self
    }

    /// With what to do about it.
    pub(super) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Whether the build stopped because it was interrupted (Ctrl-C or a signal), not
    /// because of the build.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            *self.cause,
            Cause::Interrupted | Cause::BuildInterrupted | Cause::Run { error: RunError::Cancelled, .. }
        )
    }
}

/// Any typed failure becomes a solve error with no step yet: `?` works on them all.
macro_rules! from_cause {
    ($($ty:ty),*) => {$(
        impl From<$ty> for SolveError {
            fn from(e: $ty) -> Self {
                SolveError::new(Cause::from(e))
            }
        }
    )*};
}
from_cause!(ImageError, SourceError, CopyError, PatternError, LayerError, StoreError, oci_spec::OciSpecError);

impl From<serde_json::Error> for SolveError {
    fn from(e: serde_json::Error) -> Self {
        // Serializing kiln's own types cannot fail but for a bug.
        SolveError::internal(e)
    }
}
