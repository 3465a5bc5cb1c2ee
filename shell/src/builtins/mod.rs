//! The builtins: POSIX's special builtins, and the regular ones a Dockerfile's RUN lines
//! use (`cd`, `echo`, `printf`, `test`, `read`, `command`, ...). Each is a function of the
//! shell and its arguments that writes through the shell's descriptors.
//!
//! Builtins never start programs except `command` and `exec`, which go through
//! [`Shell::run_program`].
//!
//! `set` and the shell options are in `options`, `echo` and `printf` in `print`, `test` in
//! `test`; the dispatch by name and the other builtins stay here.

use brush_parser::ast::{BinaryPredicate, TestExpr, UnaryPredicate};

use crate::arith::parse_number;
use crate::state::{Flow, Options, Res, Shell, Var, is_name};

mod options;
mod print;
mod test;

use options::set;
pub use options::{set_flag, set_named};
pub use print::unescape;
use print::{echo, printf};
use test::test;

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
