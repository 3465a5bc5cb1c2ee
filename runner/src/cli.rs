//! The `kiln` command line: flags in, library calls, an exit code out.
//!
//! Exit codes: 0 success, 1 the build file or the build failed, 2 bad usage (clap's own).
//! `kiln run` exits as `docker run` does: with the program's status, or 125 when kiln or the
//! sandbox failed, 126 when the program cannot run, 127 when it is not there.
//! Nothing here is needed by the library; it only wires flags to it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use kiln_ir::{KeyValue, Request, Severity};

/// Print a line on standard output. A reader that went away (`kiln inspect IMAGE | head -1`)
/// is not an error: kiln stops quietly there, as Unix tools do; any other write error is
/// reported.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1);
        }
    }};
}

use crate::builder::{self, BuildInput};
use crate::context::BuildContext;
use crate::diagnostics;
use crate::export;
use crate::frontend::images::StoreImages;
use crate::frontend::{Frontend, FrontendLimits, select};
use crate::image::{self, ImageConfig};
use crate::limits::{self, Limit, Limits};
use crate::named_context::NamedContexts;
use crate::platform;
use crate::progress::{self, Progress};
use crate::registry::{self, Registry, RegistryOptions, RegistryScope};
use crate::store::{self, Store};

/// Builds OCI images from Dockerfiles with no privileges.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, long_about = None)]
pub struct Cli {
    /// kiln's store (images, cache, compiled modules; KILN_COMPILE_CACHE=DIR keeps compiled
    /// modules in DIR instead) [default: $XDG_DATA_HOME/kiln]
    #[arg(long, global = true, env = "KILN_HOME", value_name = "DIR")]
    pub root: Option<PathBuf>,

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
    pub progress: progress::Mode,

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

/// Run the command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let root = store_root(cli.root.as_deref());
    let registry = Arc::new(Registry::new(RegistryOptions {
        insecure: cli.insecure_registries.clone(),
        timeout: std::time::Duration::from_secs(cli.registry_timeout),
        allow_nondistributable: cli.allow_nondistributable_artifacts.clone(),
    }));
    match cli.command {
        Command::Parse(args) => parse(&args, &root, &registry),
        Command::Build(args) => build(&args, &root, &registry),
        Command::Pull(args) => pull(&args, &root, &registry),
        Command::Push(args) => push(&args, &root, &registry),
        Command::Login(args) => login(&args, &registry),
        Command::Logout(args) => logout(&args),
        Command::Frontend(command) => frontend_command(&command, &root, &registry),
        Command::Images => images(&root),
        Command::History(arg) => history(&arg.image, &root),
        Command::Inspect(arg) => inspect(&arg.image, &root),
        Command::Rmi(args) => rmi(&args.images, &root),
        Command::Prune => prune(&root),
        Command::Run(args) => run_image(&args, &root, &registry),
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

fn error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// `--build-arg` values: `K=V`, or `K` alone to take the value from kiln's environment
/// (skipped when unset, as `docker build` does).
fn build_args(raw: &[String]) -> Result<Vec<KeyValue>, String> {
    let mut out = Vec::new();
    for arg in raw {
        match arg.split_once('=') {
            Some(("", _)) => return Err(format!("--build-arg {arg:?}: the name is empty")),
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

/// A build file read, parsed by its frontend, and its diagnostics shown.
struct Parsed {
    file_name: String,
    contents: Vec<u8>,
    graph: kiln_ir::BuildGraph,
    target_platform: String,
    build_args: Vec<KeyValue>,
    /// The sha256 of the frontend component: part of every cache key.
    frontend_digest: String,
    /// `--build-context`.
    named: NamedContexts,
    /// Base images the frontend asked about that the store does not hold (reference, platform).
    missing: Vec<(String, String)>,
}

/// Read the build file: `-f FILE` wherever the user put it (`-` for standard input), else
/// `Dockerfile` of the context, read through the context so that a link cannot lead out of
/// it. Returns its name for messages and its bytes, at most `--max-build-file-size`.
fn read_build_file(args: &ParseArgs) -> Result<(String, Vec<u8>), String> {
    let limit = args.max_build_file_size;
    let too_large = |name: &str| {
        format!(
            "{name}: the build file is larger than {}: {}",
            limits::human_size(limit),
            limits::exceeded(Limit::BuildFileSize, &limits::human_size(limit))
        )
    };
    // Read at most one byte more than the limit: a huge file, or a device that never ends,
    // is refused without being read whole.
    let read_bounded = |reader: &mut dyn std::io::Read| -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(reader, limit.saturating_add(1)), &mut buf)?;
        Ok(buf)
    };
    let (name, contents) = match &args.file {
        Some(file) if file == Path::new("-") => {
            let contents = read_bounded(&mut std::io::stdin())
                .map_err(|e| format!("cannot read the build file from standard input: {e}"))?;
            ("-".to_string(), contents)
        }
        Some(file) => {
            let name = file.display().to_string();
            let contents = std::fs::File::open(file).and_then(|mut f| read_bounded(&mut f)).map_err(|e| {
                format!("cannot read {name}: {e}\nhint: pass the build file with -f, or run kiln in the directory that holds the Dockerfile")
            })?;
            (name, contents)
        }
        None => {
            let path = args.context.join("Dockerfile");
            let name = path.display().to_string();
            let not_found = |detail: String| {
                format!(
                    "cannot read {name}: {detail}\nhint: pass the build file with -f, or run kiln in the directory that holds the Dockerfile"
                )
            };
            let dir = cap_std::fs::Dir::open_ambient_dir(&args.context, cap_std::ambient_authority())
                .map_err(|e| not_found(format!("cannot open the build context: {e}")))?;
            match crate::context::read_in_context(&dir, &args.context, Path::new("Dockerfile"), "build file", limit) {
                Ok(Some(contents)) => (name, contents),
                Ok(None) => return Err(not_found("No such file or directory (os error 2)".into())),
                Err(crate::context::ContextError::TooLarge { .. }) => return Err(too_large(&name)),
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    if contents.len() as u64 > limit {
        return Err(too_large(&name));
    }
    Ok((name, contents))
}

/// Read the build file, run the frontend and print its diagnostics. `Err` is the exit code.
/// The frontend learns about base images from the store and the named contexts only
/// ([`StoreImages`]): it reaches no registry. `registry` only fetches a frontend published as
/// an image.
fn run_frontend(
    args: &ParseArgs,
    root: &Path,
    store: Option<Store>,
    registry: Option<Arc<Registry>>,
) -> Result<Parsed, ExitCode> {
    let (file_name, contents) = read_build_file(args).map_err(error)?;
    let file = args.file.clone().unwrap_or_else(|| args.context.join("Dockerfile"));
    let build_args = build_args(&args.build_args).map_err(error)?;
    let named = NamedContexts::parse(&args.build_contexts).map_err(usage)?;
    let target_platform = match &args.platform {
        Some(p) => p.clone(),
        None => platform::default_target(),
    };
    let request = Request {
        file_name: file_name.clone(),
        contents,
        build_args: build_args.clone(),
        target: args.target.clone(),
        build_platform: platform::host(),
        target_platform: target_platform.clone(),
    };
    let limits = FrontendLimits {
        memory_bytes: args.frontend_memory.saturating_mul(1 << 20),
        time: Duration::from_secs(args.frontend_timeout.max(1)),
        ..FrontendLimits::default()
    };
    let cache = Some(store::compiled_dir(root).map_err(error)?);
    let (reference, reason) = select::choose(args.frontend.as_deref(), &request.contents, &file);
    let fetched = select::fetch(&reference, store.as_ref(), registry.as_deref()).map_err(|e| match reason {
        select::Reason::Directive(line) => {
            error(format!("{file_name}:{line}: the # syntax= line names a frontend kiln cannot get: {e}"))
        }
        _ => error(e),
    })?;
    let frontend_digest = crate::frontend::sha256_hex(&fetched.wasm);
    let frontend = Frontend::load(&fetched.wasm, &fetched.origin, cache, limits);
    let frontend = frontend.map_err(error)?;
    let resolver = Arc::new(StoreImages::new(store, named.clone(), target_platform.clone()));
    match frontend.parse(&request, resolver.clone()) {
        Err(e) => Err(error(e)),
        Ok(Err(diagnostics)) => {
            for d in &diagnostics {
                eprint!("{}", diagnostics::render(&file_name, &request.contents, d));
            }
            let errors = diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
            eprintln!("{file_name}: {errors} error(s); no IR was produced");
            Err(ExitCode::FAILURE)
        }
        Ok(Ok(graph)) => Ok(Parsed {
            file_name,
            contents: request.contents,
            graph,
            target_platform,
            build_args,
            frontend_digest,
            named,
            missing: resolver.missing(),
        }),
    }
}

/// Show what the frontend warned about.
fn print_warnings(parsed: &Parsed) {
    for w in &parsed.graph.warnings {
        eprint!("{}", diagnostics::render(&parsed.file_name, &parsed.contents, w));
    }
}

/// Before a build: pull the base images the frontend asked about that the store lacked, when
/// the graph it returned builds on them and their registry is one the user named; then parse
/// again, so that the frontend sees their configs (ENV, WORKDIR, ...) as BuildKit's does. The
/// frontend itself never causes a pull: only the graph does, as it would anyway.
fn parse_with_bases(
    args: &ParseArgs,
    root: &Path,
    store: &Store,
    registry: &Arc<Registry>,
    progress: &Progress,
) -> Result<(Parsed, RegistryScope), ExitCode> {
    let parsed = run_frontend(args, root, Some(store.clone()), Some(registry.clone()))?;
    let values = parsed.build_args.iter().map(|kv| kv.value.as_str());
    let scope = RegistryScope::of_build(&parsed.contents, values, &parsed.named);
    if parsed.missing.is_empty() {
        return Ok((parsed, scope));
    }
    let needed = builder::images_needed(&parsed.graph, &parsed.named);
    let mut pulled = false;
    for (reference, platform) in &parsed.missing {
        if !needed.contains(reference) || scope.unnamed_registry(reference).is_some() {
            continue;
        }
        let report = |line: &str| progress.note(&format!("pulling {reference}: {line}"));
        // A failure here is reported by the build, at the line that needs the image.
        pulled |= registry.resolve(store, reference, std::slice::from_ref(platform), false, &report).is_ok();
    }
    if !pulled {
        return Ok((parsed, scope));
    }
    let parsed = run_frontend(args, root, Some(store.clone()), Some(registry.clone()))?;
    Ok((parsed, scope))
}

fn parse(args: &ParseArgs, root: &Path, registry: &Arc<Registry>) -> ExitCode {
    // The store is optional for parsing: without one, base images are simply unknown. A
    // frontend named by an image may be pulled; base images never are.
    let store = Store::open(root).ok();
    let parsed = match run_frontend(args, root, store, Some(registry.clone())) {
        Ok(p) => p,
        Err(code) => return code,
    };
    print_warnings(&parsed);
    match serde_json::to_string_pretty(&parsed.graph) {
        Ok(json) => {
            say!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => error(format!("cannot print the IR: {e}")),
    }
}

/// SOURCE_DATE_EPOCH from a build argument, else from kiln's environment.
fn source_date_epoch(build_args: &[KeyValue]) -> Result<Option<i64>, String> {
    let value = build_args
        .iter()
        .rev()
        .find(|kv| kv.key == "SOURCE_DATE_EPOCH")
        .map(|kv| kv.value.clone())
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .filter(|v| !v.is_empty());
    match value {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970")),
    }
}

fn build(args: &BuildArgs, root: &Path, registry: &Arc<Registry>) -> ExitCode {
    // Check every flag before doing any work.
    let mut names = Vec::new();
    for tag in &args.tags {
        match image::validate_tag(tag) {
            Ok(n) => names.push(n),
            Err(e) => return usage(e),
        }
    }
    let mut outputs = Vec::new();
    let mut pushes: Vec<String> = Vec::new();
    for o in &args.outputs {
        match export::parse_output(o) {
            Ok(export::Output::Registry(to)) if to.is_empty() => pushes.extend(names.iter().cloned()),
            Ok(export::Output::Registry(to)) => pushes.extend(to),
            Ok(out) => outputs.push(out),
            Err(e) => return usage(e),
        }
    }
    if args.push {
        pushes.extend(names.iter().cloned());
    }
    let pushes_asked = args.push || args.outputs.iter().any(|o| o.contains("registry") || o.contains("push=true"));
    if pushes_asked && pushes.is_empty() {
        return usage("pushing needs a name: add -t REGISTRY/NAME:TAG (or name= in -o type=registry)");
    }
    pushes.dedup();
    for to in &pushes {
        if let Err(e) = registry::parse_reference(to) {
            return usage(e);
        }
    }
    let store = match Store::open(root) {
        Ok(s) => s,
        Err(e) => return error(format!("cannot open kiln's store: {e}")),
    };
    let mode = if args.quiet { progress::Mode::Quiet } else { args.progress };
    let progress = Progress::new(mode);
    let (parsed, registry_scope) = match parse_with_bases(&args.parse, root, &store, registry, &progress) {
        Ok(p) => p,
        Err(code) => return code,
    };
    print_warnings(&parsed);
    let epoch = match source_date_epoch(&parsed.build_args) {
        Ok(e) => e,
        Err(e) => return usage(e),
    };
    let file = args.parse.file.clone().unwrap_or_else(|| args.parse.context.join("Dockerfile"));
    let build_file = (file != Path::new("-")).then_some(file.as_path());
    // Context files are snapshotted into the build's scratch directory when first read.
    let scratch = match store.build_dir() {
        Ok(d) => d,
        Err(e) => return error(e),
    };
    let context = match BuildContext::load(
        &args.parse.context,
        build_file,
        args.max_context_files,
        args.parse.max_build_file_size,
        scratch.path(),
    ) {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    // Outputs never go into the store or over what the build reads: refused before building.
    let mut protected = match export::Protected::new(
        store.root(),
        Some((&context.root, &context.ignore, context.ignore_file.as_deref())),
    ) {
        Ok(p) => p,
        Err((path, e)) => return error(format!("cannot resolve {}: {e}", path.display())),
    };
    // So are the directories named with --build-context (one that cannot be read fails the
    // build where it is used).
    for named in parsed.named.iter() {
        if let crate::named_context::ContextValue::Directory(dir) = &named.value
            && let Ok((ignore, file)) = crate::context::ignore_patterns(dir, args.parse.max_build_file_size)
            && let Err((path, e)) = protected.add_context(dir, &ignore, file.as_deref())
        {
            return error(format!("cannot resolve {}: {e}", path.display()));
        }
    }
    for output in &outputs {
        if let Err(e) = export::check(output, &protected) {
            return usage(e);
        }
    }
    let input = |use_cache: bool| BuildInput {
        graph: &parsed.graph,
        context: &context,
        platform: parsed.target_platform.clone(),
        epoch,
        step_timeout: args.step_timeout.map(Duration::from_secs),
        limits: args.limits(),
        use_cache,
        frontend_digest: parsed.frontend_digest.clone(),
        jobs: args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1),
        keep_tree: !outputs.is_empty(),
        registry: Some(registry),
        always_pull: args.pull,
        platform_explicit: args.parse.platform.is_some(),
        named_contexts: &parsed.named,
        registry_scope: &registry_scope,
    };
    if args.verify_reproducible {
        let step = progress.start("verifying that the build is reproducible: two builds in scratch stores".to_string());
        match verify_reproducible(&store, &input(false), scratch.path()) {
            Ok(digest) => progress.done(step, &format!("both gave {digest}")),
            Err(report) => {
                progress.failed(step, "the two builds differ");
                eprintln!("{}: the build is not reproducible; nothing was tagged", parsed.file_name);
                for line in report {
                    eprintln!("  {line}");
                }
                return ExitCode::FAILURE;
            }
        }
    }
    let built = match builder::build(&store, &progress, &input(!args.no_cache), scratch.path()) {
        Ok(b) => b,
        Err(e) => {
            let mut d = kiln_ir::Diagnostic::error(e.message, e.span);
            d.hint = e.hint;
            eprint!("{}", diagnostics::render(&parsed.file_name, &parsed.contents, &d));
            if crate::cancel::requested() {
                eprintln!("{}: the build was interrupted; nothing was tagged", parsed.file_name);
                return ExitCode::from(130);
            }
            eprintln!("{}: the build failed; nothing was tagged", parsed.file_name);
            return ExitCode::FAILURE;
        }
    };
    for output in &outputs {
        let step = progress.start(format!("exporting to {}", describe(output)));
        match export::write(&store, &built.manifest, &names, &built.tree, output, &protected) {
            Ok(note) => {
                progress.done(step, "");
                if let Some(note) = note {
                    progress.note(&format!("warning: {note}"));
                }
            }
            Err(e) => {
                progress.failed(step, &e.to_string());
                eprintln!("error: {e}");
                if e.interrupted() {
                    eprintln!("{}: the build was interrupted; nothing was tagged", parsed.file_name);
                    return ExitCode::from(130);
                }
                return ExitCode::FAILURE;
            }
        }
    }
    if !names.is_empty() {
        if let Err(e) = store.tag(&names, &built.manifest) {
            return error(e);
        }
        progress.note(&format!("naming to {}", names.join(", ")));
    }
    for to in &pushes {
        let step = progress.start(format!("pushing {to}"));
        let report = |line: &str| progress.note(&format!("  {line}"));
        match registry.push(&store, &built.manifest, to, &report) {
            Ok(pushed) => progress.done(step, &push_summary(&pushed)),
            Err(e) => {
                progress.failed(step, &e.to_string());
                return error(e);
            }
        }
    }
    drop(scratch);
    say!("{}", built.config_digest);
    ExitCode::SUCCESS
}

/// Build twice, each time into a fresh scratch store under `dir`; the manifest digest when
/// both agree, else what differs (or why a build failed).
fn verify_reproducible(store: &Store, input: &BuildInput<'_>, dir: &Path) -> Result<String, Vec<String>> {
    let quiet = Progress::new(progress::Mode::Quiet);
    let mut results = Vec::new();
    for name in ["first", "second"] {
        let root = dir.join(format!("verify-{name}"));
        let scratch = crate::verify::scratch_store(store, &root).map_err(|e| vec![e.to_string()])?;
        let work = scratch.build_dir().map_err(|e| vec![e.to_string()])?;
        let built = builder::build(&scratch, &quiet, input, work.path())
            .map_err(|e| vec![format!("the {name} build failed: {}", e.message)])?;
        results.push((scratch, built.manifest, work));
    }
    let (a, b) = (&results[0], &results[1]);
    let report = crate::verify::differences(&a.0, &a.1, &b.0, &b.1);
    if report.is_empty() { Ok(a.1.digest().to_string()) } else { Err(report) }
}

fn describe(output: &export::Output) -> String {
    match output {
        export::Output::Oci(p) => format!("OCI layout {}", p.display()),
        export::Output::OciArchive(p) => format!("OCI archive {}", p.display()),
        export::Output::Docker(p) => format!("docker archive {}", p.display()),
        export::Output::Local(p) => format!("directory {}", p.display()),
        export::Output::Wasm(p) => format!("Wasm OCI artifact {}", p.display()),
        export::Output::Registry(names) => format!("registry {}", names.join(", ")),
    }
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// A store image found by name or ID.
struct Found {
    names: Vec<String>,
    manifest: oci_spec::image::Descriptor,
}

fn find_image(store: &Store, wanted: &str) -> Result<Found, String> {
    let index = store.index().map_err(|e| e.to_string())?;
    let by_name = image::normalize_name(wanted);
    let mut matches: Vec<&oci_spec::image::Descriptor> =
        index.manifests().iter().filter(|d| store::ref_name(d) == Some(by_name.as_str())).collect();
    if matches.is_empty() {
        // An image ID is the config digest (as `docker images` shows it), or a prefix of it.
        let prefix = wanted.strip_prefix("sha256:").unwrap_or(wanted);
        if prefix.len() >= 4 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            for d in index.manifests() {
                if let Ok((_, config_digest)) = manifest_and_config(store, d)
                    && config_digest.hex().starts_with(prefix)
                {
                    matches.push(d);
                }
            }
        }
    }
    let Some(first) = matches.first() else {
        return Err(format!("no image {wanted} in the store (see `kiln images`)"));
    };
    let names = index
        .manifests()
        .iter()
        .filter(|d| d.digest() == first.digest())
        .filter_map(|d| store::ref_name(d).map(str::to_string))
        .collect();
    Ok(Found { names, manifest: (*first).clone() })
}

fn manifest_and_config(
    store: &Store,
    d: &oci_spec::image::Descriptor,
) -> Result<(oci_spec::image::ImageManifest, store::Digest), String> {
    let mut digest = store::descriptor_digest(d).map_err(|e| e.to_string())?;
    if image::is_index(d.media_type()) {
        // A pulled index: the host's platform if the store has it, else any it has.
        let index: oci_spec::image::ImageIndex = store.read_json(&digest).map_err(|e| e.to_string())?;
        let present =
            |c: &&oci_spec::image::Descriptor| store::descriptor_digest(c).is_ok_and(|digest| store.has_blob(&digest));
        let child = image::pick_platform(&index, &[platform::default_target()])
            .filter(present)
            .or_else(|| index.manifests().iter().find(present))
            .ok_or_else(|| format!("the store holds no image of the index {digest}"))?;
        digest = store::descriptor_digest(child).map_err(|e| e.to_string())?;
    }
    let manifest = store.manifest(&digest).map_err(|e| e.to_string())?;
    let config = store::descriptor_digest(manifest.config()).map_err(|e| e.to_string())?;
    Ok((manifest, config))
}

fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes}B") } else { format!("{value:.3}{}", units[unit]).replace(".000", "") }
}

fn ago(created: Option<&str>) -> String {
    let Some(time) = created.and_then(|c| humantime::parse_rfc3339_weak(c).ok()) else {
        return "N/A".into();
    };
    match std::time::SystemTime::now().duration_since(time) {
        Ok(d) if d.as_secs() < 60 => "Less than a minute ago".into(),
        Ok(d) if d.as_secs() < 3600 => format!("{} minutes ago", d.as_secs() / 60),
        Ok(d) if d.as_secs() < 86_400 => format!("{} hours ago", d.as_secs() / 3600),
        Ok(d) if d.as_secs() < 86_400 * 365 * 2 => format!("{} days ago", d.as_secs() / 86_400),
        Ok(d) => format!("{} years ago", d.as_secs() / (86_400 * 365)),
        Err(_) => "in the future".into(),
    }
}

fn open_store(root: &Path) -> Result<Store, ExitCode> {
    Store::open(root).map_err(|e| error(format!("cannot open kiln's store: {e}")))
}

fn images(root: &Path) -> ExitCode {
    let store = match open_store(root) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let index = match store.index() {
        Ok(i) => i,
        Err(e) => return error(e),
    };
    let mut rows = vec![["REPOSITORY".to_string(), "TAG".into(), "IMAGE ID".into(), "CREATED".into(), "SIZE".into()]];
    for d in index.manifests() {
        let Some(name) = store::ref_name(d) else { continue };
        let (repo, tag) = name.rsplit_once(':').filter(|(_, t)| !t.contains('/')).unwrap_or((name, "<none>"));
        let (id, created, size) = match manifest_and_config(&store, d) {
            Ok((manifest, config_digest)) => {
                let config: Option<ImageConfig> = store.read_json(&config_digest).ok();
                let size: u64 = manifest.layers().iter().map(|l| l.size()).sum();
                (
                    config_digest.hex()[..12].to_string(),
                    ago(config.as_ref().and_then(|c| c.created.as_deref())),
                    human_size(size),
                )
            }
            Err(e) => (format!("<damaged: {e}>"), String::new(), String::new()),
        };
        rows.push([repo.to_string(), tag.to_string(), id, created, size]);
    }
    print_table(&rows);
    ExitCode::SUCCESS
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        say!("{}", line.trim_end());
    }
}

/// An image of the store, read for `history` and `inspect`.
struct Opened<C> {
    found: Found,
    manifest: oci_spec::image::ImageManifest,
    config_digest: store::Digest,
    config: C,
}

/// Open the store and read the image named `wanted` (by tag or ID). `Err` is the exit code,
/// the error already printed.
fn open_image<C: serde::de::DeserializeOwned>(root: &Path, wanted: &str) -> Result<Opened<C>, ExitCode> {
    let store = open_store(root)?;
    let found = find_image(&store, wanted).map_err(error)?;
    let (manifest, config_digest) = manifest_and_config(&store, &found.manifest).map_err(error)?;
    let config = store.read_json(&config_digest).map_err(error)?;
    Ok(Opened { found, manifest, config_digest, config })
}

fn history(wanted: &str, root: &Path) -> ExitCode {
    let Opened { manifest, config_digest, config, .. } = match open_image::<ImageConfig>(root, wanted) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let mut layer_sizes = manifest.layers().iter().map(|l| l.size());
    let mut rows = Vec::new();
    for (i, h) in config.history.iter().enumerate() {
        let size = if h.empty_layer { 0 } else { layer_sizes.next().unwrap_or(0) };
        let id = if i + 1 == config.history.len() { config_digest.hex()[..12].to_string() } else { "<missing>".into() };
        let mut created_by = h.created_by.clone().unwrap_or_default();
        if created_by.chars().count() > 45 {
            created_by = created_by.chars().take(44).collect::<String>() + "…";
        }
        rows.push([id, ago(h.created.as_deref()), created_by, human_size(size), h.comment.clone().unwrap_or_default()]);
    }
    rows.push(["IMAGE".into(), "CREATED".into(), "CREATED BY".into(), "SIZE".into(), "COMMENT".into()]);
    rows.reverse();
    print_table(&rows);
    ExitCode::SUCCESS
}

fn inspect(wanted: &str, root: &Path) -> ExitCode {
    let Opened { found, manifest, config_digest, config } = match open_image::<serde_json::Value>(root, wanted) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let doc = serde_json::json!([{
        "Id": config_digest.to_string(),
        "RepoTags": found.names,
        "ManifestDigest": found.manifest.digest().to_string(),
        "Manifest": manifest,
        "Config": config,
    }]);
    match serde_json::to_string_pretty(&doc) {
        Ok(text) => {
            say!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => error(e),
    }
}

fn rmi(names: &[String], root: &Path) -> ExitCode {
    let store = match open_store(root) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let mut code = ExitCode::SUCCESS;
    for name in names {
        match store.untag(&image::normalize_name(name)) {
            Ok(_) => say!("Untagged: {}", image::normalize_name(name)),
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

fn prune(root: &Path) -> ExitCode {
    let store = match open_store(root) {
        Ok(s) => s,
        Err(c) => return c,
    };
    match store.prune() {
        Ok(report) => {
            let cache_entries = crate::cache::Cache::new(&store).prune(store.oldest_live_build());
            say!(
                "Removed {} blobs ({}) and {} cached build steps",
                report.blobs,
                human_size(report.bytes),
                cache_entries
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Load an image for `kiln run` the way FROM finds it (a store tag or `oci-layout://`), or
/// by its ID as `kiln inspect` does.
fn load_image(store: &Store, wanted: &str, platforms: &[String]) -> Result<image::LoadedImage, image::ImageError> {
    match image::load(store, wanted, platforms) {
        Err(not_found @ image::ImageError::NotFound { .. })
            if matches!(image::parse_ref(wanted), image::ImageRef::Store(_)) =>
        {
            match find_image(store, wanted) {
                Ok(found) => image::load_from_store(store, wanted, &found.manifest, platforms),
                Err(_) => Err(not_found),
            }
        }
        loaded => loaded,
    }
}

fn run_image(args: &RunArgs, root: &Path, registry: &Registry) -> ExitCode {
    let fail = |e: crate::run::RunImageError| {
        eprintln!("error: {e}");
        if let Some(hint) = e.hint() {
            eprintln!("hint: {hint}");
        }
        ExitCode::from(e.exit_code())
    };
    let store = match Store::open(root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open kiln's store: {e}");
            return ExitCode::from(125);
        }
    };
    let platforms = match &args.platform {
        Some(p) => vec![p.clone()],
        // What `kiln run` can execute first: a WASI image, else the Linux one.
        None => vec!["wasip2/wasm".into(), "wasip1/wasm".into(), "wasi/wasm".into(), platform::default_target()],
    };
    let loaded = match load_image(&store, args.image(), &platforms) {
        Ok(l) => l,
        Err(image::ImageError::NotFound { .. })
            if matches!(image::parse_ref(args.image()), image::ImageRef::Store(_)) =>
        {
            let report = |line: &str| eprintln!("pulling {}: {line}", args.image());
            match registry.resolve(&store, args.image(), &platforms, false, &report) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: image {} is not in kiln's store, and pulling it failed: {e}", args.image());
                    eprintln!(
                        "hint: images come from kiln's store (`kiln images`), a registry (`kiln pull`), or an OCI layout (oci-layout://DIR[:TAG])"
                    );
                    return ExitCode::from(125);
                }
            }
        }
        Err(e) => return fail(e.into()),
    };
    let request = crate::run::RunRequest {
        args: args.args(),
        entrypoint: args.entrypoint.as_deref(),
        env: &args.env,
        workdir: args.workdir.as_deref(),
        timeout: args.timeout.map(Duration::from_secs),
        memory: args.memory.saturating_mul(1 << 20),
        processes: args.processes.max(1),
    };
    match crate::run::run(&store, &loaded, &request) {
        Ok(finished) => {
            for warning in &finished.warnings {
                eprintln!("warning: {warning}");
            }
            let (code, note) = crate::run::exit_status(finished.status);
            if let Some(note) = note {
                eprintln!("warning: {note}");
            }
            ExitCode::from(code)
        }
        Err(e) => fail(e),
    }
}

fn push_summary(pushed: &registry::Pushed) -> String {
    format!(
        "{} ({} blob(s) uploaded, {} bytes; {} already there; {} mounted)",
        pushed.digest, pushed.uploaded.0, pushed.uploaded.1, pushed.present, pushed.mounted
    )
}

fn pull(args: &PullArgs, root: &Path, registry: &Registry) -> ExitCode {
    let store = match Store::open(root) {
        Ok(s) => s,
        Err(e) => return error(format!("cannot open kiln's store: {e}")),
    };
    let platforms = vec![args.platform.clone().unwrap_or_else(platform::default_target)];
    let report = |line: &str| eprintln!("{line}");
    match registry.pull(&store, &args.image, &platforms, &report) {
        Ok(pulled) => {
            let platform = pulled.platform.map(|p| format!(" ({p})")).unwrap_or_default();
            eprintln!(
                "pulled {}{platform}: {} blob(s) downloaded, {} bytes",
                pulled.name, pulled.downloaded.0, pulled.downloaded.1
            );
            say!("{}", pulled.manifest.digest());
            ExitCode::SUCCESS
        }
        Err(e) => error(e),
    }
}

fn push(args: &PushArgs, root: &Path, registry: &Registry) -> ExitCode {
    let store = match Store::open(root) {
        Ok(s) => s,
        Err(e) => return error(format!("cannot open kiln's store: {e}")),
    };
    let found = match find_image(&store, &args.image) {
        Ok(f) => f,
        Err(e) => return error(e),
    };
    let by_id = !found.names.contains(&image::normalize_name(&args.image));
    let destination = match &args.destination {
        Some(d) => d.clone(),
        None if !by_id => args.image.clone(),
        None => {
            return usage(format!(
                "{} is an image ID: give a destination, e.g. kiln push {} REGISTRY/NAME:TAG",
                args.image, args.image
            ));
        }
    };
    let report = |line: &str| eprintln!("{line}");
    match registry.push(&store, &found.manifest, &destination, &report) {
        Ok(pushed) => {
            eprintln!("pushed {}: {}", pushed.reference, push_summary(&pushed));
            say!("{}", pushed.digest);
            ExitCode::SUCCESS
        }
        Err(e) => error(e),
    }
}

fn read_password(args: &LoginArgs) -> Result<String, String> {
    if args.password_stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        return Ok(text.trim_end_matches(['\n', '\r']).to_string());
    }
    if let Some(p) = &args.password {
        return Ok(p.clone());
    }
    Err("give the password with --password-stdin (or -p); kiln does not prompt for it".into())
}

fn login(args: &LoginArgs, registry: &Registry) -> ExitCode {
    let server = args.server.clone().unwrap_or_else(|| "docker.io".into());
    let Some(user) = &args.username else {
        return usage("give the user name with -u USER (kiln does not prompt for it)");
    };
    let password = match read_password(args) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    if args.password.is_some() {
        eprintln!("warning: a password on the command line can be seen by other users; prefer --password-stdin");
    }
    match registry.login(&server, user, &password) {
        Ok(path) => {
            eprintln!("credentials saved in {}", path.display());
            say!("Login Succeeded");
            ExitCode::SUCCESS
        }
        Err(e) => error(e),
    }
}

fn logout(args: &LogoutArgs) -> ExitCode {
    let server = args.server.clone().unwrap_or_else(|| "docker.io".into());
    let path = registry::auth::config_path();
    match registry::auth::remove(&path, &server) {
        Ok(true) => {
            say!("Removing login credentials for {server}");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("not logged in to {server}");
            ExitCode::SUCCESS
        }
        Err(e) => error(e),
    }
}

/// `kiln frontend add|push|pull|ls`.
fn frontend_command(command: &FrontendCommand, root: &Path, registry: &Registry) -> ExitCode {
    let store = match Store::open(root) {
        Ok(s) => s,
        Err(e) => return error(format!("cannot open kiln's store: {e}")),
    };
    // A component is checked to be a frontend before it is stored or published.
    let checked = |file: &Path| -> Result<Vec<u8>, String> {
        let wasm = select::read_component(file)?;
        let cache = store.compiled_dir().map_err(|e| e.to_string())?;
        Frontend::load(&wasm, &file.display().to_string(), Some(cache), FrontendLimits::default())
            .map_err(|e| e.to_string())?;
        Ok(wasm)
    };
    let name_of = |reference: &str| registry::parse_reference(reference).map(|r| r.whole()).map_err(|e| e.to_string());
    let result = match command {
        FrontendCommand::Add { file, name } => (|| {
            let name = image::validate_tag(name)?;
            let d = select::add(&store, checked(file)?, &file.display().to_string(), &name)?;
            Ok(format!("{name} {}", d.digest()))
        })(),
        FrontendCommand::Push { file, reference } => (|| {
            let name = name_of(reference)?;
            let d = select::add(&store, checked(file)?, &file.display().to_string(), &name)?;
            let report = |line: &str| eprintln!("{line}");
            let pushed = registry.push(&store, &d, &name, &report).map_err(|e| e.to_string())?;
            Ok(format!("{} {}", pushed.reference, pushed.digest))
        })(),
        FrontendCommand::Pull { reference } => (|| {
            let report = |line: &str| eprintln!("{line}");
            let pulled = registry.pull(&store, reference, &[], &report).map_err(|e| e.to_string())?;
            // Only a frontend is kept under the name: anything else is untagged again.
            let fetched = select::fetch(&select::FrontendRef::Image(pulled.name.clone()), Some(&store), None);
            let valid = fetched.and_then(|f| {
                let cache = store.compiled_dir().map_err(|e| e.to_string())?;
                Frontend::load(&f.wasm, &f.origin, Some(cache), FrontendLimits::default()).map_err(|e| e.to_string())
            });
            if let Err(e) = valid {
                let _ = store.untag(&pulled.name);
                return Err(format!("{reference} is not a kiln frontend, so it was not kept: {e}"));
            }
            Ok(format!("{} {}", pulled.name, pulled.manifest.digest()))
        })(),
        FrontendCommand::Ls => select::list(&store).map(|frontends| {
            frontends.iter().map(|(name, digest)| format!("{name} {digest}")).collect::<Vec<_>>().join("\n")
        }),
    };
    match result {
        Ok(text) => {
            if !text.is_empty() {
                say!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => error(e),
    }
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
}
