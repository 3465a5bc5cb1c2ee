//! `echo` and `printf`: backslash escapes (shared with `$'...'` words),
//! printf's format specifications, padding, and integer and float conversions.
//!
//! It owns formatting text; it must never read input or change the shell's state.

use super::*;

pub(super) fn echo(sh: &mut Shell, args: &[String]) -> Res {
    let mut newline = true;
    let mut escapes = true;
    let mut rest = args;
    while let Some(first) = rest.first() {
        let is_option = first.len() > 1 && first.starts_with('-') && first[1..].chars().all(|c| "neE".contains(c));
        if !is_option {
            break;
        }
        for c in first[1..].chars() {
            match c {
                'n' => newline = false,
                'e' => escapes = true,
                _ => escapes = false,
            }
        }
        rest = &rest[1..];
    }
    let mut text = String::new();
    let mut stop = false;
    for (i, arg) in rest.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        if escapes {
            let (unescaped, stopped) = unescape(arg, true);
            text.push_str(&unescaped);
            if stopped {
                stop = true;
                break;
            }
        } else {
            text.push_str(arg);
        }
    }
    if newline && !stop {
        text.push('\n');
    }
    Ok(if sh.fds.write(1, text.as_bytes()).is_ok() { 0 } else { 1 })
}

/// Backslash escapes as `printf` (and `echo`) understand them. With `c_stops`, `\c` ends the
/// output (returned as `true`). Octal is `\0NNN` and (outside echo's rules) `\NNN`.
pub fn unescape(text: &str, c_stops: bool) -> (String, bool) {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('a') => out.push('\x07'),
            Some('b') => out.push('\x08'),
            Some('f') => out.push('\x0c'),
            Some('v') => out.push('\x0b'),
            Some('e') | Some('E') => out.push('\x1b'),
            Some('\\') => out.push('\\'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('c') if c_stops => return (out, true),
            Some(d @ '0'..='7') => {
                let mut value = d.to_digit(8).unwrap_or(0);
                // `\0NNN` takes up to three more digits; `\NNN` up to two more.
                let more = if d == '0' { 3 } else { 2 };
                for _ in 0..more {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(v) => {
                            value = value * 8 + v;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(value & 0xff).unwrap_or('\0'));
            }
            Some('x') => {
                let mut value = 0;
                let mut digits = 0;
                while digits < 2 {
                    match chars.peek().and_then(|c| c.to_digit(16)) {
                        Some(v) => {
                            value = value * 16 + v;
                            chars.next();
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    out.push_str("\\x");
                } else {
                    out.push(char::from_u32(value).unwrap_or('\0'));
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    (out, false)
}

pub(super) fn printf(sh: &mut Shell, args: &[String]) -> Res {
    let Some(format) = args.first() else {
        sh.error("printf: usage: printf format [arg ...]");
        return Ok(2);
    };
    let format: Vec<char> = format.chars().collect();
    let mut args = args[1..].iter();
    let mut out = String::new();
    let mut status = 0;
    loop {
        let mut consumed = false;
        let mut i = 0;
        while i < format.len() {
            let c = format[i];
            if c == '\\' {
                // One escape at a time, through the shared decoder.
                let mut j = i + 1;
                if j < format.len() {
                    let head = format[j];
                    j += 1;
                    if head.is_digit(8) {
                        let limit = if head == '0' { 3 } else { 2 };
                        let mut n = 0;
                        while n < limit && j < format.len() && format[j].is_digit(8) {
                            j += 1;
                            n += 1;
                        }
                    } else if head == 'x' {
                        let mut n = 0;
                        while n < 2 && j < format.len() && format[j].is_ascii_hexdigit() {
                            j += 1;
                            n += 1;
                        }
                    }
                }
                let escape: String = format[i..j].iter().collect();
                let (text, stop) = unescape(&escape, true);
                out.push_str(&text);
                if stop {
                    let _ = sh.fds.write(1, out.as_bytes());
                    return Ok(status);
                }
                i = j;
                continue;
            }
            if c != '%' {
                out.push(c);
                i += 1;
                continue;
            }
            i += 1;
            if i < format.len() && format[i] == '%' {
                out.push('%');
                i += 1;
                continue;
            }
            let mut spec = String::new();
            while i < format.len() && "-+ #0".contains(format[i]) {
                spec.push(format[i]);
                i += 1;
            }
            let mut number = |i: &mut usize, spec: &mut String| {
                if *i < format.len() && format[*i] == '*' {
                    *i += 1;
                    consumed = true;
                    let value = args.next().map(|a| parse_number(a).unwrap_or(0)).unwrap_or(0);
                    spec.push_str(&value.to_string());
                } else {
                    while *i < format.len() && format[*i].is_ascii_digit() {
                        spec.push(format[*i]);
                        *i += 1;
                    }
                }
            };
            number(&mut i, &mut spec);
            if i < format.len() && format[i] == '.' {
                spec.push('.');
                i += 1;
                number(&mut i, &mut spec);
            }
            let Some(&conversion) = format.get(i) else {
                sh.error("printf: %: invalid directive");
                return Ok(1);
            };
            i += 1;
            let arg = args.next();
            consumed |= arg.is_some();
            let arg = arg.map(String::as_str).unwrap_or("");
            let formatted = match conversion {
                's' => pad(&spec, arg.to_string()),
                'b' => {
                    let (text, stop) = unescape(arg, true);
                    if stop {
                        out.push_str(&pad(&spec, text));
                        let _ = sh.fds.write(1, out.as_bytes());
                        return Ok(status);
                    }
                    pad(&spec, text)
                }
                'c' => pad(&spec, arg.chars().next().map(String::from).unwrap_or_default()),
                'd' | 'i' | 'u' | 'x' | 'X' | 'o' => {
                    let value = match number_arg(arg) {
                        Some(v) => v,
                        None => {
                            sh.error(format!("printf: {arg}: expected numeric value"));
                            status = 1;
                            0
                        }
                    };
                    format_integer(&spec, conversion, value)
                }
                'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
                    let value: f64 = arg.trim().parse().unwrap_or_else(|_| number_arg(arg).unwrap_or(0) as f64);
                    format_float(&spec, conversion, value)
                }
                other => {
                    sh.error(format!("printf: %{other}: invalid directive"));
                    return Ok(1);
                }
            };
            out.push_str(&formatted);
        }
        if !consumed || args.len() == 0 {
            break;
        }
    }
    if sh.fds.write(1, out.as_bytes()).is_err() {
        return Ok(1);
    }
    Ok(status)
}

fn number_arg(arg: &str) -> Option<i64> {
    let trimmed = arg.trim();
    if trimmed.is_empty() {
        return Some(0);
    }
    if let Some(c) = trimmed.strip_prefix('\'').or_else(|| trimmed.strip_prefix('"')) {
        return Some(c.chars().next().map(|c| c as i64).unwrap_or(0));
    }
    parse_number(trimmed)
}

struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: usize,
    precision: Option<usize>,
}

fn parse_spec(spec: &str) -> Spec {
    let flags: String = spec.chars().take_while(|c| "-+ #0".contains(*c)).collect();
    let rest = &spec[flags.len()..];
    let (width, precision) = match rest.split_once('.') {
        Some((w, p)) => (w, Some(p.parse().unwrap_or(0))),
        None => (rest, None),
    };
    let width: i64 = width.parse().unwrap_or(0);
    Spec {
        left: flags.contains('-') || width < 0,
        zero: flags.contains('0'),
        plus: flags.contains('+'),
        space: flags.contains(' '),
        alt: flags.contains('#'),
        width: width.unsigned_abs() as usize,
        precision,
    }
}

fn pad(spec: &str, text: String) -> String {
    let spec = parse_spec(spec);
    let text: String = match spec.precision {
        Some(p) => text.chars().take(p).collect(),
        None => text,
    };
    let len = text.chars().count();
    if len >= spec.width {
        return text;
    }
    let fill = " ".repeat(spec.width - len);
    if spec.left { format!("{text}{fill}") } else { format!("{fill}{text}") }
}

fn format_integer(spec: &str, conversion: char, value: i64) -> String {
    let s = parse_spec(spec);
    let (sign, digits) = match conversion {
        'x' => ("", format!("{:x}", value)),
        'X' => ("", format!("{:X}", value)),
        'o' => ("", format!("{:o}", value)),
        'u' => ("", format!("{}", value as u64)),
        _ => {
            let sign = if value < 0 {
                "-"
            } else if s.plus {
                "+"
            } else if s.space {
                " "
            } else {
                ""
            };
            (sign, value.unsigned_abs().to_string())
        }
    };
    let mut digits = digits;
    if let Some(p) = s.precision
        && digits.len() < p
    {
        digits = format!("{}{digits}", "0".repeat(p - digits.len()));
    }
    let prefix = match (s.alt, conversion) {
        (true, 'x') if value != 0 => "0x",
        (true, 'X') if value != 0 => "0X",
        (true, 'o') if !digits.starts_with('0') => "0",
        _ => "",
    };
    let body_len = sign.len() + prefix.len() + digits.len();
    if body_len >= s.width {
        return format!("{sign}{prefix}{digits}");
    }
    let fill = s.width - body_len;
    if s.left {
        format!("{sign}{prefix}{digits}{}", " ".repeat(fill))
    } else if s.zero && s.precision.is_none() {
        format!("{sign}{prefix}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{sign}{prefix}{digits}", " ".repeat(fill))
    }
}

fn format_float(spec: &str, conversion: char, value: f64) -> String {
    let s = parse_spec(spec);
    let precision = s.precision.unwrap_or(6);
    let body = match conversion {
        'e' | 'E' => {
            let text = format!("{value:.precision$e}");
            // Rust writes 1.5e2; C writes 1.500000e+02.
            let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
            let exp: i32 = exponent.parse().unwrap_or(0);
            let text = format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
            if conversion == 'E' { text.to_uppercase() } else { text }
        }
        'g' | 'G' => {
            let text = format!("{value}");
            if conversion == 'G' { text.to_uppercase() } else { text }
        }
        _ => format!("{value:.precision$}"),
    };
    let body = if s.plus && value >= 0.0 { format!("+{body}") } else { body };
    if body.len() >= s.width {
        return body;
    }
    let fill = s.width - body.len();
    if s.left {
        format!("{body}{}", " ".repeat(fill))
    } else if s.zero {
        match body.strip_prefix('-') {
            Some(rest) => format!("-{}{rest}", "0".repeat(fill)),
            None => format!("{}{body}", "0".repeat(fill)),
        }
    } else {
        format!("{}{body}", " ".repeat(fill))
    }
}
