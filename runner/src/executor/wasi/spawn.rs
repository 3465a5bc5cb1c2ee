//! `kiln:sandbox/spawn`: a program of a RUN step starts other programs from the same root
//! filesystem, waits for them, and connects them with pipes.
//!
//! `run` runs a child to completion inside the call; `start` runs it on its own thread and
//! returns a `child` handle whose pipe ends the parent can take and which it can wait for.
//! All programs of a step share the step's tree (behind a lock held for one filesystem call
//! at a time), its limits and its captured output. Standard streams can be the parent's,
//! nothing, a file in the tree (read for stdin; written into the tree when the child exits),
//! or a pipe.
//!
//! A child that cannot start is an error result the parent can report (as a shell reports
//! "not found"); a child that hits the step's limits, or an interrupted build, ends the
//! whole step.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

use super::fs::bindings::kiln::sandbox::spawn::{self, Command, Stdio as WitStdio};
use super::output::FileOutput;
use super::pipe::{Pipe, Writer};
use super::{ChildError, ChildFailed, Input, MAX_SPAWN_DEPTH, Output, RunError, Stdio, StepState, Stream, execute};
use crate::rootfs::{self, Content, FileData, Kind, Meta, Node};

struct HasStep;

impl HasData for HasStep {
    type Data<'a> = &'a mut StepState;
}

/// Add `kiln:sandbox/spawn` to a RUN step's linker.
pub(super) fn add_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    spawn::add_to_linker::<StepState, HasStep>(linker, |s| s)
}

/// An output stream going to a file: the scratch file it is written to, the path in the
/// tree, and whether to append.
struct FileSink {
    output: FileOutput,
    path: String,
    append: bool,
}

/// A started program.
pub struct Child {
    thread: Option<JoinHandle<Result<i32, RunError>>>,
    /// The writing end of a `stdin: pipe`, held until the parent takes it (so the child
    /// does not see end of file before the parent had a chance to write).
    stdin: Option<Writer>,
    stdout: Option<Arc<Pipe>>,
    stderr: Option<Arc<Pipe>>,
    sinks: Vec<FileSink>,
    name: String,
    ctx: Arc<super::StepCtx>,
}

impl Drop for Child {
    /// A child nobody waits for (its handle dropped, or its parent ended) keeps running
    /// until the step ends, and is joined then; output nobody will read closes (so a writer
    /// sees a closed pipe instead of blocking).
    fn drop(&mut self) {
        for pipe in [&self.stdout, &self.stderr].into_iter().flatten() {
            pipe.abandon();
        }
        if let Some(thread) = self.thread.take() {
            self.ctx.orphans.lock().unwrap_or_else(|e| e.into_inner()).push(thread);
        }
    }
}

/// A prepared child: its streams, and the pipe ends its parent may take.
struct Prepared {
    stdio: Stdio,
    sinks: Vec<FileSink>,
    pipes: (Option<Writer>, Option<Arc<Pipe>>, Option<Arc<Pipe>>),
    env: Vec<(String, String)>,
    cwd: String,
}

impl StepState {
    fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') { path.to_string() } else { format!("{}/{path}", self.cwd) }
    }

    fn output(
        &self,
        stdio: &WitStdio,
        stream: Stream,
        sinks: &mut Vec<FileSink>,
        pipe: &mut Option<Arc<Pipe>>,
    ) -> Result<Output, String> {
        Ok(match stdio {
            WitStdio::Inherit => self.ctx.inherited(stream),
            WitStdio::Null => Output::Null,
            WitStdio::File(path) | WitStdio::Append(path) => {
                let shown = format!("/{}", rootfs::join(&rootfs::clean(&self.absolute(path))));
                let output = FileOutput::create(self.ctx.scratch.new_path(), &shown, &self.fs)
                    .map_err(|e| format!("{path}: {e}"))?;
                let append = matches!(stdio, WitStdio::Append(_));
                sinks.push(FileSink { output: output.clone(), path: self.absolute(path), append });
                Output::File(output)
            }
            WitStdio::Pipe => {
                let p = self.ctx.new_pipe();
                *pipe = Some(p.clone());
                // The writer exists from now on: a reader never mistakes "not started yet"
                // for end of file.
                let held = p.writer();
                Output::Pipe(p, held)
            }
            WitStdio::OutputOf(_) => return Err("output-of is for standard input only".into()),
        })
    }

    fn prepare(&mut self, command: &Command, pipes_allowed: bool) -> Result<Prepared, String> {
        if self.depth + 1 > MAX_SPAWN_DEPTH {
            return Err(format!("programs may start programs only {MAX_SPAWN_DEPTH} deep"));
        }
        let uses_pipes = [&command.stdin, &command.stdout, &command.stderr]
            .iter()
            .any(|s| matches!(s, WitStdio::Pipe | WitStdio::OutputOf(_)));
        if uses_pipes && !pipes_allowed {
            return Err("pipes need `start`: `run` waits before anyone could use them".into());
        }
        let env = command.env.clone().unwrap_or_else(|| self.env.clone());
        let cwd = match &command.cwd {
            Some(dir) => format!("/{}", rootfs::join(&rootfs::clean(&self.absolute(dir)))),
            None => self.cwd.clone(),
        };
        let mut stdin_writer = None;
        let (mut stdout_pipe, mut stderr_pipe) = (None, None);
        let stdin = match &command.stdin {
            WitStdio::Inherit | WitStdio::Null => Input::Bytes(Vec::new()),
            WitStdio::File(path) => {
                let bytes =
                    self.fs.lock().unwrap_or_else(|e| e.into_inner()).tree.read_file(&self.absolute(path), 1 << 30);
                Input::Bytes(bytes.ok_or_else(|| format!("{path}: cannot open it as standard input"))?)
            }
            WitStdio::Append(path) => return Err(format!("{path}: standard input cannot be appended to")),
            WitStdio::Pipe => {
                let p = self.ctx.new_pipe();
                stdin_writer = Some(p.writer());
                Input::Pipe(p)
            }
            WitStdio::OutputOf(other) => {
                let other = self.table.get_mut(other).map_err(|e| e.to_string())?;
                let p = other.stdout.take().ok_or("output-of: that program's stdout is not a pipe, or was taken")?;
                Input::Pipe(p)
            }
        };
        let mut sinks = Vec::new();
        let stdout = self.output(&command.stdout, Stream::Stdout, &mut sinks, &mut stdout_pipe)?;
        let stderr = self.output(&command.stderr, Stream::Stderr, &mut sinks, &mut stderr_pipe)?;
        let pipes = (stdin_writer, stdout_pipe, stderr_pipe);
        Ok(Prepared { stdio: Stdio { stdin, stdout, stderr }, sinks, pipes, env, cwd })
    }

    /// Write what a child printed into the files its streams were sent to.
    fn store_sinks(&mut self, sinks: Vec<FileSink>) -> Result<(), String> {
        let ctx = self.ctx.clone();
        let mut guard = self.fs.lock().unwrap_or_else(|e| e.into_inner());
        let fs = &mut *guard;
        for sink in sinks {
            let target = fs.tree.resolve_dest(&[], &sink.path).map_err(|e| e.to_string())?;
            let existing = fs.tree.get(&target).cloned();
            let (written, written_size) = sink.output.finish().map_err(|e| format!("{}: {e}", sink.path))?;
            let (file, size) = match (sink.append, &existing) {
                // Appending to an empty file (a shell's `>` opens the file, then appends) is
                // the output as it is.
                (true, Some(Node { kind: Kind::File(data), .. })) if !data.is_empty() => {
                    // Streamed, never held in memory: the file may be as large as the disk.
                    // The output's bytes move into the new file; what was there before is
                    // counted before it is copied.
                    let file = ctx.scratch.new_path();
                    let shown = format!("/{}", rootfs::join(&target));
                    fs.budget.removed(&written);
                    if fs.grow(&file, data.len().saturating_add(written_size), &shown).is_err() {
                        let _ = std::fs::remove_file(&written);
                        return Err(format!("{}: {}", sink.path, super::fs::full_disk()));
                    }
                    let before = data.content.open().map_err(|e| e.to_string())?;
                    let after = std::fs::File::open(&written).map_err(|e| e.to_string())?;
                    let stored = ctx.scratch.store_at(&file, &mut before.chain(after));
                    let _ = std::fs::remove_file(&written);
                    (file, stored.map_err(|e| format!("{}: {e}", sink.path))?)
                }
                _ => {
                    fs.budget.output_placed(&written);
                    (written, written_size)
                }
            };
            let meta = match &existing {
                Some(Node { meta, kind: Kind::File(_) }) => Meta { mtime: ctx.epoch, ..*meta },
                Some(_) => return Err(format!("{}: not a regular file", sink.path)),
                None => Meta { mode: 0o644, uid: ctx.owner.0, gid: ctx.owner.1, mtime: ctx.epoch },
            };
            let node = Node { meta, kind: Kind::File(Arc::new(FileData { content: Content::Scratch(file), size })) };
            fs.tree.insert(&target, node).map_err(|e| format!("{}: {e}", sink.path))?;
        }
        Ok(())
    }

    /// What a finished child's result means to its parent.
    fn conclude(
        &mut self,
        name: &str,
        result: Result<i32, RunError>,
        sinks: Vec<FileSink>,
    ) -> wasmtime::Result<Result<i32, String>> {
        if let Err(e) = self.store_sinks(sinks) {
            return Ok(Err(e));
        }
        match result {
            Ok(status) => Ok(Ok(status)),
            Err(RunError::Program(e)) => Ok(Err(e.to_string())),
            Err(RunError::Trap { detail, .. }) => Ok(Err(format!("{name}: crashed: {detail}"))),
            Err(stop) => Err(ChildFailed(ChildError(Mutex::new(Some(stop)))).into()),
        }
    }
}

/// The trap that ends a program whose step runs as many programs as it may (the step is
/// already marked; see `StepCtx::reserve_process`).
fn too_many_programs() -> wasmtime::Error {
    wasmtime::Error::msg("the step runs as many programs as it may")
}

impl spawn::Host for &mut StepState {
    fn run(&mut self, command: Command) -> wasmtime::Result<Result<i32, String>> {
        let state: &mut StepState = self;
        let prepared = match state.prepare(&command, false) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let (ctx, fs) = (state.ctx.clone(), state.fs.clone());
        if !ctx.reserve_process() {
            return Err(too_many_programs());
        }
        let result = execute(&ctx, &fs, &command.argv, &prepared.env, &prepared.cwd, prepared.stdio, state.depth + 1);
        ctx.release_process();
        state.conclude(&command.argv.join(" "), result, prepared.sinks)
    }

    fn start(&mut self, command: Command) -> wasmtime::Result<Result<Resource<Child>, String>> {
        let state: &mut StepState = self;
        let prepared = match state.prepare(&command, true) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let (ctx, fs) = (state.ctx.clone(), state.fs.clone());
        let depth = state.depth + 1;
        let argv = command.argv.clone();
        let Prepared { stdio, sinks, pipes: (stdin, stdout, stderr), env, cwd } = prepared;
        if !ctx.reserve_process() {
            return Err(too_many_programs());
        }
        let thread = std::thread::Builder::new().name(format!("kiln-run-{depth}")).spawn(move || {
            let result = execute(&ctx, &fs, &argv, &env, &cwd, stdio, depth);
            ctx.release_process();
            result
        });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                state.ctx.release_process();
                return Err(e.into());
            }
        };
        let child = Child {
            thread: Some(thread),
            stdin,
            stdout,
            stderr,
            sinks,
            name: command.argv.join(" "),
            ctx: state.ctx.clone(),
        };
        Ok(Ok(state.table.push(child)?))
    }
}

impl spawn::HostChild for &mut StepState {
    fn take_stdin(&mut self, child: Resource<Child>) -> wasmtime::Result<Option<Resource<DynOutputStream>>> {
        let Some(writer) = self.table.get_mut(&child)?.stdin.take() else { return Ok(None) };
        Ok(Some(self.table.push(Box::new(writer) as DynOutputStream)?))
    }

    fn take_stdout(&mut self, child: Resource<Child>) -> wasmtime::Result<Option<Resource<DynInputStream>>> {
        let Some(pipe) = self.table.get_mut(&child)?.stdout.take() else { return Ok(None) };
        Ok(Some(self.table.push(Box::new(pipe.reader()) as DynInputStream)?))
    }

    fn take_stderr(&mut self, child: Resource<Child>) -> wasmtime::Result<Option<Resource<DynInputStream>>> {
        let Some(pipe) = self.table.get_mut(&child)?.stderr.take() else { return Ok(None) };
        Ok(Some(self.table.push(Box::new(pipe.reader()) as DynInputStream)?))
    }

    fn wait(&mut self, child: Resource<Child>) -> wasmtime::Result<Result<i32, String>> {
        let entry = self.table.get_mut(&child)?;
        let Some(thread) = entry.thread.take() else {
            return Ok(Err("this program was already waited for".into()));
        };
        // An untaken stdin pipe would leave the child waiting for input forever: close it.
        drop(entry.stdin.take());
        let sinks = std::mem::take(&mut entry.sinks);
        let name = entry.name.clone();
        let result = thread.join().unwrap_or_else(|_| Err(RunError::Engine(format!("{name}: its thread panicked"))));
        self.conclude(&name, result, sinks)
    }

    fn drop(&mut self, child: Resource<Child>) -> wasmtime::Result<()> {
        // `Drop for Child` hands a running child to the step.
        self.table.delete(child)?;
        Ok(())
    }
}
