package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/builder/sources"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

func TestBuildAndPlanCommands(t *testing.T) {
	buildertest.RequireRunc(t)
	storeDir, _ := hostBusyboxStore(t)
	set, mirror := buildertest.RecipeSet(t)
	common := []string{"--store", storeDir, "--stages", set, "--platform", "linux/arm64", "--sources-dir", filepath.Join(t.TempDir(), "src")}

	code, out, stderr := cli(t, append([]string{"plan", "target-native"}, common...)...)
	if code != 0 || !strings.Contains(out, "host-tools     linux/arm64  linux/amd64  busybox@linux-amd64") || !strings.Contains(out, "base host-tools is rebuilt first") ||
		!strings.HasSuffix(out, "\n3 stages to build, none built in this store before: no estimate\n") {
		t.Fatalf("plan: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = cli(t, append([]string{"plan", "target-native", "--format", "json"}, common...)...)
	if code != 0 || !strings.Contains(out, `"stage": "host-tools",`) || !strings.Contains(out, `"runs_on": "linux/amd64",`) || !strings.Contains(out, `"action": "build",`) {
		t.Fatalf("plan --format json: exit %d\n%s", code, out)
	}
	code, out, stderr = cli(t, append([]string{"build", "target-native", "--source-mirror", mirror, "--progress", "plain"}, common...)...)
	if code != 0 || !strings.Contains(out, "3 stages, 3 built") || !strings.Contains(stderr, "[3/3] target-native for linux/arm64: built") ||
		!strings.Contains(stderr, "target-native | prepared on x86_64 for aarch64-serpent-linux-musl") {
		t.Fatalf("build: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	code, out, _ = cli(t, append([]string{"build", "target-native", "--progress", "plain"}, common...)...)
	if code != 0 || !strings.Contains(out, "3 stages, 0 built") {
		t.Fatalf("cached build: exit %d\n%s", code, out)
	}
	// The store's record of those builds gives plan's estimates and the next build's.
	code, out, stderr = cli(t, append([]string{"plan", "target-native", "--no-cache"}, common...)...)
	if code != 0 || !regexp.MustCompile(`(?m)^host-tools .* build +- +[0-9.]+m?s +--no-cache$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^target-native .* build +- +~[0-9.]+m?s +base target-root is rebuilt first$`).MatchString(out) ||
		!regexp.MustCompile(`\n3 stages to build, about [0-9.]+m?s from the store's last builds of them\n$`).MatchString(out) {
		t.Fatalf("plan --no-cache after a build: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = cli(t, append([]string{"plan", "target-native", "--no-cache", "--format", "json"}, common...)...)
	if code != 0 || strings.Count(out, `"estimate_seconds": `) != 3 {
		t.Fatalf("plan --no-cache --format json after a build: exit %d\n%s", code, out)
	}
	code, out, stderr = cli(t, append([]string{"build", "target-native", "--no-cache", "--progress", "plain"}, common...)...)
	if code != 0 || !regexp.MustCompile(`\[3/3\] target-native for linux/arm64: building on linux/arm64 \(--no-cache; its last build here took [0-9.]+m?s\)`).MatchString(stderr) {
		t.Fatalf("build --no-cache: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = cli(t, append([]string{"verify", "target-root", "--rebuild", "--source-mirror", mirror}, common...)...)
	if code != 0 || !strings.Contains(out, "target-root for linux/arm64: reproducible: both builds are sha256:") {
		t.Fatalf("verify --rebuild: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = cli(t, append([]string{"sbom", "target-root@linux/arm64"}, "--store", storeDir)...)
	if code != 0 || !strings.Contains(out, `"spdxVersion": "SPDX-2.3"`) || !strings.Contains(out, `"name": "busybox"`) {
		t.Fatalf("sbom: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, append([]string{"sources", "list", "target-native"}, common...)...)
	if code != 0 || !strings.Contains(out, "greeting  greeting.txt") {
		t.Fatalf("sources list: exit %d\n%s", code, out)
	}
	code, _, stderr = cli(t, append([]string{"build", "nothing"}, common...)...)
	if code != 1 || !strings.Contains(stderr, `no stage is named "nothing" (stages: host-tools, target-native, target-root)`) {
		t.Fatalf("build of an unknown stage: exit %d\n%s", code, stderr)
	}
	code, _, stderr = cli(t, "--store", storeDir, "build", "target-native", "--stages", set, "--platform", "linux/riscv64")
	if code != 1 || !strings.Contains(stderr, "linux/riscv64 has no row") {
		t.Fatalf("build for a platform without a target row: exit %d\n%s", code, stderr)
	}
}

// TestPlanSaysWhatIsAccelerated: with --accelerator, plan marks the emulated stage whose
// recipe asks for it, and only that one, in the table and in JSON; a missing accelerator is
// an error naming the flag.
func TestPlanSaysWhatIsAccelerated(t *testing.T) {
	storeDir, set, _, busybox := acceleratedSet(t)
	common := []string{"--store", storeDir, "--stages", set, "--platform", "linux/arm64", "--accelerator", "busybox@linux-amd64"}
	code, out, stderr := cli(t, append([]string{"plan", "target-native"}, common...)...)
	if code != 0 || strings.Count(out, "(accelerated)") != 1 || !strings.Contains(out, "target-native  linux/arm64  linux/arm64 (accelerated)") {
		t.Fatalf("plan: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = cli(t, append([]string{"plan", "target-native", "--format", "json"}, common...)...)
	if code != 0 || strings.Count(out, `"accelerator": "`+busybox.Digest.String()+`"`) != 1 {
		t.Fatalf("plan --format json: exit %d\n%s", code, out)
	}
	code, _, stderr = cli(t, "--store", storeDir, "plan", "target-native", "--stages", set, "--platform", "linux/arm64", "--accelerator", "nothing")
	if code != 1 || !strings.Contains(stderr, "--accelerator nothing:") {
		t.Fatalf("plan with a missing accelerator: exit %d\n%s", code, stderr)
	}

	// An accelerator a stage of the set makes and the store lacks is planned first, just
	// before the stage it accelerates; verify, which runs on what is there, names the stage.
	accel := "description: host tools\nfrom: image:busybox\nruns-on: host\noutput: {rootfs: /out, for: host}\nplatforms: [linux/arm64]\nrun: mkdir -p /out/bin\n"
	if err := os.WriteFile(filepath.Join(set, "accel-tools.yaml"), []byte(accel), 0o644); err != nil {
		t.Fatal(err)
	}
	common = []string{"--store", storeDir, "--stages", set, "--platform", "linux/arm64", "--accelerator", "accel-tools-for-linux-arm64"}
	code, out, stderr = cli(t, append([]string{"plan", "target-native"}, common...)...)
	if code != 0 || !regexp.MustCompile(`(?m)^accel-tools +linux/arm64 +linux/amd64 .* build .*\ntarget-native +linux/arm64 +linux/arm64 \(accelerated\)`).MatchString(out) {
		t.Fatalf("plan with an accelerator to build first: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = cli(t, append([]string{"plan", "target-native", "--format", "json"}, common...)...)
	if code != 0 || strings.Count(out, `"accelerator": "accel-tools-for-linux-arm64@linux-amd64"`) != 1 {
		t.Fatalf("plan --format json with an accelerator to build first: exit %d\n%s", code, out)
	}
	code, _, stderr = cli(t, append([]string{"verify", "target-native", "--rebuild"}, common...)...)
	if code == 0 || !strings.Contains(stderr, "stage accel-tools makes it: serpent-oci build accel-tools --platform linux/arm64") {
		t.Fatalf("verify with an accelerator not built: exit %d\n%s", code, stderr)
	}
}

// acceleratedSet is a store with the host's busybox (the accelerator) and the test set whose
// target-native says accelerate: true, with the set's source mirror.
// hostBusyboxStore is a new store holding busybox for linux/amd64 (the test recipe set's
// base) and its descriptor.
func hostBusyboxStore(t *testing.T) (string, v1.Descriptor) {
	t.Helper()
	storeDir := filepath.Join(t.TempDir(), "store")
	st, err := store.Open(context.Background(), storeDir)
	if err != nil {
		t.Fatal(err)
	}
	_, d := buildertest.Busybox(t, st, platform.MustParse("linux/amd64"))
	return storeDir, d
}

func acceleratedSet(t *testing.T) (storeDir, set, mirror string, busybox v1.Descriptor) {
	t.Helper()
	storeDir, busybox = hostBusyboxStore(t)
	set, mirror = buildertest.RecipeSet(t)
	yaml := filepath.Join(set, "target-native.yaml")
	b, err := os.ReadFile(yaml)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(yaml, append(b, "accelerate: true\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	return storeDir, set, mirror, busybox
}

// TestAcceleratedBuildSaysSo: an accelerated build says so as it starts the stage and in its
// summary; inspect shows the SBOM of the accelerated build naming the accelerator; and an
// emulated plan then builds the stage, saying why.
func TestAcceleratedBuildSaysSo(t *testing.T) {
	buildertest.RequireRunc(t)
	storeDir, set, mirror, busybox := acceleratedSet(t)
	common := []string{"--store", storeDir, "--stages", set, "--platform", "linux/arm64", "--sources-dir", filepath.Join(t.TempDir(), "src"), "--source-mirror", mirror}
	code, out, stderr := cli(t, append([]string{"build", "target-native", "--progress", "plain", "--accelerator", "busybox@linux-amd64"}, common...)...)
	if code != 0 || !strings.Contains(stderr, "[3/3] target-native for linux/arm64: building on linux/arm64, accelerated by busybox@linux-amd64 (") ||
		!regexp.MustCompile(`(?m)^target-native .* built, accelerated \(no image with this key\)$`).MatchString(out) {
		t.Fatalf("accelerated build: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	code, out, stderr = cli(t, "--store", storeDir, "inspect", "target-native@linux-arm64")
	if code != 0 || !regexp.MustCompile(`Referrer:\s+application/spdx\+json sha256:[0-9a-f]{64} \(of a build accelerated by `+busybox.Digest.String()+`\)`).MatchString(out) {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, stderr)
	}
	// Its values line up with the table's, not with the annotation keys above it.
	column := func(key string) int {
		m := regexp.MustCompile(`(?m)^` + key + `:\s+`).FindString(out)
		return len(m)
	}
	if d, r, l := column("Digest"), column("Referrer"), column("Layers"); d == 0 || r != d || l != d {
		t.Errorf("inspect: values start at column %d (Digest), %d (Referrer), %d (Layers); want one column\n%s", d, r, l, out)
	}
	code, out, stderr = cli(t, append([]string{"plan", "target-native"}, common[:len(common)-2]...)...)
	if code != 0 || !strings.Contains(out, "built with an accelerator only, not yet emulated") || strings.Contains(out, "(accelerated)") {
		t.Fatalf("emulated plan after an accelerated build: exit %d\n%s%s", code, out, stderr)
	}
}

// TestShellCommandOutputAndStatus: shell STAGE -- CMD gives CMD's stdout and stderr as they
// are, apart, and exits with CMD's status, as run does.
func TestShellCommandOutputAndStatus(t *testing.T) {
	buildertest.RequireRunc(t)
	storeDir, _ := hostBusyboxStore(t)
	set, mirror := buildertest.RecipeSet(t)
	common := []string{"--store", storeDir, "--stages", set, "--platform", "linux/arm64", "--sources-dir", filepath.Join(t.TempDir(), "src"),
		"--source-mirror", mirror, "--progress", "plain"}
	for _, tt := range []struct {
		script string
		code   int
		stdout string
	}{
		{`echo "out: $SERPENT_TARGET_TRIPLE"; echo err >&2; exit 7`, 7, "out: aarch64-serpent-linux-musl\n"},
		{`echo fine`, 0, "fine\n"},
		{`no-such-command`, 127, ""},
	} {
		code, out, stderr := cli(t, append(append([]string{"shell", "host-tools"}, common...), "--", "/bin/sh", "-c", tt.script)...)
		if code != tt.code || out != tt.stdout {
			t.Errorf("shell -- sh -c %q: exit %d, stdout %q; want %d, %q\nstderr:\n%s", tt.script, code, out, tt.code, tt.stdout, stderr)
		}
		if strings.Contains(tt.script, "err >&2") && !strings.Contains(stderr, "err\n") {
			t.Errorf("shell -- sh -c %q: stderr lacks the command's own: %q", tt.script, stderr)
		}
	}
}

// TestDemoUsesItsOwnStore: make demo's script builds into a store of its own under its
// directory (never the user's default store), keeps its recipe set and mirror there, prints
// the next commands to try, and a second run rebuilds nothing.
func TestDemoUsesItsOwnStore(t *testing.T) {
	buildertest.RequireRunc(t)
	testenv.RequireTools(t, "dpkg-deb")
	demo, home := filepath.Join(t.TempDir(), "demo"), t.TempDir()
	script, err := filepath.Abs("../../stages/testdata/demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	run := func() string {
		cmd := exec.Command(script, binary)
		cmd.Env = append(os.Environ(), "DEMO_DIR="+demo, "HOME="+home, "SERPENT_OCI_STORE=", "SERPENT_OCI_TESTDATA="+buildertest.TestdataDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("demo.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	out := run()
	for _, want := range []string{"3 stages, 3 built", "Next, try:", "--store " + demo + "/store images", "run target-root@linux/arm64", "plan target-native --stages " + demo + "/stages"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo.sh's output lacks %q:\n%s", want, out)
		}
	}
	if !tagExists(t, filepath.Join(demo, "store"), "target-native@linux-arm64") {
		t.Errorf("the demo's store has no target-native@linux-arm64")
	}
	for _, d := range []string{"stages", "mirror"} {
		if _, err := os.Stat(filepath.Join(demo, d)); err != nil {
			t.Errorf("the demo's %s is gone: %v", d, err)
		}
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("the demo wrote into HOME (the default store's place): %v", entries)
	}
	if out := run(); !strings.Contains(out, "3 stages, 0 built") {
		t.Errorf("a second demo rebuilt:\n%s", out)
	}
}

// TestRelativeSourceDirsAreMadeAbsolute: the source cache and mirrors are bind-mounted into
// containers, whose specs take absolute paths only, so --sources-dir sources (and a relative
// --source-mirror or $SERPENT_OCI_SOURCES) are the working directory's.
func TestRelativeSourceDirsAreMadeAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct {
		name string
		g    graphFlags
		env  string
		want string
	}{
		{"flag", graphFlags{sourcesDir: "sources", mirrors: []string{"distfiles", "/srv/m"}}, "", filepath.Join(dir, "sources")},
		{"environment", graphFlags{}, "cache/src", filepath.Join(dir, "cache/src")},
		{"absolute", graphFlags{sourcesDir: "/var/cache/x/../src"}, "", "/var/cache/src"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(sources.EnvCache, tc.env)
			c, err := tc.g.sourceCache(nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.Dir != tc.want {
				t.Errorf("cache dir %q, want %q", c.Dir, tc.want)
			}
			for i, m := range c.Mirrors {
				if !filepath.IsAbs(m) || filepath.Base(m) != filepath.Base(tc.g.mirrors[i]) {
					t.Errorf("mirror %q from %q: want it absolute", m, tc.g.mirrors[i])
				}
			}
		})
	}
}
