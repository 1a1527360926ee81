/* A program outside the tree, built against an installed greenhub.
 * WANT_INTERPOSED (0 or 1): whether it was linked with greenhub::hooks;
 * gh_interposed() must say the same (linking libgreenhub alone interposes
 * nothing). */
#include <greenhub.h>
#include <stdint.h>
#include <stdio.h>

static void *twice(void *arg) { gh_yield(); return (void *)((uintptr_t)arg * 2); }

static void *main_fn(void *arg)
{
    (void)arg;
    void *r = NULL;
    if (gh_join(gh_spawn(twice, (void *)21), &r) != 0)
        return NULL;
    return r;
}

#ifndef WANT_INTERPOSED
#define WANT_INTERPOSED 0
#endif

int main(void)
{
    void *r = NULL;
    int err = gh_run(NULL, main_fn, NULL, &r);
    printf("consumer: gh_run=%d result=%lu interposed=%d\n", err,
           (unsigned long)(uintptr_t)r, (int)gh_interposed());
    return err == 0 && (uintptr_t)r == 42 && gh_interposed() == WANT_INTERPOSED ? 0 : 1;
}
