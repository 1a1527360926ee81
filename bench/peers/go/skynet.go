// skynet.go: the skynet benchmark with goroutines.
// A 10-ary tree of goroutines with 1,000,000 leaves: leaf i returns i, each
// inner node spawns its 10 children, sums their results received over a
// channel and sends the sum to its parent. Result: total ms of one run.
// GOMAXPROCS from env. Self-check: the root sum must be 499999500000.
package main

import (
	"fmt"
	"os"
	"runtime"
	"time"
)

func skynet(out chan<- uint64, num, size uint64) {
	if size == 1 {
		out <- num
		return
	}
	sub := size / 10
	c := make(chan uint64) // unbuffered, as in the original skynet
	for i := uint64(0); i < 10; i++ {
		go skynet(c, num+i*sub, sub)
	}
	var sum uint64
	for i := 0; i < 10; i++ {
		sum += <-c
	}
	out <- sum
}

func main() {
	const leaves = 1000000
	const want = uint64(499999500000)

	t0 := time.Now()
	c := make(chan uint64)
	go skynet(c, 0, leaves)
	sum := <-c
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6

	status := "ok"
	if sum != want {
		fmt.Fprintf(os.Stderr, "skynet: sum %d, want %d\n", sum, want)
		status = "FAIL"
	}
	fmt.Printf("RESULT bench=skynet impl=go threads=%d value=%.2f unit=ms check=%s\n", runtime.GOMAXPROCS(0), ms, status)
	if status != "ok" {
		os.Exit(1)
	}
}
