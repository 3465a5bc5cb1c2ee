//! The kiln stage IR as plain Rust values.
//!
//! `wit/kiln-build.wit` is the contract between frontends and the runner; this crate mirrors
//! its types one for one (same names, fields, cases and order; `tests/wit_drift.rs` fails when
//! they differ) so that Rust code on either side works with ordinary structs:
//!
//! - frontends written in Rust build these values and, with the `guest` feature, hand them to
//!   the component boundary through [`guest`];
//! - the runner converts what a component returns into these values, checks them with
//!   [`BuildGraph::validate`] and prints them as JSON (`kiln parse`).
//!
//! This crate owns the shape of the IR and the rules every IR must obey. It never parses
//! build files and never touches the filesystem.

#![deny(unsafe_code)]
#![deny(missing_docs)]

mod validate;
pub use validate::escapes_root;

#[cfg(feature = "guest")]
pub mod guest;

use serde::{Deserialize, Serialize};

pub use validate::{ValidationError, ValidationErrorKind};

/// A place in a build file: 1-based line, 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Position {
    /// Line number, 1-based.
    pub line: u32,
    /// Column, 1-based, in characters.
    pub column: u32,
}

impl Position {
    /// The position of byte `offset` of a build file (a bad UTF-8 sequence, a NUL byte): the
    /// characters before it on its line are counted, whatever comes after.
    ///
    /// ```
    /// use kiln_ir::Position;
    /// assert_eq!(Position::of_byte("ab\nçd".as_bytes(), 5), Position { line: 2, column: 2 });
    /// ```
    pub fn of_byte(bytes: &[u8], offset: usize) -> Position {
        let before = &bytes[..offset.min(bytes.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        Position { line: line as u32, column: column as u32 }
    }
}

/// Join a path onto a directory as the IR's paths are joined (Go's `path.Join("/", dir, p)`):
/// `.` and `..` are resolved lexically and never climb above `/`.
///
/// ```
/// assert_eq!(kiln_ir::join_path("/app", "sub/../x"), "/app/x");
/// assert_eq!(kiln_ir::join_path("/app", "/abs"), "/abs");
/// assert_eq!(kiln_ir::join_path("/", "../.."), "/");
/// ```
pub fn join_path(dir: &str, p: &str) -> String {
    let combined = if p.starts_with('/') { p.to_string() } else { format!("{dir}/{p}") };
    let mut parts: Vec<&str> = Vec::new();
    for part in combined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A range of a build file, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Span {
    /// First character.
    pub start: Position,
    /// Last character.
    pub end: Position,
}

impl Span {
    /// A span covering whole lines `first..=last` (column 1 to `last_col` of the last line).
    pub fn lines(first: u32, last: u32, last_col: u32) -> Span {
        Span { start: Position { line: first, column: 1 }, end: Position { line: last, column: last_col.max(1) } }
    }
}

/// A name and a value; lists of these keep source order and may repeat a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    /// The name.
    pub key: String,
    /// The value, after expansion.
    pub value: String,
}

impl KeyValue {
    /// A pair from anything string-like.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        KeyValue { key: key.into(), value: value.into() }
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The build cannot go on.
    Error,
    /// The build goes on.
    Warning,
}

/// A message for the user, tied to a place in the build file when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Whether this stops the build.
    pub severity: Severity,
    /// What is wrong, without file name or line.
    pub message: String,
    /// Where, if anywhere.
    pub span: Option<Span>,
    /// What the user can do about it.
    pub hint: Option<String>,
    /// A stable identifier of the kind of problem.
    pub code: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(message: impl Into<String>, span: Option<Span>) -> Self {
        Diagnostic { severity: Severity::Error, message: message.into(), span, hint: None, code: None }
    }

    /// A warning at `span`.
    pub fn warning(message: impl Into<String>, span: Option<Span>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(message, span) }
    }

    /// The same diagnostic with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The same diagnostic with a stable code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

/// Where the files of a COPY or a mount come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopySource {
    /// The build context.
    Context,
    /// An earlier (or later, for COPY --from) stage, by index.
    Stage(u32),
    /// An image, by reference.
    Image(String),
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Base {
    /// An empty filesystem.
    Scratch,
    /// An image, by reference.
    Image(String),
    /// An earlier stage, by index.
    Stage(u32),
}

/// A file whose contents the frontend supplies (a heredoc body).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InlineFile {
    /// File name (the heredoc delimiter).
    pub name: String,
    /// Final contents.
    pub contents: String,
    /// Permission bits.
    pub mode: u32,
}

/// The network a RUN step asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// The builder's default (for kiln: none).
    #[default]
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// The security mode a RUN step asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Security {
    /// The normal sandbox.
    #[default]
    Sandbox,
    /// `--security=insecure`.
    Insecure,
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CacheSharing {
    /// All writers at once.
    #[default]
    Shared,
    /// A private copy per writer.
    Private,
    /// One writer at a time.
    Locked,
}

/// `--mount=type=bind`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BindMount {
    /// Where the files come from.
    pub from: CopySource,
    /// Path inside the source.
    pub source: String,
    /// Whether writes are allowed (and discarded).
    pub read_write: bool,
}

/// `--mount=type=cache`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CacheMount {
    /// The cache's identity.
    pub id: String,
    /// Sharing mode.
    pub sharing: CacheSharing,
    /// Seed source.
    pub from: Option<CopySource>,
    /// Path inside the seed source.
    pub source: String,
    /// Read-only.
    pub read_only: bool,
    /// Directory mode.
    pub mode: u32,
    /// Directory owner.
    pub uid: u32,
    /// Directory group.
    pub gid: u32,
}

/// `--mount=type=tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TmpfsMount {
    /// Size limit in bytes.
    pub size: Option<u64>,
}

/// `--mount=type=secret`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretMount {
    /// Secret id.
    pub id: String,
    /// Environment variable to expose it in.
    pub env: Option<String>,
    /// Fail when missing.
    pub required: bool,
    /// File mode.
    pub mode: u32,
    /// File owner.
    pub uid: u32,
    /// File group.
    pub gid: u32,
}

/// `--mount=type=ssh`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SshMount {
    /// Agent id.
    pub id: String,
    /// Fail when missing.
    pub required: bool,
    /// Socket mode.
    pub mode: u32,
    /// Socket owner.
    pub uid: u32,
    /// Socket group.
    pub gid: u32,
}

/// The kind of a RUN mount.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountKind {
    /// `type=bind`.
    Bind(BindMount),
    /// `type=cache`.
    Cache(CacheMount),
    /// `type=tmpfs`.
    Tmpfs(TmpfsMount),
    /// `type=secret`.
    Secret(SecretMount),
    /// `type=ssh`.
    Ssh(SshMount),
    /// A frontend-supplied file.
    Inline(InlineFile),
}

/// One mount of a RUN step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute target path; `None` only for an env-only secret.
    pub target: Option<String>,
    /// What is mounted.
    pub kind: MountKind,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Run {
    /// Program and arguments (shell form already wrapped).
    pub argv: Vec<String>,
    /// Whether argv came from the shell form.
    pub shell_form: bool,
    /// Build arguments in scope.
    pub build_args: Vec<KeyValue>,
    /// Mounts.
    pub mounts: Vec<Mount>,
    /// Network mode.
    pub network: Network,
    /// Security mode.
    pub security: Security,
}

/// Options only ADD has.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct AddOptions {
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--checksum`.
    pub checksum: Option<String>,
    /// `--unpack`.
    pub unpack: Option<bool>,
}

/// `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CopyFiles {
    /// Source root.
    pub from: CopySource,
    /// Source paths or patterns.
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub inline_sources: Vec<InlineFile>,
    /// Destination.
    pub dest: String,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// Present for ADD.
    pub add: Option<AddOptions>,
}

/// `HEALTHCHECK`; durations in nanoseconds, 0 = default.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`.
    pub test: Vec<String>,
    /// Interval.
    pub interval: u64,
    /// Timeout.
    pub timeout: u64,
    /// Start period.
    pub start_period: u64,
    /// Start interval.
    pub start_interval: u64,
    /// Retries.
    pub retries: u32,
}

/// A command stored in the image configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Command {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Whether argv came from the shell form.
    pub shell_form: bool,
}

/// A change to the image configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigChange {
    /// ENV.
    Env(Vec<KeyValue>),
    /// LABEL.
    Label(Vec<KeyValue>),
    /// WORKDIR.
    Workdir(String),
    /// USER.
    User(String),
    /// CMD.
    Cmd(Command),
    /// ENTRYPOINT.
    Entrypoint(Command),
    /// EXPOSE.
    Expose(Vec<String>),
    /// VOLUME.
    Volume(Vec<String>),
    /// HEALTHCHECK.
    Healthcheck(Healthcheck),
    /// STOPSIGNAL.
    StopSignal(String),
    /// SHELL.
    Shell(Vec<String>),
    /// ONBUILD.
    Onbuild(String),
    /// MAINTAINER.
    Maintainer(String),
}

/// An ARG declaration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArgBinding {
    /// Name.
    pub name: String,
    /// Value in this build.
    pub value: Option<String>,
}

/// What an instruction does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Run a program.
    Run(Run),
    /// Copy files.
    Copy(CopyFiles),
    /// Change the configuration.
    Config(ConfigChange),
    /// Declare build arguments.
    Arg(Vec<ArgBinding>),
}

/// One step of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Instruction {
    /// What to do.
    pub op: Op,
    /// Where in the build file.
    pub span: Span,
    /// History `created_by`.
    pub created_by: String,
    /// One-line source text for progress output.
    pub text: String,
}

/// One stage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stage {
    /// Lower-cased name.
    pub name: Option<String>,
    /// Base.
    pub base: Base,
    /// `--platform`.
    pub platform: Option<String>,
    /// Steps.
    pub instructions: Vec<Instruction>,
    /// The FROM instruction.
    pub span: Span,
    /// The FROM instruction on one line.
    pub text: String,
}

/// The whole build.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BuildGraph {
    /// All stages, in source order.
    pub stages: Vec<Stage>,
    /// Index of the target stage.
    pub target: u32,
    /// Global ARGs.
    pub global_args: Vec<ArgBinding>,
    /// Warnings.
    pub warnings: Vec<Diagnostic>,
}

/// What the host asks a frontend to parse.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    /// Build file name for messages.
    pub file_name: String,
    /// Build file bytes.
    pub contents: Vec<u8>,
    /// `--build-arg` values.
    pub build_args: Vec<KeyValue>,
    /// `--target`.
    pub target: Option<String>,
    /// Platform of the building machine.
    pub build_platform: String,
    /// Platform being built.
    pub target_platform: String,
}

/// The parts of an image configuration a frontend sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    /// `Env` as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `User`.
    pub user: String,
    /// `Shell`.
    pub shell: Vec<String>,
    /// `OnBuild`.
    pub on_build: Vec<String>,
    /// `os/architecture[/variant]`.
    pub platform: String,
}

/// The host capability a frontend may use: look up a base image's configuration.
pub trait ImageResolver {
    /// Resolve `reference` (for `platform`, if given) to its configuration, or say why not.
    fn resolve_image_config(&self, reference: &str, platform: Option<&str>) -> Result<ImageConfig, String>;
}

/// A resolver that knows no image; every lookup fails. Useful offline and in tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoImages;

impl ImageResolver for NoImages {
    fn resolve_image_config(&self, reference: &str, _platform: Option<&str>) -> Result<ImageConfig, String> {
        Err(format!("no image resolver is available to look up {reference}"))
    }
}
