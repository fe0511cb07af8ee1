//! The progress bar on stderr (indicatif), hidden when stderr is not a terminal; phase lines
//! are printed either way.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use tokio::time::Instant;

/// How a phase advances the bar.
#[derive(Clone, Copy)]
enum Driver {
    /// The run sets the position (connections done out of N).
    Count,
    /// The position is the seconds elapsed since the phase started.
    Clock(Instant),
}

/// Progress output of one run.
pub(crate) struct Progress {
    bar: ProgressBar,
    visible: bool,
    driver: Mutex<Driver>,
}

impl Progress {
    /// A bar on stderr when it is a terminal, otherwise a hidden one.
    pub(crate) fn new() -> Self {
        let visible = std::io::stderr().is_terminal();
        let bar = if visible {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{prefix:>10} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            visible,
            driver: Mutex::new(Driver::Count),
        }
    }

    /// Starts a phase: prints `bench: {line}` and resets the bar to `len` steps. A `clock`
    /// phase advances one step per second by itself.
    pub(crate) fn phase(&self, name: &str, line: &str, len: u64, clock: bool) {
        self.println(line);
        *self.driver.lock() = if clock {
            Driver::Clock(Instant::now())
        } else {
            Driver::Count
        };
        self.bar.set_prefix(name.to_owned());
        self.bar.set_length(len);
        self.bar.set_position(0);
    }

    /// Prints one `bench: …` line above the bar (or plainly when there is no bar).
    pub(crate) fn println(&self, line: &str) {
        if self.visible {
            self.bar.println(format!("bench: {line}"));
        } else {
            eprintln!("bench: {line}");
        }
    }

    /// Sets the position of a count phase.
    pub(crate) fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
    }

    /// Refreshes the status text (and a clock phase's position).
    pub(crate) fn status(&self, msg: String) {
        if let Driver::Clock(start) = *self.driver.lock() {
            self.bar.set_position(
                start
                    .elapsed()
                    .as_secs()
                    .min(self.bar.length().unwrap_or(0)),
            );
        }
        self.bar.set_message(msg);
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
