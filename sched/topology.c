/* sched/topology.c — where the hubs go: one per physical core (hwloc),
 * pinned to the first logical CPU of its core, and each hub's steal order
 * (hubs whose cores share a cache or NUMA node with it first). */
#include "internal.h"

#include <errno.h>
#include <hwloc.h>
#include <sched.h>
#include <stdlib.h>

/* Depth of the deepest object containing both CPUs: larger is nearer. */
static int common_depth(hwloc_topology_t topo, int a, int b)
{
    hwloc_obj_t pa = hwloc_get_pu_obj_by_os_index(topo, (unsigned)a);
    hwloc_obj_t pb = hwloc_get_pu_obj_by_os_index(topo, (unsigned)b);
    if (!pa || !pb)
        return 0;
    hwloc_obj_t c = hwloc_get_common_ancestor_obj(topo, pa, pb);
    return c ? c->depth : 0;
}

static int cores_of(hwloc_topology_t topo, int *cpus, unsigned max)
{
    int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    hwloc_obj_type_t t = HWLOC_OBJ_CORE;
    if (n <= 0) {
        t = HWLOC_OBJ_PU;
        n = hwloc_get_nbobjs_by_type(topo, t);
    }
    int k = 0;
    for (int i = 0; i < n && (unsigned)k < max; i++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(topo, t, (unsigned)i);
        int cpu = o ? hwloc_bitmap_first(o->cpuset) : -1;
        if (cpu >= 0)
            cpus[k++] = cpu;
    }
    return k;
}

/* Number of physical cores (at least 1): the default number of hubs. */
int gh__topology_ncores(void)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0)
        return 1;
    int n = 1;
    if (hwloc_topology_load(topo) == 0) {
        n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
        if (n <= 0)
            n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    }
    hwloc_topology_destroy(topo);
    return n > 0 ? n : 1;
}

/* Decides each hub's core, and each hub's victims. */
int gh__topology_plan(struct gh__runtime *rt, bool pin)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0)
        return EAGAIN;
    unsigned maxc = 4096;
    int *cpus = calloc(maxc, sizeof *cpus);
    if (!cpus) {
        hwloc_topology_destroy(topo);
        return ENOMEM;
    }
    int ncores = cores_of(topo, cpus, maxc);
    if (ncores <= 0)
        ncores = 1, cpus[0] = -1;
    int err = 0;
    for (unsigned i = 0; i < rt->nhubs && !err; i++) {
        struct gh__hub *h = &rt->hubs[i];
        /* More hubs than cores: wrap around (then pinning shares cores). */
        h->core = pin ? cpus[i % (unsigned)ncores] : -1;
        h->victims = calloc(rt->nhubs, sizeof *h->victims);
        if (!h->victims) {
            err = ENOMEM;
            break;
        }
    }
    for (unsigned i = 0; i < rt->nhubs && !err; i++) {
        struct gh__hub *h = &rt->hubs[i];
        int ci = cpus[i % (unsigned)ncores];
        int best = -1;
        for (unsigned j = 0; j < rt->nhubs; j++) {
            int d = j == i ? -1 : common_depth(topo, ci, cpus[j % (unsigned)ncores]);
            if (d > best)
                best = d;
        }
        /* Nearest group first (same deepest shared ancestor), then the rest. */
        h->nvictims = 0;
        for (unsigned j = 0; j < rt->nhubs; j++)
            if (j != i && common_depth(topo, ci, cpus[j % (unsigned)ncores]) == best)
                h->victims[h->nvictims++] = j;
        h->near_count = h->nvictims;
        for (unsigned j = 0; j < rt->nhubs; j++)
            if (j != i && common_depth(topo, ci, cpus[j % (unsigned)ncores]) != best)
                h->victims[h->nvictims++] = j;
    }
    free(cpus);
    hwloc_topology_destroy(topo);
    return err;
}

int gh__topology_pin_self(int cpu)
{
    if (cpu < 0)
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}
