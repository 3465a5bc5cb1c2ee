//! The Linux executor: a RUN step's Linux programs run under the installed `proot` (GPL;
//! started as a program, never linked), which gives them a root filesystem and a fake root
//! user with nothing but `ptrace` — no namespace, no mount, no setuid.
//!
//! For each step: the stage's tree is written out to a directory in kiln's scratch area
//! ([`materialise`]), proot runs the step there with the stage's environment, working
//! directory and user and the host's network ([`process`]), and what changed on disk goes
//! back into the tree ([`snapshot`]) for the solver to write as the step's layer. After a
//! step that succeeded the directory is kept, in step with the tree, and the next step
//! brings it up to date with its own tree (writing only what differs) instead of writing
//! every file again; after any failure it goes, and all of them go with the executor.
//!
//! What this executor does not promise, unlike the WASI one: a step can read and write what
//! the user running kiln can and reach the network (proot is not a security boundary; this
//! is kaniko's trust model, for trusted build files); its results are only as reproducible
//! as its programs; limits are the kernel's (no memory or process cap of kiln's). It never
//! runs a program of another architecture, and it never writes outside its directory.

mod materialise;
mod process;
mod snapshot;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use materialise::RootDir;

use super::{Outcome, RunError, RunSpec};
use crate::rootfs::Tree;
use crate::scratch::Scratch;

/// What `--executor=proot` trades, for messages that suggest it.
pub const TRADE_OFF: &str = "--executor=proot would run it under proot, with no privilege; but then the program \
     can read and write whatever your user can and reach the network (kaniko's trust model: for build files \
     you trust), and the result is only as reproducible as the programs it runs";

/// Why the Linux executor could not run a step.
#[derive(Debug, thiserror::Error)]
pub enum ProotError {
    /// proot is not on PATH.
    #[error(
        "proot is not installed (kiln looked for `proot` on PATH), and --executor=proot runs Linux programs \
         through it: install it (Debian and Ubuntu: apt-get install proot; Alpine: apk add proot; Fedora: dnf install proot)"
    )]
    NotInstalled,
    /// The kernel (or a seccomp filter, or a sandbox such as gVisor) refuses proot's ptrace.
    #[error(
        "proot cannot trace programs on this machine ({detail}): it needs ptrace, and something here denies it \
         (a seccomp filter, kernel.yama.ptrace_scope = 3, or a sandbox such as gVisor); run kiln where ptrace is \
         allowed, or build without --executor=proot"
    )]
    PtraceDenied {
        /// What proot said.
        detail: String,
    },
    /// proot fails for another reason.
    #[error("proot does not work on this machine: {detail}")]
    Broken {
        /// What proot said.
        detail: String,
    },
    /// proot could not be started.
    #[error("cannot start {}: {error}", proot.display())]
    Start {
        /// The proot found.
        proot: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The program is for another architecture than the machine's.
    #[error(
        "{path} is a Linux program for {program}, and this machine is {host}: kiln runs Linux programs only for \
         its own architecture (it does not emulate others); use a base image for linux/{host}, or build on a \
         {program} machine"
    )]
    Architecture {
        /// The program.
        path: String,
        /// Its architecture.
        program: String,
        /// The machine's.
        host: String,
    },
    /// The step's directory could not be made in kiln's scratch area.
    #[error(
        "cannot make a directory for the step in kiln's scratch area {}: {error}; check the free space and \
         permissions of kiln's store (--root or KILN_HOME)",
        scratch.display()
    )]
    StepDirectory {
        /// The build's scratch area.
        scratch: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The stage's files could not be written to disk for the step.
    #[error("writing the stage's files to disk for proot failed at {path}: {error}")]
    Materialise {
        /// The entry, as the step sees it.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// What the step changed could not be recorded.
    #[error("recording what the step changed failed at {path}: {detail}")]
    Snapshot {
        /// The entry, as the step sees it.
        path: String,
        /// Why.
        detail: String,
    },
}

/// Why proot cannot be used at all, found once per executor.
#[derive(Debug, Clone)]
enum Unusable {
    NotInstalled,
    PtraceDenied(String),
    Broken(String),
}

impl From<Unusable> for ProotError {
    fn from(u: Unusable) -> Self {
        match u {
            Unusable::NotInstalled => ProotError::NotInstalled,
            Unusable::PtraceDenied(detail) => ProotError::PtraceDenied { detail },
            Unusable::Broken(detail) => ProotError::Broken { detail },
        }
    }
}

/// Runs Linux programs under proot; one per build.
#[derive(Default)]
pub struct ProotExecutor {
    /// The proot found on PATH and checked to work, once, at the first Linux step.
    proot: OnceLock<Result<PathBuf, Unusable>>,
    /// Directories of steps that succeeded, each in step with the tree its step left: the
    /// last one used is taken first, which is usually the same stage's.
    idle: Mutex<Vec<RootDir>>,
}

impl ProotExecutor {
    /// An executor that finds proot when a step first needs it.
    pub fn new() -> Self {
        ProotExecutor::default()
    }

    /// The installed proot, checked once to be able to trace a program.
    fn proot(&self) -> Result<PathBuf, ProotError> {
        self.proot.get_or_init(check).clone().map_err(ProotError::from)
    }

    /// Run one step on `tree` (moved in, and handed back whatever happened).
    pub fn run(&self, mut tree: Tree, scratch: Arc<Scratch>, spec: &RunSpec<'_>) -> (Tree, Result<Outcome, RunError>) {
        let result = self.run_on(&mut tree, &scratch, spec);
        (tree, result)
    }

    fn run_on(&self, tree: &mut Tree, scratch: &Scratch, spec: &RunSpec<'_>) -> Result<Outcome, RunError> {
        let (named, program) = spec.native_program(tree).ok_or_else(|| {
            let name = spec.argv.first().cloned().unwrap_or_default();
            super::wasi::program::ProgramError::NotFound { on_path: !name.contains('/'), name }
        })?;
        let host = super::elf::host_arch();
        match super::elf::arch(&program.head) {
            Some(arch) if arch != host => {
                return Err(
                    ProotError::Architecture { path: program.path, program: arch, host: host.to_string() }.into()
                );
            }
            _ => {}
        }
        let proot = self.proot()?;
        let idle = {
            // Only a directory of this build's scratch area: a solve in a scratch store of its
            // own (`--verify-reproducible`) must not find one of another, since gone.
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|dir| dir.is_in(scratch.path()));
            idle.pop()
        };
        let mut dir = match idle {
            Some(dir) => dir,
            None => scratch
                .new_dir()
                .and_then(RootDir::new)
                .map_err(|error| ProotError::StepDirectory { scratch: scratch.path().to_path_buf(), error })?,
        };
        let result = step(tree, scratch, spec, &proot, &mut dir, &named);
        if matches!(result, Ok(Outcome { status: 0, .. })) {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(dir);
        }
        // Otherwise the directory holds what a failed step left, which no tree has: it goes.
        result
    }
}

/// One step in `dir`: write the tree out, run proot, read back what changed.
fn step(
    tree: &mut Tree,
    scratch: &Scratch,
    spec: &RunSpec<'_>,
    proot: &std::path::Path,
    dir: &mut RootDir,
    program: &str,
) -> Result<Outcome, RunError> {
    let started = std::time::Instant::now();
    let synced = dir.sync(tree).map_err(|f| ProotError::Materialise { path: f.path, error: f.error })?;
    let written = started.elapsed();
    let launch = process::Launch { proot, root: dir.root(), tmp: dir.tmp(), program };
    let ended = process::run(&launch, spec)?;
    let ran = started.elapsed() - written;
    if ended.status != 0 {
        if let Some(detail) = ptrace_refusal(&ended.output) {
            return Err(ProotError::PtraceDenied { detail }.into());
        }
        return Ok(outcome(ended.status, ended.output, ended.clipped));
    }
    let rules = snapshot::Rules { owner: spec.owner, epoch: spec.epoch };
    let snapshot_started = std::time::Instant::now();
    let kept = snapshot::snapshot(tree, dir, &rules, scratch).map_err(|failed| match failed {
        snapshot::Failed::Io { path, error } => ProotError::Snapshot { path, detail: error.to_string() }.into(),
        snapshot::Failed::Name { path, detail } => ProotError::Snapshot { path, detail }.into(),
        snapshot::Failed::TooLarge { path } => {
            RunError::LayerSize { path, limit: scratch.layer_limit(), output: ended.output.clone() }
        }
    })?;
    // What the executor itself costs, next to the step's own time (`KILN_LOG=debug`).
    tracing::debug!(
        entries = dir.entries.len(),
        entries_written = synced.written,
        bytes_written = synced.bytes,
        bytes_kept = kept,
        write_ms = written.as_millis() as u64,
        run_ms = ran.as_millis() as u64,
        snapshot_ms = snapshot_started.elapsed().as_millis() as u64,
        "proot step"
    );
    Ok(outcome(0, ended.output, ended.clipped))
}

fn outcome(status: i32, output: Vec<u8>, output_clipped: bool) -> Outcome {
    Outcome { status, output, output_clipped, warnings: Vec::new(), linux_program: None }
}

/// proot's own report that it could not trace the program, if that is how it failed.
fn ptrace_refusal(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().find(|l| l.starts_with("proot error: ptrace("))?;
    Some(line.trim_start_matches("proot error: ").to_string())
}

/// Find proot on PATH and see that it can trace a program: the host's `true`, which every
/// Linux has (where it has none, the first step finds out instead).
fn check() -> Result<PathBuf, Unusable> {
    let proot = process::find_on_path("proot").ok_or(Unusable::NotInstalled)?;
    let Some(probe) = ["/bin/true", "/usr/bin/true"].into_iter().find(|p| std::path::Path::new(p).is_file()) else {
        return Ok(proot);
    };
    let out = std::process::Command::new(&proot)
        .arg(probe)
        .env_clear()
        .env("PATH", crate::platform::DEFAULT_PATH)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Unusable::Broken(format!("{}: {e}", proot.display())))?;
    if out.status.success() {
        return Ok(proot);
    }
    let said = [out.stderr, out.stdout].concat();
    if let Some(detail) = ptrace_refusal(&said) {
        return Err(Unusable::PtraceDenied(detail));
    }
    let text = String::from_utf8_lossy(&said);
    let first = text.lines().find(|l| l.starts_with("proot error")).or_else(|| text.lines().next()).unwrap_or("");
    Err(Unusable::Broken(format!("`proot {probe}` failed ({}): {}", out.status, first.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ptrace_refusal_by_proot_is_recognised() {
        let said = b"proot error: ptrace(TRACEME): Operation not permitted\nproot error: execve(\"/usr/bin/true\"): Operation not permitted\n";
        assert_eq!(ptrace_refusal(said).as_deref(), Some("ptrace(TRACEME): Operation not permitted"));
        assert_eq!(ptrace_refusal(b"E: Unable to locate package x\n"), None);
    }
}
