package sources

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/oci/testenv"
	"github.com/serpent-os/serpent-oci/stages"
)

var content = []byte("the source's bytes\n")

func sum(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

func newCache(t *testing.T, mirrors ...string) *Cache {
	return &Cache{Dir: filepath.Join(t.TempDir(), "cache"), Mirrors: mirrors}
}

func TestMirror(t *testing.T) {
	ctx := context.Background()
	mirror := t.TempDir()
	os.WriteFile(filepath.Join(mirror, "by-name.txt"), content, 0o644)
	os.WriteFile(filepath.Join(mirror, sum([]byte("by digest\n"))), []byte("by digest\n"), 0o644)
	c := newCache(t, filepath.Join(t.TempDir(), "missing-mirror"), mirror)

	for _, s := range []stages.Source{
		{Name: "by-name", File: "by-name.txt", SHA256: sum(content)},
		{Name: "by-digest", File: "other-name.tar", SHA256: sum([]byte("by digest\n"))},
	} {
		p, err := c.Ensure(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); sum(b) != s.SHA256 || !c.Has(s) {
			t.Fatalf("%s: cached file has sha256 %s", s.Name, sum(b))
		}
	}

	// A mirror file with other bytes: an error naming both digests and the file.
	os.WriteFile(filepath.Join(mirror, "bad.txt"), []byte("tampered"), 0o644)
	want := sum([]byte("the real bytes"))
	_, err := c.Ensure(ctx, stages.Source{Name: "bad", File: "bad.txt", SHA256: want})
	var m *MismatchError
	if !errors.As(err, &m) || m.Actual != sum([]byte("tampered")) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "bad.txt") {
		t.Fatalf("tampered mirror file: %v", err)
	}
	if c.Has(stages.Source{SHA256: want}) {
		t.Fatal("a mismatching file entered the cache")
	}

	// No mirror has it and it has no origin.
	_, err = c.Ensure(ctx, stages.Source{Name: "nowhere", File: "n.tar", SHA256: sum([]byte("n"))})
	if err == nil || !strings.Contains(err.Error(), "names no origin") {
		t.Fatalf("source with no origin: %v", err)
	}
}

func TestHTTPRetriesAndVerifies(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/missing":
			http.NotFound(w, r)
		case r.URL.Path == "/flaky" && n == 1:
			http.Error(w, "try later", http.StatusServiceUnavailable)
		default:
			w.Write(content)
		}
	}))
	defer srv.Close()
	var progress strings.Builder
	c := newCache(t)
	c.URL = &HTTP{Backoff: time.Millisecond, Progress: &progress}
	ctx := context.Background()

	if _, err := c.Ensure(ctx, stages.Source{Name: "flaky", URL: srv.URL + "/flaky", File: "flaky", SHA256: sum(content)}); err != nil {
		t.Fatalf("a 503 then a 200: %v", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d requests, want 2", calls.Load())
	}
	calls.Store(10)
	_, err := c.Ensure(ctx, stages.Source{Name: "missing", URL: srv.URL + "/missing", File: "missing", SHA256: sum([]byte("x"))})
	if err == nil || !strings.Contains(err.Error(), "404") || calls.Load() != 11 {
		t.Fatalf("a 404 is not retried and is reported: %v (%d requests)", err, calls.Load()-10)
	}
	_, err = c.Ensure(ctx, stages.Source{Name: "wrong", URL: srv.URL + "/wrong", File: "wrong", SHA256: sum([]byte("other"))})
	var m *MismatchError
	if !errors.As(err, &m) || m.Where != srv.URL+"/wrong" {
		t.Fatalf("wrong bytes from a URL: %v", err)
	}
}

// fakeFetcher writes fixed bytes, counting its calls.
type fakeFetcher struct {
	data  []byte
	calls int
}

func (f *fakeFetcher) Fetch(_ context.Context, _ stages.Source, dst string) error {
	f.calls++
	return os.WriteFile(dst, f.data, 0o644)
}

func TestURLFallsBackToDebianCopy(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	c := newCache(t)
	deb := &fakeFetcher{data: content}
	c.URL, c.Debian = &HTTP{Attempts: 1}, deb
	s := stages.Source{Name: "musl", URL: srv.URL + "/musl.tar.gz", File: "musl.tar.gz", SHA256: sum(content),
		Debian: &stages.DebianSource{Package: "musl", Version: "1", File: "musl.tar.gz"}}
	if _, err := c.Ensure(context.Background(), s); err != nil || deb.calls != 1 {
		t.Fatalf("unreachable URL with a Debian copy: %v (debian fetched %d times)", err, deb.calls)
	}
	// A Debian copy with other bytes is an error, never silently taken.
	c2 := newCache(t)
	c2.URL, c2.Debian = &HTTP{Attempts: 1}, &fakeFetcher{data: []byte("repacked")}
	var m *MismatchError
	if _, err := c2.Ensure(context.Background(), s); !errors.As(err, &m) {
		t.Fatalf("mismatching Debian copy: %v", err)
	}
}

// TestDebianSourcePackage fetches a small Debian source package's orig tarball through apt,
// as recipes do for sources that only exist as Debian's repack (needs `make deps`'s deb-src).
func TestDebianSourcePackage(t *testing.T) {
	testenv.RequireRoot(t)
	out, _ := exec.Command("apt-cache", "showsrc", "hello").Output()
	testenv.Require(t, strings.Contains(string(out), "hello_2.10.orig.tar.gz"), "deb-src entries for Debian's hello 2.10-3 (make deps adds them)")
	c := newCache(t)
	s := stages.Source{
		Name: "hello", File: "hello_2.10.orig.tar.gz",
		SHA256: "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b",
		Debian: &stages.DebianSource{Package: "hello", Version: "2.10-3", File: "hello_2.10.orig.tar.gz"},
	}
	p, err := c.Ensure(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != 725946 {
		t.Fatalf("fetched %s: %v", p, err)
	}
	entries, _ := os.ReadDir(c.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("fetch left %s in the cache", e.Name())
		}
	}
}

// fakeAptGet writes an apt-get that "downloads" by running script in its working directory.
func fakeAptGet(t *testing.T, script string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "apt-get")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nset -e\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestDebianFileNeverLeavesTheDownloadDirectory is issue 33's first hole: a source whose Debian
// file is a path out of the fetch's directory made the cache move that path (a host file, a
// host directory) into it and remove it. Recipes refuse such a name when they load; the
// fetcher, given one anyway, must name the fault and leave everything outside alone.
func TestDebianFileNeverLeavesTheDownloadDirectory(t *testing.T) {
	for _, tc := range []struct {
		name, file, apt, want string
	}{
		{"a path up and out", "../../victim", "echo source > a.tar", "path escapes"},
		{"a symbolic link apt-get wrote", "a.tar", "ln -s \"$VICTIM\" a.tar", "not a regular file"},
		{"a directory apt-get wrote", "a.tar", "mkdir a.tar", "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t)
			victim := filepath.Join(filepath.Dir(c.Dir), "victim")
			if err := os.WriteFile(victim, []byte("host file\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv("VICTIM", victim)
			c.Debian = &AptSource{Binary: fakeAptGet(t, tc.apt)}
			s := stages.Source{Name: "a", File: "a.tar", SHA256: sum(content),
				Debian: &stages.DebianSource{Package: "hello", Version: "1.0-1", File: tc.file}}
			_, err := c.Ensure(context.Background(), s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Ensure: %v, want an error containing %q", err, tc.want)
			}
			if b, err := os.ReadFile(victim); err != nil || string(b) != "host file\n" {
				t.Fatalf("the file outside the cache: %q, %v", b, err)
			}
		})
	}
}

// TestDebianFetchAsksForThePartItNeeds: apt-get is asked for the part of the source package
// the recipe names and no other, so that an archive serving that file but not the rest of the
// package (a security update's .debian.tar.xz missing) still serves it.
func TestDebianFetchAsksForThePartItNeeds(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"hello_2.10.orig.tar.gz", "--tar-only"},
		{"perl_5.36.0.orig-regen-configure.tar.xz", "--tar-only"},
		{"make-dfsg_4.3-4.1.dsc", "--dsc-only"},
		{"make-dfsg_4.3-4.1.diff.gz", "--diff-only"},
		{"hello_2.10-3.debian.tar.xz", "--diff-only"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			args := filepath.Join(t.TempDir(), "args")
			c := newCache(t)
			c.Debian = &AptSource{Binary: fakeAptGet(t, `echo "$@" > `+args+`; printf "the source's bytes\n" > `+tc.file)}
			s := stages.Source{Name: "a", File: tc.file, SHA256: sum(content),
				Debian: &stages.DebianSource{Package: "hello", Version: "2.10-3", File: tc.file}}
			if _, err := c.Ensure(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(args)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Fields(string(b))
			if !slices.Contains(got, tc.want) || len(got) != 7 {
				t.Errorf("apt-get %s, want %s and no other part", b, tc.want)
			}
		})
	}
}
