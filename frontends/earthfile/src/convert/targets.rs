//! Which targets the build needs and how each becomes an instance: the requested target,
//! the overrides a reference passes down (`--build-arg`, `--NAME=value`, `--pass-args`), the
//! limits on instances and nesting, and the lint of targets the build does not need.
//!
//! It owns the walk from one target to the next and nothing about single commands: those
//! are the other submodules'. It must never read files or resolve images itself.

use super::*;

impl<'a> Converter<'a> {
    pub(super) fn fail(&mut self, message: impl Into<String>, span: Span, hint: impl Into<String>, code: &str) {
        self.errors.push(error(message, Some(span), hint, code));
    }

    fn target_list(&self) -> String {
        let names: Vec<String> = self.targets.keys().map(|n| format!("+{n}")).collect();
        if names.is_empty() { "this Earthfile has no targets".to_string() } else { names.join(", ") }
    }

    /// The target to build: `--target` (`+name` or `name`), else `+build`.
    pub(super) fn select_target(&mut self) -> Option<String> {
        let Some(given) = &self.request.target else {
            if self.targets.contains_key("build") {
                return Some("build".to_string());
            }
            self.errors.push(error(
                "no target was given and this Earthfile has no +build target",
                None,
                format!("choose one with --target; the targets are: {}", self.target_list()),
                "no-target",
            ));
            return None;
        };
        let reference = if given.contains('+') { given.clone() } else { format!("+{given}") };
        let name = match reference::target(&reference) {
            Ok(name) => name,
            Err(RefError::Invalid(_)) => given.trim_start_matches('+').to_string(),
            Err(e) => {
                self.errors.push(error(format!("--target {e}"), None, e.hint(), "unknown-target"));
                return None;
            }
        };
        if name == BASE || self.targets.contains_key(name.as_str()) {
            return Some(name);
        }
        let known: Vec<&str> = self.targets.keys().copied().collect();
        let close = crate::suggest::closest(&name, &known).map(|c| format!("did you mean +{c}? ")).unwrap_or_default();
        self.errors.push(error(
            format!("target +{name} is not in this Earthfile"),
            None,
            format!("{close}the targets are: {}", self.target_list()),
            "unknown-target",
        ));
        None
    }

    /// The instance of `target` with these overrides, converted if it is new.
    pub(super) fn instance(&mut self, target: &str, overrides: Overrides, at: Span, top: bool) -> Option<InstanceKey> {
        let overrides = if target == BASE {
            // The base recipe depends only on the ARGs it declares.
            let declared = declared_args(&self.file.base);
            overrides.into_iter().filter(|(k, _)| declared.contains(k)).collect()
        } else {
            overrides
        };
        let key = InstanceKey { target: target.to_string(), overrides: overrides.clone().into_iter().collect() };
        if self.instances.contains_key(&key) {
            return Some(key);
        }
        if let Some(pos) = self.active.iter().position(|k| k == &key) {
            let chain: Vec<String> =
                self.active[pos..].iter().map(|k| format!("+{}", k.target)).chain([format!("+{target}")]).collect();
            self.fail(
                format!("circular target reference: {}", chain.join(" -> ")),
                at,
                "a target cannot start from, or copy from, itself or a target that depends on it",
                "circular-reference",
            );
            return None;
        }
        if self.active.len() >= MAX_DEPTH {
            self.fail(
                format!("target references nest deeper than {MAX_DEPTH}"),
                at,
                "flatten the chain of FROM/COPY references",
                "too-deep",
            );
            return None;
        }
        if self.instances.len() >= MAX_INSTANCES {
            self.fail(
                format!("the build needs more than {MAX_INSTANCES} target instances"),
                at,
                "each distinct set of --NAME=value arguments makes another instance of a target; pass fewer variants",
                "too-many-instances",
            );
            return None;
        }
        let (body, header, is_base): (&'a [Node], Span, bool) = if target == BASE {
            (&self.file.base, self.file.version.span, true)
        } else {
            let t = self.targets.get(target)?;
            (&t.body, t.span, false)
        };
        self.converted.insert(target.to_string());
        self.active.push(key.clone());
        let instance = self.eval(target, body, header, is_base, top, overrides);
        self.active.pop();
        self.instances.insert(key.clone(), instance);
        Some(key)
    }

    fn eval(
        &mut self,
        name: &str,
        body: &'a [Node],
        header: Span,
        is_base: bool,
        top: bool,
        overrides: Overrides,
    ) -> Instance {
        let mut ev = Eval {
            name: name.to_string(),
            is_base,
            top,
            overrides,
            vars: Vars::default(),
            seg: None,
            artifacts: Vec::new(),
            header,
        };
        let mut base_globals = Vec::new();
        if !is_base && let Some(key) = self.instance(BASE, ev.overrides.clone(), header, false) {
            base_globals = self.instances[&key].globals.clone();
        }
        if top {
            self.global_args = base_globals.clone();
        }
        for (k, v) in base_globals {
            ev.vars.set(&k, v, VarKind::Global);
        }
        for node in body {
            match node {
                Node::Block(block) => {
                    if let Some(d) = command::unsupported_command(&block.header) {
                        self.errors.push(Diagnostic { span: Some(block.span), ..d });
                    }
                }
                Node::Command(s) => self.command(&mut ev, s),
            }
        }
        // A base recipe with no FROM and no commands is scratch: it needs no stage of its own
        // (FROM +base then means FROM scratch).
        let trivial = is_base && ev.seg.is_none();
        let (stage, state) = if trivial {
            (NO_STAGE, ImageState::scratch())
        } else {
            self.ensure_segment(&mut ev, header);
            let seg = ev.seg.take().expect("ensure_segment made one");
            let state = seg.state.clone();
            (self.push_segment(&mut ev, seg, true), state)
        };
        Instance {
            stage,
            state,
            artifacts: ev.artifacts,
            artifacts_stage: None,
            globals: ev.vars.of_kind(VarKind::Global),
            trivial,
        }
    }
}

impl<'a> Converter<'a> {
    /// The overrides a referenced target gets: ours (they flow down), `--pass-args` (our
    /// variables), `--build-arg K=V` and `--K=V` after the reference (the explicit ones win).
    pub(super) fn child_overrides(
        &mut self,
        ev: &Eval,
        flags: &command::Flags,
        args: &[(String, Span)],
        pass_args: bool,
    ) -> Option<Overrides> {
        let mut out = Overrides::new();
        if pass_args {
            for (k, v, kind) in &ev.vars.list {
                if matches!(kind, VarKind::Arg | VarKind::Global) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        for (k, v) in &ev.overrides {
            out.insert(k.clone(), v.clone());
        }
        let explicit = flags
            .values("build-arg")
            .into_iter()
            .map(|(v, span)| (v.to_string(), span))
            .chain(args.iter().map(|(a, span)| (a.strip_prefix("--").unwrap_or(a).to_string(), *span)));
        for (arg, span) in explicit.collect::<Vec<_>>() {
            match arg.split_once('=') {
                Some((k, raw)) if command::valid_name(k) => {
                    let v = self.expand(ev, raw, span)?;
                    out.insert(k.to_string(), v);
                }
                None if command::valid_name(&arg) => match ev.vars.get(&arg) {
                    Some(v) => {
                        out.insert(arg.clone(), v.to_string());
                    }
                    None => {
                        self.fail(
                            format!("--{arg} passes the variable {arg}, which is not declared here"),
                            span,
                            format!("declare it with ARG {arg}, or pass a value: --{arg}=VALUE"),
                            "undeclared-variable",
                        );
                        return None;
                    }
                },
                _ => {
                    self.fail(
                        format!("invalid target argument {arg:?}"),
                        span,
                        "pass arguments to a target as --NAME=value",
                        "invalid-arguments",
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Resolve a `+target` reference to its instance.
    pub(super) fn reference(&mut self, text: &str, span: Span, overrides: Overrides) -> Option<InstanceKey> {
        let name = match reference::target(text) {
            Ok(name) => name,
            Err(e) => {
                self.fail(e.to_string(), span, e.hint(), "unsupported-reference");
                return None;
            }
        };
        self.target_instance(&name, span, overrides)
    }

    pub(super) fn target_instance(&mut self, name: &str, span: Span, overrides: Overrides) -> Option<InstanceKey> {
        if name != BASE && !self.targets.contains_key(name) {
            let known: Vec<&str> = self.targets.keys().copied().collect();
            let close =
                crate::suggest::closest(name, &known).map(|c| format!("did you mean +{c}? ")).unwrap_or_default();
            let hint = format!("{close}the targets are: {}", self.target_list());
            self.fail(format!("there is no target +{name} in this Earthfile"), span, hint, "unknown-target");
            return None;
        }
        self.instance(name, overrides, span, false)
    }
}

impl<'a> Converter<'a> {
    /// Unsupported commands in targets the build does not need: warnings, so nothing goes
    /// unsaid. Unknown commands are errors anywhere, as in Earthly.
    pub(super) fn lint_unneeded(&mut self) {
        let file = self.file;
        for target in &file.targets {
            if target.function {
                self.warnings.push(warning(
                    format!("kiln does not support functions: {} is never run", target.name),
                    Some(target.span),
                    "write the function's commands out where DO calls it",
                    "unsupported-command",
                ));
                continue;
            }
            if self.converted.contains(&target.name) {
                continue;
            }
            for node in &target.body {
                let found = match node {
                    Node::Block(block) => command::unsupported_command(&block.header)
                        .map(|d| vec![Diagnostic { span: Some(block.span), ..d }]),
                    Node::Command(s) => command::parse(s).err(),
                };
                for d in found.into_iter().flatten() {
                    if d.code.as_deref() == Some("unknown-command") {
                        self.errors.push(d);
                    } else {
                        self.warnings.push(Diagnostic {
                            severity: kiln_ir::Severity::Warning,
                            message: format!("{} (in +{}, which this build does not need)", d.message, target.name),
                            ..d
                        });
                    }
                }
            }
        }
    }
}

/// The names the ARGs of a recipe declare.
fn declared_args(body: &[Node]) -> BTreeSet<String> {
    body.iter()
        .filter_map(|n| match n {
            Node::Command(s) if s.keyword == "ARG" => {
                s.words.iter().find(|w| !w.text.starts_with("--")).map(|w| w.text.clone())
            }
            _ => None,
        })
        .collect()
}
