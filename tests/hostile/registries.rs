//! Registries written to hurt: endless blob, manifest and token bodies, bodies longer or
//! shorter than their descriptors say, a registry that stops sending mid-transfer, a config
//! too large to be one, and foreign layers whose URLs point elsewhere. Each registry is a
//! few lines of HTTP on 127.0.0.1 in a thread of this process, logging every request, so a
//! test can also check what kiln asked for (and what it never asked for).
//!
//! After each refusal: the exact error, nothing tagged, no half-written blob in the store's
//! `tmp/`, every blob in `blobs/` intact, and nothing outside the store changed.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Hostile;
use crate::support::{sha256_hex, stderr, stdout};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const FOREIGN_LAYER: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";

/// What a hostile server sends at most, so that kiln without its bounds fills neither the
/// disk nor the memory of the machine running the tests: far beyond every bound under test.
const CAP: u64 = 256 << 20;

/// One request as the test server saw it.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Request, &mut TcpStream) + Send + Sync;

/// An HTTP server on 127.0.0.1: one thread per connection, one request per connection
/// (every answer closes it), each request logged as `METHOD PATH`.
struct Server {
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(handler: impl Fn(&Request, &mut TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (handler, seen) = (handler.clone(), seen.clone());
                std::thread::spawn(move || {
                    let Some(request) = read_request(&mut stream) else { return };
                    seen.lock().unwrap().push(format!("{} {}", request.method, request.path));
                    handler(&request, &mut stream);
                });
            }
        });
        Server { addr, log }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// The request line and headers, read a byte at a time so that a body stays unread in the
/// socket for the handler.
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 || head.len() > 64 << 10 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).ok()?;
    let mut lines = text.lines();
    let mut parts = lines.next()?.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Some(Request { method, path, headers })
}

/// A whole answer, its length announced.
fn reply(stream: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body));
}

/// An answer with no length whose body goes on until the client hangs up (or [`CAP`]);
/// returns the bytes written.
fn endless(stream: &mut TcpStream, status: &str, headers: &[(&str, &str)], filler: u8) -> u64 {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let chunk = vec![filler; 64 << 10];
    let mut sent = 0u64;
    while sent < CAP && stream.write_all(&chunk).is_ok() {
        sent += chunk.len() as u64;
    }
    sent
}

/// The `sha256:<hex>` digest of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// A one-layer image as a registry holds it.
#[derive(Clone)]
struct Image {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

impl Image {
    /// `layer` is merged into the layer's descriptor (to add `urls`, say), `config` into the
    /// config's.
    fn new(layer: Value, config: Value) -> Image {
        let layer_bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        Image::with_layer(layer_bytes, layer, config)
    }

    fn with_layer(layer_bytes: Vec<u8>, layer: Value, config: Value) -> Image {
        let config_bytes = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}, "config": {}
        }))
        .unwrap();
        let mut layer_descriptor =
            json!({"mediaType": LAYER, "digest": sha256(&layer_bytes), "size": layer_bytes.len()});
        merge(&mut layer_descriptor, layer);
        let mut config_descriptor = json!({
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config_bytes), "size": config_bytes.len()
        });
        merge(&mut config_descriptor, config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": config_descriptor, "layers": [layer_descriptor]
        }))
        .unwrap();
        Image { config: config_bytes, layer: layer_bytes, manifest }
    }

    fn plain() -> Image {
        Image::new(json!({}), json!({}))
    }

    fn layer_digest(&self) -> String {
        sha256(&self.layer)
    }

    fn layer_path(&self) -> String {
        format!("/v2/hostile/app/blobs/{}", self.layer_digest())
    }

    /// Answer as a well-behaved registry holding this image as `hostile/app:1` would;
    /// whether the request was one it knows.
    fn serve(&self, request: &Request, stream: &mut TcpStream) -> bool {
        let path = request.path.as_str();
        if path == "/v2/" {
            reply(stream, "200 OK", &[], b"{}");
        } else if path == "/v2/hostile/app/manifests/1"
            || path == format!("/v2/hostile/app/manifests/{}", sha256(&self.manifest))
        {
            reply(stream, "200 OK", &[("Content-Type", MANIFEST)], &self.manifest);
        } else if path == format!("/v2/hostile/app/blobs/{}", sha256(&self.config)) {
            reply(stream, "200 OK", &[], &self.config);
        } else if path == self.layer_path() {
            reply(stream, "200 OK", &[], &self.layer);
        } else {
            reply(stream, "404 Not Found", &[], br#"{"errors":[{"code":"NOT_FOUND","message":"unknown"}]}"#);
            return false;
        }
        true
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// `kiln pull` from `server`'s `hostile/app:1`, with `extra` flags.
fn pull(h: &Hostile, server: &Server, extra: &[&str]) -> std::process::Output {
    let insecure = format!("--insecure-registry={}", server.addr);
    let name = format!("{}/hostile/app:1", server.addr);
    let mut args = vec![insecure.as_str()];
    args.extend_from_slice(extra);
    args.extend(["pull", name.as_str()]);
    h.run(&args)
}

/// Nothing tagged, and no blob left half-written in the store's `tmp/` (its `blobs/`, every
/// one intact, are checked by [`Hostile::verify`]).
fn assert_nothing_kept(h: &Hostile, never: &[&str]) {
    let root = h.sb.root();
    let index: Value = serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(0), "nothing was tagged: {index}");
    let partial: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("blob-"))
        .collect();
    assert!(partial.is_empty(), "half-written blobs survived in tmp/: {partial:?}");
    for digest in never {
        assert!(!root.join("blobs/sha256").join(&digest["sha256:".len()..]).exists(), "{digest} was stored");
    }
    let stored: u64 =
        std::fs::read_dir(root.join("blobs/sha256")).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
    assert!(stored < 1 << 20, "the store's blobs hold {stored} bytes");
}

fn sealed() -> Hostile {
    let mut h = Hostile::new();
    h.seal();
    h
}

#[test]
fn an_endless_blob_is_cut_off_at_its_size_and_discarded() {
    let image = Image::plain();
    let sent = Arc::new(AtomicU64::new(0));
    let (served, counter) = (image.clone(), sent.clone());
    let server = Server::start(move |request, stream| {
        if request.path == served.layer_path() {
            counter.store(endless(stream, "200 OK", &[], b'x'), Ordering::SeqCst);
        } else {
            served.serve(request, stream);
        }
    });
    let h = sealed();
    let out = pull(&h, &server, &[]);
    let size = image.layer.len();
    h.refused(
        &out,
        &[
            &format!("blob {}", image.layer_digest()),
            &format!("is longer than the {size} bytes its descriptor gives: kiln stopped reading it there and discarded it; nothing was tagged"),
        ],
    );
    assert_nothing_kept(&h, &[&image.layer_digest()]);
    // The server learns kiln hung up once its writes fail; what it wrote until then is
    // what the socket buffers held, nowhere near the endless body's cap.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent > 0 && sent < 64 << 20, "kiln read {sent} bytes of an endless blob");
}

#[test]
fn a_blob_announced_larger_or_ending_early_is_refused() {
    let image = Image::plain();
    let size = image.layer.len();
    // Announced longer than its descriptor: refused before a byte is read.
    let served = image.clone();
    let server = Server::start(move |request, stream| {
        if request.path == served.layer_path() {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", 50u64 << 30);
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&served.layer);
            std::thread::sleep(Duration::from_secs(5));
        } else {
            served.serve(request, stream);
        }
    });
    let h = sealed();
    let out = pull(&h, &server, &[]);
    h.refused(
        &out,
        &[&format!(
            "blob {} is announced as {} bytes (Content-Length) but its descriptor gives {size}, so kiln did not read it",
            image.layer_digest(),
            50u64 << 30
        )],
    );
    assert_nothing_kept(&h, &[&image.layer_digest()]);

    // No length announced, and the body ends at half the size.
    let served = image.clone();
    let server = Server::start(move |request, stream| {
        if request.path == served.layer_path() {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(&served.layer[..served.layer.len() / 2]);
        } else {
            served.serve(request, stream);
        }
    });
    let h = sealed();
    let out = pull(&h, &server, &[]);
    h.refused(
        &out,
        &[&format!(
            "blob {} ended after {} of the {size} bytes its descriptor gives and was discarded; nothing was tagged",
            image.layer_digest(),
            size / 2
        )],
    );
    assert_nothing_kept(&h, &[&image.layer_digest()]);
}

#[test]
fn an_endless_manifest_is_cut_off_at_4_mib() {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let server = Server::start(move |request, stream| {
        if request.path.starts_with("/v2/hostile/app/manifests/") {
            counter.store(endless(stream, "200 OK", &[("Content-Type", MANIFEST)], b' '), Ordering::SeqCst);
        } else {
            Image::plain().serve(request, stream);
        }
    });
    let h = sealed();
    let out = pull(&h, &server, &[]);
    h.refused(
        &out,
        &[&format!(
            "{}/hostile/app:1: the registry {} sent the manifest larger than 4 MiB, the most kiln reads of one; kiln stopped reading it",
            server.addr, server.addr
        )],
    );
    assert_nothing_kept(&h, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent > 0 && sent < 64 << 20, "kiln read {sent} bytes of an endless manifest");
    assert_eq!(server.requests(), ["GET /v2/hostile/app/manifests/1"], "no blob was asked for");
}

#[test]
fn a_config_too_large_to_be_one_is_refused_before_it_is_fetched() {
    let image = Image::new(json!({}), json!({"size": 5 << 20}));
    let served = image.clone();
    let server = Server::start(move |request, stream| {
        served.serve(request, stream);
    });
    let h = sealed();
    let out = pull(&h, &server, &[]);
    h.refused(&out, &[&format!("its config {} is {} bytes, more than 4 MiB", sha256(&image.config), 5 << 20)]);
    assert_nothing_kept(&h, &[]);
    assert_eq!(server.requests(), ["GET /v2/hostile/app/manifests/1"], "no blob was asked for");
}

/// A registry behind a token service (`/token`), as Docker Hub is: every registry request
/// without `Bearer good-token` gets a challenge.
fn token_registry(image: Image, token: impl Fn(&mut TcpStream) + Send + Sync + 'static) -> Server {
    let addr = Arc::new(Mutex::new(String::new()));
    let me = addr.clone();
    let server = Server::start(move |request, stream| {
        if request.path.starts_with("/token?") {
            return token(stream);
        }
        if request.header("Authorization") != Some("Bearer good-token") {
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="hostile",scope="repository:hostile/app:pull""#,
                me.lock().unwrap()
            );
            reply(
                stream,
                "401 Unauthorized",
                &[("WWW-Authenticate", &challenge)],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
            return;
        }
        image.serve(request, stream);
    });
    *addr.lock().unwrap() = server.addr.clone();
    server
}

#[test]
fn tokens_are_fetched_and_an_endless_token_answer_is_cut_off_at_1_mib() {
    // A well-behaved token service first: the pull goes through it.
    let server = token_registry(Image::plain(), |stream| {
        reply(stream, "200 OK", &[("Content-Type", "application/json")], br#"{"token":"good-token","expires_in":300}"#)
    });
    let h = sealed();
    let out = pull(&h, &server, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = server.requests();
    assert!(
        log.iter().any(|r| r.starts_with("GET /token?") && r.contains("scope=repository%3Ahostile%2Fapp%3Apull")),
        "{log:?}"
    );

    let server = token_registry(Image::plain(), |stream| {
        endless(stream, "200 OK", &[("Content-Type", "application/json")], b' ');
    });
    let h = sealed();
    let out = pull(&h, &server, &[]);
    h.refused(
        &out,
        &[&format!(
            "the registry {} sent a token answer (from http://{}/token) larger than 1 MiB, the most kiln reads of one",
            server.addr, server.addr
        )],
    );
    assert_nothing_kept(&h, &[]);
    assert!(!server.requests().iter().any(|r| r.contains("/blobs/")), "no blob was asked for: {:?}", server.requests());
}

#[test]
fn a_registry_that_stops_sending_times_out_after_registry_timeout() {
    let image = Image::plain();
    let size = image.layer.len();
    let served = image.clone();
    let server = Server::start(move |request, stream| {
        if request.path == served.layer_path() {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&served.layer[..size / 2]);
            // Then nothing, connection open, until kiln gives up.
            let _ = stream.read(&mut [0u8; 1]);
        } else {
            served.serve(request, stream);
        }
    });
    let h = sealed();
    let started = Instant::now();
    let out = pull(&h, &server, &["--registry-timeout", "2"]);
    let took = started.elapsed();
    h.refused(
        &out,
        &[&format!(
            "the registry {} made no progress for 2 s while kiln was downloading blob {}, so kiln stopped; the limit --registry-timeout is 2 s; if this is expected, raise it with --registry-timeout SECONDS or KILN_REGISTRY_TIMEOUT",
            server.addr,
            image.layer_digest()
        )],
    );
    assert!(took < Duration::from_secs(30), "the stall was noticed after {took:?}");
    assert_nothing_kept(&h, &[&image.layer_digest()]);

    // A registry that never answers at all, set through the environment.
    let server = Server::start(|_, stream| {
        let _ = stream.read(&mut [0u8; 1]);
    });
    let h = sealed();
    let name = format!("{}/hostile/app:1", server.addr);
    let out = h
        .kiln()
        .env("KILN_REGISTRY_TIMEOUT", "1")
        .args([&format!("--insecure-registry={}", server.addr), "pull", &name])
        .output()
        .unwrap();
    h.refused(&out, &["made no progress for 1 s while kiln was fetching the manifest"]);
}

#[test]
fn a_foreign_layer_is_fetched_only_from_an_allowed_host() {
    // The layer's URL is on a second server; the registry does not have the layer.
    let wrong = Arc::new(AtomicBool::new(false));
    let plain = Image::plain();
    let (layer, damaged) = (plain.layer.clone(), wrong.clone());
    let foreign = Server::start(move |_, stream| {
        let mut body = layer.clone();
        if damaged.load(Ordering::SeqCst) {
            body[0] ^= 0xff;
        }
        reply(stream, "200 OK", &[], &body);
    });
    let url = format!("http://{}/layers/app.tar", foreign.addr);
    let image = Image::new(json!({"mediaType": FOREIGN_LAYER, "urls": [url]}), json!({}));
    let served = image.clone();
    let registry = Server::start(move |request, stream| {
        if request.path == served.layer_path() {
            reply(
                stream,
                "404 Not Found",
                &[],
                br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
            );
        } else {
            served.serve(request, stream);
        }
    });

    let h = sealed();
    let out = pull(&h, &registry, &[]);
    h.refused(
        &out,
        &[
            &format!(
                "layer {} is a foreign (non-distributable) layer that the registry does not serve",
                image.layer_digest()
            ),
            &format!(
                "the registry does not serve (HTTP 404 Not Found at http://{}{}: blob unknown to registry)",
                registry.addr,
                image.layer_path()
            ),
            &format!("its descriptor points at {url}, and kiln fetches such layers only from hosts you allow"),
            &format!("pass --allow-nondistributable-artifacts {}", foreign.addr),
        ],
    );
    assert_nothing_kept(&h, &[&image.layer_digest()]);
    assert_eq!(foreign.requests(), Vec::<String>::new(), "kiln asked the foreign host without leave");

    // Another host allowed: still not this one.
    let out = pull(&h, &registry, &["--allow-nondistributable-artifacts", "127.0.0.2"]);
    h.refused(&out, &["is a foreign (non-distributable) layer"]);
    assert_eq!(foreign.requests(), Vec::<String>::new(), "kiln asked the foreign host without leave");

    // Allowed, but what it sends is not the layer: discarded.
    wrong.store(true, Ordering::SeqCst);
    let out = pull(&h, &registry, &["--allow-nondistributable-artifacts", &foreign.addr]);
    h.refused(&out, &[&format!("blob {} should have digest {}", image.layer_digest(), image.layer_digest())]);
    assert_nothing_kept(&h, &[&image.layer_digest()]);
    assert_eq!(foreign.requests(), ["GET /layers/app.tar"]);

    // Allowed (through the environment) and right: fetched, verified, tagged.
    wrong.store(false, Ordering::SeqCst);
    let name = format!("{}/hostile/app:1", registry.addr);
    let out = h
        .kiln()
        .env("KILN_ALLOW_NONDISTRIBUTABLE_ARTIFACTS", &foreign.addr)
        .args([&format!("--insecure-registry={}", registry.addr), "pull", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), sha256(&image.manifest));
    assert_eq!(foreign.requests(), ["GET /layers/app.tar", "GET /layers/app.tar"]);
    let stored = h.sb.root().join("blobs/sha256").join(&image.layer_digest()["sha256:".len()..]);
    assert_eq!(std::fs::read(stored).unwrap(), image.layer);
    h.verify(&[]);
}

/// A registry that takes uploads of `hostile/copy`: `upload` gets each blob `PUT` with the
/// length it announced, and answers it.
fn upload_registry(upload: impl Fn(&mut TcpStream, u64) + Send + Sync + 'static) -> Server {
    Server::start(move |request, stream| {
        let length = request.header("Content-Length").and_then(|l| l.parse::<u64>().ok()).unwrap_or(0);
        match (request.method.as_str(), request.path.as_str()) {
            ("HEAD", _) => reply(stream, "404 Not Found", &[], b""),
            ("POST", p) if p.starts_with("/v2/hostile/copy/blobs/uploads/") => {
                reply(stream, "202 Accepted", &[("Location", "/upload/1")], b"")
            }
            ("PUT", p) if p.starts_with("/upload/1?digest=sha256%3A") => upload(stream, length),
            ("PUT", "/v2/hostile/copy/manifests/1") => {
                let _ = std::io::copy(&mut (&*stream).take(length), &mut std::io::sink());
                reply(stream, "201 Created", &[], b"");
            }
            _ => reply(stream, "404 Not Found", &[], b""),
        }
    })
}

#[test]
fn an_upload_times_out_only_when_the_registry_stops_taking_it() {
    // A layer larger than the socket buffers between kiln and the registry, pulled first.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let layer: Vec<u8> = (0..32 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let image = Image::with_layer(layer, json!({}), json!({}));
    let served = image.clone();
    let source = Server::start(move |request, stream| {
        served.serve(request, stream);
    });
    let h = sealed();
    let out = pull(&h, &source, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let from = format!("{}/hostile/app:1", source.addr);

    // Takes the upload slowly, at most 4 MiB a second: 8 seconds in all, well past the
    // timeout, yet never 2 seconds without progress. The pace is kept against the clock, not
    // by sleeping after every read, so short reads on a busy machine do not slow it further.
    let slow = upload_registry(|stream, length| {
        const PACE: u64 = 4 << 20;
        let started = Instant::now();
        let mut taken = 0u64;
        let mut buf = vec![0u8; 256 << 10];
        while taken < length {
            let Ok(n) = stream.read(&mut buf[..(length - taken).min(256 << 10) as usize]) else { return };
            if n == 0 {
                return;
            }
            taken += n as u64;
            let due = Duration::from_secs_f64(taken as f64 / PACE as f64);
            if let Some(early) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(early);
            }
        }
        reply(stream, "201 Created", &[], b"");
    });
    let to = format!("{}/hostile/copy:1", slow.addr);
    let insecure = format!("--insecure-registry={}", slow.addr);
    let out = h.run(&["--registry-timeout", "2", &insecure, "push", &from, &to]);
    assert!(out.status.success(), "a slow upload that progresses is not a stall: {}", stderr(&out));

    // Takes the config, but stops reading the layer after its headers.
    let stalled = upload_registry(|stream, length| {
        if length < 1 << 20 {
            let _ = std::io::copy(&mut (&*stream).take(length), &mut std::io::sink());
            return reply(stream, "201 Created", &[], b"");
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let to = format!("{}/hostile/copy:1", stalled.addr);
    let insecure = format!("--insecure-registry={}", stalled.addr);
    let started = Instant::now();
    let out = h.run(&["--registry-timeout", "2", &insecure, "push", &from, &to]);
    let took = started.elapsed();
    h.refused(
        &out,
        &[&format!(
            "{to}: the registry {} made no progress for 2 s while kiln was uploading blob {}, so kiln stopped; the limit --registry-timeout is 2 s",
            stalled.addr,
            image.layer_digest()
        )],
    );
    assert!(took < Duration::from_secs(30), "the stall was noticed after {took:?}");
}
