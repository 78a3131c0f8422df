/* CPU feature detection with cpuid/xgetbv (x86-64); other targets report nothing. */
#include <pthread.h>
#include <string.h>

#include "core/internal.h"
#include "rvattn/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xgetbv0(void) {
	unsigned eax, edx;
	__asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
	return ((unsigned long long)edx << 32) | eax;
}

/* cpuid traps to the hypervisor on VMs: detect once, then copy. */
static rva_cpu_features detected;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static void detect(void);

rva_status rva_cpu_detect(rva_cpu_features *f) {
	if (!f)
		return rva__fail(RVA_ENULL, "rva_cpu_detect: out is NULL");
	pthread_once(&detect_once, detect);
	*f = detected;
	return RVA_OK;
}

static void detect(void) {
	rva_cpu_features *f = &detected;
	memset(f, 0, sizeof *f);
	unsigned a = 0, b = 0, c = 0, d = 0, max_leaf = 0;
	if (!__get_cpuid(0, &max_leaf, &b, &c, &d))
		return;
	memcpy(f->vendor + 0, &b, 4);
	memcpy(f->vendor + 4, &d, 4);
	memcpy(f->vendor + 8, &c, 4);
	f->vendor[12] = '\0';
	__get_cpuid(1, &a, &b, &c, &d);
	unsigned fam = (a >> 8) & 0xf, model = (a >> 4) & 0xf;
	if (fam == 0xf)
		fam += (a >> 20) & 0xff;
	if (fam == 0x6 || fam >= 0xf)
		model |= ((a >> 16) & 0xf) << 4;
	f->family = fam;
	f->model = model;
	f->fma = (c >> 12) & 1;
	bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
	if (osxsave) {
		unsigned long long xcr0 = xgetbv0();
		f->os_avx = avx && (xcr0 & 0x6) == 0x6;
		f->os_avx512 = f->os_avx && (xcr0 & 0xe0) == 0xe0;
	}
	if (max_leaf >= 7) {
		__cpuid_count(7, 0, a, b, c, d);
		f->avx2 = (b >> 5) & 1;
		f->avx512f = (b >> 16) & 1;
		f->avx512dq = (b >> 17) & 1;
		f->avx512bw = (b >> 30) & 1;
		f->avx512vl = (b >> 31) & 1;
	}
	/* Instructions the OS does not enable are as good as absent. */
	if (!f->os_avx)
		f->avx2 = f->fma = false;
	if (!f->os_avx512)
		f->avx512f = f->avx512dq = f->avx512bw = f->avx512vl = false;
}
#else
rva_status rva_cpu_detect(rva_cpu_features *f) {
	if (!f)
		return rva__fail(RVA_ENULL, "rva_cpu_detect: out is NULL");
	memset(f, 0, sizeof *f);
	strcpy(f->vendor, "unknown");
	return RVA_OK;
}
#endif
