//! Generates the tonic/prost code for `berth.v1`.
//!
//! The `.proto` files are parsed by `protox`, a protobuf compiler written in
//! Rust that carries Google's well-known types (`google/protobuf/*.proto`)
//! itself: the build needs no `protoc` and no system include directory, and an
//! import of a file that neither this directory nor protox carries fails the
//! build on every machine alike (`tests/tidy.rs` checks the imports too).

/// Messages whose `Debug` is written by hand in `src/redact.rs`.
const REDACTED: [&str; 4] = [
    ".berth.v1.SecretValue",
    ".berth.v1.RepositoryCredentials",
    ".berth.v1.PutSecretRequest",
    // A snapshot's bytes hold the cluster CA's key.
    ".berth.v1.SnapshotChunk",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "berth/v1/common.proto",
        "berth/v1/operator.proto",
        "berth/v1/traffic.proto",
        "berth/v1/exec.proto",
        "berth/v1/events.proto",
        "berth/v1/webhooks.proto",
        "berth/v1/stats.proto",
        "berth/v1/agent.proto",
        "berth/v1/autoscaling.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut compiler = protox::Compiler::new(["."])?;
    compiler.include_imports(true).include_source_info(true);
    compiler
        .open_files(protos)
        .map_err(|e| format!("compiling berth/v1/*.proto failed: {e}"))?;
    // The descriptor set lets the scheduler prove that every operator method
    // is classified in its role table (`scheduler::api::auth`).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("berth_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The agent RPC is named `Connect`, which would clash with the generated
        // `Client::connect` constructor: clients are built from a Channel instead.
        .build_transport(false)
        // Messages that carry secret values get a redacting `Debug`
        // (src/redact.rs) instead of the derived one.
        .skip_debug(REDACTED)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
