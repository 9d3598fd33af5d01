//! The replay parser against hostile input: random bytes, and real recordings mutated (bytes
//! flipped, control characters and escapes spliced in, cut anywhere, lines dropped or
//! repeated). Whatever the input: no panic; an error is one line that names the file and, for
//! a line, its number within the file; nothing from the input reaches the terminal raw, in
//! the error as printed or in the dashboard showing what did parse; and memory stays bounded
//! (a line is never read past the cap).

use std::io::{BufReader, Read};

use proptest::prelude::*;
use ratatui::{Terminal, backend::TestBackend};
use reaper_trace::dashboard::app::{App, Mode};
use reaper_trace::dashboard::ui;
use reaper_trace::escape::error_line;
use reaper_trace::jsonl::{MAX_LINE_BYTES, Recording, parse_recording};
use reaper_trace::view::View;

const NAME: &str = "t.jsonl";

fn real_recording() -> &'static [u8] {
    include_bytes!("fixtures/recording.jsonl")
}

/// Anything a terminal could act on, or that hides or reorders text.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Parses `input` and checks what a user would see: the error line as printed, or the
/// dashboard drawn from the events that parsed.
fn check(input: &[u8]) -> Result<Recording, String> {
    let lines = input.split(|&b| b == b'\n').count();
    match parse_recording(input, NAME) {
        Ok(rec) => {
            assert!(rec.events.len() < lines, "more events than lines");
            if let Some(n) = rec.cut_line {
                assert!(n <= lines && !input.ends_with(b"\n"), "cut line {n}");
            }
            let screen = render(&rec);
            assert!(
                !screen.lines().any(|l| l.chars().any(is_unsafe)),
                "raw text on screen:\n{screen:?}"
            );
            Ok(rec)
        }
        Err(e) => {
            let line = error_line(&e);
            assert!(
                !line.chars().any(is_unsafe),
                "raw text in the error: {line:?}"
            );
            assert!(!line.contains('\n'));
            let rest = line
                .strip_prefix(&format!("reaper-trace: error: {NAME}"))
                .unwrap_or_else(|| panic!("the error names the file: {line}"));
            // `t.jsonl:N: ...` for a line, `t.jsonl: ...` for the whole file.
            let rest = rest
                .strip_prefix(':')
                .unwrap_or_else(|| panic!("file: then the error: {line}"));
            match rest.split_once(':') {
                Some((n, _)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    let n: usize = n.parse().unwrap();
                    assert!((1..=lines).contains(&n), "line {n} of {lines}: {line}");
                }
                _ => assert!(rest.starts_with(' '), "{line}"),
            }
            // Bounded: the input is quoted short, never whole.
            assert!(line.len() < 1024, "{} bytes: {line}", line.len());
            Err(line)
        }
    }
}

/// The dashboard's text after the whole recording played, at 100x30.
fn render(rec: &Recording) -> String {
    let mut view = View::new(5_000_000_000);
    for ev in &rec.events {
        view.apply(ev);
    }
    if let Some(last) = rec.events.iter().map(|e| e.ts()).max() {
        view.set_clock(last);
    }
    let app = App::new(Mode::Replay {
        file: NAME.into(),
        speed: 0.0,
        position_ns: 0,
        total_ns: 0,
        done: true,
        cut_line: rec.cut_line,
        error: None,
    });
    let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
    t.draw(|f| ui::draw(f, &view, &app)).unwrap();
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[test]
fn the_real_recording_replays_whole() {
    let rec = check(real_recording()).expect("the fixture parses");
    assert_eq!(rec.cut_line, None);
    assert_eq!(
        rec.events.len(),
        real_recording().split(|&b| b == b'\n').count() - 2
    );
}

/// Text an attacker would splice into a string: raw control bytes, JSON escapes that decode
/// to them, C1 and bidi characters, backslashes.
fn hostile_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"\x1b]0;PWNED\x07\x1b[2J".to_vec()),
        Just(br"\u001b]0;PWNED\u0007\u001b[2J".to_vec()),
        Just("\u{9b}2J\u{202e}\u{200b}".as_bytes().to_vec()),
        Just(br"\u009b\u202e\ufeff\\x1b".to_vec()),
        Just(b"\r\n\n\t\0".to_vec()),
        Just(b"\xff\xfe\xc3".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Splice(usize, Vec<u8>),
    /// Replaces a string's contents (the `n`th `"...":"` value) with hostile text.
    IntoString(usize, Vec<u8>),
    Cut(usize),
    DropLine(usize),
    RepeatLine(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), hostile_text()).prop_map(|(i, t)| Mutation::Splice(i, t)),
        (any::<usize>(), hostile_text()).prop_map(|(i, t)| Mutation::IntoString(i, t)),
        any::<usize>().prop_map(Mutation::Cut),
        any::<usize>().prop_map(Mutation::DropLine),
        any::<usize>().prop_map(Mutation::RepeatLine),
    ]
}

fn apply(input: &mut Vec<u8>, m: &Mutation) {
    let len = input.len().max(1);
    match m {
        Mutation::Flip(i, b) => {
            if !input.is_empty() {
                input[i % len] ^= b;
            }
        }
        Mutation::Splice(i, t) => {
            let at = i % (input.len() + 1);
            input.splice(at..at, t.iter().copied());
        }
        Mutation::IntoString(i, t) => {
            let starts: Vec<usize> = input
                .windows(3)
                .enumerate()
                .filter(|(_, w)| w == b"\":\"")
                .map(|(k, _)| k + 3)
                .collect();
            if !starts.is_empty() {
                let at = starts[i % starts.len()];
                // The string's old text stays after the spliced one; the JSON stays valid
                // when the text is (an escape, plain bytes).
                input.splice(at..at, t.iter().copied());
            }
        }
        Mutation::Cut(i) => input.truncate(i % len),
        Mutation::DropLine(i) | Mutation::RepeatLine(i) => {
            let mut lines: Vec<Vec<u8>> =
                input.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let k = i % lines.len();
            if matches!(m, Mutation::DropLine(_)) {
                lines.remove(k);
            } else {
                let l = lines[k].clone();
                lines.insert(k, l);
            }
            *input = lines.join(&b'\n');
        }
    }
}

proptest! {
    // Failures are printed with the input that shrank to them, not kept in a file.
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = check(&bytes);
    }

    #[test]
    fn random_lines_after_a_real_header(lines in proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            hostile_text(),
            Just(br#"{"type":"lost","ts":1,"what":"fork","count":2}"#.to_vec()),
            Just(br#"{"type":"\u001b]0;PWNED\u0007","ts":5}"#.to_vec()),
            Just(br#"{"type":"reap","ts":9,"how":"\u001b[2J"}"#.to_vec()),
        ], 0..12)) {
        let header = real_recording().split(|&b| b == b'\n').next().unwrap();
        let mut input = header.to_vec();
        for l in lines {
            input.push(b'\n');
            input.extend(l);
        }
        let _ = check(&input);
    }

    #[test]
    fn mutated_real_recordings(mutations in proptest::collection::vec(mutation(), 1..6)) {
        let mut input = real_recording().to_vec();
        for m in &mutations {
            apply(&mut input, m);
        }
        let _ = check(&input);
    }

    #[test]
    fn a_real_recording_cut_anywhere_keeps_every_whole_line(at in 0usize..real_recording().len()) {
        let input = &real_recording()[..at];
        let newlines = input.iter().filter(|&&b| b == b'\n').count();
        let tail_is_empty = input.is_empty() || input.ends_with(b"\n");
        match check(input) {
            Ok(rec) => match (newlines, tail_is_empty, rec.cut_line) {
                // Cut right after the header's `}`: a whole header, no event.
                (0, _, None) => prop_assert_eq!(rec.events.len(), 0),
                (_, true, None) => prop_assert_eq!(rec.events.len(), newlines - 1),
                // Cut right after an event's `}`: that event is whole.
                (_, false, None) => prop_assert_eq!(rec.events.len(), newlines),
                // Cut inside an event: every line before it, and the cut one said.
                (_, false, Some(n)) => {
                    prop_assert_eq!(rec.events.len(), newlines - 1);
                    prop_assert_eq!(n, newlines + 1);
                }
                (_, true, Some(n)) => prop_assert!(false, "cut line {} of a file ending in a newline", n),
            },
            // Only a file cut inside its header (or empty) is refused.
            Err(line) => prop_assert_eq!(newlines, 0, "{}", line),
        }
    }
}

/// Counts what is read from it: random bytes without a newline, for ever.
struct Endless {
    rng: u64,
    read: usize,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        for b in buf.iter_mut() {
            self.rng = self
                .rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = ((self.rng >> 33) as u8) | 0x80 | 0x0b; // never b'\n'
        }
        self.read += buf.len();
        Ok(buf.len())
    }
}

#[test]
fn an_endless_line_is_read_no_further_than_the_cap() {
    for prefix in [&b""[..], real_recording()] {
        let mut src = Endless { rng: 7, read: 0 };
        let err = {
            let reader = BufReader::with_capacity(8192, prefix.chain(&mut src));
            parse_recording(reader, NAME).expect_err("an endless line is refused")
        };
        let line = error_line(&err);
        assert!(line.contains("line longer than 16 MiB"), "{line}");
        assert!(!line.chars().any(is_unsafe), "{line:?}");
        assert!(
            src.read <= MAX_LINE_BYTES + 2 * 8192,
            "read {} bytes past the cap",
            src.read
        );
    }
}
