//! `ferrolb-speaker`: announces assigned addresses from each node. Its planner,
//! membership and Layer 2 announcer arrive with the speaker issue; until then the
//! binary only says so, so that the workspace and chart layout stay stable.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "ferrolb-speaker {}: not implemented yet",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
