//! A parsed Earthfile to the stage IR.
//!
//! Owns Earthly's semantics across commands, as its `earthfile2llb` converter applies them:
//!
//! - **Targets are instantiated on demand**, starting from the requested one, once per set of
//!   overriding arguments (`--build-arg`, `FROM +t --NAME=value`, `COPY (+t/a --NAME=value)`,
//!   `--pass-args`). Overrides flow down to the targets a target references, as in Earthly.
//!   Only targets the build needs are converted; commands kiln does not support in the
//!   others are reported as warnings.
//! - **The base recipe** (the commands before the first target) is the target `+base`: a
//!   target whose recipe does not start with FROM starts from it, and its `ARG --global`s
//!   (every ARG, in VERSION 0.6) are visible in every target.
//! - **Artifacts**: `SAVE ARTIFACT` records where a file of the target's filesystem goes in the
//!   target's artifacts; `COPY +target/path` copies it from the target's stage, by the path it
//!   had there. A stage ends where a SAVE ARTIFACT is followed by a step that changes files, so
//!   that the copy sees the files as they were saved. A renamed artifact, or a wildcard over
//!   several artifacts, is read from a small stage holding the target's artifacts as Earthly
//!   lays them out.
//! - Variables (ARG, LET, SET, builtins) and ENV, expanded with the Dockerfile frontend's shell
//!   lexer; `$(...)` shell-outs outside RUN are refused.
//! - Identical stages (the same target instantiated with arguments it does not use) are merged,
//!   so the IR is the same whatever order of references produced it.
//!
//! It talks to the outside only through [`ImageResolver`]; it never reads files.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kiln_dockerfile::shell::{Env as ShellEnv, Lexer};
use kiln_dockerfile::{duration, expose, mounts, platform};
use kiln_ir::{
    Base, BuildGraph, CacheMount, CacheSharing, Command as IrCommand, ConfigChange, CopyFiles, CopySource, Diagnostic,
    Healthcheck, ImageConfig, ImageResolver, Instruction, KeyValue, Mount, MountKind, Network, Op, Request, Run,
    SecretMount, Security, Span, SshMount, Stage, TmpfsMount,
};

use crate::command::{self, Command, Form};
use crate::lexer::Statement;
use crate::parser::{Earthfile, Node, Target};
use crate::reference::{self, RefError};

/// The most target instances (a target with one set of arguments) one build may create.
pub const MAX_INSTANCES: usize = 256;
/// How deeply target references (FROM, COPY) may nest.
pub const MAX_DEPTH: usize = 64;
/// The most stages one build may produce.
pub const MAX_STAGES: usize = 4096;

/// The PATH a build on scratch sees (BuildKit's default for Linux).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// What RUN, CMD and ENTRYPOINT wrap the shell form in. Earthfiles have no SHELL.
const SHELL: [&str; 2] = ["/bin/sh", "-c"];
/// The base recipe, as a target.
const BASE: &str = "base";
/// The stage of an instance that has none (an empty base recipe).
const NO_STAGE: u32 = u32::MAX;
/// Earthly's builtin ARGs whose value kiln cannot know (git metadata, Earthly's own version).
const UNKNOWN_BUILTINS: [&str; 22] = [
    "EARTHLY_TARGET_PROJECT",
    "EARTHLY_TARGET_PROJECT_NO_TAG",
    "EARTHLY_TARGET_TAG",
    "EARTHLY_TARGET_TAG_DOCKER",
    "EARTHLY_GIT_HASH",
    "EARTHLY_GIT_SHORT_HASH",
    "EARTHLY_GIT_BRANCH",
    "EARTHLY_GIT_TAG",
    "EARTHLY_GIT_ORIGIN_URL",
    "EARTHLY_GIT_ORIGIN_URL_SCRUBBED",
    "EARTHLY_GIT_PROJECT_NAME",
    "EARTHLY_GIT_COMMIT_TIMESTAMP",
    "EARTHLY_GIT_COMMIT_AUTHOR_TIMESTAMP",
    "EARTHLY_GIT_AUTHOR",
    "EARTHLY_GIT_CO_AUTHORS",
    "EARTHLY_GIT_REFS",
    "EARTHLY_SOURCE_DATE_EPOCH",
    "EARTHLY_VERSION",
    "EARTHLY_BUILD_SHA",
    "EARTHLY_CI_RUNNER",
    "EARTHLY_ORG",
    "EARTHLY_PROJECT",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VarKind {
    Arg,
    Global,
    Let,
    Builtin,
}

/// The variables in scope, in declaration order (a later declaration replaces in place).
#[derive(Debug, Clone, Default)]
struct Vars {
    list: Vec<(String, String, VarKind)>,
}

impl Vars {
    fn get(&self, name: &str) -> Option<&str> {
        self.list.iter().find(|(k, _, _)| k == name).map(|(_, v, _)| v.as_str())
    }

    fn kind(&self, name: &str) -> Option<VarKind> {
        self.list.iter().find(|(k, _, _)| k == name).map(|(_, _, kind)| *kind)
    }

    fn set(&mut self, name: &str, value: String, kind: VarKind) {
        match self.list.iter_mut().find(|(k, _, _)| k == name) {
            Some(entry) => {
                entry.1 = value;
                entry.2 = kind;
            }
            None => self.list.push((name.to_string(), value, kind)),
        }
    }

    fn of_kind(&self, kind: VarKind) -> Vec<(String, String)> {
        self.list.iter().filter(|(_, _, k)| *k == kind).map(|(n, v, _)| (n.clone(), v.clone())).collect()
    }
}

/// What later commands of a stage see of its image configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageState {
    env: Vec<(String, String)>,
    workdir: String,
    user: String,
    /// `None` when it comes from a base image (whose ENTRYPOINT the host does not tell).
    entrypoint: Option<Vec<String>>,
}

impl ImageState {
    fn scratch() -> Self {
        ImageState {
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            workdir: "/".into(),
            user: String::new(),
            entrypoint: Some(Vec::new()),
        }
    }

    fn from_config(config: Option<&ImageConfig>) -> Self {
        let mut state = ImageState::scratch();
        state.entrypoint = None;
        if let Some(config) = config {
            state.env.clear();
            for entry in &config.env {
                let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
                state.set_env(k, v);
            }
            if !state.env.iter().any(|(k, _)| k == "PATH") {
                state.set_env("PATH", DEFAULT_PATH);
            }
            if !config.working_dir.is_empty() {
                state.workdir = config.working_dir.clone();
            }
            state.user = config.user.clone();
        }
        state
    }

    fn set_env(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.env.push((key.to_string(), value.to_string())),
        }
    }
}

/// Variables first, then the stage's ENV.
struct Scope<'a> {
    vars: &'a Vars,
    env: &'a [(String, String)],
}

impl ShellEnv for Scope<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).or_else(|| self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()))
    }
}

/// A file or directory a target saved with SAVE ARTIFACT.
#[derive(Debug, Clone)]
struct Artifact {
    /// Where it is in the target's artifacts: relative, clean, `""` for the top. For a
    /// wildcard save, the directory the matches go into.
    path: String,
    /// Where it was in the stage's filesystem: absolute, clean; for a wildcard save, the
    /// pattern (the wildcard is in the last component).
    source: String,
    /// Whether `source` is a pattern.
    glob: bool,
    /// The stage holding the files as they were saved (set when that stage is pushed).
    stage: u32,
    /// `--keep-own`.
    keep_own: bool,
    /// The SAVE ARTIFACT command.
    span: Span,
}

/// A stage being built.
#[derive(Debug, Clone)]
struct Segment {
    base: Base,
    platform: Option<String>,
    state: ImageState,
    instructions: Vec<Instruction>,
    span: Span,
    text: String,
    /// Artifacts saved in this segment: indices into the instance's artifacts.
    saved: Vec<usize>,
}

impl Segment {
    fn new(base: Base, state: ImageState, span: Span, text: String) -> Self {
        Segment { base, platform: None, state, instructions: Vec::new(), span, text, saved: Vec::new() }
    }
}

/// A target converted with one set of overriding arguments.
#[derive(Debug, Clone)]
struct Instance {
    /// The stage holding the target's image.
    stage: u32,
    /// Its configuration, for targets that start FROM it.
    state: ImageState,
    artifacts: Vec<Artifact>,
    /// The stage laying out the artifacts as Earthly does, once a COPY needed it.
    artifacts_stage: Option<u32>,
    /// Global ARGs (the base recipe only).
    globals: Vec<(String, String)>,
    /// The base recipe has no FROM and no commands: targets start from scratch.
    trivial: bool,
}

type Overrides = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct InstanceKey {
    target: String,
    overrides: Vec<(String, String)>,
}

/// A stage as pushed, with who made it.
struct StageRecord {
    stage: Stage,
    /// The target whose image this is, for the final stage of a target.
    owner: Option<String>,
}

/// The state of one target's conversion.
struct Eval {
    name: String,
    is_base: bool,
    top: bool,
    overrides: Overrides,
    vars: Vars,
    seg: Option<Segment>,
    artifacts: Vec<Artifact>,
    header: Span,
}

/// How `COPY +target/path` reads an artifact.
enum Resolved {
    /// From the target's stage, at this path.
    Direct { stage: u32, source: String, keep_own: bool },
    /// From the target's artifacts stage, at the artifact path.
    Layout,
    /// The target saved nothing there.
    Missing,
}

struct Converter<'a> {
    file: &'a Earthfile,
    request: &'a Request,
    resolver: &'a dyn ImageResolver,
    lexer: Lexer,
    targets: BTreeMap<&'a str, &'a Target>,
    stages: Vec<StageRecord>,
    instances: BTreeMap<InstanceKey, Instance>,
    active: Vec<InstanceKey>,
    converted: BTreeSet<String>,
    configs: BTreeMap<(String, Option<String>), Option<ImageConfig>>,
    consumed: BTreeSet<String>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    build_platform: platform::Platform,
    target_platform: platform::Platform,
    /// The global ARGs the requested target sees.
    global_args: Vec<(String, String)>,
}

fn error(message: impl Into<String>, span: Option<Span>, hint: impl Into<String>, code: &str) -> Diagnostic {
    Diagnostic::error(message, span).with_hint(hint).with_code(code)
}

fn warning(message: impl Into<String>, span: Option<Span>, hint: impl Into<String>, code: &str) -> Diagnostic {
    Diagnostic::warning(message, span).with_hint(hint).with_code(code)
}

/// Convert a parsed Earthfile into the IR, for `request.target` (or `+build`).
///
/// # Errors
/// Every error found, followed by the warnings.
pub fn convert(
    file: &Earthfile,
    request: &Request,
    resolver: &dyn ImageResolver,
) -> Result<BuildGraph, Vec<Diagnostic>> {
    let parse_platform = |what: &str, value: &str| {
        platform::parse(value).map_err(|e| {
            vec![error(
                format!("invalid {what} platform: {e}"),
                None,
                "platforms are written os/arch[/variant], e.g. linux/amd64",
                "invalid-platform",
            )]
        })
    };
    let build_platform = parse_platform("build", &request.build_platform)?;
    let target_platform = parse_platform("target", &request.target_platform)?;
    let mut c = Converter {
        file,
        request,
        resolver,
        lexer: Lexer::new('\\'),
        targets: file.targets.iter().filter(|t| !t.function).map(|t| (t.name.as_str(), t)).collect(),
        stages: Vec::new(),
        instances: BTreeMap::new(),
        active: Vec::new(),
        converted: BTreeSet::new(),
        configs: BTreeMap::new(),
        consumed: BTreeSet::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        build_platform,
        target_platform,
        global_args: Vec::new(),
    };
    for flag in &file.version.flags {
        if flag.text != "--explicit-global" {
            c.warnings.push(warning(
                format!("VERSION {} is ignored: kiln has no Earthly feature flags", flag.text),
                Some(flag.span),
                format!("remove {}", flag.text),
                "ignored-flag",
            ));
        }
    }
    let top = c.select_target();
    let mut overrides = Overrides::new();
    for kv in &request.build_args {
        overrides.insert(kv.key.clone(), kv.value.clone());
    }
    let key = top.as_ref().and_then(|name| {
        let span = c.targets.get(name.as_str()).map_or(file.version.span, |t| t.span);
        c.instance(name, overrides, span, true)
    });
    c.lint_unneeded();
    let unused: Vec<&str> = request
        .build_args
        .iter()
        .map(|kv| kv.key.as_str())
        .filter(|k| !c.consumed.contains(*k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unused.is_empty() && top.is_some() {
        c.warnings.push(warning(
            format!("build args not used by the targets this build needs: {}", unused.join(", ")),
            None,
            "declare them with ARG in the targets that use them, or drop the --build-arg",
            "unused-build-arg",
        ));
    }
    let errors = dedup(std::mem::take(&mut c.errors));
    let warnings = dedup(std::mem::take(&mut c.warnings));
    let Some(key) = key.filter(|_| errors.is_empty()) else {
        let mut all = errors;
        all.extend(warnings);
        return Err(all);
    };
    let instance = &c.instances[&key];
    let mut top_stage = instance.stage;
    if top_stage == NO_STAGE {
        // `--target +base` of an empty base recipe: an empty image.
        top_stage = c.stages.len() as u32;
        c.stages.push(StageRecord {
            stage: Stage {
                name: None,
                base: Base::Scratch,
                platform: None,
                instructions: Vec::new(),
                span: file.version.span,
                text: "FROM scratch".into(),
            },
            owner: Some(BASE.into()),
        });
    }
    let instance = &c.instances[&key];
    let global_args = if key.target == BASE { instance.globals.clone() } else { std::mem::take(&mut c.global_args) };
    let global_args =
        global_args.into_iter().map(|(name, value)| kiln_ir::ArgBinding { name, value: Some(value) }).collect();
    let (stages, target) = finish(std::mem::take(&mut c.stages), top_stage);
    Ok(BuildGraph { stages, target, global_args, warnings })
}

/// Keep the first of equal diagnostics.
fn dedup(list: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    for d in list {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// Merge identical stages, then name each target's stage.
fn finish(records: Vec<StageRecord>, top: u32) -> (Vec<Stage>, u32) {
    let mut map: Vec<u32> = Vec::with_capacity(records.len());
    let mut kept: Vec<(Stage, Vec<String>)> = Vec::new();
    let mut seen: HashMap<Stage, u32> = HashMap::new();
    for record in records {
        let mut stage = record.stage;
        let remap = |s: &mut u32| *s = map[*s as usize];
        if let Base::Stage(s) = &mut stage.base {
            remap(s);
        }
        for ins in &mut stage.instructions {
            match &mut ins.op {
                Op::Copy(copy) => {
                    if let CopySource::Stage(s) = &mut copy.from {
                        remap(s);
                    }
                }
                Op::Run(run) => {
                    for m in &mut run.mounts {
                        match &mut m.kind {
                            MountKind::Bind(b) => {
                                if let CopySource::Stage(s) = &mut b.from {
                                    remap(s);
                                }
                            }
                            MountKind::Cache(c) => {
                                if let Some(CopySource::Stage(s)) = &mut c.from {
                                    remap(s);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        match seen.get(&stage) {
            Some(&index) => {
                map.push(index);
                kept[index as usize].1.extend(record.owner);
            }
            None => {
                let index = kept.len() as u32;
                seen.insert(stage.clone(), index);
                map.push(index);
                kept.push((stage, record.owner.into_iter().collect()));
            }
        }
    }
    let target = map[top as usize];
    let mut used: BTreeSet<String> = BTreeSet::new();
    let name_of = |owners: &[String], used: &mut BTreeSet<String>| {
        owners.iter().map(|o| o.to_ascii_lowercase()).find(|n| used.insert(n.clone()))
    };
    let top_name = name_of(&kept[target as usize].1, &mut used);
    let stages = kept
        .into_iter()
        .enumerate()
        .map(|(i, (mut stage, owners))| {
            stage.name = if i as u32 == target { top_name.clone() } else { name_of(&owners, &mut used) };
            stage
        })
        .collect();
    (stages, target)
}

/// A relative path, cleaned: no leading `/`, no `.`, `..` resolved (never above the top).
fn clean_relative(p: &str) -> String {
    kiln_ir::join_path("/", p).trim_start_matches('/').to_string()
}

fn has_wildcard(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

fn base_name(p: &str) -> &str {
    p.trim_end_matches('/').rsplit('/').next().unwrap_or(p)
}

fn parent(p: &str) -> &str {
    match p.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/",
        Some((dir, _)) => dir,
        None => "",
    }
}

/// Whether one path component matches a pattern of `*`, `?` and `[...]` (`[!...]` negates).
/// Greedy with one backtrack point, so it takes at most `pattern × name` steps.
fn component_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // `[...]` at `at` against `c`: whether it matches, and where the pattern goes on; `None`
    // when the bracket is never closed (then it is an ordinary character).
    let class = |at: usize, c: char| -> Option<(bool, usize)> {
        let close = p[at + 1..].iter().position(|&x| x == ']').map(|k| at + 1 + k)?;
        let mut body = &p[at + 1..close];
        let negate = matches!(body.first(), Some('!' | '^'));
        if negate {
            body = &body[1..];
        }
        let mut hit = false;
        let mut k = 0;
        while k < body.len() {
            if k + 2 < body.len() && body[k + 1] == '-' {
                hit |= body[k] <= c && c <= body[k + 2];
                k += 3;
            } else {
                hit |= body[k] == c;
                k += 1;
            }
        }
        Some((hit != negate, close + 1))
    };
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match class(pi, n[ni]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                None => (n[ni] == '[').then_some(pi + 1),
            },
            Some(&c) => (c == n[ni]).then_some(pi + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether a raw word holds a `$(...)` shell-out (outside single quotes).
fn has_shell_out(raw: &str) -> bool {
    let chars: Vec<char> = raw.chars().collect();
    let mut single = false;
    let mut k = 0;
    while k < chars.len() {
        match chars[k] {
            '\\' if !single => k += 1,
            '\'' => single = !single,
            '$' if !single && chars.get(k + 1) == Some(&'(') => return true,
            _ => {}
        }
        k += 1;
    }
    false
}

/// `--dir` copies each source directory itself: keep the last component of each source
/// under the destination (`--parents` with a `/./` pivot). A lone source copied to a named
/// destination becomes that destination, as `cp -r` does when it does not exist yet.
fn dir_sources(sources: Vec<String>, dest: &str) -> (Vec<String>, bool) {
    let dir_dest = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    if sources.len() == 1 && !dir_dest && !has_wildcard(&sources[0]) {
        return (sources, false);
    }
    let pivoted = sources
        .into_iter()
        .map(|s| {
            let trimmed = s.trim_end_matches('/');
            match trimmed.rsplit_once('/') {
                Some((dir, last)) if !dir.is_empty() && dir != "." => format!("{dir}/./{last}"),
                Some(("", last)) => format!("/./{last}"),
                _ => trimmed.to_string(),
            }
        })
        .collect();
    (pivoted, true)
}

impl<'a> Converter<'a> {
    fn fail(&mut self, message: impl Into<String>, span: Span, hint: impl Into<String>, code: &str) {
        self.errors.push(error(message, Some(span), hint, code));
    }

    fn target_list(&self) -> String {
        let names: Vec<String> = self.targets.keys().map(|n| format!("+{n}")).collect();
        if names.is_empty() { "this Earthfile has no targets".to_string() } else { names.join(", ") }
    }

    /// The target to build: `--target` (`+name` or `name`), else `+build`.
    fn select_target(&mut self) -> Option<String> {
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
    fn instance(&mut self, target: &str, overrides: Overrides, at: Span, top: bool) -> Option<InstanceKey> {
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

    /// Push a finished segment as a stage; the artifacts saved in it now know their stage.
    fn push_segment(&mut self, ev: &mut Eval, seg: Segment, last: bool) -> u32 {
        let index = self.stages.len() as u32;
        for &a in &seg.saved {
            ev.artifacts[a].stage = index;
        }
        if self.stages.len() >= MAX_STAGES {
            self.fail(
                format!("the build has more than {MAX_STAGES} stages"),
                seg.span,
                "split the Earthfile into several builds",
                "too-many-stages",
            );
        }
        self.stages.push(StageRecord {
            stage: Stage {
                name: None,
                base: seg.base,
                platform: seg.platform,
                instructions: seg.instructions,
                span: seg.span,
                text: seg.text,
            },
            owner: last.then(|| ev.name.clone()),
        });
        index
    }

    /// A target whose recipe does not start with FROM starts from the base recipe.
    fn ensure_segment(&mut self, ev: &mut Eval, at: Span) {
        if ev.seg.is_some() {
            return;
        }
        if ev.is_base {
            ev.seg = Some(Segment::new(Base::Scratch, ImageState::scratch(), ev.header, "FROM scratch".into()));
            return;
        }
        let key = self.instance(BASE, ev.overrides.clone(), at, false);
        let seg = match key.map(|k| &self.instances[&k]) {
            Some(base) if !base.trivial => Segment::new(
                Base::Stage(base.stage),
                base.state.clone(),
                ev.header,
                format!("+{}: FROM +base", ev.name),
            ),
            _ => Segment::new(Base::Scratch, ImageState::scratch(), ev.header, format!("+{}: FROM scratch", ev.name)),
        };
        ev.seg = Some(seg);
    }

    /// Before a step that changes files: if the segment saved artifacts, end it there so that
    /// they keep the files as saved.
    fn before_file_change(&mut self, ev: &mut Eval, at: Span) {
        self.ensure_segment(ev, at);
        let Some(seg) = ev.seg.as_ref().filter(|s| !s.saved.is_empty()) else { return };
        let state = seg.state.clone();
        let platform = seg.platform.clone();
        let seg = ev.seg.take().expect("checked above");
        let index = self.push_segment(ev, seg, false);
        let mut next = Segment::new(
            Base::Stage(index),
            state,
            at,
            format!("+{}: after SAVE ARTIFACT, line {}", ev.name, at.start.line),
        );
        next.platform = platform;
        ev.seg = Some(next);
    }

    fn push(&mut self, ev: &mut Eval, s: &Statement, op: Op, created_by: String) {
        self.ensure_segment(ev, s.span);
        if let Some(seg) = ev.seg.as_mut() {
            seg.instructions.push(Instruction { op, span: s.span, created_by, text: s.text() });
        }
    }

    fn scope<'e>(ev: &'e Eval) -> Scope<'e> {
        Scope { vars: &ev.vars, env: ev.seg.as_ref().map_or(&[][..], |s| &s.state.env[..]) }
    }

    /// Expand one word in the target's scope.
    fn expand(&mut self, ev: &Eval, raw: &str, span: Span) -> Option<String> {
        if has_shell_out(raw) {
            self.fail(
                format!("kiln cannot run the command in {raw} while reading the Earthfile"),
                span,
                "compute the value in a RUN step, or pass it in: kiln build --build-arg NAME=\"$(command)\"",
                "shell-out",
            );
            return None;
        }
        match self.lexer.process_word(raw, &Self::scope(ev)) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(e.to_string(), span, "close the quote, or escape it with a backslash", "invalid-word");
                None
            }
        }
    }

    fn command(&mut self, ev: &mut Eval, s: &'a Statement) {
        let parsed = match command::parse(s) {
            Ok(p) => p,
            Err(ds) => {
                self.errors.extend(ds);
                return;
            }
        };
        self.warnings.extend(parsed.warnings);
        match parsed.command {
            Command::From(f) => self.from(ev, s, f),
            Command::Arg(a) => self.arg(ev, s, a),
            Command::Let(a) => {
                if let Some(v) = self.expand(ev, &a.value.text, a.value.span) {
                    ev.vars.set(&a.name.text, v, VarKind::Let);
                }
            }
            Command::Set(a) => {
                if ev.vars.kind(&a.name.text) != Some(VarKind::Let) {
                    self.fail(
                        format!("SET {}: {} was not declared with LET", a.name.text, a.name.text),
                        s.span,
                        format!("declare it first: LET {}=value", a.name.text),
                        "undeclared-variable",
                    );
                } else if let Some(v) = self.expand(ev, &a.value.text, a.value.span) {
                    ev.vars.set(&a.name.text, v, VarKind::Let);
                }
            }
            Command::Run(run) => self.run(ev, s, run),
            Command::Copy(copy) => self.copy(ev, s, copy),
            Command::SaveArtifact(save) => self.save_artifact(ev, s, save),
            Command::SaveImage(save) => self.save_image(ev, s, save),
            Command::Env(env) => {
                if !command::valid_name(&env.key.text) {
                    self.fail(
                        format!("invalid ENV name {:?}", env.key.text),
                        env.key.span,
                        "names start with a letter or _ and hold letters, digits and _",
                        "invalid-arguments",
                    );
                    return;
                }
                self.ensure_segment(ev, s.span);
                let Some(value) = self.expand(ev, &env.value, s.span) else { return };
                if let Some(seg) = ev.seg.as_mut() {
                    seg.state.set_env(&env.key.text, &value);
                }
                let created = format!("ENV {}={value}", env.key.text);
                self.push(ev, s, Op::Config(ConfigChange::Env(vec![KeyValue::new(&env.key.text, value)])), created);
            }
            Command::Label(pairs) => {
                self.ensure_segment(ev, s.span);
                let mut kvs = Vec::new();
                for (k, v) in pairs {
                    let (Some(k), Some(v)) = (self.expand(ev, &k, s.span), self.expand(ev, &v, s.span)) else {
                        return;
                    };
                    kvs.push(KeyValue::new(k, v));
                }
                let created = kvs.iter().map(|kv| format!("{}={}", kv.key, kv.value)).collect::<Vec<_>>().join(" ");
                self.push(ev, s, Op::Config(ConfigChange::Label(kvs)), format!("LABEL {created}"));
            }
            Command::Workdir(w) => {
                self.before_file_change(ev, s.span);
                let Some(dir) = self.expand(ev, &w.text, w.span) else { return };
                let Some(seg) = ev.seg.as_mut() else { return };
                seg.state.workdir = kiln_ir::join_path(&seg.state.workdir, &dir);
                let created = format!("WORKDIR {}", seg.state.workdir);
                self.push(ev, s, Op::Config(ConfigChange::Workdir(dir)), created);
            }
            Command::User(w) => {
                self.ensure_segment(ev, s.span);
                let Some(user) = self.expand(ev, &w.text, w.span) else { return };
                if let Some(seg) = ev.seg.as_mut() {
                    seg.state.user = user.clone();
                }
                self.push(ev, s, Op::Config(ConfigChange::User(user.clone())), format!("USER {user}"));
            }
            Command::Cmd(form) | Command::Entrypoint(form) => {
                let is_cmd = s.keyword == "CMD";
                let (argv, shell_form) = match form {
                    Form::Exec(argv) => (argv, false),
                    Form::Shell(words) => {
                        let mut argv: Vec<String> = SHELL.iter().map(|x| x.to_string()).collect();
                        argv.push(Form::joined(words));
                        (argv, true)
                    }
                };
                self.ensure_segment(ev, s.span);
                let created = format!("{} {:?}", s.keyword, argv);
                let command = IrCommand { argv: argv.clone(), shell_form };
                if is_cmd {
                    self.push(ev, s, Op::Config(ConfigChange::Cmd(command)), created);
                } else {
                    if let Some(seg) = ev.seg.as_mut() {
                        seg.state.entrypoint = Some(argv);
                    }
                    self.push(ev, s, Op::Config(ConfigChange::Entrypoint(command)), created);
                }
            }
            Command::Expose(words) => {
                self.ensure_segment(ev, s.span);
                let mut specs = Vec::new();
                for w in words {
                    let Some(v) = self.expand(ev, &w.text, w.span) else { return };
                    specs.push(v);
                }
                match expose::parse_specs(&specs) {
                    Ok(ports) => {
                        let created = format!("EXPOSE {}", ports.join(" "));
                        self.push(ev, s, Op::Config(ConfigChange::Expose(ports)), created);
                    }
                    Err(e) => self.fail(e, s.span, "write ports as 80, 80/udp or 8000-8010/tcp", "invalid-arguments"),
                }
            }
            Command::Volume(form) => {
                self.ensure_segment(ev, s.span);
                let paths = match form {
                    Form::Exec(list) => list,
                    Form::Shell(words) => {
                        let mut out = Vec::new();
                        for w in words {
                            let Some(v) = self.expand(ev, &w.text, w.span) else { return };
                            out.push(v);
                        }
                        out
                    }
                };
                let created = format!("VOLUME {paths:?}");
                self.push(ev, s, Op::Config(ConfigChange::Volume(paths)), created);
            }
            Command::StopSignal(w) => {
                self.ensure_segment(ev, s.span);
                let Some(sig) = self.expand(ev, &w.text, w.span) else { return };
                self.push(ev, s, Op::Config(ConfigChange::StopSignal(sig.clone())), format!("STOPSIGNAL {sig}"));
            }
            Command::Healthcheck(h) => self.healthcheck(ev, s, h),
        }
    }

    fn healthcheck(&mut self, ev: &mut Eval, s: &Statement, h: command::Healthcheck<'_>) {
        self.ensure_segment(ev, s.span);
        let mut nanos = [0u64; 4];
        for (slot, name) in ["interval", "timeout", "start-period", "start-interval"].iter().enumerate() {
            let Some((raw, span)) = h.flags.value(name) else { continue };
            let Some(text) = self.expand(ev, raw, span) else { return };
            match duration::parse(&text) {
                Ok(n) if n >= 0 && n <= u64::MAX as i128 => nanos[slot] = n as u64,
                Ok(_) => {
                    return self.fail(format!("--{name} cannot be negative"), span, "write e.g. 30s", "invalid-flag");
                }
                Err(e) => {
                    return self.fail(
                        format!("--{name}: {e}"),
                        span,
                        "write durations as 30s, 1m30s or 500ms",
                        "invalid-flag",
                    );
                }
            }
        }
        let mut retries = 0;
        if let Some((raw, span)) = h.flags.value("retries") {
            let Some(text) = self.expand(ev, raw, span) else { return };
            match text.parse::<u32>() {
                Ok(n) => retries = n,
                Err(_) => {
                    return self.fail(
                        format!("--retries {text:?} is not a number"),
                        span,
                        "write e.g. --retries=3",
                        "invalid-flag",
                    );
                }
            }
        }
        let test = match h.cmd {
            None => vec!["NONE".to_string()],
            Some(Form::Exec(argv)) => std::iter::once("CMD".to_string()).chain(argv).collect(),
            Some(Form::Shell(words)) => vec!["CMD-SHELL".to_string(), Form::joined(words)],
        };
        let created = format!("HEALTHCHECK {test:?}");
        let check = Healthcheck {
            test,
            interval: nanos[0],
            timeout: nanos[1],
            start_period: nanos[2],
            start_interval: nanos[3],
            retries,
        };
        self.push(ev, s, Op::Config(ConfigChange::Healthcheck(check)), created);
    }

    /// The value of a builtin ARG, or `None` when `name` is not a builtin.
    fn builtin(&mut self, ev: &Eval, name: &str, span: Span) -> Option<String> {
        let platform = ev
            .seg
            .as_ref()
            .and_then(|s| s.platform.as_deref())
            .and_then(|p| platform::parse(p).ok())
            .unwrap_or_else(|| self.target_platform.clone());
        let parts = |p: &platform::Platform, what: &str| -> Option<String> {
            Some(match what {
                "PLATFORM" => p.format(),
                "OS" => p.os.clone(),
                "ARCH" => p.arch.clone(),
                "VARIANT" => p.variant.clone(),
                _ => return None,
            })
        };
        if let Some(what) = name.strip_prefix("TARGET") {
            return parts(&platform, what);
        }
        if let Some(what) = name.strip_prefix("USER").or_else(|| name.strip_prefix("NATIVE")) {
            return parts(&self.build_platform, what);
        }
        match name {
            "EARTHLY_TARGET_NAME" => Some(ev.name.clone()),
            "EARTHLY_TARGET" => Some(format!("+{}", ev.name)),
            "EARTHLY_LOCALLY" | "EARTHLY_PUSH" | "EARTHLY_CI" => Some("false".into()),
            _ if UNKNOWN_BUILTINS.contains(&name) => {
                if let Some(v) = ev.overrides.get(name) {
                    self.consumed.insert(name.to_string());
                    return Some(v.clone());
                }
                self.warnings.push(warning(
                    format!("kiln does not know the value of Earthly's builtin {name}; it is empty"),
                    Some(span),
                    format!("pass it in if the build needs it: kiln build --build-arg {name}=..."),
                    "unknown-builtin",
                ));
                Some(String::new())
            }
            _ => None,
        }
    }

    fn arg(&mut self, ev: &mut Eval, s: &Statement, a: command::Arg<'_>) {
        let name = a.name.text.as_str();
        let global = a.flags.on("global");
        if global && !ev.is_base {
            self.fail(
                format!("ARG --global {name} is outside the base recipe"),
                s.span,
                "declare global ARGs before the first target, or drop --global",
                "invalid-arguments",
            );
            return;
        }
        let kind =
            if ev.is_base && (global || self.file.version.implicit_globals()) { VarKind::Global } else { VarKind::Arg };
        let value = if let Some(v) = self.builtin(ev, name, s.span) {
            ev.vars.set(name, v, VarKind::Builtin);
            return;
        } else if let Some(v) = ev.overrides.get(name) {
            self.consumed.insert(name.to_string());
            v.clone()
        } else if a.flags.on("required") {
            self.fail(
                format!("ARG --required {name} has no value"),
                s.span,
                format!("pass it: kiln build --build-arg {name}=VALUE"),
                "required-arg",
            );
            return;
        } else if let Some(default) = a.default {
            let Some(v) = self.expand(ev, &default.text, default.span) else { return };
            v
        } else {
            // No default: a global of the same name keeps its value.
            ev.vars.get(name).unwrap_or_default().to_string()
        };
        ev.vars.set(name, value, kind);
    }

    /// The overrides a referenced target gets: ours (they flow down), `--pass-args` (our
    /// variables), `--build-arg K=V` and `--K=V` after the reference (the explicit ones win).
    fn child_overrides(
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
    fn reference(&mut self, text: &str, span: Span, overrides: Overrides) -> Option<InstanceKey> {
        let name = match reference::target(text) {
            Ok(name) => name,
            Err(e) => {
                self.fail(e.to_string(), span, e.hint(), "unsupported-reference");
                return None;
            }
        };
        self.target_instance(&name, span, overrides)
    }

    fn target_instance(&mut self, name: &str, span: Span, overrides: Overrides) -> Option<InstanceKey> {
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

    fn resolve_image(&mut self, reference: &str, platform: Option<&str>, span: Span) -> Option<ImageConfig> {
        let key = (reference.to_string(), platform.map(str::to_string));
        if let Some(config) = self.configs.get(&key) {
            return config.clone();
        }
        let config = match self.resolver.resolve_image_config(reference, platform) {
            Ok(config) => Some(config),
            Err(why) => {
                self.warnings.push(warning(
                    format!(
                        "could not read the configuration of {reference}: {why}; its ENV, WORKDIR and USER are not visible to this Earthfile"
                    ),
                    Some(span),
                    "kiln goes on as if its configuration were empty (WORKDIR /); check the name, or pull the image",
                    "base-image-unresolved",
                ));
                None
            }
        };
        self.configs.insert(key, config.clone());
        config
    }

    fn from(&mut self, ev: &mut Eval, s: &Statement, f: command::From<'_>) {
        let Some(base) = self.expand(ev, &f.base.text, f.base.span) else { return };
        let platform = match f.flags.value("platform") {
            Some((raw, span)) => {
                let Some(p) = self.expand(ev, raw, span) else { return };
                match platform::parse(&p) {
                    Ok(p) => Some(p.format()),
                    Err(e) => {
                        return self.fail(
                            format!("invalid --platform: {e}"),
                            span,
                            "write os/arch[/variant], e.g. linux/arm64",
                            "invalid-platform",
                        );
                    }
                }
            }
            None => None,
        };
        let mut seg = if reference::is_reference(&base) {
            if platform.is_some() {
                return self.fail(
                    "kiln does not support FROM --platform with a target",
                    s.span,
                    "put --platform on the FROM of the target's own recipe, or build with `kiln build --platform`",
                    "unsupported-flag",
                );
            }
            let args: Vec<(String, Span)> = f.args.iter().map(|w| (w.text.clone(), w.span)).collect();
            let Some(overrides) = self.child_overrides(ev, &f.flags, &args, f.flags.on("pass-args")) else { return };
            let Some(key) = self.reference(&base, f.base.span, overrides) else { return };
            let inst = &self.instances[&key];
            let base = if inst.stage == NO_STAGE { Base::Scratch } else { Base::Stage(inst.stage) };
            Segment::new(base, inst.state.clone(), s.span, s.text())
        } else {
            if let Some(arg) = f.args.first() {
                return self.fail(
                    format!("{} passes an argument to an image", arg.text),
                    arg.span,
                    "arguments go with a target reference (FROM +target --NAME=value), not an image",
                    "invalid-arguments",
                );
            }
            if base.eq_ignore_ascii_case("scratch") {
                Segment::new(Base::Scratch, ImageState::scratch(), s.span, s.text())
            } else if base.is_empty() || base.chars().any(|c| c.is_whitespace()) {
                return self.fail(
                    format!("invalid image reference {base:?}"),
                    f.base.span,
                    "an image reference has no spaces, e.g. alpine:3.20; check the ARG used in FROM",
                    "invalid-arguments",
                );
            } else {
                let config = self.resolve_image(&base, platform.as_deref(), s.span);
                Segment::new(Base::Image(base), ImageState::from_config(config.as_ref()), s.span, s.text())
            }
        };
        seg.platform = platform;
        if let Some(old) = ev.seg.take() {
            if !old.saved.is_empty() {
                self.push_segment(ev, old, false);
            } else if !old.instructions.is_empty() {
                let first = old.instructions[0].span.start.line;
                let last = old.instructions[old.instructions.len() - 1].span.end.line;
                self.warnings.push(warning(
                    format!(
                        "FROM starts +{} over: the commands on lines {first}-{last} do not reach its image",
                        ev.name
                    ),
                    Some(s.span),
                    "move FROM to the top of the recipe, or drop the commands above it",
                    "discarded-commands",
                ));
            }
        }
        ev.seg = Some(seg);
    }

    fn run(&mut self, ev: &mut Eval, s: &Statement, run: command::Run<'_>) {
        self.before_file_change(ev, s.span);
        let Some(seg) = ev.seg.as_ref() else { return };
        let workdir = seg.state.workdir.clone();
        let entrypoint = seg.state.entrypoint.clone();
        let flags = &run.flags;
        let (argv, shell_form) = if flags.on("entrypoint") {
            let Some(mut argv) = entrypoint else {
                return self.fail(
                    "RUN --entrypoint: kiln cannot see the ENTRYPOINT of the base image",
                    s.span,
                    "set ENTRYPOINT in this target first, or write the program out: RUN [\"prog\", \"arg\"]",
                    "unknown-entrypoint",
                );
            };
            match run.form {
                Form::Exec(args) => argv.extend(args),
                Form::Shell(words) => {
                    let joined = Form::joined(words);
                    match self.lexer.process_words(&joined, &Self::scope(ev)) {
                        Ok(words) => argv.extend(words),
                        Err(e) => return self.fail(e.to_string(), s.span, "close the quote", "invalid-word"),
                    }
                }
            }
            if argv.is_empty() {
                return self.fail(
                    "RUN --entrypoint: there is no ENTRYPOINT and no command",
                    s.span,
                    "set ENTRYPOINT first",
                    "invalid-arguments",
                );
            }
            (argv, false)
        } else {
            match run.form {
                Form::Exec(argv) if argv.is_empty() => {
                    return self.fail(
                        "RUN [] has no program to run",
                        s.span,
                        "write RUN [\"prog\", \"arg\"]",
                        "invalid-arguments",
                    );
                }
                Form::Exec(argv) => (argv, false),
                Form::Shell(words) => {
                    let mut argv: Vec<String> = SHELL.iter().map(|x| x.to_string()).collect();
                    argv.push(Form::joined(words));
                    (argv, true)
                }
            }
        };
        let mut mounts_out = Vec::new();
        for (raw, span) in flags.values("secret") {
            let Some(value) = self.expand(ev, raw, span) else { return };
            let (env, id) = match value.split_once('=') {
                Some((env, id)) => (env.to_string(), id.to_string()),
                None => (value.clone(), value.clone()),
            };
            if id.is_empty() {
                // `--secret NAME=` is Earthly's way to leave an optional secret out.
                continue;
            }
            let id = id.strip_prefix("+secrets/").unwrap_or(&id).to_string();
            mounts_out.push(Mount {
                target: None,
                kind: MountKind::Secret(SecretMount {
                    id,
                    env: Some(env),
                    required: true,
                    mode: 0o400,
                    uid: 0,
                    gid: 0,
                }),
            });
        }
        if flags.on("ssh") {
            mounts_out.push(Mount {
                target: Some("/run/buildkit/ssh_agent.0".into()),
                kind: MountKind::Ssh(SshMount { id: "default".into(), required: false, mode: 0o600, uid: 0, gid: 0 }),
            });
        }
        for (raw, span) in flags.values("mount") {
            match self.mount(ev, raw, span, &workdir) {
                Some(m) => mounts_out.push(m),
                None => return,
            }
        }
        let network = match flags.value("network") {
            None => Network::Default,
            Some(("none", _)) => Network::None,
            Some((other, span)) => {
                return self.fail(
                    format!("RUN --network={other}: kiln supports only --network=none"),
                    span,
                    "kiln steps have no network; drop the flag or write --network=none",
                    "unsupported-flag",
                );
            }
        };
        let security = if flags.on("privileged") { Security::Insecure } else { Security::Sandbox };
        let build_args: Vec<KeyValue> = ev.vars.list.iter().map(|(k, v, _)| KeyValue::new(k, v)).collect();
        let created = if shell_form { format!("RUN {}", argv[2]) } else { format!("RUN {argv:?}") };
        let op = Op::Run(Run { argv, shell_form, build_args, mounts: mounts_out, network, security });
        self.push(ev, s, op, created);
    }

    /// One `RUN --mount=...` (Earthly takes BuildKit's syntax for cache, tmpfs and secret mounts).
    fn mount(&mut self, ev: &Eval, raw: &str, span: Span, workdir: &str) -> Option<Mount> {
        let lexer = &self.lexer;
        let scope = Self::scope(ev);
        let expander = |word: &str| lexer.process_word(word, &scope).map_err(|e| e.to_string());
        let spec = match mounts::parse(raw, Some(&expander)) {
            Ok(spec) => spec,
            Err(e) => {
                self.fail(
                    format!("invalid --mount={raw}: {e}"),
                    span,
                    "write e.g. --mount=type=cache,target=/root/.cache",
                    "invalid-flag",
                );
                return None;
            }
        };
        let target = spec.target.as_ref().map(|t| kiln_ir::join_path(workdir, t));
        let kind = match spec.kind {
            mounts::MountType::Cache => {
                let Some(target) = target.clone() else {
                    self.fail(
                        "a cache mount needs target=PATH",
                        span,
                        "write --mount=type=cache,target=/path",
                        "invalid-flag",
                    );
                    return None;
                };
                let sharing = match spec.sharing.as_deref() {
                    Some("private") => CacheSharing::Private,
                    Some("locked") => CacheSharing::Locked,
                    _ => CacheSharing::Shared,
                };
                MountKind::Cache(CacheMount {
                    id: spec.id.clone().unwrap_or(target),
                    sharing,
                    from: None,
                    source: "/".into(),
                    read_only: spec.read_only,
                    mode: spec.mode.unwrap_or(0o755),
                    uid: spec.uid.unwrap_or(0),
                    gid: spec.gid.unwrap_or(0),
                })
            }
            mounts::MountType::Tmpfs => MountKind::Tmpfs(TmpfsMount { size: spec.size }),
            mounts::MountType::Secret => {
                let id = spec.id.clone().unwrap_or_default();
                let id = id.strip_prefix("+secrets/").unwrap_or(&id).to_string();
                if id.is_empty() || (target.is_none() && spec.env.is_none()) {
                    self.fail(
                        "a secret mount needs id=+secrets/NAME and target=PATH",
                        span,
                        "write --mount=type=secret,id=+secrets/NAME,target=/run/secrets/NAME",
                        "invalid-flag",
                    );
                    return None;
                }
                MountKind::Secret(SecretMount {
                    id,
                    env: spec.env.clone(),
                    required: true,
                    mode: spec.mode.unwrap_or(0o400),
                    uid: spec.uid.unwrap_or(0),
                    gid: spec.gid.unwrap_or(0),
                })
            }
            mounts::MountType::Ssh => MountKind::Ssh(SshMount {
                id: spec.id.clone().unwrap_or_else(|| "default".into()),
                required: spec.required,
                mode: spec.mode.unwrap_or(0o600),
                uid: spec.uid.unwrap_or(0),
                gid: spec.gid.unwrap_or(0),
            }),
            mounts::MountType::Bind => {
                self.fail(
                    "kiln does not support bind mounts in Earthfiles",
                    span,
                    "COPY the files into the target instead, or use type=cache or type=tmpfs",
                    "unsupported-flag",
                );
                return None;
            }
        };
        let target = match (&kind, target) {
            (MountKind::Ssh(_), None) => Some("/run/buildkit/ssh_agent.0".into()),
            (MountKind::Tmpfs(_), None) => {
                self.fail(
                    "a tmpfs mount needs target=PATH",
                    span,
                    "write --mount=type=tmpfs,target=/tmp",
                    "invalid-flag",
                );
                return None;
            }
            (_, t) => t,
        };
        Some(Mount { target, kind })
    }

    fn copy(&mut self, ev: &mut Eval, s: &Statement, copy: command::Copy<'_>) {
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
    fn artifacts_stage(&mut self, key: &InstanceKey) -> u32 {
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

    fn save_artifact(&mut self, ev: &mut Eval, s: &Statement, save: command::SaveArtifact<'_>) {
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

    fn save_image(&mut self, ev: &mut Eval, s: &Statement, save: command::SaveImage<'_>) {
        self.ensure_segment(ev, s.span);
        let mut names = Vec::new();
        for w in save.names {
            let Some(name) = self.expand(ev, &w.text, w.span) else { return };
            names.push(name);
        }
        if names.is_empty() {
            return;
        }
        // Earthly exports the images of the target it builds and of the targets BUILD names
        // (which kiln reports on its own); FROM and COPY references export nothing.
        if ev.top {
            let tags: Vec<String> = names.iter().map(|n| format!("-t {n}")).collect();
            let push = if save.flags.on("push") {
                format!(", then push it with `kiln push {}`", names[0])
            } else {
                String::new()
            };
            self.warnings.push(warning(
                format!(
                    "SAVE IMAGE names the image {}, but kiln takes image names from the command line",
                    names.join(" ")
                ),
                Some(s.span),
                format!("build with `kiln build {} ...`{push}", tags.join(" ")),
                "save-image-name",
            ));
        }
    }

    /// Unsupported commands in targets the build does not need: warnings, so nothing goes
    /// unsaid. Unknown commands are errors anywhere, as in Earthly.
    fn lint_unneeded(&mut self) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(kiln_ir::join_path("/src", "out/../bin/app"), "/src/bin/app");
        assert_eq!(kiln_ir::join_path("/src", "/abs"), "/abs");
        assert_eq!(clean_relative("/a/./b/"), "a/b");
        assert_eq!(parent("/out/app"), "/out");
        assert_eq!(parent("/app"), "/");
        assert_eq!(base_name("dist/"), "dist");
    }

    #[test]
    fn patterns() {
        assert!(component_matches("*.so", "libx.so"));
        assert!(component_matches("lib?.[ab]", "libz.a"));
        assert!(!component_matches("[!a]*", "abc"));
        assert!(!component_matches("*.so", "x.a"));
        assert!(component_matches("a*b*c", "aXXbYYc"));
        assert!(!component_matches("a*b*c", "aXXbYY"));
        assert!(component_matches("[x", "[x"));
        // Many stars over a long name stay fast.
        assert!(!component_matches(&"*a".repeat(200), &"a".repeat(199)));
    }

    #[test]
    fn shell_outs() {
        assert!(has_shell_out("$(date)"));
        assert!(has_shell_out("\"v-$(git describe)\""));
        assert!(!has_shell_out("'$(not)'"));
        assert!(!has_shell_out("\\$(escaped)"));
        assert!(!has_shell_out("$HOME"));
    }

    use kiln_ir::{ImageConfig, Severity};

    /// Base images the tests know.
    struct Images;

    impl ImageResolver for Images {
        fn resolve_image_config(&self, reference: &str, _platform: Option<&str>) -> Result<ImageConfig, String> {
            match reference {
                "golang:1.22" => Ok(ImageConfig {
                    env: vec!["PATH=/go/bin:/usr/local/go/bin:/usr/bin:/bin".into(), "GOPATH=/go".into()],
                    working_dir: "/go".into(),
                    ..ImageConfig::default()
                }),
                "alpine:3.20" | "kiln-toolbox" | "node:20" => {
                    Ok(ImageConfig { env: vec!["PATH=/usr/bin:/bin".into()], ..ImageConfig::default() })
                }
                other => Err(format!("{other} is not in the test store")),
            }
        }
    }

    fn request(text: &str, target: Option<&str>, args: &[(&str, &str)]) -> Request {
        Request {
            file_name: "Earthfile".into(),
            contents: text.as_bytes().to_vec(),
            build_args: args.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect(),
            target: target.map(str::to_string),
            build_platform: "linux/amd64".into(),
            target_platform: "linux/arm64".into(),
        }
    }

    fn try_build(text: &str, target: Option<&str>, args: &[(&str, &str)]) -> Result<BuildGraph, Vec<Diagnostic>> {
        crate::parse(&request(text, target, args), &Images)
    }

    fn build_for(text: &str, target: Option<&str>, args: &[(&str, &str)]) -> BuildGraph {
        let graph = try_build(text, target, args).unwrap_or_else(|ds| panic!("{ds:#?}"));
        graph.validate().unwrap_or_else(|e| panic!("invalid graph {e:?}: {graph:#?}"));
        graph
    }

    fn build(text: &str) -> BuildGraph {
        build_for(text, None, &[])
    }

    fn errors(text: &str) -> Vec<Diagnostic> {
        errors_for(text, None)
    }

    fn errors_for(text: &str, target: Option<&str>) -> Vec<Diagnostic> {
        let ds = try_build(text, target, &[]).expect_err("the build should fail");
        ds.into_iter().filter(|d| d.severity == Severity::Error).collect()
    }

    fn the_error(text: &str) -> Diagnostic {
        let mut ds = errors(text);
        assert_eq!(ds.len(), 1, "{ds:#?}");
        ds.remove(0)
    }

    fn target(g: &BuildGraph) -> &Stage {
        &g.stages[g.target as usize]
    }

    fn named<'g>(g: &'g BuildGraph, name: &str) -> (u32, &'g Stage) {
        let i = g.stages.iter().position(|s| s.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("{g:#?}"));
        (i as u32, &g.stages[i])
    }

    fn ops(stage: &Stage) -> Vec<&Op> {
        stage.instructions.iter().map(|i| &i.op).collect()
    }

    fn copies(stage: &Stage) -> Vec<&CopyFiles> {
        stage
            .instructions
            .iter()
            .filter_map(|i| match &i.op {
                Op::Copy(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn runs(stage: &Stage) -> Vec<&Run> {
        stage
            .instructions
            .iter()
            .filter_map(|i| match &i.op {
                Op::Run(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn sh(cmd: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), cmd.into()]
    }

    fn warning_codes(g: &BuildGraph) -> Vec<&str> {
        g.warnings.iter().filter_map(|w| w.code.as_deref()).collect()
    }

    const HEAD: &str = "VERSION 0.8\n";

    // ---- targets and the base recipe ----

    #[test]
    fn default_target_is_build() {
        let g = build(&format!("{HEAD}other:\n    FROM alpine:3.20\nbuild:\n    FROM scratch\n"));
        assert_eq!(target(&g).name.as_deref(), Some("build"));
        assert_eq!(target(&g).base, Base::Scratch);
        // +other is not needed, so it is not converted.
        assert!(g.stages.iter().all(|s| s.name.as_deref() != Some("other")));
    }

    #[test]
    fn without_build_target_the_error_lists_the_targets() {
        let d = the_error(&format!("{HEAD}docker:\n    FROM scratch\ntest:\n    FROM scratch\n"));
        assert_eq!(d.message, "no target was given and this Earthfile has no +build target");
        assert_eq!(d.hint.as_deref(), Some("choose one with --target; the targets are: +docker, +test"));
        assert_eq!(d.span, None);
    }

    #[test]
    fn target_may_be_given_with_or_without_plus() {
        let text = format!("{HEAD}docker:\n    FROM scratch\nbuild:\n    FROM alpine:3.20\n");
        for t in ["+docker", "docker"] {
            let g = build_for(&text, Some(t), &[]);
            assert_eq!(target(&g).name.as_deref(), Some("docker"), "{t}");
        }
        let d = errors_for(&text, Some("+dokcer")).remove(0);
        assert_eq!(d.message, "target +dokcer is not in this Earthfile");
        assert_eq!(d.hint.as_deref(), Some("did you mean +docker? the targets are: +build, +docker"));
        let d = errors_for(&text, Some("./sub+docker")).remove(0);
        assert_eq!(d.message, "--target ./sub+docker names a target of another Earthfile");
    }

    #[test]
    fn target_base_builds_the_base_recipe() {
        let g =
            build_for(&format!("{HEAD}FROM alpine:3.20\nRUN apk add git\nbuild:\n    RUN make\n"), Some("+base"), &[]);
        assert_eq!(target(&g).name.as_deref(), Some("base"));
        assert_eq!(target(&g).base, Base::Image("alpine:3.20".into()));
        assert_eq!(runs(target(&g))[0].argv, sh("apk add git"));
        // An empty base recipe is an empty image.
        let g = build_for(&format!("{HEAD}build:\n    FROM alpine:3.20\n"), Some("base"), &[]);
        assert_eq!((target(&g).name.as_deref(), &target(&g).base), (Some("base"), &Base::Scratch));
        assert!(target(&g).instructions.is_empty());
    }

    #[test]
    fn targets_without_from_start_from_the_base_recipe() {
        let g = build(&format!(
            "{HEAD}FROM golang:1.22\nWORKDIR /app\nENV CGO_ENABLED=0\n\nbuild:\n    COPY main.go .\n    RUN go build -o app main.go\n"
        ));
        let (base, base_stage) = named(&g, "base");
        assert_eq!(base_stage.base, Base::Image("golang:1.22".into()));
        assert_eq!(ops(base_stage).len(), 2);
        assert_eq!(target(&g).base, Base::Stage(base));
        assert_eq!(target(&g).text, "+build: FROM +base");
        assert_eq!(runs(target(&g))[0].argv, sh("go build -o app main.go"));
    }

    #[test]
    fn targets_with_their_own_from_do_not_use_the_base_recipe() {
        let g = build(&format!("{HEAD}FROM golang:1.22\nbuild:\n    FROM alpine:3.20\n    RUN true\n"));
        assert_eq!(target(&g).base, Base::Image("alpine:3.20".into()));
    }

    #[test]
    fn an_empty_base_recipe_is_scratch() {
        let g = build(&format!("{HEAD}build:\n    COPY a /a\n"));
        assert_eq!(target(&g).base, Base::Scratch);
        assert_eq!(target(&g).text, "+build: FROM scratch");
    }

    #[test]
    fn from_target_and_base_target() {
        let g = build(&format!(
            "{HEAD}FROM alpine:3.20\ndeps:\n    RUN apk add make\nbuild:\n    FROM +deps\n    RUN make\nlint:\n    FROM +base\n"
        ));
        let (deps, _) = named(&g, "deps");
        assert_eq!(target(&g).base, Base::Stage(deps));
        let g = build_for(&format!("{HEAD}FROM alpine:3.20\nlint:\n    FROM +base\n    RUN lint\n"), Some("lint"), &[]);
        let (base, _) = named(&g, "base");
        assert_eq!(target(&g).base, Base::Stage(base));
    }

    #[test]
    fn from_a_target_inherits_its_configuration() {
        let g = build(&format!(
            "{HEAD}deps:\n    FROM alpine:3.20\n    WORKDIR /src\n    ENV GREETING=hi\nbuild:\n    FROM +deps\n    SAVE ARTIFACT out/app\n    RUN echo $GREETING\n    WORKDIR sub\n    ENV X=$GREETING-there\n"
        ));
        let env = ops(target(&g))
            .into_iter()
            .find_map(|op| match op {
                Op::Config(ConfigChange::Env(kv)) => Some(kv.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(env, [KeyValue::new("X", "hi-there")]);
    }

    #[test]
    fn a_late_from_starts_the_target_over() {
        let g =
            build(&format!("{HEAD}build:\n    ARG V=3.20\n    RUN echo lost\n    FROM alpine:$V\n    RUN echo kept\n"));
        assert_eq!(target(&g).base, Base::Image("alpine:3.20".into()));
        assert_eq!(runs(target(&g)).len(), 1);
        let w = g.warnings.iter().find(|w| w.code.as_deref() == Some("discarded-commands")).unwrap();
        assert_eq!(w.message, "FROM starts +build over: the commands on lines 4-4 do not reach its image");
    }

    #[test]
    fn circular_references_are_errors() {
        let d = the_error(&format!("{HEAD}build:\n    FROM +a\na:\n    FROM +b\nb:\n    COPY +a/x .\n"));
        assert_eq!(d.message, "circular target reference: +a -> +b -> +a");
        assert_eq!(d.span.unwrap().start.line, 7);
    }

    #[test]
    fn unknown_target_references() {
        let d = the_error(&format!("{HEAD}build:\n    FROM +deps\n"));
        assert_eq!(d.message, "there is no target +deps in this Earthfile");
        assert_eq!(d.span.unwrap().start, kiln_ir::Position { line: 3, column: 10 });
    }

    // ---- ARG, LET, SET ----

    #[test]
    fn arg_defaults_and_build_arg_overrides() {
        let text =
            format!("{HEAD}build:\n    FROM alpine:3.20\n    ARG NAME=world\n    ARG EMPTY\n    RUN echo $NAME\n");
        let g = build(&text);
        let run = runs(target(&g))[0];
        assert_eq!(run.build_args, [KeyValue::new("NAME", "world"), KeyValue::new("EMPTY", "")]);
        let g = build_for(&text, None, &[("NAME", "kiln")]);
        assert_eq!(runs(target(&g))[0].build_args[0], KeyValue::new("NAME", "kiln"));
        assert!(!warning_codes(&g).contains(&"unused-build-arg"));
        let g = build_for(&text, None, &[("OTHER", "x")]);
        assert!(warning_codes(&g).contains(&"unused-build-arg"));
    }

    #[test]
    fn global_args_reach_every_target() {
        let text = format!(
            "{HEAD}ARG --global VERSION=1.0\nARG LOCAL=base-only\nFROM alpine:3.20\nbuild:\n    RUN echo $VERSION $LOCAL\n    ENV V=$VERSION L=$LOCAL\n"
        );
        let g = build_for(&text, None, &[("VERSION", "2.0")]);
        let run = runs(target(&g))[0];
        assert_eq!(run.build_args, [KeyValue::new("VERSION", "2.0")]);
        assert_eq!(g.global_args, [kiln_ir::ArgBinding { name: "VERSION".into(), value: Some("2.0".into()) }]);
        // VERSION 0.6: every ARG of the base recipe is global.
        let g = build(&text.replace("VERSION 0.8", "VERSION 0.6").replace("--global ", ""));
        assert_eq!(runs(target(&g))[0].build_args.len(), 2);
        let d = the_error(&format!("{HEAD}build:\n    ARG --global X=1\n"));
        assert_eq!(d.message, "ARG --global X is outside the base recipe");
    }

    #[test]
    fn required_args() {
        let text = format!("{HEAD}build:\n    FROM scratch\n    ARG --required TAG\n");
        let d = the_error(&text);
        assert_eq!(d.message, "ARG --required TAG has no value");
        assert_eq!(d.hint.as_deref(), Some("pass it: kiln build --build-arg TAG=VALUE"));
        build_for(&text, None, &[("TAG", "v1")]);
    }

    #[test]
    fn let_and_set() {
        let g = build(&format!(
            "{HEAD}build:\n    FROM scratch\n    LET X=a\n    SET X=$X-b\n    ENV OUT=$X\n    RUN [\"true\"]\n"
        ));
        assert!(matches!(ops(target(&g))[0], Op::Config(ConfigChange::Env(kv)) if kv[0].value == "a-b"));
        assert_eq!(runs(target(&g))[0].build_args, [KeyValue::new("X", "a-b")]);
        let d = the_error(&format!("{HEAD}build:\n    FROM scratch\n    ARG X=1\n    SET X=2\n"));
        assert_eq!(d.message, "SET X: X was not declared with LET");
    }

    #[test]
    fn builtin_args() {
        let g = build(&format!(
            "{HEAD}build:\n    FROM scratch\n    ARG TARGETARCH\n    ARG USERPLATFORM\n    ARG EARTHLY_TARGET_NAME\n    ARG EARTHLY_GIT_HASH\n    RUN [\"true\"]\n"
        ));
        assert_eq!(
            runs(target(&g))[0].build_args,
            [
                KeyValue::new("TARGETARCH", "arm64"),
                KeyValue::new("USERPLATFORM", "linux/amd64"),
                KeyValue::new("EARTHLY_TARGET_NAME", "build"),
                KeyValue::new("EARTHLY_GIT_HASH", ""),
            ]
        );
        assert!(warning_codes(&g).contains(&"unknown-builtin"));
    }

    #[test]
    fn shell_outs_outside_run_are_errors() {
        let d = the_error(&format!("{HEAD}build:\n    FROM scratch\n    ARG V=$(git describe)\n"));
        assert_eq!(d.code.as_deref(), Some("shell-out"));
        assert_eq!(d.span.unwrap().start.column, 11);
        // A --build-arg means the default is never run.
        let text = format!("{HEAD}build:\n    FROM scratch\n    ARG V=$(git describe)\n    RUN echo $(date) $V\n");
        let g = build_for(&text, None, &[("V", "v1")]);
        assert_eq!(runs(target(&g))[0].argv, sh("echo $(date) $V"));
    }

    // ---- RUN ----

    #[test]
    fn run_shell_and_exec_forms() {
        let g = build(&format!(
            "{HEAD}build:\n    FROM alpine:3.20\n    RUN echo \"a  b\" \\\n        && echo c # comment\n    RUN [\"/bin/echo\", \"x y\"]\n"
        ));
        let r = runs(target(&g));
        assert_eq!(r[0].argv, sh("echo \"a  b\" && echo c"));
        assert!(r[0].shell_form);
        assert_eq!(r[1].argv, ["/bin/echo", "x y"]);
        assert!(!r[1].shell_form);
        let first = &target(&g).instructions[0];
        assert_eq!((first.span.start.line, first.span.start.column, first.span.end.line), (4, 5, 5));
        assert_eq!(first.text, "RUN echo \"a  b\" && echo c");
    }

    #[test]
    fn run_flags() {
        let g = build(&format!(
            "{HEAD}build:\n    FROM alpine:3.20\n    WORKDIR /src\n    RUN --network=none --privileged --secret TOKEN=+secrets/gh --secret NPM --mount=type=cache,target=.cache --mount type=tmpfs,target=/tmp --ssh make\n"
        ));
        let r = runs(target(&g))[0];
        assert_eq!(r.network, Network::None);
        assert_eq!(r.security, Security::Insecure);
        assert_eq!(r.mounts.len(), 5);
        assert!(matches!(&r.mounts[0].kind, MountKind::Secret(s) if s.id == "gh" && s.env.as_deref() == Some("TOKEN")));
        assert!(matches!(&r.mounts[1].kind, MountKind::Secret(s) if s.id == "NPM" && s.env.as_deref() == Some("NPM")));
        assert!(matches!(&r.mounts[2].kind, MountKind::Ssh(_)));
        assert_eq!(r.mounts[3].target.as_deref(), Some("/src/.cache"));
        assert!(matches!(&r.mounts[3].kind, MountKind::Cache(c) if c.id == "/src/.cache"));
        assert!(matches!(&r.mounts[4].kind, MountKind::Tmpfs(_)));
    }

    #[test]
    fn run_entrypoint() {
        let g = build(&format!(
            "{HEAD}build:\n    FROM scratch\n    ENTRYPOINT [\"/bin/tool\", \"-v\"]\n    RUN --entrypoint check \"a b\"\n"
        ));
        assert_eq!(runs(target(&g))[0].argv, ["/bin/tool", "-v", "check", "a b"]);
        let d = the_error(&format!("{HEAD}build:\n    FROM alpine:3.20\n    RUN --entrypoint x\n"));
        assert_eq!(d.message, "RUN --entrypoint: kiln cannot see the ENTRYPOINT of the base image");
    }

    #[test]
    fn run_flags_kiln_does_not_support() {
        for (flag, message) in [
            ("--push", "kiln does not support RUN --push"),
            ("--with-docker", "kiln does not support RUN --with-docker"),
            ("--interactive", "kiln does not support RUN --interactive"),
            ("--network=host", "RUN --network=host: kiln supports only --network=none"),
            ("--mount=type=bind,target=/x", "kiln does not support bind mounts in Earthfiles"),
        ] {
            let d = the_error(&format!("{HEAD}build:\n    FROM alpine:3.20\n    RUN {flag} make\n"));
            assert_eq!(d.message, message, "{flag}");
            assert!(d.hint.is_some(), "{flag}");
            assert_eq!(d.span.unwrap().start.line, 4, "{flag}");
        }
        let g = build(&format!("{HEAD}build:\n    FROM alpine:3.20\n    RUN --no-cache make\n"));
        assert_eq!(warning_codes(&g), ["ignored-flag"]);
    }

    // ---- configuration ----

    #[test]
    fn config_commands() {
        let g = build(&format!(
            "{HEAD}build:\n    FROM scratch\n    ARG PORT=8080\n    ENV APP_HOME=/app\n    ENV LEGACY value with spaces\n    WORKDIR $APP_HOME\n    USER 1000:1000\n    EXPOSE $PORT 53/udp\n    LABEL org.opencontainers.image.title=\"my app\" version=$PORT\n    VOLUME /data\n    STOPSIGNAL SIGTERM\n    HEALTHCHECK --interval=30s --retries=3 CMD /bin/check\n    ENTRYPOINT [\"/app/server\"]\n    CMD --port $PORT\n"
        ));
        let ops = ops(target(&g));
        let expected = [
            ConfigChange::Env(vec![KeyValue::new("APP_HOME", "/app")]),
            ConfigChange::Env(vec![KeyValue::new("LEGACY", "value with spaces")]),
            ConfigChange::Workdir("/app".into()),
            ConfigChange::User("1000:1000".into()),
            ConfigChange::Expose(vec!["53/udp".into(), "8080/tcp".into()]),
            ConfigChange::Label(vec![
                KeyValue::new("org.opencontainers.image.title", "my app"),
                KeyValue::new("version", "8080"),
            ]),
            ConfigChange::Volume(vec!["/data".into()]),
            ConfigChange::StopSignal("SIGTERM".into()),
            ConfigChange::Healthcheck(Healthcheck {
                test: vec!["CMD-SHELL".into(), "/bin/check".into()],
                interval: 30_000_000_000,
                timeout: 0,
                start_period: 0,
                start_interval: 0,
                retries: 3,
            }),
            ConfigChange::Entrypoint(IrCommand { argv: vec!["/app/server".into()], shell_form: false }),
            ConfigChange::Cmd(IrCommand { argv: sh("--port $PORT"), shell_form: true }),
        ];
        assert_eq!(ops.len(), expected.len());
        for (op, want) in ops.iter().zip(expected) {
            assert_eq!(**op, Op::Config(want));
        }
    }

    #[test]
    fn from_platform_and_exec_form_volume() {
        let g = build(&format!(
            "{HEAD}build:\n    FROM --platform=linux/arm64/v8 alpine:3.20\n    VOLUME [\"/a\", \"/b c\"]\n"
        ));
        assert_eq!(target(&g).platform.as_deref(), Some("linux/arm64"));
        assert_eq!(*ops(target(&g))[0], Op::Config(ConfigChange::Volume(vec!["/a".into(), "/b c".into()])));
        let d = the_error(&format!("{HEAD}build:\n    FROM alpine:3.20 --X=1\n"));
        assert_eq!(d.message, "--X=1 passes an argument to an image");
    }

    #[test]
    fn unknown_base_images_are_a_warning() {
        let g = build(&format!("{HEAD}build:\n    FROM example.com/unknown:1\n    SAVE ARTIFACT out\n"));
        let w = g.warnings.iter().find(|w| w.code.as_deref() == Some("base-image-unresolved")).unwrap();
        assert_eq!(w.span.unwrap().start.line, 3);
    }

    #[test]
    fn version_feature_flags_are_ignored_with_a_warning() {
        let g = build("VERSION --use-copy-link --explicit-global 0.7\nbuild:\n    FROM scratch\n");
        let w: Vec<&str> = g.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(w, ["VERSION --use-copy-link is ignored: kiln has no Earthly feature flags"]);
    }

    #[test]
    fn earthly_env_takes_the_rest_of_the_line() {
        // Earthly's ENV sets one variable; everything after `=` is its value.
        let g = build(&format!("{HEAD}build:\n    FROM scratch\n    ENV A=1 B=2\n"));
        assert_eq!(*ops(target(&g))[0], Op::Config(ConfigChange::Env(vec![KeyValue::new("A", "1 B=2")])));
    }

    // ---- COPY from the context ----

    #[test]
    fn copy_from_the_context() {
        let g = build(&format!(
            "{HEAD}build:\n    FROM alpine:3.20\n    COPY --chmod=0755 a.sh b.sh /usr/bin\n    USER app\n    COPY --keep-ts src/ /src/\n    COPY --keep-own c /c\n"
        ));
        let c = copies(target(&g));
        assert_eq!(c[0].from, CopySource::Context);
        assert_eq!(c[0].sources, ["a.sh", "b.sh"]);
        assert_eq!(c[0].dest, "/usr/bin/");
        assert_eq!(c[0].chmod.as_deref(), Some("0755"));
        assert_eq!(c[0].chown, None);
        // Earthly gives copied files to USER.
        assert_eq!(c[1].chown.as_deref(), Some("app"));
        assert_eq!(c[2].chown, None);
        assert_eq!(warning_codes(&g), ["ignored-flag"]);
    }

    #[test]
    fn copy_dir_keeps_the_directories() {
        let g = build(&format!(
            "{HEAD}build:\n    FROM scratch\n    COPY --dir web/static api ./\n    COPY --dir config /etc/app\n"
        ));
        let c = copies(target(&g));
        assert_eq!(c[0].sources, ["web/./static", "api"]);
        assert!(c[0].parents);
        assert_eq!(c[1].sources, ["config"]);
        assert!(!c[1].parents);
    }

    #[test]
    fn copy_outside_the_context_is_an_error() {
        let d = the_error(&format!("{HEAD}build:\n    FROM scratch\n    COPY ../secret /\n"));
        assert_eq!(d.message, "COPY source ../secret is outside the build context");
        assert_eq!(d.span.unwrap().start.column, 10);
    }

    #[test]
    fn copy_flags_kiln_does_not_support() {
        for (flag, message) in [
            ("--if-exists", "kiln does not support COPY --if-exists"),
            ("--from=alpine", "kiln does not support COPY --from"),
            ("--platform=linux/amd64", "kiln does not support COPY --platform"),
            ("--symlink-no-follow", "kiln does not support COPY --symlink-no-follow"),
        ] {
            let d = the_error(&format!("{HEAD}build:\n    FROM scratch\n    COPY {flag} a /a\n"));
            assert_eq!(d.message, message, "{flag}");
            assert_eq!(d.code.as_deref(), Some("unsupported-flag"));
        }
        let d = the_error(&format!("{HEAD}a:\n    SAVE ARTIFACT /x\nbuild:\n    FROM scratch\n    COPY +a/x ./y /\n"));
        assert_eq!(d.message, "COPY cannot mix artifacts (+target/path) and files of the build context");
    }

    // ---- artifacts ----

    const BUILDER: &str = "builder:\n    FROM kiln-toolbox\n    WORKDIR /src\n    RUN mkdir -p out/lib && make\n";

    fn artifact_copy(saves: &str, copy: &str) -> (BuildGraph, Vec<CopyFiles>) {
        let g = build(&format!("{HEAD}{BUILDER}{saves}build:\n    FROM scratch\n    {copy}\n"));
        let c = copies(target(&g)).into_iter().cloned().collect();
        (g, c)
    }

    #[test]
    fn artifact_by_its_saved_path() {
        let (g, c) = artifact_copy("    SAVE ARTIFACT out/app\n", "COPY +builder/app /bin/app");
        let (builder, _) = named(&g, "builder");
        assert_eq!(c[0].from, CopySource::Stage(builder));
        assert_eq!(c[0].sources, ["/src/out/app"]);
        assert_eq!(c[0].dest, "/bin/app");
        // Earthly's artifacts are root's.
        assert_eq!(c[0].chown.as_deref(), Some("0:0"));
        assert_eq!(g.stages.len(), 2);
    }

    #[test]
    fn artifact_in_a_saved_directory() {
        let (g, c) = artifact_copy("    SAVE ARTIFACT out /dist\n", "COPY +builder/dist/lib/libx.so /lib/");
        assert_eq!(c[0].sources, ["/src/out/lib/libx.so"]);
        assert_eq!(c[0].from, CopySource::Stage(named(&g, "builder").0));
    }

    #[test]
    fn artifact_saved_with_a_wildcard() {
        let (_, c) = artifact_copy("    SAVE ARTIFACT out/lib/*.so libs/\n", "COPY +builder/libs/libx.so /lib/");
        assert_eq!(c[0].sources, ["/src/out/lib/libx.so"]);
        let (_, c) = artifact_copy("    SAVE ARTIFACT out/lib/*.so libs/\n", "COPY +builder/libs/*.so /lib/");
        assert_eq!(c[0].sources, ["/src/out/lib/*.so"]);
        let (_, c) = artifact_copy("    SAVE ARTIFACT out/*\n", "COPY +builder/app /bin/");
        assert_eq!(c[0].sources, ["/src/out/app"]);
    }

    #[test]
    fn artifact_wildcard_inside_a_saved_directory() {
        let (_, c) = artifact_copy("    SAVE ARTIFACT out\n", "COPY +builder/out/lib/*.so /lib/");
        assert_eq!(c[0].sources, ["/src/out/lib/*.so"]);
    }

    #[test]
    fn renamed_artifacts_are_read_from_the_artifact_layout() {
        let (g, c) = artifact_copy("    SAVE ARTIFACT out/app /app-linux\n", "COPY +builder/app-linux /bin/");
        let layout = match c[0].from {
            CopySource::Stage(s) => &g.stages[s as usize],
            _ => panic!(),
        };
        assert_eq!(layout.base, Base::Scratch);
        assert_eq!(layout.text, "+builder: artifacts");
        let saved = copies(layout);
        assert_eq!(saved[0].from, CopySource::Stage(named(&g, "builder").0));
        assert_eq!(saved[0].sources, ["/src/out/app"]);
        assert_eq!(saved[0].dest, "/app-linux");
        assert_eq!(c[0].sources, ["/app-linux"]);
        assert_eq!(c[0].dest, "/bin/");
    }

    #[test]
    fn every_artifact_through_a_wildcard() {
        let (g, c) = artifact_copy("    SAVE ARTIFACT out/app\n    SAVE ARTIFACT out/lib\n", "COPY +builder/* /opt/");
        let CopySource::Stage(layout) = c[0].from else { panic!() };
        let saved = copies(&g.stages[layout as usize]);
        assert_eq!(saved.iter().map(|s| s.dest.as_str()).collect::<Vec<_>>(), ["/app", "/lib"]);
        assert_eq!(c[0].sources, ["/*"]);
    }

    #[test]
    fn artifact_with_dir_copies_the_directory() {
        let (_, c) = artifact_copy("    SAVE ARTIFACT out/lib\n", "COPY --dir +builder/lib /opt/");
        assert_eq!(c[0].sources, ["/src/out/./lib"]);
        assert!(c[0].parents);
    }

    #[test]
    fn missing_artifacts_name_what_was_saved() {
        let text =
            format!("{HEAD}{BUILDER}    SAVE ARTIFACT out/app\nbuild:\n    FROM scratch\n    COPY +builder/ap /\n");
        let d = the_error(&text);
        assert_eq!(d.message, "+builder has no artifact ap");
        assert_eq!(d.hint.as_deref(), Some("+builder saves: app (line 6)"));
        assert_eq!((d.span.unwrap().start.line, d.span.unwrap().start.column), (9, 10));
    }

    #[test]
    fn artifacts_keep_the_files_as_saved() {
        let g = build(&format!(
            "{HEAD}{BUILDER}    SAVE ARTIFACT out/app\n    RUN rm -rf out\n    ENV DONE=1\nbuild:\n    FROM scratch\n    COPY +builder/app /\n"
        ));
        let c = copies(target(&g));
        let CopySource::Stage(saved) = c[0].from else { panic!() };
        let (builder, builder_stage) = named(&g, "builder");
        assert_ne!(saved, builder);
        assert_eq!(runs(&g.stages[saved as usize]).len(), 1);
        assert_eq!(builder_stage.base, Base::Stage(saved));
        assert_eq!(runs(builder_stage)[0].argv, sh("rm -rf out"));
    }

    #[test]
    fn artifact_arguments_make_another_instance() {
        let g = build(&format!(
            "{HEAD}app:\n    FROM alpine:3.20\n    ARG GOOS=linux\n    RUN build $GOOS\n    SAVE ARTIFACT /app\nbuild:\n    FROM scratch\n    COPY (+app/app --GOOS=darwin) /darwin/\n    COPY +app/app /linux/\n"
        ));
        let c = copies(target(&g));
        let (CopySource::Stage(a), CopySource::Stage(b)) = (&c[0].from, &c[1].from) else { panic!() };
        assert_ne!(a, b);
        assert_eq!(runs(&g.stages[*a as usize])[0].build_args, [KeyValue::new("GOOS", "darwin")]);
        assert_eq!(runs(&g.stages[*b as usize])[0].build_args, [KeyValue::new("GOOS", "linux")]);
        // Only one of them can carry the name.
        assert_eq!(g.stages.iter().filter(|s| s.name.as_deref() == Some("app")).count(), 1);
    }

    #[test]
    fn overrides_flow_down_and_unused_ones_do_not_duplicate_stages() {
        let g = build(&format!(
            "{HEAD}deps:\n    FROM alpine:3.20\n    RUN fetch\nlib:\n    FROM +deps\n    ARG MODE=debug\n    RUN make $MODE\n    SAVE ARTIFACT /lib.a\nbuild:\n    FROM +deps\n    COPY (+lib/lib.a --MODE=release) /\n"
        ));
        // +deps is reached with MODE=release (through +lib) and without: one stage.
        assert_eq!(g.stages.iter().filter(|s| s.base == Base::Image("alpine:3.20".into())).count(), 1);
        let (_, lib) = named(&g, "lib");
        assert_eq!(runs(lib)[0].build_args, [KeyValue::new("MODE", "release")]);
    }

    #[test]
    fn pass_args() {
        let g = build(&format!(
            "{HEAD}lib:\n    FROM alpine:3.20\n    ARG MODE=debug\n    RUN make $MODE\n    SAVE ARTIFACT /lib.a\nbuild:\n    FROM scratch\n    ARG MODE=fast\n    COPY --pass-args +lib/lib.a /\n"
        ));
        assert_eq!(runs(named(&g, "lib").1)[0].build_args, [KeyValue::new("MODE", "fast")]);
    }

    #[test]
    fn save_artifact_as_local_warns() {
        let g = build(&format!(
            "{HEAD}build:\n    FROM alpine:3.20\n    RUN make\n    SAVE ARTIFACT app AS LOCAL ./dist/app\n"
        ));
        let w = g.warnings.iter().find(|w| w.code.as_deref() == Some("save-artifact-local")).unwrap();
        assert_eq!(
            w.message,
            "SAVE ARTIFACT ... AS LOCAL ./dist/app: kiln does not write files to the host during a build"
        );
        assert!(w.hint.as_deref().unwrap().contains("-o type=local"));
        assert_eq!(w.span.unwrap().start.line, 5);
    }

    // ---- SAVE IMAGE and BUILD ----

    #[test]
    fn save_image_names_become_a_hint_for_dash_t() {
        let g = build(&format!(
            "{HEAD}dep:\n    FROM alpine:3.20\n    SAVE IMAGE dep:latest\nbuild:\n    FROM +dep\n    ARG TAG=1.0\n    SAVE IMAGE --push registry.example/app:$TAG app:latest\n"
        ));
        let w: Vec<&Diagnostic> = g.warnings.iter().filter(|w| w.code.as_deref() == Some("save-image-name")).collect();
        assert_eq!(w.len(), 1, "{w:#?}");
        assert_eq!(
            w[0].message,
            "SAVE IMAGE names the image registry.example/app:1.0 app:latest, but kiln takes image names from the command line"
        );
        assert_eq!(
            w[0].hint.as_deref(),
            Some(
                "build with `kiln build -t registry.example/app:1.0 -t app:latest ...`, then push it with `kiln push registry.example/app:1.0`"
            )
        );
    }

    #[test]
    fn build_is_an_error_that_says_what_to_run() {
        let d = the_error(
            &format!(
                "{HEAD}build:\n    BUILD +docker\n    BUILD --platform=linux/arm64 +docker\ndocker:\n    FROM scratch\n"
            )
            .replace("    BUILD --platform=linux/arm64 +docker\n", ""),
        );
        assert_eq!(
            d.message,
            "kiln does not support BUILD: a build exports the image of one target, not +docker as well"
        );
        assert!(d.hint.as_deref().unwrap().contains("`kiln build --target +docker -f Earthfile .`"));
        assert_eq!(d.span.unwrap().start, kiln_ir::Position { line: 3, column: 5 });
        // In a target the build does not need, BUILD is a warning.
        let g = build(&format!("{HEAD}all:\n    BUILD +build\nbuild:\n    FROM scratch\n"));
        assert!(g.warnings.iter().any(|w| w.message.ends_with("(in +all, which this build does not need)")));
    }

    // ---- unsupported commands ----

    #[test]
    fn every_unsupported_command_is_an_error_with_a_hint() {
        for (line, code) in [
            ("LOCALLY", "unsupported-command"),
            ("FROM DOCKERFILE .", "unsupported-command"),
            ("GIT CLONE https://github.com/x/y.git y", "unsupported-command"),
            ("IMPORT github.com/earthly/lib", "unsupported-command"),
            ("DO +COMPILE", "unsupported-command"),
            ("CACHE /root/.cache", "unsupported-command"),
            ("HOST db 10.0.0.1", "unsupported-command"),
            ("PROJECT org/proj", "unsupported-command"),
            ("PIPELINE", "unsupported-command"),
            ("TRIGGER push main", "unsupported-command"),
            ("ADD a /a", "unsupported-command"),
            ("SHELL [\"/bin/bash\", \"-c\"]", "unsupported-command"),
            ("ONBUILD RUN x", "unsupported-command"),
            ("FUNCTION", "unsupported-command"),
            ("COMMAND", "unsupported-command"),
            ("FROBNICATE x", "unknown-command"),
        ] {
            let d = the_error(&format!("{HEAD}build:\n    FROM alpine:3.20\n    {line}\n"));
            assert_eq!(d.code.as_deref(), Some(code), "{line}");
            assert!(d.hint.is_some(), "{line}");
            let span = d.span.unwrap();
            assert_eq!((span.start.line, span.start.column), (4, 5), "{line}");
            assert_eq!(span.end.line, 4, "{line}");
        }
    }

    #[test]
    fn unsupported_blocks_span_to_their_end() {
        for (block, keyword) in [
            ("WITH DOCKER --load app=+app\n        RUN docker run app\n    END", "WITH DOCKER"),
            ("IF [ -f go.mod ]\n        RUN go build\n    ELSE\n        RUN make\n    END", "IF"),
            ("FOR dir IN a b\n        RUN make -C $dir\n    END", "FOR"),
            ("TRY\n        RUN test\n    FINALLY\n        SAVE ARTIFACT out\n    END", "TRY"),
            ("WAIT\n        BUILD +x\n    END", "WAIT"),
        ] {
            let d = the_error(&format!("{HEAD}build:\n    FROM alpine:3.20\n    {block}\n"));
            assert_eq!(d.code.as_deref(), Some("unsupported-command"), "{keyword}");
            assert!(d.message.starts_with(&format!("kiln does not support {keyword}")), "{}", d.message);
            let span = d.span.unwrap();
            assert_eq!(span.start.line, 4);
            assert_eq!(span.end.line, 4 + block.lines().count() as u32 - 1, "{keyword}");
        }
    }

    #[test]
    fn references_to_other_earthfiles_are_errors() {
        for (line, message) in [
            ("FROM ./sub+build", "./sub+build names a target of another Earthfile"),
            ("FROM github.com/earthly/lib+go", "github.com/earthly/lib+go names a target of a remote Earthfile"),
            ("COPY lib+build/x /", "lib+build/x names a target through an IMPORT alias"),
            ("COPY +COMPILE/x /", "+COMPILE/x is a function (FUNCTION/COMMAND), not a target"),
            ("FROM --platform=linux/amd64 +other", "kiln does not support FROM --platform with a target"),
        ] {
            let d = the_error(&format!("{HEAD}other:\n    FROM scratch\nbuild:\n    {line}\n"));
            assert_eq!(d.message, message, "{line}");
            assert!(d.hint.is_some());
        }
    }

    #[test]
    fn unsupported_commands_in_unneeded_targets_are_warnings() {
        let g = build(&format!(
            "{HEAD}build:\n    FROM scratch\nrelease:\n    LOCALLY\n    RUN --push ./publish.sh\ntest:\n    WITH DOCKER\n        RUN docker run x\n    END\nCOMPILE:\n    FUNCTION\n    RUN make\n"
        ));
        let messages: Vec<&str> = g.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "kiln does not support LOCALLY: kiln runs every step in a WebAssembly sandbox, never on the host (in +release, which this build does not need)",
                "kiln does not support RUN --push (in +release, which this build does not need)",
                "kiln does not support WITH DOCKER: kiln cannot run containers inside a build (in +test, which this build does not need)",
                "kiln does not support functions: COMPILE is never run",
            ]
        );
        assert!(g.warnings.iter().all(|w| w.severity == Severity::Warning && w.span.is_some()));
        // An unknown command is an error anywhere, as in Earthly.
        let d = the_error(&format!("{HEAD}build:\n    FROM scratch\nother:\n    RUNN x\n"));
        assert_eq!(d.message, "unknown command RUNN");
    }

    // ---- determinism ----

    #[test]
    fn the_same_input_gives_the_same_ir() {
        let text = format!(
            "{HEAD}FROM golang:1.22\nWORKDIR /app\ndeps:\n    COPY go.mod go.sum ./\n    RUN go mod download\nbuild:\n    FROM +deps\n    COPY . .\n    RUN go build -o app\n    SAVE ARTIFACT app /bin/app\ndocker:\n    FROM alpine:3.20\n    COPY +build/bin/app /usr/bin/app\n    COPY (+build/bin/app --X=1) /usr/bin/app2\n    SAVE IMAGE app\n"
        );
        let first = serde_json::to_vec(&build_for(&text, Some("+docker"), &[])).unwrap();
        for _ in 0..3 {
            assert_eq!(serde_json::to_vec(&build_for(&text, Some("+docker"), &[])).unwrap(), first);
        }
    }

    #[test]
    fn dir_copies_keep_the_last_component() {
        assert_eq!(dir_sources(vec!["src/web".into()], "/app/"), (vec!["src/./web".to_string()], true));
        assert_eq!(dir_sources(vec!["/out/dist".into()], "."), (vec!["/out/./dist".to_string()], true));
        assert_eq!(dir_sources(vec!["web".into(), "api".into()], "./"), (vec!["web".to_string(), "api".into()], true));
        assert_eq!(dir_sources(vec!["web".into()], "/srv/web"), (vec!["web".to_string()], false));
    }
}
