//! Names of Berth secrets and the references to them in task definitions.
//!
//! A secret's name is ECS's/SSM's alphabet: 1–512 of letters, digits and
//! `_.-/`. A definition refers to one (`secrets[].valueFrom`,
//! `repositoryCredentials.credentialsParameter`) by:
//!
//! - its name: `db-password`, `/prod/db/password`;
//! - a Secrets Manager ARN, `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`.
//!   Secrets Manager appends a random `-AbCdEf` to its ARNs; Berth does not
//!   strip it (a secret may really be named so), so the Berth secret must be
//!   named with the suffix, or the reference changed. The JSON-key,
//!   version-stage and version-id fields that may follow the name
//!   (`…:secret:NAME:json-key:stage:id`) are refused unless empty;
//! - an SSM parameter ARN, `arn:PARTITION:ssm:REGION:ACCOUNT:parameter/NAME`
//!   (`parameter/prod/db` names `prod/db`, as SSM drops the leading `/` of
//!   a hierarchical name in its ARNs).

/// The longest secret name (SSM's limit for a parameter name).
pub const MAX_NAME_LEN: usize = 512;

/// Checks a secret's name: 1–512 of letters, digits and `_.-/`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a secret name must be 1–{MAX_NAME_LEN} characters, got {}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        return Err(format!(
            "secret name {name:?} contains {c:?}; only letters, digits and '_', '.', '-', '/' are allowed"
        ));
    }
    Ok(())
}

/// The name of the secret a `valueFrom` or `credentialsParameter` refers to.
pub fn secret_name(reference: &str) -> Result<&str, String> {
    let Some(rest) = reference.strip_prefix("arn:") else {
        validate_name(reference)?;
        return Ok(reference);
    };
    // arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    let [_partition, service, _region, _account, resource] = parts[..] else {
        return Err(format!(
            "{reference:?} is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)"
        ));
    };
    let name = if let Some(r) = resource.strip_prefix("secret:") {
        let mut fields = r.split(':');
        let name = fields.next().unwrap_or_default();
        if fields.any(|f| !f.is_empty()) {
            return Err(format!(
                "{reference:?}: a JSON key, version stage or version id after the secret's \
                 name is not supported; store the value itself as a Berth secret"
            ));
        }
        name
    } else if let Some(name) = resource.strip_prefix("parameter/") {
        name
    } else {
        return Err(format!(
            "{reference:?} is neither a Secrets Manager ARN (…:{service}:…:secret:NAME) \
             nor an SSM parameter ARN (…:parameter/NAME)"
        ));
    };
    validate_name(name).map_err(|e| format!("{reference:?}: {e}"))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_to_names() {
        let ok = [
            ("db-password", "db-password"),
            ("/prod/db/password", "/prod/db/password"),
            ("a.b_c-d/e", "a.b_c-d/e"),
            (
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:web-app/session-AbCdEf",
                "web-app/session-AbCdEf",
            ),
            (
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db:::",
                "db",
            ),
            (
                "arn:berth:secretsmanager:local:000000000000:secret:db",
                "db",
            ),
            (
                "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db/password",
                "prod/db/password",
            ),
            (
                "arn:aws:ssm:eu-west-1:123456789012:parameter/plain",
                "plain",
            ),
        ];
        for (reference, name) in ok {
            assert_eq!(secret_name(reference), Ok(name), "{reference}");
        }
        let bad = [
            ("", "1–512"),
            ("has space", "contains ' '"),
            ("a:b", "contains ':'"),
            ("arn:aws:secretsmanager:r:a", "not an ARN"),
            ("arn:aws:s3:::bucket/key", "neither"),
            (
                "arn:aws:secretsmanager:r:1:secret:db:password::",
                "JSON key",
            ),
            ("arn:aws:secretsmanager:r:1:secret:", "1–512"),
            ("arn:aws:ssm:r:1:parameter/", "1–512"),
        ];
        for (reference, want) in bad {
            let err = secret_name(reference).unwrap_err();
            assert!(err.contains(want), "{reference}: {err}");
        }
        assert!(validate_name(&"a".repeat(512)).is_ok());
        assert!(validate_name(&"a".repeat(513)).is_err());
    }
}
