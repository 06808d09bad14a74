//go:build !race

package clustertest_test

// slowdown is how much slower the race detector makes the CPU-bound work
// of a test (decoding and applying large rounds): none without it.
const slowdown = 1
