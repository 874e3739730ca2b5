//! Log lines never carry raw control characters: a value a client chose (a key, a
//! category, a header) cannot forge a log line with a newline or rewrite a terminal with
//! an escape sequence. Every control character of a formatted line but its final newline
//! is written escaped (`\n`, `\r`, `\t`, `\x1b`, `\u{85}`, ...).

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Wraps a [`MakeWriter`]; its writers escape control characters.
#[derive(Debug)]
pub(crate) struct EscapeControls<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for EscapeControls<M> {
    type Writer = Escaping<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaping(self.0.make_writer())
    }
}

/// A writer that escapes control characters (each `write` is one formatted line).
#[derive(Debug)]
pub(crate) struct Escaping<W>(W);

/// `text` with every control character but a final newline escaped.
pub(crate) fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    if !body.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in body.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    if body.len() < text.len() {
        out.push('\n');
    }
    std::borrow::Cow::Owned(out)
}

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(escape_controls(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_but_the_final_newline_is_kept() {
        assert_eq!(escape_controls("plain line\n"), "plain line\n");
        assert_eq!(
            escape_controls("key=a\n2026 ERROR forged\u{1b}[31m\r\t\n"),
            "key=a\\n2026 ERROR forged\\u{1b}[31m\\r\\t\n"
        );
        assert_eq!(escape_controls("no newline\u{7f}"), "no newline\\u{7f}");
    }
}
