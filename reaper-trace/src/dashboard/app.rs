//! The dashboard's interaction state: focus, zoom, the selected row of each panel, help, the
//! filter being typed, pause, the tree panel, and what each key does (keys are mapped to
//! commands by [`super::keys::KEYMAP`]). Pure: keys in, state and an [`Action`] out.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::keys::{self, Command};
use super::replay::Jump;
use super::tree::TreePanel;
use crate::event::Proc;
use crate::view::{Filter, Query, View};

/// The longest name filter that can be typed: longer than any comm (16 bytes) or pid, short
/// enough for the prompt line.
const MAX_FILTER_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    Adoptions,
    Zombies,
    Reapers,
    Lifetimes,
}

impl Panel {
    pub const COUNT: usize = 4;
    pub const ALL: [Panel; Self::COUNT] = [
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
        /// Why playing stopped before the end (a malformed line met while playing): shown
        /// instead of the footer; top exits with it.
        error: Option<String>,
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
    /// Move the replay clock.
    Seek(Jump),
    /// Take a snapshot of the process tree for [`App::selected_process`] and open the tree
    /// panel with it ([`App::tree`]).
    OpenTree,
    /// Take the open tree panel's snapshot again, for the same process.
    RefreshTree,
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
    /// The selected row, per panel (kept within its rows while rendering: see
    /// [`App::selected_row`]).
    pub selected: [usize; Panel::COUNT],
    /// The tree panel, while it is open: it takes the keys (scrolling, `r`, `t`/Esc closing).
    pub tree: Option<TreePanel>,
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
            selected: [0; Panel::COUNT],
            tree: None,
        }
    }

    /// The selected row of a panel of `rows` rows: the last one if the selection is past it
    /// (rows went away), none if there are none.
    pub fn selected_row(&self, panel: Panel, rows: usize) -> Option<usize> {
        (rows > 0).then(|| self.selected[panel.index()].min(rows - 1))
    }

    /// The first row to show so that the selected one is among the `visible` ones.
    pub fn first_row(selected: Option<usize>, visible: usize) -> usize {
        selected.map_or(0, |s| s.saturating_sub(visible.saturating_sub(1)))
    }

    fn move_by(&mut self, delta: isize) {
        let s = &mut self.selected[self.focus.index()];
        *s = s.saturating_add_signed(delta);
    }

    /// The process of the focused panel's selected row in `view` (the one shown): an
    /// adoption's orphan, a zombie, a reaper; none for the histogram or an empty panel.
    pub fn selected_process(&self, view: &View) -> Option<Proc> {
        let q = &self.query;
        match self.focus {
            Panel::Adoptions => {
                let rows = view.adoptions(q);
                let i = self.selected_row(Panel::Adoptions, rows.len())?;
                Some(rows[i].orphan.clone())
            }
            Panel::Zombies => {
                let rows = view.zombies(q);
                let i = self.selected_row(Panel::Zombies, rows.len())?;
                Some(rows[i].task.clone())
            }
            Panel::Reapers => {
                let rows = view.reapers(q);
                let i = self.selected_row(Panel::Reapers, rows.len())?;
                Some(rows[i].proc.clone())
            }
            Panel::Lifetimes => None,
        }
    }

    /// A key while the tree panel is open.
    fn on_tree_key(&mut self, command: Command) -> Action {
        let Some(tree) = &mut self.tree else {
            return Action::None;
        };
        let scroll = |t: &mut TreePanel, d: isize| t.scroll = t.scroll.saturating_add_signed(d);
        match command {
            Command::Quit => return Action::Quit,
            Command::Tree | Command::Unzoom => self.tree = None,
            Command::RefreshTree => return Action::RefreshTree,
            Command::Help => self.help = true,
            Command::ScrollUp => scroll(tree, -1),
            Command::ScrollDown => scroll(tree, 1),
            Command::PageUp => scroll(tree, -10),
            Command::PageDown => scroll(tree, 10),
            Command::ScrollTop => tree.scroll = 0,
            _ => return Action::None,
        }
        if let Some(t) = &mut self.tree {
            t.scroll = t.scroll.min(t.len().saturating_sub(1));
        }
        Action::Redraw
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
                    self.selected = [0; Panel::COUNT];
                }
                KeyCode::Esc => self.prompt = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c)
                    if !ctrl && !c.is_control() && text.chars().count() < MAX_FILTER_CHARS =>
                {
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
        if self.tree.is_some() {
            return self.on_tree_key(command);
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
                self.focus =
                    Panel::ALL[(self.focus.index() + Panel::ALL.len() - 1) % Panel::ALL.len()];
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
                self.selected = [0; Panel::COUNT];
            }
            Command::ClearFilters => {
                self.query.filter = Filter::default();
                self.selected = [0; Panel::COUNT];
            }
            Command::Sort => match self.focus {
                Panel::Adoptions => self.query.adoptions = self.query.adoptions.next(),
                Panel::Zombies => self.query.zombies = self.query.zombies.next(),
                Panel::Reapers | Panel::Lifetimes => self.query.reapers = self.query.reapers.next(),
            },
            Command::ScrollUp => self.move_by(-1),
            Command::ScrollDown => self.move_by(1),
            Command::PageUp => self.move_by(-10),
            Command::PageDown => self.move_by(10),
            Command::ScrollTop => self.selected[self.focus.index()] = 0,
            Command::Faster => return Action::Speed(2.0),
            Command::Slower => return Action::Speed(0.5),
            Command::Seek(jump) => return Action::Seek(jump),
            Command::Tree => return Action::OpenTree,
            // Only the open tree panel is taken again.
            Command::RefreshTree => return Action::None,
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
        assert_eq!(app.selected[1], 11);
        assert_eq!(app.selected_row(Panel::Zombies, 30), Some(11));
        // Past the rows there are: the last one.
        assert_eq!(app.selected_row(Panel::Zombies, 5), Some(4));
        assert_eq!(app.selected_row(Panel::Zombies, 0), None);
        app.on_key(key(KeyCode::Home), &[]);
        assert_eq!(app.selected_row(Panel::Zombies, 30), Some(0));
        app.on_key(key(KeyCode::Up), &[]);
        assert_eq!(app.selected_row(Panel::Zombies, 30), Some(0));
        // The window follows the selection.
        assert_eq!(App::first_row(Some(50), 10), 41);
        assert_eq!(App::first_row(Some(3), 10), 0);
        assert_eq!(App::first_row(None, 10), 0);
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
            error: None,
            speed: 1.0,
            position_ns: 0,
            total_ns: 1,
            done: false,
        });
        assert_eq!(replay.on_key(ch('+'), &[]), Action::Speed(2.0));
        assert_eq!(replay.on_key(ch('-'), &[]), Action::Speed(0.5));
        // So does seeking.
        assert_eq!(app.on_key(ch(']'), &[]), Action::None);
        for (c, jump) in [
            (']', Jump::Seconds(10)),
            ('[', Jump::Seconds(-10)),
            ('}', Jump::Tenths(1)),
            ('{', Jump::Tenths(-1)),
        ] {
            assert_eq!(replay.on_key(ch(c), &[]), Action::Seek(jump));
        }
    }

    #[test]
    fn tree_panel_keys() {
        use crate::dashboard::keys::{self, Command};
        use crate::dashboard::tree::{Content, TreePanel};
        // The key is the key map's, whatever it is.
        let binding = |cmd: Command| {
            keys::KEYMAP
                .iter()
                .flat_map(|b| b.keys.iter())
                .find(|(_, c)| *c == cmd)
                .map(|(k, _)| match k {
                    keys::Key::Plain(code) => key(*code),
                    keys::Key::Ctrl(c) => KeyEvent::new(KeyCode::Char(*c), KeyModifiers::CONTROL),
                })
                .expect("bound")
        };
        let (open, refresh) = (binding(Command::Tree), binding(Command::RefreshTree));
        let mut app = App::new(Mode::Live);
        // Refreshing does nothing while the panel is closed.
        assert_eq!(app.on_key(refresh, &[]), Action::None);
        assert_eq!(app.on_key(open, &[]), Action::OpenTree);
        // The run loop takes the snapshot and opens the panel: pid 1 and its 6 descendants.
        let snap = crate::tree::Snapshot::new(crate::tree::tests::host());
        let init = Proc {
            start: 1000,
            ..Proc::fake(1, "init")
        };
        let ready =
            crate::dashboard::tree::content(&init, &snap, 1, 1, &mut crate::tree::NoContainers);
        app.tree = Some(TreePanel::new(Some(init), ready));
        assert_eq!(app.tree.as_ref().unwrap().len(), 7);
        assert_eq!(app.on_key(refresh, &[]), Action::RefreshTree);
        // The panel takes the scrolling keys (as far as its last line) and leaves the rest
        // alone.
        app.on_key(key(KeyCode::Down), &[]);
        assert_eq!(app.tree.as_ref().unwrap().scroll, 1);
        app.on_key(key(KeyCode::PageDown), &[]);
        assert_eq!(app.tree.as_ref().unwrap().scroll, 6);
        app.on_key(key(KeyCode::Up), &[]);
        assert_eq!(app.tree.as_ref().unwrap().scroll, 5);
        assert_eq!(app.selected, [0; Panel::COUNT]);
        assert_eq!(app.on_key(ch('s'), &[]), Action::None);
        assert_eq!(app.on_key(key(KeyCode::Tab), &[]), Action::None);
        assert_eq!(app.focus, Panel::Zombies);
        // Esc closes it, so does the key that opened it; quit still quits.
        assert_eq!(app.on_key(key(KeyCode::Esc), &[]), Action::Redraw);
        assert!(app.tree.is_none());
        app.tree = Some(TreePanel::new(None, Content::NoSelection));
        assert_eq!(app.on_key(open, &[]), Action::Redraw);
        assert!(app.tree.is_none());
        app.tree = Some(TreePanel::new(None, Content::NoSelection));
        assert_eq!(app.on_key(ch('q'), &[]), Action::Quit);
    }

    #[test]
    fn the_selected_process_of_each_panel() {
        use crate::view::tests::{S, p, reap, zombie};
        let mut v = View::new(S);
        let sh = p(100, 1, "sh");
        for pid in [201, 202, 203] {
            v.apply(&zombie(S, &p(pid, pid as u64, "z"), &sh));
        }
        v.apply(&reap(2 * S, &p(203, 203, "z"), &sh, Some(S)));
        let mut app = App::new(Mode::Live);
        assert_eq!(app.selected_process(&v).map(|p| p.pid), Some(201));
        app.on_key(key(KeyCode::Down), &[]);
        assert_eq!(app.selected_process(&v).map(|p| p.pid), Some(202));
        // Past the last row: the last row.
        app.on_key(key(KeyCode::PageDown), &[]);
        assert_eq!(app.selected_process(&v).map(|p| p.pid), Some(202));
        app.on_key(ch('3'), &[]);
        assert_eq!(app.selected_process(&v).map(|p| p.pid), Some(100));
        app.on_key(ch('1'), &[]);
        assert_eq!(app.selected_process(&v), None);
        app.on_key(ch('4'), &[]);
        assert_eq!(app.selected_process(&v), None);
    }
}
