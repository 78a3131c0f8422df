#define _GNU_SOURCE 1
#include "bench_common.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kernels/gemm.h"
#include "kernels/half.h"
#include "rvattn/rvattn.h"

double bench_now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double bench_median(const double *v, size_t n) {
	if (n == 0)
		return 0.0;
	double *c = malloc(n * sizeof *c);
	if (!c)
		return v[0];
	memcpy(c, v, n * sizeof *c);
	qsort(c, n, sizeof *c, cmp_double);
	double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
	free(c);
	return m;
}

float *bench_buffer(size_t n, unsigned seed) {
	/* As README says for callers' buffers: 2 MiB-aligned and MADV_HUGEPAGE from 2 MiB on
	 * (transparent huge pages are often madvise-only), so inputs stream from huge pages as
	 * rvattn's own memory does; still released with free(). */
	size_t bytes = (n ? n : 1) * sizeof(float), huge = (size_t)2 << 20;
	void *p = NULL;
	if (posix_memalign(&p, bytes >= huge ? huge : 64, bytes) != 0) {
		fprintf(stderr, "bench: cannot allocate %zu floats\n", n);
		exit(1);
	}
#ifdef MADV_HUGEPAGE
	if (bytes >= huge)
		madvise(p, bytes & ~(huge - 1), MADV_HUGEPAGE);
#endif
	float *f = p;
	unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		f[i] = (float)((double)(s >> 40) / 8388608.0 - 1.0);
	}
	return f;
}

size_t bench_peak_rss(void) {
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (size_t)ru.ru_maxrss * 1024;
}

const char *bench_cpu_model(void) {
	static char model[128] = "unknown";
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return model;
	char line[256];
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "model name", 10) == 0) {
			char *c = strchr(line, ':');
			if (c) {
				c += 2;
				c[strcspn(c, "\n")] = 0;
				snprintf(model, sizeof model, "%s", c);
			}
			break;
		}
	}
	fclose(f);
	return model;
}

unsigned bench_cores(void) {
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

void bench_header(FILE *f, const char *program) {
	rva_kernel_set k;
	const char *note = "";
	rva_kernels_current(&k, &note);
	rva_cpu_features cf;
	rva_cpu_detect(&cf);
	time_t now = time(NULL);
	char date[64];
	strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
	fprintf(f, "# %s — %s\n", program, date);
	fprintf(f, "# machine: %s (%s family %#x), %u cores, AVX-512F %s\n", bench_cpu_model(),
	        cf.vendor, cf.family, bench_cores(), cf.avx512f ? "yes" : "no");
	fprintf(f, "# BLIS kernels: %s (%s)\n", rva_kernel_set_name(k), note);
}

double bench_sgemm_gflops(size_t m, size_t n, size_t k, int reps, unsigned threads) {
	float *a = bench_buffer(m * k, 1), *b = bench_buffer(n * k, 2), *c = bench_buffer(m * n, 3);
	double flops = 2.0 * (double)m * (double)n * (double)k;
	/* enough calls per sample to last ~20 ms */
	int inner = (int)(4e9 / flops / (threads ? threads : 1) * 0.02 * 50);
	if (inner < 1)
		inner = 1;
	double *t = malloc((size_t)reps * sizeof *t);
	rva__sgemm_ex(NULL, threads, false, true, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n); /* warm */
	for (int r = 0; r < reps; r++) {
		double t0 = bench_now();
		for (int i = 0; i < inner; i++)
			rva__sgemm_ex(NULL, threads, false, true, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
		t[r] = (bench_now() - t0) / inner;
	}
	double g = flops / bench_median(t, (size_t)reps) * 1e-9;
	free(t);
	free(a);
	free(b);
	free(c);
	return g;
}

/* ---- FMA peak probe ----------------------------------------------------------------- */

#if defined(__x86_64__)
#include "kernels/vexp.h"

/* 16 independent 16-lane accumulators (2 FMA pipes x 4-cycle latency needs 8; 16 leaves
 * slack for either), 512 flops per iteration; the values settle near 1 (no denormals). */
static RVA__TARGET_AVX512 float fma_loop_avx512(long iters) {
	enum { NA = 16 };
	__m512 acc[NA];
	const __m512 mul = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-6f);
	for (int i = 0; i < NA; i++)
		acc[i] = _mm512_set1_ps(1.0f + (float)i * 1e-3f);
	for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
		for (int i = 0; i < NA; i++)
			acc[i] = _mm512_fmadd_ps(acc[i], mul, add);
	}
	__m512 s = acc[0];
	for (int i = 1; i < NA; i++)
		s = _mm512_add_ps(s, acc[i]);
	return _mm512_reduce_add_ps(s);
}

/* The same with 8-lane registers (AVX2 + FMA): 256 flops per iteration. */
static RVA__TARGET_AVX2 float fma_loop_avx2(long iters) {
	enum { NA = 12 };
	__m256 acc[NA];
	const __m256 mul = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-6f);
	for (int i = 0; i < NA; i++)
		acc[i] = _mm256_set1_ps(1.0f + (float)i * 1e-3f);
	for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
		for (int i = 0; i < NA; i++)
			acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
	}
	__m256 s = acc[0];
	for (int i = 1; i < NA; i++)
		s = _mm256_add_ps(s, acc[i]);
	float v[8];
	_mm256_storeu_ps(v, s);
	return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}

/* 16 independent vdpbf16ps accumulators (16 lanes, 2 bf16 products each: 64 flops per
 * instruction), 1024 flops per iteration; the sums grow by 2e-6 a step (no denormals). */
static __attribute__((target("avx512f,avx512bf16"))) float bf16_loop(long iters) {
	enum { NA = 16 };
	__m512 acc[NA];
	const __m512i a = _mm512_set1_epi32(0x3f803f80), b = _mm512_set1_epi32(0x35863586);
	for (int i = 0; i < NA; i++)
		acc[i] = _mm512_set1_ps(1.0f + (float)i * 1e-3f);
	for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
		for (int i = 0; i < NA; i++)
			acc[i] = _mm512_dpbf16_ps(acc[i], (__m512bh)a, (__m512bh)b);
	}
	__m512 s = acc[0];
	for (int i = 1; i < NA; i++)
		s = _mm512_add_ps(s, acc[i]);
	return _mm512_reduce_add_ps(s);
}
#endif

double bench_cpu_now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#if defined(__x86_64__)
/* Four 64-byte lines per iteration into four independent sums (AVX-512 loads and adds). */
static RVA__TARGET_AVX512 float read_avx512(const unsigned char *p, size_t bytes) {
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	size_t i = 0;
	for (; i + 256 <= bytes; i += 256) {
		a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + i));
		a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + i + 64));
		a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + i + 128));
		a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + i + 192));
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}
#endif

float bench_read_bytes(const void *p, size_t bytes) {
	const unsigned char *base = p;
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512)
		return read_avx512(base, bytes);
#endif
	size_t n = bytes / sizeof(float), i = 0;
	float acc[16] = {0}, v[16], total = 0.0f;
	for (; i + 16 <= n; i += 16) {
		memcpy(v, base + i * sizeof(float), sizeof v);
		for (int k = 0; k < 16; k++)
			acc[k] += v[k];
	}
	for (int k = 0; k < 16; k++)
		total += acc[k];
	return total;
}

double bench_process_cpu_now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* kind 0: FMA (AVX-512 or AVX2), 1: vdpbf16ps (0 without AVX512_BF16). */
static float probe_loop(int kind, rva__simd lvl, long iters) {
#if defined(__x86_64__)
	if (kind == 1)
		return bf16_loop(iters);
	return lvl == RVA__SIMD_AVX512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
#else
	(void)kind;
	(void)lvl;
	(void)iters;
	return 0.0f;
#endif
}

static double fma_probe(unsigned threads, int reps, bool thread_clock, int kind) {
#if defined(__x86_64__)
	rva__simd lvl = rva__simd_level();
	if (lvl == RVA__SIMD_SCALAR || (kind == 1 && !rva__half_avx512bf16()))
		return 0.0;
	double per_iter = kind == 1 ? 1024.0 : lvl == RVA__SIMD_AVX512 ? 512.0 : 192.0;
	long iters = 4000000; /* ~20 ms per sample at ~100 GFLOP/s per thread */
	unsigned t = threads ? threads : 1;
	if (reps < 1)
		reps = 1;
	double *times = malloc((size_t)reps * sizeof *times);
	if (!times)
		return 0.0;
	volatile float sink = 0.0f;
	for (int r = -1; r < reps; r++) {
		double t0 = thread_clock ? bench_cpu_now() : bench_now();
		float total = 0.0f;
		if (thread_clock)
			total = probe_loop(kind, lvl, iters);
		else {
#pragma omp parallel num_threads(t) reduction(+ : total)
			total += probe_loop(kind, lvl, iters);
		}
		sink += total;
		if (r >= 0)
			times[r] = (thread_clock ? bench_cpu_now() : bench_now()) - t0;
	}
	(void)sink;
	double g = per_iter * (double)iters * (double)t / bench_median(times, (size_t)reps) * 1e-9;
	free(times);
	return g;
#else
	(void)threads;
	(void)reps;
	(void)thread_clock;
	(void)kind;
	(void)probe_loop;
	return 0.0;
#endif
}

double bench_fma_peak_gflops(unsigned threads, int reps) {
	return fma_probe(threads, reps, false, 0);
}

double bench_fma_peak_thread_gflops(int reps) {
	return fma_probe(1, reps, true, 0);
}

double bench_bf16_peak_gflops(unsigned threads, int reps) {
	return fma_probe(threads, reps, false, 1);
}
