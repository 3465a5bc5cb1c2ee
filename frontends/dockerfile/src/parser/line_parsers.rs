//! The argument forms of one instruction line, as BuildKit's `line_parsers.go` has them:
//! `--flags` off the front, then per keyword plain words, `name=value` pairs, a JSON array
//! or its shell-form fallback, and HEALTHCHECK's form.
//!
//! It owns the split of one logical line; it must never look at other lines (continuations,
//! heredoc bodies and directives are `parser`'s).

use super::*;

pub(super) fn values(v: Vec<String>) -> Vec<Arg> {
    v.into_iter().map(Arg::Value).collect()
}

pub(super) fn non_empty(rest: &str) -> Vec<String> {
    if rest.is_empty() { Vec::new() } else { vec![rest.to_string()] }
}

pub(super) fn whitespace_list(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_token_space(rest, None).into_iter().map(str::to_string).collect()
}

/// Leading `--flags` of an instruction (BuildKit's `extractBuilderFlags`). Returns the rest of
/// the line and the flags with quotes and escapes removed. A lone `--` ends the flags.
pub(super) fn extract_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    loop {
        let at_end = i >= chars.len();
        if phase == Phase::Spaces {
            if at_end {
                return (String::new(), flags);
            }
            let (pos, ch) = chars[i];
            if is_space(ch) {
                i += 1;
                continue;
            }
            let next_is_dash = chars.get(i + 1).is_some_and(|&(_, c)| c == '-');
            if ch != '-' || !next_is_dash {
                return (line[pos..].to_string(), flags);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                flags.push(word);
            }
            return (String::new(), flags);
        }
        let (pos, ch) = chars[i];
        match phase {
            Phase::Word => {
                if is_space(ch) {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (line[pos..].to_string(), flags);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                } else if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                } else if ch == escape {
                    if let Some(&(_, next)) = chars.get(i + 1) {
                        word.push(next);
                        i += 1;
                    }
                } else {
                    word.push(ch);
                }
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                } else if ch == escape {
                    match chars.get(i + 1) {
                        Some(&(_, next)) => {
                            word.push(next);
                            i += 1;
                        }
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(ch);
                }
            }
            Phase::Spaces => unreachable!("handled above"),
        }
        i += 1;
    }
}

/// Quote-aware word split used by ARG, ENV and LABEL (BuildKit's `parseWords`): quotes and
/// escapes stay in the words.
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    loop {
        let at_end = i >= chars.len();
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space(chars[i]) {
                i += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        let ch = chars[i];
        match phase {
            Phase::Word => {
                if is_space(ch) {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    i += 1;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if i + 1 == chars.len() {
                        // An escape at the very end is dropped.
                        i += 1;
                        continue;
                    }
                    word.push(ch);
                    i += 1;
                    word.push(chars[i]);
                } else {
                    word.push(ch);
                }
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                }
                if ch == escape && quote != '\'' {
                    if i + 1 == chars.len() {
                        phase = Phase::Word;
                        i += 1;
                        continue;
                    }
                    word.push(ch);
                    i += 1;
                    word.push(chars[i]);
                } else {
                    word.push(ch);
                }
            }
            Phase::Spaces => unreachable!("handled above"),
        }
        i += 1;
    }
    words
}

/// ENV and LABEL: the legacy `KEY name value` form or `name=value` pairs, as triples
/// (key, value, separator) like BuildKit's tree.
pub(super) fn parse_name_val(rest: &str, keyword: &str, escape: char) -> Result<Vec<Arg>, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    if !words[0].contains('=') {
        let parts = split_token_space(rest, Some(2));
        if parts.len() < 2 {
            return Err(format!("{keyword} must have two arguments"));
        }
        return Ok(values(vec![parts[0].to_string(), parts[1].to_string(), String::new()]));
    }
    let mut out = Vec::new();
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(format!("Syntax error - can't find = in {}. Must be of the form: name=value", go_quote(&word)));
        };
        out.extend(values(vec![key.to_string(), value.to_string(), "=".to_string()]));
    }
    Ok(out)
}

/// The outcome of trying to read the rest of a line as a JSON array of strings.
enum JsonArgs {
    /// A valid array of strings.
    Strings(Vec<String>),
    /// Not JSON (or not an array): the caller falls back to its non-JSON rule.
    NotJson,
}

pub(super) const NOT_STRING_ARRAY: &str = "when using JSON array syntax, arrays must be comprised of strings only";

fn parse_json(rest: &str) -> Result<JsonArgs, String> {
    let trimmed = rest.trim_start_matches(is_space);
    if !trimmed.starts_with('[') {
        return Ok(JsonArgs::NotJson);
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed) else {
        return Ok(JsonArgs::NotJson);
    };
    let serde_json::Value::Array(items) = value else {
        return Ok(JsonArgs::NotJson);
    };
    items
        .into_iter()
        .map(|item| match item {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(NOT_STRING_ARRAY.to_string()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(JsonArgs::Strings)
}

pub(super) fn parse_maybe_json(rest: &str) -> Result<(Vec<Arg>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    Ok(match parse_json(rest)? {
        JsonArgs::Strings(items) => (values(items), true),
        JsonArgs::NotJson => (vec![Arg::Value(rest.to_string())], false),
    })
}

pub(super) fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<Arg>, bool), String> {
    Ok(match parse_json(rest)? {
        JsonArgs::Strings(items) => (values(items), true),
        JsonArgs::NotJson => (values(whitespace_list(rest)), false),
    })
}

/// HEALTHCHECK: a type word (`CMD`, `NONE`, ...) then the RUN-like rest.
pub(super) fn parse_health_config(rest: &str) -> Result<(Vec<Arg>, bool), String> {
    let sep = rest.find(is_space).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let after = rest[sep..].trim_start_matches(is_space);
    let (mut cmd, json) = parse_maybe_json(after)?;
    let mut args = vec![Arg::Value(rest[..sep].to_string())];
    args.append(&mut cmd);
    Ok((args, json))
}
