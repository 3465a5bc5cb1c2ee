//! Rendering diagnostics for people: `FILE:LINE:COL: error: message`, the source lines with a
//! caret under the place, and the hint.

use kiln_ir::{Diagnostic, Severity};

/// Most source lines shown for one diagnostic.
const MAX_LINES_SHOWN: u32 = 6;

/// Render one diagnostic against the build file's bytes.
pub fn render(file_name: &str, source: &[u8], diagnostic: &Diagnostic) -> String {
    let level = match diagnostic.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut out = match diagnostic.span {
        Some(span) => {
            format!("{file_name}:{}:{}: {level}: {}\n", span.start.line, span.start.column, diagnostic.message)
        }
        None => format!("{file_name}: {level}: {}\n", diagnostic.message),
    };
    if let Some(span) = diagnostic.span {
        let text = String::from_utf8_lossy(source);
        let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
        let last = span.end.line.min(span.start.line + MAX_LINES_SHOWN - 1);
        let width = last.to_string().len();
        for n in span.start.line..=last {
            let Some(line) = lines.get(n as usize - 1) else {
                break;
            };
            out.push_str(&format!("{n:>width$} | {line}\n"));
            if n == span.start.line {
                let start = span.start.column.max(1) as usize - 1;
                let end = if span.end.line == n { span.end.column as usize } else { line.chars().count() };
                let pad: String = line.chars().take(start).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
                let len = end.saturating_sub(start).max(1);
                out.push_str(&format!("{:>width$} | {pad}{}\n", "", "^".repeat(len)));
            }
        }
        if span.end.line > last {
            out.push_str(&format!("{:>width$} | ...\n", ""));
        }
    }
    if let Some(hint) = &diagnostic.hint {
        out.push_str(&format!("hint: {hint}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{Position, Span};

    #[test]
    fn renders_line_caret_and_hint() {
        let d = Diagnostic::error(
            "unknown instruction: FORM",
            Some(Span { start: Position { line: 2, column: 1 }, end: Position { line: 2, column: 4 } }),
        )
        .with_hint("did you mean FROM?");
        let out = render("Dockerfile", b"# c\nFORM alpine\n", &d);
        assert_eq!(
            out,
            "Dockerfile:2:1: error: unknown instruction: FORM\n2 | FORM alpine\n  | ^^^^\nhint: did you mean FROM?\n"
        );
    }

    #[test]
    fn renders_without_span() {
        let d = Diagnostic::warning("something", None);
        assert_eq!(render("Dockerfile", b"", &d), "Dockerfile: warning: something\n");
    }
}
