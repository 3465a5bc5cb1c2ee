//! Running frontend components: build file in, validated stage IR out.
//!
//! This module owns the frontend sandbox. A frontend gets no preopened directory, an empty
//! environment and argument list, a wall clock stuck at the epoch, a monotonic clock that
//! never moves, a fixed random seed, sockets that cannot connect or resolve names, a memory
//! cap and a time limit (epoch interruption). Its only capability is the host import
//! `resolve-image-config`, answered by the [`ImageResolver`] the caller passes.
//!
//! Every graph a frontend returns is validated ([`kiln_ir::BuildGraph::validate`]) before
//! anyone sees it. Compiled components are cached on disk ([`cache`]) so a warm parse only
//! instantiates.
//!
//! It never touches the build context, the store's images or the network.

mod bindings;
pub mod images;
mod sandbox;
pub mod select;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kiln_ir::{BuildGraph, Diagnostic, ImageResolver, Request};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store};

use self::sandbox::{HostState, LimitHit};

/// The Dockerfile frontend, compiled into kiln by `build.rs`.
pub static DOCKERFILE_FRONTEND: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/dockerfile.wasm"));

/// Resource limits for one frontend run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontendLimits {
    /// Linear memory a frontend may grow to, in bytes (default 256 MiB).
    pub memory_bytes: usize,
    /// Wall time for one `parse` call, instantiation included (default 10 s).
    pub time: Duration,
    /// Bytes of stdout/stderr kept from a frontend, for debugging (default 64 KiB).
    pub output_bytes: usize,
    /// `resolve-image-config` calls one parse may make (default 1000).
    pub image_lookups: usize,
}

impl Default for FrontendLimits {
    fn default() -> Self {
        FrontendLimits {
            memory_bytes: 256 << 20,
            time: Duration::from_secs(10),
            output_bytes: 64 << 10,
            image_lookups: 1000,
        }
    }
}

/// Why a frontend could not produce a graph. (A build file the frontend rejects is not an
/// error here: it comes back as diagnostics.)
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// The bytes are not a WebAssembly component kiln can compile.
    #[error("{origin} is not a valid WebAssembly component: {detail}")]
    Invalid {
        /// Where the frontend came from.
        origin: String,
        /// The compiler's message.
        detail: String,
    },
    /// The component does not implement the `kiln:build@0.1.0` frontend world.
    #[error(
        "{origin} is not a kiln frontend: kiln expects the `kiln:build/frontend@0.1.0` world (export `parse`, imports at most `kiln:build/host` and WASI); the component exports [{exports}] ({detail})"
    )]
    Incompatible {
        /// Where the frontend came from.
        origin: String,
        /// What the component exports.
        exports: String,
        /// The linker's message.
        detail: String,
    },
    /// The frontend ran past its time limit.
    #[error(
        "{origin} did not finish within {limit:?} and was stopped; if the build file is this large on purpose, give it longer with --frontend-timeout SECONDS"
    )]
    Timeout {
        /// Where the frontend came from.
        origin: String,
        /// The limit.
        limit: Duration,
    },
    /// The frontend tried to use more memory than allowed.
    #[error(
        "{origin} tried to use more than {limit} bytes of memory and was stopped; if the build file is this large on purpose, give it more with --frontend-memory MIB"
    )]
    Memory {
        /// Where the frontend came from.
        origin: String,
        /// The limit.
        limit: usize,
    },
    /// The frontend trapped (a panic, an unreachable, a bad memory access...).
    #[error("{origin} crashed: {detail}")]
    Trap {
        /// Where the frontend came from.
        origin: String,
        /// The trap and, when the frontend printed one, its last output.
        detail: String,
    },
    /// The frontend returned a graph that breaks the IR's rules.
    #[error("{origin} returned an invalid build graph: {}", .errors.join("; "))]
    InvalidGraph {
        /// Where the frontend came from.
        origin: String,
        /// Every rule broken.
        errors: Vec<String>,
    },
    /// Setting up the engine failed.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// A compiled frontend, ready to parse build files. Cheap to reuse across parses.
pub struct Frontend {
    engine: Engine,
    pre: bindings::FrontendPre<HostState>,
    origin: String,
    digest: String,
    limits: FrontendLimits,
}

/// The result of asking a frontend to parse: the graph, or the frontend's diagnostics.
pub type ParseResult = Result<BuildGraph, Vec<Diagnostic>>;

impl Frontend {
    /// Compile (or load from `cache_dir`) the component in `wasm`. `origin` names it in
    /// messages (`the built-in Dockerfile frontend`, a path).
    ///
    /// # Errors
    /// [`FrontendError::Invalid`] when the bytes are not a component, and
    /// [`FrontendError::Incompatible`] when it does not implement the frontend world.
    pub fn load(
        wasm: &[u8],
        origin: &str,
        cache_dir: Option<PathBuf>,
        limits: FrontendLimits,
    ) -> Result<Self, FrontendError> {
        let engine = crate::wasm::engine().map_err(|e| FrontendError::Engine(e.to_string()))?;
        let digest = crate::wasm::sha256_hex(wasm);
        let component = crate::wasm::cache::load_or_compile(&engine, wasm, &digest, cache_dir.as_deref())
            .map_err(|e| FrontendError::Invalid { origin: origin.to_string(), detail: format!("{e:#}") })?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| FrontendError::Engine(e.to_string()))?;
        bindings::Frontend::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| FrontendError::Engine(e.to_string()))?;
        let imports: Vec<String> =
            component.component_type().imports(&engine).map(|(name, _)| name.to_string()).collect();
        // Built against another version of the contract: say which, rather than which
        // import the linker tripped on.
        let other_version = imports.iter().find_map(|name| {
            let version = name.strip_prefix("kiln:build/")?.split_once('@')?.1;
            (!version.starts_with("0.1.")).then(|| version.to_string())
        });
        let incompatible = |detail: String| FrontendError::Incompatible {
            origin: origin.to_string(),
            exports: component
                .component_type()
                .exports(&engine)
                .map(|(name, _)| name.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            detail: match &other_version {
                Some(v) => {
                    format!("it was built against kiln:build@{v}, and this kiln implements kiln:build@0.1; {detail}")
                }
                None => format!("it imports [{}]; {detail}", imports.join(", ")),
            },
        };
        let pre = linker.instantiate_pre(&component).map_err(|e| incompatible(format!("{e:#}")))?;
        let pre = bindings::FrontendPre::new(pre).map_err(|e| incompatible(format!("{e:#}")))?;
        Ok(Frontend { engine, pre, origin: origin.to_string(), digest, limits })
    }

    /// The built-in Dockerfile frontend.
    ///
    /// # Errors
    /// As [`Frontend::load`].
    pub fn dockerfile(cache_dir: Option<PathBuf>, limits: FrontendLimits) -> Result<Self, FrontendError> {
        Frontend::load(DOCKERFILE_FRONTEND, "the built-in Dockerfile frontend", cache_dir, limits)
    }

    /// `sha256:<hex>` of the component's bytes: the frontend's identity for cache keys.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.digest)
    }

    /// Parse one build file.
    ///
    /// Returns the validated graph, or the frontend's diagnostics when it rejects the file.
    ///
    /// # Errors
    /// A [`FrontendError`] when the frontend misbehaves: it traps, runs out of time or memory,
    /// or returns a graph that breaks the IR's rules.
    pub fn parse(
        &self,
        request: &Request,
        resolver: Arc<dyn ImageResolver + Send + Sync>,
    ) -> Result<ParseResult, FrontendError> {
        let state = HostState::new(resolver, &self.limits);
        let output = state.output();
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = (self.limits.time.as_millis() / crate::wasm::EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();

        let run = |store: &mut Store<HostState>| -> wasmtime::Result<_> {
            let instance = self.pre.instantiate(&mut *store)?;
            instance.call_parse(&mut *store, &(request.into()))
        };
        let result = run(&mut store);
        let hit = store.data().limiter.memory_hit().then_some(LimitHit::Memory);
        let result = match result {
            Ok(result) => result,
            Err(e) => return Err(self.classify(e, hit, &output.contents())),
        };
        match result {
            Err(diagnostics) => Ok(Err(diagnostics.into_iter().map(Into::into).collect())),
            Ok(graph) => {
                let graph: BuildGraph = graph.into();
                graph.validate().map_err(|errors| FrontendError::InvalidGraph {
                    origin: self.origin.clone(),
                    errors: errors
                        .iter()
                        .map(|e| match e.span {
                            Some(span) => format!("line {}: {e}", span.start.line),
                            None => e.to_string(),
                        })
                        .collect(),
                })?;
                Ok(Ok(graph))
            }
        }
    }

    fn classify(&self, error: wasmtime::Error, hit: Option<LimitHit>, output: &[u8]) -> FrontendError {
        let origin = self.origin.clone();
        if let Some(LimitHit::Memory) = hit {
            return FrontendError::Memory { origin, limit: self.limits.memory_bytes };
        }
        if let Some(wasmtime::Trap::Interrupt) = error.downcast_ref::<wasmtime::Trap>() {
            return FrontendError::Timeout { origin, limit: self.limits.time };
        }
        let mut detail = format!("{error:#}");
        let printed = String::from_utf8_lossy(output);
        let printed = printed.trim();
        if !printed.is_empty() {
            let tail: Vec<&str> = printed.lines().rev().take(10).collect();
            detail.push_str("; it printed:\n");
            for line in tail.into_iter().rev() {
                detail.push_str("  ");
                detail.push_str(line);
                detail.push('\n');
            }
        }
        FrontendError::Trap { origin, detail }
    }
}
