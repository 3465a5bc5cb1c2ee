//! A stage's root filesystem as kiln sees it: a tree of entries with full Unix metadata,
//! whose file contents live elsewhere (the build context, kiln's scratch directory, inline).
//!
//! Why a tree and not a directory on disk: kiln runs without privileges, so it could not give
//! files on disk the owners, modes and device numbers an image needs, and following a
//! symlink on disk could reach the host. Here every path is resolved inside the tree with
//! chroot semantics — absolute symlinks start at the stage's root, `..` stops at it — so no
//! operation can ever name a host path. The tree also records which paths changed since the
//! last snapshot, so a layer costs what changed, not the size of the filesystem.
//!
//! This module never reads or writes the host filesystem except through [`Content::open`]
//! and [`Content::sha256`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

/// How many symlinks one lookup may follow (Linux's limit).
const MAX_SYMLINK_HOPS: usize = 40;

pub use crate::limits::PATH_MAX;

/// Ownership, permissions and time of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission and special bits (`0o7777`), without the file-type bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

impl Meta {
    /// A root-owned entry with `mode`.
    pub fn root(mode: u32, mtime: i64) -> Self {
        Meta { mode, uid: 0, gid: 0, mtime }
    }
}

/// Where a regular file's bytes are.
#[derive(Clone)]
pub enum Content {
    /// Held in memory (heredocs, small generated files).
    Bytes(Arc<[u8]>),
    /// A file kiln wrote into its own scratch directory.
    Scratch(PathBuf),
    /// A file of the build context, read once per build into a snapshot.
    Context(Arc<crate::snapshot::ContextFile>),
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Content::Scratch(p) => write!(f, "Scratch({})", p.display()),
            Content::Context(file) => write!(f, "Context({})", file.path().display()),
        }
    }
}

impl Content {
    /// Open the bytes for reading.
    pub fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Content::Bytes(bytes) => Box::new(&bytes[..]),
            Content::Scratch(path) => Box::new(std::fs::File::open(path)?),
            Content::Context(file) => Box::new(file.open()?),
        })
    }

    /// The sha256 of the bytes: a context file's is known from its snapshot, without
    /// reading it again; other contents are read.
    pub fn sha256(&self) -> io::Result<[u8; 32]> {
        use sha2::Digest;
        match self {
            Content::Context(file) => Ok(file.snapshot()?.sha256()),
            Content::Bytes(bytes) => Ok(sha2::Sha256::digest(bytes).into()),
            Content::Scratch(path) => {
                let mut hasher = sha2::Sha256::new();
                io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
                Ok(hasher.finalize().into())
            }
        }
    }
}

/// A regular file's data; shared between the names of a hardlinked file.
#[derive(Debug)]
pub struct FileData {
    /// Where the bytes are.
    pub content: Content,
    /// How many bytes, when the file was recorded. A scratch file a RUN step writes to can
    /// change after that: [`FileData::len`] is the current size.
    pub size: u64,
}

impl FileData {
    /// The current size: a scratch file is asked (a sandboxed program may have written to
    /// it through an open stream); other contents never change.
    pub fn len(&self) -> u64 {
        match &self.content {
            Content::Scratch(path) => std::fs::metadata(path).map_or(self.size, |m| m.len()),
            _ => self.size,
        }
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an entry is.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A directory and its entries, by name.
    Dir(BTreeMap<String, Node>),
    /// A regular file.
    File(Arc<FileData>),
    /// A symbolic link and its target, as written.
    Symlink(String),
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

/// One entry of the tree.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its metadata.
    pub meta: Meta,
    /// What it is.
    pub kind: Kind,
}

impl Node {
    /// An empty directory.
    pub fn dir(meta: Meta) -> Self {
        Node { meta, kind: Kind::Dir(BTreeMap::new()) }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }

    fn children(&self) -> Option<&BTreeMap<String, Node>> {
        match &self.kind {
            Kind::Dir(c) => Some(c),
            _ => None,
        }
    }

    fn children_mut(&mut self) -> Option<&mut BTreeMap<String, Node>> {
        match &mut self.kind {
            Kind::Dir(c) => Some(c),
            _ => None,
        }
    }
}

/// A path inside the tree, as components (never empty strings, `.` or `..`).
pub type Components = Vec<String>;

/// Join components into `a/b/c` (the root is "").
pub fn join(components: &[String]) -> String {
    components.join("/")
}

/// Why a path operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing at the path.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// A component that must be a directory is not.
    #[error("{0}: not a directory")]
    NotADirectory(String),
    /// Symlinks loop.
    #[error("{0}: too many levels of symbolic links")]
    Loop(String),
    /// An entry would have an absolute path longer than [`PATH_MAX`] allows.
    #[error("{path}: the path would be {len} bytes long, more than the {} Linux accepts", PATH_MAX - 1)]
    TooLong {
        /// The path, shortened for showing.
        path: String,
        /// Its length in bytes, with the leading `/`.
        len: usize,
    },
    /// A symlink points outside a tree that must stay closed (the build context).
    #[error("{path}: symlink {link} points outside the build context ({target})")]
    Escapes {
        /// The path being resolved.
        path: String,
        /// The symlink.
        link: String,
        /// Its target.
        target: String,
    },
}

/// What changed in a tree since the last [`Tree::take_changes`].
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// Paths added or modified (each stands for that entry only, not its subtree).
    pub changed: BTreeSet<String>,
    /// Paths removed (become whiteouts).
    pub removed: BTreeSet<String>,
}

impl Changes {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

/// A stage's filesystem.
#[derive(Debug, Clone)]
pub struct Tree {
    root: Node,
    changes: Changes,
    /// Paths created since the last snapshot (not in any lower layer): removing one needs
    /// no whiteout.
    added: BTreeSet<String>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

/// Split a path into components lexically (`.` dropped, `..` kept for resolution).
fn raw_components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Clean a path lexically inside a root: `..` never climbs above it.
pub fn clean(path: &str) -> Components {
    let mut out: Components = Vec::new();
    for c in raw_components(path) {
        if c == ".." {
            out.pop();
        } else {
            out.push(c.to_string());
        }
    }
    out
}

impl Tree {
    /// An empty filesystem: just `/`, root-owned, mode 0755.
    pub fn new() -> Self {
        Tree { root: Node::dir(Meta::root(0o755, 0)), changes: Changes::default(), added: BTreeSet::new() }
    }

    /// The root directory.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// The entry at exactly these components, following no symlinks.
    pub fn get(&self, path: &[String]) -> Option<&Node> {
        path.iter().try_fold(&self.root, |node, name| node.children()?.get(name))
    }

    fn get_mut(&mut self, path: &[String]) -> Option<&mut Node> {
        path.iter().try_fold(&mut self.root, |node, name| node.children_mut()?.get_mut(name))
    }

    /// Resolve `path` (absolute, or relative to `cwd`) to canonical components with chroot
    /// semantics. Symlinks in intermediate components are always followed; the last one only
    /// when `follow_last`. The result need not exist, but its parent does.
    pub fn resolve(&self, cwd: &[String], path: &str, follow_last: bool) -> Result<Components, PathError> {
        self.resolve_with(cwd, path, follow_last, false)
    }

    /// Like [`Tree::resolve`], but when `contained`, following a symlink that is absolute or
    /// climbs above the root is an error instead of being clamped to the root. The build
    /// context is resolved this way: such a link points at the host, and Docker refuses it.
    pub fn resolve_with(
        &self,
        cwd: &[String],
        path: &str,
        follow_last: bool,
        contained: bool,
    ) -> Result<Components, PathError> {
        self.resolve_inner(cwd, path, follow_last, contained, false)
    }

    /// Resolve a destination that may not exist yet: symlinks are followed as far as the
    /// path exists, and the missing rest is appended as written (`..` still stops at the
    /// root). This is where `COPY` and `WORKDIR` will create things.
    pub fn resolve_dest(&self, cwd: &[String], path: &str) -> Result<Components, PathError> {
        self.resolve_inner(cwd, path, true, false, true)
    }

    /// Like [`Tree::resolve_dest`], choosing whether a final symlink is followed.
    pub fn resolve_dest_with(&self, cwd: &[String], path: &str, follow_last: bool) -> Result<Components, PathError> {
        self.resolve_inner(cwd, path, follow_last, false, true)
    }

    fn resolve_inner(
        &self,
        cwd: &[String],
        path: &str,
        follow_last: bool,
        contained: bool,
        missing_ok: bool,
    ) -> Result<Components, PathError> {
        let mut stack: Components = if path.starts_with('/') { Vec::new() } else { cwd.to_vec() };
        // The nodes along `stack` as far as they exist: `nodes[i]` is the entry at
        // `stack[..i]`, so the parent of the next component is `nodes[stack.len()]` when
        // that exists. Keeping them makes a lookup linear in the path's length instead of
        // walking from the root for every component (a hostile layer nests thousands deep).
        let mut nodes: Vec<&Node> = vec![&self.root];
        for name in &stack {
            match nodes.last().and_then(|n| n.children()).and_then(|c| c.get(name)) {
                Some(child) => nodes.push(child),
                None => break,
            }
        }
        let mut pending: Vec<String> = raw_components(path).rev().map(str::to_string).collect();
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                stack.pop();
                nodes.truncate(stack.len() + 1);
                continue;
            }
            let parent = if nodes.len() == stack.len() + 1 { nodes.last().copied() } else { None };
            let Some(parent) = parent else {
                if missing_ok {
                    stack.push(name);
                    continue;
                }
                return Err(PathError::NotFound(format!("/{}", join(&stack))));
            };
            let Some(children) = parent.children() else {
                return Err(PathError::NotADirectory(format!("/{}", join(&stack))));
            };
            let is_last = pending.is_empty();
            match children.get(&name) {
                Some(Node { kind: Kind::Symlink(target), .. }) if !is_last || follow_last => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(PathError::Loop(path.to_string()));
                    }
                    if contained && escapes(stack.len(), target) {
                        let mut link = stack.clone();
                        link.push(name);
                        return Err(PathError::Escapes {
                            path: path.to_string(),
                            link: format!("/{}", join(&link)),
                            target: target.clone(),
                        });
                    }
                    if target.starts_with('/') {
                        stack.clear();
                        nodes.truncate(1);
                    }
                    pending.extend(raw_components(target).rev().map(str::to_string));
                }
                Some(child) => {
                    stack.push(name);
                    nodes.push(child);
                }
                None if is_last || missing_ok => stack.push(name),
                None => {
                    stack.push(name);
                    return Err(PathError::NotFound(format!("/{}", join(&stack))));
                }
            }
        }
        Ok(stack)
    }

    /// Look up `path`, following symlinks (all of them when `follow_last`).
    pub fn lookup(&self, cwd: &[String], path: &str, follow_last: bool) -> Result<(Components, &Node), PathError> {
        let resolved = self.resolve(cwd, path, follow_last)?;
        match self.get(&resolved) {
            Some(node) => Ok((resolved, node)),
            None => Err(PathError::NotFound(path.to_string())),
        }
    }

    /// Create `path` and its missing parents as directories with `meta`, following symlinks
    /// on the way. Returns the canonical path of the directory.
    pub fn mkdir_all(&mut self, cwd: &[String], path: &str, meta: Meta) -> Result<Components, PathError> {
        // `done` is always the canonical path of an existing directory, so `..` is lexical
        // on it. One component at a time, so symlinked parents are followed and what is
        // missing is created; without cloning `done` per component, as a hostile layer can
        // nest a path two thousand directories deep.
        let mut done: Components = Vec::new();
        let start: &[String] = if path.starts_with('/') { &[] } else { cwd };
        for name in start.iter().map(String::as_str).chain(raw_components(path)) {
            if name == ".." {
                done.pop();
                continue;
            }
            done.push(name.to_string());
            match self.get(&done) {
                Some(node) if node.is_dir() => continue,
                Some(Node { kind: Kind::Symlink(_), .. }) => {
                    done.pop();
                    let resolved = self.resolve(&done, name, true)?;
                    match self.get(&resolved) {
                        Some(node) if node.is_dir() => {}
                        Some(_) => return Err(PathError::NotADirectory(format!("/{}", join(&resolved)))),
                        None => self.insert(&resolved, Node::dir(meta))?,
                    }
                    done = resolved;
                }
                Some(_) => return Err(PathError::NotADirectory(format!("/{}", join(&done)))),
                None => self.insert(&done, Node::dir(meta))?,
            }
        }
        Ok(done)
    }

    /// Put `node` at canonical `path` (whose parent must be a directory), replacing what was
    /// there. A directory replacing a directory keeps the old entries underneath.
    pub fn insert(&mut self, path: &[String], node: Node) -> Result<(), PathError> {
        let Some((name, parent_path)) = path.split_last() else {
            // Replacing the root: keep its children, take the metadata.
            self.root.meta = node.meta;
            self.changes.changed.insert(String::new());
            return Ok(());
        };
        let key = join(path);
        let len = 1 + key.len() + longest_below(&node);
        if len >= PATH_MAX {
            return Err(PathError::TooLong { path: shorten(&format!("/{key}")), len });
        }
        let parent = self.get_mut(parent_path).ok_or_else(|| PathError::NotFound(format!("/{}", join(parent_path))))?;
        let children =
            parent.children_mut().ok_or_else(|| PathError::NotADirectory(format!("/{}", join(parent_path))))?;
        let mut replaced_dir = false;
        match children.get_mut(name) {
            Some(existing) if existing.is_dir() && node.is_dir() => {
                existing.meta = node.meta;
                if let (Kind::Dir(old), Kind::Dir(new)) = (&mut existing.kind, node.kind) {
                    old.extend(new);
                }
            }
            Some(existing) => {
                replaced_dir = existing.is_dir();
                *existing = node;
            }
            None => {
                children.insert(name.clone(), node);
                // Only a path that was not there before and is not hiding a removal is new.
                if !self.changes.removed.contains(&key) {
                    self.added.insert(key.clone());
                }
            }
        }
        if replaced_dir {
            // A directory replaced by something else: its old contents must be hidden.
            self.changes.removed.insert(key.clone());
        }
        self.changes.changed.insert(key);
        Ok(())
    }

    /// Remove the entry at canonical `path` (and everything under it).
    pub fn remove(&mut self, path: &[String]) -> Option<Node> {
        let (name, parent_path) = path.split_last()?;
        let removed = self.get_mut(parent_path)?.children_mut()?.remove(name)?;
        let key = join(path);
        let prefix = format!("{key}/");
        self.changes.changed.remove(&key);
        remove_under(&mut self.changes.changed, &prefix);
        let was_added = self.added.remove(&key);
        remove_under(&mut self.added, &prefix);
        // Something created since the last snapshot and removed again leaves no trace.
        if !was_added {
            self.changes.removed.insert(key);
        }
        Some(removed)
    }

    /// Set the metadata of an existing entry.
    pub fn set_meta(&mut self, path: &[String], meta: Meta) -> Result<(), PathError> {
        let node = self.get_mut(path).ok_or_else(|| PathError::NotFound(format!("/{}", join(path))))?;
        node.meta = meta;
        self.changes.changed.insert(join(path));
        Ok(())
    }

    /// What changed since the last [`Tree::take_changes`], left in place.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// What changed since the last call, and start recording afresh.
    pub fn take_changes(&mut self) -> Changes {
        self.added.clear();
        std::mem::take(&mut self.changes)
    }

    /// Forget recorded changes (after loading a base image, say).
    pub fn forget_changes(&mut self) {
        self.changes = Changes::default();
        self.added.clear();
    }

    /// Every entry under `path` (inclusive), depth first in name order, with its path.
    pub fn walk<'a>(&'a self, path: &[String], visit: &mut dyn FnMut(&[String], &'a Node)) {
        fn go<'a>(node: &'a Node, path: &mut Vec<String>, visit: &mut dyn FnMut(&[String], &'a Node)) {
            visit(path, node);
            if let Some(children) = node.children() {
                for (name, child) in children {
                    path.push(name.clone());
                    go(child, path, visit);
                    path.pop();
                }
            }
        }
        if let Some(node) = self.get(path) {
            go(node, &mut path.to_vec(), visit);
        }
    }

    /// Read a small file (like `/etc/passwd`) in full, following symlinks.
    pub fn read_file(&self, path: &str, limit: u64) -> Option<Vec<u8>> {
        let (_, node) = self.lookup(&[], path, true).ok()?;
        let Kind::File(data) = &node.kind else { return None };
        let mut out = Vec::new();
        data.content.open().ok()?.take(limit).read_to_end(&mut out).ok()?;
        Some(out)
    }
}

/// Whether a symlink target, read in a directory `depth` levels below the root, is absolute
/// or climbs above the root.
fn escapes(depth: usize, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut level = depth as isize;
    for c in raw_components(target) {
        level += if c == ".." { -1 } else { 1 };
        if level < 0 {
            return true;
        }
    }
    false
}

/// The length in bytes of the longest path below `node`, as `/a/b` relative to it (0 for
/// anything but a non-empty directory). Iterative: `node` may come from outside (a
/// directory moved into place), and the check must not itself recurse as deep as it is.
fn longest_below(node: &Node) -> usize {
    // Files, links and new empty directories (nearly every insert) have nothing below.
    if node.children().is_none_or(BTreeMap::is_empty) {
        return 0;
    }
    let mut longest = 0;
    let mut pending: Vec<(&Node, usize)> = vec![(node, 0)];
    while let Some((node, len)) = pending.pop() {
        longest = longest.max(len);
        if let Some(children) = node.children() {
            pending.extend(children.iter().map(|(name, child)| (child, len + 1 + name.len())));
        }
    }
    longest
}

/// `path` shortened for an error message: its start and end around an ellipsis.
pub fn shorten(path: &str) -> String {
    let chars: Vec<char> = path.chars().collect();
    if chars.len() <= 120 {
        return path.to_string();
    }
    let head: String = chars[..60].iter().collect();
    let tail: String = chars[chars.len() - 40..].iter().collect();
    format!("{head}...{tail}")
}

/// Drop every path that starts with `prefix` from a sorted set. Such paths sit together in
/// the set's order, so this costs what it removes, not the size of the set: a layer with tens
/// of thousands of whiteouts must not rescan every recorded change for each of them.
fn remove_under(set: &mut BTreeSet<String>, prefix: &str) {
    let under: Vec<String> = set
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(|p| p.starts_with(prefix))
        .cloned()
        .collect();
    for p in under {
        set.remove(&p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Node {
        let bytes: Arc<[u8]> = Arc::from(text.as_bytes());
        Node {
            meta: Meta::root(0o644, 0),
            kind: Kind::File(Arc::new(FileData { size: bytes.len() as u64, content: Content::Bytes(bytes) })),
        }
    }

    fn link(target: &str) -> Node {
        Node { meta: Meta::root(0o777, 0), kind: Kind::Symlink(target.into()) }
    }

    fn c(path: &str) -> Components {
        clean(path)
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let mut t = Tree::new();
        t.mkdir_all(&[], "/usr/local/bin", Meta::root(0o755, 0)).unwrap();
        t.insert(&c("usr/local/bin/python3"), file("py")).unwrap();
        t.mkdir_all(&[], "/usr/bin", Meta::root(0o755, 0)).unwrap();
        t.insert(&c("usr/bin/python"), link("/usr/local/bin/python3")).unwrap();
        t.insert(&c("escape"), link("../../../../usr/bin/python")).unwrap();
        t.insert(&c("etc"), link("/")).unwrap();
        assert_eq!(t.resolve(&[], "/usr/bin/python", true).unwrap(), c("usr/local/bin/python3"));
        assert_eq!(t.resolve(&[], "/usr/bin/python", false).unwrap(), c("usr/bin/python"));
        assert_eq!(t.resolve(&[], "/escape", true).unwrap(), c("usr/local/bin/python3"));
        assert_eq!(t.resolve(&[], "/../../etc/etc/usr", true).unwrap(), c("usr"));
        assert_eq!(t.resolve(&c("usr"), "local/../bin", true).unwrap(), c("usr/bin"));
        assert_eq!(t.read_file("/escape", 10).unwrap(), b"py");
        assert!(matches!(t.resolve_with(&[], "/escape", true, true), Err(PathError::Escapes { .. })));
        assert!(matches!(t.resolve_with(&[], "/usr/bin/python", true, true), Err(PathError::Escapes { .. })));
        assert!(t.resolve_with(&[], "/usr/bin/python", false, true).is_ok());
    }

    #[test]
    fn loops_and_non_directories_fail() {
        let mut t = Tree::new();
        t.insert(&c("a"), link("b")).unwrap();
        t.insert(&c("b"), link("a")).unwrap();
        t.insert(&c("f"), file("x")).unwrap();
        assert!(matches!(t.resolve(&[], "/a", true), Err(PathError::Loop(_))));
        assert!(matches!(t.resolve(&[], "/f/x", true), Err(PathError::NotADirectory(_))));
        assert!(matches!(t.mkdir_all(&[], "/f/x", Meta::root(0o755, 0)), Err(PathError::NotADirectory(_))));
    }

    #[test]
    fn mkdir_all_follows_symlinked_parents() {
        let mut t = Tree::new();
        t.mkdir_all(&[], "/real", Meta::root(0o755, 0)).unwrap();
        t.insert(&c("alias"), link("/real")).unwrap();
        assert_eq!(t.mkdir_all(&[], "/alias/sub/dir", Meta::root(0o700, 0)).unwrap(), c("real/sub/dir"));
        assert_eq!(t.get(&c("real/sub")).unwrap().meta.mode, 0o700);
    }

    #[test]
    fn no_entry_is_deeper_than_linux_can_name() {
        let mut t = Tree::new();
        // 2,047 levels of `a/` is 4,094 bytes with the leading slash: the most there can be.
        let deepest = t.mkdir_all(&[], &"/a".repeat(2047), Meta::root(0o755, 0)).unwrap();
        assert_eq!(deepest.len(), 2047);
        let err = t.mkdir_all(&[], &"/a".repeat(2048), Meta::root(0o755, 0)).unwrap_err();
        assert!(matches!(err, PathError::TooLong { len: 4096, .. }), "{err}");
        assert!(err.to_string().contains("more than the 4095 Linux accepts"), "{err}");
        assert!(err.to_string().len() < 300, "the path is shortened: {err}");
        // Moving a deep directory under another one is checked for its whole subtree.
        let moved = t.remove(&c("a")).unwrap();
        t.mkdir_all(&[], "/b", Meta::root(0o755, 0)).unwrap();
        assert!(matches!(t.insert(&c("b/a"), moved.clone()), Err(PathError::TooLong { .. })));
        t.insert(&c("a"), moved).unwrap();
        // A relative path starts at the working directory, which need not exist yet.
        assert_eq!(t.mkdir_all(&c("w/x"), "y/../z", Meta::root(0o755, 0)).unwrap(), c("w/x/z"));
        assert!(t.get(&c("w/x/y")).is_some_and(Node::is_dir));
    }

    #[test]
    fn changes_are_recorded() {
        let mut t = Tree::new();
        t.mkdir_all(&[], "/d", Meta::root(0o755, 0)).unwrap();
        t.insert(&c("d/f"), file("x")).unwrap();
        t.forget_changes();
        t.insert(&c("d/g"), file("y")).unwrap();
        t.remove(&c("d/f"));
        let changes = t.take_changes();
        assert_eq!(changes.changed.into_iter().collect::<Vec<_>>(), vec!["d/g"]);
        assert_eq!(changes.removed.into_iter().collect::<Vec<_>>(), vec!["d/f"]);
        assert!(t.take_changes().is_empty());
        // Created and removed within one step: no layer entry at all.
        t.insert(&c("d/tmp"), file("t")).unwrap();
        t.mkdir_all(&[], "/d/tmpdir/x", Meta::root(0o755, 0)).unwrap();
        t.remove(&c("d/tmp"));
        t.remove(&c("d/tmpdir"));
        assert!(t.take_changes().is_empty());
    }
}
