package platform

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want, slug string
	}{
		{"linux/arm64", "linux/arm64", "linux-arm64"},
		{"linux/arm64/v8", "linux/arm64", "linux-arm64"},
		{"arm64", "linux/arm64", "linux-arm64"},
		{"aarch64", "linux/arm64", "linux-arm64"},
		{"x86_64", "linux/amd64", "linux-amd64"},
		{"linux/amd64", "linux/amd64", "linux-amd64"},
		{"linux/x86-64", "linux/amd64", "linux-amd64"},
		{" linux/amd64 ", "linux/amd64", "linux-amd64"},
		{"linux/arm/v7", "linux/arm/v7", "linux-arm-v7"},
		{"armhf", "linux/arm/v7", "linux-arm-v7"},
		{"riscv64", "linux/riscv64", "linux-riscv64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := String(p); got != tt.want {
				t.Errorf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if got := Slug(p); got != tt.slug {
				t.Errorf("Slug(%q) = %s, want %s", tt.in, got, tt.slug)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"", "empty platform"},
		{"windows/amd64", "only linux"},
		{"linux/z80", "unknown architecture"},
		{"linux/*", "linux/*"},
		{"a/b/c/d", "a/b/c/d"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestListDropsDuplicates(t *testing.T) {
	var l List
	if err := l.Set("linux/arm64,aarch64"); err != nil {
		t.Fatal(err)
	}
	if err := l.Set("x86_64"); err != nil {
		t.Fatal(err)
	}
	if got, want := l.String(), "linux/arm64,linux/amd64"; got != want {
		t.Fatalf("List = %s, want %s", got, want)
	}
	if err := l.Set("linux/arm64,bogus/"); err == nil {
		t.Fatal("Set accepted a malformed platform")
	}
}

func TestUnameMachine(t *testing.T) {
	for in, want := range map[string]string{"linux/arm64": "aarch64", "linux/amd64": "x86_64", "linux/riscv64": "riscv64"} {
		if got := UnameMachine(MustParse(in)); got != want {
			t.Errorf("UnameMachine(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestOrHost(t *testing.T) {
	arm := MustParse("linux/arm64")
	if got := OrHost(nil); len(got) != 1 || !Equal(got[0], Host()) {
		t.Errorf("OrHost(nil) = %v, want the host's", got)
	}
	if got := OrHost([]v1.Platform{arm}); len(got) != 1 || !Equal(got[0], arm) {
		t.Errorf("OrHost([arm64]) = %v", got)
	}
}
