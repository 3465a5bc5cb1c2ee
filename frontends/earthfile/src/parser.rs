//! Lines to the shape of an Earthfile: `VERSION`, the base recipe, targets and functions, and
//! the blocks (`IF ... END`, `FOR`, `TRY`, `WAIT`, `WITH DOCKER`) inside their recipes.
//!
//! Owns the file-level rules Earthly's grammar (`ast/parser/EarthParser.g4`) enforces:
//! VERSION first, base-recipe commands before the first target, recipe commands indented,
//! target names unique, every block closed by END. It does not look inside commands (see
//! [`crate::command`]); a block is kept whole, header and span, because kiln supports none of
//! them and reports each as one diagnostic.

use std::collections::BTreeMap;

use kiln_ir::{Diagnostic, Span};

use crate::lexer::{self, Item, Statement, Word};

/// The Earthfile versions kiln reads.
pub const VERSIONS: [&str; 3] = ["0.6", "0.7", "0.8"];

/// A parsed Earthfile.
#[derive(Debug, Clone)]
pub struct Earthfile {
    /// The VERSION statement.
    pub version: Version,
    /// The commands before the first target.
    pub base: Vec<Node>,
    /// Targets and functions, in file order.
    pub targets: Vec<Target>,
}

/// `VERSION [--flags] 0.x`.
#[derive(Debug, Clone)]
pub struct Version {
    /// `0.6`, `0.7` or `0.8`.
    pub number: String,
    /// Feature flags, as written.
    pub flags: Vec<Word>,
    /// The statement.
    pub span: Span,
}

impl Version {
    /// Whether ARGs of the base recipe are global without `--global` (VERSION 0.6 without
    /// `--explicit-global`).
    pub fn implicit_globals(&self) -> bool {
        self.number == "0.6" && !self.flags.iter().any(|f| f.text == "--explicit-global")
    }
}

/// A target (`name:`) or a function (`NAME:`) with its recipe.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name, as written.
    pub name: String,
    /// Whether it is a FUNCTION/COMMAND (upper-case name), called with DO.
    pub function: bool,
    /// The header line.
    pub span: Span,
    /// The recipe.
    pub body: Vec<Node>,
}

/// One element of a recipe.
#[derive(Debug, Clone)]
pub enum Node {
    /// A command.
    Command(Statement),
    /// A block from its opening statement to its END, kept whole.
    Block(Block),
}

/// `IF`/`FOR`/`TRY`/`WAIT`/`WITH DOCKER` ... `END`.
#[derive(Debug, Clone)]
pub struct Block {
    /// The opening statement.
    pub header: Statement,
    /// From the opening keyword to the end of END.
    pub span: Span,
}

const OPENERS: [&str; 5] = ["IF", "FOR", "TRY", "WAIT", "WITH DOCKER"];
const MIDDLES: [&str; 4] = ["ELSE", "ELSE IF", "CATCH", "FINALLY"];

fn error(message: impl Into<String>, span: Option<Span>, hint: impl Into<String>, code: &str) -> Diagnostic {
    Diagnostic::error(message, span).with_hint(hint).with_code(code)
}

/// Parse the text of an Earthfile.
///
/// # Errors
/// Every structural problem found, in file order.
pub fn parse(text: &str) -> Result<Earthfile, Vec<Diagnostic>> {
    let items = lexer::lex(text).map_err(|d| vec![d])?;
    let mut errors = Vec::new();
    let mut iter = items.into_iter().peekable();

    let version = match iter.peek() {
        Some(Item::Statement(s)) if s.keyword == "VERSION" => {
            let Some(Item::Statement(s)) = iter.next() else { unreachable!("peeked a statement") };
            version(&s, &mut errors)
        }
        other => {
            let span = match other {
                Some(Item::Statement(s)) => Some(s.span),
                Some(Item::Header { span, .. }) => Some(*span),
                None => None,
            };
            let message = if other.is_none() {
                "the Earthfile is empty: it has no VERSION and no targets"
            } else {
                "the Earthfile does not start with VERSION"
            };
            errors.push(error(
                message,
                span,
                "add `VERSION 0.8` as its first line (Earthly requires it since 0.7; kiln reads 0.6, 0.7 and 0.8)",
                "missing-version",
            ));
            None
        }
    };

    let mut base = Vec::new();
    let mut targets: Vec<(Target, Vec<Statement>)> = Vec::new();
    let mut base_statements = Vec::new();
    let mut seen: BTreeMap<String, Span> = BTreeMap::new();
    for item in iter {
        match item {
            Item::Header { name, function, span } => {
                if let Some(first) = seen.get(&name) {
                    errors.push(error(
                        format!("duplicate target {}{name}", if function { "" } else { "+" }),
                        Some(span),
                        format!("it is already defined on line {}; rename one of them", first.start.line),
                        "duplicate-target",
                    ));
                } else if name == "base" {
                    errors.push(error(
                        "the target name base is reserved for the base recipe",
                        Some(span),
                        "the commands before the first target are the target +base; rename this target",
                        "duplicate-target",
                    ));
                }
                seen.entry(name.clone()).or_insert(span);
                targets.push((Target { name, function, span, body: Vec::new() }, Vec::new()));
            }
            Item::Statement(s) if s.keyword == "VERSION" => errors.push(error(
                "VERSION must be the first command of the Earthfile",
                Some(s.span),
                "move it to the top of the file, above every other command",
                "misplaced-version",
            )),
            Item::Statement(s) => match targets.last_mut() {
                None => base_statements.push(s),
                Some((target, statements)) => {
                    if s.indented {
                        statements.push(s);
                    } else {
                        errors.push(error(
                            format!(
                                "{} is not indented, so it belongs to no target (it follows the target {}{})",
                                s.keyword,
                                if target.function { "" } else { "+" },
                                target.name
                            ),
                            Some(s.span),
                            "indent the commands of a target; commands of the base recipe go before the first target",
                            "unindented-command",
                        ));
                    }
                }
            },
        }
    }
    base.extend(blocks(base_statements, &mut errors));
    let targets = targets
        .into_iter()
        .map(|(mut target, statements)| {
            target.body = blocks(statements, &mut errors);
            target
        })
        .collect();
    match version {
        Some(version) if errors.is_empty() => Ok(Earthfile { version, base, targets }),
        _ => Err(errors),
    }
}

fn version(s: &Statement, errors: &mut Vec<Diagnostic>) -> Option<Version> {
    let (flags, rest): (Vec<&Word>, Vec<&Word>) = s.words.iter().partition(|w| w.text.starts_with("--"));
    match rest.as_slice() {
        [number] if VERSIONS.contains(&number.text.as_str()) => {
            Some(Version { number: number.text.clone(), flags: flags.into_iter().cloned().collect(), span: s.span })
        }
        [number] => {
            errors.push(error(
                format!("kiln does not read Earthfile version {}", number.text),
                Some(number.span),
                format!("kiln reads versions {}; update the Earthfile to VERSION 0.8", VERSIONS.join(", ")),
                "unsupported-version",
            ));
            None
        }
        _ => {
            errors.push(error(
                "VERSION takes one version number",
                Some(s.span),
                "write VERSION 0.8 (feature flags such as --use-copy-link go before the number)",
                "invalid-version",
            ));
            None
        }
    }
}

/// Group a recipe's statements into commands and blocks.
fn blocks(statements: Vec<Statement>, errors: &mut Vec<Diagnostic>) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut open: Vec<Statement> = Vec::new();
    for s in statements {
        let keyword = s.keyword.as_str();
        if OPENERS.contains(&keyword) {
            open.push(s);
        } else if keyword == "END" {
            match open.pop() {
                None => errors.push(error(
                    "END without a block to end",
                    Some(s.span),
                    "END closes IF, FOR, TRY, WAIT and WITH DOCKER; remove it",
                    "unmatched-end",
                )),
                Some(header) => {
                    if open.is_empty() {
                        let span = Span { start: header.span.start, end: s.span.end };
                        nodes.push(Node::Block(Block { header, span }));
                    }
                }
            }
        } else if MIDDLES.contains(&keyword) && open.is_empty() {
            errors.push(error(
                format!("{keyword} outside a block"),
                Some(s.span),
                "ELSE and ELSE IF belong inside IF ... END, CATCH and FINALLY inside TRY ... END",
                "unmatched-end",
            ));
        } else if open.is_empty() {
            nodes.push(Node::Command(s));
        }
    }
    for header in open.into_iter().rev() {
        errors.push(error(
            format!("{} has no END", header.keyword),
            Some(header.span),
            "close the block with END on a line of its own",
            "unclosed-block",
        ));
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        parse(text).unwrap_err().into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn base_recipe_targets_and_functions() {
        let file =
            parse("VERSION 0.8\nFROM alpine\nARG --global X=1\n\nbuild:\n    RUN a\n\nHELP:\n    FUNCTION\n").unwrap();
        assert_eq!(file.version.number, "0.8");
        assert_eq!(file.base.len(), 2);
        assert_eq!(file.targets.len(), 2);
        assert_eq!(file.targets[0].name, "build");
        assert!(!file.targets[0].function);
        assert!(file.targets[1].function);
    }

    #[test]
    fn version_is_required_first_and_known() {
        assert_eq!(messages("FROM alpine\n"), ["the Earthfile does not start with VERSION"]);
        assert_eq!(messages(""), ["the Earthfile is empty: it has no VERSION and no targets"]);
        assert_eq!(messages("VERSION 0.5\n"), ["kiln does not read Earthfile version 0.5"]);
        assert_eq!(messages("VERSION 0.8\nVERSION 0.8\n"), ["VERSION must be the first command of the Earthfile"]);
        let file = parse("# comment\n\nVERSION --use-copy-link 0.7\n").unwrap();
        assert_eq!(file.version.flags[0].text, "--use-copy-link");
        let d = parse("FROM alpine\n").unwrap_err();
        assert!(d[0].hint.as_deref().unwrap().contains("VERSION 0.8"));
        assert_eq!(d[0].code.as_deref(), Some("missing-version"));
    }

    #[test]
    fn implicit_globals_only_in_0_6() {
        assert!(parse("VERSION 0.6\n").unwrap().version.implicit_globals());
        assert!(!parse("VERSION --explicit-global 0.6\n").unwrap().version.implicit_globals());
        assert!(!parse("VERSION 0.7\n").unwrap().version.implicit_globals());
    }

    #[test]
    fn blocks_are_kept_whole() {
        let file = parse(
            "VERSION 0.8\nt:\n    IF [ -f x ]\n        RUN a\n    ELSE\n        FOR x IN a b\n            RUN b\n        END\n    END\n    RUN c\n",
        )
        .unwrap();
        let body = &file.targets[0].body;
        assert_eq!(body.len(), 2);
        let Node::Block(block) = &body[0] else { panic!() };
        assert_eq!(block.header.keyword, "IF");
        assert_eq!((block.span.start.line, block.span.end.line), (3, 9));
    }

    #[test]
    fn structural_errors() {
        assert_eq!(messages("VERSION 0.8\nt:\n    END\n"), ["END without a block to end"]);
        assert_eq!(messages("VERSION 0.8\nt:\n    WITH DOCKER\n    RUN x\n"), ["WITH DOCKER has no END"]);
        assert_eq!(messages("VERSION 0.8\nt:\n    ELSE\n"), ["ELSE outside a block"]);
        assert_eq!(messages("VERSION 0.8\nt:\n    RUN a\nt:\n"), ["duplicate target +t"]);
        assert_eq!(
            messages("VERSION 0.8\nbase:\n    RUN a\n"),
            ["the target name base is reserved for the base recipe"]
        );
        assert_eq!(
            messages("VERSION 0.8\nt:\n    RUN a\nRUN b\n"),
            ["RUN is not indented, so it belongs to no target (it follows the target +t)"]
        );
    }
}
