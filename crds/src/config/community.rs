//! BGP community values and the Community alias objects.

use std::collections::BTreeMap;
use std::fmt;

use crate::api::Community;

use super::issue::Findings;

/// A BGP community value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommunityValue {
    /// RFC 1997 community `A:B`.
    Standard(u16, u16),
    /// RFC 8092 large community `large:A:B:C`.
    Large(u32, u32, u32),
}

impl fmt::Display for CommunityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommunityValue::Standard(a, b) => write!(f, "{a}:{b}"),
            CommunityValue::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

impl CommunityValue {
    /// Parses a literal. `None` when the text is not shaped like a literal at all
    /// (it is then an alias name); `Some(Err)` when it is shaped like one but wrong.
    pub fn parse_literal(text: &str) -> Option<Result<Self, String>> {
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if let Some(rest) = text.strip_prefix("large:") {
            let parts: Vec<&str> = rest.split(':').collect();
            let [a, b, c] = parts.as_slice() else {
                return Some(Err(format!("{text:?}: a large community is large:A:B:C")));
            };
            let part = |p: &str| {
                p.parse::<u32>()
                    .map_err(|_| format!("{text:?}: {p:?} is not a number from 0 to 4294967295"))
            };
            return Some((|| Ok(CommunityValue::Large(part(a)?, part(b)?, part(c)?)))());
        }
        let (a, b) = text.split_once(':')?;
        if !numeric(a) || !numeric(b) {
            return None;
        }
        let part = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("{text:?}: {p:?} is not a number from 0 to 65535"))
        };
        Some((|| Ok(CommunityValue::Standard(part(a)?, part(b)?)))())
    }
}

/// Alias name → value, from every valid Community object.
pub(crate) type Aliases = BTreeMap<String, CommunityValue>;

/// Checks one Community object; aliases already defined by older objects are in `known`.
pub(crate) fn check(object: &Community, known: &Aliases, findings: &mut Findings) -> Aliases {
    let mut aliases = Aliases::new();
    for (i, alias) in object.spec.communities.iter().enumerate() {
        let field = format!("spec.communities[{i}]");
        if alias.name.is_empty() {
            findings.invalid(format!("{field}.name"), "must not be empty");
        } else if aliases.contains_key(&alias.name) {
            findings.invalid(
                format!("{field}.name"),
                format!("duplicate alias {:?}", alias.name),
            );
        } else if known.contains_key(&alias.name) {
            findings.invalid(
                format!("{field}.name"),
                format!("alias {:?} is already defined by another Community", alias.name),
            );
        }
        match CommunityValue::parse_literal(&alias.value) {
            Some(Ok(value)) => {
                aliases.insert(alias.name.clone(), value);
            }
            Some(Err(why)) => findings.invalid(format!("{field}.value"), why),
            None => findings.invalid(
                format!("{field}.value"),
                format!(
                    "{:?} is not A:B (16-bit numbers) or large:A:B:C (32-bit numbers)",
                    alias.value
                ),
            ),
        }
    }
    aliases
}
