/* Builds a multi-head attention with the installed library and checks one output; checks
 * that the installed headers and library agree on the version and that the library
 * exports no internal (rva__) symbol. */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>

#include <rvattn/rvattn.h>

int main(void) {
	unsigned major, minor, patch;
	if (rva_version(&major, &minor, &patch) != RVA_OK || major != RVA_VERSION_MAJOR ||
	    minor != RVA_VERSION_MINOR || patch != RVA_VERSION_PATCH) {
		fprintf(stderr, "version: headers %s, library %u.%u.%u\n", RVA_VERSION_STRING, major,
		        minor, patch);
		return 1;
	}
	if (dlsym(RTLD_DEFAULT, "rva__fail") || dlsym(RTLD_DEFAULT, "rva__alloc_array")) {
		fprintf(stderr, "the library exports its internals\n");
		return 1;
	}
	rva_config c = rva_multi_head(8, 2);
	rva_attention *att;
	if (rva_build(&c, &att) != RVA_OK) {
		fprintf(stderr, "build: %s\n", rva_last_error());
		return 1;
	}
	float q[8] = {1, 0, 0, 0, 0, 1, 0, 0}, v[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
	const float *keys[1] = {q}, *values[1] = {v};
	if (rva_compute(att, q, keys, values, 1, out) != RVA_OK) {
		fprintf(stderr, "compute: %s\n", rva_last_error());
		return 1;
	}
	for (int i = 0; i < 8; i++)
		if (fabsf(out[i] - v[i]) > 1e-6f) /* one key: the output is its value row */
			return 1;
	rva_attention_destroy(att);
	printf("consumer ok\n");
	return 0;
}
