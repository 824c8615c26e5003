package build_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// TestShellRunsInTheStagesEnvironment: a command run with Shell sees what the stage's script
// would (its base, built first; /recipe; its environment; its cache mounts) and tags nothing.
func TestShellRunsInTheStagesEnvironment(t *testing.T) {
	f := newFixture(t)
	edit(t, filepath.Join(f.set, "target-native.yaml"), "script: target-native.sh", "cache: [/var/cache/work]\nscript: target-native.sh")
	opts := f.options(t)
	script := `uname -m; echo "env: $GREETING_FILE $SERPENT_STAGE $EXTRA"; cat /recipe/target-native.sh; cat "$GREETING_FILE"; echo kept > /var/cache/work/probe; touch /etc/not-captured`
	res, err := build.Shell(context.Background(), opts, "target-native", build.ShellOptions{
		Args: []string{"/bin/sh", "-e", "-c", script},
		Env:  []string{"EXTRA=from-the-caller"},
	})
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(res.Log)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"aarch64", "env: /etc/payload.txt target-native from-the-caller", `echo "built natively on $(uname -m)"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the shell's output lacks %q:\n%s", want, log)
		}
	}
	tags := map[string]bool{}
	list, err := f.st.Tags()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		tags[e.Ref.Name] = true
	}
	if !tags["target-root"] || !tags["host-tools-for-linux-arm64"] {
		t.Errorf("the stages before target-native were not built and tagged: %v", tags)
	}
	if tags["target-native"] {
		t.Errorf("the shell tagged target-native")
	}
	probe := filepath.Join(f.st.Dir(), ".serpent", build.CacheMountsDir, "target-native", "linux-arm64-on-linux-arm64", "var_cache_work", "probe")
	if b, err := os.ReadFile(probe); err != nil || string(b) != "kept\n" {
		t.Errorf("the cache mount: %s: %q, %v", probe, b, err)
	}

	// A stage's script finds each of its sources by name: host-tools's greeting.
	res, err = build.Shell(context.Background(), opts, "host-tools", build.ShellOptions{
		Args: []string{"/bin/sh", "-e", "-c", `echo "source: $SERPENT_SOURCE_GREETING"; cat "$SERPENT_SOURCE_GREETING"`},
	})
	if err != nil {
		t.Fatal(err)
	}
	if log, err = os.ReadFile(res.Log); err != nil || !strings.Contains(string(log), "source: /sources/greeting.txt\nhello") {
		t.Errorf("host-tools's shell: %v\n%s", err, log)
	}

	// A failing command is an error naming the stage; nothing is tagged then either.
	_, err = build.Shell(context.Background(), opts, "target-native", build.ShellOptions{Args: []string{"/bin/sh", "-c", "exit 3"}})
	if err == nil || !strings.Contains(err.Error(), "shell target-native for linux/arm64") {
		t.Errorf("a failing command: %v; want an error naming the stage and platform", err)
	}
	if _, _, err := f.st.Image(store.Ref{Name: "target-native"}.WithPlatform(&arm64)); err == nil {
		t.Errorf("target-native is tagged after a failed shell")
	}
}
