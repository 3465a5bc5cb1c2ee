//! The platform kiln runs on and the one it builds for by default, in OCI's `os/arch` form,
//! and what a Linux image's programs find without a PATH of their own.

/// The PATH an image without one gets, as Docker sets it for Linux images (RUN steps,
/// `kiln run`, and finding an image's program).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where a program named `name` is looked for, in order, as a shell's PATH search has it: a
/// name with a `/` is a path of its own; any other is tried in each directory of `path_env`
/// ([`DEFAULT_PATH`] when the image sets none; empty entries are skipped).
pub fn program_candidates(name: &str, path_env: Option<&str>) -> Vec<String> {
    if name.contains('/') {
        return vec![name.to_string()];
    }
    path_env.unwrap_or(DEFAULT_PATH).split(':').filter(|d| !d.is_empty()).map(|d| format!("{d}/{name}")).collect()
}

/// The OCI architecture name of a Rust `target_arch`.
pub(crate) fn oci_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The machine kiln runs on (`linux/amd64`), for BUILDPLATFORM.
pub fn host() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    format!("{os}/{}", oci_arch(std::env::consts::ARCH))
}

/// The platform images are built for unless `--platform` says otherwise: Linux on the
/// host's architecture, as with `docker build`.
pub fn default_target() -> String {
    format!("linux/{}", oci_arch(std::env::consts::ARCH))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_oci() {
        assert_eq!(super::oci_arch("x86_64"), "amd64");
        assert!(super::default_target().starts_with("linux/"));
    }
}
