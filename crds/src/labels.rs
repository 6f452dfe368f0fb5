//! Label values derived from object names. A label value holds at most 63 characters
//! while most names (a Node's among them) may hold 253, so a long name is shortened
//! to a prefix plus a digest of the whole: valid for every legal name, stable across
//! restarts, and still readable for the common short case.

use sha2::{Digest, Sha256};

/// The longest label value Kubernetes accepts.
pub const MAX_VALUE: usize = 63;

/// `name` itself when it fits in a label value, else its first characters and a
/// 12-hex-digit digest of all of it (63 characters at most).
pub fn value_of(name: &str) -> String {
    if name.len() <= MAX_VALUE {
        return name.to_string();
    }
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    // A value must start and end with an alphanumeric character: cut before the
    // digest's separator at one.
    let prefix = name[..MAX_VALUE - hex.len() - 1].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_and_long_ones_fit() {
        assert_eq!(value_of("node-a.example.com"), "node-a.example.com");
        let long = format!("{}.rack-7.example.com", "worker-".repeat(34));
        assert!(long.len() > 200);
        let value = value_of(&long);
        assert!(value.len() <= MAX_VALUE, "{value}");
        assert!(value.starts_with("worker-worker-"));
        assert!(value.chars().last().unwrap().is_ascii_alphanumeric());
        assert!(!value.contains("--"), "{value}");
        assert_eq!(value, value_of(&long), "stable");
        assert_ne!(
            value,
            value_of(&long.replace("rack-7", "rack-8")),
            "the digest covers all of it"
        );
    }
}
