//! The store state a frontend runs with: a WASI context with nothing behind it, a memory
//! limiter that remembers why it said no, and the one host import.

use std::sync::Arc;
use std::time::Duration;

use kiln_ir::ImageResolver;
use rand::SeedableRng;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::FrontendLimits;
use super::bindings::kiln::build::{host, types};

/// Longest image reference a frontend may ask about.
const MAX_REFERENCE_BYTES: usize = 4096;

/// A clock that always reads the Unix epoch: a frontend's output must not depend on time.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Which limit stopped a frontend, if one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// Linear memory.
    Memory,
}

/// [`StoreLimits`] plus a record of the first refusal.
pub struct Limiter {
    inner: StoreLimits,
    hit: Option<LimitHit>,
}

impl Limiter {
    pub fn hit(&self) -> Option<LimitHit> {
        self.hit
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        // With `trap_on_grow_failure` the inner limiter refuses by returning an error rather
        // than `false`; either way the cap was hit and the error should say so.
        let allowed = self.inner.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.hit = Some(LimitHit::Memory);
        }
        allowed
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Everything a frontend's store holds.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    resolver: Arc<dyn ImageResolver + Send + Sync>,
    lookups_left: usize,
    output: MemoryOutputPipe,
}

impl HostState {
    pub fn new(resolver: Arc<dyn ImageResolver + Send + Sync>, limits: &FrontendLimits) -> Self {
        let output = MemoryOutputPipe::new(limits.output_bytes);
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdin(MemoryInputPipe::new(Vec::<u8>::new()))
            .stdout(output.clone())
            .stderr(output.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(rand::rngs::StdRng::seed_from_u64(0))
            .insecure_random(rand::rngs::StdRng::seed_from_u64(1))
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        let inner = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .instances(64)
            .tables(64)
            .memories(16)
            .table_elements(1 << 20)
            .trap_on_grow_failure(true)
            .build();
        HostState {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: Limiter { inner, hit: None },
            resolver,
            lookups_left: limits.image_lookups,
            output,
        }
    }

    /// What the frontend wrote to stdout and stderr.
    pub fn output(&self) -> MemoryOutputPipe {
        self.output.clone()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn resolve_image_config(
        &mut self,
        reference: String,
        platform: Option<String>,
    ) -> Result<types::ImageConfig, String> {
        if reference.len() > MAX_REFERENCE_BYTES {
            return Err(format!("image reference longer than {MAX_REFERENCE_BYTES} bytes"));
        }
        if self.lookups_left == 0 {
            return Err("too many image lookups for one build file".into());
        }
        self.lookups_left -= 1;
        self.resolver.resolve_image_config(&reference, platform.as_deref()).map(Into::into)
    }
}
