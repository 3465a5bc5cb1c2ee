//! The store state a frontend runs with: a WASI context with nothing behind it, a memory
//! limiter that remembers why it said no, and the one host import.

use std::sync::Arc;
use std::time::Duration;

use kiln_ir::ImageResolver;
use rand::SeedableRng;
use wasmtime::StoreLimitsBuilder;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::wasm::{FixedClock, MemoryLimiter};

use super::FrontendLimits;
use super::bindings::kiln::build::{host, types};

/// Longest image reference a frontend may ask about.
const MAX_REFERENCE_BYTES: usize = 4096;

/// Which limit stopped a frontend, if one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// Linear memory.
    Memory,
}

/// Everything a frontend's store holds.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
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
            .wall_clock(FixedClock(Duration::ZERO))
            .monotonic_clock(FixedClock(Duration::ZERO))
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
            limiter: MemoryLimiter::new(inner),
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
