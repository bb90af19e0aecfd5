//! Config errors name the field path that was wrong (`nodes[1].flavor`,
//! `tenants[0].quota[0].lending_limit`, ...) and say why; a valid config builds a core.

use allot_core::testkit::{JobSpecExt, TestEnv, job};
use allot_core::{Config, Core, JobState};

const FLAVORS: &str = r#"
version = 1
flavors = [{ name = "H100" }, { name = "A100" }]
"#;

const NODES: &str = r#"
[[nodes]]
name = "h{i}"
count = 2
at = "s1/b1/l1"
flavor = "H100"
gpus = 8
cpus = 64
memory_gib = 1024

[[nodes]]
name = "a0"
at = "s1/b1/l2"
flavor = "A100"
gpus = 8
"#;

const TENANTS: &str = r#"
[[tenants]]
path = "org"
quota = [{ flavor = "H100", nominal = 16 }, { flavor = "A100", nominal = 8 }]

[[tenants]]
path = "org/a"
quota = [{ flavor = "H100", nominal = 8, borrowing_limit = 4, lending_limit = 2 }]

[[tenants]]
path = "org/b"
weight = 2
quota = [{ flavor = "H100", nominal = 8 }]
"#;

fn doc(nodes: &str, tenants: &str, extra: &str) -> String {
    format!("{FLAVORS}\n{extra}\n{nodes}\n{tenants}")
}

#[test]
fn valid_config_builds_a_core() {
    let text = doc(NODES, TENANTS, "");
    let core = Core::from_toml(&text).unwrap_or_else(|e| panic!("valid config refused: {e}"));
    core.check_invariants().unwrap();
    assert_eq!(core.cluster().nodes.len(), 3);
    for name in ["h0", "h1", "a0"] {
        assert!(core.cluster().node_index(name).is_some(), "node {name}");
    }
    let (q, used) = core.quota("org/a", "H100").unwrap();
    assert_eq!((q.nominal, q.borrowing_limit, q.lending_limit, used), (8000, 4000, Some(2000), 0));
    let (q, _) = core.quota("", "H100").unwrap();
    assert_eq!(q.nominal, 16_000, "the root's nominal is the cluster's size");
    assert_eq!(core.classes().len(), 3, "default classes low, normal, high");
}

#[test]
fn config_errors_name_the_field_path() {
    struct Case {
        name: &'static str,
        text: String,
        want_path: &'static str,
        /// Words the message must contain.
        want_msg: &'static [&'static str],
    }
    let node = |body: &str| format!("[[nodes]]\nname = \"n\"\nat = \"s1/b1/l1\"\n{body}\n");
    let cases = vec![
        Case {
            name: "unknown flavor of a node",
            text: doc(&format!("{NODES}\n{}", node("flavor = \"B200\"\ngpus = 8")), TENANTS, ""),
            want_path: "nodes[2].flavor",
            want_msg: &["unknown flavor", "B200"],
        },
        Case {
            name: "unknown flavor of the second node entry",
            text: doc(
                "[[nodes]]\nname='x'\nat='s/b/l'\nflavor='H100'\ngpus=8\n[[nodes]]\nname='y'\nat='s/b/l'\nflavor='h100'\ngpus=8\n",
                "",
                "",
            ),
            want_path: "nodes[1].flavor",
            want_msg: &["unknown flavor", "h100"],
        },
        Case {
            name: "unknown flavor in a quota",
            text: doc(
                NODES,
                "[[tenants]]\npath = \"x\"\nquota = [{ flavor = \"A100\", nominal = 1 }, { flavor = \"B200\", nominal = 1 }]\n",
                "",
            ),
            want_path: "tenants[0].quota[1].flavor",
            want_msg: &["unknown flavor", "B200"],
        },
        Case {
            name: "lending_limit above nominal",
            text: doc(NODES, "[[tenants]]\npath = \"x\"\nquota = [{ flavor = \"H100\", nominal = 4, lending_limit = 5 }]\n", ""),
            want_path: "tenants[0].quota[0].lending_limit",
            want_msg: &["nominal"],
        },
        Case {
            name: "negative nominal",
            text: doc(NODES, "[[tenants]]\npath = \"x\"\nquota = [{ flavor = \"H100\", nominal = -1 }]\n", ""),
            want_path: "tenants[0].quota[0].nominal",
            want_msg: &["non-negative"],
        },
        Case {
            name: "negative borrowing limit",
            text: doc(NODES, "[[tenants]]\npath = \"x\"\nquota = [{ flavor = \"H100\", nominal = 1, borrowing_limit = -2 }]\n", ""),
            want_path: "tenants[0].quota[0].borrowing_limit",
            want_msg: &["non-negative"],
        },
        Case {
            name: "children over-commit their parent's nominal",
            text: doc(
                NODES,
                "[[tenants]]\npath = \"org\"\nquota = [{ flavor = \"H100\", nominal = 16 }]\n\
                 [[tenants]]\npath = \"org/a\"\nquota = [{ flavor = \"H100\", nominal = 10 }]\n\
                 [[tenants]]\npath = \"org/b\"\nquota = [{ flavor = \"H100\", nominal = 10 }]\n",
                "",
            ),
            want_path: "tenants",
            want_msg: &["org", "20", "16"],
        },
        Case {
            name: "top-level tenants over-commit the cluster",
            text: doc(NODES, "[[tenants]]\npath = \"x\"\nquota = [{ flavor = \"A100\", nominal = 9 }]\n", ""),
            want_path: "tenants",
            want_msg: &["cluster", "9", "8"],
        },
        Case {
            name: "duplicate node name",
            text: doc(
                "[[nodes]]\nname='x'\nat='s/b/l'\nflavor='H100'\ngpus=8\n[[nodes]]\nname='x'\nat='s/b/l2'\nflavor='H100'\ngpus=8\n",
                "",
                "",
            ),
            want_path: "nodes[1].name",
            want_msg: &["`x`", "nodes[0]"],
        },
        Case {
            name: "duplicate node name from a count",
            text: doc(&format!("{NODES}\n[[nodes]]\nname = \"h1\"\nat = \"s1/b1/l3\"\nflavor = \"H100\"\ngpus = 8\n"), "", ""),
            want_path: "nodes[2].name",
            want_msg: &["`h1`", "nodes[0]"],
        },
        Case {
            name: "count without {i} in the name",
            text: doc("[[nodes]]\nname='x'\ncount=2\nat='s/b/l'\nflavor='H100'\ngpus=8\n", "", ""),
            want_path: "nodes[0].name",
            want_msg: &["{i}"],
        },
        Case {
            name: "count 0",
            text: doc("[[nodes]]\nname='x{i}'\ncount=0\nat='s/b/l'\nflavor='H100'\ngpus=8\n", "", ""),
            want_path: "nodes[0].count",
            want_msg: &["at least 1"],
        },
        Case {
            name: "`at` with too few levels",
            text: doc("[[nodes]]\nname='x'\nat='s/l'\nflavor='H100'\ngpus=8\n", "", ""),
            want_path: "nodes[0].at",
            want_msg: &["s/l", "site/block/leaf"],
        },
        Case {
            name: "`at` with too many levels",
            text: doc("[[nodes]]\nname='x'\nat='s/b/l/r'\nflavor='H100'\ngpus=8\n", "", ""),
            want_path: "nodes[0].at",
            want_msg: &["s/b/l/r"],
        },
        Case {
            name: "`at` with an empty segment",
            text: doc("[[nodes]]\nname='x'\nat='s//l'\nflavor='H100'\ngpus=8\n", "", ""),
            want_path: "nodes[0].at",
            want_msg: &["s//l"],
        },
        Case {
            name: "`at` of the second node, with configured levels",
            text: doc(
                "[[nodes]]\nname='x'\nat='rack1'\nflavor='H100'\ngpus=8\n[[nodes]]\nname='y'\nat='s/rack1'\nflavor='H100'\ngpus=8\n",
                "",
                "[topology]\nlevels = [\"rack\"]\n",
            ),
            want_path: "nodes[1].at",
            want_msg: &["rack"],
        },
        Case {
            name: "0 GPUs",
            text: doc("[[nodes]]\nname='x'\nat='s/b/l'\nflavor='H100'\ngpus=0\n", "", ""),
            want_path: "nodes[0].gpus",
            want_msg: &["1..=64"],
        },
        Case {
            name: "65 GPUs",
            text: doc("[[nodes]]\nname='x'\nat='s/b/l'\nflavor='H100'\ngpus=65\n", "", ""),
            want_path: "nodes[0].gpus",
            want_msg: &["1..=64"],
        },
        Case {
            name: "GPUs of the wrong type",
            text: doc("[[nodes]]\nname='x'\nat='s/b/l'\nflavor='H100'\ngpus='eight'\n", "", ""),
            want_path: "nodes[0].gpus",
            want_msg: &[],
        },
        Case {
            name: "unknown field of a node",
            text: doc("[[nodes]]\nname='x'\nat='s/b/l'\nflavor='H100'\ngpus=8\ngpu=8\n", "", ""),
            want_path: "nodes[0].gpu",
            want_msg: &["unknown field `gpu`"],
        },
        Case {
            name: "unknown field of a quota",
            text: doc(NODES, "[[tenants]]\npath = \"x\"\nquota = [{ flavor = \"H100\", nominal = 1, lend = 1 }]\n", ""),
            want_path: "tenants[0].quota[0].lend",
            want_msg: &["unknown field `lend`"],
        },
        Case {
            name: "duplicate flavor",
            text: "version = 1\nflavors = [{ name = \"H100\" }, { name = \"H100\" }]\n".to_string(),
            want_path: "flavors[1].name",
            want_msg: &["H100"],
        },
        Case { name: "unsupported version", text: "version = 2\n".to_string(), want_path: "version", want_msg: &["2"] },
        Case {
            name: "duplicate tenant",
            text: doc(NODES, "[[tenants]]\npath = \"x\"\n[[tenants]]\npath = \"y\"\n[[tenants]]\npath = \"/x/\"\n", ""),
            want_path: "tenants[2].path",
            want_msg: &["twice"],
        },
        Case {
            name: "tenant path with an empty segment",
            text: doc(NODES, "[[tenants]]\npath = \"a//b\"\n", ""),
            want_path: "tenants[0].path",
            want_msg: &["a//b"],
        },
        Case {
            name: "zero weight",
            text: doc(NODES, "[[tenants]]\npath = \"a\"\nweight = 0\n", ""),
            want_path: "tenants[0].weight",
            want_msg: &["positive"],
        },
        Case {
            name: "budget of an unknown tenant",
            text: doc(NODES, TENANTS, "[[budgets]]\ntenant = \"org/zz\"\ngpu_hours = 10\nstart = 2026-01-01\nexpiry = 2026-02-01\n"),
            want_path: "budgets[0].tenant",
            want_msg: &["org/zz"],
        },
        Case {
            name: "budget expiring before it starts",
            text: doc(NODES, TENANTS, "[[budgets]]\ntenant = \"org/a\"\ngpu_hours = 10\nstart = 2026-02-01\nexpiry = 2026-01-01\n"),
            want_path: "budgets[0]",
            want_msg: &["expiry"],
        },
        Case {
            name: "second budget overlapping the first",
            text: doc(
                NODES,
                TENANTS,
                "[[budgets]]\ntenant = \"org/a\"\ngpu_hours = 10\nstart = 2026-01-01\nexpiry = 2026-02-01\n\
                 [[budgets]]\ntenant = \"org/a\"\ngpu_hours = 10\nstart = 2026-01-15\nexpiry = 2026-03-01\n",
            ),
            want_path: "budgets[1]",
            want_msg: &["overlaps"],
        },
        Case {
            name: "two default classes",
            text: doc(
                NODES,
                "",
                "[[priority_classes]]\nname = \"a\"\npriority = 1\ndefault = true\n[[priority_classes]]\nname = \"b\"\npriority = 2\ndefault = true\n",
            ),
            want_path: "priority_classes[1].default",
            want_msg: &["default"],
        },
        Case {
            name: "duplicate class",
            text: doc(NODES, "", "[[priority_classes]]\nname = \"a\"\npriority = 1\n[[priority_classes]]\nname = \"a\"\npriority = 2\n"),
            want_path: "priority_classes[1].name",
            want_msg: &["`a`"],
        },
        Case {
            name: "zero half-life",
            text: doc(NODES, "", "[fair_share]\nhalf_life_hours = 0\n"),
            want_path: "fair_share.half_life_hours",
            want_msg: &["positive"],
        },
        Case {
            name: "zero max age",
            text: doc(NODES, "", "[policy]\nmax_age_hours = 0\n"),
            want_path: "policy.max_age_hours",
            want_msg: &["positive"],
        },
        Case {
            name: "unknown placement policy",
            text: doc(NODES, "", "[policy]\nplacement = \"worstfit\"\n"),
            want_path: "policy.placement",
            want_msg: &["worstfit"],
        },
        Case { name: "no topology levels", text: doc("", "", "[topology]\nlevels = []\n"), want_path: "topology.levels", want_msg: &[] },
    ];
    for c in &cases {
        let err = match Core::from_toml(&c.text) {
            Ok(_) => panic!("case `{}`: config should be refused:\n{}", c.name, c.text),
            Err(e) => e,
        };
        assert_eq!(err.path, c.want_path, "case `{}`: field path (message: {})", c.name, err.message);
        for w in c.want_msg {
            assert!(err.message.contains(w), "case `{}`: message should mention `{w}`: {}", c.name, err.message);
        }
        assert!(err.to_string().starts_with(&format!("{}: ", c.want_path)), "case `{}`: display names the path: {err}", c.name);
        // Parse-level errors come from Config::from_toml already, with the same path.
        if let Err(e) = Config::from_toml(&c.text) {
            assert_eq!(e.path, c.want_path, "case `{}`: Config::from_toml path", c.name);
        }
    }
}

/// Parents are "created implicitly when not listed" (config.rs, `TenantConfig`), and
/// the testkit's own example uses a tenant `org/a` without listing `org`. An implicit
/// parent gets a nominal of 0, so any child with a nominal quota is refused.
#[test]
fn implicit_parent_tenant_accepts_its_childrens_nominal_quota() {
    let text = doc(NODES, "[[tenants]]\npath = \"org/a\"\nquota = [{ flavor = \"H100\", nominal = 8 }]\n", "");
    let r = Core::from_toml(&text);
    assert!(
        r.is_ok(),
        "BUG: tenant `org/a` with 8 H100 of nominal quota under an implicit (unlisted) parent `org` is refused: {}. \
         Tenants::from_config gives implicit parents Quota::NONE (nominal 0) and then rejects the children's nominal \
         as over-committing it; an implicit parent should get (at least) the sum of its children's nominals",
        r.err().map(|e| e.to_string()).unwrap_or_default()
    );
    // The same through the testkit, as in its module example.
    let built = std::panic::catch_unwind(|| {
        let mut env = TestEnv::builder().nodes("s1/b1/l1", 2, 8, "H100").tenant("org/a", &[("H100", 16.0)]).build();
        env.submit(job(1, "org/a").gpus(8).replicas(2));
        env.schedule();
        env.state(1)
    });
    assert!(
        matches!(built, Ok(Some(JobState::Running))),
        "BUG: the testkit module example (`.tenant(\"org/a\", &[(\"H100\", 16.0)])`) cannot build its cluster"
    );
}
