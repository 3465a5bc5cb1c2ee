//! Target and artifact references: `+target`, `+target/path/in/artifacts`.
//!
//! kiln builds the targets of one Earthfile, so only local, internal references resolve;
//! references to other Earthfiles (`./dir+target`, `github.com/org/repo+target`, an IMPORT
//! alias) are recognised so that the error can say what they are.

use std::fmt;

/// Why a reference does not name a target of this Earthfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefError {
    /// `./dir+target`, `/abs+target`: another Earthfile on disk.
    OtherEarthfile(String),
    /// `github.com/org/repo+target`: a remote Earthfile.
    Remote(String),
    /// `alias+target`: a name from IMPORT.
    Import(String),
    /// `+UPPER_CASE`: a function, which only DO calls.
    Function(String),
    /// Not a valid target name.
    Invalid(String),
    /// `+target` where an artifact (`+target/path`) is needed.
    NoPath(String),
}

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefError::OtherEarthfile(r) => write!(f, "{r} names a target of another Earthfile"),
            RefError::Remote(r) => write!(f, "{r} names a target of a remote Earthfile"),
            RefError::Import(r) => write!(f, "{r} names a target through an IMPORT alias"),
            RefError::Function(r) => write!(f, "{r} is a function (FUNCTION/COMMAND), not a target"),
            RefError::Invalid(r) => write!(f, "{r} is not a valid target reference"),
            RefError::NoPath(r) => write!(f, "{r} names a target, not an artifact"),
        }
    }
}

impl RefError {
    /// What the user can do.
    pub fn hint(&self) -> &'static str {
        match self {
            RefError::OtherEarthfile(_) | RefError::Remote(_) | RefError::Import(_) => {
                "kiln builds the targets of one Earthfile: copy the target into this Earthfile, or build the other \
                 one on its own (`kiln build -t NAME --target +TARGET -f DIR/Earthfile DIR`) and use FROM NAME"
            }
            RefError::Function(_) => "kiln does not support functions; write the commands out instead",
            RefError::Invalid(_) => "a target name starts with a lower-case letter and holds letters, digits, . and -",
            RefError::NoPath(_) => "name the artifact after the target: +target/path",
        }
    }
}

/// Whether a (expanded) word is a target or artifact reference rather than an image or a path.
pub fn is_reference(text: &str) -> bool {
    text.contains('+')
}

/// Whether `name` is a valid target name (`[a-z][a-zA-Z0-9.-]*`).
pub fn valid_target_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.' || c == '_')
}

/// `+name` (or `+name` followed by `/path`) to the name, for a reference to this Earthfile.
fn local(text: &str, name: &str) -> Result<String, RefError> {
    if valid_target_name(name) {
        Ok(name.to_string())
    } else if valid_function_name(name) {
        Err(RefError::Function(text.to_string()))
    } else {
        Err(RefError::Invalid(text.to_string()))
    }
}

fn project(text: &str) -> Result<&str, RefError> {
    let (project, rest) = text.split_once('+').ok_or_else(|| RefError::Invalid(text.to_string()))?;
    if project.is_empty() {
        return Ok(rest);
    }
    if project.starts_with("./") || project.starts_with("../") || project.starts_with('/') || project == "." {
        Err(RefError::OtherEarthfile(text.to_string()))
    } else if project.split('/').next().is_some_and(|host| host.contains('.')) {
        Err(RefError::Remote(text.to_string()))
    } else {
        Err(RefError::Import(text.to_string()))
    }
}

/// A target reference to the target's name.
///
/// # Errors
/// The reference is not `+name` of this Earthfile.
pub fn target(text: &str) -> Result<String, RefError> {
    let name = project(text)?;
    if name.contains('/') {
        return Err(RefError::Invalid(text.to_string()));
    }
    local(text, name)
}

/// An artifact reference to the target's name and the path inside its artifacts (without
/// a leading `/`; empty for all of them).
///
/// # Errors
/// The reference is not `+name/path` of this Earthfile.
pub fn artifact(text: &str) -> Result<(String, String), RefError> {
    let rest = project(text)?;
    let Some((name, path)) = rest.split_once('/') else {
        local(text, rest)?;
        return Err(RefError::NoPath(text.to_string()));
    };
    Ok((local(text, name)?, path.trim_start_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_references() {
        assert_eq!(target("+build"), Ok("build".into()));
        assert_eq!(target("+buildLinux"), Ok("buildLinux".into()));
        assert_eq!(artifact("+build/out/app"), Ok(("build".into(), "out/app".into())));
        assert_eq!(artifact("+build/"), Ok(("build".into(), "".into())));
        assert_eq!(artifact("+build/*.so"), Ok(("build".into(), "*.so".into())));
    }

    #[test]
    fn other_references() {
        assert_eq!(target("./sub+build"), Err(RefError::OtherEarthfile("./sub+build".into())));
        assert_eq!(
            target("github.com/earthly/earthly+all"),
            Err(RefError::Remote("github.com/earthly/earthly+all".into()))
        );
        assert_eq!(artifact("lib+build/x"), Err(RefError::Import("lib+build/x".into())));
        assert_eq!(target("+COMPILE"), Err(RefError::Function("+COMPILE".into())));
        assert_eq!(target("+9x"), Err(RefError::Invalid("+9x".into())));
        assert_eq!(artifact("+build"), Err(RefError::NoPath("+build".into())));
    }
}
