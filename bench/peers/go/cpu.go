// cpu.go: core-scaling CPU-bound workload with goroutines.
// main spawns T tasks (default 4000, argv[1]); task i runs ITERS (default
// 100000, argv[2], divisible by 4) xorshift64 steps from seed i+1 in 4 equal
// chunks, calling runtime.Gosched() between chunks (3 yields per task).
// The final x of every task is summed (wrapping uint64) into a checksum.
// Reports elapsed ms and tasks/s; GOMAXPROCS from env.
// Self-check: the checksum must equal a serial recomputation of the same
// work (done after the timed part); bench/peers/pthread/cpu_serial.c prints
// the same checksum for the driver to compare.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func work(seed uint64, iters int) uint64 {
	x := seed
	for i := 0; i < iters; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

func arg(i, def int) int {
	if len(os.Args) <= i {
		return def
	}
	v, err := strconv.Atoi(os.Args[i])
	if err != nil || v <= 0 {
		fmt.Fprintln(os.Stderr, "usage: cpu [T>0] [ITERS>0, divisible by 4]")
		os.Exit(2)
	}
	return v
}

func main() {
	t := arg(1, 4000)
	iters := arg(2, 100000)
	if iters%4 != 0 {
		fmt.Fprintln(os.Stderr, "cpu: ITERS must be divisible by 4")
		os.Exit(2)
	}
	chunk := iters / 4
	res := make([]uint64, t)
	var wg sync.WaitGroup

	t0 := time.Now()
	wg.Add(t)
	for i := 0; i < t; i++ {
		go func(i int) {
			x := uint64(i + 1)
			for c := 0; c < 4; c++ {
				if c > 0 {
					runtime.Gosched()
				}
				x = work(x, chunk)
			}
			res[i] = x
			wg.Done()
		}(i)
	}
	wg.Wait()
	var sum uint64
	for _, x := range res {
		sum += x
	}
	el := time.Since(t0)

	var want uint64 // serial reference, not timed
	for i := 0; i < t; i++ {
		x := uint64(i + 1)
		for c := 0; c < 4; c++ {
			x = work(x, chunk)
		}
		want += x
	}

	ms := float64(el.Nanoseconds()) / 1e6
	tps := float64(t) / el.Seconds()
	status := "ok"
	if sum != want {
		fmt.Fprintf(os.Stderr, "cpu: checksum %d, serial recomputation gives %d\n", sum, want)
		status = "FAIL"
	}
	fmt.Printf("RESULT bench=cpu impl=go threads=%d value=%.1f unit=tasks_per_s check=%s\n", runtime.GOMAXPROCS(0), tps, status)
	fmt.Printf("INFO checksum=%d elapsed_ms=%.2f\n", sum, ms)
	if status != "ok" {
		os.Exit(1)
	}
}
