//! The whole Dockerfile frontend on arbitrary bytes: it must never panic, and every graph
//! it returns must pass the IR validator.
#![no_main]

use kiln_ir::{KeyValue, NoImages, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a --target and build args, so those paths are fuzzed too.
    let (selector, contents) = data.split_first().map_or((0, data), |(s, rest)| (*s, rest));
    let request = Request {
        file_name: "Dockerfile".into(),
        contents: contents.to_vec(),
        build_args: if selector & 1 == 1 { vec![KeyValue::new("A", "x y"), KeyValue::new("BASE", "scratch")] } else { vec![] },
        target: match selector >> 1 & 3 {
            1 => Some("a".into()),
            2 => Some("builder".into()),
            _ => None,
        },
        build_platform: "linux/amd64".into(),
        target_platform: "linux/arm64".into(),
    };
    if let Ok(graph) = kiln_dockerfile::parse(&request, &NoImages) {
        if let Err(errors) = graph.validate() {
            panic!("the frontend produced an invalid graph: {errors:?}");
        }
    }
});
