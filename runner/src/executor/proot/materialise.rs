//! A stage's tree written out as a directory for proot to run in, and a note of what each
//! entry looked like on disk afterwards, so the snapshot after the step reads only what
//! changed.
//!
//! Everything is created fresh inside a directory of kiln's own scratch area, parents before
//! children, and nothing already on disk is followed: a symlink of the tree is written as a
//! symlink and never traversed, so no tree can make kiln write outside that directory.
//! Contents are copied, never hard-linked to where kiln keeps them (a step may write to a
//! file in place; that must not reach an earlier layer or the build context). Owners are
//! kept only when kiln runs as root; otherwise every file is the user's, and proot `-0`
//! shows the user's files as root's. Device nodes cannot be made without privilege: `/dev`
//! is the host's, bound by proot, and device nodes elsewhere in the tree are left out (and
//! left alone in the tree).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::rootfs::{Content, FileData, Kind, Node, Tree};

/// Paths proot binds from the host: never written out, never snapshotted.
pub(super) const HOST_DIRS: [&str; 3] = ["dev", "proc", "sys"];

/// Files the host provides for the length of a step, as Docker does, and which never reach
/// a layer: what the tree had there stays.
pub(super) const HOST_FILES: [&str; 2] = ["etc/resolv.conf", "etc/hosts"];

/// What an entry looked like on disk right after it was written: a change to its contents,
/// mode, owner, links or (for a directory) its entries changes its ctime, which no program
/// can set.
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

/// The entries written out, by path (`usr/bin/env`), as they were before the step.
#[derive(Debug, Default)]
pub(super) struct Index {
    pub(super) stamps: HashMap<String, Stamp>,
    /// Bytes of file contents written.
    pub(super) bytes: u64,
}

/// Why the tree could not be written out.
#[derive(Debug)]
pub(super) struct Failed {
    /// The entry, as the step sees it (`/usr/bin/env`).
    pub(super) path: String,
    pub(super) error: io::Error,
}

/// Write `tree` into the empty directory `root`, with the host's name-resolution files.
pub(super) fn materialise(tree: &Tree, root: &Path) -> Result<Index, Failed> {
    let mut writer = Writer { root, links: HashMap::new(), index: Index::default(), as_root: is_root() };
    let mut path = Vec::new();
    writer.children(tree.root(), &mut path)?;
    host_files(tree, root)?;
    // Stamps last: writing a child changes its directory, linking a file changes its inode.
    let mut stamps = HashMap::with_capacity(writer.index.stamps.len());
    for key in writer.index.stamps.keys() {
        let meta = std::fs::symlink_metadata(root.join(key)).map_err(|error| failed(key, error))?;
        stamps.insert(key.clone(), Stamp::of(&meta));
    }
    writer.index.stamps = stamps;
    Ok(writer.index)
}

fn failed(key: &str, error: io::Error) -> Failed {
    Failed { path: format!("/{key}"), error }
}

/// Whether kiln runs as root (and so can give files their owners).
pub(super) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

struct Writer<'a> {
    root: &'a Path,
    /// The first name written of each file shared by several names (hardlinks).
    links: HashMap<*const FileData, PathBuf>,
    index: Index,
    as_root: bool,
}

impl Writer<'_> {
    fn children(&mut self, dir: &Node, path: &mut Vec<String>) -> Result<(), Failed> {
        let Kind::Dir(children) = &dir.kind else { return Ok(()) };
        for (name, node) in children {
            path.push(name.clone());
            self.entry(node, path)?;
            path.pop();
        }
        Ok(())
    }

    fn entry(&mut self, node: &Node, path: &mut Vec<String>) -> Result<(), Failed> {
        let key = path.join("/");
        let host = self.root.join(&key);
        let fail = |error| failed(&key, error);
        match &node.kind {
            Kind::Dir(_) => {
                std::fs::create_dir(&host).map_err(fail)?;
                if !(path.len() == 1 && HOST_DIRS.contains(&path[0].as_str())) {
                    self.children(node, path)?;
                }
                // After the entries: a directory without write permission is still filled.
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(node.meta.mode)).map_err(fail)?;
            }
            Kind::File(data) => {
                let identity = Arc::as_ptr(data);
                if let Some(first) = self.links.get(&identity) {
                    std::fs::hard_link(first, &host).map_err(fail)?;
                    let stamp = Stamp::of(&std::fs::symlink_metadata(&host).map_err(fail)?);
                    self.index.stamps.insert(key.clone(), stamp);
                    return Ok(());
                }
                self.index.bytes += write_file(data, &host).map_err(fail)?;
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(node.meta.mode)).map_err(fail)?;
                if Arc::strong_count(data) > 1 {
                    self.links.insert(identity, host.clone());
                }
            }
            Kind::Symlink(target) => std::os::unix::fs::symlink(target, &host).map_err(fail)?,
            Kind::Fifo => {
                use rustix::fs::{CWD, FileType, Mode, mknodat};
                mknodat(CWD, &host, FileType::Fifo, Mode::from_raw_mode(node.meta.mode), 0)
                    .map_err(|e| fail(e.into()))?;
            }
            // Not possible without privilege, and not needed: /dev is the host's.
            Kind::CharDevice { .. } | Kind::BlockDevice { .. } => return Ok(()),
        }
        set_mtime(&host, node.meta.mtime).map_err(fail)?;
        if self.as_root {
            std::os::unix::fs::lchown(&host, Some(node.meta.uid), Some(node.meta.gid)).map_err(fail)?;
        }
        let stamp = Stamp::of(&std::fs::symlink_metadata(&host).map_err(fail)?);
        self.index.stamps.insert(key.clone(), stamp);
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

/// Remove a step's directory, whatever modes the step left on it.
pub(super) fn remove(dir: &Path) {
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
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!("cannot remove {}: {e}", dir.display());
    }
}
