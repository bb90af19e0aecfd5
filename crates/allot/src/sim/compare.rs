//! `allot sim compare A.json B.json`: the difference between two replays, overall and
//! per tenant (wait, JCT, utilisation and share, borrowed and lent GPU-hours).
//!
//! Each file is a replay summary: the output of `allot sim replay --json` (its last
//! line) or the `summary.json` that `--out` writes. Fields missing in an older file
//! are shown as `-`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// The baseline replay (JSON).
    a: PathBuf,
    /// The replay to compare with it (JSON).
    b: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Overall figures compared, with how they print.
const OVERALL: [(&str, Unit); 14] = [
    ("jobs", Unit::Count),
    ("completed", Unit::Count),
    ("gpus", Unit::Count),
    ("avg_wait_s", Unit::Secs),
    ("p50_wait_s", Unit::Secs),
    ("p99_wait_s", Unit::Secs),
    ("avg_jct_s", Unit::Secs),
    ("p99_jct_s", Unit::Secs),
    ("utilization_pct", Unit::Pct),
    ("makespan_s", Unit::Secs),
    ("preemptions", Unit::Count),
    ("jain_fairness", Unit::Ratio),
    ("quota_violation_gpu_hours", Unit::Hours),
    ("borrowed_gpu_hours", Unit::Hours),
];

/// Per-tenant figures compared.
const TENANT: [(&str, Unit); 9] = [
    ("jobs", Unit::Count),
    ("avg_wait_s", Unit::Secs),
    ("p99_wait_s", Unit::Secs),
    ("avg_jct_s", Unit::Secs),
    ("share_pct", Unit::Pct),
    ("nominal_utilization_pct", Unit::Pct),
    ("borrowed_gpu_hours", Unit::Hours),
    ("lent_gpu_hours", Unit::Hours),
    ("quota_violation_gpu_hours", Unit::Hours),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Unit {
    Count,
    Secs,
    Pct,
    Ratio,
    Hours,
}

/// Reads a summary: the whole file as JSON, else its last non-empty line.
pub fn read_summary(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
            serde_json::from_str(last)
                .with_context(|| format!("{}: not a replay summary (JSON object, or a last line that is one)", path.display()))?
        }
    };
    match value {
        Value::Object(m) if m.contains_key("per_tenant") || m.contains_key("jobs") => Ok(m),
        _ => bail!("{}: not a replay summary (no `jobs` or `per_tenant`)", path.display()),
    }
}

fn num(m: Option<&Map<String, Value>>, key: &str) -> Option<f64> {
    m?.get(key)?.as_f64()
}

fn pair(a: Option<f64>, b: Option<f64>) -> Value {
    let delta = match (a, b) {
        (Some(x), Some(y)) => json!(y - x),
        _ => Value::Null,
    };
    json!({ "a": a, "b": b, "delta": delta })
}

/// The comparison as a JSON object.
pub fn compare(a: &Map<String, Value>, b: &Map<String, Value>) -> Value {
    let overall: Map<String, Value> = OVERALL.iter().map(|(k, _)| ((*k).to_string(), pair(num(Some(a), k), num(Some(b), k)))).collect();
    let tenants_of = |m: &Map<String, Value>| -> BTreeSet<String> {
        m.get("per_tenant").and_then(Value::as_object).map(|t| t.keys().cloned().collect()).unwrap_or_default()
    };
    let names: BTreeSet<String> = tenants_of(a).union(&tenants_of(b)).cloned().collect();
    let tenant =
        |m: &Map<String, Value>, name: &str| -> Option<Map<String, Value>> { m.get("per_tenant")?.get(name)?.as_object().cloned() };
    let per_tenant: Map<String, Value> = names
        .iter()
        .map(|name| {
            let (ta, tb) = (tenant(a, name), tenant(b, name));
            let fields: Map<String, Value> =
                TENANT.iter().map(|(k, _)| ((*k).to_string(), pair(num(ta.as_ref(), k), num(tb.as_ref(), k)))).collect();
            (name.clone(), Value::Object(fields))
        })
        .collect();
    json!({ "overall": overall, "per_tenant": per_tenant })
}

fn show(v: Option<f64>, unit: Unit) -> String {
    let Some(v) = v else { return "-".into() };
    match unit {
        Unit::Count => format!("{v:.0}"),
        Unit::Pct => format!("{v:.1}%"),
        Unit::Ratio => format!("{v:.3}"),
        Unit::Hours => format!("{v:.0} h"),
        Unit::Secs => {
            let a = v.abs();
            if a < 120.0 {
                format!("{v:.0} s")
            } else if a < 7200.0 {
                format!("{:.1} min", v / 60.0)
            } else if a < 172_800.0 {
                format!("{:.1} h", v / 3600.0)
            } else {
                format!("{:.1} d", v / 86_400.0)
            }
        }
    }
}

fn show_delta(d: Option<f64>, unit: Unit) -> String {
    match d {
        Some(d) if d > 0.0 => format!("+{}", show(Some(d), unit)),
        Some(d) => show(Some(d), unit),
        None => "-".into(),
    }
}

fn get(v: &Value, side: &str) -> Option<f64> {
    v.get(side)?.as_f64()
}

pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let a = read_summary(&args.a)?;
    let b = read_summary(&args.b)?;
    let cmp = compare(&a, &b);
    if args.json {
        let mut out = cmp;
        if let Some(o) = out.as_object_mut() {
            o.insert("a".into(), json!(args.a.display().to_string()));
            o.insert("b".into(), json!(args.b.display().to_string()));
        }
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!("A = {}\nB = {}\n", args.a.display(), args.b.display());
    println!("{:<28} {:>12} {:>12} {:>12}", "", "A", "B", "B - A");
    for (k, unit) in OVERALL {
        let v = &cmp["overall"][k];
        println!("{:<28} {:>12} {:>12} {:>12}", k, show(get(v, "a"), unit), show(get(v, "b"), unit), show_delta(get(v, "delta"), unit));
    }
    let Some(tenants) = cmp["per_tenant"].as_object() else { return Ok(()) };
    if tenants.is_empty() {
        return Ok(());
    }
    println!();
    let w = tenants.keys().map(|n| n.chars().count()).max().unwrap_or(6).clamp(6, 60);
    println!(
        "{:<w$} {:>21} {:>21} {:>17} {:>21} {:>21}",
        "tenant", "wait avg A -> B", "wait p99 A -> B", "share A -> B", "borrowed A -> B", "lent A -> B"
    );
    for (name, t) in tenants {
        let short: String = name.chars().take(w).collect();
        let cell = |k: &str, unit: Unit| format!("{} -> {}", show(get(&t[k], "a"), unit), show(get(&t[k], "b"), unit));
        println!(
            "{:<w$} {:>21} {:>21} {:>17} {:>21} {:>21}",
            short,
            cell("avg_wait_s", Unit::Secs),
            cell("p99_wait_s", Unit::Secs),
            cell("share_pct", Unit::Pct),
            cell("borrowed_gpu_hours", Unit::Hours),
            cell("lent_gpu_hours", Unit::Hours)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn differences_per_tenant_and_overall() {
        let a = obj(json!({"jobs": 10, "avg_wait_s": 100.0, "per_tenant": {"x": {"avg_wait_s": 50.0, "lent_gpu_hours": 3.0}}}));
        let b = obj(json!({"jobs": 10, "avg_wait_s": 40.0, "per_tenant": {"x": {"avg_wait_s": 20.0}, "y": {"avg_wait_s": 5.0}}}));
        let c = compare(&a, &b);
        assert_eq!(c["overall"]["avg_wait_s"]["delta"], json!(-60.0));
        assert_eq!(c["overall"]["jobs"]["delta"], json!(0.0));
        assert_eq!(c["per_tenant"]["x"]["avg_wait_s"]["delta"], json!(-30.0));
        assert_eq!(c["per_tenant"]["x"]["lent_gpu_hours"]["b"], Value::Null);
        assert_eq!(c["per_tenant"]["y"]["avg_wait_s"]["a"], Value::Null);
        assert_eq!(c["per_tenant"]["y"]["avg_wait_s"]["delta"], Value::Null);
    }

    #[test]
    fn reads_a_whole_file_or_its_last_line() {
        let dir = std::env::temp_dir().join(format!("allot-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.json");
        std::fs::write(&p, "some note\n{\"jobs\": 3, \"per_tenant\": {}}\n").unwrap();
        assert_eq!(read_summary(&p).unwrap()["jobs"], json!(3));
        std::fs::write(&p, "{\n  \"jobs\": 4\n}\n").unwrap();
        assert_eq!(read_summary(&p).unwrap()["jobs"], json!(4));
        std::fs::write(&p, "[1, 2]").unwrap();
        assert!(read_summary(&p).is_err());
        std::fs::write(&p, "not json").unwrap();
        assert!(read_summary(&p).is_err());
        assert!(read_summary(&dir.join("missing.json")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
