/* greenhub.h — the umbrella header: include this one.
 *
 * greenhub runs blocking-style C code as green threads ("greenlets"), M:N
 * over one hub per CPU core, with work stealing.  Start with gh_run() in
 * <greenhub/runtime.h>. */
#ifndef GREENHUB_H
#define GREENHUB_H

#include <greenhub/runtime.h>
#include <greenhub/event.h>
#include <greenhub/sync.h>
#include <greenhub/stats.h>
#include <greenhub/io.h>
#include <greenhub/interpose.h>

#endif
