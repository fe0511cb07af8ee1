//! The error behind an error: core's error enums keep the backend's or library's own error
//! as their [`std::error::Error::source`], shared so the enums stay `Clone`.

use std::sync::Arc;

/// A kept cause.
pub type ErrorCause = Arc<dyn std::error::Error + Send + Sync>;

/// `": <cause>"` when there is a cause, for Display impls that show it after their own text.
pub fn suffix(cause: &Option<ErrorCause>) -> String {
    cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default()
}
