// echo.go: the echo benchmark's Go peer: one goroutine per connection,
// blocking-style Read and Write on net.Conn (the runtime parks the
// goroutine in its netpoller), GOMAXPROCS from the environment.
//
//	go_echo [-port P] [-duration S]
//
// Listens on 127.0.0.1:P (default 7000).  Stops on SIGTERM/SIGINT or after
// S seconds (0, the default: only on a signal), prints
//
//	INFO echo_server mode=go hubs=<GOMAXPROCS> accepted=.. closed=.. bytes=.. resets=.. errors=..
//
// and exits 1 if a connection failed with an unexpected error.  The load
// generator (bench/echo_load.c) checks the bytes.  Go sets TCP_NODELAY on
// every connection by default, as the other servers do by hand.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// Bytes read at once: the same as the greenhub server's handler buffer.
const bufSize = 16384

var accepted, closed, bytes, resets, failures uint64

// handle echoes until EOF, as the greenhub server's handle() does.
func handle(c net.Conn) {
	buf := make([]byte, bufSize)
	var echoed uint64
	var err error
	for {
		var n int
		n, err = c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				err = werr
				break
			}
			echoed += uint64(n)
		}
		if err != nil {
			break
		}
	}
	c.Close()
	connDone(echoed, err)
}

// connDone adds a finished connection to the totals (once per connection,
// not per message, as the other servers do).
func connDone(echoed uint64, err error) {
	atomic.AddUint64(&bytes, echoed)
	switch {
	case err == nil || errors.Is(err, io.EOF):
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		atomic.AddUint64(&resets, 1)
	default:
		fmt.Fprintln(os.Stderr, "go_echo: connection failed:", err)
		atomic.AddUint64(&failures, 1)
	}
	atomic.AddUint64(&closed, 1)
}

func acceptLoop(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off rather than spin.
			fmt.Fprintln(os.Stderr, "go_echo: accept:", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		atomic.AddUint64(&accepted, 1)
		go handle(c)
	}
}

func main() {
	port := flag.Int("port", 7000, "TCP port on 127.0.0.1")
	duration := flag.Int("duration", 0, "seconds to serve (0: until SIGTERM/SIGINT)")
	flag.Parse()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_echo: listen:", err)
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go acceptLoop(ln)
	fmt.Printf("INFO echo_server listening=127.0.0.1:%d pid=%d\n", *port, os.Getpid())
	var timeout <-chan time.Time
	if *duration > 0 {
		timeout = time.After(time.Duration(*duration) * time.Second)
	}
	select {
	case <-stop:
	case <-timeout:
	}
	fmt.Printf("INFO echo_server mode=go hubs=%d accepted=%d closed=%d bytes=%d resets=%d errors=%d\n",
		runtime.GOMAXPROCS(0), atomic.LoadUint64(&accepted), atomic.LoadUint64(&closed),
		atomic.LoadUint64(&bytes), atomic.LoadUint64(&resets), atomic.LoadUint64(&failures))
	if atomic.LoadUint64(&failures) != 0 {
		os.Exit(1)
	}
}
