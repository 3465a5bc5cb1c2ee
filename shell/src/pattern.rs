//! Shell pattern matching (`case`, `${x#pattern}`, pathname expansion): `*`, `?`, `[...]`
//! with ranges, `!` negation and `[:class:]`, by `yash-fnmatch`.
//!
//! A shell pattern is made of characters that are each quoted or not (`"*".txt` matches a
//! literal star); yash-fnmatch takes exactly that, where glob crates cannot. This module
//! never touches the filesystem.

use yash_fnmatch::{Config, Pattern, PatternChar};

/// One pattern character and whether it was quoted (quoted characters match themselves).
pub type PChar = (char, bool);

/// A pattern from plain text where nothing is quoted.
#[cfg(test)]
pub fn unquoted(text: &str) -> Vec<PChar> {
    text.chars().map(|c| (c, false)).collect()
}

/// Whether the pattern has an unquoted `*`, `?` or `[`.
pub fn has_magic(pattern: &[PChar]) -> bool {
    pattern.iter().any(|&(c, quoted)| !quoted && matches!(c, '*' | '?' | '['))
}

/// Whether `text` matches all of `pattern`. A pattern the matcher cannot compile (an
/// unknown `[:class:]`) matches only itself, character for character, as shells do.
pub fn matches(pattern: &[PChar], text: &[char]) -> bool {
    let chars =
        pattern.iter().map(|&(c, quoted)| if quoted { PatternChar::Literal(c) } else { PatternChar::Normal(c) });
    let mut config = Config::default();
    config.anchor_begin = true;
    config.anchor_end = true;
    let text: String = text.iter().collect();
    match Pattern::parse_with_config(chars, config) {
        Ok(compiled) => compiled.is_match(&text),
        Err(_) => pattern.iter().map(|&(c, _)| c).eq(text.chars()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        matches(&unquoted(pattern), &text.chars().collect::<Vec<_>>())
    }

    #[test]
    fn wildcards_and_brackets() {
        assert!(m("*.txt", "a.txt"));
        assert!(!m("*.txt", "a.txt.gz"));
        assert!(m("a?c", "abc"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[[:digit:]]*", "7up"));
        assert!(m("[]]", "]"));
        assert!(m("[", "["));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(m("", ""));
        assert!(m("*", ""));
    }

    #[test]
    fn quoted_characters_are_literal() {
        let pattern = vec![('*', true), ('.', false), ('t', false)];
        assert!(matches(&pattern, &['*', '.', 't']));
        assert!(!matches(&pattern, &['a', '.', 't']));
    }
}
