package stages

import (
	"strings"
	"testing"
)

// amplified is a document of about 512 KiB that names one anchored string 990 times: what a
// decoder would build from it is half a gigabyte.
func amplified(prefix string) string {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteString("env:\n  BIG: &big \"" + strings.Repeat("x", 512<<10) + "\"\n")
	b.WriteString("tools: [")
	for i := range 990 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("*big")
	}
	b.WriteString("]\n")
	return b.String()
}

func TestAliasAmplificationIsRefused(t *testing.T) {
	doc := amplified("from: image:busybox\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n")
	_, err := Load(set(map[string]string{"one.yaml": doc}))
	if err == nil || !strings.Contains(err.Error(), "one.yaml:8: aliases expand the document past") {
		t.Fatalf("Load of an amplifying recipe: %.300v", err)
	}
	// A few aliases are fine: anchors are how a set keeps its recipes short.
	ok := "from: image:busybox\nruns-on: host\noutput: layer\nplatforms: &p [linux/arm64]\nrun: x\nenv: &e {A: b}\ntools: [a, b]\n"
	if _, err := Load(set(map[string]string{"one.yaml": ok})); err != nil {
		t.Fatalf("a recipe with anchors: %v", err)
	}
	if _, err := Load(set(map[string]string{"one.yaml": one, "one.sh": "true", "targets.yaml": "linux/arm64: &row\n  arch: aarch64\n  triple: aarch64-serpent-linux-musl\nlinux/amd64: *row\n"})); err != nil {
		t.Fatalf("a target table with an alias: %v", err)
	}
}
