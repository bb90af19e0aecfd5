#!/usr/bin/env python3
# Writes cluster.toml and cluster-plus-10k.toml in this directory (see README.md):
#     python3 examples/national/make_cluster.py
import os

def nodes_block(lines, site, block, leaf, name, count, flavor, gpus, cpus, mem, labels=None):
    at = f"{site}/{block}/{leaf}"
    lab = ""
    if labels:
        lab = ", labels = { " + ", ".join(f'{k} = "{v}"' for k, v in labels.items()) + " }"
    lines.append(f'  {{ name = "{name}-n{{i}}", count = {count}, at = "{at}", flavor = "{flavor}", gpus = {gpus}, cpus = {cpus}, memory_gib = {mem}{lab} }},')

def leaves(lines, site, prefix, flavor, total_gpus, gpus_per_node, nodes_per_leaf, leaves_per_block, cpus, mem, labels=None, block_prefix=None):
    nodes = total_gpus // gpus_per_node
    assert nodes * gpus_per_node == total_gpus
    leaf = 0
    while nodes > 0:
        n = min(nodes_per_leaf, nodes)
        block = f"{block_prefix or prefix}-b{leaf // leaves_per_block:02d}"
        nodes_block(lines, site, block, f"{prefix}-l{leaf:03d}", f"{site}-{prefix}-l{leaf:03d}", n, flavor, gpus_per_node, cpus, mem, labels)
        nodes -= n
        leaf += 1
    return leaf

def main(extra_b200):
    L = []
    L.append("  # National AI Computing Centre (aic): GB200 NVL72 racks (one rack = one leaf of 18 trays x 4 GPUs),")
    L.append("  # DGX B200 scalable units (35 nodes per leaf), RTX PRO 6000 servers for inference.")
    leaves(L, "aic", "nvl72", "GB200-NVL72", 14_400, 4, 18, 20, 144, 960, {"rack": "nvl72"}, block_prefix="gb")
    leaves(L, "aic", "b200", "B200-192G", 33_600, 8, 35, 8, 112, 2048)
    if extra_b200:
        L.append(f"  # The expansion: {extra_b200} more B200 GPUs for the sovereign foundation-model programme.")
        leaves(L, "aic", "b200x", "B200-192G", extra_b200, 8, 35, 8, 112, 2048)
    leaves(L, "aic", "rtx", "RTX-PRO-6000", 2_000, 8, 125, 8, 64, 512)
    for site, parts in [
        ("manufacturing", [("h200", "H200-141G", 48_000), ("rtx", "RTX-PRO-6000", 2_000)]),
        ("automotive", [("h100", "H100-80G", 48_000), ("rtx", "RTX-PRO-6000", 2_000)]),
        ("cloud", [("h200", "H200-141G", 32_000), ("h100", "H100-80G", 24_000), ("rtx", "RTX-PRO-6000", 4_000)]),
        ("data-infra", [("h200", "H200-141G", 24_000), ("h100", "H100-80G", 24_000), ("rtx", "RTX-PRO-6000", 2_000)]),
    ]:
        L.append(f"  # {site}: 1,000-GPU leaves (125 nodes), 8 leaves per block.")
        for prefix, flavor, total in parts:
            cpus, mem = (112, 2048) if flavor != "RTX-PRO-6000" else (64, 512)
            leaves(L, site, prefix, flavor, total, 8, 125, 8, cpus, mem)
    return L

TENANTS = r'''
# ---------------------------------------------------------------------------------
# Tenants. Quotas are GPUs per flavor: `nominal` is guaranteed; `lending_limit` caps
# how much of the unused nominal others may borrow (the rest is held back for the
# owner); `borrowing_limit` caps use above nominal. Siblings form a cohort: the
# nation's children (the centre and the four companies) lend to each other.
# ---------------------------------------------------------------------------------

# The National AI Computing Centre owns its site and lends half of it when idle.
[[tenants]]
path = "nation/aic"
weight = 2.0
quota = [
    { flavor = "GB200-NVL72", nominal = 14400, lending_limit = 7200 },
    { flavor = "B200-192G", nominal = @AIC_B200@, lending_limit = 16800 },
    { flavor = "RTX-PRO-6000", nominal = 2000, lending_limit = 1000 },
]

# Five sovereign foundation-model teams with guaranteed quotas: half of each team's
# nominal is never lent (nominal - lending_limit), so a pre-training gang finds it.
@FM@
# Universities, start-ups and the public sector share the rest of the centre.
@REST@
# Each company owns its site (its nominal is the site's GPUs) and lends into the
# national cohort up to its lending limit; its teams split the nominal.
[[tenants]]
path = "nation/manufacturing"
quota = [{ flavor = "H200-141G", nominal = 48000, lending_limit = 24000 }, { flavor = "RTX-PRO-6000", nominal = 2000, lending_limit = 1000 }]
@MFG@
[[tenants]]
path = "nation/automotive"
quota = [{ flavor = "H100-80G", nominal = 48000, lending_limit = 16000 }, { flavor = "RTX-PRO-6000", nominal = 2000, lending_limit = 1000 }]
@AUTO@
[[tenants]]
path = "nation/cloud"
quota = [
    { flavor = "H200-141G", nominal = 32000, lending_limit = 16000 },
    { flavor = "H100-80G", nominal = 24000, lending_limit = 12000 },
    { flavor = "RTX-PRO-6000", nominal = 4000, lending_limit = 2000 },
]
@CLOUD@
[[tenants]]
path = "nation/data-infra"
quota = [
    { flavor = "H200-141G", nominal = 24000, lending_limit = 12000 },
    { flavor = "H100-80G", nominal = 24000, lending_limit = 12000 },
    { flavor = "RTX-PRO-6000", nominal = 2000, lending_limit = 1000 },
]
@DATA@'''

def tenant(path, quotas, weight=None):
    q = ", ".join("{ flavor = \"%s\", nominal = %d%s }" % (f, n, (", lending_limit = %d" % l) if l is not None else "") for f, n, l in quotas)
    w = f"weight = {weight}\n" if weight else ""
    return f"[[tenants]]\npath = \"{path}\"\n{w}quota = [{q}]\n"

def tenants(extra_b200):
    fm_b200 = 4000 + extra_b200 // 5
    fm = "".join(tenant(f"nation/aic/sovereign-fm/fm-{i}", [("GB200-NVL72", 2592, 1296), ("B200-192G", fm_b200, fm_b200 // 2), ("RTX-PRO-6000", 100, None)]) for i in range(1, 6))
    rest = ""
    rest += "".join(tenant(f"nation/aic/universities/univ-{i}", [("GB200-NVL72", 180, None), ("B200-192G", 1500, None), ("RTX-PRO-6000", 125, None)]) for i in range(1, 5))
    rest += "".join(tenant(f"nation/aic/startups/startup-{i}", [("GB200-NVL72", 90, None), ("B200-192G", 1150, None), ("RTX-PRO-6000", 125, None)]) for i in range(1, 5))
    rest += "".join(tenant(f"nation/aic/public-sector/{n}", [("GB200-NVL72", 120, None), ("B200-192G", 1000, None), ("RTX-PRO-6000", r, None)]) for n, r in [("health", 150), ("climate", 150), ("government-services", 200)])
    mfg = "".join(tenant(f"nation/manufacturing/{n}", q) for n, q in [
        ("design-ai", [("H200-141G", 16000, None)]), ("robotics", [("H200-141G", 16000, None)]),
        ("factory-vision", [("H200-141G", 8000, None)]), ("inference", [("H200-141G", 8000, None), ("RTX-PRO-6000", 2000, None)])])
    auto = "".join(tenant(f"nation/automotive/{n}", q) for n, q in [
        ("autonomy", [("H100-80G", 24000, None)]), ("simulation", [("H100-80G", 12000, None)]),
        ("cabin-ai", [("H100-80G", 8000, None)]), ("inference", [("H100-80G", 4000, None), ("RTX-PRO-6000", 2000, None)])])
    cloud = "".join(tenant(f"nation/cloud/{n}", q) for n, q in [
        ("reserved", [("H200-141G", 20000, None), ("H100-80G", 12000, None)]), ("spot", [("H200-141G", 8000, None), ("H100-80G", 8000, None)]),
        ("inference", [("H200-141G", 4000, None), ("H100-80G", 4000, None), ("RTX-PRO-6000", 4000, None)])])
    data = "".join(tenant(f"nation/data-infra/{n}", q) for n, q in [
        ("platform", [("H200-141G", 12000, None), ("H100-80G", 12000, None)]), ("analytics", [("H200-141G", 8000, None), ("H100-80G", 8000, None)]),
        ("inference", [("H200-141G", 4000, None), ("H100-80G", 4000, None), ("RTX-PRO-6000", 2000, None)])])
    t = TENANTS.replace("@FM@", fm).replace("@REST@", rest).replace("@MFG@", mfg).replace("@AUTO@", auto).replace("@CLOUD@", cloud).replace("@DATA@", data)
    return t.replace("@AIC_B200@", str(33600 + extra_b200))

HEAD = '''# The national scenario: 260,000 GPUs in five sites, the tenant tree of the national
# AI computing centre and of the four companies that host AI factories. See README.md
# in this directory for the month of work and the capacity question. Check it with:
#
#     cargo run -p allot -- check examples/national/@FILE@
#
# Sites (topology: site > block > leaf), GPUs:
#   aic            50,000: 14,400 GB200 (200 NVL72 racks), 33,600 B200, 2,000 RTX PRO 6000
#   manufacturing  50,000: 48,000 H200, 2,000 RTX PRO 6000
#   automotive     50,000: 48,000 H100, 2,000 RTX PRO 6000
#   cloud          60,000: 32,000 H200, 24,000 H100, 4,000 RTX PRO 6000
#   data-infra     50,000: 24,000 H200, 24,000 H100, 2,000 RTX PRO 6000
@EXTRA@
version = 1

flavors = [
    { name = "GB200-NVL72", memory_gib = 186, interconnect = "nvl72" },
    { name = "B200-192G", memory_gib = 192, interconnect = "nvlink" },
    { name = "H200-141G", memory_gib = 141, interconnect = "nvlink" },
    { name = "H100-80G", memory_gib = 80, interconnect = "nvlink" },
    { name = "RTX-PRO-6000", memory_gib = 96, interconnect = "pcie" },
]

@NODES@
[topology]
levels = ["site", "block", "leaf"]

[fair_share]
half_life_hours = 168

# Classes, highest first. Notebooks may take GPUs from preemptible batch work; the
# synthetic generator picks classes by name (pretrain, finetune, inference, interactive).
[[priority_classes]]
name = "interactive"
priority = 300
preempt_lower = true
preemptible = false

[[priority_classes]]
name = "pretraining"
priority = 200
preemptible = false

[[priority_classes]]
name = "finetune"
priority = 100
default = true

[[priority_classes]]
name = "batch-inference"
priority = 50

[policy]
order = "default"
placement = "default"
seed = 1
grace_period_s = 60
'''

for extra, fname in [(0, "cluster.toml"), (10_000, "cluster-plus-10k.toml")]:
    extra_note = "" if not extra else "#\n# This variant adds 10,000 B200 GPUs at the centre (1,250 nodes) and gives each of the\n# five foundation-model teams 2,000 more B200 of nominal quota. Everything else is as\n# in cluster.toml.\n"
    nodes = "# Nodes: `count` identical servers per leaf; `{i}` numbers them.\nnodes = [\n" + "\n".join(main(extra)) + "\n]\n"
    out = HEAD.replace("@FILE@", fname).replace("@EXTRA@", extra_note).replace("@NODES@", nodes)
    out += tenants(extra)
    open(os.path.join(os.path.dirname(os.path.abspath(__file__)), fname), "w").write(out)
    print(fname, len(out.splitlines()), "lines")
