//! No dependency may force a GPL-family licence on FerroLB (Apache-2.0).

use std::process::Command;

#[test]
fn no_dependency_requires_a_gpl_licence() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only what builds for this machine: other platforms' crates are never compiled here.
    let rustc = Command::new("rustc").arg("-vV").output().expect("rustc runs");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &host,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut offenders = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap_or_default();
        match package["license"].as_str() {
            Some(licence) if ferrolb_workspace_tests::avoids_gpl(licence) => {}
            Some(licence) => offenders.push(format!("{name}: {licence}")),
            None => offenders.push(format!("{name}: no SPDX licence declared; review it by hand")),
        }
    }
    assert!(
        offenders.is_empty(),
        "dependencies with unacceptable licences:\n{}",
        offenders.join("\n")
    );
}
