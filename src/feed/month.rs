//! Calendar months in the site's time zone: the unit of archives.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// A calendar month between 1900-01 and 9999-12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        Month::new(y.parse().ok()?, m.parse().ok()?)
    }

    fn new(year: i32, month: u32) -> Option<Month> {
        ((1900..=9999).contains(&year) && (1..=12).contains(&month))
            .then_some(Month { year, month })
    }

    /// The month an instant falls in, in `tz`.
    pub fn of(t: DateTime<Utc>, tz: Tz) -> Month {
        let local = t.with_timezone(&tz);
        Month {
            year: local.year(),
            month: local.month(),
        }
    }

    /// The following month (9999-12 is its own successor: nothing is dated after it).
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month::new(self.year + 1, 1).unwrap_or(self)
        } else {
            Month {
                month: self.month + 1,
                ..self
            }
        }
    }

    /// Midnight on the first of the month in `tz`.
    pub fn start(self, tz: Tz) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|n| tz.from_local_datetime(&n).earliest())
            .map_or(DateTime::<Utc>::MAX_UTC, |d| d.with_timezone(&Utc))
    }

    /// The start of the following month; for 9999-12, the end of time.
    pub fn end(self, tz: Tz) -> DateTime<Utc> {
        let next = self.next();
        if next == self {
            DateTime::<Utc>::MAX_UTC
        } else {
            next.start(tz)
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_follow_the_site_time_zone() {
        let tz = chrono_tz::Asia::Shanghai;
        let m = Month::parse("2021-01").unwrap();
        assert_eq!(m.start(tz).to_rfc3339(), "2020-12-31T16:00:00+00:00");
        assert_eq!(m.end(tz).to_rfc3339(), "2021-01-31T16:00:00+00:00");
        // 2021-01-31T20:00Z is already February in Shanghai.
        let t = DateTime::parse_from_rfc3339("2021-01-31T20:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(Month::of(t, tz).to_string(), "2021-02");
        assert_eq!(
            Month::parse("2021-12").unwrap().next().to_string(),
            "2022-01"
        );
    }

    #[test]
    fn errors_on_malformed_months() {
        for bad in [
            "2021-1",
            "2021-00",
            "2021-13",
            "1899-12",
            "２０２１-01",
            "2021-01-01",
            "",
        ] {
            assert!(Month::parse(bad).is_none(), "{bad}");
        }
    }
}
