//! Planning: which stages a build needs, in which order, and which images it will load.
//!
//! Planning follows BuildKit: only stages the target reaches through `FROM <stage>`,
//! `COPY --from` and `RUN --mount=from=` are built, in dependency order; a stage nobody needs
//! is never looked at, and its base image never resolved. A stage that a named context
//! (`--build-context NAME=...`) replaces needs nothing. This module reads the graph only.

use kiln_ir::{Base, BuildGraph, CopySource, MountKind, Op, Stage};

use crate::source::named::{ContextValue, NamedContext, NamedContexts};

/// The stages a stage needs built first: its base, and the sources of its COPY --from and
/// RUN --mount from. A stage a named context replaces needs nothing.
pub(super) fn stage_deps(stage: &Stage, named: &NamedContexts) -> Vec<usize> {
    let mut out = Vec::new();
    if replaced_by(stage, named).is_some() {
        return out;
    }
    if let Base::Stage(i) = stage.base {
        out.push(i as usize);
    }
    for instruction in &stage.instructions {
        match &instruction.op {
            Op::Copy(c) => {
                if let CopySource::Stage(i) = c.from {
                    out.push(i as usize);
                }
            }
            Op::Run(r) => {
                for m in &r.mounts {
                    let from = match &m.kind {
                        MountKind::Bind(b) => Some(&b.from),
                        MountKind::Cache(c) => c.from.as_ref(),
                        _ => None,
                    };
                    if let Some(CopySource::Stage(i)) = from {
                        out.push(*i as usize);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The named context that replaces a stage of the same name (as `docker buildx build
/// --build-context` replaces stages), if any.
pub(super) fn replaced_by<'n>(stage: &Stage, named: &'n NamedContexts) -> Option<&'n NamedContext> {
    named.get(stage.name.as_deref()?)
}

/// The stages the target needs, in an order where each comes after what it needs.
pub fn plan(graph: &BuildGraph, named: &NamedContexts) -> Vec<usize> {
    fn visit(graph: &BuildGraph, named: &NamedContexts, i: usize, seen: &mut Vec<bool>, order: &mut Vec<usize>) {
        if seen[i] {
            return;
        }
        seen[i] = true;
        for d in stage_deps(&graph.stages[i], named) {
            if d < graph.stages.len() {
                visit(graph, named, d, seen, order);
            }
        }
        order.push(i);
    }
    let mut seen = vec![false; graph.stages.len()];
    let mut order = Vec::new();
    visit(graph, named, graph.target as usize, &mut seen, &mut order);
    order
}

/// The images a build of the graph's target loads, as `image::load` and the registry take
/// them: the bases and `COPY --from` images of the stages it builds, named contexts replaced
/// by the images they name (a directory or an OCI layout written in the build file is none).
pub fn images_needed(graph: &BuildGraph, named: &NamedContexts) -> Vec<String> {
    let mut needed = Vec::new();
    let mut add = |reference: &str| match named.get(reference).map(|c| &c.value) {
        Some(ContextValue::Image(r) | ContextValue::Layout { reference: r }) => needed.push(r.clone()),
        Some(ContextValue::Directory(_)) => {}
        None if reference.starts_with("oci-layout://") => {}
        None => needed.push(reference.to_string()),
    };
    for index in plan(graph, named) {
        let stage = &graph.stages[index];
        if let Some(name) = stage.name.as_deref().filter(|_| replaced_by(stage, named).is_some()) {
            add(name);
            continue;
        }
        if let Base::Image(reference) = &stage.base {
            add(reference);
        }
        for instruction in &stage.instructions {
            if let Op::Copy(kiln_ir::CopyFiles { from: CopySource::Image(reference), .. }) = &instruction.op {
                add(reference);
            }
        }
    }
    needed.sort();
    needed.dedup();
    needed
}

/// The label BuildKit gives a stage: its name, or `stage-N`.
pub fn stage_label(graph: &BuildGraph, index: usize) -> String {
    graph.stages[index].name.clone().unwrap_or_else(|| format!("stage-{index}"))
}
