// Package progress prints a line every few seconds while a long transfer runs: what moves, how
// many bytes of how many, and the rate.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultInterval is how often a Meter prints.
const DefaultInterval = 3 * time.Second

// Meter counts bytes of one transfer and prints "VERB NAME: N of M MiB (R MiB/s)" to W at most
// once an Interval, and once more when done if the transfer took longer than one. A nil *Meter
// counts nothing and prints nothing. Its methods are safe for concurrent use.
type Meter struct {
	w        io.Writer
	label    string
	interval time.Duration
	now      func() time.Time

	mu          sync.Mutex
	n, total    int64
	start, last time.Time
}

// New returns a meter for a transfer of total bytes (0 or less: unknown) labelled like
// "pulling stage3", or nil when w is nil.
func New(w io.Writer, label string, total int64) *Meter {
	return NewEvery(w, label, total, DefaultInterval)
}

// NewEvery is New with a line at most every interval.
func NewEvery(w io.Writer, label string, total int64, interval time.Duration) *Meter {
	if w == nil {
		return nil
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	now := time.Now()
	return &Meter{w: w, label: label, total: total, interval: interval, now: time.Now, start: now, last: now}
}

// SetTotal sets the number of bytes expected, when it becomes known later.
func (m *Meter) SetTotal(total int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.total = total
	m.mu.Unlock()
}

// Add counts n more bytes.
func (m *Meter) Add(n int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n += n
	if now := m.now(); now.Sub(m.last) >= m.interval {
		m.last = now
		m.print(now)
	}
}

// Set records that n bytes are done in all (for sources that report totals, not increments).
func (m *Meter) Set(n int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	d := n - m.n
	m.mu.Unlock()
	m.Add(d)
}

// Done prints the final line of a transfer that ran longer than one interval.
func (m *Meter) Done() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if now := m.now(); now.Sub(m.start) >= m.interval {
		m.print(now)
	}
}

func (m *Meter) print(now time.Time) {
	rate := float64(m.n) / now.Sub(m.start).Seconds() / (1 << 20)
	if m.total > 0 {
		fmt.Fprintf(m.w, "%s: %s of %s (%.1f MiB/s)\n", m.label, MiB(m.n), MiB(m.total), rate)
	} else {
		fmt.Fprintf(m.w, "%s: %s (%.1f MiB/s)\n", m.label, MiB(m.n), rate)
	}
}

// MiB formats a byte count in MiB with one decimal.
func MiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Reader returns r counting what is read from it on m.
func Reader(r io.Reader, m *Meter) io.Reader {
	if m == nil {
		return r
	}
	return &reader{r: r, m: m}
}

type reader struct {
	r io.Reader
	m *Meter
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.m.Add(int64(n))
	return n, err
}
