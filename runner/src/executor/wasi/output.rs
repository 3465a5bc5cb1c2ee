//! Where a RUN step's programs write: the step's captured log, and files their output is
//! sent to (`cmd > file`).
//!
//! The log keeps the first bytes a step prints (for error messages and the build's output)
//! and counts the rest against the step's output budget: a program printing without end is
//! stopped at the budget with an error naming the setting, rather than filling memory or
//! running forever. Output sent to a file streams into kiln's scratch directory as it is
//! written, counted against the step's layer limit before each write, so its size is
//! bounded by that limit and the disk, not by memory.
//!
//! This module never decides what a limit means to the user; it only reports that the
//! budget ran out ([`Budget::exceeded`]).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::fs::{RootFs, full_disk};
use super::layer_budget::Full;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// How many bytes all programs of a step may print, and how many they did.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    written: AtomicU64,
    exceeded: AtomicBool,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Budget { limit, written: AtomicU64::new(0), exceeded: AtomicBool::new(false) })
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether some program tried to print past the budget.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::SeqCst)
    }

    /// Count `n` more bytes; false (and the budget marked exceeded) when they do not fit.
    fn spend(&self, n: u64) -> bool {
        let before = self.written.fetch_add(n, Ordering::SeqCst);
        if before.saturating_add(n) > self.limit {
            self.exceeded.store(true, Ordering::SeqCst);
            return false;
        }
        true
    }
}

/// The step's log: stdout and stderr of every program that inherits them, interleaved.
#[derive(Debug, Clone)]
pub struct Log {
    kept: Arc<Mutex<Vec<u8>>>,
    keep: usize,
    budget: Arc<Budget>,
}

impl Log {
    /// A log keeping the first `keep` bytes, counting everything against `budget`.
    pub fn new(keep: usize, budget: Arc<Budget>) -> Self {
        Log { kept: Arc::new(Mutex::new(Vec::new())), keep, budget }
    }

    /// What was kept.
    pub fn contents(&self) -> Vec<u8> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether more was printed than kept.
    pub fn clipped(&self) -> bool {
        self.budget.written.load(Ordering::SeqCst) > self.keep as u64
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Log {
    async fn ready(&mut self) {}
}

impl OutputStream for Log {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if !self.budget.spend(bytes.len() as u64) {
            // A trap, not an error result: the step ends here, whatever the program does
            // with a failed write.
            return Err(StreamError::Trap(wasmtime::Error::msg("the step's output budget is spent")));
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.keep.saturating_sub(kept.len());
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl IsTerminal for Log {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Log {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// A program's output sent to a file: written into a scratch file as it comes, put into the
/// tree when the program ends.
#[derive(Clone)]
pub struct FileOutput {
    file: Arc<Mutex<std::fs::File>>,
    path: PathBuf,
    /// Bytes written so far, counted before they are written.
    written: Arc<AtomicU64>,
    /// Where it goes in the tree, for a refused write.
    shown: Arc<str>,
    /// The step's filesystem, whose budget counts the bytes.
    root: Arc<Mutex<RootFs>>,
}

impl FileOutput {
    /// Write into a new file at `path` (in the step's scratch directory), bound for `shown`
    /// in the step's filesystem `root`.
    pub(crate) fn create(path: PathBuf, shown: &str, root: &Arc<Mutex<RootFs>>) -> std::io::Result<Self> {
        let file = std::fs::File::create(&path)?;
        root.lock().unwrap_or_else(|e| e.into_inner()).budget.output_started(&path);
        Ok(FileOutput {
            file: Arc::new(Mutex::new(file)),
            path,
            written: Arc::new(AtomicU64::new(0)),
            shown: Arc::from(shown),
            root: root.clone(),
        })
    }

    /// The scratch file and its size now.
    pub fn finish(&self) -> std::io::Result<(PathBuf, u64)> {
        let file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        Ok((self.path.clone(), file.metadata()?.len()))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for FileOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for FileOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let n = bytes.len() as u64;
        // Reserved first, so that writers of one output never count the same bytes twice.
        let end = self.written.fetch_add(n, Ordering::SeqCst).saturating_add(n);
        self.root
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .grow(&self.path, end, &self.shown)
            .map_err(|Full| StreamError::LastOperationFailed(full_disk().into()))?;
        // A full disk is the program's error to see, as it would be on Linux.
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl IsTerminal for FileOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for FileOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_its_head_and_the_budget_stops_the_rest() {
        let budget = Budget::new(10);
        let mut log = Log::new(4, budget.clone());
        log.write(Bytes::from_static(b"hello")).unwrap();
        assert_eq!(log.contents(), b"hell");
        assert!(log.clipped());
        log.write(Bytes::from_static(b"world")).unwrap();
        assert!(!budget.exceeded());
        assert!(matches!(log.write(Bytes::from_static(b"!")), Err(StreamError::Trap(_))));
        assert!(budget.exceeded());
    }
}
