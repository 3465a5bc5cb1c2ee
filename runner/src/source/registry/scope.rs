//! Which registries a build may contact: those the user named.
//!
//! A frontend decides what a build file means, including which images it names, and it can
//! read the build arguments. If kiln contacted every registry a frontend's graph (or its
//! `resolve-image-config` calls) named, a frontend could send a build argument to a host of
//! its choosing inside an image reference. So a build contacts a registry only when the user
//! named it: its host appears in the build file, in a `--build-arg` value, or in a
//! `--build-context` value. Docker Hub, the default registry of a reference without a host,
//! is always in scope.
//!
//! This module only answers the question; it contacts nothing.

use super::parse_reference;
use crate::source::named::{ContextValue, NamedContexts};

/// The registries the user named for one build.
#[derive(Debug, Clone, Default)]
pub struct RegistryScope {
    /// What the user wrote: the build file, build argument values, named context values.
    texts: Vec<String>,
}

impl RegistryScope {
    /// The scope of a build: its build file's text, its build arguments' values and its
    /// named contexts.
    pub fn of_build<'a>(
        build_file: &[u8],
        build_arg_values: impl IntoIterator<Item = &'a str>,
        named: &NamedContexts,
    ) -> Self {
        let mut texts = vec![String::from_utf8_lossy(build_file).to_ascii_lowercase()];
        texts.extend(build_arg_values.into_iter().map(str::to_ascii_lowercase));
        for context in named.iter() {
            if let ContextValue::Image(reference) = &context.value {
                texts.push(reference.to_ascii_lowercase());
            }
        }
        RegistryScope { texts }
    }

    /// The registry a reference would contact, when the user did not name it; `None` when
    /// kiln may contact it (or it is not a registry reference at all).
    pub fn unnamed_registry(&self, reference: &str) -> Option<String> {
        let parsed = parse_reference(reference).ok()?;
        let host = parsed.registry().to_ascii_lowercase();
        if host == "docker.io" || host == "index.docker.io" {
            return None;
        }
        if self.texts.iter().any(|text| names_host(text, &host)) { None } else { Some(host) }
    }
}

/// Whether `text` holds `host` as a whole name: `reg.example` is in `FROM reg.example/app`
/// but not in `FROM myreg.example/app` or `FROM reg.example.org/app`.
fn names_host(text: &str, host: &str) -> bool {
    let part_of_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':');
    text.match_indices(host).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + host.len()..].chars().next();
        !before.is_some_and(part_of_name) && !after.is_some_and(part_of_name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registries_the_user_wrote_are_in_scope() {
        let named = NamedContexts::parse(&["base=docker-image://ctx.example:5000/b".into()]).unwrap();
        let scope = RegistryScope::of_build(b"ARG REG=Reg.Example\nFROM ${REG}/app\n", ["arg.example/x"], &named);
        assert_eq!(scope.unnamed_registry("reg.example/app:1"), None);
        assert_eq!(scope.unnamed_registry("arg.example/x"), None);
        assert_eq!(scope.unnamed_registry("ctx.example:5000/b"), None);
        assert_eq!(scope.unnamed_registry("alpine"), None, "Docker Hub is the default registry");
        assert_eq!(scope.unnamed_registry("127.0.0.1:5999/leak/secret"), Some("127.0.0.1:5999".into()));
        assert_eq!(scope.unnamed_registry("evil.example/reg.example"), Some("evil.example".into()));
        assert_eq!(scope.unnamed_registry("g.example/app"), Some("g.example".into()), "part of reg.example");
        assert_eq!(scope.unnamed_registry("reg.example.org/app"), Some("reg.example.org".into()));
    }
}
