//! Parser directives: the `# name=value` lines at the very top of a Dockerfile.
//!
//! Owns the rules for which lines count as directives (`syntax`, `escape`, `check`, only in
//! the header, each at most once) and BuildKit's `DetectSyntax`, which also accepts `//`
//! comments, a leading `#!` line and a file that is one JSON object. It does not act on the
//! values: the parser applies `escape`, the host picks a frontend from `syntax`.

/// The directive names BuildKit knows.
const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// Reads header lines one at a time and stops at the first line that is not a known
/// directive.
#[derive(Debug, Clone)]
pub struct DirectiveParser {
    comment: &'static str,
    seen: Vec<String>,
    done: bool,
}

impl DirectiveParser {
    /// A parser for directives written after `comment` (`#`, or `//` for DetectSyntax).
    pub fn new(comment: &'static str) -> Self {
        DirectiveParser { comment, seen: Vec::new(), done: false }
    }

    /// Look at the next line. `Ok(Some((name, value)))` for a directive, `Ok(None)` when the
    /// line is not one (which ends the header).
    ///
    /// # Errors
    /// A directive that appears twice.
    pub fn parse_line(&mut self, line: &str) -> Result<Option<(String, String)>, String> {
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix(self.comment) else {
            self.done = true;
            return Ok(None);
        };
        let rest = rest.trim_start_matches(char::is_whitespace);
        let Some((name, value)) = split_directive(rest) else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&name) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        self.seen.push(name.clone());
        Ok(Some((name, value.to_string())))
    }
}

/// Go's `\s`: the ASCII whitespace RE2 knows.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn split_directive(s: &str) -> Option<(&str, &str)> {
    let name_len = s.bytes().take_while(u8::is_ascii_alphanumeric).count();
    let name = &s[..name_len];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = s[name_len..].trim_start_matches(is_re_space).strip_prefix('=')?;
    let value = rest.trim_matches(is_re_space);
    if value.is_empty() || value.contains('\n') {
        return None;
    }
    Some((name, value))
}

/// A directive found by [`detect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The value up to the first space (`docker/dockerfile:1`).
    pub reference: String,
    /// The whole value (`docker/dockerfile:1 // opts`).
    pub cmdline: String,
    /// 1-based line (0 for the JSON form... which counts as line 0 after a shebang).
    pub line: usize,
}

/// Find directive `key` the way BuildKit's `DetectSyntax` (`any_format`) or `ParseDirective`
/// does: a leading BOM and `#!` line are skipped; `#` directives, then (for `any_format`)
/// `//` directives, then a JSON object with a string `key`.
pub fn detect(key: &str, src: &str, any_format: bool) -> Option<Detected> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let (src, skipped) = match src.split_once('\n') {
        Some((first, rest)) if first.starts_with("#!") => (rest, 1),
        None if src.starts_with("#!") => ("", 1),
        _ => (src, 0),
    };
    let comments: &[&'static str] = if any_format { &["#", "//"] } else { &["#"] };
    for comment in comments {
        let mut parser = DirectiveParser::new(comment);
        for (i, line) in src.lines().enumerate() {
            match parser.parse_line(line) {
                Ok(Some((name, value))) if name == key => {
                    let reference = value.split(' ').next().unwrap_or_default().to_string();
                    return Some(Detected { reference, cmdline: value, line: i + 1 + skipped });
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    if any_format
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(src)
        && let Some(serde_json::Value::String(value)) = map.get(key)
    {
        return Some(Detected { reference: value.clone(), cmdline: value.clone(), line: skipped });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // GO_TEST_CASES.md P7, TestDirectives.
    #[test]
    fn header_stops_at_unknown_directive() {
        for input in ["#escape=\\\n# key = FOO bar\n\n# smth\n", "# EScape=\\\n# KEY = FOO bar\n\n# smth\n"] {
            let mut p = DirectiveParser::new("#");
            let found: Vec<_> = input.lines().filter_map(|l| p.parse_line(l).unwrap()).collect();
            assert_eq!(found, vec![("escape".to_string(), "\\".to_string())]);
        }
    }

    macro_rules! syntax_case {
        ($name:ident, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let got = detect("syntax", $input, true).map(|d| (d.reference, d.cmdline, d.line));
                let expected: Option<(&str, &str, usize)> = $expected;
                assert_eq!(got, expected.map(|(r, c, l)| (r.to_string(), c.to_string(), l)));
            }
        };
    }

    // TestDetectSyntax and TestDetectSyntaxBOM.
    syntax_case!(
        syntax_with_opts,
        "# syntax = dockerfile:experimental // opts\nFROM busybox\n",
        Some(("dockerfile:experimental", "dockerfile:experimental // opts", 1))
    );
    syntax_case!(
        syntax_after_shebang,
        "#!/bin/sh\n# syntax = dockerfile:experimental\nFROM busybox\n",
        Some(("dockerfile:experimental", "dockerfile:experimental", 2))
    );
    syntax_case!(syntax_after_blank, "#!/bin/sh\n\n# syntax = dockerfile:experimental\n", None);
    syntax_case!(syntax_absent, "FROM busybox\nRUN ls\n", None);
    syntax_case!(syntax_slashes, "//syntax=foo\n//key=value", Some(("foo", "foo", 1)));
    syntax_case!(syntax_slashes_after_shebang, "#!/bin/sh\n//syntax=x", Some(("x", "x", 2)));
    syntax_case!(syntax_json, "{\"syntax\": \"foo\", \"bar\": [\"abc\"]}", Some(("foo", "foo", 0)));
    syntax_case!(syntax_broken_json, "{\"syntax\": \"foo\"", None);
    syntax_case!(syntax_json_then_text, "{\"syntax\": \"foo\"}\n# syntax=bar", None);
    syntax_case!(syntax_bom, "\u{feff}# syntax = myfrontend\nFROM busybox\n", Some(("myfrontend", "myfrontend", 1)));

    // TestParseDirective (check, `#` form only).
    #[test]
    fn check_directive() {
        let d = detect("check", "#check = skip=all // opts\nFROM busybox\n", false).unwrap();
        assert_eq!((d.reference.as_str(), d.cmdline.as_str(), d.line), ("skip=all", "skip=all // opts", 1));
        let d = detect("check", "#!/bin/sh\n# check = skip=all\nFROM busybox\n", false).unwrap();
        assert_eq!((d.reference.as_str(), d.line), ("skip=all", 2));
        assert_eq!(detect("check", "#!/bin/sh\n\n# check = skip=all\n", false), None);
        assert_eq!(detect("check", "FROM busybox\nRUN ls\n", false), None);
        assert_eq!(detect("check", "//check=skip=all\n//key=value", false), None);
    }
}
