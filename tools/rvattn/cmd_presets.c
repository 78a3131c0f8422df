/* `rvattn presets`: every preset, its description and the config it resolves to. */
#define _GNU_SOURCE 1
#include <getopt.h>
#include <math.h>
#include <string.h>

#include "cli.h"

static void print_presets_help(void) {
	printf("Usage: rvattn presets [--dim D] [--json]\n"
	       "\n"
	       "Lists every preset with its description and the configuration it resolves to\n"
	       "at dimension D (default 768), as built by the library (defaults resolved).\n"
	       "\n"
	       "  --dim D     model dimension (default 768)\n"
	       "  --json      one JSON object on stdout\n"
	       "  --help      this text\n");
}

/* The resolved config: built when possible (so defaults such as the scale are resolved). */
static rva_status resolve(rva_preset p, size_t dim, rva_config *c) {
	*c = rva_preset_config(p, dim);
	rva_attention *att = NULL;
	rva_status st = rva_build(c, &att);
	if (st == RVA_OK) {
		rva_config r;
		if (rva_attention_config(att, &r) == RVA_OK) {
			*c = r;
			c->global_indices = NULL; /* att's copy dies with it; keep the count */
			c->router_weights = NULL;
			c->bias_table = NULL;
			c->feature_matrix = NULL;
		}
		rva_attention_destroy(att);
	}
	return st;
}

static const char *feature_map_name(rva_feature_map f) {
	return f == RVA_FEATURES_FAVOR ? "favor+" : f == RVA_FEATURES_RELU ? "relu"
	       : f == RVA_FEATURES_ELU ? "elu" : "unknown";
}

static const char *experts_name(rva_expert_kind k) {
	return k == RVA_EXPERTS_MIXED ? "mixed" : k == RVA_EXPERTS_STANDARD ? "standard"
	       : k == RVA_EXPERTS_HYPERBOLIC ? "hyperbolic" : k == RVA_EXPERTS_LINEAR ? "linear"
	       : "unknown";
}

static void print_fields(const rva_config *c) {
	size_t kvh = c->kv_heads ? c->kv_heads : c->heads;
	printf("      mechanism %s, dim %zu, heads %zu", rva_mechanism_name(c->mechanism), c->dim,
	       c->heads);
	if (kvh != c->heads)
		printf(", kv_heads %zu", kvh);
	if (c->heads && c->dim % c->heads == 0)
		printf(", head_dim %zu", c->dim / c->heads);
	printf(", %s, dropout %g, scale %s", c->causal ? "causal" : "bidirectional",
	       (double)c->dropout, c->scale == 0.0f ? "1/sqrt(head_dim)" : "");
	if (c->scale != 0.0f)
		printf("%g", (double)c->scale);
	printf("\n      ");
	switch (c->mechanism) {
	case RVA_MECH_SCALED_DOT:
	case RVA_MECH_MULTI_HEAD:
	case RVA_MECH_FLASH: printf("block %zu", c->block_size); break;
	case RVA_MECH_LINEAR:
		printf("features %zu, map %s%s", c->features, feature_map_name(c->feature_map),
		       c->orthogonal ? ", orthogonal" : "");
		break;
	case RVA_MECH_LOCAL_GLOBAL:
		printf("window %zu, global tokens %zu", c->window,
		       c->n_global_indices ? c->n_global_indices : c->global_tokens);
		break;
	case RVA_MECH_HYPERBOLIC:
		printf("curvature %g, temperature %g, aggregation %s", (double)c->curvature,
		       (double)c->temperature,
		       c->aggregation == RVA_AGG_FRECHET ? "frechet" : "gyromidpoint");
		break;
	case RVA_MECH_MOE:
		printf("experts %zu (%s), top_k %zu, capacity %g, jitter %g", c->experts,
		       experts_name(c->expert_kind), c->top_k, (double)c->expert_capacity,
		       (double)c->jitter_noise);
		break;
	default: break;
	}
	if (c->bias == RVA_BIAS_T5)
		printf(", T5 bias (%zu buckets, max distance %zu)", c->bias_buckets,
		       c->bias_max_distance);
	if (c->pattern == RVA_PATTERN_STRIDED)
		printf(", strided sparse pattern (stride %zu)", c->sparse_stride);
	printf("\n");
}

static void json_fields(json *j, const rva_config *c) {
	json_kv_string(j, "mechanism", rva_mechanism_name(c->mechanism));
	json_kv_uint(j, "dim", c->dim);
	json_kv_uint(j, "heads", c->heads);
	json_kv_uint(j, "kv_heads", c->kv_heads ? c->kv_heads : c->heads);
	json_kv_bool(j, "causal", c->causal);
	json_kv_float(j, "dropout", c->dropout);
	json_kv_float(j, "scale", c->scale);
	json_kv_uint(j, "block_size", c->block_size);
	json_kv_uint(j, "window", c->window);
	json_kv_uint(j, "global_tokens", c->n_global_indices ? c->n_global_indices : c->global_tokens);
	json_kv_uint(j, "features", c->features);
	json_kv_string(j, "feature_map", feature_map_name(c->feature_map));
	json_kv_float(j, "curvature", c->curvature);
	json_kv_uint(j, "experts", c->experts);
	json_kv_uint(j, "top_k", c->top_k);
	json_kv_float(j, "capacity", c->expert_capacity);
	json_kv_string(j, "expert_kind", experts_name(c->expert_kind));
	json_kv_string(j, "bias", c->bias == RVA_BIAS_T5 ? "t5" : "none");
	json_kv_string(j, "pattern", c->pattern == RVA_PATTERN_STRIDED ? "strided"
	                             : c->pattern == RVA_PATTERN_FIXED ? "fixed" : "dense");
	json_kv_uint(j, "sparse_stride", c->sparse_stride);
}

int cmd_presets(int argc, char **argv) {
	static const struct option opts[] = {
		{"dim", 1, 0, OPT_DIM}, {"json", 0, 0, OPT_JSON}, {"help", 0, 0, 'h'}, {0, 0, 0, 0},
	};
	size_t dim = 768;
	bool as_json = false;
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_DIM:
			if (!parse_size("presets", "dim", optarg, false, &dim))
				return EXIT_USAGE;
			break;
		case OPT_JSON: as_json = true; break;
		case 'h': print_presets_help(); return EXIT_OK;
		default: return cli_bad_option("presets", c, argv);
		}
	}
	if (optind < argc)
		return cli_usage("presets", "unexpected argument '%s'", argv[optind]);

	json j;
	if (as_json) {
		json_init(&j, stdout, true);
		json_object_begin(&j);
		json_kv_uint(&j, "dim", dim);
		json_key(&j, "presets");
		json_array_begin(&j);
	} else {
		printf("presets at dim %zu (rvattn run --preset NAME):\n", dim);
	}
	for (int p = 0; p < RVA_PRESET_COUNT; p++) {
		rva_config cfg;
		rva_status st = resolve((rva_preset)p, dim, &cfg);
		if (as_json) {
			json_object_begin(&j);
			json_kv_string(&j, "name", rva_preset_name((rva_preset)p));
			json_kv_string(&j, "description", rva_preset_description((rva_preset)p));
			json_kv_bool(&j, "builds", st == RVA_OK);
			if (st != RVA_OK)
				json_kv_string(&j, "error", rva_last_error());
			json_key(&j, "config");
			json_object_begin(&j);
			json_fields(&j, &cfg);
			json_object_end(&j);
			json_object_end(&j);
		} else {
			printf("  %-20s %s\n", rva_preset_name((rva_preset)p),
			       rva_preset_description((rva_preset)p));
			print_fields(&cfg);
			if (st != RVA_OK)
				printf("      does not build at dim %zu: %s\n", dim,
				       *rva_last_error() ? rva_last_error() : rva_strerror(st));
		}
	}
	if (as_json) {
		json_array_end(&j);
		json_object_end(&j);
		json_finish(&j);
	}
	return fflush(stdout) == 0 ? EXIT_OK : cli_error(EXIT_RUNTIME, "cannot write to stdout");
}
