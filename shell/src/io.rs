//! The shell's file descriptors: what each of 0-9 refers to, how builtins read and write
//! through them, and how they are handed to a started program.
//!
//! A WASI program has no descriptors to pass on, so the table is the shell's own model:
//! files by path (created or truncated when the redirection is made, appended to after that,
//! so several writers keep their order), in-memory buffers for pipes between builtins and
//! command substitution, and the shell's real streams. This module never runs commands.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;

use crate::sys::{Input, Output};

/// Bytes the shell holds for reading (a here-document, a finished pipeline stage, a file
/// a builtin has started to read), with a read position shared by every copy of the fd.
#[derive(Debug, Default)]
pub struct Reader {
    /// The bytes.
    pub data: Vec<u8>,
    /// How far they have been read.
    pub pos: usize,
}

/// What one descriptor refers to.
#[derive(Debug, Clone)]
pub enum Fd {
    /// Not open.
    Closed,
    /// The shell's own standard stream of this number (0, 1 or 2).
    Std(u8),
    /// `/dev/null`.
    Null,
    /// A file opened for writing (already created or truncated): writes append.
    WriteFile(Rc<str>),
    /// A file opened for reading and not read by the shell yet (a program can get the path).
    ReadFile(Rc<str>, Rc<RefCell<Option<Reader>>>),
    /// Bytes collected in memory (a pipe into a builtin, command substitution).
    Buffer(Rc<RefCell<Vec<u8>>>),
    /// Bytes to read from memory.
    Bytes(Rc<RefCell<Reader>>),
}

/// The shell's descriptor table.
#[derive(Debug, Clone)]
pub struct Fds(pub Vec<Fd>);

impl Default for Fds {
    fn default() -> Self {
        let mut fds = vec![Fd::Closed; 10];
        fds[0] = Fd::Std(0);
        fds[1] = Fd::Std(1);
        fds[2] = Fd::Std(2);
        Fds(fds)
    }
}

impl Fds {
    /// The descriptor `n` (closed when out of range).
    pub fn get(&self, n: usize) -> &Fd {
        self.0.get(n).unwrap_or(&Fd::Closed)
    }

    /// Point `n` at `fd`.
    pub fn set(&mut self, n: usize, fd: Fd) {
        if n >= self.0.len() {
            self.0.resize(n + 1, Fd::Closed);
        }
        self.0[n] = fd;
    }

    /// Write through descriptor `n`. Errors are reported by the caller (a closed stdout).
    pub fn write(&self, n: usize, bytes: &[u8]) -> std::io::Result<()> {
        match self.get(n) {
            Fd::Closed | Fd::ReadFile(..) | Fd::Bytes(_) => {
                Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "bad file descriptor"))
            }
            Fd::Std(1) => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            Fd::Std(_) => {
                let mut err = std::io::stderr().lock();
                err.write_all(bytes)?;
                err.flush()
            }
            Fd::Null => Ok(()),
            Fd::WriteFile(path) => std::fs::OpenOptions::new().append(true).open(&**path)?.write_all(bytes),
            Fd::Buffer(buffer) => {
                buffer.borrow_mut().extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Read one byte from descriptor `n` (`None` at end of file). `read` goes byte by byte,
    /// as shells do, so that what it leaves stays for the next reader.
    pub fn read_byte(&self, n: usize) -> std::io::Result<Option<u8>> {
        let from_reader = |reader: &mut Reader| {
            let byte = reader.data.get(reader.pos).copied();
            if byte.is_some() {
                reader.pos += 1;
            }
            byte
        };
        match self.get(n) {
            Fd::Std(0) => {
                let mut byte = [0u8];
                match std::io::stdin().read(&mut byte)? {
                    0 => Ok(None),
                    _ => Ok(Some(byte[0])),
                }
            }
            Fd::ReadFile(path, loaded) => {
                let mut loaded = loaded.borrow_mut();
                if loaded.is_none() {
                    *loaded = Some(Reader { data: std::fs::read(&**path)?, pos: 0 });
                }
                Ok(loaded.as_mut().and_then(from_reader))
            }
            Fd::Bytes(reader) => Ok(from_reader(&mut reader.borrow_mut())),
            Fd::Null => Ok(None),
            _ => Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "bad file descriptor")),
        }
    }

    /// How a started program's standard input is connected to descriptor `n`.
    pub fn input(&self, n: usize) -> Input {
        match self.get(n) {
            Fd::Std(0) => Input::Inherit,
            Fd::ReadFile(path, loaded) => match &*loaded.borrow() {
                None => Input::File(path.to_string()),
                Some(reader) => Input::Feed(reader.data[reader.pos..].to_vec()),
            },
            Fd::Bytes(reader) => {
                // The program gets all that is left, but the shell cannot see how much of it
                // the program read: the position stays, so that `while read l; do prog;
                // done <<EOF` goes on with the next line after a program that reads nothing
                // (the usual case), as it would with a real file descriptor.
                let reader = reader.borrow();
                Input::Feed(reader.data[reader.pos..].to_vec())
            }
            _ => Input::Null,
        }
    }

    /// How a started program's output `stream` (1 or 2) is connected to descriptor `n`;
    /// `None` when the shell must carry the bytes itself (see [`Fds::collect`]).
    pub fn output(&self, stream: u8, n: usize) -> Option<Output<'static>> {
        match self.get(n) {
            Fd::Std(s) if *s == stream => Some(Output::Inherit),
            Fd::Null | Fd::Closed => Some(Output::Null),
            Fd::WriteFile(path) => Some(Output::Append(path.to_string())),
            _ => None,
        }
    }
}
