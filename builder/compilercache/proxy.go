package compilercache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/log"
	"github.com/serpent-os/serpent-oci/builder/internal/connset"
)

// Bounds of what a stage may send: a command is an array of at most maxArgs bulk strings, its
// name at most maxName bytes and each argument at most maxBulk (Redis's own default limit).
const (
	maxArgs     = 8
	maxName     = 16
	maxBulk     = 512 << 20
	maxLine     = 32 // "*N" and "$LEN" lines
	dialTimeout = 5 * time.Second
)

// The commands ccache's Redis storage sends, by what they do.
var (
	readCommands  = map[string]bool{"GET": true, "EXISTS": true, "PING": true}
	writeCommands = map[string]bool{"SET": true, "DEL": true}
)

// Stats counts what a proxy passed on and refused.
type Stats struct {
	Reads, Writes int64 // commands passed on
	Refused       int64 // commands refused (not ccache's, a write to a read-only remote, malformed)
	Unreachable   int64 // connections the server did not take
}

// Proxy serves a Unix socket and passes the commands of ccache's Redis storage on to a remote.
type Proxy struct {
	remote *Remote
	ln     net.Listener
	path   string
	ctx    context.Context

	reads, writes, refused, unreachable atomic.Int64

	conns connset.Set
}

// Serve listens on a Unix socket at path (which must not exist) for the remote r, until Close.
// The socket is open to every user: a stage's processes may run as any uid of its user
// namespace.
func Serve(ctx context.Context, r *Remote, path string) (*Proxy, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("compiler cache %s: %w", r, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("compiler cache %s: %w", r, err)
	}
	p := &Proxy{remote: r, ln: ln, path: path, ctx: ctx}
	p.conns.Serve(ln, p.serve)
	return p, nil
}

// Path is the socket's.
func (p *Proxy) Path() string { return p.path }

// Remote is what the proxy passes commands on to.
func (p *Proxy) Remote() *Remote { return p.remote }

// Stats says what the proxy has passed on and refused so far.
func (p *Proxy) Stats() Stats {
	return Stats{Reads: p.reads.Load(), Writes: p.writes.Load(), Refused: p.refused.Load(), Unreachable: p.unreachable.Load()}
}

// Close stops listening, ends every connection and removes the socket.
func (p *Proxy) Close() error {
	p.conns.Close()
	err := p.ln.Close()
	p.conns.Wait()
	if rmErr := os.Remove(p.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
		err = rmErr
	}
	return err
}

// serve passes one stage connection's commands on to a connection of its own to the server.
func (p *Proxy) serve(client net.Conn) {
	server, err := p.dial()
	if err != nil {
		p.unreachable.Add(1)
		log.G(p.ctx).WithError(err).WithField("remote", p.remote.String()).Warn("compiler cache unreachable: the stage compiles without it")
		writeError(client, "server unreachable")
		// Read what the stage sent meanwhile before hanging up, so that its write does not
		// fail first and hide the error it is to read.
		if uc, ok := client.(*net.UnixConn); ok {
			_ = uc.CloseWrite()
		}
		_ = client.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(client, 1<<20))
		return
	}
	if !p.conns.Add(server) {
		return
	}
	defer p.conns.Remove(server)
	replies := make(chan struct{})
	go func() {
		defer close(replies)
		_, _ = io.Copy(client, server)
		client.Close() // the server hung up: so does the stage's side
	}()
	in := bufio.NewReader(client)
	for {
		err := p.forward(in, server)
		if err == nil {
			continue
		}
		if errors.Is(err, ErrRefused) {
			p.refused.Add(1)
			log.G(p.ctx).WithError(err).WithField("remote", p.remote.String()).Warn("compiler cache: a stage's command refused")
			writeError(client, err.Error())
		}
		break
	}
	server.Close()
	<-replies
}

// forward reads one command from in and, when it is one to pass on, writes it to server as it
// comes (an argument is never held whole).
func (p *Proxy) forward(in *bufio.Reader, server io.Writer) error {
	n, err := readHeader(in, '*', maxArgs)
	if err != nil {
		return err
	}
	if n < 1 {
		return fmt.Errorf("%w: an empty command", ErrRefused)
	}
	size, err := readHeader(in, '$', maxName)
	if err != nil {
		return err
	}
	name := make([]byte, size+2)
	if _, err := io.ReadFull(in, name); err != nil {
		return err
	}
	if !bytes.HasSuffix(name, []byte("\r\n")) {
		return fmt.Errorf("%w: a command name without its CRLF", ErrRefused)
	}
	cmd := strings.ToUpper(string(name[:size]))
	count := &p.reads
	switch {
	case readCommands[cmd]:
	case writeCommands[cmd] && !p.remote.ReadOnly:
		count = &p.writes
	case writeCommands[cmd]:
		return fmt.Errorf("%w: %s: the compiler cache is read-only for this build", ErrRefused, cmd)
	default:
		return fmt.Errorf("%w: %s is not a command of ccache's Redis storage", ErrRefused, strconv.Quote(cmd))
	}
	w := bufio.NewWriter(server)
	fmt.Fprintf(w, "*%d\r\n$%d\r\n%s\r\n", n, size, cmd)
	for range n - 1 {
		size, err := readHeader(in, '$', maxBulk)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "$%d\r\n", size)
		if _, err := io.CopyN(w, in, int64(size)+2); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	count.Add(1)
	return nil
}

// readHeader reads a "*N" or "$LEN" line (kind is '*' or '$') with 0 <= N <= limit.
func readHeader(in *bufio.Reader, kind byte, limit int) (int, error) {
	line, err := readLine(in)
	if err != nil {
		return 0, err
	}
	if len(line) < 2 || line[0] != kind {
		return 0, fmt.Errorf("%w: want a RESP %c line, got %q", ErrRefused, kind, line)
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 || n > limit {
		return 0, fmt.Errorf("%w: %q: want %c0 to %c%d", ErrRefused, line, kind, kind, limit)
	}
	return n, nil
}

// readLine reads a line ending in CRLF of at most maxLine bytes, without its CRLF.
func readLine(in *bufio.Reader) (string, error) {
	var b []byte
	for len(b) <= maxLine+1 {
		c, err := in.ReadByte()
		if err != nil {
			return "", err
		}
		b = append(b, c)
		if bytes.HasSuffix(b, []byte("\r\n")) {
			return string(b[:len(b)-2]), nil
		}
	}
	return "", fmt.Errorf("%w: a line longer than %d bytes", ErrRefused, maxLine)
}

// dial connects to the server, authenticated and on the remote's database.
func (p *Proxy) dial() (net.Conn, error) {
	r := p.remote
	c, err := net.DialTimeout(r.Network, r.Address, dialTimeout)
	if err != nil {
		return nil, err
	}
	var setup [][]string
	switch {
	case r.Password != "" && r.User != "":
		setup = append(setup, []string{"AUTH", r.User, r.Password})
	case r.Password != "":
		setup = append(setup, []string{"AUTH", r.Password})
	}
	if r.DB != 0 {
		setup = append(setup, []string{"SELECT", strconv.Itoa(r.DB)})
	}
	if len(setup) == 0 {
		return c, nil
	}
	_ = c.SetDeadline(time.Now().Add(dialTimeout))
	in := bufio.NewReader(c)
	for _, args := range setup {
		if _, err := c.Write(Command(args...)); err != nil {
			c.Close()
			return nil, err
		}
		line, err := in.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", args[0], err)
		}
		if !strings.HasPrefix(line, "+") {
			c.Close()
			return nil, fmt.Errorf("%s: the server says %s", args[0], strings.TrimSpace(line))
		}
	}
	if in.Buffered() > 0 {
		c.Close()
		return nil, errors.New("the server sent more than its replies")
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// Command is args as a RESP command.
func Command(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

func writeError(c net.Conn, msg string) {
	msg = strings.NewReplacer("\r", " ", "\n", " ").Replace(msg)
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c, "-ERR serpent-oci compiler cache: "+msg+"\r\n")
}
