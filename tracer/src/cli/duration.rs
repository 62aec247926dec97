//! Durations on the command line: `5s`, `500ms`, `2m`, `1h`, or plain seconds (`2.5`).

use std::time::Duration;

/// The longest duration accepted: 366 days.
const MAX_SECONDS: f64 = 366.0 * 86_400.0;

/// Parses a duration such as `5s`, `250ms`, `1.5m` or `10`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (try 5s, 500ms, 2m)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in duration {text:?} (use ms, s, m or h)"
            ));
        }
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("invalid duration {text:?}"));
    }
    // Far above any trace, far below where deadlines (now + duration) overflow.
    if seconds > MAX_SECONDS {
        return Err(format!(
            "duration {text:?} is out of range (at most {} days)",
            MAX_SECONDS as u64 / 86_400
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse("5 parsecs").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("s").is_err());
        assert_eq!(parse("366d").map_err(|e| e.contains("unit")), Err(true));
        for huge in ["99999999999999999999s", "99999999999999999999", "9000h"] {
            let err = parse(huge).unwrap_err();
            assert!(err.contains("out of range"), "{huge}: {err}");
        }
        assert_eq!(parse("8784h"), Ok(Duration::from_secs(366 * 86_400)));
    }
}
