//! Platform strings (`linux/arm64/v8`) and the predefined platform build arguments.
//!
//! Normalises what users write the way containerd's `platforms.Parse` does (`aarch64` is
//! `arm64`, `x86_64` is `amd64`, `armhf` is `arm/v7`), so `FROM --platform=` values and
//! `TARGETARCH` read the same on every machine.

/// A parsed platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Operating system (`linux`, `windows`, `wasip1`).
    pub os: String,
    /// Architecture (`amd64`, `arm64`, `wasm`).
    pub arch: String,
    /// Variant (`v7`), empty when none.
    pub variant: String,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn format(&self) -> String {
        if self.variant.is_empty() {
            format!("{}/{}", self.os, self.arch)
        } else {
            format!("{}/{}/{}", self.os, self.arch, self.variant)
        }
    }
}

fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "aix"
            | "android"
            | "darwin"
            | "dragonfly"
            | "freebsd"
            | "illumos"
            | "ios"
            | "js"
            | "linux"
            | "netbsd"
            | "openbsd"
            | "plan9"
            | "solaris"
            | "windows"
            | "wasip1"
            | "wasip2"
            | "wasi"
    )
}

/// The architecture and variant in containerd's normal form.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    match arch.as_str() {
        "i386" | "i486" | "i586" | "i686" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if variant == "v1" { String::new() } else { variant };
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = match variant.as_str() {
                "8" | "v8" | "8.0" | "v8.0" => String::new(),
                _ => variant,
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), v)
        }
        _ => (arch, variant),
    }
}

/// Parse and normalise a platform specifier.
///
/// # Errors
/// An empty or malformed specifier.
pub fn parse(spec: &str) -> Result<Platform, String> {
    let parts: Vec<&str> = spec.split('/').collect();
    let valid_part =
        |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if parts.len() > 3 || !parts.iter().all(|p| valid_part(p)) {
        return Err(format!("\"{spec}\": invalid platform specifier, expected os[/arch[/variant]]"));
    }
    let os = parts[0].to_ascii_lowercase();
    let (os, arch, variant) = match parts.len() {
        1 if is_known_os(&os) => (os, "amd64".to_string(), String::new()),
        1 => ("linux".to_string(), parts[0].to_string(), String::new()),
        2 => (os, parts[1].to_string(), String::new()),
        _ => (os, parts[1].to_string(), parts[2].to_string()),
    };
    let (arch, variant) = normalize_arch(&arch, &variant);
    Ok(Platform { os, arch, variant })
}

/// The predefined platform arguments (`BUILDPLATFORM`, `TARGETOS`, ...), in BuildKit's order.
pub fn predefined_args(build: &Platform, target: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, p) in [("BUILD", build), ("TARGET", target)] {
        out.push((format!("{prefix}PLATFORM"), p.format()));
        out.push((format!("{prefix}OS"), p.os.clone()));
        out.push((format!("{prefix}ARCH"), p.arch.clone()));
        out.push((format!("{prefix}VARIANT"), p.variant.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(parse("linux/aarch64").unwrap().format(), "linux/arm64");
        assert_eq!(parse("linux/arm64/v8").unwrap().format(), "linux/arm64");
        assert_eq!(parse("linux/x86_64").unwrap().format(), "linux/amd64");
        assert_eq!(parse("linux/armhf").unwrap().format(), "linux/arm/v7");
        assert_eq!(parse("linux/arm").unwrap().format(), "linux/arm/v7");
        assert_eq!(parse("wasip1/wasm").unwrap().format(), "wasip1/wasm");
        assert_eq!(parse("arm64").unwrap().format(), "linux/arm64");
        assert_eq!(parse("Linux/AMD64").unwrap().format(), "linux/amd64");
        assert!(parse("").is_err());
        assert!(parse("linux//amd64").is_err());
        assert!(parse("a/b/c/d").is_err());
    }

    #[test]
    fn predefined() {
        let args = predefined_args(&parse("linux/amd64").unwrap(), &parse("linux/arm/v7").unwrap());
        assert!(args.contains(&("TARGETVARIANT".into(), "v7".into())));
        assert!(args.contains(&("BUILDARCH".into(), "amd64".into())));
        assert_eq!(args.len(), 8);
    }
}
