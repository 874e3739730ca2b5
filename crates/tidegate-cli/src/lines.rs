//! Lines of an input read with a bound on their length, so that one huge line cannot
//! take the memory of the process.

use std::io::{self, BufRead};

/// Longest input line (bytes): a longer one is an error, and is read no further.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Lines of `R` (without their `\n` or `\r\n`), numbered from 1, each at most
/// [`MAX_LINE_BYTES`].
#[derive(Debug)]
pub struct BoundedLines<R> {
    input: R,
    line: Vec<u8>,
    number: usize,
}

impl<R: BufRead> BoundedLines<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: Vec::new(),
            number: 0,
        }
    }

    /// The next line and its number; `None` at the end of the input. An error names
    /// the line (too long, not UTF-8, unreadable).
    pub fn next_line(&mut self) -> Option<anyhow::Result<(usize, &str)>> {
        self.number += 1;
        let number = self.number;
        match self.read_line() {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                return Some(Err(
                    anyhow::Error::new(e).context(format!("line {number}: cannot read input"))
                ));
            }
        }
        Some(
            std::str::from_utf8(&self.line)
                .map(|l| (number, l.strip_suffix('\r').unwrap_or(l)))
                .map_err(|e| anyhow::Error::new(e).context(format!("line {number}: not UTF-8"))),
        )
    }

    /// Reads the next line into `self.line`; `Ok(false)` at the end of the input.
    fn read_line(&mut self) -> io::Result<bool> {
        self.line.clear();
        loop {
            let available = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(!self.line.is_empty());
            }
            let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            if self.line.len() + chunk.len() > MAX_LINE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the line is longer than {MAX_LINE_BYTES} bytes, the longest accepted"),
                ));
            }
            self.line.extend_from_slice(chunk);
            let used = found.unwrap_or(available.len());
            self.input.consume(used);
            if found.is_some() {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_a_line_over_the_bound_is_an_error() {
        let mut l = BoundedLines::new(&b"a\r\n\nb"[..]);
        assert_eq!(l.next_line().unwrap().unwrap(), (1, "a"));
        assert_eq!(l.next_line().unwrap().unwrap(), (2, ""));
        assert_eq!(l.next_line().unwrap().unwrap(), (3, "b"));
        assert!(l.next_line().is_none());
        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        let mut l = BoundedLines::new(&long[..]);
        let e = format!("{:#}", l.next_line().unwrap().unwrap_err());
        assert_eq!(
            e,
            "line 1: cannot read input: the line is longer than 1048576 bytes, the longest accepted"
        );
    }
}
