#!/bin/bash
# rvattn serve-bench: --help, usage errors, one rate and a list of rates in JSON (token
# accounting, percentiles in order, the arrival process's seed, both prefill schedules and clocks),
# the auto sweep's saturation and 80% point, and --plot.
source "$(dirname "$0")/lib.bash"

small="--heads 2 --kv-heads 1 --head-dim 16 --max-streams 4 --chunk 8 --threads 1"

expect_rc 0 "$RVATTN" serve-bench --help
grep -q -- "--sweep auto|LIST" "$T/out" || fail "help lacks --sweep"
expect_rc 0 "$RVATTN" help serve-bench
grep -q "Poisson" "$T/out" || fail "'rvattn help serve-bench' is not the help"

expect_rc 2 "$RVATTN" serve-bench --page 7 && expect_err_line "even number of tokens"
expect_rc 2 "$RVATTN" serve-bench --prompt 9-3 && expect_err_line "--prompt: '9-3'"
expect_rc 2 "$RVATTN" serve-bench --output exp:0 && expect_err_line "--output: bad mean"
expect_rc 2 "$RVATTN" serve-bench --rate 0 && expect_err_line "--rate must be"
expect_rc 2 "$RVATTN" serve-bench --heads 3 --kv-heads 2 && expect_err_line "multiple"
expect_rc 2 "$RVATTN" serve-bench --sweep 1,x && expect_err_line "--sweep"
expect_rc 2 "$RVATTN" serve-bench --plot p.txt && expect_err_line "png or .svg"
expect_rc 2 "$RVATTN" serve-bench --bogus && expect_err_line "bogus"
expect_rc 2 "$RVATTN" serve-bench --schedule lifo && expect_err_line "--schedule: 'lifo'"
expect_rc 2 "$RVATTN" serve-bench --spread -1 && expect_err_line "--spread must be"
expect_rc 2 "$RVATTN" serve-bench --step-keys x && expect_err_line "--step-keys"
expect_rc 2 "$RVATTN" serve-bench --clock gpu && expect_err_line "--clock: 'gpu'"
expect_rc 2 "$RVATTN" serve-bench extra && expect_err_line "unexpected argument"

# One rate: every output token counted once, prompts prefilled in chunks, sane latencies.
expect_rc 0 "$RVATTN" serve-bench $small --rate 40 --duration 0.5 --prompt 5-20 \
	--output 2-6 --seed 7 --json one.json
"$PY" - one.json 40 0.5 <<'PYEOF' || fail "serve-bench --json: $(head -c 600 one.json)"
import json, math, sys
d = json.load(open(sys.argv[1]))
rate, dur = float(sys.argv[2]), float(sys.argv[3])
assert d["command"] == "serve-bench"
c = d["config"]
assert c["heads"] == 2 and c["kv_heads"] == 1 and c["head_dim"] == 16, c
assert c["prompt"] == {"kind": "uniform", "min": 5, "max": 20}, c["prompt"]
assert c["max_streams"] == 4 and c["page_tokens"] == 16, c
assert c["schedule"] == "budget" and c["step_keys"] == 1024 and c["clock"] == "wall", c
assert c["prefill_flop_rows"] >= 0 and c["prefill_chunk_rows"] >= 0, c
# the default cache holds max_streams full-length requests: 4 x ceil(26 / 16) pages
assert c["cache_pages"] == 8 and c["cache_bytes"] == 8 * 2 * 16 * 16 * 4, c
(p,) = d["points"]
assert p["rate"] == rate
n = p["arrived"]
assert abs(n - rate * dur) <= 5 * math.sqrt(rate * dur) + 1, n   # Poisson count
assert p["admitted"] <= n and p["completed"] <= p["admitted"], p
assert p["completed"] >= 1, p
# each completed request gave 2-6 tokens; prompts of 5-20 tokens in chunks of <= 8
assert 2 * p["completed"] <= p["output_tokens"], p
assert p["prompt_tokens"] >= 5 * p["completed"], p
assert p["steps"] >= 1 and 0 < p["step_ms_p50"] <= p["step_ms_p99"] <= p["step_ms_max"], p
assert 0 < p["ttft_ms_p50"] <= p["ttft_ms_p99"], p
assert 0 < p["occupancy"] <= 1.0000001 and 0 < p["mean_streams"] <= 4, p
assert abs(p["tokens_per_s"] - p["output_tokens"] / p["virtual_seconds"]) < 1e-6 * p["tokens_per_s"]
assert 0 < p["cache_peak_bytes"] <= c["cache_bytes"], p
assert d["saturation"] is None and d["at_80_percent"] is None
PYEOF

# The arrivals (count and lengths) depend on the seed only: the same count again, paced.
expect_rc 0 "$RVATTN" serve-bench $small --rate 40 --duration 0.5 --prompt 5-20 \
	--output 2-6 --seed 7 --schedule paced --json two.json
"$PY" - one.json two.json <<'PYEOF' || fail "serve-bench seeds"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
assert a["points"][0]["arrived"] == b["points"][0]["arrived"], (a["points"], b["points"])
assert b["config"]["schedule"] == "paced" and b["config"]["spread"] == 1, b["config"]
PYEOF

# A list of rates, bf16 cache, fixed and exponential lengths, first come first served.
expect_rc 0 "$RVATTN" serve-bench $small --sweep 10,30 --duration 0.3 --prompt 12 \
	--output exp:3 --dtype bf16 --page 4 --schedule fcfs --clock cpu --json list.json
"$PY" - list.json <<'PYEOF' || fail "serve-bench --sweep LIST: $(head -c 600 list.json)"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["config"]["schedule"] == "fcfs" and d["config"]["clock"] == "cpu", d["config"]
assert [p["rate"] for p in d["points"]] == [10, 30], d["points"]
assert d["config"]["kv_dtype"] == "bf16" and d["config"]["page_tokens"] == 4
assert d["config"]["output"]["kind"] == "exponential" and d["config"]["output"]["max"] == 24
for p in d["points"]:
    # prompts of 12 tokens; a request's output is 1 to 24 tokens
    assert p["prompt_tokens"] >= 12 * p["completed"], p
    assert p["completed"] <= p["output_tokens"] <= 24 * p["admitted"], p
PYEOF

# The auto sweep finds a saturation rate (4 streams of long outputs saturate quickly)
# and runs 80% of it.
expect_rc 0 "$RVATTN" serve-bench $small --rate 20 --sweep auto --duration 0.4 \
	--prompt 8-16 --output 20-40 --json auto.json
"$PY" - auto.json <<'PYEOF' || fail "serve-bench --sweep auto: $(head -c 800 auto.json)"
import json, sys
d = json.load(open(sys.argv[1]))
pts = d["points"]
rates = [p["rate"] for p in pts]
assert rates == sorted(rates), rates
sat, a80 = d["saturation"], d["at_80_percent"]
assert sat is not None and a80 is not None, d
ok = [p for p in pts if not p["saturated"]]
assert ok and sat["rate"] == max(p["rate"] for p in ok), (sat, rates)
assert any(p["saturated"] and p["rate"] > sat["rate"] for p in pts), pts
assert abs(a80["rate"] - 0.8 * sat["rate"]) < 1e-9 * sat["rate"], a80
assert a80["p99_over_p50"] >= 1.0
PYEOF
grep -q "saturation at" "$T/out" || fail "no saturation line: $(cat "$T/out")"

if command -v gnuplot >/dev/null; then
	expect_rc 0 "$RVATTN" serve-bench $small --sweep 10,20 --duration 0.2 --prompt 8 \
		--output 4 --plot lat.svg
	grep -q '<svg' lat.svg || fail "lat.svg is not an SVG"
fi
mkdir nognuplot
expect_rc 1 env PATH="$T/nognuplot" "$RVATTN" serve-bench $small --duration 0.1 --plot q.png &&
	expect_err_line "gnuplot is not installed"
[ -e q.png ] && fail "q.png exists without gnuplot"
no_temp_files

finish
