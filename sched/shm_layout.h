/* sched/shm_layout.h — the shared-memory segment a running greenhub process
 * publishes its hubs in (what tools/schedtop reads).
 *
 * Name and access.  shm_open("/greenhub.<pid>"), i.e. /dev/shm/greenhub.<pid>,
 * created O_EXCL with mode 0600 (owner only) when the runtime starts and
 * unlinked when it stops.  A segment whose pid no longer runs is stale (the
 * process died without stopping): the next runtime that gets the same pid,
 * and schedtop, remove it.
 *
 * Who writes.  Only the runtime's monitor thread (sched/monitor.c) writes the
 * segment.  Every `period_ns` it samples the hubs' counters (which the hubs
 * write with relaxed atomic stores into their own memory, never into the
 * segment) and copies them here between two increments of `seq`.  So a
 * reader can never stall a hub, and a hub never waits for the monitor.
 *
 * How to read (seqcount).  Copy the segment, and accept the copy only if
 * `seq` was even before the copy and unchanged after it (gh_shm_read below
 * does exactly that); otherwise the monitor was writing: retry.  A torn
 * snapshot is thus detected, never shown.  Fields are plain fixed-width
 * integers so a reader in another process (or another language) can copy
 * them; all are little-endian host order, this is not a network format.
 *
 * Start-up.  The segment is created with `seq` 1 and filled while odd, so
 * even the fields that never change (magic, sizes, config) are valid only
 * once a reader has seen `seq` even and non-zero: gh_shm_read's rule.
 *
 * Versioning.  `magic` and `version` first.  Fields are only ever appended
 * to the header or to a hub's record, and appending keeps the version: a
 * reader takes `header_size` and `hub_size` from the segment (the hub
 * array starts at `header_size`, records are `hub_size` apart) and accepts
 * sizes at least as large as the ones it knows.  An incompatible change
 * bumps `version`, and a reader must refuse a version it does not know. */
#ifndef GH_SHM_LAYOUT_H
#define GH_SHM_LAYOUT_H

#include <stdint.h>
#include <string.h>

#define GH_SHM_PREFIX "/greenhub."       /* + decimal pid */
#define GH_SHM_DIR "/dev/shm"            /* where Linux shows the segments */
#define GH_SHM_FILE_PREFIX "greenhub."   /* file name in GH_SHM_DIR */
#define GH_SHM_MAGIC 0x3142554853454547ULL  /* "GEESHUB1" read as bytes */
#define GH_SHM_VERSION 2u   /* 2: gh_shm_hub.stack_resident inserted */
#define GH_SHM_NAME_LEN 32               /* greenlet names, NUL-terminated */
#define GH_SHM_BLOCKED_MAX 8             /* blocking reports kept (a ring) */

/* What a hub is doing, as the monitor saw it at the last sample. */
enum gh_shm_hub_state {
    GH_SHM_HUB_RUNNING = 1,   /* a greenlet runs on it */
    GH_SHM_HUB_SEARCHING = 2, /* in its scheduler: looking for work, polling
                               * I/O, running timers */
    GH_SHM_HUB_SLEEPING = 3,  /* asleep in epoll: nothing to run */
    GH_SHM_HUB_BLOCKED = 4,   /* one greenlet has run longer than the block
                               * threshold without switching */
    GH_SHM_HUB_STOPPED = 5,   /* its thread has left the hub loop */
};

/* One hub.  Counters are totals since the runtime started (a reader turns
 * them into rates from two snapshots and their `updated_ns`); "now" fields
 * are gauges at the sample. */
struct gh_shm_hub {
    int32_t core;             /* OS cpu it is pinned to, -1 when not pinned */
    uint32_t state;           /* enum gh_shm_hub_state */
    uint64_t switches;        /* greenlet switches made on this hub */
    uint64_t steals;          /* greenlets it took from other hubs */
    uint64_t stolen;          /* greenlets other hubs took from it */
    uint64_t parks;           /* times a greenlet parked on it */
    uint64_t io_waits;        /* fd waits that parked on it */
    uint64_t sleeps;          /* times it slept in epoll */
    uint64_t wakeups;         /* times another thread woke it */
    uint64_t runnable;        /* now: greenlets queued on it */
    uint64_t greenlets;       /* now: alive greenlets that last ran on it */
    uint64_t timers;          /* now: timer entries queued on it */
    uint64_t stack_mapped;    /* now: bytes of stack address space held by
                               * its greenlets and its stack cache */
    uint64_t stack_cached;    /* now: of which in its cache of free stacks */
    uint64_t stack_resident;  /* now: bytes of default-size stacks resident
                               * that count as this hub's: those of the
                               * greenlets that last ran on it (or that it
                               * spawned and that have not run yet) and those
                               * in its cache; mincore, refreshed at most
                               * every second, in the same pass as the
                               * header's stack_resident.  Stacks of their
                               * own size are not counted */
    uint64_t current_id;      /* now: greenlet running on it, 0 if none */
    uint64_t current_ns;      /* now: how long that greenlet has run
                               * without switching (resolution: the
                               * monitor's period), 0 if none */
    char current_name[GH_SHM_NAME_LEN];
};

/* One report of the blocking detector: a greenlet that ran on its hub for
 * longer than block_ms without switching. */
struct gh_shm_blocked {
    uint64_t seqno;           /* 1, 2, ...: which report this is (0: empty) */
    uint64_t greenlet_id;
    uint64_t duration_ns;     /* how long it ran without switching; grows
                               * while `ongoing` */
    uint64_t since_unix_ns;   /* wall clock when it started running */
    uint32_t hub;
    uint32_t ongoing;         /* 1 while it still holds the hub */
    char name[GH_SHM_NAME_LEN];
};

struct gh_shm_header {
    uint64_t magic;           /* GH_SHM_MAGIC */
    uint32_t version;         /* GH_SHM_VERSION */
    uint32_t header_size;     /* sizeof(struct gh_shm_header): hubs start here */
    uint32_t hub_size;        /* sizeof(struct gh_shm_hub): stride of hubs[] */
    uint32_t nhubs;
    uint64_t total_size;      /* bytes mapped: header + nhubs * hub_size */
    uint32_t seq;             /* seqcount: odd while the monitor writes */
    int32_t pid;
    uint64_t start_unix_ns;   /* wall clock when the runtime started */
    uint64_t updated_ns;      /* CLOCK_MONOTONIC of the last sample */
    uint64_t period_ns;       /* how often the monitor samples */
    uint32_t running;         /* 1 while the runtime runs, 0 once it stops */
    uint32_t pin;             /* config: hubs pinned to cores (GREENHUB_PIN) */
    uint64_t stack_size;      /* config: default stack size, bytes */
    uint64_t block_ns;        /* config: block threshold (GREENHUB_BLOCK_MS),
                               * 0 when the detector is off */
    char guard_mode[16];      /* config: stack guard mode (gh_stack_guard_mode) */
    /* Greenlet census, process-wide. */
    uint64_t spawned;         /* greenlets spawned since start */
    uint64_t alive;           /* now: spawned and not yet ended */
    uint64_t running_now;     /* now: running on a hub */
    uint64_t runnable;        /* now: queued (hub queues and the inject queue) */
    uint64_t waiting;         /* now: parked (alive - running - runnable) */
    /* Memory, process-wide. */
    uint64_t stack_mapped;    /* now: bytes of stack address space mapped */
    uint64_t rss;             /* now: the process's resident bytes */
    /* Blocking detector. */
    uint64_t blocked_total;   /* reports so far */
    struct gh_shm_blocked blocked[GH_SHM_BLOCKED_MAX]; /* report n is at
                               * [(n - 1) % GH_SHM_BLOCKED_MAX] */
    char runtime_name[32];    /* config: gh_config.name, "" if none */
    uint64_t stack_resident;  /* now: bytes of default-size stacks resident
                               * (mincore, refreshed at most every second);
                               * stacks of their own size are not counted.
                               * = the hubs' stack_resident summed +
                               * stack_resident_unowned (one pass) */
    uint64_t stack_resident_unowned; /* now: of which on no hub: on the
                               * global free list (trimmed: canary red zones
                               * at most), or spawned by a plain thread and
                               * not run yet */
};

#define GH_SHM_HUB(hdr, i)                                                     \
    ((struct gh_shm_hub *)((char *)(hdr) + (hdr)->header_size + (size_t)(i) * (hdr)->hub_size))

/* Reader side: copies the `size` bytes at `seg` (a mapping of the segment)
 * into `out` and returns 0 if the copy is one consistent sample, -1 if the
 * monitor was writing meanwhile (try again a moment later). */
static inline int gh_shm_read(const void *seg, void *out, size_t size)
{
    const struct gh_shm_header *h = (const struct gh_shm_header *)seg;
    uint32_t s1 = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
    if (s1 & 1)
        return -1;
    memcpy(out, seg, size);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint32_t s2 = __atomic_load_n(&h->seq, __ATOMIC_RELAXED);
    return s1 == s2 ? 0 : -1;
}

#endif
