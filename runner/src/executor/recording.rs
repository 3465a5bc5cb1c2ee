//! An executor for the solver's unit tests: it runs no program, it follows a tiny script
//! in argv and records every step it was handed.
//!
//! - `write PATH TEXT`: PATH (absolute) becomes a file holding TEXT, owned by the step's
//!   owner, mtime the step's epoch; missing parent directories are made;
//! - `exit N`: the step ends with status N;
//! - anything else: the step ends with status 0 and changes nothing.
//!
//! It never touches the host filesystem: contents live in memory.

use std::sync::{Arc, Mutex};

use super::{Executor, Outcome, RunError, RunSpec};
use crate::rootfs::{Content, FileData, Kind, Meta, Node, Tree};
use crate::scratch::Scratch;

/// What the recording executor was asked to run, one entry per step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The step's argv.
    pub argv: Vec<String>,
    /// Its working directory.
    pub cwd: String,
    /// Its environment.
    pub env: Vec<(String, String)>,
    /// The seed of its random numbers.
    pub seed: u64,
}

/// See the module documentation.
#[derive(Default)]
pub struct RecordingExecutor {
    /// Every step run so far, in the order they ran.
    pub steps: Mutex<Vec<Recorded>>,
}

impl RecordingExecutor {
    /// The argv of every step run so far.
    pub fn argvs(&self) -> Vec<Vec<String>> {
        self.steps.lock().unwrap().iter().map(|s| s.argv.clone()).collect()
    }
}

impl Executor for RecordingExecutor {
    fn run(&self, mut rootfs: Tree, _scratch: Arc<Scratch>, spec: &RunSpec<'_>) -> (Tree, Result<Outcome, RunError>) {
        self.steps.lock().unwrap().push(Recorded {
            argv: spec.argv.to_vec(),
            cwd: spec.cwd.to_string(),
            env: spec.env.to_vec(),
            seed: spec.seed,
        });
        let (uid, gid) = spec.owner;
        let outcome = |status| Outcome {
            status,
            output: Vec::new(),
            output_clipped: false,
            warnings: Vec::new(),
            linux_program: None,
        };
        match spec.argv.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["write", path, text] => {
                let dir = Meta { mode: 0o755, uid, gid, mtime: spec.epoch };
                let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
                let parent = match rootfs.mkdir_all(&[], if parent.is_empty() { "/" } else { parent }, dir) {
                    Ok(p) => p,
                    Err(e) => return (rootfs, Err(RunError::Engine(e.to_string()))),
                };
                let mut at = parent.clone();
                at.push(name.to_string());
                let bytes: Arc<[u8]> = text.as_bytes().into();
                let file = FileData { size: bytes.len() as u64, content: Content::Bytes(bytes) };
                let node =
                    Node { meta: Meta { mode: 0o644, uid, gid, mtime: spec.epoch }, kind: Kind::File(Arc::new(file)) };
                match rootfs.insert(&at, node) {
                    Ok(()) => (rootfs, Ok(outcome(0))),
                    Err(e) => (rootfs, Err(RunError::Engine(e.to_string()))),
                }
            }
            ["exit", status] => (rootfs, Ok(outcome(status.parse().unwrap_or(1)))),
            _ => (rootfs, Ok(outcome(0))),
        }
    }
}
