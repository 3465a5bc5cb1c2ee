//! Which executor runs a step: the one its program needs, among those the user allows.
//!
//! A step whose program is a Linux one (argv[0] on the stage's PATH, or its `#!`
//! interpreter, is an ELF file; `sh` counts as the stage's own `/bin/sh`) runs under proot
//! when the user chose `--executor=proot`; every other step runs in the WASI sandbox, as it
//! always did. So a build mixes both: a Debian stage's RUN under proot, a WASI stage's in
//! wasmtime. Without the choice, nothing changes: a Linux program stays an error, whose
//! message says what the choice would trade.

use std::sync::Arc;

use super::proot::ProotExecutor;
use super::wasi::WasiExecutor;
use super::{Executor, Outcome, RunError, RunSpec};
use crate::rootfs::Tree;
use crate::scratch::Scratch;

/// Which executors a build may use (`--executor`, `KILN_EXECUTOR`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecutorChoice {
    /// WASI programs only, in kiln's sandbox (the default).
    #[default]
    Wasi,
    /// Linux programs under proot as well, with the user's authority and the network.
    Proot,
}

/// An `--executor` value kiln does not know.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown executor {0:?}: kiln has `wasi` (the default: WASI programs in its sandbox) and `proot` (Linux programs under proot, with your authority and the network)"
)]
pub struct UnknownExecutor(pub String);

impl std::str::FromStr for ExecutorChoice {
    type Err = UnknownExecutor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "wasi" => Ok(ExecutorChoice::Wasi),
            "proot" => Ok(ExecutorChoice::Proot),
            other => Err(UnknownExecutor(other.to_string())),
        }
    }
}

/// Routes each step to the executor its program needs (see the module documentation).
pub struct Dispatch {
    wasi: WasiExecutor,
    linux: Option<ProotExecutor>,
}

impl Dispatch {
    /// The executors `choice` allows; WASI programs compile into `compile_cache`.
    pub fn new(choice: ExecutorChoice, compile_cache: Option<std::path::PathBuf>) -> Self {
        let linux = match choice {
            ExecutorChoice::Wasi => None,
            ExecutorChoice::Proot => Some(ProotExecutor::new()),
        };
        Dispatch { wasi: WasiExecutor::new(compile_cache), linux }
    }

    /// Whether `spec` would run under the Linux executor, given `tree`.
    fn is_linux(tree: &Tree, spec: &RunSpec<'_>) -> bool {
        spec.native_program(tree).is_some_and(|(_, program)| super::elf::arch(&program.head).is_some())
    }
}

impl Executor for Dispatch {
    fn run(&self, rootfs: Tree, scratch: Arc<Scratch>, spec: &RunSpec<'_>) -> (Tree, Result<Outcome, RunError>) {
        match &self.linux {
            Some(linux) if Dispatch::is_linux(&rootfs, spec) => linux.run(rootfs, scratch, spec),
            _ => self.wasi.run(rootfs, scratch, spec),
        }
    }

    fn cache_tag(&self) -> &str {
        // A step that failed without proot may succeed with it, and its result is made by
        // other programs: results are kept apart.
        if self.linux.is_some() { "executor=proot" } else { "" }
    }
}
