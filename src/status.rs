//! What a long start is doing, on a spinner on stderr: opening the device,
//! compiling kernels, tuning each conv. Drawn only when stderr is a
//! terminal and the command's output is not `--json`; silent otherwise (and
//! in tests, whose stderr is a pipe).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The spinner shown now, if any.
static SPINNER: Mutex<Option<ProgressBar>> = Mutex::new(None);
/// Set by `--json`: no spinner at all.
static QUIET: AtomicBool = AtomicBool::new(false);

/// No spinner for the rest of the process (`--json`).
pub fn quiet() {
    QUIET.store(true, Ordering::Relaxed);
}

/// Clears the spinner when dropped (on success or on an error's return).
pub struct Shown;

impl Drop for Shown {
    fn drop(&mut self) {
        finish();
    }
}

/// Starts the spinner with `message`, unless stderr is not a terminal or
/// [`quiet`] was called; it lasts as long as the guard returned.
#[must_use = "the spinner is cleared when the guard is dropped"]
pub fn start(message: &str) -> Shown {
    if QUIET.load(Ordering::Relaxed) || !std::io::stderr().is_terminal() {
        return Shown;
    }
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.set_message(message.to_string());
    spinner.enable_steady_tick(Duration::from_millis(120));
    if let Ok(mut slot) = SPINNER.lock() {
        if let Some(old) = slot.replace(spinner) {
            old.finish_and_clear();
        }
    }
    Shown
}

/// Says what is happening now, if a spinner is shown.
pub fn set(message: impl FnOnce() -> String) {
    if let Ok(slot) = SPINNER.lock() {
        if let Some(spinner) = slot.as_ref() {
            spinner.set_message(message());
        }
    }
}

/// Clears the spinner, if one is shown.
pub fn finish() {
    if let Ok(mut slot) = SPINNER.lock() {
        if let Some(spinner) = slot.take() {
            spinner.finish_and_clear();
        }
    }
}
