/* greenhub/interpose.h — the interposition layer: unmodified blocking code
 * (yours, or a C library's: libpq, hiredis, libcurl) made cooperative at
 * the libc boundary, like gevent's monkey patching.
 *
 * Turning it on (opt-in; linking libgreenhub alone interposes nothing):
 *   - link greenhub::hooks (CMake) or -lgreenhub_hooks (pkg-config
 *     greenhub-hooks) into the program, or
 *   - run a program that uses greenhub with
 *     LD_PRELOAD=libgreenhub_preload.so, without relinking it.
 *
 * What it does.  read, write, recv, send, accept, connect, poll, select,
 * epoll_wait, sleep, getaddrinfo, gethostbyname and the rest of the list
 * in io/real.h, called on a greenlet, park the greenlet instead of
 * blocking the hub (the name lookups run on libuv's thread pool meanwhile),
 * on descriptors
 * the layer saw being made (socket, socketpair, accept, accept4, pipe,
 * pipe2, dup): those it makes non-blocking underneath while the caller
 * keeps its own view — a socket the caller left blocking still behaves as
 * blocking, fcntl(F_GETFL) says so, one the caller made non-blocking still
 * fails with EAGAIN.  SO_RCVTIMEO and SO_SNDTIMEO are honoured (EAGAIN
 * when they expire), deadline scopes (gh_timeout_begin) bound every call
 * (ETIMEDOUT) and gh_kill ends it (ECANCELED).  Anywhere else — a plain
 * thread, before gh_run, a hub's own scheduler, a descriptor made by
 * other means (open, eventfd, libuv's own) — every call is exactly the
 * libc call; so is every call a signal handler makes.  Descriptors closed
 * inside libc (fclose, pclose) are handled; a stream made with fdopen on a
 * blocking-view socket blocks its thread, as it would without the layer.
 * See io/README.md for what is decided and what is not covered. */
#ifndef GREENHUB_INTERPOSE_H
#define GREENHUB_INTERPOSE_H

#include <stdbool.h>

#ifndef GH_API
#define GH_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* True if the interposition layer is loaded in this process (the hooks
 * library is linked in, or preloaded). */
GH_API bool gh_interposed(void);

/* Fault injection, for tests: makes greenhub (its own I/O, and the
 * layer's calls into libc) call fn instead of the libc function `name`
 * ("read", "connect", "poll", ...: the names listed in io/real.h), with
 * libc's signature; fn NULL puts libc's back.  Any thread, at any time;
 * calls already inside the old function finish there.  Returns 0, ENOENT
 * for a name not in the list, EINVAL for NULL, or EAGAIN if another
 * thread is resolving the table at that instant (retry). */
GH_API int gh_syscall_override(const char *name, void *fn);

/* libc's own function `name` (whatever is overridden), or NULL for a name
 * not in the list: what an override calls to pass a call through. */
GH_API void *gh_syscall_real(const char *name);

#ifdef __cplusplus
}
#endif

#endif
