#!/bin/bash
# rvattn topo: the real machine, synthetic topologies (HWLOC_SYNTHETIC), cpu subsets.
source "$(dirname "$0")/lib.bash"

# The real machine: binding is real, every worker bound.
expect_rc 0 "$RVATTN" topo
for pat in '^machine: ' '^topology: this system' '^BLIS kernels: ' 'binding real' \
	'^  pool 0 \(NUMA node [0-9]+\): ' '^  worker 0: pool 0, .*bound yes'; do
	grep -qE "$pat" "$T/out" || fail "topo lacks /$pat/: $(cat "$T/out")"
done

# A synthetic 4-NUMA topology: 4 pools of 2 workers; binding is not real.
export HWLOC_SYNTHETIC="numa:4 core:2 pu:1"
expect_rc 0 "$RVATTN" topo
for pat in 'not this system \(HWLOC_SYNTHETIC=numa:4 core:2 pu:1\)' \
	'4 NUMA nodes, 8 cores, 8 PUs' 'engine: pools: 4, workers: 8, binding not real' \
	'^  pool 3 \(NUMA node 3\): 2 workers 6-7 -> cores 6-7' \
	'^binding: not real'; do
	grep -qE "$pat" "$T/out" || fail "synthetic topo lacks /$pat/: $(cat "$T/out")"
done
expect_rc 0 "$RVATTN" topo --json
"$PY" - "$T/out" <<'PYEOF' || fail "topo --json: $(head -c 300 "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
t = d["topology"]
assert t["this_system"] is False and t["numa_nodes"] == 4 and t["cores"] == 8, t
assert [n["cores"] for n in t["numa"]] == ["0-1", "2-3", "4-5", "6-7"], t["numa"]
p = d["placement"]
assert p["pools"] == 4 and p["workers"] == 8 and p["binding_real"] is False, p
assert [w["pool"] for w in p["worker_list"]] == [0, 0, 1, 1, 2, 2, 3, 3], p
PYEOF

# --cpus and --threads select what the engine uses.
expect_rc 0 "$RVATTN" topo --cpus numa:1 --json
"$PY" -c '
import json, sys
p = json.load(open(sys.argv[1]))["placement"]
assert p["pools"] == 1 and p["workers"] == 2 and p["cpuset"] == "2-3", p
assert all(w["numa"] == 1 for w in p["worker_list"]), p' "$T/out" || fail "topo --cpus numa:1"
expect_rc 0 "$RVATTN" topo --cpus core:0-2 --json
"$PY" -c '
import json, sys
p = json.load(open(sys.argv[1]))["placement"]
assert p["pools"] == 2 and p["workers"] == 3, p' "$T/out" || fail "topo --cpus core:0-2"
expect_rc 0 "$RVATTN" topo --threads 4
grep -q 'workers: 4' "$T/out" || fail "topo --threads 4: $(cat "$T/out")"
expect_rc 2 "$RVATTN" topo --cpus numa:7 && expect_err_line "numa:7"
expect_rc 2 "$RVATTN" topo --threads 9 && expect_err_line "9"

# Hyper-threads: one worker per core by default, per PU with --per-pu.
export HWLOC_SYNTHETIC="numa:2 core:2 pu:2"
expect_rc 0 "$RVATTN" topo
grep -q 'engine: pools: 2, workers: 4,' "$T/out" || fail "per-core workers: $(cat "$T/out")"
expect_rc 0 "$RVATTN" topo --per-pu
grep -q 'engine: pools: 2, workers: 8,' "$T/out" || fail "--per-pu workers: $(cat "$T/out")"

# A run on the synthetic topology works (unbound workers) and says so.
expect_rc 0 "$RVATTN" run --mechanism multi_head --dim 32 --heads 4 --batch 4 --seq 8
grep -q 'binding: not real' "$T/out" || fail "run on a synthetic topology: $(cat "$T/out")"
unset HWLOC_SYNTHETIC

finish
