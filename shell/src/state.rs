//! The shell's state: variables, positional parameters, functions, options, the working
//! directory and the descriptor table, and the control flow that unwinds through commands.
//!
//! A subshell is a clone of this state, so nothing here may refer to anything a clone would
//! share by accident (functions are shared read-only; buffers are shared on purpose).

use std::collections::HashMap;
use std::rc::Rc;

use brush_parser::ast;

use crate::io::Fds;

/// A shell variable.
#[derive(Debug, Clone)]
pub struct Var {
    /// Its value.
    pub value: String,
    /// Whether programs the shell starts see it.
    pub exported: bool,
    /// Whether it can still be assigned.
    pub readonly: bool,
}

/// `set -o` options kiln's shell implements.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-e`: exit when a command fails.
    pub errexit: bool,
    /// `-u`: expanding an unset variable is an error.
    pub nounset: bool,
    /// `-x`: print each command before running it.
    pub xtrace: bool,
    /// `-f`: no pathname expansion.
    pub noglob: bool,
    /// `-o pipefail`: a pipeline fails if any command in it fails.
    pub pipefail: bool,
    /// `-a`: export every variable assigned.
    pub allexport: bool,
    /// `-C`: `>` does not overwrite files.
    pub noclobber: bool,
    /// `-v`: print input as it is read (accepted; kiln prints nothing for it).
    pub verbose: bool,
}

/// Where one option's flag lives in [`Options`].
pub type OptionField = fn(&mut Options) -> &mut bool;

impl Options {
    /// Every option: its `set -o` name, its letter (if it has one), and where it lives. The
    /// one table that `set -x`, `set -o name`, `set -o` and `$-` all read.
    pub const TABLE: [(&'static str, Option<char>, OptionField); 8] = [
        ("allexport", Some('a'), |o| &mut o.allexport),
        ("errexit", Some('e'), |o| &mut o.errexit),
        ("noclobber", Some('C'), |o| &mut o.noclobber),
        ("noglob", Some('f'), |o| &mut o.noglob),
        ("nounset", Some('u'), |o| &mut o.nounset),
        ("pipefail", None, |o| &mut o.pipefail),
        ("verbose", Some('v'), |o| &mut o.verbose),
        ("xtrace", Some('x'), |o| &mut o.xtrace),
    ];

    /// Each option's name, letter and state, in `set -o` order.
    pub fn list(&self) -> Vec<(&'static str, Option<char>, bool)> {
        let mut copy = self.clone();
        Self::TABLE.iter().map(|(name, letter, field)| (*name, *letter, *field(&mut copy))).collect()
    }
}

/// How a command ends besides its status: the unwinding that `exit`, `return`, `break` and
/// `continue` (and a fatal error) start, carried up until the construct that ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Leave the shell (or subshell) with this status.
    Exit(i32),
    /// Leave the function or sourced file with this status.
    Return(i32),
    /// Leave this many loops.
    Break(u32),
    /// Go on with the loop this many levels out.
    Continue(u32),
}

/// A command's outcome: its status, or unwinding.
pub type Res = Result<i32, Flow>;

/// The whole shell.
#[derive(Clone)]
pub struct Shell {
    /// Variables by name.
    pub vars: HashMap<String, Var>,
    /// `$1`, `$2`, ...
    pub params: Vec<String>,
    /// `$0`.
    pub name: String,
    /// Functions by name.
    pub funcs: HashMap<String, Rc<ast::FunctionDefinition>>,
    /// `set` options.
    pub opts: Options,
    /// `$?`.
    pub status: i32,
    /// The absolute working directory.
    pub cwd: String,
    /// Descriptors.
    pub fds: Fds,
    /// How many enclosing contexts ignore `set -e` (an `if` condition, the left of `&&`).
    pub errexit_ignored: u32,
    /// How many loops enclose the running command.
    pub loops: u32,
    /// How many functions or sourced files enclose it.
    pub frames: u32,
    /// The line being run, for messages.
    pub line: usize,
    /// The command the `EXIT` trap runs.
    pub exit_trap: Option<String>,
    /// Saved values of `local` variables, one list per function call.
    pub locals: Vec<Vec<(String, Option<Var>)>>,
}

impl Shell {
    /// A shell with the environment it was started with.
    pub fn new(name: String, params: Vec<String>) -> Self {
        let mut vars: HashMap<String, Var> =
            std::env::vars().map(|(k, v)| (k, Var { value: v, exported: true, readonly: false })).collect();
        let cwd = vars
            .get("PWD")
            .map(|v| v.value.clone())
            .filter(|p| p.starts_with('/'))
            .or_else(|| std::env::current_dir().ok().map(|p| p.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "/".into());
        vars.insert("PWD".into(), Var { value: cwd.clone(), exported: true, readonly: false });
        vars.entry("IFS".into()).or_insert(Var { value: " \t\n".into(), exported: false, readonly: false });
        vars.entry("PS4".into()).or_insert(Var { value: "+ ".into(), exported: false, readonly: false });
        Shell {
            vars,
            params,
            name,
            funcs: HashMap::new(),
            opts: Options::default(),
            status: 0,
            cwd,
            fds: Fds::default(),
            errexit_ignored: 0,
            loops: 0,
            frames: 0,
            line: 1,
            exit_trap: None,
            locals: Vec::new(),
        }
    }

    /// A variable's value, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.value.as_str())
    }

    /// Assign a variable (keeping its export flag). Fails on a readonly variable.
    pub fn set(&mut self, name: &str, value: String) -> Result<(), String> {
        let allexport = self.opts.allexport;
        match self.vars.get_mut(name) {
            Some(var) if var.readonly => return Err(format!("{name}: is read only")),
            Some(var) => {
                var.value = value;
                var.exported |= allexport;
            }
            None => {
                self.vars.insert(name.into(), Var { value, exported: allexport, readonly: false });
            }
        }
        Ok(())
    }

    /// Remove a variable. Fails on a readonly variable.
    pub fn unset(&mut self, name: &str) -> Result<(), String> {
        if self.vars.get(name).is_some_and(|v| v.readonly) {
            return Err(format!("{name}: is read only"));
        }
        self.vars.remove(name);
        Ok(())
    }

    /// The environment programs get: exported variables, sorted for a stable order.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> =
            self.vars.iter().filter(|(_, v)| v.exported).map(|(k, v)| (k.clone(), v.value.clone())).collect();
        env.sort();
        env
    }

    /// `$IFS`, with its default when unset.
    pub fn ifs(&self) -> String {
        self.get("IFS").map(str::to_string).unwrap_or_else(|| " \t\n".into())
    }

    /// Print `sh: LINE: message` on standard error, as dash words its errors.
    pub fn error(&self, message: impl std::fmt::Display) {
        let text = format!("{}: {}: {}\n", self.name, self.line, message);
        let _ = self.fds.write(2, text.as_bytes());
    }

    /// Make `path` absolute against the working directory.
    pub fn abs(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else if self.cwd.ends_with('/') {
            format!("{}{}", self.cwd, path)
        } else {
            format!("{}/{}", self.cwd, path)
        }
    }
}

/// Whether `name` is a valid variable name.
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}
