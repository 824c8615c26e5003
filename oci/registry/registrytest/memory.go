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
