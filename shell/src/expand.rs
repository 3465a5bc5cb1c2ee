//! Word expansion, in POSIX's order: tilde, parameters, command substitution and arithmetic,
//! then field splitting on `IFS`, pathname expansion, and quote removal.
//!
//! Words arrive as the parser's raw text and are split into pieces by `brush_parser::word`;
//! this module gives the pieces their values. Each character keeps whether it was quoted,
//! so splitting and globbing apply only to what the user left unquoted. It never runs a
//! command itself except through command substitution.

use brush_parser::word::{self, Parameter, ParameterExpr, ParameterTestType, SpecialParameter, WordPiece};

use crate::pattern::{self, PChar};
use crate::state::{Flow, Shell};

/// Fields being built from one word.
#[derive(Default)]
struct Acc {
    fields: Vec<Vec<PChar>>,
    cur: Vec<PChar>,
    /// The current field exists even if empty (`""`).
    started: bool,
    /// The last thing seen was IFS white space that ended a field.
    after_space: bool,
}

impl Acc {
    fn push_literal(&mut self, text: &str, quoted: bool) {
        self.cur.extend(text.chars().map(|c| (c, quoted)));
        self.started = true;
        self.after_space = false;
    }

    fn finish(&mut self) {
        self.fields.push(std::mem::take(&mut self.cur));
        self.started = false;
    }

    /// Append an unquoted expansion result, splitting it on `ifs`.
    fn push_split(&mut self, text: &str, ifs: &str) {
        for c in text.chars() {
            if ifs.contains(c) {
                if matches!(c, ' ' | '\t' | '\n') {
                    if self.started || !self.cur.is_empty() {
                        self.finish();
                        self.after_space = true;
                    }
                } else {
                    if self.started || !self.cur.is_empty() {
                        self.finish();
                    } else if !self.after_space {
                        self.fields.push(Vec::new());
                    }
                    self.after_space = false;
                }
            } else {
                self.cur.push((c, false));
                self.started = true;
                self.after_space = false;
            }
        }
    }
}

/// How a word is being expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Into fields: split and globbed (command words, `for` lists).
    Fields,
    /// Into one string (assignments, redirection targets, here-documents, `case` words).
    Single,
}

fn options() -> brush_parser::ParserOptions {
    brush_parser::ParserOptions { posix_mode: true, sh_mode: true, ..Default::default() }
}

/// What a parameter expands to: one value, or a list (`$@`, `$*`).
enum Value {
    One(Option<String>),
    List(Vec<String>, bool),
}

impl Shell {
    /// Expand a word into fields (split, globbed, unquoted).
    pub fn expand_fields(&mut self, raw: &str) -> Result<Vec<String>, Flow> {
        let acc = self.expand_acc(raw, Mode::Fields)?;
        let mut out = Vec::new();
        for field in acc.fields {
            if !self.opts.noglob && pattern::has_magic(&field) {
                let matched = self.glob(&field);
                if !matched.is_empty() {
                    out.extend(matched);
                    continue;
                }
            }
            out.push(field.into_iter().map(|(c, _)| c).collect());
        }
        Ok(out)
    }

    /// Expand a word into one string (no splitting, no globbing).
    pub fn expand_string(&mut self, raw: &str) -> Result<String, Flow> {
        let acc = self.expand_acc(raw, Mode::Single)?;
        Ok(acc.fields.into_iter().flatten().map(|(c, _)| c).collect())
    }

    /// Expand a word into a pattern (quoted characters stay literal).
    pub fn expand_pattern(&mut self, raw: &str) -> Result<Vec<PChar>, Flow> {
        let acc = self.expand_acc(raw, Mode::Single)?;
        Ok(acc.fields.into_iter().flatten().collect())
    }

    /// Expand a here-document body (`"` and `'` are plain characters there).
    pub fn expand_heredoc(&mut self, raw: &str) -> Result<String, Flow> {
        let pieces = word::parse_heredoc(raw, &options()).map_err(|e| self.fatal(format!("bad here-document: {e}")))?;
        let mut acc = Acc::default();
        self.pieces(&pieces.into_iter().map(|p| p.piece).collect::<Vec<_>>(), true, Mode::Single, &mut acc)?;
        acc.finish();
        Ok(acc.fields.into_iter().flatten().map(|(c, _)| c).collect())
    }

    /// Report a fatal expansion error: the shell (or subshell) exits with 2, as dash does.
    pub fn fatal(&self, message: impl std::fmt::Display) -> Flow {
        self.error(message);
        Flow::Exit(2)
    }

    fn expand_acc(&mut self, raw: &str, mode: Mode) -> Result<Acc, Flow> {
        let pieces = word::parse(raw, &options()).map_err(|_| self.fatal(format!("{raw}: bad substitution")))?;
        let pieces: Vec<WordPiece> = pieces.into_iter().map(|p| p.piece).collect();
        let mut acc = Acc::default();
        self.pieces(&pieces, false, mode, &mut acc)?;
        if acc.started || !acc.cur.is_empty() || (mode == Mode::Single && acc.fields.is_empty()) {
            acc.finish();
        }
        Ok(acc)
    }

    fn pieces(&mut self, pieces: &[WordPiece], quoted: bool, mode: Mode, acc: &mut Acc) -> Result<(), Flow> {
        for (index, piece) in pieces.iter().enumerate() {
            match piece {
                WordPiece::Text(text) => acc.push_literal(text, quoted),
                WordPiece::SingleQuotedText(text) => acc.push_literal(text, true),
                WordPiece::AnsiCQuotedText(text) => acc.push_literal(&crate::builtins::unescape(text, false).0, true),
                WordPiece::DoubleQuotedSequence(inner) | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    let inner: Vec<WordPiece> = inner.iter().map(|p| p.piece.clone()).collect();
                    let only_at = inner.len() == 1 && is_at(&inner[0]);
                    if !only_at {
                        acc.started = true;
                    }
                    self.pieces(&inner, true, mode, acc)?;
                }
                WordPiece::TildeExpansion(expr) => match expr {
                    word::TildeExpr::Home => {
                        let home = self.get("HOME").unwrap_or("/").to_string();
                        acc.push_literal(&home, true);
                    }
                    word::TildeExpr::UserHome(user) => {
                        let home = crate::builtins::home_of(user).unwrap_or_else(|| format!("~{user}"));
                        acc.push_literal(&home, true);
                    }
                    word::TildeExpr::WorkingDir => acc.push_literal(&self.cwd.clone(), true),
                    word::TildeExpr::OldWorkingDir => {
                        let old = self.get("OLDPWD").unwrap_or("~-").to_string();
                        acc.push_literal(&old, true);
                    }
                    _ => return Err(self.fatal("directory stacks are not supported")),
                },
                WordPiece::EscapeSequence(seq) => {
                    let escaped = seq.strip_prefix('\\').unwrap_or(seq);
                    if escaped == "\n" {
                        continue;
                    }
                    if quoted && !matches!(escaped, "$" | "`" | "\"" | "\\") {
                        acc.push_literal(seq, true);
                    } else {
                        acc.push_literal(escaped, true);
                    }
                }
                WordPiece::ParameterExpansion(expr) => {
                    let value = self.parameter_expr(expr, quoted, mode, acc)?;
                    if let Some(value) = value {
                        self.push_value(value, quoted, mode, acc);
                    }
                }
                WordPiece::CommandSubstitution(text) | WordPiece::BackquotedCommandSubstitution(text) => {
                    let source = if matches!(piece, WordPiece::BackquotedCommandSubstitution(_)) {
                        unbackquote(text)
                    } else {
                        text.clone()
                    };
                    let output = self.substitute(&source)?;
                    self.push_value(Value::One(Some(output)), quoted, mode, acc);
                }
                WordPiece::ArithmeticExpression(expr) => {
                    let value = self.arith_text(&expr.value)?;
                    self.push_value(Value::One(Some(value.to_string())), quoted, mode, acc);
                }
            }
            let _ = index;
        }
        Ok(())
    }

    fn push_value(&mut self, value: Value, quoted: bool, mode: Mode, acc: &mut Acc) {
        let split = !quoted && mode == Mode::Fields;
        let ifs = self.ifs();
        match value {
            Value::One(None) => {}
            Value::One(Some(text)) => {
                if split {
                    acc.push_split(&text, &ifs);
                } else {
                    acc.push_literal(&text, quoted);
                }
            }
            Value::List(items, concatenate) => {
                if concatenate || mode == Mode::Single {
                    // "$*" joins with IFS's first character; in a single-string context so does $@.
                    let sep =
                        if concatenate { ifs.chars().next().map(String::from).unwrap_or_default() } else { " ".into() };
                    let joined = items.join(&sep);
                    if split {
                        acc.push_split(&joined, &ifs);
                    } else if !joined.is_empty() || quoted {
                        acc.push_literal(&joined, quoted);
                    }
                    return;
                }
                for (i, item) in items.iter().enumerate() {
                    if i > 0 && (acc.started || !acc.cur.is_empty() || quoted) {
                        acc.finish();
                    }
                    if quoted {
                        acc.push_literal(item, true);
                    } else {
                        acc.push_split(item, &ifs);
                    }
                }
            }
        }
    }

    /// Run `source` in a subshell and return its output without trailing newlines.
    pub fn substitute(&mut self, source: &str) -> Result<String, Flow> {
        let buffer = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut sub = self.clone();
        sub.fds.set(1, crate::io::Fd::Buffer(buffer.clone()));
        let status = sub.run_source(source, true);
        self.status = status;
        let mut text = String::from_utf8_lossy(&buffer.borrow()).into_owned();
        while text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    }

    fn param(&mut self, parameter: &Parameter, indirect: bool) -> Result<Value, Flow> {
        let value = match parameter {
            Parameter::Positional(0) => Value::One(Some(self.name.clone())),
            Parameter::Positional(n) => Value::One(self.params.get(*n as usize - 1).cloned()),
            Parameter::Named(name) => Value::One(self.get(name).map(str::to_string)),
            Parameter::Special(special) => match special {
                SpecialParameter::AllPositionalParameters { concatenate } => {
                    Value::List(self.params.clone(), *concatenate)
                }
                SpecialParameter::PositionalParameterCount => Value::One(Some(self.params.len().to_string())),
                SpecialParameter::LastExitStatus => Value::One(Some(self.status.to_string())),
                SpecialParameter::CurrentOptionFlags => Value::One(Some(self.flags())),
                // One process per shell in the sandbox; scripts use $$ for unique names.
                SpecialParameter::ProcessId => Value::One(Some("1".into())),
                SpecialParameter::LastBackgroundProcessId => Value::One(None),
                SpecialParameter::ShellName => Value::One(Some(self.name.clone())),
            },
            Parameter::NamedWithIndex { .. } | Parameter::NamedWithAllIndices { .. } => {
                return Err(self.fatal(format!("{parameter}: arrays are not supported by kiln's sh")));
            }
        };
        if indirect {
            let Value::One(Some(name)) = value else { return Ok(Value::One(None)) };
            return Ok(Value::One(self.get(&name).map(str::to_string)));
        }
        Ok(value)
    }

    /// A parameter's value for a modifier: `None` when unset; lists join with spaces.
    fn param_scalar(&mut self, parameter: &Parameter, indirect: bool) -> Result<Option<String>, Flow> {
        Ok(match self.param(parameter, indirect)? {
            Value::One(v) => v,
            Value::List(items, _) => {
                if items.is_empty() {
                    None
                } else {
                    Some(items.join(" "))
                }
            }
        })
    }

    fn check_unset(&self, parameter: &Parameter, value: &Value) -> Result<(), Flow> {
        if !self.opts.nounset {
            return Ok(());
        }
        let unset =
            matches!(value, Value::One(None)) && matches!(parameter, Parameter::Named(_) | Parameter::Positional(1..));
        if unset {
            let name = parameter.to_string();
            let name = name.trim_start_matches('$').trim_start_matches('{').trim_end_matches('}');
            return Err(self.fatal(format!("{name}: parameter not set")));
        }
        Ok(())
    }

    /// Expand a `${...}` expression. Returns the value to push, or `None` when the pieces of a
    /// default word were pushed directly (so `"$@"` in them keeps its fields).
    fn parameter_expr(
        &mut self,
        expr: &ParameterExpr,
        quoted: bool,
        mode: Mode,
        acc: &mut Acc,
    ) -> Result<Option<Value>, Flow> {
        let null_or_unset = |test: &ParameterTestType, v: &Option<String>| match test {
            ParameterTestType::UnsetOrNull => v.as_deref().is_none_or(str::is_empty),
            ParameterTestType::Unset => v.is_none(),
        };
        Ok(Some(match expr {
            ParameterExpr::Parameter { parameter, indirect } => {
                let value = self.param(parameter, *indirect)?;
                self.check_unset(parameter, &value)?;
                value
            }
            ParameterExpr::UseDefaultValues { parameter, indirect, test_type, default_value } => {
                let value = self.param_scalar(parameter, *indirect)?;
                if null_or_unset(test_type, &value) {
                    self.word_into(default_value.as_deref().unwrap_or(""), quoted, mode, acc)?;
                    return Ok(None);
                }
                self.param(parameter, *indirect)?
            }
            ParameterExpr::AssignDefaultValues { parameter, indirect, test_type, default_value } => {
                let value = self.param_scalar(parameter, *indirect)?;
                if null_or_unset(test_type, &value) {
                    let Parameter::Named(name) = parameter else {
                        return Err(self.fatal(format!("{parameter}: cannot assign in this way")));
                    };
                    let new = self.expand_string(default_value.as_deref().unwrap_or(""))?;
                    if let Err(e) = self.set(name, new.clone()) {
                        return Err(self.fatal(e));
                    }
                    Value::One(Some(new))
                } else {
                    Value::One(value)
                }
            }
            ParameterExpr::IndicateErrorIfNullOrUnset { parameter, indirect, test_type, error_message } => {
                let value = self.param_scalar(parameter, *indirect)?;
                if null_or_unset(test_type, &value) {
                    let message = match error_message {
                        Some(m) if !m.is_empty() => self.expand_string(m)?,
                        _ => "parameter not set".into(),
                    };
                    let name = parameter.to_string();
                    let name = name.trim_start_matches('$').trim_start_matches('{').trim_end_matches('}').to_string();
                    return Err(self.fatal(format!("{name}: {message}")));
                }
                Value::One(value)
            }
            ParameterExpr::UseAlternativeValue { parameter, indirect, test_type, alternative_value } => {
                let value = self.param_scalar(parameter, *indirect)?;
                if !null_or_unset(test_type, &value) {
                    self.word_into(alternative_value.as_deref().unwrap_or(""), quoted, mode, acc)?;
                }
                return Ok(None);
            }
            ParameterExpr::ParameterLength { parameter, indirect } => {
                let value = self.param(parameter, *indirect)?;
                self.check_unset(parameter, &value)?;
                let length = match value {
                    Value::One(v) => v.unwrap_or_default().chars().count(),
                    Value::List(items, _) => items.len(),
                };
                Value::One(Some(length.to_string()))
            }
            ParameterExpr::RemoveSmallestSuffixPattern { parameter, indirect, pattern }
            | ParameterExpr::RemoveLargestSuffixPattern { parameter, indirect, pattern }
            | ParameterExpr::RemoveSmallestPrefixPattern { parameter, indirect, pattern }
            | ParameterExpr::RemoveLargestPrefixPattern { parameter, indirect, pattern } => {
                let value = self.param(parameter, *indirect)?;
                self.check_unset(parameter, &value)?;
                let pattern = self.expand_pattern(pattern.as_deref().unwrap_or(""))?;
                let (suffix, largest) = match expr {
                    ParameterExpr::RemoveSmallestSuffixPattern { .. } => (true, false),
                    ParameterExpr::RemoveLargestSuffixPattern { .. } => (true, true),
                    ParameterExpr::RemoveSmallestPrefixPattern { .. } => (false, false),
                    _ => (false, true),
                };
                let strip = |text: String| remove_affix(&text, &pattern, suffix, largest);
                match value {
                    Value::One(v) => Value::One(v.map(strip)),
                    Value::List(items, c) => Value::List(items.into_iter().map(strip).collect(), c),
                }
            }
            ParameterExpr::Substring { parameter, indirect, offset, length } => {
                let value = self.param_scalar(parameter, *indirect)?.unwrap_or_default();
                let chars: Vec<char> = value.chars().collect();
                let len = chars.len() as i64;
                let mut start = self.arith_text(&offset.value)?;
                if start < 0 {
                    start = (len + start).max(0);
                }
                let start = start.min(len);
                let end = match length {
                    None => len,
                    Some(l) => {
                        let l = self.arith_text(&l.value)?;
                        if l < 0 { (len + l).max(start) } else { (start + l).min(len) }
                    }
                };
                Value::One(Some(chars[start as usize..end as usize].iter().collect()))
            }
            ParameterExpr::ReplaceSubstring { parameter, indirect, pattern, replacement, match_kind } => {
                let value = self.param_scalar(parameter, *indirect)?.unwrap_or_default();
                let pattern = self.expand_pattern(pattern)?;
                let replacement = self.expand_string(replacement.as_deref().unwrap_or(""))?;
                Value::One(Some(replace(&value, &pattern, &replacement, match_kind)))
            }
            ParameterExpr::UppercasePattern { parameter, indirect, .. }
            | ParameterExpr::LowercasePattern { parameter, indirect, .. }
            | ParameterExpr::UppercaseFirstChar { parameter, indirect, .. }
            | ParameterExpr::LowercaseFirstChar { parameter, indirect, .. } => {
                let value = self.param_scalar(parameter, *indirect)?.unwrap_or_default();
                let out = match expr {
                    ParameterExpr::UppercasePattern { .. } => value.to_uppercase(),
                    ParameterExpr::LowercasePattern { .. } => value.to_lowercase(),
                    ParameterExpr::UppercaseFirstChar { .. } => first_char(&value, true),
                    _ => first_char(&value, false),
                };
                Value::One(Some(out))
            }
            other => return Err(self.fatal(format!("{}: bad substitution", describe(other)))),
        }))
    }

    /// Expand a modifier's word into the fields being built, in the same quoting context.
    fn word_into(&mut self, raw: &str, quoted: bool, mode: Mode, acc: &mut Acc) -> Result<(), Flow> {
        let pieces = word::parse(raw, &options()).map_err(|_| self.fatal(format!("{raw}: bad substitution")))?;
        let pieces: Vec<WordPiece> = pieces.into_iter().map(|p| p.piece).collect();
        if quoted && pieces.is_empty() {
            acc.started = true;
        }
        self.pieces(&pieces, quoted, mode, acc)
    }

    /// `$-`.
    fn flags(&self) -> String {
        // `$-` lists the letters of the options that are on, in alphabetical order.
        let mut letters: Vec<char> =
            self.opts.list().into_iter().filter_map(|(_, letter, on)| letter.filter(|_| on)).collect();
        letters.sort_by_key(|c| c.to_ascii_lowercase());
        letters.into_iter().collect()
    }

    /// Pathname expansion of one field. Empty when nothing matches.
    fn glob(&self, pattern: &[PChar]) -> Vec<String> {
        let absolute = pattern.first().is_some_and(|&(c, _)| c == '/');
        let dir_only = pattern.last().is_some_and(|&(c, _)| c == '/');
        let components: Vec<&[PChar]> = pattern.split(|&(c, _)| c == '/').filter(|c| !c.is_empty()).collect();
        // (what the user sees, where it is)
        let mut found: Vec<(String, String)> =
            vec![if absolute { ("/".into(), "/".into()) } else { (String::new(), self.cwd.clone()) }];
        for (i, component) in components.iter().enumerate() {
            let last = i + 1 == components.len();
            let mut next = Vec::new();
            for (shown, real) in &found {
                let join = |base: &str, name: &str| {
                    if base.is_empty() || base.ends_with('/') {
                        format!("{base}{name}")
                    } else {
                        format!("{base}/{name}")
                    }
                };
                if !pattern::has_magic(component) {
                    let name: String = component.iter().map(|&(c, _)| c).collect();
                    let path = join(real, &name);
                    let ok = if last && !dir_only {
                        std::fs::symlink_metadata(&path).is_ok()
                    } else {
                        std::fs::metadata(&path).is_ok_and(|m| m.is_dir())
                    };
                    if ok {
                        next.push((join(shown, &name), path));
                    }
                    continue;
                }
                let Ok(entries) = std::fs::read_dir(if real.is_empty() { "." } else { real }) else { continue };
                let mut names: Vec<String> =
                    entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                names.sort();
                let explicit_dot = component.first().is_some_and(|&(c, _)| c == '.');
                for name in names {
                    if name.starts_with('.') && !explicit_dot {
                        continue;
                    }
                    if !pattern::matches(component, &name.chars().collect::<Vec<_>>()) {
                        continue;
                    }
                    let path = join(real, &name);
                    if (!last || dir_only) && !std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                        continue;
                    }
                    next.push((join(shown, &name), path));
                }
            }
            found = next;
            if found.is_empty() {
                return Vec::new();
            }
        }
        found.into_iter().map(|(shown, _)| if dir_only { format!("{shown}/") } else { shown }).collect()
    }
}

fn is_at(piece: &WordPiece) -> bool {
    matches!(
        piece,
        WordPiece::ParameterExpansion(ParameterExpr::Parameter {
            parameter: Parameter::Special(SpecialParameter::AllPositionalParameters { concatenate: false }),
            ..
        })
    )
}

fn describe(expr: &ParameterExpr) -> String {
    format!("{expr:?}").split([' ', '{', '(']).next().unwrap_or("expansion").to_string()
}

fn first_char(value: &str, upper: bool) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(c) if upper => c.to_uppercase().chain(chars).collect(),
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `${x%p}`, `${x%%p}`, `${x#p}`, `${x##p}`.
fn remove_affix(text: &str, pattern: &[PChar], suffix: bool, largest: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let candidates: Vec<usize> = if largest == suffix { (0..=n).collect() } else { (0..=n).rev().collect() };
    for cut in candidates {
        if suffix {
            if pattern::matches(pattern, &chars[cut..]) {
                return chars[..cut].iter().collect();
            }
        } else if pattern::matches(pattern, &chars[..cut]) {
            return chars[cut..].iter().collect();
        }
    }
    text.to_string()
}

/// `${x/p/r}` and its `//`, `/#`, `/%` forms.
fn replace(text: &str, pattern: &[PChar], replacement: &str, kind: &word::SubstringMatchKind) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let longest_at = |start: usize, anchored_end: bool| -> Option<usize> {
        (start..=n).rev().find(|&end| (!anchored_end || end == n) && pattern::matches(pattern, &chars[start..end]))
    };
    match kind {
        word::SubstringMatchKind::Prefix => match longest_at(0, false) {
            Some(end) => format!("{replacement}{}", chars[end..].iter().collect::<String>()),
            None => text.to_string(),
        },
        word::SubstringMatchKind::Suffix => match (0..=n).find(|&s| pattern::matches(pattern, &chars[s..])) {
            Some(start) => format!("{}{replacement}", chars[..start].iter().collect::<String>()),
            None => text.to_string(),
        },
        word::SubstringMatchKind::FirstOccurrence | word::SubstringMatchKind::Anywhere => {
            let all = matches!(kind, word::SubstringMatchKind::Anywhere);
            let mut out = String::new();
            let mut i = 0;
            let mut replaced = false;
            while i < n {
                if (all || !replaced)
                    && let Some(end) = longest_at(i, false).filter(|&e| e > i)
                {
                    out.push_str(replacement);
                    i = end;
                    replaced = true;
                    continue;
                }
                out.push(chars[i]);
                i += 1;
            }
            out
        }
    }
}

/// The text inside backquotes, with the backslashes that quote `$`, `` ` `` and `\` removed.
fn unbackquote(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && matches!(next, '$' | '`' | '\\')
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}
