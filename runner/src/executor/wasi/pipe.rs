//! Pipes between programs of one RUN step that run at the same time (`a | b`).
//!
//! A pipe is a bounded in-memory buffer with a reading and a writing side. Writers block (in
//! WASI terms: are not ready) while it is full, readers while it is empty; a reader sees end
//! of file once every writer is gone, a writer sees a closed stream once the reader is gone.
//! The ends are wasmtime-wasi streams, so they serve as a child's stdin/stdout/stderr or as
//! stream resources the parent reads and writes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// How much a pipe buffers before writers wait (as Linux's default pipe size).
const CAPACITY: usize = 64 << 10;

#[derive(Default)]
struct State {
    data: VecDeque<u8>,
    writers: usize,
    readers: usize,
    reader_gone: bool,
    /// Broken by the step's watchdog: both ends see a closed stream.
    broken: bool,
}

/// A pipe; its ends are [`Reader`] and [`Writer`] (or, as stdio, [`StdinEnd`]/[`StdoutEnd`]).
#[derive(Default)]
pub struct Pipe {
    state: Mutex<State>,
    changed: Notify,
}

impl Pipe {
    /// A new, empty pipe.
    pub fn new() -> Arc<Self> {
        Arc::new(Pipe::default())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A writing end; the reader sees end of file when the last one is dropped.
    pub fn writer(self: &Arc<Self>) -> Writer {
        self.state().writers += 1;
        Writer(self.clone())
    }

    /// A reading end; writers see a closed stream when the last one is dropped.
    pub fn reader(self: &Arc<Self>) -> Reader {
        self.state().readers += 1;
        Reader(self.clone())
    }

    /// The step is being stopped: writers see a closed stream and readers end of file, so
    /// no program stays blocked on the pipe inside kiln, where the step's time limit cannot
    /// reach it.
    pub fn break_pipe(&self) {
        let mut s = self.state();
        s.reader_gone = true;
        s.broken = true;
        drop(s);
        self.changed.notify_waiters();
    }

    /// Nobody will ever read: writers see a closed stream (as with SIGPIPE).
    pub fn abandon(&self) {
        self.state().reader_gone = true;
        self.changed.notify_waiters();
    }
}

/// The writing end of a pipe.
pub struct Writer(Arc<Pipe>);

impl Drop for Writer {
    fn drop(&mut self) {
        self.0.state().writers -= 1;
        self.0.changed.notify_waiters();
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Writer {
    async fn ready(&mut self) {
        loop {
            let notified = self.0.changed.notified();
            {
                let s = self.0.state();
                if s.reader_gone || s.data.len() < CAPACITY {
                    return;
                }
            }
            notified.await;
        }
    }
}

impl OutputStream for Writer {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut s = self.0.state();
        if s.reader_gone {
            return Err(StreamError::Closed);
        }
        s.data.extend(bytes.iter());
        drop(s);
        self.0.changed.notify_waiters();
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let s = self.0.state();
        if s.reader_gone {
            return Err(StreamError::Closed);
        }
        Ok(CAPACITY.saturating_sub(s.data.len()))
    }
}

/// The reading end of a pipe.
pub struct Reader(Arc<Pipe>);

impl Drop for Reader {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.readers -= 1;
        if s.readers == 0 {
            s.reader_gone = true;
        }
        drop(s);
        self.0.changed.notify_waiters();
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Reader {
    async fn ready(&mut self) {
        loop {
            let notified = self.0.changed.notified();
            {
                let s = self.0.state();
                if !s.data.is_empty() || s.writers == 0 || s.broken {
                    return;
                }
            }
            notified.await;
        }
    }
}

impl InputStream for Reader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let mut s = self.0.state();
        if s.broken {
            return Err(StreamError::Closed);
        }
        if s.data.is_empty() {
            return if s.writers == 0 { Err(StreamError::Closed) } else { Ok(Bytes::new()) };
        }
        let n = size.min(s.data.len());
        let out: Vec<u8> = s.data.drain(..n).collect();
        drop(s);
        self.0.changed.notify_waiters();
        Ok(out.into())
    }
}

/// A pipe as a program's standard input. It holds one reader for the program's whole run,
/// so writers are not told the pipe closed before the program even looked at its input.
pub struct StdinEnd {
    pipe: Arc<Pipe>,
    _held: Arc<Mutex<Reader>>,
}

impl StdinEnd {
    /// Attach a program's input to `pipe`.
    pub fn new(pipe: Arc<Pipe>) -> Self {
        let held = Arc::new(Mutex::new(pipe.reader()));
        StdinEnd { pipe, _held: held }
    }
}

impl IsTerminal for StdinEnd {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for StdinEnd {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        // Only WASI preview 2 streams are used by the programs kiln runs.
        Box::new(tokio::io::empty())
    }

    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.pipe.reader())
    }
}

/// A pipe as a program's standard output or error. It holds one writer for the program's
/// whole run (dropped with its store), so the reader sees end of file when the program ends,
/// not when it closes one handle of several.
pub struct StdoutEnd {
    pipe: Arc<Pipe>,
    _held: Arc<Mutex<Writer>>,
}

impl StdoutEnd {
    /// Attach a program's output to `pipe`, keeping `held` (a writer made when the program
    /// was started, before anyone could read) until the program's run ends.
    pub fn new(pipe: Arc<Pipe>, held: Writer) -> Self {
        StdoutEnd { pipe, _held: Arc::new(Mutex::new(held)) }
    }
}

impl IsTerminal for StdoutEnd {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StdoutEnd {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.pipe.writer())
    }
}
