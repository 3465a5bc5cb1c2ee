//! Every bound kiln puts on what one build may consume, each with a name users can see and
//! change: a command-line flag and an environment variable of the same name.
//!
//! A limit exists so that a hostile or broken input (a build file, a context, a base image,
//! a program a RUN step starts) ends in a clear error instead of filling the disk or the
//! memory of the machine. Defaults are far above what real builds use; a build that needs
//! more raises the limit. Whoever enforces a limit words its error with [`exceeded`], so
//! every such error names the setting and says how to raise it.
//!
//! Besides these settings, a few bounds are fixed: the size of what kiln reads whole to parse
//! it (an image manifest, index or config, a tar header's long name or PAX record, a frontend
//! component). They are constants here, each with the reason for its value; whoever reads such
//! an input checks it against the constant while it streams.
//!
//! This module only holds values and words errors; it never enforces anything itself.

use std::fmt;

/// The limits of one build (or one `kiln run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory each program of a RUN step may use, bytes (`--step-memory`, in MiB).
    pub step_memory: u64,
    /// Programs of one RUN step that may run at the same time (`--step-processes`).
    pub step_processes: usize,
    /// Bytes one RUN step may write to its standard output and error together
    /// (`--step-output`).
    pub step_output: u64,
    /// Files, directories and links the build context may hold after `.dockerignore`
    /// (`--max-context-files`).
    pub context_files: u64,
    /// Uncompressed bytes of one layer, read from a base image or an ADDed archive, or
    /// written by a step (`--max-layer-size`).
    pub layer_size: u64,
    /// Bytes of the build file (`--max-build-file-size`).
    pub build_file_size: u64,
}

/// 1 GiB of memory per program: what a compiler or a package manager may need.
pub const DEFAULT_STEP_MEMORY: u64 = 1 << 30;
/// Programs at once in one step; a shell pipeline uses a handful.
pub const DEFAULT_STEP_PROCESSES: usize = 64;
/// Output of one step: far beyond any useful log, small enough to stop a runaway printer.
pub const DEFAULT_STEP_OUTPUT: u64 = 1 << 30;
/// Entries of a build context.
pub const DEFAULT_CONTEXT_FILES: u64 = 500_000;
/// Uncompressed size of one layer.
pub const DEFAULT_LAYER_SIZE: u64 = 8 << 30;
/// Size of a build file; real ones are a few kilobytes.
pub const DEFAULT_BUILD_FILE_SIZE: u64 = 4 << 20;
/// Seconds a registry transfer may go without progress (`--registry-timeout`): no byte
/// received (or taken, when uploading) and no answer for this long ends it.
pub const DEFAULT_REGISTRY_TIMEOUT: u64 = 60;

/// OCI JSON documents (manifests, indexes, configs, index.json): containerd's bound. Not a
/// setting: a real manifest is a few kilobytes, and a larger one is broken or hostile.
pub const MAX_JSON_DOCUMENT: u64 = 4 << 20;
/// A token service's answer (`{"token": …}`); real ones are a few kilobytes.
pub const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

/// The largest image manifest or index kiln reads (an OCI layout's `index.json` included).
/// 4 MiB, as containerd and registries bound manifests; real ones are a few kilobytes.
pub const MAX_DOCUMENT_SIZE: u64 = 4 << 20;

/// The largest image config kiln reads or writes. Configs are larger than manifests because
/// kiln writes one history entry per instruction: a build file of 100,000 LABEL lines, within
/// the default limits, makes a 9.7 MB config. 64 MiB leaves room for six times that; real
/// configs are a few kilobytes.
pub const MAX_CONFIG_SIZE: u64 = 64 << 20;

/// The longest path, in bytes, a program may hand the system (Linux's PATH_MAX, which counts
/// the terminating NUL). No entry of a stage's tree has a longer absolute path: Linux programs
/// could not name it, and the bound keeps a hostile layer or guest from nesting directories
/// so deep that walking, cloning or dropping the tree exhausts the stack (at most 2,048
/// levels) or that recording changed paths exhausts memory.
pub const PATH_MAX: usize = 4096;

/// The longest name a tar entry may carry in a GNU long-name or long-link record: Linux's
/// PATH_MAX ([`PATH_MAX`], the terminating NUL included). No longer path could
/// be used inside an image anyway.
pub const MAX_TAR_LONG_NAME: u64 = PATH_MAX as u64;

/// The largest PAX extended header (the records that give one tar entry a long name, a long
/// link, a large size or extended attributes). 1 MiB: room for a PATH_MAX name and link and
/// hundreds of kilobytes of extended attributes, which is far more than any file system keeps
/// per file.
pub const MAX_PAX_HEADER: u64 = 1 << 20;

/// The largest frontend component kiln loads. The largest frontend measured, a Python one
/// built with componentize-py (which carries CPython and its standard library), is 18 MiB;
/// the built-in ones are under 1 MiB. 128 MiB leaves room for bigger runtimes while keeping
/// what a stray path (a device, a huge file) can make kiln read and compile small.
pub const MAX_FRONTEND_SIZE: u64 = 128 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            step_memory: DEFAULT_STEP_MEMORY,
            step_processes: DEFAULT_STEP_PROCESSES,
            step_output: DEFAULT_STEP_OUTPUT,
            context_files: DEFAULT_CONTEXT_FILES,
            layer_size: DEFAULT_LAYER_SIZE,
            build_file_size: DEFAULT_BUILD_FILE_SIZE,
        }
    }
}

/// One named limit, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::step_memory`].
    StepMemory,
    /// [`Limits::step_processes`].
    StepProcesses,
    /// [`Limits::step_output`].
    StepOutput,
    /// [`Limits::context_files`].
    ContextFiles,
    /// [`Limits::layer_size`].
    LayerSize,
    /// [`Limits::build_file_size`].
    BuildFileSize,
    /// [`DEFAULT_REGISTRY_TIMEOUT`]: seconds a registry transfer may make no progress.
    RegistryTimeout,
}

impl Limit {
    /// The command-line flag.
    pub fn flag(self) -> &'static str {
        match self {
            Limit::StepMemory => "--step-memory",
            Limit::StepProcesses => "--step-processes",
            Limit::StepOutput => "--step-output",
            Limit::ContextFiles => "--max-context-files",
            Limit::LayerSize => "--max-layer-size",
            Limit::BuildFileSize => "--max-build-file-size",
            Limit::RegistryTimeout => "--registry-timeout",
        }
    }

    /// The environment variable that sets it too.
    pub fn env(self) -> &'static str {
        match self {
            Limit::StepMemory => "KILN_STEP_MEMORY",
            Limit::StepProcesses => "KILN_STEP_PROCESSES",
            Limit::StepOutput => "KILN_STEP_OUTPUT",
            Limit::ContextFiles => "KILN_MAX_CONTEXT_FILES",
            Limit::LayerSize => "KILN_MAX_LAYER_SIZE",
            Limit::BuildFileSize => "KILN_MAX_BUILD_FILE_SIZE",
            Limit::RegistryTimeout => "KILN_REGISTRY_TIMEOUT",
        }
    }

    /// What an argument of the flag looks like.
    fn argument(self) -> &'static str {
        match self {
            Limit::StepMemory => "MIB",
            Limit::StepProcesses | Limit::ContextFiles => "N",
            Limit::StepOutput | Limit::LayerSize | Limit::BuildFileSize => "SIZE",
            Limit::RegistryTimeout => "SECONDS",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.flag())
    }
}

/// The sentence every limit error ends with: which setting was hit, at what value, and how
/// to raise it.
pub fn exceeded(limit: Limit, value: &str) -> String {
    format!(
        "the limit {} is {value}; if this is expected, raise it with {} {} or {}",
        limit.flag(),
        limit.flag(),
        limit.argument(),
        limit.env()
    )
}

/// `bytes` for people: whole KiB, MiB, GiB or TiB where exact, else bytes.
pub fn human_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.trailing_zeros() >= shift {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// Parse a size as Docker's `--memory` and `--shm-size` do: a number, optionally followed by
/// `b`, `k`, `m`, `g` or `t` (binary multiples, any case, an optional `ib`/`b` after the
/// letter). Written here because it is a dozen lines and the crates that parse sizes read
/// `GB` as 10^9, unlike Docker.
///
/// # Errors
/// The text is not a size, or the size does not fit in 64 bits.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| SizeError::NotANumber { text: text.to_string() })?;
    let unit = unit.trim();
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(SizeError::Unit { text: text.to_string(), unit: unit.to_string() }),
    };
    number.checked_mul(1 << shift).ok_or_else(|| SizeError::TooLarge { text: text.to_string() })
}

/// A size kiln cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// No number.
    #[error("`{text}` is not a size: give a number, with k, m, g or t after it")]
    NotANumber {
        /// The text given.
        text: String,
    },
    /// A unit kiln does not know.
    #[error("`{text}`: unknown unit `{unit}`; use k, m, g or t (binary multiples)")]
    Unit {
        /// The text given.
        text: String,
        /// The unit.
        unit: String,
    },
    /// More than 64 bits hold.
    #[error("`{text}` is too large")]
    TooLarge {
        /// The text given.
        text: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_docker_reads_them() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1 gb"), Ok(1 << 30));
        assert_eq!(parse_size("3t"), Ok(3 << 40));
        assert!(parse_size("").is_err());
        assert!(parse_size("12 parsecs").unwrap_err().to_string().contains("unknown unit"));
        assert!(parse_size("99999999999t").unwrap_err().to_string().contains("too large"));
    }

    #[test]
    fn errors_name_the_setting_and_how_to_raise_it() {
        let text = exceeded(Limit::LayerSize, &human_size(DEFAULT_LAYER_SIZE));
        assert_eq!(
            text,
            "the limit --max-layer-size is 8 GiB; if this is expected, raise it with --max-layer-size SIZE or KILN_MAX_LAYER_SIZE"
        );
        assert_eq!(human_size(1536), "1536 bytes");
        assert_eq!(human_size(3 << 20), "3 MiB");
    }
}
