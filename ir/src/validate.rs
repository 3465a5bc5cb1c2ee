//! Structural checks on a [`BuildGraph`] received from a frontend.
//!
//! A frontend is untrusted code: the runner validates every graph before planning, so that
//! later stages can index stages and trust paths without re-checking. This module only
//! checks; it never repairs a graph.

use std::fmt;

use crate::{Base, BuildGraph, CopySource, MountKind, Op, Span};

/// One problem found in a graph, with the place in the build file it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The stage the problem is in, if any.
    pub stage: Option<u32>,
    /// The span of the offending stage or instruction, if any.
    pub span: Option<Span>,
    /// What is wrong.
    pub kind: ValidationErrorKind,
}

/// What is wrong with a graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationErrorKind {
    /// The graph has no stage at all.
    #[error("the build graph has no stages")]
    NoStages,
    /// `target` is not a stage index.
    #[error("the target stage {target} does not exist (the graph has {count} stages)")]
    TargetOutOfRange {
        /// The bad index.
        target: u32,
        /// How many stages there are.
        count: usize,
    },
    /// `FROM <stage>` names a stage that is not earlier in the file.
    #[error("stage {stage} is based on stage {base}, which is not an earlier stage")]
    BaseNotEarlier {
        /// The stage.
        stage: u32,
        /// The base it names.
        base: u32,
    },
    /// A `--from` (COPY or mount) names a stage that does not exist.
    #[error("stage {stage} reads from stage {from}, which does not exist (the graph has {count} stages)")]
    FromOutOfRange {
        /// The stage.
        stage: u32,
        /// The stage index it names.
        from: u32,
        /// How many stages there are.
        count: usize,
    },
    /// Stages depend on each other in a loop.
    #[error("circular dependency detected on stage: {name}")]
    Cycle {
        /// The name (or index) of a stage on the loop.
        name: String,
    },
    /// Two stages share a name.
    #[error("duplicate stage name {name:?}")]
    DuplicateStageName {
        /// The name.
        name: String,
    },
    /// A stage name is empty or has characters that names cannot have.
    #[error("invalid stage name {name:?}")]
    InvalidStageName {
        /// The name.
        name: String,
    },
    /// A RUN has an empty argv.
    #[error("RUN has no program to run")]
    EmptyArgv,
    /// A mount target is missing or not absolute.
    #[error("mount target {target:?} must be an absolute path")]
    MountTarget {
        /// The target as given.
        target: String,
    },
    /// A COPY has no sources or no destination.
    #[error("COPY needs at least one source and a destination")]
    EmptyCopy,
    /// A context source escapes the build context.
    #[error("COPY source {path:?} is outside the build context")]
    OutsideContext {
        /// The source as given.
        path: String,
    },
    /// A path or value holds a NUL byte, which no filesystem path can.
    #[error("{what} contains a NUL byte")]
    Nul {
        /// Which field.
        what: &'static str,
    },
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for ValidationError {}

/// Whether `path`, read relative to a root, climbs above that root (`../x`, `a/../../x`).
pub fn escapes_root(path: &str) -> bool {
    let mut depth: i64 = 0;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn valid_stage_name(name: &str) -> bool {
    // Docker accepts `^[a-z][a-z0-9-_.]*$` for stage names (after lower-casing).
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

impl BuildGraph {
    /// Check the graph's structure: indices in range, FROM only of earlier stages, no
    /// dependency loops, unique valid names, absolute mount targets, no context source outside
    /// the context, no NUL in paths.
    ///
    /// # Errors
    /// Every problem found, in stage order.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        let count = self.stages.len();
        let err = |stage: Option<u32>, span: Option<Span>, kind| ValidationError { stage, span, kind };
        if count == 0 {
            return Err(vec![err(None, None, ValidationErrorKind::NoStages)]);
        }
        if self.target as usize >= count {
            errors.push(err(None, None, ValidationErrorKind::TargetOutOfRange { target: self.target, count }));
        }
        let mut names = std::collections::BTreeSet::new();
        let mut deps: Vec<Vec<u32>> = vec![Vec::new(); count];
        for (index, stage) in self.stages.iter().enumerate() {
            let i = index as u32;
            let at = |span: Span| (Some(i), Some(span));
            if let Some(name) = &stage.name {
                if !valid_stage_name(name) {
                    let (s, sp) = at(stage.span);
                    errors.push(err(s, sp, ValidationErrorKind::InvalidStageName { name: name.clone() }));
                } else if !names.insert(name.as_str()) {
                    let (s, sp) = at(stage.span);
                    errors.push(err(s, sp, ValidationErrorKind::DuplicateStageName { name: name.clone() }));
                }
            }
            if let Base::Stage(base) = stage.base {
                if base >= i {
                    let (s, sp) = at(stage.span);
                    errors.push(err(s, sp, ValidationErrorKind::BaseNotEarlier { stage: i, base }));
                } else {
                    deps[index].push(base);
                }
            }
            for instruction in &stage.instructions {
                let (s, sp) = at(instruction.span);
                let mut from = |source: &CopySource, errors: &mut Vec<ValidationError>| {
                    if let CopySource::Stage(other) = source {
                        if *other as usize >= count {
                            errors.push(err(
                                s,
                                sp,
                                ValidationErrorKind::FromOutOfRange { stage: i, from: *other, count },
                            ));
                        } else {
                            deps[index].push(*other);
                        }
                    }
                };
                match &instruction.op {
                    Op::Run(run) => {
                        if run.argv.is_empty() {
                            errors.push(err(s, sp, ValidationErrorKind::EmptyArgv));
                        }
                        for mount in &run.mounts {
                            match &mount.target {
                                Some(t) if t.starts_with('/') => {
                                    if t.contains('\0') {
                                        errors.push(err(s, sp, ValidationErrorKind::Nul { what: "a mount target" }));
                                    }
                                }
                                None if matches!(&mount.kind, MountKind::Secret(secret) if secret.env.is_some()) => {}
                                other => errors.push(err(
                                    s,
                                    sp,
                                    ValidationErrorKind::MountTarget { target: other.clone().unwrap_or_default() },
                                )),
                            }
                            match &mount.kind {
                                MountKind::Bind(bind) => from(&bind.from, &mut errors),
                                MountKind::Cache(cache) => {
                                    if let Some(source) = &cache.from {
                                        from(source, &mut errors);
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    Op::Copy(copy) => {
                        from(&copy.from, &mut errors);
                        if (copy.sources.is_empty() && copy.inline_sources.is_empty()) || copy.dest.is_empty() {
                            errors.push(err(s, sp, ValidationErrorKind::EmptyCopy));
                        }
                        if copy.dest.contains('\0') || copy.sources.iter().any(|p| p.contains('\0')) {
                            errors.push(err(s, sp, ValidationErrorKind::Nul { what: "a COPY path" }));
                        }
                        if copy.from == CopySource::Context {
                            for source in &copy.sources {
                                if escapes_root(source) {
                                    errors.push(err(
                                        s,
                                        sp,
                                        ValidationErrorKind::OutsideContext { path: source.clone() },
                                    ));
                                }
                            }
                        }
                    }
                    Op::Config(crate::ConfigChange::Workdir(dir)) if dir.contains('\0') => {
                        errors.push(err(s, sp, ValidationErrorKind::Nul { what: "WORKDIR" }));
                    }
                    _ => {}
                }
            }
        }
        if let Some(stage) = find_cycle(&deps) {
            let name = self.stages[stage as usize].name.clone().unwrap_or_else(|| stage.to_string());
            errors.push(err(Some(stage), Some(self.stages[stage as usize].span), ValidationErrorKind::Cycle { name }));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

/// The first stage (in index order) that lies on a dependency loop, if any.
fn find_cycle(deps: &[Vec<u32>]) -> Option<u32> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; deps.len()];
    for root in 0..deps.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next dependency to visit).
        let mut stack = vec![(root, 0usize)];
        marks[root] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = deps[node].get(*next) {
                *next += 1;
                let dep = dep as usize;
                match marks[dep] {
                    Mark::Active => return Some(dep as u32),
                    Mark::New => {
                        marks[dep] = Mark::Active;
                        stack.push((dep, 0));
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CopyFiles, Instruction, Stage};

    fn stage(name: &str, base: Base, copy_from: Option<u32>) -> Stage {
        let instructions = copy_from
            .map(|from| Instruction {
                op: Op::Copy(CopyFiles {
                    from: CopySource::Stage(from),
                    sources: vec!["f".into()],
                    inline_sources: vec![],
                    dest: "/".into(),
                    chown: None,
                    chmod: None,
                    link: false,
                    parents: false,
                    exclude: vec![],
                    add: None,
                }),
                span: Span::default(),
                created_by: String::new(),
                text: String::new(),
            })
            .into_iter()
            .collect();
        Stage {
            name: Some(name.into()),
            base,
            platform: None,
            instructions,
            span: Span::default(),
            text: String::new(),
        }
    }

    fn graph(stages: Vec<Stage>) -> BuildGraph {
        BuildGraph { target: stages.len() as u32 - 1, stages, global_args: vec![], warnings: vec![] }
    }

    #[test]
    fn accepts_a_dag_with_forward_copy_from() {
        let g = graph(vec![
            stage("a", Base::Scratch, Some(1)),
            stage("b", Base::Scratch, None),
            stage("c", Base::Stage(0), Some(1)),
        ]);
        assert_eq!(g.validate(), Ok(()));
    }

    #[test]
    fn rejects_self_copy_as_cycle() {
        let errors = graph(vec![stage("stage0", Base::Scratch, Some(0))]).validate().unwrap_err();
        assert_eq!(errors[0].to_string(), "circular dependency detected on stage: stage0");
    }

    #[test]
    fn rejects_three_stage_loop() {
        let g = graph(vec![
            stage("stage0", Base::Scratch, Some(2)),
            stage("stage1", Base::Scratch, Some(0)),
            stage("stage2", Base::Scratch, Some(1)),
        ]);
        let errors = g.validate().unwrap_err();
        assert!(matches!(errors[0].kind, ValidationErrorKind::Cycle { .. }), "{errors:?}");
    }

    #[test]
    fn rejects_bad_indices() {
        let mut g = graph(vec![stage("a", Base::Stage(0), Some(99))]);
        g.target = 5;
        let kinds: Vec<_> = g.validate().unwrap_err().into_iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&ValidationErrorKind::TargetOutOfRange { target: 5, count: 1 }));
        assert!(kinds.contains(&ValidationErrorKind::BaseNotEarlier { stage: 0, base: 0 }));
        assert!(kinds.contains(&ValidationErrorKind::FromOutOfRange { stage: 0, from: 99, count: 1 }));
    }

    #[test]
    fn rejects_duplicate_and_invalid_names() {
        let g = graph(vec![
            stage("a", Base::Scratch, None),
            stage("a", Base::Scratch, None),
            stage("Bad/Name", Base::Scratch, None),
        ]);
        let kinds: Vec<_> = g.validate().unwrap_err().into_iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&ValidationErrorKind::DuplicateStageName { name: "a".into() }));
        assert!(kinds.contains(&ValidationErrorKind::InvalidStageName { name: "Bad/Name".into() }));
    }

    #[test]
    fn escaping_paths() {
        assert!(escapes_root("../x"));
        assert!(escapes_root("a/../../x"));
        assert!(escapes_root("/.."));
        assert!(!escapes_root("a/../b"));
        assert!(!escapes_root("./x/."));
        assert!(!escapes_root("/abs/path"));
    }

    #[test]
    fn no_stages() {
        let g = BuildGraph { stages: vec![], target: 0, global_args: vec![], warnings: vec![] };
        assert_eq!(g.validate().unwrap_err()[0].kind, ValidationErrorKind::NoStages);
    }
}
