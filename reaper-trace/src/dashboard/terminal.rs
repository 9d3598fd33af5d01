//! Taking the terminal over and always giving it back: raw mode and the alternate screen are
//! undone when the guard is dropped (normal exit, `?` errors, unwinding) and, before the panic
//! message is printed, by a panic hook.

use std::io::{self, BufWriter, Stdout, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// Whether the terminal is in our hands (raw mode, alternate screen) right now.
static ACTIVE: AtomicBool = AtomicBool::new(false);

pub type Backend = CrosstermBackend<BufWriter<Stdout>>;

pub struct TerminalGuard {
    pub terminal: Terminal<Backend>,
}

impl TerminalGuard {
    /// Raw mode, alternate screen, hidden cursor.
    pub fn enter() -> Result<Self> {
        install_panic_hook();
        terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        ACTIVE.store(true, Ordering::SeqCst);
        let setup = || -> Result<Terminal<Backend>> {
            execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
            // One write per frame: the backend's output is buffered and flushed by `draw`.
            let mut t = Terminal::new(CrosstermBackend::new(BufWriter::with_capacity(
                1 << 16,
                io::stdout(),
            )))?;
            t.clear()?;
            Ok(t)
        };
        match setup() {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e.context("cannot set up the terminal"))
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = self.terminal.backend_mut().flush();
        restore();
    }
}

/// Gives the terminal back: leaves the alternate screen, shows the cursor, cooked mode.
/// Does nothing if it was not taken, so it can run from both the guard and the panic hook.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = io::stdout();
        let _ = execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
        let _ = out.flush();
    }
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
