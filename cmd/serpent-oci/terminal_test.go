package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// TestRunInteractiveOnARealTerminal drives `run -it` from a real pseudo-terminal, as a user at
// tmux or xterm would: serpent-oci is the session's foreground job, as a shell starts it. What
// is typed runs, the window size reaches the container and follows a resize, Ctrl-C stops
// `sleep` inside without ending the run, and `exit 7` ends it with 7. Issue 32: runc in a
// process group of its own was no foreground job, so nothing typed ever ran.
func TestRunInteractiveOnARealTerminal(t *testing.T) {
	storeDir := busyboxStore(t)
	cmd := exec.Command(binary, "--store", storeDir, "run", "-it", "busybox@amd64", "--", "sh")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var screen testenv.Buffer
	go func() {
		// busybox's line editor asks the terminal where its cursor is (ESC [ 6 n); a real one
		// answers, and so does this one.
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			if n > 0 {
				screen.Write(buf[:n])
				if bytes.Contains(buf[:n], []byte("\x1b[6n")) {
					_, _ = tty.Write([]byte("\x1b[1;1R"))
				}
			}
			if err != nil {
				return
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ended := false // set by this goroutine when it has received from exited
	t.Cleanup(func() {
		if !ended {
			_ = cmd.Process.Kill()
			<-exited
			// The next start removes what a killed run left (its mount, its container).
			cli(t, "--store", storeDir, "run", "busybox@amd64", "--", "true")
		}
	})
	// expect waits for want to appear on the screen after position from.
	expect := func(from int, want string) int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			s := screen.String()
			if i := strings.Index(s[from:], want); i >= 0 {
				return from + i + len(want)
			}
			select {
			case err := <-exited:
				ended = true
				t.Fatalf("serpent-oci ended (%v) before %q appeared; the screen:\n%s", err, want, s)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%q did not appear in 30s; the screen:\n%s", want, s)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	typeIn := func(s string) {
		t.Helper()
		if _, err := tty.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}

	typeIn("echo hi-$((6*7))\r")
	at := expect(0, "hi-42")
	typeIn("stty size\r")
	at = expect(at, "40 100")
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 50, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // SIGWINCH is asynchronous
	typeIn("stty size\r")
	at = expect(at, "50 120")
	typeIn("sleep 60; echo slept-$((2*2))\r")
	time.Sleep(time.Second)
	typeIn("\x03")
	typeIn("echo after-$((1+1))\r")
	at = expect(at, "after-2")
	if strings.Contains(screen.String(), "slept-4") {
		t.Fatal("Ctrl-C did not stop sleep: the rest of its line ran")
	}
	typeIn("exit 7\r")
	select {
	case <-exited:
		ended = true
		if code := cmd.ProcessState.ExitCode(); code != 7 {
			t.Fatalf("exit 7 ended the run with %d; the screen:\n%s", code, screen.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("exit 7 did not end the run; the screen:\n%s", screen.String())
	}
}
