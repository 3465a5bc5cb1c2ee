//! The pattern language of `${V#pat}`, `${V%pat}` and `${V/pat/rep}` (`*`, `?`, `\`
//! escapes, no bracket expressions), and matching as a table walk whose work is capped, so
//! that no pattern backtracks exponentially.
//!
//! It owns matching one pattern against one value; it must never read variables or expand
//! words (that is the scanner's).

use super::*;

/// One element of a shell pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    Literal(char),
    /// `?`: exactly one character.
    One,
    /// `*`: any run of characters.
    Any,
}

/// Parse the pattern language of `${V#pat}` and `${V/pat/rep}`: `*`, `?`, and `\` escaping
/// `*`, `?`, `\` (and `}` or `/`, which only needed escaping to stay inside the `${}`).
/// There are no bracket expressions: `[` is literal.
pub(super) fn parse_pattern(pattern: &str) -> Step<Vec<Token>> {
    let invalid = |detail: String| format!("invalid pattern ({pattern}) in substitution: {detail}");
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(ch) = chars.next() {
        let token = match ch {
            '*' => Token::Any,
            '?' => Token::One,
            '\\' => match chars.peek().copied() {
                Some(c @ ('}' | '/')) => {
                    chars.next();
                    Token::Literal(c)
                }
                Some(c @ ('*' | '?' | '\\')) => {
                    chars.next();
                    Token::Literal(c)
                }
                Some(c) => return Err(invalid(format!("invalid escape '\\{c}'"))),
                None => return Err(invalid("a trailing '\\' escapes nothing".into())),
            },
            c => Token::Literal(c),
        };
        // `**` means the same as `*`; folding it keeps the match table small.
        if !(token == Token::Any && tokens.last() == Some(&Token::Any)) {
            tokens.push(token);
        }
    }
    Ok(tokens)
}

/// Which (pattern suffix, text position) pairs can still match: row `i`, column `j` is true
/// when `tokens[i..]` matches some prefix of `text[j..]`. Walking it picks exactly the match a
/// backtracking regex engine would (greedy or lazy stars), in O(pattern × text) time.
pub(super) struct MatchTable<'t> {
    tokens: &'t [Token],
    width: usize,
    cells: Vec<bool>,
}

impl<'t> MatchTable<'t> {
    pub(super) fn build(tokens: &'t [Token], text: &[char]) -> Step<Self> {
        let width = text.len() + 1;
        let cells_needed = (tokens.len() + 1).saturating_mul(width);
        if cells_needed > MAX_PATTERN_CELLS {
            return Err(format!(
                "pattern of {} characters against a value of {} characters is too large to match",
                tokens.len(),
                text.len()
            ));
        }
        let mut cells = vec![false; cells_needed];
        let last = tokens.len() * width;
        cells[last..].fill(true);
        for i in (0..tokens.len()).rev() {
            let (row, below) = cells[i * width..].split_at_mut(width);
            match tokens[i] {
                Token::Any => {
                    let mut any = false;
                    for j in (0..width).rev() {
                        any |= below[j];
                        row[j] = any;
                    }
                }
                Token::One | Token::Literal(_) => {
                    for j in 0..text.len() {
                        let fits = match tokens[i] {
                            Token::Literal(c) => text[j] == c,
                            _ => true,
                        };
                        row[j] = fits && below[j + 1];
                    }
                }
            }
        }
        Ok(MatchTable { tokens, width, cells })
    }

    pub(super) fn matches_at(&self, token: usize, pos: usize) -> bool {
        self.cells[token * self.width + pos]
    }

    /// The end of the match that starts at `start` (which must match).
    pub(super) fn walk(&self, start: usize, greedy: bool) -> usize {
        let mut pos = start;
        for (i, token) in self.tokens.iter().enumerate() {
            pos = match token {
                Token::Any => {
                    let candidates = pos..self.width;
                    let ok = |&k: &usize| self.matches_at(i + 1, k);
                    let chosen = if greedy { candidates.rev().find(ok) } else { candidates.clone().find(ok) };
                    chosen.expect("the table said the rest matches")
                }
                Token::One | Token::Literal(_) => pos + 1,
            };
        }
        pos
    }
}

pub(super) fn trim_prefix(tokens: &[Token], value: &str, greedy: bool) -> Step<String> {
    let text: Vec<char> = value.chars().collect();
    let table = MatchTable::build(tokens, &text)?;
    if !table.matches_at(0, 0) {
        return Ok(value.to_string());
    }
    let end = table.walk(0, greedy);
    Ok(text[end..].iter().collect())
}

/// Suffix removal is prefix removal on the reversed value with the reversed pattern, which is
/// how "shortest match from the right" becomes a leftmost search.
pub(super) fn trim_suffix(tokens: &[Token], value: &str, greedy: bool) -> Step<String> {
    let reversed_tokens: Vec<Token> = tokens.iter().rev().copied().collect();
    let reversed_value: String = value.chars().rev().collect();
    Ok(trim_prefix(&reversed_tokens, &reversed_value, greedy)?.chars().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern language (S4 `TestConvertShellPatternToRegex`).
    #[test]
    fn pattern_language() {
        use Token::*;
        assert_eq!(parse_pattern("*").unwrap(), vec![Any]);
        assert_eq!(parse_pattern("?").unwrap(), vec![One]);
        assert_eq!(parse_pattern("\\*").unwrap(), vec![Literal('*')]);
        let lits: Vec<Token> = "(()[]{}^$.*?|\\".chars().map(Literal).collect();
        assert_eq!(parse_pattern("(()[]{\\}^$.\\*\\?|\\\\").unwrap(), lits);
        for bad in ["\\", "\\x", "\\\\\\"] {
            assert!(parse_pattern(bad).is_err(), "{bad:?}");
        }
    }
}
