//! Runners for the real SDK scripts (filled in by the SDK suite).
