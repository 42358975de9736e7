//! The project's standing rules, as a test over the whole workspace:
//! every Rust source file opens with a `//!` doc; no test is skipped
//! (the ignore attribute) or passes by panicking (the should_panic
//! attribute); no todo/unimplemented macros in non-test code; every
//! `.proto` import is a file this repository carries (or a well-known type
//! that protox, the compiler `proto/build.rs` uses, carries itself), so no
//! build depends on a system include directory; the systemd units keep
//! the directives their guarantees rest on; and ECS's vocabulary (task,
//! desired, container and health status, stop codes, the transport
//! protocol) is defined once, in `proto/src/ecs.rs`; sled is used only in
//! `scheduler/src/store/`; no new too_many_arguments allowance appears;
//! and every member's dependency takes its version from the root
//! `[workspace.dependencies]`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};

/// Every file below `dir` whose extension is `ext` (skipping `target` and
/// `testdata` folders).
fn files_with_ext(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name()
                .is_some_and(|n| n == "target" || n == "testdata")
            {
                continue;
            }
            files_with_ext(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    files_with_ext(dir, "rs", out);
}

#[test]
fn workspace_rules_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let files = workspace_rust_files(root);
    assert!(
        files.len() > 20,
        "found only {} files under {}",
        files.len(),
        root.display()
    );
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!("{rel}: must open with a //! doc"));
        }
        for banned in [concat!("#[", "ignore"), concat!("#[", "should_panic")] {
            if text.contains(banned) {
                problems.push(format!("{rel}: uses {banned}]"));
            }
        }
        let is_test_file = rel.contains("/tests/") || rel.starts_with("tests/");
        if !is_test_file {
            for banned in [concat!("todo", "!("), concat!("unimplemented", "!(")] {
                if text.contains(banned) {
                    problems.push(format!("{rel}: contains {banned}"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "project rules broken:\n{}",
        problems.join("\n")
    );
}

/// ECS's status words, each defined only in `proto/src/ecs.rs`.
const ECS_VOCABULARY: [&str; 6] = [
    "TaskStatus",
    "DesiredStatus",
    "ContainerStatus",
    "HealthStatus",
    "StopCode",
    "Protocol",
];

/// Whether `text` defines `enum {name}` (not a longer name such as
/// `{name}Report`).
fn defines_enum(text: &str, name: &str) -> bool {
    let needle = format!("enum {name}");
    text.match_indices(&needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn the_ecs_vocabulary_has_one_home() {
    let root = workspace_root();
    let home = Path::new("proto/src/ecs.rs");
    let home_text = std::fs::read_to_string(root.join(home)).unwrap();
    let files = workspace_rust_files(&root);
    let mut problems = Vec::new();
    for name in ECS_VOCABULARY {
        // ecs.rs declares them through its `ecs_enum!` table.
        if !home_text.contains(&format!("\n    {name}, \"")) {
            problems.push(format!("{}: does not define {name}", home.display()));
        }
    }
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap();
        if rel == home {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for name in ECS_VOCABULARY {
            if defines_enum(&text, name) {
                problems.push(format!(
                    "{}: defines enum {name}; use berth_proto::ecs::{name}",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "ECS vocabulary defined outside proto/src/ecs.rs:\n{}",
        problems.join("\n")
    );
}

#[test]
fn enum_definitions_are_found_by_whole_name() {
    assert!(defines_enum("pub enum Widget {", "Widget"));
    assert!(defines_enum("enum Widget<T>", "Widget"));
    assert!(!defines_enum("enum Widgets {", "Widget"));
    assert!(!defines_enum("enum MyWidget {", "Widget"));
    assert!(!defines_enum("the Widget enum", "Widget"));
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The well-known types protox compiles from its own copies.
const PROTOX_WELL_KNOWN: [&str; 10] = [
    "google/protobuf/any.proto",
    "google/protobuf/api.proto",
    "google/protobuf/descriptor.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/empty.proto",
    "google/protobuf/field_mask.proto",
    "google/protobuf/source_context.proto",
    "google/protobuf/struct.proto",
    "google/protobuf/timestamp.proto",
    "google/protobuf/wrappers.proto",
];

#[test]
fn every_proto_import_is_carried_by_the_repository_or_protox() {
    let proto_root = workspace_root().join("proto");
    let mut files = Vec::new();
    files_with_ext(&proto_root, "proto", &mut files);
    assert!(!files.is_empty(), "no .proto files under proto/");
    let mut missing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a .proto file");
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("import ") else {
                continue;
            };
            let target = rest
                .trim_start_matches("public ")
                .trim_start_matches("weak ")
                .trim()
                .trim_end_matches(';')
                .trim_matches('"');
            if !proto_root.join(target).is_file() && !PROTOX_WELL_KNOWN.contains(&target) {
                missing.push(format!("{} imports {target}", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "imports neither in proto/ nor among protox's well-known types \
         (a system include directory must never be needed): {missing:?}"
    );
    // The build must not look for protoc's includes either.
    let build = std::fs::read_to_string(proto_root.join("build.rs")).expect("proto/build.rs");
    assert!(
        build.contains("protox::Compiler"),
        "proto/build.rs must compile with protox"
    );
    assert!(
        !build.contains("compile_protos("),
        "proto/build.rs must not call protoc (compile_protos)"
    );
}

fn unit(name: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(workspace_root().join("systemd").join(name))
        .unwrap_or_else(|e| panic!("systemd/{name}: {e}"));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('[') && !l.is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn has(unit: &[(String, String)], key: &str, value: &str) -> bool {
    unit.iter().any(|(k, v)| k == key && v == value)
}

#[test]
fn the_units_keep_the_directives_their_guarantees_rest_on() {
    let agent = unit("berth-agent.service");
    for (k, v) in [
        ("Type", "notify"),
        // Restarts and upgrades kill the agent alone, never a task.
        ("KillMode", "process"),
        ("Restart", "always"),
        ("RestartPreventExitStatus", "64"),
        ("OOMScoreAdjust", "-999"),
        ("TasksMax", "infinity"),
        ("ConditionPathExists", "/var/lib/berth/agent/identity.json"),
    ] {
        assert!(has(&agent, k, v), "berth-agent.service lacks {k}={v}");
    }
    assert!(agent.iter().any(|(k, _)| k == "WatchdogSec"));
    // Any of these gives the unit its own mount namespace, which hides the
    // agent's network namespaces from runc.
    for k in [
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateMounts",
        "ProtectKernelTunables",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ReadOnlyPaths",
        "InaccessiblePaths",
        "TemporaryFileSystem",
    ] {
        assert!(
            !agent.iter().any(|(key, _)| key == k),
            "berth-agent.service must not set {k}"
        );
    }

    let scheduler = unit("berth-scheduler.service");
    for (k, v) in [
        ("Type", "notify"),
        ("User", "berth"),
        ("StateDirectory", "berth/scheduler"),
        ("Restart", "on-failure"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert!(
            has(&scheduler, k, v),
            "berth-scheduler.service lacks {k}={v}"
        );
    }
    assert!(scheduler.iter().any(|(k, _)| k == "WatchdogSec"));

    // berth-lb soft-stops the HAProxy it runs: SIGTERM must reach it alone.
    let lb = unit("berth-lb.service");
    for (k, v) in [
        ("Type", "notify"),
        ("KillMode", "mixed"),
        ("RestartPreventExitStatus", "64"),
        ("StateDirectory", "berth/lb"),
        ("ConditionPathExists", "/etc/berth/lb.toml"),
    ] {
        assert!(has(&lb, k, v), "berth-lb.service lacks {k}={v}");
    }
}

/// The workspace's member crates (the root `Cargo.toml`'s `members`).
const MEMBERS: [&str; 8] = [
    "proto",
    "scheduler",
    "agent",
    "ctl",
    "clidoc",
    "tests",
    "testkit",
    "lb",
];

/// The Rust files of every member crate.
fn workspace_rust_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for krate in MEMBERS {
        rust_files(&root.join(krate), &mut files);
    }
    files
}

/// The code of `line`: empty for a comment line (`//`, `///`, `//!`).
fn code_of(line: &str) -> &str {
    if line.trim_start().starts_with("//") {
        ""
    } else {
        line
    }
}

#[test]
fn sled_appears_only_in_the_store() {
    let root = workspace_root();
    let home = Path::new("scheduler/src/store");
    let mut problems = Vec::new();
    for f in workspace_rust_files(&root) {
        let rel = f.strip_prefix(&root).unwrap();
        if rel.starts_with(home) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = code_of(line);
            if [
                concat!("sled", "::"),
                concat!("use ", "sled"),
                concat!("extern crate ", "sled"),
            ]
            .iter()
            .any(|p| code.contains(p))
            {
                problems.push(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    for krate in MEMBERS {
        if krate == "scheduler" {
            continue;
        }
        let manifest = manifest(&root, krate);
        for (table, name, _) in dependencies(&manifest) {
            if name == "sled" {
                problems.push(format!("{krate}/Cargo.toml: [{table}] depends on sled"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "sled outside scheduler/src/store/ (the store trait is the only way in):\n{}",
        problems.join("\n")
    );
}

/// Configuration sits at the bottom of each daemon: the agent's and the
/// scheduler's config modules use no other module of their crate (the
/// modules that need a setting's type import it from config, not the
/// other way round), but for the scheduler's `auth`, the token format, a
/// leaf that itself imports nothing from the crate.
#[test]
fn configuration_imports_nothing_above_it() {
    let root = workspace_root();
    let mut problems = Vec::new();
    let leaf = "scheduler/src/auth.rs";
    let leaf_text = std::fs::read_to_string(root.join(leaf)).unwrap();
    if leaf_text.lines().any(|l| code_of(l).contains("crate::")) {
        problems.push(format!("{leaf} must stay a leaf (config imports it)"));
    }
    for rel in ["agent/src/config.rs", "scheduler/src/config.rs", leaf] {
        let text = std::fs::read_to_string(root.join(rel)).unwrap();
        let mut in_tests = false;
        for (n, line) in text.lines().enumerate() {
            if line.starts_with("#[cfg(test)]") {
                in_tests = true;
            }
            let code = code_of(line);
            let imports = code.replace("crate::auth::", "");
            if !in_tests && (imports.contains("crate::") || imports.contains("super::")) {
                problems.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "config modules must not import from their crate:\n{}",
        problems.join("\n")
    );
}

/// The scheduler's loopback tests start their server through one harness
/// (`scheduler/tests/common`), not a copy of their own.
#[test]
fn scheduler_tests_share_one_in_process_harness() {
    let root = workspace_root();
    let dir = root.join("scheduler/tests");
    let mut copies = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            if text
                .lines()
                .any(|l| code_of(l).contains(concat!("server::", "run")))
            {
                copies.push(path.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    assert!(
        copies.is_empty(),
        "start the scheduler with scheduler/tests/common (InProcess), not in: {copies:?}"
    );
}

#[test]
fn no_new_too_many_arguments_allowances() {
    let root = workspace_root();
    let needle = concat!("clippy::", "too_many_arguments");
    let mut found = Vec::new();
    for f in workspace_rust_files(&root) {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if code_of(line).contains(needle) {
                let rel = f.strip_prefix(&root).unwrap();
                found.push(format!("{}:{}", rel.display(), n + 1));
            }
        }
    }
    // The workspace has none left: name the struct the arguments form.
    assert!(
        found.is_empty(),
        "{} allowances of {needle}; pass a struct instead:\n{}",
        found.len(),
        found.join("\n")
    );
}

fn manifest(root: &Path, krate: &str) -> toml::Table {
    let path = root.join(krate).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `(table, name, spec)` of a manifest's dependency tables, the
/// target-specific ones included.
fn dependencies(manifest: &toml::Table) -> Vec<(String, String, toml::Value)> {
    const TABLES: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];
    let mut out = Vec::new();
    let mut scan = |prefix: &str, t: &toml::Table| {
        for table in TABLES {
            if let Some(deps) = t.get(table).and_then(toml::Value::as_table) {
                for (name, spec) in deps {
                    out.push((format!("{prefix}{table}"), name.clone(), spec.clone()));
                }
            }
        }
    };
    scan("", manifest);
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for (cfg, t) in targets {
            if let Some(t) = t.as_table() {
                scan(&format!("target.{cfg}."), t);
            }
        }
    }
    out
}

#[test]
fn every_dependency_version_lives_in_the_workspace() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for krate in MEMBERS {
        for (table, name, spec) in dependencies(&manifest(&root, krate)) {
            let inherited = spec
                .as_table()
                .and_then(|t| t.get("workspace"))
                .and_then(toml::Value::as_bool)
                == Some(true);
            if !inherited {
                problems.push(format!("{krate}/Cargo.toml [{table}] {name} = {spec}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dependencies not inherited from the root [workspace.dependencies] \
         (write `name.workspace = true`, the version in the root Cargo.toml):\n{}",
        problems.join("\n")
    );
}
