//! The RUN sandbox: a WASI program from the stage's own root filesystem, run in wasmtime
//! against that filesystem and nothing else of the host.
//!
//! - [`program`] finds argv[0] on the stage's PATH inside the tree and turns what it finds
//!   into a runnable component: a component as is, a WASI preview 1 module through the
//!   preview 1 adapter (with exact exit statuses), a `#!` script through its interpreter; an
//!   ELF binary or anything else is a clear error;
//! - [`fs`] serves the tree as `wasi:filesystem` with chroot semantics;
//! - [`cwd`] instruments programs so they start in the step's WORKDIR;
//! - `spawn` lets a program run and start programs from the same tree, with pipes between
//!   programs that run at the same time (one thread each, the tree behind a lock).
//!
//! Everything else comes from wasmtime-wasi with nothing of the host: the environment is what
//! the step is given, the wall clock reads SOURCE_DATE_EPOCH, random numbers are seeded from
//! the step, there is no network, stdin is empty, and output is captured up to a limit (or,
//! for `kiln run`, passed straight to kiln's own stdout and stderr: [`OutputSink`]).
//! Memory is capped per instance and a step may be given a wall-time limit (epoch
//! interruption), so a guest that loops, allocates without end or traps is a clean error.
//! What the step's files may come to is its scratch's layer limit, counted as they are
//! written ([`layer_budget`]): past it a write fails as on a full disk, and the step fails.

pub mod cwd;
pub mod fs;
mod layer_budget;
mod output;
mod pipe;
pub mod program;
mod sleep;
pub(crate) mod spawn;

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Store, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{HostMonotonicClock, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::rootfs::{Components, Tree};
use crate::scratch::Scratch;
use crate::wasm::{FixedClock, MemoryLimiter};

pub use super::{Outcome, OutputSink, RunError, RunSpec};

pub(crate) struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) fs: Arc<std::sync::Mutex<fs::RootFs>>,
    limits: MemoryLimiter,
    pub(crate) ctx: Arc<StepCtx>,
    pub(crate) depth: usize,
    pub(crate) cwd: String,
    pub(crate) env: Vec<(String, String)>,
    /// The program's monotonic clock (for `subscribe-instant`).
    clock: sleep::Clock,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A monotonic clock that advances with every read, so timing loops terminate, but says
/// nothing about the host.
struct StepClock(sleep::Clock);

impl HostMonotonicClock for StepClock {
    fn resolution(&self) -> u64 {
        1_000
    }

    fn now(&self) -> u64 {
        self.0.fetch_add(1_000, std::sync::atomic::Ordering::Relaxed)
    }
}

/// Runs programs; one per build (it holds the compiled-program caches).
pub struct WasiExecutor {
    cache_dir: Option<std::path::PathBuf>,
    loaded: Arc<program::Loaded>,
}

/// What every program of one step shares: the engine, caches, limits, identity and the
/// step's captured output. Children started through `kiln:sandbox/spawn` get the same.
impl StepCtx {
    /// Whether the step was told to stop (see [`RunSpec::stop`]) or hit one of its limits.
    fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst)) || self.limit_hit().is_some()
    }

    /// The step-wide limit some program of the step ran into, if any: it ends the whole step,
    /// as a cgroup's limit would.
    fn limit_hit(&self) -> Option<RunError> {
        if self.budget.exceeded() {
            Some(RunError::Output(self.budget.limit()))
        } else if self.too_many.load(std::sync::atomic::Ordering::SeqCst) {
            Some(RunError::Processes(self.processes))
        } else {
            None
        }
    }

    /// Count one more running program, unless the step already runs as many as it may (then
    /// the step is marked as having hit the limit).
    pub(crate) fn reserve_process(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let ok = self.running.fetch_update(SeqCst, SeqCst, |n| (n < self.processes).then_some(n + 1)).is_ok();
        if !ok {
            self.too_many.store(true, SeqCst);
        }
        ok
    }

    /// A pipe between programs of this step, which the watchdog breaks when the step stops.
    pub(crate) fn new_pipe(&self) -> Arc<pipe::Pipe> {
        let p = pipe::Pipe::new();
        let mut pipes = self.pipes.lock().unwrap_or_else(|e| e.into_inner());
        pipes.retain(|w| w.strong_count() > 0);
        pipes.push(Arc::downgrade(&p));
        p
    }

    /// Whether the step must stop now: interrupted, told to, past its time, or over a limit.
    fn must_stop(&self) -> bool {
        crate::cancel::requested() || self.stopped() || self.timeout.is_some_and(|t| self.started.elapsed() >= t)
    }

    /// A program counted by [`StepCtx::reserve_process`] ended.
    pub(crate) fn release_process(&self) {
        self.running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub(crate) struct StepCtx {
    engine: wasmtime::Engine,
    cache_dir: Option<std::path::PathBuf>,
    loaded: Arc<program::Loaded>,
    pub(crate) scratch: Arc<Scratch>,
    pub(crate) owner: (u32, u32),
    pub(crate) epoch: i64,
    seed: u64,
    memory: usize,
    timeout: Option<Duration>,
    started: std::time::Instant,
    pub(crate) output: output::Log,
    budget: Arc<output::Budget>,
    /// The first write that did not fit in the step's layer.
    refusal: Arc<layer_budget::Refusal>,
    processes: usize,
    running: std::sync::atomic::AtomicUsize,
    too_many: std::sync::atomic::AtomicBool,
    sink: OutputSink,
    stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    memory_hit: std::sync::atomic::AtomicBool,
    warnings: std::sync::Mutex<Vec<String>>,
    /// The first Linux program a program of the step tried to start (see
    /// [`Outcome::linux_program`]).
    linux_program: std::sync::OnceLock<String>,
    /// Set when the step's first program has ended: programs it started and left running
    /// are stopped.
    done: std::sync::atomic::AtomicBool,
    /// The step's pipes, broken when it must stop (see `watchdog`).
    pipes: std::sync::Mutex<Vec<std::sync::Weak<pipe::Pipe>>>,
    /// Programs started and never waited for, joined at the end of the step.
    orphans: std::sync::Mutex<Vec<std::thread::JoinHandle<Result<i32, RunError>>>>,
}

/// Where a program's standard input comes from.
pub(crate) enum Input {
    Bytes(Vec<u8>),
    Pipe(Arc<pipe::Pipe>),
}

/// Where a program's standard output or error goes.
pub(crate) enum Output {
    /// The step's log.
    Log(output::Log),
    /// A file in the scratch directory (`cmd > file`).
    File(output::FileOutput),
    Null,
    /// kiln's own standard output ([`OutputSink::Terminal`]).
    HostStdout,
    /// kiln's own standard error ([`OutputSink::Terminal`]).
    HostStderr,
    /// A pipe, with the writer that stands for the program until it ends.
    Pipe(Arc<pipe::Pipe>, pipe::Writer),
}

/// One of a program's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl StepCtx {
    /// Where a program of this step sends `stream` when it inherits it: the step's captured
    /// output, or kiln's own stream of the same name.
    pub(crate) fn inherited(&self, stream: Stream) -> Output {
        match (self.sink, stream) {
            (OutputSink::Capture, _) => Output::Log(self.output.clone()),
            (OutputSink::Terminal, Stream::Stdout) => Output::HostStdout,
            (OutputSink::Terminal, Stream::Stderr) => Output::HostStderr,
        }
    }
}

/// Where a program's standard streams go.
pub(crate) struct Stdio {
    pub(crate) stdin: Input,
    pub(crate) stdout: Output,
    pub(crate) stderr: Output,
}

/// How deeply programs may start programs.
const MAX_SPAWN_DEPTH: usize = 16;

impl WasiExecutor {
    /// A sandbox caching compiled programs under `cache_dir`.
    pub fn new(cache_dir: Option<std::path::PathBuf>) -> Self {
        WasiExecutor { cache_dir, loaded: Arc::new(program::Loaded::default()) }
    }

    /// Run one step on `tree` (moved in, and handed back whatever happened).
    pub fn run(&self, tree: Tree, scratch: Arc<Scratch>, spec: &RunSpec<'_>) -> (Tree, Result<Outcome, RunError>) {
        if let Some(bind) = spec.binds.first() {
            return (
                tree,
                Err(RunError::Unsupported(format!(
                    "{}: the WASI executor cannot show a host directory to a step; it sees its own files only",
                    bind.target
                ))),
            );
        }
        let engine = match crate::wasm::engine() {
            Ok(e) => e,
            Err(e) => return (tree, Err(RunError::Engine(e.to_string()))),
        };
        let budget = output::Budget::new(match spec.sink {
            OutputSink::Capture => spec.output_budget,
            OutputSink::Terminal => u64::MAX,
        });
        let ctx = Arc::new(StepCtx {
            engine,
            cache_dir: self.cache_dir.clone(),
            loaded: self.loaded.clone(),
            scratch,
            owner: spec.owner,
            epoch: spec.epoch,
            seed: spec.seed,
            memory: spec.memory,
            timeout: spec.timeout,
            started: std::time::Instant::now(),
            output: output::Log::new(spec.output_limit, budget.clone()),
            budget,
            refusal: Arc::new(layer_budget::Refusal::default()),
            processes: spec.processes.max(1),
            running: std::sync::atomic::AtomicUsize::new(0),
            too_many: std::sync::atomic::AtomicBool::new(false),
            sink: spec.sink,
            stop: spec.stop.clone(),
            memory_hit: std::sync::atomic::AtomicBool::new(false),
            warnings: std::sync::Mutex::new(Vec::new()),
            linux_program: std::sync::OnceLock::new(),
            done: std::sync::atomic::AtomicBool::new(false),
            orphans: std::sync::Mutex::new(Vec::new()),
            pipes: std::sync::Mutex::new(Vec::new()),
        });
        let stdio = Stdio {
            stdin: Input::Bytes(Vec::new()),
            stdout: ctx.inherited(Stream::Stdout),
            stderr: ctx.inherited(Stream::Stderr),
        };
        let fs = Arc::new(std::sync::Mutex::new(fs::RootFs::new(
            tree,
            ctx.scratch.clone(),
            ctx.owner,
            ctx.epoch,
            ctx.refusal.clone(),
        )));
        ctx.reserve_process();
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watchdog = watchdog(&ctx, &finished);
        let result = execute(&ctx, &fs, spec.argv, spec.env, spec.cwd, stdio, 0);
        ctx.release_process();
        // Programs the step left running end with it.
        ctx.done.store(true, std::sync::atomic::Ordering::SeqCst);
        let orphans = std::mem::take(&mut *ctx.orphans.lock().unwrap_or_else(|e| e.into_inner()));
        for orphan in orphans {
            let _ = orphan.join();
        }
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(w) = watchdog {
            let _ = w.join();
        }
        {
            // Every program and stream of the step is done: the files it created and no
            // longer uses leave the scratch directory now, not at the end of the build.
            let mut guard = fs.lock().unwrap_or_else(|e| e.into_inner());
            let root = &mut *guard;
            root.budget.recount(&root.tree, None);
        }
        let tree = match Arc::try_unwrap(fs) {
            Ok(m) => m.into_inner().unwrap_or_else(|e| e.into_inner()).tree,
            Err(shared) => std::mem::take(&mut shared.lock().unwrap_or_else(|e| e.into_inner()).tree),
        };
        let printed = ctx.output.contents();
        let warnings = std::mem::take(&mut *ctx.warnings.lock().unwrap_or_else(|e| e.into_inner()));
        let linux_program = ctx.linux_program.get().cloned();
        let outcome = if let Some(limit) = ctx.limit_hit() {
            // A limit ends the step whatever its first program made of the failure.
            Err(limit)
        } else if let Some(path) = ctx.refusal.path() {
            // So does a refused write: the program may have ignored it.
            Err(RunError::LayerSize { path: path.to_string(), limit: ctx.scratch.layer_limit(), output: printed })
        } else {
            match result {
                Ok(status) => Ok(Outcome {
                    status,
                    output: printed,
                    output_clipped: ctx.output.clipped(),
                    warnings,
                    linux_program,
                }),
                Err(RunError::Trap { detail, .. }) => Err(RunError::Trap { detail, output: printed }),
                Err(e) => Err(e),
            }
        };
        (tree, outcome)
    }
}

/// A thread that breaks the step's pipes once the step must stop (or its first program has
/// ended, for the programs it left running). Epoch interruption stops programs running wasm
/// code; a program blocked inside kiln, on a pipe or waiting for a child blocked on one, is
/// out of its reach, and would keep the step from ever ending.
fn watchdog(ctx: &Arc<StepCtx>, finished: &Arc<std::sync::atomic::AtomicBool>) -> Option<std::thread::JoinHandle<()>> {
    let (ctx, finished) = (ctx.clone(), finished.clone());
    let spawned = std::thread::Builder::new().name("kiln-step-watchdog".into()).spawn(move || {
        use std::sync::atomic::Ordering::SeqCst;
        while !finished.load(SeqCst) {
            if ctx.must_stop() || ctx.done.load(SeqCst) {
                for p in ctx.pipes.lock().unwrap_or_else(|e| e.into_inner()).iter().filter_map(|w| w.upgrade()) {
                    p.break_pipe();
                }
                if !ctx.done.load(SeqCst) {
                    // Pipes made after this round (a program starting another) break next round.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    spawned.ok()
}

/// Run one program to completion on the step's filesystem; returns its exit status.
pub(crate) fn execute(
    ctx: &Arc<StepCtx>,
    fs: &Arc<std::sync::Mutex<fs::RootFs>>,
    argv: &[String],
    env: &[(String, String)],
    cwd_text: &str,
    stdio: Stdio,
    depth: usize,
) -> Result<i32, RunError> {
    let cwd: Components = crate::rootfs::clean(cwd_text);
    let path_env = env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
    let resolved = {
        let guard = fs.lock().unwrap_or_else(|e| e.into_inner());
        program::resolve(&guard.tree, argv, path_env, &cwd)
    };
    let (program, argv) = resolved?;
    let (component, cwd_support) = program::load(&ctx.engine, &program, ctx.cache_dir.as_deref(), &ctx.loaded)
        .inspect_err(|e| {
            if let program::ProgramError::Linux { path, .. } = e {
                let _ = ctx.linux_program.set(path.clone());
            }
        })?;
    // wasi-libc starts every program at `/`; instrumented preview 1 programs read their
    // working directory from PWD. Where that is impossible, say so rather than resolve
    // silently against `/`.
    if let (false, program::Cwd::Unsupported(why)) = (cwd.is_empty(), &cwd_support) {
        let warning = format!(
            "WORKDIR {cwd_text} is not applied to {}: {why}; relative paths in this step resolve against /",
            program.path
        );
        // Once per program and step, however often the step starts it.
        let mut warnings = ctx.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
    let mut env: Vec<(String, String)> = env.iter().filter(|(k, _)| k != "PWD").cloned().collect();
    env.push(("PWD".into(), format!("/{}", crate::rootfs::join(&cwd))));
    let clock = sleep::Clock::default();
    let mut builder = WasiCtxBuilder::new();
    match stdio.stdin {
        Input::Bytes(bytes) => builder.stdin(MemoryInputPipe::new(bytes)),
        Input::Pipe(p) => builder.stdin(pipe::StdinEnd::new(p)),
    };
    builder
        .args(&argv)
        .envs(&env)
        .wall_clock(FixedClock(Duration::from_secs(ctx.epoch.max(0) as u64)))
        .monotonic_clock(StepClock(clock.clone()))
        .secure_random(rand::rngs::StdRng::seed_from_u64(ctx.seed.wrapping_add(depth as u64)))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(ctx.seed ^ 0x9e37_79b9))
        .insecure_random_seed(u128::from(ctx.seed))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    match stdio.stdout {
        Output::Log(log) => builder.stdout(log),
        Output::File(file) => builder.stdout(file),
        Output::Null => builder.stdout(wasmtime_wasi::p2::pipe::SinkOutputStream),
        Output::HostStdout => builder.stdout(std::io::stdout()),
        Output::HostStderr => builder.stdout(std::io::stderr()),
        Output::Pipe(p, held) => builder.stdout(pipe::StdoutEnd::new(p, held)),
    };
    match stdio.stderr {
        Output::Log(log) => builder.stderr(log),
        Output::File(file) => builder.stderr(file),
        Output::Null => builder.stderr(wasmtime_wasi::p2::pipe::SinkOutputStream),
        Output::HostStdout => builder.stderr(std::io::stdout()),
        Output::HostStderr => builder.stderr(std::io::stderr()),
        Output::Pipe(p, held) => builder.stderr(pipe::StdoutEnd::new(p, held)),
    };
    let limits = StoreLimitsBuilder::new()
        .memory_size(ctx.memory)
        .instances(64)
        .tables(64)
        .memories(16)
        .trap_on_grow_failure(true)
        .build();
    let state = StepState {
        wasi: builder.build(),
        table: ResourceTable::new(),
        fs: fs.clone(),
        limits: MemoryLimiter::new(limits),
        ctx: ctx.clone(),
        depth,
        cwd: cwd_text.to_string(),
        env: env.clone(),
        clock,
    };
    let mut store = Store::new(&ctx.engine, state);
    store.limiter(|s| &mut s.limits);
    // Every tick: stop on Ctrl-C or at the step's time limit, else keep going.
    let (started, timeout) = (ctx.started, ctx.timeout);
    let step = ctx.clone();
    let child = depth > 0;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        let abandoned = child && step.done.load(std::sync::atomic::Ordering::SeqCst);
        if crate::cancel::requested() || step.stopped() || abandoned || timeout.is_some_and(|t| started.elapsed() >= t)
        {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        Ok(wasmtime::UpdateDeadline::Continue(1))
    });

    let result = run_command(&ctx.engine, &component, &mut store);
    let memory_hit = store.data().limits.memory_hit() || ctx.memory_hit.load(std::sync::atomic::Ordering::Relaxed);
    // The store (and the program's stream ends) go now, so pipe readers see end of file.
    drop(store);
    match result {
        Ok(status) => Ok(status),
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                Ok(exit.0)
            } else if let Some(child) = e.downcast_ref::<ChildFailed>() {
                // A child's limit or interruption ends the whole step, as it would for a
                // process group.
                Err(child.0.take_error())
            } else if memory_hit {
                ctx.memory_hit.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(RunError::Memory(ctx.memory))
            } else if let Some(limit) = ctx.limit_hit() {
                Err(limit)
            } else if crate::cancel::requested() || ctx.stopped() {
                Err(RunError::Cancelled)
            } else if let (Some(wasmtime::Trap::Interrupt), Some(t)) = (e.downcast_ref::<wasmtime::Trap>(), ctx.timeout)
            {
                Err(RunError::Timeout(t))
            } else {
                Err(RunError::Trap { detail: format!("{e:#}"), output: Vec::new() })
            }
        }
    }
}

/// A child's failure that must end its parent too (timeout, memory, interruption).
#[derive(Debug)]
struct ChildFailed(ChildError);

#[derive(Debug)]
struct ChildError(std::sync::Mutex<Option<RunError>>);

impl ChildError {
    fn take_error(&self) -> RunError {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| RunError::Engine("a child failed".into()))
    }
}

impl std::fmt::Display for ChildFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a program this step started was stopped")
    }
}

impl std::error::Error for ChildFailed {}

fn run_command(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
    store: &mut Store<StepState>,
) -> wasmtime::Result<i32> {
    let mut linker: Linker<StepState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    // kiln's filesystem replaces wasmtime-wasi's.
    linker.allow_shadowing(true);
    fs::add_to_linker(&mut linker, |s: &mut StepState| fs::FsView {
        table: &mut s.table,
        fs: s.fs.lock().unwrap_or_else(|e| e.into_inner()),
        root: &s.fs,
    })?;
    spawn::add_to_linker(&mut linker)?;
    sleep::add_to_linker(&mut linker)?;
    let command = wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut *store, component, &linker)?;
    match command.wasi_cli_run().call_run(&mut *store)? {
        Ok(()) => Ok(0),
        Err(()) => Ok(1),
    }
}
