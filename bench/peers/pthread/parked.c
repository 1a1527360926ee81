/* parked.c: resident memory per parked pthread (default attributes).
 * Measures RSS (/proc/self/statm resident pages * page size) as a baseline,
 * creates N threads (default 10,000, argv[1]; far fewer than the greenlet
 * runs) that each check in under a mutex and wait on a condition variable,
 * waits until all have checked in (holding the mutex then means every one
 * is inside pthread_cond_wait), measures RSS again and reports
 * (RSS - baseline) / threads. Then broadcasts the release and joins all.
 * If pthread_create fails part way, the threads made so far are measured.
 * Self-check: every thread created must have run to the end and been joined. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_cv = PTHREAD_COND_INITIALIZER;   /* threads wait here */
static pthread_cond_t in_cv = PTHREAD_COND_INITIALIZER;   /* main waits here */
static long parked, finished;
static int released;

static long rss_bytes(void) {
    long size, res;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &size, &res) != 2) {
        fprintf(stderr, "parked: cannot read /proc/self/statm\n");
        exit(2);
    }
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

static void *body(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    parked++;
    pthread_cond_signal(&in_cv);
    while (!released)
        pthread_cond_wait(&go_cv, &mu);
    finished++;
    pthread_mutex_unlock(&mu);
    return NULL;
}

int main(int argc, char **argv) {
    long n = 10000;
    if (argc > 1) {
        char *end;
        n = strtol(argv[1], &end, 10);
        if (*end || n <= 0) { fprintf(stderr, "usage: parked [N>0]\n"); return 2; }
    }
    pthread_t *tid = malloc(n * sizeof *tid);
    if (!tid) { fprintf(stderr, "parked: out of memory\n"); return 2; }
    memset(tid, 0, n * sizeof *tid);   /* touch it so it is in the baseline */

    long base = rss_bytes();
    long made = 0;
    for (; made < n; made++) {
        int e = pthread_create(&tid[made], NULL, body, NULL);
        if (e) {
            fprintf(stderr, "parked: pthread_create failed after %ld threads: %s\n", made, strerror(e));
            break;
        }
    }
    pthread_mutex_lock(&mu);
    while (parked < made)
        pthread_cond_wait(&in_cv, &mu);
    double per = made ? (double)(rss_bytes() - base) / made : 0;
    released = 1;
    pthread_cond_broadcast(&go_cv);
    pthread_mutex_unlock(&mu);

    long joined = 0;
    for (long i = 0; i < made; i++)
        if (pthread_join(tid[i], NULL) == 0)
            joined++;
    free(tid);

    printf("INFO tasks=%ld requested=%ld\n", made, n);
    printf("NOTE pthread N is much smaller than the 1,000,000 used for green threads\n");
    int ok = made > 0 && joined == made && finished == made;
    if (!ok)
        fprintf(stderr, "parked: created %ld, joined %ld, finished %ld\n", made, joined, finished);
    printf("RESULT bench=parked impl=pthread threads=%ld value=%.1f unit=bytes_per_task check=%s\n",
           made, per, ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
