//! Word expansion and word splitting, as BuildKit's `shell` package does them.
//!
//! This module owns the Dockerfile's small shell language: quote removal (`'…'`, `"…"`), the
//! escape character (`\` or the `# escape=` one), `$V` / `${V}`, the modifiers `:-  -  :+  +
//! :?  ?`, the pattern operators `#  ##  %  %%  /  //`, and splitting into words on unquoted
//! whitespace. It reads variables only through [`Env`] and never runs anything.
//!
//! Hostile input cannot make it slow or unbounded: nesting depth, the size of an expanded word
//! and the work a pattern match may do are all capped, and pattern matching is a table walk,
//! never exponential backtracking.
//!
//! Where BuildKit's behaviour is an accident worth keeping (an empty `""` word vanishes when
//! words are split; `\q` inside double quotes keeps its backslash) this module keeps it, because
//! Dockerfiles in the wild depend on it.
//!
//! Pattern matching for `#`, `%` and `/` is in `pattern`; the scanner stays here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod pattern;

use pattern::{MatchTable, parse_pattern, trim_prefix, trim_suffix};

/// Variables visible to an expansion.
pub trait Env {
    /// The value of `name`, or `None` when it is unset (set-but-empty is `Some("")`).
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// An environment given as `NAME=value` entries, the way Docker stores it.
///
/// An entry without `=` defines the name with an empty value; when a name repeats, the last
/// entry wins.
pub struct EnvList<'a> {
    entries: &'a [String],
    case_insensitive: bool,
}

impl<'a> EnvList<'a> {
    pub fn new(entries: &'a [String]) -> Self {
        EnvList { entries, case_insensitive: false }
    }

    /// Compare names case-insensitively, as Windows does.
    pub fn case_insensitive(mut self, yes: bool) -> Self {
        self.case_insensitive = yes;
        self
    }
}

impl Env for EnvList<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.entries.iter().rev().find_map(|entry| {
            let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            let same = if self.case_insensitive { key.to_uppercase() == name.to_uppercase() } else { key == name };
            same.then_some(value)
        })
    }
}

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    pub message: String,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExpandError {}

/// The result of expanding one word, with the variables it referenced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    pub result: String,
    /// Referenced names that were set (possibly to the empty string).
    pub matched: BTreeSet<String>,
    /// Referenced names that were unset.
    pub unmatched: BTreeSet<String>,
}

/// How deeply `${a:-${b:-…}}` may nest before we refuse (a guard for the stack, far beyond
/// anything a real Dockerfile writes).
const MAX_DEPTH: usize = 64;
/// The largest expanded word, in bytes. ENV lines that double a variable each time would
/// otherwise grow without bound.
pub const MAX_EXPANSION: usize = 16 << 20;
/// The most table cells (pattern length × value length) one pattern match may use.
const MAX_PATTERN_CELLS: usize = 1 << 24;

/// A configured expander. Cheap to clone; holds no state between calls.
#[derive(Debug, Clone)]
pub struct Lexer {
    /// The escape character: `\` or, after `# escape=\``, a backtick.
    pub escape: char,
    /// Keep quote characters in the result (they still group words).
    pub raw_quotes: bool,
    /// Keep escape characters in the result (they still escape).
    pub raw_escapes: bool,
    /// Leave references to unset variables as written instead of expanding them to "".
    pub skip_unset_env: bool,
    /// Treat quotes as ordinary characters (used for heredoc bodies).
    pub skip_process_quotes: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Lexer { escape, raw_quotes: false, raw_escapes: false, skip_unset_env: false, skip_process_quotes: false }
    }

    /// Expand `word` as one word: spaces are kept, nothing is split.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ExpandError> {
        self.process_word_with_matches(word, env).map(|e| e.result)
    }

    /// Expand `word`, then split it into words on unquoted whitespace (including whitespace an
    /// unquoted expansion produced).
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        self.run(word, env).map(|(_, words, _)| words)
    }

    /// Expand `word` as one word and report which variables it referenced.
    pub fn process_word_with_matches(&self, word: &str, env: &dyn Env) -> Result<Expansion, ExpandError> {
        self.run(word, env).map(|(result, _, (matched, unmatched))| Expansion { result, matched, unmatched })
    }

    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<(String, Vec<String>, (BTreeSet<String>, BTreeSet<String>)), ExpandError> {
        // Go's text/scanner drops a byte-order mark at the very start.
        let source = word.strip_prefix('\u{feff}').unwrap_or(word);
        let mut scan = Scanner {
            lexer: self,
            chars: source.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
            depth: 0,
        };
        match scan.stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok((result, words, (scan.matched, scan.unmatched))),
            Err(message) => {
                Err(ExpandError { message: format!("failed to process {}: {message}", crate::strconv::go_quote(word)) })
            }
        }
    }
}

/// Words being collected while a word is expanded (BuildKit's `wordsStruct`).
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    /// A character that splits on whitespace.
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            // An empty quoted word ("") sets `in_word` but never becomes a word: BuildKit's rule.
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Scanner<'l, 'e> {
    lexer: &'l Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'e dyn Env,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
    depth: usize,
}

type Step<T> = Result<T, String>;

impl Scanner<'_, '_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    /// Expand up to `stop` (consumed) or the end of input when `stop` is `None`.
    fn stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Step<(String, Vec<String>)> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("substitutions nested more than {MAX_DEPTH} deep"));
        }
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let outcome = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        outcome
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Step<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.dollar()?;
                    words.add_string(&value);
                    result.push_str(&value);
                }
                '<' => {
                    let text = self.possible_heredoc();
                    words.add_raw_string(&text);
                    result.push_str(&text);
                }
                '\'' if quotes => {
                    let text = self.single_quote()?;
                    words.add_raw_string(&text);
                    result.push_str(&text);
                }
                '"' if quotes => {
                    let text = self.double_quote()?;
                    words.add_raw_string(&text);
                    result.push_str(&text);
                }
                _ => {
                    self.next();
                    if ch == self.lexer.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape character at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
            if result.len() > MAX_EXPANSION {
                return Err(format!("the expanded word is larger than {} MiB", MAX_EXPANSION >> 20));
            }
        }
        match stop {
            Some(stop) => Err(format!("unexpected end of statement while looking for matching {stop}")),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quote(&mut self) -> Step<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err("unexpected end of statement while looking for matching single-quote".into());
                }
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn double_quote(&mut self) -> Step<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err("unexpected end of statement while looking for matching double-quote".into());
                }
                Some('"') => {
                    self.next();
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                }
                Some(mut ch) => {
                    self.next();
                    if ch == self.lexer.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // A trailing escape is ignored; the loop then reports the open quote.
                            None => continue,
                            // Inside double quotes only these can be escaped; before anything
                            // else the escape character is kept literally, as in sh.
                            Some(next) if next == '"' || next == '$' || next == self.lexer.escape => {
                                self.next();
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
            if result.len() > MAX_EXPANSION {
                return Err(format!("the expanded word is larger than {} MiB", MAX_EXPANSION >> 20));
            }
        }
    }

    /// `<<` (or `<<-`) and the blanks after it stay together in one word, so `<< EOF` and
    /// `<<- EOF` are recognisable as heredocs later.
    ///
    /// BuildKit absorbs blanks only after a bare `<<`, so it splits `<<- EOF` into `<<-` and
    /// `EOF` and finds no heredoc; sh accepts that form, so we do too.
    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut text = String::from("<<");
        if self.peek() == Some('-') && matches!(self.chars.get(self.pos + 1), Some(' ' | '\t' | '\r')) {
            self.next();
            text.push('-');
        }
        while let Some(ch @ (' ' | '\t' | '\r')) = self.peek() {
            text.push(ch);
            self.next();
        }
        text
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(value) => {
                self.matched.insert(name.to_string());
                Some(value.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn dollar(&mut self) -> Step<String> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        match self.next() {
            None => Err("syntax error: missing '}'".into()),
            Some('}') => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(first @ (':' | '+' | '-' | '?' | '#' | '%')) => self.modifier(name, first),
            Some('/') => self.replace(name),
            Some(other) => Err(format!("unsupported modifier ({other}) in substitution")),
        }
    }

    /// `${name<op>word}` for the default / alternative / required / trim operators.
    fn modifier(&mut self, name: String, first: char) -> Step<String> {
        let null_is_unset = first == ':';
        let op = if null_is_unset { self.next() } else { Some(first) };
        let written: String = [Some(first).filter(|_| null_is_unset), op].into_iter().flatten().collect();
        if null_is_unset && matches!(op, Some('#' | '%')) {
            return Err(format!("unsupported modifier ({written}) in substitution"));
        }
        // Patterns keep their escapes: `\*` must still mean a literal star when matched.
        let raw = matches!(op, Some('#' | '%'));
        let word = self.stop_on(Some('}'), raw).map_err(|e| self.missing('}', e))?.0;
        let value = self.lookup(&name);
        if value.is_none() && self.lexer.skip_unset_env {
            return Ok(format!("${{{name}{written}{word}}}"));
        }
        let empty = value.as_deref().is_none_or(|v| null_is_unset && v.is_empty());
        match op {
            Some('-') => Ok(if empty { word } else { value.unwrap_or_default() }),
            Some('+') => Ok(if empty { String::new() } else { word }),
            Some('?') => {
                let problem = match &value {
                    None => "is not allowed to be unset",
                    Some(_) if empty => "is not allowed to be empty",
                    Some(v) => return Ok(v.clone()),
                };
                let message = if word.is_empty() { problem } else { &word };
                Err(format!("{name}: {message}"))
            }
            Some(op @ ('#' | '%')) => {
                let (greedy, pattern) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let value = value.unwrap_or_default();
                let tokens = parse_pattern(pattern)?;
                if op == '#' { trim_prefix(&tokens, &value, greedy) } else { trim_suffix(&tokens, &value, greedy) }
            }
            _ => Err(format!("unsupported modifier ({written}) in substitution")),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn replace(&mut self, name: String) -> Step<String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = self.stop_on(Some('/'), true).map_err(|e| self.missing('/', e))?.0;
        let replacement = self.stop_on(Some('}'), true).map_err(|e| self.missing('}', e))?.0;
        let Some(value) = self.lookup(&name) else {
            if self.lexer.skip_unset_env {
                let slashes = if all { "//" } else { "/" };
                return Ok(format!("${{{name}{slashes}{pattern}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        let tokens = parse_pattern(&pattern)?;
        let text: Vec<char> = value.chars().collect();
        let table = MatchTable::build(&tokens, &text)?;
        let mut out = String::new();
        // Go's ReplaceAll: successive non-overlapping matches; an empty match right after a
        // previous match is skipped; after an empty match the search moves on one character.
        let mut last_end = 0;
        let mut search = 0;
        while search <= text.len() {
            let Some(start) = (search..=text.len()).find(|&s| table.matches_at(0, s)) else {
                break;
            };
            let end = table.walk(start, true);
            out.extend(&text[last_end..start]);
            if end > last_end || start == 0 {
                out.push_str(&replacement);
            }
            last_end = end;
            if !all {
                break;
            }
            search = if end > search { end } else { search + 1 };
            if out.len() > MAX_EXPANSION {
                return Err(format!("the expanded word is larger than {} MiB", MAX_EXPANSION >> 20));
            }
        }
        out.extend(&text[last_end..]);
        Ok(out)
    }

    /// The error for a `${…` that ran out of input before `close`.
    fn missing(&self, close: char, inner: String) -> String {
        if self.peek().is_none() {
            match close {
                '/' => "syntax error: missing '/' in ${}".into(),
                _ => "syntax error: missing '}'".into(),
            }
        } else {
            inner
        }
    }

    /// A variable name: letters, digits and `_`; or all of a run of digits (positional
    /// parameters, always unset); or one special parameter character.
    ///
    /// Go's `unicode.IsLetter`/`IsDigit` are the Unicode categories L and Nd; Rust's
    /// `is_alphabetic`/`is_numeric` are slightly wider (they admit a few marks and other
    /// numerals). Only exotic non-ASCII names can tell the difference.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek().filter(|c| c.is_numeric()) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphabetic() || ch.is_numeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }
}

#[cfg(test)]
mod tests;
