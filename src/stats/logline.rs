//! One line of an access log in the combined log format, as CDNs and proxies write it:
//! `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"` (Apache's and nginx's `combined`).
//!
//! `feedcast stats import-log` counts the polls that a CDN answered and feedcast never saw, so
//! this module owns reading one line into the fields the counts need: the client address and
//! User-Agent as the edge saw them, the time, the request, the status and the bytes sent. The
//! ident, user and referer are checked for shape and otherwise ignored; fields some logs append
//! after the User-Agent are ignored too. A line without a User-Agent (the plain `common` format)
//! is an error, because the counts cannot do without it.
//!
//! Quoted fields are read the way both servers write them: a backslash escapes the next byte
//! (Apache writes `\"` and `\\`, `\n` and the like, and `\xhh` for other unprintable bytes;
//! nginx writes `\xHH` for `"`, `\` and unprintable bytes). Only the User-Agent is unescaped;
//! the request target stays as logged, since a target that needed escaping names no feed.
//!
//! The parser walks the line once, splitting only at ASCII bytes, so it is linear in the line's
//! length, never cuts a UTF-8 character and never panics, whatever the line holds.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};

/// Longest excerpt of a bad field quoted in an error: enough to recognise it, short enough
/// that a line of junk does not become a screenful of message.
const EXCERPT_CHARS: usize = 64;

/// The fields of one access-log line that the subscriber counts use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// The client address (`%h`) as the edge saw it; IPv6 may be logged with or without
    /// brackets.
    pub client: IpAddr,
    /// When the request was received (`%t`), in the offset the log was written in.
    pub time: DateTime<FixedOffset>,
    /// The request method, e.g. `GET`.
    pub method: &'a str,
    /// The request target as logged, query included, e.g. `/feeds/category/hydrogen.rss?limit=5`.
    pub target: &'a str,
    /// The final status (`%>s`), from 100 to 599.
    pub status: u16,
    /// The response bytes (`%b`); a logged `-` (nothing sent) is 0.
    pub bytes: u64,
    /// The User-Agent with the log's escapes undone; borrowed from the line when it had none.
    /// A logged `-` (no User-Agent sent) stays `-`; bytes that are not UTF-8 become U+FFFD.
    pub user_agent: Cow<'a, str>,
}

/// A field of the combined log format, as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `%h`, the client address.
    Client,
    /// `%l`, the identd answer (almost always `-`).
    Ident,
    /// `%u`, the authenticated user (almost always `-`).
    User,
    /// `%t`, the time in brackets.
    Time,
    /// `"%r"`, the request line.
    Request,
    /// `%>s`, the status.
    Status,
    /// `%b`, the bytes sent.
    Bytes,
    /// `"%{Referer}i"`.
    Referer,
    /// `"%{User-agent}i"`.
    UserAgent,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Client => "client address",
            Field::Ident => "ident",
            Field::User => "user",
            Field::Time => "time",
            Field::Request => "request line",
            Field::Status => "status",
            Field::Bytes => "byte count",
            Field::Referer => "referer",
            Field::UserAgent => "User-Agent",
        })
    }
}

/// Why a line is not a combined-format access-log line. Every message names the field; those
/// that quote it quote at most 64 characters, with control characters escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogLineError {
    /// The line stops before this field starts (a truncated line, or the `common` format,
    /// which has no referer or User-Agent).
    #[error("the line ends before the {0}")]
    EndsBefore(Field),
    /// This field (ident, user or time) is not where it should be.
    #[error("the {0} is missing")]
    Missing(Field),
    /// This field runs into the next one without the space between them.
    #[error("the {0} is not followed by a space")]
    NotSeparated(Field),
    /// This field (request line, referer or User-Agent) does not start with a quote.
    #[error("the {0} is not quoted")]
    NotQuoted(Field),
    /// This quoted field has no closing quote.
    #[error("the {0} has no closing quote")]
    Unclosed(Field),
    /// `%h` is neither an IPv4 nor an IPv6 address (e.g. a host name from HostnameLookups).
    #[error("the client address `{0}` is not an IP address")]
    Client(String),
    /// `%t` is not a valid time in the format both servers write.
    #[error("the time `{0}` is not [dd/Mon/yyyy:HH:MM:SS ±zzzz]")]
    Time(String),
    /// The request line is not `METHOD TARGET PROTOCOL` (e.g. the `-` nginx logs for a
    /// request it could not read, or a TLS handshake sent to a plain-HTTP port).
    #[error("the request line `{0}` is not METHOD TARGET PROTOCOL")]
    Request(String),
    /// `%>s` is not a status code.
    #[error("the status `{0}` is not a number from 100 to 599")]
    Status(String),
    /// `%b` is neither a count of bytes nor `-`.
    #[error("the byte count `{0}` is not a number or `-`")]
    Bytes(String),
}

use LogLineError as E;

/// Reads one line of a combined-format access log. A trailing `\r` or `\n` is ignored, as is
/// anything after the User-Agent.
pub fn parse(line: &str) -> Result<LogLine<'_>, LogLineError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return Err(E::EndsBefore(Field::Client));
    }

    let (host, rest) = split_at_space(line);
    let client = parse_client(host).ok_or_else(|| E::Client(excerpt(host)))?;

    let rest = rest
        .filter(|rest| !rest.is_empty())
        .ok_or(E::EndsBefore(Field::Ident))?;
    let (ident, rest) = split_at_space(rest);
    if ident.is_empty() {
        return Err(E::Missing(Field::Ident));
    }
    let rest = rest
        .filter(|rest| !rest.is_empty())
        .ok_or(E::EndsBefore(Field::User))?;
    // Neither server escapes spaces in `%u`, so the user runs up to the time's bracket.
    if rest.starts_with('[') {
        return Err(E::Missing(Field::User));
    }
    let bracket = rest.find(" [").ok_or(E::Missing(Field::Time))?;
    // The space at `bracket` is ASCII, so both cuts fall between characters.
    let (_user, rest) = rest.split_at(bracket + 1);

    let close = rest.find(']').ok_or_else(|| E::Time(excerpt(rest)))?;
    let (time, rest) = rest.split_at(close + 1);
    let time = parse_time(time).ok_or_else(|| E::Time(excerpt(time)))?;

    let rest = separator(rest, Field::Time, Field::Request)?;
    let (request, rest) = quoted(rest, Field::Request)?;
    let (method, target) = parse_request(request).ok_or_else(|| E::Request(excerpt(request)))?;

    let rest = separator(rest, Field::Request, Field::Status)?;
    let (status, rest) = split_at_space(rest);
    let status = parse_status(status).ok_or_else(|| E::Status(excerpt(status)))?;

    let rest = rest
        .filter(|rest| !rest.is_empty())
        .ok_or(E::EndsBefore(Field::Bytes))?;
    let (bytes, rest) = split_at_space(rest);
    let bytes = parse_bytes(bytes).ok_or_else(|| E::Bytes(excerpt(bytes)))?;

    let rest = rest
        .filter(|rest| !rest.is_empty())
        .ok_or(E::EndsBefore(Field::Referer))?;
    let (_referer, rest) = quoted(rest, Field::Referer)?;

    let rest = separator(rest, Field::Referer, Field::UserAgent)?;
    let (user_agent, rest) = quoted(rest, Field::UserAgent)?;
    // A quote inside the User-Agent that the log left unescaped would end it early; the text
    // after it then runs on without a space, and the line is refused rather than miscounted.
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return Err(E::NotSeparated(Field::UserAgent));
    }

    Ok(LogLine {
        client,
        time,
        method,
        target,
        status,
        bytes,
        user_agent: unescape(user_agent),
    })
}

/// Splits at the first space: the text before it, and the text after it if there was one.
fn split_at_space(text: &str) -> (&str, Option<&str>) {
    match text.split_once(' ') {
        Some((before, after)) => (before, Some(after)),
        None => (text, None),
    }
}

/// Steps over the single space between the field `after` and the field `next`.
fn separator(rest: &str, after: Field, next: Field) -> Result<&str, LogLineError> {
    match rest.strip_prefix(' ') {
        Some("") => Err(E::EndsBefore(next)),
        Some(rest) => Ok(rest),
        None if rest.is_empty() => Err(E::EndsBefore(next)),
        None => Err(E::NotSeparated(after)),
    }
}

/// Reads a quoted field at the start of `rest`: its text between the quotes, still escaped,
/// and what follows the closing quote.
fn quoted(rest: &str, field: Field) -> Result<(&str, &str), LogLineError> {
    let inner = rest.strip_prefix('"').ok_or(E::NotQuoted(field))?;
    let mut escaped = false;
    for (at, byte) in inner.bytes().enumerate() {
        if escaped {
            // The escaped byte may start a multi-byte character; its continuation bytes are
            // never a quote or a backslash, so stepping over one byte is enough.
            escaped = false;
        } else if byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            // A quote is ASCII, so both cuts fall between characters.
            let (text, closing_and_after) = inner.split_at(at);
            return Ok((text, closing_and_after.get(1..).unwrap_or_default()));
        }
    }
    Err(E::Unclosed(field))
}

/// `%h`: an IPv4 or IPv6 address, the IPv6 possibly in brackets.
fn parse_client(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[') {
        Some(bracketed) => bracketed
            .strip_suffix(']')?
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6),
        None => host.parse().ok(),
    }
}

/// `%t`: `[dd/Mon/yyyy:HH:MM:SS ±zzzz]`, the one layout Apache and nginx write, with English
/// month abbreviations whatever the locale.
fn parse_time(text: &str) -> Option<DateTime<FixedOffset>> {
    let &[
        b'[',
        d1,
        d2,
        b'/',
        m1,
        m2,
        m3,
        b'/',
        y1,
        y2,
        y3,
        y4,
        b':',
        h1,
        h2,
        b':',
        n1,
        n2,
        b':',
        s1,
        s2,
        b' ',
        sign,
        zh1,
        zh2,
        zm1,
        zm2,
        b']',
    ] = text.as_bytes()
    else {
        return None;
    };
    let month = match &[m1, m2, m3] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    let year = number(&[y1, y2, y3, y4])?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, number(&[d1, d2])?)?;
    let local = date.and_hms_opt(number(&[h1, h2])?, number(&[n1, n2])?, number(&[s1, s2])?)?;

    let offset_minutes = number(&[zm1, zm2])?;
    if offset_minutes >= 60 {
        return None;
    }
    let offset_seconds = i32::try_from(number(&[zh1, zh2])? * 3600 + offset_minutes * 60).ok()?;
    let offset = match sign {
        b'+' => FixedOffset::east_opt(offset_seconds)?,
        b'-' => FixedOffset::west_opt(offset_seconds)?,
        _ => return None,
    };
    // A fixed offset maps every local time to exactly one instant.
    offset.from_local_datetime(&local).single()
}

/// A run of ASCII digits as a number; `None` if any byte is not a digit.
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0_u32, |value, &digit| {
        digit
            .is_ascii_digit()
            .then(|| value * 10 + u32::from(digit - b'0'))
    })
}

/// `%r`: `METHOD TARGET PROTOCOL`, one space apart, giving the method and the target.
fn parse_request(request: &str) -> Option<(&str, &str)> {
    let mut parts = request.split(' ');
    let (method, target, protocol) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let method_ok = !method.is_empty() && method.bytes().all(is_token_byte);
    let target_ok = !target.is_empty() && !target.bytes().any(|byte| byte.is_ascii_control());
    (method_ok && target_ok && is_http_version(protocol)).then_some((method, target))
}

/// Whether `byte` may appear in an HTTP token such as a method (RFC 9110, section 5.6.2).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// `HTTP/` and a version: `1.1`, `1.0`, `2.0`, or a bare major such as `2` or `3`.
fn is_http_version(protocol: &str) -> bool {
    match protocol.strip_prefix("HTTP/").map(str::as_bytes) {
        Some([major]) => major.is_ascii_digit(),
        Some([major, b'.', minor]) => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

/// `%>s`: three digits from 100 to 599.
fn parse_status(status: &str) -> Option<u16> {
    let [_, _, _] = status.as_bytes() else {
        return None;
    };
    let status = u16::try_from(number(status.as_bytes())?).ok()?;
    (100..=599).contains(&status).then_some(status)
}

/// `%b`: a count of bytes, or `-` for none.
fn parse_bytes(bytes: &str) -> Option<u64> {
    if bytes == "-" {
        return Some(0);
    }
    if bytes.is_empty() || !bytes.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // Only digits remain, so this fails only on overflow.
    bytes.parse().ok()
}

/// Undoes the escapes Apache and nginx write in quoted fields: `\"`, `\\`, `\n`, `\r`, `\t`,
/// `\b`, `\v` and `\xHH`. An escape neither writes is kept as it stands.
fn unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut decoded = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte != b'\\' {
            decoded.push(byte);
            rest = tail;
            continue;
        }
        let (unescaped, after) = match tail {
            [b'x' | b'X', high, low, after @ ..] => match (hex(*high), hex(*low)) {
                (Some(high), Some(low)) => ((high << 4) | low, after),
                _ => (b'\\', tail),
            },
            [b'"', after @ ..] => (b'"', after),
            [b'\\', after @ ..] => (b'\\', after),
            [b'n', after @ ..] => (b'\n', after),
            [b'r', after @ ..] => (b'\r', after),
            [b't', after @ ..] => (b'\t', after),
            [b'b', after @ ..] => (0x08, after),
            [b'v', after @ ..] => (0x0B, after),
            _ => (b'\\', tail),
        };
        decoded.push(unescaped);
        rest = after;
    }
    // `\xHH` escapes may spell UTF-8 (nginx escapes every byte above 0x7E) or may not.
    match String::from_utf8(decoded) {
        Ok(text) => Cow::Owned(text),
        Err(error) => Cow::Owned(String::from_utf8_lossy(error.as_bytes()).into_owned()),
    }
}

/// The value of one hexadecimal digit.
fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// At most [`EXCERPT_CHARS`] characters of a bad field for an error message, control
/// characters escaped so that junk from a log cannot garble a terminal.
fn excerpt(text: &str) -> String {
    let mut excerpt = String::new();
    for (count, character) in text.chars().enumerate() {
        if count == EXCERPT_CHARS {
            excerpt.push('…');
            break;
        }
        if character.is_control() {
            excerpt.extend(character.escape_debug());
        } else {
            excerpt.push(character);
        }
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEEDLY: &str = "203.0.113.9 - - [07/Dec/2026:10:15:32 +0800] \
        \"GET /feeds/category/hydrogen.rss?limit=5 HTTP/1.1\" 200 5123 \"-\" \
        \"Feedly/1.0 (+http://www.feedly.com/fetcher.html; 57 subscribers; feed-id=1234)\"";

    /// A valid line with multi-byte characters in every free-text field, for truncations.
    const WIDE: &str = "[2001:db8::7] - 张三 [29/Feb/2028:23:59:59 -0530] \
        \"GET /feeds/region/江阴.atom HTTP/2.0\" 304 - \"https://例子.cn/页\" \
        \"阅读器/2 \\\"引号\\\" \\xE4\\xB8\\xAD \\\\ 🚀\"";

    fn error(line: &str) -> LogLineError {
        match parse(line) {
            Ok(parsed) => panic!("{line:?} parsed as {parsed:?}"),
            Err(error) => error,
        }
    }

    /// A line in the combined format with the given fields, the others as in [`FEEDLY`].
    fn line_with(client: &str, time: &str, request: &str, status: &str, bytes: &str) -> String {
        format!("{client} - - {time} {request} {status} {bytes} \"-\" \"UA\"")
    }

    /// A deterministic stream of pseudo-random numbers (SplitMix64) for the mangled corpus.
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }
    }

    #[test]
    fn can_parse_a_feedly_poll() {
        let line = parse(FEEDLY).unwrap();
        assert_eq!(line.client, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(
            line.time,
            DateTime::parse_from_rfc3339("2026-12-07T10:15:32+08:00").unwrap()
        );
        assert_eq!(line.time.offset().local_minus_utc(), 8 * 3600);
        assert_eq!(line.method, "GET");
        assert_eq!(line.target, "/feeds/category/hydrogen.rss?limit=5");
        assert_eq!(line.status, 200);
        assert_eq!(line.bytes, 5123);
        assert_eq!(
            line.user_agent,
            "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 57 subscribers; feed-id=1234)"
        );
        assert!(matches!(line.user_agent, Cow::Borrowed(_)));
    }

    #[test]
    fn can_parse_an_ipv6_client_with_or_without_brackets() {
        let bare = line_with(
            "2001:db8::1",
            "[07/Dec/2026:10:15:32 +0000]",
            "\"GET /feeds/all.rss HTTP/1.1\"",
            "200",
            "10",
        );
        let bracketed = bare.replacen("2001:db8::1", "[2001:db8::1]", 1);
        let expected: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(parse(&bare).unwrap().client, expected);
        assert_eq!(parse(&bracketed).unwrap().client, expected);
    }

    #[test]
    fn can_read_a_dash_as_zero_bytes() {
        let line = line_with(
            "192.0.2.1",
            "[07/Dec/2026:10:15:32 +0000]",
            "\"HEAD /feeds/all.rss HTTP/1.1\"",
            "200",
            "-",
        );
        assert_eq!(parse(&line).unwrap().bytes, 0);
    }

    #[test]
    fn can_parse_a_not_modified_answer() {
        let line = "198.51.100.4 - - [07/Dec/2026:02:00:01 -0700] \
            \"GET /feeds/category/hydrogen.atom HTTP/2.0\" 304 0 \"-\" \
            \"Mozilla/5.0 (compatible; Inoreader; 12 subscribers)\"";
        let line = parse(line).unwrap();
        assert_eq!(line.status, 304);
        assert_eq!(line.bytes, 0);
        assert_eq!(line.time.offset().local_minus_utc(), -7 * 3600);
        assert_eq!(line.target, "/feeds/category/hydrogen.atom");
    }

    #[test]
    fn can_unescape_quotes_and_backslashes_in_the_user_agent() {
        let line = FEEDLY.replace(
            "\"Feedly/1.0",
            r#""Reader \"Pro\" C:\\bin\\reader \q \xG1 \x4 Feedly/1.0"#,
        );
        let line = parse(&line).unwrap();
        assert_eq!(
            line.user_agent,
            r#"Reader "Pro" C:\bin\reader \q \xG1 \x4 Feedly/1.0 (+http://www.feedly.com/fetcher.html; 57 subscribers; feed-id=1234)"#
        );
    }

    #[test]
    fn can_decode_hex_escapes_in_the_user_agent() {
        // nginx writes every byte outside printable ASCII, and `"` and `\`, as \xHH.
        let line = FEEDLY.replace(
            "\"Feedly/1.0 (+http://www.feedly.com/fetcher.html; 57 subscribers; feed-id=1234)\"",
            r#""\xE6\xB1\x9F\xE9\x98\xB4 \x22quoted\x22 \x5C \x09tab \xe4\xb8\xad""#,
        );
        assert_eq!(
            parse(&line).unwrap().user_agent,
            "江阴 \"quoted\" \\ \ttab 中"
        );
    }

    #[test]
    fn can_decode_hex_escapes_that_are_not_utf8_lossily() {
        let line = FEEDLY.replace("Feedly/1.0", r"Bot\xFF\xE4/1.0");
        assert_eq!(
            parse(&line).unwrap().user_agent,
            "Bot\u{FFFD}\u{FFFD}/1.0 (+http://www.feedly.com/fetcher.html; 57 subscribers; feed-id=1234)"
        );
    }

    #[test]
    fn can_keep_a_dash_user_agent_as_a_dash() {
        let line = FEEDLY.replace(
            "\"Feedly/1.0 (+http://www.feedly.com/fetcher.html; 57 subscribers; feed-id=1234)\"",
            "\"-\"",
        );
        assert_eq!(parse(&line).unwrap().user_agent, "-");
    }

    #[test]
    fn can_ignore_fields_after_the_user_agent_and_a_line_ending() {
        let line = format!("{FEEDLY} \"example.org\" rt=0.001 \"quote \r\n");
        assert_eq!(parse(&line), parse(FEEDLY));
        assert_eq!(parse(&format!("{FEEDLY}\t0.002")), parse(FEEDLY));
        assert_eq!(parse(&format!("{FEEDLY}\r\n")), parse(FEEDLY));
    }

    #[test]
    fn can_parse_a_user_with_spaces_and_a_referer_with_escapes() {
        let line = FEEDLY
            .replacen("- - [", "- John Doe [", 1)
            .replace("200 5123 \"-\"", r#"200 5123 "https://e.cn/?q=\"a\"""#);
        assert_eq!(parse(&line).unwrap().bytes, 5123);
    }

    #[test]
    fn can_parse_wide_characters_in_every_free_text_field() {
        let line = parse(WIDE).unwrap();
        assert_eq!(line.client, "2001:db8::7".parse::<IpAddr>().unwrap());
        assert_eq!(line.target, "/feeds/region/江阴.atom");
        assert_eq!(line.user_agent, "阅读器/2 \"引号\" 中 \\ 🚀");
        assert_eq!(
            line.time,
            DateTime::parse_from_rfc3339("2028-02-29T23:59:59-05:30").unwrap()
        );
    }

    #[test]
    fn errors_when_the_client_is_not_an_ip_address() {
        for client in [
            "feeds.example.org",
            "203.0.113.9:443",
            "[203.0.113.9]",
            "[::1",
            "",
        ] {
            let line = FEEDLY.replacen("203.0.113.9", client, 1);
            assert_eq!(error(&line), E::Client(client.to_owned()), "{line}");
        }
        assert_eq!(
            error("foo - - [07/Dec/2026:10:15:32 +0800]").to_string(),
            "the client address `foo` is not an IP address"
        );
    }

    #[test]
    fn errors_when_the_line_ends_before_a_field() {
        let cases = [
            ("", Field::Client),
            ("203.0.113.9", Field::Ident),
            ("203.0.113.9 ", Field::Ident),
            ("203.0.113.9 -", Field::User),
            ("203.0.113.9 - ", Field::User),
            (
                "203.0.113.9 - - [07/Dec/2026:10:15:32 +0800]",
                Field::Request,
            ),
            (
                "203.0.113.9 - - [07/Dec/2026:10:15:32 +0800] ",
                Field::Request,
            ),
            (
                "203.0.113.9 - - [07/Dec/2026:10:15:32 +0800] \"GET / HTTP/1.1\"",
                Field::Status,
            ),
            (
                "203.0.113.9 - - [07/Dec/2026:10:15:32 +0800] \"GET / HTTP/1.1\" 200",
                Field::Bytes,
            ),
            (
                "203.0.113.9 - - [07/Dec/2026:10:15:32 +0800] \"GET / HTTP/1.1\" 200 1 ",
                Field::Referer,
            ),
            (
                "203.0.113.9 - - [07/Dec/2026:10:15:32 +0800] \"GET / HTTP/1.1\" 200 1 \"-\"",
                Field::UserAgent,
            ),
        ];
        for (line, field) in cases {
            assert_eq!(error(line), E::EndsBefore(field), "{line:?}");
        }
        // The `common` format: everything but the referer and User-Agent.
        let common = "203.0.113.9 - - [07/Dec/2026:10:15:32 +0800] \"GET / HTTP/1.1\" 200 1";
        assert_eq!(
            error(common).to_string(),
            "the line ends before the referer"
        );
        assert_eq!(
            error(&format!("{common} \"-\"")).to_string(),
            "the line ends before the User-Agent"
        );
    }

    #[test]
    fn errors_when_the_ident_user_or_time_is_missing() {
        assert_eq!(
            error("203.0.113.9  - [07/Dec/2026:10:15:32 +0800]").to_string(),
            "the ident is missing"
        );
        assert_eq!(
            error("203.0.113.9 - [07/Dec/2026:10:15:32 +0800] \"GET / HTTP/1.1\"").to_string(),
            "the user is missing"
        );
        assert_eq!(
            error("203.0.113.9 - - 07/Dec/2026:10:15:32 +0800 \"GET / HTTP/1.1\"").to_string(),
            "the time is missing"
        );
    }

    #[test]
    fn errors_when_the_time_is_not_the_log_format() {
        for time in [
            "[07/Dec/2026:10:15:32]",
            "[7/Dec/2026:10:15:32 +0800]",
            "[07/dec/2026:10:15:32 +0800]",
            "[07/December/2026:10:15:32 +0800]",
            "[31/Nov/2026:10:15:32 +0800]",
            "[29/Feb/2026:10:15:32 +0800]",
            "[07/Dec/2026:24:00:00 +0800]",
            "[07/Dec/2026:10:60:00 +0800]",
            "[07/Dec/2026:10:15:32 +0860]",
            "[07/Dec/2026:10:15:32 +2400]",
            "[07/Dec/2026:10:15:32 *0800]",
            "[07/Dec/2026T10:15:32 +0800]",
            "[2026-12-07T10:15:32+08:00]",
            "[07/Dec/２026:10:15:32 +0800]",
        ] {
            let line = FEEDLY.replacen("[07/Dec/2026:10:15:32 +0800]", time, 1);
            assert_eq!(error(&line), E::Time(time.to_owned()), "{time}");
        }
        assert_eq!(
            error(&FEEDLY.replacen("2026:10", "2026 10", 1)).to_string(),
            "the time `[07/Dec/2026 10:15:32 +0800]` is not [dd/Mon/yyyy:HH:MM:SS ±zzzz]"
        );
        assert_eq!(
            error("203.0.113.9 - - [07/Dec/2026:10:15").to_string(),
            "the time `[07/Dec/2026:10:15` is not [dd/Mon/yyyy:HH:MM:SS ±zzzz]"
        );
    }

    #[test]
    fn errors_when_the_request_line_is_not_quoted_or_not_closed() {
        let unquoted = FEEDLY.replacen(
            "\"GET /feeds/category/hydrogen.rss?limit=5 HTTP/1.1\"",
            "GET / HTTP/1.1",
            1,
        );
        assert_eq!(
            error(&unquoted).to_string(),
            "the request line is not quoted"
        );
        assert_eq!(
            error("203.0.113.9 - - [07/Dec/2026:10:15:32 +0800] \"GET / HTTP/1.1 200 1")
                .to_string(),
            "the request line has no closing quote"
        );
    }

    #[test]
    fn errors_when_the_request_line_is_not_method_target_protocol() {
        for request in [
            "-",
            "",
            "GET /feeds/all.rss",
            "GET  /feeds/all.rss HTTP/1.1",
            "GET /feeds/all.rss HTTP/1.1 extra",
            "GET /feeds/all.rss SPDY/3",
            "GET /feeds/all.rss HTTP/1.10",
            "G(T /feeds/all.rss HTTP/1.1",
            "GET /feeds/\tall.rss HTTP/1.1",
            r"\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03",
            "\u{16}\u{3}\u{1}\u{0}",
        ] {
            let line = FEEDLY.replacen(
                "GET /feeds/category/hydrogen.rss?limit=5 HTTP/1.1",
                request,
                1,
            );
            assert_eq!(error(&line), E::Request(excerpt(request)), "{request:?}");
        }
        let nginx_garbage =
            FEEDLY.replacen("GET /feeds/category/hydrogen.rss?limit=5 HTTP/1.1", "-", 1);
        assert_eq!(
            error(&nginx_garbage).to_string(),
            "the request line `-` is not METHOD TARGET PROTOCOL"
        );
    }

    #[test]
    fn can_parse_other_methods_and_http_versions() {
        for (request, method, target) in [
            ("HEAD /feeds/all.rss HTTP/1.0", "HEAD", "/feeds/all.rss"),
            ("GET /feeds/all.rss HTTP/2", "GET", "/feeds/all.rss"),
            ("GET /feeds/all.rss HTTP/3.0", "GET", "/feeds/all.rss"),
            (
                "GET http://example.cn/feeds/all.rss HTTP/1.1",
                "GET",
                "http://example.cn/feeds/all.rss",
            ),
            ("OPTIONS * HTTP/1.1", "OPTIONS", "*"),
        ] {
            let line = FEEDLY.replacen(
                "GET /feeds/category/hydrogen.rss?limit=5 HTTP/1.1",
                request,
                1,
            );
            let line = parse(&line).unwrap();
            assert_eq!((line.method, line.target), (method, target));
        }
    }

    #[test]
    fn errors_when_the_status_is_not_a_status_code() {
        for status in ["abc", "99", "099", "600", "2000", "-", "+200", "２00"] {
            let line = FEEDLY.replacen(" 200 ", &format!(" {status} "), 1);
            assert_eq!(error(&line), E::Status(status.to_owned()), "{status}");
        }
        assert_eq!(
            error(&FEEDLY.replacen(" 200 ", " abc ", 1)).to_string(),
            "the status `abc` is not a number from 100 to 599"
        );
    }

    #[test]
    fn can_parse_the_lowest_and_highest_status() {
        for status in [100, 599] {
            let line = FEEDLY.replacen(" 200 ", &format!(" {status} "), 1);
            assert_eq!(parse(&line).unwrap().status, status);
        }
    }

    #[test]
    fn errors_when_the_byte_count_is_not_a_number() {
        for bytes in ["12k", "-1", "--", "+5", "18446744073709551616", "1.5"] {
            let line = FEEDLY.replacen(" 5123 ", &format!(" {bytes} "), 1);
            assert_eq!(error(&line), E::Bytes(bytes.to_owned()), "{bytes}");
        }
        assert_eq!(
            error(&FEEDLY.replacen(" 5123 ", " 12k ", 1)).to_string(),
            "the byte count `12k` is not a number or `-`"
        );
        let largest = FEEDLY.replacen(" 5123 ", " 18446744073709551615 ", 1);
        assert_eq!(parse(&largest).unwrap().bytes, u64::MAX);
    }

    #[test]
    fn errors_when_the_referer_or_user_agent_is_not_quoted() {
        let referer = FEEDLY.replacen("5123 \"-\"", "5123 -", 1);
        assert_eq!(error(&referer).to_string(), "the referer is not quoted");
        let user_agent = FEEDLY.replacen("\"Feedly/1.0", "Feedly/1.0", 1);
        assert_eq!(
            error(&user_agent).to_string(),
            "the User-Agent is not quoted"
        );
        let unclosed = FEEDLY.trim_end_matches('"');
        assert_eq!(
            error(unclosed).to_string(),
            "the User-Agent has no closing quote"
        );
    }

    #[test]
    fn errors_when_fields_run_together() {
        let cases = [
            (FEEDLY.replacen("+0800] \"", "+0800]\"", 1), Field::Time),
            (
                FEEDLY.replacen("HTTP/1.1\" 200", "HTTP/1.1\"200", 1),
                Field::Request,
            ),
            (
                FEEDLY.replacen("5123 \"-\" \"", "5123 \"-\"\"", 1),
                Field::Referer,
            ),
            // An unescaped quote inside the User-Agent ends it early.
            (
                FEEDLY.replacen("57 subscribers", "57 \"subscribers\"", 1),
                Field::UserAgent,
            ),
        ];
        for (line, field) in cases {
            assert_eq!(error(&line), E::NotSeparated(field), "{line}");
        }
        assert_eq!(
            E::NotSeparated(Field::UserAgent).to_string(),
            "the User-Agent is not followed by a space"
        );
    }

    #[test]
    fn can_shorten_and_escape_bad_fields_in_messages() {
        let junk = format!("\u{1b}[31m{}", "x".repeat(100));
        let message = error(&junk).to_string();
        assert!(
            message.starts_with("the client address `\\u{1b}[31mxxx"),
            "{message}"
        );
        assert!(message.ends_with("x…` is not an IP address"), "{message}");
        assert!(!message.contains('\u{1b}'));
    }

    #[test]
    fn errors_at_every_truncation_of_a_valid_line() {
        for valid in [FEEDLY, WIDE] {
            assert!(parse(valid).is_ok());
            for cut in 0..valid.len() {
                // Cuts inside a character leave a replacement character, as a lossy reader would.
                let truncated = String::from_utf8_lossy(&valid.as_bytes()[..cut]);
                assert!(parse(&truncated).is_err(), "{truncated:?} parsed");
            }
        }
    }

    #[test]
    fn never_panics_on_mangled_lines() {
        const ODD: &[&str] = &[
            "\"", "\\", "[", "]", " ", "  ", "\\\"", "\\x", "\\xZ", "\\xE4", "-", "\u{0}", "\t",
            "\r", "中", "🚀", "\u{FFFD}", ":", "/",
        ];
        let mut random = SplitMix64(18);
        let mut checked = 0;
        for round in 0..4_000 {
            let base = if round % 2 == 0 { FEEDLY } else { WIDE };
            let mut chars: Vec<String> = base.chars().map(String::from).collect();
            let line = match round % 4 {
                // Random bytes, read as a lossy reader would.
                0 => {
                    let bytes: Vec<u8> = (0..random.below(300))
                        .map(|_| random.next().to_le_bytes()[0])
                        .collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                // Odd characters inserted, characters deleted or replaced.
                _ => {
                    for _ in 0..=random.below(6) {
                        let at = random.below(chars.len() + 1);
                        match random.below(3) {
                            0 => chars.insert(at, ODD[random.below(ODD.len())].to_owned()),
                            1 if at < chars.len() => {
                                chars.remove(at);
                            }
                            _ if at < chars.len() => {
                                chars[at] = ODD[random.below(ODD.len())].to_owned()
                            }
                            _ => {}
                        }
                    }
                    chars.concat()
                }
            };
            // Parsed or refused, never a panic; a message is always printable.
            if let Err(error) = parse(&line) {
                assert!(!error.to_string().is_empty());
            }
            checked += 1;
        }
        assert_eq!(checked, 4_000);
    }

    #[test]
    fn can_refuse_or_read_long_pathological_lines_in_one_pass() {
        // Each of these would take minutes if a step rescanned the rest of the line from every
        // position it reached.
        const N: usize = 200_000;
        let no_time = format!("203.0.113.9 - {}", "- ".repeat(N));
        assert_eq!(error(&no_time), E::Missing(Field::Time));
        let unclosed = format!(
            "203.0.113.9 - - [07/Dec/2026:10:15:32 +0800] \"{}",
            "\\\"".repeat(N)
        );
        assert_eq!(error(&unclosed), E::Unclosed(Field::Request));
        let brackets = FEEDLY.replace("57 subscribers", &" [".repeat(N));
        let expected = parse(FEEDLY).unwrap().user_agent.len() - "57 subscribers".len() + 2 * N;
        assert_eq!(parse(&brackets).unwrap().user_agent.len(), expected);
        let escapes = FEEDLY.replace("57 subscribers", &r"\x41".repeat(N));
        assert!(parse(&escapes).unwrap().user_agent.contains(&"A".repeat(N)));
    }
}
