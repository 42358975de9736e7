//! `berth-sample-image DIR [TAG]`: writes the busybox sample image (the one
//! the tests use) as an OCI layout in DIR, for `scripts/local-cluster` to
//! push into a local registry with skopeo. Prints the manifest digest.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: berth-sample-image DIR [TAG]");
        return ExitCode::from(2);
    };
    let tag = args.next().unwrap_or_else(|| "latest".to_owned());
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("berth-sample-image: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let digest = berth_testkit::image::write_busybox_layout(
        &dir,
        &tag,
        &berth_testkit::ImageOptions::default(),
    );
    println!("{digest}");
    ExitCode::SUCCESS
}
