#!/bin/bash
# Machine-readable output: run --json (one object on stdout), bench --json/--csv (one row
# per thread count), bench --plot with and without gnuplot.
source "$(dirname "$0")/lib.bash"

small="--dim 48 --batch 3 --seq 24"

# run --json: one JSON object with config, placement, times, median, GFLOP/s, checksum.
expect_rc 0 "$RVATTN" run --preset gpt $small --repeat 3 --json
"$PY" - "$T/out" <<'PYEOF' || fail "run --json: $(head -c 300 "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["command"] == "run"
c = d["config"]
assert c["mechanism"] == "multi_head" and c["dim"] == 48 and c["heads"] == 12 and c["causal"], c
assert c["batch"] == 3 and c["seq"] == 24 and c["kv_seq"] == 24, c
assert c["dropout"] == 0.1, c["dropout"]   # floats are written at float precision
assert len(d["times_s"]) == 3 and all(t > 0 for t in d["times_s"]), d["times_s"]
assert d["median_s"] == sorted(d["times_s"])[1]
assert d["gflops"] > 0 and d["flops"] > 0
p = d["placement"]
assert p["workers"] >= 1 and p["pools"] >= 1 and len(p["worker_list"]) == p["workers"], p
assert isinstance(p["binding_real"], bool)
assert d["kernels"]["set"] in ("skx", "zen3", "haswell", "blis"), d["kernels"]
ck = d["checksum"]
assert isinstance(ck["sum"], float) and ck["abs_sum"] > 0 and len(ck["fnv1a"]) == 16, ck
assert d["output"] is None and d["output_shape"] == [3, 24, 48]
PYEOF
[ -s "$T/err" ] && fail "run --json writes to stderr: $(cat "$T/err")"

# The checksum is deterministic.
expect_rc 0 "$RVATTN" run --preset gpt $small --json
s1=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["checksum"])' "$T/out")
expect_rc 0 "$RVATTN" run --preset gpt $small --json --threads 1
s2=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["checksum"])' "$T/out")
[ "$s1" = "$s2" ] || fail "checksums differ: $s1 vs $s2"

# MoE runs report routing statistics.
expect_rc 0 "$RVATTN" run --preset switch_transformer $small --json
"$PY" - "$T/out" <<'PYEOF' || fail "moe stats in --json: $(head -c 300 "$T/out")"
import json, sys
m = json.load(open(sys.argv[1]))["moe"]
assert m["experts"] == 8 and m["tokens"] == 72, m
assert len(m["assigned"]) == 8 and sum(m["assigned"]) == 72 * 2, m
assert sum(m["processed"]) + m["dropped"] == 72 * 2, m
PYEOF

# bench on a synthetic 2 x 2-core topology: default thread counts 1, 2, 4.
export HWLOC_SYNTHETIC="numa:2 core:2 pu:1"
expect_rc 0 "$RVATTN" bench --preset bert $small --repeat 2 --json b.json --csv b.csv
for pat in '^machine: .*4 allowed cores' '^BLIS kernels: ' '^binding: not real' \
	'threads +median \(s\) +GFLOP/s +speed-up +efficiency' 'bit-identical for every thread count: yes'; do
	grep -qE "$pat" "$T/out" || fail "bench output lacks /$pat/: $(cat "$T/out")"
done
"$PY" - <<'PYEOF' || fail "bench --json/--csv"
import csv, json
d = json.load(open("b.json"))
rows = d["rows"]
assert [r["threads"] for r in rows] == [1, 2, 4], rows
assert d["machine"]["allowed_cores"] == 4 and d["machine"]["binding_real"] is False
assert d["bit_identical"] is True
for r in rows:
    assert len(r["times_s"]) == 2 and r["median_s"] > 0 and r["gflops"] > 0
    assert abs(r["efficiency"] - r["speedup"] / r["threads"]) < 1e-9
assert rows[0]["speedup"] == 1.0
c = list(csv.DictReader(open("b.csv")))
assert [int(r["threads"]) for r in c] == [1, 2, 4], c
PYEOF
expect_rc 0 "$RVATTN" bench --mechanism flash --heads 4 $small --threads 1,3 --repeat 1 --json b2.json
"$PY" -c 'import json; d=json.load(open("b2.json")); assert [r["threads"] for r in d["rows"]] == [1, 3]' ||
	fail "bench --threads 1,3"
unset HWLOC_SYNTHETIC

# --plot: drawn by gnuplot when installed; otherwise a clear message and exit 1.
if command -v gnuplot >/dev/null; then
	expect_rc 0 "$RVATTN" bench $small --threads 1 --repeat 1 --plot p.svg --plot p.svg
	grep -q '<svg' p.svg || fail "p.svg is not an SVG"
fi
mkdir nognuplot
expect_rc 1 env PATH="$T/nognuplot" "$RVATTN" bench $small --threads 1 --repeat 1 --plot q.png &&
	expect_err_line "gnuplot is not installed \(install the Debian package gnuplot-nox\)"
[ -e q.png ] && fail "q.png exists without gnuplot"
no_temp_files

finish
