/*
 * `rvattn topo`: what hwloc sees (read directly with hwloc, for display), the pools and
 * worker -> core binding the engine uses for the given options (from the engine API),
 * whether binding is real, and the BLIS kernel set. HWLOC_XMLFILE and HWLOC_SYNTHETIC
 * replace the topology for both.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <getopt.h>
#include <hwloc.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void print_topo_help(void) {
	printf("Usage: rvattn topo [OPTIONS]\n"
	       "\n"
	       "Prints the topology hwloc sees (packages, NUMA domains, cores, PUs), the CPU\n"
	       "features and BLIS kernel set, and the pools and worker -> core binding the\n"
	       "engine uses with these options, and whether that binding is real.\n"
	       "\n"
	       "  --cpus SET          allowed cores: PU list '0-7,16' or TYPE:RANGE ('core:0-3',\n"
	       "                      'numa:1', 'package:0'); default all allowed\n"
	       "  --threads T         workers (default: one per allowed core)\n"
	       "  --per-pu            one worker per PU instead of per core\n"
	       "  --numa POLICY       local|spread|interleave\n"
	       "  --kernels SET       auto|skx|zen3|haswell|blis\n"
	       "  --json              one JSON object on stdout\n"
	       "  --help              this text\n"
	       "\n"
	       "HWLOC_XMLFILE=FILE or HWLOC_SYNTHETIC='numa:4 core:2 pu:1' replace the topology\n"
	       "(binding is then not real unless HWLOC_THISSYSTEM=1).\n");
}

typedef struct numa_desc {
	unsigned os_index;
	int package; /* -1: no package level */
	char cores[256], pus[256];
	unsigned long long memory;
} numa_desc;

typedef struct topo_desc {
	bool this_system;
	int packages, numa_nodes, cores, pus;
	numa_desc *numa;
	size_t n_numa;
} topo_desc;

static int cmp_uns(const void *a, const void *b) {
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return (x > y) - (x < y);
}

static void core_list(hwloc_topology_t t, hwloc_const_cpuset_t set, char *buf, size_t cap) {
	int n = hwloc_get_nbobjs_inside_cpuset_by_type(t, set, HWLOC_OBJ_CORE);
	buf[0] = '\0';
	if (n <= 0)
		return;
	unsigned *v = malloc((size_t)n * sizeof *v);
	if (!v)
		return;
	for (int i = 0; i < n; i++)
		v[i] = hwloc_get_obj_inside_cpuset_by_type(t, set, HWLOC_OBJ_CORE, (unsigned)i)->os_index;
	qsort(v, (size_t)n, sizeof *v, cmp_uns);
	size_t len = 0;
	for (int i = 0; i < n && len < cap;) {
		int j = i;
		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		len += (size_t)snprintf(buf + len, cap - len, j == i ? "%s%u" : "%s%u-%u",
		                        i ? "," : "", v[i], v[j]);
		i = j + 1;
	}
	free(v);
}

static int describe(topo_desc *d) {
	memset(d, 0, sizeof *d);
	hwloc_topology_t t;
	if (hwloc_topology_init(&t) != 0)
		return cli_error(EXIT_RUNTIME, "hwloc cannot initialise a topology");
	/* As the engine does: a bad HWLOC_SYNTHETIC / HWLOC_XMLFILE is an error, never a
	 * silent description of this machine (hwloc alone falls back without a word). */
	const char *xml = getenv("HWLOC_XMLFILE"), *syn = getenv("HWLOC_SYNTHETIC");
	int bad = 0;
	if (syn && *syn && xml && *xml)
		bad = cli_error(EXIT_RUNTIME, "HWLOC_SYNTHETIC and HWLOC_XMLFILE are both set; "
		                "unset one");
	else if (syn && *syn && hwloc_topology_set_synthetic(t, syn) != 0)
		bad = cli_error(EXIT_RUNTIME, "HWLOC_SYNTHETIC=\"%s\" is not a valid hwloc synthetic "
		                "description", syn);
	else if (xml && *xml && hwloc_topology_set_xml(t, xml) != 0)
		bad = cli_error(EXIT_RUNTIME, "HWLOC_XMLFILE=\"%s\" cannot be loaded: %s", xml,
		                strerror(errno));
	if (bad) {
		hwloc_topology_destroy(t);
		return bad;
	}
	if (hwloc_topology_load(t) != 0) {
		hwloc_topology_destroy(t);
		if (xml && *xml)
			return cli_error(EXIT_RUNTIME, "HWLOC_XMLFILE=\"%s\" cannot be loaded (not a valid "
			                 "hwloc XML file?)", xml);
		return cli_error(EXIT_RUNTIME, "hwloc cannot load the topology");
	}
	d->this_system = hwloc_topology_is_thissystem(t);
	d->packages = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE);
	d->numa_nodes = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
	d->cores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
	d->pus = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
	if (d->numa_nodes > 0) {
		d->numa = calloc((size_t)d->numa_nodes, sizeof *d->numa);
		if (!d->numa) {
			hwloc_topology_destroy(t);
			return cli_error(EXIT_RUNTIME, "out of memory");
		}
		for (int i = 0; i < d->numa_nodes; i++) {
			hwloc_obj_t n = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, (unsigned)i);
			numa_desc *x = &d->numa[d->n_numa++];
			x->os_index = n->os_index;
			hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(t, HWLOC_OBJ_PACKAGE, n);
			x->package = pkg ? (int)pkg->logical_index : -1;
			x->memory = n->attr ? (unsigned long long)n->attr->numanode.local_memory : 0;
			core_list(t, n->cpuset, x->cores, sizeof x->cores);
			hwloc_bitmap_list_snprintf(x->pus, sizeof x->pus, n->cpuset);
		}
	}
	hwloc_topology_destroy(t);
	return EXIT_OK;
}

static void features_str(char *buf, size_t cap) {
	rva_cpu_features f;
	if (rva_cpu_detect(&f) != RVA_OK) {
		snprintf(buf, cap, "unknown");
		return;
	}
	snprintf(buf, cap, "%s family %u model %u:%s%s%s%s%s%s%s%s", f.vendor, f.family, f.model,
	         f.avx2 ? " avx2" : "", f.fma ? " fma" : "", f.avx512f ? " avx512f" : "",
	         f.avx512dq ? " avx512dq" : "", f.avx512bw ? " avx512bw" : "",
	         f.avx512vl ? " avx512vl" : "",
	         f.os_avx ? " os-avx" : "", f.os_avx512 ? " os-avx512" : "");
}

int cmd_topo(int argc, char **argv) {
	static const struct option opts[] = {
		{"cpus", 1, 0, OPT_CPUS}, {"threads", 1, 0, OPT_THREADS}, {"per-pu", 0, 0, OPT_PER_PU},
		{"numa", 1, 0, OPT_NUMA}, {"kernels", 1, 0, OPT_KERNELS}, {"json", 0, 0, OPT_JSON},
		{"help", 0, 0, 'h'},      {0, 0, 0, 0},
	};
	workload_opts o;
	workload_opts_init(&o);
	unsigned threads = 0;
	bool as_json = false;
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		size_t v;
		switch (c) {
		case OPT_CPUS:
		case OPT_PER_PU:
		case OPT_NUMA:
		case OPT_KERNELS:
			if (workload_option("topo", &o, c, optarg) < 0)
				return EXIT_USAGE;
			break;
		case OPT_THREADS:
			if (!parse_size("topo", "threads", optarg, false, &v))
				return EXIT_USAGE;
			if (v > 65535)
				return cli_usage("topo", "--threads %zu is too many", v);
			threads = (unsigned)v;
			break;
		case OPT_JSON: as_json = true; break;
		case 'h': print_topo_help(); return EXIT_OK;
		default: return cli_bad_option("topo", c, argv);
		}
	}
	if (optind < argc)
		return cli_usage("topo", "unexpected argument '%s'", argv[optind]);

	topo_desc d;
	int rc = describe(&d);
	if (rc)
		return rc;
	char cpu[256], feat[256], kl[256];
	cpu_model(cpu, sizeof cpu);
	features_str(feat, sizeof feat);
	const char *xml = getenv("HWLOC_XMLFILE"), *syn = getenv("HWLOC_SYNTHETIC");

	rva_engine *e = NULL;
	rva_engine_config ec = workload_engine_config(&o, threads);
	rc = engine_make("topo", &ec, &e);
	rva_engine_info info;
	bool have_info = !rc && rva_engine_info_get(e, &info) == RVA_OK;

	if (as_json) {
		json j;
		json_init(&j, stdout, true);
		json_object_begin(&j);
		json_kv_string(&j, "command", "topo");
		json_key(&j, "machine");
		json_object_begin(&j);
		json_kv_string(&j, "cpu", cpu);
		json_kv_string(&j, "features", feat);
		json_object_end(&j);
		json_key(&j, "topology");
		json_object_begin(&j);
		json_kv_bool(&j, "this_system", d.this_system);
		json_kv_string(&j, "source", syn ? "synthetic" : xml ? "xml" : "hwloc discovery");
		json_kv_uint(&j, "packages", (uint64_t)d.packages);
		json_kv_uint(&j, "numa_nodes", (uint64_t)d.numa_nodes);
		json_kv_uint(&j, "cores", (uint64_t)d.cores);
		json_kv_uint(&j, "pus", (uint64_t)d.pus);
		json_key(&j, "numa");
		json_array_begin(&j);
		for (size_t i = 0; i < d.n_numa; i++) {
			json_object_begin(&j);
			json_kv_uint(&j, "os_index", d.numa[i].os_index);
			json_key(&j, "package");
			json_int(&j, d.numa[i].package);
			json_kv_string(&j, "cores", d.numa[i].cores);
			json_kv_string(&j, "pus", d.numa[i].pus);
			json_kv_uint(&j, "memory_bytes", d.numa[i].memory);
			json_object_end(&j);
		}
		json_array_end(&j);
		json_object_end(&j);
		if (have_info) {
			json_key(&j, "kernels");
			json_kernels(&j, info.kernels);
			json_key(&j, "placement");
			json_placement(&j, e);
		}
		json_object_end(&j);
		json_finish(&j);
	} else {
		printf("machine: %s\n", cpu);
		printf("cpu features: %s\n", feat);
		if (d.this_system)
			printf("topology: this system (hwloc)\n");
		else
			printf("topology: not this system (%s%s%s)\n", syn ? "HWLOC_SYNTHETIC=" : "",
			       syn ? syn : xml ? "HWLOC_XMLFILE=" : "a loaded description",
			       syn ? "" : xml ? xml : "");
		printf("  %d package%s, %d NUMA node%s, %d core%s, %d PU%s\n", d.packages,
		       d.packages == 1 ? "" : "s", d.numa_nodes, d.numa_nodes == 1 ? "" : "s",
		       d.cores, d.cores == 1 ? "" : "s", d.pus, d.pus == 1 ? "" : "s");
		for (size_t i = 0; i < d.n_numa; i++) {
			const numa_desc *x = &d.numa[i];
			if (x->package >= 0)
				printf("  package %d, ", x->package);
			else
				printf("  ");
			printf("NUMA node %u: cores %s (PUs %s)", x->os_index,
			       x->cores[0] ? x->cores : "none", x->pus[0] ? x->pus : "none");
			if (x->memory)
				printf(", %.1f GiB", (double)x->memory / (1024.0 * 1024 * 1024));
			printf("\n");
		}
		if (have_info) {
			kernels_line(info.kernels, kl, sizeof kl);
			printf("BLIS kernels: %s\n", kl);
			printf("engine: pools: %u, workers: %u, binding %s\n", info.pools, info.workers,
			       info.binding_real ? "real" : "not real");
			print_placement(stdout, e, true);
		}
	}
	free(d.numa);
	rva_engine_destroy(e);
	if (!rc && fflush(stdout) != 0)
		rc = cli_error(EXIT_RUNTIME, "cannot write to stdout");
	return rc;
}
