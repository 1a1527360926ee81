/* tools/schedtop.h — what the parts of schedtop share: a mapped segment of
 * one greenhub process (sched/shm_layout.h), consistent samples of it, rates
 * from two samples, and the frame of text lines that --once prints and the
 * full-screen view draws.
 *
 * Files: schedtop.c (arguments, the process list, the modes),
 * schedtop_seg.c (segment, process and sampling), schedtop_text.c (the
 * frame), schedtop_json.c (--json), schedtop_curses.c (the live view). */
#ifndef SCHEDTOP_H
#define SCHEDTOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm_layout.h"

#define ST_ERR_LEN 320
#define ST_MAX_HUBS 65536u          /* more is garbage, not a machine */
#define ST_READ_TRIES 100           /* gh_shm_read attempts before giving up */
#define ST_READ_RETRY_US 1000       /* pause between two attempts */
#define ST_ONCE_GAP_MS 200          /* --once / --json: samples this far apart */

/* Exit statuses. */
#define ST_EXIT_OK 0
#define ST_EXIT_FAIL 1              /* an error, or the watched process ended */
#define ST_EXIT_USAGE 2

/* What opening or sampling a segment came to. */
enum st_result {
    ST_OK,
    ST_NO_PROCESS,      /* no such process, no segment */
    ST_NOT_GREENHUB,    /* the process runs but has no segment */
    ST_STALE_REMOVED,   /* the segment's process is gone: segment removed */
    ST_EXITED,          /* the process (or its runtime) ended while read */
    ST_ERROR,           /* anything else; the reason is in the message */
};

/* One process's segment, checked and mapped read-only. */
struct st_seg {
    pid_t pid;
    char name[40];              /* "/greenhub.<pid>", for shm_open/unlink */
    char path[48];              /* "/dev/shm/greenhub.<pid>" */
    int fd;
    const void *map;
    size_t map_size;            /* == total_size */
    dev_t dev;                  /* the file checked: only it gets unlinked */
    ino_t ino;
    uint32_t nhubs, header_size, hub_size;  /* immutable once created */
    void *buf;                  /* map_size bytes: gh_shm_read's copy */
};

/* One consistent sample: the header and the hubs, cut to the fields this
 * schedtop knows (later versions append). */
struct st_snap {
    struct gh_shm_header h;
    struct gh_shm_hub *hubs;    /* h.nhubs entries */
    uint32_t nhubs;
};

/* The counters that become rates, in hub-column order. */
enum st_rate {
    ST_R_SWITCHES, ST_R_STEALS, ST_R_STOLEN, ST_R_PARKS, ST_R_IO_WAITS,
    ST_R_SLEEPS, ST_R_WAKEUPS, ST_R_COUNT
};
extern const char *const st_rate_names[ST_R_COUNT];

/* Per-second rates between two samples; valid only when the monitor
 * published a newer sample in between. */
struct st_rates {
    int valid;
    uint64_t interval_ns;       /* updated_ns difference */
    uint32_t nhubs;
    double *hub;                /* nhubs * ST_R_COUNT */
    double total[ST_R_COUNT];
};

/* Hub-row sort orders, cycled with the s key. */
enum st_sort { ST_SORT_INDEX, ST_SORT_SWITCHES, ST_SORT_RUNNABLE,
               ST_SORT_GREENLETS, ST_SORT_COUNT };
extern const char *const st_sort_names[ST_SORT_COUNT];

/* Everything one frame shows. */
struct st_view {
    pid_t pid;
    const char *comm;           /* command name, already printable */
    const struct st_snap *snap;
    const struct st_rates *rates;
    const char *rates_note;     /* how the rates were measured */
    enum st_sort sort;
};

enum st_line_kind { ST_L_TEXT, ST_L_TITLE, ST_L_HEAD, ST_L_HUB, ST_L_TOTAL };

struct st_line {
    enum st_line_kind kind;
    char *text;
};

/* The lines of one frame, top to bottom; hub rows are v[hub_first ..
 * hub_first + hub_n - 1]. */
struct st_frame {
    struct st_line *v;
    size_t n, cap;
    size_t hub_first, hub_n;
};

/* schedtop_seg.c */
uint64_t st_mono_ns(void);
uint64_t st_real_ns(void);
void st_sleep_ms(unsigned ms);
int st_proc_alive(pid_t pid);
void st_proc_comm(pid_t pid, char *out, size_t len);
enum st_result st_seg_open(struct st_seg *seg, pid_t pid, char *err, size_t n);
void st_seg_close(struct st_seg *seg);
int st_seg_remove_stale(struct st_seg *seg);
int st_snap_init(struct st_snap *s, uint32_t nhubs);
void st_snap_free(struct st_snap *s);
enum st_result st_take(struct st_seg *seg, struct st_snap *s, char *err, size_t n);
enum st_result st_take_two(struct st_seg *seg, struct st_snap *a,
                           struct st_snap *b, char *err, size_t n);
int st_rates_init(struct st_rates *r, uint32_t nhubs);
void st_rates_free(struct st_rates *r);
void st_rates_compute(struct st_rates *r, const struct st_snap *prev,
                      const struct st_snap *cur);
uint64_t st_hub_counter(const struct gh_shm_hub *h, enum st_rate which);
const char *st_state_name(uint32_t state);

/* schedtop_text.c */
void st_printable(const char *src, size_t max, char *out, size_t len);
void st_fmt_span(char *out, size_t len, uint64_t secs);
int st_frame_build(struct st_frame *f, const struct st_view *v);
void st_frame_free(struct st_frame *f);
size_t st_fit_cols(const char *s, int cols);
int st_print_once(struct st_seg *seg, const char *comm);

/* schedtop_json.c */
int st_print_json(struct st_seg *seg, const char *comm);

/* schedtop_curses.c */
int st_watch(struct st_seg *seg, const char *comm);

#endif
