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
//!
//! This file holds the converter's state, the entry point and the final merge of stages; the
//! work is cut by concern: `targets` (which targets, with which overrides), `stages` (where a
//! stage ends), `vars` (scope and expansion), `commands` (dispatch, FROM, HEALTHCHECK, SAVE
//! IMAGE), `run`, `artifacts` (COPY, SAVE ARTIFACT) and `paths`.

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

mod artifacts;
mod commands;
mod paths;
mod run;
mod stages;
mod targets;
mod vars;

use paths::{base_name, clean_relative, component_matches, dir_sources, has_wildcard, parent};

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

impl<'a> Converter<'a> {}

#[cfg(test)]
mod tests;
