package clustertest

import (
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowestPort is the lowest port listenFree picks from.
const lowestPort = 10000

// listenFree binds a free port on 127.0.0.1, below the kernel's range of
// ephemeral ports when it can read it. A node binds its port again after
// every restart, and a port in that range may meanwhile be taken as the
// local end of any outbound connection, for as long as that connection
// lives: chaos runs failed with "address already in use" when restarting
// the coordinator. Below the range only another listener can take it.
func listenFree() (net.Listener, error) {
	if low := ephemeralLow(); low > lowestPort {
		for range 100 {
			port := lowestPort + mrand.IntN(low-lowestPort)
			if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				return ln, nil
			}
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// ephemeralLow is the first port of Linux's ephemeral range, or 0 when it
// cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return n
}
