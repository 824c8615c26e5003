// Package registrytest starts registries for tests: go-containerregistry's in-memory one for
// unit tests, and Debian's docker-registry (the distribution project's server) with TLS and
// htpasswd authentication for end-to-end tests.
package registrytest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// InMemory starts an in-memory registry on loopback (plain HTTP), with wrap around its
// handler when given, stopped when the test ends. It returns HOST:PORT.
func InMemory(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// InMemoryCountingBlobGets is InMemory with a count of the blob downloads it serves (GET
// .../blobs/...): how a test shows that a plan or a pull fetched no layer.
func InMemoryCountingBlobGets(t testing.TB) (host string, blobGets *atomic.Int64) {
	t.Helper()
	blobGets = new(atomic.Int64)
	host = InMemory(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				blobGets.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	return host, blobGets
}
