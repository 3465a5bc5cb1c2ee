//! What a step did to the directory it ran in, recorded in the stage's tree: entries that are
//! new or whose ctime moved are read; entries the tree had and the directory lost are
//! removed; everything else is left as the tree had it, unread. The tree records these as
//! its changes, so the step's layer holds them and nothing else (with whiteouts for what
//! was removed, and hardlinks where names share an inode).
//!
//! The step has ended when this runs, but what it left on disk is not to be trusted:
//! nothing is followed (every entry is looked at with `lstat`, a file is opened with
//! `O_NOFOLLOW`), and file contents are moved (or copied) into kiln's scratch area before
//! the directory goes.
//!
//! Owners: without root, every file on disk is the user's, so an entry that was in the tree
//! keeps the tree's owner and a new one gets the step's (`USER`, root by default); `chown`
//! inside the step is faked by proot and lost. As root, the owners on disk are real and
//! kept, except that a file root made in a step of another `USER` is that user's.
//! Modification times are clamped to the step's epoch (SOURCE_DATE_EPOCH, or 0), as every
//! layer kiln writes is.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use super::materialise::{HOST_DIRS, HOST_FILES, Index, Stamp, is_root};
use crate::rootfs::{Content, FileData, Kind, Meta, Node, Tree};
use crate::scratch::Scratch;

/// Why a step's changes could not be recorded.
#[derive(Debug)]
pub(super) enum Failed {
    /// An entry could not be read, or its contents not kept.
    Io {
        /// The entry, as the step sees it.
        path: String,
        error: io::Error,
    },
    /// A name the tree cannot hold (not UTF-8), or a path too long.
    Name {
        /// The entry, as the step sees it.
        path: String,
        detail: String,
    },
    /// The files the step wrote come to more than a layer may hold.
    TooLarge {
        /// The file that went past the limit.
        path: String,
    },
}

/// How the step ran, for the owners and times of what it made.
pub(super) struct Rules {
    /// Owner of what the step creates (its `USER`).
    pub(super) owner: (u32, u32),
    /// The latest modification time an entry may have.
    pub(super) epoch: i64,
}

/// Record in `tree` what the step changed under `root`; returns the bytes of new contents.
pub(super) fn snapshot(
    tree: &mut Tree,
    root: &Path,
    index: &Index,
    rules: &Rules,
    scratch: &Scratch,
) -> Result<u64, Failed> {
    let mut reader = Reader {
        root,
        index,
        rules,
        scratch,
        as_root: is_root(),
        user: (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw()),
        inodes: HashMap::new(),
        bytes: 0,
    };
    reader.dir(tree, &mut Vec::new())?;
    Ok(reader.bytes)
}

struct Reader<'a> {
    root: &'a Path,
    index: &'a Index,
    rules: &'a Rules,
    scratch: &'a Scratch,
    as_root: bool,
    user: (u32, u32),
    /// Files recorded so far by inode: a second name is a hardlink.
    inodes: HashMap<(u64, u64), Arc<FileData>>,
    bytes: u64,
}

fn is_skipped(path: &[String]) -> bool {
    let key = path.join("/");
    (path.len() == 1 && HOST_DIRS.contains(&path[0].as_str())) || HOST_FILES.contains(&key.as_str())
}

impl Reader<'_> {
    /// Compare the directory at `path` (known to be one on disk and in the tree) entry by
    /// entry.
    fn dir(&mut self, tree: &mut Tree, path: &mut Vec<String>) -> Result<(), Failed> {
        let key = path.join("/");
        let host = self.root.join(&key);
        let io_failed = |error| Failed::Io { path: format!("/{key}"), error };
        let mut on_disk = Vec::new();
        for entry in std::fs::read_dir(&host).map_err(io_failed)? {
            let name = entry.map_err(io_failed)?.file_name();
            let name = name.into_string().map_err(|name| Failed::Name {
                path: format!("/{key}/{}", name.to_string_lossy()),
                detail: "its name is not UTF-8, which an image layer made by kiln cannot hold".into(),
            })?;
            on_disk.push(name);
        }
        on_disk.sort();
        // What the tree had here and the step removed.
        let had: Vec<String> = match tree.get(path).map(|n| &n.kind) {
            Some(Kind::Dir(children)) => children.keys().cloned().collect(),
            _ => Vec::new(),
        };
        for name in had {
            if on_disk.binary_search(&name).is_ok() {
                continue;
            }
            path.push(name);
            if !is_skipped(path) && self.index.stamps.contains_key(&path.join("/")) {
                tree.remove(path);
            }
            path.pop();
        }
        for name in on_disk {
            path.push(name);
            if !is_skipped(path) {
                self.entry(tree, path)?;
            }
            path.pop();
        }
        Ok(())
    }

    fn entry(&mut self, tree: &mut Tree, path: &mut Vec<String>) -> Result<(), Failed> {
        let key = path.join("/");
        let host = self.root.join(&key);
        let io_failed = |error| Failed::Io { path: format!("/{key}"), error };
        let meta = std::fs::symlink_metadata(&host).map_err(io_failed)?;
        let unchanged = self.index.stamps.get(&key) == Some(&Stamp::of(&meta));
        let before = tree.get(path).map(|n| (n.meta, n.is_dir()));
        let kind = meta.file_type();
        if kind.is_dir() {
            if !unchanged {
                let meta = self.meta(&meta, before.map(|(m, _)| m));
                let recorded = match before {
                    Some((_, true)) => tree.set_meta(path, meta),
                    _ => tree.insert(path, Node::dir(meta)),
                };
                recorded.map_err(|e| Failed::Name { path: format!("/{key}"), detail: e.to_string() })?;
            }
            return self.dir(tree, path);
        }
        if unchanged {
            return Ok(());
        }
        let node_kind = if kind.is_file() {
            Kind::File(self.file(&host, &meta).map_err(io_failed)?)
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&host).map_err(io_failed)?;
            let target = target.into_os_string().into_string().map_err(|_| Failed::Name {
                path: format!("/{key}"),
                detail: "its symlink target is not UTF-8, which an image layer made by kiln cannot hold".into(),
            })?;
            Kind::Symlink(target)
        } else if kind.is_fifo() {
            Kind::Fifo
        } else {
            // Sockets (a daemon the step started) and device nodes are not files of an image.
            return Ok(());
        };
        let node = Node { meta: self.meta(&meta, before.map(|(m, _)| m)), kind: node_kind };
        tree.insert(path, node).map_err(|e| Failed::Name { path: format!("/{key}"), detail: e.to_string() })?;
        if self.bytes > self.scratch.layer_limit() {
            return Err(Failed::TooLarge { path: format!("/{key}") });
        }
        Ok(())
    }

    /// The metadata an entry gets in the image (see the module documentation for owners).
    fn meta(&self, disk: &std::fs::Metadata, before: Option<Meta>) -> Meta {
        let (uid, gid) = if self.as_root {
            match before {
                None if (disk.uid(), disk.gid()) == self.user => self.rules.owner,
                _ => (disk.uid(), disk.gid()),
            }
        } else {
            before.map_or(self.rules.owner, |m| (m.uid, m.gid))
        };
        Meta { mode: disk.mode() & 0o7777, uid, gid, mtime: disk.mtime().min(self.rules.epoch) }
    }

    /// Keep a regular file's contents in the scratch area: moved there when the directory
    /// lets it go, copied otherwise; a name of an inode already kept shares it.
    fn file(&mut self, host: &Path, disk: &std::fs::Metadata) -> io::Result<Arc<FileData>> {
        let inode = (disk.dev(), disk.ino());
        if disk.nlink() > 1
            && let Some(data) = self.inodes.get(&inode)
        {
            return Ok(data.clone());
        }
        let kept = self.scratch.new_path();
        if std::fs::rename(host, &kept).is_err() {
            let mut from = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(host)?;
            let mut to = std::fs::OpenOptions::new().write(true).create_new(true).open(&kept)?;
            io::copy(&mut from, &mut to)?;
        }
        self.bytes += disk.len();
        let data = Arc::new(FileData { content: Content::Scratch(kept), size: disk.len() });
        if disk.nlink() > 1 {
            self.inodes.insert(inode, data.clone());
        }
        Ok(data)
    }
}
