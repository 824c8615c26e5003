package registrytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/oci/testenv"
	"golang.org/x/crypto/bcrypt"
)

// Distribution is Debian's docker-registry (the distribution project's registry server) on
// 127.0.0.1, serving TLS with a certificate from a CA made for the test, and asking for a
// user and password (htpasswd).
type Distribution struct {
	Addr     string // 127.0.0.1:PORT
	CAFile   string // the CA's certificate, PEM (for SSL_CERT_FILE)
	CertDir  string // a directory holding it as ca.crt (for skopeo's --cert-dir)
	Roots    *x509.CertPool
	User     string
	Password string
	Dir      string // storage

	t      testing.TB
	config string
	cmd    *exec.Cmd
	exited chan struct{}
	logf   *os.File
	marks  int
}

// StartDistribution starts the registry, stopped when the test ends. Without docker-registry
// the test skips (fails under CI=true).
func StartDistribution(t testing.TB) *Distribution {
	t.Helper()
	testenv.RequireTools(t, "docker-registry")
	dir := t.TempDir()
	d := &Distribution{t: t, Dir: filepath.Join(dir, "storage"), User: "builder", Password: "pw-" + randomHex(t, 8)}
	d.Addr = freeLoopbackAddr(t)
	d.CAFile, d.Roots = writeCerts(t, dir)
	d.CertDir = filepath.Join(dir, "certs")
	ca, err := os.ReadFile(d.CAFile)
	if err == nil {
		err = os.Mkdir(d.CertDir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(d.CertDir, "ca.crt"), ca, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(d.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(d.User+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.config = filepath.Join(dir, "config.yml")
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  tls:
    certificate: %s
    key: %s
auth:
  htpasswd:
    realm: serpent-oci-test
    path: %s
`, d.Dir, d.Addr, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "htpasswd"))
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if d.logf, err = os.Create(filepath.Join(dir, "registry.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(); d.logf.Close() })
	d.Start()
	return d
}

// Start starts the registry (again, after Stop: same address, same storage) and waits until
// it answers.
func (d *Distribution) Start() {
	d.t.Helper()
	d.cmd = exec.Command("docker-registry", "serve", d.config)
	d.cmd.Stdout, d.cmd.Stderr = d.logf, d.logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start docker-registry: %v", err)
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(d.cmd, d.exited)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: d.Roots}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("https://" + d.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return
			}
		}
		select {
		case <-d.exited:
			log, _ := os.ReadFile(d.logf.Name())
			d.t.Fatalf("docker-registry exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("docker-registry does not answer on %s: %v", d.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the registry at once (as a crash would) and waits for it to be gone.
func (d *Distribution) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
}

// Transport trusts the test CA, for clients in the test process.
func (d *Distribution) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: d.Roots}
	return t
}

// Request is one request the registry answered, from its access log.
type Request struct {
	Method, Path string
	Status       int
	Bytes        int64 // the response body's
}

var accessLine = regexp.MustCompile(`"([A-Z]+) (\S+) HTTP/[0-9.]+" ([0-9]{3}) ([0-9]+|-)`)

// Served lists the requests the registry answered so far, in order (its access log, in the
// Apache combined format). A request's line is written after its response: Served sends one
// of its own and waits for that line, so that every request answered before it is listed.
func (d *Distribution) Served() []Request {
	d.t.Helper()
	d.marks++
	mark := fmt.Sprintf("/v2/?served-mark=%d", d.marks)
	client := &http.Client{Timeout: 5 * time.Second, Transport: d.Transport()}
	resp, err := client.Get("https://" + d.Addr + mark)
	if err != nil {
		d.t.Fatalf("registry access log mark: %v", err)
	}
	resp.Body.Close()
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		lines = strings.Split(d.Log(), "\n")
		if slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "\"GET "+mark+" ") }) {
			break
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("the registry's access log lacks %s:\n%s", mark, d.Log())
		}
	}
	var out []Request
	for _, line := range lines {
		m := accessLine.FindStringSubmatch(line)
		if m == nil || strings.Contains(m[2], "served-mark=") {
			continue
		}
		status, _ := strconv.Atoi(m[3])
		n, _ := strconv.ParseInt(m[4], 10, 64) // "-": 0
		out = append(out, Request{Method: m[1], Path: m[2], Status: status, Bytes: n})
	}
	return out
}

// Log is what the registry printed.
func (d *Distribution) Log() string {
	b, _ := os.ReadFile(d.logf.Name())
	return string(b)
}

func freeLoopbackAddr(t testing.TB) string {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeCerts makes a CA and a server certificate for 127.0.0.1 signed by it, writes the
// server's pair and the CA's certificate under dir, and returns the CA file and a pool of it.
func writeCerts(t testing.TB, dir string) (string, *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "serpent-oci test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER)
	writePEM(t, filepath.Join(dir, "server.pem"), "CERTIFICATE", srvDER)
	writePEM(t, filepath.Join(dir, "server-key.pem"), "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return filepath.Join(dir, "ca.pem"), pool
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}
