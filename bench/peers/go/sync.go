// sync.go: channel ping-pong, a contended and an uncontended sync.Mutex,
// the peer of bench/sync.c (its cross-hub xping has no Go peer: pinning a
// goroutine to a CPU takes sched_setaffinity, which the standard library
// lacks).  Three modes:
//
//	sync pingpong [N=1000000]
//	    GOMAXPROCS=1 (set here): goroutines A and B bounce a token through
//	    two `chan int` of capacity 1 (A sends i on c1; B receives it and
//	    sends i+1 on c2; A receives that).  ns per round trip.
//	    Self-check: every reply is the request + 1, B handled exactly N
//	    tokens, and the replies sum to N(N+1)/2.
//
//	sync mutex [G=100] [K=10000]
//	    GOMAXPROCS from the environment (default: every CPU): G goroutines
//	    each do K sync.Mutex-protected increments of a plain counter; the
//	    main goroutine starts them and waits (sync.WaitGroup).  ns per
//	    Lock+Unlock = elapsed / (G*K), starts and waits included.
//	    Self-check: counter == G*K exactly.
//
//	sync uncontended [N=10000000]
//	    GOMAXPROCS from the environment: one goroutine does N sync.Mutex
//	    Lock+Unlock pairs, incrementing a counter inside.  ns per
//	    Lock+Unlock.  Self-check: counter == N exactly.
//
// All run once untimed first (1/20 of the work), as bench/sync.c does.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func pingpong(n int) (ns float64, ok bool) {
	c1 := make(chan int, 1)
	c2 := make(chan int, 1)
	var wg sync.WaitGroup
	var handled, bad int
	var sum uint64
	var el time.Duration
	wg.Add(2)
	go func() { // A
		defer wg.Done()
		t0 := time.Now()
		for i := 0; i < n; i++ {
			c1 <- i
			r := <-c2
			if r != i+1 {
				bad++
			}
			sum += uint64(r)
		}
		el = time.Since(t0)
	}()
	go func() { // B
		defer wg.Done()
		for i := 0; i < n; i++ {
			x := <-c1
			c2 <- x + 1
			handled++
		}
	}()
	wg.Wait()
	want := uint64(n) * uint64(n+1) / 2
	ok = bad == 0 && handled == n && sum == want && len(c1) == 0 && len(c2) == 0
	if !ok {
		fmt.Fprintf(os.Stderr, "sync pingpong: bad replies %d, B handled %d of %d, sum %d (want %d)\n",
			bad, handled, n, sum, want)
	}
	return float64(el.Nanoseconds()) / float64(n), ok
}

func mutex(g, k int) (ns float64, ok bool) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	t0 := time.Now()
	wg.Add(g)
	for i := 0; i < g; i++ {
		go func() {
			defer wg.Done()
			for j := 0; j < k; j++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	ok = counter == g*k
	if !ok {
		fmt.Fprintf(os.Stderr, "sync mutex: counter %d, want %d\n", counter, g*k)
	}
	return float64(el.Nanoseconds()) / float64(g*k), ok
}

func uncontended(n int) (ns float64, ok bool) {
	var mu sync.Mutex
	counter := 0
	t0 := time.Now()
	for i := 0; i < n; i++ {
		mu.Lock()
		counter++
		mu.Unlock()
	}
	el := time.Since(t0)
	ok = counter == n
	if !ok {
		fmt.Fprintf(os.Stderr, "sync uncontended: counter %d, want %d\n", counter, n)
	}
	return float64(el.Nanoseconds()) / float64(n), ok
}

func arg(i, dflt int) int {
	if len(os.Args) <= i {
		return dflt
	}
	v, err := strconv.Atoi(os.Args[i])
	if err != nil || v <= 0 {
		usage()
	}
	return v
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: sync pingpong [N>0] | sync mutex [G>0] [K>0] | sync uncontended [N>0]")
	os.Exit(2)
}

func warm(n int) int {
	if n/20 > 0 {
		return n / 20
	}
	return 1
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var bench, unit string
	var ns float64
	var ok bool
	switch os.Args[1] {
	case "pingpong":
		n := arg(2, 1000000)
		runtime.GOMAXPROCS(1)
		_, ok1 := pingpong(warm(n))
		ns, ok = pingpong(n)
		ok = ok && ok1
		bench, unit = "pingpong", "ns_per_roundtrip"
	case "mutex":
		g, k := arg(2, 100), arg(3, 10000)
		_, ok1 := mutex(g, warm(k))
		ns, ok = mutex(g, k)
		ok = ok && ok1
		bench, unit = "mutex", "ns_per_lock"
	case "uncontended":
		n := arg(2, 10000000)
		_, ok1 := uncontended(warm(n))
		ns, ok = uncontended(n)
		ok = ok && ok1
		bench, unit = "uncontended", "ns_per_lock"
	default:
		usage()
	}
	check := "ok"
	if !ok {
		check = "FAIL"
	}
	fmt.Printf("RESULT bench=%s impl=go threads=%d value=%.2f unit=%s check=%s\n",
		bench, runtime.GOMAXPROCS(0), ns, unit, check)
	if !ok {
		os.Exit(1)
	}
}
