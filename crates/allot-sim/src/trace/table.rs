//! The delimited-text plumbing the trace readers share: a file opened as string
//! records with named columns, typed fields whose errors name file, line, column and
//! why, and the loop that skips and counts bad rows when asked.

use std::path::{Path, PathBuf};

use super::ReadOptions;
use crate::error::TraceError;

/// How a file's columns are named.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Header<'a> {
    /// The first line is the header. A leading `#` on it is dropped (RFold writes
    /// its header as a comment).
    FirstLine,
    /// The file has no header; these are its columns.
    Given(&'a [&'a str]),
}

/// A delimited file read as string records.
pub(crate) struct Table {
    pub path: PathBuf,
    pub header: Vec<String>,
    rows: csv::StringRecordsIntoIter<std::fs::File>,
}

impl Table {
    pub fn open(path: &Path, delimiter: u8, header: Header) -> Result<Table, TraceError> {
        let file = std::fs::File::open(path).map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
        let has_header = matches!(header, Header::FirstLine);
        // Flexible: a short row is reported by the field it lacks, not as a
        // record-length mismatch without a column.
        let mut rd = csv::ReaderBuilder::new().has_headers(has_header).delimiter(delimiter).flexible(true).from_reader(file);
        let header = match header {
            Header::FirstLine => {
                let h = rd.headers().map_err(|e| bad_csv(path, 1, e))?;
                h.iter()
                    .enumerate()
                    .map(|(i, c)| if i == 0 { c.trim().trim_start_matches('#').trim() } else { c.trim() }.to_string())
                    .collect()
            }
            Header::Given(cols) => cols.iter().map(|c| c.to_string()).collect(),
        };
        Ok(Table { path: path.to_path_buf(), header, rows: rd.into_records() })
    }

    /// Position of a column the reader needs.
    pub fn column(&self, name: &str) -> Result<usize, TraceError> {
        self.optional_column(name).ok_or_else(|| TraceError::MissingColumn {
            path: self.path.clone(),
            column: name.into(),
            header: self.header.join(","),
        })
    }

    pub fn optional_column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    pub fn bad(&self, line: u64, column: &str, reason: impl Into<String>) -> TraceError {
        TraceError::BadRow { path: self.path.clone(), line, column: column.into(), reason: reason.into() }
    }

    /// The trimmed text of column `col`; a row too short to have it is an error.
    pub fn text<'r>(&self, row: &'r csv::StringRecord, line: u64, col: usize) -> Result<&'r str, TraceError> {
        match row.get(col) {
            Some(s) => Ok(s.trim()),
            None => Err(self.bad(
                line,
                &self.header[col],
                format!("missing: the row has {} fields, the header {}", row.len(), self.header.len()),
            )),
        }
    }

    /// Column `col` parsed as a number (or anything `FromStr`); empty is an error.
    pub fn parse<T: std::str::FromStr>(&self, row: &csv::StringRecord, line: u64, col: usize) -> Result<T, TraceError>
    where
        T::Err: std::fmt::Display,
    {
        let raw = self.text(row, line, col)?;
        if raw.is_empty() {
            return Err(self.bad(line, &self.header[col], "empty"));
        }
        raw.parse::<T>().map_err(|e| self.bad(line, &self.header[col], format!("`{raw}` is not a valid number: {e}")))
    }

    /// Column `col` as a finite, non-negative number no larger than `MAX_VALUE` (so
    /// that times in milliseconds never overflow).
    pub fn non_negative(&self, row: &csv::StringRecord, line: u64, col: usize) -> Result<f64, TraceError> {
        let v: f64 = self.parse(row, line, col)?;
        if !v.is_finite() || v < 0.0 {
            return Err(self.bad(line, &self.header[col], format!("{v} is not a finite, non-negative number")));
        }
        if v > MAX_VALUE {
            return Err(self.bad(line, &self.header[col], format!("{v} is too large (most is {MAX_VALUE:e})")));
        }
        Ok(v)
    }

    /// Reads every row with `parse`, skipping bad ones when asked; returns the rows
    /// and how many were skipped.
    pub fn read_rows<T>(
        &mut self,
        opts: ReadOptions,
        mut parse: impl FnMut(&Table, &csv::StringRecord, u64) -> Result<T, TraceError>,
    ) -> Result<(Vec<T>, u64), TraceError> {
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut line = 0;
        while let Some(row) = self.rows.next() {
            line += 1;
            let parsed = match row {
                Ok(row) => {
                    if let Some(p) = row.position() {
                        line = p.line();
                    }
                    // A blank line inside the file is not a job.
                    if row.len() == 1 && row.get(0).is_some_and(|f| f.trim().is_empty()) {
                        continue;
                    }
                    parse(self, &row, line)
                }
                Err(e) => Err(bad_csv(&self.path, line, e)),
            };
            match parsed {
                Ok(v) => out.push(v),
                Err(_) if opts.skip_bad_rows => skipped += 1,
                Err(e) => return Err(e),
            }
        }
        Ok((out, skipped))
    }
}

/// Largest number a reader takes for a time in seconds (about 31,700 years).
pub(crate) const MAX_VALUE: f64 = 1e12;

/// Largest time in milliseconds, either sign, that a reader produces.
pub(crate) const MAX_MS: f64 = MAX_VALUE * 1000.0;

pub(crate) fn bad_csv(path: &Path, line: u64, e: csv::Error) -> TraceError {
    let line = e.position().map(|p| p.line()).unwrap_or(line);
    TraceError::BadRow { path: path.to_path_buf(), line, column: "-".into(), reason: e.to_string() }
}

/// Seconds (possibly fractional) to whole milliseconds.
pub(crate) fn secs_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

/// Milliseconds since the Unix epoch of `YYYY-MM-DD HH:MM:SS[.fff]` (or with a `T`
/// between date and time, an optional trailing `Z`, or a date alone), read as UTC.
/// Hand-written because the readers need only this one shape and allot-sim keeps
/// its dependencies few.
pub(crate) fn parse_datetime_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a datetime like 2017-10-09 07:01:55");
    let s2 = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = match s2.find([' ', 'T']) {
        Some(i) => (&s2[..i], Some(s2[i + 1..].trim())),
        None => (s2, None),
    };
    let mut d = date.split('-');
    let (Some(y), Some(m), Some(dd), None) = (d.next(), d.next(), d.next(), d.next()) else {
        return Err(bad());
    };
    let num = |x: &str, lo: i64, hi: i64| -> Result<i64, String> {
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let v: i64 = x.parse().map_err(|_| bad())?;
        if v < lo || v > hi { Err(bad()) } else { Ok(v) }
    };
    let (y, m) = (num(y, 0, 9999)?, num(m, 1, 12)?);
    let dd = num(dd, 1, days_in_month(y, m))?;
    let mut ms = days_from_civil(y, m, dd) * 86_400_000;
    if let Some(t) = time {
        let mut parts = t.split(':');
        let (Some(h), Some(mi)) = (parts.next(), parts.next()) else {
            return Err(bad());
        };
        let sec = parts.next().unwrap_or("0");
        if parts.next().is_some() {
            return Err(bad());
        }
        let (whole, frac) = match sec.split_once('.') {
            Some((w, f)) => (w, f),
            None => (sec, ""),
        };
        ms += num(h, 0, 23)? * 3_600_000 + num(mi, 0, 59)? * 60_000 + num(whole, 0, 60)? * 1000;
        if !frac.is_empty() {
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let digits: String = frac.chars().chain("000".chars()).take(3).collect();
            ms += digits.parse::<i64>().map_err(|_| bad())?;
        }
    }
    Ok(ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_to_epoch_ms() {
        assert_eq!(parse_datetime_ms("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_datetime_ms("1970-01-02T00:00:01Z"), Ok(86_401_000));
        assert_eq!(parse_datetime_ms("2017-09-04 10:30:41"), Ok(1_504_521_041_000));
        assert_eq!(parse_datetime_ms("2017-09-04 10:30:41.25"), Ok(1_504_521_041_250));
        assert_eq!(parse_datetime_ms("2020-02-29"), Ok(1_582_934_400_000));
        for bad in
            ["", "2017-13-01 00:00:00", "2017-02-30 00:00:00", "2017-09-04 25:00:00", "yesterday", "2017-09-04 10:30:41:00", "17-9-4x"]
        {
            assert!(parse_datetime_ms(bad).is_err(), "{bad}");
        }
    }
}
