#!/usr/bin/env bash
# bench/run.sh [--quick|--full] [--runs N] [--no-build]
#
# Builds greenhub and its peers and runs the benchmarks side by side, in one
# run, on this machine.  --quick (the default, the README's main job) runs
# the core-scaling benchmark only: the CPU-bound workload with 1, 2, 4, ...
# hubs beside Go with GOMAXPROCS=1, 2, 4, ..., and the I/O-bound one (the
# greenlet echo server with 1, 2, 4, ... hubs beside Go's, bench/echo.sh
# --scaling).
# --full adds switch, spawn+join, skynet, sync (queue ping-pong, contended
# mutex, cross-hub event ping-pong on 2+ CPUs, uncontended mutex), parked
# memory and the whole echo
# table (beside libuv, Go and thread-per-connection servers).  Each figure is the median of N runs
# (default 3) with the spread (min-max); every program checks its own result
# and a wrong result stops the run.  Results: bench/results/latest.md and
# latest.csv.  Honesty rules: bench/README.md.
#
# --no-build installs nothing and builds nothing: it runs the binaries
# already in build-bench/ (for a machine without the toolchains or the
# package repositories, where build-bench/ was built elsewhere and copied).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=quick runs=3 build=1
while [[ $# -gt 0 ]]; do
    case "$1" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --runs) runs="$2"; shift ;;
    --no-build) build=0 ;;
    *) echo "usage: $0 [--quick|--full] [--runs N] [--no-build]" >&2; exit 2 ;;
    esac
    shift
done

if ((build)); then bench/build.sh; fi
B=build-bench/bench P=build-bench/peers
# gevent peer (bench/peers/gevent/*.py): Python scripts, nothing to build,
# run by the first python3 that imports gevent (Debian's python3-gevent is
# for /usr/bin/python3; a pyenv or venv python3 first on PATH may lack it).
# gpy stays empty when none does, and the gevent rows say so.
GV=bench/peers/gevent gpy=""
for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import gevent' 2>/dev/null; then
        gpy=$(command -v "$py"); break
    fi
done
mkdir -p bench/results
md=bench/results/latest.md csv=bench/results/latest.csv tsv=bench/results/peers.tsv
ncpu=$(nproc)
cpu_model=$( (lscpu 2>/dev/null || true) | sed -n 's/^Model name: *//p' | head -1)
{
    echo "# greenhub benchmarks ($mode), $(date -u +%Y-%m-%d)"
    echo
    if ((build)); then
        echo "Machine: $ncpu CPUs ($cpu_model), $(uname -r); gcc $(gcc -dumpversion)," \
             "$(go version 2>/dev/null | awk '{print $3}'), Boost $(dpkg-query -W -f='${Version}' libboost-context-dev 2>/dev/null)."
    else
        echo "Machine: $ncpu CPUs ($cpu_model), $(uname -r); binaries built elsewhere:" \
             "$(cat build-bench/BUILT 2>/dev/null || echo 'build-bench/BUILT missing')."
    fi
    echo "Hub threads pinned one per core (hwloc); Go threads not pinned. Median of $runs runs, spread min-max."
    echo
} > "$md"
echo "bench,impl,threads,median,min,max,unit" > "$csv"
: > "$tsv"
cat "$md"

# measure IMPL THREADS CMD... -> "median min max unit" over $runs runs.
measure() {
    local impl="$1" threads="$2"; shift 2
    local vals=() unit="" line
    for ((r = 0; r < runs; r++)); do
        if ! line=$("$@" | grep '^RESULT'); then
            echo "FAILED: $impl: $*" >&2; exit 1
        fi
        if [[ "$line" != *check=ok* ]]; then
            echo "WRONG RESULT: $line" >&2; exit 1
        fi
        vals+=("$(sed 's/.*value=\([^ ]*\).*/\1/' <<<"$line")")
        unit=$(sed 's/.*unit=\([^ ]*\).*/\1/' <<<"$line")
    done
    local sorted
    sorted=$(printf '%s\n' "${vals[@]}" | sort -g)
    local med min max
    med=$(sed -n "$(( (runs + 1) / 2 ))p" <<<"$sorted")
    min=$(head -1 <<<"$sorted"); max=$(tail -1 <<<"$sorted")
    echo "$(grep -o 'bench=[a-z]*' <<<"$line" | cut -d= -f2),$impl,$threads,$med,$min,$max,$unit" >> "$csv"
    echo "$med $min $max $unit"
}

# ratio A B -> A/B with two decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.2f" : "n/a"), a / b }'; }

hub_counts() {
    local n=1 out=()
    while ((n < ncpu)); do out+=("$n"); n=$((n * 2)); done
    out+=("$ncpu")
    echo "${out[@]}"
}

core_scaling() {
    echo "## Core scaling: CPU-bound (4000 tasks x 100000 xorshift steps, 3 yields each, all spawned from one greenlet)" | tee -a "$md"
    echo | tee -a "$md"
    echo "Go with GOMAXPROCS = hubs; Boost.Fiber with that many threads (not pinned), each on its" \
         "work_stealing algorithm (one thread: round_robin, see bench/peers/README.md)." \
         "Speedups are over each one's own 1-hub/1-thread figure." | tee -a "$md"
    echo | tee -a "$md"
    local head="| hubs | greenhub tasks/s (spread) | speedup | Go tasks/s (spread) | Go speedup | greenhub/Go | Boost.Fiber tasks/s (spread) | Boost.Fiber speedup | greenhub/Boost.Fiber |"
    echo "$head" | tee -a "$md"
    echo "|---|---|---|---|---|---|---|---|---|" | tee -a "$md"
    local g1="" o1="" b1=""
    for h in $(hub_counts); do
        echo "   ... $h hub(s)" >&2
        read -r gm gmin gmax _ < <(GREENHUB_HUBS=$h measure greenhub "$h" "$B/bench_cpu")
        local om="" omin="" omax="" osp="n/a" rat="n/a" ocol="unavailable"
        if [[ -x $P/go_cpu ]]; then
            read -r om omin omax _ < <(GOMAXPROCS=$h measure go "$h" "$P/go_cpu")
        fi
        local bm="" bmin="" bmax="" bsp="n/a" brat="n/a" bcol="unavailable"
        if [[ -x $P/boost_fiber_cpu ]]; then
            read -r bm bmin bmax _ < <(BOOST_FIBER_THREADS=$h measure boost_fiber "$h" "$P/boost_fiber_cpu")
        fi
        [[ -z $g1 ]] && g1=$gm && o1=$om && b1=$bm
        [[ -n $om ]] && ocol="$om ($omin-$omax)" && osp="$(ratio "$om" "$o1")x" && rat=$(ratio "$gm" "$om")
        [[ -n $bm ]] && bcol="$bm ($bmin-$bmax)" && bsp="$(ratio "$bm" "$b1")x" && brat=$(ratio "$gm" "$bm")
        echo "| $h | $gm ($gmin-$gmax) | $(ratio "$gm" "$g1")x | $ocol | $osp | $rat | $bcol | $bsp | $brat |" | tee -a "$md"
    done
    echo | tee -a "$md"
    # gevent runs one thread: no core scaling, and said so rather than left
    # out.  Its cpu.py does 1/100 of the steps (ITERS=1000, T=4000: Python
    # takes ~0.25 us a step), so it stands beside greenhub at that size.
    echo "### The same work at 1/100 of the steps (4000 tasks x 1000 xorshift steps), beside gevent" | tee -a "$md"
    echo | tee -a "$md"
    echo "| hubs | greenhub tasks/s (spread) | gevent tasks/s (spread) | greenhub/gevent |" | tee -a "$md"
    echo "|---|---|---|---|" | tee -a "$md"
    local vm vmin vmax
    for h in $(hub_counts); do
        read -r gm gmin gmax _ < <(GREENHUB_HUBS=$h measure greenhub-iters1000 "$h" "$B/bench_cpu" 4000 1000)
        if [[ -z $gpy ]]; then
            echo "| $h | $gm ($gmin-$gmax) | gevent: unavailable (python3-gevent not installed) | n/a |" | tee -a "$md"
        elif ((h == 1)); then
            read -r vm vmin vmax _ < <(measure gevent-iters1000 1 "$gpy" "$GV/cpu.py" 4000 1000)
            echo "| $h | $gm ($gmin-$gmax) | $vm ($vmin-$vmax) | $(ratio "$gm" "$vm") |" | tee -a "$md"
        else
            echo "| $h | $gm ($gmin-$gmax) | $("$gpy" "$GV/cpu.py" --threads "$h") | n/a |" | tee -a "$md"
        fi
    done
    echo | tee -a "$md"
}

# row NAME UNIT GH_MEDIAN PEER_LABEL PEER_MEDIAN (lower is better); the
# ratio also goes to peers.tsv for bench/charts.sh.
row_lower() {
    echo "| $1 | $3 $2 | $4: $5 $2 | $(ratio "$5" "$3") |" | tee -a "$md"
    printf '%s\t%s\t%s\n' "$1" "$4" "$(ratio "$5" "$3")" >> "$tsv"
}

# gevent_row NAME UNIT GH_MEDIAN LABEL SCALE SCRIPT [ARGS...]: row_lower
# beside greenhub for bench/peers/gevent/SCRIPT ARGS (one thread, median
# times SCALE, for a script run at a fraction of greenhub's size), or a row
# saying gevent is unavailable.
gevent_row() {
    local name="$1" unit="$2" gh="$3" label="$4" scale="$5" script="$6" v; shift 6
    if [[ -z $gpy ]]; then
        echo "| $name | $gh $unit | gevent: unavailable (python3-gevent not installed) | n/a |" | tee -a "$md"
        return
    fi
    read -r v _ < <(measure gevent 1 "$gpy" "$GV/$script" "$@")
    row_lower "$name" "$unit" "$gh" "$label" "$(awk -v v="$v" -v s="$scale" 'BEGIN { printf "%.2f", v * s }')"
}

full_suite() {
    echo "## Per-operation benchmarks (lower is better)" | tee -a "$md"
    echo | tee -a "$md"
    echo "| benchmark | greenhub | peer | peer / greenhub (above 1: greenhub ahead) |" | tee -a "$md"
    echo "|---|---|---|---|" | tee -a "$md"
    local gs bs os bf="Boost.Fiber, work_stealing on $ncpu threads"
    ((ncpu == 1)) && bf="Boost.Fiber, 1 thread (round_robin)"
    read -r gs _ < <(measure greenhub 1 "$B/bench_switch")
    [[ -x $P/boost_switch ]] && { read -r bs _ < <(measure boost 1 "$P/boost_switch"); row_lower "switch (1 hub)" ns "$gs" "Boost.Context fiber" "$bs"; }
    [[ -x $P/go_switch ]] && { read -r os _ < <(measure go 1 "$P/go_switch"); row_lower "switch (1 hub)" ns "$gs" "Go Gosched" "$os"; }
    gevent_row "switch (1 hub)" ns "$gs" "gevent.sleep(0), 1 thread" 1 switch.py
    read -r gs _ < <(GREENHUB_HUBS=$ncpu measure greenhub "$ncpu" "$B/bench_spawn")
    [[ -x $P/go_spawn ]] && { read -r os _ < <(GOMAXPROCS=$ncpu measure go "$ncpu" "$P/go_spawn"); row_lower "spawn+join ($ncpu hubs)" ns "$gs" "Go goroutine" "$os"; }
    [[ -x $P/boost_fiber_spawn ]] && { read -r os _ < <(BOOST_FIBER_THREADS=$ncpu measure boost_fiber "$ncpu" "$P/boost_fiber_spawn"); row_lower "spawn+join ($ncpu hubs)" ns "$gs" "$bf" "$os"; }
    read -r gs _ < <(GREENHUB_HUBS=1 measure greenhub 1 "$B/bench_spawn")
    gevent_row "spawn+join (1 hub)" ns "$gs" "gevent greenlet, 1 thread" 1 spawn.py
    read -r gs _ < <(GREENHUB_HUBS=$ncpu measure greenhub "$ncpu" "$B/bench_skynet")
    [[ -x $P/go_skynet ]] && { read -r os _ < <(GOMAXPROCS=$ncpu measure go "$ncpu" "$P/go_skynet"); row_lower "skynet 1M ($ncpu hubs)" ms "$gs" "Go" "$os"; }
    [[ -x $P/boost_fiber_skynet ]] && { read -r os _ < <(BOOST_FIBER_THREADS=$ncpu measure boost_fiber "$ncpu" "$P/boost_fiber_skynet"); row_lower "skynet 1M ($ncpu hubs)" ms "$gs" "$bf" "$os"; }
    read -r gs _ < <(GREENHUB_HUBS=1 measure greenhub 1 "$B/bench_skynet")
    gevent_row "skynet 1M (1 hub)" ms "$gs" "gevent, 1 thread: 100k-leaf tree, time x10" 10 skynet.py
    # Sync primitives (bench/sync.c): ns per round trip through two
    # capacity-1 queues, and ns per lock+unlock of one contended mutex.
    read -r gs _ < <(GREENHUB_HUBS=1 measure greenhub 1 "$B/bench_sync" pingpong)
    [[ -x $P/go_sync ]] && { read -r os _ < <(measure go 1 "$P/go_sync" pingpong); row_lower "channel ping-pong (1 hub)" ns "$gs" "Go chan, GOMAXPROCS=1" "$os"; }
    gevent_row "channel ping-pong (1 hub)" ns "$gs" "gevent Queue(maxsize=1), 1 thread" 1 sync.py pingpong
    [[ -x $P/pthread_sync ]] && { read -r os _ < <(measure pthread 2 "$P/pthread_sync" pingpong 100000); row_lower "channel ping-pong (1 hub)" ns "$gs" "pthreads: mutex+cond queues, 2 unpinned threads, 100k trips" "$os"; }
    read -r gs _ < <(GREENHUB_HUBS=$ncpu measure greenhub "$ncpu" "$B/bench_sync" mutex 100 10000)
    [[ -x $P/go_sync ]] && { read -r os _ < <(GOMAXPROCS=$ncpu measure go "$ncpu" "$P/go_sync" mutex 100 10000); row_lower "contended mutex ($ncpu hubs, 100 x 10,000)" ns "$gs" "Go sync.Mutex, 100 goroutines" "$os"; }
    local nt=$((4 * ncpu))
    [[ -x $P/pthread_sync ]] && { read -r os _ < <(measure pthread "$nt" "$P/pthread_sync" mutex 100 10000 "$nt"); row_lower "contended mutex ($ncpu hubs, 100 x 10,000)" ns "$gs" "pthread_mutex, $nt threads, same 1,000,000 increments" "$os"; }
    read -r gs _ < <(GREENHUB_HUBS=1 measure greenhub 1 "$B/bench_sync" mutex 100 10000)
    gevent_row "mutex (1 hub, 100 x 10,000; gevent never preempts: never contended)" ns "$gs" "gevent BoundedSemaphore, 100 greenlets" 1 sync.py mutex 100 10000
    # us per round trip of a token handed between hubs 0 and 1 through two
    # gh_events (greenlets pinned; two threads pinned to two CPUs for
    # pthreads), on 2+ CPUs only; ns per lock+unlock of a mutex nobody else
    # wants (one greenlet, one thread, one goroutine).
    if ((ncpu >= 2)); then
        read -r gs _ < <(GREENHUB_HUBS=2 measure greenhub 2 "$B/bench_sync" xping)
        [[ -x $P/pthread_sync ]] && { read -r os _ < <(measure pthread 2 "$P/pthread_sync" xping); row_lower "cross-hub event ping-pong (2 hubs pinned)" us "$gs" "pthreads: mutex+cond, 2 threads pinned to 2 CPUs" "$os"; }
        [[ -n $gpy ]] && echo "| cross-hub event ping-pong (2 hubs pinned) | $gs us | $("$gpy" "$GV/sync.py" xping) | n/a |" | tee -a "$md"
    fi
    read -r gs _ < <(GREENHUB_HUBS=1 measure greenhub 1 "$B/bench_sync" uncontended)
    [[ -x $P/pthread_sync ]] && { read -r os _ < <(measure pthread 1 "$P/pthread_sync" uncontended); row_lower "uncontended mutex lock+unlock (1 hub)" ns "$gs" "pthread_mutex (1 thread)" "$os"; }
    [[ -x $P/go_sync ]] && { read -r os _ < <(GOMAXPROCS=$ncpu measure go "$ncpu" "$P/go_sync" uncontended); row_lower "uncontended mutex lock+unlock (1 hub)" ns "$gs" "Go sync.Mutex" "$os"; }
    gevent_row "uncontended mutex lock+unlock (1 hub)" ns "$gs" "gevent BoundedSemaphore (1 thread)" 1 sync.py uncontended
    local keep=$runs; runs=1
    read -r gs _ < <(GREENHUB_HUBS=$ncpu measure greenhub "$ncpu" "$B/bench_parked" 1000000)
    [[ -x $P/go_parked ]] && { read -r os _ < <(measure go "$ncpu" "$P/go_parked" 1000000); row_lower "parked memory, 1M tasks" B "$gs" "Go goroutine" "$os"; }
    gevent_row "parked memory, 1M tasks (gevent: 100k)" B "$gs" "gevent greenlet" 1 parked.py
    read -r os _ < <(measure pthread 10000 "$P/pthread_parked" 10000)
    row_lower "parked memory (pthreads: 10k threads)" B "$gs" "pthread" "$os"
    runs=$keep
    echo | tee -a "$md"
}

# The I/O-bound half of core scaling: the greenlet echo server with 1..N
# hubs under one load (bench/echo.sh; --full runs its whole table beside
# libuv, Go and thread-per-connection servers).
echo_bench() {
    local args=(--no-build --runs "$runs" --conns 1000 --time 3 --warmup 1 --scaling)
    [[ $mode == full ]] && args=(--no-build --runs "$runs")
    echo "== echo benchmark (bench/echo.sh ${args[*]})" >&2
    bench/echo.sh "${args[@]}" >/dev/null
    sed -n '/^## /,$p' bench/results/echo.md | tee -a "$md"
}

core_scaling
echo_bench
[[ $mode == full ]] && full_suite
bench/charts.sh bench/results
echo "results: $md, $csv, bench/results/*.png"
