//! Generates the tonic/prost code for `berth.v1` with Debian's `protoc`.
/// Messages whose `Debug` is written by hand in `src/redact.rs`.
const REDACTED: [&str; 3] = [
    ".berth.v1.SecretValue",
    ".berth.v1.RepositoryCredentials",
    ".berth.v1.PutSecretRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "berth/v1/common.proto",
        "berth/v1/operator.proto",
        "berth/v1/agent.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    // The descriptor set lets the scheduler prove that every operator method
    // is classified in its role table (`scheduler::api::auth`).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("berth_descriptor.bin"))
        .build_server(true)
        .build_client(true)
        // The agent RPC is named `Connect`, which would clash with the generated
        // `Client::connect` constructor: clients are built from a Channel instead.
        .build_transport(false)
        // Messages that carry secret values get a redacting `Debug`
        // (src/redact.rs) instead of the derived one.
        .skip_debug(REDACTED)
        .compile_protos(&protos, &["."])
        .map_err(|e| {
            format!("compiling protos failed (is protoc installed? apt-get install protobuf-compiler): {e}")
        })?;
    Ok(())
}
