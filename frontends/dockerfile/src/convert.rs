//! Typed instructions to the stage IR.
//!
//! Owns the Dockerfile semantics that need state across instructions, as BuildKit's
//! `dockerfile2llb` applies them: global ARGs and `--build-arg`, ARG scoping per stage,
//! the environment each instruction expands in (base image ENV, ENV, ARG), which
//! instructions expand and how, SHELL for the shell form, stage names and indices,
//! `COPY --from`, `--target`, which stages the target needs (only those get their base
//! image resolved), dependency loops, ONBUILD triggers, and image-history text.
//!
//! It talks to the outside only through [`ImageResolver`]; it never reads files.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasherDefault, DefaultHasher};

use kiln_ir::{
    AddOptions, ArgBinding, Base, BindMount, BuildGraph, CacheMount, CacheSharing, Command as IrCommand, ConfigChange,
    CopyFiles, CopySource, Diagnostic, Healthcheck, ImageConfig, ImageResolver, InlineFile,
    Instruction as IrInstruction, KeyValue, Mount, MountKind, Network, Op, Request, Run, SecretMount, Security, Span,
    SshMount, Stage, TmpfsMount,
};

use crate::instructions::{self, ArgDecl, CmdLine, Command, CopyCommand, Instruction, Located, RunCommand, StageDecl};
use crate::mounts::{self, MountType};
use crate::parser;
use crate::platform;
use crate::shell::{Env, Lexer};
use crate::strconv::go_quote;
use crate::{duration, expose};

/// The PATH an image without one gets (BuildKit's default for Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The shell the shell form runs in when neither the base image nor SHELL says otherwise.
const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Maps 1-based line numbers to spans.
pub struct Lines {
    /// Character count of each physical line, index 0 = line 1.
    pub lengths: Vec<u32>,
}

impl Lines {
    /// From the source text.
    pub fn new(src: &str) -> Self {
        Lines { lengths: src.split('\n').map(|l| l.trim_end_matches('\r').chars().count() as u32).collect() }
    }

    /// A span covering lines `first..=last`.
    pub fn span(&self, first: usize, last: usize) -> Span {
        let first = first.max(1);
        let last = last.max(first);
        let len = self.lengths.get(last - 1).copied().unwrap_or(1);
        Span::lines(first as u32, last as u32, len)
    }
}

/// Variables in the order they were declared, with an index by name, so that a build file
/// with a hundred thousand of them is read in linear time, not quadratic.
#[derive(Debug, Clone)]
struct Vars<V> {
    /// In order; `None` where an entry was moved to the end.
    slots: Vec<Option<(String, V)>>,
    /// Name to slot.
    index: BTreeMap<String, usize>,
}

impl<V> Default for Vars<V> {
    fn default() -> Self {
        Vars { slots: Vec::new(), index: BTreeMap::new() }
    }
}

impl<V> Vars<V> {
    fn get(&self, key: &str) -> Option<&V> {
        let slot = *self.index.get(key)?;
        self.slots[slot].as_ref().map(|(_, v)| v)
    }

    fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    /// Set a variable where it stands, or append it.
    fn set(&mut self, key: &str, value: V) {
        match self.index.get(key) {
            Some(&slot) => {
                if let Some((_, v)) = &mut self.slots[slot] {
                    *v = value;
                }
            }
            None => self.append(key, value),
        }
    }

    /// Set a variable and move it to the end.
    fn set_last(&mut self, key: &str, value: V) {
        if let Some(slot) = self.index.remove(key) {
            self.slots[slot] = None;
        }
        self.append(key, value);
        // Drop the holes once they are most of the list.
        if self.slots.len() > 64 && self.index.len() * 2 < self.slots.len() {
            self.slots.retain(Option::is_some);
            for (slot, entry) in self.slots.iter().enumerate() {
                if let Some((k, _)) = entry {
                    self.index.insert(k.clone(), slot);
                }
            }
        }
    }

    fn append(&mut self, key: &str, value: V) {
        self.index.insert(key.to_string(), self.slots.len());
        self.slots.push(Some((key.to_string(), value)));
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.index.clear();
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.slots.iter().flatten().map(|(k, v)| (k.as_str(), v))
    }
}

/// The state of a stage as instructions are applied: what later instructions expand in.
#[derive(Debug, Clone)]
struct StageState {
    /// Environment for expansion and RUN: base ENV, then ENV and ARG values (unique keys).
    env: Vars<String>,
    /// ARGs declared in this stage (and its stage parents), with their values, in the order
    /// last declared.
    build_args: Vars<Option<String>>,
    /// SHELL for the shell form.
    shell: Vec<String>,
    /// The working directory as far as the frontend knows it.
    workdir: String,
    /// ONBUILD triggers registered by this stage (for children).
    onbuild: Vec<String>,
}

impl StageState {
    fn scratch() -> Self {
        let mut env = Vars::default();
        env.set("PATH", DEFAULT_PATH.to_string());
        StageState {
            env,
            build_args: Vars::default(),
            shell: DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
            workdir: "/".into(),
            onbuild: Vec::new(),
        }
    }

    fn from_image(config: &ImageConfig) -> Self {
        let mut state = StageState::scratch();
        state.env.clear();
        for entry in &config.env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            state.set_env(k, v);
        }
        if !state.env.contains("PATH") {
            state.set_env("PATH", DEFAULT_PATH);
        }
        if !config.shell.is_empty() {
            state.shell = config.shell.clone();
        }
        if !config.working_dir.is_empty() {
            state.workdir = config.working_dir.clone();
        }
        state
    }

    /// Set a variable, replacing the first entry with that key (Docker's `addEnv`).
    fn set_env(&mut self, key: &str, value: &str) {
        self.env.set(key, value.to_string());
    }

    fn with_shell(&self, args: &[String]) -> Vec<String> {
        let mut argv = self.shell.clone();
        argv.push(args.join(" "));
        argv
    }
}

impl Env for StageState {
    fn get(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }
}

/// Global (meta) args: ordered, may repeat, unset ones read as empty (BuildKit's
/// `metaArgsToEnvs`).
struct MetaEnv<'a>(&'a [(String, Option<String>)]);

impl Env for MetaEnv<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_deref().unwrap_or(""))
    }
}

/// A stage after its FROM line was resolved.
struct StagePlan<'a> {
    decl: &'a StageDecl,
    located: &'a Located,
    commands: Vec<&'a Located>,
    base: Base,
    platform: Option<String>,
    deps: BTreeSet<usize>,
    /// Resolved `--from` of each COPY (by command index).
    copy_from: BTreeMap<usize, CopySource>,
}

/// Diagnostics collected while converting.
struct Report<'a> {
    lines: &'a Lines,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// The warnings so far, to drop repeats without searching the list each time.
    seen: HashSet<Diagnostic, BuildHasherDefault<DefaultHasher>>,
    skip_rules: BTreeSet<String>,
    skip_all: bool,
    /// How many more names "did you mean" suggestions may compare (see `Dispatch::undefined`).
    suggestion_budget: usize,
}

impl<'a> Report<'a> {
    fn new(lines: &'a Lines) -> Self {
        Report {
            lines,
            errors: Vec::new(),
            warnings: Vec::new(),
            seen: HashSet::default(),
            skip_rules: BTreeSet::new(),
            skip_all: false,
            suggestion_budget: SUGGESTION_BUDGET,
        }
    }
}

/// The longest path Linux accepts, in bytes (PATH_MAX less its terminating NUL).
const MAX_PATH_BYTES: usize = 4095;

/// Names all "did you mean" suggestions of one file may compare together: a real file asks
/// a handful of times among a few dozen variables.
const SUGGESTION_BUDGET: usize = 1_000_000;

impl Report<'_> {
    fn span(&self, source: &instructions::Source) -> Span {
        self.lines.span(source.start_line, source.end_line)
    }

    fn error(&mut self, message: impl Into<String>, span: Option<Span>, hint: Option<String>) {
        let mut d = Diagnostic::error(message, span);
        d.hint = hint;
        self.errors.push(d);
    }

    fn warn(&mut self, rule: &str, message: impl Into<String>, span: Option<Span>) {
        if self.skip_all || self.skip_rules.contains(rule) {
            return;
        }
        let d = Diagnostic::warning(message, span).with_code(rule);
        if self.seen.insert(d.clone()) {
            self.warnings.push(d);
        }
    }
}

/// Convert parsed instructions into the IR.
///
/// # Errors
/// Every error found (and the warnings seen so far), most important first.
pub fn convert(
    parsed: &parser::ParseResult,
    located: &[Located],
    request: &Request,
    resolver: &dyn ImageResolver,
    lines: &Lines,
) -> Result<BuildGraph, Vec<Diagnostic>> {
    let mut report = Report::new(lines);
    apply_check_directive(parsed, &mut report);
    for w in &parsed.warnings {
        report.warn(w.rule, format!("{} ({})", w.short, w.detail), Some(lines.span(w.line, w.line)));
    }
    let lexer = Lexer::new(parsed.escape);

    // Platforms and the predefined ARGs.
    let platform_of = |what: &str, value: &str, report: &mut Report| match platform::parse(value) {
        Ok(p) => Some(p),
        Err(e) => {
            report.error(format!("invalid {what} platform: {e}"), None, None);
            None
        }
    };
    let build_platform = platform_of("build", &request.build_platform, &mut report);
    let target_platform = platform_of("target", &request.target_platform, &mut report);
    let (Some(build_platform), Some(target_platform)) = (build_platform, target_platform) else {
        return Err(report.errors);
    };
    let build_args: BTreeMap<&str, &str> =
        request.build_args.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())).collect();
    let predefined = platform::predefined_args(&build_platform, &target_platform);
    let mut meta: Vec<(String, Option<String>)> = predefined
        .iter()
        .map(|(k, v)| (k.clone(), Some(build_args.get(k.as_str()).map_or(v.clone(), |s| s.to_string()))))
        .collect();
    let mut global_args = Vec::new();
    let mut declared: BTreeSet<String> = BTreeSet::new();

    // Split into global ARGs and stages.
    let mut stage_groups: Vec<(&Located, &StageDecl, Vec<&Located>)> = Vec::new();
    for item in located {
        match &item.instruction {
            Instruction::Stage(decl) => stage_groups.push((item, decl, Vec::new())),
            Instruction::Command(cmd) => match stage_groups.last_mut() {
                Some((_, _, commands)) => commands.push(item),
                None => match cmd {
                    Command::Arg(args) => {
                        for arg in args {
                            declared.insert(arg.key.clone());
                            let value = match (build_args.get(arg.key.as_str()), &arg.value) {
                                (Some(v), _) => Some(v.to_string()),
                                (None, Some(default)) => match lexer.process_word(default, &MetaEnv(&meta)) {
                                    Ok(v) => Some(v),
                                    Err(e) => {
                                        report.error(e.to_string(), Some(report.span(&item.source)), None);
                                        None
                                    }
                                },
                                (None, None) => None,
                            };
                            global_args.push(ArgBinding { name: arg.key.clone(), value: value.clone() });
                            meta.push((arg.key.clone(), value));
                        }
                    }
                    _ => report.error(
                        format!(
                            "no build stage in current context: {} comes before the first FROM",
                            item.source.keyword.to_uppercase()
                        ),
                        Some(report.span(&item.source)),
                        Some("only ARG may come before the first FROM".into()),
                    ),
                },
            },
        }
    }
    if stage_groups.is_empty() {
        report.error(
            "dockerfile contains no stages to build",
            None,
            Some("add a FROM instruction (FROM scratch for an empty base)".into()),
        );
    }
    if !report.errors.is_empty() {
        report.errors.append(&mut report.warnings);
        return Err(report.errors);
    }

    // FROM lines: expand base names and platforms with the global args.
    let mut plans: Vec<StagePlan> = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (index, (item, decl, commands)) in stage_groups.iter().enumerate() {
        let span = report.span(&item.source);
        if let (Some(as_kw), Some(written)) = (&decl.as_keyword, &decl.name_as_written) {
            let from_upper = item.source.keyword.chars().all(|c| c.is_ascii_uppercase());
            let as_upper = as_kw.chars().all(|c| c.is_ascii_uppercase());
            if from_upper != as_upper {
                report.warn(
                    "FromAsCasing",
                    format!("'{as_kw}' and '{}' keywords' casing do not match", item.source.keyword),
                    Some(span),
                );
            }
            if written != &written.to_ascii_lowercase() {
                report.warn("StageNameCasing", format!("Stage name '{written}' should be lowercase"), Some(span));
            }
        }
        let base_name = match lexer.process_word_with_matches(&decl.base_name, &MetaEnv(&meta)) {
            Ok(e) => e.result,
            Err(e) => {
                report.error(e.to_string(), Some(span), None);
                String::new()
            }
        };
        if base_name.is_empty() {
            report.error(
                format!("base name ({}) should not be blank", decl.base_name),
                Some(span),
                Some("check the ARG used in FROM: declare it before the first FROM or pass --build-arg".into()),
            );
        } else if base_name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            report.error(
                format!("invalid reference format: {}", go_quote(&base_name)),
                Some(span),
                Some("an image reference has no spaces, e.g. alpine:3.20".into()),
            );
        }
        let platform = decl.platform.as_ref().and_then(|p| {
            let expanded = match lexer.process_word(p, &MetaEnv(&meta)) {
                Ok(v) => v,
                Err(e) => {
                    report.error(format!("failed to process arguments for platform {p}: {e}"), Some(span), None);
                    return None;
                }
            };
            if expanded.is_empty() {
                report.error(format!("empty platform value from expression {p}"), Some(span), None);
                return None;
            }
            match platform::parse(&expanded) {
                Ok(parsed) => Some(parsed.format()),
                Err(e) => {
                    report.error(format!("failed to parse platform {p}: {e}"), Some(span), None);
                    None
                }
            }
        });
        let base = if base_name.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else if let Some(&parent) = names.get(&base_name.to_ascii_lowercase()) {
            Base::Stage(parent as u32)
        } else {
            Base::Image(base_name.clone())
        };
        if let Some(name) = &decl.name {
            if let Some(&other) = names.get(name) {
                let first = report.span(&stage_groups[other].0.source);
                report.error(
                    format!("duplicate stage name {}", go_quote(name)),
                    Some(span),
                    Some(format!("stage {name} is already defined on line {}", first.start.line)),
                );
            } else {
                names.insert(name.clone(), index);
            }
        }
        let mut deps = BTreeSet::new();
        if let Base::Stage(parent) = base {
            deps.insert(parent as usize);
        }
        plans.push(StagePlan {
            decl,
            located: item,
            commands: commands.clone(),
            base,
            platform,
            deps,
            copy_from: BTreeMap::new(),
        });
    }
    let stage_names: Vec<String> =
        plans.iter().enumerate().map(|(i, p)| p.decl.name.clone().unwrap_or_else(|| format!("stage-{i}"))).collect();

    // COPY --from and mount sources: stage indices, names or images.
    let stage_count = plans.len();
    for plan in plans.iter_mut() {
        for (ci, item) in plan.commands.iter().enumerate() {
            let froms: Vec<String> = match &item.instruction {
                Instruction::Command(Command::Copy(c)) => c.from.iter().cloned().collect(),
                Instruction::Command(Command::Run(r)) => {
                    r.mounts.iter().filter_map(|m| mounts::parse(m, None).ok().and_then(|m| m.from)).collect()
                }
                _ => Vec::new(),
            };
            for from in froms {
                let expanded = lexer.process_word(&from, &MetaEnv(&meta)).unwrap_or(from);
                match resolve_from(&expanded, &names, stage_count) {
                    Ok(source) => {
                        if let CopySource::Stage(s) = source {
                            plan.deps.insert(s as usize);
                        }
                        if matches!(&item.instruction, Instruction::Command(Command::Copy(_))) {
                            plan.copy_from.insert(ci, source);
                        }
                    }
                    Err(message) => {
                        let span = report.span(&item.source);
                        report.error(
                            message,
                            Some(span),
                            Some(format!("the stages are numbered 0 to {}", stage_count.saturating_sub(1))),
                        );
                    }
                }
            }
        }
    }
    if let Some((from, stage)) = find_cycle(&plans) {
        // Point at the instruction that closes the cycle: a COPY --from or RUN --mount=from.
        let closing = plans[from].commands.iter().enumerate().find(|(ci, item)| {
            plans[from].copy_from.get(ci) == Some(&CopySource::Stage(stage as u32))
                || matches!(&item.instruction, Instruction::Command(Command::Run(r)) if r.mounts.iter().any(|m| {
                    mounts::parse(m, None).ok().and_then(|m| m.from).is_some_and(|f| {
                        let f = lexer.process_word(&f, &MetaEnv(&meta)).unwrap_or(f);
                        resolve_from(&f, &names, stage_count) == Ok(CopySource::Stage(stage as u32))
                    })
                }))
        });
        let source = closing.map_or(&plans[stage].located.source, |(_, item)| &item.source);
        let hint = if from == stage {
            format!("stage {} uses itself here; a stage cannot copy from itself", stage_names[stage])
        } else {
            format!(
                "stage {} uses stage {} here, which needs {} first; a stage cannot copy from a stage that depends on it",
                stage_names[from], stage_names[stage], stage_names[from]
            )
        };
        report.error(
            format!("circular dependency detected on stage: {}", stage_names[stage]),
            Some(report.span(source)),
            Some(hint),
        );
    }

    // The target.
    let target = match &request.target {
        None => plans.len().saturating_sub(1),
        Some(t) => match names.get(&t.to_ascii_lowercase()) {
            Some(&i) => i,
            None => {
                let named: Vec<&str> = plans.iter().filter_map(|p| p.decl.name.as_deref()).collect();
                let hint = if named.is_empty() {
                    "this Dockerfile has no named stages (name one with FROM ... AS <name>)".to_string()
                } else {
                    let close =
                        crate::suggest::closest(t, &named).map(|c| format!("did you mean {c}? ")).unwrap_or_default();
                    format!("{close}the stages are: {}", named.join(", "))
                };
                report.error(format!("target stage {} could not be found", go_quote(t)), None, Some(hint));
                0
            }
        },
    };
    if !report.errors.is_empty() {
        report.errors.append(&mut report.warnings);
        return Err(report.errors);
    }
    let reachable = reachable_from(target, &plans);

    // Base image configurations, only for stages the target needs.
    let mut configs: BTreeMap<(String, Option<String>), Option<ImageConfig>> = BTreeMap::new();
    for (i, plan) in plans.iter().enumerate() {
        let Base::Image(reference) = &plan.base else {
            continue;
        };
        if !reachable.contains(&i) {
            continue;
        }
        let key = (reference.clone(), plan.platform.clone());
        if configs.contains_key(&key) {
            continue;
        }
        let config = match resolver.resolve_image_config(reference, plan.platform.as_deref()) {
            Ok(config) => Some(config),
            Err(why) => {
                let span = report.span(&plan.located.source);
                report.warn(
                    "BaseImageUnresolved",
                    format!(
                        "could not read the configuration of {reference}: {why}; its ENV, WORKDIR, SHELL and ONBUILD are not visible to this build file"
                    ),
                    Some(span),
                );
                None
            }
        };
        configs.insert(key, config);
    }

    // Dispatch every stage in order.
    let mut finals: Vec<Option<StageState>> = Vec::new();
    let mut stages = Vec::new();
    let mut consumed: BTreeSet<String> = declared;
    for (i, plan) in plans.iter().enumerate() {
        let needed = reachable.contains(&i);
        let stage_span = report.span(&plan.located.source);
        let (mut state, triggers) = match &plan.base {
            Base::Scratch => (StageState::scratch(), Vec::new()),
            Base::Image(reference) => match configs.get(&(reference.clone(), plan.platform.clone())) {
                Some(Some(config)) => (StageState::from_image(config), config.on_build.clone()),
                _ => (StageState::scratch(), Vec::new()),
            },
            Base::Stage(parent) => {
                let parent_state = finals[*parent as usize].clone().unwrap_or_else(StageState::scratch);
                let triggers = parent_state.onbuild.clone();
                (parent_state, triggers)
            }
        };
        state.onbuild.clear();
        let mut ctx = Dispatch {
            lexer: &lexer,
            meta: &meta,
            build_args: &build_args,
            report: &mut report,
            needed,
            stage_names: &names,
            stage_count,
        };
        let mut out = Vec::new();
        // ONBUILD triggers of the base run first, at the FROM line.
        for trigger in &triggers {
            match parse_trigger(trigger) {
                Ok(commands) => {
                    for (command, original) in commands {
                        let source = instructions::Source {
                            keyword: "ONBUILD".into(),
                            original: original.clone(),
                            start_line: plan.located.source.start_line,
                            end_line: plan.located.source.end_line,
                        };
                        let from = match &command {
                            Command::Copy(c) => c
                                .from
                                .as_ref()
                                .map(|f| resolve_from(f, &names, stage_count).unwrap_or(CopySource::Image(f.clone()))),
                            _ => None,
                        };
                        if let Ok(ins) = ctx.dispatch(&mut state, &command, &source, from) {
                            out.extend(ins);
                        }
                    }
                }
                Err(message) => {
                    ctx.fail(
                        format!("invalid ONBUILD trigger {} from the base image: {message}", go_quote(trigger)),
                        stage_span,
                        None,
                    );
                }
            }
        }
        for (ci, item) in plan.commands.iter().enumerate() {
            let Instruction::Command(command) = &item.instruction else {
                continue;
            };
            if let Command::Arg(args) = command {
                consumed.extend(args.iter().map(|a| a.key.clone()));
            }
            if let Ok(ins) = ctx.dispatch(&mut state, command, &item.source, plan.copy_from.get(&ci).cloned()) {
                out.extend(ins);
            }
        }
        stages.push(Stage {
            name: plan.decl.name.clone(),
            base: plan.base.clone(),
            platform: plan.platform.clone(),
            instructions: out,
            span: stage_span,
            text: plan.located.source.original.trim().to_string(),
        });
        finals.push(Some(state));
    }

    let unused: Vec<&str> = request
        .build_args
        .iter()
        .map(|kv| kv.key.as_str())
        .filter(|k| !consumed.contains(*k) && !predefined.iter().any(|(p, _)| p == k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unused.is_empty() {
        report.warn("UnusedBuildArg", format!("One or more build-args [{}] were not consumed", unused.join(" ")), None);
    }

    if !report.errors.is_empty() {
        report.errors.extend(report.warnings);
        return Err(report.errors);
    }
    Ok(BuildGraph { stages, target: target as u32, global_args, warnings: report.warnings })
}

/// `# check=skip=Rule1,Rule2` or `# check=skip=all`.
fn apply_check_directive(parsed: &parser::ParseResult, report: &mut Report) {
    let Some(check) = parsed.directives.iter().find(|d| d.name == "check") else {
        return;
    };
    for part in check.value.split(';') {
        if let Some(rules) = part.trim().strip_prefix("skip=") {
            for rule in rules.split(',') {
                let rule = rule.trim();
                if rule.eq_ignore_ascii_case("all") {
                    report.skip_all = true;
                } else if !rule.is_empty() {
                    report.skip_rules.insert(rule.to_string());
                }
            }
        }
    }
}

/// Resolve a `--from` value: an index, a stage name, or else an image reference.
fn resolve_from(from: &str, names: &BTreeMap<String, usize>, count: usize) -> Result<CopySource, String> {
    let numeric = !from.is_empty()
        && from.trim_start_matches(['+', '-']).len() + 1 >= from.len()
        && from.trim_start_matches(['+', '-']).bytes().all(|b| b.is_ascii_digit())
        && !from.trim_start_matches(['+', '-']).is_empty();
    if numeric {
        return match from.parse::<i64>() {
            Ok(index) if index >= 0 && (index as usize) < count => Ok(CopySource::Stage(index as u32)),
            _ => Err(format!("invalid stage index {from}")),
        };
    }
    if from.is_empty() {
        return Err("--from cannot be empty".into());
    }
    Ok(match names.get(&from.to_ascii_lowercase()) {
        Some(&i) => CopySource::Stage(i as u32),
        None => CopySource::Image(from.to_string()),
    })
}

/// An edge that closes a cycle of stage dependencies, as (stage, the stage it uses).
fn find_cycle(plans: &[StagePlan]) -> Option<(usize, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; plans.len()];
    for root in 0..plans.len() {
        if marks[root] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, Vec<usize>)> = vec![(root, plans[root].deps.iter().copied().collect())];
        marks[root] = Mark::Active;
        while let Some((node, pending)) = stack.last_mut() {
            match pending.pop() {
                Some(dep) => match marks[dep] {
                    Mark::Active => return Some((*node, dep)),
                    Mark::New => {
                        marks[dep] = Mark::Active;
                        stack.push((dep, plans[dep].deps.iter().copied().collect()));
                    }
                    Mark::Done => {}
                },
                None => {
                    marks[*node] = Mark::Done;
                    stack.pop();
                }
            }
        }
    }
    None
}

fn reachable_from(target: usize, plans: &[StagePlan]) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if i < plans.len() && seen.insert(i) {
            todo.extend(plans[i].deps.iter().copied());
        }
    }
    seen
}

/// Parse an ONBUILD trigger's text into commands (with their one-line text).
fn parse_trigger(text: &str) -> Result<Vec<(Command, String)>, String> {
    let parsed = parser::parse(text).map_err(|e| e.message)?;
    let mut out = Vec::new();
    for node in &parsed.children {
        match instructions::parse_node(node).map_err(|(m, _)| m)? {
            Instruction::Stage(_) => return Err("FROM isn't allowed as an ONBUILD trigger".into()),
            Instruction::Command(Command::Onbuild(_)) => {
                return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
            }
            Instruction::Command(Command::Maintainer(_)) => {
                return Err("MAINTAINER isn't allowed as an ONBUILD trigger".into());
            }
            Instruction::Command(c) => out.push((c, node.original.trim().to_string())),
        }
    }
    Ok(out)
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quote_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" "))
}

/// Go's `%v` of a string slice: `[a b]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Signals STOPSIGNAL accepts by name (with or without `SIG`).
const SIGNALS: [&str; 31] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL", "PROF",
    "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2",
    "VTALRM", "WINCH",
];

fn valid_signal(s: &str) -> bool {
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

/// Applies one instruction at a time to a stage's state.
struct Dispatch<'a, 'r> {
    lexer: &'a Lexer,
    meta: &'a [(String, Option<String>)],
    build_args: &'a BTreeMap<&'a str, &'a str>,
    report: &'a mut Report<'r>,
    /// Whether the target needs this stage: errors in stages it does not need are warnings.
    needed: bool,
    stage_names: &'a BTreeMap<String, usize>,
    stage_count: usize,
}

type Step = Result<Vec<IrInstruction>, ()>;

impl Dispatch<'_, '_> {
    fn fail(&mut self, message: String, span: Span, hint: Option<String>) {
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
    fn nul(&mut self, what: &str, span: Span) {
        self.fail(
            format!("{what} contains a NUL byte"),
            span,
            Some("remove the NUL byte (\\0) from the line; no file name can hold one".into()),
        );
    }

    /// Expand one word in the stage's environment, reporting undefined variables.
    fn expand(&mut self, state: &StageState, word: &str, span: Span) -> Result<String, ()> {
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

    fn undefined(&mut self, state: &StageState, unmatched: &BTreeSet<String>, span: Span) {
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

    fn dispatch(
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

    fn dispatch_copy(
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

    fn dispatch_run(&mut self, state: &StageState, run: &RunCommand, span: Span) -> Result<(Op, String), ()> {
        if !run.devices.is_empty() {
            self.fail(
                "RUN --device is not supported: kiln runs steps in a WebAssembly sandbox with no devices".into(),
                span,
                Some("remove --device".into()),
            );
            return Err(());
        }
        let mut mounts_out = Vec::new();
        let mut ssh_count = 0;
        for value in &run.mounts {
            let lexer = self.lexer;
            let expander = |word: &str| lexer.process_word(word, state).map_err(|e| e.to_string());
            let spec = match mounts::parse(value, Some(&expander)) {
                Ok(spec) => spec,
                Err(e) => {
                    self.fail(format!("invalid --mount={value}: {e}"), span, None);
                    return Err(());
                }
            };
            if spec.target.as_ref().is_some_and(|t| t.contains('\0')) {
                self.nul("--mount target", span);
                return Err(());
            }
            let target = spec.target.as_ref().map(|t| kiln_ir::join_path(&state.workdir, t));
            let from_source = |from: &Option<String>| -> Result<Option<CopySource>, String> {
                match from {
                    None => Ok(None),
                    Some(f) => resolve_from(f, self.stage_names, self.stage_count).map(Some),
                }
            };
            let from = match from_source(&spec.from) {
                Ok(f) => f,
                Err(e) => {
                    self.fail(e, span, None);
                    return Err(());
                }
            };
            let (target, kind) = match spec.kind {
                MountType::Bind => (
                    target,
                    MountKind::Bind(BindMount {
                        from: from.unwrap_or(CopySource::Context),
                        source: spec.source.clone().unwrap_or_else(|| "/".into()),
                        read_write: !spec.read_only,
                    }),
                ),
                MountType::Cache => {
                    let target = target.unwrap_or_default();
                    let sharing = match spec.sharing.as_deref() {
                        Some("private") => CacheSharing::Private,
                        Some("locked") => CacheSharing::Locked,
                        _ => CacheSharing::Shared,
                    };
                    (
                        Some(target.clone()),
                        MountKind::Cache(CacheMount {
                            id: spec.id.clone().unwrap_or(target),
                            sharing,
                            from,
                            source: spec.source.clone().unwrap_or_else(|| "/".into()),
                            read_only: spec.read_only,
                            mode: spec.mode.unwrap_or(0o755),
                            uid: spec.uid.unwrap_or(0),
                            gid: spec.gid.unwrap_or(0),
                        }),
                    )
                }
                MountType::Tmpfs => (target, MountKind::Tmpfs(TmpfsMount { size: spec.size })),
                MountType::Secret => {
                    let id = spec
                        .id
                        .clone()
                        .or_else(|| spec.source.clone())
                        .or_else(|| target.as_ref().map(|t| t.rsplit('/').next().unwrap_or_default().to_string()))
                        .unwrap_or_default();
                    let target = match (&target, &spec.env) {
                        (Some(t), _) => Some(t.clone()),
                        (None, Some(_)) => None,
                        (None, None) => Some(format!("/run/secrets/{id}")),
                    };
                    (
                        target,
                        MountKind::Secret(SecretMount {
                            id,
                            env: spec.env.clone(),
                            required: spec.required,
                            mode: spec.mode.unwrap_or(0o400),
                            uid: spec.uid.unwrap_or(0),
                            gid: spec.gid.unwrap_or(0),
                        }),
                    )
                }
                MountType::Ssh => {
                    let target = target.unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{ssh_count}"));
                    ssh_count += 1;
                    (
                        Some(target),
                        MountKind::Ssh(SshMount {
                            id: spec.id.clone().unwrap_or_else(|| "default".into()),
                            required: spec.required,
                            mode: spec.mode.unwrap_or(0o600),
                            uid: spec.uid.unwrap_or(0),
                            gid: spec.gid.unwrap_or(0),
                        }),
                    )
                }
            };
            mounts_out.push(Mount { target, kind });
        }

        let cmd: &CmdLine = &run.cmd;
        let mut args = cmd.args.clone();
        if !cmd.files.is_empty() {
            if args.len() != 1 || !cmd.prepend_shell {
                self.fail(format!("parsing produced an invalid run command: {}", go_list(&args)), span, None);
                return Err(());
            }
            let first = &cmd.files[0];
            let data = if first.chomp { parser::chomp_heredoc(&first.data) } else { first.data.clone() };
            if parser::parse_heredoc(&args[0]).ok().flatten().is_some() {
                if data.starts_with("#!") {
                    // A script with its own interpreter: mount it and run it.
                    mounts_out.push(Mount {
                        target: Some(format!("/dev/pipes/{}", first.name)),
                        kind: MountKind::Inline(InlineFile { name: first.name.clone(), contents: data, mode: 0o755 }),
                    });
                    args = vec![format!("/dev/pipes/{}", first.name)];
                } else {
                    args = vec![data];
                }
            } else {
                // A heredoc inside a larger command: hand the whole text to the shell.
                let mut full = args[0].clone();
                for file in &cmd.files {
                    full.push('\n');
                    full.push_str(&file.data);
                    full.push_str(&file.name);
                }
                args = vec![full];
            }
        }
        let argv = if cmd.prepend_shell { state.with_shell(&args) } else { args };

        let network = match run.network.as_deref() {
            Some("none") => Network::None,
            Some("host") => Network::Host,
            _ => Network::Default,
        };
        let security = match run.security.as_deref() {
            Some("insecure") => Security::Insecure,
            _ => Security::Sandbox,
        };
        let build_args: Vec<KeyValue> =
            state.build_args.iter().filter_map(|(k, v)| v.as_ref().map(|v| KeyValue::new(k, v.as_str()))).collect();
        // BuildKit's runCommandString: "|N K=V ... argv".
        let mut history: Vec<String> = state
            .build_args
            .iter()
            .map(|(k, v)| format!("{k}={}", state.get(k).or(v.as_deref()).unwrap_or("")))
            .collect();
        if !history.is_empty() {
            history.insert(0, format!("|{}", history.len()));
        }
        history.extend(argv.iter().cloned());
        Ok((
            Op::Run(Run { argv, shell_form: cmd.prepend_shell, build_args, mounts: mounts_out, network, security }),
            format!("RUN {}", history.join(" ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_paths_like_go() {
        assert_eq!(kiln_ir::join_path("/", "app"), "/app");
        assert_eq!(kiln_ir::join_path("/app", "sub/../x"), "/app/x");
        assert_eq!(kiln_ir::join_path("/app", "/abs"), "/abs");
        assert_eq!(kiln_ir::join_path("/", "../.."), "/");
    }

    #[test]
    fn signals() {
        for ok in ["SIGTERM", "sigkill", "9", "QUIT", "SIGRTMIN+3"] {
            assert!(valid_signal(ok), "{ok}");
        }
        for bad in ["SIGFOO", "0", "99", ""] {
            assert!(!valid_signal(bad), "{bad}");
        }
    }

    #[test]
    fn from_values() {
        let names: BTreeMap<String, usize> = [("builder".to_string(), 0)].into_iter().collect();
        assert_eq!(resolve_from("0", &names, 2), Ok(CopySource::Stage(0)));
        assert_eq!(resolve_from("Builder", &names, 2), Ok(CopySource::Stage(0)));
        assert_eq!(resolve_from("alpine:3", &names, 2), Ok(CopySource::Image("alpine:3".into())));
        assert_eq!(resolve_from("5", &names, 2), Err("invalid stage index 5".into()));
        assert_eq!(resolve_from("-1", &names, 2), Err("invalid stage index -1".into()));
    }
}
