//! `.dockerignore` files and `COPY --exclude` patterns, with Docker's matching rules.
//!
//! The rules are those of moby's `patternmatcher`: patterns are cleaned paths relative to
//! the context root; `*` and `?` never cross `/`; `**` crosses any number of directories;
//! `[a-z]` classes and `\` escapes work as in Go's `filepath.Match`; a pattern excludes a
//! path when it matches the path or one of its parent directories; `!pattern` re-includes;
//! the last matching pattern wins.
//!
//! Written by hand because the gitignore crates implement git's rules, which differ
//! (unanchored basenames, trailing-slash meaning). Matching is one forward table walk per
//! pattern and path, linear in pattern × path length, that answers for the path and all its
//! parents at once; a pattern whose literal start or least length rules a path out is not
//! walked at all. So a context walk costs about one string comparison per pattern and path
//! for ordinary ignore files, and hostile patterns (a megabyte long, `**` repeated, a hundred
//! thousand of them) cannot make it slow.

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
    pub problem: PatternProblem,
}

/// What is wrong with a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternProblem {
    /// `!` alone.
    #[error("illegal exclusion pattern \"!\"")]
    LoneExclusion,
    /// A `\` with nothing after it inside `[...]`.
    #[error("unterminated escape in a character class")]
    UnterminatedEscape,
    /// `[z-a]`.
    #[error("character range {0}-{1} is out of order")]
    RangeOutOfOrder(char, char),
    /// `[` without `]`.
    #[error("unterminated character class '['")]
    UnterminatedClass,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad pattern {:?}: {}", self.pattern, self.problem)
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug, Clone)]
struct Pattern {
    tokens: Vec<Token>,
    exclusion: bool,
    /// The literal text every match starts with: a path that does not start with it is not
    /// matched, nor is any of its parents.
    prefix: String,
    /// The fewest characters a match holds.
    min_len: usize,
}

impl Pattern {
    fn new(tokens: Vec<Token>, exclusion: bool) -> Self {
        let tokens = simplify(tokens);
        let prefix = tokens
            .iter()
            .map_while(|t| match t {
                Token::Literal(c) => Some(*c),
                _ => None,
            })
            .collect();
        let min_len =
            tokens.iter().filter(|t| matches!(t, Token::Literal(_) | Token::One | Token::Class { .. })).count();
        Pattern { tokens, exclusion, prefix, min_len }
    }
}

/// Merge runs that match the same text as one token: `**/**/` is `**/`, and `**/` before a
/// final `**` is `**`. Without this a pattern of a million stars would be a million tokens;
/// with it every token but one in three needs a character of the path.
fn simplify(tokens: Vec<Token>) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    for token in tokens {
        match (out.last(), &token) {
            (Some(Token::Dirs), Token::Dirs) => {}
            (Some(Token::Dirs), Token::Rest) => {
                out.pop();
                out.push(token);
            }
            _ => out.push(token),
        }
    }
    out
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

fn compile(pattern: &str) -> Result<Vec<Token>, PatternProblem> {
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
                        lo = *chars.get(i).ok_or(PatternProblem::UnterminatedEscape)?;
                        i += 1;
                    }
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        hi = chars[i + 1];
                        i += 2;
                        if hi == '\\' {
                            hi = *chars.get(i).ok_or(PatternProblem::UnterminatedEscape)?;
                            i += 1;
                        }
                        if hi < lo {
                            return Err(PatternProblem::RangeOutOfOrder(lo, hi));
                        }
                    }
                    ranges.push((lo, hi));
                }
                if !closed {
                    return Err(PatternProblem::UnterminatedClass);
                }
                tokens.push(Token::Class { negated, ranges });
            }
            c => tokens.push(Token::Literal(c)),
        }
    }
    Ok(tokens)
}

/// Reusable columns of the matching table, so matching allocates once per path.
#[derive(Default)]
struct Columns {
    prev: Vec<bool>,
    cur: Vec<bool>,
    seen: Vec<bool>,
}

/// Whether `tokens` match all of `text` or, with `parents`, the part of it before one of its
/// slashes (a parent directory).
///
/// A forward walk over the table `reach[i][j]`: whether `tokens[..i]` match `text[..j]`. One
/// column per character, so every parent is answered on the way to the whole path.
fn matches(tokens: &[Token], text: &[char], parents: bool, cols: &mut Columns) -> bool {
    let n = tokens.len();
    for col in [&mut cols.prev, &mut cols.cur, &mut cols.seen] {
        col.clear();
        col.resize(n + 1, false);
    }
    // Column 0: only the tokens that can match nothing.
    cols.cur[0] = true;
    for (i, token) in tokens.iter().enumerate() {
        cols.cur[i + 1] = cols.cur[i] && matches!(token, Token::Star | Token::Dirs | Token::Rest);
    }
    let has_dirs = tokens.contains(&Token::Dirs);
    for j in 0..=text.len() {
        if j > 0 {
            std::mem::swap(&mut cols.prev, &mut cols.cur);
            let c = text[j - 1];
            let (prev, cur, seen) = (&cols.prev, &mut cols.cur, &cols.seen);
            cur[0] = false;
            let mut alive = false;
            for i in 0..n {
                let here = match &tokens[i] {
                    Token::Literal(l) => c == *l && prev[i],
                    Token::One => c != '/' && prev[i],
                    Token::Class { negated, ranges } => {
                        c != '/' && ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated && prev[i]
                    }
                    // Nothing more, or one more non-slash character.
                    Token::Star => cur[i] || (c != '/' && prev[i + 1]),
                    // `(.*/)?`: nothing, or everything since some earlier column, ending in '/'.
                    Token::Dirs => cur[i] || (c == '/' && seen[i]),
                    Token::Rest => cur[i] || prev[i + 1],
                };
                cur[i + 1] = here;
                alive |= here;
            }
            // Nothing reached and no `**/` waiting for a slash: no later column can match.
            let waiting = has_dirs && tokens.iter().zip(&cols.seen).any(|(t, s)| *s && *t == Token::Dirs);
            if !alive && !waiting {
                return false;
            }
        }
        // `seen[i]`: some column up to this one reached `i` (what `**/` continues from).
        for (s, c) in cols.seen.iter_mut().zip(&cols.cur) {
            *s |= *c;
        }
        let boundary = j == text.len() || (parents && text[j] == '/');
        if boundary && cols.cur[n] {
            return true;
        }
    }
    false
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
                return Err(PatternError { pattern: raw.into(), problem: PatternProblem::LoneExclusion });
            }
            let cleaned = clean_pattern(body);
            let tokens = compile(&cleaned).map_err(|problem| PatternError { pattern: raw.into(), problem })?;
            out.push(Pattern::new(tokens, exclusion));
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
        let mut cols = Columns::default();
        let mut excluded = false;
        for pattern in &self.patterns {
            if pattern.exclusion != excluded || chars.len() < pattern.min_len || !path.starts_with(&pattern.prefix) {
                continue;
            }
            // The path or one of its parents.
            if matches(&pattern.tokens, &chars, true, &mut cols) {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }

    /// Whether `dir` (slash-separated, relative to the root) and everything below it are
    /// excluded: `dir` is, and no `!` pattern that could bring back a path below it comes
    /// after the last pattern that matches `dir` or one of its parents (every earlier pattern
    /// is overridden by that one for paths below `dir` too).
    ///
    /// Conservative: a `!` pattern after it whose literal start does not rule out every path
    /// below `dir` counts as bringing one back. Appending `dir` as the file's last line always
    /// makes this true.
    pub fn excludes_all_below(&self, dir: &str) -> bool {
        let dir = dir.trim_matches('/');
        if !self.excludes(dir) {
            return false;
        }
        let chars: Vec<char> = dir.chars().collect();
        let mut cols = Columns::default();
        let decides = self.patterns.iter().rposition(|p| matches(&p.tokens, &chars, true, &mut cols));
        let below = format!("{dir}/");
        let later = &self.patterns[decides.map_or(0, |i| i + 1)..];
        !later.iter().any(|p| p.exclusion && (below.starts_with(&p.prefix) || p.prefix.starts_with(&below)))
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
    fn whole_directories_left_out() {
        let all = |patterns: &[&str], dir: &str| Matcher::new(patterns).unwrap().excludes_all_below(dir);
        assert!(all(&["out"], "out"));
        assert!(all(&["out/"], "out/"));
        assert!(all(&["build"], "build/out"), "a parent is left out");
        assert!(!all(&["src"], "out"));
        assert!(!all(&[], "out"));
        assert!(!all(&["out", "!out/keep"], "out"), "a path below is brought back");
        assert!(!all(&["out", "!**/*.go"], "out"));
        assert!(all(&["out", "!src", "!Cargo.*"], "out"), "exceptions elsewhere");
        assert!(all(&["*", "!src"], "out"), "an allow-list");
        assert!(all(&["!**/*.go", "out"], "out"), "the last match wins below it too");
        assert!(all(&["out", "!**/*.go", "out"], "out"), "appending the directory always works");
        assert!(!all(&["out", "!out"], "out"));
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

    #[test]
    fn runs_of_double_stars_are_one_token() {
        let m = Matcher::new(&["*".repeat(1_000_001)]).unwrap();
        assert!(m.patterns[0].tokens.len() <= 2, "{:?}", &m.patterns[0].tokens);
        assert!(m.excludes("a/b/c"));
        let m = Matcher::new(&["**/".repeat(100_000) + "a"]).unwrap();
        assert_eq!(m.patterns[0].tokens, [Token::Dirs, Token::Literal('a')]);
        assert!(m.excludes("x/y/a/z"));
        assert!(!m.excludes("x/y/b"));
    }

    #[test]
    fn many_and_huge_patterns_stay_fast() {
        let file: String = (0..100_000).map(|i| format!("pattern{i}/*.tmp\n")).collect();
        let m = Matcher::from_dockerignore(&file).unwrap();
        let huge = Matcher::new(&["a".repeat(1 << 20), "*?".repeat(1 << 19)]).unwrap();
        let start = std::time::Instant::now();
        for i in 0..1000 {
            let path = format!("src/dir{}/file{i}.txt", i % 10);
            assert!(!m.excludes(&path));
            assert!(!huge.excludes(&path));
        }
        assert!(m.excludes("pattern99999/x.tmp"));
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "took {:?}", start.elapsed());
    }

    /// The table walk before the forward one: tokens[i..] against text[j..], one path at a
    /// time. Kept as the reference the faster walk is checked against.
    fn reference(tokens: &[Token], text: &[char]) -> bool {
        let width = text.len() + 1;
        let mut ok = vec![false; (tokens.len() + 1) * width];
        ok[tokens.len() * width + text.len()] = true;
        for i in (0..tokens.len()).rev() {
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
                    Token::Star => next(j) || (j < text.len() && text[j] != '/' && ok[i * width + j + 1]),
                    Token::Dirs => next(j) || slash_then_rest,
                    Token::Rest => true,
                };
                ok[i * width + j] = here;
            }
        }
        ok[0]
    }

    #[test]
    fn the_forward_walk_agrees_with_the_reference() {
        // A small deterministic generator: every pattern and path over a tiny alphabet.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let pattern_parts = ["a", "b", "/", "*", "**", "**/", "?", "[ab]", "[^a]", "\\*", "."];
        let path_parts = ["a", "b", "/", "*", "ab", "."];
        for _ in 0..20_000 {
            let pattern: String = (0..1 + next(7)).map(|_| pattern_parts[next(pattern_parts.len())]).collect();
            let path: String = (0..1 + next(8)).map(|_| path_parts[next(path_parts.len())]).collect();
            let Ok(m) = Matcher::new(&[&pattern]) else { continue };
            let Some(p) = m.patterns.first() else { continue };
            let raw = compile(&clean_pattern(pattern.trim())).unwrap();
            let trimmed = path.trim_start_matches('/');
            if trimmed.is_empty() || trimmed == "." {
                continue;
            }
            let chars: Vec<char> = trimmed.chars().collect();
            let mut ends: Vec<usize> = chars.iter().enumerate().filter(|(_, c)| **c == '/').map(|(i, _)| i).collect();
            ends.push(chars.len());
            let want = ends.iter().any(|&e| reference(&raw, &chars[..e]));
            assert_eq!(m.excludes(&path), want, "pattern {pattern:?} ({:?}) path {path:?}", p.tokens);
        }
    }
}
