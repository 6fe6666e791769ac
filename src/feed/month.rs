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

    /// The month an instant falls in, in `tz`, kept within 1900-01..=9999-12 so that every
    /// month named in a link can be requested.
    pub fn of(t: DateTime<Utc>, tz: Tz) -> Month {
        let local = t.with_timezone(&tz);
        match local.year() {
            y if y < 1900 => Month {
                year: 1900,
                month: 1,
            },
            y if y > 9999 => Month {
                year: 9999,
                month: 12,
            },
            year => Month {
                year,
                month: local.month(),
            },
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

    /// The first instant of the month in `tz`: midnight on the first or, where a clock change
    /// skipped midnight (Shanghai, 1940-06-01), the first hour that exists.
    pub fn start(self, tz: Tz) -> DateTime<Utc> {
        let Some(first) = NaiveDate::from_ymd_opt(self.year, self.month, 1) else {
            return DateTime::<Utc>::MAX_UTC;
        };
        (0..24)
            .filter_map(|h| first.and_hms_opt(h, 0, 0))
            .find_map(|n| tz.from_local_datetime(&n).earliest())
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
    fn a_month_whose_midnight_was_skipped_still_starts() {
        // Shanghai moved its clocks from midnight to 01:00 on 1940-06-01.
        let tz = chrono_tz::Asia::Shanghai;
        let june = Month::parse("1940-06").unwrap();
        assert_eq!(
            june.start(tz).with_timezone(&tz).to_rfc3339(),
            "1940-06-01T01:00:00+09:00"
        );
        assert!(
            Month::parse("1940-05").unwrap().end(tz) < Month::parse("1940-07").unwrap().start(tz)
        );
    }

    #[test]
    fn months_of_out_of_range_instants_stay_linkable() {
        let tz = chrono_tz::Asia::Shanghai;
        let late = DateTime::parse_from_rfc3339("9999-12-31T20:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(Month::of(late, tz).to_string(), "9999-12");
        let early = DateTime::parse_from_rfc3339("1899-12-31T00:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(Month::of(early, tz).to_string(), "1900-01");
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
