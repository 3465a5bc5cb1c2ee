//! kiln's sandboxed POSIX shell.
//!
//! kiln runs shell-form `RUN`, `CMD` and `ENTRYPOINT` with this program whenever the image
//! has no WASI `/bin/sh` of its own. It is a `wasm32-wasip2` component that starts other
//! programs through kiln's `spawn` interface; the parser is `brush-parser`, the rest (the
//! interpreter, expansions, builtins) is here. It runs inside the same sandbox as every
//! other program of a step and has no capability they lack.
//!
//! Usage, as `sh` is used: `sh -c 'commands' [name [args...]]`, `sh script [args...]`, or
//! `sh` reading the script from standard input; options `-e -u -x -f -a -C` and `-o name`.

mod arith;
mod builtins;
mod exec;
mod expand;
mod io;
mod pattern;
mod state;
mod sys;

use std::io::Read;

use state::Shell;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut name = args.first().cloned().unwrap_or_else(|| "sh".into());
    if let Some(base) = name.rsplit('/').next() {
        name = base.to_string();
    }
    let mut shell = Shell::new(name, Vec::new());
    let mut i = 1;
    let mut read_command = false;
    // Options come first; `-c` takes the command from the first operand.
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" || arg == "-" {
            i += 1;
            break;
        }
        let (on, flags) = match arg.as_bytes().first() {
            Some(b'-') if arg.len() > 1 => (true, &arg[1..]),
            Some(b'+') if arg.len() > 1 => (false, &arg[1..]),
            _ => break,
        };
        for flag in flags.chars() {
            match flag {
                'c' => read_command = true,
                // Interactive and login modes mean nothing in a build step.
                's' | 'i' | 'l' => {}
                'o' => {
                    i += 1;
                    let Some(option) = args.get(i) else {
                        usage(&shell, "-o: option name required");
                    };
                    if !builtins::set_named(&mut shell, option, on) {
                        usage(&shell, &format!("-o {option}: no such option"));
                    }
                }
                other => {
                    if !builtins::set_flag(&mut shell, other, on) {
                        usage(&shell, &format!("-{other}: no such option"));
                    }
                }
            }
        }
        i += 1;
    }
    let operands = &args[i.min(args.len())..];
    let source = if read_command {
        let Some(text) = operands.first() else {
            usage(&shell, "-c requires an argument");
        };
        if let Some(zero) = operands.get(1) {
            shell.name = zero.clone();
        }
        shell.params = operands.iter().skip(2).cloned().collect();
        text.clone()
    } else if let Some(script) = operands.first() {
        shell.name = script.clone();
        shell.params = operands[1..].to_vec();
        match std::fs::read(shell.abs(script)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                shell.error(format!("cannot open {script}: {}", exec::io_reason(&e)));
                sys::exit(if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 });
            }
        }
    } else {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            shell.error(format!("cannot read standard input: {e}"));
            sys::exit(2);
        }
        text
    };
    let status = shell.run_source(&source, false);
    shell.status = status;
    shell.run_exit_trap();
    sys::exit(status)
}

fn usage(shell: &Shell, message: &str) -> ! {
    shell.error(message);
    sys::exit(2)
}
