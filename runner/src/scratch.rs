//! A build's scratch directory: where file contents extracted from layers, the context's
//! snapshots and what RUN steps write live for the length of the build, and the most one
//! layer may put there.
//!
//! Files are numbered, never named after anything in an image or a context, so nothing
//! read can choose a path here.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory where extracted file contents live for the length of a build, and the most
/// one layer may unpack into it.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
    next: AtomicU64,
    layer_limit: u64,
}

impl Scratch {
    /// Use `dir` (which must exist and belong to this build), with the default layer limit.
    pub fn new(dir: &Path) -> Self {
        Scratch::with_layer_limit(dir, crate::limits::DEFAULT_LAYER_SIZE)
    }

    /// Use `dir`; one layer may unpack at most `layer_limit` bytes of file contents.
    pub fn with_layer_limit(dir: &Path, layer_limit: u64) -> Self {
        Scratch { dir: dir.to_path_buf(), next: AtomicU64::new(0), layer_limit }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The most one layer may hold, bytes ([`crate::limits::Limits::layer_size`]).
    pub fn layer_limit(&self) -> u64 {
        self.layer_limit
    }

    /// A new empty directory of its own in the scratch directory.
    ///
    /// # Errors
    /// It cannot be created.
    pub fn new_dir(&self) -> io::Result<PathBuf> {
        let path = self.new_path();
        std::fs::create_dir(&path)?;
        Ok(path)
    }

    /// A path for a new scratch file (nothing is created).
    pub fn new_path(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("f{n}"))
    }

    /// Copy `reader` into a new scratch file; returns its path and size. Runs of zeros
    /// become holes, so a sparse file in a layer stays sparse on disk.
    pub fn store(&self, reader: &mut dyn Read) -> io::Result<(PathBuf, u64)> {
        let path = self.new_path();
        let size = self.store_at(&path, reader)?;
        Ok((path, size))
    }

    /// [`Scratch::store`] into `path`, from [`Scratch::new_path`] (so that its size can be
    /// accounted for before anything is written); returns the size.
    pub fn store_at(&self, path: &Path, reader: &mut dyn Read) -> io::Result<u64> {
        let mut file = std::fs::File::create(path)?;
        copy_sparse(reader, &mut file)
    }
}

/// Copy `reader` to the start of `file`, seeking over blocks of zeros instead of writing
/// them; returns the bytes copied.
pub(crate) fn copy_sparse(reader: &mut dyn Read, file: &mut std::fs::File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    const BLOCK: usize = 64 << 10;
    let mut buf = vec![0u8; BLOCK];
    let mut size = 0u64;
    loop {
        // Fill whole blocks, so the zero test sees aligned, full-size blocks.
        let mut filled = 0;
        while filled < BLOCK {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        if buf[..filled].iter().all(|&b| b == 0) {
            file.seek(SeekFrom::Current(filled as i64))?;
        } else {
            file.write_all(&buf[..filled])?;
        }
        size += filled as u64;
        if filled < BLOCK {
            break;
        }
    }
    // A file ending in a hole gets its length from here.
    file.set_len(size)?;
    Ok(size)
}
