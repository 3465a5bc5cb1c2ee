//! What a step did to the directory it ran in, recorded in the stage's tree: entries that are
//! new or whose ctime moved are read; entries the tree had and the directory lost are
//! removed; everything else is left as the tree had it, unread. The tree records these as
//! its changes, so the step's layer holds them and nothing else (with whiteouts for what
//! was removed, and hardlinks where names share an inode).
//!
//! The step has ended when this runs, but what it left on disk is not to be trusted:
//! nothing is followed (every entry is looked at with `lstat`, a file is opened with
//! `O_NOFOLLOW`), and file contents are copied into kiln's scratch area (the directory stays
//! for the stage's next step, which may write to it in place). What is recorded is noted in
//! the [`RootDir`] too, so the next step's sync knows the directory already holds it.
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

use super::materialise::{Entry, HOST_DIRS, HOST_FILES, Mark, RootDir, Stamp, is_root};
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

/// Record in `tree` what the step changed in `dir`; returns the bytes of new contents.
pub(super) fn snapshot(tree: &mut Tree, dir: &mut RootDir, rules: &Rules, scratch: &Scratch) -> Result<u64, Failed> {
    let root = dir.root().to_path_buf();
    let mut reader = Reader {
        root: &root,
        entries: &mut dir.entries,
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
    entries: &'a mut HashMap<String, Entry>,
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
            let gone = path.join("/");
            if !is_skipped(path) && self.entries.contains_key(&gone) {
                tree.remove(path);
                let below = format!("{gone}/");
                self.entries.retain(|k, _| *k != gone && !k.starts_with(&below));
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
        let stamp = Stamp::of(&meta);
        let unchanged = self.entries.get(&key).map(|e| e.stamp) == Some(stamp);
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
                self.entries.insert(key.clone(), Entry { stamp, mark: Mark::Dir(meta) });
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
        if let Some(mark) = Mark::of(&node) {
            // What replaced a directory leaves no entries under it.
            let below = format!("{key}/");
            self.entries.retain(|k, _| !k.starts_with(&below));
            self.entries.insert(key.clone(), Entry { stamp, mark });
        }
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

    /// Keep a copy of a regular file's contents in the scratch area (the kernel's copy: a
    /// reflink where the filesystem has them); a name of an inode already kept shares it.
    fn file(&mut self, host: &Path, disk: &std::fs::Metadata) -> io::Result<Arc<FileData>> {
        let inode = (disk.dev(), disk.ino());
        if disk.nlink() > 1
            && let Some(data) = self.inodes.get(&inode)
        {
            return Ok(data.clone());
        }
        let kept = self.scratch.new_path();
        let from = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(host)?;
        let mut to = std::fs::OpenOptions::new().write(true).create_new(true).open(&kept)?;
        io::copy(&mut &from, &mut to)?;
        self.bytes += disk.len();
        let data = Arc::new(FileData { content: Content::Scratch(kept), size: disk.len() });
        if disk.nlink() > 1 {
            self.inodes.insert(inode, data.clone());
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn path(p: &str) -> Vec<String> {
        crate::rootfs::clean(p)
    }

    fn file(text: &str, mode: u32, owner: u32) -> Node {
        let bytes: Arc<[u8]> = text.as_bytes().into();
        Node {
            meta: Meta { mode, uid: owner, gid: owner, mtime: 5 },
            kind: Kind::File(Arc::new(FileData { size: bytes.len() as u64, content: Content::Bytes(bytes) })),
        }
    }

    /// A small stage: /etc/passwd, /srv/app (owned by 7), a hardlinked pair, a symlink.
    fn stage() -> Tree {
        let mut tree = Tree::new();
        for dir in ["/etc", "/srv", "/usr/bin"] {
            tree.mkdir_all(&[], dir, Meta::root(0o755, 5)).unwrap();
        }
        tree.insert(&path("/etc/passwd"), file("root:x:0:0::/root:/bin/sh\n", 0o644, 0)).unwrap();
        tree.insert(&path("/srv/app"), file("v1\n", 0o640, 7)).unwrap();
        let tool = file("#!/bin/sh\n", 0o755, 0);
        tree.insert(&path("/usr/bin/a"), tool.clone()).unwrap();
        tree.insert(&path("/usr/bin/b"), tool).unwrap();
        let link = Node { meta: Meta::root(0o777, 5), kind: Kind::Symlink("a".into()) };
        tree.insert(&path("/usr/bin/c"), link).unwrap();
        tree.forget_changes();
        tree
    }

    /// A step directory in a scratch area of its own (fields drop in order: the directory,
    /// then the scratch area, then the temporary directory holding both).
    struct Fixture {
        step: RootDir,
        root: std::path::PathBuf,
        scratch: Scratch,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(dir.path());
        let step = RootDir::new(scratch.new_dir().unwrap()).unwrap();
        let root = step.root().to_path_buf();
        Fixture { step, root, scratch, _dir: dir }
    }

    fn rules() -> Rules {
        Rules { owner: (0, 0), epoch: 100 }
    }

    #[test]
    fn a_tree_written_out_and_read_back_untouched_has_no_changes() {
        let mut f = fixture();
        let mut tree = stage();
        f.step.sync(&tree).unwrap();
        assert_eq!(std::fs::read_to_string(f.root.join("srv/app")).unwrap(), "v1\n");
        let a = std::fs::metadata(f.root.join("usr/bin/a")).unwrap();
        assert_eq!(a.nlink(), 2, "names that share a file are hardlinks on disk");
        assert_eq!(a.permissions().mode() & 0o7777, 0o755);
        assert_eq!(std::fs::read_link(f.root.join("usr/bin/c")).unwrap().to_str(), Some("a"));
        let bytes = snapshot(&mut tree, &mut f.step, &rules(), &f.scratch).unwrap();
        assert_eq!(bytes, 0);
        assert!(tree.changes().is_empty(), "{:?}", tree.changes());
    }

    #[test]
    fn what_a_step_changes_on_disk_is_exactly_what_the_tree_records() {
        let mut f = fixture();
        let mut tree = stage();
        f.step.sync(&tree).unwrap();
        // What a step might do: edit a file in place, remove one, add a file with a hardlink,
        // change a mode, replace a symlink by a directory.
        std::fs::write(f.root.join("srv/app"), "v2, longer\n").unwrap();
        std::fs::remove_file(f.root.join("etc/passwd")).unwrap();
        std::fs::write(f.root.join("srv/new"), "new\n").unwrap();
        std::fs::hard_link(f.root.join("srv/new"), f.root.join("srv/same")).unwrap();
        std::fs::set_permissions(f.root.join("usr/bin/b"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::remove_file(f.root.join("usr/bin/c")).unwrap();
        std::fs::create_dir(f.root.join("usr/bin/c")).unwrap();
        let bytes = snapshot(&mut tree, &mut f.step, &rules(), &f.scratch).unwrap();
        assert_eq!(bytes, "v2, longer\n".len() as u64 + "new\n".len() as u64 + "#!/bin/sh\n".len() as u64);

        let changes = tree.changes().clone();
        let changed: Vec<&str> = changes.changed.iter().map(String::as_str).collect();
        // The edited file, the new names, the mode change (both names of that inode), the
        // replaced symlink, and the directories whose entries changed.
        assert_eq!(
            changed,
            ["etc", "srv", "srv/app", "srv/new", "srv/same", "usr/bin", "usr/bin/a", "usr/bin/b", "usr/bin/c"]
        );
        // A symlink replaced by a directory needs no whiteout: the directory's entry replaces it.
        assert_eq!(changes.removed.iter().map(String::as_str).collect::<Vec<_>>(), ["etc/passwd"]);
        assert_eq!(tree.read_file("/srv/app", 100).unwrap(), b"v2, longer\n");
        let app = tree.get(&path("/srv/app")).unwrap();
        assert_eq!((app.meta.uid, app.meta.gid, app.meta.mode), (7, 7, 0o640), "an edited file keeps its owner");
        assert!(app.meta.mtime <= 100, "times are clamped to the epoch");
        let (Kind::File(new), Kind::File(same)) =
            (&tree.get(&path("/srv/new")).unwrap().kind, &tree.get(&path("/srv/same")).unwrap().kind)
        else {
            panic!("files expected")
        };
        assert!(Arc::ptr_eq(new, same), "a hardlink made by the step stays one");
        assert_eq!(tree.get(&path("/usr/bin/b")).unwrap().meta.mode, 0o700);
        assert!(tree.get(&path("/usr/bin/c")).unwrap().is_dir());
    }

    #[test]
    fn the_host_directories_and_name_resolution_files_are_never_read_back() {
        let mut f = fixture();
        let mut tree = stage();
        tree.mkdir_all(&[], "/proc", Meta::root(0o555, 5)).unwrap();
        tree.forget_changes();
        f.step.sync(&tree).unwrap();
        assert!(f.root.join("etc/hosts").is_file(), "the step gets a hosts file");
        std::fs::write(f.root.join("etc/hosts"), "10.0.0.1 elsewhere\n").unwrap();
        std::fs::set_permissions(f.root.join("proc"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(f.root.join("proc/1"), "a process").unwrap();
        snapshot(&mut tree, &mut f.step, &rules(), &f.scratch).unwrap();
        let changed: Vec<&str> = tree.changes().changed.iter().map(String::as_str).collect();
        assert!(!changed.iter().any(|c| c.starts_with("proc") || c.starts_with("etc/hosts")), "{changed:?}");
        assert!(tree.get(&path("/etc/hosts")).is_none(), "the tree had no hosts file, and has none");
    }

    #[test]
    fn the_next_step_writes_only_what_differs_from_the_last_one() {
        let mut f = fixture();
        let mut tree = stage();
        let first = f.step.sync(&tree).unwrap();
        assert_eq!(first.written, 9, "every entry the first time");
        // The step edits a file; the snapshot records it.
        std::fs::write(f.root.join("srv/app"), "v2\n").unwrap();
        snapshot(&mut tree, &mut f.step, &rules(), &f.scratch).unwrap();
        tree.forget_changes();
        // Then a COPY adds a file and replaces another; a stage's tree is synced again.
        tree.insert(&path("/srv/copied"), file("copied\n", 0o600, 0)).unwrap();
        tree.insert(&path("/etc/passwd"), file("root:x:0:0::/root:/bin/bash\n", 0o644, 0)).unwrap();
        tree.remove(&path("/usr/bin/c"));
        let next = f.step.sync(&tree).unwrap();
        assert_eq!(next.written, 2, "only the copied file and the replaced one are written");
        assert_eq!(std::fs::read_to_string(f.root.join("srv/app")).unwrap(), "v2\n", "the step's edit stays");
        assert_eq!(std::fs::read_to_string(f.root.join("etc/passwd")).unwrap(), "root:x:0:0::/root:/bin/bash\n");
        assert!(std::fs::symlink_metadata(f.root.join("usr/bin/c")).is_err(), "what the tree lost goes");
        tree.forget_changes();
        snapshot(&mut tree, &mut f.step, &rules(), &f.scratch).unwrap();
        assert!(tree.changes().is_empty(), "nothing changed since: {:?}", tree.changes());

        // Another stage's tree in the same directory: it is made to match.
        let mut other = Tree::new();
        other.mkdir_all(&[], "/opt", Meta::root(0o755, 5)).unwrap();
        other.insert(&path("/opt/tool"), file("tool\n", 0o755, 0)).unwrap();
        other.forget_changes();
        f.step.sync(&other).unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(&f.root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["opt"]);
        snapshot(&mut other, &mut f.step, &rules(), &f.scratch).unwrap();
        assert!(other.changes().is_empty(), "{:?}", other.changes());
    }
}
