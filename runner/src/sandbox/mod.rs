//! The RUN sandbox: a WASI program from the stage's own root filesystem, run in wasmtime
//! against that filesystem and nothing else of the host.
//!
//! - [`program`] finds argv[0] on the stage's PATH inside the tree and turns what it finds
//!   into a runnable component: a component as is, a WASI preview 1 module through the
//!   preview 1 adapter (with exact exit statuses), a `#!` script through its interpreter; an
//!   ELF binary or anything else is a clear error;
//! - [`fs`] serves the tree as `wasi:filesystem` with chroot semantics.
//!
//! Everything else comes from wasmtime-wasi with nothing of the host: the environment is what
//! the step is given, the wall clock reads SOURCE_DATE_EPOCH, random numbers are seeded from
//! the step, there is no network, stdin is empty, and output is captured up to a limit.
//! Memory is capped per instance and a step may be given a wall-time limit (epoch
//! interruption), so a guest that loops, allocates without end or traps is a clean error.

pub mod cwd;
pub mod fs;
pub mod program;

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::layer::Scratch;
use crate::rootfs::{Components, Tree};

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
    /// Output kept (stdout and stderr together), bytes.
    pub output_limit: usize,
}

/// How a step ended when it ran to completion.
#[derive(Debug)]
pub struct Outcome {
    /// The exit status (0 is success).
    pub status: i32,
    /// What it printed, stdout and stderr interleaved, up to the limit.
    pub output: Vec<u8>,
    /// Warnings for the step (for example a working directory the program cannot use).
    pub warnings: Vec<String>,
}

/// Why a step could not run to completion.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program is not there, or is not something kiln can run.
    #[error(transparent)]
    Program(#[from] program::ProgramError),
    /// It ran past its wall-time limit.
    #[error("the step ran longer than its limit of {0:?} and was stopped")]
    Timeout(Duration),
    /// The build was interrupted (Ctrl-C).
    #[error("interrupted")]
    Cancelled,
    /// It asked for more memory than it may have.
    #[error("the program tried to use more than {0} bytes of memory and was stopped")]
    Memory(usize),
    /// It trapped (crashed).
    #[error("the program crashed: {detail}")]
    Trap {
        /// wasmtime's description, with what the program printed.
        detail: String,
        /// What it printed.
        output: Vec<u8>,
    },
    /// The engine failed.
    #[error("{0}")]
    Engine(String),
}

struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    fs: fs::RootFs,
    limits: Limiter,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Records whether the memory cap was what stopped the guest.
struct Limiter {
    inner: StoreLimits,
    hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.hit = true;
        }
        allowed
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }
}

/// The wall clock reads a fixed time: builds must not depend on when they ran.
struct FixedClock(Duration);

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

/// A monotonic clock that advances with every read, so timing loops terminate, but says
/// nothing about the host.
struct StepClock(std::sync::atomic::AtomicU64);

impl HostMonotonicClock for StepClock {
    fn resolution(&self) -> u64 {
        1_000
    }

    fn now(&self) -> u64 {
        self.0.fetch_add(1_000, std::sync::atomic::Ordering::Relaxed)
    }
}

/// Runs programs; one per build (it holds the compiled-program cache location).
pub struct Sandbox {
    cache_dir: Option<std::path::PathBuf>,
    loaded: program::Loaded,
}

impl Sandbox {
    /// A sandbox caching compiled programs under `cache_dir`.
    pub fn new(cache_dir: Option<std::path::PathBuf>) -> Self {
        Sandbox { cache_dir, loaded: program::Loaded::default() }
    }

    /// Run one step on `tree` (moved in, and handed back whatever happened).
    pub fn run(&self, tree: Tree, scratch: Arc<Scratch>, spec: &RunSpec<'_>) -> (Tree, Result<Outcome, RunError>) {
        let engine = match crate::frontend::engine() {
            Ok(e) => e,
            Err(e) => return (tree, Err(RunError::Engine(e.to_string()))),
        };
        let cwd: Components = crate::rootfs::clean(spec.cwd);
        let path_env = spec.env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
        let resolved = program::resolve(&tree, spec.argv, path_env, &cwd);
        let (program, argv) = match resolved {
            Ok(found) => found,
            Err(e) => return (tree, Err(e.into())),
        };
        let (component, cwd_support) = match program::load(&engine, &program, self.cache_dir.as_deref(), &self.loaded) {
            Ok(c) => c,
            Err(e) => return (tree, Err(e.into())),
        };

        let output = MemoryOutputPipe::new(spec.output_limit);
        // Instrumented programs read their working directory from PWD, as shells export it.
        let mut env: Vec<(String, String)> = spec.env.iter().filter(|(k, _)| k != "PWD").cloned().collect();
        env.push(("PWD".into(), format!("/{}", crate::rootfs::join(&cwd))));
        let mut builder = WasiCtxBuilder::new();
        builder
            .args(&argv)
            .envs(&env)
            .stdin(MemoryInputPipe::new(Vec::<u8>::new()))
            .stdout(output.clone())
            .stderr(output.clone())
            .wall_clock(FixedClock(Duration::from_secs(spec.epoch.max(0) as u64)))
            .monotonic_clock(StepClock(std::sync::atomic::AtomicU64::new(0)))
            .secure_random(rand::rngs::StdRng::seed_from_u64(spec.seed))
            .insecure_random(rand::rngs::StdRng::seed_from_u64(spec.seed ^ 0x9e37_79b9))
            .insecure_random_seed(u128::from(spec.seed))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let limits = StoreLimitsBuilder::new()
            .memory_size(spec.memory)
            .instances(64)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        let state = StepState {
            wasi: builder.build(),
            table: ResourceTable::new(),
            fs: fs::RootFs::new(tree, scratch, spec.owner, spec.epoch),
            limits: Limiter { inner: limits, hit: false },
        };
        let mut store = Store::new(&engine, state);
        store.limiter(|s| &mut s.limits);
        // Every tick: stop on Ctrl-C or at the step's time limit, else keep going.
        let started = std::time::Instant::now();
        let timeout = spec.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if crate::cancel::requested() || timeout.is_some_and(|t| started.elapsed() >= t) {
                return Err(wasmtime::Trap::Interrupt.into());
            }
            Ok(wasmtime::UpdateDeadline::Continue(1))
        });

        let result = run_command(&engine, &component, &mut store);
        let memory_hit = store.data().limits.hit;
        let printed = output.contents().to_vec();
        let state = store.into_data();
        let tree = state.fs.tree;
        // wasi-libc starts every program at `/` and folds relative and absolute paths into
        // the same request, so the host cannot apply a working directory (see the note on
        // WORKDIR in the issue tracker). Say so rather than resolve silently against `/`.
        let mut warnings = Vec::new();
        if let (false, program::Cwd::Unsupported(why)) = (cwd.is_empty(), &cwd_support) {
            warnings.push(format!(
                "WORKDIR {} is not applied to {}: {why}; relative paths in this step resolve against /",
                spec.cwd, program.path
            ));
        }
        let outcome = match result {
            Ok(status) => Ok(Outcome { status, output: printed, warnings }),
            Err(e) => {
                if let Some(exit) = e.downcast_ref::<I32Exit>() {
                    Ok(Outcome { status: exit.0, output: printed, warnings })
                } else if memory_hit {
                    Err(RunError::Memory(spec.memory))
                } else if crate::cancel::requested() {
                    Err(RunError::Cancelled)
                } else if let (Some(wasmtime::Trap::Interrupt), Some(t)) =
                    (e.downcast_ref::<wasmtime::Trap>(), spec.timeout)
                {
                    Err(RunError::Timeout(t))
                } else {
                    Err(RunError::Trap { detail: format!("{e:#}"), output: printed })
                }
            }
        };
        (tree, outcome)
    }
}

fn run_command(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
    store: &mut Store<StepState>,
) -> wasmtime::Result<i32> {
    let mut linker: Linker<StepState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    // kiln's filesystem replaces wasmtime-wasi's.
    linker.allow_shadowing(true);
    fs::add_to_linker(&mut linker, |s: &mut StepState| fs::FsView { table: &mut s.table, fs: &mut s.fs })?;
    let command = wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut *store, component, &linker)?;
    match command.wasi_cli_run().call_run(&mut *store)? {
        Ok(()) => Ok(0),
        Err(()) => Ok(1),
    }
}
