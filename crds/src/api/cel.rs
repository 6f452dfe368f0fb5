//! CEL expressions shared by several CRDs, built once here so that every kind
//! enforces the same syntax for addresses, communities and durations.

/// Message for an `addresses` entry that is neither a CIDR nor a range.
pub const ADDRESS_SYNTAX_MESSAGE: &str =
    "must be a CIDR (10.0.0.0/24, fd00::/120) or a range first-last (10.0.0.10-10.0.0.20)";

/// A range's two ends as trimmed strings; only meaningful when `self` contains '-'.
const FIRST: &str = "self.split('-')[0].trim()";
const LAST: &str = "self.split('-')[1].trim()";

fn range_syntax() -> String {
    format!("(self.split('-').size() == 2 && isIP({FIRST}) && isIP({LAST}))")
}

/// `self` (a string) is a CIDR or a `first-last` range of two IP addresses.
pub fn address_syntax() -> String {
    format!("self.contains('/') ? isCIDR(self) : {}", range_syntax())
}

/// A range's ends are of one family (true for anything that is not a well-formed range).
pub fn address_range_family() -> String {
    format!(
        "!self.contains('-') || !{} || ip({FIRST}).family() == ip({LAST}).family()",
        range_syntax()
    )
}

/// An IPv4 dotted quad as one integer; CEL has no ordering on `ip()` values.
fn ipv4_as_int(expr: &str) -> String {
    (0..4)
        .map(|i| format!("int({expr}.split('.')[{i}]) * {}", 1u64 << (8 * (3 - i))))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// An IPv4 range's first address is not after its last. IPv6 ordering is checked
/// by the config model only: CEL has no cheap way to expand `::`.
pub fn address_range_order() -> String {
    format!(
        "!self.contains('-') || !{} || ip({FIRST}).family() != 4 || ip({LAST}).family() != 4 || ({}) <= ({})",
        range_syntax(),
        ipv4_as_int(FIRST),
        ipv4_as_int(LAST)
    )
}

/// A community value literal: `A:B` with 16-bit parts or `large:A:B:C` with 32-bit parts.
pub fn community_literal(var: &str) -> String {
    format!(
        "({var}.matches('^[0-9]{{1,5}}:[0-9]{{1,5}}$') && {var}.split(':').all(p, int(p) <= 65535)) || \
         ({var}.matches('^large:[0-9]{{1,10}}:[0-9]{{1,10}}:[0-9]{{1,10}}$') && \
         {var}.split(':').all(p, p == 'large' || int(p) <= 4294967295))"
    )
}

/// A community reference: a literal, or the name of an alias defined in a Community.
/// Only strings shaped like a literal (`digits:digits`, `large:…`) are range-checked,
/// as MetalLB does; any other string is taken for an alias.
pub fn community_reference(var: &str) -> String {
    format!(
        "!({var}.matches('^[0-9]+:[0-9]+$') || {var}.startsWith('large:')) || {}",
        community_literal(var)
    )
}
