//! One instruction of a stage to IR instructions, in the stage's state: word expansion with
//! the undefined-variable lint, ARG, and everything but COPY/ADD and RUN (which have their
//! own submodules), with BuildKit's image-history text.
//!
//! It owns per-instruction semantics; it must never decide which stages are built.

use super::*;

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quote_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" "))
}

/// Go's `%v` of a string slice: `[a b]`.
pub(super) fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Signals STOPSIGNAL accepts by name (with or without `SIG`).
const SIGNALS: [&str; 31] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL", "PROF",
    "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2",
    "VTALRM", "WINCH",
];

pub(super) fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&name) {
        return true;
    }
    // SIGRTMIN+n / SIGRTMAX-n
    name.strip_prefix("RTMIN")
        .or_else(|| name.strip_prefix("RTMAX"))
        .is_some_and(|rest| rest.is_empty() || rest[1..].parse::<u32>().is_ok_and(|_| rest.starts_with(['+', '-'])))
}

impl Dispatch<'_, '_> {
    pub(super) fn fail(&mut self, message: String, span: Span, hint: Option<String>) {
        if self.needed {
            self.report.error(message, Some(span), hint);
        } else {
            self.report.warn(
                "UnneededStageError",
                format!("{message} (ignored: the target does not need this stage)"),
                Some(span),
            );
        }
    }

    /// A path with a NUL byte, which no filesystem can hold.
    pub(super) fn nul(&mut self, what: &str, span: Span) {
        self.fail(
            format!("{what} contains a NUL byte"),
            span,
            Some("remove the NUL byte (\\0) from the line; no file name can hold one".into()),
        );
    }

    /// Expand one word in the stage's environment, reporting undefined variables.
    pub(super) fn expand(&mut self, state: &StageState, word: &str, span: Span) -> Result<String, ()> {
        match self.lexer.process_word_with_matches(word, state) {
            Ok(e) => {
                self.undefined(state, &e.unmatched, span);
                Ok(e.result)
            }
            Err(e) => {
                let hint = e
                    .to_string()
                    .contains("matching")
                    .then(|| "close the quote, or escape it with a backslash".to_string());
                self.fail(e.to_string(), span, hint);
                Err(())
            }
        }
    }

    pub(super) fn undefined(&mut self, state: &StageState, unmatched: &BTreeSet<String>, span: Span) {
        if !self.needed {
            return;
        }
        for name in unmatched {
            if state.build_args.contains(name) {
                continue;
            }
            // Suggestions compare the name with every variable: a file with thousands of
            // variables and thousands of misspellings would be quadratic, so they stop once
            // they have cost as much as a generous real file ever needs.
            let count = state.env.len();
            let affordable = self.report.suggestion_budget >= count;
            self.report.suggestion_budget = self.report.suggestion_budget.saturating_sub(count);
            let keys: Vec<&str> = if affordable { state.env.iter().map(|(k, _)| k).collect() } else { Vec::new() };
            let suggestion =
                crate::suggest::closest(name, &keys).map(|k| format!(" (did you mean ${k}?)")).unwrap_or_default();
            self.report.warn("UndefinedVar", format!("Usage of undefined variable '${name}'{suggestion}"), Some(span));
        }
    }

    pub(super) fn dispatch(
        &mut self,
        state: &mut StageState,
        command: &Command,
        source: &instructions::Source,
        from: Option<CopySource>,
    ) -> Step {
        let span = self.report.span(source);
        let text = source.original.trim().to_string();
        let one = |op: Op, created_by: String| Ok(vec![IrInstruction { op, span, created_by, text: text.clone() }]);
        match command {
            Command::Env(pairs) | Command::Label(pairs) => {
                let is_env = matches!(command, Command::Env(_));
                let mut kvs = Vec::new();
                for pair in pairs {
                    let key = self.expand(state, &pair.key, span)?;
                    let value = self.expand(state, &pair.value, span)?;
                    kvs.push(KeyValue::new(key, value));
                }
                if source.original.split_whitespace().nth(1).is_some_and(|w| !w.contains('=')) {
                    let kw = if is_env { "ENV" } else { "LABEL" };
                    self.report.warn(
                        "LegacyKeyValueFormat",
                        format!("\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"),
                        Some(span),
                    );
                }
                let created = kvs.iter().map(|kv| format!("{}={}", kv.key, kv.value)).collect::<Vec<_>>().join(" ");
                if is_env {
                    for kv in &kvs {
                        state.set_env(&kv.key, &kv.value);
                    }
                    one(Op::Config(ConfigChange::Env(kvs)), format!("ENV {created}"))
                } else {
                    one(Op::Config(ConfigChange::Label(kvs)), format!("LABEL {created}"))
                }
            }
            Command::Arg(decls) => self.dispatch_arg(state, decls, span).and_then(|(op, created)| one(op, created)),
            Command::Workdir(dir) => {
                let dir = self.expand(state, dir, span)?;
                if dir.contains('\0') {
                    self.nul("WORKDIR", span);
                    return Err(());
                }
                let workdir = kiln_ir::join_path(&state.workdir, &dir);
                if workdir.len() > MAX_PATH_BYTES {
                    // No system could create it (ENAMETOOLONG); and a chain of relative
                    // WORKDIRs growing without end would make every later one longer.
                    let shown: String = workdir.chars().take(60).collect();
                    self.fail(
                        format!(
                            "WORKDIR {shown}...: the path is {} bytes long, more than the {MAX_PATH_BYTES} Linux accepts",
                            workdir.len()
                        ),
                        span,
                        Some("use a shorter path; a relative WORKDIR is added to the one before it".into()),
                    );
                    return Err(());
                }
                state.workdir = workdir;
                let created = format!("WORKDIR {}", state.workdir);
                one(Op::Config(ConfigChange::Workdir(dir)), created)
            }
            Command::User(user) => {
                let user = self.expand(state, user, span)?;
                one(Op::Config(ConfigChange::User(user.clone())), format!("USER {user}"))
            }
            Command::Cmd(line) | Command::Entrypoint(line) => {
                let is_cmd = matches!(command, Command::Cmd(_));
                let argv = if line.prepend_shell && (is_cmd || !line.args.is_empty()) {
                    self.report.warn(
                        "JSONArgsRecommended",
                        format!(
                            "JSON arguments recommended for {} to prevent unintended behavior related to OS signals",
                            if is_cmd { "CMD" } else { "ENTRYPOINT" }
                        ),
                        Some(span),
                    );
                    state.with_shell(&line.args)
                } else {
                    line.args.clone()
                };
                let command = IrCommand { argv: argv.clone(), shell_form: line.prepend_shell };
                if is_cmd {
                    one(Op::Config(ConfigChange::Cmd(command)), format!("CMD {}", go_quote_list(&argv)))
                } else {
                    one(Op::Config(ConfigChange::Entrypoint(command)), format!("ENTRYPOINT {}", go_quote_list(&argv)))
                }
            }
            Command::Expose(specs) => {
                let mut expanded = Vec::new();
                for spec in specs {
                    expanded.push(self.expand(state, spec, span)?);
                }
                match expose::parse_specs(&expanded) {
                    Ok(ports) => {
                        let created = format!("EXPOSE {}", ports.join(" "));
                        one(Op::Config(ConfigChange::Expose(ports)), created)
                    }
                    Err(e) => {
                        self.fail(e, span, Some("write ports as 80, 80/udp or 8000-8010/tcp".into()));
                        Err(())
                    }
                }
            }
            Command::Volume(volumes) => {
                let mut expanded = Vec::new();
                for v in volumes {
                    expanded.push(self.expand(state, v, span)?);
                }
                let created = format!("VOLUME {}", go_list(&expanded));
                one(Op::Config(ConfigChange::Volume(expanded)), created)
            }
            Command::StopSignal(sig) => {
                let sig = self.expand(state, sig, span)?;
                if !valid_signal(&sig) {
                    self.fail(
                        format!("Invalid signal: {sig}"),
                        span,
                        Some("use a signal name such as SIGTERM or a number from 1 to 64".into()),
                    );
                    return Err(());
                }
                one(Op::Config(ConfigChange::StopSignal(sig.clone())), format!("STOPSIGNAL {sig}"))
            }
            Command::Healthcheck(h) => {
                let created = format!(
                    "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    go_list(&h.test),
                    duration::format(h.interval.into()),
                    duration::format(h.timeout.into()),
                    duration::format(h.start_period.into()),
                    duration::format(h.start_interval.into()),
                    h.retries
                );
                one(
                    Op::Config(ConfigChange::Healthcheck(Healthcheck {
                        test: h.test.clone(),
                        interval: h.interval,
                        timeout: h.timeout,
                        start_period: h.start_period,
                        start_interval: h.start_interval,
                        retries: h.retries,
                    })),
                    created,
                )
            }
            Command::Shell(shell) => {
                state.shell = shell.clone();
                one(Op::Config(ConfigChange::Shell(shell.clone())), format!("SHELL {}", go_list(shell)))
            }
            Command::Onbuild(expr) => {
                state.onbuild.push(expr.clone());
                one(Op::Config(ConfigChange::Onbuild(expr.clone())), format!("ONBUILD {expr}"))
            }
            Command::Maintainer(who) => {
                self.report.warn(
                    "MaintainerDeprecated",
                    "Maintainer instruction is deprecated in favor of using label",
                    Some(span),
                );
                one(Op::Config(ConfigChange::Maintainer(who.clone())), format!("MAINTAINER {who}"))
            }
            Command::Copy(copy) => {
                let (op, created) = self.dispatch_copy(state, copy, from, span)?;
                one(op, created)
            }
            Command::Run(run) => {
                let (op, created) = self.dispatch_run(state, run, span)?;
                one(op, created)
            }
        }
    }

    fn dispatch_arg(&mut self, state: &mut StageState, decls: &[ArgDecl], span: Span) -> Result<(Op, String), ()> {
        let mut bindings = Vec::new();
        for decl in decls {
            let value = if let Some(v) = self.build_args.get(decl.key.as_str()) {
                Some(v.to_string())
            } else if let Some(default) = &decl.value {
                Some(self.expand(state, default, span)?)
            } else {
                // No default and no --build-arg: inherit the global ARG's value.
                self.meta.iter().rev().find(|(k, _)| k == &decl.key).and_then(|(_, v)| v.clone())
            };
            if let Some(v) = &value {
                state.set_env(&decl.key, v);
            }
            state.build_args.set_last(&decl.key, value.clone());
            bindings.push(ArgBinding { name: decl.key.clone(), value });
        }
        let created = bindings
            .iter()
            .map(|b| match &b.value {
                Some(v) => format!("{}={v}", b.name),
                None => b.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(" ");
        Ok((Op::Arg(bindings), format!("ARG {created}")))
    }
}
