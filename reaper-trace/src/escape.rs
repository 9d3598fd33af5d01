//! Untrusted text (process names, file names, arguments) made safe to show on a terminal.
//!
//! Any process can name itself anything: `prctl(PR_SET_NAME, "\x1b]0;pwned\x07")` or an
//! argument holding `\x1b[2J` would otherwise reach the terminal as a command. Everything a
//! terminal could act on is replaced by a visible escape; the result is plain text.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters that are shown escaped: C0 controls, DEL, C1 controls, and the Unicode format
/// characters that reorder or hide text (bidirectional overrides and isolates, zero-width
/// characters, the BOM). A backslash is doubled, so an escape can't be faked by a name that
/// contains `\x1b` as four plain characters.
fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\\'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}'
        | '\u{feff}')
}

/// `s` with control characters turned into visible escapes: `\t`, `\n`, `\r`, `\xNN` for the
/// other C0 controls and DEL, `\u{NN}` for C1 controls and format characters, `\\` for a
/// backslash. Borrows when there is nothing to escape (the common case).
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// How every error reaches the user: `reaper-trace: error: ` and the error with its causes,
/// escaped. An error may quote anything (a recording's `type`, a path, a process name, an
/// argument): escaped here, at the one place errors are printed, none of it can act on the
/// terminal, and a newline in it can't make the message two lines.
pub fn error_line(e: &anyhow::Error) -> String {
    format!("reaper-trace: error: {}", escape_control(&format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_escaped_line() {
        let e = anyhow::anyhow!("unknown variant `\u{1b}]0;PWNED\u{7}\u{1b}[2J`\nsecond line")
            .context("t.jsonl:2: malformed event");
        let line = error_line(&e);
        assert_eq!(
            line,
            r"reaper-trace: error: t.jsonl:2: malformed event: unknown variant `\x1b]0;PWNED\x07\x1b[2J`\nsecond line"
        );
        assert!(!line.chars().any(char::is_control));
    }

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(escape_control("bash"), Cow::Borrowed("bash")));
        assert!(matches!(escape_control(""), Cow::Borrowed("")));
        // Non-ASCII printable text is left alone.
        assert_eq!(escape_control("café-µs→"), "café-µs→");
    }

    #[test]
    fn c0_controls_and_del() {
        assert_eq!(escape_control("a\u{1b}b"), r"a\x1bb");
        assert_eq!(escape_control("\u{1b}[2J\u{7}"), r"\x1b[2J\x07");
        assert_eq!(escape_control("x\0y\u{7f}"), r"x\x00y\x7f");
        assert_eq!(escape_control("a\tb\nc\rd"), r"a\tb\nc\rd");
    }

    #[test]
    fn c1_controls_and_format_characters() {
        // U+009B is CSI on terminals that read 8-bit controls.
        assert_eq!(escape_control("a\u{9b}2Jb"), r"a\u{9b}2Jb");
        assert_eq!(escape_control("\u{85}"), r"\u{85}");
        assert_eq!(escape_control("abc\u{202e}fdp.exe"), r"abc\u{202e}fdp.exe");
        assert_eq!(escape_control("z\u{200b}w"), r"z\u{200b}w");
    }

    #[test]
    fn backslashes_cannot_fake_an_escape() {
        assert_eq!(escape_control(r"a\x1bb"), r"a\\x1bb");
        assert_ne!(escape_control(r"a\x1bb"), escape_control("a\u{1b}b"));
    }

    #[test]
    fn nothing_a_terminal_acts_on_survives() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let out = escape_control(&all);
        assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        assert!(!out.contains('\u{202e}'));
    }
}
