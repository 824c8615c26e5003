package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/log"
	"github.com/serpent-os/serpent-oci/oci/filekind"
	"github.com/serpent-os/serpent-oci/oci/progress"
	"github.com/serpent-os/serpent-oci/stages"
)

// HTTP fetches sources by URL: three attempts with growing pauses on server errors and broken
// connections, and a progress line every few seconds for long downloads.
type HTTP struct {
	Client   *http.Client
	Attempts int           // default 3
	Backoff  time.Duration // pause before the second attempt, doubled after (default 1s)
	Progress io.Writer
}

// Fetch implements Fetcher.
func (h *HTTP) Fetch(ctx context.Context, s stages.Source, dst string) error {
	attempts, backoff := h.Attempts, h.Backoff
	if attempts <= 0 {
		attempts = 3
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	var err error
	for i := range attempts {
		if i > 0 {
			log.G(ctx).WithFields(log.Fields{"source": s.Name, "attempt": i + 1}).WithError(err).Warn("retrying download")
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		var retry bool
		retry, err = h.once(ctx, s, dst)
		if err == nil || !retry {
			return err
		}
	}
	return fmt.Errorf("after %d attempts: %w", attempts, err)
}

func (h *HTTP) once(ctx context.Context, s stages.Source, dst string) (retry bool, err error) {
	client := h.Client
	if client == nil {
		client = defaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		// A host name that does not resolve will not resolve a second later either.
		var dns *net.DNSError
		if errors.As(err, &dns) && dns.IsNotFound {
			return false, err
		}
		return ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests, fmt.Errorf("%s: %s", s.URL, resp.Status)
	}
	f, err := os.Create(dst)
	if err != nil {
		return false, err
	}
	defer f.Close()
	m := progress.New(h.Progress, "fetching "+s.File, resp.ContentLength)
	if _, err := io.Copy(f, progress.Reader(resp.Body, m)); err != nil {
		return ctx.Err() == nil, err
	}
	m.Done()
	return false, f.Close()
}

// defaultClient gives up on a server that does not answer rather than hanging a build: a
// machine without a route to an origin falls back to the next one in a minute at most.
var defaultClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 20 * time.Second}).DialContext,
	TLSHandshakeTimeout:   20 * time.Second,
	ResponseHeaderTimeout: 60 * time.Second,
}}

// debianPart is the apt-get source option that downloads the part of a source package that
// file is, and no other: the .dsc, the Debian changes (a .diff.gz or .debian.tar.*), or else
// an upstream tarball. Only what a recipe names is fetched, so an archive that serves it but
// not the rest of the package (a security update's missing .debian.tar.xz) still serves it.
func debianPart(file string) string {
	switch {
	case strings.HasSuffix(file, ".dsc"):
		return "--dsc-only"
	case strings.HasSuffix(file, ".diff.gz") || strings.Contains(file, ".debian.tar."):
		return "--diff-only"
	}
	return "--tar-only"
}

// AptSource fetches a file of a Debian source package with `apt-get source --download-only
// PACKAGE=VERSION`, through the machine's own apt configuration (which needs a deb-src entry;
// `make deps` adds one).
type AptSource struct {
	Binary string // default apt-get
}

// Fetch implements Fetcher.
func (a *AptSource) Fetch(ctx context.Context, s stages.Source, dst string) error {
	bin := a.Binary
	if bin == "" {
		bin = "apt-get"
	}
	dir := filepath.Dir(dst)
	cmd := exec.CommandContext(ctx, bin, "source", "--download-only", debianPart(s.Debian.File), "-q", "-o", "APT::Sandbox::User=root", s.Debian.Package+"="+s.Debian.Version)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get source --download-only %s=%s: %w\n%s", s.Debian.Package, s.Debian.Version, err, out)
	}
	// What apt-get wrote is looked up inside dir only: a name that leads out of it (a recipe's
	// ../../etc, a symbolic link apt-get was made to write) is never followed, moved or removed.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("source package %s=%s: %w", s.Debian.Package, s.Debian.Version, err)
	}
	defer root.Close()
	fi, err := root.Lstat(s.Debian.File)
	switch {
	case err != nil:
		return fmt.Errorf("source package %s=%s has no file %s: %w", s.Debian.Package, s.Debian.Version, s.Debian.File, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("source package %s=%s: %s is a %s, not a regular file", s.Debian.Package, s.Debian.Version, s.Debian.File, filekind.Of(fi.Mode()))
	}
	if name := filepath.Base(dst); name != s.Debian.File {
		return root.Rename(s.Debian.File, name)
	}
	return nil
}
