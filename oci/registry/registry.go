// Package registry moves images between the store and OCI registries: push an image or a
// multi-platform index, pull into the store, look stage images up by cache key, join
// per-platform images into one index, and log in.
//
// It is go-containerregistry's remote package with the policy a build tool needs on top:
// credentials from the Docker config keychain (DOCKER_CONFIG, ~/.docker/config.json, credential
// helpers), TLS verified against the system roots (SSL_CERT_FILE adds a bundle) unless a
// registry is named insecure, plain HTTP only for loopback or such a registry, retries with
// backoff on 5xx answers and broken or refused connections, progress lines for long transfers,
// and errors that name the registry and say what went wrong without HTTP noise or credentials.
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Options configures a Client. The zero value is a client with the ecosystem's defaults.
type Options struct {
	// Insecure lists registries (HOST or HOST:PORT, as in a reference) that may be reached
	// over plain HTTP or TLS without verification, like Docker's insecure-registries.
	Insecure []string
	// Keychain finds credentials (default: authn.DefaultKeychain).
	Keychain authn.Keychain
	// Transport carries requests (default: a clone of http.DefaultTransport). TLS settings
	// of an *http.Transport are kept, except that insecure registries skip verification.
	Transport http.RoundTripper
	// Progress receives a line every few seconds of a long push or pull (nil: none).
	Progress io.Writer
	// ProgressInterval is the least time between two progress lines (default 3 s).
	ProgressInterval time.Duration
	// Jobs is how many blobs move at once (default 4).
	Jobs int
	// Backoff is how often and how long to retry (default: 5 tries, 1 s doubling).
	Backoff remote.Backoff
	// UserAgent is sent with every request.
	UserAgent string
	// IdleTimeout cuts a connection that sends nothing for so long (default
	// DefaultIdleTimeout); StallWindow and MinBytes cut one that sends less than MinBytes in
	// StallWindow (defaults DefaultStallWindow, DefaultMinBytes).
	IdleTimeout, StallWindow time.Duration
	MinBytes                 int64
}

// DefaultBackoff retries four times over about 15 seconds: long enough for a registry that
// restarts, short enough to give up on one that is gone.
var DefaultBackoff = remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 5}

// Client talks to registries. It holds no connection state of its own; one Client serves
// any number of concurrent calls.
type Client struct {
	opts      Options
	keychain  authn.Keychain
	transport http.RoundTripper
}

// New returns a client for opts.
func New(opts Options) *Client {
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 4
	}
	if opts.Backoff.Steps == 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "serpent-oci"
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.StallWindow <= 0 {
		opts.StallWindow = DefaultStallWindow
	}
	if opts.MinBytes <= 0 {
		opts.MinBytes = DefaultMinBytes
	}
	secure := opts.Transport
	if secure == nil {
		secure = http.DefaultTransport.(*http.Transport).Clone()
	}
	secure = withStallLimits(secure, stallLimits{idle: opts.IdleTimeout, window: opts.StallWindow, minBytes: opts.MinBytes})
	insecure := secure
	if t, ok := secure.(*http.Transport); ok {
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.InsecureSkipVerify = true
		insecure = t
	}
	pol := &policy{secure: secure, insecure: insecure, hosts: opts.Insecure}
	return &Client{opts: opts, keychain: opts.Keychain, transport: &announcer{inner: pol, backoff: opts.Backoff, tries: map[string]int{}}}
}

// ParseReference reads an image reference (REGISTRY/REPO[:TAG][@DIGEST]), marking registries
// named in Options.Insecure as reachable over plain HTTP.
func (c *Client) ParseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", s, err)
	}
	if c.insecure(ref.Context().RegistryStr()) {
		ref, err = name.ParseReference(ref.String(), name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("image reference %q: %w", s, err)
		}
	}
	return ref, nil
}

// ParseRepository reads a repository (REGISTRY/REPO) the way ParseReference reads a reference.
func (c *Client) ParseRepository(s string) (name.Repository, error) {
	var opts []name.Option
	if r, err := name.NewRepository(s); err == nil && c.insecure(r.RegistryStr()) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(s, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %q: %w", s, err)
	}
	return r, nil
}

func (c *Client) insecure(host string) bool { return slices.Contains(c.opts.Insecure, host) }

func (c *Client) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithTransport(c.transport),
		remote.WithJobs(c.opts.Jobs),
		remote.WithUserAgent(c.opts.UserAgent),
		remote.WithRetryBackoff(c.opts.Backoff),
		remote.WithRetryPredicate(Retryable),
	}
}

// Retryable reports whether err is worth another try: a temporary network error, a connection
// broken or reset, or a truncated answer. HTTP status codes (429 and 5xx) are retried by the
// remote package itself. A refused connection or a host name that does not resolve is not:
// nothing listens there, and a retry would only make the user wait (crane and skopeo fail at
// once too).
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	if dns := new(net.DNSError); errors.As(err, &dns) && dns.IsNotFound {
		return false
	}
	var te interface{ Temporary() bool }
	if errors.As(err, &te) && te.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// policy sends requests to insecure registries through a transport that skips TLS
// verification, and refuses plain HTTP to anything but loopback or those registries: the
// remote package would otherwise fall back to HTTP for private (RFC 1918) addresses too.
//
// A loopback registry whose TLS certificate fails verification is not retried over plain
// HTTP either (the remote package would try, and report the HTTP server's confusion instead
// of the certificate problem).
type policy struct {
	secure, insecure http.RoundTripper
	hosts            []string

	mu     sync.Mutex
	badTLS map[string]error // host → its certificate's verification error
}

func (p *policy) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if slices.Contains(p.hosts, host) {
		return p.insecure.RoundTrip(req)
	}
	if req.URL.Scheme == "http" {
		p.mu.Lock()
		tlsErr := p.badTLS[host]
		p.mu.Unlock()
		var err error
		switch {
		case tlsErr != nil:
			err = tlsErr
		case !isLoopback(req.URL.Hostname()):
			err = &plainHTTPError{host: host}
		}
		if err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
	}
	resp, err := p.secure.RoundTrip(req)
	var cert *tls.CertificateVerificationError
	if err != nil && errors.As(err, &cert) {
		p.mu.Lock()
		if p.badTLS == nil {
			p.badTLS = map[string]error{}
		}
		p.badTLS[host] = err
		p.mu.Unlock()
	}
	return resp, err
}

type plainHTTPError struct{ host string }

func (e *plainHTTPError) Error() string {
	return fmt.Sprintf("refusing plain HTTP to %s: only loopback registries and those named with --insecure-registry are reached without TLS", e.host)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ErrNotFound is returned (wrapped) when a registry has no such image.
var ErrNotFound = errors.New("not found")

// describe turns an error of the remote package into one that says what failed at which
// registry, in a line: the HTTP method, URL, token-server chatter and any credentials are left
// out. op is what was being done ("push", "pull"), ref what it was done to.
func (c *Client) describe(op string, ref fmt.Stringer, registry string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", op, ref, err)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return fmt.Errorf("%s %s: %w", op, ref, c.statusError(registry, te))
	}
	var ph *plainHTTPError
	if errors.As(err, &ph) {
		return fmt.Errorf("%s %s: registry %s does not answer over HTTPS and %w", op, ref, registry, ph)
	}
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) {
		return fmt.Errorf("%s %s: registry %s: TLS certificate not trusted (%v); add its CA to the system roots or SSL_CERT_FILE, or name it with --insecure-registry %s", op, ref, registry, cert.Err, registry)
	}
	var stall *StallError
	if errors.As(err, &stall) {
		return fmt.Errorf("%s %s: registry %s %s", op, ref, registry, stall.Msg)
	}
	var op2 *net.OpError
	if errors.As(err, &op2) {
		return fmt.Errorf("%s %s: registry %s unreachable: %v", op, ref, registry, op2.Err)
	}
	return fmt.Errorf("%s %s: registry %s: %w", op, ref, registry, err)
}

func (c *Client) statusError(registry string, te *transport.Error) error {
	var msgs []string
	notFound := te.StatusCode == http.StatusNotFound
	for _, d := range te.Errors {
		msg := strings.ToLower(string(d.Code))
		if d.Message != "" {
			msg += ": " + d.Message
		}
		msgs = append(msgs, msg)
		switch d.Code {
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			notFound = true
		}
	}
	detail := strings.Join(msgs, "; ")
	if detail == "" {
		detail = strings.ToLower(http.StatusText(te.StatusCode))
	}
	switch {
	case notFound:
		return fmt.Errorf("%w at registry %s (%s)", ErrNotFound, registry, detail)
	case te.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("registry %s refused the credentials (%s): check them with `serpent-oci login %s`", registry, detail, registry)
	case te.StatusCode == http.StatusForbidden:
		return fmt.Errorf("registry %s denied access (%s)", registry, detail)
	}
	return fmt.Errorf("registry %s answered %d (%s)", registry, te.StatusCode, detail)
}

// LooksRemote reports whether s names an image in a registry rather than a store tag: its
// first path part is a host the way Docker tells one (it has a dot or a port, or is
// localhost), as in "registry.example/serpent/stage3:1" or "127.0.0.1:5000/x".
func LooksRemote(s string) bool {
	first, _, ok := strings.Cut(s, "/")
	return ok && (strings.ContainsAny(first, ".:") || first == "localhost")
}
