//! Every path a backend may serve for one request target.
//!
//! Backends disagree on what a path means: nginx decodes before it
//! resolves dot segments, Tomcat and Jetty drop `;` parameters (so `..;`
//! is `..` to them), Windows servers split on `\` and trim trailing dots,
//! an object store may keep `%2e%2e` as a name, a case-insensitive file
//! system serves `/PRIVATE` as `/private`. A gate that decides on one
//! reading can be walked around through another, so the decision is made
//! on all of them: `readings` yields each distinct one, and the rules must
//! grant every reading (case folded too, see `rules::RuleSet`).
//!
//! The common path (plain ASCII, no escapes, separators or dot segments)
//! has one reading and is borrowed as it is.

use std::borrow::Cow;

/// Longer paths are refused: no backend needs them and every reading is a copy.
pub const MAX_PATH_LEN: usize = 4 * 1024;
/// A path that is ambiguous in more ways than this is refused rather than
/// read in every combination (2^n readings), which would let anyone make
/// each request cost milliseconds.
const MAX_AMBIGUITIES: u32 = 5;

/// Why a path is refused outright rather than read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// NUL, CR, LF and other control bytes, raw or percent-encoded: each
    /// backend stops, splits or logs at a different one.
    ControlBytes,
    /// Percent-decoding yields bytes that are no UTF-8 text.
    NotUtf8,
    TooLong,
    /// Ambiguous in more ways than `MAX_AMBIGUITIES` at once.
    TooAmbiguous,
}

/// The distinct readings of a path, the canonical one first: decoded,
/// dot segments resolved, repeated slashes collapsed, a trailing slash kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readings<'a> {
    canonical: Cow<'a, str>,
    others: Vec<String>,
}

impl Readings<'_> {
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.canonical.as_ref()).chain(self.others.iter().map(String::as_str))
    }

    /// How many distinct readings there are (at least one).
    pub fn count(&self) -> usize {
        1 + self.others.len()
    }

    /// Adds another target's readings (a WebDAV `Destination`).
    pub fn extend(&mut self, more: Readings<'_>) {
        for reading in more.iter() {
            if !self.iter().any(|r| r == reading) {
                self.others.push(reading.to_string());
            }
        }
    }
}

/// The readings of `uri` (a path, with or without a query).
pub fn readings(uri: &str) -> Result<Readings<'_>, PathError> {
    let path = &uri[..uri.find('?').unwrap_or(uri.len())];
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if is_plain(path) {
        return Ok(Readings {
            canonical: Cow::Borrowed(path),
            others: Vec::new(),
        });
    }
    let flags = Flags::relevant_to(path)?;
    if flags.0.count_ones() > MAX_AMBIGUITIES {
        return Err(PathError::TooAmbiguous);
    }
    let canonical = read(path, Flags(Flags::DECODE_FIRST))?;
    let mut others: Vec<String> = Vec::new();
    // Every combination of the flags that matter: a subset of `flags.0`.
    let mut variant = flags.0;
    loop {
        if variant != Flags::DECODE_FIRST {
            let reading = read(path, Flags(variant))?;
            if reading != canonical && !others.contains(&reading) {
                others.push(reading);
            }
        }
        if variant == 0 {
            break;
        }
        variant = (variant - 1) & flags.0;
    }
    Ok(Readings {
        canonical: Cow::Owned(canonical),
        others,
    })
}

/// The canonical reading alone: for rule prefixes, which are stored in
/// that form.
pub fn canonical(path: &str) -> Result<String, PathError> {
    Ok(readings(path)?.canonical().to_string())
}

/// Printable ASCII without `%`, `\`, `;` or `#`, starting with `/`, with
/// no empty or dot segments and no name ending in a dot (an empty last
/// segment is a trailing slash). This runs on every verify request.
fn is_plain(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let special = |b: &u8| !(0x21..0x7f).contains(b) || matches!(b, b'%' | b'\\' | b';' | b'#');
    if rest.as_bytes().iter().any(special) {
        return false;
    }
    let mut segments = rest.as_bytes().split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        // A trailing dot is dropped by Windows (`/private.` is `/private`).
        if (segment.is_empty() && !last) || segment.ends_with(b".") {
            return false;
        }
    }
    true
}

/// The ways one backend may differ from another; each combination that
/// can change this path is one reading.
#[derive(Clone, Copy)]
struct Flags(u8);

impl Flags {
    /// Decode everything before splitting into segments (nginx, most
    /// servers), rather than splitting first and decoding each segment
    /// (servers that keep `%2F` and `%2e%2e` inside one name).
    const DECODE_FIRST: u8 = 1 << 0;
    /// Cut `;…` from each raw segment before anything else (Tomcat, Jetty).
    const STRIP_PARAMS: u8 = 1 << 1;
    /// Cut `;…` once decoded too (a framework that decodes, then strips).
    const STRIP_DECODED_PARAMS: u8 = 1 << 2;
    /// `\` is a separator too (Windows, some Java servers).
    const BACKSLASH: u8 = 1 << 3;
    /// Decode twice (a proxy or framework that decodes again).
    const DOUBLE_DECODE: u8 = 1 << 4;
    /// Trailing dots and spaces of a name are dropped (Windows).
    const TRIM_DOTS: u8 = 1 << 5;
    /// `#`, or a decoded `?`, ends the path (servers that take one for a
    /// fragment, frameworks that split a decoded path again).
    const CUT: u8 = 1 << 6;

    /// The flags that can make a difference for `path`; the rest are
    /// left out so that the usual odd path has one or two readings.
    fn relevant_to(path: &str) -> Result<Self, PathError> {
        let once = decode(path)?;
        let twice = decode(&once)?;
        let mut flags = 0;
        if path.contains('%') {
            flags |= Self::DECODE_FIRST;
        }
        if path.contains(';') {
            flags |= Self::STRIP_PARAMS;
        }
        // Decoding moves where a segment ends, so a decoded `;` can cut
        // differently from a raw one.
        if twice.contains(';') && path.contains('%') {
            flags |= Self::STRIP_DECODED_PARAMS;
        }
        if twice.contains('\\') {
            flags |= Self::BACKSLASH;
        }
        if once.contains('%') {
            flags |= Self::DOUBLE_DECODE;
        }
        let trimmable = |name: &str| name != "." && name != ".." && name.ends_with(['.', ' ']);
        if twice.split(['/', '\\']).any(trimmable) {
            flags |= Self::TRIM_DOTS;
        }
        if twice.contains(['#', '?']) {
            flags |= Self::CUT;
        }
        Ok(Flags(flags))
    }

    fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }
}

/// One reading of `path` under `flags`.
fn read(path: &str, flags: Flags) -> Result<String, PathError> {
    let cut = |text: &mut Cow<str>, at: &[char]| {
        if flags.has(Flags::CUT)
            && let Some(end) = text.find(at)
        {
            *text = Cow::Owned(text[..end].to_string());
        }
    };
    let mut text: Cow<str> = Cow::Borrowed(path);
    cut(&mut text, &['#']);
    if flags.has(Flags::STRIP_PARAMS) {
        text = Cow::Owned(strip_params(&text));
    }
    let decode_first = flags.has(Flags::DECODE_FIRST) || !path.contains('%');
    if decode_first {
        text = Cow::Owned(decode_as_asked(&text, flags)?);
        cut(&mut text, &['#', '?']);
        if flags.has(Flags::STRIP_DECODED_PARAMS) {
            text = Cow::Owned(strip_params(&text));
        }
    }
    let separators: &[char] = if flags.has(Flags::BACKSLASH) {
        &['/', '\\']
    } else {
        &['/']
    };
    let mut segments: Vec<Cow<str>> = Vec::new();
    for segment in text.split(separators) {
        let segment = if flags.has(Flags::TRIM_DOTS) && segment != "." && segment != ".." {
            segment.trim_end_matches(['.', ' '])
        } else {
            segment
        };
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other if decode_first => segments.push(Cow::Borrowed(other)),
            // Split first: each name is decoded on its own, and what it
            // decodes to (a `/`, a `..`) stays inside that one name.
            other => segments.push(Cow::Owned(decode_as_asked(other, flags)?)),
        }
    }
    let trailing = text.ends_with('/') && !segments.is_empty();
    let mut out = String::with_capacity(text.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}

fn decode_as_asked(text: &str, flags: Flags) -> Result<String, PathError> {
    let once = decode(text)?;
    if flags.has(Flags::DOUBLE_DECODE) {
        decode(&once)
    } else {
        Ok(once)
    }
}

/// Percent-decodes; refuses control bytes and text that is not UTF-8.
fn decode(text: &str) -> Result<String, PathError> {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(text).collect();
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(PathError::ControlBytes);
    }
    String::from_utf8(bytes).map_err(|_| PathError::NotUtf8)
}

/// `/a;x/b;y=1` → `/a/b`: each segment loses everything from its first `;`.
fn strip_params(path: &str) -> String {
    path.split('/')
        .map(|segment| segment.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(path: &str) -> Vec<String> {
        readings(path).unwrap().iter().map(str::to_string).collect()
    }

    fn canon(path: &str) -> String {
        readings(path).unwrap().canonical().to_string()
    }

    #[test]
    fn plain_paths_have_one_borrowed_reading() {
        let r = readings("/photos/2024/img.jpg?size=1").unwrap();
        assert!(matches!(r.canonical, Cow::Borrowed("/photos/2024/img.jpg")));
        assert_eq!(r.count(), 1);
        assert!(matches!(
            readings("/").unwrap().canonical,
            Cow::Borrowed("/")
        ));
        assert!(matches!(
            readings("/a/.b/c.d/").unwrap().canonical,
            Cow::Borrowed("/a/.b/c.d/")
        ));
    }

    #[test]
    fn canonical_reading_decodes_then_resolves() {
        assert_eq!(canon("/public/../private/x"), "/private/x");
        assert_eq!(canon("/public/%2e%2e/private"), "/private");
        assert_eq!(canon("//a///b/?q=1"), "/a/b/");
        assert_eq!(canon(""), "/");
        assert_eq!(canon("*"), "/*");
        assert_eq!(canon("/../../etc"), "/etc");
        assert_eq!(canon("/a/./b"), "/a/b");
        assert_eq!(canon("/a/."), "/a");
        assert_eq!(canon("/a/.."), "/");
        assert_eq!(canon("a/b"), "/a/b");
        assert_eq!(canon("/a//"), "/a/");
        assert_eq!(canon("/%61"), "/a");
    }

    /// Each class of the request-target review, with the reading a backend
    /// would serve among those the gate checks.
    #[test]
    fn every_backend_reading_is_among_the_readings() {
        let cases: &[(&str, &str)] = &[
            // The comma is a path character: taken whole.
            ("/x,/../private/s", "/private/s"),
            // Backslash: a separator to some backends, a name to others.
            ("/private/a%5C../../s", "/private/s"),
            ("/private/a\\..\\..\\s", "/s"),
            ("/private/a\\..\\..\\s", "/private/a\\..\\..\\s"),
            // `;` parameters: Tomcat and Jetty serve /private/s.
            ("/private;x/s", "/private/s"),
            ("/x/..;/private/s", "/private/s"),
            // Encoded slash decoded before dot segments are resolved.
            ("/x/..%2Fprivate/s", "/private/s"),
            ("/x%2F..%2F..%2Fprivate%2Fs", "/private/s"),
            // Kept inside one name by a split-first backend.
            ("/private/%2e%2e/x", "/private/../x"),
            // Double encoding.
            ("/x/%252e%252e/private/s", "/private/s"),
            // Windows trims trailing dots and spaces.
            ("/private./s", "/private/s"),
            ("/private%20/s", "/private/s"),
            // A `#` some servers take for a fragment.
            ("/private/s#/../../x", "/private/s"),
            ("/private/s#/../../x", "/x"),
            // Encoded `;`, `?` and `#`: a framework that decodes, then
            // strips or splits.
            ("/private%3Bx/s", "/private/s"),
            ("/x/..%3B/private/s", "/private/s"),
            ("/private%253Bx/s", "/private/s"),
            ("/private/s%3F/../../x/f", "/private/s"),
            ("/private/s%23/../../x/f", "/private/s"),
        ];
        for (path, served) in cases {
            let readings = all(path);
            assert!(
                readings.iter().any(|r| r == served),
                "{path}: {served} not among {readings:?}"
            );
        }
    }

    #[test]
    fn control_bytes_and_broken_text_are_refused() {
        for path in ["/a%00b", "/a%0d%0aSet-Cookie:x", "/a\u{7f}", "/a%250a"] {
            assert_eq!(readings(path), Err(PathError::ControlBytes), "{path}");
        }
        assert_eq!(readings("/a%ff"), Err(PathError::NotUtf8));
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(readings(&long), Err(PathError::TooLong));
        // Every kind of ambiguity at once is refused, not read 2^n ways.
        let crafted = "/a%25b;c\\d.#e%2e%3b".repeat(100);
        assert_eq!(readings(&crafted), Err(PathError::TooAmbiguous));
        // A long query is no long path.
        assert!(readings(&format!("/a?{}", "q".repeat(MAX_PATH_LEN))).is_ok());
    }

    #[test]
    fn destination_readings_join_without_repeats() {
        let mut r = readings("/a/./b").unwrap();
        r.extend(readings("/a/b").unwrap());
        r.extend(readings("/c;x").unwrap());
        assert_eq!(r.iter().collect::<Vec<_>>(), ["/a/b", "/c;x", "/c"]);
    }
}
