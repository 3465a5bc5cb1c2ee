//! `kiln:sandbox/spawn`: a program of a RUN step starts another program from the same root
//! filesystem and waits for it.
//!
//! The child runs to completion inside the call, on the same thread, with the step's tree
//! handed to it and back: the parent is blocked in the call, so nothing else can touch the
//! tree meanwhile. Standard streams can be the parent's, nothing, or files in the tree (read
//! for stdin; written into the tree when the child exits). Pipes between concurrently
//! running programs are not offered yet.
//!
//! A child that cannot start is an error result the parent can report (as a shell reports
//! "not found"); a child that hits the step's limits, or an interrupted build, ends the
//! whole step.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::fs::bindings::kiln::sandbox::spawn::{self, Command, Stdio as WitStdio};
use super::{ChildError, ChildFailed, MAX_SPAWN_DEPTH, RunError, Stdio, StepState, execute};
use crate::rootfs::{self, Content, FileData, Kind, Meta, Node};

struct HasStep;

impl HasData for HasStep {
    type Data<'a> = &'a mut StepState;
}

/// Add `kiln:sandbox/spawn` to a RUN step's linker.
pub(super) fn add_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    spawn::add_to_linker::<StepState, HasStep>(linker, |s| s)
}

/// An output stream going to a file: the pipe, the path, and whether to append.
struct FileSink {
    pipe: MemoryOutputPipe,
    path: String,
    append: bool,
}

impl StepState {
    fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') { path.to_string() } else { format!("{}/{path}", self.cwd) }
    }

    fn sink(&self, stdio: &WitStdio, sinks: &mut Vec<FileSink>) -> Result<Option<MemoryOutputPipe>, String> {
        Ok(match stdio {
            WitStdio::Inherit => Some(self.ctx.output.clone()),
            WitStdio::Null => None,
            WitStdio::File(path) | WitStdio::Append(path) => {
                let pipe = MemoryOutputPipe::new(self.ctx.output_limit);
                let append = matches!(stdio, WitStdio::Append(_));
                sinks.push(FileSink { pipe: pipe.clone(), path: self.absolute(path), append });
                Some(pipe)
            }
        })
    }

    /// Write what a child printed into the files its streams were sent to.
    fn store_sinks(&mut self, sinks: Vec<FileSink>) -> Result<(), String> {
        for sink in sinks {
            let target = self.fs.tree.resolve_dest(&[], &sink.path).map_err(|e| e.to_string())?;
            let mut bytes = Vec::new();
            let existing = self.fs.tree.get(&target).cloned();
            if let (true, Some(Node { kind: Kind::File(data), .. })) = (sink.append, &existing) {
                std::io::Read::read_to_end(&mut data.content.open().map_err(|e| e.to_string())?, &mut bytes)
                    .map_err(|e| e.to_string())?;
            }
            bytes.extend_from_slice(&sink.pipe.contents());
            let (file, size) = self.ctx.scratch.store(&mut &bytes[..]).map_err(|e| e.to_string())?;
            let meta = match &existing {
                Some(Node { meta, kind: Kind::File(_) }) => Meta { mtime: self.ctx.epoch, ..*meta },
                Some(_) => return Err(format!("{}: not a regular file", sink.path)),
                None => Meta { mode: 0o644, uid: self.ctx.owner.0, gid: self.ctx.owner.1, mtime: self.ctx.epoch },
            };
            let node = Node { meta, kind: Kind::File(Arc::new(FileData { content: Content::Scratch(file), size })) };
            self.fs.tree.insert(&target, node).map_err(|e| format!("{}: {e}", sink.path))?;
        }
        Ok(())
    }
}

impl spawn::Host for &mut StepState {
    fn run(&mut self, command: Command) -> wasmtime::Result<Result<i32, String>> {
        let state: &mut StepState = self;
        if state.depth + 1 > MAX_SPAWN_DEPTH {
            return Ok(Err(format!("programs may start programs only {MAX_SPAWN_DEPTH} deep")));
        }
        let env = command.env.unwrap_or_else(|| state.env.clone());
        let cwd = match &command.cwd {
            Some(dir) => {
                let joined = state.absolute(dir);
                format!("/{}", rootfs::join(&rootfs::clean(&joined)))
            }
            None => state.cwd.clone(),
        };
        let stdin = match &command.stdin {
            WitStdio::Inherit | WitStdio::Null => Vec::new(),
            WitStdio::File(path) => match state.fs.tree.read_file(&state.absolute(path), 1 << 30) {
                Some(bytes) => bytes,
                None => return Ok(Err(format!("{path}: cannot open it as standard input"))),
            },
            WitStdio::Append(path) => return Ok(Err(format!("{path}: standard input cannot be appended to"))),
        };
        let mut sinks = Vec::new();
        let stdout = match state.sink(&command.stdout, &mut sinks) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let stderr = match state.sink(&command.stderr, &mut sinks) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let tree = std::mem::take(&mut state.fs.tree);
        let ctx = state.ctx.clone();
        let (tree, result) =
            execute(&ctx, tree, &command.argv, &env, &cwd, Stdio { stdin, stdout, stderr }, state.depth + 1);
        state.fs.tree = tree;
        if let Err(e) = state.store_sinks(sinks) {
            return Ok(Err(e));
        }
        match result {
            Ok(status) => Ok(Ok(status)),
            Err(RunError::Program(e)) => Ok(Err(e.to_string())),
            Err(RunError::Trap { detail, .. }) => Ok(Err(format!("{}: crashed: {detail}", command.argv.join(" ")))),
            Err(stop) => Err(ChildFailed(ChildError(std::sync::Mutex::new(Some(stop)))).into()),
        }
    }
}
