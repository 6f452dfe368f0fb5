//! `ferrolb-controller validate`: the config model over manifest files.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use ferrolb_crds::config::{self, Objects, Severity};

/// Reads and checks the files; `Ok(false)` when any object is invalid.
pub fn run(files: &[PathBuf], namespace: &str) -> anyhow::Result<bool> {
    let mut objects = Objects::default();
    for file in files {
        let text = if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            text
        } else {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        };
        let parsed = config::parse_manifests(&text).with_context(|| format!("{}", file.display()))?;
        objects.append(parsed);
    }
    let outcome = config::build(namespace, &objects);
    for issue in &outcome.issues {
        println!("{issue}");
    }
    let invalid: std::collections::BTreeSet<_> = outcome
        .issues
        .iter()
        .filter(|i| i.severity == Severity::Invalid)
        .map(|i| &i.object)
        .collect();
    let pending = outcome
        .issues
        .iter()
        .filter(|i| i.severity == Severity::Pending)
        .count();
    println!(
        "{} objects: {} valid, {} invalid; {pending} pending references",
        objects.len(),
        objects.len() - invalid.len(),
        invalid.len()
    );
    Ok(invalid.is_empty())
}
