//! The dashboard's key map, as data: what each key does ([`App::on_key`]), the help screen,
//! the footer line and `top --help` are all made from [`KEYMAP`], so none of them can list a
//! key the others don't know.
//!
//! [`App::on_key`]: super::app::App::on_key

use std::fmt::Write as _;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::replay::Jump;

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Quit,
    Pause,
    FocusNext,
    FocusPrevious,
    /// Focus panel N (0-based).
    Focus(usize),
    Zoom,
    /// Back from a zoom (nothing otherwise).
    Unzoom,
    ScrollUp,
    ScrollDown,
    PageUp,
    PageDown,
    ScrollTop,
    Sort,
    NextPidns,
    FilterName,
    ClearFilters,
    Faster,
    Slower,
    /// Move the replay clock.
    Seek(Jump),
    /// Open (or close) the tree panel of the selected process.
    Tree,
    /// Take the open tree panel's snapshot again.
    RefreshTree,
    Help,
}

/// A key as the map names it: a plain key, or Ctrl with a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Plain(KeyCode),
    Ctrl(char),
}

const fn c(ch: char) -> Key {
    Key::Plain(KeyCode::Char(ch))
}

const fn k(code: KeyCode) -> Key {
    Key::Plain(code)
}

impl Key {
    fn matches(self, ev: &KeyEvent) -> bool {
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        match self {
            Key::Ctrl(ch) => ctrl && ev.code == KeyCode::Char(ch),
            // Shift is part of the character (`Q`, `?`, `+`) or of the code (BackTab).
            Key::Plain(code) => !ctrl && ev.code == code,
        }
    }

    /// How the help names it.
    pub fn label(self) -> String {
        match self {
            Key::Ctrl(ch) => format!("Ctrl-{}", ch.to_ascii_uppercase()),
            Key::Plain(code) => match code {
                KeyCode::Char(' ') => "space".into(),
                KeyCode::Char(ch) => ch.to_string(),
                KeyCode::Tab => "Tab".into(),
                KeyCode::BackTab => "Shift-Tab".into(),
                KeyCode::Enter => "Enter".into(),
                KeyCode::Esc => "Esc".into(),
                KeyCode::Up => "Up".into(),
                KeyCode::Down => "Down".into(),
                KeyCode::PageUp => "PgUp".into(),
                KeyCode::PageDown => "PgDn".into(),
                KeyCode::Home => "Home".into(),
                KeyCode::F(n) => format!("F{n}"),
                other => format!("{other:?}"),
            },
        }
    }
}

/// One line of the help: its keys, each with what it does, and what the line says.
pub struct Binding {
    pub keys: &'static [(Key, Command)],
    pub what: &'static str,
    /// The word the footer shows after the first key, for the bindings it shows.
    pub footer: Option<&'static str>,
    /// Only while a recording is replayed.
    pub replay_only: bool,
}

const fn bind(
    keys: &'static [(Key, Command)],
    what: &'static str,
    footer: Option<&'static str>,
) -> Binding {
    Binding {
        keys,
        what,
        footer,
        replay_only: false,
    }
}

use Command::*;

/// Every key of the dashboard, in the order the help lists them. (While a name filter is
/// typed, keys go into it: Enter applies it, Esc cancels, Ctrl-C still quits.)
pub const KEYMAP: &[Binding] = &[
    bind(
        &[
            (c('q'), Quit),
            (c('Q'), Quit),
            (Key::Ctrl('c'), Quit),
            (Key::Ctrl('\\'), Quit),
        ],
        "quit",
        Some("quit"),
    ),
    bind(
        &[(c('p'), Pause), (c(' '), Pause)],
        "pause (live: freeze the screen; replay: stop)",
        Some("pause"),
    ),
    bind(
        &[
            (k(KeyCode::Tab), FocusNext),
            (k(KeyCode::BackTab), FocusPrevious),
            (c('1'), Focus(0)),
            (c('2'), Focus(1)),
            (c('3'), Focus(2)),
            (c('4'), Focus(3)),
        ],
        "focus the next, previous or Nth panel",
        Some("focus"),
    ),
    bind(
        &[
            (c('z'), Zoom),
            (k(KeyCode::Enter), Zoom),
            (k(KeyCode::Esc), Unzoom),
        ],
        "zoom the focused panel / back",
        Some("zoom"),
    ),
    bind(
        &[
            (k(KeyCode::Up), ScrollUp),
            (c('k'), ScrollUp),
            (k(KeyCode::Down), ScrollDown),
            (c('j'), ScrollDown),
        ],
        "move the focused panel's selection by a row",
        None,
    ),
    bind(
        &[
            (k(KeyCode::PageUp), PageUp),
            (k(KeyCode::PageDown), PageDown),
            (k(KeyCode::Home), ScrollTop),
            (c('g'), ScrollTop),
        ],
        "move it by 10 rows, back to the top",
        None,
    ),
    bind(
        &[(c('t'), Tree), (c('r'), RefreshTree)],
        "the selected process in the process tree (r: snapshot again)",
        Some("tree"),
    ),
    bind(
        &[(c('n'), NextPidns)],
        "filter by container / pid namespace (next one seen)",
        Some("ctr"),
    ),
    bind(
        &[(c('/'), FilterName)],
        "filter by name, or by pid if all digits",
        Some("name"),
    ),
    bind(&[(c('c'), ClearFilters)], "clear the filters", None),
    bind(
        &[(c('s'), Sort)],
        "sort the focused panel (next order)",
        Some("sort"),
    ),
    Binding {
        keys: &[
            (c('+'), Faster),
            (c('>'), Faster),
            (c('-'), Slower),
            (c('<'), Slower),
        ],
        what: "replay: twice as fast, half as fast",
        footer: None,
        replay_only: true,
    },
    Binding {
        keys: &[
            (c(']'), Seek(Jump::Seconds(10))),
            (c('['), Seek(Jump::Seconds(-10))),
            (c('}'), Seek(Jump::Tenths(1))),
            (c('{'), Seek(Jump::Tenths(-1))),
        ],
        what: "replay: 10 s on, back; a tenth of the recording on, back",
        footer: None,
        replay_only: true,
    },
    bind(
        &[(c('?'), Help), (c('h'), Help), (k(KeyCode::F(1)), Help)],
        "this help (any key closes it)",
        Some("help"),
    ),
];

/// The command a key maps to, if any.
pub fn command(ev: &KeyEvent) -> Option<(Command, &'static Binding)> {
    KEYMAP.iter().find_map(|b| {
        b.keys
            .iter()
            .find(|(key, _)| key.matches(ev))
            .map(|&(_, cmd)| (cmd, b))
    })
}

impl Binding {
    /// The keys, comma-separated, with runs of digits shortened (`1-4`).
    pub fn label(&self) -> String {
        let labels: Vec<String> = self.keys.iter().map(|(k, _)| k.label()).collect();
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < labels.len() {
            let digit = |s: &str| s.len() == 1 && s.as_bytes()[0].is_ascii_digit();
            let mut j = i;
            while j + 1 < labels.len()
                && digit(&labels[j])
                && digit(&labels[j + 1])
                && labels[j + 1].as_bytes()[0] == labels[j].as_bytes()[0] + 1
            {
                j += 1;
            }
            if j > i + 1 {
                out.push(format!("{}-{}", labels[i], labels[j]));
            } else {
                out.extend(labels[i..=j].iter().cloned());
            }
            i = j + 1;
        }
        out.join(", ")
    }
}

/// The footer: the first key of each binding that has a footer word.
pub fn footer_line() -> String {
    KEYMAP
        .iter()
        .filter_map(|b| b.footer.map(|w| format!("{} {w}", b.keys[0].0.label())))
        .collect::<Vec<_>>()
        .join("  ")
}

/// The keys as `top --help` (and the man page) lists them.
pub fn help_text() -> String {
    let width = KEYMAP.iter().map(|b| b.label().len()).max().unwrap_or(0);
    let mut s = String::from("Keys:\n");
    for b in KEYMAP {
        let _ = writeln!(s, "  {:width$}  {}", b.label(), b.what);
    }
    s.push_str("  (while typing a filter: Enter applies it, Esc cancels)\n");
    s.push_str("  (in the tree: t or Esc closes it, the scrolling keys scroll it)");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice() {
        let all: Vec<Key> = KEYMAP
            .iter()
            .flat_map(|b| b.keys.iter().map(|(k, _)| *k))
            .collect();
        for (i, a) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(a), "{a:?} bound twice");
        }
    }

    #[test]
    fn labels_and_lines() {
        assert_eq!(KEYMAP[0].label(), "q, Q, Ctrl-C, Ctrl-\\");
        assert_eq!(KEYMAP[2].label(), "Tab, Shift-Tab, 1-4");
        assert_eq!(
            footer_line(),
            "q quit  p pause  Tab focus  z zoom  t tree  n ctr  / name  s sort  ? help"
        );
        let help = help_text();
        for b in KEYMAP {
            assert!(help.contains(&b.label()) && help.contains(b.what), "{help}");
        }
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(command(&ctrl_c).map(|c| c.0), Some(Quit));
        let plain_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE);
        assert_eq!(command(&plain_c).map(|c| c.0), Some(ClearFilters));
        let shift_q = KeyEvent::new(KeyCode::Char('Q'), KeyModifiers::SHIFT);
        assert_eq!(command(&shift_q).map(|c| c.0), Some(Quit));
    }
}
