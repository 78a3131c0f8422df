/*
 * rvattn — which symbols the shared libraries export.
 *
 * The libraries are compiled with -fvisibility=hidden: a function is exported only when
 * its declaration is marked. Every public header brackets its declarations with
 *
 *     RVA_BEGIN_DECLS
 *     ... declarations ...
 *     RVA_END_DECLS
 *
 * which opens extern "C" for C++ and makes everything declared between them visible
 * (#pragma GCC visibility push(default) / pop), so a new public function needs no
 * annotation of its own. RVA_API marks a single declaration that lives outside such a
 * block. Internal functions (the rva__ prefix) are declared in src/ headers, outside any
 * block, and stay hidden; tests/abi_exports.sh fails the build's tests when anything
 * else is exported.
 */
#ifndef RVATTN_EXPORT_H
#define RVATTN_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define RVA_API __attribute__((visibility("default")))
#define RVA__VISIBILITY_PUSH _Pragma("GCC visibility push(default)")
#define RVA__VISIBILITY_POP _Pragma("GCC visibility pop")
#else
#define RVA_API
#define RVA__VISIBILITY_PUSH
#define RVA__VISIBILITY_POP
#endif

#ifdef __cplusplus
#define RVA_BEGIN_DECLS extern "C" { RVA__VISIBILITY_PUSH
#define RVA_END_DECLS RVA__VISIBILITY_POP }
#else
#define RVA_BEGIN_DECLS RVA__VISIBILITY_PUSH
#define RVA_END_DECLS RVA__VISIBILITY_POP
#endif

#endif
