//! Context files as a build reads them: each through the context's capability, once, into
//! a snapshot whose sha256 is computed while it is copied, so the cache key and the layer of
//! a step come from the same bytes. Small files stay in memory (up to a bound), others are
//! copied into the build's scratch directory.
//!
//! A file that became shorter than it was when the context was walked is an error, and no
//! more than that size is ever read of one that grew.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cap_std::fs::Dir;
use sha2::{Digest as _, Sha256};

/// A context file of at most this many bytes is snapshotted in memory (while
/// [`SNAPSHOT_MEMORY`] allows): creating, writing and removing a scratch file per file cost
/// a context of 10,000 small files seconds of system time.
pub const SMALL_FILE: u64 = 64 << 10;

/// The most memory one context's snapshots may hold, bytes; past it, small files are copied
/// into the scratch directory like large ones.
pub const SNAPSHOT_MEMORY: u64 = 256 << 20;

/// Where a build context's snapshots go: memory for small files, up to a bound, else a
/// directory that lives as long as the build (its scratch directory); and the context they
/// come from, for messages.
#[derive(Debug)]
pub struct Snapshots {
    dir: PathBuf,
    root: PathBuf,
    /// Bytes of snapshots held in memory.
    in_memory: AtomicU64,
}

impl Snapshots {
    /// Snapshots of the context at `root` (for messages), copied into `dir` when they do not
    /// stay in memory.
    pub fn new(root: &Path, dir: &Path) -> Self {
        Snapshots { dir: dir.to_path_buf(), root: root.to_path_buf(), in_memory: AtomicU64::new(0) }
    }
}

/// Numbers snapshot files: unique in the process, so contexts sharing a directory never
/// overwrite each other's.
static NEXT_SNAPSHOT: AtomicU64 = AtomicU64::new(0);

/// A file of the build context, as the build reads it: through the context's capability,
/// once, into a snapshot (see the module's documentation).
pub struct ContextFile {
    dir: Arc<Dir>,
    path: PathBuf,
    /// Its size when the context was walked: the most that is read.
    size: u64,
    snapshots: Arc<Snapshots>,
    /// Taken on first use; held while it is taken, so the file is read once however many
    /// stages want it at the same time.
    snapshot: Mutex<Option<Arc<Snapshot>>>,
}

/// A context file's bytes as the build uses them, and their sha256, computed as they were
/// copied.
#[derive(Debug)]
pub struct Snapshot {
    bytes: Held,
    sha256: [u8; 32],
}

/// Where a snapshot's bytes are.
#[derive(Debug)]
enum Held {
    Memory(Arc<[u8]>),
    /// A file in the build's scratch directory.
    File(PathBuf),
}

impl Snapshot {
    /// The sha256 of the bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Read the bytes from `offset` on.
    ///
    /// # Errors
    ///
    /// The copy in the scratch directory cannot be opened.
    pub fn reader(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        Ok(match &self.bytes {
            Held::Memory(bytes) => {
                let mut cursor = io::Cursor::new(bytes.clone());
                cursor.set_position(offset);
                Box::new(cursor)
            }
            Held::File(path) => {
                let mut file = std::fs::File::open(path)?;
                io::Seek::seek(&mut file, io::SeekFrom::Start(offset))?;
                Box::new(file)
            }
        })
    }
}

impl std::fmt::Debug for ContextFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContextFile({})", self.path.display())
    }
}

impl ContextFile {
    /// The file at `path` in the context `dir` (a capability on its root), `size` bytes when
    /// the context was walked, snapshotted into `snapshots` when first needed.
    pub fn new(dir: Arc<Dir>, path: PathBuf, size: u64, snapshots: Arc<Snapshots>) -> Self {
        ContextFile { dir, path, size, snapshots, snapshot: Mutex::new(None) }
    }

    /// Its path inside the context.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its snapshot, taken now if this is the first time its bytes are needed.
    ///
    /// # Errors
    ///
    /// The file cannot be read, it became shorter than it was when the context was walked,
    /// or the snapshot cannot be written.
    pub fn snapshot(&self) -> io::Result<Arc<Snapshot>> {
        let mut taken = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(snapshot) = &*taken {
            return Ok(snapshot.clone());
        }
        let snapshot = Arc::new(self.take()?);
        *taken = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// Open its bytes (the snapshot's) for reading.
    ///
    /// # Errors
    ///
    /// As [`ContextFile::snapshot`], or the snapshot cannot be opened.
    pub fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        self.snapshot()?.reader(0)
    }

    fn take(&self) -> io::Result<Snapshot> {
        let shown = self.snapshots.root.join(&self.path);
        let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", shown.display()));
        let changed = |n: u64| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: the file was {} bytes when the build started and is {n} bytes now: it changed during the build; build again once nothing writes to it, or leave it out with .dockerignore",
                    shown.display(),
                    self.size
                ),
            )
        };
        let source = self.dir.open(&self.path).map_err(with_path)?.into_std();
        // Never more than the walk saw: a file that keeps growing cannot make the copy endless.
        let mut reader = HashingReader { inner: source.take(self.size), hasher: Sha256::new() };
        let in_memory = &self.snapshots.in_memory;
        let small = self.size <= SMALL_FILE
            && in_memory
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                    held.checked_add(self.size).filter(|total| *total <= SNAPSHOT_MEMORY)
                })
                .is_ok();
        if small {
            let mut bytes = Vec::with_capacity(self.size as usize);
            let read = reader.read_to_end(&mut bytes).map_err(with_path);
            return match read {
                Ok(n) if n as u64 == self.size => {
                    Ok(Snapshot { bytes: Held::Memory(bytes.into()), sha256: reader.hasher.finalize().into() })
                }
                failed => {
                    in_memory.fetch_sub(self.size, Ordering::SeqCst);
                    Err(failed.map_or_else(|e| e, |n| changed(n as u64)))
                }
            };
        }
        let n = NEXT_SNAPSHOT.fetch_add(1, Ordering::Relaxed);
        let path = self.snapshots.dir.join(format!("context-{n}"));
        let mut copy = std::fs::File::create(&path)?;
        let result = match crate::scratch::copy_sparse(&mut reader, &mut copy) {
            Ok(n) if n == self.size => {
                Ok(Snapshot { bytes: Held::File(path.clone()), sha256: reader.hasher.finalize().into() })
            }
            Ok(n) => Err(changed(n)),
            Err(e) => Err(with_path(e)),
        };
        if result.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        result
    }
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
