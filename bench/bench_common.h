/*
 * Shared helpers of the benchmark programs: timing, medians, a header naming the
 * machine and the BLIS kernels, pre-faulted buffers, peak RSS, and the single-thread
 * sgemm limit measured in the same process (so every figure is a same-run ratio).
 */
#ifndef RVATTN_BENCH_COMMON_H
#define RVATTN_BENCH_COMMON_H

#include <stddef.h>
#include <stdio.h>

/* Monotonic seconds. */
double bench_now(void);

/* Median of n values (sorts a copy). */
double bench_median(const double *v, size_t n);

/* Pre-faulted (touched) buffer of n floats filled with seeded values in [-1, 1): 64-byte
 * aligned, or from 2 MiB on 2 MiB-aligned with MADV_HUGEPAGE (huge pages where the system
 * offers them); exits with a message when memory runs out. Free with free(). */
float *bench_buffer(size_t n, unsigned seed);

/* Peak resident set size of this process in bytes. */
size_t bench_peak_rss(void);

/* Writes "# machine ... / # BLIS kernels ... / # date ..." lines to f. */
void bench_header(FILE *f, const char *program);

/* CPU model string (from /proc/cpuinfo), static. */
const char *bench_cpu_model(void);

/* Number of online cores. */
unsigned bench_cores(void);

/* Single-thread sgemm GFLOP/s (median of reps runs) of an m x n x k product (A.B^T like
 * Q.K^T when trans_b) with the process's default BLIS kernels. */
double bench_sgemm_gflops(size_t m, size_t n, size_t k, int reps, unsigned threads);

/* The machine's fp32 FMA throughput in GFLOP/s (median of reps ~20 ms samples after a
 * warm-up) with `threads` OpenMP threads, each running independent fused multiply-adds on
 * 16 AVX-512 registers (12 AVX2 registers without AVX-512, per RVATTN_SIMD); 0 on a CPU
 * with neither. The ceiling every attention figure is compared with, beside sgemm. */
double bench_fma_peak_gflops(unsigned threads, int reps);

/* The bf16 dot-product peak with `threads` threads: independent vdpbf16ps (64 flops each),
 * no memory, GFLOP/s (median of reps); 0 without AVX512_BF16. */
double bench_bf16_peak_gflops(unsigned threads, int reps);

/* Seconds of CPU time of the calling thread (time while descheduled does not count): for
 * breakdowns on a machine shared with other work. */
double bench_cpu_now(void);

/* A plain streaming read of `bytes` bytes at p on the calling thread (16 independent sums
 * the compiler vectorises; no prefetch): the read baseline of a kernel timed on the same
 * thread (bench_cpu_now). Returns the sum, to keep the reads observable. */
float bench_read_bytes(const void *p, size_t bytes);

/* Seconds of CPU time of the whole process (every thread: the engine's workers too; time
 * while descheduled does not count): the steadier clock on a loaded machine, for runs whose
 * threads do not spin while idle (one worker). */
double bench_process_cpu_now(void);

/* The one-thread FMA peak on the calling thread, timed with bench_cpu_now (median of reps). */
double bench_fma_peak_thread_gflops(int reps);
#endif
