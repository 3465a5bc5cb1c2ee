//! RUN: a step handed to the executor, with the environment, working directory, owner and
//! seed Docker's rules give it; its output shown, its failure explained.

use kiln_ir::Instruction;

use crate::executor::wasi::program::ProgramError;
use crate::executor::{OutputSink, RunSpec, proot};
use crate::solver::cachekey::run_seed;
use crate::solver::error::{Cause, SolveError};
use crate::solver::stage::user_owner;
use crate::solver::{Solver, StageOut};

/// Output of a RUN step kept for error messages and logs.
const RUN_OUTPUT_LIMIT: usize = 4 << 20;

impl Solver<'_> {
    pub(in crate::solver) fn run(
        &self,
        out: &mut StageOut,
        instruction: &Instruction,
        run: &kiln_ir::Run,
        label: &str,
    ) -> Result<String, SolveError> {
        if !run.mounts.is_empty() {
            return Err(SolveError::new(Cause::Unsupported("RUN --mount is not supported by kiln yet"))
                .hint("copy what the step needs into the stage with COPY first"));
        }
        // The environment: build args in scope, then ENV (which wins, as in Docker).
        let mut env: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| match env.iter_mut().find(|(key, _)| key == k) {
            Some(entry) => entry.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        };
        for kv in &run.build_args {
            set(&kv.key, &kv.value);
        }
        for entry in &out.config.config.env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            set(k, v);
        }
        let owner = user_owner(out)?;
        let cwd = out.config.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let seed = run_seed(&instruction.created_by, &run.argv, &cwd, instruction.span.start.line);
        let spec = RunSpec {
            argv: &run.argv,
            env: &env,
            cwd: &cwd,
            owner,
            epoch: self.input.epoch.unwrap_or(0),
            seed,
            memory: usize::try_from(self.input.limits.step_memory).unwrap_or(usize::MAX),
            timeout: self.input.step_timeout,
            output_limit: RUN_OUTPUT_LIMIT,
            output_budget: self.input.limits.step_output,
            processes: self.input.limits.step_processes,
            sink: OutputSink::Capture,
            binds: &[],
            stop: Some(self.stop.clone()),
        };
        let tree = std::mem::take(&mut out.tree);
        let (tree, outcome) = self.input.executor.run(tree, self.scratch.clone(), &spec);
        out.tree = tree;
        let outcome = outcome.map_err(|error| {
            use crate::executor::RunError;
            use crate::limits::{Limit, exceeded, human_size};
            let limits = &self.input.limits;
            let detail = match &error {
                RunError::Trap { output, .. } => last_lines(output),
                RunError::Memory(_) => {
                    format!(": {}", exceeded(Limit::StepMemory, &(limits.step_memory >> 20).to_string()))
                }
                RunError::Output(_) => format!(": {}", exceeded(Limit::StepOutput, &human_size(limits.step_output))),
                RunError::Processes(_) => {
                    format!(": {}", exceeded(Limit::StepProcesses, &limits.step_processes.to_string()))
                }
                RunError::LayerSize { output, .. } => {
                    format!(": {}{}", exceeded(Limit::LayerSize, &human_size(limits.layer_size)), last_lines(output))
                }
                _ => String::new(),
            };
            let linux = matches!(error, RunError::Program(ProgramError::Linux { .. }));
            let failed = SolveError::new(Cause::Run { error, detail });
            if linux { failed.hint(proot::TRADE_OFF) } else { failed }
        })?;
        for warning in &outcome.warnings {
            self.progress.note(&format!("warning: {warning}"));
        }
        if outcome.status != 0 {
            let failed = SolveError::new(Cause::Exit {
                argv: run.argv.join(" "),
                status: outcome.status,
                output: outcome.output,
            });
            return Err(match outcome.linux_program {
                // A program the step started was a Linux one, which the sandbox cannot run.
                Some(path) => failed.hint(format!("{path} is a Linux program; {}", proot::TRADE_OFF)),
                None => failed,
            });
        }
        // One block, each line naming its stage: stages built side by side stay readable.
        let output: Vec<String> =
            String::from_utf8_lossy(&outcome.output).lines().map(|line| format!("  [{label}] {line}")).collect();
        if !output.is_empty() {
            self.progress.note(&output.join("\n"));
        }
        if outcome.output_clipped {
            self.progress.note(&format!(
                "  [{label}] [output clipped: the log keeps the first {} of a step]",
                crate::limits::human_size(RUN_OUTPUT_LIMIT as u64)
            ));
        }
        self.commit(out, instruction)
    }
}

/// The last lines a program printed, for an error message.
pub(crate) fn last_lines(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(10)..];
    format!(
        "\noutput (last {} lines):\n{}",
        tail.len(),
        tail.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
    )
}
