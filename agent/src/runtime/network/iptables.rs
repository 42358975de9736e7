//! A fallback scrub of a task's iptables NAT rules, for when the plugins
//! cannot remove them: the `bridge` plugin finds its masquerade rule through
//! the task's interface, so when the namespace is already gone (deleted
//! behind the agent's back, or a record outlived its namespace) its DEL
//! succeeds and leaves the rule. The plugins mark their rules with comments
//! naming the task (`name: "berth" id: "<task>"`, `dnat name: …`); this
//! deletes those rules and the per-task chains they jump to. The shared
//! `CNI-HOSTPORT-*` chains stay.

use tokio::process::Command;

use super::NetworkError;

/// Deletes the NAT rules that name `task_id` and the per-task chains they
/// jump to. Returns how many rules it deleted.
pub async fn scrub(network: &str, task_id: &str) -> Result<usize, NetworkError> {
    let dump = iptables(&["-t", "nat", "-S"]).await?;
    let plan = plan(&dump, network, task_id);
    for rule in &plan.delete {
        let mut args = vec!["-t", "nat", "-D"];
        args.extend(rule.iter().map(String::as_str));
        iptables(&args).await?;
    }
    for chain in &plan.chains {
        iptables(&["-t", "nat", "-F", chain]).await?;
        iptables(&["-t", "nat", "-X", chain]).await?;
    }
    Ok(plan.delete.len())
}

/// True when `CNI-HOSTPORT-DNAT` jumps to the task's DNAT chain (portmap's
/// rule commented `dnat name: "<network>" id: "<task>"`).
pub async fn has_dnat(network: &str, task_id: &str) -> Result<bool, NetworkError> {
    let dump = iptables(&["-t", "nat", "-S", "CNI-HOSTPORT-DNAT"]).await?;
    let comment = format!("dnat name: \"{network}\" id: \"{task_id}\"");
    Ok(dump
        .lines()
        .filter_map(|l| l.strip_prefix("-A "))
        .map(split)
        .any(|r| r.windows(2).any(|w| w[0] == "--comment" && w[1] == comment)))
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Rules (chain and spec, without `-A`) to delete one by one.
    delete: Vec<Vec<String>>,
    /// Per-task chains to flush and delete afterwards.
    chains: Vec<String>,
}

fn plan(dump: &str, network: &str, task_id: &str) -> Plan {
    let comments = [
        format!("name: \"{network}\" id: \"{task_id}\""),
        format!("dnat name: \"{network}\" id: \"{task_id}\""),
    ];
    let rules: Vec<Vec<String>> = dump
        .lines()
        .filter_map(|l| l.strip_prefix("-A "))
        .map(split)
        .collect();
    let ours = |r: &Vec<String>| {
        r.windows(2)
            .any(|w| w[0] == "--comment" && comments.contains(&w[1]))
    };
    let mut plan = Plan::default();
    for r in rules.iter().filter(|r| ours(r)) {
        if let Some(target) = r.windows(2).find(|w| w[0] == "-j").map(|w| w[1].clone()) {
            if target.starts_with("CNI-")
                && !target.starts_with("CNI-HOSTPORT-")
                && !plan.chains.contains(&target)
            {
                plan.chains.push(target);
            }
        }
    }
    plan.delete = rules
        .into_iter()
        .filter(|r| ours(r) && !r.first().is_some_and(|c| plan.chains.contains(c)))
        .collect();
    plan
}

/// Splits an `iptables -S` line into words: double quotes group, and a
/// backslash escapes the next character.
fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

async fn iptables(args: &[&str]) -> Result<String, NetworkError> {
    let command = format!("iptables {}", args.join(" "));
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .await
        .map_err(|e| NetworkError::Iptables {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NetworkError::Iptables {
            command,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"-P POSTROUTING ACCEPT
-N CNI-DN-dc80b4a3d8859433c0641
-N CNI-HOSTPORT-DNAT
-N CNI-dc80b4a3d8859433c0641973
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s 10.248.76.2/32 -m comment --comment "name: \"berth\" id: \"t1\"" -j CNI-dc80b4a3d8859433c0641973
-A POSTROUTING -s 10.248.76.3/32 -m comment --comment "name: \"berth\" id: \"t10\"" -j CNI-7a79de646382a6231e0ae155
-A CNI-DN-dc80b4a3d8859433c0641 -p tcp -m tcp --dport 27199 -j DNAT --to-destination 10.248.76.2:8080
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"berth\" id: \"t1\"" -m multiport --dports 27199 -j CNI-DN-dc80b4a3d8859433c0641
-A CNI-dc80b4a3d8859433c0641973 -d 10.248.76.0/24 -m comment --comment "name: \"berth\" id: \"t1\"" -j ACCEPT
-A CNI-dc80b4a3d8859433c0641973 ! -d 224.0.0.0/4 -m comment --comment "name: \"berth\" id: \"t1\"" -j MASQUERADE
"#;

    #[test]
    fn plans_the_rules_and_chains_of_one_task_only() {
        let p = plan(DUMP, "berth", "t1");
        assert_eq!(
            p.chains,
            [
                "CNI-dc80b4a3d8859433c0641973",
                "CNI-DN-dc80b4a3d8859433c0641"
            ]
        );
        assert_eq!(p.delete.len(), 2);
        assert_eq!(
            p.delete[0],
            [
                "POSTROUTING",
                "-s",
                "10.248.76.2/32",
                "-m",
                "comment",
                "--comment",
                "name: \"berth\" id: \"t1\"",
                "-j",
                "CNI-dc80b4a3d8859433c0641973"
            ]
        );
        assert_eq!(p.delete[1][0], "CNI-HOSTPORT-DNAT");
        assert_eq!(plan(DUMP, "berth", "t2"), Plan::default());
        assert_eq!(plan(DUMP, "other", "t1"), Plan::default());
    }
}
