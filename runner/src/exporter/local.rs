//! `type=local`: the image's final filesystem written into a directory, merged with what is
//! there, as BuildKit's local exporter does.
//!
//! Each path the image has replaces the file or link of that path; every other file stays.
//! A path the image and the directory disagree on the kind of (a directory on one side, a
//! file or link on the other) is refused before anything is written: replacing a directory
//! would delete what it holds, and writing into a link would write elsewhere. Every write goes
//! through cap-std capabilities on the destination, and directories are opened without
//! following links, so nothing can be written outside it.
//!
//! Files appear whole (see [`super::newfile`]). An interrupted or failed export leaves the
//! files written so far and nothing half-written; it never deletes anything.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use cap_std::fs::Dir;

use super::Problem;
use super::newfile::{Cancellable, NewFile, open_dir_nofollow, replace_symlink, set_dir_mode};
use crate::rootfs::{Kind, Node, Tree};

/// What [`write`] left out or changed.
#[derive(Debug, Default)]
pub(super) struct LocalNotes {
    /// Device nodes and FIFOs not written.
    pub skipped: usize,
    /// Files written without their setuid or setgid bit.
    pub unprivileged: usize,
}

/// A path where the destination and the image disagree on what kind of entry it is.
struct Conflict {
    path: PathBuf,
    here: &'static str,
    image: &'static str,
}

/// What kind of entry `node` is, in words.
fn kind_of(node: &Node) -> &'static str {
    match node.kind {
        Kind::Dir(_) => "directory",
        Kind::File(_) => "file",
        Kind::Symlink(_) => "symlink",
        _ => "special file",
    }
}

/// What kind of entry is on disk, in words.
fn kind_here(file_type: cap_std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_file() {
        "file"
    } else {
        "special file"
    }
}

/// Write the final filesystem into `dest` (created if missing). Owners cannot be set without
/// privileges and are left as the current user; devices and FIFOs are skipped, and setuid and
/// setgid bits are dropped (both counted): an image must not hand whoever runs kiln a program
/// that runs as them (or as root, when that is who runs kiln).
pub(super) fn write(tree: &Tree, dest: &Path) -> Result<LocalNotes, Problem> {
    let io_err = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Problem::Io { action, path, source }
    };
    std::fs::create_dir_all(dest).map_err(io_err("create", dest))?;
    let root = Dir::open_ambient_dir(dest, cap_std::ambient_authority()).map_err(io_err("open", dest))?;
    let Some(Node { kind: Kind::Dir(children), .. }) = tree.get(&[]) else {
        return Ok(LocalNotes::default());
    };

    // First look, then write: a conflict anywhere leaves the destination untouched.
    let mut conflicts = Vec::new();
    survey(&root, dest, Path::new(""), children, &mut conflicts)?;
    if let Some(first) = conflicts.first() {
        return Err(Problem::Conflict {
            path: first.path.clone(),
            here: first.here,
            image: first.image,
            more: conflicts.len() - 1,
        });
    }
    let mut notes = LocalNotes::default();
    write_dir(&root, dest, Path::new(""), children, &mut notes)?;
    Ok(notes)
}

/// Record every path under `rel` where the destination's kind of entry and the image's differ.
/// Directories are read by path from the root, so no descriptor is held per level.
fn survey(
    root: &Dir,
    dest: &Path,
    rel: &Path,
    children: &BTreeMap<String, Node>,
    out: &mut Vec<Conflict>,
) -> Result<(), Problem> {
    for (name, node) in children {
        let path = rel.join(name);
        let here = match root.symlink_metadata(&path) {
            Ok(meta) => meta.file_type(),
            // Nothing there: all of it is new.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(Problem::Io { action: "look at", path: dest.join(&path), source }),
        };
        let conflict = match &node.kind {
            Kind::Dir(grandchildren) if here.is_dir() => {
                survey(root, dest, &path, grandchildren, out)?;
                false
            }
            Kind::Dir(_) => true,
            Kind::File(_) | Kind::Symlink(_) => here.is_dir(),
            // Never written.
            _ => false,
        };
        if conflict {
            out.push(Conflict { path: dest.join(&path), here: kind_here(here), image: kind_of(node) });
        }
    }
    Ok(())
}

/// Write the entries of the directory `rel` (which exists): its files and links through one
/// capability on it, then each subdirectory, whose mode is set once its entries are written
/// (so a read-only directory does not block its own entries).
fn write_dir(
    root: &Dir,
    dest: &Path,
    rel: &Path,
    children: &BTreeMap<String, Node>,
    notes: &mut LocalNotes,
) -> Result<(), Problem> {
    let shown = |name: &str| dest.join(rel).join(name);
    let interrupted = || Problem::Interrupted { left: "the files written so far are whole; the rest were not written" };
    {
        let dir =
            open_below(root, rel).map_err(|source| Problem::Io { action: "open", path: dest.join(rel), source })?;
        for (name, node) in children {
            if crate::cancel::requested() {
                return Err(interrupted());
            }
            let written = match &node.kind {
                Kind::Dir(_) => continue,
                Kind::File(data) => (|| {
                    let mut new = NewFile::create(&dir)?;
                    let mut content = Cancellable(data.content.open()?);
                    crate::scratch::copy_sparse(&mut content, new.file())?;
                    if node.meta.mode & 0o6000 != 0 {
                        notes.unprivileged += 1;
                    }
                    new.file().set_permissions(
                        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(node.meta.mode & 0o1777),
                    )?;
                    new.replace(name)
                })(),
                Kind::Symlink(target) => replace_symlink(&dir, target, name),
                _ => {
                    notes.skipped += 1;
                    Ok(())
                }
            };
            written.map_err(|source| {
                if crate::cancel::requested() {
                    interrupted()
                } else {
                    Problem::Io { action: "write", path: shown(name), source }
                }
            })?;
        }
    }
    for (name, node) in children {
        let Kind::Dir(grandchildren) = &node.kind else { continue };
        if crate::cancel::requested() {
            return Err(interrupted());
        }
        let path = rel.join(name);
        let io = |action| {
            let path = dest.join(&path);
            move |source| Problem::Io { action, path, source }
        };
        match root.create_dir(&path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            created => created.map_err(io("create"))?,
        }
        // Writable while its entries are written, whatever it was before.
        let dir = open_below(root, &path).map_err(io("open"))?;
        set_dir_mode(&dir, (node.meta.mode & 0o7777) | 0o700).map_err(io("set permissions of"))?;
        drop(dir);
        write_dir(root, dest, &path, grandchildren, notes)?;
        let dir = open_below(root, &path).map_err(io("open"))?;
        set_dir_mode(&dir, node.meta.mode & 0o7777).map_err(io("set permissions of"))?;
    }
    Ok(())
}

/// Open the directory `rel` below `root`, one component at a time, following no link. At
/// most two descriptors are open at once, however deep it is.
fn open_below(root: &Dir, rel: &Path) -> io::Result<Dir> {
    rel.components()
        .filter_map(|c| c.as_os_str().to_str())
        .try_fold(root.try_clone()?, |dir, name| open_dir_nofollow(&dir, name))
}
