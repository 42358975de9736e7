//! ECS's placement constraints and strategies, parsed and checked once per
//! request from their JSON shapes (`{"type": ..., "expression": ...}`,
//! `{"type": ..., "field": ...}`). Errors name the JSON path, as the task
//! definition's validation does.
//!
//! The names are ECS's, case-sensitive: constraint types `distinctInstance`
//! and `memberOf`; strategy types `binpack` (field `cpu` | `memory`),
//! `spread` (field `instanceId`, `host` — the same — or `attribute:<name>`)
//! and `random` (no field). At most [`MAX_CONSTRAINTS`] constraints and
//! [`MAX_STRATEGIES`] strategies per request, as ECS allows.

use std::fmt;

use berth_proto::taskdef::{PlacementConstraintType, TaskDefinition};

use super::cql;

/// ECS's limit on placement constraints per request (task definition and
/// request together).
pub const MAX_CONSTRAINTS: usize = 10;
/// ECS's limit on placement strategies per request.
pub const MAX_STRATEGIES: usize = 5;

/// A binding rule: an instance that breaks it never gets the task.
#[derive(Debug, Clone)]
pub enum Constraint {
    /// No two tasks of the request's group on one instance.
    DistinctInstance,
    /// The instance must satisfy the Cluster Query Language expression.
    MemberOf(cql::Expr),
}

/// The resource `binpack` packs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinpackField {
    Cpu,
    Memory,
}

/// What `spread` balances the group's tasks over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpreadField {
    /// `instanceId` or `host`.
    Instance,
    /// `attribute:<name>`; instances without it form one bucket of their own.
    Attribute(String),
}

/// A best-effort preference; a chain applies them in order as tie-breakers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// The instance with the least of the resource left after placing.
    Binpack(BinpackField),
    /// The instance (or attribute value) with the fewest tasks of the group.
    Spread(SpreadField),
    /// Any instance, uniformly.
    Random,
}

/// A bad constraint or strategy: where (a JSON path) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    pub path: String,
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        path: path.into(),
        message: message.into(),
    }
}

impl Constraint {
    /// Parses one constraint at JSON path `path` (e.g. `placementConstraints[0]`).
    pub fn parse(path: &str, kind: &str, expression: &str) -> Result<Self, SpecError> {
        match kind {
            "distinctInstance" => {
                if expression.trim().is_empty() {
                    Ok(Constraint::DistinctInstance)
                } else {
                    Err(err(
                        format!("{path}.expression"),
                        "distinctInstance takes no expression",
                    ))
                }
            }
            "memberOf" => {
                if expression.trim().is_empty() {
                    return Err(err(
                        format!("{path}.expression"),
                        "memberOf needs a Cluster Query Language expression",
                    ));
                }
                cql::parse(expression)
                    .map(Constraint::MemberOf)
                    .map_err(|e| err(format!("{path}.expression"), e.to_string()))
            }
            "" => Err(err(
                format!("{path}.type"),
                "missing; one of distinctInstance, memberOf",
            )),
            other => Err(err(
                format!("{path}.type"),
                format!("{other:?} is not a constraint type; one of distinctInstance, memberOf"),
            )),
        }
    }
}

impl Strategy {
    /// Parses one strategy at JSON path `path` (e.g. `placementStrategy[1]`).
    pub fn parse(path: &str, kind: &str, field: &str) -> Result<Self, SpecError> {
        let field = field.trim();
        match kind {
            "binpack" => match field {
                "cpu" | "CPU" => Ok(Strategy::Binpack(BinpackField::Cpu)),
                "memory" | "MEMORY" => Ok(Strategy::Binpack(BinpackField::Memory)),
                "" => Err(err(format!("{path}.field"), "binpack needs cpu or memory")),
                other => Err(err(
                    format!("{path}.field"),
                    format!("{other:?}: binpack packs by cpu or memory"),
                )),
            },
            "spread" => match field {
                "instanceId" | "host" => Ok(Strategy::Spread(SpreadField::Instance)),
                "" => Err(err(
                    format!("{path}.field"),
                    "spread needs instanceId, host or attribute:<name>",
                )),
                f => match f.strip_prefix("attribute:") {
                    Some(name) if !name.is_empty() => {
                        Ok(Strategy::Spread(SpreadField::Attribute(name.to_owned())))
                    }
                    _ => Err(err(
                        format!("{path}.field"),
                        format!("{f:?}: spread takes instanceId, host or attribute:<name>"),
                    )),
                },
            },
            "random" => {
                if field.is_empty() {
                    Ok(Strategy::Random)
                } else {
                    Err(err(format!("{path}.field"), "random takes no field"))
                }
            }
            "" => Err(err(
                format!("{path}.type"),
                "missing; one of binpack, spread, random",
            )),
            other => Err(err(
                format!("{path}.type"),
                format!("{other:?} is not a strategy type; one of binpack, spread, random"),
            )),
        }
    }

    /// Parses `binpack:memory`, `spread:attribute:zone`, `random` (the CLI's form).
    pub fn parse_short(path: &str, s: &str) -> Result<Self, SpecError> {
        let (kind, field) = s.split_once(':').unwrap_or((s, ""));
        Self::parse(path, kind.trim(), field)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Binpack(BinpackField::Cpu) => f.write_str("binpack:cpu"),
            Strategy::Binpack(BinpackField::Memory) => f.write_str("binpack:memory"),
            Strategy::Spread(SpreadField::Instance) => f.write_str("spread:instanceId"),
            Strategy::Spread(SpreadField::Attribute(a)) => write!(f, "spread:attribute:{a}"),
            Strategy::Random => f.write_str("random"),
        }
    }
}

/// The placement a task is placed with: its definition's own `memberOf`
/// constraints, then the request's `(type, expression)` constraints, parsed.
/// RunTask and the service controller both assemble it here. Every bad item
/// is reported, in that order; the request limits stay with the caller.
pub fn constraints<'a>(
    definition: &TaskDefinition,
    request: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<Constraint>, Vec<SpecError>> {
    let own = definition
        .placement_constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let kind = match c.kind {
                PlacementConstraintType::MemberOf => "memberOf",
            };
            Constraint::parse(
                &format!("taskDefinition.placementConstraints[{i}]"),
                kind,
                c.expression.as_deref().unwrap_or_default(),
            )
        });
    let requested = request
        .into_iter()
        .enumerate()
        .map(|(i, (kind, expression))| {
            Constraint::parse(&format!("placementConstraints[{i}]"), kind, expression)
        });
    collect(own.chain(requested))
}

/// The request's `(type, field)` strategies, parsed, or `default()` when it
/// names none (RunTask: `random`; a REPLICA service: spread by zone, then
/// instance). Every bad item is reported.
pub fn strategies<'a>(
    request: impl IntoIterator<Item = (&'a str, &'a str)>,
    default: impl FnOnce() -> Vec<Strategy>,
) -> Result<Vec<Strategy>, Vec<SpecError>> {
    let out = collect(request.into_iter().enumerate().map(|(i, (kind, field))| {
        Strategy::parse(&format!("placementStrategy[{i}]"), kind, field)
    }))?;
    Ok(if out.is_empty() { default() } else { out })
}

fn collect<T>(items: impl Iterator<Item = Result<T, SpecError>>) -> Result<Vec<T>, Vec<SpecError>> {
    let mut out = Vec::new();
    let mut issues = Vec::new();
    for item in items {
        match item {
            Ok(v) => out.push(v),
            Err(e) => issues.push(e),
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_then_request_with_every_issue() {
        let def = berth_proto::taskdef::parse_registration(
            r#"{"family":"web","containerDefinitions":[{"name":"a","image":"busybox","memory":64}],
                "placementConstraints":[{"type":"memberOf","expression":"attribute:zone == a"}]}"#,
        )
        .unwrap()
        .definition;
        let got = constraints(&def, [("distinctInstance", "")]).unwrap();
        assert!(matches!(
            got.as_slice(),
            [Constraint::MemberOf(_), Constraint::DistinctInstance]
        ));
        let paths: Vec<String> = constraints(&def, [("x", ""), ("memberOf", "attribute:zone ==")])
            .unwrap_err()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            [
                "placementConstraints[0].type",
                "placementConstraints[1].expression"
            ]
        );
        assert_eq!(
            strategies([], || vec![Strategy::Random]).unwrap(),
            [Strategy::Random]
        );
        assert_eq!(
            strategies([("binpack", "cpu")], || vec![Strategy::Random]).unwrap(),
            [Strategy::Binpack(BinpackField::Cpu)]
        );
        assert_eq!(
            strategies([("x", ""), ("y", "")], Vec::new)
                .unwrap_err()
                .len(),
            2
        );
    }

    #[test]
    fn constraints_parse_with_paths() {
        assert!(matches!(
            Constraint::parse("c[0]", "distinctInstance", ""),
            Ok(Constraint::DistinctInstance)
        ));
        assert!(matches!(
            Constraint::parse("c[0]", "memberOf", "attribute:zone == a"),
            Ok(Constraint::MemberOf(_))
        ));
        let e = Constraint::parse("placementConstraints[1]", "memberOf", "attribute:zone ==")
            .unwrap_err();
        assert_eq!(e.path, "placementConstraints[1].expression");
        assert!(e.message.starts_with("at column"), "{e}");
        assert_eq!(
            Constraint::parse("c[0]", "sameZone", "")
                .unwrap_err()
                .to_string(),
            "c[0].type: \"sameZone\" is not a constraint type; one of distinctInstance, memberOf"
        );
        assert_eq!(
            Constraint::parse("c[0]", "distinctInstance", "x")
                .unwrap_err()
                .path,
            "c[0].expression"
        );
        assert_eq!(
            Constraint::parse("c[0]", "memberOf", " ").unwrap_err().path,
            "c[0].expression"
        );
    }

    #[test]
    fn strategies_parse_with_paths() {
        let ok = |k, f| Strategy::parse("s[0]", k, f).unwrap().to_string();
        assert_eq!(ok("binpack", "memory"), "binpack:memory");
        assert_eq!(ok("binpack", "cpu"), "binpack:cpu");
        assert_eq!(ok("spread", "host"), "spread:instanceId");
        assert_eq!(
            ok("spread", "attribute:ecs.availability-zone"),
            "spread:attribute:ecs.availability-zone"
        );
        assert_eq!(ok("random", ""), "random");
        let bad = |k, f| Strategy::parse("placementStrategy[2]", k, f).unwrap_err();
        assert_eq!(bad("binpack", "disk").path, "placementStrategy[2].field");
        assert_eq!(
            bad("spread", "attribute:").path,
            "placementStrategy[2].field"
        );
        assert_eq!(bad("random", "cpu").path, "placementStrategy[2].field");
        assert_eq!(bad("pack", "cpu").path, "placementStrategy[2].type");
        assert_eq!(
            Strategy::parse_short("s", "spread:attribute:zone").unwrap(),
            Strategy::Spread(SpreadField::Attribute("zone".into()))
        );
        assert_eq!(
            Strategy::parse_short("s", "random").unwrap(),
            Strategy::Random
        );
    }
}
