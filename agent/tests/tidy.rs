//! The crate's own rules, as a test: every source file opens with a `//!`
//! doc, and no test is skipped or passes by panicking.

use std::path::Path;

#[test]
fn every_file_has_a_module_doc_and_no_test_is_skipped() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for dir in ["src", "tests"] {
        let entries = std::fs::read_dir(root.join(dir)).expect("read source dir");
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source file");
            assert!(
                text.trim_start().starts_with("//!"),
                "{} must open with a //! doc",
                path.display()
            );
            for banned in [concat!("#[", "ignore"), concat!("#[", "should_panic")] {
                assert!(!text.contains(banned), "{} has {banned}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} files checked");
}
