//! Earthfile text to lines: target headers and statements made of words, the way Earthly's
//! lexer (`ast/parser/EarthLexer.g4`) cuts them.
//!
//! Owns the character-level rules: indentation, comment lines, `# comment` after whitespace,
//! line continuations (`\` at the end of a line, which also swallows the blank and comment
//! lines that follow it), double and single quotes (both may span lines and take `\`
//! escapes), `$( ... )` shell-outs kept as one word, and the `KEY=value` form of ARG, ENV,
//! LET and SET, whose value is the rest of the line. Every word keeps its quotes and escapes
//! exactly as written (continuations removed): what they mean is decided later, per command.
//!
//! It knows no commands beyond the few keywords that are two words long (`SAVE ARTIFACT`),
//! and it never expands a variable.

use kiln_ir::{Diagnostic, Position, Span};

/// One word of a statement, as written (quotes and escapes kept, continuations removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The text.
    pub text: String,
    /// Where it is, first to last character.
    pub span: Span,
}

/// One command line (continuations joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The command keyword as written: `RUN`, `SAVE ARTIFACT`, or whatever the line starts with.
    pub keyword: String,
    /// Where the keyword is.
    pub keyword_span: Span,
    /// The words after the keyword. For ARG, ENV, LET and SET with a `=`, only the words
    /// before it (flags and the name).
    pub words: Vec<Word>,
    /// For ARG, ENV, LET and SET: everything after the first `=`, as one word.
    pub assignment: Option<Word>,
    /// Whether the line starts with whitespace.
    pub indented: bool,
    /// From the keyword to the last character of the statement.
    pub span: Span,
}

impl Statement {
    /// The statement on one line, as written: keyword and words separated by single spaces.
    pub fn text(&self) -> String {
        let mut out = self.keyword.clone();
        for w in &self.words {
            out.push(' ');
            out.push_str(&w.text);
        }
        if let Some(value) = &self.assignment {
            out.push('=');
            out.push_str(&value.text);
        }
        out
    }
}

/// A line of the file that matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `name:` at the start of a line: a target (lower-case first letter) or a function
    /// (`UPPER_CASE:`).
    Header {
        /// The name, without the colon.
        name: String,
        /// Whether the name is all upper case (a FUNCTION or COMMAND).
        function: bool,
        /// The name and its colon.
        span: Span,
    },
    /// A command.
    Statement(Statement),
}

/// Keywords made of two words, as Earthly's lexer spells them.
const COMPOUND: [(&str, &str); 6] = [
    ("SAVE", "ARTIFACT"),
    ("SAVE", "IMAGE"),
    ("GIT", "CLONE"),
    ("FROM", "DOCKERFILE"),
    ("WITH", "DOCKER"),
    ("ELSE", "IF"),
];

/// Commands whose arguments are `[flags] NAME=value`, where the value runs to the end of the line.
const KEY_VALUE: [&str; 4] = ["ARG", "ENV", "LET", "SET"];

/// Split the file into target headers and statements.
///
/// # Errors
/// An unterminated quote or `$(`, with the place it starts.
pub fn lex(text: &str) -> Result<Vec<Item>, Diagnostic> {
    let mut lexer = Lexer::new(text);
    let mut items = Vec::new();
    while lexer.i < lexer.chars.len() {
        if let Some(item) = lexer.line()? {
            items.push(item);
        }
    }
    Ok(items)
}

/// How deeply `$( ... )` may nest (quotes inside them included).
const MAX_NESTING: usize = 64;

struct Lexer {
    chars: Vec<char>,
    /// The position of each character, plus one past the end.
    pos: Vec<Position>,
    i: usize,
    /// The current `$( ... )` nesting.
    depth: usize,
}

impl Lexer {
    fn new(text: &str) -> Self {
        // A CR before LF is part of the line break; a lone CR stays an ordinary character.
        let mut chars: Vec<char> = Vec::with_capacity(text.len());
        let raw: Vec<char> = text.chars().collect();
        for (k, &c) in raw.iter().enumerate() {
            if c == '\r' && raw.get(k + 1) == Some(&'\n') {
                continue;
            }
            chars.push(c);
        }
        let mut pos = Vec::with_capacity(chars.len() + 1);
        let (mut line, mut column) = (1u32, 1u32);
        for &c in &chars {
            pos.push(Position { line, column });
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        pos.push(Position { line, column });
        Lexer { chars, pos, i: 0, depth: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(k).copied()
    }

    fn at_eol(&self) -> bool {
        matches!(self.peek(), None | Some('\n'))
    }

    fn span(&self, first: usize, last: usize) -> Span {
        Span { start: self.pos[first], end: self.pos[last.max(first)] }
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.i += 1;
        }
    }

    fn skip_to_eol(&mut self) {
        while !self.at_eol() {
            self.i += 1;
        }
    }

    /// Consume the line break ending the current line, if any.
    fn end_line(&mut self) {
        self.skip_to_eol();
        if self.peek() == Some('\n') {
            self.i += 1;
        }
    }

    /// If a line continuation starts at `k` (a backslash, optional blanks and comment, then
    /// the end of the line), where the statement goes on: after the line break and any blank
    /// or comment-only lines that follow it.
    fn continuation_at(&self, k: usize) -> Option<usize> {
        if self.peek_at(k) != Some('\\') {
            return None;
        }
        let mut j = k + 1;
        while matches!(self.peek_at(j), Some(' ' | '\t')) {
            j += 1;
        }
        if self.peek_at(j) == Some('#') {
            while !matches!(self.peek_at(j), None | Some('\n')) {
                j += 1;
            }
        }
        match self.peek_at(j) {
            None => return Some(j),
            Some('\n') => j += 1,
            Some(_) => return None,
        }
        // Blank and comment-only lines are part of the continuation.
        loop {
            let mut m = j;
            while matches!(self.peek_at(m), Some(' ' | '\t')) {
                m += 1;
            }
            match self.peek_at(m) {
                Some('\n') => j = m + 1,
                Some('#') => {
                    while !matches!(self.peek_at(m), None | Some('\n')) {
                        m += 1;
                    }
                    j = if self.peek_at(m) == Some('\n') { m + 1 } else { m };
                }
                None => return Some(m),
                Some(_) => return Some(j),
            }
        }
    }

    /// One physical line (or more, for a continued statement).
    fn line(&mut self) -> Result<Option<Item>, Diagnostic> {
        let start = self.i;
        self.skip_blanks();
        let indented = self.i > start;
        if self.at_eol() {
            self.end_line();
            return Ok(None);
        }
        if self.peek() == Some('#') {
            self.end_line();
            return Ok(None);
        }
        if !indented && let Some(header) = self.header() {
            return Ok(Some(header));
        }
        self.statement(indented).map(|s| Some(Item::Statement(s)))
    }

    /// `name:` alone on an unindented line (a comment may follow).
    fn header(&mut self) -> Option<Item> {
        let start = self.i;
        let first = self.peek()?;
        let function = first.is_ascii_uppercase();
        if !first.is_ascii_alphabetic() {
            return None;
        }
        let mut j = start + 1;
        while let Some(c) = self.peek_at(j) {
            let ok = if function {
                c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.' || c == '_'
            } else {
                c.is_ascii_alphanumeric() || c == '.' || c == '-'
            };
            if !ok {
                break;
            }
            j += 1;
        }
        if self.peek_at(j) != Some(':') {
            return None;
        }
        let colon = j;
        let mut k = j + 1;
        while matches!(self.peek_at(k), Some(' ' | '\t')) {
            k += 1;
        }
        if !matches!(self.peek_at(k), None | Some('\n') | Some('#')) {
            return None;
        }
        let name: String = self.chars[start..colon].iter().collect();
        let span = self.span(start, colon);
        self.i = k;
        self.end_line();
        Some(Item::Header { name, function, span })
    }

    /// A bare token: the characters up to a blank, a line break or a backslash.
    fn bare(&self, from: usize) -> usize {
        let mut j = from;
        while let Some(c) = self.peek_at(j) {
            if matches!(c, ' ' | '\t' | '\n' | '\\') {
                break;
            }
            j += 1;
        }
        j
    }

    fn statement(&mut self, indented: bool) -> Result<Statement, Diagnostic> {
        let kw_start = self.i;
        let mut kw_end = self.bare(kw_start);
        let mut keyword: String = self.chars[kw_start..kw_end].iter().collect();
        // Two-word keywords: SAVE ARTIFACT, GIT CLONE, ...
        if COMPOUND.iter().any(|(first, _)| *first == keyword) {
            let mut j = kw_end;
            while matches!(self.peek_at(j), Some(' ' | '\t')) {
                j += 1;
            }
            let end = self.bare(j);
            let next: String = self.chars[j..end].iter().collect();
            if j > kw_end && COMPOUND.iter().any(|(f, s)| *f == keyword && *s == next) {
                keyword = format!("{keyword} {next}");
                kw_end = end;
            }
        }
        let keyword_span = self.span(kw_start, kw_end.saturating_sub(1).max(kw_start));
        self.i = kw_end;
        let key_value = KEY_VALUE.contains(&keyword.as_str());
        let mut words = Vec::new();
        let mut assignment = None;
        let mut last = kw_end.saturating_sub(1).max(kw_start);
        loop {
            // Blanks and continuations separate words.
            loop {
                match self.peek() {
                    Some(' ' | '\t') => self.i += 1,
                    Some('\\') => match self.continuation_at(self.i) {
                        Some(next) => self.i = next,
                        None => break,
                    },
                    _ => break,
                }
            }
            if self.at_eol() {
                self.end_line();
                break;
            }
            if self.peek() == Some('#') {
                // A comment: `#` after whitespace runs to the end of the line.
                self.end_line();
                break;
            }
            if key_value && assignment.is_none() && self.peek() == Some('=') {
                let eq = self.i;
                self.i += 1;
                let value = self.value(eq)?;
                if !value.text.is_empty() {
                    last = self.index_of(value.span.end).unwrap_or(eq);
                } else {
                    last = eq;
                }
                assignment = Some(value);
                break;
            }
            let word = self.word(key_value && assignment.is_none())?;
            last = self.index_of(word.span.end).unwrap_or(last);
            words.push(word);
        }
        let span = Span { start: self.pos[kw_start], end: self.pos[last] };
        Ok(Statement { keyword, keyword_span, words, assignment, indented, span })
    }

    /// The index of the character at `p` (positions are increasing, so a binary search works).
    fn index_of(&self, p: Position) -> Option<usize> {
        self.pos[..self.chars.len()].binary_search(&p).ok()
    }

    /// The value after `=` in ARG/ENV/LET/SET: the rest of the statement, inner blanks kept.
    fn value(&mut self, eq: usize) -> Result<Word, Diagnostic> {
        let mut text = String::new();
        let mut blanks = String::new();
        let mut first: Option<Position> = None;
        let mut end = self.pos[eq];
        loop {
            match self.peek() {
                None | Some('\n') => {
                    self.end_line();
                    break;
                }
                Some(c @ (' ' | '\t')) => {
                    blanks.push(c);
                    self.i += 1;
                }
                Some('\\') if self.continuation_at(self.i).is_some() => {
                    self.i = self.continuation_at(self.i).unwrap_or(self.i + 1);
                    self.skip_blanks();
                }
                Some('#') if !blanks.is_empty() => {
                    self.end_line();
                    break;
                }
                Some(_) => {
                    if first.is_some() {
                        text.push_str(&blanks);
                    }
                    blanks.clear();
                    let w = self.word(false)?;
                    first.get_or_insert(w.span.start);
                    end = w.span.end;
                    text.push_str(&w.text);
                }
            }
        }
        let start = first.unwrap_or(self.pos[eq]);
        Ok(Word { text, span: Span { start, end } })
    }

    /// One word. With `stop_at_eq`, an unquoted `=` ends it (the key of `KEY=value`).
    fn word(&mut self, stop_at_eq: bool) -> Result<Word, Diagnostic> {
        let start = self.i;
        let mut last = start;
        let mut text = String::new();
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' => break,
                '=' if stop_at_eq => break,
                '\\' => {
                    if let Some(next) = self.continuation_at(self.i) {
                        self.i = next;
                        self.skip_blanks();
                        continue;
                    }
                    text.push('\\');
                    last = self.i;
                    self.i += 1;
                    if let Some(n) = self.peek() {
                        text.push(n);
                        last = self.i;
                        self.i += 1;
                    }
                }
                '"' | '\'' => {
                    self.quoted(c, &mut text)?;
                    last = self.i - 1;
                }
                '$' if self.peek_at(self.i + 1) == Some('(') => {
                    self.shell_out(&mut text)?;
                    last = self.i - 1;
                }
                _ => {
                    text.push(c);
                    last = self.i;
                    self.i += 1;
                }
            }
        }
        Ok(Word { text, span: self.span(start, last) })
    }

    /// A quoted part, quotes included; it may span lines.
    fn quoted(&mut self, quote: char, text: &mut String) -> Result<(), Diagnostic> {
        let open = self.i;
        text.push(quote);
        self.i += 1;
        loop {
            match self.peek() {
                None => {
                    let what = if quote == '"' { "double" } else { "single" };
                    return Err(Diagnostic::error(
                        format!("unterminated {what} quote: the {what} quote here is never closed"),
                        Some(self.span(open, open)),
                    )
                    .with_hint(format!("close it with a matching {quote}, or escape it with a backslash"))
                    .with_code("unterminated-quote"));
                }
                Some('\\') => {
                    if let Some(next) = self.continuation_at(self.i) {
                        self.i = next;
                        self.skip_blanks();
                        continue;
                    }
                    text.push('\\');
                    self.i += 1;
                    if let Some(n) = self.peek() {
                        text.push(n);
                        self.i += 1;
                    }
                }
                Some('$') if quote == '"' && self.peek_at(self.i + 1) == Some('(') => self.shell_out(text)?,
                Some(c) => {
                    text.push(c);
                    self.i += 1;
                    if c == quote {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// `$( ... )`, nested ones and quotes included, as one part of a word.
    fn shell_out(&mut self, text: &mut String) -> Result<(), Diagnostic> {
        let open = self.i;
        if self.depth >= MAX_NESTING {
            return Err(Diagnostic::error(
                format!("$( ... ) nests deeper than {MAX_NESTING}"),
                Some(self.span(open, open + 1)),
            )
            .with_hint("simplify the command")
            .with_code("too-deep"));
        }
        self.depth += 1;
        let result = self.shell_out_body(text, open);
        self.depth -= 1;
        result
    }

    fn shell_out_body(&mut self, text: &mut String, open: usize) -> Result<(), Diagnostic> {
        text.push_str("$(");
        self.i += 2;
        loop {
            match self.peek() {
                None | Some('\n') => {
                    return Err(Diagnostic::error(
                        "unterminated $( ... ): the command substitution here has no closing parenthesis",
                        Some(self.span(open, open + 1)),
                    )
                    .with_hint("close it with ), or end the line with \\ to continue it")
                    .with_code("unterminated-quote"));
                }
                Some(')') => {
                    text.push(')');
                    self.i += 1;
                    return Ok(());
                }
                Some('\\') => {
                    if let Some(next) = self.continuation_at(self.i) {
                        self.i = next;
                        text.push(' ');
                        self.skip_blanks();
                        continue;
                    }
                    text.push('\\');
                    self.i += 1;
                    if let Some(n) = self.peek() {
                        text.push(n);
                        self.i += 1;
                    }
                }
                Some(q @ ('"' | '\'')) => self.quoted(q, text)?,
                Some('$') if self.peek_at(self.i + 1) == Some('(') => self.shell_out(text)?,
                Some(c) => {
                    text.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(text: &str) -> Vec<Statement> {
        lex(text)
            .unwrap()
            .into_iter()
            .filter_map(|i| match i {
                Item::Statement(s) => Some(s),
                Item::Header { .. } => None,
            })
            .collect()
    }

    fn words(s: &Statement) -> Vec<&str> {
        s.words.iter().map(|w| w.text.as_str()).collect()
    }

    fn at(line: u32, column: u32) -> Position {
        Position { line, column }
    }

    #[test]
    fn headers_and_statements() {
        let items = lex("VERSION 0.8\nFROM alpine\n\nbuild:  # the build\n    RUN echo hi\nHELPER:\n").unwrap();
        assert_eq!(items.len(), 5);
        assert!(matches!(&items[2], Item::Header { name, function: false, .. } if name == "build"));
        assert!(matches!(&items[4], Item::Header { name, function: true, .. } if name == "HELPER"));
        let Item::Statement(run) = &items[3] else { panic!() };
        assert_eq!(run.keyword, "RUN");
        assert!(run.indented);
        assert_eq!(run.span, Span { start: at(5, 5), end: at(5, 15) });
        assert_eq!(run.words[1].span, Span { start: at(5, 14), end: at(5, 15) });
    }

    #[test]
    fn compound_keywords() {
        let s = statements("SAVE ARTIFACT out/app AS LOCAL app\nSAVE  IMAGE x\nSAVE x\n");
        assert_eq!(s[0].keyword, "SAVE ARTIFACT");
        assert_eq!(words(&s[0]), ["out/app", "AS", "LOCAL", "app"]);
        assert_eq!(s[1].keyword, "SAVE IMAGE");
        assert_eq!(s[2].keyword, "SAVE");
    }

    #[test]
    fn quotes_escapes_and_shell_outs_stay_in_one_word() {
        let s = statements(r#"RUN echo "a b" 'c d' e\ f $(date +%s) "$(echo "x y")" x#y"#);
        assert_eq!(words(&s[0]), ["echo", "\"a b\"", "'c d'", "e\\ f", "$(date +%s)", "\"$(echo \"x y\")\"", "x#y"]);
    }

    #[test]
    fn comments_after_whitespace() {
        let s = statements("RUN echo hi # a comment\nRUN echo a#b\n# whole line\n  # indented comment\n");
        assert_eq!(words(&s[0]), ["echo", "hi"]);
        assert_eq!(words(&s[1]), ["echo", "a#b"]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn continuations_join_lines_and_skip_comment_lines() {
        let text = "RUN echo a \\\n    # a comment inside\n\n    b\\\n    c \\ # trailing comment\n    d\nRUN next\n";
        let s = statements(text);
        assert_eq!(words(&s[0]), ["echo", "a", "bc", "d"]);
        assert_eq!(s[0].span, Span { start: at(1, 1), end: at(6, 5) });
        assert_eq!(s[1].span.start, at(7, 1));
    }

    #[test]
    fn key_value_commands_keep_the_rest_of_the_line() {
        let s = statements("ARG --global NAME=a b  c # comment\nENV K V W\nARG EMPTY=\nLET x = \"q r\"\n");
        assert_eq!(words(&s[0]), ["--global", "NAME"]);
        assert_eq!(s[0].assignment.as_ref().unwrap().text, "a b  c");
        assert_eq!(words(&s[1]), ["K", "V", "W"]);
        assert!(s[1].assignment.is_none());
        assert_eq!(s[2].assignment.as_ref().unwrap().text, "");
        assert_eq!(words(&s[3]), ["x"]);
        assert_eq!(s[3].assignment.as_ref().unwrap().text, "\"q r\"");
    }

    #[test]
    fn quotes_may_span_lines() {
        let s = statements("RUN echo \"a\nb\"\nRUN x\n");
        assert_eq!(words(&s[0]), ["echo", "\"a\nb\""]);
        assert_eq!(s[0].span.end, at(2, 2));
        assert_eq!(s[1].keyword, "RUN");
    }

    #[test]
    fn unterminated_quotes_point_at_the_quote() {
        let e = lex("FROM alpine\nRUN echo 'oops\n").unwrap_err();
        assert_eq!(e.span.unwrap().start, at(2, 10));
        let e = lex("RUN echo $(date\n").unwrap_err();
        assert_eq!(e.span.unwrap().start, at(1, 10));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("RUN {}{}\n", "$(".repeat(100), ")".repeat(100));
        assert_eq!(lex(&deep).unwrap_err().code.as_deref(), Some("too-deep"));
        let fine = format!("RUN {}{}\n", "$(".repeat(10), ")".repeat(10));
        assert!(lex(&fine).is_ok());
    }

    #[test]
    fn columns_count_characters_and_crlf_is_a_line_break() {
        let s = statements("RUN echo \"héllo\" x\r\nRUN y\r\n");
        assert_eq!(s[0].words[2].span.start, at(1, 18));
        assert_eq!(s[1].span.start, at(2, 1));
    }

    #[test]
    fn header_needs_column_one_and_nothing_after_it() {
        let items = lex("  build:\nbuild: x\n").unwrap();
        assert!(items.iter().all(|i| matches!(i, Item::Statement(_))));
    }
}
