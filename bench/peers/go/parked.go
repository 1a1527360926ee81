// parked.go: resident memory per parked goroutine.
// Measures RSS (/proc/self/statm resident pages * page size) as a baseline,
// starts N goroutines (default 1,000,000, argv[1]) that each bump an atomic
// counter and block receiving on a shared channel, waits until all N have
// checked in, measures RSS again and reports (RSS - baseline) / N bytes.
// Then closes the channel to release them all and waits for them.
// Self-check: all N goroutines must have finished (atomic count == N).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		fmt.Fprintln(os.Stderr, "parked: cannot read /proc/self/statm:", err)
		os.Exit(2)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "parked: bad /proc/self/statm:", err)
		os.Exit(2)
	}
	return pages * int64(os.Getpagesize())
}

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: parked [N>0]")
			os.Exit(2)
		}
		n = v
	}
	release := make(chan struct{})
	var wg sync.WaitGroup
	var parked, finished int64

	runtime.GC()
	base := rssBytes()

	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			atomic.AddInt64(&parked, 1)
			<-release
			atomic.AddInt64(&finished, 1)
			wg.Done()
		}()
	}
	for atomic.LoadInt64(&parked) < int64(n) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the last ones reach the receive
	per := float64(rssBytes()-base) / float64(n)

	close(release)
	wg.Wait()

	fmt.Printf("INFO tasks=%d\n", n)
	status := "ok"
	if f := atomic.LoadInt64(&finished); f != int64(n) {
		fmt.Fprintf(os.Stderr, "parked: %d goroutines finished, want %d\n", f, n)
		status = "FAIL"
	}
	fmt.Printf("RESULT bench=parked impl=go threads=%d value=%.1f unit=bytes_per_task check=%s\n", runtime.GOMAXPROCS(0), per, status)
	if status != "ok" {
		os.Exit(1)
	}
}
