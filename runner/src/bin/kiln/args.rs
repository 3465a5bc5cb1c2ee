//! The command line's flags (clap), and what they mean as library requests.
//!
//! This module turns flags into [`kiln::pipeline`] requests and nothing else: reading the
//! environment for `--build-arg KEY` and standard input for `-f -` happen here, because
//! they are the command line's, not the library's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use kiln::executor::ExecutorChoice;
use kiln::exporter::{self, Output};
use kiln::frontend::FrontendLimits;
use kiln::ir::KeyValue;
use kiln::limits::{self, Limits};
use kiln::pipeline::{BuildFile, BuildRequest, ParseRequest, RunImageRequest};
use kiln::source::named::NamedContexts;
use kiln::source::registry::RegistryOptions;

use crate::render::Mode;

/// Builds OCI images from Dockerfiles with no privileges.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, long_about = None)]
pub struct Cli {
    /// kiln's store (images, cache, compiled modules) [default: $XDG_DATA_HOME/kiln]
    #[arg(long, global = true, env = "KILN_HOME", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Keep compiled WebAssembly (frontends, the shell, RUN programs) in DIR instead of the
    /// store, so several stores compile each module once (created 0700; refused if others can
    /// write to it)
    #[arg(long, global = true, env = "KILN_COMPILE_CACHE", value_name = "DIR")]
    pub compile_cache: Option<PathBuf>,

    /// Talk to this registry over plain HTTP, without TLS (repeat, or separate with commas)
    #[arg(
        long = "insecure-registry",
        global = true,
        env = "KILN_INSECURE_REGISTRIES",
        value_delimiter = ',',
        value_name = "HOST[:PORT]"
    )]
    pub insecure_registries: Vec<String>,

    /// Stop a registry transfer that makes no progress for this long
    #[arg(long, global = true, env = "KILN_REGISTRY_TIMEOUT", value_name = "SECONDS",
          default_value_t = limits::DEFAULT_REGISTRY_TIMEOUT, value_parser = clap::value_parser!(u64).range(1..))]
    pub registry_timeout: u64,

    /// Fetch foreign (non-distributable) layers from their URLs on this host (repeat, or
    /// separate with commas)
    #[arg(
        long = "allow-nondistributable-artifacts",
        global = true,
        env = "KILN_ALLOW_NONDISTRIBUTABLE_ARTIFACTS",
        value_delimiter = ',',
        value_name = "HOST[:PORT]"
    )]
    pub allow_nondistributable_artifacts: Vec<String>,

    /// Log more (-v: debug, -vv: trace)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kiln's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse a build file and print its stage IR as JSON
    Parse(ParseArgs),
    /// Build an image from a build file and a context
    Build(BuildArgs),
    /// List the images in the store
    Images,
    /// Show the history of an image
    History(ImageArg),
    /// Print an image's manifest and config as JSON
    Inspect(ImageArg),
    /// Remove image tags from the store
    Rmi(RmiArgs),
    /// Remove blobs and cached build steps that no tag references
    Prune,
    /// Pull an image from a registry into the store
    Pull(PullArgs),
    /// Push an image of the store to a registry
    Push(PushArgs),
    /// Log in to a registry (saved in Docker's config.json, which docker shares)
    Login(LoginArgs),
    /// Forget the credentials for a registry
    Logout(LogoutArgs),
    /// Manage frontend components published as images (Wasm OCI artifacts)
    #[command(subcommand)]
    Frontend(FrontendCommand),
    /// Run an image's command in the sandbox, on a throwaway copy of its filesystem
    #[command(long_about = RUN_ABOUT)]
    Run(RunArgs),
}

const RUN_ABOUT: &str = "Run an image's command in the sandbox, on a throwaway copy of its filesystem.

The command is the image's ENTRYPOINT followed by its CMD, as with `docker run`: ARGS replace \
the CMD, and --entrypoint replaces the ENTRYPOINT and drops the CMD. It runs as a WASI program \
in the same sandbox as RUN steps, its output goes straight to kiln's stdout and stderr, and \
kiln exits with its exit status (125 when kiln or the sandbox failed, 126 when the program \
cannot run, 127 when it is not there).

Nothing the program does is kept: kiln always removes the container's filesystem when it ends \
(--rm is accepted for Docker compatibility and changes nothing), and no image in kiln's store \
changes (only its cache of compiled programs may grow).";

/// `kiln run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Accepted for Docker compatibility; kiln always throws the program's filesystem away
    #[arg(long)]
    pub rm: bool,

    /// Set an environment variable (KEY=VALUE, or KEY to take the value from kiln's environment)
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,

    /// The working directory, absolute [default: the image's WORKDIR, else /]
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,

    /// Run this program instead of the image's ENTRYPOINT (its CMD is dropped; ARGS follow)
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,

    /// Seconds the program may run (no limit by default)
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Memory each program may use, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub memory: usize,

    /// Programs that may run at the same time (the program and those it starts)
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_STEP_PROCESSES)]
    pub processes: usize,

    /// The platform to pick from a multi-platform image (os/arch[/variant]) [default: linux/<host arch>]
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// What may run the program: `wasi` (WASI programs in kiln's sandbox) or `proot` (Linux
    /// programs too, under the installed proot, with your user's access to files and the network)
    #[arg(long, value_name = "EXECUTOR", env = "KILN_EXECUTOR", default_value = "wasi", value_parser = parse_executor)]
    pub executor: ExecutorChoice,

    /// IMAGE (NAME[:TAG], image ID, or oci-layout://DIR[:TAG]), then the program and its
    /// arguments, replacing the image's CMD: everything after IMAGE, flags included
    #[arg(
        value_names = ["IMAGE", "ARGS"],
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

impl RunArgs {
    /// IMAGE.
    pub fn image(&self) -> &str {
        self.command.first().map_or("", String::as_str)
    }

    /// ARGS: what follows IMAGE.
    pub fn args(&self) -> &[String] {
        self.command.get(1..).unwrap_or_default()
    }
}

/// `kiln build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// What to parse, and with which frontend.
    #[command(flatten)]
    pub parse: ParseArgs,

    /// Name the image (NAME[:TAG]); may be repeated
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,

    /// Run every step, using no cached result (results are still recorded for the next build)
    #[arg(long)]
    pub no_cache: bool,

    /// Build up to N stages at once (stages that do not depend on each other) [default: the
    /// number of CPUs]
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,

    /// First build the target twice, each from scratch in a store of its own, and fail with
    /// what differs, layer by layer and file by file, unless both give the same image
    #[arg(long)]
    pub verify_reproducible: bool,

    /// How to show progress
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Mode,

    /// Pull base images even when the store has them
    #[arg(long)]
    pub pull: bool,

    /// Push the result to a registry under each -t name (as -o type=registry)
    #[arg(long)]
    pub push: bool,

    /// Also write the result as type=oci|oci-archive|docker|local,dest=PATH, its WebAssembly
    /// program as a Wasm OCI artifact with type=wasm,dest=DIR, or push it with
    /// type=registry[,name=REF]
    #[arg(short = 'o', long = "output", value_name = "OUTPUT")]
    pub outputs: Vec<String>,

    /// Print only the image ID
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Seconds a RUN step may take (no limit by default)
    #[arg(long, value_name = "SECONDS")]
    pub step_timeout: Option<u64>,

    /// What may run RUN steps: `wasi`, WASI programs in kiln's sandbox only; or `proot`, Linux
    /// programs too, under the installed proot, with your user's access to files and the
    /// network (for build files you trust)
    #[arg(long, value_name = "EXECUTOR", env = "KILN_EXECUTOR", default_value = "wasi", value_parser = parse_executor)]
    pub executor: ExecutorChoice,

    /// Memory each program of a RUN step may use, in MiB
    #[arg(long, value_name = "MIB", env = "KILN_STEP_MEMORY", default_value_t = limits::DEFAULT_STEP_MEMORY >> 20)]
    pub step_memory: u64,

    /// Programs one RUN step may run at the same time
    #[arg(long, value_name = "N", env = "KILN_STEP_PROCESSES", default_value_t = limits::DEFAULT_STEP_PROCESSES)]
    pub step_processes: usize,

    /// Output (stdout and stderr) one RUN step may write; the log keeps its first 4 MiB
    /// (bytes, or with k, m, g) [default: 1g]
    #[arg(long, value_name = "SIZE", env = "KILN_STEP_OUTPUT", value_parser = limits::parse_size,
          default_value_t = limits::DEFAULT_STEP_OUTPUT, hide_default_value = true)]
    pub step_output: u64,

    /// Files, directories and links the build context may hold after .dockerignore
    #[arg(long, value_name = "N", env = "KILN_MAX_CONTEXT_FILES", default_value_t = limits::DEFAULT_CONTEXT_FILES)]
    pub max_context_files: u64,

    /// Uncompressed size of one layer, unpacked from an image or archive or written by a step
    /// (bytes, or with k, m, g) [default: 8g]
    #[arg(long, value_name = "SIZE", env = "KILN_MAX_LAYER_SIZE", value_parser = limits::parse_size,
          default_value_t = limits::DEFAULT_LAYER_SIZE, hide_default_value = true)]
    pub max_layer_size: u64,
}

impl BuildArgs {
    /// The limits this build runs under.
    pub fn limits(&self) -> Limits {
        Limits {
            step_memory: self.step_memory.saturating_mul(1 << 20),
            step_processes: self.step_processes.max(1),
            step_output: self.step_output,
            context_files: self.max_context_files,
            layer_size: self.max_layer_size,
            build_file_size: self.parse.max_build_file_size,
        }
    }
}

/// `kiln pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// [REGISTRY/]REPOSITORY[:TAG][@DIGEST] (Docker Hub by default)
    pub image: String,

    /// The platform to pick from a multi-platform image (os/arch[/variant]) [default: linux/<host arch>]
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
}

/// `kiln push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// NAME[:TAG] or image ID of an image in the store
    pub image: String,

    /// Where to push it [default: IMAGE's name]
    pub destination: Option<String>,
}

/// `kiln frontend ...`.
#[derive(Debug, Subcommand)]
pub enum FrontendCommand {
    /// Put a frontend component into the store under a name
    Add {
        /// The component (.wasm)
        file: PathBuf,
        /// NAME[:TAG] to give it
        name: String,
    },
    /// Publish a frontend component to a registry (and keep it in the store)
    Push {
        /// The component (.wasm)
        file: PathBuf,
        /// REGISTRY/REPOSITORY[:TAG]
        reference: String,
    },
    /// Pull a frontend from a registry into the store
    Pull {
        /// REGISTRY/REPOSITORY[:TAG][@DIGEST]
        reference: String,
    },
    /// List the frontends in the store
    Ls,
}

/// `kiln login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (host[:port]) [default: Docker Hub]
    pub server: Option<String>,

    /// User name
    #[arg(short, long)]
    pub username: Option<String>,

    /// Password (visible to other users of the machine; prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,

    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
}

/// `kiln logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (host[:port]) [default: Docker Hub]
    pub server: Option<String>,
}

/// An image argument.
#[derive(Debug, Args)]
pub struct ImageArg {
    /// NAME[:TAG] or image ID (sha256:... or a unique prefix)
    pub image: String,
}

/// `kiln rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// NAME[:TAG] of each image to untag
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `kiln parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The build file [default: CONTEXT/Dockerfile]; `-` reads standard input
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Set a build argument (KEY=VALUE, or KEY to take the value from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,

    /// The stage to build [default: the last one; for an Earthfile, +build]
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// The frontend that parses the build file, instead of what its `# syntax=` line or its
    /// name says: a built-in (dockerfile, earthfile), a PATH.wasm component, or an image
    /// reference to a frontend pushed with `kiln frontend push`
    #[arg(long, value_name = "REF")]
    pub frontend: Option<String>,

    /// The platform to build for (os/arch[/variant]) [default: linux/<host arch>]
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// Seconds the frontend may run
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub frontend_timeout: u64,

    /// Memory the frontend may use, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub frontend_memory: usize,

    /// Add a named context: NAME=DIR, NAME=docker-image://REF or
    /// NAME=oci-layout://DIR[:TAG|@DIGEST], used by `FROM NAME` and `COPY --from=NAME` (a
    /// stage of the same name is replaced); repeat for several
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,

    /// Largest build file kiln reads (bytes, or with k, m, g) [default: 4m]
    #[arg(long, value_name = "SIZE", env = "KILN_MAX_BUILD_FILE_SIZE", value_parser = limits::parse_size,
          default_value_t = limits::DEFAULT_BUILD_FILE_SIZE, hide_default_value = true)]
    pub max_build_file_size: u64,

    /// The build context directory
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

impl Cli {
    /// How the session reaches registries.
    pub fn registry_options(&self) -> RegistryOptions {
        RegistryOptions {
            insecure: self.insecure_registries.clone(),
            timeout: Duration::from_secs(self.registry_timeout),
            allow_nondistributable: self.allow_nondistributable_artifacts.clone(),
        }
    }
}

/// The store directory: `--root`/`KILN_HOME`, else `$XDG_DATA_HOME/kiln`, else
/// `~/.local/share/kiln`.
pub fn store_root(explicit: Option<&Path>) -> PathBuf {
    if let Some(root) = explicit {
        return root.to_path_buf();
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("kiln");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/kiln")
}

/// A flag that makes no sense: exit code 2, as clap's own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Why flags could not become a request.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// The flags contradict each other or are malformed (exit code 2).
    #[error(transparent)]
    Usage(#[from] Usage),
    /// Something the flags name cannot be read (exit code 1).
    #[error("{0}")]
    Failed(String),
}

/// `--build-arg` values: `K=V`, or `K` alone to take the value from kiln's environment
/// (skipped when unset, as `docker build` does).
pub fn build_args(raw: &[String]) -> Result<Vec<KeyValue>, FlagError> {
    let mut out = Vec::new();
    for arg in raw {
        match arg.split_once('=') {
            Some(("", _)) => return Err(FlagError::Failed(format!("--build-arg {arg:?}: the name is empty"))),
            Some((k, v)) => out.push(KeyValue::new(k, v)),
            None => {
                if let Ok(v) = std::env::var(arg) {
                    out.push(KeyValue::new(arg, v));
                }
            }
        }
    }
    Ok(out)
}

impl ParseArgs {
    /// The library's request. `-f -` reads standard input here, at most
    /// `--max-build-file-size` bytes (and one more, to tell a file that is too large).
    pub fn request(&self) -> Result<ParseRequest, FlagError> {
        let file = match &self.file {
            None => BuildFile::InContext,
            Some(file) if file == Path::new("-") => {
                let mut contents = Vec::new();
                let limit = self.max_build_file_size.saturating_add(1);
                std::io::Read::read_to_end(&mut std::io::Read::take(std::io::stdin(), limit), &mut contents)
                    .map_err(|e| FlagError::Failed(format!("cannot read the build file from standard input: {e}")))?;
                BuildFile::Bytes { name: "-".into(), contents }
            }
            Some(file) => BuildFile::Path(file.clone()),
        };
        Ok(ParseRequest {
            context: self.context.clone(),
            file,
            build_args: build_args(&self.build_args)?,
            named_contexts: NamedContexts::parse(&self.build_contexts).map_err(|e| Usage(e.to_string()))?,
            target: self.target.clone(),
            platform: self.platform.clone(),
            frontend: self.frontend.clone(),
            frontend_limits: FrontendLimits {
                memory_bytes: self.frontend_memory.saturating_mul(1 << 20),
                time: Duration::from_secs(self.frontend_timeout.max(1)),
                ..FrontendLimits::default()
            },
            max_build_file_size: self.max_build_file_size,
        })
    }
}

impl BuildArgs {
    /// The library's request: names, outputs and pushes checked as flags first.
    pub fn request(&self) -> Result<BuildRequest, FlagError> {
        let mut outputs = Vec::new();
        let mut pushes: Vec<String> = Vec::new();
        for o in &self.outputs {
            match exporter::parse_output(o).map_err(|e| Usage(e.to_string()))? {
                Output::Registry(to) if to.is_empty() => pushes.extend(self.tag_names()),
                Output::Registry(to) => pushes.extend(to),
                out => outputs.push(out),
            }
        }
        if self.push {
            pushes.extend(self.tag_names());
        }
        let asked = self.push || self.outputs.iter().any(|o| o.contains("registry") || o.contains("push=true"));
        if asked && pushes.is_empty() {
            return Err(
                Usage("pushing needs a name: add -t REGISTRY/NAME:TAG (or name= in -o type=registry)".into()).into()
            );
        }
        pushes.dedup();
        Ok(BuildRequest {
            parse: self.parse.request()?,
            tags: self.tags.clone(),
            outputs,
            pushes,
            no_cache: self.no_cache,
            pull: self.pull,
            jobs: self.jobs,
            verify_reproducible: self.verify_reproducible,
            step_timeout: self.step_timeout.map(Duration::from_secs),
            limits: self.limits(),
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH").ok(),
            executor: self.executor,
        })
    }

    /// The `-t` names as pushes take them (normalised; an invalid one is the build's error).
    fn tag_names(&self) -> Vec<String> {
        self.tags.iter().map(|t| kiln::image::validate_tag(t).unwrap_or_else(|_| t.clone())).collect()
    }
}

impl RunArgs {
    /// The library's request.
    pub fn request(&self) -> RunImageRequest {
        RunImageRequest {
            image: self.image().to_string(),
            args: self.args().to_vec(),
            entrypoint: self.entrypoint.clone(),
            env: self.env.clone(),
            workdir: self.workdir.clone(),
            timeout: self.timeout.map(Duration::from_secs),
            memory: self.memory.saturating_mul(1 << 20),
            processes: self.processes.max(1),
            platform: self.platform.clone(),
            executor: self.executor,
        }
    }
}

/// An `--executor` value.
fn parse_executor(value: &str) -> Result<ExecutorChoice, kiln::executor::UnknownExecutor> {
    value.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_arg_forms() {
        let parsed = build_args(&["A=1".into(), "B=".into(), "C=x=y".into()]).unwrap();
        assert_eq!(parsed, vec![KeyValue::new("A", "1"), KeyValue::new("B", ""), KeyValue::new("C", "x=y")]);
        assert!(build_args(&["=x".into()]).is_err());
        assert_eq!(build_args(&["KILN_TEST_SURELY_UNSET_VARIABLE".into()]).unwrap(), vec![]);
    }

    #[test]
    fn run_takes_everything_after_the_image_as_args() {
        let cli = Cli::try_parse_from(["kiln", "run", "--rm", "-e", "A=1", "img", "-e", "x", "--rm", "-v"]).unwrap();
        let Command::Run(args) = cli.command else { panic!("not run") };
        assert_eq!(args.image(), "img");
        assert_eq!(args.env, ["A=1"]);
        assert_eq!(args.args(), ["-e", "x", "--rm", "-v"]);
        assert_eq!(cli.verbose, 0);
    }

    #[test]
    fn store_root_prefers_explicit() {
        assert_eq!(store_root(Some(Path::new("/tmp/x"))), PathBuf::from("/tmp/x"));
    }

    #[test]
    fn outputs_and_pushes_come_apart() {
        let cli =
            Cli::try_parse_from(["kiln", "build", "-t", "app", "-o", "type=local,dest=out", "--push", "ctx"]).unwrap();
        let Command::Build(args) = cli.command else { panic!("not build") };
        let request = args.request().unwrap();
        assert_eq!(request.outputs, [Output::Local(PathBuf::from("out"))]);
        assert_eq!(request.pushes, ["app:latest"]);
        let cli = Cli::try_parse_from(["kiln", "build", "--push", "ctx"]).unwrap();
        let Command::Build(args) = cli.command else { panic!("not build") };
        assert!(matches!(args.request(), Err(FlagError::Usage(_))));
    }
}
