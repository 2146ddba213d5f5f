//! The Lexicon `datetime` string format (<https://atproto.com/specs/lexicon#datetime>).
//!
//! The intersection of RFC 3339, ISO 8601 and WHATWG: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
//! Upper-case `T` and `Z`, a timezone is required, `-00:00` is refused, the fraction may have any
//! number of digits (the whole string is at most 64 bytes).
//!
//! Tricky bits: checking happens in two stages, as in the interop vectors. [`Datetime::check_syntax`]
//! checks the shape only; the full parse also needs a real instant: calendar-valid date (no month
//! 13, no 31 April, no 29 February 1985), hour 0-23, minute and second 0-59 (leap second 60 is
//! refused, as the reference implementations do), offset up to ±23:59, and a UTC year between 0000
//! and 9999 (so `0000-01-01T00:00:00+01:00` is refused: it is in year -1).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Utc};

use crate::error::{Kind, Reason, SyntaxError};

/// Longest datetime string, in bytes (as in the reference implementations).
pub const MAX_DATETIME_LEN: usize = 64;

string_newtype!(
    /// A valid Lexicon datetime, such as `1985-04-12T23:20:50.123Z`, kept exactly as written.
    ///
    /// `Ord` is string order, which is chronological only between values written with the same
    /// offset and fraction length; compare [`Datetime::to_chrono`] values for instants.
    Datetime,
    check
);

impl Datetime {
    /// Checks only the shape of `s` (the regex-level check): digits and separators in the right
    /// places, a fraction of at least one digit if any, `Z` or `±HH:MM` (not `-00:00`), at most
    /// 64 bytes. It does not check that the date exists; parsing does.
    pub fn check_syntax(s: &str) -> Result<(), SyntaxError> {
        lex(s).map(|_| ()).map_err(error)
    }

    /// The instant, with the offset as written. Fraction digits past nanoseconds are truncated.
    pub fn to_chrono(&self) -> DateTime<FixedOffset> {
        lex(&self.0)
            .and_then(|fields| fields.to_chrono())
            .expect("a Datetime is only built from strings that passed this same parse")
    }

    /// Writes an instant as a UTC datetime (`Z`), with 0, 3, 6 or 9 fraction digits as needed.
    ///
    /// Fails for instants outside the years 0000 to 9999 and for leap seconds.
    pub fn from_chrono<Tz: TimeZone>(instant: &DateTime<Tz>) -> Result<Datetime, SyntaxError> {
        let utc = instant.with_timezone(&Utc);
        Datetime::parse_string(utc.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

fn error(reason: Reason) -> SyntaxError {
    SyntaxError::new(Kind::Datetime, reason)
}

fn check(s: &str) -> Result<(), SyntaxError> {
    lex(s)
        .and_then(|fields| fields.to_chrono())
        .map(|_| ())
        .map_err(error)
}

/// The numeric fields of a well-shaped datetime, not yet range-checked.
struct Fields {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    /// Offset east of UTC: sign, hours, minutes.
    offset: (i32, u32, u32),
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Result<u32, Reason> {
        let mut value = 0;
        for _ in 0..n {
            match self.bytes.get(self.pos) {
                Some(b) if b.is_ascii_digit() => value = value * 10 + u32::from(b - b'0'),
                _ => {
                    return Err(Reason::Expected {
                        what: "digit",
                        at: self.pos,
                    });
                }
            }
            self.pos += 1;
        }
        Ok(value)
    }

    fn literal(&mut self, byte: u8, what: &'static str) -> Result<(), Reason> {
        if self.bytes.get(self.pos) != Some(&byte) {
            return Err(Reason::Expected { what, at: self.pos });
        }
        self.pos += 1;
        Ok(())
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.bytes.get(self.pos) == Some(&byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// One or more fraction digits, as nanoseconds (digits past the ninth are ignored).
    fn fraction(&mut self) -> Result<u32, Reason> {
        let start = self.pos;
        let mut nanos = 0;
        while let Some(b) = self.bytes.get(self.pos).filter(|b| b.is_ascii_digit()) {
            if self.pos - start < 9 {
                nanos = nanos * 10 + u32::from(b - b'0');
            }
            self.pos += 1;
        }
        let len = self.pos - start;
        if len == 0 {
            return Err(Reason::Expected {
                what: "fraction digit",
                at: start,
            });
        }
        Ok(nanos * 10u32.pow(9u32.saturating_sub(len as u32)))
    }

    fn offset(&mut self) -> Result<(i32, u32, u32), Reason> {
        if self.eat(b'Z') {
            return Ok((1, 0, 0));
        }
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return Err(Reason::Expected {
                what: "'Z' or an offset",
                at: self.pos,
            });
        };
        let hours = self.digits(2)?;
        self.literal(b':', "':' in the offset")?;
        let minutes = self.digits(2)?;
        if sign < 0 && hours == 0 && minutes == 0 {
            return Err(Reason::NegativeZeroOffset);
        }
        Ok((sign, hours, minutes))
    }
}

/// The shape check: returns the fields, or where the shape breaks.
fn lex(s: &str) -> Result<Fields, Reason> {
    if s.is_empty() {
        return Err(Reason::Empty);
    }
    if s.len() > MAX_DATETIME_LEN {
        return Err(Reason::TooLong {
            len: s.len(),
            max: MAX_DATETIME_LEN,
        });
    }
    let mut c = Cursor {
        bytes: s.as_bytes(),
        pos: 0,
    };
    let year = c.digits(4)?;
    c.literal(b'-', "'-'")?;
    let month = c.digits(2)?;
    c.literal(b'-', "'-'")?;
    let day = c.digits(2)?;
    c.literal(b'T', "'T'")?;
    let hour = c.digits(2)?;
    c.literal(b':', "':'")?;
    let minute = c.digits(2)?;
    c.literal(b':', "':'")?;
    let second = c.digits(2)?;
    let nanos = if c.eat(b'.') { c.fraction()? } else { 0 };
    let offset = c.offset()?;
    if c.pos != s.len() {
        return Err(Reason::Expected {
            what: "end of input",
            at: c.pos,
        });
    }
    Ok(Fields {
        year,
        month,
        day,
        hour,
        minute,
        second,
        nanos,
        offset,
    })
}

impl Fields {
    /// The range checks: the date must exist and the UTC year must be 0000 to 9999.
    fn to_chrono(&self) -> Result<DateTime<FixedOffset>, Reason> {
        let range = |field, value, max| {
            if value <= max {
                Ok(())
            } else {
                Err(Reason::OutOfRange { field, value })
            }
        };
        if !(1..=12).contains(&self.month) {
            return Err(Reason::OutOfRange {
                field: "month",
                value: self.month,
            });
        }
        range("hour", self.hour, 23)?;
        range("minute", self.minute, 59)?;
        range("second", self.second, 59)?;
        let (sign, off_hours, off_minutes) = self.offset;
        range("offset hour", off_hours, 23)?;
        range("offset minute", off_minutes, 59)?;
        // The year has four digits, so it fits an i32.
        let year = i32::try_from(self.year).unwrap_or(i32::MAX);
        let date =
            NaiveDate::from_ymd_opt(year, self.month, self.day).ok_or(Reason::OutOfRange {
                field: "day",
                value: self.day,
            })?;
        let naive = date
            .and_hms_nano_opt(self.hour, self.minute, self.second, self.nanos)
            .ok_or(Reason::OutOfRange {
                field: "second",
                value: self.second,
            })?;
        // Both at most 23 * 3600 + 59 * 60, well inside i32 and inside chrono's ±24 h.
        let seconds = sign * i32::try_from(off_hours * 3600 + off_minutes * 60).unwrap_or(0);
        let offset = FixedOffset::east_opt(seconds).ok_or(Reason::OutOfRange {
            field: "offset hour",
            value: off_hours,
        })?;
        let instant = offset
            .from_local_datetime(&naive)
            .single()
            .ok_or(Reason::Malformed {
                what: "instant out of range",
            })?;
        let utc_year = instant.with_timezone(&Utc).year();
        if !(0..=9999).contains(&utc_year) {
            return Err(Reason::YearOutOfRange { year: utc_year });
        }
        Ok(instant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Reason {
        s.parse::<Datetime>().unwrap_err().reason
    }

    #[test]
    fn to_chrono_keeps_offset_and_precision() {
        let dt: Datetime = "1985-04-12T23:20:50.1234567891Z".parse().unwrap();
        let c = dt.to_chrono();
        assert_eq!(c.timestamp_subsec_nanos(), 123_456_789);
        let dt: Datetime = "1985-04-12T23:20:50.5-07:00".parse().unwrap();
        let c = dt.to_chrono();
        assert_eq!(c.offset().local_minus_utc(), -7 * 3600);
        assert_eq!(c.timestamp_subsec_millis(), 500);
        assert_eq!(
            c.with_timezone(&Utc).to_rfc3339(),
            "1985-04-13T06:20:50.500+00:00"
        );
    }

    #[test]
    fn from_chrono_round_trips() {
        let c = Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 1).unwrap();
        let dt = Datetime::from_chrono(&c).unwrap();
        assert_eq!(dt.as_str(), "2024-02-29T12:00:01Z");
        assert_eq!(dt.to_chrono(), c);
        let c = c + chrono::Duration::milliseconds(7);
        assert_eq!(
            Datetime::from_chrono(&c).unwrap().as_str(),
            "2024-02-29T12:00:01.007Z"
        );
        let far = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
        assert!(Datetime::from_chrono(&far).is_err());
    }

    #[test]
    fn syntax_versus_parse() {
        for s in [
            "1985-13-12T23:20:50Z",
            "1985-02-29T00:00:00Z",
            "1985-04-12T23:20:60Z",
        ] {
            assert!(Datetime::check_syntax(s).is_ok(), "{s}");
            assert!(s.parse::<Datetime>().is_err(), "{s}");
        }
        assert!("1984-02-29T00:00:00Z".parse::<Datetime>().is_ok());
    }

    #[test]
    fn reasons() {
        assert_eq!(
            reason("1985-04-12T23:20:50.123-00:00"),
            Reason::NegativeZeroOffset
        );
        assert_eq!(
            reason("1985-04-12t23:20:50Z"),
            Reason::Expected {
                what: "'T'",
                at: 10
            }
        );
        assert_eq!(
            reason("1985-04-12T23:20:50.Z"),
            Reason::Expected {
                what: "fraction digit",
                at: 20
            }
        );
        assert_eq!(
            reason("1985-04-12T23:20:50"),
            Reason::Expected {
                what: "'Z' or an offset",
                at: 19
            }
        );
        assert_eq!(
            reason("1985-04-12T23:20:50Z "),
            Reason::Expected {
                what: "end of input",
                at: 20
            }
        );
        assert_eq!(
            reason("1985-04-31T23:20:50Z"),
            Reason::OutOfRange {
                field: "day",
                value: 31
            }
        );
        assert_eq!(
            reason("1985-04-12T24:20:50Z"),
            Reason::OutOfRange {
                field: "hour",
                value: 24
            }
        );
        assert_eq!(
            reason("1985-04-12T23:20:50+24:00"),
            Reason::OutOfRange {
                field: "offset hour",
                value: 24
            }
        );
        assert_eq!(
            reason("0000-01-01T00:00:00+01:00"),
            Reason::YearOutOfRange { year: -1 }
        );
        assert_eq!(
            reason("9999-12-31T23:00:00-01:00"),
            Reason::YearOutOfRange { year: 10000 }
        );
        assert!(matches!(
            reason(&format!("1985-04-12T23:20:50.{}Z", "1".repeat(44))),
            Reason::TooLong { .. }
        ));
    }
}
