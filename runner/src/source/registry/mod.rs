//! Registries: pulling images into kiln's store and pushing images from it, over the OCI
//! distribution protocol. [`session`] sends every request and bounds every answer; this
//! module decides what to fetch, verifies it, and turns failures into messages a user can
//! act on. (References and credentials are `oci-client`'s types; its client is not used,
//! because it reads manifests, tokens and refusals whole, with no bound.)
//!
//! - References get Docker's defaults: `alpine` is `docker.io/library/alpine:latest`.
//! - Credentials come from Docker's client configuration ([`auth`]); `kiln login` writes it.
//! - A registry is spoken to over HTTPS unless it was named with `--insecure-registry`.
//! - Every manifest and blob is checked against its digest while it streams in; a blob that
//!   does not match is discarded and nothing is tagged. Blobs land in the store through its
//!   atomic writer, so a failed or interrupted pull leaves no half-written blob and no tag.
//! - A hostile registry cannot make kiln read without end: manifests, indexes and configs
//!   are bounded at [`crate::limits::MAX_JSON_DOCUMENT`], a blob at its descriptor's size,
//!   and a transfer that makes no progress for `--registry-timeout` seconds is stopped.
//! - A foreign (non-distributable) layer's `urls` are followed only to hosts named with
//!   `--allow-nondistributable-artifacts`, as Docker requires.
//! - A push skips blobs the registry already has (`HEAD`), and mounts blobs from another
//!   repository of the same registry when kiln knows one has them ([`sources`]).
//!
//! This module never writes outside the store except the credentials file, and never
//! unpacks a layer: layers are applied to in-memory trees by [`crate::layer`].

pub mod auth;
mod login;
mod pull;
mod push;
mod scope;
mod session;
mod sources;

use std::sync::OnceLock;
use std::time::Duration;

use oci_client::Reference;
use oci_client::secrets::RegistryAuth;

use crate::image::{self, ImageRef};
use crate::limits::{Limit, exceeded, human_size};
use crate::source::image::{self as loading, ImageError, LoadedImage};
use crate::store::{Digest, Store, StoreError};

pub use pull::Pulled;
pub use push::Pushed;
pub use scope::RegistryScope;
pub use session::MAX_ERROR_BODY;

/// How kiln talks to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// How long a transfer may make no progress (`--registry-timeout`); default
    /// [`crate::limits::DEFAULT_REGISTRY_TIMEOUT`] seconds.
    pub timeout: Duration,
    /// Hosts (`host`, or `host:port`) a foreign layer's URLs may be fetched from
    /// (`--allow-nondistributable-artifacts`); default none.
    pub allow_nondistributable: Vec<String>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            timeout: Duration::from_secs(crate::limits::DEFAULT_REGISTRY_TIMEOUT),
            allow_nondistributable: Vec::new(),
        }
    }
}

/// What went wrong talking to a registry; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference cannot name an image.
    #[error("{reference:?} is not a valid image reference ({detail}); write [REGISTRY/]REPOSITORY[:TAG][@DIGEST]")]
    BadReference {
        /// As written.
        reference: String,
        /// The parser's complaint.
        detail: String,
    },
    /// The registry has no such image.
    #[error("{reference}: not found in the registry ({detail}); check the name and the tag")]
    NotFound {
        /// The full reference.
        reference: String,
        /// What the registry said.
        detail: String,
    },
    /// The registry refused the credentials, or wants some.
    #[error("{reference}: the registry {registry} refused access ({detail}); {advice}")]
    Unauthorized {
        /// The full reference.
        reference: String,
        /// The registry host.
        registry: String,
        /// What the registry said.
        detail: String,
        /// What to do.
        advice: String,
    },
    /// The registry speaks plain HTTP and was not named insecure.
    #[error(
        "the registry {registry} answers in plain HTTP, not HTTPS; if you trust it (a local test registry, say), pass --insecure-registry {registry}"
    )]
    PlainHttp {
        /// The registry host.
        registry: String,
    },
    /// The registry cannot be reached.
    #[error("cannot reach the registry {registry}: {detail}; check the network and the registry's name")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// The transport's error.
        detail: String,
    },
    /// Content did not match its digest.
    #[error(
        "{reference}: {what} should have digest {expected} but has {actual}; it was discarded and nothing was tagged"
    )]
    DigestMismatch {
        /// The full reference.
        reference: String,
        /// Which document or blob.
        what: String,
        /// The digest it was named by.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The image is in a form kiln does not read.
    #[error("{reference}: {detail}")]
    Unsupported {
        /// The full reference.
        reference: String,
        /// What kiln cannot handle.
        detail: String,
    },
    /// The registry answered, but not as the protocol says.
    #[error("{reference}: the registry {registry} failed: {detail}")]
    Protocol {
        /// The full reference.
        reference: String,
        /// The registry host.
        registry: String,
        /// What happened.
        detail: String,
    },
    /// The registry sent a document larger than kiln reads.
    #[error(
        "{reference}: the registry {registry} sent {what} larger than {}, the most kiln reads of one; kiln stopped reading it (the registry is broken or hostile)",
        human_size(*limit)
    )]
    TooLarge {
        /// The full reference.
        reference: String,
        /// The registry host.
        registry: String,
        /// Which document.
        what: String,
        /// The bound, bytes.
        limit: u64,
    },
    /// A blob's body disagrees with its descriptor's size.
    #[error("{reference}: blob {digest} {detail}; nothing was tagged (the registry is broken or hostile)")]
    BlobSize {
        /// The full reference.
        reference: String,
        /// The blob.
        digest: String,
        /// How it disagrees.
        detail: String,
    },
    /// A transfer made no progress for the registry timeout.
    #[error(
        "{reference}: the registry {registry} made no progress for {seconds} s while kiln was {doing}, so kiln stopped; {}",
        exceeded(Limit::RegistryTimeout, &format!("{seconds} s"))
    )]
    Stalled {
        /// The full reference.
        reference: String,
        /// The registry host.
        registry: String,
        /// What kiln was doing.
        doing: String,
        /// The timeout.
        seconds: u64,
    },
    /// A foreign layer the registry does not serve, whose URL the user did not allow.
    #[error(
        "{reference}: layer {digest} is a foreign (non-distributable) layer that the registry does not serve ({detail}); its descriptor points at {url}, and kiln fetches such layers only from hosts you allow: if you trust {host}, pass --allow-nondistributable-artifacts {host} (or set KILN_ALLOW_NONDISTRIBUTABLE_ARTIFACTS={host})"
    )]
    ForeignLayer {
        /// The full reference.
        reference: String,
        /// The layer.
        digest: String,
        /// The first URL its descriptor names.
        url: String,
        /// That URL's host, as the allow list names it.
        host: String,
        /// What the registry said.
        detail: String,
    },
    /// Credentials could not be read.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An image in the store or a layout cannot be used.
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// A connection to registries, shared by a whole kiln command (and its parallel stages).
pub struct Registry {
    options: RegistryOptions,
    /// Made on first use: commands that never reach a registry start no runtime.
    inner: OnceLock<Result<Inner, String>>,
}

struct Inner {
    runtime: tokio::runtime::Runtime,
    /// For every request: connects and reads give up after the registry timeout.
    http: reqwest::Client,
    /// For uploads, whose progress [`session`] watches itself: the read timeout of `http`
    /// would count a whole upload as one wait for the answer.
    upload_http: reqwest::Client,
}

/// Parse a reference with Docker's defaults (registry `docker.io`, `library/`, tag `latest`).
pub fn parse_reference(text: &str) -> Result<Reference, RegistryError> {
    Reference::try_from(text)
        .map_err(|e| RegistryError::BadReference { reference: text.to_string(), detail: e.to_string() })
}

impl Registry {
    /// A registry client; nothing is connected until it is used.
    pub fn new(options: RegistryOptions) -> Self {
        Registry { options, inner: OnceLock::new() }
    }

    fn is_insecure(&self, registry: &str) -> bool {
        self.options.insecure.iter().any(|r| r == registry)
    }

    /// Whether a foreign layer's `url` is on a host the user allowed: an entry `host` allows
    /// any port of it, `host:port` that port only.
    fn allows_foreign(&self, url: &reqwest::Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        let port = url.port_or_known_default();
        self.options.allow_nondistributable.iter().any(|entry| match entry.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() && !h.is_empty() => {
                h.eq_ignore_ascii_case(host) && p.parse::<u16>().ok() == port
            }
            _ => entry.eq_ignore_ascii_case(host),
        })
    }

    fn inner(&self) -> Result<&Inner, RegistryError> {
        let made = self.inner.get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("kiln-registry")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the network runtime: {e}"))?;
            let timeout = self.options.timeout;
            let builder = || {
                reqwest::Client::builder()
                    .connect_timeout(timeout)
                    .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            };
            let made = |b: reqwest::ClientBuilder| b.build().map_err(|e| format!("cannot make an HTTP client: {e}"));
            let http = made(builder().read_timeout(timeout))?;
            let upload_http = made(builder())?;
            Ok(Inner { runtime, http, upload_http })
        });
        made.as_ref().map_err(|detail| RegistryError::Unreachable { registry: "(any)".into(), detail: detail.clone() })
    }

    fn http(&self) -> Result<&reqwest::Client, RegistryError> {
        Ok(&self.inner()?.http)
    }

    fn upload_http(&self) -> Result<&reqwest::Client, RegistryError> {
        Ok(&self.inner()?.upload_http)
    }

    /// Find the image `reference` names: an OCI layout, a tag in the store, a manifest the
    /// store holds by the reference's digest, else the registry (pulled, verified and
    /// tagged, `report` hearing of it). `always_pull` goes to the registry even when the
    /// store has the tag (`--pull`). From an index, the first of `platforms` it offers is
    /// taken.
    ///
    /// # Errors
    ///
    /// As [`loading::load`] and [`Registry::pull`].
    pub fn resolve(
        &self,
        store: &Store,
        reference: &str,
        platforms: &[String],
        always_pull: bool,
        report: &(dyn Fn(&str) + Sync),
    ) -> Result<LoadedImage, RegistryError> {
        if matches!(image::parse_ref(reference), ImageRef::Layout { .. }) {
            return Ok(loading::load(store, reference, platforms)?);
        }
        if !always_pull {
            match loading::load(store, reference, platforms) {
                Ok(found) => return Ok(found),
                Err(ImageError::NotFound { .. }) => {}
                Err(other) => return Err(other.into()),
            }
            // `name@sha256:…` whose manifest the store already holds needs no network.
            if let Ok(parsed) = parse_reference(reference)
                && let Some(digest) = parsed.digest().and_then(|d| Digest::parse(d).ok())
                && store.has_blob(&digest)
                && let Ok(bytes) = store.read_blob(&digest)
                && let Some(media) = pull::declared_media_type(&bytes)
            {
                let descriptor = crate::store::descriptor(pull::media_type_of(&media), &digest, bytes.len() as u64);
                return Ok(loading::load_from_store(store, reference, &descriptor, platforms)?);
            }
        }
        let pulled = self.pull(store, reference, platforms, report)?;
        Ok(loading::load_from_store(store, reference, &pulled.tagged, platforms)?)
    }

    /// Credentials for the registry of `reference`.
    fn credentials(&self, reference: &Reference) -> Result<auth::Found, RegistryError> {
        Ok(auth::lookup(reference.resolve_registry())?)
    }

    /// The registry refused access: what to do depends on whether kiln sent credentials.
    fn unauthorized(&self, reference: &Reference, credentials: &auth::Found, detail: String) -> RegistryError {
        let registry = reference.registry().to_string();
        let logged_in = !matches!(credentials.auth, RegistryAuth::Anonymous);
        let advice = if logged_in {
            format!(
                "the credentials from {} were refused or lack access: run `kiln login {registry}` again",
                credentials.source
            )
        } else {
            format!(
                "the repository may not exist, or it may need credentials: run `kiln login {registry}` (or `docker login`)"
            )
        };
        RegistryError::Unauthorized { reference: reference.whole(), registry, detail, advice }
    }

    /// A transport failure: plain HTTP where HTTPS was expected, or no connection at all.
    fn transport(&self, reference: &Reference, error: &reqwest::Error) -> RegistryError {
        let registry = reference.registry().to_string();
        let host = reference.resolve_registry();
        if !self.is_insecure(&registry) && speaks_plain_http(host) {
            return RegistryError::PlainHttp { registry };
        }
        RegistryError::Unreachable { registry, detail: root_cause(error) }
    }
}

/// The first line of a server's message, shortened.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > 200 { format!("{}…", line.chars().take(200).collect::<String>()) } else { line.into() }
}

/// The innermost cause of a transport error ("Connection refused", a DNS failure), which
/// says more than the layers wrapped around it.
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// Whether `host` (`name[:port]`, port 443 by default) answers a plain HTTP request: the
/// telltale of a registry without TLS, which a TLS client only sees as a garbled handshake.
fn speaks_plain_http(host: &str) -> bool {
    use std::io::{Read as _, Write as _};
    use std::net::{TcpStream, ToSocketAddrs as _};
    let with_port = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        host.to_string()
    } else {
        format!("{host}:443")
    };
    let Some(addr) = with_port.to_socket_addrs().ok().and_then(|mut a| a.next()) else { return false };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_get_docker_defaults() {
        assert_eq!(parse_reference("alpine").unwrap().whole(), "docker.io/library/alpine:latest");
        assert_eq!(parse_reference("127.0.0.1:5000/a/b:1").unwrap().registry(), "127.0.0.1:5000");
        let err = parse_reference("UPPER/Case").unwrap_err().to_string();
        assert!(err.contains("not a valid image reference"), "{err}");
    }

    #[test]
    fn foreign_layers_come_only_from_allowed_hosts() {
        let registry = Registry::new(RegistryOptions {
            allow_nondistributable: vec!["cdn.example".into(), "127.0.0.1:8080".into()],
            ..RegistryOptions::default()
        });
        let allowed = |url: &str| registry.allows_foreign(&reqwest::Url::parse(url).unwrap());
        assert!(allowed("https://cdn.example/layer.tar"));
        assert!(allowed("http://CDN.example:9000/layer.tar"), "a host without a port allows every port");
        assert!(allowed("http://127.0.0.1:8080/layer.tar"));
        assert!(!allowed("http://127.0.0.1:8081/layer.tar"), "a host with a port allows that port only");
        assert!(!allowed("https://cdn.example.evil/layer.tar"));
        assert!(!allowed("https://evil.example/cdn.example"));
        assert!(
            !Registry::new(RegistryOptions::default())
                .allows_foreign(&reqwest::Url::parse("https://cdn.example/layer.tar").unwrap())
        );
    }

    #[test]
    fn a_plain_http_server_is_recognised() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            s.write_all(b"HTTP/1.0 200 OK\r\n\r\n{}").unwrap();
        });
        assert!(speaks_plain_http(&addr));
        server.join().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        assert!(!speaks_plain_http(&closed));
    }
}
