//! Scheduling: stages built side by side, each once what it needs is built, up to `jobs` at
//! a time. The first failure stops the others (at their next step, or inside a RUN) and is
//! the build's error. This module decides order only; what a stage does is `stage.rs`'s.

use std::sync::atomic::Ordering;

use super::error::SolveError;
use super::plan::stage_deps;
use super::{Solver, StageOut};

/// Build the stages in `order`, up to `jobs` at a time: a stage starts once every stage it
/// needs is built. The first failure stops the others (at their next step, or inside a
/// RUN) and is the build's error.
pub(super) fn run_stages(
    solver: &Solver<'_>,
    order: &[usize],
    jobs: usize,
) -> Result<Vec<Option<StageOut>>, SolveError> {
    let graph = solver.input.graph;
    let mut results: Vec<Option<StageOut>> = vec![None; graph.stages.len()];
    let mut waiting: Vec<usize> = order.to_vec();
    let mut first_error: Option<SolveError> = None;
    std::thread::scope(|scope| {
        let (sender, finished) = std::sync::mpsc::channel::<(usize, Result<StageOut, SolveError>)>();
        let mut running = 0;
        loop {
            while first_error.is_none() && running < jobs {
                let ready = waiting.iter().position(|&s| {
                    stage_deps(&graph.stages[s], solver.input.named_contexts)
                        .iter()
                        .all(|&d| d >= results.len() || results[d].is_some())
                });
                let Some(position) = ready else { break };
                let index = waiting.remove(position);
                // What this stage reads of earlier ones, for its thread.
                let mut inputs: Vec<Option<StageOut>> = vec![None; results.len()];
                for d in stage_deps(&graph.stages[index], solver.input.named_contexts) {
                    if d < results.len() {
                        inputs[d] = results[d].clone();
                    }
                }
                let sender = sender.clone();
                running += 1;
                scope.spawn(move || {
                    let mut inputs = inputs;
                    // A panic must still report back, or the scheduler would wait for it forever.
                    let result =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| solver.stage(index, &mut inputs)))
                            .unwrap_or_else(|_| Err(SolveError::internal("building this stage panicked")));
                    let _ = sender.send((index, result));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((index, result)) = finished.recv() else { break };
            running -= 1;
            match result {
                Ok(out) => results[index] = Some(out),
                Err(e) => {
                    if first_error.is_none() {
                        solver.stop.store(true, Ordering::SeqCst);
                        first_error = Some(e);
                    }
                }
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(results),
    }
}
