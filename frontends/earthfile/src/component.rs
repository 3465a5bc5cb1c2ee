//! The `kiln:build` frontend world, exported when built for wasm32 with `--features component`.

struct Earthfile;

impl kiln_ir::guest::Frontend for Earthfile {
    fn parse(
        req: &kiln_ir::Request,
        host: &dyn kiln_ir::ImageResolver,
    ) -> Result<kiln_ir::BuildGraph, Vec<kiln_ir::Diagnostic>> {
        crate::parse(req, host)
    }
}

kiln_ir::export_frontend!(Earthfile);
