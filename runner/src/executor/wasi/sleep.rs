//! `wasi:clocks/monotonic-clock`'s timers, replaced: a program that sleeps still sleeps for
//! the time it asked, but wakes as soon as its step must stop.
//!
//! wasmtime-wasi's own timers wait inside the host, where epoch interruption cannot reach:
//! `sleep 1000000` would outlive `--step-timeout` and Ctrl-C. These wait in slices and check
//! the step between them; once awake, the program is back in wasm code and the epoch
//! callback ends it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::{StepCtx, StepState};

/// The monotonic-clock interface the timers replace (the version wasmtime-wasi defines;
/// guests importing older 0.2 versions are linked to it by semver).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// How often a sleeping program checks whether its step must stop.
const SLICE: Duration = Duration::from_millis(50);

/// The monotonic clock of one program: it advances with every read (see `StepClock`), so
/// `subscribe-instant` measures against the same reading the program saw.
pub(crate) type Clock = Arc<AtomicU64>;

struct Sleep {
    until: tokio::time::Instant,
    ctx: Arc<StepCtx>,
    child: bool,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Sleep {
    async fn ready(&mut self) {
        loop {
            let now = tokio::time::Instant::now();
            let abandoned = self.child && self.ctx.done.load(Ordering::SeqCst);
            if now >= self.until || abandoned || self.ctx.must_stop() {
                return;
            }
            tokio::time::sleep((self.until - now).min(SLICE)).await;
        }
    }
}

fn sleep_for(state: &mut StepState, nanos: u64) -> wasmtime::Result<Resource<DynPollable>> {
    let until = tokio::time::Instant::now()
        .checked_add(Duration::from_nanos(nanos))
        .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365 * 30));
    let sleep = Sleep { until, ctx: state.ctx.clone(), child: state.depth > 0 };
    let resource = state.table.push(sleep)?;
    subscribe(&mut state.table, resource)
}

/// Shadow wasmtime-wasi's `subscribe-duration` and `subscribe-instant` in a step's linker.
pub(super) fn add_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |mut store: StoreContextMut<'_, StepState>, (nanos,): (u64,)| {
        Ok((sleep_for(store.data_mut(), nanos)?,))
    })?;
    clock.func_wrap("subscribe-instant", |mut store: StoreContextMut<'_, StepState>, (when,): (u64,)| {
        let state = store.data_mut();
        let now = state.clock.load(Ordering::Relaxed);
        Ok((sleep_for(state, when.saturating_sub(now))?,))
    })?;
    Ok(())
}
