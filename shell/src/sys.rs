//! The shell's one door to the outside: starting programs through kiln's `spawn` interface,
//! moving bytes between them and the shell, and exiting with an exact status.
//!
//! Everything that crosses the component boundary is here, so the interpreter stays plain
//! Rust. This module never interprets shell syntax and never decides what a command means.

wit_bindgen::generate!({
    path: "../wit/sandbox",
    world: "kiln:sandbox/shell",
    generate_all,
});

use kiln::sandbox::spawn::{self, Child, Command, Stdio};
use wasi::io::poll::{Pollable, poll};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// Where a started program's standard input comes from.
pub enum Input {
    /// The shell's own standard input.
    Inherit,
    /// End of file at once.
    Null,
    /// A file, opened by the host.
    File(String),
    /// These bytes, written by the shell into a pipe.
    Feed(Vec<u8>),
}

/// A function the shell hands a program's output to, as it arrives.
pub type Sink<'a> = Box<dyn FnMut(&[u8]) + 'a>;

/// Where a started program's standard output or error goes.
pub enum Output<'a> {
    /// The shell's own stream of the same number.
    Inherit,
    /// Discarded.
    Null,
    /// Appended to a file (the shell has already created or truncated it).
    Append(String),
    /// Read by the shell and handed to this function.
    Collect(Sink<'a>),
}

/// One program to start.
pub struct Spec<'a> {
    /// The arguments.
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// The absolute working directory.
    pub cwd: String,
    /// Standard input (only the first program of a pipeline uses it).
    pub stdin: Input,
    /// Standard output (only the last program of a pipeline uses it).
    pub stdout: Output<'a>,
    /// Standard error.
    pub stderr: Output<'a>,
}

/// Why a program did not run.
pub struct SpawnError(pub String);

impl SpawnError {
    /// The status a shell reports: 127 when the program does not exist, else 126.
    pub fn status(&self) -> i32 {
        if self.0.contains("not found") { 127 } else { 126 }
    }
}

fn plain(input: &Input) -> Option<Stdio<'static>> {
    match input {
        Input::Inherit => Some(Stdio::Inherit),
        Input::Null => Some(Stdio::Null),
        Input::File(path) => Some(Stdio::File(path.clone())),
        Input::Feed(_) => None,
    }
}

fn plain_out(output: &Output<'_>) -> Stdio<'static> {
    match output {
        Output::Inherit => Stdio::Inherit,
        Output::Null => Stdio::Null,
        Output::Append(path) => Stdio::Append(path.clone()),
        Output::Collect(_) => Stdio::Pipe,
    }
}

/// Run a pipeline of programs, the output of each feeding the next, and return every
/// program's status (or why it could not start: later programs are not started then).
pub fn run_pipeline(mut specs: Vec<Spec<'_>>) -> Vec<Result<i32, SpawnError>> {
    // The common case, one program with nothing to pump, is one host call.
    if specs.len() == 1 {
        let spec = &specs[0];
        let pumped = matches!(spec.stdin, Input::Feed(_))
            || matches!(spec.stdout, Output::Collect(_))
            || matches!(spec.stderr, Output::Collect(_));
        if !pumped {
            let command = Command {
                argv: spec.argv.clone(),
                env: Some(spec.env.clone()),
                cwd: Some(spec.cwd.clone()),
                stdin: plain(&spec.stdin).unwrap_or(Stdio::Null),
                stdout: plain_out(&spec.stdout),
                stderr: plain_out(&spec.stderr),
            };
            return vec![spawn::run(&command).map_err(SpawnError)];
        }
    }
    let count = specs.len();
    // A program that cannot start is reported as such; the next one reads an empty input,
    // as it would from a shell whose earlier command was not found.
    let mut children: Vec<Result<Child, SpawnError>> = Vec::with_capacity(count);
    for (i, spec) in specs.iter_mut().enumerate() {
        let stdin = match i {
            0 => plain(&spec.stdin).unwrap_or(Stdio::Pipe),
            _ => match children.last() {
                Some(Ok(previous)) => Stdio::OutputOf(previous),
                _ => Stdio::Null,
            },
        };
        let stdout = if i + 1 == count { plain_out(&spec.stdout) } else { Stdio::Pipe };
        let command = Command {
            argv: std::mem::take(&mut spec.argv),
            env: Some(std::mem::take(&mut spec.env)),
            cwd: Some(spec.cwd.clone()),
            stdin,
            stdout,
            stderr: plain_out(&spec.stderr),
        };
        children.push(spawn::start(&command).map_err(SpawnError));
    }
    // Hook the shell's ends of the pipes up.
    let mut feed: Option<(OutputStream, Vec<u8>)> = None;
    let mut readers: Vec<(InputStream, Sink<'_>)> = Vec::new();
    for (i, (spec, child)) in specs.iter_mut().zip(children.iter()).enumerate() {
        let Ok(child) = child else { continue };
        if i == 0
            && let Input::Feed(bytes) = &mut spec.stdin
            && let Some(stream) = child.take_stdin()
        {
            feed = Some((stream, std::mem::take(bytes)));
        }
        if i + 1 == count
            && matches!(spec.stdout, Output::Collect(_))
            && let Some(stream) = child.take_stdout()
            && let Output::Collect(sink) = std::mem::replace(&mut spec.stdout, Output::Null)
        {
            readers.push((stream, sink));
        }
        if matches!(spec.stderr, Output::Collect(_))
            && let Some(stream) = child.take_stderr()
            && let Output::Collect(sink) = std::mem::replace(&mut spec.stderr, Output::Null)
        {
            readers.push((stream, sink));
        }
    }
    pump(feed, &mut readers);
    drop(readers);
    children.into_iter().map(|child| child.and_then(|c| c.wait().map_err(SpawnError))).collect()
}

/// Write `feed` into its stream and drain every reader, whichever is ready, until all are
/// done. A reader that ends (or a child that stops reading) leaves the others going.
fn pump(mut feed: Option<(OutputStream, Vec<u8>)>, readers: &mut [(InputStream, Sink<'_>)]) {
    let mut offset = 0;
    let mut open = vec![true; readers.len()];
    loop {
        if let Some((_, bytes)) = &feed
            && offset >= bytes.len()
        {
            // All written: closing the pipe is the child's end of file.
            feed = None;
        }
        let mut pollables: Vec<Pollable> = Vec::new();
        let mut owners: Vec<Option<usize>> = Vec::new();
        if let Some((stream, _)) = &feed {
            pollables.push(stream.subscribe());
            owners.push(None);
        }
        for (i, (stream, _)) in readers.iter().enumerate() {
            if open[i] {
                pollables.push(stream.subscribe());
                owners.push(Some(i));
            }
        }
        if pollables.is_empty() {
            return;
        }
        let refs: Vec<&Pollable> = pollables.iter().collect();
        let ready = poll(&refs);
        drop(refs);
        drop(pollables);
        for index in ready {
            match owners[index as usize] {
                None => {
                    let Some((stream, bytes)) = &feed else { continue };
                    match stream.check_write() {
                        Ok(0) => {}
                        Ok(room) => {
                            let end = bytes.len().min(offset + room as usize);
                            if stream.write(&bytes[offset..end]).is_err() {
                                feed = None;
                            } else {
                                offset = end;
                            }
                        }
                        Err(_) => feed = None,
                    }
                }
                Some(i) => match readers[i].0.read(64 * 1024) {
                    Ok(bytes) => {
                        if !bytes.is_empty() {
                            (readers[i].1)(&bytes);
                        }
                    }
                    Err(StreamError::Closed) | Err(StreamError::LastOperationFailed(_)) => open[i] = false,
                },
            }
        }
    }
}

/// End the shell with `status` (0-255), flushing what it wrote.
pub fn exit(status: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    wasi::cli::exit::exit_with_code((status & 0xff) as u8);
    // The host never returns from exit; if it did, fall back to std's (status 1 or 0).
    std::process::exit(if status == 0 { 0 } else { 1 })
}
