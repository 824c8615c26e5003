package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// completionStore is a store with fixture@linux-amd64 and fixture@linux-arm64.
func completionStore(t *testing.T) string {
	t.Helper()
	storeDir := filepath.Join(t.TempDir(), "store")
	src := t.TempDir()
	testenv.Fixture(t, src)
	for _, p := range []string{"amd64", "arm64"} {
		if code, _, stderr := cli(t, "--store", storeDir, "import", src, "--tag", "fixture", "--platform", p); code != 0 {
			t.Fatalf("import fixture for %s: %s", p, stderr)
		}
	}
	return storeDir
}

func TestComplete(t *testing.T) {
	storeDir := completionStore(t)
	tags := []string{"fixture", "fixture@linux-amd64", "fixture@linux-arm64"}
	tests := []struct {
		words []string
		want  []string // exactly these, in order
		has   []string // at least these (when want is nil)
	}{
		{words: []string{"bu"}, want: []string{"build"}},
		{words: []string{"i"}, want: []string{"import", "images", "inspect", "index"}},
		{words: []string{"--log-format", ""}, want: []string{"text", "json"}},
		{words: []string{"--store", storeDir, "--log-level", "debug", "gc"}, want: []string{"gc"}},
		{words: []string{"--ve"}, want: []string{"--version"}},
		{words: []string{"__"}, want: nil},
		{words: []string{"build", "--pla"}, want: []string{"--platform"}},
		{words: []string{"build", "--platform", ""}, want: []string{"linux/amd64", "linux/arm64"}},
		{words: []string{"build", "--platform=linux/ar"}, want: []string{"--platform=linux/arm64"}},
		{words: []string{"build", "--profile", ""}, want: []string{"small", "full"}},
		{words: []string{"build", "stage2"}, want: []string{"stage2", "stage2.5"}},
		{words: []string{"build", "--profile", "full", "stage3"}, has: []string{"stage3", "stage3-base", "stage3-llvm", "stage3-fixedpoint"}},
		{words: []string{"build", "--profile", "full", "stage3-b"}, want: []string{"stage3-base"}},
		{words: []string{"build", "stage3-b"}, want: nil}, // not in the small profile
		{words: []string{"build", "--profile=full", "llvm"}, want: []string{"llvm", "llvm-accel"}},
		{words: []string{"build", "stage3", ""}, want: nil}, // one TARGET only
		{words: []string{"--store", storeDir, "inspect", "fix"}, want: tags},
		{words: []string{"inspect", "--store", storeDir, "fixture@linux-ar"}, want: []string{"fixture@linux-arm64"}},
		{words: []string{"--store", storeDir, "tag", "fix"}, want: tags},
		{words: []string{"--store", storeDir, "tag", "fixture", ""}, want: nil}, // tag's TARGET is a new name, not a stage
		{words: []string{"--store", filepath.Join(t.TempDir(), "none"), "inspect", ""}, want: nil},
		{words: []string{"--store", storeDir, "run", "fixture", "--", ""}, want: nil},
		{words: []string{"run", "--network", ""}, want: []string{"none", "host"}},
		{words: []string{"sources", ""}, want: []string{"fetch", "list"}},
		{words: []string{"sources", "fetch", "stage1"}, want: []string{"stage1"}},
		{words: []string{"spin", ""}, want: []string{"build"}},
		{words: []string{"completion", ""}, want: []string{"bash", "zsh", "fish"}},
		{words: []string{"nosuch", ""}, want: nil},
		{words: []string{"images", "-"}, has: []string{"--quiet", "-q", "--format", "--store", "--help", "-h"}},
	}
	for _, tt := range tests {
		got := complete(&env{}, tt.words)
		switch {
		case tt.has != nil:
			for _, h := range tt.has {
				if !slices.Contains(got, h) {
					t.Errorf("complete %q = %q: lacks %s", tt.words, got, h)
				}
			}
		case !slices.Equal(got, tt.want):
			t.Errorf("complete %q = %q, want %q", tt.words, got, tt.want)
		}
	}
}

// TestCompletionScripts loads each shell's script into the shell itself and completes a line
// as a user would press Tab, with serpent-oci on PATH: the scripts are only as good as the
// way each shell calls them.
func TestCompletionScripts(t *testing.T) {
	storeDir := completionStore(t)
	bin := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(bin, "serpent-oci")); err != nil {
		t.Fatal(err)
	}
	scripts := t.TempDir()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, stderr := cli(t, "completion", sh)
		if code != 0 {
			t.Fatalf("completion %s: %s", sh, stderr)
		}
		if err := os.WriteFile(filepath.Join(scripts, sh), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Each driver prints the candidates for the line, one a line.
	drivers := map[string][]string{
		// COMP_WORDS as bash splits the line (= and : are word breaks).
		"bash": {"bash", "--norc", "--noprofile", "-c", `source "$1"; shift; eval "COMP_WORDS=($1)"; COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _serpent_oci; printf '%s\n' "${COMPREPLY[@]}"`, "bash"},
		// zsh's completion system needs a terminal; the function is called with words and
		// CURRENT set, and compadd and _files stubbed to print what they are given.
		"zsh": {"zsh", "-f", "-c", `compdef() { :; }; compadd() { while [[ $1 == -* && $1 != -- ]]; do shift; done; [[ $1 == -- ]] && shift; printf '%s\n' "$@"; }; _files() { echo FILES; }; source "$1"; words=(${(z)2}); [[ $2 == *' ' ]] && words+=(''); CURRENT=${#words}; _serpent_oci`, "zsh"},
		// fish completes a command line itself.
		"fish": {"fish", "--no-config", "-c", `source $argv[1]; complete -C"$argv[2]"`},
	}
	tests := []struct {
		line string // what is typed before Tab
		want []string
	}{
		{"serpent-oci bu", []string{"build"}},
		{"serpent-oci build --profile full stage3-l", []string{"stage3-llvm"}},
		{"serpent-oci --store " + storeDir + " inspect fixture@linux-a", []string{"fixture@linux-amd64", "fixture@linux-arm64"}},
		{"serpent-oci completion ", []string{"bash", "zsh", "fish"}},
	}
	for sh, driver := range drivers {
		t.Run(sh, func(t *testing.T) {
			testenv.RequireTools(t, sh)
			for _, tt := range tests {
				line := tt.line
				if sh == "bash" {
					line = bashWords(line)
				}
				cmd := exec.Command(driver[0], append(driver[1:], filepath.Join(scripts, sh), line)...)
				cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "HOME="+t.TempDir())
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s completing %q: %v\n%s", sh, tt.line, err, out)
				}
				var got []string
				for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					if l != "" {
						got = append(got, strings.SplitN(l, "\t", 2)[0]) // fish adds a description after a tab
					}
				}
				want := tt.want
				if sh == "fish" { // fish sorts what it offers
					got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s completing %q: %q, want %q", sh, tt.line, got, want)
				}
			}
		})
	}
}

// bashWords is line as a bash array literal of the words readline would give COMP_WORDS:
// the words, and an empty one when the line ends in a space.
func bashWords(line string) string {
	var q []string
	for _, w := range strings.Fields(line) {
		q = append(q, "'"+w+"'")
	}
	if strings.HasSuffix(line, " ") {
		q = append(q, "''")
	}
	return strings.Join(q, " ")
}
