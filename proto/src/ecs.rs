//! ECS's status vocabulary, each word defined once: a task's lastStatus and
//! desiredStatus, a container's lastStatus, healthStatus, stopCode and a
//! port's transport protocol.
//!
//! Every type reads and writes ECS's exact strings (`RUNNING`,
//! `EssentialContainerExited`, ...): [`as_str`](TaskStatus::as_str) and
//! `Display` write them, `FromStr` reads them (case-sensitively; an unknown
//! string is a [`ParseError`] naming it), and serde uses the same strings, so
//! records stored as JSON and protobuf string fields keep their form. The
//! conversion to and from the wire happens at each crate's edge.

use std::fmt;
use std::str::FromStr;

/// A string that is not one of an ECS enumeration's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an ECS {kind} (one of {expected})")]
pub struct ParseError {
    /// What was being read, e.g. `task status`.
    pub kind: &'static str,
    /// The string as given.
    pub value: String,
    /// The names accepted, comma-separated.
    pub expected: &'static str,
}

/// Defines a fieldless enum with ECS's names: `as_str`, `ALL`, `Display`,
/// `FromStr` and serde, all from one table.
macro_rules! ecs_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// ECS's name of the value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseError;

            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseError {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: concat!($($text, ", "),+).trim_end_matches(", "),
                    }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Names;
                impl serde::de::Visitor<'_> for Names {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("variant identifier")
                    }

                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        s.parse().map_err(|_| E::unknown_variant(s, &[$($text),+]))
                    }
                }
                // The same errors as serde's derived enums ("unknown variant
                // `x`, expected `tcp` or `udp`").
                d.deserialize_identifier(Names)
            }
        }
    };
}

ecs_enum! {
    /// ECS's lastStatus of a task, in lifecycle order: a task only moves
    /// forward ([`TaskStatus::rank`]), and STOPPED is final.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    TaskStatus, "task status" {
        Provisioning => "PROVISIONING",
        Pending => "PENDING",
        Activating => "ACTIVATING",
        Running => "RUNNING",
        Deactivating => "DEACTIVATING",
        Stopping => "STOPPING",
        Deprovisioning => "DEPROVISIONING",
        Stopped => "STOPPED",
    }
}

impl TaskStatus {
    /// Position in the lifecycle; a report of a lower rank is a regression.
    pub fn rank(self) -> u8 {
        self as u8
    }

    /// Counted as pending (ECS's pendingTasksCount): placed, not yet running.
    pub fn is_pending(self) -> bool {
        self < TaskStatus::Running
    }
}

ecs_enum! {
    /// ECS's desiredStatus of a task: what the scheduler wants of it.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    DesiredStatus, "desired status" {
        #[default]
        Running => "RUNNING",
        Stopped => "STOPPED",
    }
}

ecs_enum! {
    /// ECS's lastStatus of a container.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    ContainerStatus, "container status" {
        Pending => "PENDING",
        Running => "RUNNING",
        Stopped => "STOPPED",
    }
}

ecs_enum! {
    /// ECS's healthStatus of a container or a task.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    HealthStatus, "health status" {
        Healthy => "HEALTHY",
        Unhealthy => "UNHEALTHY",
        Unknown => "UNKNOWN",
    }
}

ecs_enum! {
    /// ECS's stopCode: why a task stopped.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    StopCode, "stop code" {
        /// A container could not be pulled, created or started.
        TaskFailedToStart => "TaskFailedToStart",
        /// An essential container exited.
        EssentialContainerExited => "EssentialContainerExited",
        /// StopTask, or the operator.
        UserInitiated => "UserInitiated",
        /// The service controller stopped it (scale-in, replacement).
        ServiceSchedulerInitiated => "ServiceSchedulerInitiated",
        /// A Spot instance was reclaimed.
        SpotInterruption => "SpotInterruption",
        /// The instance is going away.
        TerminationNotice => "TerminationNotice",
    }
}

ecs_enum! {
    /// The transport protocol of a port: a definition's portMappings, a
    /// reserved host port, a network binding. ECS's default is tcp.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
    Protocol, "protocol" {
        #[default]
        Tcp => "tcp",
        Udp => "udp",
    }
}

/// Serde for an `Option` of one of these enums stored as a plain string,
/// `""` standing for `None` (the form of fields such as a task record's
/// `stop_code`). Use with `#[serde(default, with = "berth_proto::ecs::empty_is_none")]`.
pub mod empty_is_none {
    use std::fmt::Display;
    use std::str::FromStr;

    /// Writes `None` as `""`, `Some(v)` as `v`'s name.
    pub fn serialize<T: Display, S: serde::Serializer>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_str(""),
        }
    }

    /// Reads `""` as `None`, anything else by `T`'s `FromStr`.
    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: serde::Deserializer<'de>,
    {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

/// Writes an optional ECS name as a wire string, `None` being `""`.
pub fn name_or_empty<T: fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Reads an optional ECS name from a wire string, `""` being `None`.
pub fn parse_optional<T: FromStr>(s: &str) -> Result<Option<T>, T::Err> {
    if s.is_empty() {
        Ok(None)
    } else {
        s.parse().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T>(all: &[T])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + FromStr<Err = ParseError>,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        for &v in all {
            let text = v.to_string();
            assert_eq!(text.parse::<T>(), Ok(v));
            let json = serde_json::to_string(&v).expect("serializes");
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<T>(&json).expect("deserializes"), v);
        }
    }

    #[test]
    fn every_name_round_trips() {
        round_trip(TaskStatus::ALL);
        round_trip(DesiredStatus::ALL);
        round_trip(ContainerStatus::ALL);
        round_trip(HealthStatus::ALL);
        round_trip(StopCode::ALL);
        round_trip(Protocol::ALL);
    }

    #[test]
    fn names_are_ecs_names() {
        assert_eq!(TaskStatus::Deprovisioning.as_str(), "DEPROVISIONING");
        assert_eq!(DesiredStatus::default(), DesiredStatus::Running);
        assert_eq!(HealthStatus::Unknown.as_str(), "UNKNOWN");
        assert_eq!(
            StopCode::EssentialContainerExited.as_str(),
            "EssentialContainerExited"
        );
        assert_eq!(
            StopCode::ServiceSchedulerInitiated.to_string(),
            "ServiceSchedulerInitiated"
        );
    }

    #[test]
    fn unknown_names_are_errors_naming_the_value() {
        let err = "running".parse::<TaskStatus>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"running\" is not an ECS task status (one of PROVISIONING, PENDING, \
             ACTIVATING, RUNNING, DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED)"
        );
        assert!("".parse::<StopCode>().is_err());
        let err = serde_json::from_str::<DesiredStatus>("\"PAUSED\"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown variant `PAUSED`, expected `RUNNING` or `STOPPED` at line 1 column 8"
        );
    }

    #[test]
    fn lifecycle_order() {
        assert!(TaskStatus::Provisioning.rank() < TaskStatus::Stopped.rank());
        assert!(TaskStatus::Activating.is_pending());
        assert!(!TaskStatus::Running.is_pending());
    }

    #[test]
    fn empty_string_is_none() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct R {
            #[serde(default, with = "empty_is_none")]
            code: Option<StopCode>,
        }
        let none = R { code: None };
        assert_eq!(serde_json::to_string(&none).expect("ser"), r#"{"code":""}"#);
        assert_eq!(
            serde_json::from_str::<R>(r#"{"code":""}"#).expect("de"),
            none
        );
        assert_eq!(serde_json::from_str::<R>("{}").expect("de"), none);
        let some = R {
            code: Some(StopCode::UserInitiated),
        };
        let json = serde_json::to_string(&some).expect("ser");
        assert_eq!(json, r#"{"code":"UserInitiated"}"#);
        assert_eq!(serde_json::from_str::<R>(&json).expect("de"), some);
        assert_eq!(parse_optional::<StopCode>(""), Ok(None));
        assert_eq!(name_or_empty(Some(HealthStatus::Healthy)), "HEALTHY");
        assert_eq!(name_or_empty::<HealthStatus>(None), "");
        assert!(parse_optional::<StopCode>("Nope").is_err());
    }
}
