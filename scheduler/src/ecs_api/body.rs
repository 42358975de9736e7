//! The AWS JSON 1.1 request body: one JSON object, parsed under a size and a nesting
//! limit; pure, no panics on any input.
//!
//! - An empty body, or one of JSON whitespace only, is the empty object (AWS JSON 1.1
//!   servers must accept an empty body).
//! - Larger than [`Limits::max_bytes`] (default 1 MiB) → [`BodyError::TooLarge`]: HTTP 413,
//!   code `RequestEntityTooLarge` (botocore reports any code; 413 is not retried). The HTTP
//!   server should also stop reading at `max_bytes + 1` bytes (SigV4 needs the whole body).
//! - Nested deeper than [`Limits::max_depth`] (default 64; the top-level object is depth 1)
//!   → [`BodyError::TooDeep`]. A linear pre-scan that skips strings (and their escapes)
//!   counts `[`/`{` before any value is built, so `[[[[…` of any length cannot exhaust the
//!   stack (serde_json's own limit is 128; ours is lower, so it is never reached).
//! - Invalid UTF-8, invalid JSON, or a top level that is not an object →
//!   [`BodyError`] with code `SerializationException` (HTTP 400) and a message saying what
//!   and where (byte offset, or serde_json's line and column).
//!
//! A key given twice keeps its last value (serde_json's behaviour; AWS's parsers differ).
//!
//! The property tests (in [`super::sigv4`]'s doc: `BERTH_FUZZ_CASES`) check that arbitrary
//! bytes never panic and that any serialised object round-trips.

use serde_json::{Map, Value};

/// The largest body and deepest nesting accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes (default 1 MiB).
    pub max_bytes: usize,
    /// Nesting of arrays and objects, the top-level object counting 1 (default 64).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// Why a body was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the limit.
    #[error("Request body of {size} bytes exceeds the limit of {limit} bytes.")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Arrays and objects are nested deeper than the limit.
    #[error("Request body nests arrays and objects deeper than {limit} levels.")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The body is not UTF-8.
    #[error("Request body is not valid UTF-8 (at byte {offset}).")]
    InvalidUtf8 {
        /// The offset of the first invalid byte.
        offset: usize,
    },
    /// The body is not JSON; the message carries serde_json's line and column.
    #[error("Request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON but not an object.
    #[error("Request body must be a JSON object, not {found}.")]
    NotAnObject {
        /// What it is ("an array", "a string", …).
        found: &'static str,
    },
}

impl BodyError {
    /// The error code for the body's `__type`.
    pub fn aws_code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "RequestEntityTooLarge",
            _ => "SerializationException",
        }
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            BodyError::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// Whether `b` is JSON whitespace.
fn json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The deepest nesting of `[`/`{` outside strings, stopping as soon as it passes `limit`.
/// Exact for valid JSON; for invalid JSON the parser reports the real error anyway.
fn depth_exceeds(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses an AWS JSON 1.1 request body into its top-level object.
pub fn parse(body: &[u8], limits: &Limits) -> Result<Map<String, Value>, BodyError> {
    if body.len() > limits.max_bytes {
        return Err(BodyError::TooLarge {
            size: body.len(),
            limit: limits.max_bytes,
        });
    }
    if body.iter().all(|&b| json_ws(b)) {
        return Ok(Map::new());
    }
    let text = std::str::from_utf8(body).map_err(|e| BodyError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    if depth_exceeds(body, limits.max_depth) {
        return Err(BodyError::TooDeep {
            limit: limits.max_depth,
        });
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(BodyError::NotAnObject {
            found: match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            },
        }),
        Err(e) => Err(BodyError::InvalidJson(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn empty_and_whitespace_bodies_are_the_empty_object() {
        for body in [&b""[..], b" ", b"\n\t\r ", b"{}", b" { } "] {
            assert_eq!(parse(body, &lim()).unwrap(), Map::new(), "{body:?}");
        }
    }

    #[test]
    fn an_ecs_request_parses() {
        let m = parse(
            br#"{"cluster": "c1", "desiredStatus": "RUNNING", "maxResults": 10}"#,
            &lim(),
        )
        .unwrap();
        assert_eq!(m["cluster"], "c1");
        assert_eq!(m["maxResults"], 10);
        let keys: Vec<_> = m.keys().collect();
        assert_eq!(keys, ["cluster", "desiredStatus", "maxResults"]);
    }

    #[test]
    fn the_size_limit_is_inclusive() {
        let limits = Limits {
            max_bytes: 10,
            max_depth: 64,
        };
        assert!(parse(br#"{"a":"12"}"#, &limits).is_ok()); // 10 bytes
        let e = parse(br#"{"a":"123"}"#, &limits).unwrap_err();
        assert_eq!(
            e,
            BodyError::TooLarge {
                size: 11,
                limit: 10
            }
        );
        assert_eq!(
            (e.aws_code(), e.http_status()),
            ("RequestEntityTooLarge", 413)
        );
        // The size is checked first, even for whitespace.
        assert!(matches!(
            parse(&[b' '; 11], &limits),
            Err(BodyError::TooLarge { .. })
        ));
        // The default is 1 MiB.
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(1024 * 1024));
        assert!(matches!(
            parse(big.as_bytes(), &lim()),
            Err(BodyError::TooLarge { .. })
        ));
    }

    fn nested(depth: usize) -> String {
        // `depth` containers: the object, then arrays.
        format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    }

    #[test]
    fn the_depth_limit_is_exact() {
        assert!(parse(nested(64).as_bytes(), &lim()).is_ok());
        let e = parse(nested(65).as_bytes(), &lim()).unwrap_err();
        assert_eq!(e, BodyError::TooDeep { limit: 64 });
        assert_eq!(
            (e.aws_code(), e.http_status()),
            ("SerializationException", 400)
        );
        let objects = format!("{}{}", r#"{"a":"#.repeat(65), "}".repeat(65));
        assert!(matches!(
            parse(objects.as_bytes(), &lim()),
            Err(BodyError::TooDeep { .. })
        ));
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let body = format!(r#"{{"a":"{}\"[{{","b":["\\"]}}"#, "[".repeat(500));
        let m = parse(body.as_bytes(), &lim()).unwrap();
        assert!(m["a"].as_str().unwrap().starts_with("[[["));
        assert_eq!(m["b"][0], "\\");
    }

    #[test]
    fn a_megabyte_of_brackets_is_refused_without_recursing() {
        let limits = Limits {
            max_bytes: 4 << 20,
            max_depth: 64,
        };
        for open in [b'[', b'{'] {
            let body = vec![open; 1 << 20];
            assert!(matches!(
                parse(&body, &limits),
                Err(BodyError::TooDeep { .. })
            ));
        }
        // Even with the limit lifted, serde_json's own recursion limit holds.
        let unlimited = Limits {
            max_bytes: 4 << 20,
            max_depth: usize::MAX,
        };
        let body = vec![b'['; 1 << 20];
        assert!(matches!(
            parse(&body, &unlimited),
            Err(BodyError::InvalidJson(_))
        ));
    }

    #[test]
    fn invalid_utf8_says_where() {
        let e = parse(b"{\"a\":\"\xff\"}", &lim()).unwrap_err();
        assert_eq!(e, BodyError::InvalidUtf8 { offset: 6 });
        assert_eq!(e.aws_code(), "SerializationException");
        assert_eq!(
            e.to_string(),
            "Request body is not valid UTF-8 (at byte 6)."
        );
    }

    #[test]
    fn invalid_json_says_where() {
        let e = parse(b"{\n\"a\": 1,\n}", &lim()).unwrap_err();
        let BodyError::InvalidJson(msg) = &e else {
            panic!("{e:?}")
        };
        assert!(msg.contains("line 3 column 1"), "{msg}");
        assert_eq!(
            (e.aws_code(), e.http_status()),
            ("SerializationException", 400)
        );
        for bad in [
            &b"{"[..],
            b"{\"a\"}",
            b"{} {}",
            b"{\"a\":01}",
            b"\xef\xbb\xbf{}",
            b"{'a':1}",
        ] {
            assert!(
                matches!(parse(bad, &lim()), Err(BodyError::InvalidJson(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_top_level_must_be_an_object() {
        for (body, found) in [
            ("[]", "an array"),
            ("null", "null"),
            ("true", "a boolean"),
            ("1.5", "a number"),
            ("\"s\"", "a string"),
        ] {
            let e = parse(body.as_bytes(), &lim()).unwrap_err();
            assert_eq!(e, BodyError::NotAnObject { found }, "{body}");
            assert_eq!(e.aws_code(), "SerializationException");
        }
        assert_eq!(
            BodyError::NotAnObject { found: "an array" }.to_string(),
            "Request body must be a JSON object, not an array."
        );
    }

    #[test]
    fn a_repeated_key_keeps_the_last_value() {
        let m = parse(br#"{"a":1,"a":2}"#, &lim()).unwrap();
        assert_eq!(m["a"], 2);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            // Exactly representable, so they round-trip without serde_json's float_roundtrip.
            any::<i32>().prop_map(|i| Value::from(f64::from(i) / 8.0)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: super::super::sigv4::fuzz_cases(),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// The scan's depth, uncapped: for checking `depth_exceeds` against serde_json.
    fn value_depth(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(value_depth).max().unwrap_or(0),
            Value::Object(o) => 1 + o.values().map(value_depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let r = parse(&body, &lim());
            if let Ok(m) = &r {
                // Whatever was accepted is an object serde_json itself accepts.
                if !body.iter().all(|&b| json_ws(b)) {
                    let v: Value = serde_json::from_slice(&body).unwrap();
                    prop_assert_eq!(&v, &Value::Object(m.clone()));
                }
            }
        }

        #[test]
        fn json_like_bytes_never_panic(body in "[\\[\\]{}\":,\\\\ a0-9tfnul.eE+-]{0,256}") {
            let _ = parse(body.as_bytes(), &Limits { max_bytes: 1 << 20, max_depth: 8 });
        }

        #[test]
        fn objects_round_trip_and_depth_is_enforced(
            kv in prop::collection::vec((any::<String>(), json_value()), 0..6),
            pretty in any::<bool>(),
            max_depth in 1usize..10,
        ) {
            let obj = Value::Object(kv.into_iter().collect());
            let text = if pretty {
                serde_json::to_string_pretty(&obj).unwrap()
            } else {
                serde_json::to_string(&obj).unwrap()
            };
            let limits = Limits { max_bytes: 1 << 20, max_depth };
            match parse(text.as_bytes(), &limits) {
                Ok(m) => {
                    prop_assert!(value_depth(&obj) <= max_depth);
                    prop_assert_eq!(Value::Object(m), obj);
                }
                Err(e) => {
                    prop_assert_eq!(e, BodyError::TooDeep { limit: max_depth });
                    prop_assert!(value_depth(&obj) > max_depth);
                }
            }
        }
    }
}
