//! The build context: the directory `kiln build` is given, seen as a [`Tree`].
//!
//! The context is opened once as a cap-std directory capability; every later read goes
//! through it, so no path in a Dockerfile, and no symlink in the context, can make kiln read
//! a file outside the context. `.dockerignore` (or `<Dockerfile>.dockerignore` next to the
//! build file, which wins) is applied while walking: ignored files are not in the tree at all.
//!
//! Files keep their permission bits and mtimes; owners are root (uid and gid 0), as Docker
//! gives context files unless `--chown` says otherwise.
//!
//! A file's bytes are read once per build ([`ContextFile`]): the first time anything needs
//! them (a COPY's cache key, a layer, an archive ADD unpacks, a program reading the file),
//! they are copied into the build's scratch directory while they are hashed, and every later
//! use reads that snapshot. So the digest in a cache key is the digest of the bytes in the
//! layer, even when the file changes while the build runs. A file is read up to the size the
//! walk saw (a file still growing is cut there); one that became shorter is an error. Small
//! files are held in memory, up to a bound ([`crate::snapshot`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_std::fs::{Dir, PermissionsExt};

use crate::ignore::Matcher;
use crate::limits::PATH_MAX;
use crate::rootfs::{Content, FileData, Kind, Meta, Node, Tree, shorten};
use crate::snapshot::{ContextFile, Snapshots};

/// A context that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The directory or a file in it could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Which path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The context holds more entries than the build may read.
    #[error("the build context {} holds more than {limit} files, directories and links: {}; or leave what the build does not need out with .dockerignore",
        root.display(), crate::limits::exceeded(crate::limits::Limit::ContextFiles, &limit.to_string()))]
    TooManyFiles {
        /// The context directory.
        root: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A file or directory the build would need cannot be read (permissions).
    #[error("cannot read {path}: {source}; make it readable, or leave it out of the build context with .dockerignore")]
    Unreadable {
        /// Which path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A path in the context is longer than the system lets a program name a file.
    #[error("the build context {} holds a path of {len} bytes, more than the {} Linux accepts: {shown}; leave it out with .dockerignore",
        root.display(), PATH_MAX - 1)]
    PathTooLong {
        /// The context directory.
        root: PathBuf,
        /// The path, shortened for showing.
        shown: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A build file or ignore file of the context is a symlink out of it.
    #[error("{}: the {what} is a symlink that leads outside the build context, and kiln reads nothing outside it; {remedy}", path.display())]
    LinkOutside {
        /// The file.
        path: PathBuf,
        /// `build file`, `ignore file`.
        what: &'static str,
        /// What to do.
        remedy: &'static str,
    },
    /// A build file or ignore file is a directory, FIFO, socket or device.
    #[error("{}: the {what} is not a regular file (it is a {kind}); point kiln at a file", path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
        /// `build file`, `ignore file`.
        what: &'static str,
        /// What it is instead.
        kind: &'static str,
    },
    /// A build file or ignore file is larger than the build file limit.
    #[error("{}: the {what} is larger than {}: {}", path.display(), crate::limits::human_size(*limit),
        crate::limits::exceeded(crate::limits::Limit::BuildFileSize, &crate::limits::human_size(*limit)))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// `build file`, `ignore file`.
        what: &'static str,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A `.dockerignore` line is malformed.
    #[error("{file}:{line}: {detail}")]
    Ignore {
        /// The ignore file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        detail: String,
    },
}

/// The ignore patterns of the context directory `root` (its `.dockerignore`) and the file they
/// come from, without walking it: what a check of paths against the context needs.
///
/// # Errors
/// The directory or its ignore file cannot be read, or a pattern is malformed.
pub fn ignore_patterns(root: &Path, max_file_size: u64) -> Result<(Matcher, Option<PathBuf>), ContextError> {
    let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())
        .map_err(|source| ContextError::Io { path: root.to_path_buf(), source })?;
    ignore_of(&dir, root, None, max_file_size)
}

/// A loaded build context.
pub struct BuildContext {
    /// The directory as given.
    pub root: PathBuf,
    /// Its files (minus ignored ones) as a tree.
    pub tree: Tree,
    /// The ignore patterns that were applied.
    pub ignore: Matcher,
    /// Which ignore file was used, if any.
    pub ignore_file: Option<PathBuf>,
}

impl BuildContext {
    /// Open `root` and walk it, refusing a context of more than `max_files` entries (after
    /// the ignore file). `build_file` is the Dockerfile's path (for
    /// `<Dockerfile>.dockerignore`). Ignore files are read up to `max_file_size` bytes. Files'
    /// bytes are snapshotted into `snapshots` (a directory that outlives every use of the
    /// context's files: the build's scratch directory) when they are first needed.
    pub fn load(
        root: &Path,
        build_file: Option<&Path>,
        max_files: u64,
        max_file_size: u64,
        snapshots: &Path,
    ) -> Result<Self, ContextError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ContextError::Io { path, source }
        };
        let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority()).map_err(io(root))?;
        let dir = Arc::new(dir);

        let (ignore, ignore_file) = ignore_of(&dir, root, build_file, max_file_size)?;

        let mut children = std::collections::BTreeMap::new();
        let mut budget = Budget { left: max_files, limit: max_files };
        let snapshots = Arc::new(Snapshots::new(root, snapshots));
        let walker = Walker { dir: &dir, root, ignore: &ignore, snapshots: &snapshots };
        walker.walk(Path::new(""), &mut budget, &mut children)?;
        let root_meta = dir.dir_metadata().map_err(io(root))?;
        let mut tree = Tree::new();
        tree.insert(&[], Node::dir(meta_of(&root_meta))).expect("the root always exists");
        for (name, node) in children {
            tree.insert(&[name], node).expect("the root is a directory");
        }
        tree.forget_changes();
        Ok(BuildContext { root: root.to_path_buf(), tree, ignore, ignore_file })
    }
}

/// The ignore patterns of a context, and the file they come from: `<build file>.dockerignore`
/// next to the build file if there is one (not for an Earthfile), else the context's
/// `.dockerignore` (`.earthlyignore` or `.earthignore` for an Earthfile), read up to
/// `max_file_size` bytes through the context's capability where they lie inside it.
fn ignore_of(
    dir: &Dir,
    root: &Path,
    build_file: Option<&Path>,
    max_file_size: u64,
) -> Result<(Matcher, Option<PathBuf>), ContextError> {
    let specific = build_file.and_then(|f| {
        let name = f.file_name()?.to_str()?;
        Some(f.with_file_name(format!("{name}.dockerignore")))
    });
    // An Earthfile's context is filtered by Earthly's ignore files, which use the same
    // syntax; anything else by Docker's.
    let earthfile = build_file
        .and_then(|f| f.file_name())
        .is_some_and(|n| n.eq_ignore_ascii_case("Earthfile") || n.to_string_lossy().ends_with(".earth"));
    let shared: &[&str] = if earthfile { &[".earthlyignore", ".earthignore"] } else { &[".dockerignore"] };
    // `<Dockerfile>.dockerignore` sits next to the build file, wherever the user put that;
    // inside the context, it and the shared one are read through the context like every
    // other file, so a link in the context cannot make kiln read (and quote, in an error)
    // a host file.
    let specific = specific.filter(|_| !earthfile);
    let specific_text = match &specific {
        Some(path) => match path.strip_prefix(root) {
            Ok(inside) => read_in_context(dir, root, inside, "ignore file", max_file_size)?
                .map(|bytes| (String::from_utf8_lossy(&bytes).into_owned(), path.clone())),
            // Anything there but a regular file (a FIFO, a device, a directory) is an error
            // naming it, found before it is opened: not a hang, and not silently ignored.
            Err(_) => match std::fs::metadata(path) {
                Ok(m) if m.is_file() => Some((
                    String::from_utf8_lossy(&read_bounded(path, "ignore file", max_file_size)?).into_owned(),
                    path.clone(),
                )),
                Ok(m) => {
                    use std::os::unix::fs::FileTypeExt;
                    let t = m.file_type();
                    let kind = if t.is_dir() {
                        "directory"
                    } else if t.is_fifo() {
                        "FIFO"
                    } else if t.is_socket() {
                        "socket"
                    } else if t.is_block_device() || t.is_char_device() {
                        "device"
                    } else {
                        "special file"
                    };
                    return Err(ContextError::NotAFile { path: path.clone(), what: "ignore file", kind });
                }
                Err(_) => None,
            },
        },
        None => None,
    };
    let ignore_text = match specific_text {
        Some(found) => Some(found),
        None => shared_ignore_file(dir, root, shared, max_file_size)?,
    };
    match ignore_text {
        Some((text, path)) => {
            let ignore = Matcher::from_dockerignore(&text).map_err(|(line, e)| ContextError::Ignore {
                file: path.clone(),
                line,
                detail: e.to_string(),
            })?;
            Ok((ignore, Some(path)))
        }
        None => Ok((Matcher::default(), None)),
    }
}

/// The first of `names` that is a file in the context, read through the context's capability:
/// (text, path). A name that is missing is passed over; a link out of the context, or
/// something that is not a file, is an error, not passed over: the user meant it to apply.
fn shared_ignore_file(
    dir: &Dir,
    root: &Path,
    names: &[&str],
    max_size: u64,
) -> Result<Option<(String, PathBuf)>, ContextError> {
    for name in names {
        if let Some(bytes) = read_in_context(dir, root, Path::new(name), "ignore file", max_size)? {
            return Ok(Some((String::from_utf8_lossy(&bytes).into_owned(), root.join(name))));
        }
    }
    Ok(None)
}

/// Read the file `rel` of the context `root` through its capability, at most `max_size`
/// bytes: `None` when there is none. A symlink may lead elsewhere in the context, never out
/// of it; a directory, FIFO or device is refused before it is opened, so nothing hangs.
/// `what` names the file in errors (`build file`, `ignore file`).
pub fn read_in_context(
    dir: &Dir,
    root: &Path,
    rel: &Path,
    what: &'static str,
    max_size: u64,
) -> Result<Option<Vec<u8>>, ContextError> {
    let path = root.join(rel);
    let meta = match dir.metadata(rel) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // The capability refuses a link that leads out (absolute, or up past the root).
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                && dir.symlink_metadata(rel).is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            let remedy = if what == "build file" {
                "pass the file you mean with -f"
            } else {
                "put a copy of the file there instead"
            };
            return Err(ContextError::LinkOutside { path, what, remedy });
        }
        Err(source) => return Err(ContextError::Io { path, source }),
    };
    if !meta.is_file() {
        return Err(ContextError::NotAFile { path, what, kind: kind_of(&meta.file_type()) });
    }
    let file = dir.open(rel).map_err(|source| ContextError::Io { path: path.clone(), source })?;
    read_limited(file.into_std(), &path, what, max_size).map(Some)
}

/// Read a file named by the user, anywhere, at most `max_size` bytes; only a regular file
/// (one that became a FIFO or a device since it was looked at is refused, never waited on).
fn read_bounded(path: &Path, what: &'static str, max_size: u64) -> Result<Vec<u8>, ContextError> {
    let file = crate::store::open_regular(path, crate::store::Symlinks::Follow)
        .map_err(|source| ContextError::Io { path: path.to_path_buf(), source })?;
    read_limited(file, path, what, max_size)
}

fn read_limited(file: std::fs::File, path: &Path, what: &'static str, max_size: u64) -> Result<Vec<u8>, ContextError> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, max_size.saturating_add(1)), &mut bytes)
        .map_err(|source| ContextError::Io { path: path.to_path_buf(), source })?;
    if bytes.len() as u64 > max_size {
        return Err(ContextError::TooLarge { path: path.to_path_buf(), what, limit: max_size });
    }
    Ok(bytes)
}

/// What a non-file is, for messages.
fn kind_of(file_type: &cap_std::fs::FileType) -> &'static str {
    use cap_std::fs::FileTypeExt;
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

fn meta_of(m: &cap_std::fs::Metadata) -> Meta {
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    Meta { mode: m.permissions().mode() & 0o7777, uid: 0, gid: 0, mtime }
}

/// How many more entries the walk may take.
struct Budget {
    left: u64,
    limit: u64,
}

/// What the walk of one context reads and records.
struct Walker<'a> {
    dir: &'a Arc<Dir>,
    root: &'a Path,
    ignore: &'a Matcher,
    snapshots: &'a Arc<Snapshots>,
}

impl Walker<'_> {
    fn walk(
        &self,
        rel: &Path,
        budget: &mut Budget,
        out: &mut std::collections::BTreeMap<String, Node>,
    ) -> Result<(), ContextError> {
        let (dir, root, ignore) = (self.dir, self.root, self.ignore);
        // Permission problems name the path and the way out; anything else is plain I/O.
        // (The context itself cannot be left out: plain I/O too.)
        let io = |path: PathBuf| {
            move |source: std::io::Error| match source.kind() {
                std::io::ErrorKind::PermissionDenied if path != root => ContextError::Unreadable { path, source },
                _ => ContextError::Io { path, source },
            }
        };
        let listing = if rel.as_os_str().is_empty() { dir.entries() } else { dir.read_dir(rel) };
        for entry in listing.map_err(io(root.join(rel)))? {
            let entry = entry.map_err(io(root.join(rel)))?;
            let Ok(name) = entry.file_name().into_string() else {
                // Names that are not UTF-8 cannot be written into an image's tar headers portably.
                // Ignored ones are skipped silently (patterns see U+FFFD for each bad byte).
                let shown = rel.join(entry.file_name()).to_string_lossy().replace('\\', "/");
                if ignore.excludes(&shown) {
                    continue;
                }
                tracing::warn!(
                    "skipping {}: its name is not UTF-8, which kiln cannot put in an image; rename it, or leave it out with .dockerignore",
                    root.join(rel).join(entry.file_name()).display()
                );
                continue;
            };
            let path = rel.join(&name);
            let slash_path = path.to_string_lossy().replace('\\', "/");
            let excluded = ignore.excludes(&slash_path);
            if slash_path.len() >= PATH_MAX {
                // The system refuses to look it up (ENAMETOOLONG): say so before it does, with a
                // path short enough to read. Ignored paths are never looked up.
                if excluded && !ignore.has_exceptions() {
                    continue;
                }
                return Err(ContextError::PathTooLong {
                    root: root.to_path_buf(),
                    shown: shorten(&slash_path),
                    len: slash_path.len(),
                });
            }
            let meta = dir.symlink_metadata(&path).map_err(io(root.join(&path)))?;
            let file_type = meta.file_type();
            if !excluded || file_type.is_dir() {
                // Counted as they are met, so a huge context stops early, not after the walk.
                budget.left = budget
                    .left
                    .checked_sub(1)
                    .ok_or_else(|| ContextError::TooManyFiles { root: root.to_path_buf(), limit: budget.limit })?;
            }
            if file_type.is_dir() {
                if excluded && !ignore.has_exceptions() {
                    continue;
                }
                let mut children = std::collections::BTreeMap::new();
                self.walk(&path, budget, &mut children)?;
                if excluded && children.is_empty() {
                    continue;
                }
                out.insert(name, Node { meta: meta_of(&meta), kind: Kind::Dir(children) });
            } else if excluded {
                continue;
            } else if file_type.is_symlink() {
                let target = dir.read_link_contents(&path).map_err(io(root.join(&path)))?;
                out.insert(
                    name,
                    Node { meta: meta_of(&meta), kind: Kind::Symlink(target.to_string_lossy().into_owned()) },
                );
            } else if file_type.is_file() {
                // A file nobody but its owner (or group) may read may not be readable by kiln: try
                // it now, so the build fails here naming the file, not halfway through a COPY.
                // Files anyone may read (most of them) cost nothing more.
                if meta.permissions().mode() & 0o004 == 0 {
                    dir.open(&path).map_err(io(root.join(&path)))?;
                }
                let file = ContextFile::new(dir.clone(), path.clone(), meta.len(), self.snapshots.clone());
                let data = FileData { content: Content::Context(Arc::new(file)), size: meta.len() };
                out.insert(name, Node { meta: meta_of(&meta), kind: Kind::File(Arc::new(data)) });
            }
            // Sockets, FIFOs and devices in a context are not copied (Docker skips them too).
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::snapshot::SMALL_FILE;

    #[test]
    fn loads_files_links_and_honours_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::create_dir_all(root.join("target/debug")).unwrap();
        std::fs::write(root.join("src/deep/a.rs"), "fn a() {}").unwrap();
        std::fs::write(root.join("target/debug/bin"), "x").unwrap();
        std::fs::write(root.join("target/keep"), "k").unwrap();
        std::fs::write(root.join(".dockerignore"), "target\n!target/keep\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
        let ctx = BuildContext::load(root, Some(&root.join("Dockerfile")), u64::MAX, u64::MAX, dir.path()).unwrap();
        assert!(ctx.tree.get(&["src".into(), "deep".into(), "a.rs".into()]).is_some());
        assert!(ctx.tree.get(&["target".into(), "debug".into()]).is_none());
        assert!(ctx.tree.get(&["target".into(), "keep".into()]).is_some());
        assert!(matches!(&ctx.tree.get(&["abs".into()]).unwrap().kind, Kind::Symlink(t) if t == "/etc/passwd"));
        assert_eq!(ctx.tree.read_file("/src/deep/a.rs", 100).unwrap(), b"fn a() {}");
        assert_eq!(ctx.tree.get(&["src".into()]).unwrap().meta.uid, 0);
    }

    /// A COPY's cache key and its layer read the file at different times: a file rewritten in
    /// between must not give a key of one content and a layer of the other. `first` and
    /// `later` are the two versions, of the same size; returns the scratch directory's files.
    fn key_and_layer_agree(first: &[u8], later: &[u8]) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let (root, scratch) = (dir.path().join("ctx"), dir.path().join("scratch"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::write(root.join("f"), first).unwrap();
        let copied = |ctx: &BuildContext| {
            let mut tree = Tree::new();
            tree.insert(&["f".into()], ctx.tree.get(&["f".into()]).unwrap().clone()).unwrap();
            let changes = tree.take_changes();
            (tree, changes)
        };
        let ctx = BuildContext::load(&root, None, u64::MAX, u64::MAX, &scratch).unwrap();
        let (tree, changes) = copied(&ctx);
        let key = crate::layer::changes_key(&tree, &changes, Some(0)).unwrap();
        // Rewritten, at the same size, after the key and before the layer.
        std::fs::write(root.join("f"), later).unwrap();
        let store = crate::store::Store::open(&dir.path().join("store")).unwrap();
        let layer = crate::layer::write_changes(&store, &tree, &changes, Some(0), u64::MAX).unwrap().unwrap();
        let blob = flate2::read::GzDecoder::new(store.open_blob(&layer.digest).unwrap());
        let mut archive = tar::Archive::new(blob);
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        assert!(bytes == first, "the layer holds the bytes the key was made of");
        // A program of a later step reads them too.
        assert!(tree.read_file("/f", u64::MAX).unwrap() == first);
        // And the key is the key of those bytes: read afresh, they give the same one.
        std::fs::write(root.join("f"), first).unwrap();
        let again = BuildContext::load(&root, None, u64::MAX, u64::MAX, &scratch).unwrap();
        let (tree, changes) = copied(&again);
        assert_eq!(crate::layer::changes_key(&tree, &changes, Some(0)).unwrap(), key);
        std::fs::write(root.join("f"), later).unwrap();
        let other = BuildContext::load(&root, None, u64::MAX, u64::MAX, &scratch).unwrap();
        let (tree, changes) = copied(&other);
        assert_ne!(crate::layer::changes_key(&tree, &changes, Some(0)).unwrap(), key);
        std::fs::read_dir(&scratch).unwrap().count()
    }

    #[test]
    fn the_cache_key_and_the_layer_hold_the_same_bytes_when_the_file_changes_between() {
        // Small files are held in memory; larger ones are copied into the scratch directory,
        // once per context that read them.
        assert_eq!(key_and_layer_agree(b"first version", b"later version"), 0);
        let size = SMALL_FILE as usize + 1;
        assert_eq!(key_and_layer_agree(&vec![b'a'; size], &vec![b'b'; size]), 3);
    }

    #[test]
    fn a_file_that_grows_is_cut_at_its_walked_size_and_one_that_shrinks_is_an_error() {
        for size in [13, SMALL_FILE as usize + 1] {
            let dir = tempfile::tempdir().unwrap();
            let (root, scratch) = (dir.path().join("ctx"), dir.path().join("scratch"));
            std::fs::create_dir_all(&root).unwrap();
            std::fs::create_dir_all(&scratch).unwrap();
            std::fs::write(root.join("f"), vec![b'a'; size]).unwrap();
            let grown = BuildContext::load(&root, None, u64::MAX, u64::MAX, &scratch).unwrap();
            std::fs::write(root.join("f"), vec![b'b'; size + 10]).unwrap();
            assert!(grown.tree.read_file("/f", u64::MAX).unwrap() == vec![b'b'; size]);
            let shrunk = BuildContext::load(&root, None, u64::MAX, u64::MAX, &scratch).unwrap();
            std::fs::write(root.join("f"), "short").unwrap();
            let Kind::File(data) = &shrunk.tree.get(&["f".into()]).unwrap().kind else { panic!("a file") };
            let err = data.content.sha256().unwrap_err().to_string();
            let want = format!(
                "{}: the file was {} bytes when the build started and is 5 bytes now: it changed during the build; build again once nothing writes to it, or leave it out with .dockerignore",
                root.join("f").display(),
                size + 10
            );
            assert_eq!(err, want);
            // Nothing is left of the failed snapshot.
            let left = std::fs::read_dir(&scratch).unwrap().count();
            assert_eq!(left, usize::from(size > SMALL_FILE as usize), "only the grown file's snapshot");
        }
    }

    #[test]
    fn a_dockerfile_specific_ignore_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a"), "").unwrap();
        std::fs::write(root.join("b"), "").unwrap();
        std::fs::write(root.join(".dockerignore"), "a\n").unwrap();
        std::fs::write(root.join("Dockerfile.dockerignore"), "b\n").unwrap();
        std::fs::write(root.join(".earthlyignore"), "c\n").unwrap();
        let earthly = BuildContext::load(root, Some(&root.join("Earthfile")), u64::MAX, u64::MAX, dir.path()).unwrap();
        assert_eq!(earthly.ignore_file.as_deref(), Some(root.join(".earthlyignore").as_path()));
        let ctx = BuildContext::load(root, Some(&root.join("Dockerfile")), u64::MAX, u64::MAX, dir.path()).unwrap();
        assert!(ctx.tree.get(&["a".into()]).is_some());
        assert!(ctx.tree.get(&["b".into()]).is_none());
    }
}
