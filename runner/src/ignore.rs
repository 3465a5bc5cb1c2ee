//! `.dockerignore` files and `COPY --exclude` patterns, with Docker's matching rules.
//!
//! The rules are those of moby's `patternmatcher`: patterns are cleaned paths relative to
//! the context root; `*` and `?` never cross `/`; `**` crosses any number of directories;
//! `[a-z]` classes and `\` escapes work as in Go's `filepath.Match`; a pattern excludes a
//! path when it matches the path or one of its parent directories; `!pattern` re-includes;
//! the last matching pattern wins.
//!
//! Written by hand because the gitignore crates implement git's rules, which differ
//! (unanchored basenames, trailing-slash meaning). Matching is a table walk, linear in
//! pattern × path length, so hostile patterns cannot make it slow.

use std::fmt;

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` followed by more pattern: any run of whole directories, possibly none.
    Dirs,
    /// `**` at the end: anything at all.
    Rest,
    /// `[...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A malformed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub detail: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad pattern {:?}: {}", self.pattern, self.detail)
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug, Clone)]
struct Pattern {
    tokens: Vec<Token>,
    exclusion: bool,
}

/// An ordered list of patterns.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

/// Clean a pattern like Go's `filepath.Clean`, then drop a leading `/`.
fn clean_pattern(pattern: &str) -> String {
    let absolute = pattern.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if joined.is_empty() { ".".to_string() } else { joined }
}

fn compile(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i >= chars.len() { Token::Rest } else { Token::Dirs });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' => match chars.get(i) {
                Some(&c) => {
                    i += 1;
                    tokens.push(Token::Literal(c));
                }
                None => tokens.push(Token::Literal('\\')),
            },
            '[' => {
                let mut negated = false;
                if chars.get(i) == Some(&'^') {
                    negated = true;
                    i += 1;
                }
                let mut ranges = Vec::new();
                let mut closed = false;
                let mut first = true;
                while i < chars.len() {
                    let mut lo = chars[i];
                    if lo == ']' && !first {
                        i += 1;
                        closed = true;
                        break;
                    }
                    first = false;
                    i += 1;
                    if lo == '\\' {
                        lo = *chars.get(i).ok_or("unterminated escape in a character class")?;
                        i += 1;
                    }
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        hi = chars[i + 1];
                        i += 2;
                        if hi == '\\' {
                            hi = *chars.get(i).ok_or("unterminated escape in a character class")?;
                            i += 1;
                        }
                        if hi < lo {
                            return Err(format!("character range {lo}-{hi} is out of order"));
                        }
                    }
                    ranges.push((lo, hi));
                }
                if !closed {
                    return Err("unterminated character class '['".into());
                }
                tokens.push(Token::Class { negated, ranges });
            }
            c => tokens.push(Token::Literal(c)),
        }
    }
    Ok(tokens)
}

/// Whether `tokens` match all of `text`.
fn matches(tokens: &[Token], text: &[char]) -> bool {
    // ok[i][j]: tokens[i..] match text[j..]. Filled from the end.
    let width = text.len() + 1;
    let mut ok = vec![false; (tokens.len() + 1) * width];
    ok[tokens.len() * width + text.len()] = true;
    for i in (0..tokens.len()).rev() {
        // For `**/`: whether some slash at or after j has the rest of the pattern after it.
        let mut slash_then_rest = false;
        for j in (0..=text.len()).rev() {
            let next = |k: usize| ok[(i + 1) * width + k];
            slash_then_rest |= j < text.len() && text[j] == '/' && next(j + 1);
            let here = match &tokens[i] {
                Token::Literal(c) => j < text.len() && text[j] == *c && next(j + 1),
                Token::One => j < text.len() && text[j] != '/' && next(j + 1),
                Token::Class { negated, ranges } => {
                    j < text.len()
                        && text[j] != '/'
                        && ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&text[j])) != *negated
                        && next(j + 1)
                }
                // Zero characters, or one non-slash character and still in the star.
                Token::Star => next(j) || (j < text.len() && text[j] != '/' && ok[i * width + j + 1]),
                // `(.*/)?`: nothing, or anything ending in a slash.
                Token::Dirs => next(j) || slash_then_rest,
                Token::Rest => true,
            };
            ok[i * width + j] = here;
        }
    }
    ok[0]
}

impl Matcher {
    /// Compile patterns in order. Blank ones are skipped; `!` marks an exception.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut out = Vec::new();
        for raw in patterns {
            let raw = raw.as_ref();
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let (exclusion, body) = match trimmed.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, trimmed),
            };
            if exclusion && body.is_empty() {
                return Err(PatternError { pattern: raw.into(), detail: "illegal exclusion pattern \"!\"".into() });
            }
            let cleaned = clean_pattern(body);
            let tokens = compile(&cleaned).map_err(|detail| PatternError { pattern: raw.into(), detail })?;
            out.push(Pattern { tokens, exclusion });
        }
        Ok(Matcher { patterns: out })
    }

    /// Parse a `.dockerignore` file: `#` lines are comments, blanks are trimmed, leading `/`
    /// is dropped. Errors name the line.
    pub fn from_dockerignore(text: &str) -> Result<Self, (usize, PatternError)> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let one = Matcher::new(&[line]).map_err(|e| (index + 1, e))?;
            patterns.extend(one.patterns);
        }
        Ok(Matcher { patterns })
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an exception (`!`): then an excluded directory must still be
    /// walked, because something inside may be included again.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (slash-separated, relative to the root) is excluded: the last pattern
    /// that matches it or one of its parents decides.
    pub fn excludes(&self, path: &str) -> bool {
        let path = path.trim_start_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        let chars: Vec<char> = path.chars().collect();
        // Prefixes ending before each '/', then the whole path.
        let mut ends: Vec<usize> = chars.iter().enumerate().filter(|(_, c)| **c == '/').map(|(i, _)| i).collect();
        ends.push(chars.len());
        let mut excluded = false;
        for pattern in &self.patterns {
            if pattern.exclusion != excluded {
                continue;
            }
            let hit =
                matches(&pattern.tokens, &chars) || ends.iter().any(|&end| matches(&pattern.tokens, &chars[..end]));
            if hit {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(patterns: &[&str], path: &str) -> bool {
        Matcher::new(patterns).unwrap().excludes(path)
    }

    #[test]
    fn moby_pattern_rules() {
        assert!(ex(&["*.go"], "main.go"));
        assert!(!ex(&["*.go"], "pkg/main.go"), "* does not cross /");
        assert!(ex(&["**/*.go"], "pkg/sub/main.go"));
        assert!(ex(&["**/*.go"], "main.go"));
        assert!(ex(&["**"], "anything/at/all"));
        assert!(ex(&["a/**"], "a/b/c"));
        assert!(ex(&["node_modules"], "node_modules/x/y.js"), "parents match");
        assert!(ex(&["/build/"], "build/out"));
        assert!(ex(&["docs/**/*.md"], "docs/a/b/c.md"));
        assert!(ex(&["docs/**/*.md"], "docs/c.md"));
        assert!(ex(&["file?.txt"], "file1.txt"));
        assert!(!ex(&["file?.txt"], "file/.txt"));
        assert!(ex(&["[a-c]at"], "bat"));
        assert!(!ex(&["[^a-c]at"], "bat"));
        assert!(ex(&["\\*star"], "*star"));
        assert!(!ex(&["\\*star"], "xstar"));
        assert!(ex(&["./a/../b"], "b"));
    }

    #[test]
    fn exceptions_and_order() {
        let m = Matcher::new(&["*.md", "!README.md"]).unwrap();
        assert!(m.excludes("CHANGES.md"));
        assert!(!m.excludes("README.md"));
        assert!(m.has_exceptions());
        let m = Matcher::new(&["!README.md", "*.md"]).unwrap();
        assert!(m.excludes("README.md"), "the last match wins");
        let m = Matcher::new(&["docs", "!docs/keep.txt"]).unwrap();
        assert!(m.excludes("docs/other.txt"));
        assert!(!m.excludes("docs/keep.txt"));
    }

    #[test]
    fn dockerignore_files() {
        let m = Matcher::from_dockerignore("# comment\n\n  target  \n/.git\n!target/keep\n").unwrap();
        assert!(m.excludes("target/debug/x"));
        assert!(m.excludes(".git/HEAD"));
        assert!(!m.excludes("target/keep"));
        assert!(!m.excludes("src/main.rs"));
        let err = Matcher::from_dockerignore("ok\n[abc\n").unwrap_err();
        assert_eq!(err.0, 2);
        assert!(Matcher::new(&["!"]).is_err());
    }

    #[test]
    fn hostile_patterns_are_linear() {
        let pattern = "*a".repeat(50) + "b";
        let path = "a".repeat(2000);
        assert!(!ex(&[&pattern], &path));
    }
}
