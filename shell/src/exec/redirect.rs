//! Redirections: files (`<`, `>`, `>>`, `>|`, `<>`), duplicating and closing (`n>&m`,
//! `n>&-`), here-documents and here-strings, applied to the shell's descriptor table, with
//! `noclobber`.
//!
//! It owns opening and wiring descriptors; it must never run a command.

use super::*;

impl Shell {
    /// Apply redirections to the descriptor table, in order.
    pub fn redirect_all<'a>(&mut self, redirects: impl Iterator<Item = &'a IoRedirect>) -> Result<(), String> {
        for redirect in redirects {
            self.redirect(redirect)?;
        }
        Ok(())
    }

    pub(super) fn redirect(&mut self, redirect: &IoRedirect) -> Result<(), String> {
        let flow = |_: Flow| "expansion failed".to_string();
        match redirect {
            IoRedirect::File(fd, kind, target) => {
                let default_fd = match kind {
                    IoFileRedirectKind::Read
                    | IoFileRedirectKind::ReadAndWrite
                    | IoFileRedirectKind::DuplicateInput => 0,
                    _ => 1,
                };
                let n = fd.map(|f| f as usize).unwrap_or(default_fd);
                if n > 9 {
                    return Err(format!("{n}: bad file descriptor (0-9 only)"));
                }
                let target_word = match target {
                    ast::IoFileRedirectTarget::Filename(word) | ast::IoFileRedirectTarget::Duplicate(word) => {
                        self.expand_string(&word.value).map_err(flow)?
                    }
                    ast::IoFileRedirectTarget::Fd(fd) => fd.to_string(),
                    ast::IoFileRedirectTarget::ProcessSubstitution(..) => {
                        return Err("process substitution is bash syntax; kiln's sh is POSIX".into());
                    }
                };
                match kind {
                    IoFileRedirectKind::DuplicateInput | IoFileRedirectKind::DuplicateOutput => {
                        if target_word == "-" {
                            self.fds.set(n, Fd::Closed);
                            return Ok(());
                        }
                        let source: usize =
                            target_word.parse().map_err(|_| format!("{target_word}: bad file descriptor"))?;
                        let fd = self.fds.get(source).clone();
                        if matches!(fd, Fd::Closed) {
                            return Err(format!("{source}: bad file descriptor"));
                        }
                        self.fds.set(n, fd);
                    }
                    IoFileRedirectKind::Read => {
                        let fd = self.open_read(&target_word)?;
                        self.fds.set(n, fd);
                    }
                    IoFileRedirectKind::Write | IoFileRedirectKind::Clobber | IoFileRedirectKind::Append => {
                        let append = matches!(kind, IoFileRedirectKind::Append);
                        let clobber_check = matches!(kind, IoFileRedirectKind::Write) && self.opts.noclobber;
                        let fd = self.open_write(&target_word, append, clobber_check)?;
                        self.fds.set(n, fd);
                    }
                    IoFileRedirectKind::ReadAndWrite => {
                        let path = self.abs(&target_word);
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&path)
                            .map_err(|e| format!("cannot open {target_word}: {}", io_reason(&e)))?;
                        self.fds.set(n, Fd::ReadFile(path.into(), Rc::new(RefCell::new(None))));
                    }
                }
            }
            IoRedirect::HereDocument(fd, doc) => {
                let n = fd.map(|f| f as usize).unwrap_or(0);
                let mut body = if doc.requires_expansion {
                    self.expand_heredoc(&doc.doc.value).map_err(flow)?
                } else {
                    doc.doc.value.clone()
                };
                if doc.remove_tabs {
                    body = body.lines().map(|l| l.trim_start_matches('\t')).collect::<Vec<_>>().join("\n")
                        + if body.ends_with('\n') { "\n" } else { "" };
                }
                self.fds.set(n, Fd::Bytes(Rc::new(RefCell::new(Reader { data: body.into_bytes(), pos: 0 }))));
            }
            IoRedirect::HereString(fd, word) => {
                let n = fd.map(|f| f as usize).unwrap_or(0);
                let mut text = self.expand_string(&word.value).map_err(flow)?;
                text.push('\n');
                self.fds.set(n, Fd::Bytes(Rc::new(RefCell::new(Reader { data: text.into_bytes(), pos: 0 }))));
            }
            IoRedirect::OutputAndError(word, append) => {
                let target = self.expand_string(&word.value).map_err(flow)?;
                let fd = self.open_write(&target, *append, false)?;
                self.fds.set(1, fd.clone());
                self.fds.set(2, fd);
            }
        }
        Ok(())
    }

    fn open_read(&self, target: &str) -> Result<Fd, String> {
        if target == "/dev/null" {
            return Ok(Fd::Null);
        }
        let path = self.abs(target);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => Err(format!("cannot open {target}: Is a directory")),
            Ok(_) => Ok(Fd::ReadFile(path.into(), Rc::new(RefCell::new(None)))),
            Err(e) => Err(format!("cannot open {target}: {}", io_reason(&e))),
        }
    }

    fn open_write(&self, target: &str, append: bool, noclobber: bool) -> Result<Fd, String> {
        if target == "/dev/null" {
            return Ok(Fd::Null);
        }
        if target == "/dev/stdout" {
            return Ok(self.fds.get(1).clone());
        }
        if target == "/dev/stderr" {
            return Ok(self.fds.get(2).clone());
        }
        let path = self.abs(target);
        if noclobber && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            return Err(format!("cannot create {target}: File exists"));
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true);
        if append {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        options.open(&path).map_err(|e| format!("cannot create {target}: {}", io_reason(&e)))?;
        Ok(Fd::WriteFile(path.into()))
    }
}
