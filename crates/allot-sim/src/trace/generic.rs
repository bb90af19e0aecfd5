//! Any job trace in CSV, TSV or JSONL, read through a column mapping, so that a user
//! can bring a trace without writing code. See `docs/traces.md` for the keys and a
//! worked example.
//!
//! A mapping names the columns (JSONL: the keys) that hold each field and how to read
//! times. It comes from a TOML file or from `key=value` pairs joined by commas, as
//! `--map` takes them:
//! `submit=arrival,duration=run_s,gpus=num_gpus,tenant=vc,units.time=s,time.origin=first`.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use allot_core::{GpuRequest, JobSpec, MS_PER_S, Time};

use super::table::{Header, MAX_MS, Table, parse_datetime_ms};
use super::{ReadOptions, gang_shape};
use crate::error::TraceError;
use crate::workload::{Trace, TraceJob};

/// The keys a mapping may set, with what each means.
pub const KEYS: [(&str, &str); 19] = [
    ("submit", "column: submit (arrival) time [required]"),
    ("duration", "column: run time (or give `end`)"),
    ("end", "column: end time, same format as submit (or give `duration`)"),
    ("gpus", "column: GPUs of the whole job; below 1 is a fraction of one GPU [required]"),
    ("gpus_per_node", "column: GPUs per replica; replicas = gpus / gpus_per_node"),
    ("tenant", "column: tenant (virtual cluster, group)"),
    ("user", "column: user"),
    ("priority", "column: priority class name"),
    ("walltime", "column: the user's walltime estimate"),
    ("units.time", "unit of numeric times: s, ms, min or h [s]"),
    ("units.duration", "unit of duration [units.time]"),
    ("units.walltime", "unit of walltime [units.time]"),
    ("time.format", "number, or datetime (`%Y-%m-%d %H:%M:%S`, read as UTC) [number]"),
    ("time.origin", "first (times from the earliest submit) or zero (as given) [first]"),
    ("tenant_prefix", "text put before every tenant value, e.g. `org/` [none]"),
    ("tenant_default", "tenant of rows without one [default]"),
    ("node_gpus", "GPUs per node for shaping gangs when gpus_per_node is not mapped or empty [8]"),
    ("format", "csv, tsv or jsonl [from the file extension]"),
    ("delimiter", "one character separating CSV fields [, or tab for tsv]"),
];

/// Unit of a numeric time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeUnit {
    Ms,
    #[default]
    S,
    Min,
    H,
}

impl TimeUnit {
    fn ms(self) -> f64 {
        match self {
            TimeUnit::Ms => 1.0,
            TimeUnit::S => 1e3,
            TimeUnit::Min => 6e4,
            TimeUnit::H => 3.6e6,
        }
    }

    fn parse(key: &str, v: &str) -> Result<TimeUnit, TraceError> {
        match v {
            "ms" => Ok(TimeUnit::Ms),
            "s" | "sec" => Ok(TimeUnit::S),
            "min" | "m" => Ok(TimeUnit::Min),
            "h" | "hour" => Ok(TimeUnit::H),
            _ => Err(TraceError::Mapping(format!("`{key}`: unknown time unit `{v}` (known: s, ms, min, h)"))),
        }
    }
}

/// How times are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeFormat {
    /// A number in `units.time`.
    #[default]
    Number,
    /// `YYYY-MM-DD HH:MM:SS[.fff]` (or with `T`), read as UTC.
    Datetime,
}

/// Where time zero is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeOrigin {
    /// The earliest submit time of the file (rows need not be sorted).
    #[default]
    First,
    /// Times are used as given (and must not be negative).
    Zero,
}

/// Layout of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Tsv,
    Jsonl,
}

/// Which columns hold what, and how to read them.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    pub submit: Option<String>,
    pub duration: Option<String>,
    pub end: Option<String>,
    pub gpus: Option<String>,
    pub gpus_per_node: Option<String>,
    pub tenant: Option<String>,
    pub user: Option<String>,
    pub priority: Option<String>,
    pub walltime: Option<String>,
    pub time_unit: TimeUnit,
    pub duration_unit: Option<TimeUnit>,
    pub walltime_unit: Option<TimeUnit>,
    pub time_format: TimeFormat,
    pub time_origin: TimeOrigin,
    pub tenant_prefix: String,
    pub tenant_default: String,
    pub node_gpus: u32,
    pub format: Option<FileFormat>,
    pub delimiter: Option<u8>,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            submit: None,
            duration: None,
            end: None,
            gpus: None,
            gpus_per_node: None,
            tenant: None,
            user: None,
            priority: None,
            walltime: None,
            time_unit: TimeUnit::S,
            duration_unit: None,
            walltime_unit: None,
            time_format: TimeFormat::Number,
            time_origin: TimeOrigin::First,
            tenant_prefix: String::new(),
            tenant_default: "default".into(),
            node_gpus: 8,
            format: None,
            delimiter: None,
        }
    }
}

fn known_keys() -> String {
    KEYS.map(|k| k.0).join(", ")
}

impl Mapping {
    /// Sets one key. An unknown key or a bad value is a `TraceError::Mapping` that names it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), TraceError> {
        let key = key.trim();
        let value = value.trim();
        let column = |v: &str| -> Result<Option<String>, TraceError> {
            if v.is_empty() { Err(TraceError::Mapping(format!("`{key}` needs a column name"))) } else { Ok(Some(v.to_string())) }
        };
        match key {
            "submit" => self.submit = column(value)?,
            "duration" => self.duration = column(value)?,
            "end" => self.end = column(value)?,
            "gpus" => self.gpus = column(value)?,
            "gpus_per_node" => self.gpus_per_node = column(value)?,
            "tenant" => self.tenant = column(value)?,
            "user" => self.user = column(value)?,
            "priority" => self.priority = column(value)?,
            "walltime" => self.walltime = column(value)?,
            "units.time" => self.time_unit = TimeUnit::parse(key, value)?,
            "units.duration" => self.duration_unit = Some(TimeUnit::parse(key, value)?),
            "units.walltime" => self.walltime_unit = Some(TimeUnit::parse(key, value)?),
            "time.format" => {
                self.time_format = match value {
                    "number" => TimeFormat::Number,
                    "datetime" | "%Y-%m-%d %H:%M:%S" | "%Y-%m-%dT%H:%M:%S" => TimeFormat::Datetime,
                    _ => {
                        return Err(TraceError::Mapping(format!(
                            "`time.format`: unsupported format `{value}` (known: number, datetime = %Y-%m-%d %H:%M:%S)"
                        )));
                    }
                }
            }
            "time.origin" => {
                self.time_origin = match value {
                    "first" => TimeOrigin::First,
                    "zero" | "0" => TimeOrigin::Zero,
                    _ => return Err(TraceError::Mapping(format!("`time.origin`: unknown origin `{value}` (known: first, zero)"))),
                }
            }
            "tenant_prefix" => self.tenant_prefix = value.to_string(),
            "tenant_default" => {
                if value.is_empty() {
                    return Err(TraceError::Mapping("`tenant_default` must not be empty".into()));
                }
                self.tenant_default = value.to_string()
            }
            "node_gpus" => {
                self.node_gpus = value
                    .parse::<u32>()
                    .ok()
                    .filter(|&g| (1..=allot_core::cluster::MAX_GPUS_PER_NODE).contains(&g))
                    .ok_or_else(|| TraceError::Mapping(format!("`node_gpus`: `{value}` is not a GPU count in 1..=64")))?
            }
            "format" => {
                self.format = Some(match value {
                    "csv" => FileFormat::Csv,
                    "tsv" => FileFormat::Tsv,
                    "jsonl" | "ndjson" => FileFormat::Jsonl,
                    _ => return Err(TraceError::Mapping(format!("`format`: unknown file format `{value}` (known: csv, tsv, jsonl)"))),
                })
            }
            "delimiter" => {
                let d = match value {
                    "\\t" | "tab" => b'\t',
                    v if v.len() == 1 => v.as_bytes()[0],
                    _ => return Err(TraceError::Mapping(format!("`delimiter`: `{value}` is not one character"))),
                };
                self.delimiter = Some(d);
            }
            _ => return Err(TraceError::Mapping(format!("unknown mapping key `{key}` (known: {})", known_keys()))),
        }
        Ok(())
    }

    /// Applies `key=value` pairs joined by commas.
    pub fn set_pairs(&mut self, pairs: &str) -> Result<(), TraceError> {
        for pair in pairs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| TraceError::Mapping(format!("`{pair}` is not key=value")))?;
            self.set(k, v)?;
        }
        Ok(())
    }

    /// Applies a TOML mapping: top-level keys and the `[units]` and `[time]` tables
    /// (or dotted keys), as in `KEYS`.
    pub fn set_toml(&mut self, text: &str) -> Result<(), TraceError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| TraceError::Mapping(e.message().trim().to_string()))?;
        fn walk(m: &mut Mapping, prefix: &str, t: &toml::Table) -> Result<(), TraceError> {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match v {
                    toml::Value::Table(inner) => walk(m, &key, inner)?,
                    toml::Value::String(s) => m.set(&key, s)?,
                    toml::Value::Integer(i) => m.set(&key, &i.to_string())?,
                    other => return Err(TraceError::Mapping(format!("`{key}`: expected a string, found {}", other.type_str()))),
                }
            }
            Ok(())
        }
        walk(self, "", &table)
    }

    /// A mapping from pairs (`submit=arrival,...`).
    pub fn from_pairs(pairs: &str) -> Result<Mapping, TraceError> {
        let mut m = Mapping::default();
        m.set_pairs(pairs)?;
        Ok(m)
    }

    /// A mapping from a TOML file.
    pub fn from_file(path: &Path) -> Result<Mapping, TraceError> {
        let mut m = Mapping::default();
        m.apply_arg(&path.to_string_lossy())?;
        Ok(m)
    }

    /// Applies one `--map` argument: pairs when it holds `=`, else the path of a TOML
    /// file. Several arguments apply in order, later keys winning.
    pub fn apply_arg(&mut self, arg: &str) -> Result<(), TraceError> {
        if arg.contains('=') {
            return self.set_pairs(arg);
        }
        let path = Path::new(arg);
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
        self.set_toml(&text).map_err(|e| match e {
            TraceError::Mapping(m) => TraceError::Mapping(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Checks that the mapping names what every job needs.
    pub fn validate(&self) -> Result<(), TraceError> {
        if self.submit.is_none() {
            return Err(TraceError::Mapping("no column mapped to `submit` (the submit time)".into()));
        }
        if self.gpus.is_none() {
            return Err(TraceError::Mapping("no column mapped to `gpus`".into()));
        }
        match (&self.duration, &self.end) {
            (None, None) => Err(TraceError::Mapping("map `duration` or `end`: jobs need a run time".into())),
            (Some(_), Some(_)) => Err(TraceError::Mapping("map `duration` or `end`, not both".into())),
            _ => Ok(()),
        }
    }

    /// The mapped fields, in `Field` order.
    fn columns(&self) -> [Option<&str>; FIELDS] {
        [
            self.submit.as_deref(),
            self.duration.as_deref(),
            self.end.as_deref(),
            self.gpus.as_deref(),
            self.gpus_per_node.as_deref(),
            self.tenant.as_deref(),
            self.user.as_deref(),
            self.priority.as_deref(),
            self.walltime.as_deref(),
        ]
    }

    fn file_format(&self, path: &Path) -> FileFormat {
        self.format.unwrap_or_else(|| match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jsonl" | "ndjson" | "json") => FileFormat::Jsonl,
            Some("tsv") => FileFormat::Tsv,
            _ => FileFormat::Csv,
        })
    }
}

const FIELDS: usize = 9;
const SUBMIT: usize = 0;
const DURATION: usize = 1;
const END: usize = 2;
const GPUS: usize = 3;
const GPN: usize = 4;
const TENANT: usize = 5;
const USER: usize = 6;
const PRIORITY: usize = 7;
const WALLTIME: usize = 8;

/// A job as read, its submit time still absolute.
struct RawJob {
    submit: Time,
    duration: Time,
    spec: JobSpec,
}

/// One row's mapped values (`None` where the field is not mapped) and what names them.
struct Row<'a> {
    path: &'a Path,
    line: u64,
    names: [Option<&'a str>; FIELDS],
    values: [Option<String>; FIELDS],
}

impl Row<'_> {
    fn bad(&self, field: usize, reason: impl Into<String>) -> TraceError {
        TraceError::BadRow {
            path: self.path.to_path_buf(),
            line: self.line,
            column: self.names[field].unwrap_or("-").to_string(),
            reason: reason.into(),
        }
    }

    /// The value of a mapped field; empty counts as absent.
    fn get(&self, field: usize) -> Option<&str> {
        self.values[field].as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    fn required(&self, field: usize) -> Result<&str, TraceError> {
        self.get(field).ok_or_else(|| self.bad(field, "empty"))
    }

    fn number(&self, field: usize) -> Result<f64, TraceError> {
        let raw = self.required(field)?;
        let v: f64 = raw.parse().map_err(|e| self.bad(field, format!("`{raw}` is not a valid number: {e}")))?;
        if !v.is_finite() {
            return Err(self.bad(field, format!("`{raw}` is not a finite number")));
        }
        Ok(v)
    }

    fn time(&self, m: &Mapping, field: usize) -> Result<Time, TraceError> {
        match m.time_format {
            TimeFormat::Number => self.ms(field, self.number(field)? * m.time_unit.ms()),
            TimeFormat::Datetime => parse_datetime_ms(self.required(field)?).map_err(|e| self.bad(field, e)),
        }
    }

    fn span(&self, field: usize, unit: TimeUnit) -> Result<Time, TraceError> {
        let v = self.number(field)?;
        if v < 0.0 {
            return Err(self.bad(field, format!("{v} is negative")));
        }
        self.ms(field, v * unit.ms())
    }

    /// Milliseconds, bounded so that differences of times never overflow.
    fn ms(&self, field: usize, ms: f64) -> Result<Time, TraceError> {
        if ms.abs() > MAX_MS {
            return Err(self.bad(field, format!("{} s is too far from zero", ms / 1000.0)));
        }
        Ok(ms.round() as Time)
    }
}

fn parse_row(m: &Mapping, row: &Row, id: u64) -> Result<RawJob, TraceError> {
    let submit = row.time(m, SUBMIT)?;
    if m.time_origin == TimeOrigin::Zero && submit < 0 {
        return Err(row.bad(SUBMIT, format!("{submit} ms is before time zero (use time.origin=first)")));
    }
    let duration = if m.duration.is_some() {
        row.span(DURATION, m.duration_unit.unwrap_or(m.time_unit))?
    } else {
        let end = row.time(m, END)?;
        if end < submit {
            return Err(row.bad(END, "the job ends before it is submitted"));
        }
        end - submit
    };
    let gpus = row.number(GPUS)?;
    if !(0.0..=1e6).contains(&gpus) {
        return Err(row.bad(GPUS, format!("{gpus} is not a GPU count in 0..=1000000")));
    }
    let (replicas, gpu) = if gpus > 0.0 && gpus < 1.0 {
        let milli = (gpus * 1000.0).round() as u16;
        if !(1..=999).contains(&milli) {
            return Err(row.bad(GPUS, format!("{gpus} rounds to {milli} milli-GPU, not 1..=999")));
        }
        (1, GpuRequest::Milli(milli))
    } else {
        if gpus.fract() != 0.0 {
            return Err(row.bad(GPUS, format!("{gpus}: more than one GPU must be a whole number")));
        }
        let gpus = gpus as u32;
        match m.gpus_per_node.as_ref().and_then(|_| row.get(GPN)) {
            Some(_) => {
                let per = row.number(GPN)?;
                if per < 1.0 || per.fract() != 0.0 || per > f64::from(allot_core::cluster::MAX_GPUS_PER_NODE) {
                    return Err(row.bad(GPN, format!("{per} is not a GPU count in 1..=64")));
                }
                let per = per as u32;
                if !gpus.is_multiple_of(per) {
                    return Err(row.bad(GPN, format!("{gpus} GPUs do not split into replicas of {per}")));
                }
                (gpus / per, GpuRequest::Whole(per))
            }
            None => {
                let (r, g) = gang_shape(gpus, m.node_gpus);
                (r, GpuRequest::Whole(g))
            }
        }
    };
    let tenant = match row.get(TENANT) {
        Some(t) => format!("{}{t}", m.tenant_prefix),
        None => m.tenant_default.clone(),
    };
    if tenant.trim_matches('/').split('/').any(|s| s.trim().is_empty()) {
        return Err(row.bad(TENANT, format!("`{tenant}` is not a tenant path")));
    }
    let mut spec = JobSpec::new(id, &tenant, gpu);
    spec.replicas = replicas;
    if let Some(u) = row.get(USER) {
        spec.user = u.to_string();
    }
    spec.class = row.get(PRIORITY).map(String::from);
    if m.walltime.is_some() && row.get(WALLTIME).is_some() {
        let ms = row.span(WALLTIME, m.walltime_unit.unwrap_or(m.time_unit))?;
        spec.walltime_s = Some((ms as u64).div_ceil(1000).max(1));
    }
    Ok(RawJob { submit, duration: duration.max(MS_PER_S), spec })
}

/// Reads a trace through a mapping. Columns the mapping names but the file lacks are
/// `TraceError::MissingColumn` (for JSONL, keys absent from the first record); bad
/// values are `TraceError::BadRow` naming the column.
pub fn read(path: &Path, mapping: &Mapping, opts: ReadOptions) -> Result<Trace, TraceError> {
    mapping.validate()?;
    let names = mapping.columns();
    let (raw, skipped) = match mapping.file_format(path) {
        FileFormat::Jsonl => read_jsonl(path, mapping, names, opts)?,
        f => {
            let delim = mapping.delimiter.unwrap_or(if f == FileFormat::Tsv { b'\t' } else { b',' });
            let mut t = Table::open(path, delim, Header::FirstLine)?;
            let mut cols = [None; FIELDS];
            for (i, name) in names.iter().enumerate() {
                if let Some(n) = name {
                    cols[i] = Some(t.column(n)?);
                }
            }
            let mut id = 0;
            t.read_rows(opts, |t, rec, line| {
                let values = cols.map(|c| c.map(|c| rec.get(c).map(String::from)));
                if let Some(i) = (0..FIELDS).find(|&i| matches!(values[i], Some(None))) {
                    return Err(t.bad(
                        line,
                        names[i].unwrap_or("-"),
                        format!("missing: the row has {} fields, the header {}", rec.len(), t.header.len()),
                    ));
                }
                let row = Row { path: &t.path, line, names, values: values.map(|v| v.flatten()) };
                let job = parse_row(mapping, &row, id)?;
                id += 1;
                Ok(job)
            })?
        }
    };
    let origin = match mapping.time_origin {
        TimeOrigin::First => raw.iter().map(|j| j.submit).min().unwrap_or(0),
        TimeOrigin::Zero => 0,
    };
    let mut trace = Trace {
        jobs: raw.into_iter().map(|j| TraceJob { submit: j.submit - origin, duration: j.duration, spec: j.spec }).collect(),
        skipped_rows: skipped,
    };
    trace.sort();
    Ok(trace)
}

fn json_text(v: &serde_json::Value) -> Result<Option<String>, &'static str> {
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s.clone())),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        serde_json::Value::Bool(b) => Ok(Some(b.to_string())),
        _ => Err("an array or object is not a field value"),
    }
}

fn read_jsonl(path: &Path, m: &Mapping, names: [Option<&str>; FIELDS], opts: ReadOptions) -> Result<(Vec<RawJob>, u64), TraceError> {
    let file = std::fs::File::open(path).map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
    let path_buf: PathBuf = path.to_path_buf();
    let bad = |line: u64, column: &str, reason: String| TraceError::BadRow { path: path_buf.clone(), line, column: column.into(), reason };
    let mut jobs = Vec::new();
    let mut skipped = 0;
    let mut checked_keys = false;
    for (i, text) in std::io::BufReader::new(file).lines().enumerate() {
        let line = i as u64 + 1;
        let text = text.map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
        if text.trim().is_empty() {
            continue;
        }
        let parsed = (|| {
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(line, "-", format!("not JSON: {e}")))?;
            let obj = value.as_object().ok_or_else(|| bad(line, "-", "a line must be one JSON object".into()))?;
            if !checked_keys {
                // The first record stands for a header: a mapped key it lacks is
                // a mapping error, not a bad row.
                checked_keys = true;
                if let Some(missing) = names.iter().flatten().find(|n| !obj.contains_key(**n)) {
                    return Err(TraceError::MissingColumn {
                        path: path.to_path_buf(),
                        column: missing.to_string(),
                        header: obj.keys().cloned().collect::<Vec<_>>().join(","),
                    });
                }
            }
            let mut values: [Option<String>; FIELDS] = Default::default();
            for (f, name) in names.iter().enumerate() {
                if let Some(n) = name {
                    values[f] = match obj.get(*n) {
                        Some(v) => json_text(v).map_err(|r| bad(line, n, r.into()))?,
                        None => None,
                    };
                }
            }
            parse_row(m, &Row { path, line, names, values }, jobs.len() as u64)
        })();
        match parsed {
            Ok(j) => jobs.push(j),
            Err(e @ TraceError::MissingColumn { .. }) => return Err(e),
            Err(_) if opts.skip_bad_rows => skipped += 1,
            Err(e) => return Err(e),
        }
    }
    Ok((jobs, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_toml_set_the_same_mapping() {
        let a = Mapping::from_pairs("submit=arrival, duration=run_s,gpus=num_gpus,tenant=vc,units.time=min,time.origin=zero").unwrap();
        let mut b = Mapping::default();
        b.set_toml(
            "submit = 'arrival'\nduration = 'run_s'\ngpus = 'num_gpus'\ntenant = 'vc'\n[units]\ntime = 'min'\n[time]\norigin = 'zero'\n",
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.time_unit, TimeUnit::Min);
        assert_eq!(a.time_origin, TimeOrigin::Zero);
    }

    #[test]
    fn unknown_keys_and_values_are_named() {
        let e = Mapping::from_pairs("sumbit=arrival").unwrap_err().to_string();
        assert!(e.contains("unknown mapping key `sumbit`") && e.contains("submit"), "{e}");
        let e = Mapping::from_pairs("units.time=fortnight").unwrap_err().to_string();
        assert!(e.contains("units.time") && e.contains("fortnight"), "{e}");
        let e = Mapping::from_pairs("time.format=%d/%m/%Y").unwrap_err().to_string();
        assert!(e.contains("%d/%m/%Y"), "{e}");
        let e = Mapping::from_pairs("submit").unwrap_err().to_string();
        assert!(e.contains("`submit` is not key=value"), "{e}");
        let mut m = Mapping::default();
        let e = m.set_toml("[units]\ntime = 3.5\n").unwrap_err().to_string();
        assert!(e.contains("units.time"), "{e}");
    }

    #[test]
    fn validation_names_what_is_missing() {
        let e = Mapping::from_pairs("gpus=g,duration=d").unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("`submit`"), "{e}");
        let e = Mapping::from_pairs("submit=s,duration=d").unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("`gpus`"), "{e}");
        let e = Mapping::from_pairs("submit=s,gpus=g").unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("`duration` or `end`"), "{e}");
        let e = Mapping::from_pairs("submit=s,gpus=g,duration=d,end=e").unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("not both"), "{e}");
    }
}
