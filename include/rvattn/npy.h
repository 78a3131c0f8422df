/*
 * rvattn — reading and writing NumPy .npy files (float32 arrays).
 *
 * Format: the NPY format of NumPy (numpy/lib/format.py): the magic "\x93NUMPY", a
 * version byte pair (1.0, 2.0 or 3.0), a little-endian header length (2 bytes in 1.0,
 * 4 bytes in 2.0/3.0), a Python dict literal {'descr': ..., 'fortran_order': ...,
 * 'shape': (...)} padded with spaces and ended by '\n' (ASCII in 1.0/2.0, UTF-8 in 3.0),
 * then the raw array data in C order.
 *
 * Reading always yields float32 in C order. Accepted element types ('descr'):
 *   '<f4'               float32, copied as is;
 *   '<f8', '<f2'        float64 and float16, converted to float32 (rva_npy_array.converted
 *                       is set, and .overflowed counts finite float64 values beyond the
 *                       float32 range that became +-inf);
 *   '>f4', '>f8', '>f2' the same in big-endian byte order, byte-swapped and converted.
 * Reading keeping a half-precision element type (rva_npy_load_as, rva_npy_parse_as): the
 * same files, converted to the requested rva_dtype (round to nearest even, as
 * src/kernels/half.h states; a float16 file read as RVA_F16 is kept bit for bit), and in
 * addition '<u2'/'>u2' (uint16) read as RVA_BF16 only, each element taken as the bits of
 * a bfloat16 (NumPy has no bfloat16: rvattn writes bf16 arrays as '<u2'). The float32
 * entry points refuse uint16 with RVA_EFORMAT.
 * Everything else is refused with RVA_EFORMAT and a message naming what was found:
 * other dtypes (integers, complex, structured, object arrays), fortran_order True, an
 * unknown format version, a malformed header dict (missing, extra or duplicate keys,
 * bad literal syntax), a header length beyond the file, truncated data or bytes after
 * the data (several arrays in one file). Shapes whose element count or byte size
 * overflows size_t are refused with RVA_EOVERFLOW.
 *
 * The parser is defensive (it is fuzzed): it never reads outside the buffer it is given,
 * never allocates more than the data the buffer actually holds, and never aborts.
 *
 * Writing produces version 1.0 (2.0 when the header does not fit 1.0's 16-bit length),
 * '<f4' ('<f2' for float16 and '<u2' for bfloat16 bits with rva_npy_save_as), fortran_order False, the header padded so the data starts on a 64-byte
 * boundary. Where it goes, as cp and numpy.save behave: a regular file (new, existing,
 * or the target of a symlink chain, whose links stay) is written to a temporary file
 * ".rvattn-XXXXXX" in the target's directory, flushed to disk (fsync), given the mode
 * of the file it replaces (and its owner where the process may set it; new files get
 * 0666 & ~umask) and renamed over it, so readers never see a partial file; on any
 * failure the temporary file is removed and the destination is untouched. A path that
 * is not a regular file (character device, FIFO) is opened and written in place, and a
 * path naming an open descriptor of the process (/dev/stdout, /dev/fd/N,
 * /proc/self/fd/N) is written through that descriptor; nothing is then created, renamed
 * or removed.
 */
#ifndef RVATTN_NPY_H
#define RVATTN_NPY_H

#include <stdbool.h>
#include <stddef.h>

#include "batch.h"
#include "status.h"

RVA_BEGIN_DECLS

/* Most dimensions an array may have (NumPy 1.x's NPY_MAXDIMS). */
#define RVA_NPY_MAX_DIMS 32

/* Element type stored in a file. */
typedef enum rva_npy_dtype {
	RVA_NPY_F32 = 0, /* 'f4' */
	RVA_NPY_F64,     /* 'f8', converted to float32 on reading */
	RVA_NPY_F16,     /* 'f2', converted to float32 on reading */
	RVA_NPY_U16,     /* 'u2', read only as bfloat16 bits (rva_npy_load_as, RVA_BF16) */
	RVA_NPY_DTYPE_COUNT
} rva_npy_dtype;

/* What a file's header says. */
typedef struct rva_npy_header {
	unsigned version_major;         /* 1, 2 or 3 */
	unsigned version_minor;         /* 0 */
	char descr[8];                  /* the dtype as written: "<f4", ">f8", "<f2", ... */
	rva_npy_dtype dtype;
	bool big_endian;                /* descr starts with '>' */
	size_t ndim;                    /* 0 for a scalar */
	size_t shape[RVA_NPY_MAX_DIMS]; /* C order; entries past ndim are 0 */
	size_t count;                   /* product of the shape (1 for a scalar) */
	size_t data_offset;             /* bytes before the data: magic, lengths, dict */
	size_t data_bytes;              /* count * element size in the file */
} rva_npy_header;

/* An array read from a file: float32, C order. */
typedef struct rva_npy_array {
	float *data;                    /* count floats, owned: free with rva_npy_free() */
	size_t ndim;
	size_t shape[RVA_NPY_MAX_DIMS];
	size_t count;
	rva_npy_header file;            /* what the file held */
	bool converted;                 /* the file's dtype was not little-endian float32 */
	size_t overflowed;              /* finite float64 values that became +-inf */
} rva_npy_array;

/* An array read keeping an element type (rva_npy_load_as): C order. */
typedef struct rva_npy_typed {
	void *data;                     /* count elements of dtype (4 or 2 bytes each), owned:
	                                   free with rva_npy_typed_free() */
	rva_dtype dtype;                /* the type asked for */
	size_t ndim;
	size_t shape[RVA_NPY_MAX_DIMS];
	size_t count;
	rva_npy_header file;            /* what the file held */
	bool converted;                 /* the elements are not the file's bytes as stored */
	size_t overflowed;              /* finite float64 values that became +-inf in float32 */
} rva_npy_typed;

/* Static name of a dtype ("float32", "float64", "float16", "uint16"); "unknown" when out
 * of range. */
const char *rva_npy_dtype_name(rva_npy_dtype t);

/*
 * Parses the header of an .npy file held in buf[0, len). buf must hold at least the
 * whole header (data_offset bytes); the data need not be present. Nothing is allocated.
 * Errors: RVA_ENULL (buf NULL with len > 0, or out NULL); RVA_EFORMAT (not an .npy file,
 * unsupported version or dtype, fortran order, malformed dict, header cut short);
 * RVA_EOVERFLOW (element count or byte size overflows size_t).
 */
rva_status rva_npy_parse_header(const void *buf, size_t len, rva_npy_header *out);

/*
 * Parses a whole .npy file held in memory (buf[0, len)) into *out, converting to
 * float32. On success out->data is allocated through the rva_allocator hook and must be
 * freed with rva_npy_free(). On failure *out is unchanged.
 * Errors: those of rva_npy_parse_header(); RVA_EFORMAT when len is not exactly
 * data_offset + data_bytes (truncated data, or trailing bytes); RVA_ENOMEM.
 */
rva_status rva_npy_parse(const void *buf, size_t len, rva_npy_array *out);

/*
 * Reads the .npy file at path into *out (as rva_npy_parse, without holding the file's
 * bytes and the converted array in memory at once). Free with rva_npy_free().
 * A regular file must hold exactly the header and the declared data (as rva_npy_parse).
 * Anything else (a pipe, FIFO, /dev/stdin, a character device) is read as a stream: the
 * magic and header first (at most 1 MiB of header, so /dev/zero or text fails after its
 * first 12 bytes), then exactly the data bytes the header declares, into memory that
 * grows with the data received; bytes after the data are left unread (a stream's end
 * cannot be checked without blocking on its writer). A stream that ends early is a
 * truncation error.
 * Errors: RVA_ENULL; RVA_EIO (cannot open or read, with the system's reason);
 * those of rva_npy_parse(); RVA_EFORMAT (a stream's header longer than 1 MiB, or a
 * stream ending inside its header or data).
 */
rva_status rva_npy_load(const char *path, rva_npy_array *out);

/*
 * Reads the .npy file at path (as rva_npy_load: regular files and streams) into *out
 * with elements of type dtype: float32/float64/float16 files are converted to dtype
 * (float16 files read as RVA_F16 keep their bits), uint16 files are accepted only with
 * RVA_BF16 and taken as bfloat16 bits. Free with rva_npy_typed_free(). The file is
 * converted through a float32 array, so up to 6 bytes per element are held at once.
 * On failure *out is unchanged.
 * Errors: those of rva_npy_load(); RVA_EINVAL (dtype not an rva_dtype); RVA_EFORMAT
 * (uint16 file with dtype other than RVA_BF16).
 */
rva_status rva_npy_load_as(const char *path, rva_dtype dtype, rva_npy_typed *out);

/* rva_npy_load_as for a whole file held in memory (buf[0, len)), as rva_npy_parse.
 * Errors: those of rva_npy_parse(); RVA_EINVAL; RVA_EFORMAT as rva_npy_load_as. */
rva_status rva_npy_parse_as(const void *buf, size_t len, rva_dtype dtype,
                            rva_npy_typed *out);

/* Frees the data of an array filled by rva_npy_load_as/rva_npy_parse_as and clears *a
 * (NULL or a zeroed array is fine). Always RVA_OK. */
rva_status rva_npy_typed_free(rva_npy_typed *a);

/* Frees the data of an array filled by rva_npy_parse/rva_npy_load and clears *a
 * (NULL, or an already freed or zeroed array, is fine). Always RVA_OK. */
rva_status rva_npy_free(rva_npy_array *a);

/*
 * Writes the header of a '<f4' C-order array of the given shape to buf (capacity cap)
 * and stores its length in *len; the data is to follow it directly. version: 0 picks
 * 1.0 when the header fits, else 2.0; 1, 2 or 3 force that version. The header is
 * padded with spaces so that *len is a multiple of 64. With buf NULL (and cap 0) only
 * *len is computed.
 * Errors: RVA_ENULL (len NULL, or shape NULL with ndim > 0); RVA_EINVAL (version not
 * 0-3, ndim > RVA_NPY_MAX_DIMS); RVA_EOVERFLOW (the shape's byte size overflows, or
 * version 1 asked for a header longer than 65535); RVA_ERANGE (cap too small).
 */
rva_status rva_npy_header_write(size_t ndim, const size_t *shape, unsigned version,
                                void *buf, size_t cap, size_t *len);

/*
 * Writes data (count = product of shape floats, C order) as a '<f4' .npy file at path,
 * by the rules at the top of this header: a regular file is replaced atomically (a
 * temporary file in its directory, fsync'd, the old mode kept, renamed over it; on any
 * failure removed and path untouched), devices, FIFOs and descriptors are written in
 * place, symlinks are followed. ndim may be 0 (scalar).
 * Errors: RVA_ENULL (path NULL, shape NULL with ndim > 0, data NULL with a nonzero
 * count); RVA_EINVAL (ndim > RVA_NPY_MAX_DIMS, an empty path); RVA_EOVERFLOW; RVA_EIO
 * (with the system's reason and the path); RVA_ENOMEM. Written with rva_outfile_open
 * (rvattn/outfile.h).
 */
rva_status rva_npy_save(const char *path, const float *data, size_t ndim,
                        const size_t *shape);

/*
 * Writes data (count = product of shape elements of type dtype, C order) as an .npy file
 * at path, by the rules of rva_npy_save: RVA_F32 as '<f4', RVA_F16 as '<f2', RVA_BF16 as
 * '<u2' (the bfloat16 bits; read back with rva_npy_load_as(RVA_BF16), or in NumPy with
 * (a.astype(np.uint32) << 16).view(np.float32)).
 * Errors: those of rva_npy_save(); RVA_EINVAL (dtype not an rva_dtype).
 */
rva_status rva_npy_save_as(const char *path, const void *data, rva_dtype dtype,
                           size_t ndim, const size_t *shape);

/* rva_npy_save with a chosen format version (as in rva_npy_header_write: 0 = auto). */
rva_status rva_npy_save_ex(const char *path, const float *data, size_t ndim,
                           const size_t *shape, unsigned version);

RVA_END_DECLS
#endif
