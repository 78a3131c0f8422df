/* The cpu-set parser (grammar in sched/cpuset.h). */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "sched/cpuset.h"

/* Quoted spec in messages, truncated so the message stays one readable line. */
#define SPEC_FMT "cpu set \"%.80s%s\""
#define SPEC_ARG(s) (s), (strlen(s) > 80 ? "..." : "")

typedef struct kind {
	const char *name;       /* as written */
	hwloc_obj_type_t type;
	const char *what;       /* singular, for messages */
	const char *whats;      /* plural */
} kind;

static const kind kinds[] = {
	{"pu", HWLOC_OBJ_PU, "PU", "PUs"},
	{"core", HWLOC_OBJ_CORE, "core", "cores"},
	{"numa", HWLOC_OBJ_NUMANODE, "NUMA node", "NUMA nodes"},
	{"node", HWLOC_OBJ_NUMANODE, "NUMA node", "NUMA nodes"},
	{"package", HWLOC_OBJ_PACKAGE, "package", "packages"},
	{"socket", HWLOC_OBJ_PACKAGE, "package", "packages"},
};

static bool word_eq(const char *w, size_t n, const char *lit) {
	if (strlen(lit) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (tolower((unsigned char)w[i]) != lit[i])
			return false;
	return true;
}

static bool is_word_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

typedef struct parser {
	const char *spec, *p;
	hwloc_topology_t topo;
	hwloc_bitmap_t out;
	char *note;             /* what was clipped, or NULL when not wanted */
	size_t note_cap;
} parser;

/* Appends one clause to the note ("; " between clauses). */
static void note_add(parser *ps, const char *fmt, ...) RVA__PRINTF(2, 3);
static void note_add(parser *ps, const char *fmt, ...) {
	if (!ps->note || ps->note_cap == 0)
		return;
	size_t used = strlen(ps->note);
	if (used && used + 2 < ps->note_cap) {
		memcpy(ps->note + used, "; ", 3);
		used += 2;
	}
	if (used + 1 >= ps->note_cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->note + used, ps->note_cap - used, fmt, ap);
	va_end(ap);
}

static rva_status syntax(const parser *ps, const char *at, const char *what) {
	return rva__fail(RVA_EINVAL, SPEC_FMT ": %s at offset %td ('%.16s')", SPEC_ARG(ps->spec),
	                 what, at - ps->spec, *at ? at : "end of string");
}

/* Reads a decimal number at ps->p. */
static rva_status number(parser *ps, unsigned *v) {
	const char *s = ps->p;
	if (!isdigit((unsigned char)*s))
		return syntax(ps, s, "expected a number");
	unsigned long x = 0;
	while (isdigit((unsigned char)*s)) {
		x = x * 10 + (unsigned long)(*s - '0');
		if (x > RVA__CPUSET_MAX_INDEX)
			return rva__fail(RVA_EINVAL, SPEC_FMT ": index at offset %td exceeds %u",
			                 SPEC_ARG(ps->spec), ps->p - ps->spec, RVA__CPUSET_MAX_INDEX);
		s++;
	}
	ps->p = s;
	*v = (unsigned)x;
	return RVA_OK;
}

/* Adds PUs with OS index in [lo, hi] that exist in the topology. */
static rva_status add_pus(parser *ps, const char *item, unsigned lo, unsigned hi, bool all) {
	hwloc_const_bitmap_t topo_set = hwloc_topology_get_topology_cpuset(ps->topo);
	bool any = false;
	int i;
	hwloc_bitmap_foreach_begin(i, topo_set) {
		if ((unsigned)i > hi)
			break;
		if ((unsigned)i >= lo) {
			if (hwloc_bitmap_set(ps->out, (unsigned)i) < 0)
				return rva__fail(RVA_ENOMEM, "cpu set: hwloc cannot grow a bitmap");
			any = true;
		}
	}
	hwloc_bitmap_foreach_end();
	if (any && !all && ps->note) {
		/* The part of the range that names no PU of the topology: said, not silent. */
		hwloc_bitmap_t miss = hwloc_bitmap_alloc();
		if (miss && hwloc_bitmap_set_range(miss, lo, (int)hi) == 0 &&
		    hwloc_bitmap_andnot(miss, miss, topo_set) == 0 && !hwloc_bitmap_iszero(miss)) {
			char m[64], have[64];
			hwloc_bitmap_list_snprintf(m, sizeof m, miss);
			hwloc_bitmap_list_snprintf(have, sizeof have, topo_set);
			note_add(ps, "PU%s %s (item '%.*s') do%s not exist, the topology has PUs %s",
			         hwloc_bitmap_weight(miss) == 1 ? "" : "s", m, (int)(ps->p - item), item,
			         hwloc_bitmap_weight(miss) == 1 ? "es" : "", have);
		}
		if (miss)
			hwloc_bitmap_free(miss);
	}
	if (any)
		return RVA_OK;
	char have[96];
	hwloc_bitmap_list_snprintf(have, sizeof have, topo_set);
	if (all)
		return rva__fail(RVA_ENOTFOUND, SPEC_FMT ": the topology has no PUs", SPEC_ARG(ps->spec));
	if (lo == hi)
		return rva__fail(RVA_ENOTFOUND, SPEC_FMT ": PU %u (item at offset %td) does not "
		                 "exist (the topology has PUs %s)", SPEC_ARG(ps->spec), lo,
		                 item - ps->spec, have);
	return rva__fail(RVA_ENOTFOUND, SPEC_FMT ": none of PUs %u-%u (item at offset %td) "
	                 "exists (the topology has PUs %s)", SPEC_ARG(ps->spec), lo, hi,
	                 item - ps->spec, have);
}

/* Adds the PUs of objects of kind k with logical index in [lo, hi]. */
static rva_status add_objs(parser *ps, const char *item, const kind *k, unsigned lo,
                           unsigned hi, bool all) {
	int n = hwloc_get_nbobjs_by_type(ps->topo, k->type);
	if (n <= 0)
		return rva__fail(RVA_ENOTFOUND, SPEC_FMT ": the topology has no %s (item at offset "
		                 "%td)", SPEC_ARG(ps->spec), k->whats, item - ps->spec);
	if (!all && lo >= (unsigned)n) {
		if (lo == hi)
			return rva__fail(RVA_ENOTFOUND, SPEC_FMT ": %s %u (item at offset %td) does "
			                 "not exist (the topology has %d %s, 0-%d)", SPEC_ARG(ps->spec),
			                 k->what, lo, item - ps->spec, n, k->whats, n - 1);
		return rva__fail(RVA_ENOTFOUND, SPEC_FMT ": none of %s %u-%u (item at offset %td) "
		                 "exists (the topology has %d %s, 0-%d)", SPEC_ARG(ps->spec),
		                 k->whats, lo, hi, item - ps->spec, n, k->whats, n - 1);
	}
	unsigned end = hi < (unsigned)n - 1 ? hi : (unsigned)n - 1;
	if (!all && hi > end)
		note_add(ps, "%s %u-%u (item '%.*s') do not exist, the topology has %d %s (0-%d)",
		         k->whats, end + 1, hi, (int)(ps->p - item), item, n, n == 1 ? k->what : k->whats,
		         n - 1);
	for (unsigned i = all ? 0 : lo; i <= end; i++) {
		hwloc_obj_t o = hwloc_get_obj_by_type(ps->topo, k->type, i);
		if (o && o->cpuset && hwloc_bitmap_or(ps->out, ps->out, o->cpuset) < 0)
			return rva__fail(RVA_ENOMEM, "cpu set: hwloc cannot grow a bitmap");
	}
	return RVA_OK;
}

/* One item: [TYPE ':'] range. *k is the type in force (NULL = PU OS indexes); a prefix
 * replaces it. */
static rva_status item(parser *ps, const kind **k) {
	const char *start = ps->p;
	bool all = false;
	if (isalpha((unsigned char)*ps->p)) {
		const char *w = ps->p;
		while (is_word_char(*ps->p))
			ps->p++;
		size_t wn = (size_t)(ps->p - w);
		if (*ps->p == ':') {
			const kind *found = NULL;
			for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
				if (word_eq(w, wn, kinds[i].name))
					found = &kinds[i];
			if (!found)
				return rva__fail(RVA_EINVAL, SPEC_FMT ": unknown object type '%.*s' at offset "
				                 "%td (known: pu, core, numa, package)", SPEC_ARG(ps->spec),
				                 (int)(wn > 32 ? 32 : wn), w, w - ps->spec);
			*k = found;
			ps->p++;
			if (isalpha((unsigned char)*ps->p)) {
				const char *a = ps->p;
				while (is_word_char(*ps->p))
					ps->p++;
				if (!word_eq(a, (size_t)(ps->p - a), "all"))
					return syntax(ps, a, "expected an index range or 'all'");
				all = true;
			}
		} else if (word_eq(w, wn, "all")) {
			all = true;
		} else {
			return syntax(ps, w, "expected a PU number or TYPE:RANGE");
		}
	}
	unsigned lo = 0, hi = UINT32_MAX;
	if (!all) {
		rva_status st = number(ps, &lo);
		if (st != RVA_OK)
			return st;
		hi = lo;
		if (*ps->p == '-') {
			ps->p++;
			if ((st = number(ps, &hi)) != RVA_OK)
				return st;
			if (hi < lo)
				return rva__fail(RVA_EINVAL, SPEC_FMT ": range %u-%u at offset %td is "
				                 "reversed", SPEC_ARG(ps->spec), lo, hi, start - ps->spec);
		}
	}
	if (!*k)
		return add_pus(ps, start, lo, hi, all);
	return add_objs(ps, start, *k, lo, hi, all);
}

rva_status rva__cpuset_parse(hwloc_topology_t topo, const char *spec, hwloc_bitmap_t out) {
	return rva__cpuset_parse_ex(topo, spec, out, NULL, 0);
}

rva_status rva__cpuset_parse_ex(hwloc_topology_t topo, const char *spec, hwloc_bitmap_t out,
                                char *note, size_t note_cap) {
	if (note && note_cap)
		note[0] = '\0';
	if (!topo || !spec || !out)
		return rva__fail(RVA_ENULL, "cpu set parser: %s is NULL",
		                 !topo ? "topology" : !spec ? "spec" : "output bitmap");
	hwloc_bitmap_zero(out);
	parser ps = {.spec = spec, .p = spec, .topo = topo, .out = out, .note = note,
	             .note_cap = note_cap};
	while (isspace((unsigned char)*ps.p))
		ps.p++;
	if (!*ps.p)
		return rva__fail(RVA_EINVAL, SPEC_FMT ": no items (use NULL or \"\" for all cores)",
		                 SPEC_ARG(spec));
	const kind *k = NULL;
	for (;;) {
		rva_status st = item(&ps, &k);
		if (st != RVA_OK)
			return st;
		if (*ps.p == ',') {
			ps.p++;
			if (!*ps.p || isspace((unsigned char)*ps.p) || *ps.p == ',')
				return syntax(&ps, ps.p, "expected an item after ','");
			continue;
		}
		if (isspace((unsigned char)*ps.p)) {
			while (isspace((unsigned char)*ps.p))
				ps.p++;
			k = NULL;
			if (!*ps.p)
				return RVA_OK;
			continue;
		}
		if (!*ps.p)
			return RVA_OK;
		return syntax(&ps, ps.p, "unexpected character");
	}
}
