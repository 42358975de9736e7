//! Task-level `cpu` and `memory` strings, as ECS accepts them.
//!
//! - CPU: a whole number of CPU units (`"1024"`, `512`), or vCPUs with a
//!   `vCPU` suffix in any case (`"1 vCPU"`, `"0.5 vcpu"`, `"2vCPUs"`);
//!   1 vCPU = 1024 units.
//! - Memory: a whole number of MiB (`"512"`, `512`, `"512 MiB"`, `"512 MB"`),
//!   or GiB with a `GB`/`GiB` suffix (`"2 GB"`, `"2GB"`, `"0.5 GiB"`).
//!   Like ECS, `GB` means GiB and `MB` means MiB.
//!
//! Decimals are computed exactly (no floating point): the result must be a
//! whole number of units or MiB and fit in a `u32`.

/// Why a `cpu` or `memory` value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitsError {
    #[error("empty value")]
    Empty,
    #[error("`{0}` is not a number with an optional unit")]
    Syntax(String),
    #[error("unknown unit `{unit}`, expected {expected}")]
    UnknownUnit {
        unit: String,
        expected: &'static str,
    },
    #[error("`{value}` is not a whole number of {what}")]
    NotWhole { value: String, what: &'static str },
    #[error("`{0}` is too large")]
    TooLarge(String),
}

const CPU_UNITS_EXPECTED: &str = "none (CPU units) or `vCPU`";
const MEMORY_UNITS_EXPECTED: &str = "none (MiB), `MiB`, `MB`, `GiB` or `GB`";

/// Parses a task-level cpu value into CPU units.
pub fn parse_cpu_units(s: &str) -> Result<u32, UnitsError> {
    let (num, unit) = split(s)?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "vcpu" | "vcpus" => 1024,
        _ => {
            return Err(UnitsError::UnknownUnit {
                unit: unit.to_owned(),
                expected: CPU_UNITS_EXPECTED,
            })
        }
    };
    scale(s, num, factor, "CPU units")
}

/// Parses a task-level memory value into MiB.
pub fn parse_memory_mib(s: &str) -> Result<u32, UnitsError> {
    let (num, unit) = split(s)?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" | "mib" | "mb" => 1,
        "gib" | "gb" => 1024,
        _ => {
            return Err(UnitsError::UnknownUnit {
                unit: unit.to_owned(),
                expected: MEMORY_UNITS_EXPECTED,
            })
        }
    };
    scale(s, num, factor, "MiB")
}

/// Splits `" 0.5 vCPU "` into `("0.5", "vCPU")`.
fn split(s: &str) -> Result<(&str, &str), UnitsError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(UnitsError::Empty);
    }
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    if num.is_empty() {
        return Err(UnitsError::Syntax(s.to_owned()));
    }
    Ok((num, unit.trim()))
}

/// `num × factor`, exactly, as a `u32`.
fn scale(orig: &str, num: &str, factor: u128, what: &'static str) -> Result<u32, UnitsError> {
    let syntax = || UnitsError::Syntax(orig.to_owned());
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(syntax());
    }
    // u32::MAX has 10 digits: longer integer parts are too large whatever the
    // unit, and more than 18 fraction digits cannot matter for a whole result
    // except as trailing zeros.
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    if int.len() > 12 {
        return Err(UnitsError::TooLarge(orig.trim().to_owned()));
    }
    if frac.len() > 18 {
        return Err(UnitsError::NotWhole {
            value: orig.trim().to_owned(),
            what,
        });
    }
    let digits = format!("{int}{frac}");
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| syntax())?
    };
    let divisor = 10u128.pow(u32::try_from(frac.len()).map_err(|_| syntax())?);
    let scaled = mantissa * factor;
    if scaled % divisor != 0 {
        return Err(UnitsError::NotWhole {
            value: orig.trim().to_owned(),
            what,
        });
    }
    u32::try_from(scaled / divisor).map_err(|_| UnitsError::TooLarge(orig.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_values() {
        let ok = [
            ("1024", 1024),
            ("256", 256),
            (" 512 ", 512),
            ("1 vCPU", 1024),
            ("1vcpu", 1024),
            ("0.5 vcpu", 512),
            ("0.25 vCPU", 256),
            ("2 vCPUs", 2048),
            (".5 VCPU", 512),
            ("4.0 vCPU", 4096),
            ("16 vCPU", 16384),
            ("1024.0", 1024),
            ("0", 0),
        ];
        for (input, want) in ok {
            assert_eq!(parse_cpu_units(input), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn cpu_errors() {
        assert_eq!(parse_cpu_units(""), Err(UnitsError::Empty));
        assert_eq!(parse_cpu_units("   "), Err(UnitsError::Empty));
        assert!(matches!(
            parse_cpu_units("lots"),
            Err(UnitsError::Syntax(_))
        ));
        assert!(matches!(
            parse_cpu_units("1.2.3"),
            Err(UnitsError::Syntax(_))
        ));
        assert!(matches!(parse_cpu_units("."), Err(UnitsError::Syntax(_))));
        assert!(matches!(parse_cpu_units("-1"), Err(UnitsError::Syntax(_))));
        assert!(matches!(
            parse_cpu_units("2 GB"),
            Err(UnitsError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_cpu_units("0.1 vCPU"),
            Err(UnitsError::NotWhole { .. })
        ));
        assert!(matches!(
            parse_cpu_units("1.5"),
            Err(UnitsError::NotWhole { .. })
        ));
        assert!(matches!(
            parse_cpu_units("4294967296"),
            Err(UnitsError::TooLarge(_))
        ));
        assert!(matches!(
            parse_cpu_units("99999999999999999999999999999999999999999 vcpu"),
            Err(UnitsError::TooLarge(_))
        ));
        assert!(matches!(
            parse_cpu_units("1e3"),
            Err(UnitsError::UnknownUnit { .. })
        ));
    }

    #[test]
    fn memory_values() {
        let ok = [
            ("512", 512),
            ("2 GB", 2048),
            ("2GB", 2048),
            ("2gb", 2048),
            ("0.5 GB", 512),
            ("1.5GiB", 1536),
            ("512 MiB", 512),
            ("512MB", 512),
            ("30720", 30720),
            ("4294967295", u32::MAX),
            ("0.000000000000000000000 GB", 0),
        ];
        for (input, want) in ok {
            assert_eq!(parse_memory_mib(input), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn memory_errors() {
        assert!(matches!(
            parse_memory_mib("2 TB"),
            Err(UnitsError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_memory_mib("0.3 GB"),
            Err(UnitsError::NotWhole { .. })
        ));
        assert!(matches!(
            parse_memory_mib("4194304 GB"),
            Err(UnitsError::TooLarge(_))
        ));
        assert!(matches!(parse_memory_mib("GB"), Err(UnitsError::Syntax(_))));
        assert_eq!(
            parse_memory_mib("2 XB").map_err(|e| e.to_string()),
            Err("unknown unit `XB`, expected none (MiB), `MiB`, `MB`, `GiB` or `GB`".to_owned())
        );
    }
}
