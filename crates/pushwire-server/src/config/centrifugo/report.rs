//! The migration report: one line per key found in a configuration, what pushwire makes of it.

use std::fmt;

/// What happens to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Implemented with Centrifugo's meaning.
    Supported,
    /// Accepted under another name or form, or always on in pushwire; the text says which.
    Mapped(String),
    /// Known Centrifugo key, not supported, dropped (with a warning when set); the text says why.
    Ignored(String),
    /// Known Centrifugo key that pushwire cannot honour: start-up refuses; the text says what
    /// to do.
    Unsupported(String),
    /// Neither a Centrifugo v6 key nor a pushwire key (a typo): an error unless
    /// `config.unknown_keys = "warn"`.
    Unknown(String),
    /// A pushwire key that Centrifugo does not have.
    Pushwire,
    /// A Centrifugo key whose value cannot be read (a bad duration, a missing
    /// `${CENTRIFUGO_VAR_…}` variable, an inline PEM where a file is needed): start-up refuses.
    Invalid(String),
}

/// One report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Concrete key path (`channel.namespaces[0].presence`), or an environment variable name.
    pub key: String,
    /// What happens to it.
    pub status: Status,
    /// Whether the value differs from Centrifugo's default (an ignored key at its default is
    /// not warned about).
    pub set: bool,
}

/// Everything a load found out about the keys it read.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One line per key, in the order they were met.
    pub lines: Vec<Line>,
    /// Notes about the file as a whole (differences in defaults a Centrifugo user should know).
    pub notes: Vec<String>,
}

impl Report {
    /// Adds a line.
    pub fn push(&mut self, key: impl Into<String>, status: Status, set: bool) {
        self.lines.push(Line {
            key: key.into(),
            status,
            set,
        });
    }

    /// Lines that stop start-up.
    pub fn refusals(&self) -> impl Iterator<Item = &Line> {
        self.lines
            .iter()
            .filter(|l| matches!(l.status, Status::Unsupported(_) | Status::Invalid(_)))
    }

    /// Lines worth one warning at start: ignored keys set to something, unknown keys that
    /// were let through.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for l in &self.lines {
            match &l.status {
                Status::Ignored(why) if l.set => out.push(format!(
                    "{}: ignored, not supported by pushwire ({why})",
                    l.key
                )),
                Status::Unknown(hint) => out.push(format!("{}: unknown key ignored{hint}", l.key)),
                _ => {}
            }
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.lines.iter().map(|l| l.key.len()).max().unwrap_or(0);
        for l in &self.lines {
            let (tag, text) = match &l.status {
                Status::Supported => ("supported", String::new()),
                Status::Pushwire => ("pushwire", "pushwire key".to_string()),
                Status::Mapped(t) => ("mapped", t.clone()),
                Status::Ignored(t) if l.set => ("ignored", t.clone()),
                Status::Ignored(t) => ("ignored", format!("at its default; {t}")),
                Status::Unsupported(t) => ("UNSUPPORTED", t.clone()),
                Status::Invalid(t) => ("INVALID", t.clone()),
                Status::Unknown(t) => ("UNKNOWN", format!("not a Centrifugo v6 key{t}")),
            };
            writeln!(f, "{:<width$}  {tag:<11}  {text}", l.key)?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}
