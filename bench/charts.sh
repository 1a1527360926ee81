#!/usr/bin/env bash
# bench/charts.sh [DIR] — draws the suite's charts (PNG, gnuplot) from the
# results bench/run.sh wrote to DIR (default bench/results):
#   scaling_cpu.png   CPU-bound core scaling: speedup over 1 hub (1 thread)
#                     against hubs, greenhub, Go and Boost.Fiber, with the
#                     ideal line;
#                     from latest.csv (bench=cpu).
#   scaling_echo.png  I/O-bound core scaling: the greenlet echo server's and
#                     Go's msgs/s over their 1-hub figures, at the largest
#                     connection count measured; from echo.csv.
#   peers.png         greenhub against each peer, one bar per table row of
#                     the per-operation benchmarks: peer / greenhub, so above
#                     1 greenhub is ahead (log scale); from peers.tsv, which
#                     run.sh --full writes beside the table.
# A chart whose data is missing is skipped with a line saying so.  Without
# gnuplot (bench/build.sh installs gnuplot-nox) nothing is drawn and the
# script says so; it never fails the benchmark run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir="${1:-bench/results}"
if ! command -v gnuplot >/dev/null; then
    echo "charts: gnuplot is not installed (apt-get install gnuplot-nox): no charts drawn"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
term='set terminal pngcairo noenhanced size 800,500 font "sans,10"'

# speedups IMPL < csv rows "threads median" -> "threads speedup" (over the
# smallest thread count's median), sorted by threads.
speedups() {
    sort -n -k1,1 | awk '!seen[$1]++' |
        awk 'NR == 1 { base = $2 } base > 0 { printf "%s %.3f\n", $1, $2 / base }'
}

scaling_chart() {   # NAME TITLE YLABEL DATAFILE... (as "label:file")
    local out="$dir/$1" title="$2" ylabel="$3"; shift 3
    local plots="" max=1 f
    for spec in "$@"; do
        f="${spec#*:}"
        [[ -s $f ]] || continue
        max=$(awk -v m="$max" '$1 > m { m = $1 } END { print m }' "$f")
        plots+="${plots:+, }'$f' using 1:2 with linespoints lw 2 pt 7 title '${spec%%:*}'"
    done
    [[ -n $plots ]] || { echo "charts: no data for $1: skipped"; return; }
    gnuplot <<EOF
$term
set output '$out'
set title '$title'
set xlabel 'hubs (Go: GOMAXPROCS; Boost.Fiber: threads)'
set ylabel '$ylabel'
set key top left
set grid
set xrange [0.8:$max * 1.05]
set yrange [0:$max * 1.1]
set xtics 1
plot x with lines dt 2 lc rgb 'gray40' title 'ideal', $plots
EOF
    echo "charts: $out"
}

cpu_chart() {
    local csv="$dir/latest.csv"
    [[ -s $csv ]] || { echo "charts: $csv missing: scaling_cpu.png skipped"; return; }
    for impl in greenhub go boost_fiber; do
        awk -F, -v i="$impl" '$1 == "cpu" && $2 == i { print $3, $4 }' "$csv" | speedups > "$tmp/cpu_$impl"
    done
    scaling_chart scaling_cpu.png 'Core scaling, CPU-bound (all tasks spawned from one greenlet)' \
        'speedup over 1 hub (1 thread)' "greenhub:$tmp/cpu_greenhub" "Go:$tmp/cpu_go" \
        "Boost.Fiber work_stealing:$tmp/cpu_boost_fiber"
}

echo_chart() {
    local csv="$dir/echo.csv"
    [[ -s $csv ]] || { echo "charts: $csv missing: scaling_echo.png skipped"; return; }
    local conns impl
    conns=$(awk -F, 'NR > 1 && $2 == "scaling-greenhub" { print $4 }' "$csv" | sort -n | tail -1)
    [[ -n $conns ]] || { echo "charts: no scaling rows in $csv: scaling_echo.png skipped"; return; }
    for impl in greenhub go; do
        awk -F, -v c="$conns" -v i="scaling-$impl" '$2 == i && $4 == c { print $3, $5 }' "$csv" |
            speedups > "$tmp/echo_$impl"
    done
    scaling_chart scaling_echo.png "Core scaling, I/O-bound: echo server, $conns connections" \
        'msgs/s over 1 hub (GOMAXPROCS=1)' "greenhub:$tmp/echo_greenhub" "Go:$tmp/echo_go"
}

peers_chart() {
    local tsv="$dir/peers.tsv" out="$dir/peers.png"
    [[ -s $tsv ]] || { echo "charts: $tsv missing (run.sh --full writes it): peers.png skipped"; return; }
    # one bar per row: "benchmark vs peer" ratio
    awk -F'\t' '$3 ~ /^[0-9.]+$/ && $3 > 0 { printf "\"%s\\nvs %s\" %s\n", $1, $2, $3 }' "$tsv" > "$tmp/peers"
    awk -F'\t' '!($3 ~ /^[0-9.]+$/ && $3 > 0) { printf "charts: peers.png leaves out \"%s\" vs %s: ratio %s\n", $1, $2, $3 }' "$tsv"
    local n
    n=$(wc -l < "$tmp/peers")
    ((n > 0)) || { echo "charts: no ratios in $tsv: peers.png skipped"; return; }
    gnuplot <<EOF
$term
set terminal pngcairo noenhanced size $((n < 10 ? 800 : 200 + 60 * n)),820 font "sans,9"
set output '$out'
set title "greenhub beside its peers, same machine, same run\npeer / greenhub: above 1 greenhub is ahead (green), below 1 behind"
set style fill solid 0.7 border -1
set boxwidth 0.6
set logscale y 10
set grid ytics
set xtics rotate by -40 left font "sans,8"
set bmargin 24
set ylabel 'peer / greenhub (log)'
set xrange [-0.7:$n - 0.3]
f(x) = 1
plot '$tmp/peers' using 0:(\$2 >= 1 ? \$2 : 1/0):xtic(1) with boxes lc rgb '#2e9e5b' notitle, \
     '$tmp/peers' using 0:(\$2 < 1 ? \$2 : 1/0) with boxes lc rgb '#e07b39' notitle, \
     '$tmp/peers' using 0:2:(sprintf('%.2f', \$2)) with labels offset 0,0.8 notitle, \
     f(x) with lines lc rgb 'red' dt 2 title 'even'
EOF
    echo "charts: $out"
}

cpu_chart
echo_chart
peers_chart
