//! COPY and ADD to one IR copy: each source expanded and checked (a URL only for ADD,
//! nothing outside the build context), the destination, `--chown`, `--chmod`, `--exclude`
//! and ADD's own options.
//!
//! It owns COPY and ADD only; it must never touch another instruction's state.

use super::*;

impl Dispatch<'_, '_> {
    pub(super) fn dispatch_copy(
        &mut self,
        state: &StageState,
        copy: &CopyCommand,
        from: Option<CopySource>,
        span: Span,
    ) -> Result<(Op, String), ()> {
        let keyword = if copy.is_add { "ADD" } else { "COPY" };
        let mut sources = Vec::new();
        for s in &copy.sources {
            let s = self.expand(state, s, span)?;
            let is_url = s.starts_with("http://") || s.starts_with("https://");
            if is_url && !copy.is_add {
                self.fail("source can't be a URL for COPY".into(), span, Some("use ADD to download a URL".into()));
                return Err(());
            }
            if from.is_none() && !is_url && kiln_ir::escapes_root(&s) {
                self.fail(
                    format!("forbidden path outside the build context: {s}"),
                    span,
                    Some(
                        "sources are relative to the build context and cannot leave it; move the file into the context"
                            .into(),
                    ),
                );
                return Err(());
            }
            sources.push(s);
        }
        let mut inline = Vec::new();
        for content in &copy.contents {
            let data = if content.expand {
                let mut raw = Lexer::new('\\');
                raw.skip_process_quotes = true;
                match raw.process_word(&content.data, state) {
                    Ok(d) => d,
                    Err(e) => {
                        self.fail(e.to_string(), span, None);
                        return Err(());
                    }
                }
            } else {
                content.data.clone()
            };
            inline.push(InlineFile { name: content.path.clone(), contents: data, mode: 0o644 });
        }
        let dest = self.expand(state, &copy.dest, span)?;
        if dest.contains('\0') || sources.iter().any(|s| s.contains('\0')) {
            self.nul(&format!("{keyword} path"), span);
            return Err(());
        }
        let chown = match &copy.chown {
            Some(c) => Some(self.expand(state, c, span)?),
            None => None,
        };
        let chmod = match &copy.chmod {
            Some(c) => Some(self.expand(state, c, span)?),
            None => None,
        };
        let mut exclude = Vec::new();
        for pattern in &copy.excludes {
            exclude.push(self.expand(state, pattern, span)?);
        }
        let add = copy.is_add.then(|| AddOptions {
            keep_git_dir: copy.keep_git_dir,
            checksum: copy.checksum.clone(),
            unpack: copy.unpack,
        });
        if copy.checksum.is_some() && sources.iter().any(|s| !s.contains("://") && !s.starts_with("git@")) {
            self.fail(
                "checksum can't be specified for local sources".into(),
                span,
                Some("--checksum applies to URL and git sources only".into()),
            );
            return Err(());
        }
        let mut created = keyword.to_string();
        if copy.parents {
            created.push_str(" --parents");
        }
        if let Some(c) = &chown {
            created.push_str(&format!(" --chown={c}"));
        }
        if let Some(c) = &chmod {
            created.push_str(&format!(" --chmod={c}"));
        }
        for s in &sources {
            created.push(' ');
            created.push_str(s);
        }
        for f in &inline {
            created.push_str(&format!(" <<{}", f.name));
        }
        created.push(' ');
        created.push_str(&dest);
        Ok((
            Op::Copy(CopyFiles {
                from: from.unwrap_or(CopySource::Context),
                sources,
                inline_sources: inline,
                dest,
                chown,
                chmod,
                link: copy.link,
                parents: copy.parents,
                exclude,
                add,
            }),
            created,
        ))
    }
}
