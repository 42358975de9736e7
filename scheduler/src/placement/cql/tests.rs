//! Table tests of the Cluster Query Language: evaluation rows against two
//! instances, parse snapshots, error snapshots with positions, limits, and a
//! fuzz-style no-panic loop.

use super::*;
use expect_test::{expect, Expect};
use time::macros::datetime;

/// An instance as a query sees it.
struct Host {
    attributes: Vec<(&'static str, &'static str)>,
    connected: bool,
    version: &'static str,
    id: &'static str,
    ec2: &'static str,
    registered: OffsetDateTime,
    running: u32,
    groups: Vec<&'static str>,
}

impl Facts for Host {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
    fn agent_connected(&self) -> bool {
        self.connected
    }
    fn agent_version(&self) -> &str {
        self.version
    }
    fn instance_id(&self) -> &str {
        self.id
    }
    fn ec2_instance_id(&self) -> &str {
        self.ec2
    }
    fn registered_at(&self) -> OffsetDateTime {
        self.registered
    }
    fn running_tasks_count(&self) -> u32 {
        self.running
    }
    fn has_task_group(&self, group: &str) -> bool {
        self.groups.contains(&group)
    }
}

/// A busy EC2 host: connected, one task running, attributes of every kind.
fn busy() -> Host {
    Host {
        attributes: vec![
            ("ecs.instance-type", "t2.small"),
            ("ecs.availability-zone", "us-east-1a"),
            ("stack", "prod"),
            ("gpu", ""),
            ("cores", "16"),
            ("weight", "-2.50"),
            ("rack", "r10"),
        ],
        connected: true,
        version: "1.14.5",
        id: "ci-7f3a",
        ec2: "i-abcd1234",
        registered: datetime!(2018-02-12 10:30:00.25 UTC),
        running: 1,
        groups: vec!["service:production", "family:web"],
    }
}

/// An idle host outside EC2: disconnected, nothing running, one attribute.
fn idle() -> Host {
    Host {
        attributes: vec![("ecs.instance-type", "g2.2xlarge")],
        connected: false,
        version: "0.9.0-dev",
        id: "ci-0001",
        ec2: "",
        registered: datetime!(2018-06-18 22:28:28 UTC),
        running: 0,
        groups: vec![],
    }
}

/// Each expression with its answer on `busy()` and on `idle()`.
const EVAL_CASES: &[(&str, bool, bool)] = &[
    // attribute: equality, every spelling and quoting
    ("attribute:ecs.instance-type == t2.small", true, false),
    ("attribute:ecs.instance-type equals t2.small", true, false),
    ("attribute:ecs.instance-type EQUALS 't2.small'", true, false),
    ("attribute:ecs.instance-type == \"t2.small\"", true, false),
    ("attribute:ecs.instance-type == t2.*", false, false), // no wildcards in ==
    ("attribute:ecs.instance-type == T2.SMALL", false, false), // values are case-sensitive
    ("attribute:stack != prod", false, false),             // a missing attribute fails !=
    ("attribute:stack not_equals dev", true, false),
    ("not(attribute:stack == prod)", false, true),
    ("attribute:gpu == ''", true, false), // present without a value
    // exists
    ("attribute:stack exists", true, false),
    ("attribute:gpu exists", true, false),
    ("attribute:stack !exists", false, true),
    ("attribute:stack not_exists", false, true),
    // lists
    (
        "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]",
        true,
        false,
    ),
    (
        "attribute:ecs.availability-zone !in [us-east-1a, 'us-east-1b']",
        false,
        false,
    ),
    (
        "attribute:ecs.availability-zone not_in [\"us-east-1c\"]",
        true,
        false,
    ),
    ("attribute:stack in ['pröd', prod]", true, false),
    ("attribute:stack IN[prod]", true, false),
    // regexes: whole-value matches
    ("attribute:ecs.instance-type =~ t2.*", true, false),
    ("attribute:ecs.instance-type matches 'g2\\..*'", false, true),
    ("attribute:ecs.instance-type =~ t2", false, false),
    (
        "attribute:ecs.instance-type =~ 'small|t2.small'",
        true,
        false,
    ),
    ("attribute:ecs.instance-type !~ t2.*", false, true),
    (
        "attribute:ecs.instance-type not_matches '(?i)T2\\.SMALL'",
        false,
        true,
    ),
    (
        "attribute:ecs.instance-type =~ '(?x) t2 \\. small # a comment'",
        true,
        false,
    ),
    ("attribute:stack !~ 'dev'", true, false),
    // order: numbers when both sides are numbers, else strings
    ("attribute:cores > 8", true, false),
    ("attribute:cores greater_than 8", true, false),
    ("attribute:cores >= 16.0", true, false),
    ("attribute:cores greater_than_equal 017", false, false),
    ("attribute:cores < 100", true, false),
    ("attribute:weight < -2", true, false),
    ("attribute:weight <= -2.5", true, false),
    ("attribute:weight less_than -2.5000001", false, false),
    ("attribute:rack > r9", false, false),
    ("attribute:rack less_than_equal r10", true, false),
    ("attribute:cores == 16.0", false, false), // == stays string equality
    // agentConnected
    ("agentConnected == true", true, false),
    ("agentConnected != true", false, true),
    ("agentConnected == FALSE", false, true),
    ("agentConnected in [false]", false, true),
    ("agentConnected =~ 't.*'", true, false),
    // agentVersion: dotted numbers, not strings
    ("agentVersion < 1.14.5", false, true),
    ("agentVersion >= 1.14", true, false),
    ("agentVersion == 1.14.5.0", true, false),
    ("agentVersion > 1.9.0", true, false),
    ("agentVersion less_than_equal 0.9", false, true),
    ("agentVersion not_equals 0.9.0", true, false),
    // ec2InstanceId and instanceId
    ("ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']", true, false),
    ("ec2InstanceId != i-0000", true, false), // no EC2 id: every comparison fails
    ("ec2InstanceId =~ 'i-[0-9a-f]{8}'", true, false),
    ("ec2InstanceId =~ i-[0-9a-f]{8}", true, false), // brackets need no quotes outside a list
    (
        "not(attribute:ecs.instance-type =~ t2.(small|medium))",
        false,
        true,
    ), // nor parens
    ("instanceId == ci-7f3a", true, false),
    ("instanceId !in [ci-7f3a]", false, true),
    ("instanceId not_matches 'ci-7.*'", false, true),
    // registeredAt: truncated to the literal's precision
    ("registeredAt < 2018-02-13", true, false),
    ("registeredAt == 2018-02-12", true, false),
    ("registeredAt > 2018-02-12", false, true),
    ("registeredAt <= 2018-02-12", true, false),
    ("registeredAt == 2018-06-18T22:28:28Z", false, true),
    ("registeredAt == '2018-06-19T00:28:28+02:00'", false, true),
    ("registeredAt >= 2018-06-18T22:28:28", false, true),
    ("registeredAt equals 2018-02-12T10:30:00", true, false),
    ("registeredAt != 2018-02-12T10:30:00-00:00", false, true),
    // runningTasksCount
    ("runningTasksCount == 1", true, false),
    ("runningTasksCount > 0", true, false),
    ("runningTasksCount less_than 1", false, true),
    ("runningTasksCount != 0", true, false),
    // task:group: the groups of the tasks on the instance
    ("task:group == service:production", true, false),
    ("task:group != service:production", false, true),
    ("not(task:group == database)", true, true),
    ("task:group in [database, family:web]", true, false),
    ("task:group !in [database, family:web]", false, true),
    // compounds, precedence, spellings of the connectives
    (
        "attribute:ecs.instance-type =~ g2.* and attribute:ecs.availability-zone != us-east-1d",
        false,
        false,
    ),
    (
        "attribute:stack == prod || runningTasksCount == 0",
        true,
        true,
    ),
    (
        "attribute:stack == prod OR agentConnected == false",
        true,
        true,
    ),
    // and binds tighter than or: stack || (count && disconnected)
    (
        "attribute:stack == prod or runningTasksCount == 0 and agentConnected == false",
        true,
        true,
    ),
    (
        "runningTasksCount == 0 and agentConnected == false or attribute:stack == prod",
        true,
        true,
    ),
    // not binds tighter than and/or
    (
        "!attribute:stack exists && !agentConnected == true",
        false,
        true,
    ),
    (
        "not attribute:stack exists or runningTasksCount == 1",
        true,
        true,
    ),
    (
        "(runningTasksCount == 0 or attribute:stack == prod) and agentConnected == true",
        true,
        false,
    ),
    (
        "NOT (attribute:stack == prod AND runningTasksCount == 1)",
        false,
        true,
    ),
    ("!!agentConnected == true", true, false),
    ("((attribute:stack exists))", true, false),
    (
        "attribute:ecs.instance-type==t2.small&&runningTasksCount>=1",
        true,
        false,
    ),
    (
        "agentConnected==false||(task:group==family:web)",
        true,
        true,
    ),
    ("  attribute:stack\texists\n", true, false),
];

#[test]
fn eval_cases() {
    let (busy, idle) = (busy(), idle());
    let mut failures = Vec::new();
    for &(src, on_busy, on_idle) in EVAL_CASES {
        match parse(src) {
            Ok(expr) => {
                let got = (expr.eval(&busy), expr.eval(&idle));
                if got != (on_busy, on_idle) {
                    failures.push(format!("{src}: got {got:?}, want {:?}", (on_busy, on_idle)));
                }
                // The canonical form means the same.
                let again = parse(&expr.to_string()).expect("canonical form parses");
                assert_eq!(again.to_string(), expr.to_string(), "{src}");
                assert_eq!((again.eval(&busy), again.eval(&idle)), got, "{src}");
            }
            Err(err) => failures.push(format!("{src}: {err}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_parse(inputs: &[&str], expect: Expect) {
    let out: String = inputs
        .iter()
        .map(|src| match parse(src) {
            Ok(expr) => format!("{src}\n  => {expr}\n"),
            Err(err) => format!("{src}\n  !! {err}\n"),
        })
        .collect();
    expect.assert_eq(&out);
}

#[test]
fn parse_cases() {
    check_parse(
        &[
            "a:x == 1",
            "attribute:a == 1 or attribute:b == 2 and attribute:c == 3",
            "attribute:a == 1 and attribute:b == 2 or attribute:c == 3",
            "attribute:a == 1 or attribute:b == 2 or attribute:c == 3",
            "not attribute:a == 1 and attribute:b == 2",
            "not (attribute:a == 1 and attribute:b == 2)",
            "!(!attribute:a exists)",
            "attribute:a equals x And attribute:b NOT_EQUALS y Or attribute:c not_exists",
            "attribute:a greater_than 1 && attribute:a less_than_equal 2",
            "attribute:name == 'two words' && attribute:quote == \"it's\"",
            "attribute:empty == \"\"",
            "attribute:a in [ x ,'y z',\"w\" ]",
            "attribute:path =~ '^/srv/(a|b)$'",
            "attribute:a == and",
            "attribute:bang == !x",
            "registeredAt >= '2018-06-18T22:28:28+00:00'",
            "agentConnected == TRUE",
            "runningTasksCount <= 007",
            "attribute:a\\b == c",
        ],
        expect![[r#"
            a:x == 1
              !! at column 1: unknown subject `a:x`; expected agentConnected, agentVersion, attribute:<name>, ec2InstanceId, instanceId, registeredAt, runningTasksCount or task:group
            attribute:a == 1 or attribute:b == 2 and attribute:c == 3
              => (attribute:a == 1 || (attribute:b == 2 && attribute:c == 3))
            attribute:a == 1 and attribute:b == 2 or attribute:c == 3
              => ((attribute:a == 1 && attribute:b == 2) || attribute:c == 3)
            attribute:a == 1 or attribute:b == 2 or attribute:c == 3
              => ((attribute:a == 1 || attribute:b == 2) || attribute:c == 3)
            not attribute:a == 1 and attribute:b == 2
              => (!(attribute:a == 1) && attribute:b == 2)
            not (attribute:a == 1 and attribute:b == 2)
              => !((attribute:a == 1 && attribute:b == 2))
            !(!attribute:a exists)
              => !(!(attribute:a exists))
            attribute:a equals x And attribute:b NOT_EQUALS y Or attribute:c not_exists
              => ((attribute:a == x && attribute:b != y) || attribute:c !exists)
            attribute:a greater_than 1 && attribute:a less_than_equal 2
              => (attribute:a > 1 && attribute:a <= 2)
            attribute:name == 'two words' && attribute:quote == "it's"
              => (attribute:name == 'two words' && attribute:quote == it's)
            attribute:empty == ""
              => attribute:empty == ''
            attribute:a in [ x ,'y z',"w" ]
              => attribute:a in [x, 'y z', w]
            attribute:path =~ '^/srv/(a|b)$'
              => attribute:path =~ '^/srv/(a|b)$'
            attribute:a == and
              => attribute:a == and
            attribute:bang == !x
              => attribute:bang == !x
            registeredAt >= '2018-06-18T22:28:28+00:00'
              => registeredAt >= 2018-06-18T22:28:28+00:00
            agentConnected == TRUE
              => agentConnected == true
            runningTasksCount <= 007
              => runningTasksCount <= 7
            attribute:a\b == c
              => attribute:a\b == c
        "#]],
    );
}

/// Each error drawn under its input, with a caret at the reported column.
fn check_errors(inputs: &[&str], expect: Expect) {
    let out: String = inputs
        .iter()
        .map(|src| match parse(src) {
            Ok(expr) => format!("{src}\n  parsed as {expr}\n"),
            Err(err) => format!("{src}\n{}^ {err}\n", " ".repeat(err.pos)),
        })
        .collect();
    expect.assert_eq(&out);
}

#[test]
fn error_cases() {
    check_errors(
        &[
            "",
            "attribute:stack == 'prod",
            "attribute:stack == \"prod' and x",
            "attribute:az in [a, b",
            "attribute:az in [a, 'b",
            "attribute:az in [a b]",
            "attribute:az in [a, ]",
            "attribute:az in []",
            "attribute:az in a",
            "attribute:az == [a]",
            "hostname == web-1",
            "AgentConnected == true",
            "Attribute:stack == prod",
            "attribute: == prod",
            "attribute:st@ck == prod",
            "attribute:stack => prod",
            "attribute:stack = prod",
            "attribute:stack likes prod",
            "attribute:stack",
            "attribute:stack 'prod'",
            "attribute:stack ==",
            "attribute:stack == )",
            "attribute:stack exists prod",
            "attribute:stack =~ 't2.(small'",
            "attribute:stack =~ a{2,1}",
            "attribute:stack =~ t2.(small",
            "attribute:stack =~ (?<n>a)(?<n>b)",
            "attribute:stack =~ '(a)\\1'",
            "attribute:stack =~ '(?=a)'",
            "attribute:stack =~ 'a*+'",
            "attribute:stack =~ '(?>a)'",
            "attribute:stack =~ '\\Qa.b\\E'",
            "attribute:stack =~ '\\p{javaLowerCase}'",
            "registeredAt < 2018-13-01",
            "registeredAt < 2018-02-13T25:00:00Z",
            "registeredAt < yesterday",
            "agentVersion < 1.x",
            "agentConnected == yes",
            "runningTasksCount > -1",
            "runningTasksCount > 99999999999",
            "runningTasksCount =~ 1",
            "ec2InstanceId > i-1",
            "task:group =~ service:.*",
            "registeredAt in [2018-01-01]",
            "attribute:stack == it's\"(x)",
            "attribute:stack == prod extra",
            "attribute:stack == prod)",
            "(attribute:stack == prod",
            "(attribute:stack == prod garbage",
            "attribute:stack == prod and",
            "attribute:stack == prod & runningTasksCount == 1",
            "not",
            "()",
            "attribute:a == 1 or or attribute:b == 2",
        ],
        expect![[r#"

            ^ at column 1: empty expression
            attribute:stack == 'prod
                               ^ at column 20: unterminated quote: ' is not closed
            attribute:stack == "prod' and x
                               ^ at column 20: unterminated quote: " is not closed
            attribute:az in [a, b
                            ^ at column 17: unterminated list: `[` is not closed
            attribute:az in [a, 'b
                                ^ at column 21: unterminated quote: ' is not closed
            attribute:az in [a b]
                               ^ at column 20: expected `,` or `]` in the list, found `b`
            attribute:az in [a, ]
                                ^ at column 21: expected a value after `,`, found `]`
            attribute:az in []
                            ^ at column 17: empty list; `in` needs at least one value
            attribute:az in a
                            ^ at column 17: `in` takes a list such as [a, b], found `a`
            attribute:az == [a]
                            ^ at column 17: `==` takes a single value; lists go with `in` and `!in`
            hostname == web-1
            ^ at column 1: unknown subject `hostname`; expected agentConnected, agentVersion, attribute:<name>, ec2InstanceId, instanceId, registeredAt, runningTasksCount or task:group
            AgentConnected == true
            ^ at column 1: unknown subject `AgentConnected`; did you mean `agentConnected`?
            Attribute:stack == prod
            ^ at column 1: unknown subject `Attribute:stack`; did you mean `attribute:stack`?
            attribute: == prod
                      ^ at column 11: attribute name missing after `attribute:`
            attribute:st@ck == prod
                        ^ at column 13: `@` cannot appear in an attribute name, which may contain letters, digits, `-`, `_`, `.`, `/` and `\`
            attribute:stack => prod
                            ^ at column 17: unknown operator `=>` after `attribute:stack`; expected ==, !=, >, >=, <, <=, exists, !exists, in, !in, =~ or !~ (or a word form such as not_equals)
            attribute:stack = prod
                            ^ at column 17: unknown operator `=` after `attribute:stack`; expected ==, !=, >, >=, <, <=, exists, !exists, in, !in, =~ or !~ (or a word form such as not_equals)
            attribute:stack likes prod
                            ^ at column 17: unknown operator `likes` after `attribute:stack`; expected ==, !=, >, >=, <, <=, exists, !exists, in, !in, =~ or !~ (or a word form such as not_equals)
            attribute:stack
                           ^ at column 16: expected an operator after `attribute:stack`, found the end of the expression
            attribute:stack 'prod'
                            ^ at column 17: found `'prod'` after `attribute:stack`; expected ==, !=, >, >=, <, <=, exists, !exists, in, !in, =~ or !~ (or a word form such as not_equals)
            attribute:stack ==
                              ^ at column 19: expected a value after `==`, found the end of the expression
            attribute:stack == )
                               ^ at column 20: expected a value after `==`, found `)`
            attribute:stack exists prod
                                   ^ at column 24: `exists` takes no value, found `prod`
            attribute:stack =~ 't2.(small'
                                   ^ at column 24: invalid regular expression `t2.(small`: unclosed group
            attribute:stack =~ a{2,1}
                                ^ at column 21: invalid regular expression `a{2,1}`: invalid repetition count range, the start must be <= the end
            attribute:stack =~ t2.(small
                                  ^ at column 23: invalid regular expression `t2.(small`: unclosed group
            attribute:stack =~ (?<n>a)(?<n>b)
                                         ^ at column 30: invalid regular expression `(?<n>a)(?<n>b)`: duplicate capture group name
            attribute:stack =~ '(a)\1'
                                   ^ at column 24: invalid regular expression `(a)\1`: backreferences are not supported
            attribute:stack =~ '(?=a)'
                                ^ at column 21: invalid regular expression `(?=a)`: look-around, including look-ahead and look-behind, is not supported
            attribute:stack =~ 'a*+'
                                  ^ at column 23: invalid regular expression `a*+`: a quantifier directly after another (Java's possessive `a*+`) is not supported; write `(?:a*)+` for a repetition of a repetition
            attribute:stack =~ '(?>a)'
                                  ^ at column 23: invalid regular expression `(?>a)`: unrecognized flag
            attribute:stack =~ '\Qa.b\E'
                                ^ at column 21: invalid regular expression `\Qa.b\E`: unrecognized escape sequence
            attribute:stack =~ '\p{javaLowerCase}'
                                ^ at column 21: invalid regular expression `\p{javaLowerCase}`: Unicode property not found
            registeredAt < 2018-13-01
                           ^ at column 16: invalid date `2018-13-01`; expected 2018-06-18, 2018-06-18T22:28:28, 2018-06-18T22:28:28Z or 2018-06-18T22:28:28+00:00
            registeredAt < 2018-02-13T25:00:00Z
                           ^ at column 16: invalid date `2018-02-13T25:00:00Z`; expected 2018-06-18, 2018-06-18T22:28:28, 2018-06-18T22:28:28Z or 2018-06-18T22:28:28+00:00
            registeredAt < yesterday
                           ^ at column 16: invalid date `yesterday`; expected 2018-06-18, 2018-06-18T22:28:28, 2018-06-18T22:28:28Z or 2018-06-18T22:28:28+00:00
            agentVersion < 1.x
                           ^ at column 16: invalid version `1.x`; expected numbers separated by dots such as 1.14.5
            agentConnected == yes
                              ^ at column 19: agentConnected is `true` or `false`, found `yes`
            runningTasksCount > -1
                                ^ at column 21: runningTasksCount compares with a whole number from 0 to 4294967295, found `-1`
            runningTasksCount > 99999999999
                                ^ at column 21: runningTasksCount compares with a whole number from 0 to 4294967295, found `99999999999`
            runningTasksCount =~ 1
                              ^ at column 19: `=~` does not apply to runningTasksCount, which takes ==, !=, >, >=, <, <=
            ec2InstanceId > i-1
                          ^ at column 15: `>` does not apply to ec2InstanceId, which takes ==, !=, in, !in, =~, !~
            task:group =~ service:.*
                       ^ at column 12: `=~` does not apply to task:group, which takes ==, !=, in, !in
            registeredAt in [2018-01-01]
                         ^ at column 14: `in` does not apply to registeredAt, which takes ==, !=, >, >=, <, <=
            attribute:stack == it's"(x)
                               ^ at column 20: a value cannot contain both ' and ", found `it's"(x)`
            attribute:stack == prod extra
                                    ^ at column 25: expected `and`, `or` or the end of the expression, found `extra`
            attribute:stack == prod)
                                   ^ at column 24: unmatched `)`
            (attribute:stack == prod
            ^ at column 1: `(` is not closed
            (attribute:stack == prod garbage
                                     ^ at column 26: expected `)`, `and` or `or`, found `garbage`
            attribute:stack == prod and
                                       ^ at column 28: expected a subject, found the end of the expression
            attribute:stack == prod & runningTasksCount == 1
                                    ^ at column 25: found `&`; did you mean `&&`?
            not
               ^ at column 4: expected a subject, found the end of the expression
            ()
             ^ at column 2: expected a subject, found `)`
            attribute:a == 1 or or attribute:b == 2
                                ^ at column 21: expected a subject, found `or`
        "#]],
    );
}

#[test]
fn blank_is_empty() {
    // Whitespace-only lines do not survive in a snapshot, so this one is asserted here.
    assert_eq!(
        parse(" \t\n ").unwrap_err().to_string(),
        "at column 1: empty expression"
    );
}

#[test]
fn limits() {
    let long = format!("attribute:a == {}", "x".repeat(MAX_LEN));
    let err = parse(&long).unwrap_err();
    assert_eq!(
        err.to_string(),
        "at column 2001: expression is longer than 2000 characters"
    );

    let deep = format!(
        "{}attribute:a exists{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    let err = parse(&deep).unwrap_err();
    assert_eq!(
        (err.pos, err.message.as_str()),
        (MAX_DEPTH, "expression nested more than 100 levels deep")
    );
    let ok = format!(
        "{}attribute:a exists{}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    assert!(parse(&ok).is_ok());

    let nots = format!("{}attribute:a exists", "!".repeat(MAX_DEPTH + 1));
    assert_eq!(parse(&nots).unwrap_err().pos, MAX_DEPTH);

    // A regex whose compiled form is too large is refused rather than slowing placement.
    let err = parse("attribute:a =~ '((a{100}){100}){100}'").unwrap_err();
    assert_eq!(err.pos, 16, "{err}");
    assert!(err.message.ends_with("it is too large"), "{err}");
}

#[test]
fn subjects_drive_caching() {
    let expr = parse(
        "attribute:b == 1 and (attribute:a exists or not attribute:b in [2]) and attribute:c =~ x",
    )
    .unwrap();
    assert_eq!(expr.attribute_names().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(expr.depends_only_on_attributes());

    let expr = parse("attribute:b == 1 or task:group == web or runningTasksCount < 2").unwrap();
    assert_eq!(
        expr.subjects(),
        [
            Subject::Attribute("b".into()),
            Subject::RunningTasksCount,
            Subject::TaskGroup
        ]
    );
    assert_eq!(expr.attribute_names().collect::<Vec<_>>(), ["b"]);
    assert!(!expr.depends_only_on_attributes());
    assert!(!parse("instanceId == x")
        .unwrap()
        .depends_only_on_attributes());
}

/// A tiny deterministic generator, so a failure names a reproducible input.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Mutates every table input thousands of times: parsing never panics, errors point inside
/// the input, and whatever parses evaluates and round-trips through its canonical form.
#[test]
fn mutated_inputs_never_panic() {
    const PIECES: &[&str] = &[
        "(",
        ")",
        "[",
        "]",
        ",",
        "'",
        "\"",
        "!",
        "=",
        "~",
        "<",
        ">",
        "&&",
        "||",
        "&",
        "|",
        " ",
        "\t",
        "and",
        "or",
        "not",
        "in",
        "!in",
        "exists",
        "==",
        "=~",
        "!~",
        "attribute:",
        "task:group",
        "registeredAt",
        "agentVersion",
        "runningTasksCount",
        "1",
        "-",
        ".",
        "*",
        "\\",
        "é",
        "ß",
        "\u{1F600}",
        "\u{0}",
        "2018-02-13",
        "T",
        "Z",
        "+01:00",
        "{",
        "}",
        "?",
        "(?x)#",
        "$",
        "^",
    ];
    let seeds: Vec<&str> = EVAL_CASES.iter().map(|(src, ..)| *src).collect();
    let (busy, idle) = (busy(), idle());
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let (mut parsed, mut failed) = (0, 0);
    for round in 0..30_000 {
        let mut chars: Vec<char> = seeds[round % seeds.len()].chars().collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(chars.len() + 1);
            match rng.below(4) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 => {
                    let piece = PIECES[rng.below(PIECES.len())];
                    chars.splice(at..at, piece.chars());
                }
                2 if !chars.is_empty() => {
                    let from = rng.below(chars.len());
                    let len = rng.below(chars.len() - from + 1);
                    let copy: Vec<char> = chars[from..from + len].to_vec();
                    chars.splice(at..at, copy);
                }
                _ => chars.truncate(at),
            }
        }
        let src: String = chars.iter().collect();
        match parse(&src) {
            Ok(expr) => {
                parsed += 1;
                let got = (expr.eval(&busy), expr.eval(&idle));
                let canonical = expr.to_string();
                let again = parse(&canonical)
                    .unwrap_or_else(|e| panic!("{src:?} => {canonical:?} does not parse: {e}"));
                assert_eq!(again.to_string(), canonical, "{src:?}");
                assert_eq!((again.eval(&busy), again.eval(&idle)), got, "{src:?}");
            }
            Err(err) => {
                failed += 1;
                assert!(err.pos <= src.chars().count(), "{src:?}: {err}");
                assert!(!err.message.is_empty());
            }
        }
    }
    // Both paths were exercised.
    assert!(
        parsed > 1_000 && failed > 1_000,
        "parsed {parsed}, failed {failed}"
    );
}
