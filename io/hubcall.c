/* io/hubcall.c — asking a hub to act on its own libuv loop (see
 * io_internal.h), and the io side of a hub's stop. */
#include "io_internal.h"

bool gh__hub_call(struct gh__hub *h, struct gh__hubcall *call)
{
    call->next = NULL;
    pthread_mutex_lock(&h->io_req_mu);
    bool open = !h->io_closed;
    if (open) {
        if (h->io_reqs_tail)
            h->io_reqs_tail->next = call;
        else
            h->io_reqs = call;
        h->io_reqs_tail = call;
        uv_async_send(&h->async);   /* under the lock: h cannot close it */
    }
    pthread_mutex_unlock(&h->io_req_mu);
    return open;
}

void gh__io_hub_requests(struct gh__hub *h)
{
    pthread_mutex_lock(&h->io_req_mu);
    struct gh__hubcall *call = h->io_reqs;
    h->io_reqs = h->io_reqs_tail = NULL;
    pthread_mutex_unlock(&h->io_req_mu);
    while (call) {
        struct gh__hubcall *next = call->next;
        call->fn(h, call);
        call = next;
    }
}

void gh__hub_calls_close(struct gh__hub *h)
{
    pthread_mutex_lock(&h->io_req_mu);
    h->io_closed = true;
    pthread_mutex_unlock(&h->io_req_mu);
    gh__io_hub_requests(h);
}

void gh__io_hub_fini(struct gh__hub *h)
{
    gh__hub_calls_close(h);
    gh__signal_hub_fini(h);
    gh__poll_hub_fini(h);
}
