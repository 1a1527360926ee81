// switch.go: goroutine context-switch cost on one P.
// Two goroutines with GOMAXPROCS=1 each call runtime.Gosched() N times
// (default 10,000,000, argv[1]); every Gosched hands the P to the other
// goroutine, so the result is elapsed / (2*N) ns per switch.
// Self-check: both loops must report exactly N completed iterations.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func pingpong(n int) (int, int) {
	var wg sync.WaitGroup
	var c [2]int
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func(g int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				runtime.Gosched()
				c[g]++
			}
		}(g)
	}
	wg.Wait()
	return c[0], c[1]
}

func main() {
	n := 10000000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: switch [N>0]")
			os.Exit(2)
		}
		n = v
	}
	runtime.GOMAXPROCS(1)
	w := n / 10
	if w > 100000 {
		w = 100000
	}
	pingpong(w) // warm-up

	t0 := time.Now()
	a, b := pingpong(n)
	el := time.Since(t0)

	ns := float64(el.Nanoseconds()) / float64(2*n)
	if a != n || b != n {
		fmt.Fprintf(os.Stderr, "switch: loops completed %d and %d iterations, want %d\n", a, b, n)
		fmt.Printf("RESULT bench=switch impl=go threads=%d value=%.2f unit=ns_per_switch check=FAIL\n", runtime.GOMAXPROCS(0), ns)
		os.Exit(1)
	}
	fmt.Printf("RESULT bench=switch impl=go threads=%d value=%.2f unit=ns_per_switch check=ok\n", runtime.GOMAXPROCS(0), ns)
}
