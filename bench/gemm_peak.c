/*
 * gemm_peak: the sgemm "limit" every attention figure is compared with.
 * Prints GFLOP/s (median of 7 runs after a warm-up) at 1 thread and at all cores, for the
 * BLIS kernel set rvattn chose and for BLIS's own choice, at 1024^3 and at the
 * attention-like shapes 256x256x64 (Q.K^T of a tile) and 256x64x256 (P.V); and the
 * machine's FMA peak (bench_fma_peak_gflops: independent AVX-512 FMAs, no memory) at 1
 * thread and at all cores, with sgemm 1024^3 as a share of it; and the bf16 dot-product
 * peak (bench_bf16_peak_gflops: independent vdpbf16ps, 0 without AVX512_BF16), the
 * ceiling of the bf16 kernels, at the same thread counts.
 *
 *   build/bench/gemm_peak [--json]
 */
#include <stdio.h>
#include <string.h>

#include "bench_common.h"
#include "kernels/gemm.h"
#include "rvattn/rvattn.h"

int main(int argc, char **argv) {
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	if (argc > 1 && !json) {
		fprintf(stderr, "usage: gemm_peak [--json]\n");
		return 2;
	}
	static const size_t shapes[][3] = {{1024, 1024, 1024}, {256, 256, 64}, {256, 64, 256}};
	rva_kernel_set chosen;
	rva_kernels_current(&chosen, NULL);
	rva_kernel_set sets[2] = {chosen, RVA_KERNELS_BLIS};
	unsigned cores = bench_cores(), threads[2] = {1, cores};
	double g[2][3][2];
	if (!json)
		bench_header(stdout, "gemm_peak");
	for (int s = 0; s < 2; s++) {
		const rva__gemm_ctx *ctx;
		if (rva__gemm_ctx_get(sets[s], &ctx) != RVA_OK) {
			fprintf(stderr, "gemm_peak: %s\n", rva_last_error());
			return 1;
		}
		rva__gemm_ctx_use(ctx);
		for (int sh = 0; sh < 3; sh++)
			for (int t = 0; t < 2; t++)
				g[s][sh][t] = bench_sgemm_gflops(shapes[sh][0], shapes[sh][1], shapes[sh][2], 7,
				                                 threads[t]);
	}
	rva__gemm_ctx_use(NULL);
	double fma[2] = {bench_fma_peak_gflops(threads[0], 7), bench_fma_peak_gflops(threads[1], 7)};
	double bf16[2] = {bench_bf16_peak_gflops(threads[0], 7),
	                  bench_bf16_peak_gflops(threads[1], 7)};
	if (json) {
		printf("{\"cpu\": \"%s\", \"cores\": %u, \"fma_peak_gflops\": [%.2f, %.2f], "
		       "\"bf16_peak_gflops\": [%.2f, %.2f], \"rows\": [",
		       bench_cpu_model(), cores, fma[0], fma[1], bf16[0], bf16[1]);
		int first = 1;
		for (int s = 0; s < 2; s++)
			for (int sh = 0; sh < 3; sh++)
				for (int t = 0; t < 2; t++) {
					printf("%s{\"kernels\": \"%s\", \"m\": %zu, \"n\": %zu, \"k\": %zu, "
					       "\"threads\": %u, \"gflops\": %.2f}", first ? "" : ", ",
					       s == 0 ? rva_kernel_set_name(sets[s]) : "blis-own", shapes[sh][0],
					       shapes[sh][1], shapes[sh][2], threads[t], g[s][sh][t]);
					first = 0;
				}
		printf("]}\n");
		return 0;
	}
	printf("%-10s %-16s %8s %12s\n", "kernels", "m x n x k", "threads", "GFLOP/s");
	for (int s = 0; s < 2; s++)
		for (int sh = 0; sh < 3; sh++)
			for (int t = 0; t < 2; t++) {
				char shape[48];
				snprintf(shape, sizeof shape, "%zux%zux%zu", shapes[sh][0], shapes[sh][1],
				         shapes[sh][2]);
				printf("%-10s %-16s %8u %12.1f\n",
				       s == 0 ? rva_kernel_set_name(sets[s]) : "blis-own", shape, threads[t],
				       g[s][sh][t]);
			}
	printf("chosen/own at 1024^3, 1 thread: %.2fx\n", g[0][0][0] / g[1][0][0]);
	for (int t = 0; t < 2; t++)
		printf("FMA peak, %u thread%s: %.1f GFLOP/s (sgemm 1024^3 %s: %.0f%% of it)\n", threads[t],
		       threads[t] > 1 ? "s" : "", fma[t], rva_kernel_set_name(sets[0]),
		       fma[t] > 0.0 ? 100.0 * g[0][0][t] / fma[t] : 0.0);
	for (int t = 0; t < 2; t++)
		printf("bf16 dot-product peak (vdpbf16ps), %u thread%s: %.1f GFLOP/s (%.2fx the FMA "
		       "peak)\n", threads[t], threads[t] > 1 ? "s" : "", bf16[t],
		       fma[t] > 0.0 ? bf16[t] / fma[t] : 0.0);
	return 0;
}
