//! Reading an OCI image layout directory that kiln does not own (`oci-layout://DIR`): its
//! `oci-layout` marker, its `index.json` and its blobs.
//!
//! A layout is input, and may be hostile: a blob can be a symbolic link to any file of the
//! host, a FIFO that never ends, a device, a directory; a document can be gigabytes. So every
//! file is opened through a capability on the layout directory (cap-std: no path leaves it),
//! a symbolic link is never followed, anything but a regular file is an error naming the file
//! (a FIFO is opened without waiting, so it cannot hang), documents are read no further than
//! their kind's bound ([`Document`]), and every blob read whole is checked against its digest.
//!
//! This module only reads. Streaming a layer blob (and checking it while it streams) is for
//! its callers: [`LayoutDir::open_blob`] hands out the open file and its size.

use std::io;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use oci_spec::image::ImageIndex;

use crate::limits::human_size;
use crate::store::{self, Digest, Document};

/// Errors reading a layout, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The directory has no `oci-layout` or no `index.json`.
    #[error("{} is not an OCI image layout (it needs oci-layout and index.json)", .dir.display())]
    NotLayout {
        /// The directory.
        dir: PathBuf,
    },
    /// A file of the layout is not a regular file.
    #[error(
        "{} is {kind}: kiln reads only regular files in an image layout (put the file itself there)",
        .path.display()
    )]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead (`a symbolic link`, `a FIFO`, ...).
        kind: &'static str,
    },
    /// Opening or reading a file failed.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A document is larger than kiln reads.
    #[error("{} is larger than {}, the most kiln reads of {}", .path.display(), human_size(.kind.limit()), .kind.plural())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What it holds, which decides its bound.
        kind: Document,
    },
    /// A document does not parse.
    #[error("{} is not valid: {detail}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A blob's content does not match its name.
    #[error("blob {expected} in {} has digest {actual}", .dir.display())]
    DigestMismatch {
        /// The layout directory.
        dir: PathBuf,
        /// The digest the blob is named by.
        expected: Digest,
        /// The digest of its content.
        actual: Digest,
    },
}

/// An OCI image layout directory, open for reading.
#[derive(Debug)]
pub struct LayoutDir {
    dir: Dir,
    path: PathBuf,
}

impl LayoutDir {
    /// Open the layout at `path` (the path itself is the user's and may be a symbolic link;
    /// nothing inside it is followed out of it).
    ///
    /// # Errors
    /// The directory cannot be opened, or lacks `oci-layout` or `index.json`.
    pub fn open(path: &Path) -> Result<Self, LayoutError> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority()).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
                LayoutError::NotLayout { dir: path.to_path_buf() }
            }
            _ => LayoutError::Io { path: path.to_path_buf(), source },
        })?;
        let layout = LayoutDir { dir, path: path.to_path_buf() };
        for marker in ["oci-layout", "index.json"] {
            if layout.dir.symlink_metadata(marker).is_err() {
                return Err(LayoutError::NotLayout { dir: layout.path.clone() });
            }
        }
        Ok(layout)
    }

    /// The directory, as the user named it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read and parse `index.json` (at most [`Document::Manifest`]'s bound).
    ///
    /// # Errors
    /// It is not a regular file, too large, unreadable or not an image index.
    pub fn index(&self) -> Result<ImageIndex, LayoutError> {
        let bytes = self.read_document("index.json", Document::Manifest)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| LayoutError::Corrupt { path: self.path.join("index.json"), detail: e.to_string() })
    }

    /// Read a whole JSON blob (a manifest, index or config, as `kind` says: no further than
    /// its bound) and check it against its digest.
    ///
    /// # Errors
    /// The blob is missing, not a regular file, too large, unreadable, or not what its
    /// digest says.
    pub fn read_blob(&self, digest: &Digest, kind: Document) -> Result<Vec<u8>, LayoutError> {
        let bytes = self.read_document(&blob_name(digest), kind)?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(LayoutError::DigestMismatch { dir: self.path.clone(), expected: digest.clone(), actual });
        }
        Ok(bytes)
    }

    /// Open a blob for streaming, with its size on disk. The caller checks its content.
    ///
    /// # Errors
    /// The blob is missing, not a regular file, or cannot be opened.
    pub fn open_blob(&self, digest: &Digest) -> Result<(std::fs::File, u64), LayoutError> {
        let name = blob_name(digest);
        let file = self.open_file(&name)?;
        let size = file.metadata().map_err(|source| LayoutError::Io { path: self.path.join(&name), source })?.len();
        Ok((file, size))
    }

    /// How messages name a blob of this layout.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.path.join(blob_name(digest))
    }

    fn read_document(&self, name: &str, kind: Document) -> Result<Vec<u8>, LayoutError> {
        let path = self.path.join(name);
        let mut file = self.open_file(name)?;
        store::read_bounded(&mut file, kind.limit())
            .map_err(|source| LayoutError::Io { path: path.clone(), source })?
            .ok_or(LayoutError::TooLarge { path, kind })
    }

    /// Open `name` (relative to the layout) if it is a regular file. Three checks, each for
    /// a case the others miss: the entry itself is looked at without following it (a
    /// symlink is named as one); the open neither follows a symlink put there since
    /// (`O_NOFOLLOW`) nor waits on a FIFO (`O_NONBLOCK`); and the file opened is checked to
    /// be a regular file (`fstat`), which is what is read.
    fn open_file(&self, name: &str) -> Result<std::fs::File, LayoutError> {
        let path = self.path.join(name);
        let io_error = |source: io::Error| LayoutError::Io { path: path.clone(), source };
        let meta = self.dir.symlink_metadata(name).map_err(io_error)?;
        if meta.file_type().is_symlink() {
            return Err(LayoutError::NotRegular { path, kind: "a symbolic link" });
        }
        let file = self
            .dir
            .open_with(name, OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK))
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => LayoutError::NotRegular { path: path.clone(), kind: "a symbolic link" },
                _ => io_error(e),
            })?
            .into_std();
        let file_type = file.metadata().map_err(io_error)?.file_type();
        if !file_type.is_file() {
            return Err(LayoutError::NotRegular { path, kind: store::file_kind(file_type) });
        }
        Ok(file)
    }
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(dir.path().join("index.json"), br#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
        dir
    }

    #[test]
    fn blobs_are_read_checked_and_bounded() {
        let dir = layout();
        let bytes = b"{}".to_vec();
        let digest = Digest::of(&bytes);
        std::fs::write(dir.path().join("blobs/sha256").join(digest.hex()), &bytes).unwrap();
        let l = LayoutDir::open(dir.path()).unwrap();
        assert_eq!(l.index().unwrap().manifests().len(), 0);
        assert_eq!(l.read_blob(&digest, Document::Config).unwrap(), bytes);
        let other = Digest::of(b"other");
        std::fs::write(dir.path().join("blobs/sha256").join(other.hex()), b"not other").unwrap();
        assert!(matches!(l.read_blob(&other, Document::Config), Err(LayoutError::DigestMismatch { .. })));
        let big = vec![b' '; crate::limits::MAX_DOCUMENT_SIZE as usize + 1];
        std::fs::write(dir.path().join("index.json"), &big).unwrap();
        let err = l.index().unwrap_err().to_string();
        assert!(
            err.ends_with("index.json is larger than 4 MiB, the most kiln reads of image manifests and indexes"),
            "{err}"
        );
    }

    #[test]
    fn links_fifos_and_directories_are_refused_without_waiting() {
        let dir = layout();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"host secret").unwrap();
        let blobs = dir.path().join("blobs/sha256");
        let linked = Digest::of(b"host secret");
        std::os::unix::fs::symlink(&secret, blobs.join(linked.hex())).unwrap();
        let fifo = Digest::of(b"fifo");
        let status = std::process::Command::new("mkfifo").arg(blobs.join(fifo.hex())).status().unwrap();
        assert!(status.success());
        let subdir = Digest::of(b"dir");
        std::fs::create_dir(blobs.join(subdir.hex())).unwrap();
        let l = LayoutDir::open(dir.path()).unwrap();
        for (digest, kind) in [(&linked, "a symbolic link"), (&fifo, "a FIFO"), (&subdir, "a directory")] {
            let err = l.read_blob(digest, Document::Manifest).unwrap_err();
            assert!(matches!(err, LayoutError::NotRegular { kind: k, .. } if k == kind), "{err}");
            assert!(err.to_string().contains(digest.hex()), "{err}");
            assert!(l.open_blob(digest).is_err());
        }
        // The index itself, linked to a file outside.
        std::fs::remove_file(dir.path().join("index.json")).unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("index.json")).unwrap();
        assert!(matches!(l.index(), Err(LayoutError::NotRegular { .. })));
        // A blobs directory linked out of the layout is not followed out of it either.
        std::fs::remove_dir_all(dir.path().join("blobs")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("blobs")).unwrap();
        std::fs::create_dir(outside.path().join("sha256")).unwrap();
        std::fs::write(outside.path().join("sha256").join(linked.hex()), b"host secret").unwrap();
        assert!(l.read_blob(&linked, Document::Manifest).is_err(), "a blob reached through a link out of the layout");
    }
}
