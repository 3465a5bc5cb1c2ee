//! The WebAssembly runtime kiln shares between frontends and RUN steps: one wasmtime
//! engine for the process (so compiled code and its cache agree), the cache of compiled
//! components, a memory limiter that remembers it said no, a clock that reads a fixed time,
//! and what a file's first bytes say it is.
//!
//! Nothing here decides what a guest may do: the frontend host and the executor each build
//! their guest's world from these parts.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use wasmtime::{Config, Engine, ResourceLimiter, StoreLimits};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

pub mod cache;

/// How often the engine's epoch advances; time limits are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine could not be made (wasmtime refused the configuration, or no thread).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot start the WebAssembly engine: {0}")]
pub struct EngineError(String);

/// The process-wide engine (component model, epoch interruption, a ticker thread), shared
/// by frontends and RUN steps so compiled code and the cache agree.
///
/// # Errors
/// The engine cannot be made; every later call gets the same error.
pub fn engine() -> Result<Engine, EngineError> {
    static ENGINE: std::sync::OnceLock<Result<Engine, EngineError>> = std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config.wasm_component_model(true);
            config.epoch_interruption(true);
            config.max_wasm_stack(2 << 20);
            let engine = Engine::new(&config).map_err(|e| EngineError(e.to_string()))?;
            let ticker = engine.weak();
            std::thread::Builder::new()
                .name("kiln-epoch".into())
                .spawn(move || {
                    while let Some(engine) = ticker.upgrade() {
                        engine.increment_epoch();
                        drop(engine);
                        std::thread::sleep(EPOCH_TICK);
                    }
                })
                .map_err(|e| EngineError(e.to_string()))?;
            Ok(engine)
        })
        .clone()
}

/// The hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A WebAssembly core module (a WASI preview 1 program).
    CoreModule,
    /// A WebAssembly component (WASI preview 2).
    Component,
    /// WebAssembly of a version or layer kiln does not know.
    OtherWasm,
    /// Not WebAssembly.
    NotWasm,
}

/// What `head` (a file's first eight bytes or more) says the file is.
pub fn kind(head: &[u8]) -> Kind {
    if !head.starts_with(b"\0asm") {
        return Kind::NotWasm;
    }
    match head.get(4..8) {
        Some([1, 0, 0, 0]) => Kind::CoreModule,
        Some([0x0d, 0, 1, 0]) => Kind::Component,
        _ => Kind::OtherWasm,
    }
}

/// wasmtime's store limits, remembering whether the memory cap was what said no (a guest
/// that hits it traps, and the trap alone does not say why).
pub struct MemoryLimiter {
    inner: StoreLimits,
    hit: bool,
}

impl MemoryLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: StoreLimits) -> Self {
        MemoryLimiter { inner: limits, hit: false }
    }

    /// Whether a memory growth was refused.
    pub fn memory_hit(&self) -> bool {
        self.hit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        // With `trap_on_grow_failure` the inner limiter refuses by returning an error rather
        // than `false`; either way the cap was hit.
        let allowed = self.inner.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.hit = true;
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

/// A clock that always reads the same time (as a wall clock: that many seconds since 1970;
/// as a monotonic clock: that many nanoseconds): a guest's output must not depend on when
/// it ran.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Duration);

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

impl HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_say_what_a_file_is() {
        assert_eq!(kind(b"\0asm\x01\0\0\0"), Kind::CoreModule);
        assert_eq!(kind(b"\0asm\x0d\0\x01\0rest"), Kind::Component);
        assert_eq!(kind(b"\0asm\x02\0\0\0"), Kind::OtherWasm);
        assert_eq!(kind(b"\0asm"), Kind::OtherWasm);
        assert_eq!(kind(b"#!/bin/sh"), Kind::NotWasm);
        assert_eq!(kind(b""), Kind::NotWasm);
    }
}
