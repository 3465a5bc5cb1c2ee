//! The graph of stages: what `FROM name` and `COPY --from` refer to, dependency loops, the
//! stages a target needs, and the ONBUILD triggers a base image carries, parsed back into
//! instructions.
//!
//! It owns references between stages; it must never expand words or build instructions.

use super::*;

/// Resolve a `--from` value: an index, a stage name, or else an image reference.
pub(super) fn resolve_from(from: &str, names: &BTreeMap<String, usize>, count: usize) -> Result<CopySource, String> {
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
pub(super) fn find_cycle(plans: &[StagePlan]) -> Option<(usize, usize)> {
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

pub(super) fn reachable_from(target: usize, plans: &[StagePlan]) -> BTreeSet<usize> {
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
pub(super) fn parse_trigger(text: &str) -> Result<Vec<(Command, String)>, String> {
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
