//! Opening files that may be hostile: bounded reads, and regular files only (a FIFO or a
//! device is refused without waiting on it, a symlink followed only when asked).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// Read all of `reader` if it holds at most `limit` bytes; `None` if it holds more. At most
/// `limit + 1` bytes are read, so a stream that never ends costs no more than that.
///
/// # Errors
/// What reading fails with.
pub fn read_bounded(reader: &mut dyn Read, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// How messages name a file type that is not a regular file.
pub fn file_kind(file_type: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Whether [`open_regular`] follows a symlink at the end of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Follow it (a path the user gave).
    Follow,
    /// Refuse it (`O_NOFOLLOW`).
    Refuse,
}

/// Open `path` for reading if it is a regular file: a FIFO or device is opened without
/// waiting (`O_NONBLOCK`), then refused after `fstat`; a symlink as the last component is
/// followed or refused as `symlinks` says. The error names what the path is instead.
pub fn open_regular(path: &Path, symlinks: Symlinks) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let nofollow = if symlinks == Symlinks::Refuse { libc::O_NOFOLLOW } else { 0 };
    let file = OpenOptions::new().read(true).custom_flags(nofollow | libc::O_NONBLOCK).open(path).map_err(|e| {
        match e.raw_os_error() {
            // What O_NOFOLLOW reports for a symlink.
            Some(libc::ELOOP) if symlinks == Symlinks::Refuse => {
                io::Error::other("it is a symbolic link, which kiln does not follow here")
            }
            _ => e,
        }
    })?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(io::Error::other(format!("it is {}, not a regular file", file_kind(file_type))));
    }
    Ok(file)
}
