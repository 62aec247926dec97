//! Keys: what each key asks of the view, and a thread that reads terminal events and hands
//! them to the async loop.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;

use super::model::Action;

/// How often the reader thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(100);

/// The action of a key press, if it has one.
pub fn action(key: KeyEvent) -> Option<Action> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        // Raw mode turns Ctrl-C into a key: it quits, as it would without raw mode.
        return (key.code == KeyCode::Char('c')).then_some(Action::Quit);
    }
    Some(match key.code {
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => Action::Quit,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Home => Action::First,
        KeyCode::End | KeyCode::Char('G') => Action::Last,
        KeyCode::Char('s') => Action::NextSort,
        KeyCode::Char('S') => Action::PrevSort,
        KeyCode::Char('g') => Action::NextGroup,
        KeyCode::Char('p' | ' ') => Action::Pause,
        KeyCode::Char('r') => Action::Reset,
        _ => return None,
    })
}

/// What the terminal says.
#[derive(Debug)]
pub enum Input {
    /// A key with an action.
    Action(Action),
    /// The terminal changed size: draw again.
    Resize,
    /// Reading the terminal failed; the reader has stopped.
    Failed(io::Error),
}

/// A thread reading terminal events into a channel, stopped and joined when dropped.
pub struct KeyReader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KeyReader {
    /// Starts the thread; its inputs arrive on the returned receiver.
    pub fn start() -> io::Result<(Self, mpsc::UnboundedReceiver<Input>)> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("top-keys".into())
            .spawn(move || read_events(&stopped, &sender))?;
        Ok((
            Self {
                stop,
                thread: Some(thread),
            },
            receiver,
        ))
    }
}

/// Blocking reads with a timeout, so the stop flag is seen within [`POLL`].
fn read_events(stop: &AtomicBool, sender: &mpsc::UnboundedSender<Input>) {
    while !stop.load(Ordering::Relaxed) {
        let input = match event::poll(POLL) {
            Ok(false) => continue,
            Ok(true) => match event::read() {
                Ok(Event::Key(key)) => match action(key) {
                    Some(action) => Input::Action(action),
                    None => continue,
                },
                Ok(Event::Resize(..)) => Input::Resize,
                Ok(_) => continue,
                Err(err) => Input::Failed(err),
            },
            Err(err) => Input::Failed(err),
        };
        let failed = matches!(input, Input::Failed(_));
        if sender.send(input).is_err() || failed {
            return;
        }
    }
}

impl Drop for KeyReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> Option<Action> {
        action(KeyEvent::new(code, modifiers))
    }

    #[test]
    fn keys_map_to_actions() {
        let plain = KeyModifiers::NONE;
        assert_eq!(press(KeyCode::Char('q'), plain), Some(Action::Quit));
        assert_eq!(
            press(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Action::Quit)
        );
        assert_eq!(press(KeyCode::Char('x'), KeyModifiers::CONTROL), None);
        assert_eq!(press(KeyCode::Up, plain), Some(Action::Up));
        assert_eq!(press(KeyCode::Char('k'), plain), Some(Action::Up));
        assert_eq!(press(KeyCode::Down, plain), Some(Action::Down));
        assert_eq!(press(KeyCode::Char('j'), plain), Some(Action::Down));
        assert_eq!(press(KeyCode::Char('s'), plain), Some(Action::NextSort));
        assert_eq!(
            press(KeyCode::Char('S'), KeyModifiers::SHIFT),
            Some(Action::PrevSort)
        );
        assert_eq!(press(KeyCode::Char('g'), plain), Some(Action::NextGroup));
        assert_eq!(press(KeyCode::Char('p'), plain), Some(Action::Pause));
        assert_eq!(press(KeyCode::Char('r'), plain), Some(Action::Reset));
        assert_eq!(press(KeyCode::Char('z'), plain), None);
        let release = KeyEvent {
            kind: KeyEventKind::Release,
            ..KeyEvent::new(KeyCode::Char('q'), plain)
        };
        assert_eq!(action(release), None, "only presses act");
    }
}
