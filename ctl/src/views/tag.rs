//! Tags, custom attributes and task-definition deletions as berthctl shows
//! them: the JSON of `aws ecs list-tags-for-resource`, `list-attributes`
//! and `delete-task-definitions`, and their tables.

use berth_proto::v1 as pb;
use serde::Serialize;

use super::FailureView;
use crate::output::Table;

/// ECS's `Tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagView {
    pub key: String,
    pub value: String,
}

/// `{"tags": [...]}`, for `tag ls|add|rm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagsView {
    pub tags: Vec<TagView>,
}

impl From<Vec<pb::Tag>> for TagsView {
    fn from(tags: Vec<pb::Tag>) -> Self {
        Self {
            tags: tag_views(tags),
        }
    }
}

/// Tags as every view shows them.
pub fn tag_views(tags: Vec<pb::Tag>) -> Vec<TagView> {
    tags.into_iter()
        .map(|t| TagView {
            key: t.key,
            value: t.value,
        })
        .collect()
}

/// `key=value, key=value` for a table cell (`-` for none).
pub fn tags_cell(tags: &[TagView]) -> String {
    if tags.is_empty() {
        return "-".to_owned();
    }
    tags.iter()
        .map(|t| format!("{}={}", t.key, t.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// KEY, VALUE.
pub fn tags_table(v: &TagsView) -> String {
    if v.tags.is_empty() {
        return "no tags\n".to_owned();
    }
    let mut t = Table::new(&["KEY", "VALUE"]);
    for tag in &v.tags {
        t.row([tag.key.clone(), tag.value.clone()]);
    }
    t.render()
}

/// ECS's `Attribute` with its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeView {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub target_type: String,
    pub target_id: String,
}

/// `{"attributes": [...]}`, for `instance attribute put|rm|ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributesView {
    pub attributes: Vec<AttributeView>,
}

impl From<Vec<pb::TargetedAttribute>> for AttributesView {
    fn from(attrs: Vec<pb::TargetedAttribute>) -> Self {
        Self {
            attributes: attrs
                .into_iter()
                .map(|a| AttributeView {
                    name: a.name,
                    value: a.value,
                    target_type: a.target_type,
                    target_id: a.target_id,
                })
                .collect(),
        }
    }
}

/// INSTANCE (the id), NAME, VALUE.
pub fn attributes_table(v: &AttributesView) -> String {
    if v.attributes.is_empty() {
        return "no attributes\n".to_owned();
    }
    let mut t = Table::new(&["INSTANCE", "NAME", "VALUE"]);
    for a in &v.attributes {
        t.row([
            berth_proto::arn::short_id(&a.target_id).to_owned(),
            a.name.clone(),
            crate::output::or_dash(&a.value),
        ]);
    }
    t.render()
}

/// `instance attribute rm`: one line per attribute removed.
pub fn removed_sentence(v: &AttributesView) -> String {
    v.attributes
        .iter()
        .map(|a| {
            format!(
                "removed attribute {} from {}\n",
                a.name,
                berth_proto::arn::short_id(&a.target_id)
            )
        })
        .collect()
}

/// One revision DeleteTaskDefinitions took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedView {
    pub task_definition_arn: String,
    pub status: String,
}

/// `{"taskDefinitions": [...], "failures": [...]}`, for `taskdef delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteView {
    pub task_definitions: Vec<DeletedView>,
    pub failures: Vec<FailureView>,
}

impl From<pb::DeleteTaskDefinitionsResponse> for DeleteView {
    fn from(r: pb::DeleteTaskDefinitionsResponse) -> Self {
        Self {
            task_definitions: r
                .task_definitions
                .into_iter()
                .map(|t| DeletedView {
                    task_definition_arn: t.task_definition_arn,
                    status: t.status,
                })
                .collect(),
            failures: r.failures.into_iter().map(Into::into).collect(),
        }
    }
}

/// One line per revision taken (failures go to the error).
pub fn delete_table(v: &DeleteView) -> String {
    v.task_definitions
        .iter()
        .map(|t| {
            let name = berth_proto::arn::resource_part(&t.task_definition_arn);
            let name = name.strip_prefix("task-definition/").unwrap_or(name);
            format!("task definition {name} deleted ({})\n", t.status)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn tags() {
        let v = TagsView::from(vec![
            pb::Tag {
                key: "team".into(),
                value: "core".into(),
            },
            pb::Tag {
                key: "cost center".into(),
                value: String::new(),
            },
        ]);
        expect![[r#"
            KEY          VALUE
            team         core
            cost center
        "#]]
        .assert_eq(&tags_table(&v));
        expect![[r#"
            {
              "tags": [
                {
                  "key": "team",
                  "value": "core"
                },
                {
                  "key": "cost center",
                  "value": ""
                }
              ]
            }
        "#]]
        .assert_eq(&crate::output::json(&v));
        assert_eq!(tags_table(&TagsView { tags: vec![] }), "no tags\n");
    }

    #[test]
    fn attributes() {
        let v = AttributesView::from(vec![
            pb::TargetedAttribute {
                name: "tier".into(),
                value: "gold".into(),
                target_type: "container-instance".into(),
                target_id: "arn:berth:ecs:local:0:container-instance/default/4f1c".into(),
            },
            pb::TargetedAttribute {
                name: "gpu".into(),
                value: String::new(),
                target_type: "container-instance".into(),
                target_id: "arn:berth:ecs:local:0:container-instance/default/4f1c".into(),
            },
        ]);
        expect![[r#"
            INSTANCE  NAME  VALUE
            4f1c      tier  gold
            4f1c      gpu   -
        "#]]
        .assert_eq(&attributes_table(&v));
        expect![[r#"
            {
              "attributes": [
                {
                  "name": "tier",
                  "value": "gold",
                  "targetType": "container-instance",
                  "targetId": "arn:berth:ecs:local:0:container-instance/default/4f1c"
                },
                {
                  "name": "gpu",
                  "targetType": "container-instance",
                  "targetId": "arn:berth:ecs:local:0:container-instance/default/4f1c"
                }
              ]
            }
        "#]]
        .assert_eq(&crate::output::json(&v));
    }

    #[test]
    fn deletions() {
        let v = DeleteView::from(pb::DeleteTaskDefinitionsResponse {
            task_definitions: vec![pb::TaskDefinition {
                task_definition_arn: "arn:berth:ecs:local:0:task-definition/web:1".into(),
                status: "DELETE_IN_PROGRESS".into(),
                ..Default::default()
            }],
            failures: vec![pb::Failure {
                arn: "arn:berth:ecs:local:0:task-definition/web:2".into(),
                reason: "The specified task definition is still in ACTIVE status.".into(),
                detail: String::new(),
            }],
        });
        expect![[r#"
            task definition web:1 deleted (DELETE_IN_PROGRESS)
        "#]]
        .assert_eq(&delete_table(&v));
        expect![[r#"
            {
              "taskDefinitions": [
                {
                  "taskDefinitionArn": "arn:berth:ecs:local:0:task-definition/web:1",
                  "status": "DELETE_IN_PROGRESS"
                }
              ],
              "failures": [
                {
                  "arn": "arn:berth:ecs:local:0:task-definition/web:2",
                  "reason": "The specified task definition is still in ACTIVE status."
                }
              ]
            }
        "#]]
        .assert_eq(&crate::output::json(&v));
    }
}
