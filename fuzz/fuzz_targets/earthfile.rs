//! The Earthfile frontend on arbitrary bytes, with and without a target: it must never panic,
//! and every graph it returns must pass the IR validator.
#![no_main]

use kiln_ir::{ImageConfig, ImageResolver, Request};
use libfuzzer_sys::fuzz_target;

/// Knows no image: the frontend goes on without base configurations, as when offline.
struct NoImages;

impl ImageResolver for NoImages {
    fn resolve_image_config(&self, reference: &str, _platform: Option<&str>) -> Result<ImageConfig, String> {
        Err(format!("{reference}: unknown"))
    }
}

fuzz_target!(|data: &[u8]| {
    for target in [None, Some("+build".to_string())] {
        let request = Request {
            file_name: "Earthfile".into(),
            contents: data.to_vec(),
            build_args: Vec::new(),
            target,
            build_platform: "linux/amd64".into(),
            target_platform: "linux/amd64".into(),
        };
        if let Ok(graph) = kiln_earthfile::parse(&request, &NoImages) {
            assert!(graph.validate().is_ok(), "the Earthfile frontend returned an invalid graph");
        }
    }
});
