//! Executors: what runs a RUN step's program against a stage's root filesystem.
//!
//! The solver hands each step to an [`Executor`] with a [`RunSpec`]; the executor runs it
//! against the stage's [`Tree`] and hands the tree back with what the step changed. There
//! are two, and [`Dispatch`] picks between them by what the step's program is:
//!
//! - [`wasi::WasiExecutor`], the default: WASI programs in wasmtime, with no authority beyond
//!   the step's root filesystem, no network, no clock, and the same bytes every time;
//! - [`proot::ProotExecutor`], only when the user asks for it (`--executor=proot`): Linux
//!   programs under the installed `proot`, on a copy of the tree on disk, with the user's
//!   own authority and the host's network (kaniko's trust model, for trusted build files).
//!
//! An executor never writes a layer and never touches the store: the solver snapshots the
//! tree it gets back.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::rootfs::Tree;
use crate::scratch::Scratch;

mod dispatch;
pub mod elf;
pub mod proot;
#[cfg(test)]
pub(crate) mod recording;
pub mod wasi;

pub use dispatch::{Dispatch, ExecutorChoice, UnknownExecutor};

/// Runs RUN steps. Implementations must be usable from several stages' threads at once.
pub trait Executor: Send + Sync {
    /// Run `spec` against `rootfs`, with file contents the step writes kept under `scratch`.
    /// The tree comes back whatever happened, holding what the step changed (a failed step's
    /// changes are the caller's to drop).
    fn run(&self, rootfs: Tree, scratch: Arc<Scratch>, spec: &RunSpec<'_>) -> (Tree, Result<Outcome, RunError>);

    /// What about this executor can change a step's result for the same inputs (which
    /// programs it may run, and how): part of every RUN step's cache key. Empty for the
    /// default, so keys made before there was a choice stay valid.
    fn cache_tag(&self) -> &str {
        ""
    }
}

impl Executor for wasi::WasiExecutor {
    fn run(&self, rootfs: Tree, scratch: Arc<Scratch>, spec: &RunSpec<'_>) -> (Tree, Result<Outcome, RunError>) {
        wasi::WasiExecutor::run(self, rootfs, scratch, spec)
    }
}

/// A host directory a step sees at a path of its filesystem for the length of the step,
/// never part of its layer: how RUN mounts reach an executor (the store prepares the
/// directory; proot binds it with `-b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The directory on the host, prepared by kiln in its own store.
    pub source: PathBuf,
    /// Where the step sees it (absolute).
    pub target: String,
}

/// What one RUN step asks for.
pub struct RunSpec<'a> {
    /// argv; argv[0] is looked up on PATH inside the rootfs.
    pub argv: &'a [String],
    /// The environment, `NAME=value` (ENV plus ARGs in scope).
    pub env: &'a [(String, String)],
    /// The working directory (absolute).
    pub cwd: &'a str,
    /// Owner of what the step creates.
    pub owner: (u32, u32),
    /// The wall clock and the mtime of what the step touches (SOURCE_DATE_EPOCH or 0).
    pub epoch: i64,
    /// Seed of the guest's random numbers.
    pub seed: u64,
    /// Memory per instance, bytes.
    pub memory: usize,
    /// Wall time for the step, if limited.
    pub timeout: Option<Duration>,
    /// Output kept for the log (stdout and stderr together), bytes.
    pub output_limit: usize,
    /// Output the step's programs may write in all, bytes; past it the step is stopped
    /// ([`RunError::Output`]). Not counted with [`OutputSink::Terminal`].
    pub output_budget: u64,
    /// Programs of the step that may run at the same time.
    pub processes: usize,
    /// Where the programs' standard output and error go.
    pub sink: OutputSink,
    /// Directories the step sees besides its tree (none yet: RUN mounts will add them).
    pub binds: &'a [Bind],
    /// Set by someone else to stop the step (another stage of the build failed).
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl RunSpec<'_> {
    /// What the kernel would run for this step in `tree` (argv[0] as found on the step's
    /// PATH, and the program file that decides how it runs): see
    /// [`wasi::program::native`].
    pub fn native_program(&self, tree: &Tree) -> Option<(String, wasi::program::Found)> {
        let path_env = self.env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
        wasi::program::native(tree, self.argv, path_env, &crate::rootfs::clean(self.cwd))
    }
}

/// Where a step's standard output and error go (and those of the programs it starts that
/// inherit them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputSink {
    /// Kept in memory, stdout and stderr interleaved, up to the spec's `output_limit`, and
    /// handed back in [`Outcome::output`] (a RUN step).
    #[default]
    Capture,
    /// Written to kiln's own stdout and stderr as the program writes them, so a user watches
    /// it live (`kiln run`); [`Outcome::output`] stays empty and nothing is kept.
    Terminal,
}

/// How a step ended when it ran to completion.
#[derive(Debug)]
pub struct Outcome {
    /// The exit status (0 is success).
    pub status: i32,
    /// What it printed, stdout and stderr interleaved, up to the limit.
    pub output: Vec<u8>,
    /// Whether it printed more than was kept.
    pub output_clipped: bool,
    /// Warnings for the step (for example a working directory the program cannot use).
    pub warnings: Vec<String>,
    /// A Linux program the step tried to start and the executor could not run (the first
    /// one): why a failed step may want `--executor=proot`.
    pub linux_program: Option<String>,
}

/// Why a step could not run to completion.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program is not there, or is not something kiln can run.
    #[error(transparent)]
    Program(#[from] wasi::program::ProgramError),
    /// It ran past its wall-time limit.
    #[error("the step ran longer than its limit of {0:?} and was stopped")]
    Timeout(Duration),
    /// The build was interrupted (Ctrl-C).
    #[error("interrupted")]
    Cancelled,
    /// It asked for more memory than it may have.
    #[error("the program tried to use more than {0} bytes of memory and was stopped")]
    Memory(usize),
    /// Its programs printed more than the step's output budget.
    #[error("the step wrote more than {} to its output and was stopped", crate::limits::human_size(*.0))]
    Output(u64),
    /// Its programs started more programs at once than it may run.
    #[error("the step tried to run more than {0} programs at once and was stopped")]
    Processes(usize),
    /// Its programs wrote files that would make its layer larger than the layer limit: the
    /// write was refused (the program saw a full disk), and the step fails however the
    /// program went on.
    #[error("writing {path} would make the step's layer larger than {}, so the write was refused",
        crate::limits::human_size(*.limit))]
    LayerSize {
        /// The file whose write was refused first, in the step's filesystem.
        path: String,
        /// The limit, bytes.
        limit: u64,
        /// What the step printed (the program's own report of the failed write).
        output: Vec<u8>,
    },
    /// It trapped (crashed).
    #[error("the program crashed: {detail}")]
    Trap {
        /// wasmtime's description, with what the program printed.
        detail: String,
        /// What it printed.
        output: Vec<u8>,
    },
    /// The Linux executor could not run the step (proot missing, ptrace denied, another
    /// architecture, the copy of the tree on disk failed).
    #[error(transparent)]
    Linux(#[from] proot::ProotError),
    /// The step asks for something this executor cannot give it.
    #[error("{0}")]
    Unsupported(String),
    /// The engine failed.
    #[error("{0}")]
    Engine(String),
}
