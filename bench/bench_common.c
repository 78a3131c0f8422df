#define _GNU_SOURCE 1
#include "bench_common.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kernels/gemm.h"
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
	void *p = NULL;
	if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0) {
		fprintf(stderr, "bench: cannot allocate %zu floats\n", n);
		exit(1);
	}
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
