//! What the config model reports about an object: which field is wrong and why.

use std::fmt;

/// How an issue affects its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The object is wrong and is left out of the configuration until it is edited.
    Invalid,
    /// The object refers to something that does not exist (yet); it takes effect,
    /// or its reference resolves, once that object appears.
    Pending,
}

/// The object an issue is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// Its kind, e.g. `IPAddressPool`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// One finding: object, field path (e.g. `spec.addresses[1]`), plain-words message.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Issue {
    /// The object.
    pub object: ObjectRef,
    /// Invalid or pending.
    pub severity: Severity,
    /// Path of the offending field from the object root; `metadata` for the object itself.
    pub field: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Invalid => "invalid",
            Severity::Pending => "pending",
        };
        write!(f, "{} {}: {}: {}", self.object, label, self.field, self.message)
    }
}

/// Collects the issues of one object while it is checked.
#[derive(Debug)]
pub(crate) struct Findings {
    object: ObjectRef,
    issues: Vec<Issue>,
}

impl Findings {
    pub(crate) fn new(kind: &'static str, name: &str) -> Self {
        Self {
            object: ObjectRef {
                kind,
                name: name.to_string(),
            },
            issues: Vec::new(),
        }
    }

    pub(crate) fn object(&self) -> &ObjectRef {
        &self.object
    }

    pub(crate) fn invalid(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Invalid, field.into(), message.into());
    }

    pub(crate) fn pending(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Pending, field.into(), message.into());
    }

    fn push(&mut self, severity: Severity, field: String, message: String) {
        self.issues.push(Issue {
            object: self.object.clone(),
            severity,
            field,
            message,
        });
    }

    /// Whether any finding so far makes the object invalid.
    pub(crate) fn is_invalid(&self) -> bool {
        self.issues.iter().any(|i| i.severity == Severity::Invalid)
    }

    /// Whether any finding so far keeps the object out of the configuration.
    pub(crate) fn is_blocked(&self) -> bool {
        !self.issues.is_empty()
    }

    pub(crate) fn into_issues(self) -> Vec<Issue> {
        self.issues
    }
}
