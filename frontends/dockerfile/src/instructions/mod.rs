//! The instruction layer: parse-tree nodes to typed commands.
//!
//! Owns what BuildKit's `instructions` package checks before any variable is expanded:
//! the keyword is known, the argument count fits, the flags are the ones the instruction
//! takes, JSON vs shell form, heredoc sources and destinations, HEALTHCHECK options,
//! ONBUILD restrictions. Values stay unexpanded; [`crate::convert`] expands them in the
//! environment of their stage.
//!
//! The typed commands are defined here (BuildKit's `commands.go`); `parse` builds them.

use crate::flags::{FlagError, Flags, Kind};
use crate::mounts;
use crate::parser::{self, Node};
use crate::strconv::{go_quote, parse_go_bool};
use crate::suggest::closest;

mod parse;

pub use parse::{parse_all, parse_device, parse_node};

/// Every instruction keyword, upper-case.
pub const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Where an instruction is and how it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The keyword as written.
    pub keyword: String,
    /// The logical line, continuations joined.
    pub original: String,
    /// First line, 1-based.
    pub start_line: usize,
    /// Last line, 1-based.
    pub end_line: usize,
}

impl Source {
    fn of(node: &Node) -> Self {
        Source {
            keyword: node.keyword.clone(),
            original: node.original.clone(),
            start_line: node.start_line,
            end_line: node.end_line,
        }
    }
}

/// A key and an unexpanded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The key, unexpanded.
    pub key: String,
    /// The value, unexpanded.
    pub value: String,
}

/// An ARG declaration: a name and maybe a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub key: String,
    /// The default, unexpanded.
    pub value: Option<String>,
    /// The doc comment above it (`# name does this`).
    pub comment: String,
}

/// A heredoc used as a file by RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineScript {
    /// The delimiter.
    pub name: String,
    /// The raw body (tabs not stripped).
    pub data: String,
    /// Whether `<<-` asked for tabs to be stripped.
    pub chomp: bool,
}

/// A command line that depends on the SHELL: RUN, CMD, ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdLine {
    /// The words (JSON form) or the one shell string.
    pub args: Vec<String>,
    /// True for the shell form: SHELL is prepended.
    pub prepend_shell: bool,
    /// Heredoc bodies (RUN only).
    pub files: Vec<InlineScript>,
}

/// RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCommand {
    /// The command line.
    pub cmd: CmdLine,
    /// `--mount` values, unexpanded.
    pub mounts: Vec<String>,
    /// `--network`.
    pub network: Option<String>,
    /// `--security`.
    pub security: Option<String>,
    /// `--device` values.
    pub devices: Vec<String>,
    /// The flags written.
    pub flags_used: Vec<String>,
}

/// A heredoc used as a COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceContent {
    /// File name (the delimiter).
    pub path: String,
    /// Body, tabs already stripped for `<<-`.
    pub data: String,
    /// Whether to expand variables in it.
    pub expand: bool,
}

/// COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCommand {
    /// True for ADD.
    pub is_add: bool,
    /// Source paths, unexpanded.
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub contents: Vec<SourceContent>,
    /// Destination, unexpanded.
    pub dest: String,
    /// `--from` (COPY).
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude`.
    pub excludes: Vec<String>,
    /// `--keep-git-dir` (ADD).
    pub keep_git_dir: bool,
    /// `--checksum` (ADD).
    pub checksum: Option<String>,
    /// `--unpack` (ADD).
    pub unpack: Option<bool>,
    /// Whether the sources were a JSON array.
    pub json: bool,
}

/// HEALTHCHECK's parsed options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    /// The test.
    pub test: Vec<String>,
    /// Nanoseconds.
    pub interval: u64,
    /// Nanoseconds.
    pub timeout: u64,
    /// Nanoseconds.
    pub start_period: u64,
    /// Nanoseconds.
    pub start_interval: u64,
    /// Count.
    pub retries: u32,
}

/// A typed instruction other than FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// ADD and COPY.
    Copy(CopyCommand),
    /// ARG.
    Arg(Vec<ArgDecl>),
    /// CMD.
    Cmd(CmdLine),
    /// ENTRYPOINT.
    Entrypoint(CmdLine),
    /// ENV.
    Env(Vec<Pair>),
    /// EXPOSE, unexpanded specs.
    Expose(Vec<String>),
    /// HEALTHCHECK.
    Healthcheck(Health),
    /// LABEL.
    Label(Vec<Pair>),
    /// MAINTAINER.
    Maintainer(String),
    /// ONBUILD: the trigger's source text.
    Onbuild(String),
    /// RUN.
    Run(RunCommand),
    /// SHELL.
    Shell(Vec<String>),
    /// STOPSIGNAL.
    StopSignal(String),
    /// USER.
    User(String),
    /// VOLUME.
    Volume(Vec<String>),
    /// WORKDIR.
    Workdir(String),
}

/// FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageDecl {
    /// The base, unexpanded.
    pub base_name: String,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The name as written.
    pub name_as_written: Option<String>,
    /// `AS` as written (for the casing check).
    pub as_keyword: Option<String>,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    /// The doc comment for the stage.
    pub comment: String,
}

/// One instruction: FROM starts a stage, everything else is a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// FROM.
    Stage(StageDecl),
    /// Any other instruction.
    Command(Command),
}

/// A typed instruction with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The instruction.
    pub instruction: Instruction,
    /// Where it came from.
    pub source: Source,
}

/// An instruction-layer error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstructionError {
    /// BuildKit's wording.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// First line, 1-based.
    pub start_line: usize,
    /// Last line, 1-based.
    pub end_line: usize,
}
