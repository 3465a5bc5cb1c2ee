//! The platform kiln runs on and the one it builds for by default, in OCI's `os/arch` form.

/// The OCI architecture name of a Rust `target_arch`.
fn oci_arch(arch: &str) -> &str {
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
