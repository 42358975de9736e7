//! The configuration the Debian package installs as /etc/berth/agent.toml
//! (packaging/agent.toml) loads as shipped once `scheduler` is set (as
//! `berth-agent join` does), and so does every commented example in it once
//! uncommented: the file documents only keys the agent knows, with values
//! it accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::path::Path;

use berth_agent::config::{from_sources, Flags};

const SHIPPED: &str = include_str!("../../packaging/agent.toml");
const PATH: &str = "/etc/berth/agent.toml";

/// `text` with every `# key = value` and `# [table]` line uncommented.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(example)
                if example.starts_with('[')
                    || example.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
            {
                example
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn shipped_config_sets_nothing_but_needs_a_scheduler() {
    let err = from_sources(
        Some((Path::new(PATH), SHIPPED)),
        &HashMap::new(),
        &Flags::default(),
    )
    .expect_err("no scheduler");
    assert!(err.to_string().contains("scheduler"), "{err}");
    let flags = Flags {
        scheduler: Some("https://scheduler.example:7400".to_owned()),
        ..Flags::default()
    };
    let c = from_sources(Some((Path::new(PATH), SHIPPED)), &HashMap::new(), &flags).unwrap();
    assert_eq!(c.cluster, "default");
    // The unit's ConditionPathExists= names the identity under this dir.
    assert_eq!(
        c.identity_path(),
        Path::new("/var/lib/berth/agent/identity.json")
    );
}

#[test]
fn every_documented_example_is_accepted() {
    let text = uncommented(SHIPPED);
    assert!(text.contains("\nscheduler = \"https://"), "{text}");
    assert!(
        text.contains("\n[custom_attributes]\nstack = \"prod\""),
        "{text}"
    );
    let c = from_sources(
        Some((Path::new(PATH), &text)),
        &HashMap::new(),
        &Flags::default(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        c.custom_attributes.get("stack").map(String::as_str),
        Some("prod")
    );
}
