//! Go's `strconv` as BuildKit's messages and values use it: `Quote` for every quoted word in
//! an error and in the parser's golden dump, `ParseBool` for boolean option values.
//!
//! It owns only these conversions, so the parser, the shell lexer, the instruction and
//! mount parsers and the converter can share them without importing one another. It must
//! never depend on another module of this crate.

/// Go's `strconv.Quote`: the escaping BuildKit's dump uses.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint` for characters at or above U+0080: letters,
/// marks, numbers, punctuation, symbols and the ASCII space are printable; controls, format
/// characters, separators other than space, surrogates and private-use/unassigned code points
/// are not. Rust's std has no general-category tables, so the ranges that matter for text in
/// build files are listed here.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_whitespace() || c.is_control() {
        return false;
    }
    !matches!(u,
        0x00AD // soft hyphen (Cf)
        | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x08E2
        | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F
        | 0xD800..=0xDFFF
        | 0xE000..=0xF8FF
        | 0xFEFF | 0xFFF9..=0xFFFB | 0xFFFE | 0xFFFF
        | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0001 | 0xE0020..=0xE007F
        | 0xF0000..=0x10FFFF
    )
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_matches_strconv() {
        assert_eq!(go_quote("\" \\ / \x08 \x0c \n \r \t \0"), r#""\" \\ / \b \f \n \r \t \x00""#);
        assert_eq!(go_quote("♥ ☃ 한국어"), "\"♥ ☃ 한국어\"");
        assert_eq!(go_quote("\u{7f}\u{200b}\u{feff}"), "\"\\x7f\\u200b\\ufeff\"");
        assert_eq!(go_quote("\u{a0}"), "\"\\u00a0\"");
    }
}
