//! Handling of untrusted text: everything a remote server says (version strings, well-known
//! bodies, error text) is stripped of control characters and capped in length before it is
//! stored, shown or used as a metric label.

/// The longest untrusted string kept, in characters.
pub(crate) const MAX_UNTRUSTED_CHARS: usize = 128;

/// `s` without control characters, at most [`MAX_UNTRUSTED_CHARS`] characters (an ellipsis
/// marks a cut).
pub(crate) fn cap(s: &str) -> String {
    cap_to(s, MAX_UNTRUSTED_CHARS)
}

/// Like [`cap`] with an explicit limit.
pub(crate) fn cap_to(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    for (count, c) in s.chars().enumerate() {
        if count == max_chars {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// The start of a body as text, for error messages: lossy UTF-8, whitespace collapsed.
pub(crate) fn excerpt(body: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(max_chars * 4)]);
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    cap_to(&collapsed, max_chars)
}

/// `s` safe inside HTML, XML or SVG text and double-quoted attributes.
pub(crate) fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Percent-encodes every byte of `s` (UTF-8) but RFC 3986's unreserved characters: safe as a
/// path segment, a query value or a header parameter.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_strips_control_characters() {
        assert_eq!(cap("Synapse"), "Synapse");
        assert_eq!(cap("a\u{1b}[31mb\nc"), "a [31mb c");
        let long = "x".repeat(500);
        let capped = cap(&long);
        assert_eq!(capped.chars().count(), MAX_UNTRUSTED_CHARS + 1);
        assert!(capped.ends_with('…'));
        assert_eq!(cap_to("日本語テキスト", 3), "日本語…");
    }

    #[test]
    fn excerpts_collapse_whitespace_and_survive_bad_utf8() {
        assert_eq!(
            excerpt(b"<html>\n  <body>502</body>", 100),
            "<html> <body>502</body>"
        );
        assert_eq!(excerpt(b"\xff\xfeok", 10), "\u{fffd}\u{fffd}ok");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
    }
}
