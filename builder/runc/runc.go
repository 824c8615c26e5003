package runc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Runtime runs containers with the runc binary, keeping their state under StateDir so that
// containers of this store are told apart from anyone else's.
type Runtime struct {
	Binary   string // default: runc from PATH
	StateDir string // runc --root
}

// Stdio is where a container's standard streams go. A nil Stdin reads nothing.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Terminal is set for a process with a terminal (the spec's process.terminal): runc makes
	// it a pseudo-terminal and relays it to Stdin, which must then be the caller's terminal.
	Terminal bool
}

// ExitError is returned when the container's process exits non-zero.
type ExitError struct {
	ID   string
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("container %s exited with status %d", e.ID, e.Code)
}

func (r *Runtime) binary() string {
	if r.Binary != "" {
		return r.Binary
	}
	return "runc"
}

// WriteBundle writes s as bundle/config.json.
func WriteBundle(bundle string, s *specs.Spec) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode config.json: %w", err)
	}
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600)
}

// Run runs container id from bundle in the foreground and waits for it. When ctx ends first
// (a timeout, Ctrl-C), the container is killed and deleted before Run returns ctx's error.
// A non-zero exit is an *ExitError.
func (r *Runtime) Run(ctx context.Context, id, bundle string, stdio Stdio) error {
	if err := os.MkdirAll(r.StateDir, 0o700); err != nil {
		return fmt.Errorf("runc state directory: %w", err)
	}
	cmd := exec.Command(r.binary(), "--root", r.StateDir, "run", "--bundle", bundle, id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	// Without a terminal, its own process group: a Ctrl-C at the terminal reaches serpent-oci
	// alone, which then stops the container in order. With one, runc relays the terminal to
	// the container's and must read it, which only the terminal's foreground process group
	// may do (a background one is stopped by SIGTTIN, or spins on EIO): it stays in
	// serpent-oci's, the one the shell made the foreground job. runc puts the terminal in raw
	// mode, so Ctrl-C and Ctrl-Z are bytes for the container's terminal (signals to the
	// program inside, not to us) and a resize's SIGWINCH reaches runc, which passes the size
	// on. If serpent-oci dies, runc is killed with it; the container it leaves is found and
	// removed by Cleanup at the next start.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !stdio.Terminal, Pdeathsig: syscall.SIGKILL}
	if stdio.Terminal {
		// runc restores the terminal when it ends; not when it is killed.
		restore := saveTerminal(stdio.Stdin)
		defer restore()
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start runc: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return r.exitErr(id, err)
	case <-ctx.Done():
		log.G(ctx).WithField("container", id).Info("stopping container")
		r.Kill(context.WithoutCancel(ctx), id)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return fmt.Errorf("container %s: %w", id, ctx.Err())
	}
}

func (r *Runtime) exitErr(id string, err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{ID: id, Code: ee.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("runc run %s: %w", id, err)
	}
	return nil
}

// Kill stops container id with SIGKILL and deletes it; it is not an error if the container is
// already gone.
func (r *Runtime) Kill(ctx context.Context, id string) {
	_ = exec.CommandContext(ctx, r.binary(), "--root", r.StateDir, "kill", id, "KILL").Run()
	for range 50 { // runc delete --force needs the container stopped on some versions
		out, err := exec.CommandContext(ctx, r.binary(), "--root", r.StateDir, "delete", "--force", id).CombinedOutput()
		if err == nil || strings.Contains(string(out), "does not exist") || strings.Contains(string(out), "not exist") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.G(ctx).WithField("container", id).Warn("container could not be deleted")
}

// List returns the IDs of the containers in the state directory.
func (r *Runtime) List(ctx context.Context) ([]string, error) {
	if _, err := os.Stat(r.StateDir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	out, err := exec.CommandContext(ctx, r.binary(), "--root", r.StateDir, "list", "--quiet").Output()
	if err != nil {
		return nil, fmt.Errorf("runc list: %w", err)
	}
	return strings.Fields(string(bytes.TrimSpace(out))), nil
}

// saveTerminal records the mode of the terminal r is (nothing if it is no terminal) and
// returns what sets it back.
func saveTerminal(r io.Reader) (restore func()) {
	f, ok := r.(*os.File)
	if !ok {
		return func() {}
	}
	fd := int(f.Fd())
	saved, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, saved) }
}
