//! The line layer of the Dockerfile language: physical lines to an instruction tree.
//!
//! This module owns everything BuildKit's `parser` package decides: parser directives
//! (`# escape=`, `# syntax=`, `# check=`), comments, line continuations with either escape
//! character, empty continuation lines, heredoc bodies, the split of an instruction into
//! keyword, `--flags` and arguments (JSON form or not, per keyword), and the `Dump` format
//! BuildKit's golden files use.
//!
//! It never expands variables, never checks argument counts or flag names (that is
//! [`crate::instructions`]) and never knows about stages.
//!
//! The argument forms of one line are in `line_parsers`, heredoc openers in `heredoc`; the
//! line loop, the node tree and its dump stay here.

use crate::directives::DirectiveParser;
use crate::shell::Lexer;
use crate::strconv::go_quote;

mod heredoc;
mod line_parsers;

pub use heredoc::{chomp_heredoc, heredocs_from_line, parse_heredoc};
pub use line_parsers::parse_words;
use line_parsers::{
    extract_flags, non_empty, parse_health_config, parse_maybe_json, parse_maybe_json_to_list, parse_name_val, values,
    whitespace_list,
};

/// The longest physical line BuildKit accepts, in bytes, newline excluded.
pub const MAX_LINE_BYTES: usize = 65_535;

/// A heredoc attached to an instruction (`RUN <<EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word after quote removal.
    pub name: String,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 when absent.
    pub fd: u32,
    /// False when any part of the delimiter was quoted: the body is then not expanded.
    pub expand: bool,
    /// True for `<<-`: leading tabs are stripped from the body (later) and the terminator.
    pub chomp: bool,
    /// The raw body, every line with its line ending, tabs not stripped.
    pub content: String,
}

/// One argument of a node: a plain value, or (for ONBUILD) a nested instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A value.
    Value(String),
    /// A nested instruction (`ONBUILD RUN ...`).
    Sub(Box<Node>),
}

/// One instruction as the line layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword as written (`RUN`, `run`, `Foo`).
    pub keyword: String,
    /// The `--flags` as written, quotes removed.
    pub flags: Vec<String>,
    /// The arguments after the per-keyword rule.
    pub args: Vec<Arg>,
    /// Whether the arguments were a JSON array.
    pub json: bool,
    /// The whole logical line (continuations joined).
    pub original: String,
    /// First physical line, 1-based.
    pub start_line: usize,
    /// Last physical line (including heredoc bodies), 1-based.
    pub end_line: usize,
    /// Heredoc bodies, in order.
    pub heredocs: Vec<Heredoc>,
    /// Comment lines directly above the instruction.
    pub comments: Vec<String>,
}

impl Node {
    /// The keyword in lower case, as instructions are matched.
    pub fn lower_keyword(&self) -> String {
        self.keyword.to_ascii_lowercase()
    }

    /// The plain arguments, with a nested instruction flattened into its keyword and
    /// arguments (BuildKit's `nodeArgs`).
    pub fn arg_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        for arg in &self.args {
            match arg {
                Arg::Value(v) => out.push(v.clone()),
                Arg::Sub(node) => {
                    out.push(node.keyword.clone());
                    out.extend(node.arg_values());
                }
            }
        }
        out
    }

    /// The nested instruction of an ONBUILD, if any.
    pub fn sub_node(&self) -> Option<&Node> {
        self.args.iter().find_map(|a| match a {
            Arg::Sub(n) => Some(n.as_ref()),
            Arg::Value(_) => None,
        })
    }

    /// BuildKit's `Dump` of this node.
    pub fn dump(&self) -> String {
        let mut out = self.lower_keyword();
        if !self.flags.is_empty() {
            out.push_str(" [");
            let quoted: Vec<String> = self.flags.iter().map(|f| go_quote(f)).collect();
            out.push_str(&quoted.join(" "));
            out.push(']');
        }
        for arg in &self.args {
            out.push(' ');
            match arg {
                Arg::Value(v) => out.push_str(&go_quote(v)),
                Arg::Sub(node) => {
                    out.push('(');
                    out.push_str(&node.dump());
                    out.push(')');
                }
            }
        }
        out.trim().to_string()
    }

    /// Whether heredocs are looked for on this instruction: RUN, COPY and ADD (also under
    /// ONBUILD), never in JSON form.
    fn can_contain_heredoc(&self) -> bool {
        let node = match (self.lower_keyword().as_str(), self.sub_node()) {
            ("onbuild", Some(sub)) => sub,
            _ => self,
        };
        matches!(node.lower_keyword().as_str(), "run" | "copy" | "add") && !node.json
    }
}

/// A parse warning with the line it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The short text (BuildKit's wording).
    pub short: String,
    /// A longer explanation.
    pub detail: String,
    /// The stable rule name.
    pub rule: &'static str,
    /// 1-based line.
    pub line: usize,
}

/// A directive found in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased name: `syntax`, `escape` or `check`.
    pub name: String,
    /// The value as written.
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

/// The result of parsing a whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseResult {
    /// The instructions, in order.
    pub children: Vec<Node>,
    /// The escape character in effect.
    pub escape: char,
    /// Warnings (empty continuation lines).
    pub warnings: Vec<Warning>,
    /// Directives in the header.
    pub directives: Vec<Directive>,
    /// First line of the first instruction and last line of the last one (BuildKit's root
    /// node range).
    pub lines: (usize, usize),
}

impl ParseResult {
    /// BuildKit's dump of the whole tree, with the trailing newline its golden files have.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for child in &self.children {
            out.push('(');
            out.push_str(&child.dump());
            out.push_str(")\n");
        }
        out
    }
}

/// Why a file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// What is wrong (BuildKit's wording where it has one).
    pub message: String,
    /// First line involved, 1-based (0 when the file has no line).
    pub start_line: usize,
    /// Last line involved.
    pub end_line: usize,
    /// What the user can do.
    pub hint: Option<String>,
}

impl ParseError {
    fn new(message: impl Into<String>, start_line: usize, end_line: usize) -> Self {
        ParseError { message: message.into(), start_line, end_line: end_line.max(start_line), hint: None }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Whitespace as Go's `unicode.IsSpace` sees it (the same set as Rust's).
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// BuildKit's `reWhitespace`: `[\t\v\f\r ]+`.
fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Split on runs of `[\t\v\f\r ]` like Go's `regexp.Split(s, n)`: with `n == 2`, at most two
/// parts. Leading separators produce an empty first part, as in Go.
fn split_token_space(s: &str, limit: Option<usize>) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        if limit.is_some_and(|n| parts.len() + 1 == n) {
            parts.push(rest);
            break;
        }
        match rest.find(is_token_space) {
            Some(start) => {
                let after = rest[start..].find(|c| !is_token_space(c)).map_or(rest.len(), |i| start + i);
                parts.push(&rest[..start]);
                rest = &rest[after..];
            }
            None => {
                parts.push(rest);
                break;
            }
        }
    }
    parts
}

/// Physical lines of the input, each with its line ending (BuildKit's `scanLines`).
fn physical_lines(src: &str) -> Vec<&str> {
    src.split_inclusive('\n').collect()
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start_matches(is_space).starts_with('#')
}

/// Remove a trailing continuation escape (BuildKit's `lineContinuationRegex`): the escape
/// character, optionally followed by blanks, at the end of the line, and either at its start
/// or after a character that is not itself the escape. Returns the line and whether it ends
/// the instruction.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(escape)
        && !before.ends_with(escape)
    {
        return (before, false);
    }
    (line, true)
}

/// Parse a Dockerfile into instructions.
///
/// # Errors
/// The first structural problem: an over-long line, a repeated or invalid directive, a
/// non-string JSON array, `ENV key` without value, an unterminated heredoc, or a file with
/// no instruction.
pub fn parse(src: &str) -> Result<ParseResult, ParseError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines = physical_lines(src);
    for (i, line) in lines.iter().enumerate() {
        if trim_newline(line).len() > MAX_LINE_BYTES {
            return Err(ParseError::new(
                format!("dockerfile line greater than max allowed size of {MAX_LINE_BYTES}"),
                i + 1,
                i + 1,
            )
            .hint("split the line with a trailing backslash, or move the data into a file in the build context"));
        }
    }

    let mut escape = '\\';
    let mut directives = DirectiveParser::new("#");
    let mut found_directives = Vec::new();
    let mut children: Vec<Node> = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut idx = 0usize; // index of the next physical line to read

    // Feed a line (already trimmed as BuildKit does) to the directive parser.
    let mut feed_directive =
        |token: &str, line_no: usize, escape: &mut char, found: &mut Vec<Directive>| -> Result<bool, ParseError> {
            match directives.parse_line(token) {
                Err(message) => Err(ParseError::new(message, line_no, line_no)),
                Ok(Some((name, value))) => {
                    if name == "escape" {
                        if value != "`" && value != "\\" {
                            return Err(ParseError::new(
                                format!("invalid escape token '{value}' does not match ` or \\"),
                                line_no,
                                line_no,
                            )
                            .hint("use `# escape=\\` or `# escape=`` ` ``"));
                        }
                        *escape = value.chars().next().unwrap_or('\\');
                    }
                    found.push(Directive { name, value, line: line_no });
                    Ok(true)
                }
                Ok(None) => Ok(false),
            }
        };

    while idx < lines.len() {
        let raw = lines[idx];
        if is_comment(raw) {
            let text = trim_newline(raw.trim_start_matches(is_space));
            let comment = text[1..].trim_matches(is_space).to_string();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment);
            }
        }
        let token = trim_newline(raw).trim_start_matches(is_space);
        let is_directive = feed_directive(token, idx + 1, &mut escape, &mut found_directives)?;
        if is_directive {
            comments.pop();
        }
        let processed = if is_comment(token) { "" } else { token };
        idx += 1;
        let start_line = idx;
        let (first, mut end_of_line) = trim_continuation(processed, escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        let mut has_empty_continuation = false;
        while !end_of_line && idx < lines.len() {
            let raw = lines[idx];
            let token = trim_newline(raw);
            feed_directive(token, idx + 1, &mut escape, &mut found_directives)?;
            idx += 1;
            if is_comment(raw) {
                continue;
            }
            if token.trim_start_matches(is_space).is_empty() {
                has_empty_continuation = true;
                continue;
            }
            let (part, end) = trim_continuation(token, escape);
            end_of_line = end;
            line.push_str(part);
        }
        if has_empty_continuation {
            warnings.push(Warning {
                short: format!("Empty continuation line found in: {line}"),
                detail: "Empty continuation lines will become errors in a future release".into(),
                rule: "NoEmptyContinuation",
                line: idx,
            });
        }

        let mut node = node_from_line(&line, escape).map_err(|m| ParseError::new(m, start_line, idx))?;
        node.comments = std::mem::take(&mut comments);

        if node.can_contain_heredoc() && line.contains("<<") {
            let heredocs = heredocs_from_line(&line).map_err(|m| ParseError::new(m, start_line, idx))?;
            for mut heredoc in heredocs {
                let mut terminated = false;
                while idx < lines.len() {
                    let body_line = lines[idx];
                    idx += 1;
                    let mut candidate = trim_newline(body_line);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    heredoc.content.push_str(body_line);
                }
                if !terminated {
                    return Err(ParseError::new("unterminated heredoc", start_line, idx)
                        .hint(format!("end the heredoc with a line holding only `{}`", heredoc.name)));
                }
                node.heredocs.push(heredoc);
            }
        }
        node.start_line = start_line;
        node.end_line = idx;
        children.push(node);
    }

    if children.is_empty() {
        return Err(ParseError::new("file with no instructions", idx, idx)
            .hint("a Dockerfile needs at least a FROM instruction"));
    }
    let lines_range = (children[0].start_line, children[children.len() - 1].end_line);
    Ok(ParseResult { children, escape, warnings, directives: found_directives, lines: lines_range })
}

/// Split a logical line into keyword, flags and arguments, and apply the keyword's rule.
fn node_from_line(line: &str, escape: char) -> Result<Node, String> {
    let trimmed = line.trim_matches(is_space);
    let parts = split_token_space(trimmed, Some(2));
    let keyword = parts[0].to_string();
    let (rest, flags) = match parts.get(1) {
        Some(after) => extract_flags(after, escape),
        None => (String::new(), Vec::new()),
    };
    let rest = rest.trim_matches(is_space).to_string();
    let (args, json) = match keyword.to_ascii_lowercase().as_str() {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(&rest)?,
        "arg" => (values(parse_words(&rest, escape)), false),
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(&rest)?,
        "env" => (parse_name_val(&rest, "ENV", escape)?, false),
        "label" => (parse_name_val(&rest, "LABEL", escape)?, false),
        "expose" | "from" => (values(whitespace_list(&rest)), false),
        "healthcheck" => parse_health_config(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (values(non_empty(&rest)), false),
        "onbuild" => {
            if rest.is_empty() {
                (Vec::new(), false)
            } else {
                (vec![Arg::Sub(Box::new(node_from_line(&rest, escape)?))], false)
            }
        }
        // Unknown words parse (with one empty argument) and fail in the instruction layer.
        _ => (vec![Arg::Value(String::new())], false),
    };
    Ok(Node {
        keyword,
        flags,
        args,
        json,
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
        heredocs: Vec::new(),
        comments: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::line_parsers::NOT_STRING_ARRAY;
    use super::*;

    fn dump(src: &str) -> String {
        parse(src).unwrap().dump()
    }

    #[test]
    fn flags_and_double_dash() {
        assert_eq!(dump("COPY --doit=true -- foo /tmp/"), "(copy [\"--doit=true\"] \"foo\" \"/tmp/\")\n");
        assert_eq!(dump("COPY -- foo /tmp/"), "(copy \"foo\" \"/tmp/\")\n");
        assert_eq!(dump("CMD --doit -- [ ]"), "(cmd [\"--doit\"])\n");
        assert_eq!(dump("RUN --x=\"a b\" echo"), "(run [\"--x=a b\"] \"echo\")\n");
        assert_eq!(dump("RUN -x echo"), "(run \"-x echo\")\n");
    }

    #[test]
    fn onbuild_nests() {
        assert_eq!(dump("ONBUILD RUN [\"echo\", \"test\"]"), "(onbuild (run \"echo\" \"test\"))\n");
        assert_eq!(dump("ONBUILD"), "(onbuild)\n");
    }

    #[test]
    fn env_forms() {
        assert_eq!(dump("ENV SCUBA 1 DUBA 3"), "(env \"SCUBA\" \"1 DUBA 3\" \"\")\n");
        assert_eq!(dump("ENV a=b c=\"d e\""), "(env \"a\" \"b\" \"=\" \"c\" \"\\\"d e\\\"\" \"=\")\n");
        assert_eq!(parse("ENV foo").unwrap_err().message, "ENV must have two arguments");
        assert!(parse("ENV a=b c").unwrap_err().message.contains("can't find = in \"c\""));
    }

    #[test]
    fn unknown_words_keep_an_empty_arg() {
        assert_eq!(dump("FOO bar"), "(foo \"\")\n");
    }

    #[test]
    fn json_errors_and_fallbacks() {
        assert_eq!(parse("CMD [\"a\",42]").unwrap_err().message, NOT_STRING_ARRAY);
        assert_eq!(dump("CMD ['a']"), "(cmd \"['a']\")\n");
        assert_eq!(dump("COPY [\"a b\", \"c\"]"), "(copy \"a b\" \"c\")\n");
        assert_eq!(dump("CMD []"), "(cmd)\n");
    }

    #[test]
    fn continuation_rules() {
        assert_eq!(dump("RUN a \\\n  b"), "(run \"a   b\")\n");
        assert_eq!(dump("ENV C trailing\\\\\nRUN x"), "(env \"C\" \"trailing\\\\\\\\\" \"\")\n(run \"x\")\n");
        assert_eq!(dump("RUN a \\\n# c\n\n  b"), "(run \"a   b\")\n");
        assert_eq!(dump("RUN a \\"), "(run \"a\")\n");
        assert_eq!(dump("# escape=`\nRUN a `\n b"), "(run \"a  b\")\n");
    }

    #[test]
    fn empty_continuation_warns_but_comments_do_not() {
        let result = parse("FROM a\nRUN x \\\n\n y\nRUN z \\\n# c\n w\n").unwrap();
        assert_eq!(result.warnings.len(), 1);
        assert_eq!(result.warnings[0].short, "Empty continuation line found in: RUN x  y");
    }

    #[test]
    fn directives_only_at_the_top() {
        let r = parse("# escape=`\n# syntax=docker/dockerfile:1\nFROM a").unwrap();
        assert_eq!(r.escape, '`');
        assert_eq!(r.directives.len(), 2);
        let r = parse("# comment\n# escape=`\nFROM a").unwrap();
        assert_eq!(r.escape, '\\');
        assert!(parse("# escape=x\nFROM a").is_err());
        assert!(
            parse("# escape=\\\n# escape=`\nFROM a").unwrap_err().message.contains("only one escape parser directive")
        );
    }

    #[test]
    fn line_numbers_span_continuations_and_heredocs() {
        let r = parse("\n# c\nFROM a\nRUN a \\\n b\nCOPY <<EOF /x\nhi\nEOF\n\n").unwrap();
        let lines: Vec<_> = r.children.iter().map(|n| (n.start_line, n.end_line)).collect();
        assert_eq!(lines, vec![(3, 3), (4, 5), (6, 8)]);
        assert_eq!(r.lines, (3, 8));
    }

    #[test]
    fn heredoc_bodies() {
        let r = parse("FROM a\nRUN <<-EOF cat\n\thello\n\tEOF\nCOPY <<A <<B /d\n1\nA\n2\nB\n").unwrap();
        assert_eq!(r.children[1].heredocs[0].content, "\thello\n");
        assert!(r.children[1].heredocs[0].chomp);
        assert_eq!(r.children[2].heredocs.len(), 2);
        assert_eq!(r.children[2].heredocs[1].content, "2\n");
        let err = parse("FROM a\nRUN <<EOF\nnever ends\n").unwrap_err();
        assert_eq!((err.message.as_str(), err.start_line), ("unterminated heredoc", 2));
    }

    #[test]
    fn heredoc_words() {
        let h = |w: &str| parse_heredoc(w).unwrap().map(|h| (h.name, h.expand, h.chomp));
        assert_eq!(h("<<EOF"), Some(("EOF".into(), true, false)));
        assert_eq!(h("<<-'EOF'"), Some(("EOF".into(), false, true)));
        assert_eq!(h("<<EO\"F\""), Some(("EOF".into(), false, false)));
        assert_eq!(h("<< EOF"), Some(("EOF".into(), true, false)));
        assert_eq!(h("<<"), None);
        assert_eq!(h("<<<EOF"), None);
        assert_eq!(h("<<EOF sh"), None);
        assert!(parse_heredoc("<<'EOF").is_err());
    }

    #[test]
    fn empty_and_comment_only_files_fail() {
        assert_eq!(parse("").unwrap_err().message, "file with no instructions");
        assert!(parse("# a\n\n# b\n").is_err());
    }

    #[test]
    fn long_lines_fail() {
        let long = format!("FROM a\nLABEL x={}\n", "a".repeat(MAX_LINE_BYTES));
        assert_eq!(parse(&long).unwrap_err().message, "dockerfile line greater than max allowed size of 65535");
        let ok = format!("FROM a\nLABEL x={}\n", "a".repeat(MAX_LINE_BYTES - "LABEL x=".len()));
        assert!(parse(&ok).is_ok());
    }
}
