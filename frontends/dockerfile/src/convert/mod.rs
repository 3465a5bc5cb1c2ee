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
//!
//! This file holds the stage state, the diagnostics report and the walk over stages
//! ([`convert`]); `stages` resolves references between stages, `dispatch` turns one
//! instruction into IR (with `copy` and `run` for COPY/ADD and RUN), and `vars` is the
//! ordered variable map they share.

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

mod copy;
mod dispatch;
mod run;
mod stages;
mod vars;

use dispatch::go_list;
use stages::{find_cycle, parse_trigger, reachable_from, resolve_from};
use vars::Vars;

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

#[cfg(test)]
mod tests;
