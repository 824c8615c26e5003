package main

import (
	"strings"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/stages"
)

func TestCounterPercent(t *testing.T) {
	for _, c := range []struct {
		line string
		want int
	}{
		{"llvm | [1900/2789 5782.659s] Building CXX object tools/clang/lib/Lex/X.cpp.o", 68},
		{"llvm | [2789/2789] Linking CXX executable bin/clang-14", 100},
		{"cmake | [ 45%] Building C object Source/CMakeFiles/x.dir/y.c.o", 45},
		{"cmake | [100%] Built target cmake", 100},
		{"stage3 | [  3%] Building", 3},
		{"llvm | [0/0] nothing", -1},      // no total
		{"llvm | [12/10] miscounted", -1}, // past its total
		{"cmake | [450%] no", -1},         // not a percentage
		{"llvm | echo [1/2] inside a line", -1},
		{"[1/2] without a stage prefix", -1},
		{"musl | make[1]: Entering directory", -1},
		{"", -1},
	} {
		if got := counterPercent([]byte(c.line)); got != c.want {
			t.Errorf("%q: %d, want %d", c.line, got, c.want)
		}
	}
}

func TestStatusLine(t *testing.T) {
	where := "[3/9] llvm for linux/amd64"
	last := &build.Estimate{Took: 87 * time.Minute, SameKey: true}
	other := &build.Estimate{Took: 87 * time.Minute}
	for _, c := range []struct {
		elapsed time.Duration
		percent int
		est     *build.Estimate
		want    string
	}{
		{9*time.Minute + 7*time.Second, -1, nil, "[3/9] llvm for linux/amd64 9m7s"},
		{9*time.Minute + 7*time.Second, 68, nil, "[3/9] llvm for linux/amd64 9m7s 68%"},
		{62 * time.Minute, 68, last, "[3/9] llvm for linux/amd64 1h2m0s 68%, last build 1h27m: about 25m left"},
		{62 * time.Minute, -1, other, "[3/9] llvm for linux/amd64 1h2m0s, last build ~1h27m: about 25m left"},
		{87*time.Minute - 20*time.Second, -1, last, "[3/9] llvm for linux/amd64 1h26m40s, last build 1h27m: about 20s left"},
		{90 * time.Minute, 99, last, "[3/9] llvm for linux/amd64 1h30m0s 99%, last build 1h27m: over by 3m"},
		{100 * time.Millisecond, -1, &build.Estimate{Took: 400 * time.Millisecond, SameKey: true}, "[3/9] llvm for linux/amd64 0s, last build 400ms: under a second left"},
	} {
		if got := statusLine(where, c.elapsed, c.percent, c.est); got != c.want {
			t.Errorf("statusLine(%s, %d, %v):\n got %q\nwant %q", c.elapsed, c.percent, c.est, got, c.want)
		}
	}
}

// TestConsoleTracksTheRunningStagesCounter: in tty mode the status line under the log shows
// the running stage's last counter, and a new stage starts without one.
func TestConsoleTracksTheRunningStagesCounter(t *testing.T) {
	var out strings.Builder
	c := newConsole(&out, true)
	defer c.stop()
	step := &build.Step{Vertex: &build.Vertex{Recipe: &stages.Recipe{Name: "x"}}, Decision: build.Decision{Action: build.Build}}
	c.event(build.Event{Kind: build.StepStarted, Index: 1, Total: 2, Step: step, Estimate: &build.Estimate{Took: time.Hour, SameKey: true}})
	c.Write([]byte("x | [10/40] compile\n"))
	c.Write([]byte("x | some other line\n"))
	if s := out.String(); !strings.HasSuffix(s, " 25%, last build 1h0m: about 1h0m left") && !strings.HasSuffix(s, " 25%, last build 1h0m: about 59m left") {
		t.Errorf("after a counter and a line: the status line is not the counter's:\n%q", s[strings.LastIndex(s, "\r"):])
	}
	c.event(build.Event{Kind: build.StepDone, Index: 1, Total: 2, Step: step, Result: &build.StepResult{Step: step}})
	c.event(build.Event{Kind: build.StepStarted, Index: 2, Total: 2, Step: step})
	c.Write([]byte("x | no counter yet\n"))
	if s := out.String(); strings.HasSuffix(s, "%") || strings.Contains(s[strings.LastIndex(s, "\r"):], "%") {
		t.Errorf("a new stage kept the last one's counter:\n%q", s[strings.LastIndex(s, "\r"):])
	}
}
