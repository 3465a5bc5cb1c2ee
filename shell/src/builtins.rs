//! The builtins: POSIX's special builtins, and the regular ones a Dockerfile's RUN lines
//! use (`cd`, `echo`, `printf`, `test`, `read`, `command`, ...). Each is a function of the
//! shell and its arguments that writes through the shell's descriptors.
//!
//! Builtins never start programs except `command` and `exec`, which go through
//! [`Shell::run_program`].

use brush_parser::ast::{BinaryPredicate, TestExpr, UnaryPredicate};

use crate::arith::parse_number;
use crate::state::{Flow, Options, Res, Shell, Var, is_name};

/// What a command name is, before functions are considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// POSIX special builtin: found before functions, its assignments stay, its errors end
    /// the shell.
    Special,
    /// A regular builtin.
    Regular,
    /// Not a builtin.
    External,
}

const SPECIAL: &[&str] = &[
    ":", ".", "break", "continue", "eval", "exec", "exit", "export", "readonly", "return", "set", "shift", "times",
    "trap", "unset",
];
const REGULAR: &[&str] = &[
    "cd", "pwd", "true", "false", "echo", "printf", "test", "[", "read", "command", "type", "local", "umask", "wait",
    "hash", "getopts", "ulimit", "alias", "unalias",
];

/// Classify a command name.
pub fn kind(name: &str) -> Kind {
    if SPECIAL.contains(&name) {
        Kind::Special
    } else if REGULAR.contains(&name) {
        Kind::Regular
    } else {
        Kind::External
    }
}

/// Run the builtin `argv[0]`.
pub fn run(sh: &mut Shell, argv: &[String]) -> Res {
    let args = &argv[1..];
    let out = |sh: &Shell, text: &str| sh.fds.write(1, text.as_bytes());
    match argv[0].as_str() {
        ":" | "true" => Ok(0),
        "false" => Ok(1),
        "exit" => {
            let status = match args.first() {
                Some(n) => match n.parse::<i64>() {
                    Ok(n) => (n & 0xff) as i32,
                    Err(_) => {
                        sh.error(format!("exit: Illegal number: {n}"));
                        2
                    }
                },
                None => sh.status,
            };
            Err(Flow::Exit(status))
        }
        "return" => {
            let status = match args.first() {
                Some(n) => match n.parse::<i64>() {
                    Ok(n) => (n & 0xff) as i32,
                    Err(_) => {
                        sh.error(format!("return: Illegal number: {n}"));
                        return Err(Flow::Exit(2));
                    }
                },
                None => sh.status,
            };
            Err(Flow::Return(status))
        }
        "break" | "continue" => {
            let n = match args.first().map(|a| a.parse::<u32>()) {
                None => 1,
                Some(Ok(n)) if n > 0 => n,
                Some(_) => {
                    sh.error(format!("{}: Illegal number: {}", argv[0], args[0]));
                    return Err(Flow::Exit(2));
                }
            };
            if sh.loops == 0 {
                return Ok(0);
            }
            let n = n.min(sh.loops);
            Err(if argv[0] == "break" { Flow::Break(n) } else { Flow::Continue(n) })
        }
        "eval" => {
            let source = args.join(" ");
            if source.trim().is_empty() {
                return Ok(0);
            }
            sh.run_text(&source)
        }
        "." => {
            let Some(file) = args.first() else {
                sh.error(".: filename argument required");
                return Err(Flow::Exit(2));
            };
            let path = if file.contains('/') { Some(sh.abs(file)) } else { find_on_path(sh, file) };
            let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
                sh.error(format!(".: cannot open {file}: No such file"));
                return Err(Flow::Exit(2));
            };
            let saved = (!args[1..].is_empty()).then(|| std::mem::replace(&mut sh.params, args[1..].to_vec()));
            sh.frames += 1;
            let result = match sh.run_text(&text) {
                Err(Flow::Return(status)) => Ok(status),
                other => other,
            };
            sh.frames -= 1;
            if let Some(saved) = saved {
                sh.params = saved;
            }
            result
        }
        "exec" => {
            if args.is_empty() {
                return Ok(0);
            }
            let status = if kind(&args[0]) != Kind::External {
                run(sh, args)?
            } else {
                let env = sh.environment();
                sh.run_program(args.to_vec(), env)
            };
            Err(Flow::Exit(status))
        }
        "export" | "readonly" => {
            let export = argv[0] == "export";
            let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
            if names.is_empty() {
                let mut vars: Vec<(&String, &Var)> =
                    sh.vars.iter().filter(|(_, v)| if export { v.exported } else { v.readonly }).collect();
                vars.sort_by(|a, b| a.0.cmp(b.0));
                let mut text = String::new();
                for (name, var) in vars {
                    text.push_str(&format!("{} {name}='{}'\n", argv[0], var.value.replace('\'', "'\\''")));
                }
                let _ = out(sh, &text);
                return Ok(0);
            }
            for arg in names {
                let (name, value) = match arg.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (arg.as_str(), None),
                };
                if !is_name(name) {
                    sh.error(format!("{}: {name}: bad variable name", argv[0]));
                    return Err(Flow::Exit(2));
                }
                if let Some(value) = value
                    && let Err(e) = sh.set(name, value)
                {
                    sh.error(e);
                    return Err(Flow::Exit(2));
                }
                let var = sh.vars.entry(name.to_string()).or_insert(Var {
                    value: String::new(),
                    exported: false,
                    readonly: false,
                });
                if export {
                    var.exported = true;
                } else {
                    var.readonly = true;
                }
            }
            Ok(0)
        }
        "unset" => {
            let functions = args.first().is_some_and(|a| a == "-f");
            for name in args.iter().filter(|a| !a.starts_with('-')) {
                if functions {
                    sh.funcs.remove(name);
                } else if let Err(e) = sh.unset(name) {
                    sh.error(format!("unset: {e}"));
                    return Ok(1);
                }
            }
            Ok(0)
        }
        "set" => set(sh, args),
        "shift" => {
            let n = match args.first() {
                None => 1,
                Some(a) => match a.parse::<usize>() {
                    Ok(n) => n,
                    Err(_) => {
                        sh.error(format!("shift: Illegal number: {a}"));
                        return Err(Flow::Exit(2));
                    }
                },
            };
            if n > sh.params.len() {
                sh.error("shift: can't shift that many");
                return Err(Flow::Exit(2));
            }
            sh.params.drain(..n);
            Ok(0)
        }
        "times" => {
            let _ = out(sh, "0m0.000s 0m0.000s\n0m0.000s 0m0.000s\n");
            Ok(0)
        }
        "trap" => {
            if args.is_empty() {
                if let Some(trap) = &sh.exit_trap {
                    let _ = out(sh, &format!("trap -- '{}' EXIT\n", trap.replace('\'', "'\\''")));
                }
                return Ok(0);
            }
            let (action, conditions) = if args.len() == 1 || args[0] == "-" || parse_number(&args[0]).is_none() {
                (Some(args[0].clone()), &args[1..])
            } else {
                (None, args)
            };
            for condition in conditions {
                if matches!(condition.as_str(), "EXIT" | "0") {
                    sh.exit_trap = match &action {
                        Some(a) if a != "-" && !a.is_empty() => Some(a.clone()),
                        _ => None,
                    };
                }
                // Signals never reach a WASI program: other traps are accepted and never run.
            }
            Ok(0)
        }
        "cd" => cd(sh, args),
        "pwd" => {
            let _ = out(sh, &format!("{}\n", sh.cwd));
            Ok(0)
        }
        "echo" => echo(sh, args),
        "printf" => printf(sh, args),
        "test" | "[" => {
            let mut args = args.to_vec();
            if argv[0] == "[" {
                if args.last().map(String::as_str) != Some("]") {
                    sh.error("[: missing ]");
                    return Ok(2);
                }
                args.pop();
            }
            test(sh, &args)
        }
        "read" => read(sh, args),
        "command" => command(sh, args),
        "type" => {
            let mut status = 0;
            for name in args {
                let text = match describe(sh, name) {
                    Some(Found::Builtin) if kind(name) == Kind::Special => format!("{name} is a special shell builtin"),
                    Some(Found::Builtin) => format!("{name} is a shell builtin"),
                    Some(Found::Function) => format!("{name} is a function"),
                    Some(Found::Path(path)) => format!("{name} is {path}"),
                    None => {
                        status = 1;
                        format!("{name}: not found")
                    }
                };
                let _ = out(sh, &format!("{text}\n"));
            }
            Ok(status)
        }
        "local" => {
            if sh.frames == 0 || sh.locals.is_empty() {
                sh.error("local: not in a function");
                return Ok(2);
            }
            for arg in args {
                let (name, value) = match arg.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (arg.clone(), None),
                };
                if !is_name(&name) {
                    sh.error(format!("local: {name}: bad variable name"));
                    return Ok(2);
                }
                let old = sh.vars.get(&name).cloned();
                let frame = sh.locals.last_mut().expect("checked above");
                if !frame.iter().any(|(n, _)| *n == name) {
                    frame.push((name.clone(), old));
                }
                if let Some(value) = value
                    && let Err(e) = sh.set(&name, value)
                {
                    sh.error(e);
                    return Ok(2);
                }
            }
            Ok(0)
        }
        "umask" => {
            if args.is_empty() {
                let _ = out(sh, "0022\n");
            }
            Ok(0)
        }
        "ulimit" => {
            if args.iter().all(|a| a.starts_with('-')) {
                let _ = out(sh, "unlimited\n");
            }
            Ok(0)
        }
        "wait" | "hash" => Ok(0),
        "alias" | "unalias" => {
            if args.is_empty() {
                return Ok(0);
            }
            sh.error(format!("{}: aliases are not supported by kiln's sh", argv[0]));
            Ok(1)
        }
        "getopts" => getopts(sh, args),
        other => {
            sh.error(format!("{other}: not a builtin"));
            Ok(127)
        }
    }
}

fn find_on_path(sh: &Shell, name: &str) -> Option<String> {
    let path = sh.get("PATH").unwrap_or("/usr/local/bin:/usr/bin:/bin");
    path.split(':')
        .map(|d| sh.abs(&format!("{}/{name}", if d.is_empty() { "." } else { d })))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .or_else(|| {
            let here = sh.abs(name);
            std::fs::metadata(&here).is_ok_and(|m| m.is_file()).then_some(here)
        })
}

fn set(sh: &mut Shell, args: &[String]) -> Res {
    if args.is_empty() {
        let mut vars: Vec<(&String, &Var)> = sh.vars.iter().collect();
        vars.sort_by(|a, b| a.0.cmp(b.0));
        let mut text = String::new();
        for (name, var) in vars {
            text.push_str(&format!("{name}='{}'\n", var.value.replace('\'', "'\\''")));
        }
        let _ = sh.fds.write(1, text.as_bytes());
        return Ok(0);
    }
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            sh.params = args[i + 1..].to_vec();
            return Ok(0);
        }
        let (on, flags) = match arg.as_bytes().first() {
            Some(b'-') if arg.len() > 1 => (true, &arg[1..]),
            Some(b'+') if arg.len() > 1 => (false, &arg[1..]),
            Some(b'-') => {
                // `set -` ends options (and turns off -x and -v).
                sh.opts.xtrace = false;
                sh.opts.verbose = false;
                sh.params = args[i + 1..].to_vec();
                return Ok(0);
            }
            _ => {
                sh.params = args[i..].to_vec();
                return Ok(0);
            }
        };
        for flag in flags.chars() {
            if flag == 'o' {
                i += 1;
                let Some(name) = args.get(i) else {
                    let mut text = String::new();
                    for (name, _, value) in sh.opts.list() {
                        text.push_str(&format!("{name:<16}{}\n", if value { "on" } else { "off" }));
                    }
                    let _ = sh.fds.write(1, text.as_bytes());
                    return Ok(0);
                };
                if !set_named(sh, name, on) {
                    sh.error(format!("set: Illegal option -o {name}"));
                    return Err(Flow::Exit(2));
                }
                continue;
            }
            if !set_flag(sh, flag, on) {
                sh.error(format!("set: Illegal option -{flag}"));
                return Err(Flow::Exit(2));
            }
        }
        i += 1;
    }
    Ok(0)
}

/// Turn a one-letter option on or off; false when there is no such option.
pub fn set_flag(sh: &mut Shell, flag: char, on: bool) -> bool {
    match Options::TABLE.iter().find(|(_, letter, _)| *letter == Some(flag)) {
        Some((_, _, field)) => *field(&mut sh.opts) = on,
        // Accepted for compatibility; they change nothing in a sandbox without job control.
        None if "hmbnETBHP".contains(flag) => {}
        None => return false,
    }
    true
}

/// Turn a `-o` option on or off; false when there is no such option.
pub fn set_named(sh: &mut Shell, name: &str, on: bool) -> bool {
    if let Some((_, _, field)) = Options::TABLE.iter().find(|(option, _, _)| *option == name) {
        *field(&mut sh.opts) = on;
        return true;
    }
    match name {
        "posix"
        | "monitor"
        | "notify"
        | "ignoreeof"
        | "nolog"
        | "vi"
        | "emacs"
        | "hashall"
        | "errtrace"
        | "functrace"
        | "braceexpand"
        | "histexpand"
        | "history"
        | "interactive-comments"
        | "onecmd"
        | "physical"
        | "privileged"
        | "keyword"
        | "noexec" => {}
        _ => return false,
    }
    true
}

fn cd(sh: &mut Shell, args: &[String]) -> Res {
    let args: Vec<&String> = args.iter().filter(|a| !matches!(a.as_str(), "-L" | "-P")).collect();
    let (target, print) = match args.first().map(|s| s.as_str()) {
        None => match sh.get("HOME") {
            Some(home) if !home.is_empty() => (home.to_string(), false),
            _ => {
                sh.error("cd: HOME not set");
                return Ok(1);
            }
        },
        Some("-") => match sh.get("OLDPWD") {
            Some(old) => (old.to_string(), true),
            None => {
                sh.error("cd: OLDPWD not set");
                return Ok(1);
            }
        },
        Some(dir) => (dir.to_string(), false),
    };
    let path = normalize(&sh.abs(&target));
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            sh.error(format!("cd: can't cd to {target}"));
            return Ok(2);
        }
        Err(_) => {
            sh.error(format!("cd: can't cd to {target}"));
            return Ok(2);
        }
    }
    let old = std::mem::replace(&mut sh.cwd, path.clone());
    let _ = sh.set("OLDPWD", old);
    let _ = sh.set("PWD", path.clone());
    if print {
        let _ = sh.fds.write(1, format!("{path}\n").as_bytes());
    }
    Ok(0)
}

/// Resolve `.` and `..` textually, as `cd -L` does.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn echo(sh: &mut Shell, args: &[String]) -> Res {
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

fn printf(sh: &mut Shell, args: &[String]) -> Res {
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

fn read(sh: &mut Shell, args: &[String]) -> Res {
    let mut raw = false;
    let mut names = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-r" => raw = true,
            "-p" => {
                i += 1;
                if let Some(prompt) = args.get(i) {
                    let _ = sh.fds.write(2, prompt.as_bytes());
                }
            }
            "--" => {
                names.extend(args[i + 1..].iter().cloned());
                break;
            }
            a if a.starts_with('-') && names.is_empty() => {
                sh.error(format!("read: Illegal option {a}"));
                return Ok(2);
            }
            a => names.push(a.to_string()),
        }
        i += 1;
    }
    if names.is_empty() {
        names.push("REPLY".into());
    }
    // Read one line; `quoted` marks characters a backslash protected from splitting.
    let mut line: Vec<(char, bool)> = Vec::new();
    let mut bytes = Vec::new();
    let mut eof = false;
    let mut escaped = false;
    loop {
        let byte = match sh.fds.read_byte(0) {
            Ok(Some(b)) => b,
            Ok(None) => {
                eof = true;
                break;
            }
            Err(e) => {
                sh.error(format!("read: {e}"));
                return Ok(1);
            }
        };
        if !raw && escaped {
            escaped = false;
            if byte == b'\n' {
                continue;
            }
            bytes.push((byte, true));
            continue;
        }
        if !raw && byte == b'\\' {
            escaped = true;
            continue;
        }
        if byte == b'\n' {
            break;
        }
        bytes.push((byte, false));
    }
    // Decode as UTF-8, keeping the quoted marks per character.
    let raw_bytes: Vec<u8> = bytes.iter().map(|(b, _)| *b).collect();
    let text = String::from_utf8_lossy(&raw_bytes).into_owned();
    let mut offset = 0;
    for c in text.chars() {
        let quoted = bytes.get(offset).is_some_and(|(_, q)| *q);
        line.push((c, quoted));
        offset += c.len_utf8();
    }
    let ifs = sh.ifs();
    let is_ifs = |c: &(char, bool)| !c.1 && ifs.contains(c.0);
    let is_space = |c: &(char, bool)| is_ifs(c) && matches!(c.0, ' ' | '\t' | '\n');
    let mut pos = 0;
    let mut values = Vec::new();
    for (index, _) in names.iter().enumerate() {
        while pos < line.len() && is_space(&line[pos]) {
            pos += 1;
        }
        if index + 1 == names.len() {
            // The last name takes the rest, less trailing IFS white space.
            let mut end = line.len();
            while end > pos && is_space(&line[end - 1]) {
                end -= 1;
            }
            values.push(line[pos..end].iter().map(|c| c.0).collect::<String>());
            break;
        }
        let start = pos;
        while pos < line.len() && !is_ifs(&line[pos]) {
            pos += 1;
        }
        values.push(line[start..pos].iter().map(|c| c.0).collect::<String>());
        // One non-white IFS character (with white space around it) ends the field.
        while pos < line.len() && is_space(&line[pos]) {
            pos += 1;
        }
        if pos < line.len() && is_ifs(&line[pos]) && !is_space(&line[pos]) {
            pos += 1;
        }
    }
    for (i, name) in names.iter().enumerate() {
        if let Err(e) = sh.set(name, values.get(i).cloned().unwrap_or_default()) {
            sh.error(format!("read: {e}"));
            return Ok(2);
        }
    }
    // At end of file the status is 1 even when a last, unterminated line was read (POSIX).
    Ok(if eof { 1 } else { 0 })
}

enum Found {
    Builtin,
    Function,
    Path(String),
}

fn describe(sh: &Shell, name: &str) -> Option<Found> {
    if kind(name) == Kind::Special {
        return Some(Found::Builtin);
    }
    if sh.funcs.contains_key(name) {
        return Some(Found::Function);
    }
    if kind(name) == Kind::Regular {
        return Some(Found::Builtin);
    }
    sh.find_program(name).map(Found::Path)
}

fn command(sh: &mut Shell, args: &[String]) -> Res {
    let mut i = 0;
    let mut mode = None;
    while let Some(arg) = args.get(i) {
        match arg.as_str() {
            "-p" => {}
            "-v" => mode = Some('v'),
            "-V" => mode = Some('V'),
            "--" => {
                i += 1;
                break;
            }
            _ => break,
        }
        i += 1;
    }
    let rest = &args[i..];
    let Some(name) = rest.first() else { return Ok(0) };
    match mode {
        Some(verbose) => {
            let mut status = 0;
            for name in rest {
                let text = match (describe(sh, name), verbose) {
                    (Some(Found::Path(path)), 'v') => path,
                    (Some(_), 'v') => name.clone(),
                    (Some(Found::Path(path)), _) => format!("{name} is {path}"),
                    (Some(Found::Function), _) => format!("{name} is a function"),
                    (Some(Found::Builtin), _) => format!("{name} is a shell builtin"),
                    (None, _) => {
                        // dash's status; bash says 1 (POSIX only asks for non-zero).
                        status = 127;
                        if verbose == 'V' {
                            sh.error(format!("{name}: not found"));
                        }
                        continue;
                    }
                };
                let _ = sh.fds.write(1, format!("{text}\n").as_bytes());
            }
            Ok(status)
        }
        None => {
            if kind(name) != Kind::External {
                run(sh, rest)
            } else {
                let env = sh.environment();
                Ok(sh.run_program(rest.to_vec(), env))
            }
        }
    }
}

fn getopts(sh: &mut Shell, args: &[String]) -> Res {
    let (Some(spec), Some(var)) = (args.first(), args.get(1)) else {
        sh.error("getopts: usage: getopts optstring var [arg ...]");
        return Ok(2);
    };
    let params: Vec<String> = if args.len() > 2 { args[2..].to_vec() } else { sh.params.clone() };
    let optind: usize = sh.get("OPTIND").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    // Position inside a cluster like -abc is kept in a private variable.
    let sub: usize = sh.get("_KILN_OPTPOS").and_then(|v| v.parse().ok()).unwrap_or(1);
    let finish = |sh: &mut Shell, optind: usize| {
        let _ = sh.set("OPTIND", optind.to_string());
        let _ = sh.unset("_KILN_OPTPOS");
        let _ = sh.set(var, "?".into());
        Ok(1)
    };
    let Some(arg) = params.get(optind - 1) else { return finish(sh, optind) };
    if arg == "--" {
        return finish(sh, optind + 1);
    }
    if !arg.starts_with('-') || arg == "-" {
        return finish(sh, optind);
    }
    let chars: Vec<char> = arg.chars().collect();
    let option = chars[sub];
    let last_in_cluster = sub + 1 >= chars.len();
    let (next_ind, next_sub) = if last_in_cluster { (optind + 1, 1) } else { (optind, sub + 1) };
    let silent = spec.starts_with(':');
    let spec_chars: Vec<char> = spec.trim_start_matches(':').chars().collect();
    match spec_chars.iter().position(|&c| c == option) {
        Some(p) if spec_chars.get(p + 1) == Some(&':') => {
            let (value, after) = if !last_in_cluster {
                (Some(chars[sub + 1..].iter().collect::<String>()), optind + 1)
            } else {
                (params.get(optind).cloned(), optind + 2)
            };
            let _ = sh.unset("_KILN_OPTPOS");
            let _ = sh.set("OPTIND", after.to_string());
            match value {
                Some(v) => {
                    let _ = sh.set("OPTARG", v);
                    let _ = sh.set(var, option.to_string());
                }
                None if silent => {
                    let _ = sh.set("OPTARG", option.to_string());
                    let _ = sh.set(var, ":".into());
                }
                None => {
                    sh.error(format!("No arg for -{option} option"));
                    let _ = sh.set(var, "?".into());
                }
            }
            Ok(0)
        }
        Some(_) => {
            let _ = sh.set("OPTIND", next_ind.to_string());
            if next_sub > 1 {
                let _ = sh.set("_KILN_OPTPOS", next_sub.to_string());
            } else {
                let _ = sh.unset("_KILN_OPTPOS");
            }
            let _ = sh.set(var, option.to_string());
            Ok(0)
        }
        None => {
            let _ = sh.set("OPTIND", next_ind.to_string());
            if next_sub > 1 {
                let _ = sh.set("_KILN_OPTPOS", next_sub.to_string());
            } else {
                let _ = sh.unset("_KILN_OPTPOS");
            }
            if silent {
                let _ = sh.set("OPTARG", option.to_string());
            } else {
                sh.error(format!("Illegal option -{option}"));
            }
            let _ = sh.set(var, "?".into());
            Ok(0)
        }
    }
}

/// `~user`: the user's home directory from `/etc/passwd`.
pub fn home_of(user: &str) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&user)).then(|| fields.get(5).map(|s| s.to_string())).flatten()
    })
}

fn test(sh: &mut Shell, args: &[String]) -> Res {
    // POSIX's rules by argument count come first; the parser handles the rest.
    let expr = match brush_parser::test_command::parse(args) {
        Ok(expr) => expr,
        Err(_) => {
            sh.error(format!("test: syntax error: {}", args.join(" ")));
            return Ok(2);
        }
    };
    match eval_test(sh, &expr) {
        Ok(true) => Ok(0),
        Ok(false) => Ok(1),
        Err(message) => {
            sh.error(format!("test: {message}"));
            Ok(2)
        }
    }
}

fn eval_test(sh: &Shell, expr: &TestExpr) -> Result<bool, String> {
    Ok(match expr {
        TestExpr::False => false,
        TestExpr::Literal(s) => !s.is_empty(),
        TestExpr::And(a, b) => eval_test(sh, a)? && eval_test(sh, b)?,
        TestExpr::Or(a, b) => eval_test(sh, a)? || eval_test(sh, b)?,
        TestExpr::Not(a) => !eval_test(sh, a)?,
        TestExpr::Parenthesized(a) => eval_test(sh, a)?,
        TestExpr::UnaryTest(predicate, operand) => {
            let path = || sh.abs(operand);
            let meta = || std::fs::metadata(path()).ok();
            match predicate {
                UnaryPredicate::StringHasZeroLength => operand.is_empty(),
                UnaryPredicate::StringHasNonZeroLength => !operand.is_empty(),
                UnaryPredicate::FileExists => !operand.is_empty() && meta().is_some(),
                UnaryPredicate::FileExistsAndIsDir => meta().is_some_and(|m| m.is_dir()),
                UnaryPredicate::FileExistsAndIsRegularFile => meta().is_some_and(|m| m.is_file()),
                UnaryPredicate::FileExistsAndIsSymlink => {
                    std::fs::symlink_metadata(path()).is_ok_and(|m| m.file_type().is_symlink())
                }
                UnaryPredicate::FileExistsAndIsNotZeroLength => meta().is_some_and(|m| m.len() > 0),
                // WASI reports no permission bits; everything that exists is readable,
                // writable and (as a file or directory) executable for the sandbox's user.
                UnaryPredicate::FileExistsAndIsReadable
                | UnaryPredicate::FileExistsAndIsWritable
                | UnaryPredicate::FileExistsAndIsExecutable => !operand.is_empty() && meta().is_some(),
                UnaryPredicate::FileExistsAndOwnedByEffectiveUserId
                | UnaryPredicate::FileExistsAndOwnedByEffectiveGroupId => meta().is_some(),
                UnaryPredicate::FdIsOpenTerminal => false,
                UnaryPredicate::FileExistsAndIsBlockSpecialFile
                | UnaryPredicate::FileExistsAndIsCharSpecialFile
                | UnaryPredicate::FileExistsAndIsFifo
                | UnaryPredicate::FileExistsAndIsSocket
                | UnaryPredicate::FileExistsAndIsSetgid
                | UnaryPredicate::FileExistsAndIsSetuid
                | UnaryPredicate::FileExistsAndHasStickyBit
                | UnaryPredicate::FileExistsAndModifiedSinceLastRead => false,
                UnaryPredicate::ShellVariableIsSetAndAssigned | UnaryPredicate::ShellVariableIsSetAndNameRef => {
                    sh.get(operand).is_some()
                }
                UnaryPredicate::ShellOptionEnabled => false,
            }
        }
        TestExpr::BinaryTest(predicate, left, right) => {
            let int =
                |s: &str| -> Result<i64, String> { s.trim().parse::<i64>().map_err(|_| format!("{s}: bad number")) };
            match predicate {
                BinaryPredicate::StringExactlyMatchesString | BinaryPredicate::StringExactlyMatchesPattern => {
                    left == right
                }
                BinaryPredicate::StringDoesNotExactlyMatchString
                | BinaryPredicate::StringDoesNotExactlyMatchPattern => left != right,
                BinaryPredicate::LeftSortsBeforeRight => left < right,
                BinaryPredicate::LeftSortsAfterRight => left > right,
                BinaryPredicate::ArithmeticEqualTo => int(left)? == int(right)?,
                BinaryPredicate::ArithmeticNotEqualTo => int(left)? != int(right)?,
                BinaryPredicate::ArithmeticLessThan => int(left)? < int(right)?,
                BinaryPredicate::ArithmeticLessThanOrEqualTo => int(left)? <= int(right)?,
                BinaryPredicate::ArithmeticGreaterThan => int(left)? > int(right)?,
                BinaryPredicate::ArithmeticGreaterThanOrEqualTo => int(left)? >= int(right)?,
                BinaryPredicate::LeftFileIsNewerOrExistsWhenRightDoesNot => {
                    match (file_time(sh, left), file_time(sh, right)) {
                        (Some(l), Some(r)) => l > r,
                        (Some(_), None) => true,
                        _ => false,
                    }
                }
                BinaryPredicate::LeftFileIsOlderOrDoesNotExistWhenRightDoes => {
                    match (file_time(sh, left), file_time(sh, right)) {
                        (Some(l), Some(r)) => l < r,
                        (None, Some(_)) => true,
                        _ => false,
                    }
                }
                BinaryPredicate::FilesReferToSameDeviceAndInodeNumbers => {
                    normalize(&sh.abs(left)) == normalize(&sh.abs(right))
                }
                BinaryPredicate::StringMatchesRegex | BinaryPredicate::StringContainsSubstring => {
                    return Err("=~ is bash syntax; kiln's sh is POSIX".into());
                }
            }
        }
    })
}

fn file_time(sh: &Shell, path: &str) -> Option<std::time::SystemTime> {
    std::fs::metadata(sh.abs(path)).and_then(|m| m.modified()).ok()
}
