//! Where an output may go: never into kiln's store, never over the build context or into the
//! part of it the build reads; and what is at a destination already.
//!
//! Paths are compared as the system resolves them (symlinks followed, `..` applied), so a
//! link to the store is the store. A destination that does not exist yet is resolved through
//! its nearest existing ancestor.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::ignore::Matcher;

/// How a destination lies relative to a protected directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// It is the directory.
    Is,
    /// It is inside it.
    Inside,
    /// It holds it.
    Holds,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Relation::Is => "it is",
            Relation::Inside => "it is inside",
            Relation::Holds => "it holds",
        })
    }
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It is, holds or lies inside kiln's store.
    Store {
        /// Where.
        relation: Relation,
        /// The store's directory.
        store: PathBuf,
    },
    /// It is, holds or lies inside the part of the build context the build reads.
    Context {
        /// Where.
        relation: Relation,
        /// The context directory.
        context: PathBuf,
        /// The ignore file that would leave the destination out.
        ignore_file: PathBuf,
        /// The destination relative to the context (slash-separated), for `Inside`.
        within: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Store { relation: Relation::Is, .. } => write!(
                f,
                "refused: it is kiln's store (--root or KILN_HOME), and writing an output there could break the store; \
                 tag the image with -t to keep it in the store, or write the output somewhere else"
            ),
            Refusal::Store { relation, store } => write!(
                f,
                "refused: {relation} kiln's store {} (--root or KILN_HOME), and writing an output there could break \
                 the store; write the output somewhere else",
                store.display()
            ),
            Refusal::Context { relation: Relation::Is, .. } => write!(
                f,
                "refused: it is the build context, and the output would overwrite the files the build reads; \
                 write the output outside the context"
            ),
            Refusal::Context { relation: Relation::Holds, context, .. } => write!(
                f,
                "refused: it holds the build context {}, and the output would overwrite the files the build reads; \
                 write the output outside the context",
                context.display()
            ),
            Refusal::Context { relation: Relation::Inside, context, ignore_file, within } => write!(
                f,
                "refused: it is inside the build context {} and the build reads it, so the output would overwrite \
                 files the build reads and the next build would read the output; add the line \"{}\" at the end \
                 of {}, or write the output outside the context",
                context.display(),
                escape_pattern(within),
                ignore_file.display()
            ),
        }
    }
}

/// `path` as an ignore-file line that matches exactly it.
fn escape_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The build context as the destination check sees it.
pub struct ContextGuard {
    /// The context directory, resolved.
    root: PathBuf,
    /// Its ignore patterns.
    ignore: Matcher,
    /// The ignore file to suggest (the one in use, or `.dockerignore` in the context).
    ignore_file: PathBuf,
}

/// The directories an output must keep out of: kiln's store, the build context, and the
/// directories named with `--build-context` (each read like the build context).
pub struct Protected {
    store: PathBuf,
    contexts: Vec<ContextGuard>,
}

impl Protected {
    /// Protect the store at `store` and, when given, the build context at `context` with
    /// the ignore patterns that were applied to it (`ignore_file` is the file they came
    /// from, if any).
    ///
    /// # Errors
    ///
    /// The store or the context cannot be resolved (they exist, so this is rare): the path
    /// and the system's error.
    pub fn new(
        store: &Path,
        context: Option<(&Path, &Matcher, Option<&Path>)>,
    ) -> Result<Self, (PathBuf, std::io::Error)> {
        let resolve_existing = |p: &Path| std::fs::canonicalize(p).map_err(|e| (p.to_path_buf(), e));
        let store = resolve_existing(store)?;
        let mut protected = Protected { store, contexts: Vec::new() };
        if let Some((root, ignore, file)) = context {
            protected.add_context(root, ignore, file)?;
        }
        Ok(protected)
    }

    /// Protect one more directory the build reads, with the ignore patterns applied to it.
    ///
    /// # Errors
    ///
    /// The directory cannot be resolved: the path and the system's error.
    pub fn add_context(
        &mut self,
        root: &Path,
        ignore: &Matcher,
        ignore_file: Option<&Path>,
    ) -> Result<(), (PathBuf, std::io::Error)> {
        self.contexts.push(ContextGuard {
            root: std::fs::canonicalize(root).map_err(|e| (root.to_path_buf(), e))?,
            ignore: ignore.clone(),
            ignore_file: ignore_file.map_or_else(|| root.join(".dockerignore"), Path::to_path_buf),
        });
        Ok(())
    }

    /// Refuse `dest` if it is, holds or lies inside the store; or is or holds the build
    /// context, or lies inside it where the ignore file does not leave all of it out.
    ///
    /// # Errors
    ///
    /// Why it is refused; or an error resolving it.
    pub fn check(&self, dest: &Path) -> Result<Result<(), Refusal>, std::io::Error> {
        let dest = resolve(dest)?;
        if let Some(relation) = relation(&dest, &self.store) {
            return Ok(Err(Refusal::Store { relation, store: self.store.clone() }));
        }
        for ctx in &self.contexts {
            let Some(relation) = relation(&dest, &ctx.root) else { continue };
            let within = dest.strip_prefix(&ctx.root).map(slashed).unwrap_or_default();
            if relation != Relation::Inside || !ctx.ignore.excludes_all_below(&within) {
                return Ok(Err(Refusal::Context {
                    relation,
                    context: ctx.root.clone(),
                    ignore_file: ctx.ignore_file.clone(),
                    within,
                }));
            }
        }
        Ok(Ok(()))
    }
}

/// `path` with `/` between its components.
fn slashed(path: &Path) -> String {
    path.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// How `dest` lies relative to `dir` (both resolved), if they overlap.
fn relation(dest: &Path, dir: &Path) -> Option<Relation> {
    if dest == dir {
        Some(Relation::Is)
    } else if dest.starts_with(dir) {
        Some(Relation::Inside)
    } else if dir.starts_with(dest) {
        Some(Relation::Holds)
    } else {
        None
    }
}

/// `path` as the system would resolve it: absolute, symlinks followed, `.` and `..` applied.
/// The part that does not exist yet is appended to its nearest existing ancestor, resolved
/// (a `..` there removes the component before it, as it will once the directories exist).
pub(crate) fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let components: Vec<Component<'_>> = absolute.components().collect();
    for existing in (1..=components.len()).rev() {
        let prefix: PathBuf = components[..existing].iter().collect();
        let Ok(mut resolved) = std::fs::canonicalize(&prefix) else { continue };
        for component in &components[existing..] {
            match component {
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => resolved.push(name),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
        return Ok(resolved);
    }
    Ok(absolute)
}

/// What is at a destination already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing.
    Missing,
    /// An empty directory.
    EmptyDir,
    /// A directory with an `oci-layout` file.
    Layout,
    /// A directory holding anything else.
    OtherDir,
    /// Something that is not a directory (a symlink to one counts as the directory).
    NotDir,
}

/// Look at `dest`, following a symlink there.
pub(crate) fn inspect(dest: &Path) -> std::io::Result<Found> {
    let meta = match std::fs::metadata(dest) {
        Ok(m) => m,
        // A symlink that leads nowhere is something, not nothing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(if std::fs::symlink_metadata(dest).is_ok() { Found::NotDir } else { Found::Missing });
        }
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Ok(Found::NotDir);
    }
    if std::fs::read_dir(dest)?.next().is_none() {
        return Ok(Found::EmptyDir);
    }
    let layout = std::fs::symlink_metadata(dest.join("oci-layout")).is_ok_and(|m| m.is_file());
    Ok(if layout { Found::Layout } else { Found::OtherDir })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_resolved_before_comparing() {
        let tmp = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(base.join("store/blobs")).unwrap();
        std::fs::create_dir_all(base.join("ctx/src")).unwrap();
        std::os::unix::fs::symlink(base.join("store"), base.join("link")).unwrap();
        let ignore = Matcher::from_dockerignore("out\nbuild\n!build/keep\n").unwrap();
        let guard = Protected::new(&base.join("store"), Some((&base.join("ctx"), &ignore, None))).unwrap();
        let check = |p: &str| guard.check(&base.join(p)).unwrap();
        let store = |relation| Err(Refusal::Store { relation, store: base.join("store") });
        assert_eq!(check("store"), store(Relation::Is));
        assert_eq!(check("link"), store(Relation::Is), "a link to the store is the store");
        assert_eq!(check("link/new/deeper"), store(Relation::Inside));
        assert_eq!(check("store/blobs/../x"), store(Relation::Inside));
        assert_eq!(check("ctx/missing/../../store"), store(Relation::Is));
        assert_eq!(check("."), store(Relation::Holds));
        let context = |relation, within: &str| {
            Err(Refusal::Context {
                relation,
                context: base.join("ctx"),
                ignore_file: base.join("ctx/.dockerignore"),
                within: within.into(),
            })
        };
        assert_eq!(check("ctx"), context(Relation::Is, ""));
        assert_eq!(check("ctx/src/gen"), context(Relation::Inside, "src/gen"));
        assert_eq!(check("ctx/build"), context(Relation::Inside, "build"), "something below is read again");
        assert_eq!(check("ctx/out"), Ok(()));
        assert_eq!(check("ctx/out/deeper"), Ok(()));
        assert_eq!(check("elsewhere"), Ok(()));
        let shown = context(Relation::Inside, "a*b").unwrap_err().to_string();
        assert!(shown.contains(r#"add the line "a\*b" at the end of"#), "{shown}");
    }

    #[test]
    fn what_is_at_a_destination() {
        let tmp = tempfile::tempdir().unwrap();
        let p = |name: &str| tmp.path().join(name);
        std::fs::create_dir(p("empty")).unwrap();
        std::fs::create_dir(p("layout")).unwrap();
        std::fs::write(p("layout/oci-layout"), "{}").unwrap();
        std::fs::create_dir(p("other")).unwrap();
        std::fs::write(p("other/file"), "").unwrap();
        std::fs::write(p("file"), "").unwrap();
        std::os::unix::fs::symlink(p("nowhere"), p("dangling")).unwrap();
        std::os::unix::fs::symlink(p("layout"), p("to-layout")).unwrap();
        for (name, found) in [
            ("missing", Found::Missing),
            ("empty", Found::EmptyDir),
            ("layout", Found::Layout),
            ("to-layout", Found::Layout),
            ("other", Found::OtherDir),
            ("file", Found::NotDir),
            ("dangling", Found::NotDir),
        ] {
            assert_eq!(inspect(&p(name)).unwrap(), found, "{name}");
        }
    }
}
