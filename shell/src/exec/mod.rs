//! Running parsed shell code: lists, and-or lists, pipelines, simple and compound commands,
//! functions and redirections, with POSIX's rules for `$?`, `set -e` and `set -x`.
//!
//! Programs run through [`crate::sys`]; builtins through [`crate::builtins`]. A pipeline of
//! programs streams from one to the next; a pipeline with a builtin, function or compound
//! command in it runs its stages one after the other, each in a subshell, passing the
//! output along in memory (WASI gives the shell no threads to run them side by side).
//!
//! Redirections are in `redirect`.

use std::cell::RefCell;
use std::rc::Rc;

use brush_parser::ast::{self, Command, CommandPrefixOrSuffixItem, CompoundCommand, IoFileRedirectKind, IoRedirect};

use crate::builtins::{self, Kind};
use crate::io::{Fd, Reader};
use crate::state::{Flow, Res, Shell};
use crate::sys;

mod redirect;

impl Shell {
    /// Parse and run `source` (a `-c` string, a script, `eval`, `.`, command substitution).
    /// Returns the final status; `exit` (and fatal errors) end only this call when
    /// `subshell` is set.
    pub fn run_source(&mut self, source: &str, subshell: bool) -> i32 {
        match self.run_text(source) {
            Ok(status) => status,
            Err(Flow::Exit(status)) if subshell => {
                self.run_exit_trap();
                status
            }
            Err(Flow::Exit(status)) => status,
            Err(Flow::Return(status)) => status,
            Err(Flow::Break(_)) | Err(Flow::Continue(_)) => self.status,
        }
    }

    /// Parse and run text in this shell, passing unwinding on.
    pub fn run_text(&mut self, source: &str) -> Res {
        let options = brush_parser::ParserOptions { posix_mode: true, sh_mode: true, ..Default::default() };
        let mut parser = brush_parser::Parser::new(std::io::Cursor::new(source), &options);
        let program = match parser.parse_program() {
            Ok(program) => program,
            Err(e) => {
                let message = e.to_string();
                self.error(format!("Syntax error: {}", message.lines().next().unwrap_or("cannot parse")));
                return Err(Flow::Exit(2));
            }
        };
        let mut status = 0;
        for command in &program.complete_commands {
            status = self.run_list(command)?;
        }
        Ok(status)
    }

    /// Run the `EXIT` trap, once.
    pub fn run_exit_trap(&mut self) {
        if let Some(trap) = self.exit_trap.take() {
            let saved = self.status;
            let _ = self.run_text(&trap);
            self.status = saved;
        }
    }

    fn run_list(&mut self, list: &ast::CompoundList) -> Res {
        let mut status = 0;
        for item in &list.0 {
            // `&`: kiln's shell has no job control; the command runs to its end first.
            status = self.run_and_or(&item.0)?;
        }
        Ok(status)
    }

    fn run_and_or(&mut self, list: &ast::AndOrList) -> Res {
        let rest = list.additional.len();
        let mut status = self.run_pipeline_checked(&list.first, rest > 0)?;
        for (i, next) in list.additional.iter().enumerate() {
            let last = i + 1 == rest;
            status = match next {
                ast::AndOr::And(p) if status == 0 => self.run_pipeline_checked(p, !last)?,
                ast::AndOr::Or(p) if status != 0 => self.run_pipeline_checked(p, !last)?,
                _ => status,
            };
        }
        Ok(status)
    }

    /// Run a pipeline and apply `set -e` to its status, unless `set -e` is ignored here.
    fn run_pipeline_checked(&mut self, pipeline: &ast::Pipeline, not_last: bool) -> Res {
        let ignore = not_last || pipeline.bang;
        if ignore {
            self.errexit_ignored += 1;
        }
        let result = self.run_pipeline(pipeline);
        if ignore {
            self.errexit_ignored -= 1;
        }
        let mut status = result?;
        if pipeline.bang {
            status = (status == 0) as i32;
        }
        self.status = status;
        // A compound command that failed because of a command whose failure was ignored
        // does not end the shell (POSIX); its own commands were checked as they ran.
        let compound_only = pipeline.seq.len() == 1
            && matches!(&pipeline.seq[0], Command::Compound(c, _) if !matches!(c, CompoundCommand::Subshell(_)));
        if status != 0 && self.opts.errexit && self.errexit_ignored == 0 && !ignore && !compound_only {
            return Err(Flow::Exit(status));
        }
        Ok(status)
    }

    fn run_pipeline(&mut self, pipeline: &ast::Pipeline) -> Res {
        if pipeline.seq.len() == 1 {
            return self.run_command(&pipeline.seq[0]);
        }
        let statuses = match self.streamable(&pipeline.seq) {
            Some(specs) => specs,
            None => self.run_stages(&pipeline.seq),
        };
        let status = if self.opts.pipefail {
            statuses.iter().rev().find(|&&s| s != 0).copied().unwrap_or(0)
        } else {
            statuses.last().copied().unwrap_or(0)
        };
        Ok(status)
    }

    /// Run each stage in a subshell, one after the other, the output of each the input of
    /// the next.
    fn run_stages(&mut self, stages: &[Command]) -> Vec<i32> {
        let mut input: Option<Vec<u8>> = None;
        let mut statuses = Vec::new();
        for (i, stage) in stages.iter().enumerate() {
            let mut sub = self.clone();
            if let Some(data) = input.take() {
                sub.fds.set(0, Fd::Bytes(Rc::new(RefCell::new(Reader { data, pos: 0 }))));
            }
            let buffer = Rc::new(RefCell::new(Vec::new()));
            if i + 1 < stages.len() {
                sub.fds.set(1, Fd::Buffer(buffer.clone()));
            }
            let status = match sub.run_command(stage) {
                Ok(status) => status,
                Err(Flow::Exit(status)) => {
                    sub.run_exit_trap();
                    status
                }
                Err(Flow::Return(status)) => status,
                Err(_) => sub.status,
            };
            statuses.push(status);
            input = Some(std::mem::take(&mut *buffer.borrow_mut()));
        }
        statuses
    }

    /// A pipeline of plain programs without redirections streams through the host; returns
    /// the statuses, or `None` when it must run stage by stage.
    fn streamable(&mut self, stages: &[Command]) -> Option<Vec<i32>> {
        let mut commands = Vec::new();
        for stage in stages {
            let Command::Simple(simple) = stage else { return None };
            let items = simple_items(simple);
            if items.iter().any(|item| matches!(item, CommandPrefixOrSuffixItem::IoRedirect(_))) {
                return None;
            }
            let Some(name) = &simple.word_or_name else { return None };
            // Only a literal name can be classified before expansion.
            if name.value.contains(['$', '`', '\'', '"', '\\', '*', '?', '[', '~']) {
                return None;
            }
            if builtins::kind(&name.value) != Kind::External || self.funcs.contains_key(&name.value) {
                return None;
            }
            commands.push(simple);
        }
        let mut specs = Vec::new();
        for simple in commands {
            let mut sub = self.clone();
            let (argv, env) = match sub.prepare_external(simple) {
                Ok(Some(prepared)) => prepared,
                _ => return None,
            };
            specs.push((argv, env, sub));
        }
        let count = specs.len();
        let mut statuses = Vec::new();
        let mut run = Vec::new();
        for (i, (argv, env, sub)) in specs.into_iter().enumerate() {
            if sub.opts.xtrace {
                sub.trace(&argv);
            }
            let resolved = self.find_program(&argv[0]);
            let mut argv = argv;
            if let Some(path) = resolved {
                argv[0] = path;
            }
            let stdout = if i + 1 == count { self.output_of(1, 1) } else { sys::Output::Null };
            run.push(sys::Spec {
                argv,
                env,
                cwd: self.cwd.clone(),
                stdin: if i == 0 { self.fds.input(0) } else { sys::Input::Null },
                stdout,
                stderr: self.output_of(2, 2),
            });
        }
        for result in sys::run_pipeline(run) {
            statuses.push(match result {
                Ok(status) => status,
                Err(e) => {
                    self.error(&e.0);
                    e.status()
                }
            });
        }
        Some(statuses)
    }

    /// Where a program's output `stream` goes when the shell's descriptor `n` is its target.
    fn output_of(&self, stream: u8, n: usize) -> sys::Output<'static> {
        match self.fds.output(stream, n) {
            Some(output) => output,
            None => {
                let fds = self.fds.clone();
                sys::Output::Collect(Box::new(move |bytes: &[u8]| {
                    let _ = fds.write(n, bytes);
                }))
            }
        }
    }

    pub(crate) fn run_command(&mut self, command: &Command) -> Res {
        match command {
            Command::Simple(simple) => self.run_simple(simple),
            Command::Compound(compound, redirects) => {
                let saved = self.fds.clone();
                if let Some(list) = redirects
                    && let Err(message) = self.redirect_all(list.0.iter())
                {
                    self.fds = saved;
                    self.error(message);
                    return Ok(2);
                }
                let result = self.run_compound(compound);
                self.fds = saved;
                result
            }
            Command::Function(definition) => {
                self.funcs.insert(definition.fname.value.clone(), Rc::new(definition.clone()));
                Ok(0)
            }
            Command::ExtendedTest(..) => {
                self.error("[[: not found (kiln's sh is POSIX; use [ ])");
                Ok(127)
            }
        }
    }

    fn run_compound(&mut self, compound: &CompoundCommand) -> Res {
        match compound {
            CompoundCommand::BraceGroup(group) => self.run_list(&group.list),
            CompoundCommand::Subshell(sub) => {
                let mut child = self.clone();
                let status = match child.run_list(&sub.list) {
                    Ok(status) => status,
                    Err(Flow::Exit(status)) => {
                        child.run_exit_trap();
                        status
                    }
                    Err(Flow::Return(status)) => status,
                    Err(_) => child.status,
                };
                Ok(status)
            }
            CompoundCommand::IfClause(clause) => {
                if self.condition(&clause.condition)? == 0 {
                    return self.run_list(&clause.then);
                }
                for branch in clause.elses.iter().flatten() {
                    match &branch.condition {
                        Some(condition) => {
                            if self.condition(condition)? == 0 {
                                return self.run_list(&branch.body);
                            }
                        }
                        None => return self.run_list(&branch.body),
                    }
                }
                Ok(0)
            }
            CompoundCommand::ForClause(clause) => {
                let values = match &clause.values {
                    Some(words) => {
                        let mut values = Vec::new();
                        for word in words {
                            values.extend(self.expand_fields(&word.value)?);
                        }
                        values
                    }
                    None => self.params.clone(),
                };
                let mut status = 0;
                self.loops += 1;
                let result = (|| {
                    for value in values {
                        self.set(&clause.variable_name, value).map_err(|e| self.fatal(e))?;
                        match self.loop_body(&clause.body.list)? {
                            Step::Next(s) => status = s,
                            Step::Skip => {}
                            Step::Leave => break,
                        }
                    }
                    Ok(status)
                })();
                self.loops -= 1;
                result
            }
            CompoundCommand::WhileClause(clause) | CompoundCommand::UntilClause(clause) => {
                let until = matches!(compound, CompoundCommand::UntilClause(_));
                let mut status = 0;
                self.loops += 1;
                let result = (|| {
                    loop {
                        let test = self.condition(&clause.0)?;
                        if (test == 0) == until {
                            break;
                        }
                        match self.loop_body(&clause.1.list)? {
                            Step::Next(s) => status = s,
                            Step::Skip => {}
                            Step::Leave => break,
                        }
                    }
                    Ok(status)
                })();
                self.loops -= 1;
                result
            }
            CompoundCommand::CaseClause(clause) => {
                let value: Vec<char> = self.expand_string(&clause.value.value)?.chars().collect();
                let mut fall_through = false;
                for item in &clause.cases {
                    let mut hit = fall_through;
                    if !hit {
                        for pattern in &item.patterns {
                            let pattern = self.expand_pattern(&pattern.value)?;
                            if crate::pattern::matches(&pattern, &value) {
                                hit = true;
                                break;
                            }
                        }
                    }
                    if hit {
                        let status = match &item.cmd {
                            Some(list) => self.run_list(list)?,
                            None => 0,
                        };
                        match item.post_action {
                            ast::CaseItemPostAction::ExitCase => return Ok(status),
                            ast::CaseItemPostAction::UnconditionallyExecuteNextCaseItem => fall_through = true,
                            ast::CaseItemPostAction::ContinueEvaluatingCases => fall_through = false,
                        }
                    }
                }
                Ok(0)
            }
            CompoundCommand::Arithmetic(arith) => {
                let value = self.arith_text(&arith.expr.value)?;
                Ok((value == 0) as i32)
            }
            CompoundCommand::ArithmeticForClause(_) => {
                self.error("for ((...)) is bash syntax; kiln's sh is POSIX");
                Err(Flow::Exit(2))
            }
            CompoundCommand::Coprocess(_) => {
                self.error("coproc is bash syntax; kiln's sh is POSIX");
                Err(Flow::Exit(2))
            }
        }
    }

    /// Run one pass of a loop's body: `break`/`continue` for this loop end here, those for
    /// outer loops go on up one level less.
    fn loop_body(&mut self, list: &ast::CompoundList) -> Result<Step, Flow> {
        match self.run_list(list) {
            Ok(status) => Ok(Step::Next(status)),
            Err(Flow::Break(1)) => Ok(Step::Leave),
            Err(Flow::Break(n)) => Err(Flow::Break(n - 1)),
            Err(Flow::Continue(1)) => Ok(Step::Skip),
            Err(Flow::Continue(n)) => Err(Flow::Continue(n - 1)),
            Err(other) => Err(other),
        }
    }

    /// Run a condition (`if`, `while`): `set -e` does not apply inside it.
    fn condition(&mut self, list: &ast::CompoundList) -> Res {
        self.errexit_ignored += 1;
        let result = self.run_list(list);
        self.errexit_ignored -= 1;
        result
    }

    /// Expand a simple command's words and assignments for a program: `(argv, env)`, or
    /// `None` when it has no command word.
    fn prepare_external(&mut self, simple: &ast::SimpleCommand) -> Result<Option<Prepared>, Flow> {
        let mut words = Vec::new();
        let mut assignments = Vec::new();
        for item in simple_items(simple) {
            match item {
                CommandPrefixOrSuffixItem::Word(word) => words.extend(self.expand_fields(&word.value)?),
                CommandPrefixOrSuffixItem::AssignmentWord(assignment, word) if words.is_empty() => {
                    assignments.push(self.assignment(&assignment, &word)?);
                }
                CommandPrefixOrSuffixItem::AssignmentWord(_, word) => words.extend(self.expand_fields(&word.value)?),
                _ => {}
            }
        }
        if words.is_empty() {
            return Ok(None);
        }
        let mut env = self.environment();
        for (name, value) in assignments {
            env.retain(|(k, _)| *k != name);
            env.push((name, value));
        }
        Ok(Some((words, env)))
    }

    fn assignment(&mut self, assignment: &ast::Assignment, _word: &ast::Word) -> Result<(String, String), Flow> {
        let name = match &assignment.name {
            ast::AssignmentName::VariableName(name) => name.clone(),
            ast::AssignmentName::ArrayElementName(name, _) => {
                return Err(self.fatal(format!("{name}[...]: arrays are not supported by kiln's sh")));
            }
        };
        let value = match &assignment.value {
            ast::AssignmentValue::Scalar(word) => self.expand_string(&word.value)?,
            ast::AssignmentValue::Array(_) => {
                return Err(self.fatal(format!("{name}=(...): arrays are not supported by kiln's sh")));
            }
        };
        let value = if assignment.append { format!("{}{}", self.get(&name).unwrap_or(""), value) } else { value };
        Ok((name, value))
    }

    fn run_simple(&mut self, simple: &ast::SimpleCommand) -> Res {
        if let Some(line) = simple
            .word_or_name
            .as_ref()
            .and_then(|w| w.loc.as_ref())
            .or_else(|| simple.prefix.as_ref().and_then(|p| p.0.first()).and_then(item_loc))
        {
            self.line = line.start.line;
        }
        // Expand: words first (left to right), assignments, then redirections when used.
        let mut words: Vec<String> = Vec::new();
        let mut assignments = Vec::new();
        let mut redirects: Vec<IoRedirect> = Vec::new();
        for item in simple_items(simple) {
            match item {
                CommandPrefixOrSuffixItem::Word(word) => words.extend(self.expand_fields(&word.value)?),
                CommandPrefixOrSuffixItem::AssignmentWord(assignment, word) => {
                    if words.is_empty() {
                        assignments.push((assignment, word));
                    } else {
                        words.extend(self.expand_fields(&word.value)?);
                    }
                }
                CommandPrefixOrSuffixItem::IoRedirect(redirect) => redirects.push(redirect),
                CommandPrefixOrSuffixItem::ProcessSubstitution(..) => {
                    self.error("process substitution is bash syntax; kiln's sh is POSIX");
                    return Ok(2);
                }
            }
        }
        let status_before = self.status;
        self.status = 0;
        let mut values = Vec::new();
        for (assignment, word) in assignments {
            values.push(self.assignment(&assignment, &word)?);
        }
        let substitution_status = self.status;
        self.status = status_before;
        if self.opts.xtrace {
            let mut shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
            shown.extend(words.iter().map(|w| quote(w)));
            if !shown.is_empty() {
                let ps4 = self.get("PS4").unwrap_or("+ ").to_string();
                let _ = self.fds.write(2, format!("{ps4}{}\n", shown.join(" ")).as_bytes());
            }
        }

        if words.is_empty() {
            for (name, value) in values {
                if let Err(e) = self.set(&name, value) {
                    self.error(e);
                    return Err(Flow::Exit(2));
                }
            }
            let saved = self.fds.clone();
            let result = self.redirect_all(redirects.iter());
            self.fds = saved;
            if let Err(message) = result {
                self.error(message);
                return Ok(1);
            }
            return Ok(substitution_status);
        }

        let name = words[0].clone();
        let kind = builtins::kind(&name);
        let saved_fds = self.fds.clone();
        if let Err(message) = self.redirect_all(redirects.iter()) {
            self.fds = saved_fds;
            self.error(message);
            return if kind == Kind::Special { Err(Flow::Exit(2)) } else { Ok(1) };
        }
        // `exec` without a command makes its redirections the shell's own.
        let keep_fds = name == "exec" && words.len() == 1;
        let result = if kind == Kind::Special {
            // Assignments before a special builtin stay (POSIX).
            for (n, v) in values {
                if let Err(e) = self.set(&n, v) {
                    self.error(e);
                    self.fds = saved_fds;
                    return Err(Flow::Exit(2));
                }
            }
            builtins::run(self, &words)
        } else if let Some(function) = self.funcs.get(&name).cloned() {
            let saved_vars = self.temporary(&values);
            let result = self.call_function(&function, &words[1..]);
            self.restore(saved_vars);
            result
        } else if kind == Kind::Regular {
            let saved_vars = self.temporary(&values);
            let result = builtins::run(self, &words);
            self.restore(saved_vars);
            result
        } else {
            let mut env = self.environment();
            for (n, v) in values {
                env.retain(|(k, _)| *k != n);
                env.push((n, v));
            }
            Ok(self.run_program(words, env))
        };
        if !keep_fds {
            self.fds = saved_fds;
        }
        result
    }

    /// Set variables for the length of one command; returns what to put back.
    fn temporary(&mut self, values: &[(String, String)]) -> Vec<(String, Option<crate::state::Var>)> {
        let mut saved = Vec::new();
        for (name, value) in values {
            saved.push((name.clone(), self.vars.get(name).cloned()));
            let _ = self.set(name, value.clone());
            if let Some(var) = self.vars.get_mut(name) {
                var.exported = true;
            }
        }
        saved
    }

    fn restore(&mut self, saved: Vec<(String, Option<crate::state::Var>)>) {
        for (name, old) in saved.into_iter().rev() {
            match old {
                Some(var) => {
                    self.vars.insert(name, var);
                }
                None => {
                    self.vars.remove(&name);
                }
            }
        }
    }

    /// Call a function with `args` as its positional parameters.
    pub fn call_function(&mut self, function: &ast::FunctionDefinition, args: &[String]) -> Res {
        let saved = std::mem::replace(&mut self.params, args.to_vec());
        self.frames += 1;
        self.locals.push(Vec::new());
        let saved_fds = self.fds.clone();
        let mut result = match &function.body.1 {
            Some(list) => self.redirect_all(list.0.iter()).map_err(|message| {
                self.error(message);
                Flow::Return(2)
            }),
            None => Ok(()),
        }
        .and_then(|()| self.run_compound(&function.body.0));
        self.fds = saved_fds;
        if let Err(Flow::Return(status)) = result {
            result = Ok(status);
        }
        let locals = self.locals.pop().unwrap_or_default();
        self.restore(locals);
        self.frames -= 1;
        self.params = saved;
        result
    }

    /// Start a program and wait for it.
    pub fn run_program(&mut self, mut argv: Vec<String>, env: Vec<(String, String)>) -> i32 {
        if let Some(path) = self.find_program(&argv[0]) {
            argv[0] = path;
        }
        let spec = sys::Spec {
            argv,
            env,
            cwd: self.cwd.clone(),
            stdin: self.fds.input(0),
            stdout: self.output_of(1, 1),
            stderr: self.output_of(2, 2),
        };
        match sys::run_pipeline(vec![spec]).pop() {
            Some(Ok(status)) => status,
            Some(Err(e)) => {
                self.error(&e.0);
                e.status()
            }
            None => 127,
        }
    }

    /// Where a command name is: a path as given, or the first match on `PATH`. `sh` is
    /// always found (the host supplies kiln's shell when the image has none).
    pub fn find_program(&self, name: &str) -> Option<String> {
        if name.contains('/') {
            return Some(name.to_string());
        }
        let path = self.get("PATH").unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        for dir in path.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let candidate = if dir.ends_with('/') { format!("{dir}{name}") } else { format!("{dir}/{name}") };
            let absolute = self.abs(&candidate);
            if std::fs::metadata(&absolute).is_ok_and(|m| m.is_file()) {
                return Some(candidate);
            }
        }
        (name == "sh").then(|| "/bin/sh".to_string())
    }

    fn trace(&self, argv: &[String]) {
        let ps4 = self.get("PS4").unwrap_or("+ ").to_string();
        let shown: Vec<String> = argv.iter().map(|w| quote(w)).collect();
        let _ = self.fds.write(2, format!("{ps4}{}\n", shown.join(" ")).as_bytes());
    }
}

/// A program's argv and environment, ready to start.
type Prepared = (Vec<String>, Vec<(String, String)>);

/// What a loop does after one pass of its body.
enum Step {
    /// Go on; the body's status.
    Next(i32),
    /// `continue`: on with the next pass, the loop's status as it was.
    Skip,
    /// `break`.
    Leave,
}

/// A simple command's items in source order: prefix, command word, suffix.
fn simple_items(simple: &ast::SimpleCommand) -> Vec<CommandPrefixOrSuffixItem> {
    let mut items = Vec::new();
    if let Some(prefix) = &simple.prefix {
        items.extend(prefix.0.iter().cloned());
    }
    if let Some(word) = &simple.word_or_name {
        items.push(CommandPrefixOrSuffixItem::Word(word.clone()));
    }
    if let Some(suffix) = &simple.suffix {
        items.extend(suffix.0.iter().cloned());
    }
    items
}

fn item_loc(item: &CommandPrefixOrSuffixItem) -> Option<&brush_parser::SourceSpan> {
    match item {
        CommandPrefixOrSuffixItem::Word(word) => word.loc.as_ref(),
        CommandPrefixOrSuffixItem::AssignmentWord(assignment, _) => Some(&assignment.loc),
        _ => None,
    }
}

/// An I/O error as a shell words it.
pub fn io_reason(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory",
        std::io::ErrorKind::PermissionDenied => "Permission denied",
        std::io::ErrorKind::AlreadyExists => "File exists",
        std::io::ErrorKind::IsADirectory => "Is a directory",
        std::io::ErrorKind::NotADirectory => "Not a directory",
        _ => "cannot open",
    }
}

/// Quote a word for `set -x` output the way dash does (only when needed).
pub fn quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
