//! Registry credentials: read from Docker's client configuration, the file `docker login`
//! and `kiln login` both write, so a machine logged in with one works with the other.
//!
//! The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. An entry is
//! found by registry host; Docker Hub's is keyed `https://index.docker.io/v1/`. Credentials
//! come from the entry's `auth` (base64 `user:password`), its `username`/`password`, its
//! `registrytoken` (a bearer token), or a credential helper (`credHelpers`, `credsStore`),
//! run as `docker-credential-<name> get` exactly as Docker runs it.
//!
//! This module never prints a secret and writes only that one file, atomically, mode 0600,
//! keeping every field it does not manage.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oci_client::secrets::RegistryAuth;
use serde_json::{Map, Value};

/// Docker Hub's key in the config file, kept for compatibility with `docker login`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The hosts that mean Docker Hub.
const DOCKER_HUB_HOSTS: [&str; 4] = ["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"];

/// Where Docker's client configuration lives.
pub fn config_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".docker").join("config.json")
}

/// The key a registry host is stored under.
pub fn key_for(registry: &str) -> String {
    if DOCKER_HUB_HOSTS.contains(&registry) { DOCKER_HUB_KEY.to_string() } else { registry.to_string() }
}

/// A config key reduced to its host (`https://host:5000/v1/` → `host:5000`).
fn host_of(key: &str) -> &str {
    let rest = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

fn same_registry(key: &str, registry: &str) -> bool {
    let host = host_of(key);
    host == registry || (DOCKER_HUB_HOSTS.contains(&host) && DOCKER_HUB_HOSTS.contains(&registry))
}

/// Errors reading or writing credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The config file exists but cannot be used.
    #[error("{path}: {detail}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper} failed for {registry}: {detail}")]
    Helper {
        /// The helper's name.
        helper: String,
        /// The registry asked about.
        registry: String,
        /// What went wrong.
        detail: String,
    },
}

/// Credentials found for a registry, and where they came from (for messages).
#[derive(Debug, Clone)]
pub struct Found {
    /// What to send.
    pub auth: RegistryAuth,
    /// Where they came from, for error messages (never the secret).
    pub source: String,
}

fn read_config(path: &Path) -> Result<Map<String, Value>, AuthError> {
    let bad = |detail: String| AuthError::Config { path: path.to_path_buf(), detail };
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(bad("it is not a JSON object".into())),
            Err(e) => Err(bad(format!("it is not valid JSON: {e}"))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(bad(format!("cannot read it: {e}"))),
    }
}

/// The credentials for `registry` (a host such as `docker.io` or `127.0.0.1:5000`), or
/// anonymous access when the config has none.
pub fn lookup(registry: &str) -> Result<Found, AuthError> {
    lookup_in(&config_path(), registry)
}

/// [`lookup`] in a given config file.
pub fn lookup_in(path: &Path, registry: &str) -> Result<Found, AuthError> {
    let config = read_config(path)?;
    let anonymous = Found { auth: RegistryAuth::Anonymous, source: "anonymous".into() };
    let helper = config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|helpers| helpers.iter().find(|(k, _)| same_registry(k, registry)))
        .and_then(|(_, v)| v.as_str())
        .or_else(|| config.get("credsStore").and_then(Value::as_str))
        .filter(|h| !h.is_empty());
    let entry = config
        .get("auths")
        .and_then(Value::as_object)
        .and_then(|auths| auths.iter().find(|(k, _)| same_registry(k, registry)))
        .map(|(_, v)| v);
    if let Some(entry) = entry
        && let Some(auth) = entry_auth(path, entry)?
    {
        return Ok(Found { auth, source: path.display().to_string() });
    }
    if let Some(helper) = helper {
        return Ok(match run_helper(helper, registry)? {
            Some(auth) => Found { auth, source: format!("docker-credential-{helper}") },
            None => anonymous,
        });
    }
    Ok(anonymous)
}

fn entry_auth(path: &Path, entry: &Value) -> Result<Option<RegistryAuth>, AuthError> {
    let text = |k: &str| entry.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(token) = text("registrytoken") {
        return Ok(Some(RegistryAuth::Bearer(token.to_string())));
    }
    if let Some(encoded) = text("auth") {
        let bad = |detail: &str| AuthError::Config { path: path.to_path_buf(), detail: detail.to_string() };
        let decoded = BASE64.decode(encoded.trim()).map_err(|_| bad("an \"auth\" value is not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad("an \"auth\" value is not UTF-8"))?;
        let (user, password) =
            decoded.split_once(':').ok_or_else(|| bad("an \"auth\" value is not base64 of user:password"))?;
        return Ok(Some(RegistryAuth::Basic(user.to_string(), password.to_string())));
    }
    if let (Some(user), Some(password)) = (text("username"), text("password")) {
        return Ok(Some(RegistryAuth::Basic(user.to_string(), password.to_string())));
    }
    Ok(None)
}

/// Ask `docker-credential-<helper> get` for a registry's credentials, as Docker does: the
/// server on stdin, `{"Username":…,"Secret":…}` on stdout; "not found" means none.
fn run_helper(helper: &str, registry: &str) -> Result<Option<RegistryAuth>, AuthError> {
    let fail = |detail: String| AuthError::Helper { helper: helper.into(), registry: registry.into(), detail };
    let server = if DOCKER_HUB_HOSTS.contains(&registry) { DOCKER_HUB_KEY } else { registry };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!("cannot start it ({e}); install it or remove it from {}", config_path().display()))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(server.as_bytes()).map_err(|e| fail(e.to_string()))?;
    }
    let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!("{}{}", stdout.trim(), String::from_utf8_lossy(&output.stderr).trim())));
    }
    let answer: Value = serde_json::from_str(&stdout).map_err(|e| fail(format!("its answer is not JSON: {e}")))?;
    let field = |k: &str| answer.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (user, secret) = (field("Username"), field("Secret"));
    Ok(match (user.as_str(), secret.as_str()) {
        (_, "") => None,
        // Docker's convention for an identity token.
        ("<token>", token) => Some(RegistryAuth::Bearer(token.to_string())),
        (user, secret) => Some(RegistryAuth::Basic(user.to_string(), secret.to_string())),
    })
}

/// Record `user`/`password` for `registry` in the config file (as `docker login` does).
pub fn save(path: &Path, registry: &str, user: &str, password: &str) -> Result<(), AuthError> {
    let mut config = read_config(path)?;
    let auths = config.entry("auths").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(auths) = auths else {
        return Err(AuthError::Config { path: path.to_path_buf(), detail: "\"auths\" is not an object".into() });
    };
    auths.retain(|k, _| !same_registry(k, registry));
    let mut entry = Map::new();
    entry.insert("auth".into(), Value::String(BASE64.encode(format!("{user}:{password}"))));
    auths.insert(key_for(registry), Value::Object(entry));
    write_config(path, &config)
}

/// Forget the credentials for `registry`; whether there were any.
pub fn remove(path: &Path, registry: &str) -> Result<bool, AuthError> {
    let mut config = read_config(path)?;
    let Some(Value::Object(auths)) = config.get_mut("auths") else { return Ok(false) };
    let before = auths.len();
    auths.retain(|k, _| !same_registry(k, registry));
    if auths.len() == before {
        return Ok(false);
    }
    write_config(path, &config)?;
    Ok(true)
}

fn write_config(path: &Path, config: &Map<String, Value>) -> Result<(), AuthError> {
    let fail = |detail: String| AuthError::Config { path: path.to_path_buf(), detail };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create its directory: {e}")))?;
    let mut bytes = serde_json::to_vec_pretty(config).map_err(|e| fail(e.to_string()))?;
    bytes.push(b'\n');
    // tempfile creates the file 0600: the secret is never readable by others, even briefly.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(format!("cannot write next to it: {e}")))?;
    tmp.write_all(&bytes).and_then(|()| tmp.as_file().sync_all()).map_err(|e| fail(format!("cannot write: {e}")))?;
    tmp.persist(path).map_err(|e| fail(format!("cannot replace it: {}", e.error)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_looks_up_and_removes_keeping_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker").join("config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, r#"{"psFormat":"x","auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}}}"#).unwrap();
        save(&path, "127.0.0.1:5000", "alice", "s3:cret").unwrap();
        let found = lookup_in(&path, "127.0.0.1:5000").unwrap();
        assert!(matches!(found.auth, RegistryAuth::Basic(ref u, ref p) if u == "alice" && p == "s3:cret"));
        let hub = lookup_in(&path, "index.docker.io").unwrap();
        assert!(matches!(hub.auth, RegistryAuth::Basic(ref u, ref p) if u == "u" && p == "p"));
        assert!(matches!(lookup_in(&path, "other:1").unwrap().auth, RegistryAuth::Anonymous));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("psFormat"));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o077, 0, "not readable by others");
        assert!(remove(&path, "127.0.0.1:5000").unwrap());
        assert!(!remove(&path, "127.0.0.1:5000").unwrap());
        assert!(matches!(lookup_in(&path, "127.0.0.1:5000").unwrap().auth, RegistryAuth::Anonymous));
    }

    #[test]
    fn keys_with_schemes_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"http://reg.example:5000/v2/":{"username":"u","password":"p"},"tok.example":{"registrytoken":"T"}}}"#,
        )
        .unwrap();
        assert!(matches!(lookup_in(&path, "reg.example:5000").unwrap().auth, RegistryAuth::Basic(..)));
        assert!(matches!(lookup_in(&path, "tok.example").unwrap().auth, RegistryAuth::Bearer(ref t) if t == "T"));
        std::fs::write(&path, "{not json").unwrap();
        let err = lookup_in(&path, "x").unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("not valid JSON"), "{err}");
    }
}
