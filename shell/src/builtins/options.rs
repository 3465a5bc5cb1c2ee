//! `set`: the shell options by letter (`-e`, `-u`, `-x`, ...) and by name (`-o errexit`),
//! and the positional parameters it replaces.
//!
//! It owns option syntax only; what each option changes is the executor's business.

use super::*;

pub(super) fn set(sh: &mut Shell, args: &[String]) -> Res {
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
