/* BLIS kernel choice: feature-based auto choice, the RVATTN_BLIS_KERNELS override, and
 * clean refusals (never an abort or SIGILL). Each Criterion test is a fresh process, so
 * setting the environment at the start of a test is seen by the first use. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rvattn/rvattn.h"

Test(kernels, names_round_trip) {
	for (int k = 0; k < RVA_KERNELS_COUNT; k++) {
		rva_kernel_set got;
		cr_assert_eq(rva_kernel_set_parse(rva_kernel_set_name((rva_kernel_set)k), &got), RVA_OK);
		cr_assert_eq(got, k);
	}
	rva_kernel_set got;
	cr_assert_eq(rva_kernel_set_parse("SKX", &got), RVA_OK);
	cr_assert_eq(got, RVA_KERNELS_SKX);
	cr_assert_eq(rva_kernel_set_parse("zen5", &got), RVA_ENOTFOUND);
	cr_assert(strstr(rva_last_error(), "haswell"), "lists the known names");
	cr_assert_eq(rva_kernel_set_parse(NULL, &got), RVA_ENULL);
	cr_assert_str_eq(rva_kernel_set_name((rva_kernel_set)42), "unknown");
}

Test(kernels, auto_follows_cpu_features) {
	unsetenv("RVATTN_BLIS_KERNELS");
	rva_cpu_features f;
	cr_assert_eq(rva_cpu_detect(&f), RVA_OK);
	rva_kernel_set k;
	const char *note;
	cr_assert_eq(rva_kernels_current(&k, &note), RVA_OK);
	if (f.avx512f)
		cr_assert_eq(k, RVA_KERNELS_SKX);
	else if (f.avx2 && f.fma)
		cr_assert(k == RVA_KERNELS_ZEN3 || k == RVA_KERNELS_HASWELL);
	else
		cr_assert_eq(k, RVA_KERNELS_BLIS);
	cr_assert(strstr(note, "auto"), "note: %s", note);
}

Test(kernels, environment_override_is_honoured) {
	setenv("RVATTN_BLIS_KERNELS", "blis", 1);
	rva_kernel_set k;
	const char *note;
	cr_assert_eq(rva_kernels_current(&k, &note), RVA_OK);
	cr_assert_eq(k, RVA_KERNELS_BLIS);
	cr_assert(strstr(note, "RVATTN_BLIS_KERNELS"), "note: %s", note);
	cr_assert_eq(rva_kernels_resolve(RVA_KERNELS_AUTO, &k), RVA_OK);
	cr_assert_eq(k, RVA_KERNELS_BLIS);
	/* an explicit choice beats the environment */
	cr_assert_eq(rva_kernels_resolve(RVA_KERNELS_HASWELL, &k), RVA_OK);
	cr_assert_eq(k, RVA_KERNELS_HASWELL);
}

Test(kernels, invalid_environment_falls_back_with_a_reason) {
	setenv("RVATTN_BLIS_KERNELS", "bogus", 1);
	rva_kernel_set k;
	cr_assert_eq(rva_kernels_resolve(RVA_KERNELS_AUTO, &k), RVA_ENOTFOUND);
	cr_assert(strstr(rva_last_error(), "bogus"));
	const char *note;
	cr_assert_eq(rva_kernels_current(&k, &note), RVA_OK); /* falls back, never aborts */
	cr_assert_neq(k, RVA_KERNELS_AUTO);
	cr_assert(strstr(note, "bogus"), "note names the ignored value: %s", note);
	/* the library still computes */
	rva_config c = rva_multi_head(32, 2);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	float q[32] = {1}, out[32];
	const float *rows[1] = {q};
	cr_assert_eq(rva_compute(att, q, rows, rows, 1, out), RVA_OK);
	cr_assert_float_eq(out[0], 1.0f, 1e-6);
	rva_attention_destroy(att);
}

Test(kernels, unsupported_sets_are_refused_not_run) {
	rva_cpu_features f;
	rva_cpu_detect(&f);
	rva_kernel_set k;
	if (!f.avx512f)
		cr_assert_eq(rva_kernels_resolve(RVA_KERNELS_SKX, &k), RVA_EUNSUPPORTED);
	if (!(f.avx2 && f.fma))
		cr_assert_eq(rva_kernels_resolve(RVA_KERNELS_ZEN3, &k), RVA_EUNSUPPORTED);
	cr_assert_eq(rva_kernels_resolve((rva_kernel_set)77, &k), RVA_EINVAL);
	cr_assert_eq(rva_kernels_select((rva_kernel_set)77), RVA_EINVAL);
	cr_assert_eq(rva_kernels_select(RVA_KERNELS_BLIS), RVA_OK);
	cr_assert_eq(rva_kernels_current(&k, NULL), RVA_OK);
	cr_assert_eq(k, RVA_KERNELS_BLIS);
}

/* The note of rva_kernels_current is the caller's to read for as long as it likes: a
 * later rva_kernels_select (here on the same thread; tests/plain_tsan_kernels.c does it
 * from others under ThreadSanitizer) must not rewrite it in place. */
Test(kernels, a_note_handed_out_never_changes) {
	unsetenv("RVATTN_BLIS_KERNELS");
	cr_assert_eq(rva_kernels_select(RVA_KERNELS_BLIS), RVA_OK);
	rva_kernel_set k;
	const char *first;
	cr_assert_eq(rva_kernels_current(&k, &first), RVA_OK);
	cr_assert_eq(k, RVA_KERNELS_BLIS);
	char copy[256];
	snprintf(copy, sizeof copy, "%s", first);
	cr_assert_str_eq(copy, "explicit choice");
	cr_assert_eq(rva_kernels_select(RVA_KERNELS_AUTO), RVA_OK);
	const char *second;
	cr_assert_eq(rva_kernels_current(&k, &second), RVA_OK);
	cr_assert(strstr(second, "auto"), "the new note: %s", second);
	cr_assert_str_eq(first, copy, "the first note now reads \"%s\"", first);
}

/* The fallback note (a bad RVATTN_BLIS_KERNELS) outlives later selections too. */
Test(kernels, the_fallback_note_outlives_selections) {
	setenv("RVATTN_BLIS_KERNELS", "bogus", 1);
	rva_kernel_set k;
	const char *first;
	cr_assert_eq(rva_kernels_current(&k, &first), RVA_OK);
	char copy[256];
	snprintf(copy, sizeof copy, "%s", first);
	cr_assert(strstr(copy, "bogus"), "note: %s", copy);
	cr_assert_eq(rva_kernels_select(RVA_KERNELS_BLIS), RVA_OK);
	cr_assert_str_eq(first, copy);
}
