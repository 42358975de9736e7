//! The configuration the Debian package installs as
//! /etc/berth/scheduler.toml (packaging/scheduler.toml) loads as shipped,
//! and so does every commented example in it once uncommented: the file
//! documents only keys the scheduler knows, with values it accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;

use berth_scheduler::config::{Config, Overrides};

const SHIPPED: &str = include_str!("../../packaging/scheduler.toml");

/// `text` with every `# key = value` line uncommented, except for keys
/// that are already set uncommented (the shipped `listen`).
fn uncommented(text: &str) -> String {
    let set: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
        .filter(|k| !k.starts_with('#'))
        .collect();
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(example)
                if example
                    .split_once(" = ")
                    .is_some_and(|(k, _)| is_key(k) && !set.contains(&k)) =>
            {
                example
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_key(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

#[test]
fn shipped_config_listens_on_every_address_with_the_packaged_data_dir() {
    let c = Config::from_toml(SHIPPED, &Overrides::default(), &HashMap::new()).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:7400");
    // The unit's StateDirectory=berth/scheduler.
    assert_eq!(c.data_dir.to_str(), Some("/var/lib/berth/scheduler"));
}

#[test]
fn every_documented_example_is_accepted() {
    let text = uncommented(SHIPPED);
    assert!(text.contains("\nheartbeat_ttl = \"20s\""), "{text}");
    assert!(text.contains("\nserver_names = ["), "{text}");
    let c = Config::from_toml(&text, &Overrides::default(), &HashMap::new())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c.listen.to_string(), "0.0.0.0:7400");
}
