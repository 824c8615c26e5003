package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestJoinPushValue(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "reg.example:5000", "spin.yaml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, c := range []struct{ in, want []string }{
		{[]string{"stage3", "--push", "reg.example/serpent/stage3:1"}, []string{"stage3", "--push=reg.example/serpent/stage3:1"}},
		{[]string{"--push", "127.0.0.1:5000/x", "stage3"}, []string{"--push=127.0.0.1:5000/x", "stage3"}},
		{[]string{"--push", "localhost/x:1"}, []string{"--push=localhost/x:1"}},
		// Not a reference naming its registry: --push stays alone.
		{[]string{"--push", "stage3"}, []string{"--push", "stage3"}},
		{[]string{"--push", "serpent/stage3:1"}, []string{"--push", "serpent/stage3:1"}},
		{[]string{"build", "--push", "./spin.yaml"}, []string{"build", "--push", "./spin.yaml"}},
		{[]string{"build", "--push", "images/examples/devbox.yaml"}, []string{"build", "--push", "images/examples/devbox.yaml"}},
		{[]string{"build", "--push", "reg.example:5000/spin.yaml"}, []string{"build", "--push", "reg.example:5000/spin.yaml"}}, // a file there
		{[]string{"--push", "reg.example/UPPER"}, []string{"--push", "reg.example/UPPER"}},
		{[]string{"--push", "-t", "reg.example/x:1"}, []string{"--push", "-t", "reg.example/x:1"}},
		{[]string{"--push"}, []string{"--push"}},
		{[]string{"--", "--push", "reg.example/x:1"}, []string{"--", "--push", "reg.example/x:1"}},
	} {
		if got := joinPushValue(c.in); !slices.Equal(got, c.want) {
			t.Errorf("joinPushValue(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestPushFlagUsage: --push without a reference and -t without --push are usage errors that
// say what to give, before anything is built.
func TestPushFlagUsage(t *testing.T) {
	set := filepath.Join("..", "..", "stages", "testdata", "busybox")
	spin := filepath.Join("..", "..", "images", "examples", "runtime.yaml")
	storeDir := filepath.Join(t.TempDir(), "store")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"build", "target-native", "--stages", set, "--push"}, "build: --push without a reference: give --push REGISTRY/REPO[:TAG], or -t REGISTRY/REPO[:TAG] with --push"},
		{[]string{"build", "--push", "target-native", "--stages", set}, "build: --push without a reference"},
		{[]string{"build", "target-native", "--stages", set, "-t", "reg.example/x:1"}, "build: -t reg.example/x:1 names where --push sends the result: add --push"},
		{[]string{"build", "target-native", "--stages", set, "-t", "reg.example/UPPER", "--push"}, "build: --push: "},
		{[]string{"spin", "build", spin, "--push"}, "spin: --push without a reference"},
		{[]string{"build", "--spin", spin, "-t", "reg.example/x:1"}, "spin: -t reg.example/x:1 names where --push sends the result: add --push"},
	} {
		code, out, stderr := cli(t, append([]string{"--store", storeDir}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, want 2 and %q\n%s%s", c.args, code, c.want, out, stderr)
		}
	}
}
