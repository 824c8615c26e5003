package registry

import (
	"net/http"
	"sync"
	"time"

	"github.com/containerd/log"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// announcer sits under the remote package's retries and says each failed try of a request
// that will be tried again: which registry, what went wrong, how many tries are left and how
// long until the next, so that a registry that does not answer is not 15 silent seconds of
// "0.0 MiB/s". Tries are counted per method, host and path (the remote package retries a
// request as the same request) and forgotten once it succeeds or runs out of tries. The same
// request over the other scheme (the remote package pings https, then http, for a loopback
// or insecure registry), or made again soon after it was given up on, is told at debug level
// only: each failing request is announced once.
type announcer struct {
	inner   http.RoundTripper
	backoff remote.Backoff

	mu     sync.Mutex
	tries  map[string]int
	gaveUp map[string]time.Time // key → when its tries ran out
}

// quietAfterGivingUp is how long after a request was given up on its failures are told at
// debug level only.
const quietAfterGivingUp = time.Minute

// retryStatus are the HTTP statuses the remote package retries by itself.
var retryStatus = map[int]bool{
	http.StatusTooManyRequests: true, http.StatusInternalServerError: true, http.StatusBadGateway: true,
	http.StatusServiceUnavailable: true, http.StatusGatewayTimeout: true,
}

func (a *announcer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := a.inner.RoundTrip(req)
	var problem string
	switch {
	case err != nil && Retryable(err):
		problem = err.Error()
	case err == nil && retryStatus[resp.StatusCode]:
		problem = resp.Status
	}
	key := req.Method + " " + req.URL.Host + req.URL.RequestURI()
	a.mu.Lock()
	if problem == "" {
		delete(a.tries, key)
		delete(a.gaveUp, key)
		a.mu.Unlock()
		return resp, err
	}
	a.tries[key]++
	try := a.tries[key]
	quiet := false
	if when, ok := a.gaveUp[key]; ok && time.Since(when) < quietAfterGivingUp {
		quiet = true
	}
	if try >= a.backoff.Steps {
		delete(a.tries, key)
		if a.gaveUp == nil {
			a.gaveUp = map[string]time.Time{}
		}
		a.gaveUp[key] = time.Now()
	}
	a.mu.Unlock()
	if req.Context().Err() != nil {
		return resp, err
	}
	entry := log.G(req.Context()).WithFields(log.Fields{"registry": req.URL.Host, "try": try, "tries": a.backoff.Steps})
	say := entry.Warnf
	if quiet {
		say = entry.Debugf
	}
	if try >= a.backoff.Steps {
		say("registry %s: %s: giving up after %d tries", req.URL.Host, problem, try)
		return resp, err
	}
	say("registry %s: %s: try %d of %d failed, retrying in %s", req.URL.Host, problem,
		try, a.backoff.Steps, a.wait(try).Round(time.Millisecond))
	return resp, err
}

// wait is about how long the remote package waits after the try-th failure.
func (a *announcer) wait(try int) time.Duration {
	d := float64(a.backoff.Duration)
	for range try - 1 {
		d *= a.backoff.Factor
	}
	if a.backoff.Cap > 0 && time.Duration(d) > a.backoff.Cap {
		return a.backoff.Cap
	}
	return time.Duration(d)
}
