/*
 * The kernel choice under concurrency (tools/tsan_check.sh runs it under ThreadSanitizer
 * with clang + libomp + Archer; ctest also runs it in normal builds). A plain main():
 * Criterion cannot start under TSan.
 *
 * Two threads switch the process default kernel set back and forth (rva_kernels_select),
 * at least ROUNDS times and until the readers have read MIN_READS times, while three
 * others read it (rva_kernels_current), keep the notes they were handed and read them
 * again at the end, and run small GEMMs on the default context, checked against the
 * naive twin. The note of rva_kernels_current must never change under its reader: a note
 * rewritten in place by a later select shows here as a note that reads differently at
 * the end than when it was handed out (with or without TSan: the rewrite happens inside
 * libc's snprintf, whose writes TSan does not see). Under TSan the run checks the
 * publication of the default (context pointer and note) between selectors, readers and
 * the GEMM path.
 * Exit status 0 when every check passed.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "rvattn/kernels.h"

#define SELECTORS 2
#define READERS 3
#define ROUNDS 400
#define N 24
#define MIN_READS 3000 /* reads (by all readers) the selectors run through */

static atomic_int failures;
static atomic_int stop, started, reads;

#define CHECK(cond, ...)                                                    \
	do {                                                                    \
		if (!(cond)) {                                                      \
			fprintf(stderr, "plain_tsan_kernels: check failed: " __VA_ARGS__); \
			fputc('\n', stderr);                                            \
			atomic_fetch_add(&failures, 1);                                 \
		}                                                                   \
	} while (0)

static rva_kernel_set other_set;

static void *selector(void *arg) {
	unsigned id = (unsigned)(size_t)arg;
	atomic_store(&started, 1);
	for (int r = 0; (r < ROUNDS || atomic_load(&reads) < MIN_READS) && r < 100 * 1000 * 1000;
	     r++) {
		rva_kernel_set k = (r + id) % 2 ? other_set : RVA_KERNELS_AUTO;
		CHECK(rva_kernels_select(k) == RVA_OK, "select %s", rva_kernel_set_name(k));
	}
	return NULL;
}

/* Copies a note byte by byte in this (instrumented) file, so that ThreadSanitizer sees
 * every read, where libc's string functions may hide them. */
static void note_copy(char *dst, size_t cap, const char *note) {
	size_t i = 0;
	for (; i + 1 < cap && note[i]; i++)
		dst[i] = note[i];
	dst[i] = '\0';
}

static void *reader(void *arg) {
	unsigned seed = (unsigned)(size_t)arg * 7919u + 1u;
	float a[N * N], b[N * N], c[N * N], ref[N * N];
	for (int i = 0; i < N * N; i++) {
		seed = seed * 1664525u + 1013904223u;
		a[i] = (float)(seed >> 9) / 8388608.0f - 1.0f;
		seed = seed * 1664525u + 1013904223u;
		b[i] = (float)(seed >> 9) / 8388608.0f - 1.0f;
	}
	rva__sgemm_ref(false, true, N, N, N, 1.0f, a, N, b, N, 0.0f, ref, N);
	const char *held[8] = {0};
	char copy[8][256];
	int nheld = 0, it = 0;
	while (!atomic_load(&started))
		;
	while (!atomic_load(&stop)) {
		rva_kernel_set k;
		const char *note = NULL;
		CHECK(rva_kernels_current(&k, &note) == RVA_OK, "current");
		atomic_fetch_add(&reads, 1);
		CHECK(k != RVA_KERNELS_AUTO && (unsigned)k < RVA_KERNELS_COUNT, "set %d", (int)k);
		CHECK(note && *note, "a note");
		/* Keep the last 8 notes that differed from the one before, with what they
		 * said when handed out. */
		char cur[256] = "";
		if (note)
			note_copy(cur, sizeof cur, note);
		if (note && (it == 0 || strcmp(cur, copy[(it - 1) % 8]) != 0)) {
			held[it % 8] = note;
			memcpy(copy[it % 8], cur, sizeof cur);
			nheld += nheld < 8;
			it++;
		}
		rva__sgemm(false, true, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
		double worst = 0.0;
		for (int i = 0; i < N * N; i++)
			worst = fmax(worst, fabs((double)c[i] - (double)ref[i]));
		CHECK(worst < 1e-4, "sgemm on the default context is off by %g", worst);
	}
	/* Every note handed out still reads as it did when it was handed out. */
	char now[256];
	for (int i = 0; i < nheld; i++)
		CHECK((note_copy(now, sizeof now, held[i]), strcmp(now, copy[i]) == 0),
		      "a note changed under its reader: \"%s\" became \"%s\"", copy[i], now);
	return NULL;
}

int main(void) {
	/* AUTO alternates with another runnable set, so the default really changes. */
	other_set = RVA_KERNELS_BLIS;
	pthread_t sel[SELECTORS], rd[READERS];
	for (size_t i = 0; i < READERS; i++)
		if (pthread_create(&rd[i], NULL, reader, (void *)i) != 0)
			return fprintf(stderr, "plain_tsan_kernels: pthread_create failed\n"), 1;
	for (size_t i = 0; i < SELECTORS; i++)
		if (pthread_create(&sel[i], NULL, selector, (void *)i) != 0)
			return fprintf(stderr, "plain_tsan_kernels: pthread_create failed\n"), 1;
	for (size_t i = 0; i < SELECTORS; i++)
		pthread_join(sel[i], NULL);
	atomic_store(&stop, 1);
	for (size_t i = 0; i < READERS; i++)
		pthread_join(rd[i], NULL);
	int nf = atomic_load(&failures);
	printf("plain_tsan_kernels: %d selectors, %d readers, %d reads: %s\n", SELECTORS, READERS,
	       atomic_load(&reads), nf ? "FAILED" : "ok");
	return nf ? 1 : 0;
}
