//! Files and links that appear whole or not at all, in a directory opened as a cap-std
//! capability, and the reader that stops an export when the user presses Ctrl-C.
//!
//! A [`NewFile`] is created without a name (Linux's `O_TMPFILE`), so a process killed while
//! writing it leaves nothing behind; it is named only once written, by a link under a
//! temporary name and a rename over the final one, so the temporary name exists for the time
//! of two system calls. Where the filesystem cannot make unnamed files (some network and FUSE
//! filesystems), or `/proc` is missing, it is named `.kiln-output-PID-N` from the start and
//! removed if it is dropped unfinished.
//!
//! Nothing here removes or replaces a directory: a rename over one fails.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

/// The prefix of every temporary name kiln gives a file next to an output.
pub(crate) const TEMP_PREFIX: &str = ".kiln-output-";

/// A temporary name no other kiln process uses (the process ID) and not yet used by this one.
fn temp_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{TEMP_PREFIX}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Run `make` with fresh temporary names until one is free.
fn with_free_name<T>(mut make: impl FnMut(&str) -> io::Result<T>) -> io::Result<(T, String)> {
    loop {
        let name = temp_name();
        match make(&name) {
            Ok(made) => return Ok((made, name)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A file being written in a directory; see the module documentation.
pub(crate) struct NewFile<'d> {
    dir: &'d Dir,
    file: std::fs::File,
    /// The temporary name, when the file has one.
    name: Option<String>,
}

impl<'d> NewFile<'d> {
    /// Start a file in `dir`, readable and writable by its owner only until
    /// [`Self::file`]'s permissions are set.
    pub(crate) fn create(dir: &'d Dir) -> io::Result<Self> {
        if rustix_linux_procfs::proc_self_fd().is_ok() {
            let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
            match rustix::fs::openat(dir, ".", flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => return Ok(NewFile { dir, file: std::fs::File::from(fd), name: None }),
                // The filesystem cannot make unnamed files.
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::NOENT | Errno::INVAL) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Self::create_named(dir)
    }

    /// Start a file in `dir` under a temporary name.
    fn create_named(dir: &'d Dir) -> io::Result<Self> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).mode(0o600);
        let (file, name) = with_free_name(|name| dir.open_with(name, &options))?;
        Ok(NewFile { dir, file: file.into_std(), name: Some(name) })
    }

    /// The open file, to write and to set permissions on.
    pub(crate) fn file(&mut self) -> &mut std::fs::File {
        &mut self.file
    }

    /// Give the file a temporary name in its directory (an unnamed one gets one now).
    fn named(&mut self) -> io::Result<String> {
        if let Some(name) = &self.name {
            return Ok(name.clone());
        }
        let (_, name) = with_free_name(|name| self.link_as(name))?;
        self.name = Some(name.clone());
        Ok(name)
    }

    /// Link the unnamed file as `name` (which must not exist).
    fn link_as(&self, name: &str) -> io::Result<()> {
        let fds = rustix_linux_procfs::proc_self_fd()?;
        let fd = rustix::path::DecInt::from_fd(&self.file);
        rustix::fs::linkat(fds, fd.as_c_str(), self.dir, name, AtFlags::SYMLINK_FOLLOW).map_err(io::Error::from)
    }

    /// Name the file `name`, replacing a file or link of that name (never a directory: that
    /// fails).
    pub(crate) fn replace(mut self, name: &str) -> io::Result<()> {
        let temp = self.named()?;
        self.dir.rename(&temp, self.dir, name)?;
        self.name = None;
        Ok(())
    }

    /// Name the file `name` unless something has that name already: then `Ok(false)`, and
    /// the new file is gone.
    pub(crate) fn add(self, name: &str) -> io::Result<bool> {
        let result = match &self.name {
            None => self.link_as(name),
            Some(temp) => self.dir.hard_link(temp, self.dir, name),
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
        // Dropping `self` removes the temporary name, if there is one.
    }
}

impl Drop for NewFile<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let _ = self.dir.remove_file(name);
        }
    }
}

/// Make `name` in `dir` a symlink to `target`, replacing a file or link of that name (never
/// a directory: that fails).
pub(crate) fn replace_symlink(dir: &Dir, target: &str, name: &str) -> io::Result<()> {
    match dir.symlink_contents(target, name) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        done => return done,
    }
    let ((), temp) = with_free_name(|temp| dir.symlink_contents(target, temp))?;
    dir.rename(&temp, dir, name).inspect_err(|_| {
        let _ = dir.remove_file(&temp);
    })
}

/// Open the directory `name` in `dir`, refusing a symlink (a single component, so no link
/// anywhere on the way is followed either).
pub(crate) fn open_dir_nofollow(dir: &Dir, name: &str) -> io::Result<Dir> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    Ok(Dir::from_std_file(std::fs::File::from(fd)))
}

/// Set the permission bits of an open directory.
pub(crate) fn set_dir_mode(dir: &Dir, mode: u32) -> io::Result<()> {
    rustix::fs::fchmod(dir, Mode::from_raw_mode(mode)).map_err(io::Error::from)
}

/// The error a [`Cancellable`] reader returns once Ctrl-C was pressed.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub(crate) struct Cancelled;

/// A reader that fails with [`Cancelled`] once the build was asked to stop, so a long copy
/// ends within one buffer.
pub(crate) struct Cancellable<R>(pub R);

impl<R: Read> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if crate::cancel::requested() {
            return Err(io::Error::other(Cancelled));
        }
        self.0.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn names(dir: &Dir) -> Vec<String> {
        let mut names: Vec<String> =
            dir.entries().unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_new_file_appears_whole_or_not_at_all() {
        a_new_file_appears_whole_or_not_at_all_with(|dir| NewFile::create(dir));
    }

    #[test]
    fn a_new_file_with_a_temporary_name_appears_whole_or_not_at_all() {
        a_new_file_appears_whole_or_not_at_all_with(|dir| NewFile::create_named(dir));
    }

    fn a_new_file_appears_whole_or_not_at_all_with(create: for<'d> fn(&'d Dir) -> io::Result<NewFile<'d>>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        // Dropped unfinished: nothing.
        let mut new = create(&dir).unwrap();
        new.file().write_all(b"half").unwrap();
        drop(new);
        assert!(names(&dir).is_empty());
        // Replacing a file and a link (the link itself, not what it points at).
        dir.write("target", "kept").unwrap();
        dir.symlink_contents("target", "link").unwrap();
        for name in ["a", "a", "link"] {
            let mut new = create(&dir).unwrap();
            new.file().write_all(name.as_bytes()).unwrap();
            new.replace(name).unwrap();
        }
        assert_eq!(dir.read_to_string("a").unwrap(), "a");
        assert_eq!(dir.read_to_string("link").unwrap(), "link");
        assert!(dir.symlink_metadata("link").unwrap().is_file());
        assert_eq!(dir.read_to_string("target").unwrap(), "kept");
        // Adding never replaces.
        let mut new = create(&dir).unwrap();
        new.file().write_all(b"other").unwrap();
        assert!(!new.add("a").unwrap());
        assert_eq!(dir.read_to_string("a").unwrap(), "a");
        let new = create(&dir).unwrap();
        assert!(new.add("b").unwrap());
        // A directory is never replaced.
        dir.create_dir("d").unwrap();
        assert!(create(&dir).unwrap().replace("d").is_err());
        assert!(replace_symlink(&dir, "x", "d").is_err());
        replace_symlink(&dir, "elsewhere", "a").unwrap();
        assert_eq!(dir.read_link_contents("a").unwrap().to_str(), Some("elsewhere"));
        assert_eq!(names(&dir), ["a", "b", "d", "link", "target"], "no temporary name is left");
        // Links are not followed when opening a directory.
        dir.symlink_contents("d", "dlink").unwrap();
        assert!(open_dir_nofollow(&dir, "dlink").is_err());
        assert!(open_dir_nofollow(&dir, "d").is_ok());
    }
}
