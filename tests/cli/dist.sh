#!/bin/bash
# `--dist` (MPI): `mpirun -n 2 rvattn run --dist batch|ring` prints the checksum of the
# single-process run (bit-identical) and rank 0 writes --out identical to it; `topo` under
# mpirun lists every rank with disjoint cpus; `bench --dist --ranks 1,2 --csv` prints one
# row per rank count; bad --dist values are usage errors; without mpirun (and without
# --dist) rvattn runs as before. Skipped when rvattn was built without MPI.
source "$(dirname "$0")/lib.bash"
# Under ASan, the slow unwinder lets the LSan suppressions of Open MPI's own allocations
# (tests/lsan.supp) see libmpi in the stacks.
[ -n "${ASAN_OPTIONS:-}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0"

if "$RVATTN" run --dist batch --help 2>&1 | grep -q 'built without MPI'; then
	echo "SKIP: rvattn built without MPI (the --dist refusal is checked below)"
	expect_rc 2 "$RVATTN" run --dist batch --seq 8 && expect_err_line 'without MPI'
	finish
fi
MPIRUN=(mpirun --oversubscribe)
is_root && MPIRUN+=(--allow-run-as-root)
command -v mpirun >/dev/null || { fail "mpirun not found (openmpi-bin)"; finish; }

# fnv1a of a run's checksum line (single-process and distributed print it differently)
fnv() { grep -o 'fnv1a [0-9a-f]*' "$T/out" | head -1; }

w="--mechanism flash --dim 128 --heads 4 --kv-heads 2 --causal --threads 1 --repeat 1"
for shape in "--batch 5 --seq 300" "--batch 1 --seq 700"; do
	expect_rc 0 "$RVATTN" run $w $shape --out single.npy || fail "single-process run"
	want=$(fnv)
	[ -n "$want" ] || fail "no checksum in: $(cat "$T/out")"
	for mode in batch ring; do
		expect_rc 0 "${MPIRUN[@]}" -n 2 "$RVATTN" run $w $shape --dist $mode --out d.npy ||
			continue
		got=$(fnv)
		[ "$got" = "$want" ] || fail "--dist $mode ($shape): $got, single-process $want"
		cmp -s single.npy d.npy || fail "--dist $mode ($shape): --out differs"
		[ "$(grep -c '^dist:' "$T/out")" = 1 ] || fail "rank 0 alone prints: $(cat "$T/out")"
		rm -f d.npy
	done
done

expect_rc 0 "${MPIRUN[@]}" -n 2 "$RVATTN" topo
grep -q '^ranks: 2' "$T/out" || fail "topo: $(cat "$T/out")"
[ "$(grep -c '^rank [01]: host' "$T/out")" = 2 ] || fail "topo lists: $(cat "$T/out")"
c0=$(sed -n 's/^rank 0: .*engine PUs \([0-9,-]*\),.*/\1/p' "$T/out")
c1=$(sed -n 's/^rank 1: .*engine PUs \([0-9,-]*\),.*/\1/p' "$T/out")
[ -n "$c0" ] && [ "$c0" != "$c1" ] || fail "topo: ranks share cpus '$c0' '$c1'"

expect_rc 0 "${MPIRUN[@]}" -n 2 "$RVATTN" bench --dist batch --ranks 1,2 --mechanism flash \
	--dim 64 --heads 2 --batch 4 --seq 128 --threads 1 --repeat 1 --csv
[ "$(grep -c '^[12],' "$T/out")" = 2 ] || fail "bench csv: $(cat "$T/out")"
expect_rc 0 "${MPIRUN[@]}" -n 2 "$RVATTN" bench --dist ring --ranks 1,2 --mechanism flash \
	--dim 64 --heads 2 --seq 256 --causal --threads 1 --repeat 1
grep -q 'comm s' "$T/out" || fail "bench table: $(cat "$T/out")"
# --plot: strong scaling against ranks, drawn by rank 0 (gnuplot-nox is a test dependency)
if command -v gnuplot >/dev/null; then
	expect_rc 0 "${MPIRUN[@]}" -n 2 "$RVATTN" bench --dist batch --ranks 1,2 --mechanism flash \
		--dim 64 --heads 2 --batch 4 --seq 128 --threads 1 --repeat 1 --scaling strong \
		--plot "$T/ranks.svg"
	grep -q "plot: $T/ranks.svg" "$T/out" || fail "bench --plot: $(cat "$T/out")"
	grep -q '<svg' "$T/ranks.svg" && grep -q 'ranks' "$T/ranks.svg" || fail "plot has no ranks axis"
fi
expect_rc 2 "$RVATTN" bench --dist batch --plot "$T/p.txt" && expect_err_line 'must end in .png or .svg'
expect_rc 2 "$RVATTN" bench --dist batch --scaling weak --plot "$T/p.svg" && expect_err_line 'not with --scaling weak'

expect_rc 2 "$RVATTN" run --dist sideways --seq 8 && expect_err_line 'not batch or ring'
expect_rc 2 "$RVATTN" presets --dist batch && expect_err_line 'option of run and bench'
expect_rc 2 "${MPIRUN[@]}" -n 2 "$RVATTN" bench --dist batch --ranks 3 --seq 8 --batch 2
grep -q 'mpirun started 2' "$T/err" || fail "--ranks 3 of 2: $(cat "$T/err")"
# without mpirun and without --dist nothing changes (no MPI initialised)
expect_rc 0 "$RVATTN" run --mechanism flash --dim 64 --seq 32 --batch 2 --threads 1
grep -q 'checksum' "$T/out" || fail "plain run: $(cat "$T/out")"
finish
