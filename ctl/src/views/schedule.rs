//! Schedules as berthctl shows them: EventBridge Scheduler's names
//! (`ScheduleExpression`, `ScheduleExpressionTimezone`, `State`, …) in JSON,
//! with Berth's last and next fire and each fire's tasks.

use berth_proto::v1 as pb;
use serde::Serialize;

use super::{rfc3339, table_time};
use crate::output::{blocks, or_dash, Table};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FireView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handled_at: Option<String>,
    pub outcome: String,
    pub task_arns: Vec<String>,
    pub messages: Vec<String>,
    #[serde(skip)]
    pub fire_table: String,
}

/// One schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleView {
    pub name: String,
    pub schedule_expression: String,
    pub schedule_expression_timezone: String,
    pub state: String,
    pub cluster: String,
    pub task_definition: String,
    pub task_count: i32,
    pub flexible_window_minutes: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_fire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_fire_time: Option<String>,
    pub fires: Vec<FireView>,
    #[serde(skip)]
    pub last_table: String,
    #[serde(skip)]
    pub next_table: String,
}

impl From<pb::Schedule> for ScheduleView {
    fn from(s: pb::Schedule) -> Self {
        let t = s.target.unwrap_or_default();
        Self {
            creation_date: rfc3339(s.creation_date.as_ref()),
            start_date: rfc3339(s.start_date.as_ref()),
            end_date: rfc3339(s.end_date.as_ref()),
            last_fire_time: rfc3339(s.last_fire_time.as_ref()),
            next_fire_time: rfc3339(s.next_fire_time.as_ref()),
            last_table: table_time(s.last_fire_time.as_ref()),
            next_table: table_time(s.next_fire_time.as_ref()),
            fires: s
                .fires
                .into_iter()
                .map(|f| FireView {
                    fire_time: rfc3339(f.fire_time.as_ref()),
                    handled_at: rfc3339(f.handled_at.as_ref()),
                    fire_table: table_time(f.fire_time.as_ref()),
                    outcome: f.outcome,
                    task_arns: f.task_arns,
                    messages: f.messages,
                })
                .collect(),
            name: s.name,
            schedule_expression: s.expression,
            schedule_expression_timezone: s.timezone,
            state: s.state,
            cluster: t.cluster,
            task_definition: t.task_definition,
            task_count: t.count,
            flexible_window_minutes: s.flexible_window_minutes,
        }
    }
}

/// `{"Schedules": [...]}`, for `schedule ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SchedulesView {
    pub schedules: Vec<ScheduleView>,
}

/// `schedule ls`: NAME, EXPRESSION, TIMEZONE, STATE, TASKDEF, LAST, NEXT.
pub fn list_table(v: &SchedulesView) -> String {
    let mut t = Table::new(&[
        "NAME",
        "EXPRESSION",
        "TIMEZONE",
        "STATE",
        "TASKDEF",
        "LAST",
        "NEXT",
    ]);
    for s in &v.schedules {
        t.row([
            s.name.clone(),
            s.schedule_expression.clone(),
            s.schedule_expression_timezone.clone(),
            s.state.clone(),
            s.task_definition.clone(),
            s.last_table.clone(),
            s.next_table.clone(),
        ]);
    }
    t.render()
}

/// `schedule describe`: the schedule, then its fires.
pub fn describe(v: &ScheduleView) -> String {
    let mut head = Table::plain();
    let window = if v.flexible_window_minutes == 0 {
        "OFF".to_owned()
    } else {
        format!("{} minutes", v.flexible_window_minutes)
    };
    for (k, val) in [
        ("Name", v.name.clone()),
        ("Expression", v.schedule_expression.clone()),
        ("Timezone", v.schedule_expression_timezone.clone()),
        ("State", v.state.clone()),
        ("Cluster", v.cluster.clone()),
        ("Task definition", v.task_definition.clone()),
        ("Count", v.task_count.to_string()),
        ("Flexible window", window),
        ("Start", or_dash(v.start_date.as_deref().unwrap_or(""))),
        ("End", or_dash(v.end_date.as_deref().unwrap_or(""))),
        ("Last fire", v.last_table.clone()),
        ("Next fire", v.next_table.clone()),
    ] {
        head.row([format!("{k}:"), val]);
    }
    let mut fires = Table::new(&["FIRE TIME", "OUTCOME", "TASKS", "MESSAGE"]);
    for f in &v.fires {
        let tasks: Vec<&str> = f
            .task_arns
            .iter()
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .collect();
        fires.row([
            f.fire_table.clone(),
            f.outcome.clone(),
            or_dash(&tasks.join(",")),
            or_dash(&f.messages.join("; ")),
        ]);
    }
    blocks([head.render(), fires.render()])
}

pub fn created_sentence(v: &ScheduleView) -> String {
    format!(
        "schedule {} created ({}), next fire {}\n",
        v.name, v.state, v.next_table
    )
}

pub fn state_sentence(v: &ScheduleView) -> String {
    format!(
        "schedule {} is {}, next fire {}\n",
        v.name, v.state, v.next_table
    )
}

pub fn rm_sentence(v: &ScheduleView) -> String {
    format!("schedule {} deleted\n", v.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::fixtures::{t0, t1};
    use expect_test::expect;

    fn nightly() -> ScheduleView {
        pb::Schedule {
            name: "nightly".into(),
            expression: "cron(0 2 * * ? *)".into(),
            timezone: "Europe/Paris".into(),
            target: Some(pb::ScheduleTarget {
                cluster: "default".into(),
                task_definition: "report".into(),
                count: 2,
                ..Default::default()
            }),
            flexible_window_minutes: 5,
            state: "ENABLED".into(),
            creation_date: t0(),
            last_fire_time: t0(),
            next_fire_time: t1(),
            fires: vec![pb::ScheduleFire {
                fire_time: t0(),
                handled_at: t0(),
                outcome: "STARTED".into(),
                task_arns: vec![
                    "arn:aws:ecs:us-east-1:000000000000:task/default/a1".into(),
                    "arn:aws:ecs:us-east-1:000000000000:task/default/b2".into(),
                ],
                messages: vec![],
            }],
            ..Default::default()
        }
        .into()
    }

    #[test]
    fn describe_and_list() {
        expect![[r#"
            Name:             nightly
            Expression:       cron(0 2 * * ? *)
            Timezone:         Europe/Paris
            State:            ENABLED
            Cluster:          default
            Task definition:  report
            Count:            2
            Flexible window:  5 minutes
            Start:            -
            End:              -
            Last fire:        2024-05-01T12:00:00Z
            Next fire:        2024-05-02T08:30:05Z

            FIRE TIME             OUTCOME  TASKS  MESSAGE
            2024-05-01T12:00:00Z  STARTED  a1,b2  -
        "#]]
        .assert_eq(&describe(&nightly()));
        expect![[r#"
            NAME     EXPRESSION         TIMEZONE      STATE    TASKDEF  LAST                  NEXT
            nightly  cron(0 2 * * ? *)  Europe/Paris  ENABLED  report   2024-05-01T12:00:00Z  2024-05-02T08:30:05Z
        "#]]
        .assert_eq(&list_table(&SchedulesView {
            schedules: vec![nightly()],
        }));
    }
}
