//! Durations on the command line, one spelling for every binary: a number and a unit
//! (`500ms`, `1.5s`, `2m`, `1h`). A bare number is read as seconds, the spelling of
//! earlier releases, and marked so the binary can warn that it is deprecated.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration flag's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlagDuration {
    /// The duration.
    pub value: Duration,
    /// Given as a bare number of seconds (deprecated).
    pub bare: bool,
}

/// Why a duration flag's value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {why} (write e.g. 500ms, 1.5s, 2m or 1h)")]
pub struct DurationError {
    text: String,
    why: &'static str,
}

impl FromStr for FlagDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |why| DurationError {
            text: text.to_string(),
            why,
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: f64 = number.parse().map_err(|_| error("no number"))?;
        let seconds = match unit.trim() {
            "" => 1.0,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(error("unknown unit")),
        };
        let value = Duration::try_from_secs_f64(number * seconds).map_err(|_| error("out of range"))?;
        Ok(Self {
            value,
            bare: unit.trim().is_empty(),
        })
    }
}

impl fmt::Display for FlagDuration {
    /// The canonical spelling (what `--help` shows as a default).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.subsec_nanos() == 0 {
            write!(f, "{}s", self.value.as_secs())
        } else {
            write!(f, "{}ms", self.value.as_millis())
        }
    }
}

/// The warning for a flag given in a deprecated spelling, if it was.
pub fn deprecated_bare(flag: &str, value: &FlagDuration) -> Option<String> {
    value.bare.then(|| {
        format!(
            "--{flag} {}: a bare number of seconds is deprecated; write it with a unit ({})",
            value.value.as_secs_f64(),
            FlagDuration {
                bare: false,
                ..*value
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FlagDuration, DurationError> {
        text.parse()
    }

    #[test]
    fn units_fractions_and_the_old_bare_seconds() {
        assert_eq!(parse("500ms").unwrap().value, Duration::from_millis(500));
        assert_eq!(parse("1.5s").unwrap().value, Duration::from_millis(1500));
        assert_eq!(parse("2m").unwrap().value, Duration::from_secs(120));
        assert_eq!(parse("1h").unwrap().value, Duration::from_secs(3600));
        let bare = parse("0.2").unwrap();
        assert_eq!((bare.value, bare.bare), (Duration::from_millis(200), true));
        assert!(!parse("10s").unwrap().bare);
        assert_eq!(
            deprecated_bare("renew-deadline", &parse("1.5").unwrap()).unwrap(),
            "--renew-deadline 1.5: a bare number of seconds is deprecated; write it with a unit (1500ms)"
        );
        assert_eq!(deprecated_bare("x", &parse("3s").unwrap()), None);
    }

    #[test]
    fn refusals_name_the_value() {
        for text in ["", "s", "10 parsecs", "-1s", "1e400s", "1.2.3s"] {
            let err = parse(text).unwrap_err();
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        }
    }

    #[test]
    fn shown_in_the_canonical_spelling() {
        assert_eq!(parse("15").unwrap().to_string(), "15s");
        assert_eq!(parse("1100ms").unwrap().to_string(), "1100ms");
        assert_eq!(parse("0.2s").unwrap().to_string(), "200ms");
    }
}
