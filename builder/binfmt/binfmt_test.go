package binfmt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/oci/platform"
)

// fakeMount makes a directory shaped like /proc/sys/fs/binfmt_misc with the given entries.
func fakeMount(t *testing.T, entries map[string]string) Paths {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "register"), nil, 0o200)
	os.WriteFile(filepath.Join(dir, "status"), []byte("enabled\n"), 0o644)
	for name, text := range entries {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	return Paths{Mount: dir, ConfDir: t.TempDir()}
}

func TestCheck(t *testing.T) {
	arm64 := platform.MustParse("linux/arm64")
	tests := []struct {
		name    string
		paths   Paths
		wantErr string
	}{
		{"registered with F", fakeMount(t, map[string]string{"qemu-aarch64": "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\n"}), ""},
		{"registered without F", fakeMount(t, map[string]string{"qemu-aarch64": "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OC\n"}), "without the F flag"},
		{"disabled", fakeMount(t, map[string]string{"qemu-aarch64": "disabled\ninterpreter /x\nflags: F\n"}), "disabled"},
		{"not registered", fakeMount(t, map[string]string{"qemu-arm": "enabled\ninterpreter /x\nflags: F\n"}), "no binfmt_misc interpreter is registered for linux/arm64"},
		{"not mounted", Paths{Mount: t.TempDir()}, "not mounted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.paths.Check(arm64)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "serpent-oci binfmt --install") {
				t.Fatalf("Check = %v, want an error saying %q and naming the fix", err, tt.wantErr)
			}
		})
	}
	if err := (Paths{Mount: t.TempDir()}).Check(platform.Host()); err != nil {
		t.Fatalf("the host's own platform needs nothing: %v", err)
	}
}

func TestReadConfAddsF(t *testing.T) {
	dir := t.TempDir()
	interp := filepath.Join(dir, "qemu-aarch64")
	os.WriteFile(interp, nil, 0o755)
	conf := filepath.Join(dir, "qemu-aarch64.conf")
	os.WriteFile(conf, []byte("# comment\n:qemu-aarch64:M::\\x7fELF:\\xff\\xff:"+interp+":OC\n"), 0o644)
	name, line, err := readConf(conf)
	if err != nil {
		t.Fatal(err)
	}
	if name != "qemu-aarch64" || !strings.HasSuffix(line, ":OCF") {
		t.Fatalf("readConf = %q, %q", name, line)
	}
}
