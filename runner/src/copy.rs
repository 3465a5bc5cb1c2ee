//! COPY and ADD with Docker's semantics, from one [`Tree`] (the context, an earlier stage,
//! an image) into a stage's tree.
//!
//! The rules, as `docker build` applies them:
//! - sources are relative to the source root; `..` can never leave it; wildcards (`*`, `?`,
//!   `[...]`) match per path component; no match is an error;
//! - a directory source copies its *contents*; a symlink named as a source is followed
//!   (symlinks inside copied directories are copied as links);
//! - the destination is relative to WORKDIR; with a trailing `/`, several sources, or an
//!   existing directory, it is a directory; missing parents are created;
//! - context files become root-owned; files from a stage or image keep their owners;
//!   `--chown` and `--chmod` override both (and apply to created directories);
//! - `--parents` keeps each source's path (below a `/./` pivot if one is given);
//! - `--exclude` drops matching paths (relative to each source);
//! - ADD unpacks local tar archives (plain, gzip, bzip2, xz, zstd) into the destination.
//!
//! Nothing here touches a host path: reads go through [`crate::rootfs::Content`], writes only
//! change the destination tree.

use std::io::Read;
use std::sync::Arc;

use crate::compression::Family;
use crate::ignore::Matcher;
use crate::layer;
use crate::rootfs::{self, Components, Content, FileData, Kind, Meta, Node, PathError, Tree};
use crate::scratch::Scratch;

/// Where a COPY reads from, for error messages and ownership rules.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The build context.
    Context,
    /// A directory named with `--build-context`, by its name: read like the build context.
    NamedContext(String),
    /// An earlier stage, by display name.
    Stage(String),
    /// An image, by reference.
    Image(String),
}

impl Origin {
    /// Whether the files are the user's own, read from a local directory: paths and symlinks
    /// must stay inside it, files become root-owned, and ADD unpacks archives.
    fn is_local(&self) -> bool {
        matches!(self, Origin::Context | Origin::NamedContext(_))
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Context => f.write_str("the build context"),
            Origin::NamedContext(name) => write!(f, "the build context {name}"),
            Origin::Stage(s) => write!(f, "stage {s}"),
            Origin::Image(i) => write!(f, "image {i}"),
        }
    }
}

/// Why a COPY failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source does not exist.
    #[error("{source_path:?} not found in {origin}")]
    NotFound {
        /// The source as written.
        source_path: String,
        /// Where it was looked for.
        origin: Origin,
    },
    /// A source names something outside its root.
    #[error("{source_path:?} is outside {origin}: sources must stay inside it")]
    Outside {
        /// The source as written.
        source_path: String,
        /// The root it escaped.
        origin: Origin,
    },
    /// Several sources need a directory destination.
    #[error("when copying more than one source, the destination must be a directory ending in / (got {0:?})")]
    NeedsDirectory(String),
    /// A path could not be resolved.
    #[error(transparent)]
    Path(#[from] PathError),
    /// `--chown` names a user or group the stage does not have.
    #[error("{0}")]
    Owner(String),
    /// `--chmod` is not a mode.
    #[error("invalid --chmod={0}: use an octal mode such as 755")]
    Mode(String),
    /// ADD was given something it cannot fetch.
    #[error("{0}")]
    Unsupported(String),
    /// Reading a source failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Unpacking an archive failed.
    #[error(transparent)]
    Layer(#[from] layer::LayerError),
}

/// One COPY or ADD, after expansion by the frontend.
pub struct CopySpec<'a> {
    /// Source paths or patterns.
    pub sources: &'a [String],
    /// Heredoc sources: (name, contents, mode).
    pub inline: &'a [(String, String, u32)],
    /// The destination as written.
    pub dest: &'a str,
    /// The stage's working directory (absolute).
    pub workdir: &'a str,
    /// `--chown`, resolved to ids.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`, parsed.
    pub chmod: Option<u32>,
    /// `--exclude` patterns.
    pub exclude: &'a Matcher,
    /// `--parents`.
    pub parents: bool,
    /// ADD: unpack local archives.
    pub unpack: bool,
    /// mtime for entries kiln creates (directories, heredoc files).
    pub created_mtime: i64,
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// One path component pattern (Go's `filepath.Match`), compiled once for all the names it is
/// tried on; a malformed one matches nothing.
fn component_matcher(pattern: &str) -> Option<Matcher> {
    Matcher::new(&[pattern]).ok()
}

/// Parse `--chmod`: an octal mode.
pub fn parse_chmod(text: &str) -> Result<u32, CopyError> {
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| CopyError::Mode(text.to_string()))
}

/// Who names an owner: `--chown` of a COPY, or the stage's `USER`; for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerSpec {
    /// `COPY --chown=` / `ADD --chown=`.
    Chown,
    /// `USER`.
    User,
}

impl std::fmt::Display for OwnerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OwnerSpec::Chown => "--chown",
            OwnerSpec::User => "USER",
        })
    }
}

/// Resolve `user[:group]` (of `--chown` or `USER`, as `named_by` says) against the stage's
/// `/etc/passwd` and `/etc/group`. A numeric user alone means the same group id; a named
/// user alone means its primary group.
pub fn resolve_owner(spec: &str, tree: &Tree, named_by: OwnerSpec) -> Result<(u32, u32), CopyError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str| -> Option<(u32, u32)> {
        let text = tree.read_file(file, 4 << 20)?;
        String::from_utf8_lossy(&text).lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 3 && fields[0] == name {
                let id = fields[2].parse().ok()?;
                let gid = fields.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
                Some((id, gid))
            } else {
                None
            }
        })
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(id) => (id, id),
        Err(_) => lookup("/etc/passwd", user).ok_or_else(|| {
            CopyError::Owner(format!("unknown user {user:?} in {named_by}: not in the stage's /etc/passwd"))
        })?,
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(id) => id,
            Err(_) => lookup("/etc/group", g).map(|(id, _)| id).ok_or_else(|| {
                CopyError::Owner(format!("unknown group {g:?} in {named_by}: not in the stage's /etc/group"))
            })?,
        },
    };
    Ok((uid, gid))
}

/// Matches for one source: (path in the source tree, the path it is copied as for --parents).
fn expand(src: &Tree, source: &str, origin: &Origin) -> Result<Vec<(Components, Components)>, CopyError> {
    let contained = origin.is_local();
    if escapes_lexically(source) {
        return Err(CopyError::Outside { source_path: source.to_string(), origin: origin.clone() });
    }
    // `--parents` keeps the path below a `/./` pivot, or the whole path.
    let pivot = source.find("/./").map_or(0, |i| rootfs::clean(&source[..i]).len());
    let not_found = || CopyError::NotFound { source_path: source.to_string(), origin: origin.clone() };
    let map_path = |e: PathError| match e {
        PathError::NotFound(_) => not_found(),
        other => CopyError::Path(other),
    };
    let mut found: Vec<Components> = vec![Vec::new()];
    let components: Vec<&str> = source.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if !has_wildcard(source) {
        let path = src.resolve_with(&[], source, false, contained).map_err(map_path)?;
        if src.get(&path).is_none() {
            return Err(not_found());
        }
        let keep = path.get(pivot.min(path.len())..).unwrap_or_default().to_vec();
        return Ok(vec![(path, keep)]);
    }
    for (i, pattern) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let matcher = if has_wildcard(pattern) { component_matcher(pattern) } else { None };
        let mut next = Vec::new();
        for base in &found {
            if *pattern == ".." {
                let mut up = base.clone();
                up.pop();
                next.push(up);
                continue;
            }
            let dir = src.resolve_with(&[], &format!("/{}", rootfs::join(base)), true, contained).map_err(map_path)?;
            let Some(Node { kind: Kind::Dir(children), .. }) = src.get(&dir) else { continue };
            if has_wildcard(pattern) {
                let Some(matcher) = &matcher else { continue };
                for name in children.keys().filter(|n| matcher.excludes(n)) {
                    let mut p = dir.clone();
                    p.push(name.clone());
                    next.push(p);
                }
            } else if children.contains_key(*pattern) || last {
                let mut p = dir.clone();
                p.push(pattern.to_string());
                if src.get(&p).is_some() {
                    next.push(p);
                }
            }
        }
        found = next;
    }
    if found.is_empty() {
        return Err(not_found());
    }
    found.sort();
    found.dedup();
    Ok(found
        .into_iter()
        .map(|p| {
            let keep = p.get(pivot.min(p.len())..).unwrap_or_default().to_vec();
            (p, keep)
        })
        .collect())
}

/// Whether a path's `..` components climb above its root.
fn escapes_lexically(path: &str) -> bool {
    let mut depth: isize = 0;
    for c in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        depth += if c == ".." { -1 } else { 1 };
        if depth < 0 {
            return true;
        }
    }
    false
}

/// Run one COPY/ADD into `dest_tree`.
pub fn copy(
    dest_tree: &mut Tree,
    src: &Tree,
    origin: &Origin,
    spec: &CopySpec<'_>,
    scratch: &Scratch,
) -> Result<(), CopyError> {
    for source in spec.sources {
        if source.contains("://") || source.starts_with("git@") {
            return Err(CopyError::Unsupported(format!(
                "{source}: kiln does not fetch remote sources yet; download it in an earlier stage or add it to the context"
            )));
        }
    }
    let total = spec.sources.len() + spec.inline.len();
    let dest_is_dir_syntax = spec.dest.ends_with('/') || spec.dest.ends_with("/.") || spec.dest == ".";
    if total > 1 && !dest_is_dir_syntax {
        return Err(CopyError::NeedsDirectory(spec.dest.to_string()));
    }
    let workdir = rootfs::clean(spec.workdir);
    let dir_meta = Meta {
        mode: 0o755,
        uid: spec.owner.map_or(0, |o| o.0),
        gid: spec.owner.map_or(0, |o| o.1),
        mtime: spec.created_mtime,
    };
    // Expand everything first: a missing source fails the step before anything changes.
    let mut matches = Vec::new();
    for source in spec.sources {
        matches.push(expand(src, source, origin)?);
    }
    let many = matches.iter().map(Vec::len).sum::<usize>() + spec.inline.len() > 1;
    let dest_path = dest_tree.resolve_dest(&workdir, spec.dest)?;
    let dest_exists_as_dir = dest_tree.get(&dest_path).is_some_and(Node::is_dir);
    let into_dir = dest_is_dir_syntax || many || dest_exists_as_dir;

    for (name, contents, mode) in spec.inline {
        let target = if into_dir {
            dest_tree.mkdir_all(&[], &format!("/{}", rootfs::join(&dest_path)), dir_meta)?;
            let mut t = dest_path.clone();
            t.push(name.clone());
            t
        } else {
            ensure_parent(dest_tree, &dest_path, dir_meta)?;
            dest_path.clone()
        };
        let bytes: Arc<[u8]> = Arc::from(contents.as_bytes());
        let meta =
            Meta { mode: spec.chmod.unwrap_or(*mode), uid: dir_meta.uid, gid: dir_meta.gid, mtime: spec.created_mtime };
        let node = Node {
            meta,
            kind: Kind::File(Arc::new(FileData { size: bytes.len() as u64, content: Content::Bytes(bytes) })),
        };
        put(dest_tree, &target, node)?;
    }

    let contained = origin.is_local();
    for found in matches {
        for (path, keep) in found {
            // The source itself is followed if it is a symlink.
            let real = src.resolve_with(&[], &format!("/{}", rootfs::join(&path)), true, contained)?;
            let node = src.get(&real).ok_or_else(|| CopyError::NotFound {
                source_path: format!("/{}", rootfs::join(&path)),
                origin: origin.clone(),
            })?;
            let base_name = path.last().cloned().unwrap_or_default();
            let mut target = dest_path.clone();
            if spec.parents {
                let rel = if node.is_dir() { keep.clone() } else { keep[..keep.len().saturating_sub(1)].to_vec() };
                target.extend(rel);
            }
            if node.is_dir() {
                let made = dest_tree.mkdir_all(&[], &format!("/{}", rootfs::join(&target)), dir_meta)?;
                let top_meta = adjust(&node.meta, spec, origin);
                dest_tree.set_meta(&made, top_meta)?;
                copy_children(dest_tree, node, &made, &[], spec, origin)?;
                continue;
            }
            if spec.exclude.excludes(&base_name) {
                continue;
            }
            let file_target = if into_dir || spec.parents {
                let made = dest_tree.mkdir_all(&[], &format!("/{}", rootfs::join(&target)), dir_meta)?;
                let mut t = made;
                t.push(base_name.clone());
                t
            } else {
                ensure_parent(dest_tree, &target, dir_meta)?;
                target
            };
            if spec.unpack
                && origin.is_local()
                && let Kind::File(data) = &node.kind
                && let Some(stream) = archive_stream(data)?
            {
                let dir = dest_tree.mkdir_all(&[], &format!("/{}", rootfs::join(&dest_path)), dir_meta)?;
                let created = layer::apply_at(dest_tree, &dir, stream, scratch, &format!("archive {base_name}"))?;
                // `--chown`/`--chmod` apply to what the archive unpacked, as in Docker.
                if spec.owner.is_some() || spec.chmod.is_some() {
                    for path in created {
                        if let Some(node) = dest_tree.get(&path) {
                            let meta = Meta {
                                uid: spec.owner.map_or(node.meta.uid, |o| o.0),
                                gid: spec.owner.map_or(node.meta.gid, |o| o.1),
                                mode: spec.chmod.unwrap_or(node.meta.mode),
                                mtime: node.meta.mtime,
                            };
                            dest_tree.set_meta(&path, meta)?;
                        }
                    }
                }
                continue;
            }
            let mut copied = node.clone();
            copied.meta = adjust(&node.meta, spec, origin);
            put(dest_tree, &file_target, copied)?;
        }
    }
    Ok(())
}

/// Ownership and mode of a copied entry.
fn adjust(meta: &Meta, spec: &CopySpec<'_>, origin: &Origin) -> Meta {
    let (uid, gid) = match (spec.owner, origin) {
        (Some(o), _) => o,
        (None, Origin::Context | Origin::NamedContext(_)) => (0, 0),
        (None, _) => (meta.uid, meta.gid),
    };
    Meta { mode: spec.chmod.unwrap_or(meta.mode), uid, gid, mtime: meta.mtime }
}

fn ensure_parent(tree: &mut Tree, path: &[String], meta: Meta) -> Result<(), CopyError> {
    if let Some((_, parent)) = path.split_last() {
        tree.mkdir_all(&[], &format!("/{}", rootfs::join(parent)), meta)?;
    }
    Ok(())
}

/// Place `node` at `path`, replacing a non-directory or an empty slot.
fn put(tree: &mut Tree, path: &[String], node: Node) -> Result<(), CopyError> {
    if node.is_dir() {
        tree.insert(path, Node::dir(node.meta))?;
    } else {
        if tree.get(path).is_some_and(Node::is_dir) {
            return Err(CopyError::Path(PathError::NotADirectory(format!(
                "/{}: cannot overwrite a directory with a file",
                rootfs::join(path)
            ))));
        }
        tree.insert(path, node)?;
    }
    Ok(())
}

fn copy_children(
    dest: &mut Tree,
    dir: &Node,
    target: &[String],
    rel: &[String],
    spec: &CopySpec<'_>,
    origin: &Origin,
) -> Result<(), CopyError> {
    let Kind::Dir(children) = &dir.kind else { return Ok(()) };
    for (name, child) in children {
        let mut child_rel = rel.to_vec();
        child_rel.push(name.clone());
        let excluded = spec.exclude.excludes(&rootfs::join(&child_rel));
        if excluded && !(child.is_dir() && spec.exclude.has_exceptions()) {
            continue;
        }
        let mut child_target = target.to_vec();
        child_target.push(name.clone());
        let mut copied = child.clone();
        copied.meta = adjust(&child.meta, spec, origin);
        if child.is_dir() {
            put(dest, &child_target, Node::dir(copied.meta))?;
            copy_children(dest, child, &child_target, &child_rel, spec, origin)?;
        } else {
            put(dest, &child_target, copied)?;
        }
    }
    Ok(())
}

/// If the file is a tar archive (plain or compressed), a reader of the uncompressed tar.
/// Anything else (including a compressed file that is not a tar) is copied as it is, as
/// Docker does.
fn archive_stream(data: &FileData) -> Result<Option<Box<dyn Read + '_>>, CopyError> {
    let io = |e| CopyError::Io { context: "read an ADD source".into(), source: e };
    let mut probe = crate::compression::decompress(data.content.open().map_err(io)?, Family::Archive).map_err(io)?;
    let mut head = Vec::with_capacity(512);
    // A stream that fails to decompress is not an archive we can unpack.
    if probe.by_ref().take(512).read_to_end(&mut head).is_err() || head.len() < 262 || &head[257..262] != b"ustar" {
        return Ok(None);
    }
    Ok(Some(crate::compression::decompress(data.content.open().map_err(io)?, Family::Archive).map_err(io)?))
}
