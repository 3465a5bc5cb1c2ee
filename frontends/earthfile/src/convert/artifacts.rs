//! COPY and SAVE ARTIFACT: files from the context or from another target's artifacts, the
//! small stage that lays out renamed or wildcard artifacts as Earthly does, and where
//! `COPY +target/path` reads from.
//!
//! It owns artifact resolution; path cleaning and matching are `paths`', and it must never
//! instantiate targets itself (it asks `targets`).

use super::*;

impl<'a> Converter<'a> {
    pub(super) fn copy(&mut self, ev: &mut Eval, s: &Statement, copy: command::Copy<'_>) {
        let mut sources = Vec::new();
        for src in &copy.sources {
            let Some(text) = self.expand(ev, &src.text, src.span) else { return };
            sources.push((text, src));
        }
        let artifacts = sources.iter().filter(|(t, _)| reference::is_reference(t)).count();
        if artifacts != 0 && artifacts != sources.len() {
            return self.fail(
                "COPY cannot mix artifacts (+target/path) and files of the build context",
                s.span,
                "split it into two COPY commands",
                "invalid-arguments",
            );
        }
        let Some(mut dest) = self.expand(ev, &copy.dest.text, copy.dest.span) else { return };
        if sources.len() > 1 && !dest.ends_with('/') {
            // Several sources always go into a directory.
            dest.push('/');
        }
        let chown = match copy.flags.value("chown") {
            Some((raw, span)) => match self.expand(ev, raw, span) {
                Some(v) => Some(v),
                None => return,
            },
            None => None,
        };
        let chmod = match copy.flags.value("chmod") {
            Some((raw, span)) => match self.expand(ev, raw, span) {
                Some(v) => Some(v),
                None => return,
            },
            None => None,
        };
        let dir = copy.flags.on("dir");
        let keep_own = copy.flags.on("keep-own");
        self.ensure_segment(ev, s.span);
        let user = ev.seg.as_ref().map(|seg| seg.state.user.clone()).unwrap_or_default();

        if artifacts == 0 {
            let mut paths = Vec::new();
            for (text, src) in &sources {
                if kiln_ir::escapes_root(text) {
                    return self.fail(
                        format!("COPY source {text} is outside the build context"),
                        src.span,
                        "sources are relative to the directory of the Earthfile and cannot leave it",
                        "outside-context",
                    );
                }
                paths.push(text.clone());
            }
            let (paths, parents) = if dir { dir_sources(paths, &dest) } else { (paths, false) };
            // Earthly gives copied files to USER (root without one); kiln's context files are root's.
            let owner = chown.clone().or_else(|| (!keep_own && !user.is_empty()).then(|| user.clone()));
            let files = CopyFiles {
                from: CopySource::Context,
                sources: paths,
                inline_sources: Vec::new(),
                dest: dest.clone(),
                chown: owner,
                chmod: chmod.clone(),
                link: false,
                parents,
                exclude: Vec::new(),
                add: None,
            };
            self.before_file_change(ev, s.span);
            let created = copy_created(&files);
            self.push(ev, s, Op::Copy(files), created);
            return;
        }

        // Artifacts: one copy per stage they come from, in order.
        let mut groups: Vec<(CopySource, Vec<String>, Option<String>)> = Vec::new();
        for (text, src) in &sources {
            let (target, path) = match reference::artifact(text) {
                Ok(r) => r,
                Err(e) => return self.fail(e.to_string(), src.span, e.hint(), "unsupported-reference"),
            };
            let Some(overrides) = self.child_overrides(ev, &copy.flags, &src.args, copy.flags.on("pass-args")) else {
                return;
            };
            let Some(key) = self.target_instance(&target, src.span, overrides) else { return };
            let path = clean_relative(&path);
            let (from, source, own) = match resolve_artifact(&self.instances[&key], &path) {
                Resolved::Direct { stage, source, keep_own: saved_own } => {
                    // Earthly's artifacts are root's unless saved and copied with --keep-own.
                    let own = if keep_own && !saved_own { Some("0:0".to_string()) } else { None };
                    (CopySource::Stage(stage), source, own)
                }
                Resolved::Layout => {
                    let stage = self.artifacts_stage(&key);
                    (CopySource::Stage(stage), format!("/{path}"), None)
                }
                Resolved::Missing => {
                    let saved: Vec<String> = self.instances[&key]
                        .artifacts
                        .iter()
                        .map(|a| {
                            format!("{} (line {})", if a.path.is_empty() { "/" } else { &a.path }, a.span.start.line)
                        })
                        .collect();
                    let hint = if saved.is_empty() {
                        format!("+{target} saves no artifacts; add SAVE ARTIFACT {path} to its recipe")
                    } else {
                        format!("+{target} saves: {}", saved.join(", "))
                    };
                    return self.fail(
                        format!("+{target} has no artifact {}", if path.is_empty() { "/" } else { &path }),
                        src.span,
                        hint,
                        "unknown-artifact",
                    );
                }
            };
            match groups.last_mut() {
                Some((f, list, o)) if *f == from && *o == own => list.push(source),
                _ => groups.push((from, vec![source], own)),
            }
        }
        self.before_file_change(ev, s.span);
        for (from, paths, own) in groups {
            let (paths, parents) = if dir { dir_sources(paths, &dest) } else { (paths, false) };
            let owner = chown
                .clone()
                .or_else(|| (!keep_own).then(|| if user.is_empty() { "0:0".to_string() } else { user.clone() }))
                .or(own);
            let files = CopyFiles {
                from,
                sources: paths,
                inline_sources: Vec::new(),
                dest: dest.clone(),
                chown: owner,
                chmod: chmod.clone(),
                link: false,
                parents,
                exclude: Vec::new(),
                add: None,
            };
            let created = copy_created(&files);
            self.push(ev, s, Op::Copy(files), created);
        }
    }

    /// The stage that lays out an instance's artifacts as Earthly does (made once).
    pub(super) fn artifacts_stage(&mut self, key: &InstanceKey) -> u32 {
        let inst = &self.instances[key];
        if let Some(stage) = inst.artifacts_stage {
            return stage;
        }
        let mut instructions = Vec::new();
        for a in &inst.artifacts {
            let (sources, dest, parents) = if a.glob {
                let dir = parent(&a.source);
                let dir = if dir == "/" { String::new() } else { dir.to_string() };
                (vec![format!("{dir}/./{}", base_name(&a.source))], format!("/{}/", a.path).replace("//", "/"), true)
            } else {
                (vec![a.source.clone()], format!("/{}", a.path), false)
            };
            let files = CopyFiles {
                from: CopySource::Stage(a.stage),
                sources,
                inline_sources: Vec::new(),
                dest,
                chown: (!a.keep_own).then(|| "0:0".to_string()),
                chmod: None,
                link: false,
                parents,
                exclude: Vec::new(),
                add: None,
            };
            let created = copy_created(&files);
            instructions.push(Instruction {
                op: Op::Copy(files),
                span: a.span,
                created_by: created.clone(),
                text: format!("SAVE ARTIFACT {} /{}", a.source, a.path),
            });
        }
        let index = self.stages.len() as u32;
        self.stages.push(StageRecord {
            stage: Stage {
                name: None,
                base: Base::Scratch,
                platform: None,
                instructions,
                span: self.targets.get(key.target.as_str()).map_or(self.file.version.span, |t| t.span),
                text: format!("+{}: artifacts", key.target),
            },
            owner: None,
        });
        if let Some(inst) = self.instances.get_mut(key) {
            inst.artifacts_stage = Some(index);
        }
        index
    }

    pub(super) fn save_artifact(&mut self, ev: &mut Eval, s: &Statement, save: command::SaveArtifact<'_>) {
        self.ensure_segment(ev, s.span);
        let Some(src) = self.expand(ev, &save.src.text, save.src.span) else { return };
        let dest = match save.dest {
            Some(d) => match self.expand(ev, &d.text, d.span) {
                Some(v) => v,
                None => return,
            },
            None => String::new(),
        };
        let Some(seg) = ev.seg.as_mut() else { return };
        let abs = kiln_ir::join_path(&seg.state.workdir, &src);
        if abs == "/" {
            return self.fail(
                "SAVE ARTIFACT cannot save the root directory",
                save.src.span,
                "save a directory under it, or the files in it: SAVE ARTIFACT /dir/*",
                "invalid-arguments",
            );
        }
        let (dir, last) = (parent(&abs), base_name(&abs));
        if has_wildcard(dir) {
            return self.fail(
                format!("kiln saves wildcard artifacts only when the wildcard is in the last path component ({src})"),
                save.src.span,
                "save the directory instead, or one SAVE ARTIFACT per directory",
                "unsupported-artifact",
            );
        }
        // Earthly: an empty, `.` or `/`-ended destination keeps the source's name.
        let adjusted =
            if dest.is_empty() || dest == "." || dest.ends_with('/') { format!("{dest}/{last}") } else { dest.clone() };
        let adjusted = clean_relative(&adjusted);
        if has_wildcard(parent(&adjusted)) {
            return self.fail(
                format!("SAVE ARTIFACT destination {dest} holds a wildcard"),
                save.dest.map_or(s.span, |d| d.span),
                "name a directory or a file as the destination",
                "unsupported-artifact",
            );
        }
        let glob = has_wildcard(last);
        let path = if glob && has_wildcard(base_name(&adjusted)) {
            // `dir/*` saved to `dest/`: the matches go into `dest`.
            parent(&adjusted).trim_start_matches('/').to_string()
        } else {
            adjusted
        };
        let index = ev.artifacts.len();
        ev.artifacts.push(Artifact {
            path,
            source: abs,
            glob,
            stage: u32::MAX,
            keep_own: save.flags.on("keep-own"),
            span: s.span,
        });
        seg.saved.push(index);
        // Earthly writes AS LOCAL files of the target it builds (and of BUILD's targets, which
        // kiln reports on its own); FROM and COPY references write nothing.
        if let Some(local) = save.local.filter(|_| ev.top) {
            let local = self.expand(ev, &local.text, local.span).unwrap_or_else(|| local.text.clone());
            let artifact = format!("+{}/{}", ev.name, ev.artifacts[index].path);
            self.warnings.push(warning(
                format!("SAVE ARTIFACT ... AS LOCAL {local}: kiln does not write files to the host during a build"),
                Some(s.span),
                format!(
                    "to get the file, build a target that copies it onto scratch (FROM scratch, COPY {artifact} /) \
                     with `kiln build --target +that -o type=local,dest=DIR .`"
                ),
                "save-artifact-local",
            ));
        }
    }
}

/// Where `COPY +target/path` reads from.
fn resolve_artifact(inst: &Instance, path: &str) -> Resolved {
    let under = |dir: &str, p: &str| -> Option<String> {
        if dir.is_empty() {
            Some(p.to_string())
        } else {
            p.strip_prefix(dir).and_then(|r| r.strip_prefix('/')).map(str::to_string)
        }
    };
    if !has_wildcard(path) {
        for a in inst.artifacts.iter().rev() {
            if a.glob {
                let pattern = base_name(&a.source);
                let dir = parent(&a.source);
                if let Some(rest) = under(&a.path, path).filter(|r| !r.is_empty())
                    && component_matches(pattern, rest.split('/').next().unwrap_or_default())
                {
                    let source = if dir == "/" { format!("/{rest}") } else { format!("{dir}/{rest}") };
                    return Resolved::Direct { stage: a.stage, source, keep_own: a.keep_own };
                }
                if path == a.path {
                    return Resolved::Layout;
                }
            } else if path == a.path {
                // The copy is named after its source, so a renamed artifact needs the layout.
                return if base_name(path) == base_name(&a.source) {
                    Resolved::Direct { stage: a.stage, source: a.source.clone(), keep_own: a.keep_own }
                } else {
                    Resolved::Layout
                };
            } else if let Some(rest) = under(&a.path, path).filter(|r| !r.is_empty()) {
                let source = format!("{}/{rest}", a.source);
                return Resolved::Direct { stage: a.stage, source, keep_own: a.keep_own };
            }
        }
        let is_dir = inst.artifacts.iter().any(|a| path.is_empty() || a.path.starts_with(&format!("{path}/")));
        return if is_dir { Resolved::Layout } else { Resolved::Missing };
    }
    for a in inst.artifacts.iter().rev() {
        if !a.glob
            && let Some(rest) = under(&a.path, path).filter(|r| !r.is_empty() && !has_wildcard(&a.path))
        {
            let source = format!("{}/{rest}", a.source);
            return Resolved::Direct { stage: a.stage, source, keep_own: a.keep_own };
        }
        if a.glob && path == format!("{}/{}", a.path, base_name(&a.source)).trim_start_matches('/') {
            return Resolved::Direct { stage: a.stage, source: a.source.clone(), keep_own: a.keep_own };
        }
    }
    if inst.artifacts.is_empty() { Resolved::Missing } else { Resolved::Layout }
}

/// The history text of a COPY.
fn copy_created(files: &CopyFiles) -> String {
    let mut out = String::from("COPY");
    if files.parents {
        out.push_str(" --parents");
    }
    if let Some(c) = &files.chown {
        out.push_str(&format!(" --chown={c}"));
    }
    if let Some(c) = &files.chmod {
        out.push_str(&format!(" --chmod={c}"));
    }
    for s in &files.sources {
        out.push(' ');
        out.push_str(s);
    }
    out.push(' ');
    out.push_str(&files.dest);
    out
}
