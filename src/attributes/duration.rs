//! Go's `time.ParseDuration` syntax, which is what users of the upstream driver write
//! (`720h`, `1h30m`, `90s`, `1.5h`). Days (`90d`) are not part of it and are rejected.

use std::time::Duration;

/// Parses a Go duration string. Negative durations are rejected: nothing here can last less than
/// nothing.
pub fn parse_go_duration(input: &str) -> Result<Duration, String> {
    let text = input.strip_prefix('+').unwrap_or(input);
    if text.starts_with('-') {
        return Err("must not be negative".into());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("is empty; expected a Go duration such as 720h, 1h30m or 90s".into());
    }
    let mut total_nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(format!(
                "{number:?} is not a number; expected a Go duration such as 720h, 1h30m or 90s"
            ));
        }
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => return Err("is missing a unit (ns, us, ms, s, m, h)".into()),
            other => {
                return Err(format!(
                    "has unknown unit {other:?}; Go durations use ns, us, ms, s, m or h (write 90d as 2160h)"
                ));
            }
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| "is too large".to_string())?
        };
        let mut part = whole.checked_mul(unit_nanos).ok_or("is too large")?;
        // Fractions are exact to the nanosecond, like Go's parser.
        let mut scale = unit_nanos;
        for digit in fraction.chars().take(18) {
            scale /= 10;
            part = part
                .checked_add(u128::from(digit.to_digit(10).unwrap_or(0)) * scale)
                .ok_or("is too large")?;
        }
        total_nanos = total_nanos.checked_add(part).ok_or("is too large")?;
    }
    // Go's limit: an i64 of nanoseconds, about 2562047h.
    let nanos = i64::try_from(total_nanos)
        .map_err(|_| "is too large (Go durations end at 2562047h)".to_string())?;
    let nanos = nanos.unsigned_abs();
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration the way Go prints one (`720h0m0s`, `1h30m0s`, `1.5s`), which is also what
/// cert-manager's `spec.duration` carries.
pub fn format_go_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if total == 0 {
        // Under a second Go switches to the largest unit that keeps a whole part: 500ms, 1.5µs.
        let (scale, unit) = match nanos {
            0 => return "0s".into(),
            1..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        let (whole, fraction) = (nanos / scale, nanos % scale);
        if fraction == 0 {
            return format!("{whole}{unit}");
        }
        let digits = scale.ilog10() as usize;
        let fraction = format!("{fraction:0digits$}");
        return format!("{whole}.{}{unit}", fraction.trim_end_matches('0'));
    }
    let hours = total / 3600;
    let minutes = (total % 3600) / 60;
    let seconds = total % 60;
    let seconds_text = if nanos == 0 {
        format!("{seconds}s")
    } else {
        let fraction = format!("{nanos:09}");
        format!("{seconds}.{}s", fraction.trim_end_matches('0'))
    };
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds_text}")
    } else if minutes > 0 {
        format!("{minutes}m{seconds_text}")
    } else {
        seconds_text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_go_syntax() {
        let cases = [
            ("720h", 720 * 3600),
            ("1h30m", 5400),
            ("90s", 90),
            ("2h45m30s", 2 * 3600 + 45 * 60 + 30),
            ("0", 0),
            ("+5m", 300),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_go_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("1µs"), Ok(Duration::from_micros(1)));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for text in [
            "90d", "", "h", "1", "-1h", "1.2.3s", "abc", "1 h", "1hh", ".s",
        ] {
            assert!(
                parse_go_duration(text).is_err(),
                "{text:?} should be rejected"
            );
        }
        assert!(parse_go_duration("90d").unwrap_err().contains("2160h"));
    }

    #[test]
    fn formats_as_go_prints_a_duration() {
        // Go 1.19's time.Duration(n).String() for each n (nanoseconds).
        let go = [
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (1000, "1µs"),
            (1500, "1.5µs"),
            (999999, "999.999µs"),
            (1000000, "1ms"),
            (1500000, "1.5ms"),
            (500000000, "500ms"),
            (999999999, "999.999999ms"),
            (1000000000, "1s"),
            (1500000000, "1.5s"),
            (90000000000, "1m30s"),
            (2592000000000000, "720h0m0s"),
            (3600000000001, "1h0m0.000000001s"),
        ];
        for (nanos, printed) in go {
            assert_eq!(format_go_duration(Duration::from_nanos(nanos)), printed);
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(
            format_go_duration(Duration::from_secs(720 * 3600)),
            "720h0m0s"
        );
        assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        for text in ["720h", "1h30m", "90s", "1.5s"] {
            let parsed = parse_go_duration(text).unwrap();
            assert_eq!(parse_go_duration(&format_go_duration(parsed)), Ok(parsed));
        }
    }
}
