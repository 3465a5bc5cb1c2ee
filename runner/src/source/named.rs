//! Named build contexts: `kiln build --build-context NAME=VALUE`, as `docker buildx build`
//! has them.
//!
//! A named context gives a name that the build file may use where it names an image: `FROM
//! NAME`, `COPY --from=NAME` (and later `RUN --mount=from=NAME`). A name that is also a stage
//! of the build file replaces that stage. VALUE is
//!
//! - `docker-image://REF`: an image from the store or a registry (pins a base, say);
//! - `oci-layout://DIR[:TAG|@DIGEST]`: an image in an OCI image layout on disk;
//! - anything else: a local directory, read like the build context (its own `.dockerignore`
//!   applies).
//!
//! Names match the way BuildKit matches them: as image references in their familiar form, so
//! `alpine`, `alpine:latest` and `docker.io/library/alpine` are one name.
//!
//! Only the user can name a host path: an OCI layout or a directory is reachable only through
//! this flag, never from a build file (the solver refuses `oci-layout://` written there).
//! This module parses and looks up; it reads no file itself.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::source::registry;

/// What a named context stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextValue {
    /// `docker-image://REF`: an image, from the store or a registry.
    Image(String),
    /// `oci-layout://DIR[:TAG|@DIGEST]`: an image in an OCI layout. `reference` is the value
    /// as `image::parse_ref` reads it (`oci-layout://DIR[:TAG]`, or with `@DIGEST`).
    Layout {
        /// The value as given, which `image::load` understands.
        reference: String,
    },
    /// A local directory.
    Directory(PathBuf),
}

/// One `--build-context NAME=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedContext {
    /// NAME as the user wrote it.
    pub name: String,
    /// VALUE.
    pub value: ContextValue,
}

impl NamedContext {
    /// How messages and cache keys name it: `NAME=VALUE` as given.
    pub fn describe(&self) -> String {
        let value = match &self.value {
            ContextValue::Image(r) => format!("docker-image://{r}"),
            ContextValue::Layout { reference } => reference.clone(),
            ContextValue::Directory(d) => d.display().to_string(),
        };
        format!("{}={value}", self.name)
    }
}

/// A `--build-context` value kiln cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamedContextError {
    /// Not `NAME=VALUE`.
    #[error("--build-context {0:?}: write NAME=VALUE, e.g. --build-context base=docker-image://alpine:3.20")]
    Form(String),
    /// NAME is not a valid name.
    #[error(
        "--build-context {text:?}: {name:?} is not a valid context name ({detail}); use a lowercase name such as base, or an image name such as alpine:3.20"
    )]
    Name {
        /// The flag as given.
        text: String,
        /// NAME.
        name: String,
        /// Why.
        detail: String,
    },
    /// A scheme kiln does not fetch.
    #[error(
        "--build-context {0:?}: kiln takes a directory, docker-image://REF or oci-layout://DIR[:TAG|@DIGEST] here (git, http and target: contexts are not supported)"
    )]
    Scheme(String),
    /// An empty value after a scheme.
    #[error("--build-context {0:?}: the value after the scheme is empty")]
    Empty(String),
    /// The same name twice.
    #[error("--build-context: the name {0:?} is given twice")]
    Duplicate(String),
}

/// The named contexts of one build, looked up by familiar name.
#[derive(Debug, Clone, Default)]
pub struct NamedContexts {
    by_name: BTreeMap<String, NamedContext>,
}

impl NamedContexts {
    /// Parse every `--build-context NAME=VALUE`.
    ///
    /// # Errors
    /// A malformed flag, an invalid name, an unsupported scheme, or a name given twice.
    pub fn parse(flags: &[String]) -> Result<Self, NamedContextError> {
        let mut by_name = BTreeMap::new();
        for text in flags {
            let context = parse_one(text)?;
            let key = familiar(&context.name).map_err(|e| NamedContextError::Name {
                text: text.clone(),
                name: context.name.clone(),
                detail: match e {
                    registry::RegistryError::BadReference { detail, .. } => detail,
                    other => other.to_string(),
                },
            })?;
            if by_name.insert(key, context.clone()).is_some() {
                return Err(NamedContextError::Duplicate(context.name));
            }
        }
        Ok(NamedContexts { by_name })
    }

    /// The context a reference in the build file names, if any (`FROM alpine` finds a context
    /// named `docker.io/library/alpine:latest`).
    pub fn get(&self, reference: &str) -> Option<&NamedContext> {
        if self.by_name.is_empty() {
            return None;
        }
        self.by_name.get(&familiar(reference).ok()?)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Every named context.
    pub fn iter(&self) -> impl Iterator<Item = &NamedContext> {
        self.by_name.values()
    }
}

fn parse_one(text: &str) -> Result<NamedContext, NamedContextError> {
    let (name, value) = text.split_once('=').ok_or_else(|| NamedContextError::Form(text.to_string()))?;
    if name.is_empty() || value.is_empty() {
        return Err(NamedContextError::Form(text.to_string()));
    }
    let value = if let Some(reference) = value.strip_prefix("docker-image://") {
        if reference.is_empty() {
            return Err(NamedContextError::Empty(text.to_string()));
        }
        if reference.contains("://") {
            return Err(NamedContextError::Scheme(text.to_string()));
        }
        ContextValue::Image(reference.to_string())
    } else if let Some(rest) = value.strip_prefix("oci-layout://") {
        if rest.is_empty() {
            return Err(NamedContextError::Empty(text.to_string()));
        }
        ContextValue::Layout { reference: value.to_string() }
    } else if value.contains("://") || value.starts_with("target:") || value.starts_with("git@") {
        return Err(NamedContextError::Scheme(text.to_string()));
    } else {
        ContextValue::Directory(PathBuf::from(value))
    };
    Ok(NamedContext { name: name.to_string(), value })
}

/// A reference in its familiar form, as BuildKit compares context names: Docker Hub's
/// `docker.io/` and `library/` dropped, and a `:latest` tag too.
fn familiar(reference: &str) -> Result<String, registry::RegistryError> {
    let parsed = registry::parse_reference(reference)?;
    let mut name = match parsed.registry() {
        "docker.io" | "index.docker.io" => {
            parsed.repository().strip_prefix("library/").unwrap_or(parsed.repository()).to_string()
        }
        host => format!("{host}/{}", parsed.repository()),
    };
    if let Some(tag) = parsed.tag().filter(|t| *t != "latest") {
        name.push(':');
        name.push_str(tag);
    }
    if let Some(digest) = parsed.digest() {
        name.push('@');
        name.push_str(digest);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_by_scheme() {
        let contexts = NamedContexts::parse(&[
            "base=docker-image://alpine:3.20".into(),
            "layout=oci-layout://./dir:v1".into(),
            "src=../other".into(),
        ])
        .unwrap();
        assert_eq!(contexts.get("base").unwrap().value, ContextValue::Image("alpine:3.20".into()));
        assert_eq!(
            contexts.get("layout").unwrap().value,
            ContextValue::Layout { reference: "oci-layout://./dir:v1".into() }
        );
        assert_eq!(contexts.get("src").unwrap().value, ContextValue::Directory("../other".into()));
        assert!(contexts.get("other").is_none());
    }

    #[test]
    fn names_match_in_familiar_form() {
        let contexts =
            NamedContexts::parse(&["docker.io/library/alpine:latest=docker-image://alpine:3.20".into()]).unwrap();
        for written in ["alpine", "alpine:latest", "docker.io/library/alpine", "library/alpine"] {
            assert!(contexts.get(written).is_some(), "{written}");
        }
        assert!(contexts.get("alpine:3.19").is_none());
        assert!(contexts.get("example.com/alpine").is_none());
        let tagged = NamedContexts::parse(&["alpine:3.19=/x".into()]).unwrap();
        assert!(tagged.get("docker.io/library/alpine:3.19").is_some());
        assert!(tagged.get("alpine").is_none());
    }

    #[test]
    fn bad_flags_say_what_to_write() {
        let err = |text: &str| NamedContexts::parse(&[text.into()]).unwrap_err().to_string();
        assert!(err("base").contains("write NAME=VALUE"), "{}", err("base"));
        assert!(err("Base=/x").contains("not a valid context name"), "{}", err("Base=/x"));
        assert!(err("a=https://example.com/x.tar").contains("not supported"));
        assert!(err("a=git@github.com:x/y").contains("not supported"));
        assert!(err("a=docker-image://").contains("empty"));
        assert!(err("a=docker-image://oci-layout:///etc").contains("not supported"));
        assert!(
            NamedContexts::parse(&["a=/x".into(), "a:latest=/y".into()]).unwrap_err().to_string().contains("twice")
        );
    }
}
