#!/bin/bash
# Diagnostics that tell the truth: every setting that is clipped, ignored or rounded is
# said in one line on stderr ("rvattn: warning: ..."), and a topology from
# HWLOC_SYNTHETIC / HWLOC_XMLFILE that cannot be loaded is an error, never a silent
# switch to this machine. Run as root and again as nobody (also_unprivileged).
source "$(dirname "$0")/lib.bash"

small="--mechanism multi_head --heads 2 --dim 16 --batch 1 --seq 4"

# expect_warning PATTERN CMD...: exit 0, stderr exactly one "rvattn: warning:" line.
expect_warning() {
	local pat=$1
	shift
	expect_rc 0 "$@" || return 1
	expect_err_line "^rvattn: warning: .*$pat"
}

# Nothing to say: stderr stays empty.
expect_rc 0 "$RVATTN" run $small --cpus 0 --capacity 1.25 --mechanism moe --experts 4 --top-k 2
[ -s "$T/err" ] && fail "warnings without cause: $(cat "$T/err")"

# A cpu set wider than the machine: clipped, and said.
npu=$(nproc --all)
expect_warning "cpu set \"0-4095\": PUs $npu-4095 \(item '0-4095'\) do not exist.*; using PUs" \
	"$RVATTN" run $small --cpus 0-4095
expect_warning "cores [0-9]+-999 \(item 'core:0-999'\) do not exist" \
	"$RVATTN" topo --cpus core:0-999
# PUs the process may not use (taskset), when the machine has two or more
if [ "$npu" -ge 2 ] && command -v taskset >/dev/null; then
	expect_warning "cpu set \"0-1\": PU 1 is not allowed to this process; using PUs 0" \
		taskset -c 0 "$RVATTN" run $small --cpus 0-1
fi
# said once, not once per engine (bench makes one per thread count)
expect_rc 0 "$RVATTN" bench $small --threads 1 --repeat 1 --warmup 0 --cpus 0-4095
[ "$(grep -c 'warning: cpu set' "$T/err")" = 1 ] || fail "bench: $(cat "$T/err")"

# RVATTN_* switches with unknown values are ignored, and said; clipped ones too.
expect_warning "RVATTN_SIMD='avx9' is not one of auto, avx512, avx2, scalar: ignored" \
	env RVATTN_SIMD=avx9 "$RVATTN" run $small
expect_warning "RVATTN_ATTN_KERNEL='fast' is not one of auto, fused, blis: ignored" \
	env RVATTN_ATTN_KERNEL=fast "$RVATTN" run $small
expect_warning "RVATTN_REFERENCE_GEMM='2' is not one of 0, 1, .*: ignored \(off\)" \
	env RVATTN_REFERENCE_GEMM=2 "$RVATTN" run $small
expect_warning "RVATTN_BLIS_KERNELS='bogus' is not a kernel set .*: the kernels are chosen by" \
	env RVATTN_BLIS_KERNELS=bogus "$RVATTN" topo
expect_warning "RVATTN_ATTN_KERNEL=fused needs the avx512 SIMD level, the level in use is avx2" \
	env RVATTN_SIMD=avx2 RVATTN_ATTN_KERNEL=fused "$RVATTN" run $small
# several at once: one line
expect_warning "RVATTN_SIMD='x'.*; RVATTN_REFERENCE_GEMM='x'" \
	env RVATTN_SIMD=x RVATTN_REFERENCE_GEMM=x "$RVATTN" run $small
# valid values: silent
expect_rc 0 env RVATTN_SIMD=scalar RVATTN_ATTN_KERNEL=blis RVATTN_REFERENCE_GEMM=yes \
	RVATTN_BLIS_KERNELS=blis "$RVATTN" run $small
[ -s "$T/err" ] && fail "valid switches warned: $(cat "$T/err")"

# A number that float32 cannot hold is said with the value used; one it holds is not.
expect_warning "--capacity 1.0000000001 is not representable in float32: using 1$" \
	"$RVATTN" run $small --mechanism moe --experts 4 --top-k 2 --capacity 1.0000000001
expect_warning "--curvature -16777217 is not representable in float32: using -16777216$" \
	"$RVATTN" run $small --mechanism hyperbolic --curvature -16777217
expect_rc 0 "$RVATTN" run $small --mechanism moe --experts 4 --top-k 2 --capacity 0.1
[ -s "$T/err" ] && fail "--capacity 0.1 warned: $(cat "$T/err")"

# Topologies from the environment that cannot be loaded: exit 1, one line, for the
# engine (run) and for topo's own description; never this machine.
for cmd in "run $small" "topo"; do
	HWLOC_XMLFILE=/nonexistent/t.xml "$RVATTN" $cmd >"$T/out" 2>"$T/err"
	rc=$?
	[ "$rc" = 1 ] || fail "$cmd with a missing HWLOC_XMLFILE: exit $rc, want 1"
	expect_err_line "HWLOC_XMLFILE=\"/nonexistent/t.xml\" cannot be loaded: No such file"
	[ -s "$T/out" ] && fail "$cmd described a topology anyway: $(head -3 "$T/out")"
	echo '<not xml' >bad.xml
	HWLOC_XMLFILE=$T/bad.xml "$RVATTN" $cmd >"$T/out" 2>"$T/err"
	rc=$?
	[ "$rc" = 1 ] || fail "$cmd with a malformed HWLOC_XMLFILE: exit $rc, want 1"
	# (hwloc refuses it when it is named or when it is loaded, depending on its XML backend)
	expect_err_line "HWLOC_XMLFILE=\"$T/bad.xml\" cannot be loaded"
	HWLOC_SYNTHETIC="no such topology" "$RVATTN" $cmd >"$T/out" 2>"$T/err"
	rc=$?
	[ "$rc" = 1 ] || fail "$cmd with a bad HWLOC_SYNTHETIC: exit $rc, want 1"
	expect_err_line "HWLOC_SYNTHETIC=\"no such topology\" is not a valid hwloc synthetic"
	HWLOC_SYNTHETIC="package:1 core:1 pu:1" HWLOC_XMLFILE=/nonexistent "$RVATTN" $cmd \
		>"$T/out" 2>"$T/err"
	rc=$?
	[ "$rc" = 1 ] || fail "$cmd with both variables: exit $rc, want 1"
	expect_err_line "HWLOC_SYNTHETIC and HWLOC_XMLFILE are both set"
done
# a good one is used
expect_rc 0 env HWLOC_SYNTHETIC="package:2 core:3 pu:1" "$RVATTN" topo &&
	grep -q "2 packages, 1 NUMA node, 6 cores, 6 PUs" "$T/out" || fail "topo: $(head -5 "$T/out")"

also_unprivileged
finish
