//! Durations as people write them: Slurm's `--time` forms and short suffixes.

/// Seconds of a walltime.
///
/// Slurm's forms: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS` (a bare
/// number is minutes, as in Slurm); also `90s`, `30m`, `2h`, `1d`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("`{s}` is not a time (examples: 90 for 90 minutes, 2:00:00, 1-02:03:04, 30m, 2h)");
    if t.is_empty() {
        return Err(bad());
    }
    if t.ends_with(['s', 'm', 'h', 'd']) {
        return parse_suffixed(t).ok_or_else(bad);
    }
    let num = |x: &str| -> Option<u64> {
        if x.is_empty() || x.len() > 9 || !x.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        x.parse().ok()
    };
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(num(d).ok_or_else(bad)?), r),
        None => (None, t),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Option<_>>().ok_or_else(bad)?;
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86400 + h * 3600,
        (Some(d), [h, m]) => d * 86400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86400 + h * 3600 + m * 60 + s,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(format!("`{s}` is zero: give a positive time"));
    }
    Ok(secs)
}

fn parse_suffixed(t: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        total = total.checked_add(digits.parse::<u64>().ok()?.checked_mul(unit)?)?;
        digits.clear();
    }
    (digits.is_empty() && total > 0).then_some(total)
}

/// A short human duration: `45s`, `12m`, `3h05m`, `2d04h`.
pub fn human(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_time_formats() {
        let cases: &[(&str, u64)] = &[
            ("90", 90 * 60),
            ("1", 60),
            ("10:30", 10 * 60 + 30),
            ("2:00:00", 7200),
            ("02:03:04", 2 * 3600 + 3 * 60 + 4),
            ("1-02:03:04", 86400 + 2 * 3600 + 3 * 60 + 4),
            ("1-02", 86400 + 2 * 3600),
            ("3-00:30", 3 * 86400 + 30 * 60),
            ("90s", 90),
            ("30m", 1800),
            ("2h", 7200),
            ("1d", 86400),
            ("1h30m", 5400),
            (" 45 ", 45 * 60),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn bad_times_are_refused_with_examples() {
        for text in ["", "abc", "1:2:3:4", "-5", "1-", "1-2:3:4:5", "0", "0:00", "5x", "h", "1.5h", "99999999999999999999", "+3"] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.contains('`'), "{text}: {e}");
        }
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(-5), "0s");
        assert_eq!(human(59_000), "59s");
        assert_eq!(human(600_000), "10m");
        assert_eq!(human(3_900_000), "1h05m");
        assert_eq!(human(90_000_000), "1d01h");
    }
}
