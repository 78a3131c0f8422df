/* The error model: one table gives codes, names and messages; thread-local detail. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "rvattn/rvattn.h"

Test(status, table_is_complete_and_distinct) {
	for (int s = 0; s < RVA_STATUS_COUNT; s++) {
		const char *m = rva_strerror((rva_status)s), *n = rva_status_name((rva_status)s);
		cr_assert(m && *m, "status %d has no message", s);
		cr_assert(n && strncmp(n, "RVA_", 4) == 0, "status %d has name %s", s, n);
		for (int t = 0; t < s; t++) {
			cr_assert_str_neq(m, rva_strerror((rva_status)t));
			cr_assert_str_neq(n, rva_status_name((rva_status)t));
		}
	}
	cr_assert_str_eq(rva_status_name(RVA_OK), "RVA_OK");
	cr_assert_str_eq(rva_status_name(RVA_EDIM), "RVA_EDIM");
	cr_assert_str_eq(rva_strerror(RVA_ENOMEM), "out of memory");
	cr_assert_str_eq(rva_strerror((rva_status)999), "unknown status");
	cr_assert_str_eq(rva_status_name((rva_status)-1), "RVA_UNKNOWN");
}

static void *other_thread(void *arg) {
	(void)arg;
	rva_config c = rva_multi_head(10, 3);
	rva_attention *a;
	rva_status st = rva_build(&c, &a);
	return (void *)(intptr_t)(st == RVA_EDIM && strstr(rva_last_error(), "3 heads"));
}

Test(status, last_error_is_thread_local_and_detailed) {
	rva_clear_error();
	cr_assert_str_eq(rva_last_error(), "");
	rva_config c = rva_multi_head(512, 8);
	c.kv_heads = 3;
	rva_attention *a;
	cr_assert_eq(rva_build(&c, &a), RVA_EDIM);
	cr_assert(strstr(rva_last_error(), "kv_heads 3") && strstr(rva_last_error(), "8"),
	          "detail: %s", rva_last_error());
	char mine[256];
	strcpy(mine, rva_last_error());
	pthread_t t;
	void *ok;
	pthread_create(&t, NULL, other_thread, NULL);
	pthread_join(t, &ok);
	cr_assert(ok, "other thread saw its own detail");
	cr_assert_str_eq(rva_last_error(), mine, "this thread's detail unchanged");
}

static void *counting_alloc(size_t size, size_t align, void *user) {
	(*(int *)user)++;
	void *p = NULL;
	return posix_memalign(&p, align, size) == 0 ? p : NULL;
}
static void counting_free(void *p, void *user) {
	(void)user;
	free(p);
}

Test(alloc, hook_sees_allocations_and_failures_are_enomem) {
	int count = 0;
	rva_allocator a = {counting_alloc, counting_free, &count};
	cr_assert_eq(rva_set_allocator(&a), RVA_OK);
	rva_config c = rva_multi_head(64, 4);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	cr_assert_gt(count, 0);
	rva_attention_destroy(att);
	rva_allocator bad = {NULL, counting_free, NULL};
	cr_assert_eq(rva_set_allocator(&bad), RVA_EINVAL);
	rva_allocator got;
	cr_assert_eq(rva_get_allocator(&got), RVA_OK);
	cr_assert_eq(got.user, &count);
	cr_assert_eq(rva_set_allocator(NULL), RVA_OK);
	cr_assert_eq(rva_get_allocator(NULL), RVA_ENULL);
}
