//! The terminal while `top` runs: raw mode and the alternate screen, given back on every way
//! out (return, error, panic; a signal ends the loop and so returns), and whether to use
//! colour.

use std::{
    ffi::OsStr,
    io::{self, IsTerminal as _, Stdout},
    sync::{
        Once,
        atomic::{AtomicBool, Ordering},
    },
};

use ratatui::{
    Terminal,
    backend::CrosstermBackend,
    crossterm::{
        cursor, execute,
        terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
    },
};

/// Why the terminal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// stdout is a file or a pipe.
    #[error("tracer top draws on a terminal, and stdout is not one (use `tracer live` for text)")]
    NotATerminal,
    /// The terminal refused raw mode, the alternate screen or a write.
    #[error("setting up the terminal: {0}")]
    Setup(#[source] io::Error),
}

/// Whether the terminal is ours (raw mode, alternate screen): what [`restore`] undoes, once.
static TAKEN: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// Gives the terminal back: ends raw mode, leaves the alternate screen, shows the cursor.
/// Does nothing when it is not ours, so every way out may call it.
fn restore() {
    if TAKEN.swap(false, Ordering::SeqCst) {
        // Errors are ignored: this runs on the way out, when there is no one left to tell.
        let _ = terminal::disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
    }
}

/// The terminal in raw mode on the alternate screen; dropping it gives the terminal back.
pub struct Screen {
    /// Draws on stdout.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    /// Takes the terminal. A panic from here on gives it back before its message is
    /// printed, so the message lands on the normal screen.
    pub fn enter() -> Result<Self, TerminalError> {
        if !io::stdout().is_terminal() {
            return Err(TerminalError::NotATerminal);
        }
        PANIC_HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        terminal::enable_raw_mode().map_err(TerminalError::Setup)?;
        TAKEN.store(true, Ordering::SeqCst);
        // From here on an error drops the half-made screen, which restores.
        let guard = RestoreOnDrop;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide).map_err(TerminalError::Setup)?;
        let terminal =
            Terminal::new(CrosstermBackend::new(io::stdout())).map_err(TerminalError::Setup)?;
        std::mem::forget(guard);
        Ok(Self { terminal })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Restores the terminal when dropped (an error half way through [`Screen::enter`]).
struct RestoreOnDrop;

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether to draw in colour: not when NO_COLOR is set to anything non-empty
/// (no-color.org), nor on a terminal that has none (TERM unset or `dumb`).
pub fn wants_color(no_color: Option<&OsStr>, term: Option<&OsStr>) -> bool {
    let no_color = no_color.is_some_and(|value| !value.is_empty());
    let colorless = term.is_none_or(|term| term.is_empty() || term == "dumb");
    !no_color && !colorless
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_unless_no_color_or_a_dumb_terminal() {
        let os = |text: &'static str| Some(OsStr::new(text));
        assert!(wants_color(None, os("xterm-256color")));
        assert!(
            wants_color(os(""), os("screen")),
            "an empty NO_COLOR is unset"
        );
        assert!(!wants_color(os("1"), os("xterm-256color")));
        assert!(!wants_color(None, os("dumb")));
        assert!(!wants_color(None, None));
    }

    #[test]
    fn restore_without_the_terminal_does_nothing() {
        // Not ours: no escape sequence is written, raw mode is not touched.
        restore();
        assert!(!TAKEN.load(Ordering::SeqCst));
    }
}
