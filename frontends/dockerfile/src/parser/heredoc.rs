//! Heredoc openers (`<<EOF`, `<<-'EOF'`, `3<<EOF`) in an instruction's words, and the
//! leading-tab chomp of `<<-`, as BuildKit's `parser` reads them.
//!
//! It owns recognising heredocs; it must never read their bodies from the file (that is
//! `parser`'s line loop).

use super::*;

/// Parse one word as a heredoc opener (`<<EOF`, `3<<-'EOF'`, `<< EOF`). `Ok(None)` when the
/// word is not a heredoc.
///
/// # Errors
/// An unbalanced quote in the delimiter.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    // ^(\d*)<<(-?)\s*([^<]*)$
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches(['\t', '\n', '\x0c', '\r', ' ']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = word[..digits].parse::<u32>().unwrap_or(0);
    let mut lexer = Lexer::new('\\');
    lexer.skip_unset_env = true;
    let env = crate::shell::EnvList::new(&[]);
    let words = lexer.process_words(rest, &env).map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    lexer.raw_quotes = true;
    let raw = lexer.process_words(rest, &env).map_err(|e| e.to_string())?;
    if raw.len() != words.len() {
        return Err(format!("internal lexing of heredoc produced inconsistent results: {rest}"));
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let name = words.into_iter().next().unwrap_or_default();
    let expand = quotes(&name) == quotes(&raw[0]);
    Ok(Some(Heredoc { name, fd, expand, chomp, content: String::new() }))
}

/// The heredocs a logical line opens, in order.
///
/// # Errors
/// A heredoc word with an unbalanced quote.
pub fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut lexer = Lexer::new('\\');
    lexer.raw_quotes = true;
    lexer.raw_escapes = true;
    lexer.skip_unset_env = true;
    let env = crate::shell::EnvList::new(&[]);
    let words = lexer.process_words(line, &env).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Strip leading tabs from every line of a heredoc body (`<<-`).
pub fn chomp_heredoc(content: &str) -> String {
    content.split_inclusive('\n').map(|line| line.trim_start_matches('\t')).collect()
}
