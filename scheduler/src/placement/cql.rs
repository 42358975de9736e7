//! ECS's Cluster Query Language: the expressions of `memberOf` placement constraints.
//!
//! [`parse`] turns a source string into a validated [`Expr`] (regexes compiled, dates, versions
//! and counts parsed, every operator checked against its subject) or a [`CqlError`] that names
//! the column and the offending token. [`Expr::eval`] then answers, for one container instance
//! described by [`Facts`], whether it is a member. Nothing here does I/O, and no input panics.
//!
//! ```text
//! expr       = or
//! or         = and { ("||" | "or") and }
//! and        = unary { ("&&" | "and") unary }
//! unary      = ("!" | "not") unary | "(" expr ")" | comparison
//! comparison = subject operator [value | "[" value { "," value } "]"]
//! value      = 'single quoted' | "double quoted" | bare
//! ```
//!
//! The decisions, each following ECS where ECS documents one (`docs/cql.md` has the full table):
//!
//! - **Subjects** are case-sensitive as ECS spells them: `agentConnected`, `agentVersion`,
//!   `attribute:<name>`, `ec2InstanceId`, `instanceId` (Berth's own id), `registeredAt`,
//!   `runningTasksCount`, `task:group`. Each takes the operators ECS lists for it; any other
//!   pairing is a parse error. Keywords (`and`, `or`, `not`) and word operators (`equals`,
//!   `not_in`, ...) are case-insensitive.
//! - **Precedence**: `not` binds tighter than `and`, which binds tighter than `or`; both binary
//!   operators associate to the left; parentheses group.
//! - **Values** are quoted with `'` or `"`, or bare: up to whitespace, `&&`, `||` or a `)`
//!   closing no `(` of the value (in a list also `,` and `]`), so `t2.(small|medium)` needs no
//!   quotes. There are no escapes: a value containing one kind of quote is written in the other,
//!   and no value contains both.
//! - **A missing attribute** makes every comparison false, `!=`, `!in` and `!~` included (ECS:
//!   `attribute:stack != prod` lists "the instances with the attribute stack unless the value is
//!   prod"); only `!exists` is true. An attribute present without a value compares as `""`. An
//!   empty `ec2InstanceId` (a host outside EC2) counts as missing in the same way.
//! - **`==` is exact string equality** (no wildcards; use `=~`). `>`, `>=`, `<`, `<=` on an
//!   attribute compare as decimal numbers when both sides are numbers (`-?digits[.digits]`,
//!   exactly, without floating point), else as strings, byte by byte.
//! - **`agentVersion`** compares dotted numbers component by component (`1.9 < 1.14`, missing
//!   components are zero); the instance's version may carry a suffix (`0.1.0-dev`), ignored.
//! - **`registeredAt`** takes `2018-06-18`, `2018-06-18T22:28:28` (UTC), `...Z` or
//!   `...+00:00`. The instance's time is truncated to the literal's precision (a UTC day, or a
//!   second) before comparing, so `registeredAt == 2018-06-18` holds all that day and
//!   `registeredAt > 2018-06-18` means from the next day on.
//! - **`task:group`** asks about the groups of the tasks on the instance: `== g` holds when some
//!   task there is in group `g`, `!= g` when none is (anti-affinity, the same as
//!   `not(task:group == g)`), `in [a, b]` when some task is in one of them, `!in` when none is.
//! - **Regexes** (`=~`, `!~`) must match the whole value, as Java's `Matcher.matches()` does.
//!   They are Rust's `regex`, not `java.util.regex`: no backreferences, lookaround, atomic
//!   groups or possessive quantifiers (`a*+` is rejected rather than read as `(?:a*)+`), `\w`,
//!   `\d`, `\s` are Unicode-aware, and `(?U)` swaps greediness; in exchange matching is linear
//!   in the input.
//! - Expressions are at most [`MAX_LEN`] characters, like ECS's, and nest at most
//!   [`MAX_DEPTH`] levels.

use std::cmp::Ordering;
use std::fmt;

use regex::{Regex, RegexBuilder};
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

#[cfg(test)]
mod tests;

/// The longest expression accepted, in characters (ECS's limit for a constraint's expression).
pub const MAX_LEN: usize = 2000;
/// The deepest nesting of parentheses and negations accepted.
pub const MAX_DEPTH: usize = 100;
/// The compiled size limit of one regex, so a query cannot make placement slow.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The longest attribute name ECS accepts.
const MAX_ATTRIBUTE_NAME: usize = 128;

/// What an instance offers to a query. Implementations read memory only.
pub trait Facts {
    /// The value of attribute `name`; `Some("")` when it is present without a value.
    fn attribute(&self, name: &str) -> Option<&str>;
    fn agent_connected(&self) -> bool;
    fn agent_version(&self) -> &str;
    /// Berth's container instance id.
    fn instance_id(&self) -> &str;
    /// The EC2 instance id, or `""` for a host outside EC2.
    fn ec2_instance_id(&self) -> &str;
    fn registered_at(&self) -> OffsetDateTime;
    fn running_tasks_count(&self) -> u32;
    /// Whether a task of `group` is placed on the instance.
    fn has_task_group(&self, group: &str) -> bool;
}

/// A parse error: where (a 0-based character offset into the source) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {}: {message}", .pos + 1)]
pub struct CqlError {
    pub pos: usize,
    pub message: String,
}

impl CqlError {
    fn new(pos: usize, message: impl Into<String>) -> Self {
        Self {
            pos,
            message: message.into(),
        }
    }
}

/// What an expression reads about an instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    AgentConnected,
    AgentVersion,
    Attribute(String),
    Ec2InstanceId,
    InstanceId,
    RegisteredAt,
    RunningTasksCount,
    TaskGroup,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::AgentConnected => f.write_str("agentConnected"),
            Subject::AgentVersion => f.write_str("agentVersion"),
            Subject::Attribute(name) => write!(f, "attribute:{name}"),
            Subject::Ec2InstanceId => f.write_str("ec2InstanceId"),
            Subject::InstanceId => f.write_str("instanceId"),
            Subject::RegisteredAt => f.write_str("registeredAt"),
            Subject::RunningTasksCount => f.write_str("runningTasksCount"),
            Subject::TaskGroup => f.write_str("task:group"),
        }
    }
}

/// The fixed subjects, by their spelling.
const NAMED_SUBJECTS: [(&str, Subject); 7] = [
    ("agentConnected", Subject::AgentConnected),
    ("agentVersion", Subject::AgentVersion),
    ("ec2InstanceId", Subject::Ec2InstanceId),
    ("instanceId", Subject::InstanceId),
    ("registeredAt", Subject::RegisteredAt),
    ("runningTasksCount", Subject::RunningTasksCount),
    ("task:group", Subject::TaskGroup),
];
const ATTRIBUTE_PREFIX: &str = "attribute:";
const SUBJECT_LIST: &str = "agentConnected, agentVersion, attribute:<name>, ec2InstanceId, \
                            instanceId, registeredAt, runningTasksCount or task:group";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

/// Every operator with its symbol and its word form.
const OPS: [(Op, &str, &str); 12] = [
    (Op::Eq, "==", "equals"),
    (Op::Ne, "!=", "not_equals"),
    (Op::Gt, ">", "greater_than"),
    (Op::Ge, ">=", "greater_than_equal"),
    (Op::Lt, "<", "less_than"),
    (Op::Le, "<=", "less_than_equal"),
    (Op::Exists, "exists", "exists"),
    (Op::NotExists, "!exists", "not_exists"),
    (Op::In, "in", "in"),
    (Op::NotIn, "!in", "not_in"),
    (Op::Matches, "=~", "matches"),
    (Op::NotMatches, "!~", "not_matches"),
];

/// The operators ECS lists for the text-like subjects.
const TEXT_OPS: &[Op] = &[
    Op::Eq,
    Op::Ne,
    Op::In,
    Op::NotIn,
    Op::Matches,
    Op::NotMatches,
];
/// The operators ECS lists for the ordered subjects.
const ORDER_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le];
/// `task:group` (ECS lists none; Berth answers membership questions).
const GROUP_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::In, Op::NotIn];

impl Op {
    fn symbol(self) -> &'static str {
        OPS.iter()
            .find(|(op, ..)| *op == self)
            .map_or("?", |(_, sym, _)| sym)
    }

    /// Reads a symbol (`==`, `!in`) or a word form (`not_equals`, any case).
    fn from_token(token: &str) -> Option<Op> {
        let lower = token.to_ascii_lowercase();
        OPS.iter()
            .find(|(_, sym, word)| *sym == lower || *word == lower)
            .map(|(op, ..)| *op)
    }

    fn valid_for(subject: &Subject) -> &'static [Op] {
        match subject {
            Subject::Attribute(_) => &[
                Op::Eq,
                Op::Ne,
                Op::Gt,
                Op::Ge,
                Op::Lt,
                Op::Le,
                Op::Exists,
                Op::NotExists,
                Op::In,
                Op::NotIn,
                Op::Matches,
                Op::NotMatches,
            ],
            Subject::AgentConnected | Subject::Ec2InstanceId | Subject::InstanceId => TEXT_OPS,
            Subject::AgentVersion | Subject::RegisteredAt | Subject::RunningTasksCount => ORDER_OPS,
            Subject::TaskGroup => GROUP_OPS,
        }
    }

    /// Whether `ordering` (the instance's value against the argument) satisfies `self`.
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Op::Eq => ordering.is_eq(),
            Op::Ne => ordering.is_ne(),
            Op::Gt => ordering.is_gt(),
            Op::Ge => ordering.is_ge(),
            Op::Lt => ordering.is_lt(),
            Op::Le => ordering.is_le(),
            _ => false,
        }
    }
}

/// A parsed, validated expression. Parse it once; evaluate it against many instances.
#[derive(Debug, Clone)]
pub struct Expr {
    root: Node,
    /// Sorted, without duplicates.
    subjects: Vec<Subject>,
}

#[derive(Debug, Clone)]
enum Node {
    Test(Test),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

#[derive(Debug, Clone)]
struct Test {
    subject: Subject,
    op: Op,
    arg: Arg,
}

/// An operator's argument, already converted to what its subject compares with.
#[derive(Debug, Clone)]
enum Arg {
    None,
    Text(String),
    List(Vec<String>),
    Pattern { source: String, regex: Regex },
    Count(u32),
    Version { source: String, version: Version },
    Date { source: String, date: DateLit },
}

/// Parses a Cluster Query Language expression.
pub fn parse(src: &str) -> Result<Expr, CqlError> {
    if src.chars().nth(MAX_LEN).is_some() {
        return Err(CqlError::new(
            MAX_LEN,
            format!("expression is longer than {MAX_LEN} characters"),
        ));
    }
    let mut parser = Parser {
        chars: src.chars().collect(),
        pos: 0,
        depth: 0,
        subjects: Vec::new(),
    };
    if parser.chars.iter().all(|c| c.is_whitespace()) {
        return Err(CqlError::new(0, "empty expression"));
    }
    let root = parser.or()?;
    parser.skip_ws();
    if parser.pos < parser.chars.len() {
        let what = parser.describe(parser.pos);
        let message = match parser.peek() {
            Some(')') => "unmatched `)`".to_string(),
            Some(c @ ('&' | '|')) => format!("found `{c}`; did you mean `{c}{c}`?"),
            _ => format!("expected `and`, `or` or the end of the expression, found {what}"),
        };
        return Err(CqlError::new(parser.pos, message));
    }
    let mut subjects = parser.subjects;
    subjects.sort();
    subjects.dedup();
    Ok(Expr { root, subjects })
}

impl std::str::FromStr for Expr {
    type Err = CqlError;

    fn from_str(src: &str) -> Result<Self, Self::Err> {
        parse(src)
    }
}

impl Expr {
    /// Whether the instance described by `facts` satisfies the expression.
    pub fn eval<F: Facts + ?Sized>(&self, facts: &F) -> bool {
        self.root.eval(facts)
    }

    /// Everything the expression reads, sorted, each once.
    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    /// The names of the attributes the expression reads, sorted, each once.
    pub fn attribute_names(&self) -> impl Iterator<Item = &str> {
        self.subjects.iter().filter_map(|s| match s {
            Subject::Attribute(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// True when the expression reads attributes only, so its answer is a function of an
    /// instance's values for [`Expr::attribute_names`] and can be cached per such class.
    pub fn depends_only_on_attributes(&self) -> bool {
        self.subjects
            .iter()
            .all(|s| matches!(s, Subject::Attribute(_)))
    }
}

/// The canonical form: symbolic operators, every `and`/`or` parenthesized, values quoted only
/// where needed. It parses back to the same expression.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Test(test) => test.fmt(f),
            Node::Not(inner) => write!(f, "!({inner})"),
            Node::And(l, r) => write!(f, "({l} && {r})"),
            Node::Or(l, r) => write!(f, "({l} || {r})"),
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.subject, self.op.symbol())?;
        match &self.arg {
            Arg::None => Ok(()),
            Arg::Text(value) => write!(f, " {}", Quoted(value)),
            Arg::List(values) => {
                f.write_str(" [")?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    Quoted(value).fmt(f)?;
                }
                f.write_str("]")
            }
            Arg::Pattern { source, .. }
            | Arg::Version { source, .. }
            | Arg::Date { source, .. } => write!(f, " {}", Quoted(source)),
            Arg::Count(n) => write!(f, " {n}"),
        }
    }
}

/// A value as it must be written to read back the same: bare where it can be.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let bare = !s.is_empty()
            && !s.starts_with(['\'', '"'])
            && !s.chars().any(|c| c.is_whitespace() || is_delimiter(c))
            && !s.contains("&&")
            && !s.contains("||");
        if bare {
            f.write_str(s)
        } else if s.contains('\'') {
            write!(f, "\"{s}\"")
        } else {
            write!(f, "'{s}'")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

impl Node {
    fn eval<F: Facts + ?Sized>(&self, facts: &F) -> bool {
        match self {
            Node::Test(test) => test.eval(facts),
            Node::Not(inner) => !inner.eval(facts),
            Node::And(l, r) => l.eval(facts) && r.eval(facts),
            Node::Or(l, r) => l.eval(facts) || r.eval(facts),
        }
    }
}

impl Test {
    fn eval<F: Facts + ?Sized>(&self, facts: &F) -> bool {
        let op = self.op;
        match (&self.subject, &self.arg) {
            (Subject::Attribute(name), arg) => match (facts.attribute(name), op) {
                (None, _) => op == Op::NotExists,
                (Some(_), Op::Exists) => true,
                (Some(_), Op::NotExists) => false,
                (Some(value), _) => compare_text(value, op, arg),
            },
            (Subject::AgentConnected, arg) => compare_text(
                if facts.agent_connected() {
                    "true"
                } else {
                    "false"
                },
                op,
                arg,
            ),
            (Subject::InstanceId, arg) => compare_text(facts.instance_id(), op, arg),
            (Subject::Ec2InstanceId, arg) => {
                let id = facts.ec2_instance_id();
                !id.is_empty() && compare_text(id, op, arg)
            }
            (Subject::AgentVersion, Arg::Version { version, .. }) => {
                Version::parse_prefix(facts.agent_version())
                    .is_some_and(|have| op.holds(have.compare(version)))
            }
            (Subject::RegisteredAt, Arg::Date { date, .. }) => {
                op.holds(date.place(facts.registered_at()))
            }
            (Subject::RunningTasksCount, Arg::Count(n)) => {
                op.holds(facts.running_tasks_count().cmp(n))
            }
            (Subject::TaskGroup, Arg::Text(group)) => match op {
                Op::Eq => facts.has_task_group(group),
                Op::Ne => !facts.has_task_group(group),
                _ => false,
            },
            (Subject::TaskGroup, Arg::List(groups)) => {
                let any = groups.iter().any(|g| facts.has_task_group(g));
                match op {
                    Op::In => any,
                    Op::NotIn => !any,
                    _ => false,
                }
            }
            // `parse` never pairs these subjects with another kind of argument.
            (Subject::AgentVersion | Subject::RegisteredAt, _)
            | (Subject::RunningTasksCount | Subject::TaskGroup, _) => false,
        }
    }
}

/// A string-valued subject against its argument.
fn compare_text(value: &str, op: Op, arg: &Arg) -> bool {
    match (op, arg) {
        (Op::Eq, Arg::Text(want)) => value == want,
        (Op::Ne, Arg::Text(want)) => value != want,
        (Op::Gt | Op::Ge | Op::Lt | Op::Le, Arg::Text(want)) => {
            let ordering = match (Decimal::parse(value), Decimal::parse(want)) {
                (Some(a), Some(b)) => a.compare(&b),
                _ => value.cmp(want.as_str()),
            };
            op.holds(ordering)
        }
        (Op::In, Arg::List(values)) => values.iter().any(|v| v == value),
        (Op::NotIn, Arg::List(values)) => !values.iter().any(|v| v == value),
        (Op::Matches, Arg::Pattern { regex, .. }) => regex.is_match(value),
        (Op::NotMatches, Arg::Pattern { regex, .. }) => !regex.is_match(value),
        _ => false,
    }
}

/// A decimal number `-?digits[.digits]`, compared exactly.
struct Decimal<'a> {
    negative: bool,
    /// Without leading zeros.
    int: &'a str,
    /// Without trailing zeros.
    frac: &'a str,
}

impl<'a> Decimal<'a> {
    fn parse(s: &'a str) -> Option<Self> {
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match digits.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (digits, None),
        };
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
            return None;
        }
        let int = int.trim_start_matches('0');
        let frac = frac.unwrap_or("").trim_end_matches('0');
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Some(Decimal {
            negative,
            int,
            frac,
        })
    }

    fn compare(&self, other: &Decimal<'_>) -> Ordering {
        let magnitude = || {
            self.int
                .len()
                .cmp(&other.int.len())
                .then_with(|| self.int.cmp(other.int))
                .then_with(|| self.frac.cmp(other.frac))
        };
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => magnitude(),
            (true, true) => magnitude().reverse(),
        }
    }
}

/// A dotted version, compared component by component; missing components are zero.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version(Vec<u64>);

impl Version {
    /// A literal in an expression: numbers separated by dots, nothing else.
    fn parse(s: &str) -> Option<Self> {
        s.split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                part.parse().ok()
            })
            .collect::<Option<Vec<u64>>>()
            .map(Version)
    }

    /// An instance's version: an optional `v`, then the dotted numbers; any suffix such as
    /// `-dev` or `+abc` is ignored.
    fn parse_prefix(s: &str) -> Option<Self> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        Version::parse(s[..end].trim_end_matches('.'))
    }

    fn compare(&self, other: &Version) -> Ordering {
        let len = self.0.len().max(other.0.len());
        (0..len)
            .map(|i| {
                let a = self.0.get(i).copied().unwrap_or(0);
                let b = other.0.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

/// A `registeredAt` literal, with its precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateLit {
    /// A UTC day, as days since 1970-01-01.
    Day(i64),
    /// A second, as a Unix timestamp.
    Second(i64),
}

const DATE_FORMATS: &str =
    "2018-06-18, 2018-06-18T22:28:28, 2018-06-18T22:28:28Z or 2018-06-18T22:28:28+00:00";
const SECONDS_PER_DAY: i64 = 86_400;

impl DateLit {
    fn parse(s: &str) -> Option<Self> {
        const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;
        if shaped(s, "dddd-dd-dd") {
            let date = Date::parse(s, format_description!("[year]-[month]-[day]")).ok()?;
            return Some(DateLit::Day(
                i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY,
            ));
        }
        let body = s.get(..19).filter(|b| shaped(b, "dddd-dd-ddTdd:dd:dd"))?;
        let offset = match s.get(19..)? {
            "" | "Z" => UtcOffset::UTC,
            tail if shaped(tail, "+dd:dd") || shaped(tail, "-dd:dd") => UtcOffset::parse(
                tail,
                format_description!("[offset_hour sign:mandatory]:[offset_minute]"),
            )
            .ok()?,
            _ => return None,
        };
        let at = PrimitiveDateTime::parse(
            body,
            format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        )
        .ok()?;
        Some(DateLit::Second(at.assume_offset(offset).unix_timestamp()))
    }

    /// The instance's time, truncated to this literal's precision, against the literal.
    fn place(self, at: OffsetDateTime) -> Ordering {
        let seconds = at.unix_timestamp();
        match self {
            DateLit::Day(day) => seconds.div_euclid(SECONDS_PER_DAY).cmp(&day),
            DateLit::Second(second) => seconds.cmp(&second),
        }
    }
}

/// Whether `s` has `shape`, where `d` stands for an ASCII digit and anything else for itself.
fn shaped(s: &str, shape: &str) -> bool {
    s.len() == shape.len()
        && s.bytes().zip(shape.bytes()).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        })
}

fn compile_pattern(source: &str, at: usize) -> Result<Regex, CqlError> {
    use regex_syntax::ast::{self, Ast};

    let fail = |offset: usize, message: String| {
        let column = source.get(..offset).map_or(0, |s| s.chars().count());
        CqlError::new(
            at + column,
            format!("invalid regular expression `{source}`: {message}"),
        )
    };
    let ast = ast::parse::Parser::new()
        .parse(source)
        .map_err(|e| fail(e.span().start.offset, e.kind().to_string()))?;

    /// Finds a repetition applied directly to a repetition: Java reads `a*+` as a possessive
    /// quantifier, Rust as `(?:a*)+`, so the same text would silently mean something else.
    struct StackedRepetition;
    impl ast::Visitor for StackedRepetition {
        type Output = ();
        type Err = ast::Span;
        fn finish(self) -> Result<(), ast::Span> {
            Ok(())
        }
        fn visit_pre(&mut self, ast: &Ast) -> Result<(), ast::Span> {
            match ast {
                Ast::Repetition(rep) if matches!(*rep.ast, Ast::Repetition(_)) => Err(rep.op.span),
                _ => Ok(()),
            }
        }
    }
    ast::visit(&ast, StackedRepetition).map_err(|span| {
        fail(
            span.start.offset,
            "a quantifier directly after another (Java's possessive `a*+`) is not supported; \
             write `(?:a*)+` for a repetition of a repetition"
                .to_string(),
        )
    })?;
    let hir = regex_syntax::hir::translate::Translator::new()
        .translate(source, &ast)
        .map_err(|e| fail(e.span().start.offset, e.kind().to_string()))?;
    // Anchor the parsed form, not the source text: a `(?x)` comment in the source would
    // swallow a textual `)$`. The printed HIR has no comments and parses to the same regex.
    RegexBuilder::new(&format!("^(?:{hir})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|err| {
            let message = match err {
                regex::Error::CompiledTooBig(_) => "it is too large".to_string(),
                other => other.to_string(),
            };
            CqlError::new(
                at,
                format!("invalid regular expression `{source}`: {message}"),
            )
        })
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// The grammar's punctuation: grouping and lists.
fn is_delimiter(c: char) -> bool {
    matches!(c, '(' | ')' | '[' | ']' | ',')
}

/// Characters that make up symbolic operators.
fn is_operator_char(c: char) -> bool {
    matches!(c, '=' | '!' | '<' | '>' | '~')
}

/// Characters that end a word (a subject, keyword or word operator).
fn ends_word(c: char) -> bool {
    c.is_whitespace()
        || is_delimiter(c)
        || is_operator_char(c)
        || matches!(c, '&' | '|' | '\'' | '"')
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    subjects: Vec<Subject>,
}

/// A value as written: its text and where that text starts.
struct Value {
    text: String,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at(&self, pos: usize, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.chars.get(pos + i) == Some(&c))
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.chars[from..to].iter().collect()
    }

    fn word_end(&self, from: usize) -> usize {
        let mut end = from;
        while self.chars.get(end).is_some_and(|&c| !ends_word(c)) {
            end += 1;
        }
        end
    }

    /// Whether the word at the cursor is `keyword`, in any case.
    fn at_keyword(&self, keyword: &str) -> bool {
        let end = self.word_end(self.pos);
        self.text(self.pos, end).eq_ignore_ascii_case(keyword)
    }

    /// Names what is at `pos` for an error message.
    fn describe(&self, pos: usize) -> String {
        const MAX_SHOWN: usize = 24;
        let Some(&first) = self.chars.get(pos) else {
            return "the end of the expression".to_string();
        };
        if self.at(pos, "&&") || self.at(pos, "||") {
            return format!("`{}`", self.text(pos, pos + 2));
        }
        if is_delimiter(first) {
            return format!("`{first}`");
        }
        let mut end = pos + 1;
        while self
            .chars
            .get(end)
            .is_some_and(|&c| !c.is_whitespace() && !is_delimiter(c))
        {
            end += 1;
        }
        if end - pos > MAX_SHOWN {
            format!("`{}…`", self.text(pos, pos + MAX_SHOWN))
        } else {
            format!("`{}`", self.text(pos, end))
        }
    }

    fn nest(&mut self, pos: usize) -> Result<(), CqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CqlError::new(
                pos,
                format!("expression nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Node, CqlError> {
        let mut node = self.and()?;
        loop {
            self.skip_ws();
            // `||` and `or` are both two characters long.
            if self.at(self.pos, "||") || self.at_keyword("or") {
                self.pos += 2;
            } else {
                return Ok(node);
            }
            let rhs = self.and()?;
            node = Node::Or(Box::new(node), Box::new(rhs));
        }
    }

    fn and(&mut self) -> Result<Node, CqlError> {
        let mut node = self.unary()?;
        loop {
            self.skip_ws();
            if self.at(self.pos, "&&") {
                self.pos += 2;
            } else if self.at_keyword("and") {
                self.pos += 3;
            } else {
                return Ok(node);
            }
            let rhs = self.unary()?;
            node = Node::And(Box::new(node), Box::new(rhs));
        }
    }

    fn unary(&mut self) -> Result<Node, CqlError> {
        self.skip_ws();
        let start = self.pos;
        let negated = if self.peek() == Some('!') {
            self.pos += 1;
            true
        } else if self.at_keyword("not") {
            self.pos += 3;
            true
        } else {
            false
        };
        if negated {
            self.nest(start)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        if self.peek() == Some('(') {
            self.nest(start)?;
            self.pos += 1;
            let inner = self.or()?;
            self.skip_ws();
            match self.peek() {
                Some(')') => self.pos += 1,
                None => return Err(CqlError::new(start, "`(` is not closed")),
                Some(_) => {
                    let what = self.describe(self.pos);
                    return Err(CqlError::new(
                        self.pos,
                        format!("expected `)`, `and` or `or`, found {what}"),
                    ));
                }
            }
            self.depth -= 1;
            return Ok(inner);
        }
        self.comparison().map(Node::Test)
    }

    fn comparison(&mut self) -> Result<Test, CqlError> {
        let start = self.pos;
        let end = self.word_end(start);
        if end == start {
            let what = self.describe(start);
            return Err(CqlError::new(
                start,
                format!("expected a subject, found {what}"),
            ));
        }
        let word = self.text(start, end);
        if ["and", "or"].iter().any(|k| word.eq_ignore_ascii_case(k)) {
            return Err(CqlError::new(
                start,
                format!("expected a subject, found `{word}`"),
            ));
        }
        let subject = subject(&word, start)?;
        self.pos = end;
        self.skip_ws();
        let op = self.operator(&subject)?;
        let sym = op.symbol();
        let arg = match op {
            Op::Exists | Op::NotExists => {
                self.no_value(sym)?;
                Arg::None
            }
            Op::In | Op::NotIn => {
                let values = self.list(sym)?;
                let values = values
                    .into_iter()
                    .map(|v| text_arg(&subject, v))
                    .collect::<Result<Vec<_>, _>>()?;
                Arg::List(values)
            }
            Op::Matches | Op::NotMatches => {
                let value = self.value(sym, false)?;
                let regex = compile_pattern(&value.text, value.pos)?;
                Arg::Pattern {
                    source: value.text,
                    regex,
                }
            }
            Op::Eq | Op::Ne | Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                let value = self.value(sym, false)?;
                typed_arg(&subject, value)?
            }
        };
        self.subjects.push(subject.clone());
        Ok(Test { subject, op, arg })
    }

    fn operator(&mut self, subject: &Subject) -> Result<Op, CqlError> {
        let start = self.pos;
        let end = match self.peek() {
            None => {
                return Err(CqlError::new(
                    start,
                    format!(
                        "expected an operator after `{subject}`, found the end of the expression"
                    ),
                ))
            }
            Some(c) if is_operator_char(c) => {
                let mut end = start;
                while self.chars.get(end).is_some_and(|&c| is_operator_char(c)) {
                    end += 1;
                }
                // `!in`, `!exists`
                if end == start + 1 && self.chars.get(end).is_some_and(char::is_ascii_alphabetic) {
                    end = self.word_end(end);
                }
                end
            }
            Some(c) if c.is_alphabetic() => self.word_end(start),
            Some(_) => start,
        };
        let token = self.text(start, end);
        let Some(op) = Op::from_token(&token).filter(|_| end > start) else {
            let what = if end > start {
                format!("unknown operator `{token}`")
            } else {
                format!("found {}", self.describe(start))
            };
            return Err(CqlError::new(
                start,
                format!(
                    "{what} after `{subject}`; expected ==, !=, >, >=, <, <=, exists, !exists, \
                     in, !in, =~ or !~ (or a word form such as not_equals)"
                ),
            ));
        };
        let valid = Op::valid_for(subject);
        if !valid.contains(&op) {
            let list: Vec<&str> = valid.iter().map(|op| op.symbol()).collect();
            return Err(CqlError::new(
                start,
                format!(
                    "`{token}` does not apply to {subject}, which takes {}",
                    list.join(", ")
                ),
            ));
        }
        self.pos = end;
        Ok(op)
    }

    /// After `exists`: nothing but the end, `)`, or `and`/`or`.
    fn no_value(&mut self, op: &str) -> Result<(), CqlError> {
        let save = self.pos;
        self.skip_ws();
        let fine = match self.peek() {
            None | Some(')') => true,
            Some(_) => {
                self.at(self.pos, "&&")
                    || self.at(self.pos, "||")
                    || self.at_keyword("and")
                    || self.at_keyword("or")
            }
        };
        if fine {
            self.pos = save;
            Ok(())
        } else {
            let what = self.describe(self.pos);
            Err(CqlError::new(
                self.pos,
                format!("`{op}` takes no value, found {what}"),
            ))
        }
    }

    /// One value, quoted or bare; `after` names what precedes it, for errors.
    fn value(&mut self, after: &str, in_list: bool) -> Result<Value, CqlError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            None => Err(CqlError::new(
                start,
                format!("expected a value after `{after}`, found the end of the expression"),
            )),
            Some(quote @ ('\'' | '"')) => {
                let Some(len) = self.chars[start + 1..].iter().position(|&c| c == quote) else {
                    return Err(CqlError::new(
                        start,
                        format!("unterminated quote: {quote} is not closed"),
                    ));
                };
                let close = start + 1 + len;
                self.pos = close + 1;
                Ok(Value {
                    text: self.text(start + 1, close),
                    pos: start + 1,
                })
            }
            Some('[') if !in_list => Err(CqlError::new(
                start,
                format!("`{after}` takes a single value; lists go with `in` and `!in`"),
            )),
            Some(_) => {
                let end = self.bare_end(start, in_list);
                if end == start {
                    let what = self.describe(start);
                    return Err(CqlError::new(
                        start,
                        format!("expected a value after `{after}`, found {what}"),
                    ));
                }
                // Without escapes, only a value free of one kind of quote can be written
                // quoted; keep every value writable so the canonical form always parses.
                let text = &self.chars[start..end];
                if text.contains(&'\'') && text.contains(&'"') {
                    return Err(CqlError::new(
                        start,
                        format!(
                            "a value cannot contain both ' and \", found `{}`",
                            self.text(start, end)
                        ),
                    ));
                }
                self.pos = end;
                Ok(Value {
                    text: self.text(start, end),
                    pos: start,
                })
            }
        }
    }

    /// Where a bare value starting at `start` ends: at whitespace, `&&`, `||`, a `)` that
    /// closes no `(` of the value's own, and in a list at `,` or `]`. Outside a list `[`, `]`
    /// and `,` are ordinary, so `i-[0-9a-f]{8}` and `t2.(small|medium)` need no quotes.
    fn bare_end(&self, start: usize, in_list: bool) -> usize {
        let mut end = start;
        let mut open = 0usize;
        while let Some(&c) = self.chars.get(end) {
            let stop = c.is_whitespace()
                || self.at(end, "&&")
                || self.at(end, "||")
                || (c == ')' && open == 0)
                || (in_list && matches!(c, ',' | ']' | '['));
            if stop {
                break;
            }
            match c {
                '(' => open += 1,
                ')' => open -= 1,
                _ => {}
            }
            end += 1;
        }
        end
    }

    /// `[a, b, ...]`, at least one value.
    fn list(&mut self, op: &str) -> Result<Vec<Value>, CqlError> {
        self.skip_ws();
        let open = self.pos;
        if self.peek() != Some('[') {
            let what = self.describe(open);
            return Err(CqlError::new(
                open,
                format!("`{op}` takes a list such as [a, b], found {what}"),
            ));
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(']') {
            return Err(CqlError::new(
                open,
                format!("empty list; `{op}` needs at least one value"),
            ));
        }
        let mut values = Vec::new();
        let mut after = "[";
        loop {
            self.skip_ws();
            if self.peek().is_none() {
                return Err(CqlError::new(open, "unterminated list: `[` is not closed"));
            }
            values.push(self.value(after, true)?);
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    after = ",";
                }
                Some(']') => {
                    self.pos += 1;
                    return Ok(values);
                }
                None => return Err(CqlError::new(open, "unterminated list: `[` is not closed")),
                Some(_) => {
                    let what = self.describe(self.pos);
                    return Err(CqlError::new(
                        self.pos,
                        format!("expected `,` or `]` in the list, found {what}"),
                    ));
                }
            }
        }
    }
}

/// Reads a subject; `word` starts at `pos`.
fn subject(word: &str, pos: usize) -> Result<Subject, CqlError> {
    if let Some((_, subject)) = NAMED_SUBJECTS.iter().find(|(name, _)| *name == word) {
        return Ok(subject.clone());
    }
    if let Some(name) = word.strip_prefix(ATTRIBUTE_PREFIX) {
        let name_pos = pos + ATTRIBUTE_PREFIX.len();
        if name.is_empty() {
            return Err(CqlError::new(
                name_pos,
                "attribute name missing after `attribute:`",
            ));
        }
        if let Some((i, c)) = name.chars().enumerate().find(|(_, c)| {
            !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '\\'))
        }) {
            return Err(CqlError::new(
                name_pos + i,
                format!(
                    "`{c}` cannot appear in an attribute name, which may contain letters, digits, \
                     `-`, `_`, `.`, `/` and `\\`"
                ),
            ));
        }
        if name.chars().count() > MAX_ATTRIBUTE_NAME {
            return Err(CqlError::new(
                name_pos,
                format!("attribute name longer than {MAX_ATTRIBUTE_NAME} characters"),
            ));
        }
        return Ok(Subject::Attribute(name.to_string()));
    }
    let hint = NAMED_SUBJECTS
        .iter()
        .map(|(name, _)| *name)
        .chain(std::iter::once("attribute:"))
        .find(|name| {
            word.get(..name.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(name))
                && (name.ends_with(':') || word.len() == name.len())
        });
    let message = match hint {
        Some(name) if name.ends_with(':') => {
            format!(
                "unknown subject `{word}`; did you mean `attribute:{}`?",
                &word[name.len()..]
            )
        }
        Some(name) => format!("unknown subject `{word}`; did you mean `{name}`?"),
        None => format!("unknown subject `{word}`; expected {SUBJECT_LIST}"),
    };
    Err(CqlError::new(pos, message))
}

/// A value for a subject compared as text (`==`, `!=`, `in`, `!in`).
fn text_arg(subject: &Subject, value: Value) -> Result<String, CqlError> {
    if *subject != Subject::AgentConnected {
        return Ok(value.text);
    }
    if value.text.eq_ignore_ascii_case("true") {
        Ok("true".to_string())
    } else if value.text.eq_ignore_ascii_case("false") {
        Ok("false".to_string())
    } else {
        Err(CqlError::new(
            value.pos,
            format!(
                "agentConnected is `true` or `false`, found `{}`",
                value.text
            ),
        ))
    }
}

/// A value for `==`, `!=`, `>`, `>=`, `<`, `<=`, converted to what `subject` compares with.
fn typed_arg(subject: &Subject, value: Value) -> Result<Arg, CqlError> {
    match subject {
        Subject::AgentVersion => match Version::parse(&value.text) {
            Some(version) => Ok(Arg::Version {
                source: value.text,
                version,
            }),
            None => Err(CqlError::new(
                value.pos,
                format!(
                    "invalid version `{}`; expected numbers separated by dots such as 1.14.5",
                    value.text
                ),
            )),
        },
        Subject::RegisteredAt => match DateLit::parse(&value.text) {
            Some(date) => Ok(Arg::Date {
                source: value.text,
                date,
            }),
            None => Err(CqlError::new(
                value.pos,
                format!("invalid date `{}`; expected {DATE_FORMATS}", value.text),
            )),
        },
        Subject::RunningTasksCount => {
            let count = Some(&value.text)
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse().ok());
            match count {
                Some(n) => Ok(Arg::Count(n)),
                None => Err(CqlError::new(
                    value.pos,
                    format!(
                        "runningTasksCount compares with a whole number from 0 to {}, found `{}`",
                        u32::MAX,
                        value.text
                    ),
                )),
            }
        }
        _ => text_arg(subject, value).map(Arg::Text),
    }
}
