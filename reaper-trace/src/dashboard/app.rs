//! The dashboard's interaction state: focus, zoom, scrolling, help, the filter being typed,
//! pause, and what each key does (keys are mapped to commands by [`super::keys::KEYMAP`]).
//! Pure: keys in, state and an [`Action`] out.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::keys::{self, Command};
use crate::view::{Filter, Query};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    Adoptions,
    Zombies,
    Reapers,
    Lifetimes,
}

impl Panel {
    pub const ALL: [Panel; 4] = [
        Panel::Adoptions,
        Panel::Zombies,
        Panel::Reapers,
        Panel::Lifetimes,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|&p| p == self).expect("listed")
    }

    pub fn title(self) -> &'static str {
        match self {
            Panel::Adoptions => "Adoptions",
            Panel::Zombies => "Zombies",
            Panel::Reapers => "Reapers",
            Panel::Lifetimes => "Zombie lifetimes",
        }
    }
}

/// Where the events come from, as the header tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Live, system-wide.
    Live,
    Replay {
        file: String,
        /// 0: as fast as possible.
        speed: f64,
        /// Recording time played so far and in all, ns.
        position_ns: u64,
        total_ns: u64,
        done: bool,
        /// The recording's last line, cut short (disk full, recorder killed): said in the
        /// header, the events before it are replayed.
        cut_line: Option<usize>,
    },
}

/// What the run loop has to do after a key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    None,
    /// Something on screen changed.
    Redraw,
    Quit,
    /// Pause was switched (`App::paused` tells which way).
    Pause,
    /// Replay speed multiplied by this.
    Speed(f64),
}

#[derive(Debug, Clone)]
pub struct App {
    pub mode: Mode,
    pub query: Query,
    pub focus: Panel,
    /// The focused panel fills the screen.
    pub zoom: bool,
    pub help: bool,
    pub paused: bool,
    /// The name filter being typed, when it is.
    pub prompt: Option<String>,
    /// First row shown, per panel.
    pub scroll: [usize; 4],
}

impl App {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            query: Query::default(),
            focus: Panel::Zombies,
            zoom: false,
            help: false,
            paused: false,
            prompt: None,
            scroll: [0; 4],
        }
    }

    pub fn scroll(&self, panel: Panel) -> usize {
        self.scroll[panel.index()]
    }

    /// Keeps a panel's scroll position within its rows (called while rendering).
    pub fn clamp_scroll(scroll: usize, rows: usize, visible: usize) -> usize {
        scroll.min(rows.saturating_sub(visible))
    }

    fn scroll_by(&mut self, delta: isize) {
        let s = &mut self.scroll[self.focus.index()];
        *s = s.saturating_add_signed(delta);
    }

    /// Handles one key. `namespaces` are the pid namespaces seen, for the namespace filter.
    pub fn on_key(&mut self, key: KeyEvent, namespaces: &[u32]) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        // Raw mode turns Ctrl-C into a key: it always quits, even while a filter is typed.
        if ctrl && matches!(keys::command(&key), Some((Command::Quit, _))) {
            return Action::Quit;
        }
        if let Some(text) = &mut self.prompt {
            match key.code {
                KeyCode::Enter => {
                    let t = text.trim().to_string();
                    self.query.filter.name = (!t.is_empty()).then_some(t);
                    self.prompt = None;
                    self.scroll = [0; 4];
                }
                KeyCode::Esc => self.prompt = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) if !ctrl && !c.is_control() && text.chars().count() < 64 => {
                    text.push(c)
                }
                _ => return Action::None,
            }
            return Action::Redraw;
        }
        if self.help {
            // Any key closes the help, and quit still quits.
            self.help = false;
            return match keys::command(&key) {
                Some((Command::Quit, _)) => Action::Quit,
                _ => Action::Redraw,
            };
        }
        let Some((command, binding)) = keys::command(&key) else {
            return Action::None;
        };
        if binding.replay_only && !self.is_replay() {
            return Action::None;
        }
        match command {
            Command::Quit => return Action::Quit,
            Command::Unzoom if self.zoom => self.zoom = false,
            Command::Unzoom => return Action::None,
            Command::Pause => {
                self.paused = !self.paused;
                return Action::Pause;
            }
            Command::FocusNext => {
                self.focus = Panel::ALL[(self.focus.index() + 1) % Panel::ALL.len()];
            }
            Command::FocusPrevious => {
                self.focus = Panel::ALL[(self.focus.index() + Panel::ALL.len() - 1) % 4];
            }
            Command::Focus(n) => self.focus = Panel::ALL[n],
            Command::Zoom => self.zoom = !self.zoom,
            Command::Help => self.help = true,
            Command::FilterName => {
                self.prompt = Some(self.query.filter.name.clone().unwrap_or_default())
            }
            Command::NextPidns => {
                // Cycle: all, then each namespace seen, then all again.
                let next = match self.query.filter.pidns {
                    None => namespaces.first().copied(),
                    Some(cur) => namespaces.iter().copied().find(|&n| n > cur),
                };
                self.query.filter.pidns = next;
                self.scroll = [0; 4];
            }
            Command::ClearFilters => {
                self.query.filter = Filter::default();
                self.scroll = [0; 4];
            }
            Command::Sort => match self.focus {
                Panel::Adoptions => self.query.adoptions = self.query.adoptions.next(),
                Panel::Zombies => self.query.zombies = self.query.zombies.next(),
                Panel::Reapers | Panel::Lifetimes => self.query.reapers = self.query.reapers.next(),
            },
            Command::ScrollUp => self.scroll_by(-1),
            Command::ScrollDown => self.scroll_by(1),
            Command::PageUp => self.scroll_by(-10),
            Command::PageDown => self.scroll_by(10),
            Command::ScrollTop => self.scroll[self.focus.index()] = 0,
            Command::Faster => return Action::Speed(2.0),
            Command::Slower => return Action::Speed(0.5),
        }
        Action::Redraw
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.mode, Mode::Replay { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{ReaperSort, ZombieSort};

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ch(c: char) -> KeyEvent {
        key(KeyCode::Char(c))
    }

    #[test]
    fn quit_keys() {
        let mut app = App::new(Mode::Live);
        assert_eq!(app.on_key(ch('q'), &[]), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.on_key(ctrl_c, &[]), Action::Quit);
        // Even while typing a filter.
        app.on_key(ch('/'), &[]);
        assert_eq!(app.on_key(ctrl_c, &[]), Action::Quit);
    }

    #[test]
    fn focus_zoom_sort_and_scroll() {
        let mut app = App::new(Mode::Live);
        assert_eq!(app.focus, Panel::Zombies);
        app.on_key(ch('s'), &[]);
        assert_eq!(app.query.zombies, ZombieSort::Pid);
        app.on_key(key(KeyCode::Tab), &[]);
        assert_eq!(app.focus, Panel::Reapers);
        app.on_key(ch('s'), &[]);
        assert_eq!(app.query.reapers, ReaperSort::Adopted);
        app.on_key(key(KeyCode::BackTab), &[]);
        app.on_key(key(KeyCode::BackTab), &[]);
        assert_eq!(app.focus, Panel::Adoptions);
        app.on_key(ch('4'), &[]);
        assert_eq!(app.focus, Panel::Lifetimes);
        app.on_key(ch('z'), &[]);
        assert!(app.zoom);
        app.on_key(key(KeyCode::Esc), &[]);
        assert!(!app.zoom);
        app.on_key(ch('2'), &[]);
        app.on_key(key(KeyCode::Down), &[]);
        app.on_key(key(KeyCode::PageDown), &[]);
        assert_eq!(app.scroll(Panel::Zombies), 11);
        app.on_key(key(KeyCode::Home), &[]);
        assert_eq!(app.scroll(Panel::Zombies), 0);
        app.on_key(key(KeyCode::Up), &[]);
        assert_eq!(app.scroll(Panel::Zombies), 0);
        assert_eq!(App::clamp_scroll(50, 10, 4), 6);
        assert_eq!(App::clamp_scroll(3, 2, 4), 0);
    }

    #[test]
    fn name_filter_prompt() {
        let mut app = App::new(Mode::Live);
        app.on_key(ch('/'), &[]);
        for c in "slex".chars() {
            app.on_key(ch(c), &[]);
        }
        app.on_key(key(KeyCode::Backspace), &[]);
        app.on_key(ch('e'), &[]);
        // Typing 'q' goes into the filter; it doesn't quit.
        assert_eq!(app.prompt.as_deref(), Some("slee"));
        app.on_key(key(KeyCode::Enter), &[]);
        assert_eq!(app.query.filter.name.as_deref(), Some("slee"));
        assert!(app.prompt.is_none());
        // Esc cancels an edit; an empty filter clears it.
        app.on_key(ch('/'), &[]);
        app.on_key(ch('x'), &[]);
        app.on_key(key(KeyCode::Esc), &[]);
        assert_eq!(app.query.filter.name.as_deref(), Some("slee"));
        app.on_key(ch('/'), &[]);
        for _ in 0..4 {
            app.on_key(key(KeyCode::Backspace), &[]);
        }
        app.on_key(key(KeyCode::Enter), &[]);
        assert_eq!(app.query.filter.name, None);
    }

    #[test]
    fn namespace_filter_cycles() {
        let mut app = App::new(Mode::Live);
        let ns = [10, 20];
        app.on_key(ch('n'), &ns);
        assert_eq!(app.query.filter.pidns, Some(10));
        app.on_key(ch('n'), &ns);
        assert_eq!(app.query.filter.pidns, Some(20));
        app.on_key(ch('n'), &ns);
        assert_eq!(app.query.filter.pidns, None);
        app.on_key(ch('n'), &ns);
        app.on_key(ch('c'), &ns);
        assert_eq!(app.query.filter, Filter::default());
    }

    #[test]
    fn pause_help_and_speed() {
        let mut app = App::new(Mode::Live);
        assert_eq!(app.on_key(ch('p'), &[]), Action::Pause);
        assert!(app.paused);
        assert_eq!(app.on_key(ch(' '), &[]), Action::Pause);
        assert!(!app.paused);
        app.on_key(ch('?'), &[]);
        assert!(app.help);
        assert_eq!(app.on_key(ch('x'), &[]), Action::Redraw);
        assert!(!app.help);
        // Speed only means something in a replay.
        assert_eq!(app.on_key(ch('+'), &[]), Action::None);
        let mut replay = App::new(Mode::Replay {
            file: "t.jsonl".into(),
            cut_line: None,
            speed: 1.0,
            position_ns: 0,
            total_ns: 1,
            done: false,
        });
        assert_eq!(replay.on_key(ch('+'), &[]), Action::Speed(2.0));
        assert_eq!(replay.on_key(ch('-'), &[]), Action::Speed(0.5));
    }
}
