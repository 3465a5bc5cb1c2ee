//! A stage's tree as a directory on disk for proot to run in, kept in step with the tree
//! from one step to the next: the first step writes every entry, a later one only the
//! entries whose tree node is not the one last written there (a COPY between two RUN steps,
//! another stage's files). Each entry also keeps what it looked like on disk afterwards, so
//! the snapshot after a step reads only what the step changed.
//!
//! Everything is created inside a directory of kiln's own scratch area, parents before
//! children, and nothing on disk is followed: a symlink of the tree is written as a symlink
//! and never traversed, entries are replaced by removing them first, so no tree (and no
//! earlier step) can make kiln write outside that directory. Contents are copied, never
//! hard-linked to where kiln keeps them (a step may write to a file in place; that must not
//! reach an earlier layer, another stage or the build context). Owners are kept only when
//! kiln runs as root; otherwise every file is the user's, and proot `-0` shows the user's
//! files as root's. Device nodes cannot be made without privilege: `/dev` is the host's,
//! bound by proot, and device nodes elsewhere in the tree are left out (and left alone in
//! the tree).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::rootfs::{Content, FileData, Kind, Meta, Node, Tree};

/// Paths proot binds from the host: never written out, never snapshotted.
pub(super) const HOST_DIRS: [&str; 3] = ["dev", "proc", "sys"];

/// Files the host provides for the length of a step, as Docker does, and which never reach
/// a layer: what the tree had there stays.
pub(super) const HOST_FILES: [&str; 2] = ["etc/resolv.conf", "etc/hosts"];

/// What an entry looked like on disk when kiln last wrote or read it: a change to its
/// contents, mode, owner, links or (for a directory) its entries changes its ctime, which
/// no program can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    ino: u64,
    ctime: i64,
    ctime_nsec: i64,
    mode: u32,
}

impl Stamp {
    pub(super) fn of(meta: &std::fs::Metadata) -> Self {
        Stamp { ino: meta.ino(), ctime: meta.ctime(), ctime_nsec: meta.ctime_nsec(), mode: meta.mode() }
    }
}

/// Which tree node an entry on disk was written from (or read into): the same node needs no
/// writing. A file is known by its data's identity, which the mark keeps alive.
#[derive(Debug, Clone)]
pub(super) enum Mark {
    Dir(Meta),
    File(Meta, Arc<FileData>),
    Symlink(Meta, String),
    Fifo(Meta),
}

impl Mark {
    /// The mark of `node`; `None` for what is never written out (device nodes).
    pub(super) fn of(node: &Node) -> Option<Mark> {
        Some(match &node.kind {
            Kind::Dir(_) => Mark::Dir(node.meta),
            Kind::File(data) => Mark::File(node.meta, data.clone()),
            Kind::Symlink(target) => Mark::Symlink(node.meta, target.clone()),
            Kind::Fifo => Mark::Fifo(node.meta),
            Kind::CharDevice { .. } | Kind::BlockDevice { .. } => return None,
        })
    }
}

impl PartialEq for Mark {
    fn eq(&self, other: &Mark) -> bool {
        match (self, other) {
            (Mark::Dir(a), Mark::Dir(b)) | (Mark::Fifo(a), Mark::Fifo(b)) => a == b,
            (Mark::File(a, x), Mark::File(b, y)) => a == b && Arc::ptr_eq(x, y),
            (Mark::Symlink(a, x), Mark::Symlink(b, y)) => a == b && x == y,
            _ => false,
        }
    }
}

/// One entry on disk: what it looked like, and which node it holds.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) stamp: Stamp,
    pub(super) mark: Mark,
}

/// Why the tree could not be written out.
#[derive(Debug)]
pub(super) struct Failed {
    /// The entry, as the step sees it (`/usr/bin/env`).
    pub(super) path: String,
    pub(super) error: io::Error,
}

fn failed(key: &str, error: io::Error) -> Failed {
    Failed { path: format!("/{key}"), error }
}

/// A step's directory: the root filesystem proot runs in (`root/`), proot's own temporary
/// directory (`tmp/`), and what each entry of the root holds.
#[derive(Debug)]
pub(super) struct RootDir {
    dir: PathBuf,
    root: PathBuf,
    tmp: PathBuf,
    /// Every entry written, by path (`usr/bin/env`).
    pub(super) entries: HashMap<String, Entry>,
}

/// What a [`RootDir::sync`] did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Synced {
    /// Entries written.
    pub(super) written: u64,
    /// Bytes of file contents written.
    pub(super) bytes: u64,
}

impl RootDir {
    /// An empty root in `dir`, a new directory of kiln's scratch area.
    pub(super) fn new(dir: PathBuf) -> io::Result<RootDir> {
        let (root, tmp) = (dir.join("root"), dir.join("tmp"));
        std::fs::create_dir(&root)?;
        std::fs::create_dir(&tmp)?;
        Ok(RootDir { dir, root, tmp, entries: HashMap::new() })
    }

    /// Whether this directory is in `scratch` (and still there).
    pub(super) fn is_in(&self, scratch: &Path) -> bool {
        self.dir.starts_with(scratch) && self.root.is_dir()
    }

    /// The root filesystem.
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// proot's own temporary directory.
    pub(super) fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Make the root hold `tree`: write what differs, remove what the tree lacks, then the
    /// host's name-resolution files, then note how every entry looks on disk.
    pub(super) fn sync(&mut self, tree: &Tree) -> Result<Synced, Failed> {
        let links = self
            .entries
            .iter()
            .filter_map(|(key, entry)| match &entry.mark {
                Mark::File(_, data) => Some((Arc::as_ptr(data), self.root.join(key))),
                _ => None,
            })
            .collect();
        let mut writer = Writer {
            root: &self.root,
            entries: &mut self.entries,
            links,
            synced: Synced::default(),
            as_root: is_root(),
        };
        writer.children(tree.root(), &mut Vec::new())?;
        let synced = writer.synced;
        host_files(tree, &self.root)?;
        // Stamps last: writing a child changes its directory, linking a file changes its inode.
        for (key, entry) in self.entries.iter_mut() {
            let meta = std::fs::symlink_metadata(self.root.join(key)).map_err(|error| failed(key, error))?;
            entry.stamp = Stamp::of(&meta);
        }
        Ok(synced)
    }
}

impl Drop for RootDir {
    fn drop(&mut self) {
        remove(&self.dir);
    }
}

/// Whether kiln runs as root (and so can give files their owners).
pub(super) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

struct Writer<'a> {
    root: &'a Path,
    entries: &'a mut HashMap<String, Entry>,
    /// A name on disk of each file's data, so names that share it are hardlinks.
    links: HashMap<*const FileData, PathBuf>,
    synced: Synced,
    as_root: bool,
}

impl Writer<'_> {
    /// Bring the entries of the directory `dir` at `path` in step; returns whether any
    /// entry was written or removed (the directory's own time then needs setting again).
    fn children(&mut self, dir: &Node, path: &mut Vec<String>) -> Result<bool, Failed> {
        let Kind::Dir(children) = &dir.kind else { return Ok(false) };
        let key = path.join("/");
        let host = self.root.join(&key);
        let mut touched = false;
        // What is on disk here and not in the tree goes.
        for entry in std::fs::read_dir(&host).map_err(|e| failed(&key, e))? {
            let name = entry.map_err(|e| failed(&key, e))?.file_name();
            let known = name.to_str().is_some_and(|n| children.contains_key(n));
            if !known {
                // A name the tree cannot hold (not UTF-8) was never noted: only the disk has it.
                let gone = if key.is_empty() {
                    name.to_string_lossy()
                } else {
                    format!("{key}/{}", name.to_string_lossy()).into()
                };
                self.remove_at(&host.join(&name), &gone)?;
                touched = true;
            }
        }
        for (name, node) in children {
            path.push(name.clone());
            touched |= self.entry(node, path)?;
            path.pop();
        }
        Ok(touched)
    }

    /// Bring one entry in step; returns whether it was written.
    fn entry(&mut self, node: &Node, path: &mut Vec<String>) -> Result<bool, Failed> {
        let key = path.join("/");
        let Some(mark) = Mark::of(node) else { return Ok(false) };
        let is_host_dir = path.len() == 1 && HOST_DIRS.contains(&path[0].as_str());
        let on_disk = self.entries.get(&key).map(|e| e.mark.clone());
        match (&on_disk, &mark) {
            (Some(old), new) if old == new => {
                if node.is_dir() && !is_host_dir && self.children(node, path)? {
                    self.finish(node, &key, mark)?;
                }
                return Ok(false);
            }
            (Some(Mark::Dir(_)), Mark::Dir(_)) => {
                // The same directory with other metadata: its entries are compared one by one.
                if !is_host_dir {
                    self.children(node, path)?;
                }
                self.finish(node, &key, mark)?;
                return Ok(true);
            }
            (Some(_), _) => self.remove_entry(&key)?,
            (None, _) => {
                if std::fs::symlink_metadata(self.root.join(&key)).is_ok() {
                    // Left by the host-file step of an earlier sync, or by a failed write.
                    self.remove_entry(&key)?;
                }
            }
        }
        self.create(node, &key)?;
        if node.is_dir() && !is_host_dir {
            self.children(node, path)?;
        }
        self.finish(node, &key, mark)?;
        Ok(true)
    }

    /// Create `node` at `key` (nothing is there).
    fn create(&mut self, node: &Node, key: &str) -> Result<(), Failed> {
        let host = self.root.join(key);
        let fail = |error| failed(key, error);
        self.synced.written += 1;
        match &node.kind {
            Kind::Dir(_) => std::fs::create_dir(&host).map_err(fail)?,
            Kind::File(data) => {
                let identity = Arc::as_ptr(data);
                let linked = self.links.get(&identity).is_some_and(|first| std::fs::hard_link(first, &host).is_ok());
                if !linked {
                    self.synced.bytes += write_file(data, &host).map_err(fail)?;
                    self.links.insert(identity, host.clone());
                }
            }
            Kind::Symlink(target) => std::os::unix::fs::symlink(target, &host).map_err(fail)?,
            Kind::Fifo => {
                use rustix::fs::{CWD, FileType, Mode, mknodat};
                mknodat(CWD, &host, FileType::Fifo, Mode::from_raw_mode(node.meta.mode), 0)
                    .map_err(|e| fail(e.into()))?;
            }
            Kind::CharDevice { .. } | Kind::BlockDevice { .. } => {}
        }
        Ok(())
    }

    /// Give the entry at `key` its mode, time and (as root) owner, and note what it holds.
    /// A directory gets them after its entries: one without write permission is still filled.
    fn finish(&mut self, node: &Node, key: &str, mark: Mark) -> Result<(), Failed> {
        let host = self.root.join(key);
        let fail = |error| failed(key, error);
        if !matches!(node.kind, Kind::Symlink(_)) {
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(node.meta.mode)).map_err(fail)?;
        }
        set_mtime(&host, node.meta.mtime).map_err(fail)?;
        if self.as_root {
            std::os::unix::fs::lchown(&host, Some(node.meta.uid), Some(node.meta.gid)).map_err(fail)?;
        }
        let stamp = Stamp::of(&std::fs::symlink_metadata(&host).map_err(fail)?);
        self.entries.insert(key.to_string(), Entry { stamp, mark });
        Ok(())
    }

    /// Remove what is on disk at `key`, and every entry noted under it.
    fn remove_entry(&mut self, key: &str) -> Result<(), Failed> {
        self.remove_at(&self.root.join(key), key)
    }

    /// Remove `host`, the entry at `key`, and every entry noted under it.
    fn remove_at(&mut self, host: &Path, key: &str) -> Result<(), Failed> {
        match std::fs::symlink_metadata(host) {
            Ok(meta) if meta.is_dir() => remove_tree(host).map_err(|e| failed(key, e))?,
            Ok(_) => std::fs::remove_file(host).map_err(|e| failed(key, e))?,
            Err(_) => {}
        }
        let below = format!("{key}/");
        self.entries.retain(|k, _| k != key && !k.starts_with(&below));
        Ok(())
    }
}

/// Copy a file's bytes to `host` (a new file); returns the size. A scratch file is copied
/// with the kernel's copy (a reflink where the filesystem has them).
fn write_file(data: &FileData, host: &Path) -> io::Result<u64> {
    match &data.content {
        Content::Scratch(path) => std::fs::copy(path, host),
        Content::Bytes(bytes) => {
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(host)?;
            io::Write::write_all(&mut file, bytes)?;
            Ok(bytes.len() as u64)
        }
        Content::Context(_) => {
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(host)?;
            io::copy(&mut data.content.open()?, &mut file)
        }
    }
}

/// Set the modification time of `host`, not following a symlink.
fn set_mtime(host: &Path, mtime: i64) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_OMIT, utimensat};
    let times = Timestamps {
        last_access: Timespec { tv_sec: 0, tv_nsec: UTIME_OMIT },
        last_modification: Timespec { tv_sec: mtime, tv_nsec: 0 },
    };
    utimensat(CWD, host, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)
}

/// The host's `/etc/resolv.conf` (so names resolve as on the host) and a `/etc/hosts` for
/// localhost, written where the tree has a real `/etc`, replacing what was there on disk
/// only: the tree keeps its own, and the snapshot skips both.
fn host_files(tree: &Tree, root: &Path) -> Result<(), Failed> {
    let etc = vec!["etc".to_string()];
    if !tree.get(&etc).is_some_and(Node::is_dir) {
        return Ok(());
    }
    const LIMIT: u64 = 64 << 10;
    let resolv = std::fs::File::open("/etc/resolv.conf")
        .and_then(|f| {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut io::Read::take(f, LIMIT), &mut bytes).map(|_| bytes)
        })
        .unwrap_or_default();
    let hosts = b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_vec();
    for (key, bytes) in [(HOST_FILES[0], resolv), (HOST_FILES[1], hosts)] {
        let host = root.join(key);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => std::fs::remove_file(&host).map_err(|e| failed(key, e))?,
            Err(_) => {}
        }
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).open(&host).map_err(|e| failed(key, e))?;
        io::Write::write_all(&mut file, &bytes).map_err(|e| failed(key, e))?;
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o644)).map_err(|e| failed(key, e))?;
    }
    Ok(())
}

/// Remove a directory and everything under it, whatever modes a step left on it (kiln owns
/// every entry, or is root).
fn remove_tree(dir: &Path) -> io::Result<()> {
    fn open_up(dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let path = entry.path();
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700));
                open_up(&path);
            }
        }
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    open_up(dir);
    std::fs::remove_dir_all(dir)
}

/// Remove a step's directory, saying so if that fails (it is in the build's scratch area,
/// which goes with the build).
pub(super) fn remove(dir: &Path) {
    match remove_tree(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => tracing::warn!("cannot remove {}: {e}", dir.display()),
        _ => {}
    }
}
