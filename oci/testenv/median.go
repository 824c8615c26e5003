package testenv

import (
	"slices"
	"time"
)

// Median is the middle of ds (the mean of the two middle ones for an even count, 0 for none):
// what the benchmarks compare when they run each tool several times by turns.
func Median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
