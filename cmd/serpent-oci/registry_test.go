package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// registryEnv is a process environment that trusts d's CA through SSL_CERT_FILE and keeps
// credentials in a Docker config of the test's own.
func registryEnv(t *testing.T, d *registrytest.Distribution) []string {
	home := t.TempDir()
	return append(os.Environ(), "SSL_CERT_FILE="+d.CAFile, "DOCKER_CONFIG="+filepath.Join(home, ".docker"), "HOME="+home)
}

// loggedIn starts a real registry and logs the serpent-oci binary in to it (in the
// environment it returns).
func loggedIn(t *testing.T) (*registrytest.Distribution, []string) {
	t.Helper()
	d := registrytest.StartDistribution(t)
	env := registryEnv(t, d)
	if code, _, stderr := runBinary(t, env, d.Password, "login", d.Addr, "-u", d.User, "--password-stdin"); code != 0 {
		t.Fatalf("login: %s", stderr)
	}
	return d, env
}

// runBinary runs the serpent-oci binary (a process of its own: TLS roots and the Docker
// config are read as a user's command reads them) and returns its exit code and output.
func runBinary(t *testing.T, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env, cmd.Stdin = env, strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func resolve(t *testing.T, dir, tag string, p v1.Platform) v1.Hash {
	t.Helper()
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.Resolve(store.Ref{Name: tag}.WithPlatform(&p))
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest
}

func TestRegistryCommands(t *testing.T) {
	d := registrytest.StartDistribution(t)
	env := registryEnv(t, d)
	src := filepath.Join(t.TempDir(), "src")
	st, err := store.Open(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range buildertest.Platforms {
		buildertest.Busybox(t, st, p)
	}
	repo := d.Addr + "/serpent/busybox"

	// Without credentials, then with a wrong password, then logged in.
	code, _, stderr := runBinary(t, env, "", "--store", src, "push", "busybox", repo+":1")
	if code != 1 || !strings.Contains(stderr, "registry "+d.Addr+" refused the credentials") {
		t.Fatalf("push before login: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runBinary(t, env, "wrong-"+d.Password+"\n", "login", d.Addr, "-u", d.User, "--password-stdin")
	if code != 1 || !strings.Contains(stderr, "registry "+d.Addr+" refused the credentials") || strings.Contains(stderr, d.Password) {
		t.Fatalf("login with a wrong password: exit %d\n%s", code, stderr)
	}
	code, out, stderr := runBinary(t, env, d.Password+"\n", "login", d.Addr, "-u", d.User, "--password-stdin")
	if code != 0 || !strings.Contains(out, "Login succeeded") {
		t.Fatalf("login: exit %d\n%s%s", code, out, stderr)
	}

	// A tag with two platforms goes out as one index; each platform comes back as it was.
	code, out, stderr = runBinary(t, env, "", "--store", src, "push", "busybox", repo+":1")
	if code != 0 || !strings.HasPrefix(out, repo+"@sha256:") {
		t.Fatalf("push: exit %d\n%s%s", code, out, stderr)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	code, out, stderr = runBinary(t, env, "", "--store", dst, "pull", repo+":1", "--platform", "linux/amd64,linux/arm64", "--tag", "bb")
	if code != 0 {
		t.Fatalf("pull: exit %d\n%s%s", code, out, stderr)
	}
	for _, p := range buildertest.Platforms {
		if a, b := resolve(t, src, "busybox", p), resolve(t, dst, "bb", p); a != b {
			t.Errorf("%s: pushed %s, pulled %s", platform.String(p), a, b)
		}
	}

	// Spread over machines: each pushes its platform, one step joins them. The store knows
	// serpent/busybox holds the layers: the pushes to other repositories mount them, and
	// only the configs (under 1 KiB) go over the wire.
	for _, p := range buildertest.Platforms {
		code, _, stderr = runBinary(t, env, "", "--store", src, "push", "busybox@"+platform.String(p), d.Addr+"/ci/"+p.Architecture+":7")
		if code != 0 || !regexp.MustCompile(`pushed \S+: [0-9]+ B uploaded\n`).MatchString(stderr) {
			t.Fatalf("push %s: exit %d\n%s", platform.String(p), code, stderr)
		}
	}
	code, out, stderr = runBinary(t, env, "", "index", "create", repo+":joined", "--from", d.Addr+"/ci/amd64:7", "--from", d.Addr+"/ci/arm64:7")
	if code != 0 || !strings.HasPrefix(out, repo+"@sha256:") {
		t.Fatalf("index create: exit %d\n%s%s", code, out, stderr)
	}
	joined := filepath.Join(t.TempDir(), "joined")
	for _, p := range buildertest.Platforms {
		if code, _, stderr = runBinary(t, env, "", "--store", joined, "pull", repo+":joined", "--platform", platform.String(p)); code != 0 {
			t.Fatalf("pull joined %s: exit %d\n%s", platform.String(p), code, stderr)
		}
		if a, b := resolve(t, src, "busybox", p), resolve(t, joined, "busybox", p); a != b {
			t.Errorf("joined index, %s: %s, want %s", platform.String(p), b, a)
		}
	}

	// The CA is trusted through SSL_CERT_FILE only: without it, a clear refusal.
	var noCA []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "SSL_CERT_FILE=") {
			noCA = append(noCA, kv)
		}
	}
	code, _, stderr = runBinary(t, noCA, "", "--store", dst, "pull", repo+":1", "--platform", "linux/amd64")
	if code != 1 || !strings.Contains(stderr, "TLS certificate not trusted") {
		t.Fatalf("pull without the CA: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runBinary(t, env, "", "--store", dst, "pull", repo+":1", "--platform", "linux/riscv64")
	if code != 1 || !strings.Contains(stderr, "no image for linux/riscv64") {
		t.Fatalf("pull of a platform the index lacks: exit %d\n%s", code, stderr)
	}
}

func TestBuildWithCacheToThenCacheFrom(t *testing.T) {
	buildertest.RequireRunc(t)
	d, env := loggedIn(t)
	set, mirror := buildertest.RecipeSet(t)
	newStore := func() string {
		dir := filepath.Join(t.TempDir(), "store")
		st, err := store.Open(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		buildertest.Busybox(t, st, platform.MustParse("linux/amd64"))
		return dir
	}
	cache := d.Addr + "/serpent/cache"
	first := newStore()
	common := []string{"build", "target-native", "--stages", set, "--platform", "linux/arm64", "--progress", "plain", "--source-mirror", mirror}
	code, out, stderr := runBinary(t, env, "", append([]string{"--store", first},
		append(common, "--sources-dir", filepath.Join(t.TempDir(), "src"), "--cache-to", "type=registry,ref="+cache+",mode=max", "--push", d.Addr+"/serpent/target-native:1")...)...)
	if code != 0 || !strings.Contains(out, "3 stages, 3 built, 0 pulled") || !strings.Contains(stderr, "pushed "+d.Addr+"/serpent/target-native@sha256:") {
		t.Fatalf("build --cache-to --push: exit %d\n%s%s", code, out, stderr)
	}

	second := newStore()
	// plan says beforehand which stages hit, which are fetched and how much each downloads.
	planArgs := []string{"--store", second, "plan", "target-native", "--stages", set, "--platform", "linux/arm64", "--cache-from", cache}
	code, out, stderr = runBinary(t, env, "", planArgs...)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^host-tools .* resolve +0 B +- +in cache `),
		regexp.MustCompile(`(?m)^target-root .* resolve +0 B +- +in cache `),
		regexp.MustCompile(`(?m)^target-native .* pull +[0-9.]+ [KM]iB +- +in cache `),
	} {
		if code != 0 || !want.MatchString(out) {
			t.Fatalf("plan --cache-from: exit %d, no line matching %s\n%s%s", code, want, out, stderr)
		}
	}
	code, out, stderr = runBinary(t, env, "", append([]string{"--store", second},
		append(common, "--sources-dir", filepath.Join(t.TempDir(), "src"), "--cache-from", "type=registry,ref="+cache)...)...)
	// The target is pulled; the stages before it are only resolved (their digests key it).
	if code != 0 || !regexp.MustCompile(`3 stages, 0 built, 1 pulled \([0-9.]+ [KM]iB\), 2 resolved only`).MatchString(out) ||
		!regexp.MustCompile(`target-native .* pulled [0-9.]+ [KM]iB \(in cache `+regexp.QuoteMeta(cache)+`\)`).MatchString(out) ||
		strings.Count(out, "resolved, 0 B (in cache "+cache+": only its digest is needed)") != 2 {
		t.Fatalf("build --cache-from in a new store: exit %d\n%s%s", code, out, stderr)
	}
	if logs, _ := os.ReadDir(filepath.Join(second, ".serpent", "logs")); len(logs) != 0 {
		t.Errorf("%d containers ran in a build the cache served", len(logs))
	}
	arm64 := platform.MustParse("linux/arm64")
	if a, b := resolve(t, first, "target-native", arm64), resolve(t, second, "target-native", arm64); a != b {
		t.Errorf("target-native: built %s, pulled %s", a, b)
	}
	// What --push sent is the built image, in an index for its platform.
	third := filepath.Join(t.TempDir(), "third")
	if code, _, stderr := runBinary(t, env, "", "--store", third, "pull", d.Addr+"/serpent/target-native:1", "--platform", "linux/arm64"); code != 0 {
		t.Fatalf("pull the pushed target: %s", stderr)
	}
	if a, b := resolve(t, first, "target-native", arm64), resolve(t, third, "target-native", arm64); a != b {
		t.Errorf("pushed target-native is %s, built %s", b, a)
	}
	// and its SBOM came with it, the same bytes as the building store's.
	sbomOf := func(dir string) []byte {
		t.Helper()
		st, err := store.Open(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		refs, err := st.Referrers(resolve(t, dir, "target-native", arm64), "application/spdx+json")
		if err != nil || len(refs) != 1 {
			t.Fatalf("SBOMs of target-native in %s: %v %v", dir, refs, err)
		}
		data, err := st.ReferrerData(refs[0])
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if a, b := sbomOf(first), sbomOf(third); !bytes.Equal(a, b) {
		t.Errorf("pulled SBOM differs from the built one:\n%s\n%s", b, a)
	}

	// buildx's spelling: -t (twice) and --push alone. The second store pulled the target from
	// the cache repository, so its layers are mounted from there: only configs, indexes and
	// SBOMs go over the wire.
	code, out, stderr = runBinary(t, env, "", append([]string{"--store", second},
		append(common, "--sources-dir", filepath.Join(t.TempDir(), "src"), "-t", d.Addr+"/serpent/tn-a:1", "-t", d.Addr+"/serpent/tn-b:2", "--push")...)...)
	for _, repo := range []string{"tn-a", "tn-b"} {
		if code != 0 || !regexp.MustCompile(`pushed `+regexp.QuoteMeta(d.Addr+"/serpent/"+repo)+`@sha256:[0-9a-f]{64} \([0-9]+ B uploaded\)`).MatchString(stderr) {
			t.Fatalf("build -t %s -t --push: exit %d\n%s%s", repo, code, out, stderr)
		}
	}
	fourth := filepath.Join(t.TempDir(), "fourth")
	if code, _, stderr := runBinary(t, env, "", "--store", fourth, "pull", d.Addr+"/serpent/tn-b:2", "--platform", "linux/arm64"); code != 0 {
		t.Fatalf("pull what -t sent: %s", stderr)
	}
	if a, b := resolve(t, first, "target-native", arm64), resolve(t, fourth, "tn-b", arm64); a != b {
		t.Errorf("-t --push sent %s, built %s", b, a)
	}

	// The index holds the image alone; its SBOM went out as a referrer of it.
	client := registry.New(registry.Options{Transport: d.Transport(), Keychain: basicKeychain{d.User, d.Password}})
	pushed, _ := client.ParseReference(d.Addr + "/serpent/target-native:1")
	desc, err := remote.Get(pushed, remote.WithTransport(d.Transport()), remote.WithAuth(&authn.Basic{Username: d.User, Password: d.Password}))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(desc.Manifest, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Platform == nil || idx.Manifests[0].ArtifactType == "application/spdx+json" {
		t.Fatalf("pushed index: %+v", idx.Manifests)
	}
	refs, err := client.Referrers(context.Background(), pushed.Context().Digest(idx.Manifests[0].Digest.String()), "application/spdx+json")
	if err != nil || len(refs) != 1 {
		t.Fatalf("SBOM referrers of the pushed image: %v %v", refs, err)
	}
	// `push` sends them too, to another repository.
	if code, _, stderr := runBinary(t, env, "", "--store", first, "push", "target-native", d.Addr+"/other/tn:1"); code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	other, _ := client.ParseReference(d.Addr + "/other/tn:1")
	refs, err = client.Referrers(context.Background(), other.Context().Digest(idx.Manifests[0].Digest.String()), "application/spdx+json")
	if err != nil || len(refs) != 1 {
		t.Fatalf("SBOM referrers after push: %v %v", refs, err)
	}
}

type basicKeychain struct{ user, password string }

func (k basicKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: k.password}, nil
}

// TestAcceleratedProvenanceTravels: an image only an accelerated build has made, pushed and
// pulled into another store, still says how it was made there: its SBOM comes with it, and
// the SBOM names the accelerator.
func TestAcceleratedProvenanceTravels(t *testing.T) {
	buildertest.RequireRunc(t)
	d, env := loggedIn(t)
	storeDir, set, mirror, busybox := acceleratedSet(t)
	code, out, stderr := runBinary(t, env, "", "--store", storeDir, "build", "target-native", "--stages", set, "--platform", "linux/arm64",
		"--sources-dir", filepath.Join(t.TempDir(), "src"), "--source-mirror", mirror, "--accelerator", "busybox@linux-amd64",
		"--push", d.Addr+"/serpent/accelerated:1")
	if code != 0 {
		t.Fatalf("accelerated build --push: exit %d\n%s%s", code, out, stderr)
	}
	other := filepath.Join(t.TempDir(), "other")
	if code, _, stderr := runBinary(t, env, "", "--store", other, "pull", d.Addr+"/serpent/accelerated:1", "--platform", "linux/arm64"); code != 0 || strings.Contains(stderr, "without its SBOMs") {
		t.Fatalf("pull: exit %d\n%s", code, stderr)
	}
	code, out, stderr = runBinary(t, env, "", "--store", other, "inspect", "accelerated@linux-arm64")
	if want := "(of a build accelerated by " + busybox.Digest.String() + ")"; code != 0 || strings.Count(out, "Referrer:") != 1 || !strings.Contains(out, want) {
		t.Fatalf("inspect of the pulled image: exit %d, want one referrer %s\n%s%s", code, want, out, stderr)
	}
}

// TestCacheFlagSpellings: --cache-from and --cache-to take a repository or buildx's
// type=registry,ref=REPOSITORY[,mode=max]; every other form is an error naming what is wrong.
func TestCacheFlagSpellings(t *testing.T) {
	tests := []struct {
		spec, want, wantErr string
	}{
		{spec: "127.0.0.1:5000/cache", want: "127.0.0.1:5000/cache"},
		{spec: "type=registry,ref=127.0.0.1:5000/cache", want: "127.0.0.1:5000/cache"},
		{spec: "ref=127.0.0.1:5000/cache,type=registry,mode=max", want: "127.0.0.1:5000/cache"},
		{spec: "type=local,src=/tmp/cache", wantErr: "type=local: serpent-oci's cache is a registry repository"},
		{spec: "type=gha", wantErr: "type=gha"},
		{spec: "type=registry", wantErr: "no ref"},
		{spec: "ref=127.0.0.1:5000/cache", wantErr: "no type"},
		{spec: "type=registry,ref=127.0.0.1:5000/app:buildcache", wantErr: "names a tag: give the repository alone (127.0.0.1:5000/app)"},
		{spec: "type=registry,ref=127.0.0.1:5000/app@sha256:00", wantErr: "names a digest"},
		{spec: "type=registry,ref=r.example/c,mode=min", wantErr: "mode=min: serpent-oci caches every stage"},
		{spec: "type=registry,ref=r.example/c,compression=zstd", wantErr: "compression: unknown key"},
		{spec: "type=registry,ref=a/b,ref=c/d", wantErr: "ref given twice"},
		{spec: "type=registry,,ref=a/b", wantErr: `"" is not KEY=VALUE`},
	}
	for _, tt := range tests {
		got, err := cacheRepository(tt.spec)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("cacheRepository(%q) = %q, %v; want an error with %q", tt.spec, got, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("cacheRepository(%q) = %q, %v; want %q", tt.spec, got, err, tt.want)
		}
	}
	// On the command line: a usage error naming the flag, before anything is built.
	storeDir := filepath.Join(t.TempDir(), "store")
	for _, flag := range []string{"--cache-from", "--cache-to"} {
		code, _, stderr := cli(t, "--store", storeDir, "build", "stage1", flag, "type=local,src=/tmp/x")
		if code != 2 || !strings.Contains(stderr, flag+" type=local,src=/tmp/x: type=local") {
			t.Errorf("build %s type=local: exit %d\n%s", flag, code, stderr)
		}
	}
	if _, err := os.Stat(storeDir); err == nil {
		if logs, _ := os.ReadDir(filepath.Join(storeDir, ".serpent", "logs")); len(logs) != 0 {
			t.Errorf("a build with a bad cache flag ran %d containers", len(logs))
		}
	}
}

// TestOnePlatformPerMachine is the per-platform path of docs/registries.md: two stores stand
// for two machines, each building one platform natively and pushing to one cache repository
// and to a per-platform reference; `index create` joins the two. The index holds each
// machine's image (the digests each store tagged), and a third machine building both
// platforms from the cache runs no container and tags the same digests.
func TestOnePlatformPerMachine(t *testing.T) {
	buildertest.RequireRunc(t)
	d, env := loggedIn(t)
	set := t.TempDir()
	for name, data := range map[string]string{
		"targets.yaml": "linux/amd64: {arch: x86_64, triple: x86_64-serpent-linux-musl, cflags: -march=x86-64-v3}\n" +
			"linux/arm64: {arch: aarch64, triple: aarch64-serpent-linux-musl, cflags: -march=armv8-a}\n",
		"native.yaml": "description: a stage each machine builds natively for its own platform\n" +
			"from: image:busybox\nruns-on: target\noutput: layer\nplatforms: [linux/amd64, linux/arm64]\n" +
			"run: uname -m > /etc/built-on\n",
	} {
		if err := os.WriteFile(filepath.Join(set, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	machine := func(plats ...string) string {
		dir := filepath.Join(t.TempDir(), "store")
		st, err := store.Open(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range plats {
			buildertest.Busybox(t, st, platform.MustParse(p))
		}
		return dir
	}
	cache := d.Addr + "/serpent/cache"
	build := func(dir, plat string, extra ...string) string {
		t.Helper()
		args := append([]string{"--store", dir, "build", "native", "--stages", set, "--platform", plat, "--progress", "plain"}, extra...)
		code, out, stderr := runBinary(t, env, "", args...)
		if code != 0 {
			t.Fatalf("build for %s: exit %d\n%s%s", plat, code, out, stderr)
		}
		return out
	}
	built := map[string]v1.Hash{}
	var froms []string
	for _, plat := range []string{"linux/amd64", "linux/arm64"} {
		dir := machine(plat)
		ci := d.Addr + "/ci/native:" + strings.ReplaceAll(plat, "/", "-")
		out := build(dir, plat, "--cache-from", cache, "--cache-to", cache, "--push", ci)
		if !strings.Contains(out, "1 stage, 1 built, 0 pulled") {
			t.Fatalf("the machine for %s did not build its stage itself:\n%s", plat, out)
		}
		built[plat] = resolve(t, dir, "native", platform.MustParse(plat))
		froms = append(froms, "--from", ci)
	}

	final := d.Addr + "/serpent/native:2026.12"
	if code, out, stderr := runBinary(t, env, "", append([]string{"index", "create", final}, froms...)...); code != 0 {
		t.Fatalf("index create: exit %d\n%s%s", code, out, stderr)
	}
	client := registry.New(registry.Options{Transport: d.Transport(), Keychain: basicKeychain{d.User, d.Password}})
	ref, _ := client.ParseReference(final)
	idx, err := client.Index(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]v1.Hash{}
	for _, m := range im.Manifests {
		if m.Platform != nil && m.MediaType.IsImage() {
			got[platform.String(*m.Platform)] = m.Digest
		}
	}
	if len(got) != 2 || got["linux/amd64"] != built["linux/amd64"] || got["linux/arm64"] != built["linux/arm64"] {
		t.Fatalf("the joined index holds %v, the machines built %v", got, built)
	}

	third := machine("linux/amd64", "linux/arm64")
	out := build(third, "linux/amd64,linux/arm64", "--cache-from", cache)
	if !strings.Contains(out, "2 stages, 0 built, 2 pulled") {
		t.Errorf("a third machine built from the cache:\n%s", out)
	}
	if logs, _ := os.ReadDir(filepath.Join(third, ".serpent", "logs")); len(logs) != 0 {
		t.Errorf("%d containers ran on the third machine", len(logs))
	}
	for plat, want := range built {
		if d := resolve(t, third, "native", platform.MustParse(plat)); d != want {
			t.Errorf("third machine's native for %s: %s, built %s", plat, d, want)
		}
	}
}
