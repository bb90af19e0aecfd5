//! `allot submit`: a job from flags, from a TOML job file, or from a shell script
//! with `#SBATCH` directives. Flags win over the file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use allot_api::{JobSubmit, TopologySpec};
use serde::Deserialize;

use super::time::parse_duration;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct SubmitArgs {
    /// A TOML job file (`*.toml`) or a shell script with `#SBATCH` directives.
    pub file: Option<PathBuf>,
    /// Total GPUs (split over whole nodes when more than one node holds).
    #[arg(long, short = 'G')]
    pub gpus: Option<u32>,
    /// Nodes (replicas of the gang; all start together or none does).
    #[arg(long, short = 'N')]
    pub nodes: Option<u32>,
    /// GPUs on each node.
    #[arg(long)]
    pub gpus_per_node: Option<u32>,
    /// A fraction of one GPU, e.g. 0.25 (one replica).
    #[arg(long, conflicts_with_all = ["gpus", "gpus_per_node"])]
    pub gpu_fraction: Option<f64>,
    /// GPU flavor, e.g. H200-141G; repeat or comma-separate for alternatives.
    #[arg(long, short = 'f', value_delimiter = ',')]
    pub flavor: Vec<String>,
    /// Walltime estimate: 90 (minutes), 2:00:00, 1-02:03:04, 30m, 2h.
    #[arg(long, short = 't')]
    pub time: Option<String>,
    /// Priority class, e.g. high.
    #[arg(long)]
    pub priority: Option<String>,
    /// Tenant the job is charged to (default: the client config's `tenant`).
    #[arg(long, env = "ALLOT_TENANT")]
    pub tenant: Option<String>,
    /// Project label for accounting.
    #[arg(long)]
    pub project: Option<String>,
    /// Job name.
    #[arg(long, short = 'J')]
    pub name: Option<String>,
    /// Environment variable NAME=VALUE (or NAME, taken from here); repeatable.
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// All replicas within one domain of this topology level, e.g. leaf.
    #[arg(long)]
    pub topology: Option<String>,
    /// Container image.
    #[arg(long)]
    pub image: Option<String>,
    /// Working directory of the job's processes.
    #[arg(long)]
    pub workdir: Option<String>,
    /// May be preempted (stopped and requeued) by higher-priority work.
    #[arg(long)]
    pub preemptible: Option<bool>,
    /// How often the job checkpoints (same forms as --time).
    #[arg(long)]
    pub checkpoint_interval: Option<String>,
    /// The command to run, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// What a file contributed, before flags.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Spec {
    pub gpus: Option<u32>,
    pub nodes: Option<u32>,
    pub gpus_per_node: Option<u32>,
    pub gpu_fraction: Option<f64>,
    pub flavors: Vec<String>,
    pub time_s: Option<u64>,
    pub priority: Option<String>,
    pub tenant: Option<String>,
    pub project: Option<String>,
    pub name: Option<String>,
    pub env: BTreeMap<String, String>,
    pub topology: Option<TopologySpec>,
    pub image: Option<String>,
    pub workdir: Option<String>,
    pub preemptible: Option<bool>,
    pub checkpoint_s: Option<u64>,
    pub cpus_per_node: Option<u32>,
    pub memory_mib_per_node: Option<u64>,
    pub command: Vec<String>,
}

/// A job file in TOML. Unknown fields are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    name: Option<String>,
    tenant: Option<String>,
    project: Option<String>,
    gpus: Option<u32>,
    nodes: Option<u32>,
    gpus_per_node: Option<u32>,
    gpu_fraction: Option<f64>,
    flavor: Option<OneOrMany>,
    time: Option<Time>,
    priority: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    command: Option<Command>,
    topology: Option<Topology>,
    image: Option<String>,
    workdir: Option<String>,
    preemptible: Option<bool>,
    checkpoint_interval: Option<Time>,
    cpus_per_node: Option<u32>,
    memory: Option<Memory>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Time {
    Seconds(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Memory {
    Mib(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Command {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Topology {
    Level(String),
    Full(TopologySpec),
}

impl Time {
    fn seconds(self, field: &str) -> Result<u64, String> {
        match self {
            Time::Seconds(0) => Err(format!("{field}: must be positive")),
            Time::Seconds(s) => Ok(s),
            Time::Text(t) => parse_duration(&t).map_err(|e| format!("{field}: {e}")),
        }
    }
}

/// Parses a TOML job file.
pub fn parse_job_file(text: &str) -> Result<Spec, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| e.message().to_string())?;
    let f: JobFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().message().to_string();
        if path == "." { msg } else { format!("{path}: {msg}") }
    })?;
    Ok(Spec {
        gpus: f.gpus,
        nodes: f.nodes,
        gpus_per_node: f.gpus_per_node,
        gpu_fraction: f.gpu_fraction,
        flavors: match f.flavor {
            None => vec![],
            Some(OneOrMany::One(s)) => vec![s],
            Some(OneOrMany::Many(v)) => v,
        },
        time_s: f.time.map(|t| t.seconds("time")).transpose()?,
        priority: f.priority,
        tenant: f.tenant,
        project: f.project,
        name: f.name,
        env: f.env,
        topology: f.topology.map(|t| match t {
            Topology::Level(level) => TopologySpec { level, required: true },
            Topology::Full(t) => t,
        }),
        image: f.image,
        workdir: f.workdir,
        preemptible: f.preemptible,
        checkpoint_s: f.checkpoint_interval.map(|t| t.seconds("checkpoint_interval")).transpose()?,
        cpus_per_node: f.cpus_per_node,
        memory_mib_per_node: f
            .memory
            .map(|m| match m {
                Memory::Mib(v) => Ok(v),
                Memory::Text(t) => parse_memory_mib(&t).map_err(|e| format!("memory: {e}")),
            })
            .transpose()?,
        command: match f.command {
            None => vec![],
            Some(Command::Argv(v)) => v,
            Some(Command::Shell(s)) => vec!["sh".into(), "-c".into(), s],
        },
    })
}

/// Memory as Slurm writes it: a number of MiB, or with a K, M, G or T suffix.
pub fn parse_memory_mib(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("`{s}` is not an amount of memory (examples: 4096, 64G, 512M, 1T)");
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 0,
                'M' => 1,
                'G' => 1024,
                'T' => 1024 * 1024,
                _ => return Err(bad()),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    if num.is_empty() || num.len() > 12 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    Ok(if mult == 0 { n.div_ceil(1024) } else { n.saturating_mul(mult) })
}

/// `#SBATCH` directives of a script: the spec, and a warning per directive that
/// allot does not use. As in Slurm, directives end at the first line that is
/// neither blank nor a comment.
pub fn parse_sbatch(script: &str) -> (Spec, Vec<String>) {
    let mut spec = Spec::default();
    let mut warnings = vec![];
    let mut ntasks_per_node: Option<u32> = None;
    let mut cpus_per_task: Option<u32> = None;
    for (lineno, line) in script.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || (l.starts_with('#') && !l.starts_with("#SBATCH")) {
            continue;
        }
        let Some(rest) = l.strip_prefix("#SBATCH") else { break };
        let words = split_words(rest);
        let mut toks = words.iter().map(String::as_str).peekable();
        while let Some(tok) = toks.next() {
            let at = format!("line {}", lineno + 1);
            // --opt=value, --opt value, -X value, -Xvalue
            let (key, inline): (String, Option<String>) = if let Some(long) = tok.strip_prefix("--") {
                match long.split_once('=') {
                    Some((k, v)) => (format!("--{k}"), Some(v.to_string())),
                    None => (format!("--{long}"), None),
                }
            } else if tok.starts_with('-') && tok.len() >= 2 {
                let (k, v) = tok.split_at(2);
                (k.to_string(), (!v.is_empty()).then(|| v.trim_start_matches('=').to_string()))
            } else {
                warnings.push(format!("{at}: `{tok}` is not an option; ignored"));
                continue;
            };
            let canon = match key.as_str() {
                "-G" => "--gpus",
                "-N" => "--nodes",
                "-t" => "--time",
                "-J" => "--job-name",
                "-A" => "--account",
                "-p" => "--partition",
                "-q" => "--qos",
                "-c" => "--cpus-per-task",
                k => k,
            }
            .to_string();
            const FLAGS: &[&str] = &["--exclusive", "--requeue", "--no-requeue", "--hold", "--overcommit", "--contiguous"];
            let takes_value = !FLAGS.contains(&canon.as_str());
            let value = match inline {
                Some(v) => Some(v),
                None if takes_value => toks.next_if(|t| !t.starts_with('-')).map(String::from),
                None => None,
            };
            let need = |v: &Option<String>| v.clone().ok_or_else(|| format!("{at}: `{key}` needs a value"));
            let r: Result<(), String> = (|| {
                match canon.as_str() {
                    "--gpus" => spec.gpus = Some(gpu_count(&need(&value)?, &at, &mut warnings)?),
                    "--gpus-per-node" => spec.gpus_per_node = Some(gpu_count(&need(&value)?, &at, &mut warnings)?),
                    "--gres" => {
                        let v = need(&value)?;
                        let gpu = v.split(',').find(|g| g.starts_with("gpu"));
                        match gpu {
                            Some(g) => {
                                // gpu, gpu:N, gpu:TYPE (one), gpu:TYPE:N
                                let parts: Vec<&str> = g.split(':').collect();
                                let count = match parts.as_slice() {
                                    ["gpu"] => Some(1),
                                    ["gpu", n] if n.bytes().all(|b| b.is_ascii_digit()) => n.parse().ok(),
                                    ["gpu", _] => Some(1),
                                    ["gpu", _, n] => n.parse().ok(),
                                    _ => None,
                                };
                                spec.gpus_per_node = Some(count.ok_or_else(|| format!("{at}: bad --gres `{v}`"))?);
                            }
                            None => warnings.push(format!("{at}: --gres={v} has no gpu; ignored")),
                        }
                    }
                    "--nodes" => {
                        let v = need(&value)?;
                        let first = v.split('-').next().unwrap_or("");
                        if v.contains('-') {
                            warnings.push(format!("{at}: --nodes={v}: a range; allot asks for the minimum, {first}"));
                        }
                        spec.nodes = Some(first.parse().map_err(|_| format!("{at}: --nodes `{v}` is not a number"))?);
                    }
                    "--ntasks-per-node" => {
                        let v = need(&value)?;
                        ntasks_per_node = Some(v.parse().map_err(|_| format!("{at}: --ntasks-per-node `{v}` is not a number"))?);
                    }
                    "--cpus-per-task" => {
                        let v = need(&value)?;
                        cpus_per_task = Some(v.parse().map_err(|_| format!("{at}: --cpus-per-task `{v}` is not a number"))?);
                    }
                    "--mem" => spec.memory_mib_per_node = Some(parse_memory_mib(&need(&value)?).map_err(|e| format!("{at}: --mem: {e}"))?),
                    "--time" => spec.time_s = Some(parse_duration(&need(&value)?).map_err(|e| format!("{at}: --time: {e}"))?),
                    "--job-name" => spec.name = Some(need(&value)?),
                    "--account" => spec.project = Some(need(&value)?),
                    "--partition" => spec.flavors = need(&value)?.split(',').map(String::from).collect(),
                    "--qos" => spec.priority = Some(need(&value)?),
                    "--chdir" => spec.workdir = Some(need(&value)?),
                    _ => {
                        let shown = match &value {
                            Some(v) => format!("{key}={v}"),
                            None => key.clone(),
                        };
                        warnings.push(format!("{at}: unknown #SBATCH directive `{shown}`; ignored"));
                    }
                }
                Ok(())
            })();
            if let Err(e) = r {
                warnings.push(format!("{e}; ignored"));
            }
        }
    }
    if let Some(n) = ntasks_per_node {
        spec.env.insert("SLURM_NTASKS_PER_NODE".into(), n.to_string());
    }
    if let Some(c) = cpus_per_task {
        spec.cpus_per_node = Some(c.saturating_mul(ntasks_per_node.unwrap_or(1)));
    }
    // The script itself runs, by the interpreter its #! line names (sh otherwise).
    let interp: Vec<String> = script
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec!["sh".into()]);
    spec.command = interp.into_iter().chain(["-c".to_string(), script.to_string(), "allot-job".to_string()]).collect();
    (spec, warnings)
}

/// Words as a shell splits them (single and double quotes), up to a `#` comment.
fn split_words(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None if c == '#' && !in_word => break,
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// `8`, or Slurm's `type:8` (the type is not a flavor name: a warning).
fn gpu_count(v: &str, at: &str, warnings: &mut Vec<String>) -> Result<u32, String> {
    let (ty, count) = match v.rsplit_once(':') {
        Some((t, c)) => (Some(t), c),
        None => (None, v),
    };
    if let Some(t) = ty {
        warnings.push(format!("{at}: GPU type `{t}` ignored; choose the flavor with --partition"));
    }
    count.parse().map_err(|_| format!("{at}: `{v}` is not a number of GPUs"))
}

/// The gang's shape: (replicas, whole GPUs per replica) or a fraction.
#[derive(Debug, PartialEq)]
pub enum Shape {
    Whole { replicas: u32, gpus: u32 },
    Fraction { milli: u16 },
}

/// Resolves `--gpus`, `--nodes`, `--gpus-per-node` and `--gpu-fraction`;
/// `node_gpus` is the largest node's GPU count, used to split `--gpus` alone over
/// whole nodes.
pub fn shape(
    gpus: Option<u32>,
    nodes: Option<u32>,
    per_node: Option<u32>,
    fraction: Option<f64>,
    node_gpus: Option<u32>,
) -> Result<Shape, String> {
    if let Some(f) = fraction {
        if gpus.is_some() || per_node.is_some() || nodes.is_some_and(|n| n > 1) {
            return Err("--gpu-fraction is one share of one GPU: it goes with no --gpus, --gpus-per-node or --nodes".into());
        }
        let milli = (f * 1000.0).round();
        if !(f.is_finite() && (1.0..=999.0).contains(&milli)) {
            return Err(format!("--gpu-fraction {f}: must be above 0 and below 1 (e.g. 0.25)"));
        }
        return Ok(Shape::Fraction { milli: milli as u16 });
    }
    if nodes == Some(0) {
        return Err("--nodes must be at least 1".into());
    }
    match (gpus, nodes, per_node) {
        (_, Some(n), Some(g)) => {
            if let Some(t) = gpus
                && t != n * g
            {
                return Err(format!("--gpus {t} disagrees with --nodes {n} x --gpus-per-node {g}"));
            }
            Ok(Shape::Whole { replicas: n, gpus: g })
        }
        (Some(t), Some(n), None) => {
            if t % n != 0 {
                return Err(format!("--gpus {t} does not split evenly over --nodes {n}"));
            }
            Ok(Shape::Whole { replicas: n, gpus: t / n })
        }
        (None, Some(n), None) => Ok(Shape::Whole { replicas: n, gpus: node_gpus.unwrap_or(1) }),
        (_, None, Some(g)) => Ok(Shape::Whole { replicas: 1, gpus: g }),
        (Some(t), None, None) => match node_gpus {
            Some(size) if size > 0 && t > size => {
                if t % size != 0 {
                    return Err(format!(
                        "--gpus {t} is more than one node holds ({size}) and not a multiple of it: give --nodes and --gpus-per-node"
                    ));
                }
                Ok(Shape::Whole { replicas: t / size, gpus: size })
            }
            _ => Ok(Shape::Whole { replicas: 1, gpus: t }),
        },
        (None, None, None) => Ok(Shape::Whole { replicas: 1, gpus: 1 }),
    }
}

/// Flags over the file's spec.
pub fn merge(args: &SubmitArgs, mut spec: Spec) -> Result<Spec, String> {
    macro_rules! over {
        ($($f:ident => $g:ident),*) => { $( if args.$f.is_some() { spec.$g = args.$f.clone(); } )* };
    }
    over!(gpus => gpus, nodes => nodes, gpus_per_node => gpus_per_node, gpu_fraction => gpu_fraction, priority => priority,
        tenant => tenant, project => project, name => name, image => image, workdir => workdir, preemptible => preemptible);
    if args.gpu_fraction.is_some() {
        spec.gpus = None;
        spec.gpus_per_node = None;
    }
    if !args.flavor.is_empty() {
        spec.flavors = args.flavor.iter().map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
    }
    if let Some(t) = &args.time {
        spec.time_s = Some(parse_duration(t).map_err(|e| format!("--time: {e}"))?);
    }
    if let Some(t) = &args.checkpoint_interval {
        spec.checkpoint_s = Some(parse_duration(t).map_err(|e| format!("--checkpoint-interval: {e}"))?);
    }
    if let Some(level) = &args.topology {
        spec.topology = Some(TopologySpec { level: level.clone(), required: true });
    }
    for e in &args.env {
        let (k, v) = match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), std::env::var(e).map_err(|_| format!("--env {e}: no such variable here (give {e}=VALUE)"))?),
        };
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(format!("--env `{e}`: expected NAME=VALUE"));
        }
        spec.env.insert(k, v);
    }
    if !args.command.is_empty() {
        spec.command = args.command.clone();
    }
    Ok(spec)
}

/// The submission.
pub fn to_submit(spec: Spec, shape: Shape, tenant: String) -> JobSubmit {
    let (replicas, gpus, gpu_milli) = match shape {
        Shape::Whole { replicas, gpus } => (replicas, Some(gpus), None),
        Shape::Fraction { milli } => (1, None, Some(milli)),
    };
    JobSubmit {
        tenant,
        project: spec.project,
        name: spec.name,
        class: spec.priority,
        replicas,
        gpus,
        gpu_milli,
        cpus_per_replica: spec.cpus_per_node.unwrap_or(0),
        memory_mib_per_replica: spec.memory_mib_per_node.unwrap_or(0),
        flavors: spec.flavors,
        topology: spec.topology,
        walltime_s: spec.time_s,
        preemptible: spec.preemptible,
        checkpoint_interval_s: spec.checkpoint_s,
        command: spec.command,
        env: spec.env,
        image: spec.image,
        workdir: spec.workdir,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_directives_table() {
        // (directive lines, check)
        type Check = fn(&Spec) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            ("gpus", "#SBATCH --gpus=16", |s| s.gpus == Some(16)),
            ("gpus short", "#SBATCH -G 4", |s| s.gpus == Some(4)),
            ("gpus typed", "#SBATCH --gpus=h100:8", |s| s.gpus == Some(8)),
            ("nodes", "#SBATCH --nodes=2", |s| s.nodes == Some(2)),
            ("nodes short glued", "#SBATCH -N4", |s| s.nodes == Some(4)),
            ("nodes range", "#SBATCH --nodes=2-4", |s| s.nodes == Some(2)),
            ("gpus per node", "#SBATCH --gpus-per-node 8", |s| s.gpus_per_node == Some(8)),
            ("gres", "#SBATCH --gres=gpu:a100:4", |s| s.gpus_per_node == Some(4)),
            ("ntasks per node", "#SBATCH --ntasks-per-node=8", |s| s.env.get("SLURM_NTASKS_PER_NODE").map(String::as_str) == Some("8")),
            ("time", "#SBATCH --time=1-02:03:04", |s| s.time_s == Some(93784)),
            ("time minutes", "#SBATCH -t 90", |s| s.time_s == Some(5400)),
            ("job name", "#SBATCH --job-name=train-7b", |s| s.name.as_deref() == Some("train-7b")),
            ("job name short", "#SBATCH -J x", |s| s.name.as_deref() == Some("x")),
            ("account is the project", "#SBATCH --account=fm-1", |s| s.project.as_deref() == Some("fm-1")),
            ("partition is the flavor", "#SBATCH -p H200-141G,H100-80G", |s| s.flavors == ["H200-141G", "H100-80G"]),
            ("qos is the class", "#SBATCH --qos=high", |s| s.priority.as_deref() == Some("high")),
            ("mem", "#SBATCH --mem=64G", |s| s.memory_mib_per_node == Some(65536)),
            ("cpus", "#SBATCH --ntasks-per-node=4 --cpus-per-task=8", |s| s.cpus_per_node == Some(32)),
            ("quoted", "#SBATCH --job-name=\"a b\"", |s| s.name.as_deref() == Some("a b")),
            ("inline comment", "#SBATCH --nodes=3 # three nodes", |s| s.nodes == Some(3)),
        ];
        for (what, lines, check) in cases {
            let script = format!("#!/bin/bash\n{lines}\necho hi\n");
            let (spec, warnings) = parse_sbatch(&script);
            assert!(check(&spec), "{what}: {spec:?} {warnings:?}");
        }
    }

    #[test]
    fn unknown_directives_are_warnings_and_directives_end_at_the_first_command() {
        let script = "#!/bin/bash\n# a comment\n\n#SBATCH --mail-type=END --exclusive\n#SBATCH -o out.log\n#SBATCH --nodes=2\necho hi\n#SBATCH --nodes=9\n";
        let (spec, warnings) = parse_sbatch(script);
        assert_eq!(spec.nodes, Some(2), "directives after the first command are not directives");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("--mail-type=END") && warnings[0].contains("line 4"), "{warnings:?}");
        assert!(warnings[1].contains("--exclusive"));
        assert!(warnings[2].contains("-o=out.log"), "{warnings:?}");
        assert_eq!(&spec.command[..2], &["/bin/bash".to_string(), "-c".into()]);
        assert_eq!(spec.command[2], script);
    }

    #[test]
    fn bad_directive_values_are_warnings_not_panics() {
        let (spec, warnings) = parse_sbatch("#SBATCH --nodes=x --time=soon --gpus\n#SBATCH --gres=gpu:zz:q\n");
        assert_eq!(spec, Spec { command: spec.command.clone(), ..Default::default() });
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert_eq!(spec.command[0], "sh", "no #! line: sh");
    }

    #[test]
    fn shapes() {
        use Shape::*;
        let ok = |g, n, p, f, size| shape(g, n, p, f, size).unwrap();
        assert_eq!(ok(Some(8), None, None, None, Some(8)), Whole { replicas: 1, gpus: 8 });
        assert_eq!(ok(Some(64), None, None, None, Some(8)), Whole { replicas: 8, gpus: 8 });
        assert_eq!(ok(Some(16), Some(2), None, None, None), Whole { replicas: 2, gpus: 8 });
        assert_eq!(ok(None, Some(2), Some(4), None, None), Whole { replicas: 2, gpus: 4 });
        assert_eq!(ok(None, None, Some(4), None, None), Whole { replicas: 1, gpus: 4 });
        assert_eq!(ok(None, Some(3), None, None, Some(8)), Whole { replicas: 3, gpus: 8 });
        assert_eq!(ok(None, None, None, None, None), Whole { replicas: 1, gpus: 1 });
        assert_eq!(ok(None, None, None, Some(0.25), None), Fraction { milli: 250 });
        for (g, n, p, f) in [
            (Some(12), None, None, None),
            (Some(15), Some(2), None, None),
            (Some(8), Some(2), Some(8), None),
            (None, Some(0), None, None),
            (None, None, None, Some(1.0)),
            (None, None, None, Some(f64::NAN)),
            (Some(1), None, None, Some(0.5)),
        ] {
            assert!(shape(g, n, p, f, Some(8)).is_err(), "{g:?} {n:?} {p:?} {f:?}");
        }
    }

    #[test]
    fn job_files() {
        let spec = parse_job_file(
            "name = 'ft'\ngpus = 16\nflavor = 'H200-141G'\ntime = '2:00:00'\ncommand = 'python train.py'\nenv = { A = '1' }\ntopology = 'leaf'\nmemory = '64G'\n",
        )
        .unwrap();
        assert_eq!(spec.gpus, Some(16));
        assert_eq!(spec.flavors, ["H200-141G"]);
        assert_eq!(spec.time_s, Some(7200));
        assert_eq!(spec.command, ["sh", "-c", "python train.py"]);
        assert_eq!(spec.topology, Some(TopologySpec { level: "leaf".into(), required: true }));
        assert_eq!(spec.memory_mib_per_node, Some(65536));
        let spec = parse_job_file("command = ['a', 'b']\ntime = 60\nflavor = ['x', 'y']\n").unwrap();
        assert_eq!((spec.command.len(), spec.time_s, spec.flavors.len()), (2, Some(60), 2));
        let e = parse_job_file("gpu = 3\n").unwrap_err();
        assert!(e.contains("unknown field `gpu`"), "{e}");
        let e = parse_job_file("time = 'later'\n").unwrap_err();
        assert!(e.starts_with("time:"), "{e}");
        assert!(parse_job_file("gpus = -1\n").is_err());
        assert!(parse_job_file("[[[").is_err());
    }

    #[test]
    fn flags_win_over_the_file() {
        let (spec, _) = parse_sbatch("#SBATCH --nodes=2 --gpus-per-node=8 --job-name=a --time=10\necho\n");
        let args = SubmitArgs {
            name: Some("b".into()),
            time: Some("2h".into()),
            env: vec!["X=1".into()],
            command: vec!["true".into()],
            ..Default::default()
        };
        let m = merge(&args, spec).unwrap();
        assert_eq!((m.name.as_deref(), m.time_s, m.nodes), (Some("b"), Some(7200), Some(2)));
        assert_eq!(m.env.get("X").map(String::as_str), Some("1"));
        assert_eq!(m.command, ["true"]);
        let bad = SubmitArgs { env: vec!["=1".into()], ..Default::default() };
        assert!(merge(&bad, Spec::default()).is_err());
    }

    #[test]
    fn memory_amounts() {
        assert_eq!(parse_memory_mib("4096"), Ok(4096));
        assert_eq!(parse_memory_mib("512M"), Ok(512));
        assert_eq!(parse_memory_mib("1t"), Ok(1 << 20));
        assert_eq!(parse_memory_mib("2048K"), Ok(2));
        for bad in ["", "G", "1.5G", "12X", "-3"] {
            assert!(parse_memory_mib(bad).is_err(), "{bad}");
        }
    }
}
