//! Wall-clock time as the wire schema carries it: milliseconds or microseconds since the Unix epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 on a clock set before 1970.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Microseconds since the Unix epoch; 0 on a clock set before 1970.
pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// A Unix time in ms as RFC 3339 in UTC, to the millisecond (`2026-12-06T19:45:01.123Z`); times before
/// 1970 read as 1970.
pub fn rfc3339_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

/// A time as people and other systems write it, in ms since the Unix epoch: RFC 3339 (`T` or a space, the
/// zone `Z` or left out for UTC, fractions optional) or a plain count of Unix milliseconds. Errors say why.
pub fn parse_ms(s: &str) -> Result<i64, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|e| format!("{s:?}: {e}"));
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| format!("{s:?}: {e} (use RFC 3339 or Unix milliseconds)"))?;
    let d = t.duration_since(UNIX_EPOCH).map_err(|_| format!("{s:?} is before 1970"))?;
    i64::try_from(d.as_millis()).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_back_as_written() {
        let ms = 1_765_050_301_234;
        assert_eq!(rfc3339_ms(ms), "2025-12-06T19:45:01.234Z");
        assert_eq!(parse_ms(&rfc3339_ms(ms)), Ok(ms));
        assert_eq!(parse_ms("2025-12-06 19:45:01"), Ok(ms - 234));
        assert_eq!(parse_ms("1765050301234"), Ok(ms));
        for bad in ["", "-5", "monday", "2025-13-06T19:45:00Z"] {
            assert!(parse_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_two_units_agree() {
        let (ms, us) = (now_ms(), now_us());
        assert!(ms > 1_600_000_000_000, "{ms}");
        assert!((us / 1000 - ms).abs() < 1000, "{us} µs vs {ms} ms");
    }
}
