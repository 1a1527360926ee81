#!/usr/bin/env bash
# bench/echo.sh [--time T] [--warmup W] [--runs N] [--conns "100 1000"]
#               [--load-threads L] [--strace] [--scaling] [--no-build]
#
# The echo benchmark, in one run on this machine: the same load generator
# (bench_echo_load: N connections, 64-byte messages, one round trip in
# flight per connection, every byte checked, spread over L threads with
# an epoll set each) against
#   - the greenlet server (bench_echo_server --greenlets, 1 hub),
#   - the same handler as one thread per connection (--threads),
#   - a libuv callback server on one loop (peers/uv/echo.c),
#   - Go, one goroutine per connection, GOMAXPROCS=1 (peers/go/echo.go),
#   - gevent, one greenlet per connection, gevent.server.StreamServer, one
#     thread (peers/gevent/echo.py; its row says so when gevent is missing),
# each server pinned to CPU 0 (`taskset -c 0`; with one hub, hwloc pins the
# hub to CPU 0 as well) and the load generator to the cores after it, at
# each connection count; then the I/O-bound core-scaling rows: the greenlet
# server with 1, 2, ... hubs (hwloc pins hub i to core i; no taskset) beside
# Go's server with GOMAXPROCS=1, 2, ... (confined to the same cores with
# taskset), taking turns, the load generator pinned to the cores the hubs
# leave; where the hubs take every core (the load generator shares them),
# also the greenlet server with SCHED_BATCH hub threads
# (GREENHUB_SCHED_BATCH=1), in a paragraph under the table.  Each figure
# is the median of N runs (default 3), each with a fresh server, with the spread;
# p50/p99 latency and the CPU use of both processes come from the median
# run (load CPU near its thread count means the load generator, not the
# server, may be the limit; "other CPU" is what the rest of the machine
# used meanwhile: a run where it exceeds 0.15 cores is repeated, up to 4
# runs, and the least disturbed one is kept).  A wrong echo, or a server
# that reports an error, stops the run.  Results: bench/results/echo.md and
# echo.csv.
#
# Load threads (--load-threads L, or ECHO_LOAD_THREADS=L; default auto).
# A server given S cores (1 in the pinned table, one per hub in the
# scaling rows) leaves the other cores to the load generator: auto gives
# it S + 1 threads, at most one per core left, pinned to those cores (the
# first logical CPU of each, then their siblings).  One load thread did
# about 1.25 times what one greenlet hub does (16 cores: ~200k msgs/s
# saturated, against 159k for one hub), so one per server core keeps pace
# only just; the extra one is headroom.  When the server takes every core
# (the last scaling row) none is left: the load generator then shares them,
# unpinned, with one thread per two cores.  A given L is used for every row,
# pinned to at most L CPUs of the cores left (siblings too when L exceeds
# them).  On 2 cores auto is one thread on CPU 1 for the pinned table
# (server on one core, load on the other).
#
# --scaling runs only the core-scaling rows (bench/run.sh's quick mode).
#
# --strace runs each server once (100 connections, pinned as above) under
# `strace -f -c` and prints system calls per echo round trip: the server's
# whole life (start-up and accepts included) over every round trip the
# load generator made.  strace slows the server several-fold, which
# changes how often a read finds its data already there, so where perf
# can count tracepoints each server runs once more under
# `perf stat -e raw_syscalls:sys_enter`, which does not slow it.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
T=5 W=1 runs=3 conns_list="100 1000" mode=table build=1
load_threads=${ECHO_LOAD_THREADS:-auto}
while [[ $# -gt 0 ]]; do
    case "$1" in
    --time) T="$2"; shift ;;
    --warmup) W="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    --conns) conns_list="$2"; shift ;;
    --load-threads) load_threads="$2"; shift ;;
    --strace) mode=strace ;;
    --scaling) mode=scaling ;;
    --no-build) build=0 ;;
    *) echo "usage: $0 [--time T] [--warmup W] [--runs N] [--conns \"100 1000\"] [--load-threads L] [--strace] [--scaling] [--no-build]" >&2
       exit 2 ;;
    esac
    shift
done
if [[ ! $load_threads =~ ^(auto|[1-9][0-9]*)$ ]]; then
    echo "echo.sh: --load-threads / ECHO_LOAD_THREADS must be auto or a positive count" >&2
    exit 2
fi

# One descriptor per connection on each side, plus the listener and a few.
ulimit -n "$(ulimit -Hn)"
max_conns=$(tr ' ' '\n' <<<"$conns_list" | sort -n | tail -1)
if (( $(ulimit -n) < max_conns + 64 )); then
    echo "echo.sh: RLIMIT_NOFILE hard limit $(ulimit -Hn) is too low for $max_conns connections" >&2
    exit 1
fi

if ((build)); then bench/build.sh; fi
B=build-bench/bench P=build-bench/peers
ncpu=$(nproc)
tmp=$(mktemp -d)
# Server ports stay below the ephemeral range (Linux: 32768-60999), where
# the load generator's closed connections linger in TIME_WAIT for a minute:
# a listener cannot bind a port one of them holds (EADDRINUSE, even with
# SO_REUSEADDR), and with thousands of connections per run a port chosen
# in that range was taken now and then (seen on a 16-core machine).
port=$((10000 + RANDOM % 18000))
srv_pid=""
cleanup() {
    [[ -n $srv_pid ]] && kill -TERM "$srv_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# The servers, as commands the port and duration are appended to.
GREEN=(env GREENHUB_HUBS=1 taskset -c 0 "$B/bench_echo_server" --greenlets)
THREADS=(taskset -c 0 "$B/bench_echo_server" --threads)
UV=(taskset -c 0 "$P/uv_echo")
GO=(env GOMAXPROCS=1 taskset -c 0 "$P/go_echo")
# gevent: bench/peers/gevent/echo.py, run by the first python3 that imports
# gevent (GEVENT_PY stays empty when none does, and its rows say so).
GEVENT_PY=""
for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import gevent' 2>/dev/null; then
        GEVENT_PY=$(command -v "$py"); break
    fi
done
GEVENT=(taskset -c 0 "$GEVENT_PY" bench/peers/gevent/echo.py)

# The machine's physical cores in hwloc's order (the order hubs take
# them), one line each: its logical CPUs, lowest first.  Without lscpu:
# one core per CPU.
core_map=$(lscpu -p=CPU,CORE 2>/dev/null |
           awk -F, '!/^#/ { cpus[$2] = cpus[$2] " " $1 } END { for (c in cpus) print c cpus[c] }' |
           sort -n | cut -d' ' -f2-) || true
[[ -n $core_map ]] || core_map=$(seq 0 $((ncpu - 1)))
ncores=$(wc -l <<<"$core_map")

# free_cpus S N -> up to N CPUs (comma list) of the cores after the first
# S: the first CPU of each core, then the siblings.
free_cpus() {
    tail -n +"$(($1 + 1))" <<<"$core_map" |
        awk -v n="$2" '{ for (i = 1; i <= NF; i++) cpu[NR, i] = $i; if (NF > w) w = NF }
            END { for (i = 1; i <= w; i++) for (r = 1; r <= NR; r++)
                      if ((r, i) in cpu && k < n) out = out (k++ ? "," : "") cpu[r, i]
                  print out }'
}

# server_cpus S -> the logical CPUs (comma list) of the first S cores: the
# cores S hubs take, where Go's server in the scaling rows is confined, so
# that its threads (sysmon, GC workers) do not run on the load generator's
# cores either.
server_cpus() {
    head -n "$1" <<<"$core_map" | tr ' ' '\n' | grep -v '^$' | paste -sd, -
}

# load_plan SERVER-CORES -> "THREADS CPUS": the load generator's thread
# count and the CPUs it is pinned to (none: unpinned), beside a server
# that uses the first SERVER-CORES cores (see the top of this file).
load_plan() {
    local left=$((ncores - $1)) t=$load_threads
    if [[ $t == auto ]]; then
        t=$(( $1 + 1 < left ? $1 + 1 : left ))
        ((left > 0)) || t=$(( ncores / 2 > 1 ? ncores / 2 : 1 ))
    fi
    if ((left > 0)); then echo "$t $(free_cpus "$1" "$t")"; else echo "$t"; fi
}

# The load generator beside the servers pinned to CPU 0 (core 0); on one
# CPU it cannot be pinned elsewhere.
read -r LOAD_THREADS LOAD_CPUS <<<"$(load_plan 1)"
LOAD_PINNED=()
[[ -n $LOAD_CPUS ]] && LOAD_PINNED=(taskset -c "$LOAD_CPUS")

# Servers stop on SIGTERM; the duration only bounds a run that went wrong.
server_limit=$((W + T + 60))

# start_server CMD... : starts a server on a fresh port; sets srv_pid.
# taskset and env exec the server, so $! is the server itself.
start_server() {
    port=$((port + 1))
    "$@" --port "$port" --duration "$server_limit" >"$tmp/server.log" 2>&1 &
    srv_pid=$!
}

# server_state: what the server said and whether it still runs (on stderr)
server_state() {
    {
        echo "--- server (pid ${srv_pid:-none}, port $port) log:"
        cat "$tmp/server.log"
        if [[ -n $srv_pid ]] && kill -0 "$srv_pid" 2>/dev/null; then
            echo "--- the server is still running"
        else
            echo "--- the server has exited"
        fi
    } >&2
}

# die MESSAGE: stops the server of this (sub)shell, if any, and fails.
die() {
    [[ -n $srv_pid ]] && kill -TERM "$srv_pid" 2>/dev/null
    echo "$*" >&2
    exit 1
}

# stop_server [PID-TO-WAIT]: SIGTERM, then the server's own check (exit 0,
# errors=0).  Waits for the server, or for PID (strace, which exits with
# its tracee's status).
stop_server() {
    local rc=0 waitfor="${1:-$srv_pid}"
    kill -TERM "$srv_pid" 2>/dev/null || true
    wait "$waitfor" || rc=$?
    srv_pid=""
    if ((rc != 0)) || ! grep -q ' errors=0$' "$tmp/server.log"; then
        cat "$tmp/server.log" >&2
        die "SERVER FAILED (exit $rc)"
    fi
}

# field NAME LINE -> the value of NAME= in a RESULT line
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# load CONNS IMPL THREADS LOAD-THREADS [PIN...] -> the RESULT line (stops on
# a wrong one)
load() {
    local c="$1" impl="$2" threads="$3" lt="$4" line; shift 4
    line=$("$@" "$B/bench_echo_load" --port "$port" --conns "$c" --warmup "$W" --time "$T" \
                --impl "$impl" --threads "$threads" --load-threads "$lt" --pid "$srv_pid" \
                --connect-wait 5000 |
           grep '^RESULT') || { server_state; die "FAILED: load generator against $impl"; }
    [[ $line == *check=ok* ]] || die "WRONG RESULT: $line"
    echo "$line"
}

# other_cpu RESULT-LINE -> cores busy with neither the server nor the load
# generator during the measured seconds (this machine may be shared)
other_cpu() {
    awk -v m="$(field machine_cpu "$1")" -v l="$(field load_cpu "$1")" \
        -v s="$(field server_cpu "$1")" 'BEGIN { printf "%.2f", m - l - s }'
}

# Other work above this many cores disturbs a figure: the run is repeated
# (up to $tries times).  Kernel work not charged to either process (some
# softirq time) shows here too, a few hundredths of a core.
max_other=0.15 tries=4

# run_once CONNS IMPL THREADS SERVER-CORES SERVER-CMD... -> a RESULT line;
# the load generator as load_plan SERVER-CORES says.
# A run during which other processes used more than $max_other cores is
# repeated after a pause, up to $tries runs; then the least disturbed one
# is kept (its "other CPU" shows in the table).
run_once() {
    local c="$1" impl="$2" threads="$3" lt cpus line t o best="" best_o=99 pin=()
    read -r lt cpus <<<"$(load_plan "$4")"
    shift 4
    [[ -n $cpus ]] && pin=(taskset -c "$cpus")
    for ((t = 1; t <= tries; t++)); do
        start_server "$@"
        line=$(load "$c" "$impl" "$threads" "$lt" "${pin[@]}") || die "stopped"
        stop_server
        o=$(other_cpu "$line")
        if awk -v o="$o" -v b="$best_o" 'BEGIN { exit !(o < b) }'; then
            best=$line best_o=$o
        fi
        awk -v o="$o" -v m="$max_other" 'BEGIN { exit !(o <= m) }' && break
        echo "   (other processes used $o cores during $impl, $c conns: run repeated)" >&2
        sleep 3
    done
    echo "$best"
}

# summarize CONNS IMPL THREADS RESULT-LINE... ->
#   "median min max p50 p99 server_cpu load_cpu other_cpu load_threads"
#   over the given runs; p50.. are the median run's.  Appends the CSV row.
summarize() {
    local c="$1" impl="$2" threads="$3" lines=() line; shift 3
    for line in "$@"; do lines+=("$(field value "$line") $line"); done
    local sorted med
    sorted=$(printf '%s\n' "${lines[@]}" | sort -g)
    med=$(sed -n "$(( (${#lines[@]} + 1) / 2 ))p" <<<"$sorted" | cut -d' ' -f2-)
    local v min max rest
    v=$(field value "$med")
    min=$(head -1 <<<"$sorted" | cut -d' ' -f1)
    max=$(tail -1 <<<"$sorted" | cut -d' ' -f1)
    rest="$(field p50_us "$med") $(field p99_us "$med") $(field server_cpu "$med") $(field load_cpu "$med") $(other_cpu "$med") $(field load_threads "$med")"
    echo "echo,$impl,$threads,$c,$v,$min,$max,${rest// /,}" >>"$csv"
    echo "$v $min $max $rest"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.2f" : "n/a"), a / b }'; }
k() { awk -v a="$1" 'BEGIN { printf "%.1fk", a / 1000 }'; }

# row CONNS LABEL GREEN_MEDIAN FIGURES...
row() {
    local c="$1" label="$2" gm="$3" v min max p50 p99 scpu lcpu ocpu lthr
    read -r v min max p50 p99 scpu lcpu ocpu lthr <<<"$4"
    local rat="—"
    [[ $label != greenhub* ]] && rat=$(ratio "$gm" "$v")
    echo "| $c | $label | $(k "$v") ($(k "$min")-$(k "$max")) | $p50 / $p99 | $scpu | $lcpu | $ocpu | $rat |" | tee -a "$md"
}

# load_desc THREADS [CPUS] -> "2 threads on CPUs 1,2", "1 thread, unpinned"
load_desc() {
    local s=""
    (($1 > 1)) && s=s
    if [[ -z ${2:-} ]]; then echo "$1 thread$s, unpinned"
    elif [[ $2 == *,* ]]; then echo "$1 thread$s on CPUs $2"
    else echo "$1 thread$s on CPU $2"
    fi
}

# The servers of the pinned table: label, impl, command (an array name).
pinned_servers() {
    echo "greenhub|greenhub, 1 hub, greenlet per connection|GREEN"
    echo "threads|same handler, thread per connection|THREADS"
    [[ -x $P/uv_echo ]] && echo "libuv|libuv, one loop, callbacks|UV"
    [[ -x $P/go_echo ]] && echo "go|Go, goroutine per connection, GOMAXPROCS=1|GO"
    [[ -n $GEVENT_PY ]] && echo "gevent|gevent, greenlet per connection (StreamServer), one thread|GEVENT"
    return 0
}

# The servers take turns: run 1 of each, then run 2 of each, and so on, so
# that a machine whose speed drifts during the table (a shared VM: seen
# here as 15% between minutes) moves every server's figures alike, and the
# ratios stay honest.  Measuring all runs of one server before the next
# put the drift into the ratios (1000 connections, greenhub / libuv: 1.01
# in one table, 0.89 in the next, minutes apart).
pinned_table() {
    echo "## Echo, 64-byte messages: server on CPU 0, load generator ($(load_desc "$LOAD_THREADS" "$LOAD_CPUS")); the servers take turns, run by run" | tee -a "$md"
    echo | tee -a "$md"
    echo "| conns | server | msgs/s median (min-max) | p50 / p99 µs | server CPU | load CPU | other CPU | greenhub / this |" | tee -a "$md"
    echo "|---|---|---|---|---|---|---|---|" | tee -a "$md"
    local c g r s impl label arr servers
    mapfile -t servers < <(pinned_servers)
    for c in $conns_list; do
        echo "   ... $c connections" >&2
        local -A got=()
        for ((r = 0; r < runs; r++)); do
            for s in "${servers[@]}"; do
                IFS='|' read -r impl label arr <<<"$s"
                local -n cmd="$arr"
                got[$impl]+="$(run_once "$c" "$impl" 1 1 "${cmd[@]}")"$'\n'
                unset -n cmd
            done
        done
        g=""
        for s in "${servers[@]}"; do
            IFS='|' read -r impl label arr <<<"$s"
            local runs_of=()
            mapfile -t runs_of < <(printf '%s' "${got[$impl]}")
            local fig
            fig=$(summarize "$c" "$impl" 1 "${runs_of[@]}")
            [[ -z $g ]] && g=${fig%% *}
            row "$c" "$label" "$g" "$fig"
        done
        [[ -z $GEVENT_PY ]] &&
            echo "| $c | gevent: unavailable (python3-gevent not installed) | — | — | — | — | — | — |" | tee -a "$md"
        unset got
    done
    echo | tee -a "$md"
}

hub_counts() {
    local n=1 out=()
    while ((n < ncpu)); do out+=("$n"); n=$((n * 2)); done
    out+=("$ncpu")
    echo "${out[@]}"
}

# The scaling rows: at each hub count h, greenhub with h hubs (pinned by
# hwloc) and Go's goroutine-per-connection server with GOMAXPROCS=h
# (confined to the same cores, not pinned within them, as Go runs), taking
# turns run by run as in the pinned table, under the same load plan.  Boost.Fiber has no network I/O of its own,
# so it has no echo server; its column says so.
scaling_table() {
    local have_go=0
    [[ -x $P/go_echo ]] && have_go=1
    echo "## I/O-bound core scaling: greenlet server with 1..$ncpu hubs beside Go with GOMAXPROCS=1..$ncpu (hubs pinned by hwloc, one per core; Go confined with taskset to the same cores, its threads not pinned within them; the load generator pinned to the cores the hubs leave, unpinned when none is left; the two servers take turns, run by run)" | tee -a "$md"
    echo | tee -a "$md"
    echo "| conns | hubs | greenhub msgs/s median (min-max) | speedup | p50 / p99 µs | server CPU | Go msgs/s median (min-max) | Go speedup | Go p50 / p99 µs | Go server CPU | greenhub/Go | load CPU (gh/Go) | other CPU (gh/Go) | load generator |" | tee -a "$md"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" | tee -a "$md"
    local c h s r first gfirst cpus ghs gos gf gof batch_notes=()
    local v min max p50 p99 scpu lcpu ocpu lthr
    local gv gmin gmax gp50 gp99 gscpu glcpu gocpu glthr
    for c in $conns_list; do
        first="" gfirst=""
        for h in $(hub_counts); do
            echo "   ... $c connections, $h hub(s)" >&2
            s=$(( h < ncores ? h : ncores ))
            local gh_runs=() go_runs=() batch_runs=() shared=0
            read -r _ cpus <<<"$(load_plan "$s")"
            [[ -z $cpus ]] && shared=1   # the load generator shares the hubs' cores
            for ((r = 0; r < runs; r++)); do
                gh_runs+=("$(run_once "$c" scaling-greenhub "$h" "$s" \
                             env GREENHUB_HUBS="$h" "$B/bench_echo_server" --greenlets)")
                ((have_go)) &&
                    go_runs+=("$(run_once "$c" scaling-go "$h" "$s" \
                        env GOMAXPROCS="$h" taskset -c "$(server_cpus "$s")" "$P/go_echo")")
                ((shared)) &&
                    batch_runs+=("$(run_once "$c" scaling-greenhub-sched-batch "$h" "$s" \
                        env GREENHUB_HUBS="$h" GREENHUB_SCHED_BATCH=1 "$B/bench_echo_server" --greenlets)")
            done
            read -r v min max p50 p99 scpu lcpu ocpu lthr < <(summarize "$c" scaling-greenhub "$h" "${gh_runs[@]}")
            [[ -z $first ]] && first=$v
            ghs="| $c | $h | $(k "$v") ($(k "$min")-$(k "$max")) | $(ratio "$v" "$first")x | $p50 / $p99 | $scpu"
            if ((have_go)); then
                read -r gv gmin gmax gp50 gp99 gscpu glcpu gocpu glthr < <(summarize "$c" scaling-go "$h" "${go_runs[@]}")
                [[ -z $gfirst ]] && gfirst=$gv
                gos="| $(k "$gv") ($(k "$gmin")-$(k "$gmax")) | $(ratio "$gv" "$gfirst")x | $gp50 / $gp99 | $gscpu | $(ratio "$v" "$gv")"
                gf="$lcpu / $glcpu" gof="$ocpu / $gocpu"
            else
                gos="| Go: unavailable (golang-go not installed) | — | — | — | n/a"
                gf="$lcpu" gof="$ocpu"
            fi
            echo "$ghs $gos | $gf | $gof | $(load_desc "$lthr" "$cpus") |" | tee -a "$md"
            ((shared)) && batch_notes+=("$(batch_note "$c" "$h" "$v" "${gv:-}" "${batch_runs[@]}")")
        done
    done
    echo | tee -a "$md"
    echo "Boost.Fiber: no network I/O of its own, no echo server. gevent: one thread only, no core scaling." | tee -a "$md"
    echo | tee -a "$md"
    local n
    for n in "${batch_notes[@]}"; do echo "$n" | tee -a "$md"; echo | tee -a "$md"; done
}

# batch_note CONNS HUBS GH_MEDIAN GO_MEDIAN RESULT-LINE... -> the paragraph
# on a row whose hubs share their cores with the load generator: the same
# server with its hub threads SCHED_BATCH (gh_config.sched_batch), whose
# wakeups do not preempt the load generator they wait for.
batch_note() {
    local c="$1" h="$2" gm="$3" gom="$4" v min max rest; shift 4
    read -r v min max rest < <(summarize "$c" scaling-greenhub-sched-batch "$h" "$@")
    local vs_go="" turns="the default server"
    [[ -n $gom ]] && vs_go=", greenhub/Go $(ratio "$v" "$gom")" turns="the two above"
    echo "At $h hubs ($c connections) the hubs share their cores with the load generator," \
         "and with the default policy each hub wakeup preempts it. The same server with its" \
         "hub threads SCHED_BATCH (GREENHUB_SCHED_BATCH=1, gh_config.sched_batch), taking turns" \
         "with $turns: $(k "$v") ($(k "$min")-$(k "$max")) msgs/s, $(ratio "$v" "$gm")x the" \
         "default$vs_go."
}

# The system calls perf counts one by one (all of them in total).
PERF_CALLS="read write epoll_wait epoll_pwait epoll_ctl poll futex sched_yield"

# breakdown TOOL FILE ROUNDTRIPS -> "name per-round-trip, ..." (largest first)
breakdown() {
    if [[ $1 == strace ]]; then
        awk '/^------/ { n++; next } n == 1 && NF >= 5 { print $NF, $4 }' "$2"
    else
        awk -F, '$3 ~ /^syscalls:sys_enter_/ { sub(/.*sys_enter_/, "", $3); print $3, $1 }' "$2"
    fi | sort -k2,2nr | head -6 |
        awk -v t="$3" '$2 / t >= 0.005 { printf "%s%s %.2f", (NR > 1 ? ", " : ""), $1, $2 / t }'
}

# trace_one TOOL LABEL SERVER-CMD... -> a table row: system calls per round
# trip of SERVER-CMD's whole life, counted by TOOL (strace or perf).
trace_one() {
    local tool="$1" label="$2" c=100 st="$tmp/trace.txt" ev="raw_syscalls:sys_enter" x; shift 2
    for x in $PERF_CALLS; do ev+=",syscalls:sys_enter_$x"; done
    local tracer_cmd=(strace -f -c -o "$st")
    [[ $tool == perf ]] && tracer_cmd=(perf stat -x "," -e "$ev" -o "$st" --)
    port=$((port + 1))
    "${tracer_cmd[@]}" "$@" --port "$port" --duration "$server_limit" >"$tmp/server.log" 2>&1 &
    local tracer=$! i
    for ((i = 0; i < 100; i++)); do   # the traced server: the tracer's only child
        srv_pid=$(awk '{print $1}' "/proc/$tracer/task/$tracer/children" 2>/dev/null)
        [[ -n $srv_pid ]] && break
        sleep 0.05
    done
    [[ -n $srv_pid ]] || die "echo.sh: $tool did not start the server"
    local out total
    out=$("${LOAD_PINNED[@]}" "$B/bench_echo_load" --port "$port" --conns "$c" --warmup "$W" \
          --time "$T" --impl "$label" --load-threads "$LOAD_THREADS" --pid "$srv_pid" \
          --connect-wait 10000) || die "FAILED: $out"
    [[ $(grep '^RESULT' <<<"$out") == *check=ok* ]] || die "WRONG RESULT: $out"
    total=$(sed -n 's/.* total=\([0-9]*\).*/\1/p' <<<"$out")
    stop_server "$tracer"
    local calls
    if [[ $tool == strace ]]; then
        calls=$(awk '$NF == "total" { print $4 }' "$st")
    else
        calls=$(awk -F, '$3 == "raw_syscalls:sys_enter" { print $1 }' "$st")
    fi
    echo "| $label | $tool | $c | $total | $calls | $(ratio "$calls" "$total") | $(breakdown "$tool" "$st" "$total") |" | tee -a "$md"
}

trace_table() {
    command -v strace >/dev/null || die "echo.sh: --strace needs strace (apt-get install strace)"
    local tools=(strace)
    if perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
        tools+=(perf)
    else
        echo "(perf with tracepoints unavailable: strace counts only)" >&2
    fi
    echo "## System calls per echo round trip (server on CPU 0, load generator ($(load_desc "$LOAD_THREADS" "$LOAD_CPUS")), 100 connections)" | tee -a "$md"
    echo | tee -a "$md"
    echo "Whole server life (start-up, accepts) over every round trip. strace -f -c slows the server" \
         "several-fold, so a read more often finds the next message already there; perf stat" \
         "(raw_syscalls tracepoints) counts without that distortion." | tee -a "$md"
    echo | tee -a "$md"
    echo "| server | counted by | conns | round trips | system calls | per round trip | per round trip, by call |" | tee -a "$md"
    echo "|---|---|---|---|---|---|---|" | tee -a "$md"
    local t
    for t in "${tools[@]}"; do
        trace_one "$t" "greenhub, 1 hub" "${GREEN[@]}"
        trace_one "$t" "thread per connection" "${THREADS[@]}"
        [[ -x $P/uv_echo ]] && trace_one "$t" "libuv" "${UV[@]}"
        [[ -x $P/go_echo ]] && trace_one "$t" "Go, GOMAXPROCS=1" "${GO[@]}"
        [[ -n $GEVENT_PY ]] && trace_one "$t" "gevent" "${GEVENT[@]}"
    done
    echo | tee -a "$md"
}

mkdir -p bench/results
md=bench/results/echo.md csv=bench/results/echo.csv
cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
{
    echo "# greenhub echo benchmark, $(date -u +%Y-%m-%d)"
    echo
    echo "Machine: $ncpu CPUs ($cpu_model), $(uname -r); gcc $(gcc -dumpversion)," \
         "$(go version 2>/dev/null | awk '{print $3}'), libuv $(pkg-config --modversion libuv 2>/dev/null)."
    echo "64-byte messages, one in flight per connection; ${W} s warm-up, ${T} s measured;" \
         "median of $runs runs (fresh server each), spread min-max; CPU = cores used over the measured seconds."
    echo
} >"$md"
echo "bench,impl,threads,conns,median,min,max,p50_us,p99_us,server_cpu,load_cpu,other_cpu,load_threads" >"$csv"
cat "$md"
if [[ $mode == strace ]]; then
    trace_table
elif [[ $mode == scaling ]]; then
    scaling_table
else
    pinned_table
    scaling_table
fi
echo "results: $md, $csv"
