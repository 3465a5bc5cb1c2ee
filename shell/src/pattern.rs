//! Shell pattern matching (`case`, `${x#pattern}`, pathname expansion): `*`, `?`, `[...]`
//! with ranges, `!`/`^` negation and `[:class:]`.
//!
//! Written here rather than taken from a glob crate because a shell pattern is made of
//! characters that are each quoted or not (`"*".txt` matches a literal star), which glob
//! crates cannot express. This module never touches the filesystem.

/// One pattern character and whether it was quoted (quoted characters match themselves).
pub type PChar = (char, bool);

/// A pattern from plain text where nothing is quoted.
#[cfg(test)]
pub fn unquoted(text: &str) -> Vec<PChar> {
    text.chars().map(|c| (c, false)).collect()
}

/// Whether the pattern has an unquoted `*`, `?` or `[`.
pub fn has_magic(pattern: &[PChar]) -> bool {
    pattern.iter().any(|&(c, quoted)| !quoted && matches!(c, '*' | '?' | '['))
}

/// Whether `text` matches all of `pattern`.
pub fn matches(pattern: &[PChar], text: &[char]) -> bool {
    // Iterative matching with one backtrack point for the last `*` (linear for patterns
    // without brackets, never exponential).
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                ('*', false) => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                ('?', false) => {
                    p += 1;
                    t += 1;
                    continue;
                }
                ('[', false) => {
                    if let Some((matched, next)) = bracket(pattern, p, text[t]) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == '[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                (c, _) if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&pc| pc == ('*', false))
}

/// Match `c` against the bracket expression starting at `pattern[start]` (`[`). Returns
/// whether it matched and the index after `]`, or `None` when the bracket is not closed
/// (then `[` is an ordinary character).
fn bracket(pattern: &[PChar], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(pattern.get(i), Some(('!', false)) | Some(('^', false)));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &(pc, quoted) = pattern.get(i)?;
        if pc == ']' && !quoted && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pc == '[' && !quoted && matches!(pattern.get(i + 1), Some((':', false))) {
            // [:class:]
            let rest: String = pattern[i + 2..].iter().map(|&(ch, _)| ch).collect();
            if let Some(end) = rest.find(":]") {
                let class = &rest[..end];
                if class_matches(class, c) {
                    matched = true;
                }
                i += 2 + class.chars().count() + 2;
                continue;
            }
        }
        if let (Some(('-', false)), Some(&(hi, _))) = (pattern.get(i + 1), pattern.get(i + 2))
            && (hi != ']' || pattern[i + 2].1)
        {
            if pc <= c && c <= hi {
                matched = true;
            }
            i += 3;
            continue;
        }
        if pc == c {
            matched = true;
        }
        i += 1;
    }
}

fn class_matches(class: &str, c: char) -> bool {
    match class {
        "alpha" => c.is_alphabetic(),
        "digit" => c.is_ascii_digit(),
        "alnum" => c.is_alphanumeric(),
        "upper" => c.is_uppercase(),
        "lower" => c.is_lowercase(),
        "space" => c.is_whitespace(),
        "blank" => c == ' ' || c == '\t',
        "punct" => c.is_ascii_punctuation(),
        "xdigit" => c.is_ascii_hexdigit(),
        "cntrl" => c.is_control(),
        "print" => !c.is_control(),
        "graph" => !c.is_control() && c != ' ',
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        matches(&unquoted(pattern), &text.chars().collect::<Vec<_>>())
    }

    #[test]
    fn wildcards_and_brackets() {
        assert!(m("*.txt", "a.txt"));
        assert!(!m("*.txt", "a.txt.gz"));
        assert!(m("a?c", "abc"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[[:digit:]]*", "7up"));
        assert!(m("[]]", "]"));
        assert!(m("[", "["));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(m("", ""));
        assert!(m("*", ""));
    }

    #[test]
    fn quoted_characters_are_literal() {
        let pattern = vec![('*', true), ('.', false), ('t', false)];
        assert!(matches(&pattern, &['*', '.', 't']));
        assert!(!matches(&pattern, &['a', '.', 't']));
    }
}
