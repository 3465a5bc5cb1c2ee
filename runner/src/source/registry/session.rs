//! One conversation with one repository of a registry: every HTTP request kiln sends to a
//! registry goes through here, so every bound on what a registry can make kiln read, store
//! or wait for sits in one place.
//!
//! - Authentication as containerd does it: a request goes out, and a `401` whose
//!   `WWW-Authenticate` challenge kiln can answer (a token from the challenge's realm for
//!   `Bearer`, the credentials for `Basic`) is sent once more. Tokens and credentials go
//!   only to the registry's own host, never to a redirect, an upload location or a foreign
//!   layer's URL elsewhere.
//! - Every body is bounded while it streams: manifests and indexes at
//!   [`MAX_JSON_DOCUMENT`], token answers at [`MAX_TOKEN_RESPONSE`], refusals at
//!   [`MAX_ERROR_BODY`] (the rest is never read), blobs at their descriptor's size: a byte
//!   more is an error, and a `Content-Length` that disagrees is refused before reading.
//! - A transfer that makes no progress for the registry timeout (`--registry-timeout`) ends
//!   with an error naming that setting.
//! - A foreign (non-distributable) layer's `urls` are followed only to hosts the user allowed
//!   (`--allow-nondistributable-artifacts`), and only when the registry does not serve it.
//!
//! It never writes a file: a blob goes to the [`BlobWriter`] it is given, which the caller
//! commits (checking the digest) or drops (discarding it).

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use oci_client::Reference;
use oci_client::secrets::RegistryAuth;
use oci_spec::image::Descriptor;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use super::{Registry, RegistryError, auth};
use crate::limits::{MAX_JSON_DOCUMENT, MAX_TOKEN_RESPONSE};
use crate::store::{self, BlobWriter, Digest, StoreError};

/// What kiln reads of an answer that refuses a request, to quote it in the error; the rest
/// is left unread.
pub const MAX_ERROR_BODY: u64 = 64 << 10;

/// What a session may do, which decides the scope of the tokens it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Read the repository.
    Pull,
    /// Read and write it.
    Push,
    /// Only check the credentials (`kiln login`): tokens without a scope, as `docker login`.
    Login,
}

/// One repository of one registry, with the credentials for it and, once a challenge was
/// answered, what goes in the `Authorization` header.
pub(super) struct Session<'a> {
    registry: &'a Registry,
    reference: &'a Reference,
    credentials: &'a auth::Found,
    access: Access,
    /// `scheme://host[:port]/`.
    base: Url,
    authorization: Mutex<Option<HeaderValue>>,
}

/// Why a bounded read stopped.
enum Cut {
    /// The body is larger than the bound (announced or seen).
    TooLarge,
    /// The transport failed.
    Failed(reqwest::Error),
}

impl<'a> Session<'a> {
    /// A session for `reference`'s repository; nothing is sent yet.
    pub(super) fn new(
        registry: &'a Registry,
        reference: &'a Reference,
        credentials: &'a auth::Found,
        access: Access,
    ) -> Result<Self, RegistryError> {
        let host = reference.resolve_registry();
        let scheme =
            if registry.is_insecure(reference.registry()) || registry.is_insecure(host) { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|e| RegistryError::BadReference {
            reference: reference.whole(),
            detail: format!("its registry {host} is not a host name: {e}"),
        })?;
        Ok(Session { registry, reference, credentials, access, base, authorization: Mutex::new(None) })
    }

    fn whole(&self) -> String {
        self.reference.whole()
    }

    fn host(&self) -> String {
        self.reference.registry().to_string()
    }

    /// `v2/<repository>/<rest>` on the registry.
    fn url(&self, rest: &str) -> Result<Url, RegistryError> {
        let text = format!("{}v2/{}/{rest}", self.base, self.reference.repository());
        Url::parse(&text).map_err(|e| self.protocol(format!("cannot make a URL of {text:?}: {e}")))
    }

    /// Whether `url` is on the registry itself (same scheme, host and port): the only place
    /// credentials and tokens are sent.
    fn on_registry(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    fn authorization(&self) -> Option<HeaderValue> {
        self.authorization.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn protocol(&self, detail: String) -> RegistryError {
        RegistryError::Protocol { reference: self.whole(), registry: self.host(), detail }
    }

    /// A transport error: a stall, plain HTTP where HTTPS was expected, or no connection.
    fn transport(&self, error: &reqwest::Error, doing: &str) -> RegistryError {
        if error.is_timeout() {
            return RegistryError::Stalled {
                reference: self.whole(),
                registry: self.host(),
                doing: doing.to_string(),
                seconds: self.registry.options.timeout.as_secs(),
            };
        }
        self.registry.transport(self.reference, error)
    }

    /// Send a request built by `build` (called again for the retry, so a streamed body is
    /// made afresh), answering one authentication challenge.
    async fn send(
        &self,
        client: &reqwest::Client,
        method: Method,
        url: &Url,
        doing: &str,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Sync),
    ) -> Result<Response, RegistryError> {
        let mut answered = false;
        loop {
            let mut request = client.request(method.clone(), url.clone());
            if self.on_registry(url)
                && let Some(value) = self.authorization()
            {
                request = request.header(AUTHORIZATION, value);
            }
            let response = build(request).send().await.map_err(|e| self.transport(&e, doing))?;
            if response.status() != StatusCode::UNAUTHORIZED || answered || !self.on_registry(url) {
                return Ok(response);
            }
            answered = true;
            match self.answer(&response, doing).await? {
                Some(value) => *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(value),
                None => return Ok(response),
            }
        }
    }

    /// What to send after a `401`: a token from a `Bearer` challenge's realm, or the
    /// credentials for a `Basic` one; `None` when kiln has nothing to answer with.
    async fn answer(&self, response: &Response, doing: &str) -> Result<Option<HeaderValue>, RegistryError> {
        let header = |text: String| {
            HeaderValue::from_str(&text)
                .map_err(|_| self.protocol("the credentials cannot be sent in an HTTP header".into()))
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
        };
        // A token from the config file (`registrytoken`, an identity token) is sent as is.
        if let RegistryAuth::Bearer(token) = &self.credentials.auth {
            return header(format!("Bearer {token}")).map(Some);
        }
        for value in response.headers().get_all(WWW_AUTHENTICATE) {
            let Ok(text) = value.to_str() else { continue };
            let Ok(challenges) = http_auth::parse_challenges(text) else { continue };
            for challenge in challenges {
                let param = |name: &str| {
                    challenge.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_unescaped())
                };
                if challenge.scheme.eq_ignore_ascii_case("bearer") {
                    let Some(realm) = param("realm") else { continue };
                    let token = self.token(&realm, param("service").as_deref(), doing).await?;
                    return header(format!("Bearer {token}")).map(Some);
                }
                if challenge.scheme.eq_ignore_ascii_case("basic")
                    && let RegistryAuth::Basic(user, password) = &self.credentials.auth
                {
                    use base64::Engine as _;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                    return header(format!("Basic {encoded}")).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// Ask the token service at `realm` for a token for this repository, reading at most
    /// [`MAX_TOKEN_RESPONSE`] of its answer.
    async fn token(&self, realm: &str, service: Option<&str>, doing: &str) -> Result<String, RegistryError> {
        let mut url = Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| self.protocol(format!("its challenge names a token service {realm:?} that is not a URL")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            let repository = self.reference.repository();
            match self.access {
                Access::Pull => drop(query.append_pair("scope", &format!("repository:{repository}:pull"))),
                Access::Push => drop(query.append_pair("scope", &format!("repository:{repository}:pull,push"))),
                Access::Login => {}
            }
            if let RegistryAuth::Basic(user, _) = &self.credentials.auth {
                query.append_pair("account", user);
            }
        }
        let doing = format!("{doing} (asking {realm} for a token)");
        let mut request = self.registry.http()?.get(url);
        if let RegistryAuth::Basic(user, password) = &self.credentials.auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(|e| self.transport(&e, &doing))?;
        let status = response.status();
        if !status.is_success() {
            let detail = refusal_text(response).await;
            return Err(self.registry.unauthorized(
                self.reference,
                self.credentials,
                format!("its token service {realm} answered HTTP {status}{detail}"),
            ));
        }
        let body = read_bounded(response, MAX_TOKEN_RESPONSE).await.map_err(|cut| match cut {
            Cut::TooLarge => RegistryError::TooLarge {
                reference: self.whole(),
                registry: self.host(),
                what: format!("a token answer (from {realm})"),
                limit: MAX_TOKEN_RESPONSE,
            },
            Cut::Failed(e) => self.transport(&e, &doing),
        })?;
        #[derive(serde::Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| self.protocol(format!("its token service {realm} answered with no token ({e})")))?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.protocol(format!("its token service {realm} answered with no token")))
    }

    /// The error for an answer that is not a success: who refused, what they said, and what
    /// to do. Reads at most [`MAX_ERROR_BODY`] of it.
    async fn refused(&self, response: Response) -> RegistryError {
        let refusal = Refusal::read(response).await;
        let has = |wanted: &[&str]| refusal.codes.iter().any(|c| wanted.contains(&c.as_str()));
        if matches!(refusal.status.as_u16(), 401 | 403) || has(&["UNAUTHORIZED", "DENIED"]) {
            self.registry.unauthorized(self.reference, self.credentials, refusal.detail)
        } else if refusal.status == StatusCode::NOT_FOUND || has(&["MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"])
        {
            RegistryError::NotFound { reference: self.whole(), detail: refusal.detail }
        } else {
            self.protocol(refusal.detail)
        }
    }

    /// Fetch the manifest or index `name` (a tag or a digest), reading at most
    /// [`MAX_JSON_DOCUMENT`], and check it against `name` when that is a digest, else against
    /// the digest the registry names in `Docker-Content-Digest`. Returns it and its digest.
    pub(super) async fn manifest(
        &self,
        name: &str,
        what: &str,
        accept: &[&str],
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let url = self.url(&format!("manifests/{name}"))?;
        let doing = format!("fetching {what}");
        let accept = accept.join(", ");
        let http = self.registry.http()?;
        let response = self.send(http, Method::GET, &url, &doing, &|r| r.header("Accept", &accept)).await?;
        if !response.status().is_success() {
            return Err(self.refused(response).await);
        }
        let announced = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v.trim()).ok());
        let bytes = read_bounded(response, MAX_JSON_DOCUMENT).await.map_err(|cut| match cut {
            Cut::TooLarge => RegistryError::TooLarge {
                reference: self.whole(),
                registry: self.host(),
                what: what.to_string(),
                limit: MAX_JSON_DOCUMENT,
            },
            Cut::Failed(e) => self.transport(&e, &doing),
        })?;
        let actual = Digest::of(&bytes);
        let expected = Digest::parse(name).ok().or(announced);
        if let Some(expected) = expected.filter(|e| *e != actual) {
            return Err(RegistryError::DigestMismatch {
                reference: self.whole(),
                what: what.to_string(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok((bytes, actual))
    }

    /// Download the blob `descriptor` names into `writer`, at most its size. A foreign layer
    /// the registry does not serve comes from its `urls`, on hosts the user allowed. Returns
    /// the bytes written; the caller checks the digest as it commits.
    pub(super) async fn blob(
        &self,
        descriptor: &Descriptor,
        digest: &Digest,
        writer: &mut BlobWriter,
        tmp: &Path,
    ) -> Result<u64, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let doing = format!("downloading blob {digest}");
        let http = self.registry.http()?;
        let response = self.send(http, Method::GET, &url, &doing, &|r| r).await?;
        if response.status().is_success() {
            return self.stream_blob(response, descriptor.size(), digest, writer, tmp, &doing).await;
        }
        let foreign: Vec<Url> = descriptor
            .urls()
            .iter()
            .flatten()
            .filter_map(|u| Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .collect();
        let Some(first) = foreign.first() else { return Err(self.refused(response).await) };
        let refusal = Refusal::read(response).await;
        let mut last = None;
        for url in foreign.iter().filter(|u| self.registry.allows_foreign(u)) {
            let doing = format!("downloading foreign layer {digest} from {url}");
            // Never with the registry's credentials: the URL is not the registry's.
            let response = http.get(url.clone()).send().await.map_err(|e| self.transport(&e, &doing))?;
            if response.status().is_success() {
                return self.stream_blob(response, descriptor.size(), digest, writer, tmp, &doing).await;
            }
            last = Some(self.refused(response).await);
        }
        Err(last.unwrap_or_else(|| RegistryError::ForeignLayer {
            reference: self.whole(),
            digest: digest.to_string(),
            url: first.to_string(),
            host: host_of(first),
            detail: refusal.detail,
        }))
    }

    /// Stream a blob's body into `writer`: a `Content-Length` other than `size` is refused
    /// before reading, and a body longer than `size` is cut off there.
    async fn stream_blob(
        &self,
        mut response: Response,
        size: u64,
        digest: &Digest,
        writer: &mut BlobWriter,
        tmp: &Path,
        doing: &str,
    ) -> Result<u64, RegistryError> {
        let wrong_size =
            |detail: String| RegistryError::BlobSize { reference: self.whole(), digest: digest.to_string(), detail };
        if let Some(announced) = response.content_length().filter(|n| *n != size) {
            return Err(wrong_size(format!(
                "is announced as {announced} bytes (Content-Length) but its descriptor gives {size}, so kiln did not read it"
            )));
        }
        let mut received = 0u64;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(self.transport(&e, doing)),
                Err(e) => {
                    return Err(RegistryError::Unreachable {
                        registry: self.host(),
                        detail: format!(
                            "the download of {digest} broke off after {received} of {size} bytes ({}); it was discarded and nothing was tagged",
                            super::root_cause(&e)
                        ),
                    });
                }
            };
            received += chunk.len() as u64;
            if received > size {
                return Err(wrong_size(format!(
                    "is longer than the {size} bytes its descriptor gives: kiln stopped reading it there and discarded it"
                )));
            }
            writer.write_all(&chunk).map_err(|source| StoreError::Io {
                action: "write",
                path: tmp.to_path_buf(),
                source,
            })?;
        }
        if received < size {
            return Err(wrong_size(format!(
                "ended after {received} of the {size} bytes its descriptor gives and was discarded"
            )));
        }
        Ok(received)
    }

    /// Whether the repository holds `digest` (`HEAD`).
    pub(super) async fn has_blob(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let response =
            self.send(self.registry.http()?, Method::HEAD, &url, &format!("looking for blob {digest}"), &|r| r).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.refused(response).await),
        }
    }

    /// Ask the registry to mount `digest` from its repository `from`; whether it did.
    pub(super) async fn mount(&self, digest: &Digest, from: &str) -> Result<bool, RegistryError> {
        let mut url = self.url("blobs/uploads/")?;
        url.query_pairs_mut().append_pair("mount", digest.as_str()).append_pair("from", from);
        let doing = format!("mounting blob {digest} from {from}");
        let response =
            self.send(self.registry.http()?, Method::POST, &url, &doing, &|r| r.header(CONTENT_LENGTH, 0)).await?;
        Ok(response.status() == StatusCode::CREATED)
    }

    /// Upload the store's blob at `path` (`size` bytes) as `digest`: one `POST` for an
    /// upload location, one `PUT` of the whole blob, re-hashed as it is read so a damaged
    /// blob ends the upload before the registry accepts it.
    pub(super) async fn upload(&self, path: &Path, size: u64, digest: &Digest) -> Result<(), RegistryError> {
        let doing = format!("uploading blob {digest}");
        let start = self.url("blobs/uploads/")?;
        let response =
            self.send(self.registry.http()?, Method::POST, &start, &doing, &|r| r.header(CONTENT_LENGTH, 0)).await?;
        if !response.status().is_success() {
            return Err(self.refused(response).await);
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.protocol(format!("it started an upload with no Location ({start})")))?;
        let mut put = start
            .join(location)
            .map_err(|e| self.protocol(format!("its upload location {location:?} is not a URL: {e}")))?;
        put.query_pairs_mut().append_pair("digest", digest.as_str());

        // Progress is watched here, not by the client's read timeout, which would count the
        // whole upload as one wait for the answer.
        let timeout = self.registry.options.timeout;
        let progress = Arc::new(Mutex::new(Instant::now()));
        let body = |request: RequestBuilder| {
            let stream = upload_stream(path.to_path_buf(), size, digest.clone(), progress.clone());
            request
                .header(CONTENT_LENGTH, size)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(reqwest::Body::wrap_stream(stream))
        };
        let http = self.registry.upload_http()?;
        let sending = std::pin::pin!(self.send(http, Method::PUT, &put, &doing, &body));
        let watchdog = std::pin::pin!(async {
            loop {
                let idle = progress.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
                if idle >= timeout {
                    break;
                }
                tokio::time::sleep(timeout - idle).await;
            }
        });
        let response = match futures_util::future::select(sending, watchdog).await {
            futures_util::future::Either::Left((result, _)) => result?,
            futures_util::future::Either::Right(((), _)) => {
                return Err(RegistryError::Stalled {
                    reference: self.whole(),
                    registry: self.host(),
                    doing: format!("uploading blob {digest}"),
                    seconds: timeout.as_secs(),
                });
            }
        };
        if !response.status().is_success() {
            return Err(self.refused(response).await);
        }
        Ok(())
    }

    /// Put a manifest or index under `name` (a tag or a digest).
    pub(super) async fn put_manifest(&self, name: &str, media_type: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let url = self.url(&format!("manifests/{name}"))?;
        let body = bytes::Bytes::copy_from_slice(bytes);
        let response = self
            .send(self.registry.http()?, Method::PUT, &url, &format!("putting the manifest {name}"), &|r| {
                r.header(CONTENT_TYPE, media_type).body(body.clone())
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.refused(response).await);
        }
        Ok(())
    }

    /// `GET /v2/`, answering a challenge: the registry's last answer (a success lets kiln in).
    pub(super) async fn check(&self) -> Result<StatusCode, RegistryError> {
        let url = self.base.join("v2/").map_err(|e| self.protocol(e.to_string()))?;
        let response = self.send(self.registry.http()?, Method::GET, &url, "checking the credentials", &|r| r).await?;
        Ok(response.status())
    }
}

/// `host` or `host:port` as a URL names it, for the allow list and messages.
pub(super) fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Read a body whole, refusing one longer than `limit` (announced or seen) before holding
/// more than `limit` bytes of it.
async fn read_bounded(mut response: Response, limit: u64) -> Result<Vec<u8>, Cut> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(Cut::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Cut::Failed)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Cut::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first `limit` bytes of a body (fewer if it ends or fails first); the rest is not read.
async fn read_prefix(mut response: Response, limit: u64) -> Vec<u8> {
    let mut body = Vec::new();
    while (body.len() as u64) < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = (limit - body.len() as u64) as usize;
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    body
}

/// An answer that is not a success, as far as kiln reads it.
struct Refusal {
    status: StatusCode,
    /// The protocol's error codes, if its body is the protocol's error envelope.
    codes: Vec<String>,
    /// `HTTP <status> at <url>[: <message>]`.
    detail: String,
}

impl Refusal {
    /// Read at most [`MAX_ERROR_BODY`] of `response`.
    async fn read(response: Response) -> Refusal {
        let status = response.status();
        let url = response.url().clone();
        let body = read_prefix(response, MAX_ERROR_BODY).await;
        let (codes, message) = error_envelope(&body);
        let detail = if message.is_empty() {
            format!("HTTP {status} at {url}")
        } else {
            format!("HTTP {status} at {url}: {message}")
        };
        Refusal { status, codes, detail }
    }
}

/// `: <message>` from a refusal's body, or nothing.
async fn refusal_text(response: Response) -> String {
    let body = read_prefix(response, MAX_ERROR_BODY).await;
    let (_, message) = error_envelope(&body);
    if message.is_empty() { String::new() } else { format!(": {message}") }
}

/// The codes and messages of the distribution protocol's error envelope
/// (`{"errors":[{"code":…,"message":…}]}`), else the body's first line.
fn error_envelope(body: &[u8]) -> (Vec<String>, String) {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => {
            let codes = envelope.errors.iter().map(|e| e.code.clone()).collect();
            let text: Vec<&str> = envelope
                .errors
                .iter()
                .map(|e| if e.message.is_empty() { e.code.as_str() } else { e.message.as_str() })
                .collect();
            (codes, super::first_line(&text.join("; ")))
        }
        Err(_) => (Vec::new(), super::first_line(&String::from_utf8_lossy(body))),
    }
}

/// The store's blob at `path` as a stream of chunks for an upload, hashed on the way: the
/// last chunk is withheld and the stream fails if the blob does not match `digest`, so a
/// damaged blob is never accepted under its name. Each chunk taken moves `progress` on.
fn upload_stream(
    path: std::path::PathBuf,
    size: u64,
    digest: Digest,
    progress: Arc<Mutex<Instant>>,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    use std::io::Read as _;
    /// The size of the pieces a blob is read in. Progress is seen when the client takes the
    /// next piece, so this is also the granularity of the stall watch: a registry that takes
    /// less than a piece per timeout counts as stalled (at 64 KiB and the 2 s smallest sensible
    /// timeout, under 32 KiB/s).
    const CHUNK: usize = 64 << 10;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))));
                return;
            }
        };
        let mut hashing = store::HashingWriter::new(std::io::sink());
        let mut read = 0u64;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match file.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            buf.truncate(n);
            let _ = hashing.write_all(&buf);
            read += n as u64;
            if n == 0 || read >= size {
                let (_, actual, _) = hashing.finish();
                if actual != digest || read != size {
                    let _ = tx.blocking_send(Err(std::io::Error::other(format!(
                        "blob {digest} in the store ({}) has digest {actual}: the store is damaged",
                        path.display()
                    ))));
                    return;
                }
                if n > 0 {
                    let _ = tx.blocking_send(Ok(buf.into()));
                }
                return;
            }
            if tx.blocking_send(Ok(buf.into())).is_err() {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, move |mut rx| {
        let progress = progress.clone();
        async move {
            let item = rx.recv().await?;
            *progress.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            Some((item, rx))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelopes_and_first_lines() {
        let (codes, text) =
            error_envelope(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"},{"code":"X"}]}"#);
        assert_eq!(codes, ["MANIFEST_UNKNOWN", "X"]);
        assert_eq!(text, "manifest unknown; X");
        let (codes, text) = error_envelope(b"<html>\nbad gateway");
        assert!(codes.is_empty());
        assert_eq!(text, "<html>");
    }

    #[test]
    fn hosts_name_a_port_only_when_the_url_does() {
        assert_eq!(host_of(&Url::parse("https://cdn.example/x").unwrap()), "cdn.example");
        assert_eq!(host_of(&Url::parse("http://127.0.0.1:8080/x").unwrap()), "127.0.0.1:8080");
        assert_eq!(host_of(&Url::parse("https://cdn.example:443/x").unwrap()), "cdn.example");
    }
}
