//! Checks over the whole workspace (dependency licences); the tests live in `tests/`.

/// Whether an SPDX licence expression lets us use the crate without a GPL-family
/// licence: every `AND` term must offer at least one non-GPL alternative.
pub fn avoids_gpl(expression: &str) -> bool {
    let cleaned = expression.replace(['(', ')'], " ").replace('/', " OR ");
    cleaned.split(" AND ").all(|term| {
        term.split(" OR ")
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .any(|licence| !licence.contains("GPL"))
    })
}

#[cfg(test)]
mod tests {
    use super::avoids_gpl;

    #[test]
    fn reads_spdx_expressions() {
        assert!(avoids_gpl("MIT OR Apache-2.0"));
        assert!(avoids_gpl("(MIT OR Apache-2.0) AND Unicode-3.0"));
        assert!(avoids_gpl("MIT/Apache-2.0"));
        assert!(avoids_gpl("GPL-2.0 OR MIT"));
        assert!(!avoids_gpl("GPL-3.0-only"));
        assert!(!avoids_gpl("MIT AND LGPL-2.1-or-later"));
        assert!(!avoids_gpl("AGPL-3.0"));
    }
}
