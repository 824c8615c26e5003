// Package testenv decides, in one place, what a test does when the machine lacks something it
// needs (root, a tool such as runc or skopeo, overlayfs, binfmt_misc): on a developer's machine
// it skips with a message naming what is missing; under CI=true it fails, because CI must run
// every test.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where nothing may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips t (fails it in CI) with the reason unless ok.
func Require(t testing.TB, ok bool, missing string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("CI=true and this test needs %s; run `make deps` as root", missing)
	}
	t.Skipf("needs %s (run `make deps` as root to install it)", missing)
}

// RequireRoot requires the test to run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "root")
}

// RequireTools requires each named program on PATH and returns nothing; look it up again with
// exec.LookPath where the path matters.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		_, err := exec.LookPath(n)
		Require(t, err == nil, "the program "+n)
	}
}
