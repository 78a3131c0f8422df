/* rva_version: the library's version (include/rvattn/version.h, configured by CMake). */
#include "rvattn/version.h"

rva_status rva_version(unsigned *major, unsigned *minor, unsigned *patch) {
	if (major)
		*major = RVA_VERSION_MAJOR;
	if (minor)
		*minor = RVA_VERSION_MINOR;
	if (patch)
		*patch = RVA_VERSION_PATCH;
	return RVA_OK;
}
