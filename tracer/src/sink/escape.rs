//! Names from the traced host or a file made harmless for their output: control characters
//! as visible escapes on a terminal, formula prefixes neutralised in CSV cells.
//!
//! A task name, device, hostname, kernel release, drop reason or IRQ name comes from the
//! traced host (any local user picks their own comm) or from a recording (anyone can craft
//! one). Printed raw, ESC and BEL rewrite the reader's terminal (title, colours) and CR/LF
//! forge lines. JSON output needs none of this: its writer escapes control characters.

use std::borrow::Cow;

/// `text` with every control character (C0, DEL, C1; CR and LF too) as a visible escape:
/// `\x1b`, `\x0a`, `\u{9b}`. A backslash stays as it is.
pub fn text(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Like [`text`] but keeps line feeds: for a multi-line text whose names were escaped with
/// [`text`] already (a second guard: no ESC, BEL or CR reaches the terminal raw).
pub fn lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && !(keep_newlines && c == '\n');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// A CSV cell's text with a leading `=`, `+`, `-`, `@`, tab or CR neutralised by a `'` in
/// front (OWASP, CSV injection): a spreadsheet shows it as text instead of running it.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        let hostile = "\x1b]0;PWN\x07\x1b[31mX\r\nforged\x7f\u{9b}2J\u{85}";
        let escaped = text(hostile);
        assert_eq!(
            escaped,
            "\\x1b]0;PWN\\x07\\x1b[31mX\\x0d\\x0aforged\\x7f\\u{9b}2J\\u{85}"
        );
        assert!(!escaped.chars().any(char::is_control), "{escaped}");
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            let escaped = text(&c.to_string()).into_owned();
            assert!(escaped.starts_with('\\'), "{c:?} -> {escaped}");
            assert!(!escaped.chars().any(char::is_control), "{c:?} -> {escaped}");
        }
    }

    #[test]
    fn ordinary_names_are_borrowed_unchanged() {
        for name in [
            "reader",
            "eth0",
            "virtio2-input.0",
            "kworker/0:1H",
            "café ☕",
            "",
        ] {
            assert!(matches!(text(name), Cow::Borrowed(n) if n == name));
        }
    }

    #[test]
    fn lines_keeps_line_feeds_only() {
        assert_eq!(lines("a\nb\rc\x1b"), "a\nb\\x0dc\\x1b");
    }

    #[test]
    fn csv_cells_starting_with_a_formula_prefix_are_neutralised() {
        for cell in ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\t=x", "\r=x"] {
            assert_eq!(csv_cell(cell), format!("'{cell}"));
        }
        for cell in ["reader", "1=2", "", "a-b"] {
            assert_eq!(csv_cell(cell), cell);
        }
    }
}
