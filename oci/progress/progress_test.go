package progress

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// fakeClock advances by step on every reading.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

func TestMeter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		total int64
		step  time.Duration
		want  []string
	}{
		{"known total", 4 << 20, 2 * time.Second, []string{
			"pulling x: 2.0 MiB of 4.0 MiB (0.5 MiB/s)",
			"pulling x: 4.0 MiB of 4.0 MiB (0.5 MiB/s)",
			"pulling x: 4.0 MiB of 4.0 MiB (0.3 MiB/s)",
		}},
		{"unknown total", 0, 2 * time.Second, []string{
			"pulling x: 2.0 MiB (0.5 MiB/s)",
			"pulling x: 4.0 MiB (0.5 MiB/s)",
			"pulling x: 4.0 MiB (0.3 MiB/s)",
		}},
		{"fast transfer prints nothing", 4 << 20, time.Millisecond, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			m := New(&out, "pulling x", tc.total)
			clk := &fakeClock{t: m.start, step: tc.step}
			m.now = clk.now
			// Each 1 MiB read advances the clock one step: with 2 s steps and a 3 s interval,
			// a line every second read (the read that meets EOF is a fifth step).
			r := Reader(io.LimitReader(zeros{}, 4<<20), m)
			buf := make([]byte, 1<<20)
			for {
				if _, err := io.ReadFull(r, buf); err != nil {
					break
				}
			}
			m.Done()
			got := strings.FieldsFunc(out.String(), func(r rune) bool { return r == '\n' })
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestNilMeter(t *testing.T) {
	m := New(nil, "x", 1)
	if m != nil {
		t.Fatal("New(nil writer) is not nil")
	}
	m.Add(1)
	m.Set(2)
	m.SetTotal(3)
	m.Done()
	r := strings.NewReader("abc")
	if Reader(r, m) != io.Reader(r) {
		t.Error("Reader with a nil meter wraps the reader")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	n := min(len(p), 1<<20)
	clear(p[:n])
	return n, nil
}
