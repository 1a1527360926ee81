// spawn.go: cost of one goroutine spawn + join, strictly sequential.
// For N iterations (default 1,000,000, argv[1]) start a goroutine that adds
// its index into a shared sum, and wait for it (WaitGroup) before starting
// the next one. Result: elapsed / N ns per spawn+join. GOMAXPROCS from env.
// Self-check: the sum of indices must equal N*(N-1)/2.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func run(n int) uint64 {
	var sum uint64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			sum += uint64(i) // the WaitGroup orders this before the next spawn
			wg.Done()
		}(i)
		wg.Wait()
	}
	return sum
}

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: spawn [N>0]")
			os.Exit(2)
		}
		n = v
	}
	w := n / 10
	if w > 10000 {
		w = 10000
	}
	run(w) // warm-up

	t0 := time.Now()
	sum := run(n)
	el := time.Since(t0)

	ns := float64(el.Nanoseconds()) / float64(n)
	want := uint64(n) * uint64(n-1) / 2
	status := "ok"
	if sum != want {
		fmt.Fprintf(os.Stderr, "spawn: sum of indices %d, want %d\n", sum, want)
		status = "FAIL"
	}
	fmt.Printf("RESULT bench=spawn impl=go threads=%d value=%.2f unit=ns_per_spawn check=%s\n", runtime.GOMAXPROCS(0), ns, status)
	if status != "ok" {
		os.Exit(1)
	}
}
