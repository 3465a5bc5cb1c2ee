//! Frontend benchmark: a 2,000-line multi-stage Dockerfile through the embedded Dockerfile
//! component, cold (compile the wasm) and warm (compiled component cached on disk / in
//! memory), next to the same parse done natively. Prints figures; run with
//! `cargo bench -p kiln --bench frontend`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::frontend::{Frontend, FrontendLimits};
use kiln_ir::{NoImages, Request};

/// A realistic Dockerfile of about `lines` lines: stages of typical instructions.
fn dockerfile(lines: usize) -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1\nARG GO_VERSION=1.22\nARG BASE=scratch\n");
    let mut stage = 0;
    while out.lines().count() < lines {
        out.push_str(&format!("FROM golang:${{GO_VERSION}} AS build{stage}\n"));
        out.push_str("WORKDIR /src\nENV CGO_ENABLED=0 GOFLAGS=-mod=vendor\nARG VERSION=dev\n");
        out.push_str("COPY go.mod go.sum ./\nRUN --mount=type=cache,target=/root/.cache/go-build go mod download\n");
        out.push_str("COPY . .\nRUN go build -ldflags \"-X main.version=${VERSION}\" -o /out/app ./cmd/app && \\\n    strip /out/app\n");
        out.push_str("LABEL org.opencontainers.image.version=$VERSION stage=build\n");
        if stage > 0 {
            out.push_str(&format!("COPY --from=build{} /out/app /prev/app\n", stage - 1));
        }
        out.push_str("RUN <<EOF\nset -e\necho building\nEOF\n");
        stage += 1;
    }
    out.push_str(
        "FROM ${BASE}\nCOPY --from=build0 /out/app /app\nEXPOSE 8080\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n",
    );
    out
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let text = dockerfile(2000);
    let request = Request {
        file_name: "Dockerfile".into(),
        contents: text.clone().into_bytes(),
        build_args: vec![],
        target: None,
        build_platform: "linux/amd64".into(),
        target_platform: "linux/amd64".into(),
    };
    let resolver: Arc<dyn kiln_ir::ImageResolver + Send + Sync> = Arc::new(NoImages);
    let limits = FrontendLimits::default();
    println!("Dockerfile: {} lines, {} bytes", text.lines().count(), text.len());

    // Cold: compile the component from its wasm, then parse (no cache at all).
    let mut cold = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let frontend = Frontend::dockerfile(None, limits).expect("load");
        let graph = frontend.parse(&request, resolver.clone()).expect("run").expect("parse");
        cold.push(start.elapsed());
        assert!(graph.stages.len() > 100);
    }

    // Warm process: the compiled component comes from the on-disk cache (what a second
    // `kiln parse` does), then one parse.
    let cache = tempfile::tempdir().expect("tmp");
    Frontend::dockerfile(Some(cache.path().to_path_buf()), limits).expect("fill cache");
    let mut cached = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let frontend = Frontend::dockerfile(Some(cache.path().to_path_buf()), limits).expect("load");
        frontend.parse(&request, resolver.clone()).expect("run").expect("parse");
        cached.push(start.elapsed());
    }

    // Warm in-process: instantiate + parse with an already loaded component.
    let frontend = Frontend::dockerfile(Some(cache.path().to_path_buf()), limits).expect("load");
    let mut warm = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        frontend.parse(&request, resolver.clone()).expect("run").expect("parse");
        warm.push(start.elapsed());
    }

    // The same parse natively (no WebAssembly), for the sandbox's overhead.
    let mut native = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        kiln_dockerfile::parse(&request, &NoImages).expect("parse");
        native.push(start.elapsed());
    }

    let (cold, cached, warm, native) = (median(cold), median(cached), median(warm), median(native));
    println!("cold   (compile wasm + instantiate + parse): {}", ms(cold));
    println!("cached (load compiled from disk + instantiate + parse): {}", ms(cached));
    println!("warm   (instantiate + parse): {}   target <= 20 ms", ms(warm));
    println!("native (the same parse, no wasm): {}", ms(native));
    println!(
        "ratios: warm/native {:.2}x, cached/warm {:.2}x, cold/cached {:.1}x",
        warm.as_secs_f64() / native.as_secs_f64(),
        cached.as_secs_f64() / warm.as_secs_f64(),
        cold.as_secs_f64() / cached.as_secs_f64()
    );
}
