//! `berthctl completion <bash|zsh|fish>`: prints the shell's completion
//! script for berthctl, made from the same clap definition that parses the
//! command line. Needs no scheduler, token or config file.

use std::io::Write;

use clap::{Args, CommandFactory};

use crate::cli::Cli;
use crate::error::CtlError;

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to print the script for
    #[arg(value_enum)]
    pub shell: berth_clidoc::Shell,
}

pub fn run(args: &CompletionArgs, out: &mut dyn Write) -> Result<(), CtlError> {
    berth_clidoc::completion(Cli::command(), args.shell, out).map_err(CtlError::Output)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

    use clap::Parser;

    use super::*;
    use crate::env::Env;

    /// `berthctl completion SHELL` through the real entry point, with no
    /// endpoint, token or config: what it prints.
    fn complete(shell: &str) -> String {
        let cli = Cli::try_parse_from(["berthctl", "completion", shell]).unwrap();
        // A config path that cannot be read: the command must not look at it.
        let env = Env::from_pairs([("BERTH_CONFIG", "/nonexistent/berth/config.toml")]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(crate::commands::run(cli, &env, &mut out, &mut err))
            .unwrap();
        assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn prints_a_script_for_each_shell_without_a_scheduler() {
        let bash = complete("bash");
        assert!(bash.contains("complete -F _berthctl"), "{bash}");
        let zsh = complete("zsh");
        assert!(zsh.starts_with("#compdef berthctl"), "{zsh}");
        let fish = complete("fish");
        assert!(fish.contains("complete -c berthctl"), "{fish}");
        // Every top-level subcommand and global flag is offered.
        for script in [&bash, &zsh, &fish] {
            for sub in Cli::command().get_subcommands() {
                assert!(script.contains(sub.get_name()), "{}", sub.get_name());
            }
            assert!(script.contains("endpoint"));
        }
    }

    #[test]
    fn other_shells_are_usage_errors() {
        let e = Cli::try_parse_from(["berthctl", "completion", "powershell"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
        let e = Cli::try_parse_from(["berthctl", "completion"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    /// The man pages `berthctl __generate-docs` writes: one for berthctl and
    /// one for every subcommand at every depth, each with a one-line
    /// description for its NAME section (whatis, lintian).
    #[test]
    fn man_pages_cover_every_subcommand() {
        fn names(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
            let name = format!("{prefix}{}", cmd.get_name());
            out.push(name.clone());
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    names(sub, &format!("{name}-"), out);
                }
            }
        }
        let mut expected = Vec::new();
        names(&Cli::command(), "", &mut expected);
        let pages = berth_clidoc::pages(Cli::command());
        let got: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(got, expected);
        assert!(got.contains(&"berthctl-completion"));
        assert!(got.contains(&"berthctl-cluster-create"));
        for (name, cmd) in &pages {
            assert!(cmd.get_about().is_some(), "{name} has no about text");
        }
    }
}
